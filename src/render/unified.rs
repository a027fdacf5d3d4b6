//! A unified diff (`--- OLD`, `+++ NEW`, `@@` hunks) of two normalized documents, with the
//! device header of each hunk after the `@@` (as `git diff` shows the enclosing function).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, group_diff_ops, Algorithm, ChangeTag};

use super::{Paint, Style};

/// Past this, the line diff stops searching for the smallest diff and returns a correct but
/// coarser one (similar's deadline), instead of hanging on pathological input.
const DIFF_DEADLINE: Duration = Duration::from_secs(5);

pub struct Labels<'a> {
    pub old: &'a str,
    pub new: &'a str,
}

/// One hunk: its `@@ -a,b +c,d @@` range, the device it starts in, and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub range: String,
    /// The `[device]` header line the hunk is in.
    pub device: String,
    pub lines: Vec<(ChangeTag, String)>,
}

/// The hunks of a line diff of two documents, with `context` lines around each change.
pub fn hunks(old: &[String], new: &[String], context: usize) -> Vec<Hunk> {
    let deadline = Instant::now() + DIFF_DEADLINE;
    let ops = capture_diff_slices_deadline(Algorithm::Myers, old, new, Some(deadline));
    let mut out = Vec::new();
    for group in group_diff_ops(ops, context) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let device = enclosing_header(old, old_range.start)
            .or_else(|| enclosing_header(new, new_range.start))
            .unwrap_or_default()
            .to_string();
        let lines = group
            .iter()
            .flat_map(|op| op.iter_changes(old, new))
            .map(|change| (change.tag(), change.value()))
            .collect();
        out.push(Hunk {
            range: format!(
                "@@ -{} +{} @@",
                hunk_range(&old_range),
                hunk_range(&new_range)
            ),
            device,
            lines,
        });
    }
    out
}

/// Writes `--- OLD`, `+++ NEW` and the hunks; nothing when there are none.
pub fn write_unified(
    w: &mut dyn Write,
    labels: &Labels<'_>,
    hunks: &[Hunk],
    style: Style,
) -> io::Result<()> {
    if hunks.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "{}",
        style.paint(Paint::Header, &format!("--- {}", labels.old))
    )?;
    writeln!(
        w,
        "{}",
        style.paint(Paint::Header, &format!("+++ {}", labels.new))
    )?;
    for hunk in hunks {
        writeln!(
            w,
            "{} {}",
            style.paint(Paint::Hunk, &hunk.range),
            hunk.device
        )?;
        for (tag, text) in &hunk.lines {
            match tag {
                ChangeTag::Equal => writeln!(w, " {text}")?,
                ChangeTag::Delete => {
                    writeln!(w, "{}", style.paint(Paint::Removed, &format!("-{text}")))?
                }
                ChangeTag::Insert => {
                    writeln!(w, "{}", style.paint(Paint::Added, &format!("+{text}")))?
                }
            }
        }
    }
    Ok(())
}

/// `start,len` in unified-diff terms: 1-based, and an empty range names the line before.
fn hunk_range(range: &std::ops::Range<usize>) -> String {
    match range.len() {
        1 => format!("{}", range.start + 1),
        0 => format!("{},0", range.start),
        len => format!("{},{len}", range.start + 1),
    }
}

/// The nearest `[device]` header at or above `index`.
fn enclosing_header(doc: &[String], index: usize) -> Option<&str> {
    doc.get(..=index.min(doc.len().saturating_sub(1)))?
        .iter()
        .rev()
        .find(|l| l.starts_with('['))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hunk_names_its_device_and_is_patch_shaped() {
        let old = doc(&[
            "[stream]",
            "[cpu (0)] version 12",
            "  a = 0x01",
            "  b = 0x02",
            "  c = 0x03",
        ]);
        let new = doc(&[
            "[stream]",
            "[cpu (0)] version 12",
            "  a = 0x01",
            "  b = 0x09",
            "  c = 0x03",
        ]);
        let mut out = Vec::new();
        let labels = Labels {
            old: "a.mig",
            new: "b.mig",
        };
        write_unified(&mut out, &labels, &hunks(&old, &new, 1), Style::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "--- a.mig\n+++ b.mig\n@@ -3,3 +3,3 @@ [cpu (0)] version 12\n   a = 0x01\n-  b = 0x02\n+  b = 0x09\n   c = 0x03\n"
        );
    }

    #[test]
    fn identical_documents_print_nothing() {
        let d = doc(&["[stream]"]);
        let mut out = Vec::new();
        let labels = Labels { old: "a", new: "b" };
        assert!(hunks(&d, &d, 3).is_empty());
        write_unified(&mut out, &labels, &[], Style::default()).unwrap();
        assert!(out.is_empty());
    }
}
