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

/// The unified diff's notes: the counts and one line per difference (with what migdiff
/// explains about it), without the hunks.
fn notes_of(old: &str, new: &str) -> String {
    let (code, stdout) = run(&[old, new]);
    assert_eq!(code, 1, "{old} {new}");
    let notes: Vec<&str> = stdout
        .lines()
        .take_while(|l| !l.starts_with("--- "))
        .collect();
    assert!(notes.len() > 1, "{old} {new}: no notes");
    notes.join("\n") + "\n"
}

/// The unified diff's first line (the counts) and its lines inside devices matching
/// `device` (a hunk's header names the device of its first line; a device's own header
/// line starts another): a booted guest differs from the other side in most devices, and
/// each test looks at some.
fn hunks_of(old: &str, new: &str, device: impl Fn(&str) -> bool) -> String {
    let (code, stdout) = run(&[old, new]);
    assert_eq!(code, 1, "{old} {new}");
    let mut out = format!("{}\n", stdout.lines().next().unwrap_or(""));
    let name_in = |text: &str| {
        text.split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(name, _)| name.to_string())
    };
    let mut current: Option<String> = None;
    for line in stdout.lines().skip_while(|l| !l.starts_with("@@ ")) {
        if line.starts_with("@@ ") {
            current = name_in(line);
            if current.as_deref().is_some_and(&device) {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if line.get(1..).is_some_and(|body| body.starts_with('[')) {
            current = name_in(line);
        }
        if current.as_deref().is_some_and(&device) {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.lines().count() > 1, "{old} {new}: no line kept");
    out
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

/// The same q35 VM before (`-S`) and after Linux booted: the virtio devices' state (PCI
/// command register, device status, negotiated features, queues) changed as the drivers
/// bound, and the CPU is in long mode.
#[test]
fn virtio_guest_stopped_against_booted() {
    let (old, new) = (
        "guest-q35-10-max-stopped.mig.zst",
        "guest-q35-10-max.mig.zst",
    );
    insta::assert_snapshot!(
        "stopped_booted_summary",
        snapshot_of(&["--format", "summary", old, new])
    );
    let virtio = hunks_of(old, new, |device| device.contains("virtio"));
    for shown in [
        "pci command=IO|MEM|BUS_MASTER",
        "status=ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK",
        "guest_features=VIRTIO_NET_F_CTRL_GUEST_OFFLOADS|VIRTIO_NET_F_MAC",
    ] {
        assert!(virtio.contains(shown), "{shown}");
    }
    insta::assert_snapshot!("stopped_booted_virtio", virtio);
    insta::assert_snapshot!("stopped_booted_cpu", hunks_of(old, new, |d| d == "cpu (0)"));
}

/// One booted guest on `-cpu qemu64` and on `-cpu max`: max's kernel enabled XSAVE with
/// AVX, so hflags, CR4, XCR0 and the xsave state differ.
#[test]
fn booted_guest_cpu_qemu64_against_max() {
    let notes = notes_of("guest-q35-10-qemu64.mig.zst", "guest-q35-10-max.mig.zst");
    for (field, shown) in [("env.hflags", "+AVX_EN"), ("env.xcr0", "+YMM")] {
        assert!(
            notes
                .lines()
                .any(|l| l.contains(&format!("cpu (0)/{field}:")) && l.contains(shown)),
            "{field} {shown}"
        );
    }
    insta::assert_snapshot!(notes);
}

/// One booted guest on `-M pc-q35-7.2`, run by QEMU 7.2 and by QEMU 10: the schema
/// changes between the two QEMUs for the same machine type.
#[test]
fn booted_guest_q35_7_2_on_qemu_7_2_against_10() {
    insta::assert_snapshot!(notes_of(
        "guest-q35-72-qemu72.mig.zst",
        "guest-q35-72-qemu10.mig.zst"
    ));
}

/// One booted arm64 guest on cortex-a57 and on max.
#[test]
fn booted_aarch64_guest_cortex_a57_against_max() {
    insta::assert_snapshot!(snapshot_of(&[
        "--format",
        "summary",
        "guest-aarch64-a57.mig.zst",
        "guest-aarch64-max.mig.zst"
    ]));
}
