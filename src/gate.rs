//! The CI gate: an allow-list of expected differences. A difference a rule allows does not
//! fail the gate; a rule that allows nothing is stale (the difference it was written for
//! is gone) and is reported, and fails the gate under `--strict`.
//!
//! One rule per line, `#` starts the reason:
//!
//! ```text
//! hpet (0)/num_timers_save                      # renamed in QEMU 8.0
//! cpu (*)/env.hflags = 0x00000040 -> 0x000000b0 # the BIOS ran on the new side only
//! ram//rom@etc/acpi/*                           # ACPI tables are rebuilt by each QEMU
//! ```
//!
//! The pattern has the `--ignore` syntax. `= OLD -> NEW` pins the values as printed; `*`
//! stands for any value and `(none)` for a side that has none (an added field).
//!
//! A line `[GLOB ...]` scopes the rules below it to the machine types its globs match (one
//! allow file for a whole QEMU update); `[*]` returns to every machine type, as before the
//! first header. Files without headers read as before.
//!
//! ```text
//! hpet (0)/num_timers_save                      # every machine type
//! [pc-q35-*]
//! 0000:00:1f.2/ich9_ahci (0)/ahci.ports         # q35 only: i440fx has no AHCI
//! ```

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::diff::{Change, Leaf};
use crate::filter::{Filter, PatternError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AllowRule {
    /// 1-based line in the allow file.
    pub line: usize,
    pub pattern: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub reason: Option<String>,
    /// Machine-type globs of the `[...]` header above the rule; empty: every type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
}

impl AllowRule {
    fn pins_match(&self, change: &Change) -> bool {
        pin_matches(self.old.as_deref(), change.old.as_ref())
            && pin_matches(self.new.as_deref(), change.new.as_ref())
    }

    /// Whether the rule's `[...]` scope covers one of `machines` (always, when unscoped).
    pub fn applies_to(&self, machines: &[&str]) -> bool {
        self.machines.is_empty()
            || machine_set(&self.machines).is_ok_and(|set| machines.iter().any(|m| set.is_match(m)))
    }
}

/// The machine-type globs of a `[...]` header.
fn machine_set(globs: &[String]) -> Result<GlobSet, String> {
    if globs.is_empty() {
        return Err("a '[...]' header names no machine type glob".into());
    }
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        set.add(Glob::new(glob).map_err(|e| format!("bad machine type glob '{glob}': {e}"))?);
    }
    set.build().map_err(|e| e.to_string())
}

/// A pin against one side's value: `*` any, `(none)` no value, a number (hex or decimal)
/// the same integer whatever its padding, anything else the value as printed.
fn pin_matches(pin: Option<&str>, value: Option<&Leaf>) -> bool {
    match (pin, value) {
        (None | Some("*"), _) => true,
        (Some("(none)"), value) => value.is_none(),
        (Some(_), None) => false,
        (Some(pin), Some(value)) => {
            if let (Some(p), Some(v), Leaf::Int { .. }) = (parse_number(pin), value.as_u64(), value)
            {
                return p == v || value.to_string() == pin;
            }
            value.to_string() == pin
        }
    }
}

/// `0x40`, `64`, or `0xffff (-1)` (the printed form of a negative number).
fn parse_number(text: &str) -> Option<u64> {
    let text = text.split(" (").next().unwrap_or(text).trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AllowList {
    pub rules: Vec<AllowRule>,
    filter: Filter,
}

/// A line of an allow file that is not a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllowError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for AllowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for AllowError {}

impl AllowList {
    pub fn parse(text: &str) -> Result<AllowList, AllowError> {
        let mut rules = Vec::new();
        let mut machines: Vec<String> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let (body, reason) = match raw.split_once('#') {
                Some((body, reason)) => (body.trim(), Some(reason.trim().to_string())),
                None => (raw.trim(), None),
            };
            if body.is_empty() {
                continue;
            }
            if let Some(header) = body.strip_prefix('[') {
                let globs = header.strip_suffix(']').ok_or_else(|| AllowError {
                    line,
                    message: format!("expected '[MACHINE-GLOB ...]', got '{body}'"),
                })?;
                machines = globs.split_whitespace().map(str::to_string).collect();
                machine_set(&machines).map_err(|message| AllowError { line, message })?;
                if machines.iter().any(|m| m == "*") {
                    machines.clear();
                }
                continue;
            }
            let (pattern, old, new) = match body.split_once(" = ") {
                Some((pattern, values)) => {
                    let (old, new) = values.split_once(" -> ").ok_or_else(|| AllowError {
                        line,
                        message: format!("expected 'PATTERN = OLD -> NEW', got '{body}'"),
                    })?;
                    (
                        pattern.trim(),
                        Some(old.trim().to_string()),
                        Some(new.trim().to_string()),
                    )
                }
                None => (body, None, None),
            };
            rules.push(AllowRule {
                line,
                pattern: pattern.to_string(),
                old,
                new,
                reason: reason.filter(|r| !r.is_empty()),
                machines: machines.clone(),
            });
        }
        AllowList::from_rules(rules)
    }

    fn from_rules(rules: Vec<AllowRule>) -> Result<AllowList, AllowError> {
        let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
        let filter = Filter::new(&patterns).map_err(|e: PatternError| AllowError {
            line: rules
                .iter()
                .find(|r| e.pattern.contains(&r.pattern))
                .map_or(0, |r| r.line),
            message: e.to_string(),
        })?;
        Ok(AllowList { rules, filter })
    }

    /// The rules that apply to a comparison of dumps of machine types `machines` (the old
    /// dump's and the new one's): unscoped rules, and those whose scope matches one of them.
    /// Lines are kept, so a rule reads the same in either list.
    pub fn for_machines(&self, machines: &[&str]) -> AllowList {
        let rules: Vec<AllowRule> = self
            .rules
            .iter()
            .filter(|r| r.applies_to(machines))
            .cloned()
            .collect();
        // The patterns built once already; a subset builds as well.
        AllowList::from_rules(rules).unwrap_or_default()
    }

    /// The first rule that allows `change`: its pattern covers it and its pins match.
    pub fn rule_for(&self, change: &Change) -> Option<usize> {
        self.filter
            .covering(change)
            .into_iter()
            .find(|&i| self.rules.get(i).is_some_and(|r| r.pins_match(change)))
    }

    /// `OLD -> NEW` of each change that rule `rule`'s pattern covers: what a stale pinned
    /// rule saw instead of its pins.
    pub fn seen_by<'c>(
        &self,
        rule: usize,
        changes: impl Iterator<Item = &'c Change>,
    ) -> Vec<String> {
        let side =
            |leaf: &Option<Leaf>| leaf.as_ref().map_or("(none)".to_string(), Leaf::to_string);
        changes
            .filter(|c| self.filter.covering(c).contains(&rule))
            .map(|c| format!("{} = {} -> {}", c.subject(), side(&c.old), side(&c.new)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::ChangeKind;

    fn int(value: u64, size: u8) -> Leaf {
        Leaf::Int {
            value,
            size,
            signed: false,
        }
    }

    fn change(path: &str, old: Option<Leaf>, new: Option<Leaf>) -> Change {
        let mut change = Change::new("cpu (0)", path, ChangeKind::Value);
        (change.old, change.new) = (old, new);
        change
    }

    #[test]
    fn pinned_values_reasons_and_stale_rules() {
        let list = AllowList::parse(
            "# expected\n\
             cpu (*)/env.hflags = 0x00000040 -> 0xb0  # BIOS ran\n\
             cpu (*)/env.cr[0] = * -> 17\n\
             cpu (*)/env.added = (none) -> *\n\
             hpet (0)/*  # never matches here\n",
        )
        .unwrap();
        assert_eq!(list.rules[0].line, 2);
        assert_eq!(list.rules[0].reason.as_deref(), Some("BIOS ran"));
        let hflags = change("env.hflags", Some(int(0x40, 4)), Some(int(0xb0, 4)));
        let other = change("env.hflags", Some(int(0x40, 4)), Some(int(0xb3, 4)));
        // Pins are numbers, whatever their padding.
        assert_eq!(list.rule_for(&hflags), Some(0));
        assert_eq!(list.rule_for(&other), None);
        let cr0 = change("env.cr[0]", Some(int(0x60000010, 4)), Some(int(0x11, 4)));
        assert_eq!(list.rule_for(&cr0), Some(1));
        assert_eq!(
            list.rule_for(&change("env.added", None, Some(int(1, 1)))),
            Some(2)
        );
        assert_eq!(
            list.seen_by(0, [&other].into_iter()),
            ["cpu (0)/env.hflags = 0x00000040 -> 0x000000b3"]
        );
    }

    #[test]
    fn text_pins_match_the_printed_value() {
        let list = AllowList::parse("globalstate (0)/runstate = 100 bytes -> 32 bytes\n").unwrap();
        let c = change(
            "runstate",
            Some(Leaf::Bytes(vec![0; 100])),
            Some(Leaf::Bytes(vec![0; 32])),
        );
        let mut c = c;
        c.device = "globalstate (0)".into();
        assert_eq!(list.rule_for(&c), Some(0));
    }

    #[test]
    fn headers_scope_rules_to_machine_types() {
        let list = AllowList::parse(
            "hpet (0)/num_timers_save\n\
             [pc-q35-* microvm-*]  # q35 and microvm\n\
             0000:00:1f.2/ich9_ahci (0)/ahci.ports\n\
             [*]\n\
             ram//rom@etc/acpi/*\n",
        )
        .unwrap();
        assert_eq!(list.rules[1].machines, ["pc-q35-*", "microvm-*"]);
        assert!(list.rules[2].machines.is_empty());
        let lines = |l: &AllowList| l.rules.iter().map(|r| r.line).collect::<Vec<_>>();
        assert_eq!(lines(&list.for_machines(&["pc-i440fx-7.2"])), [1, 5]);
        assert_eq!(lines(&list.for_machines(&["pc-q35-2.4"])), [1, 3, 5]);
        // Either side's machine type brings the rule in.
        assert_eq!(
            lines(&list.for_machines(&["pc-i440fx-7.2", "pc-q35-7.2"])),
            [1, 3, 5]
        );
        let ahci = Change::new(
            "0000:00:1f.2/ich9_ahci (0)",
            "ahci.ports",
            ChangeKind::Value,
        );
        assert_eq!(list.for_machines(&["pc-q35-7.2"]).rule_for(&ahci), Some(1));
        assert_eq!(list.for_machines(&["pc-i440fx-7.2"]).rule_for(&ahci), None);
    }

    #[test]
    fn a_bad_header_names_its_line() {
        assert_eq!(AllowList::parse("a\n[pc-q35-*\n").unwrap_err().line, 2);
        assert_eq!(AllowList::parse("[]\n").unwrap_err().line, 1);
        assert_eq!(AllowList::parse("a\n\n[pc-{q35\n]").unwrap_err().line, 3);
    }

    #[test]
    fn malformed_value_pin_names_its_line() {
        let err = AllowList::parse("a\ncpu (0)/x = 1 2\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
