//! The CI gate on the real QEMU 7.2 → 10.0 fixture pairs: allow lists, stale rules, JUnit,
//! and the worked example scripts/ci-gate.sh (run against the committed dumps, no QEMU).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

const PAIRS: &[(&str, &str, &str)] = &[
    (
        "pc-i440fx-7.2",
        "testdata/pc72-qemu72.mig",
        "testdata/pc72-qemu10.mig",
    ),
    (
        "pc-q35-7.2",
        "testdata/q35-72-qemu72.mig",
        "testdata/q35-72-qemu10.mig",
    ),
];

fn allow_file(machine: &str) -> String {
    format!("scripts/gate/{machine}.allow")
}

#[test]
fn allow_lists_turn_7_2_vs_10_into_exit_0_with_no_stale_rule() {
    for (machine, old, new) in PAIRS {
        let (code, out) = run(&[
            "--strict",
            "--allow",
            &allow_file(machine),
            "--format",
            "summary",
            old,
            new,
        ]);
        assert_eq!(code, 0, "{machine}: {out}");
        assert!(
            out.starts_with("no differences; 3 ignored,"),
            "{machine}: {out}"
        );
        assert!(!out.contains("stale"), "{machine}: {out}");
        // Without the allow list the same pair fails.
        let (code, _) = run(&[old, new]);
        assert_eq!(code, 1);
    }
}

#[test]
fn a_missing_rule_fails_and_an_unused_rule_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join(allow_file("pc-i440fx-7.2"))).unwrap();
    let (_, old, new) = PAIRS[0];

    let missing = dir.path().join("missing.allow");
    std::fs::write(
        &missing,
        text.replace("hpet (0)/num_timers_save", "# hpet rule removed"),
    )
    .unwrap();
    let (code, out) = run(&["--allow", missing.to_str().unwrap(), old, new]);
    assert_eq!(code, 1);
    assert!(
        out.contains("schema  hpet (0)/num_timers_save: renamed from 'num_timers'"),
        "{out}"
    );

    let extra = dir.path().join("extra.allow");
    std::fs::write(
        &extra,
        format!("{text}cpu (*)/env.hflags  # not different here\n"),
    )
    .unwrap();
    let (code, out) = run(&["--allow", extra.to_str().unwrap(), old, new]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stale   cpu (*)/env.hflags [line 10: not different here]: allowed nothing"),
        "{out}"
    );
    let (code, _) = run(&["--strict", "--allow", extra.to_str().unwrap(), old, new]);
    assert_eq!(code, 1);

    // A value pin that does not hold does not allow.
    let pinned = dir.path().join("pinned.allow");
    let wrong = text.replace("= 100 bytes -> 32 bytes", "= 100 bytes -> 64 bytes");
    std::fs::write(&pinned, wrong).unwrap();
    let (code, out) = run(&[
        "--allow",
        pinned.to_str().unwrap(),
        "--format",
        "json",
        old,
        new,
    ]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["changes"][0]["path"], "runstate");
    assert_eq!(doc["allowed"].as_array().unwrap().len(), 7);
    assert_eq!(doc["stale_rules"][0]["line"], 3);
}

#[test]
fn junit_parses_as_xml_with_one_case_per_device() {
    let (_, old, new) = PAIRS[1];
    let (code, out) = run(&["--format", "junit", old, new]);
    assert_eq!(code, 1);
    let doc = roxmltree::Document::parse(&out).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // stream, ram and the 29 devices both q35 dumps have.
    assert_eq!(cases.len(), 2 + 29);
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "ram",
            "0000:00:1f.2/ich9_ahci (0)",
            "globalstate (0)",
            "hpet (0)"
        ]
    );
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("4"));
    let hpet = cases
        .iter()
        .find(|c| c.attribute("name") == Some("hpet (0)"))
        .unwrap();
    let failure = hpet.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(
        failure.text(),
        Some("hpet (0)/num_timers_save: renamed from 'num_timers'")
    );
}

fn gate_script(dumps: &Path, allow_dir: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/ci-gate.sh"))
        .env("DUMP_DIR", dumps)
        .env("MIGDIFF", env!("CARGO_BIN_EXE_migdiff"))
        // No QEMU is needed: every dump exists; a call would fail loudly.
        .env("OLD_QEMU", "false")
        .env("NEW_QEMU", "false");
    if let Some(dir) = allow_dir {
        cmd.env("ALLOW_DIR", dir);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn ci_gate_script_passes_on_the_fixtures_and_fails_on_a_surprise() {
    let dumps = tempfile::tempdir().unwrap();
    for (machine, old, new) in PAIRS {
        std::fs::copy(
            root().join(old),
            dumps.path().join(format!("{machine}-old.mig")),
        )
        .unwrap();
        std::fs::copy(
            root().join(new),
            dumps.path().join(format!("{machine}-new.mig")),
        )
        .unwrap();
    }
    let (code, out) = gate_script(dumps.path(), None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ci-gate: pc-i440fx-7.2: OK") && out.contains("ci-gate: pc-q35-7.2: OK"),
        "{out}"
    );
    let junit = std::fs::read_to_string(dumps.path().join("pc-q35-7.2.junit.xml")).unwrap();
    roxmltree::Document::parse(&junit).unwrap();

    // An allow list that no longer expects the hpet rename: the gate fails.
    let allow = tempfile::tempdir().unwrap();
    for (machine, _, _) in PAIRS {
        let text = std::fs::read_to_string(root().join(allow_file(machine))).unwrap();
        std::fs::write(
            allow.path().join(format!("{machine}.allow")),
            text.replace("hpet (0)/num_timers_save", ""),
        )
        .unwrap();
    }
    let (code, out) = gate_script(dumps.path(), Some(allow.path()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ci-gate: pc-i440fx-7.2: FAILED"), "{out}");
}
