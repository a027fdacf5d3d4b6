//! The comparison every output renders: the differences of two dumps ([`diff`](crate::diff)),
//! each with what became of it (counted, ignored, allowed by a rule, or tolerated because
//! it does not break forward migration), the allow rules that allowed nothing, and the
//! counts. Renderers only format a [`Comparison`]; none of them filters or counts again.

use std::collections::HashSet;

use serde::Serialize;

use crate::diff::{diff_dumps, Change, ChangeClass, Load};
use crate::explain;
use crate::filter::Filter;
use crate::gate::AllowList;
use crate::tree::Dump;

/// Which differences fail a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailOn {
    /// Every difference that is not ignored or allowed.
    #[default]
    Any,
    /// Only differences that break forward migration (old's stream into new's QEMU); the
    /// rest are listed as tolerated.
    Breaking,
}

/// How two dumps are compared.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Config {
    /// Ignore patterns (defaults included when the caller wants them).
    pub filter: Filter,
    pub allow: Option<AllowList>,
    pub fail_on: FailOn,
    /// Compare descriptions only: values are blanked before the diff, RAM contents skipped.
    pub schema_only: bool,
}

/// What became of one difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
#[non_exhaustive]
pub enum Disposition {
    /// A difference that fails the comparison.
    Counted,
    /// Matched by an ignore pattern (index into the filter's patterns).
    Ignored { pattern: usize },
    /// Allowed by an allow rule (index into [`AllowList::rules`]).
    Allowed { rule: usize },
    /// Not breaking forward migration, under [`FailOn::Breaking`].
    Tolerated,
}

/// A difference and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    #[serde(flatten)]
    pub change: Change,
    pub disposition: Disposition,
}

impl Finding {
    pub fn counted(&self) -> bool {
        self.disposition == Disposition::Counted
    }
}

/// An allow rule that allowed nothing, and what its pattern did match (whose values the
/// rule's pins did not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StaleRule {
    pub rule: usize,
    /// `OLD -> NEW` of each difference the pattern matched, as printed.
    pub seen: Vec<String>,
}

/// Counts by class of the counted differences, and of the rest by what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Counts {
    pub stream: usize,
    pub devices: usize,
    pub schema: usize,
    pub values: usize,
    pub ram: usize,
    pub ignored: usize,
    /// Differences an allow-list rule allowed.
    pub allowed: usize,
    /// Differences that do not break forward migration, under `--fail-on breaking`.
    pub tolerated: usize,
    /// Allow-list rules that allowed nothing.
    pub stale_rules: usize,
    /// Counted differences that break loading forward (old's stream into new's QEMU).
    pub breaking: usize,
    /// RAM pages whose content a side does not give (XBZRLE deltas without a base), in
    /// blocks not ignored: neither same nor different, so in no other count.
    pub unknown_pages: u64,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.stream + self.devices + self.schema + self.values + self.ram
    }
}

/// Two dumps compared.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Comparison {
    /// Every difference, in order: stream, RAM, then devices by `(idstr, instance)`.
    pub findings: Vec<Finding>,
    pub stale_rules: Vec<StaleRule>,
    pub counts: Counts,
    /// Every section of either dump by display name (`stream`, `ram`, `cpu (0)`, ...), in
    /// the normalized order.
    pub devices: Vec<String>,
}

impl Comparison {
    /// The counted differences, the ones that fail.
    pub fn counted(&self) -> impl Iterator<Item = &Change> {
        self.findings
            .iter()
            .filter(|f| f.counted())
            .map(|f| &f.change)
    }

    /// Whether nothing fails (under `strict`, a stale allow rule fails too).
    pub fn passes(&self, strict: bool) -> bool {
        self.counts.total() == 0 && (!strict || self.stale_rules.is_empty())
    }

    /// Subjects of the differences that are neither counted nor ignored (allowed,
    /// tolerated), on the old side and on the new: left out of the hunks, as ignored ones
    /// are, with everything under them, except where a counted difference lies beneath (a
    /// tolerated version change of a device whose field breaks).
    pub fn quiet_subjects(&self) -> (HashSet<String>, HashSet<String>) {
        let mut counted: Vec<String> = self.counted().map(Change::subject).collect();
        counted.sort_unstable();
        let holds_counted = |subject: &str| {
            let from = counted.partition_point(|c| c.as_str() < subject);
            counted
                .get(from..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| c.starts_with(subject))
                .any(|c| {
                    c.len() == subject.len() || c[subject.len()..].starts_with(['/', '.', '['])
                })
        };
        let mut old = HashSet::new();
        let mut new = HashSet::new();
        for f in &self.findings {
            if matches!(
                f.disposition,
                Disposition::Allowed { .. } | Disposition::Tolerated
            ) {
                for (set, subject) in [
                    (&mut old, f.change.old_subject()),
                    (&mut new, f.change.subject()),
                ] {
                    if !holds_counted(&subject) {
                        set.insert(subject);
                    }
                }
            }
        }
        (old, new)
    }
}

/// Compares two dumps under `config`.
pub fn compare(old: &Dump, new: &Dump, config: &Config) -> Comparison {
    let changes = if config.schema_only {
        let (old, new) = schema_trees(old, new);
        schema_changes(diff_dumps(&old, &new))
    } else {
        let mut changes = diff_dumps(old, new);
        explain::annotate(old, new, &mut changes);
        changes
    };
    let mut used = vec![false; config.allow.as_ref().map_or(0, |a| a.rules.len())];
    let mut findings = Vec::with_capacity(changes.len());
    for change in changes {
        let disposition = if let Some(pattern) = config.filter.covering(&change).first() {
            Disposition::Ignored { pattern: *pattern }
        } else if let Some(rule) = config.allow.as_ref().and_then(|a| a.rule_for(&change)) {
            if let Some(u) = used.get_mut(rule) {
                *u = true;
            }
            Disposition::Allowed { rule }
        } else if config.fail_on == FailOn::Breaking && change.wire.forward != Load::Breaks {
            Disposition::Tolerated
        } else {
            Disposition::Counted
        };
        findings.push(Finding {
            change,
            disposition,
        });
    }
    let stale_rules = match &config.allow {
        Some(allow) => (0..allow.rules.len())
            .filter(|&i| !used[i])
            .map(|rule| StaleRule {
                rule,
                seen: allow.seen_by(rule, findings.iter().map(|f| &f.change)),
            })
            .collect(),
        None => Vec::new(),
    };
    let mut counts = count(&findings, stale_rules.len());
    if !config.schema_only {
        for (block, pages) in crate::diff::unknown_pages(old, new) {
            let subject = Change::new("ram", block, crate::diff::ChangeKind::RamPages);
            if config.filter.covering(&subject).is_empty() {
                counts.unknown_pages += pages;
            }
        }
    }
    Comparison {
        findings,
        stale_rules,
        counts,
        devices: section_names(old, new),
    }
}

/// The two trees `--schema-only` compares (and shows): values blanked, and `-dump-vmstate`
/// fields sized as whole arrays when both files record array lengths.
pub fn schema_trees(old: &Dump, new: &Dump) -> (Dump, Dump) {
    let whole = |d: &Dump| d.classes.is_some_and(|c| c.array_lengths);
    let whole_arrays = whole(old) && whole(new);
    (
        old.without_values(whole_arrays),
        new.without_values(whole_arrays),
    )
}

/// Without values, what remains is all description: array lengths and subsection sets
/// included; RAM contents are not compared.
fn schema_changes(changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .filter(|c| c.kind != crate::diff::ChangeKind::RamPages)
        .map(|mut c| {
            if c.class == ChangeClass::Value {
                c.class = ChangeClass::Schema;
            }
            c
        })
        .collect()
}

fn count(findings: &[Finding], stale_rules: usize) -> Counts {
    let mut c = Counts {
        stale_rules,
        ..Counts::default()
    };
    for f in findings {
        match f.disposition {
            Disposition::Ignored { .. } => c.ignored += 1,
            Disposition::Allowed { .. } => c.allowed += 1,
            Disposition::Tolerated => c.tolerated += 1,
            Disposition::Counted => {
                match f.change.class {
                    ChangeClass::Stream => c.stream += 1,
                    ChangeClass::Device => c.devices += 1,
                    ChangeClass::Schema => c.schema += 1,
                    ChangeClass::Value => c.values += 1,
                    ChangeClass::Ram => c.ram += 1,
                }
                if f.change.wire.forward == Load::Breaks {
                    c.breaking += 1;
                }
            }
        }
    }
    c
}

/// `stream`, `ram`, then every device of either dump in normalized order.
fn section_names(old: &Dump, new: &Dump) -> Vec<String> {
    let mut devices: Vec<_> = old.sorted_devices();
    devices.extend(new.sorted_devices());
    devices.sort_by(|a, b| (&a.idstr, a.instance_id).cmp(&(&b.idstr, b.instance_id)));
    devices.dedup_by(|a, b| a.idstr == b.idstr && a.instance_id == b.instance_id);
    ["stream".to_string(), "ram".to_string()]
        .into_iter()
        .chain(devices.into_iter().map(crate::diff::device_name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Device, Node, StreamInfo, Struct, Value};

    fn dump(version: u32, fields: &[(&str, u64)]) -> Dump {
        let fields = fields
            .iter()
            .map(|&(name, value)| Node {
                name: name.into(),
                type_name: "uint8".into(),
                offset: 0,
                len: 1,
                value: Value::Uint { value, size: 1 },
            })
            .collect();
        Dump {
            machine: Some("pc".into()),
            capabilities: Vec::new(),
            uuid: None,
            page_size: 4096,
            devices: vec![Device {
                idstr: "dev".into(),
                instance_id: 0,
                section_id: 0,
                version_id: version,
                offset: 0,
                len: 0,
                body: Struct {
                    vmsd_name: "dev".into(),
                    version: Some(u64::from(version)),
                    minimum_version: None,
                    fields,
                    subsections: Vec::new(),
                },
            }],
            ram: Vec::new(),
            stream: StreamInfo::default(),
            warnings: Vec::new(),
            classes: None,
        }
    }

    /// `dump` with field `name` made `size` bytes wide.
    fn widened(mut d: Dump, name: &str, size: u8) -> Dump {
        fn widen(fields: &mut [Node], name: &str, size: u8) {
            for node in fields {
                match &mut node.value {
                    Value::Struct(s) => widen(&mut s.fields, name, size),
                    Value::Uint { value, .. } if node.name == name => {
                        node.value = Value::Uint {
                            value: *value,
                            size,
                        };
                        node.len = u64::from(size);
                    }
                    _ => {}
                }
            }
        }
        widen(&mut d.devices[0].body.fields, name, size);
        d
    }

    #[test]
    fn what_is_set_aside_never_hides_what_counts() {
        let config = Config {
            fail_on: FailOn::Breaking,
            ..Config::default()
        };
        // Same version: a value change is tolerated, a field that got wider breaks.
        let cmp = compare(
            &dump(1, &[("a", 1), ("b", 0)]),
            &widened(dump(1, &[("a", 2), ("b", 0)]), "b", 2),
            &config,
        );
        let kinds: Vec<_> = cmp
            .findings
            .iter()
            .map(|f| (f.change.path.as_str(), f.disposition))
            .collect();
        assert_eq!(
            kinds,
            [("a", Disposition::Tolerated), ("b", Disposition::Counted)]
        );
        let (old, new) = cmp.quiet_subjects();
        assert!(old.contains("dev (0)/a") && new.contains("dev (0)/a"));
        assert!(!new.contains("dev (0)/b"));
        // A version that went up is tolerated forward, yet the device holds a field that
        // breaks (wider inside a nested struct, loaded at the destination's own version):
        // the device is not set aside.
        let nest = |fields: &[(&str, u64)]| {
            let mut d = dump(1, fields);
            let inner = std::mem::take(&mut d.devices[0].body.fields);
            d.devices[0].body.fields = vec![Node {
                name: "s".into(),
                type_name: "struct".into(),
                offset: 0,
                len: inner.len() as u64,
                value: Value::Struct(Box::new(Struct {
                    vmsd_name: "s".into(),
                    version: Some(1),
                    minimum_version: None,
                    fields: inner,
                    subsections: Vec::new(),
                })),
            }];
            d
        };
        let old = nest(&[("a", 1), ("b", 0)]);
        let mut new = widened(nest(&[("a", 1), ("b", 0)]), "b", 2);
        new.devices[0].version_id = 2;
        let cmp = compare(&old, &new, &config);
        let counted: Vec<_> = cmp.counted().map(Change::subject).collect();
        assert_eq!(counted, ["dev (0)/s.b"]);
        assert_eq!(cmp.counts.tolerated, 1);
        let (old_quiet, new_quiet) = cmp.quiet_subjects();
        assert!(!old_quiet.contains("dev (0)") && !new_quiet.contains("dev (0)"));
    }
}
