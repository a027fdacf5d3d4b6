//! Never panic on any input: real fixtures cut at many offsets and with bytes flipped at
//! seeded random places. Each case must decode or fail with a typed error whose offset lies
//! inside the input; what decodes is then diffed and rendered against the original, so
//! every later stage sees the damaged tree too.
//!
//! `MIGDIFF_ROBUSTNESS_CASES=N` runs N flip cases per fixture instead of the default.

use migdiff::compare::{compare, Config};
use migdiff::render::document::{document, View};
use migdiff::{stream, Dump};

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

/// Decodes `data`; checks the error's offset; exercises diff and render on success.
fn check(label: &str, data: &[u8], original: &Dump) {
    match stream::decode(data, None) {
        Ok(dump) => {
            let cmp = compare(original, &dump, &Config::default());
            let _ = document(&dump, View::all());
            assert!(cmp.findings.len() < 1_000_000, "{label}");
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
        let original = stream::decode(&data, None).unwrap();
        for cut in cut_points(&data, &original, 300) {
            let cut_data = &data[..cut];
            // A truncated file has lost its vmdesc: it must be an error.
            match stream::decode(cut_data, None) {
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
        let original = stream::decode(&data, None).unwrap();
        let marker = data.iter().rposition(|&b| b == 0x06).unwrap();
        let trailer = &data[marker..];
        for cut in cut_points(&data[..marker], &original, 200)
            .into_iter()
            .filter(|&c| c < marker)
        {
            let mut spliced = data[..cut].to_vec();
            spliced.extend_from_slice(trailer);
            let err = stream::decode(&spliced, None).expect_err("the EOF byte is gone");
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
        let original = stream::decode(&data, None).unwrap();
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
