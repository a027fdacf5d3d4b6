//! `--schema-only` on `-dump-vmstate` files, one edit per kind of problem QEMU's
//! vmstate-static-checker.py reports (its own test data, dump1.json against dump2.json,
//! holds one of each): each is a difference with its wire impact, and only what breaks
//! forward migration fails by default. What changes nothing on the wire (a QOM rename, a
//! field rename) is not a problem.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(testdata().join("vmstate-pc72-qemu10.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `migdiff --schema-only [extra] REFERENCE EDITED`: exit status, stdout, stderr.
fn schema_diff(edit: impl FnOnce(&mut Value), extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut edited = reference();
    edit(&mut edited);
    let path = dir.path().join("edited.json");
    std::fs::write(&path, edited.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["--schema-only"])
        .args(extra)
        .arg(testdata().join("vmstate-pc72-qemu10.json"))
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Every difference (`--fail-on any`) as JSON changes.
fn changes(edit: impl FnOnce(&mut Value)) -> Vec<Value> {
    let (_, out, err) = schema_diff(edit, &["--fail-on", "any", "--format", "json"]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
    doc["changes"].as_array().unwrap().clone()
}

fn hpet_fields(j: &mut Value) -> &mut Vec<Value> {
    j["hpet"]["Description"]["Fields"].as_array_mut().unwrap()
}

#[test]
fn a_file_against_itself_and_a_qom_rename_are_nothing() {
    let (code, out, _) = schema_diff(|_| {}, &[]);
    assert_eq!((code, out.as_str()), (0, ""));
    // Classes are keyed by the vmsd name their sections carry, not by QOM type name.
    let (code, out, _) = schema_diff(
        |j| {
            let hpet = j.as_object_mut().unwrap().remove("hpet").unwrap();
            j["hpet-renamed"] = hpet;
        },
        &[],
    );
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn a_lower_section_version_breaks_forward() {
    // checker: 'Section "X" version error: 2 > 1'
    let (code, out, _) = schema_diff(|j| j["hpet"]["version_id"] = json!(1), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("schema  hpet (0): version 2 -> 1  [breaks forward: savevm: unsupported version 2 for 'hpet' v1"), "{out}");
}

#[test]
fn a_minimum_version_above_the_old_version_breaks_forward() {
    // checker: 'minimum version error: 1 < 2'; QEMU refuses only what the old QEMU sends.
    let (code, out, _) = schema_diff(
        |j| {
            j["hpet"]["version_id"] = json!(4);
            j["hpet"]["Description"]["version_id"] = json!(4);
            j["hpet"]["Description"]["minimum_version_id"] = json!(3);
        },
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hpet: incoming version_id 2 is too old for local minimum version_id  3"),
        "{out}"
    );
    // Raised, but still accepting the old version: loads forward.
    let (code, out, _) = schema_diff(
        |j| {
            j["hpet"]["version_id"] = json!(4);
            j["hpet"]["Description"]["version_id"] = json!(4);
        },
        &[],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_field_of_another_size_or_removed_breaks_at_the_same_version() {
    // checker: 'Field "x" size mismatch: 8 , 4' and 'expected field "x", while dest has no
    // further fields'.
    let changes = changes(|j| hpet_fields(j)[0]["size"] = json!(4));
    let config = changes.iter().find(|c| c["path"] == "config").unwrap();
    assert_eq!(config["kind"], "type_changed");
    assert_eq!(config["wire"]["forward"], "breaks");
    let changes = changes_of_removed_last_field();
    let removed = changes
        .iter()
        .find(|c| c["kind"] == "field_removed")
        .unwrap();
    assert_eq!(removed["device"], "hpet (0)");
    assert_eq!(removed["wire"]["forward"], "breaks");
}

fn changes_of_removed_last_field() -> Vec<Value> {
    changes(|j| {
        hpet_fields(j).pop();
    })
}

#[test]
fn a_field_renamed_in_place_is_identical_on_the_wire() {
    // checker: 'expected field "usbsts", got "usbsts_pending"'
    let changes = changes(|j| hpet_fields(j)[1]["field"] = json!("isr_renamed"));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["kind"], "field_renamed");
    assert_eq!(changes[0]["wire"]["forward"], "identical");
}

#[test]
fn a_missing_subsection_is_listed_to_check_and_a_malformed_class_skipped() {
    // checker: 'Subsection "x" not found' and 'Entry "Description" missing'.
    let (code, out, err) = schema_diff(
        |j| {
            let subs = j["PIIX4_PM"]["Description"]["Subsections"]
                .as_array_mut()
                .unwrap();
            subs.retain(|s| s["name"] != "piix4_pm/memhp");
            j["hpet"].as_object_mut().unwrap().remove("Description");
        },
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        err.contains("class hpet: no \"Description\"; skipped"),
        "{err}"
    );
    assert!(out.contains("check   piix4_pm (0)/piix4_pm/memhp: subsection only in old  [forward undecided: loads only if the destination knows subsection 'piix4_pm/memhp'"), "{out}");
    assert!(out.contains("check   hpet (0): only in old"), "{out}");
}
