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

use serde::Serialize;

use crate::diff::Change;
use crate::filter::{Filter, PatternError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowRule {
    /// 1-based line in the allow file.
    pub line: usize,
    pub pattern: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub reason: Option<String>,
}

impl AllowRule {
    fn pins_match(&self, change: &Change) -> bool {
        let matches = |pin: &Option<String>, value: &Option<String>| match pin.as_deref() {
            None | Some("*") => true,
            Some("(none)") => value.is_none(),
            Some(pin) => value.as_deref() == Some(pin),
        };
        matches(&self.old, &change.old) && matches(&self.new, &change.new)
    }
}

#[derive(Debug, Clone)]
pub struct AllowList {
    pub rules: Vec<AllowRule>,
    filter: Filter,
}

/// A line of an allow file that is not a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Changes sorted by the gate.
#[derive(Debug, Clone, Default)]
pub struct GateResult {
    /// Differences no rule allows: these fail the gate.
    pub failing: Vec<Change>,
    /// Allowed differences, with the index of the first rule that allowed each.
    pub allowed: Vec<(Change, usize)>,
    /// Indices of rules that allowed nothing.
    pub stale: Vec<usize>,
}

impl AllowList {
    pub fn parse(text: &str) -> Result<AllowList, AllowError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let (body, reason) = match raw.split_once('#') {
                Some((body, reason)) => (body.trim(), Some(reason.trim().to_string())),
                None => (raw.trim(), None),
            };
            if body.is_empty() {
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
            });
        }
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

    /// Sorts `changes` into failing and allowed, and finds the stale rules.
    pub fn apply(&self, changes: Vec<Change>) -> GateResult {
        let mut used = vec![false; self.rules.len()];
        let mut result = GateResult::default();
        for change in changes {
            let rule = self
                .filter
                .covering(&change)
                .into_iter()
                .find(|&i| self.rules.get(i).is_some_and(|r| r.pins_match(&change)));
            match rule {
                Some(i) => {
                    if let Some(u) = used.get_mut(i) {
                        *u = true;
                    }
                    result.allowed.push((change, i));
                }
                None => result.failing.push(change),
            }
        }
        result.stale = (0..self.rules.len()).filter(|&i| !used[i]).collect();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::ChangeKind;

    fn change(path: &str, old: Option<&str>, new: Option<&str>) -> Change {
        Change {
            old: old.map(String::from),
            new: new.map(String::from),
            ..Change::new("cpu (0)", path, ChangeKind::Value)
        }
    }

    #[test]
    fn pinned_values_reasons_and_stale_rules() {
        let list = AllowList::parse(
            "# expected\n\
             cpu (*)/env.hflags = 0x00000040 -> 0x000000b0  # BIOS ran\n\
             cpu (*)/env.cr[0] = * -> 0x00000011\n\
             cpu (*)/env.added = (none) -> *\n\
             hpet (0)/*  # never matches here\n",
        )
        .unwrap();
        assert_eq!(list.rules[0].line, 2);
        assert_eq!(list.rules[0].reason.as_deref(), Some("BIOS ran"));
        let result = list.apply(vec![
            change("env.hflags", Some("0x00000040"), Some("0x000000b0")),
            change("env.hflags", Some("0x00000040"), Some("0x000000b3")),
            change("env.cr[0]", Some("0x60000010"), Some("0x00000011")),
            change("env.added", None, Some("0x01")),
        ]);
        assert_eq!(result.allowed.len(), 3);
        assert_eq!(result.failing.len(), 1);
        assert_eq!(result.failing[0].new.as_deref(), Some("0x000000b3"));
        assert_eq!(result.stale, [3]);
    }

    #[test]
    fn malformed_value_pin_names_its_line() {
        let err = AllowList::parse("a\ncpu (0)/x = 1 2\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
