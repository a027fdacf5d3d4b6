//! Stream formats beyond plain precopy RAM, on real dumps (testdata/README.md says how each
//! was made): XBZRLE pages rebuilt as QEMU rebuilds them, mapped-ram files, the pseries and
//! s390x iterative sections, dirty bitmaps, and a vmdesc whose length holds a 0x06 byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::StreamBuilder;
use migdiff::{compare, ChangeKind, Config, Filter, RamBlock, UNKNOWN};
use migdiff::{Dump, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The stream of a fixture, decompressed when it is committed compressed.
fn stream(name: &str) -> Vec<u8> {
    migdiff::Input::open(&fixture(name))
        .unwrap()
        .stream()
        .to_vec()
}

fn decode(name: &str) -> Dump {
    migdiff::decode(&stream(name), None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn block<'d>(dump: &'d Dump, name: &str) -> &'d RamBlock {
    dump.ram.iter().find(|b| b.name == name).unwrap()
}

fn default_config() -> Config {
    let mut config = Config::default();
    config.filter = Filter::new(migdiff::DEFAULT_IGNORES).unwrap();
    config
}

fn migdiff(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// pc10-xbzrle-live went through 24 dirty syncs, 2494 of its pages as XBZRLE deltas (some
/// over earlier deltas). Each pc.ram page migdiff rebuilds has the digest of the page QEMU
/// itself rebuilt when it loaded the stream (pmemsave of the destination).
#[test]
fn xbzrle_pages_are_rebuilt_as_qemu_rebuilds_them() {
    let dump = decode("pc10-xbzrle-live.mig.zst");
    assert!(dump.warnings.is_empty(), "{:?}", dump.warnings);
    assert!(
        dump.stream.ram_chunks > 20,
        "{} chunks",
        dump.stream.ram_chunks
    );
    let ram = block(&dump, "pc.ram");
    assert_eq!(ram.unknown_pages, 0);
    let text = std::fs::read_to_string(fixture("pc10-xbzrle-live.pmem.xxh3")).unwrap();
    let mut pages = 0;
    let mut data_pages = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (start, count) = (
            f[0].parse::<usize>().unwrap(),
            f[1].parse::<usize>().unwrap(),
        );
        let want = u64::from_str_radix(f[2], 16).unwrap();
        for i in start..start + count {
            assert_eq!(ram.digest(i), want, "pc.ram page {i:#x}");
            pages += 1;
        }
        if want != block(&dump, "pc.ram").digest(1) {
            data_pages += count;
        }
    }
    assert_eq!(pages, 8192);
    // The 128 pages the guest keeps rewriting are among them.
    assert!(data_pages >= 128, "{data_pages}");
}

/// The same state, loaded by QEMU and sent again with every page plain: no RAM difference
/// (before XBZRLE pages were rebuilt, 104 identical pages were reported as differing).
#[test]
fn an_xbzrle_dump_and_the_same_ram_resent_plain_have_no_ram_difference() {
    let live = decode("pc10-xbzrle-live.mig.zst");
    let resent = decode("pc10-xbzrle-resent.mig.zst");
    let cmp = compare(&live, &resent, &default_config());
    let ram: Vec<_> = cmp
        .findings
        .iter()
        .filter(|f| f.change.device == "ram")
        .collect();
    assert!(ram.is_empty(), "{ram:?}");
    assert_eq!(cmp.counts.unknown_pages, 0);
    // What differs is the run state and an IDE retry field, nothing of RAM.
    assert_eq!(cmp.counts.ram, 0);
    assert!(cmp.counts.values > 0);
}

/// A RAM section for `pages` pages of block "pc.ram": the block list, then `records`
/// (page records as QEMU writes them), each chunk ended by EOS.
fn ram_stream(pages: u64, chunks: &[Vec<u8>]) -> Vec<u8> {
    let len = pages * 4096;
    let mut b = StreamBuilder::new("pc")
        .raw(&[0x01, 0, 0, 0, 0, 3])
        .raw(b"ram");
    b = b.raw(&0u32.to_be_bytes()).raw(&4u32.to_be_bytes());
    b = b.raw(&(len | 0x04).to_be_bytes()).raw(b"\x06pc.ram");
    b = b
        .raw(&len.to_be_bytes())
        .raw(&0x10u64.to_be_bytes())
        .footer(0);
    for chunk in chunks {
        b = b.raw(&[0x02, 0, 0, 0, 0]).raw(chunk);
        b = b.raw(&0x10u64.to_be_bytes()).footer(0);
    }
    b.finish()
}

fn page_record(page: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = ((page * 4096) | 0x08).to_be_bytes().to_vec();
    out.extend_from_slice(b"\x06pc.ram");
    out.extend_from_slice(bytes);
    out
}

/// An XBZRLE record changing bytes 0..4 to `new`: zero run 0, data run 4.
fn xbzrle_record(page: u64, new: [u8; 4]) -> Vec<u8> {
    let mut out = ((page * 4096) | 0x40).to_be_bytes().to_vec();
    out.extend_from_slice(b"\x06pc.ram");
    out.extend_from_slice(&[0x01, 0, 6, 0, 4]);
    out.extend_from_slice(&new);
    out
}

/// Page 1 gets an XBZRLE delta with no earlier version in the stream: its content is
/// unknown, counted neither as same nor as different, and said so in the verdict, the JSON
/// and a warning.
#[test]
fn a_page_without_a_base_for_its_delta_is_unknown_neither_same_nor_different() {
    let dir = tempfile::tempdir().unwrap();
    let mut v0 = vec![0x11u8; 4096];
    let xbzrle = ram_stream(
        2,
        &[
            page_record(0, &v0),
            [xbzrle_record(1, *b"abcd"), xbzrle_record(0, *b"wxyz")].concat(),
        ],
    );
    v0[..4].copy_from_slice(b"wxyz");
    let plain = |page1: u8| {
        ram_stream(
            2,
            &[[page_record(0, &v0), page_record(1, &[page1; 4096])].concat()],
        )
    };
    let paths: Vec<String> = [("x.mig", xbzrle), ("p.mig", plain(7)), ("q.mig", plain(8))]
        .into_iter()
        .map(|(name, data)| {
            let path = dir.path().join(name);
            std::fs::write(&path, data).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();

    let dump = migdiff::decode(&std::fs::read(&paths[0]).unwrap(), None).unwrap();
    let ram = block(&dump, "pc.ram");
    assert_eq!(
        (ram.digest(1), ram.unknown_pages, ram.data_pages),
        (UNKNOWN, 1, 1)
    );

    // Page 0 was rebuilt and matches; page 1 is neither.
    let (code, out, err) = migdiff(&[&paths[0], &paths[1]]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("no differences; 1 RAM page unknown"), "{out}");
    assert!(
        err.contains("RAM block 'pc.ram': 1 page of unknown content")
            && err.contains("not sent before it"),
        "{err}"
    );
    let (_, json, _) = migdiff(&["--format", "json", &paths[0], &paths[1]]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["counts"]["unknown_pages"], 1);
    assert_eq!(json["counts"]["ram"], 0);

    // Between two plain dumps page 1 differs; against the XBZRLE one it stays unknown.
    let (code, out, _) = migdiff(&["--format", "summary", &paths[1], &paths[2]]);
    assert_eq!(code, Some(1));
    assert!(out.contains("1 RAM"), "{out}");
    let (code, out, _) = migdiff(&[&paths[2], &paths[0]]);
    assert_eq!(code, Some(0), "{out}");
    // Ignoring the block ignores its unknown pages too.
    let (_, out, _) = migdiff(&["--ignore", "ram/pc.ram", &paths[0], &paths[1]]);
    assert!(!out.contains("unknown"), "{out}");
}

/// mapped-ram: the pages at fixed offsets of a file: migration, with and without multifd,
/// are the RAM of the same stopped guest sent as a plain stream.
#[test]
fn mapped_ram_files_hold_the_ram_a_plain_stream_holds() {
    let plain = decode("pc10-stopped.mig");
    for name in ["pc10-mapped-ram.mig.zst", "pc10-mapped-ram-multifd.mig.zst"] {
        let mapped = decode(name);
        assert_eq!(mapped.capabilities, ["mapped-ram"], "{name}");
        assert_eq!(mapped.ram.len(), plain.ram.len(), "{name}");
        let cmp = compare(&plain, &mapped, &default_config());
        let ram: Vec<_> = cmp
            .findings
            .iter()
            .filter(|f| f.change.device == "ram")
            .collect();
        assert!(ram.is_empty(), "{name}: {ram:?}");
        // Only the capability differs in what counts.
        assert_eq!(cmp.counts.total(), 1, "{name}: {:?}", cmp.counts);
        assert_eq!(
            block(&mapped, "pc.ram").data_pages,
            block(&plain, "pc.ram").data_pages
        );
    }
}

/// What two dumps of one stopped pseries or s390x VM differ in is ignored by default.
#[test]
fn pseries_and_s390x_stopped_vms_dumped_twice_differ_in_nothing_by_default() {
    for (a, b) in [
        ("pseries-stopped.mig.zst", "pseries-stopped-again.mig.zst"),
        ("s390x-stopped.mig.zst", "s390x-stopped-again.mig.zst"),
    ] {
        let (a, b) = (fixture(a), fixture(b));
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let (code, out, err) = migdiff(&[a, b]);
        assert_eq!(code, Some(0), "{a}: {out}{err}");
        assert!(!err.contains("warning"), "{err}");
        let (code, _, _) = migdiff(&["--no-default-ignores", a, b]);
        assert_eq!(code, Some(1), "{a}");
    }
}

/// `section_id`'s last PART or END chunk that holds only `empty` (its end marker), as
/// the offset where the chunk's data starts.
fn empty_chunk(data: &[u8], section_id: u32, empty: &[u8]) -> usize {
    let mut pattern = section_id.to_be_bytes().to_vec();
    pattern.extend_from_slice(empty);
    pattern.push(0x7e);
    pattern.extend_from_slice(&section_id.to_be_bytes());
    let at = data
        .windows(pattern.len())
        .rposition(|w| w == pattern.as_slice())
        .expect("an empty chunk");
    assert!(matches!(data[at - 1], 0x02 | 0x03));
    at + 4
}

fn section_id(dump: &Dump, idstr: &str) -> u32 {
    dump.devices
        .iter()
        .find(|d| d.idstr == idstr)
        .unwrap()
        .section_id
}

/// An HPTE the stream sets shows in the diff as a value that appeared.
#[test]
fn a_changed_hpte_shows_in_the_diff() {
    let data = stream("pseries-stopped.mig.zst");
    let old = migdiff::decode(&data, None).unwrap();
    let id = section_id(&old, "spapr/htab");
    // The guest never ran: no valid HPTE, chunks of a zero header and the end marker.
    let at = empty_chunk(&data, id, &[0; 12]) + 4;
    let mut chunk = 5u32.to_be_bytes().to_vec();
    chunk.extend_from_slice(&[0, 1, 0, 0]);
    chunk.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0, 0x93]);
    let mut new_data = data.clone();
    new_data.splice(at..at, chunk);
    let new = migdiff::decode(&new_data, None).unwrap();
    let cmp = compare(&old, &new, &default_config());
    let counted: Vec<_> = cmp.counted().collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    let c = counted[0];
    assert_eq!(
        (c.device.as_str(), c.path.as_str()),
        ("spapr/htab (0)", "hpte_0x00000005")
    );
    assert_eq!(c.kind, ChangeKind::Value);
    assert_eq!(c.old.as_ref().unwrap().to_string(), "absent");
    // And the other way round, it went away.
    let back = compare(&new, &old, &default_config());
    assert_eq!(
        back.counted()
            .next()
            .unwrap()
            .new
            .as_ref()
            .unwrap()
            .to_string(),
        "absent"
    );
}

/// Storage attributes the stream sends show in the diff, by window of 4096 pages.
#[test]
fn changed_storage_attributes_show_in_the_diff() {
    let data = stream("s390x-stopped.mig.zst");
    let old = migdiff::decode(&data, None).unwrap();
    let id = section_id(&old, "s390-storage_attributes");
    let eos = 1u64.to_be_bytes();
    let at = empty_chunk(&data, id, &eos);
    // Pages 0x1000 and 0x1001: MORE, 2 attribute bytes.
    let mut record = ((0x1000u64 << 12) | 0x02).to_be_bytes().to_vec();
    record.extend_from_slice(&2u64.to_be_bytes());
    record.extend_from_slice(&[0x00, 0x03]);
    let mut new_data = data.clone();
    new_data.splice(at..at, record);
    let new = migdiff::decode(&new_data, None).unwrap();
    let cmp = compare(&old, &new, &default_config());
    let counted: Vec<_> = cmp.counted().collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(counted[0].path, "pages_0x00001000");
    let attrs = new.devices.iter().find(|d| d.section_id == id).unwrap();
    assert_eq!(attrs.body.fields[0].value, Value::Bytes(vec![0, 3]));
}

/// The dirty-bitmaps capability puts the iterative dirty-bitmap section into an exec:
/// migration: bm0 had 192 KiB written at 1 MiB under it (granularity 64 KiB: bits 16-18).
#[test]
fn dirty_bitmaps_decode_with_their_bits() {
    let dump = decode("pc10-dirty-bitmap.mig.zst");
    assert!(dump.warnings.is_empty(), "{:?}", dump.warnings);
    let dbm = dump
        .devices
        .iter()
        .find(|d| d.idstr == "dirty-bitmap")
        .unwrap();
    let field = |name: &str| {
        &dbm.body
            .fields
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .value
    };
    assert_eq!(
        field("disk0/bm0.granularity"),
        &Value::Uint {
            value: 65536,
            size: 4
        }
    );
    // DIRTY_BITMAP_MIG_START_FLAG_ENABLED | _PERSISTENT; bm1 is not persistent.
    assert_eq!(field("disk0/bm0.flags"), &Value::Uint { value: 3, size: 1 });
    assert_eq!(field("disk0/bm1.flags"), &Value::Uint { value: 1, size: 1 });
    let Value::Bytes(bits) = field("disk0/bm0.bits_0x0000000000+0x8000") else {
        panic!("bm0 bits")
    };
    assert_eq!(bits[..4], [0, 0, 0x07, 0]);
    assert!(bits[4..].iter().all(|&b| b == 0));
    assert_eq!(
        field("disk0/bm1.bits_0x0000000000+0x8000"),
        &Value::Text("all clear".into())
    );
    assert_eq!(dump.stream.commands[0].name, "POSTCOPY_ADVISE");
}

/// A real dump whose vmdesc is 0xcd06 bytes long: the byte before its JSON is 0x06.
#[test]
fn a_vmdesc_whose_length_holds_a_0x06_byte_is_found() {
    let data = stream("q35-10-vmdesc-0xcd06.mig");
    let json_start = data.len() - 0xcd06;
    assert_eq!(data[json_start - 1], 0x06);
    assert_eq!(data[json_start - 5], 0x06);
    let dump = migdiff::decode(&data, None).unwrap();
    assert_eq!(dump.stream.vmdesc_len, Some(0xcd06));
    assert!(dump
        .devices
        .iter()
        .any(|d| d.idstr.ends_with("/i6300esb_wdt")));
    assert!(dump.warnings.is_empty(), "{:?}", dump.warnings);
}

/// Damaged XBZRLE streams (bytes changed in the RAM records, where deltas and their
/// headers are) decode or fail with an error: never a panic, never unbounded work.
#[test]
fn damaged_xbzrle_streams_never_panic() {
    let data = stream("pc10-xbzrle-live.mig.zst");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // The RAM section takes most of the stream: damage its second half, past the first pass.
    let (from, to) = (data.len() / 3, data.len() * 9 / 10);
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let mut damaged = data.clone();
        for _ in 0..1 + next() % 4 {
            let at = from + (next() as usize) % (to - from);
            damaged[at] = next() as u8;
        }
        let _ = migdiff::decode(&damaged, None);
    }
    assert!(started.elapsed().as_secs() < 120, "{:?}", started.elapsed());
}
