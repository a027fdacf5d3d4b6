//! The CI gate on the real QEMU 7.2 → 10.0 fixture pairs: allow lists (scoped to machine
//! types), stale rules, JUnit, `migdiff gate` over pre-captured dumps (`--dumps`, no QEMU)
//! and the worked example scripts/ci-gate.sh.

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

/// One allow file for every machine type of the 7.2 -> 10.0 update.
const ALLOW: &str = "scripts/gate/qemu-7.2-to-10.0.allow";

#[test]
fn allow_lists_turn_7_2_vs_10_into_exit_0_with_no_stale_rule() {
    for (machine, old, new) in PAIRS {
        // The q35-only AHCI rule applies to q35 dumps only: not stale for i440fx.
        let (code, out) = run(&[
            "--strict", "--allow", ALLOW, "--format", "summary", old, new,
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
    let text = std::fs::read_to_string(root().join(ALLOW)).unwrap();
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
        format!("{text}[*]\ncpu (*)/env.hflags  # not different here\n"),
    )
    .unwrap();
    let (code, out) = run(&["--allow", extra.to_str().unwrap(), old, new]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stale   cpu (*)/env.hflags [line 16: not different here]: allowed nothing"),
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
    assert_eq!(doc["stale_rules"][0]["line"], 5);
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

/// A directory of pre-captured dumps as `migdiff gate --dumps` names them.
fn dump_dir() -> tempfile::TempDir {
    let dumps = tempfile::tempdir().unwrap();
    for (machine, old, new) in PAIRS {
        for (side, path) in [("old", old), ("new", new)] {
            std::fs::copy(
                root().join(path),
                dumps.path().join(format!("{machine}-{side}.mig")),
            )
            .unwrap();
        }
    }
    dumps
}

fn gate(dumps: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args([
            "gate",
            "--color",
            "never",
            "--dumps",
            dumps.to_str().unwrap(),
        ])
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn gate_over_captured_dumps_loads_both_ways_and_allows_the_update() {
    let dumps = dump_dir();
    let junit = dumps.path().join("junit.xml");
    let report = dumps.path().join("report.md");
    let (code, out, err) = gate(
        dumps.path(),
        &[
            "--allow",
            ALLOW,
            "--strict",
            "--junit",
            junit.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..],
        [
            "machine type   forward  backward  unexpected  identical  allowed",
            "pc-i440fx-7.2  loads    loads              0          0        8",
            "pc-q35-7.2     loads    loads              0          0        9",
            "2 machine types: 2 load both ways, 0 refused, 0 not decided, 0 trouble; \
             0 unexpected differences, 0 identical on the wire",
        ]
    );
    let junit = std::fs::read_to_string(junit).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let cases: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(
        cases,
        [
            "pc-i440fx-7.2 forward",
            "pc-i440fx-7.2 backward",
            "pc-i440fx-7.2 differences",
            "pc-q35-7.2 forward",
            "pc-q35-7.2 backward",
            "pc-q35-7.2 differences"
        ]
    );
    assert!(!junit.contains("<failure"), "{junit}");
    let report = std::fs::read_to_string(report).unwrap();
    assert!(
        report.contains("| `pc-q35-7.2` | loads | loads | 0 | 0 | 9 |"),
        "{report}"
    );
}

#[test]
fn without_the_allow_file_identical_changes_pass_and_the_acpi_roms_fail() {
    let dumps = dump_dir();
    let html = dumps.path().join("report.html");
    let (code, out, _) = gate(dumps.path(), &["--report", html.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pc-q35-7.2     loads    loads              3          6        0"),
        "{out}"
    );
    assert!(
        out.contains("pc-i440fx-7.2: unexpected: ram//rom@etc/table-loader: 1 of 1 page differs, at offsets 0x0-0xfff"),
        "{out}"
    );
    // Stated once, with the machine types that show it.
    assert!(
        out.contains("  hpet (0)/num_timers_save: renamed from 'num_timers' (on 2 machine types)"),
        "{out}"
    );
    assert!(
        out.contains("  0000:00:1f.2/ich9_ahci (0)/ahci.ports: int32 equal of 4 bytes -> uint32 equal of 4 bytes (on 1 machine type)"),
        "{out}"
    );
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.contains("<td class=\"n\">3</td>"), "{html}");

    let (code, out, _) = gate(dumps.path(), &["--fail-on-identical"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("pc-q35-7.2     loads    loads              9          0        0"),
        "{out}"
    );
}

#[test]
fn a_rule_scoped_to_the_wrong_family_is_stale_and_its_change_only_identical() {
    let dumps = dump_dir();
    let text = std::fs::read_to_string(root().join(ALLOW)).unwrap();
    let allow = dumps.path().join("wrong.allow");
    std::fs::write(&allow, text.replace("[pc-q35-*]", "[pc-i440fx-*]")).unwrap();
    let (code, out, _) = gate(dumps.path(), &["--allow", allow.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pc-q35-7.2     loads    loads              0          1        8"),
        "{out}"
    );
    assert!(
        out.contains("stale   0000:00:1f.2/ich9_ahci (0)/ahci.ports [line 14: int32 equal -> uint32 equal: same 4 bytes on the wire]: allowed nothing"),
        "{out}"
    );
    let (code, _, _) = gate(
        dumps.path(),
        &["--allow", allow.to_str().unwrap(), "--strict"],
    );
    assert_eq!(code, 1);
}

#[test]
fn the_destinations_dump_vmstate_turns_not_decided_into_qemu_s_refusal() {
    // The am53c974 SCSI adapter's ESP state changed layout after 7.2: QEMU 10 refuses the
    // 7.2 stream with "Missing section footer"; two dumps alone cannot tell.
    let dumps = tempfile::tempdir().unwrap();
    for (side, qemu) in [("old", "qemu72"), ("new", "qemu10")] {
        std::fs::copy(
            root().join(format!("testdata/q35-72-am53c974-{qemu}.mig")),
            dumps.path().join(format!("pc-q35-7.2-{side}.mig")),
        )
        .unwrap();
    }
    let (code, out, _) = gate(dumps.path(), &["--allow", ALLOW]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pc-q35-7.2    not decided  not decided           7          0        9"),
        "{out}"
    );
    for (side, qemu) in [("old", "qemu72"), ("new", "qemu10")] {
        std::fs::copy(
            root().join(format!("testdata/vmstate-q35-72-{qemu}.json")),
            dumps.path().join(format!("pc-q35-7.2-{side}.vmstate.json")),
        )
        .unwrap();
    }
    let junit = dumps.path().join("junit.xml");
    let (code, out, _) = gate(
        dumps.path(),
        &["--allow", ALLOW, "--junit", junit.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pc-q35-7.2    REFUSED  not decided           7          0        9"),
        "{out}"
    );
    assert!(
        out.contains("pc-q35-7.2: forward refused: 0000:00:01.0/pciespscsi (0): Missing section footer for 0000:00:01.0/pciespscsi"),
        "{out}"
    );
    let junit = std::fs::read_to_string(junit).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    // forward refused, differences unexpected; backward not decided.
    assert_eq!(suite.attribute("failures"), Some("2"));
    assert_eq!(suite.attribute("skipped"), Some("1"));
}

#[test]
fn an_unknown_machine_pattern_is_refused_with_the_list() {
    let dumps = dump_dir();
    let (code, out, err) = gate(dumps.path(), &["--machines", "pc-q53-*"]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert!(
        err.contains(
            "--machines 'pc-q53-*' matches none of the 2 machine types: pc-i440fx-7.2 pc-q35-7.2"
        ),
        "{err}"
    );
    let (code, out, _) = gate(dumps.path(), &["--machines", "pc-q35-*"]);
    assert_eq!(code, 1);
    assert!(!out.contains("pc-i440fx"), "{out}");
}

#[test]
fn a_dump_that_cannot_be_read_is_trouble_and_the_rest_is_still_shown() {
    let dumps = dump_dir();
    let cut = dumps.path().join("pc-q35-7.2-new.mig");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, out, err) = gate(dumps.path(), &["--allow", ALLOW]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("pc-q35-7.2     trouble  trouble            -          -        -"),
        "{out}"
    );
    assert!(out.contains("pc-q35-7.2: trouble: "), "{out}");
    assert!(out.contains("pc-i440fx-7.2  loads    loads"), "{out}");
    assert!(
        err.contains("1 of 2 machine types could not be compared"),
        "{err}"
    );
}

fn gate_script(dumps: &Path, allow: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/ci-gate.sh"))
        .env("DUMP_DIR", dumps)
        .env("MIGDIFF", env!("CARGO_BIN_EXE_migdiff"))
        // No QEMU: the dumps are there.
        .env("OLD_QEMU", "")
        .env("NEW_QEMU", "");
    if let Some(allow) = allow {
        cmd.env("ALLOW", allow);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn ci_gate_script_passes_on_the_fixtures_and_fails_on_a_surprise() {
    let dumps = dump_dir();
    let (code, out) = gate_script(dumps.path(), None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 load both ways"), "{out}");
    let junit = std::fs::read_to_string(dumps.path().join("junit.xml")).unwrap();
    roxmltree::Document::parse(&junit).unwrap();
    assert!(dumps.path().join("report.md").exists());

    // An allow file that no longer expects the ACPI tables: the gate fails.
    let text = std::fs::read_to_string(root().join(ALLOW)).unwrap();
    let allow = dumps.path().join("surprise.allow");
    std::fs::write(&allow, text.replace("ram//rom@etc/acpi/*", "")).unwrap();
    let (code, out) = gate_script(dumps.path(), Some(&allow));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pc-i440fx-7.2: unexpected: ram//rom@etc/acpi/tables"),
        "{out}"
    );
}
