//! Ignore patterns: globs over the path as printed, `DEVICE (INSTANCE)/FIELD`, where `*`
//! also matches `/`. `mc146818rtc (0)/*` ignores a whole device, `cpu (*)/env.tsc` a field
//! of every CPU, `ram/pc.ram` one RAM block.
//!
//! Brackets are literal, not character classes: field paths are full of them
//! (`env.regs[3]`), and a path pasted from the output must match itself.
//!
//! A pattern may end in `@RANGES` to ignore only some bytes of a buffer:
//! `mc146818rtc (*)/cmos_data@0x0-0x9,0x32` masks the clock registers of the CMOS and still
//! reports a change to any other CMOS byte. Ranges are inclusive, decimal or 0x-hex. On a
//! RAM block (`ram/ppc_spapr.ram@0xfe00000-0xfe00fff`) they mask whole pages the same way.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::diff::{Change, ChangeKind, Leaf};

/// Differences that two dumps of the same stopped VM, taken seconds apart, show anyway:
/// wall-clock and timer state. Found by diffing such pairs on QEMU 7.2 and 10.x (see
/// testdata/README.md); `--no-default-ignores` turns them off.
pub const DEFAULT_IGNORES: &[&str] = &[
    // hw/rtc/mc146818rtc.c: the RTC follows the host clock even while the guest is stopped.
    "mc146818rtc (*)/base_rtc",
    "mc146818rtc (*)/last_update",
    "mc146818rtc (*)/update_timer",
    "mc146818rtc (*)/next_alarm_time",
    "mc146818rtc (*)/next_periodic_time",
    // CMOS clock registers: seconds, minutes, hours, weekday, day, month, year (0x0-0x9,
    // alarms included as they sit between them), register C (0xc: the interrupt flags the
    // clock's update cycle sets, e.g. UF one second after start) and century (0x32).
    "mc146818rtc (*)/cmos_data@0x0-0x9,0xc,0x32",
    // hw/rtc/pl031.c (Arm virt): pre_save writes the offset of the guest RTC from the host
    // clock; the subsection's copy is the same offset in whole seconds, so it flips by one
    // when a second boundary falls between the two readings.
    "pl031 (*)/tick_offset_vmstate",
    "pl031 (*)/pl031/tick-offset/tick_offset",
    // hw/rtc/goldfish_rtc.c (RISC-V virt): the same offset in nanoseconds.
    "goldfish_rtc (*)/tick_offset",
    // ppc64 pseries (QEMU 10.0, measured on `-M pseries -m 256 -S` dumped twice): the
    // timebase and the RTC offset follow the host clock; SPR 0x1d5 (HASHPKEYR) is a random
    // key set at reset; the device tree's /chosen holds a random 2-byte value and the
    // 32-byte rng-seed, in the FDT blob and in its copy in guest RAM (at the RMA's top less
    // 2 MiB: 0xfe00000 with -m 256).
    "spapr (*)/tb.guest_timebase",
    "spapr (*)/tb.time_of_the_day_ns",
    "spapr/rtc (*)/ns_offset",
    "cpu (*)/env.spr[469]",
    "spapr (*)/spapr_dtb/fdt_blob@0x3f2-0x3f3,0x400-0x41f",
    "ram/ppc_spapr.ram@0xfe00000-0xfe00fff",
    // s390x s390-ccw-virtio (QEMU 10.0, `-m 256 -S` dumped twice): the TOD clock (a
    // present byte, then the clock's high byte and low 8 bytes).
    "todclock (*)/data@0x1-0x9",
];

/// More patterns than this are refused: a glob set's memory grows with them (a million
/// took 7 GB), and real ignore and allow files hold tens.
const MAX_PATTERNS: usize = 10_000;

/// A set of ignore patterns, some limited to byte ranges.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Filter {
    set: GlobSet,
    /// Per pattern: the byte ranges `[start, end)` it masks, or None for the whole field.
    bytes: Vec<Option<Vec<(u64, u64)>>>,
}

/// A pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad pattern '{}': {}", self.pattern, self.message)
    }
}

impl std::error::Error for PatternError {}

impl Filter {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Filter, PatternError> {
        if patterns.len() > MAX_PATTERNS {
            return Err(PatternError {
                pattern: format!("({} patterns)", patterns.len()),
                message: format!(
                    "more than {MAX_PATTERNS} patterns; a glob covers many paths at once \
                     (`cpu (*)/*`), and @ranges many bytes"
                ),
            });
        }
        let mut builder = GlobSetBuilder::new();
        let mut bytes = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.as_ref();
            let (glob, ranges) = split_ranges(p);
            bytes.push(ranges);
            let glob = GlobBuilder::new(&literal_brackets(glob))
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    pattern: p.to_string(),
                    message: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| PatternError {
            pattern: format!("({} patterns together)", patterns.len()),
            message: e.to_string(),
        })?;
        Ok(Filter { set, bytes })
    }
}

/// A filter that ignores nothing.
impl Default for Filter {
    fn default() -> Filter {
        Filter {
            set: GlobSet::empty(),
            bytes: Vec::new(),
        }
    }
}

impl Filter {
    /// Whether the filter has no pattern at all.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether a whole-field pattern matches `subject` (`cpu (0)/env.tsc`).
    pub fn is_match(&self, subject: &str) -> bool {
        self.set
            .matches(subject)
            .into_iter()
            .any(|i| matches!(self.bytes.get(i), Some(None)))
    }

    /// Byte ranges `[start, end)` of `subject` masked by `@RANGES` patterns: sorted and
    /// disjoint, so a byte's membership is a binary search (`masks`).
    pub fn byte_mask(&self, subject: &str) -> Vec<(u64, u64)> {
        let mut matched = self
            .set
            .matches(subject)
            .into_iter()
            .filter_map(|i| self.bytes.get(i).and_then(Option::as_deref));
        match (matched.next(), matched.next()) {
            (None, _) => Vec::new(),
            (Some(one), None) => one.to_vec(),
            (Some(a), Some(b)) => normalize(
                a.iter()
                    .chain(b)
                    .chain(matched.flatten())
                    .copied()
                    .collect(),
            ),
        }
    }

    /// Indices of the patterns that cover a change: its path matches and, for a pattern
    /// with `@RANGES`, every byte it changes lies inside them.
    pub fn covering(&self, change: &Change) -> Vec<usize> {
        self.set
            .matches(change.subject())
            .into_iter()
            .filter(|&i| match self.bytes.get(i) {
                Some(None) => true,
                Some(Some(mask)) => match (change.kind, &change.old, &change.new) {
                    // The bytes themselves: `ranges` merges nearby runs for display, which
                    // would take in unmasked bytes that did not change (CMOS 0xa-0xb between
                    // the clock and register C).
                    (ChangeKind::Value, Some(Leaf::Bytes(old)), Some(Leaf::Bytes(new)))
                        if old.len() == new.len() =>
                    {
                        let mut changed =
                            old.iter().zip(new).enumerate().filter(|(_, (a, b))| a != b);
                        changed.all(|(i, _)| masks(mask, i as u64)) && old != new
                    }
                    (ChangeKind::Value | ChangeKind::RamPages, ..) => {
                        !change.ranges.is_empty()
                            && change
                                .ranges
                                .iter()
                                .all(|&(start, end)| covers(mask, start, end))
                    }
                    _ => false,
                },
                None => false,
            })
            .collect()
    }

    /// Whether any pattern covers the change.
    pub fn ignores(&self, change: &Change) -> bool {
        !self.covering(change).is_empty()
    }
}

/// `glob@0x0-0x9,0x32` → (`glob`, ranges); a suffix that is no range list stays part of the
/// glob (RAM block names contain `@`: `/rom@etc/acpi/tables`).
fn split_ranges(pattern: &str) -> (&str, Option<Vec<(u64, u64)>>) {
    let Some((glob, list)) = pattern.rsplit_once('@') else {
        return (pattern, None);
    };
    let number = |t: &str| match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    };
    let ranges: Option<Vec<(u64, u64)>> = list
        .split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (number(a.trim())?, number(b.trim())?);
            (a <= b).then_some((a, b.checked_add(1)?))
        })
        .collect();
    match ranges {
        Some(r) => (glob, Some(normalize(r))),
        None => (pattern, None),
    }
}

/// Ranges sorted by start, overlapping and touching ones merged.
fn normalize(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether sorted, disjoint `mask` holds byte `at`.
pub fn masks(mask: &[(u64, u64)], at: u64) -> bool {
    let i = mask.partition_point(|&(_, end)| end <= at);
    mask.get(i).is_some_and(|&(start, _)| start <= at)
}

/// Whether sorted, disjoint `mask` holds all of `[start, end)`: one range must, as touching
/// ranges are merged.
fn covers(mask: &[(u64, u64)], start: u64, end: u64) -> bool {
    let i = mask.partition_point(|&(_, e)| e <= start);
    mask.get(i).is_some_and(|&(s, e)| s <= start && end <= e)
}

fn literal_brackets(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        if matches!(c, '[' | ']') && !escaped {
            out.push('\\');
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out
}

/// Patterns from a file: one per line, `#` starts a comment, blank lines skipped.
pub fn parse_pattern_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_crosses_slashes_and_instances() {
        let f = Filter::new(&["cpu (*)/env.tsc", "mc146818rtc (0)/*"]).unwrap();
        assert!(f.is_match("cpu (1)/env.tsc"));
        assert!(!f.is_match("cpu (1)/env.tsc_aux"));
        assert!(f.is_match("mc146818rtc (0)/cmos_data[3]"));
        assert!(!f.is_match("hpet (0)/config"));
    }

    #[test]
    fn brackets_are_literal_escaped_or_not() {
        for p in ["cpu (0)/env.cr[0]", r"cpu (0)/env.cr\[0\]"] {
            let f = Filter::new(&[p]).unwrap();
            assert!(f.is_match("cpu (0)/env.cr[0]"), "{p}");
            assert!(!f.is_match("cpu (0)/env.cr0"), "{p}");
        }
        let f = Filter::new(&["cpu (0)/env.regs[*]"]).unwrap();
        assert!(f.is_match("cpu (0)/env.regs[15]"));
    }

    #[test]
    fn byte_ranges_mask_only_those_bytes() {
        let f = Filter::new(&["mc146818rtc (*)/cmos_data@0x0-0x9,0x32"]).unwrap();
        assert!(!f.is_match("mc146818rtc (0)/cmos_data"));
        assert_eq!(
            f.byte_mask("mc146818rtc (0)/cmos_data"),
            [(0, 10), (0x32, 0x33)]
        );
        let change = |ranges: Vec<(u64, u64)>| Change {
            ranges,
            ..Change::new("mc146818rtc (0)", "cmos_data", ChangeKind::Value)
        };
        assert!(f.ignores(&change(vec![(0, 1), (9, 10)])));
        assert!(!f.ignores(&change(vec![(0, 1), (0x34, 0x35)])));
        // The changed bytes decide, not the display ranges that merge nearby runs: seconds
        // (0x0) and register C (0xc) changed, 0xa-0xb between them did not.
        let f = Filter::new(&["mc146818rtc (*)/cmos_data@0x0-0x9,0xc,0x32"]).unwrap();
        let bytes = |changed: &[usize]| {
            let (old, mut new) = (vec![0u8; 128], vec![0u8; 128]);
            for &i in changed {
                new[i] = 0x10;
            }
            Change {
                ranges: vec![(0, 13)],
                old: Some(Leaf::Bytes(old)),
                new: Some(Leaf::Bytes(new)),
                ..Change::new("mc146818rtc (0)", "cmos_data", ChangeKind::Value)
            }
        };
        assert!(f.ignores(&bytes(&[0x0, 0xc])));
        assert!(!f.ignores(&bytes(&[0x0, 0xb, 0xc])));
        // '@' in a RAM block name is not a range list.
        let f = Filter::new(&["ram//rom@etc/acpi/tables"]).unwrap();
        assert!(f.is_match("ram//rom@etc/acpi/tables"));
    }

    #[test]
    fn many_ranges_are_merged_into_sorted_disjoint_ones() {
        let list: Vec<String> = (0..100_000u64).map(|b| (b * 2).to_string()).collect();
        let f = Filter::new(&[format!("d (0)/buf@{},1-199999", list.join(","))]).unwrap();
        assert_eq!(f.byte_mask("d (0)/buf"), [(0, 200_000)]);
        let change = Change {
            ranges: vec![(5, 199_999)],
            ..Change::new("d (0)", "buf", ChangeKind::Value)
        };
        assert!(f.ignores(&change));
        let mask = [(0, 10), (0x32, 0x33)];
        assert!(masks(&mask, 9) && masks(&mask, 0x32));
        assert!(!masks(&mask, 10) && !masks(&mask, 0x31) && !masks(&mask, 0x33));
    }

    #[test]
    fn file_comments_and_blanks() {
        let text = "# noise\ntimer (0)/*  # clocks\n\n  cpu (*)/env.tsc\n";
        assert_eq!(parse_pattern_file(text), ["timer (0)/*", "cpu (*)/env.tsc"]);
    }

    #[test]
    fn too_many_patterns_are_refused_before_building() {
        let patterns: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("d{i} (0)/*")).collect();
        let err = Filter::new(&patterns).unwrap_err();
        assert!(err.message.contains("more than 10000 patterns"), "{err}");
    }

    #[test]
    fn bad_glob_is_an_error() {
        assert!(Filter::new(&["cpu (0)/{env.cr"]).is_err());
    }
}
