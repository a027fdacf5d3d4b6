//! Notes above the unified diff, the `--format summary` table, and the `--format json`
//! document of a diff.

use std::io::{self, Write};

use serde::Serialize;

use super::{count, Paint, Style};
use crate::compare::{Comparison, Counts, Disposition, Finding};
use crate::diff::{Change, ChangeClass, ChangeKind, Leaf, Load, Shape};
use crate::gate::{AllowList, AllowRule};

/// One line: `12 differences: 2 schema, 8 values, 1 device, 1 RAM; 5 ignored`.
pub fn verdict(counts: &Counts) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (counts.stream, "stream"),
        (counts.devices, "device presence"),
        (counts.schema, "schema"),
        (counts.values, "value"),
        (counts.ram, "RAM"),
    ] {
        match (n, what) {
            (0, _) => {}
            (n, "value") => parts.push(count(n, what)),
            (n, _) => parts.push(format!("{n} {what}")),
        }
    }
    let head = match counts.total() {
        0 => "no differences".to_string(),
        n => format!("{}: {}", count(n, "difference"), parts.join(", ")),
    };
    let mut tail = Vec::new();
    if counts.breaking > 0 {
        tail.push(format!("{} break forward migration", counts.breaking));
    }
    for (n, what) in [
        (counts.ignored, "ignored"),
        (counts.allowed, "allowed"),
        (counts.tolerated, "not breaking"),
    ] {
        if n > 0 {
            tail.push(format!("{n} {what}"));
        }
    }
    if counts.stale_rules > 0 {
        tail.push(count(counts.stale_rules, "stale allow rule"));
    }
    match counts.unknown_pages {
        0 => {}
        1 => tail.push("1 RAM page unknown".into()),
        n => tail.push(format!("{n} RAM pages unknown")),
    }
    if tail.is_empty() {
        head
    } else {
        format!("{head}; {}", tail.join(", "))
    }
}

fn text(leaf: &Option<Leaf>) -> String {
    leaf.as_ref().map(Leaf::to_string).unwrap_or_default()
}

/// `buffer, 66 bytes`, or nothing.
fn shape(shape: &Option<Shape>) -> String {
    shape.as_ref().map(Shape::to_string).unwrap_or_default()
}

/// Describes one change on one line.
pub fn describe(change: &Change) -> String {
    let at = crate::diff::subject(&change.device, &change.path);
    let (old, new) = (text(&change.old), text(&change.new));
    match change.kind {
        ChangeKind::DeviceAdded => format!("{at}: only in new ({new})"),
        ChangeKind::DeviceRemoved => format!("{at}: only in old ({old})"),
        ChangeKind::VersionChanged => format!("{at}: version {old} -> {new}"),
        ChangeKind::FieldAdded => format!(
            "{at}: field added ({}{})",
            shape(&change.new_type),
            value_suffix(&change.new)
        ),
        ChangeKind::FieldRemoved => format!(
            "{at}: field removed ({}{})",
            shape(&change.old_type),
            value_suffix(&change.old)
        ),
        ChangeKind::FieldRenamed => format!(
            "{at}: renamed from '{}'",
            change.renamed_from.as_deref().unwrap_or("")
        ),
        ChangeKind::TypeChanged => {
            let of = |s: &Option<Shape>| {
                s.as_ref()
                    .map(|s| format!("{} of {}", s.type_name, count(s.len, "byte")))
                    .unwrap_or_default()
            };
            format!("{at}: {} -> {}", of(&change.old_type), of(&change.new_type))
        }
        ChangeKind::SubsectionAdded => format!("{at}: subsection only in new"),
        ChangeKind::SubsectionRemoved => format!("{at}: subsection only in old"),
        ChangeKind::RamBlockAdded => format!("{at}: RAM block only in new ({new})"),
        ChangeKind::RamBlockRemoved => format!("{at}: RAM block only in old ({old})"),
        ChangeKind::RamBlockResized => format!("{at}: RAM block resized {old} -> {new}"),
        ChangeKind::RamBlockMoved => {
            format!("{at}: RAM block at guest-physical {old} -> {new}")
        }
        ChangeKind::RamPages => {
            let pages = change.pages.unwrap_or(crate::diff::PageCount {
                changed: 0,
                total: 0,
                page_size: 0,
                unknown: 0,
            });
            let unknown = match pages.unknown {
                0 => String::new(),
                n => format!(" ({n} unknown, compared neither way)"),
            };
            let (noun, verb) = match (pages.total, pages.changed) {
                (1, _) => ("page", "differs"),
                (_, 1) => ("pages", "differs"),
                _ => ("pages", "differ"),
            };
            format!(
                "{at}: {} of {} {noun} {verb}, at offsets {}{unknown}",
                pages.changed,
                pages.total,
                byte_ranges(&change.ranges)
            )
        }
        _ => format!("{at}: {old} -> {new}"),
    }
}

/// ` = 0x01` after a field's shape; nothing for a value-less (schema-only) field or a long
/// buffer, whose value text only repeats its size.
fn value_suffix(value: &Option<Leaf>) -> String {
    match value {
        Some(Leaf::Shape { .. }) | None => String::new(),
        Some(Leaf::Bytes(b)) if b.len() > super::INLINE_BYTES => String::new(),
        Some(leaf) => format!(" = {leaf}"),
    }
}

/// `  [identical on the wire]`, `  [breaks forward: WHY]`: what a change does to loading;
/// nothing for a plain state change.
pub fn wire_note(change: &Change) -> String {
    let wire = &change.wire;
    let directions = |load: Load| -> Vec<&str> {
        [("forward", wire.forward), ("backward", wire.backward)]
            .into_iter()
            .filter(|(_, l)| *l == load)
            .map(|(d, _)| d)
            .collect()
    };
    let label = match wire.worst() {
        Load::Loads => return String::new(),
        Load::Identical => "identical on the wire".to_string(),
        Load::Breaks => format!("breaks {}", directions(Load::Breaks).join(" and ")),
        Load::Undecided => format!("{} undecided", directions(Load::Undecided).join(" and ")),
    };
    if wire.why.is_empty() || wire.worst() == Load::Identical {
        format!("  [{label}]")
    } else {
        format!("  [{label}: {}]", wire.why)
    }
}

/// `0x0-0x1fff, 0x5000-0x5fff`: inclusive ends, as people write memory ranges.
fn byte_ranges(ranges: &[(u64, u64)]) -> String {
    const SHOWN: usize = 8;
    let mut parts: Vec<String> = ranges
        .iter()
        .take(SHOWN)
        .map(|&(s, e)| format!("{s:#x}-{:#x}", e.saturating_sub(1)))
        .collect();
    if ranges.len() > SHOWN {
        parts.push(format!("and {} more", count(ranges.len() - SHOWN, "range")));
    }
    parts.join(", ")
}

/// Notes about a comparison, each with its tag: every counted change that is not a plain
/// value change (tagged by class, with its wire impact), value changes migdiff can explain
/// (all value changes when an allow list gates the comparison: every unexpected change is
/// listed), then what the allow list allowed, its stale rules, and what was tolerated.
pub fn notes(cmp: &Comparison, allow: Option<&AllowList>) -> Vec<(&'static str, String)> {
    let mut notes = Vec::new();
    let counted = || {
        cmp.findings
            .iter()
            .filter(|f| f.counted())
            .map(|f| &f.change)
    };
    for change in counted().filter(|c| c.class != ChangeClass::Value) {
        notes.push((
            class_name(change.class),
            format!("{}{}", describe(change), wire_note(change)),
        ));
    }
    for change in counted().filter(|c| c.class == ChangeClass::Value) {
        match &change.meaning {
            Some(meaning) => notes.push(("value", format!("{}  ({meaning})", describe(change)))),
            None if allow.is_some() => notes.push(("value", describe(change))),
            None => {}
        }
    }
    let rule = |i: usize| allow.and_then(|a| a.rules.get(i));
    for f in &cmp.findings {
        match f.disposition {
            Disposition::Allowed { rule: i } => {
                let why = rule(i).map(rule_label).unwrap_or_default();
                notes.push(("allowed", format!("{} [{why}]", describe(&f.change))));
            }
            // Of what does not break forward, what might is worth a line; what is
            // identical or harmless is in the counts.
            Disposition::Tolerated if f.change.wire.forward == Load::Undecided => notes.push((
                "check",
                format!("{}{}", describe(&f.change), wire_note(&f.change)),
            )),
            _ => {}
        }
    }
    for stale in &cmp.stale_rules {
        if let Some(r) = rule(stale.rule) {
            let seen = match stale.seen.as_slice() {
                [] => String::new(),
                seen => format!("; its pattern matched {}", seen.join(", ")),
            };
            notes.push((
                "stale",
                format!("{} [{}]: allowed nothing{seen}", r.pattern, rule_label(r)),
            ));
        }
    }
    notes
}

/// The lines printed above the unified diff: the verdict, then the [`notes`].
pub fn write_preamble(
    w: &mut dyn Write,
    notes: &[(&str, String)],
    counts: &Counts,
    style: Style,
) -> io::Result<()> {
    let header = format!("migdiff: {}", verdict(counts));
    writeln!(w, "{}", style.paint(Paint::Header, &header))?;
    for (tag, text) in notes {
        writeln!(
            w,
            "{} {text}",
            style.paint(Paint::Note, &format!("{tag:<7}"))
        )?;
    }
    Ok(())
}

/// `line 3: BIOS ran`, or `line 3` for a rule without a reason.
pub fn rule_label(rule: &AllowRule) -> String {
    match &rule.reason {
        Some(reason) => format!("line {}: {reason}", rule.line),
        None => format!("line {}", rule.line),
    }
}

fn class_name(class: ChangeClass) -> &'static str {
    match class {
        ChangeClass::Stream => "stream",
        ChangeClass::Device => "device",
        ChangeClass::Schema => "schema",
        ChangeClass::Ram => "ram",
        ChangeClass::Value => "value",
    }
}

/// Counted differences per section, in the comparison's order: presence (stream and
/// device), schema, values, RAM.
pub fn summary_rows(cmp: &Comparison) -> Vec<(String, [usize; 4])> {
    let mut rows: Vec<(String, [usize; 4])> = Vec::new();
    for change in cmp.counted() {
        let column = match change.class {
            ChangeClass::Stream | ChangeClass::Device => 0,
            ChangeClass::Schema => 1,
            ChangeClass::Value => 2,
            ChangeClass::Ram => 3,
        };
        match rows.iter_mut().find(|r| r.0 == change.device) {
            Some(row) => row.1[column] += 1,
            None => {
                let mut counts = [0; 4];
                counts[column] = 1;
                rows.push((change.device.clone(), counts));
            }
        }
    }
    rows
}

pub const SUMMARY_COLUMNS: [&str; 4] = ["presence", "schema", "values", "ram"];

/// `--format summary`: the [`summary_rows`] as a table, then the verdict.
pub fn write_summary(w: &mut dyn Write, cmp: &Comparison, style: Style) -> io::Result<()> {
    let rows = summary_rows(cmp);
    if !rows.is_empty() {
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
        let [p, s, v, r] = SUMMARY_COLUMNS;
        let header = format!("{:<width$}  {p:>8} {s:>7} {v:>7} {r:>5}", "device");
        writeln!(w, "{}", style.paint(Paint::Header, &header))?;
        for (device, [presence, schema, values, ram]) in &rows {
            writeln!(
                w,
                "{device:<width$}  {presence:>8} {schema:>7} {values:>7} {ram:>5}"
            )?;
        }
    }
    writeln!(w, "{}", verdict(&cmp.counts))
}

/// One input as described in JSON output and reports.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub path: String,
    pub size: u64,
    pub machine: Option<String>,
    pub devices: usize,
    pub vmdesc_bytes: Option<u64>,
    /// What the input was: a raw stream, a compressed one, a libvirt image, an export, ...
    pub container: String,
    /// SHA-256 of the stream; computed for reports only (it reads every byte).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `--format json` of a diff. The schema is documented in README.md; add fields, never
/// rename them.
#[derive(Debug, Serialize)]
pub struct DiffDocument<'a> {
    pub migdiff: &'static str,
    pub old: &'a InputInfo,
    pub new: &'a InputInfo,
    pub identical: bool,
    pub counts: Counts,
    /// Differences that fail: not ignored, allowed or tolerated.
    pub changes: Vec<&'a Change>,
    pub allowed: Vec<AllowedChange<'a>>,
    /// Differences that do not break forward migration, under `--fail-on breaking`.
    pub tolerated: Vec<&'a Change>,
    pub stale_rules: Vec<StaleRuleDoc<'a>>,
}

#[derive(Debug, Serialize)]
pub struct AllowedChange<'a> {
    #[serde(flatten)]
    pub change: &'a Change,
    pub rule: &'a AllowRule,
}

#[derive(Debug, Serialize)]
pub struct StaleRuleDoc<'a> {
    #[serde(flatten)]
    pub rule: &'a AllowRule,
    /// What the rule's pattern matched but its pins did not.
    pub seen: &'a [String],
}

impl<'a> DiffDocument<'a> {
    pub fn new(
        cmp: &'a Comparison,
        allow: Option<&'a AllowList>,
        old: &'a InputInfo,
        new: &'a InputInfo,
    ) -> DiffDocument<'a> {
        let with = |pick: fn(&Finding) -> bool| -> Vec<&'a Change> {
            cmp.findings
                .iter()
                .filter(|f| pick(f))
                .map(|f| &f.change)
                .collect()
        };
        let rule = |i: usize| allow.and_then(|a| a.rules.get(i));
        DiffDocument {
            migdiff: env!("CARGO_PKG_VERSION"),
            old,
            new,
            identical: cmp.counts.total() == 0,
            counts: cmp.counts,
            changes: with(Finding::counted),
            allowed: cmp
                .findings
                .iter()
                .filter_map(|f| match f.disposition {
                    Disposition::Allowed { rule: i } => Some(AllowedChange {
                        change: &f.change,
                        rule: rule(i)?,
                    }),
                    _ => None,
                })
                .collect(),
            tolerated: with(|f| f.disposition == Disposition::Tolerated),
            stale_rules: cmp
                .stale_rules
                .iter()
                .filter_map(|s| {
                    Some(StaleRuleDoc {
                        rule: rule(s.rule)?,
                        seen: &s.seen,
                    })
                })
                .collect(),
        }
    }
}
