//! `migdiff strip`: the rewritten stream keeps every byte but RAM page contents.

use std::path::PathBuf;
use std::process::Command;

use migdiff::{compare, decode, strip, Config, Filter, Stripped, DEFAULT_KEEP};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(path).unwrap()
}

fn stripped(data: &[u8], keep: &[&str]) -> (Vec<u8>, Stripped) {
    let mut out = Vec::new();
    let done = strip(data, None, &Filter::new(keep).unwrap(), &mut out).unwrap();
    (out, done)
}

#[test]
fn device_state_survives_and_only_kept_pages_hold_data() {
    // A running guest: SeaBIOS wrote RAM, ROM blocks hold firmware and ACPI tables.
    let data = fixture("pc10-running.mig");
    let original = decode(&data, None).unwrap();
    let (out, done) = stripped(&data, DEFAULT_KEEP);
    assert_eq!(done.bytes, out.len() as u64);
    let rewritten = decode(&out, None).unwrap();

    // Every device section and the stream's metadata are untouched (byte offsets move:
    // the pages before them got shorter).
    assert_eq!(rewritten.devices.len(), original.devices.len());
    for (a, b) in original.devices.iter().zip(&rewritten.devices) {
        assert_eq!(
            (&a.idstr, a.instance_id, a.len),
            (&b.idstr, b.instance_id, b.len)
        );
    }
    assert_eq!(rewritten.machine, original.machine);
    assert_eq!(
        rewritten.stream.commands.len(),
        original.stream.commands.len()
    );
    let cmp = compare(&original, &rewritten, &Config::default());
    assert!(cmp.counted().all(|c| c.device == "ram"), "only RAM differs");

    // Same blocks and sizes; data only in pc.ram's ROM window, digests as before there.
    assert_eq!(original.ram.len(), rewritten.ram.len());
    let data_pages: u64 = original.ram.iter().map(|b| b.data_pages).sum();
    assert_eq!(done.zeroed + done.kept, data_pages);
    assert!(done.kept > 0 && done.zeroed > 0, "{done:?}");
    for (a, b) in original.ram.iter().zip(&rewritten.ram) {
        assert_eq!((&a.name, a.used_length), (&b.name, b.used_length));
        for (page, (old, new)) in a.digests.iter().zip(&b.digests).enumerate() {
            let in_window = a.name == "pc.ram" && (0xc0..=0xff).contains(&page);
            if in_window {
                assert_eq!(old, new, "{} page {page:#x} kept", a.name);
            }
        }
        if a.name != "pc.ram" {
            assert_eq!(b.data_pages, 0, "{} has no data left", b.name);
        }
    }
}

#[test]
fn without_keep_patterns_no_page_holds_data() {
    let data = fixture("pc10-running.mig");
    let (out, done) = stripped(&data, &[]);
    assert_eq!(done.kept, 0);
    let rewritten = decode(&out, None).unwrap();
    assert!(rewritten.ram.iter().all(|b| b.data_pages == 0));
    // Each record lost its 4096-byte page and gained one fill byte.
    assert_eq!(out.len(), data.len() - done.zeroed as usize * 4095);
}

#[test]
fn a_whole_block_can_be_kept() {
    let data = fixture("pc10-running.mig");
    let (out, _) = stripped(&data, &["ram/pc.bios"]);
    let rewritten = decode(&out, None).unwrap();
    let original = decode(&data, None).unwrap();
    let bios = |d: &migdiff::Dump| d.ram.iter().find(|b| b.name == "pc.bios").unwrap().clone();
    assert_eq!(bios(&rewritten).digests, bios(&original).digests);
}

#[test]
fn stripping_twice_changes_nothing() {
    let (once, _) = stripped(&fixture("pc10-running.mig"), DEFAULT_KEEP);
    let (twice, done) = stripped(&once, DEFAULT_KEEP);
    assert_eq!(done.zeroed, 0);
    assert_eq!(once, twice);
}

#[test]
fn the_command_writes_a_stream_and_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.mig");
    let run = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["strip", "testdata/pc10-running.mig.gz", "-o"])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    // No such fixture: a clear error, exit 2.
    assert_eq!(run.status.code(), Some(2));
    let run = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["strip", "testdata/pc10-stopped.mig.zst", "-o"])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("RAM pages written as zero pages"),
        "{stderr}"
    );
    // A compressed input gives a plain stream with the same device state.
    let plain = decode(&std::fs::read(&out).unwrap(), None).unwrap();
    let original = decode(&fixture("pc10-stopped.mig"), None).unwrap();
    assert_eq!(plain.devices.len(), original.devices.len());
    assert!(plain
        .ram
        .iter()
        .all(|b| b.data_pages == 0 || b.name == "pc.ram"));

    let json = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["strip", "testdata/vmstate-pc72-qemu10.json", "-o", "-"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(2));
    assert!(String::from_utf8(json.stderr)
        .unwrap()
        .contains("strip takes a migration stream"));
}

#[test]
fn a_mapped_ram_stream_is_refused_not_left_with_its_pages() {
    let input = migdiff::Input::open(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/pc10-mapped-ram.mig.zst"),
    )
    .unwrap();
    let err = strip(
        input.stream(),
        None,
        &Filter::new(DEFAULT_KEEP).unwrap(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, migdiff::StripError::MappedRam), "{err}");
}
