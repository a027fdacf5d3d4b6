//! Ignore patterns: globs over the path as printed, `DEVICE (INSTANCE)/FIELD`, where `*`
//! also matches `/`. `mc146818rtc (0)/*` ignores a whole device, `cpu (*)/env.tsc` a field
//! of every CPU, `ram/pc.ram` one RAM block.
//!
//! Brackets are literal, not character classes: field paths are full of them
//! (`env.regs[3]`), and a path pasted from the output must match itself.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Differences that two dumps of the same stopped VM, taken seconds apart, show anyway:
/// wall-clock and timer state. Found by diffing such pairs on QEMU 7.2 and 10.x (see
/// testdata/README.md); `--no-default-ignores` turns them off.
pub const DEFAULT_IGNORES: &[&str] = &[
    "mc146818rtc (*)/base_rtc",
    "mc146818rtc (*)/last_update",
    "mc146818rtc (*)/next_alarm_time",
    "mc146818rtc (*)/next_periodic_time",
    "mc146818rtc (*)/period",
    "mc146818rtc (*)/cmos_data[*]",
    "timer (*)/*",
];

#[derive(Debug, Clone)]
pub struct Filter {
    set: GlobSet,
    patterns: Vec<String>,
}

/// A pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let p = p.as_ref();
            let glob = GlobBuilder::new(&literal_brackets(p))
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
            pattern: patterns
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(" "),
            message: e.to_string(),
        })?;
        Ok(Filter {
            set,
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
        })
    }

    /// Whether `subject` (`cpu (0)/env.tsc`) matches a pattern.
    pub fn is_match(&self, subject: &str) -> bool {
        self.set.is_match(subject)
    }

    /// Indices of the patterns that match `subject`.
    pub fn matches(&self, subject: &str) -> Vec<usize> {
        self.set.matches(subject)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
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
    fn file_comments_and_blanks() {
        let text = "# noise\ntimer (0)/*  # clocks\n\n  cpu (*)/env.tsc\n";
        assert_eq!(parse_pattern_file(text), ["timer (0)/*", "cpu (*)/env.tsc"]);
    }

    #[test]
    fn bad_glob_is_an_error() {
        assert!(Filter::new(&["cpu (0)/{env.cr"]).is_err());
    }
}
