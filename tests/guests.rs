//! Diffs of real guests and of targets other than x86: what migdiff shows between dumps made
//! by scripts/gen-testdata.sh (snapshots), and that the default ignores silence two dumps of
//! one stopped VM on every target.
//! Update snapshots with `INSTA_UPDATE=always cargo test --test guests`.

use std::path::PathBuf;
use std::process::Command;

/// Runs migdiff in testdata/ (bare file names in the output); exit code and stdout.
/// Stderr is not kept: it holds the warnings for types migdiff does not decode yet.
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata"))
        .env("NO_COLOR", "1")
        .output()
        .expect("migdiff runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn snapshot_of(args: &[&str]) -> String {
    let (code, stdout) = run(args);
    format!("exit: {code}\n{stdout}")
}

/// Two processes of one stopped VM differ only in what the default ignores hold: the
/// real-time clock's offset from the host clock.
fn stopped_twice(old: &str, new: &str, noise: &[&str]) {
    assert_eq!(run(&[old, new]), (0, String::new()), "{old} {new}");
    let (code, json) = run(&["--no-default-ignores", "--format", "json", old, new]);
    assert_eq!(
        code, 1,
        "{old} {new}: the noise is there without the defaults"
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut paths: Vec<String> = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["device"].as_str().unwrap(),
                c["path"].as_str().unwrap()
            )
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    assert!(
        paths.iter().all(|p| noise.contains(&p.as_str())),
        "{old} {new}: {paths:?}"
    );
}

#[test]
fn aarch64_stopped_vm_dumped_twice_differs_only_in_the_pl031_offset() {
    stopped_twice(
        "aarch64-max-stopped.mig",
        "aarch64-max-stopped-again.mig",
        &[
            "pl031 (0)/tick_offset_vmstate",
            "pl031 (0)/pl031/tick-offset/tick_offset",
        ],
    );
}

#[test]
fn riscv64_stopped_vm_dumped_twice_differs_only_in_the_goldfish_rtc_offset() {
    stopped_twice(
        "riscv64-stopped.mig",
        "riscv64-stopped-again.mig",
        &["goldfish_rtc (0)/tick_offset"],
    );
}

#[test]
fn aarch64_cortex_a57_against_max_stopped() {
    insta::assert_snapshot!(snapshot_of(&[
        "--format",
        "summary",
        "aarch64-a57-stopped.mig",
        "aarch64-max-stopped.mig"
    ]));
}
