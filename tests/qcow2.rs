//! qcow2 internal snapshots (`IMAGE@TAG`): the VM state HMP `savevm` stores in a real
//! image, and synthetic images that QEMU would not write (scattered clusters, zero
//! clusters, version 2, and every table entry corrupted in turn).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use migdiff::{Container, Input};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// testdata/pc10-savevm.qcow2.zst decompressed into `dir` (images are read in place, so
/// they must be regular files).
fn savevm_image(dir: &Path) -> PathBuf {
    let compressed = std::fs::read(testdata("pc10-savevm.qcow2.zst")).unwrap();
    let path = dir.join("disk.qcow2");
    std::fs::write(&path, zstd::decode_all(&compressed[..]).unwrap()).unwrap();
    path
}

fn spec(image: &Path, tag: &str) -> PathBuf {
    PathBuf::from(format!("{}@{tag}", image.display()))
}

fn migdiff(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn open_err(spec: &Path) -> String {
    match Input::open(spec) {
        Ok(_) => panic!("{} opened", spec.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn savevm_state_is_byte_for_byte_the_stream_migrate_wrote_right_after() {
    let dir = tempfile::tempdir().unwrap();
    let image = savevm_image(dir.path());
    let migrated = std::fs::read(testdata("pc10-savevm-a.mig")).unwrap();
    let input = Input::open(&spec(&image, "a")).unwrap();
    assert_eq!(input.stream(), &migrated[..]);
    // 16 MiB disk, 64 KiB clusters: one L1 entry covers 512 MiB, where the VM state starts.
    assert_eq!(
        input.container,
        Container::Qcow2Snapshot {
            id: "1".into(),
            name: "a".into(),
            vm_state_offset: 0x2000_0000,
        }
    );
    // By id too.
    let by_id = Input::open(&spec(&image, "2")).unwrap();
    assert!(matches!(&by_id.container, Container::Qcow2Snapshot { name, .. } if name == "b"));
}

#[test]
fn snapshot_diffs_like_a_dump_against_the_migrated_stream_and_the_later_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let image = savevm_image(dir.path());
    let (a, b) = (spec(&image, "a"), spec(&image, "b"));
    let same = migdiff(&[&a, &testdata("pc10-savevm-a.mig")]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert!(
        stderr.contains("VM state of qcow2 internal snapshot 'a' (id 1)"),
        "{stderr}"
    );

    // b was saved after 1 s of SeaBIOS: the CPU, the timers and RAM moved on.
    let out = migdiff(&[Path::new("--format"), Path::new("summary"), &a, &b]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));

    let shown = migdiff(&[Path::new("show"), &b]);
    assert_eq!(shown.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("machine = pc-i440fx-10.0"), "{shown}");

    let check = migdiff(&[
        Path::new("check"),
        &a,
        Path::new("--against"),
        &testdata("pc10-savevm-a.mig"),
    ]);
    assert_eq!(check.status.code(), Some(0), "{check:?}");

    // b into the VM that saved a: ide's identify_data is sent in b only (a field_exists
    // test follows identify_set), which two dumps cannot tell from a layout change. QEMU
    // loads it; migdiff must not say refused.
    let check = migdiff(&[Path::new("check"), &b, Path::new("--against"), &a]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("identify_data (buffer, 512 bytes) only in old at the same version"),
        "{stdout}"
    );
}

#[test]
fn unknown_tag_and_bare_image_list_the_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let image = savevm_image(dir.path());
    let listed = "it has: id 1 'a' (395846 bytes of VM state), id 2 'b' (658650 bytes of VM state)";
    let err = open_err(&spec(&image, "c"));
    assert!(
        err.contains("no internal snapshot 'c'") && err.contains(listed),
        "{err}"
    );
    let err = open_err(&image);
    assert!(
        err.contains("name one of its internal snapshots as IMAGE@TAG") && err.contains(listed),
        "{err}"
    );
    let out = migdiff(&[Path::new("show"), &spec(&image, "c")]);
    assert_eq!(out.status.code(), Some(2));
    // Through a pipe there is nothing to read in place.
    let piped = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["show", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = piped.stdin.as_ref().unwrap();
    // The head is all migdiff reads; it may close the pipe before the rest is written.
    let _ = std::io::Write::write_all(&mut stdin, &std::fs::read(&image).unwrap());
    let out = piped.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("standard input is a qcow2 disk image"),
        "{stderr}"
    );
}

#[test]
fn a_path_with_at_that_exists_is_a_file_not_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("dump.mig@a");
    std::fs::copy(testdata("pc10-stopped.mig"), &raw).unwrap();
    assert_eq!(Input::open(&raw).unwrap().container, Container::Raw);
    // An image whose own name holds `@`, and a tag that does.
    let image = savevm_image(dir.path());
    let odd = dir.path().join("d@isk.qcow2");
    std::fs::rename(&image, &odd).unwrap();
    assert!(Input::open(&spec(&odd, "a")).is_ok());
    let err = open_err(&spec(&odd, "a@b"));
    assert!(err.contains("no internal snapshot 'a@b'"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Synthetic images: 1 KiB clusters, so an L2 table holds 128 entries and one L1 entry
// covers 128 KiB; the 128 KiB disk puts the VM state at guest offset 0x20000 (L1 index 1).
// (Not the smallest, 512 bytes: table entries hold offsets in 512-byte units, so with
// 512-byte clusters no entry could be misaligned.)

const CLUSTER: usize = 1024;
const CLUSTER_BITS: u32 = 10;
const DISK: u64 = 0x20000;

/// What to build, and what to break.
#[derive(Clone)]
struct Synthetic {
    version: u32,
    vm_state: Vec<u8>,
    /// Data clusters written in reverse order, so no two neighbours are adjacent in the file.
    scattered: bool,
    /// VM state clusters left unallocated (L2 entry 0).
    unallocated: Vec<usize>,
    /// VM state clusters marked with the zero flag (and an offset, as preallocation leaves).
    zero_flag: Vec<usize>,
    incompatible: u64,
    crypt_method: u32,
}

/// Where the built image keeps its tables, for tests that corrupt them.
struct Layout {
    snapshot_entry: usize,
    l1: usize,
    l2: Vec<usize>,
}

impl Synthetic {
    fn new(version: u32, vm_state: Vec<u8>) -> Self {
        Synthetic {
            version,
            vm_state,
            scattered: false,
            unallocated: Vec::new(),
            zero_flag: Vec::new(),
            incompatible: 0,
            crypt_method: 0,
        }
    }

    fn build(&self) -> (Vec<u8>, Layout) {
        let per_l2 = CLUSTER / 8;
        let clusters = self.vm_state.len().div_ceil(CLUSTER);
        let tables = clusters.div_ceil(per_l2);
        // Cluster 0 header, 1 snapshot table, 2 L1 table, then L2 tables, then data.
        let (table, l1) = (CLUSTER, 2 * CLUSTER);
        let l2: Vec<usize> = (0..tables).map(|t| (3 + t) * CLUSTER).collect();
        let data = (3 + tables) * CLUSTER;
        let mut image = vec![0u8; data + clusters * CLUSTER];
        let put = |image: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            image[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(&mut image, 0, b"QFI\xfb");
        put(&mut image, 4, &self.version.to_be_bytes());
        put(&mut image, 20, &CLUSTER_BITS.to_be_bytes());
        put(&mut image, 24, &DISK.to_be_bytes());
        put(&mut image, 32, &self.crypt_method.to_be_bytes());
        put(&mut image, 60, &1u32.to_be_bytes());
        put(&mut image, 64, &(table as u64).to_be_bytes());
        if self.version >= 3 {
            put(&mut image, 72, &self.incompatible.to_be_bytes());
            put(&mut image, 100, &104u32.to_be_bytes());
        }
        // The snapshot: version 2 entries without extra data (32-bit vm_state_size, disk
        // size from the header), version 3 with vm_state_size_large and disk_size.
        let l1_size = 1 + tables as u32;
        let extra: Vec<u8> = if self.version >= 3 {
            [self.vm_state.len() as u64, DISK]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect()
        } else {
            Vec::new()
        };
        put(&mut image, table, &(l1 as u64).to_be_bytes());
        put(&mut image, table + 8, &l1_size.to_be_bytes());
        put(&mut image, table + 12, &1u16.to_be_bytes());
        put(&mut image, table + 14, &1u16.to_be_bytes());
        put(
            &mut image,
            table + 32,
            &(self.vm_state.len() as u32).to_be_bytes(),
        );
        put(&mut image, table + 36, &(extra.len() as u32).to_be_bytes());
        put(&mut image, table + 40, &extra);
        put(&mut image, table + 40 + extra.len(), b"1a");
        for (t, &at) in l2.iter().enumerate() {
            put(
                &mut image,
                l1 + 8 * (1 + t),
                &(at as u64 | 1 << 63).to_be_bytes(),
            );
        }
        for (i, chunk) in self.vm_state.chunks(CLUSTER).enumerate() {
            let slot = if self.scattered { clusters - 1 - i } else { i };
            let host = data + slot * CLUSTER;
            put(&mut image, host, chunk);
            let entry = if self.unallocated.contains(&i) {
                0
            } else if self.zero_flag.contains(&i) {
                host as u64 | 1
            } else {
                host as u64 | 1 << 63
            };
            put(
                &mut image,
                l2[i / per_l2] + 8 * (i % per_l2),
                &entry.to_be_bytes(),
            );
        }
        let layout = Layout {
            snapshot_entry: table,
            l1,
            l2,
        };
        (image, layout)
    }
}

/// Writes `image` into `dir` and opens its snapshot `a`.
fn open(dir: &Path, image: &[u8]) -> std::io::Result<Input> {
    let path = dir.join("synthetic.qcow2");
    std::fs::write(&path, image).unwrap();
    Input::open(&spec(&path, "a"))
}

fn open_synthetic_err(dir: &Path, image: &[u8]) -> String {
    match open(dir, image) {
        Ok(_) => panic!("the image opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn scattered_clusters_reassemble_the_stream_in_versions_2_and_3() {
    let dir = tempfile::tempdir().unwrap();
    let stream = std::fs::read(testdata("pc10-stopped.mig")).unwrap();
    let expected = migdiff::decode(&stream, None).unwrap();
    for version in [2, 3] {
        let mut synthetic = Synthetic::new(version, stream.clone());
        synthetic.scattered = true;
        let input = open(dir.path(), &synthetic.build().0).unwrap();
        assert_eq!(input.stream(), &stream[..], "version {version}");
        assert_eq!(migdiff::decode(input.stream(), None).unwrap(), expected);
    }
}

#[test]
fn unallocated_and_zero_flagged_clusters_read_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    // Six clusters and a half of 0xaa, 0xbb, ...; clusters 1 and 4 are stored in the file
    // with their bytes but not mapped (1) or flagged zero (4), so they must read as zeros.
    let state: Vec<u8> = (0..CLUSTER * 6 + 100)
        .map(|i| 0xaa + (i / CLUSTER) as u8)
        .collect();
    let mut synthetic = Synthetic::new(3, state.clone());
    synthetic.unallocated = vec![1];
    synthetic.zero_flag = vec![4];
    let input = open(dir.path(), &synthetic.build().0).unwrap();
    let mut expected = state.clone();
    expected[CLUSTER..2 * CLUSTER].fill(0);
    expected[4 * CLUSTER..5 * CLUSTER].fill(0);
    assert_eq!(input.stream(), &expected[..]);
    // Version 2 has no zero flag: bit 0 is ignored and the stored cluster is read.
    synthetic.version = 2;
    let input = open(dir.path(), &synthetic.build().0).unwrap();
    expected[4 * CLUSTER..5 * CLUSTER].copy_from_slice(&state[4 * CLUSTER..5 * CLUSTER]);
    assert_eq!(input.stream(), &expected[..]);
}

fn small() -> Synthetic {
    Synthetic::new(3, vec![0x42; CLUSTER * 140])
}

fn poke(image: &mut [u8], at: usize, value: u64) {
    image[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn compressed_cluster_is_named_with_its_l2_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut image, layout) = small().build();
    // VM state cluster 129: the second L2 table's entry 1.
    let at = layout.l2[1] + 8;
    poke(&mut image, at, 1 << 62 | 0x4000);
    let err = open_synthetic_err(dir.path(), &image);
    let want = format!(
        "VM state byte 0x20400 (guest offset 0x40400): the cluster is compressed (L2 entry at byte {at:#x}"
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn corrupt_table_entries_are_named_with_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (image, layout) = small().build();
    let len = image.len() as u64;
    let cases: Vec<(&str, usize, u64, String)> = vec![
        (
            "L2 entry not aligned",
            layout.l2[0] + 16,
            0x1200 | 1 << 63,
            format!(
                "VM state byte 0x800 (guest offset 0x20800): L2 entry at byte {:#x} \
                 (0x8000000000001200) points to data at 0x1200, not aligned",
                layout.l2[0] + 16
            ),
        ),
        (
            "L2 entry past the end",
            layout.l2[0],
            (len + 0x10000) | 1 << 63,
            format!("points to data at {:#x}, past the end of the image ({len} bytes)", len + 0x10000),
        ),
        (
            "L1 entry not aligned",
            layout.l1 + 8,
            0x1200 | 1 << 63,
            format!(
                "L1 entry at byte {:#x} (0x8000000000001200) points to an L2 table at 0x1200, not aligned",
                layout.l1 + 8
            ),
        ),
        (
            "L1 entry past the end",
            layout.l1 + 16,
            (len + 0x1000) | 1 << 63,
            format!(
                "L1 entry at byte {:#x} points to an L2 table at {:#x}: qcow2 image truncated",
                layout.l1 + 16,
                len + 0x1000
            ),
        ),
        (
            "L1 table past the end",
            layout.snapshot_entry,
            len + 0x1000,
            format!("L1 table entry at byte {:#x} needs 8 bytes", len + 0x1000 + 8),
        ),
        (
            "snapshot table past the end",
            64,
            len,
            format!("snapshot table entry 0 l1_table_offset at byte {len:#x} needs 8 bytes"),
        ),
    ];
    for (name, at, value, want) in cases {
        let mut bad = image.clone();
        poke(&mut bad, at, value);
        let err = open_synthetic_err(dir.path(), &bad);
        assert!(err.contains(&want), "{name}: {err}\nwanted: {want}");
    }
    // An L1 table too short for the VM state (l1_size is a be32 at entry + 8).
    let mut bad = image.clone();
    bad[layout.snapshot_entry + 8..layout.snapshot_entry + 12].copy_from_slice(&2u32.to_be_bytes());
    let err = open_synthetic_err(dir.path(), &bad);
    assert!(
        err.contains(
            "needs L1 entries up to 2, and its L1 table (l1_size at byte 0x408) has only 2"
        ),
        "{err}"
    );
}

#[test]
fn features_that_move_or_hide_clusters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, want) in [
        (
            1 << 2,
            "external data file (incompatible feature bit 2 at byte 0x48)",
        ),
        (
            1 << 4,
            "extended L2 entries (subclusters; incompatible feature bit 4 at byte 0x48)",
        ),
        (1 << 9, "unknown incompatible features 0x200 (at byte 0x48)"),
    ] {
        let mut synthetic = small();
        synthetic.incompatible = bits;
        let err = open_synthetic_err(dir.path(), &synthetic.build().0);
        assert!(err.contains(want), "{bits:#x}: {err}");
    }
    // Dirty, corrupt and a non-zlib compression type do not change uncompressed clusters.
    let mut synthetic = small();
    synthetic.incompatible = 0b1011;
    assert!(open(dir.path(), &synthetic.build().0).is_ok());

    let mut synthetic = small();
    synthetic.crypt_method = 2;
    let err = open_synthetic_err(dir.path(), &synthetic.build().0);
    assert!(
        err.contains("encrypted (crypt_method 2, LUKS, at byte 0x20)"),
        "{err}"
    );
}

#[test]
fn an_unallocated_l2_table_reads_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let (mut image, layout) = small().build();
    // The second L2 table (VM state clusters 128..140) unmapped in the L1 table.
    poke(&mut image, layout.l1 + 16, 0);
    let input = open(dir.path(), &image).unwrap();
    let mut expected = vec![0x42; CLUSTER * 140];
    expected[CLUSTER * 128..].fill(0);
    assert_eq!(input.stream(), &expected[..]);
}

#[test]
fn tables_that_reuse_one_cluster_cannot_claim_more_than_the_image_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut image, layout) = small().build();
    // Every L1 entry to the first L2 table, every L2 entry to one data cluster, and 16 MiB of
    // VM state claimed: a 145 KiB file that would expand to 16 MiB.
    let one_cluster = u64::from_be_bytes(image[layout.l2[0]..layout.l2[0] + 8].try_into().unwrap());
    for i in 0..CLUSTER / 8 {
        poke(&mut image, layout.l2[0] + 8 * i, one_cluster);
        if i > 0 {
            poke(
                &mut image,
                layout.l1 + 8 * i,
                (layout.l2[0] as u64) | 1 << 63,
            );
        }
    }
    let entry = layout.snapshot_entry;
    image[entry + 8..entry + 12].copy_from_slice(&128u32.to_be_bytes());
    poke(&mut image, entry + 40, 127 << 17);
    let err = open_synthetic_err(dir.path(), &image);
    let want = format!(
        "more than the whole image ({} bytes): they reference the same clusters again",
        image.len()
    );
    assert!(err.contains(&want), "{err}");
}

/// Every header field, every word of the snapshot entry and a few table entries, set in
/// turn to values at the edges: opening fails with an error about the data (or succeeds),
/// never a panic, an overflow or an OS error.
#[test]
fn extreme_values_in_any_field_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (image, layout) = small().build();
    let entry = layout.snapshot_entry;
    let fields = (0..104)
        .step_by(4)
        .chain((entry..entry + 56).step_by(4))
        .chain([
            layout.l1 + 8,
            layout.l1 + 16,
            layout.l2[0],
            layout.l2[1] + 8,
        ]);
    let values = [
        0,
        u64::MAX,
        1 << 63,
        u64::from(u32::MAX),
        0xffff_ffff_ffff_fc00,
    ];
    let mut refused = 0;
    for at in fields {
        for value in values {
            let mut bad = image.clone();
            poke(&mut bad, at, value);
            if let Err(e) = open(dir.path(), &bad) {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData,
                    "{at:#x} = {value:#x}: {e}"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 100, "{refused}");
}

#[test]
fn disk_only_snapshot_says_it_has_no_vm_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut synthetic = small();
    synthetic.vm_state.clear();
    let err = open_synthetic_err(dir.path(), &synthetic.build().0);
    assert!(err.contains("snapshot 'a' (id 1) has no VM state"), "{err}");
}
