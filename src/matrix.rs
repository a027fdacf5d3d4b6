//! The gate's matrix: for each machine type, the old QEMU's dump and the new one's compared
//! (which differences the allow file expects) and each replayed into the other's loader
//! ([`check`], forward and backward). Renderers (`render::matrix`) only format a [`Matrix`].
//!
//! A difference identical on the wire (a rename, a same-size retype, a buffer split into
//! fields of the same bytes) changes nothing a destination reads, so by default it is
//! listed but does not fail the gate; an allow rule may still state it.

use serde::Serialize;

use crate::check::{check, Answer, Destination, Verdict};
use crate::compare::{compare, Config, Disposition};
use crate::diff::{Change, Load};
use crate::filter::Filter;
use crate::gate::{AllowList, AllowRule};
use crate::tree::Dump;

/// What counts, for every machine type alike.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Ignore patterns (the default noise included when wanted).
    pub filter: Filter,
    /// The whole allow file; each machine type takes the rules scoped to it.
    pub allow: Option<AllowList>,
    /// Whether differences identical on the wire fail too.
    pub fail_on_identical: bool,
}

/// One machine type's dumps compared and checked.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    /// The old QEMU's stream loaded by the new QEMU.
    pub forward: Verdict,
    /// The new QEMU's stream loaded by the old QEMU.
    pub backward: Verdict,
    /// Differences no rule allows: they fail the gate.
    pub unexpected: Vec<Change>,
    /// Differences no rule allows, identical on the wire both ways: listed, not failing
    /// (unless [`Rules::fail_on_identical`]).
    pub identical: Vec<Change>,
    pub allowed: usize,
    pub ignored: usize,
    /// Lines of the allow rules that allowed something here.
    pub used_rules: Vec<usize>,
}

impl Compared {
    /// Whether this machine type fails the gate: a refusal either way, or an unexpected
    /// difference.
    pub fn fails(&self) -> bool {
        self.forward.answer == Answer::Refused
            || self.backward.answer == Answer::Refused
            || !self.unexpected.is_empty()
    }
}

/// What became of one machine type.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    Compared(Box<Compared>),
    /// A dump could not be made or read; the error says why.
    Trouble {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub machine: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// One side of the gate: the QEMU binary and the versions its dumps were made by.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    pub qemu: String,
    /// Distinct `query-version`s recorded beside the dumps (one, unless dumps of several
    /// builds were reused).
    pub versions: Vec<String>,
}

/// Every machine type's row, and the allow rules that allowed nothing anywhere.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub old: Side,
    pub new: Side,
    pub rows: Vec<Row>,
    /// Rules that applied to some compared machine type and allowed nothing there.
    pub stale_rules: Vec<AllowRule>,
}

/// Totals over the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub machines: usize,
    /// Machine types whose dumps load both ways.
    pub load_both_ways: usize,
    /// Machine types with a refusal either way.
    pub refused: usize,
    /// Machine types not decided either way, and refused neither way.
    pub undecided: usize,
    pub unexpected: usize,
    pub identical: usize,
    pub trouble: usize,
}

/// What the gate concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateVerdict {
    Pass,
    /// A refusal, an unexpected difference, or (strict) a stale rule.
    Fail,
    /// Some machine type could not be compared.
    Trouble,
}

/// One machine type as each QEMU made it: its dump, and the `-dump-vmstate` classes of
/// its binary when known (they decide what two dumps alone cannot).
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    pub old: &'a Dump,
    pub new: &'a Dump,
    pub old_classes: Option<&'a Dump>,
    pub new_classes: Option<&'a Dump>,
}

/// Compares and checks one machine type's dumps.
pub fn compare_machine(machine: &str, pair: Pair<'_>, rules: &Rules) -> Compared {
    let Pair {
        old,
        new,
        old_classes,
        new_classes,
    } = pair;
    let allow = rules
        .allow
        .as_ref()
        .map(|allow| allow.for_machines(&[machine]));
    let config = Config {
        filter: rules.filter.clone(),
        allow,
        ..Config::default()
    };
    let cmp = compare(old, new, &config);
    let mut compared = Compared {
        forward: check(
            old,
            Destination {
                dump: Some(new),
                classes: new_classes,
            },
        ),
        backward: check(
            new,
            Destination {
                dump: Some(old),
                classes: old_classes,
            },
        ),
        unexpected: Vec::new(),
        identical: Vec::new(),
        allowed: 0,
        ignored: 0,
        used_rules: Vec::new(),
    };
    for finding in cmp.findings {
        match finding.disposition {
            Disposition::Ignored { .. } => compared.ignored += 1,
            Disposition::Allowed { rule } => {
                compared.allowed += 1;
                let line = config.allow.as_ref().and_then(|a| a.rules.get(rule));
                compared.used_rules.extend(line.map(|r| r.line));
            }
            Disposition::Counted | Disposition::Tolerated => {
                let wire = &finding.change.wire;
                let identical = wire.forward == Load::Identical && wire.backward == Load::Identical;
                if identical && !rules.fail_on_identical {
                    compared.identical.push(finding.change);
                } else {
                    compared.unexpected.push(finding.change);
                }
            }
        }
    }
    compared.used_rules.sort_unstable();
    compared.used_rules.dedup();
    compared
}

impl Matrix {
    /// The matrix of `rows`, with the rules of `allow` that went unused.
    pub fn new(old: Side, new: Side, rows: Vec<Row>, allow: Option<&AllowList>) -> Matrix {
        let compared: Vec<(&str, &Compared)> = rows
            .iter()
            .filter_map(|row| match &row.outcome {
                Outcome::Compared(c) => Some((row.machine.as_str(), c.as_ref())),
                Outcome::Trouble { .. } => None,
            })
            .collect();
        let stale_rules = allow
            .map(|allow| {
                allow
                    .rules
                    .iter()
                    .filter(|rule| {
                        let applied = compared
                            .iter()
                            .any(|(machine, _)| rule.applies_to(&[machine]));
                        let used = compared
                            .iter()
                            .any(|(_, c)| c.used_rules.contains(&rule.line));
                        applied && !used
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Matrix {
            old,
            new,
            rows,
            stale_rules,
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            machines: self.rows.len(),
            ..Totals::default()
        };
        for row in &self.rows {
            let c = match &row.outcome {
                Outcome::Compared(c) => c,
                Outcome::Trouble { .. } => {
                    t.trouble += 1;
                    continue;
                }
            };
            let answers = [c.forward.answer, c.backward.answer];
            if answers.contains(&Answer::Refused) {
                t.refused += 1;
            } else if answers.contains(&Answer::Undecided) {
                t.undecided += 1;
            } else {
                t.load_both_ways += 1;
            }
            t.unexpected += c.unexpected.len();
            t.identical += c.identical.len();
        }
        t
    }

    /// Trouble first (the gate did not see everything), then failures; `strict` fails
    /// on stale rules too.
    pub fn verdict(&self, strict: bool) -> GateVerdict {
        let t = self.totals();
        let fails = self.rows.iter().any(|row| match &row.outcome {
            Outcome::Compared(c) => c.fails(),
            Outcome::Trouble { .. } => false,
        });
        if t.trouble > 0 {
            GateVerdict::Trouble
        } else if fails || (strict && !self.stale_rules.is_empty()) {
            GateVerdict::Fail
        } else {
            GateVerdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(path: &str) -> Dump {
        let bytes = std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        crate::stream::decode(&bytes, None).unwrap()
    }

    #[test]
    fn identical_differences_do_not_fail_and_the_rest_are_unexpected() {
        let (old, new) = (
            dump("testdata/q35-72-qemu72.mig"),
            dump("testdata/q35-72-qemu10.mig"),
        );
        let rules = Rules {
            filter: Filter::new(crate::filter::DEFAULT_IGNORES).unwrap(),
            ..Rules::default()
        };
        let pair = Pair {
            old: &old,
            new: &new,
            old_classes: None,
            new_classes: None,
        };
        let c = compare_machine("pc-q35-7.2", pair, &rules);
        assert_eq!(c.forward.answer, Answer::Loads);
        assert_eq!(c.backward.answer, Answer::Loads);
        let subjects = |changes: &[Change]| changes.iter().map(Change::subject).collect::<Vec<_>>();
        // globalstate's four, hpet's rename and ich9_ahci's retype travel as the same bytes.
        assert_eq!(c.identical.len(), 6, "{:?}", subjects(&c.identical));
        assert_eq!(
            subjects(&c.unexpected),
            [
                "ram//rom@etc/acpi/tables",
                "ram//rom@etc/table-loader",
                "ram//rom@etc/acpi/rsdp"
            ]
        );
        assert!(c.fails());
        let strict = Rules {
            fail_on_identical: true,
            ..rules
        };
        assert_eq!(
            compare_machine("pc-q35-7.2", pair, &strict)
                .unexpected
                .len(),
            9
        );
    }
}
