//! Notes above the unified diff, the `--format summary` table, and the `--format json`
//! document of a diff.

use std::io::{self, Write};

use serde::Serialize;

use super::{Paint, Style};
use crate::diff::{Change, ChangeClass, ChangeKind};
use crate::gate::{AllowList, AllowRule, GateResult};

/// Counts by class, for the verdict line, the summary and JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub stream: usize,
    pub devices: usize,
    pub schema: usize,
    pub values: usize,
    pub ram: usize,
    pub ignored: usize,
    /// Differences an allow-list rule allowed.
    pub allowed: usize,
    /// Allow-list rules that allowed nothing.
    pub stale_rules: usize,
}

impl Counts {
    pub fn of(changes: &[Change], ignored: usize, allowed: usize, stale_rules: usize) -> Counts {
        let mut c = Counts {
            ignored,
            allowed,
            stale_rules,
            ..Counts::default()
        };
        for change in changes {
            match change.class {
                ChangeClass::Stream => c.stream += 1,
                ChangeClass::Device => c.devices += 1,
                ChangeClass::Schema => c.schema += 1,
                ChangeClass::Value => c.values += 1,
                ChangeClass::Ram => c.ram += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.stream + self.devices + self.schema + self.values + self.ram
    }

    /// One line: `12 differences: 2 schema, 8 values, 1 device, 1 RAM; 5 ignored`.
    pub fn verdict(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.stream, "stream"),
            (self.devices, "device presence"),
            (self.schema, "schema"),
            (self.values, "value"),
            (self.ram, "RAM"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let head = match self.total() {
            0 => "no differences".to_string(),
            1 => format!("1 difference: {}", parts.join(", ")),
            n => format!("{n} differences: {}", parts.join(", ")),
        };
        let mut tail = Vec::new();
        if self.ignored > 0 {
            tail.push(format!("{} ignored", self.ignored));
        }
        if self.allowed > 0 {
            tail.push(format!("{} allowed", self.allowed));
        }
        match self.stale_rules {
            0 => {}
            1 => tail.push("1 stale allow rule".into()),
            n => tail.push(format!("{n} stale allow rules")),
        }
        if tail.is_empty() {
            head
        } else {
            format!("{head}; {}", tail.join(", "))
        }
    }
}

/// Describes one non-value change on one line (value changes are the diff hunks).
pub fn describe(change: &Change) -> String {
    let at = crate::diff::subject(&change.device, &change.path);
    let old = change.old.as_deref().unwrap_or("");
    let new = change.new.as_deref().unwrap_or("");
    let note = change.note.as_deref().unwrap_or("");
    match change.kind {
        ChangeKind::Stream => format!("{at}: {old} -> {new}"),
        ChangeKind::DeviceAdded => format!("{at}: only in new ({note})"),
        ChangeKind::DeviceRemoved => format!("{at}: only in old ({note})"),
        ChangeKind::VersionChanged => format!("{at}: version {old} -> {new}"),
        ChangeKind::FieldAdded => format!("{at}: field added ({note}{})", value_suffix(new)),
        ChangeKind::FieldRemoved => format!("{at}: field removed ({note}{})", value_suffix(old)),
        ChangeKind::FieldRenamed => format!("{at}: {note}"),
        ChangeKind::TypeChanged => format!("{at}: {note}"),
        ChangeKind::SubsectionAdded => format!("{at}: subsection only in new"),
        ChangeKind::SubsectionRemoved => format!("{at}: subsection only in old"),
        ChangeKind::LengthChanged => format!("{at}: {old} -> {new}"),
        ChangeKind::Value => format!("{at}: {old} -> {new}"),
        ChangeKind::RamBlockAdded => format!("{at}: RAM block only in new ({new})"),
        ChangeKind::RamBlockRemoved => format!("{at}: RAM block only in old ({old})"),
        ChangeKind::RamBlockResized => format!("{at}: RAM block resized {old} -> {new}"),
        ChangeKind::RamPages => format!(
            "{at}: {new} of {old} differ, at offsets {}{}",
            byte_ranges(&change.ranges),
            change
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
    }
}

/// ` = 0x01` after a field's shape; nothing for a value-less (schema-only) field or a long
/// buffer, whose value text only repeats its size.
fn value_suffix(value: &str) -> String {
    if value.is_empty() || value.ends_with(" bytes") {
        String::new()
    } else {
        format!(" = {value}")
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
        parts.push(format!("and {} more ranges", ranges.len() - SHOWN));
    }
    parts.join(", ")
}

/// Notes about a comparison, each with its tag: every change that is not a plain value
/// change (tagged by class), value changes migdiff can explain, then what an allow-list
/// allowed and its stale rules.
pub fn notes(
    changes: &[Change],
    gate: Option<(&GateResult, &AllowList)>,
) -> Vec<(&'static str, String)> {
    let mut notes = Vec::new();
    for change in changes.iter().filter(|c| c.class != ChangeClass::Value) {
        notes.push((class_name(change.class), describe(change)));
    }
    for change in changes.iter().filter(|c| c.class == ChangeClass::Value) {
        if let Some(meaning) = &change.meaning {
            notes.push(("value", format!("{}  ({meaning})", describe(change))));
        }
    }
    if let Some((gate, allow)) = gate {
        for (change, rule) in &gate.allowed {
            let why = allow.rules.get(*rule).map(rule_label).unwrap_or_default();
            notes.push(("allowed", format!("{} [{why}]", describe(change))));
        }
        for r in gate.stale.iter().filter_map(|&i| allow.rules.get(i)) {
            notes.push((
                "stale",
                format!("{} [{}]: allowed nothing", r.pattern, rule_label(r)),
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
    let header = format!("migdiff: {}", counts.verdict());
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

/// Differences per device, in order of first appearance: presence (stream and device),
/// schema, values, RAM.
pub fn summary_rows(changes: &[Change]) -> Vec<(String, [usize; 4])> {
    let mut rows: Vec<(String, [usize; 4])> = Vec::new();
    for change in changes {
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
pub fn write_summary(
    w: &mut dyn Write,
    changes: &[Change],
    counts: &Counts,
    style: Style,
) -> io::Result<()> {
    let rows = summary_rows(changes);
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
    writeln!(w, "{}", counts.verdict())
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
    /// Differences that fail: not ignored, not allowed.
    pub changes: &'a [Change],
    pub allowed: Vec<AllowedChange<'a>>,
    pub stale_rules: Vec<&'a AllowRule>,
}

#[derive(Debug, Serialize)]
pub struct AllowedChange<'a> {
    #[serde(flatten)]
    pub change: &'a Change,
    pub rule: &'a AllowRule,
}
