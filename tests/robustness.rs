//! Never panic on any input: real fixtures cut at many offsets and with bytes flipped at
//! seeded random places. Each case must decode or fail with a typed error whose offset lies
//! inside the input; what decodes is then diffed and rendered against the original, so
//! every later stage sees the damaged tree too.
//!
//! `MIGDIFF_ROBUSTNESS_CASES=N` runs N flip cases per fixture instead of the default.

mod common;

use migdiff::{check as replay, compare, write_tree, Config, Destination, Dump};

const FIXTURES: &[&str] = &[
    "pc10-stopped.mig",
    "pc72-qemu72.mig",
    "q35-10-xhci-tablet.mig",
    "pc10-ignore-shared.mig",
    "pc10-virtio-net.mig",
];

fn load(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(path).unwrap()
}

/// xorshift64*: a fixed, dependency-free sequence, so every failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The destination that made `dump`.
fn made_by(dump: &Dump) -> Destination<'_> {
    let mut destination = Destination::default();
    destination.dump = Some(dump);
    destination
}

/// Decodes `data`; checks the error's offset; exercises diff and render on success.
fn check(label: &str, data: &[u8], original: &Dump) {
    match migdiff::decode(data, None) {
        Ok(dump) => {
            let cmp = compare(original, &dump, &Config::default());
            write_tree(&mut std::io::sink(), &dump).unwrap();
            assert!(cmp.findings.len() < 1_000_000, "{label}");
            // The loader replay walks the damaged dump against the intact one both ways.
            let verdict = replay(&dump, made_by(original));
            assert_eq!(verdict.loads, verdict.reasons.is_empty(), "{label}");
            let _ = replay(original, made_by(&dump));
        }
        Err(err) => {
            assert!(
                err.offset <= data.len() as u64,
                "{label}: offset {} beyond {} bytes: {err}",
                err.offset,
                data.len()
            );
            assert!(!err.to_string().is_empty());
        }
    }
}

/// Offsets worth cutting at: the first bytes, every section boundary, the EOF byte and
/// the vmdesc marker, each with its neighbours, plus an even spread.
fn cut_points(data: &[u8], dump: &Dump, spread: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..40).collect();
    let marker = data.iter().rposition(|&b| b == 0x06).unwrap();
    let mut anchors = vec![marker - 1, marker, marker + 5, marker + 100, data.len() - 1];
    for d in &dump.devices {
        anchors.push(d.offset as usize);
        anchors.push((d.offset + d.len) as usize - 5);
    }
    for a in anchors {
        cuts.extend(a.saturating_sub(3)..(a + 4).min(data.len()));
    }
    cuts.extend((0..spread).map(|i| i * data.len() / spread));
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn truncated_anywhere_is_an_error_never_a_panic() {
    for name in FIXTURES {
        let data = load(name);
        let original = migdiff::decode(&data, None).unwrap();
        for cut in cut_points(&data, &original, 300) {
            let cut_data = &data[..cut];
            // A truncated file has lost its vmdesc: it must be an error.
            match migdiff::decode(cut_data, None) {
                Ok(_) => panic!("{name} cut at {cut} decoded"),
                Err(err) => assert!(err.offset <= cut as u64, "{name} cut at {cut}: {err}"),
            }
        }
    }
}

#[test]
fn stream_cut_short_before_its_own_vmdesc_is_an_error_at_the_cut() {
    // Cut the device data but keep the trailer: the description no longer fits the bytes.
    for name in FIXTURES {
        let data = load(name);
        let original = migdiff::decode(&data, None).unwrap();
        let marker = data.iter().rposition(|&b| b == 0x06).unwrap();
        let trailer = &data[marker..];
        for cut in cut_points(&data[..marker], &original, 200)
            .into_iter()
            .filter(|&c| c < marker)
        {
            let mut spliced = data[..cut].to_vec();
            spliced.extend_from_slice(trailer);
            let err = migdiff::decode(&spliced, None).expect_err("the EOF byte is gone");
            assert!(err.offset <= cut as u64, "{name} spliced at {cut}: {err}");
        }
    }
}

#[test]
fn flipped_bytes_decode_or_fail_cleanly() {
    let cases: usize = std::env::var("MIGDIFF_ROBUSTNESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for (seed, name) in FIXTURES.iter().enumerate() {
        let data = load(name);
        let original = migdiff::decode(&data, None).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed as u64);
        for case in 0..cases {
            let mut damaged = data.clone();
            for _ in 0..1 + rng.below(4) {
                // Half the flips land in device data and the vmdesc, where parsing is richest.
                let at = if rng.below(2) == 0 {
                    rng.below(damaged.len())
                } else {
                    damaged.len() - 1 - rng.below(damaged.len() / 3)
                };
                damaged[at] ^= 1 << rng.below(8);
            }
            check(&format!("{name} case {case}"), &damaged, &original);
        }
    }
}

// Budgets on what is read before decoding (src/input.rs): each input below is built to
// exceed one, and must end with exit status 2 and a message naming the input, the offset
// and the budget, quickly, having copied no more than the budget.

mod budgets {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    use migdiff::{Budget, Input};

    /// The most an ignore or allow file may hold (`TEXT_LIMIT` in src/input.rs).
    const TEXT_LIMIT: u64 = 4 << 20;

    /// Whatever is refused here is refused within this long (each case takes well under a
    /// second on a quiet machine; copying 10 GiB would take a minute).
    const FAST: Duration = Duration::from_secs(20);

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    /// `migdiff ARGS`, timed; asserts exit status 2 and returns stderr.
    fn fails(args: &[&std::ffi::OsStr]) -> String {
        let started = Instant::now();
        let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_migdiff"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            started.elapsed() < FAST,
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(stderr.starts_with("migdiff: error: "), "{stderr}");
        stderr
    }

    /// A QEMU stream's first bytes, `noise` incompressible bytes (so the compressed file is
    /// large enough for the ratio, not the floor, to set the budget), then `zeros` zero
    /// bytes, written through `encoder` a MiB at a time.
    fn bomb(mut encoder: impl Write, noise: usize, zeros: u64) {
        encoder.write_all(b"QEVM\0\0\0\x03").unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..noise)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        encoder.write_all(&noise).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..zeros >> 20 {
            encoder.write_all(&chunk).unwrap();
        }
    }

    /// The error of a compressed bomb at `path`: the file, the byte where the budget ran out
    /// (512 times the compressed size), and the budget.
    fn assert_bomb_refused(path: &Path, container: &str) {
        let compressed = std::fs::metadata(path).unwrap().len();
        let budget = Budget::default();
        let limit = budget.inflated(compressed);
        assert_eq!(limit, compressed * 512, "the ratio sets this budget");
        let fixture = fixture("pc10-stopped.mig");
        let err = fails(&[path.as_os_str(), fixture.as_os_str()]);
        for expected in [
            format!(
                "reading {}: {container} expands past its budget",
                path.display()
            ),
            format!("decompressed byte {limit:#x}"),
            format!("of {compressed} compressed bytes"),
            format!(
                "({limit} bytes: 512x the compressed size, at least 64 MiB and at most 16 GiB)"
            ),
        ] {
            assert!(err.contains(&expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn zstd_bomb_stops_at_512_times_its_size() {
        // 256 KiB of noise and 4 GiB of zeros: ~400 KiB, a budget of ~200 MiB.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.mig.zst");
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = zstd::stream::write::Encoder::new(file, 1).unwrap();
        bomb(&mut encoder, 256 << 10, 4 << 30);
        encoder.finish().unwrap();
        assert_bomb_refused(&path, "zstd-compressed stream");
    }

    #[test]
    fn gzip_bomb_stops_at_512_times_its_size() {
        // Deflate expands at most ~1032x: 256 MiB of zeros is ~250 KiB.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.mig.gz");
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::best());
        bomb(&mut encoder, 0, 256 << 20);
        encoder.finish().unwrap();
        assert_bomb_refused(&path, "gzip-compressed stream");
    }

    #[test]
    fn compressed_data_that_is_no_stream_is_refused_before_decompressing() {
        // 64 GiB of zeros in 2 MiB of zstd: refused on its first bytes, nothing copied.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeros.zst");
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = zstd::stream::write::Encoder::new(file, 1).unwrap();
        encoder.write_all(&vec![0u8; 8 << 20]).unwrap();
        let mut encoder = encoder.finish().unwrap();
        // Frames concatenate: repeat the 8 MiB frame 8191 times more.
        let frame = std::fs::read(&path).unwrap();
        for _ in 1..8192 {
            encoder.write_all(&frame).unwrap();
        }
        drop(encoder);
        let err = fails(&[path.as_os_str(), fixture("pc10-stopped.mig").as_os_str()]);
        assert!(
            err.contains("zstd-compressed stream holds no migration stream: its decompressed data starts with 00 00 00 00 00 00 00 00 at byte 0"),
            "{err}"
        );
    }

    #[test]
    fn dev_zero_as_input_and_desc_is_refused_at_byte_0() {
        let fixture = fixture("pc10-stopped.mig");
        let zero = std::ffi::OsStr::new("/dev/zero");
        for args in [
            vec![zero, fixture.as_os_str()],
            vec![fixture.as_os_str(), zero],
            vec![
                "--desc".as_ref(),
                zero,
                fixture.as_os_str(),
                fixture.as_os_str(),
            ],
            vec!["show".as_ref(), zero],
        ] {
            let err = fails(&args);
            assert!(
                err.contains("reading /dev/zero: not a migration stream: the device starts with 00 00 00 00 00 00 00 00 at byte 0x0"),
                "{err}"
            );
        }
    }

    #[test]
    fn dev_zero_on_standard_input_is_refused_at_byte_0() {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
            .arg("-")
            .arg(fixture("pc10-stopped.mig"))
            .stdin(std::fs::File::open("/dev/zero").unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(started.elapsed() < FAST);
        assert!(
            err.contains(
                "reading -: not a migration stream: the standard input starts with 00 00 00 00"
            ),
            "{err}"
        );
    }

    #[test]
    fn dev_zero_as_ignore_or_allow_file_stops_at_the_text_limit() {
        let fixture = fixture("pc10-stopped.mig");
        for (flag, what) in [("--ignore-file", "ignore file"), ("--allow", "allow file")] {
            let err = fails(&[
                flag.as_ref(),
                "/dev/zero".as_ref(),
                fixture.as_os_str(),
                fixture.as_os_str(),
            ]);
            let expected = format!(
                "reading {what} /dev/zero: still going at byte {TEXT_LIMIT:#x} (a device or FIFO that never ends?): {what}s are limited to 4 MiB"
            );
            assert!(err.contains(&expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn ignore_file_over_the_limit_is_refused_by_its_size() {
        // A million patterns, ~31 MB: refused before a byte of it is read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.ignore");
        let mut text = String::new();
        for i in 0..1_000_000 {
            text.push_str(&format!("cpu ({i})/env.field{i}\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let fixture = fixture("pc10-stopped.mig");
        let err = fails(&[
            "--ignore-file".as_ref(),
            path.as_os_str(),
            fixture.as_os_str(),
            fixture.as_os_str(),
        ]);
        let expected = format!(
            "reading ignore file {}: {} bytes (",
            path.display(),
            text.len()
        );
        assert!(err.contains(&expected), "{expected:?} not in {err}");
        assert!(
            err.contains("ignore files are limited to 4 MiB") && err.contains("a million-line one"),
            "{err}"
        );
        // Just under the size limit is read, and then held to the pattern limit (10,000):
        // a glob set of 150,000 patterns takes a gigabyte, or fails to build.
        let run = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Command::new(env!("CARGO_BIN_EXE_migdiff"))
                .arg("--ignore-file")
                .arg(&path)
                .args([&fixture, &fixture])
                .output()
                .unwrap()
        };
        text.truncate(TEXT_LIMIT as usize);
        text.truncate(text.rfind('\n').unwrap() + 1);
        let out = run(&text);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("more than 10000 patterns") && err.len() < 1000,
            "{err}"
        );
        let ten_thousand: String = text
            .lines()
            .take(10_000 - migdiff::DEFAULT_IGNORES.len())
            .map(|l| format!("{l}\n"))
            .collect();
        let out = run(&ten_thousand);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A FIFO fed by a thread with `head` then zeros until the reader goes away.
    fn endless_fifo(dir: &Path, head: &'static [u8]) -> (PathBuf, std::thread::JoinHandle<()>) {
        let path = dir.join("fifo");
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut fifo = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            let zeros = vec![0u8; 1 << 16];
            // Ends with EPIPE once the reader has closed its end.
            if fifo.write_all(head).is_err() {
                return;
            }
            while fifo.write_all(&zeros).is_ok() {}
        });
        (path, writer)
    }

    #[test]
    fn endless_fifo_stops_at_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = endless_fifo(dir.path(), b"QEVM\0\0\0\x03");
        let mut budget = Budget::default();
        budget.pipe = 8 << 20;
        let started = Instant::now();
        let err = Input::open_with(&path, &budget)
            .err()
            .expect("the FIFO never ends")
            .to_string();
        assert!(started.elapsed() < FAST);
        assert!(
            err.contains("the FIFO goes on past byte 0x800000: more than the 8 MiB budget (8388608 bytes) for standard input, FIFOs and devices"),
            "{err}"
        );
        writer.join().unwrap();
    }

    #[test]
    fn fifo_of_zeros_is_refused_at_byte_0() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = endless_fifo(dir.path(), b"");
        let err = fails(&[path.as_os_str(), fixture("pc10-stopped.mig").as_os_str()]);
        assert!(
            err.contains("not a migration stream: the FIFO starts with 00 00 00 00"),
            "{err}"
        );
        writer.join().unwrap();
    }

    #[test]
    fn budget_rule() {
        let b = Budget::default();
        assert_eq!(
            (b.pipe, b.ratio, b.floor, b.cap),
            (2 << 30, 512, 64 << 20, 16 << 30)
        );
        assert_eq!(b.inflated(1000), 64 << 20);
        assert_eq!(b.inflated(1 << 20), 512 << 20);
        assert_eq!(b.inflated(1 << 30), 16 << 30);
        assert_eq!(b.inflated(u64::MAX), 16 << 30);
    }
}

/// The work budgets of one decode, each with an input built to exceed it: a clear error
/// naming the offset and the budget, quickly, never an abort.
mod decode_budgets {
    use super::common::StreamBuilder;
    use migdiff::ErrorKind;

    /// Arrays of structs that take no bytes, nested: each array alone stays under the
    /// per-array bound (65,536), together they would be 65,536^depth nodes.
    fn nested_empty_arrays(depth: usize) -> String {
        let mut field = r#"{"name": "leaf", "array_len": 65536, "type": "struct", "struct": {"vmsd_name": "leaf", "version": 1, "fields": []}, "size": 0}"#.to_string();
        for level in 0..depth {
            field = format!(
                r#"{{"name": "level{level}", "array_len": 65536, "type": "struct", "struct": {{"vmsd_name": "l{level}", "version": 1, "fields": [{field}]}}, "size": 0}}"#
            );
        }
        field
    }

    #[test]
    fn nested_arrays_of_empty_structs_exceed_the_node_budget() {
        let data = StreamBuilder::new("pc-i440fx-10.0")
            .device("nest", 0, &nested_empty_arrays(2), &[])
            .finish();
        let err = migdiff::decode(&data, None).expect_err("4 * 10^14 nodes");
        assert!(
            matches!(err.kind, ErrorKind::OverBudget { what: "nodes", .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("work budget of one decode"), "{text}");
        assert!(text.contains("'nest' instance 0"), "{text}");
        assert!(err.offset <= data.len() as u64);
    }

    #[test]
    fn the_budget_is_per_decode_not_per_section() {
        // Many sections, each under the budget alone.
        let mut builder = StreamBuilder::new("pc-i440fx-10.0");
        for i in 0..40 {
            builder = builder.device(&format!("nest{i}"), 0, &nested_empty_arrays(0), &[]);
        }
        let data = builder.finish();
        let err = migdiff::decode(&data, None).expect_err("40 * 65,536 nodes from a few KB");
        assert!(matches!(err.kind, ErrorKind::OverBudget { .. }), "{err}");
    }

    /// An export is input too: the pages its RAM blocks claim count against one budget for
    /// the whole export, not 2^28 per block.
    #[test]
    fn an_export_claiming_too_many_pages_across_blocks_is_refused() {
        let block = |name: &str| {
            format!(
                r#"{{"name": "{name}", "used_length": 1099511627776, "addr": null,
                     "pages": [{{"start": 0, "count": 33554432, "digest": "0000000000000002"}}],
                     "zero_pages": 0, "data_pages": 0, "opaque_pages": 0}}"#
            )
        };
        let export = format!(
            r#"{{"migdiff_export": 1, "migdiff": "0.1.0",
                "source": {{"path": "x", "size": 0, "sha256": "", "container": "raw stream"}},
                "dump": {{"machine": null, "capabilities": [], "page_size": 4096, "devices": [],
                  "ram": [{}, {}, {}],
                  "stream": {{"size": 0, "footers": true, "commands": [], "ram_chunks": 0,
                              "vmdesc_len": null}},
                  "warnings": []}}}}"#,
            block("a"),
            block("b"),
            block("c")
        );
        let err = migdiff::read_export(export.as_bytes())
            .expect_err("3 * 2^25 pages, each block alone within the budget");
        let text = err.to_string();
        assert!(
            text.contains("more than") && text.contains("pages, the work budget"),
            "{text}"
        );
    }

    #[test]
    fn an_export_of_an_unknown_layout_version_is_refused() {
        let err = migdiff::read_export(br#"{"migdiff_export": 7, "migdiff": "9.0.0", "dump": {}}"#)
            .expect_err("layout 7");
        assert_eq!(
            err.to_string(),
            format!(
                "export layout version 7 (written by migdiff 9.0.0); this migdiff ({}) reads versions 1 to 2",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
