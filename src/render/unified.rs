//! A unified diff (`--- OLD`, `+++ NEW`, `@@` hunks) of two normalized documents, section by
//! section for the sections a comparison counts differences in, with the device header of
//! each hunk after the `@@` (as `git diff` shows the enclosing function).

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, group_diff_ops, Algorithm, ChangeTag, DiffOp};

use super::document::header_name;
use super::{Paint, Style};

/// Past this, the line diff stops searching for the smallest diff and returns a correct but
/// coarser one (similar's deadline), instead of hanging on pathological input.
const DIFF_DEADLINE: Duration = Duration::from_secs(5);

/// Past this many line pairs between two common keys, lines are not aligned by text: a
/// stretch of 100,000 renamed fields took seconds of Myers, and shows as one block anyway.
const MAX_TEXT_ALIGNMENT: usize = 4_000_000;

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

/// The hunks of each section in `sections` (display names, `cpu (0)`, in document order):
/// the lines of that section in each document, aligned by field, with `context` lines
/// around each change. Hunks never cross a section, so each belongs to the device it
/// names; line numbers are those of the whole documents.
pub fn section_hunks(
    old: &[String],
    new: &[String],
    order: &[String],
    sections: &HashSet<&str>,
    context: usize,
) -> Vec<Hunk> {
    let (old_at, new_at) = (section_ranges(old, order), section_ranges(new, order));
    let mut out = Vec::new();
    for (i, name) in order.iter().enumerate() {
        if !sections.contains(name.as_str()) {
            continue;
        }
        let (ro, rn) = (old_at[i].clone(), new_at[i].clone());
        let header = old
            .get(ro.start)
            .filter(|_| !ro.is_empty())
            .or_else(|| new.get(rn.start).filter(|_| !rn.is_empty()))
            .cloned()
            .unwrap_or_default();
        out.extend(hunks(
            &old[ro.clone()],
            &new[rn.clone()],
            (ro.start, rn.start),
            &header,
            context,
        ));
    }
    out
}

/// Per section of `order`, its lines in `doc`; a section the document lacks is the empty
/// range where it would be.
fn section_ranges(doc: &[String], order: &[String]) -> Vec<Range<usize>> {
    let mut starts: HashMap<&str, usize> = HashMap::new();
    for (i, line) in doc.iter().enumerate() {
        if let Some(name) = header_name(line) {
            starts.insert(name, i);
        }
    }
    let mut ranges = Vec::with_capacity(order.len());
    let mut end = 0;
    for name in order {
        match starts.get(name.as_str()) {
            Some(&start) => {
                let len = doc[start + 1..]
                    .iter()
                    .position(|l| header_name(l).is_some())
                    .map_or(doc.len() - start, |n| n + 1);
                end = start + len;
                ranges.push(start..end);
            }
            None => ranges.push(end..end),
        }
    }
    ranges
}

/// The hunks of a line diff of two stretches of documents that start at lines `at`.
fn hunks(
    old: &[String],
    new: &[String],
    at: (usize, usize),
    header: &str,
    context: usize,
) -> Vec<Hunk> {
    let ops = line_ops(old, new);
    let mut out = Vec::new();
    for group in group_diff_ops(ops, context) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = at.0 + first.old_range().start..at.0 + last.old_range().end;
        let new_range = at.1 + first.new_range().start..at.1 + last.new_range().end;
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
            device: header.to_string(),
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

/// The line diff of two documents, aligned by what each line is (device, field path, row
/// offset) rather than by its text. Keys are unique, so the alignment is the longest run of
/// keys both sides hold in the same order (patience diff, `n log n`); a device or a
/// subsection on one side only is then one block, where a text diff (Myers) spent seconds
/// on the 60,000 lines a device-heavy dump adds. Lines with one key and other text are
/// changed; text diff is left to the stretches between keys, where both sides are short.
fn line_ops(old: &[String], new: &[String]) -> Vec<DiffOp> {
    let deadline = Instant::now() + DIFF_DEADLINE;
    let mut same = Vec::new();
    let (mut o, mut n) = (0, 0);
    let end = (old.len(), new.len());
    for (ko, kn) in common_keys(&keys(old), &keys(new)).into_iter().chain([end]) {
        // A stretch too long to align by text (Myers is quadratic there) is all changed.
        if o < ko && n < kn && (ko - o).saturating_mul(kn - n) <= MAX_TEXT_ALIGNMENT {
            let gap = capture_diff_slices_deadline(
                Algorithm::Myers,
                &old[o..ko],
                &new[n..kn],
                Some(deadline),
            );
            for op in gap {
                if let DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } = op
                {
                    same.extend((0..len).map(|i| (o + old_index + i, n + new_index + i)));
                }
            }
        }
        if (ko, kn) != end && old[ko] == new[kn] {
            same.push((ko, kn));
        }
        (o, n) = (ko + 1, kn + 1);
    }
    ops_between(&same, end)
}

/// Index pairs of keys found once on each side, the longest sequence of them in the same
/// order on both (patience sorting).
fn common_keys<K: std::hash::Hash + Eq>(old: &[K], new: &[K]) -> Vec<(usize, usize)> {
    use std::collections::HashMap;
    let mut in_old: HashMap<&K, usize> = HashMap::new();
    for k in old {
        *in_old.entry(k).or_default() += 1;
    }
    // Per key: how many times it is in new, and where (the first time).
    let mut in_new: HashMap<&K, (usize, usize)> = HashMap::new();
    for (j, k) in new.iter().enumerate() {
        in_new.entry(k).or_insert((0, j)).0 += 1;
    }
    let pairs: Vec<(usize, usize)> = old
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match (in_old.get(k), in_new.get(k)) {
            (Some(1), Some(&(1, j))) => Some((i, j)),
            _ => None,
        })
        .collect();
    // Longest increasing subsequence of the new-side indexes: `tops[len]` ends the best
    // run of length len + 1; `back` links each pair to its predecessor.
    let mut tops: Vec<usize> = Vec::new();
    let mut back: Vec<Option<usize>> = vec![None; pairs.len()];
    for (p, &(_, j)) in pairs.iter().enumerate() {
        let len = tops.partition_point(|&t| pairs[t].1 < j);
        back[p] = len.checked_sub(1).map(|l| tops[l]);
        if len == tops.len() {
            tops.push(p);
        } else {
            tops[len] = p;
        }
    }
    let mut run = Vec::with_capacity(tops.len());
    let mut at = tops.last().copied();
    while let Some(p) = at {
        run.push(pairs[p]);
        at = back[p];
    }
    run.reverse();
    run
}

/// Diff ops from the increasing pairs of equal lines: runs of them are equal, what lies
/// between is deleted, inserted or replaced.
fn ops_between(same: &[(usize, usize)], end: (usize, usize)) -> Vec<DiffOp> {
    let mut ops = Vec::new();
    let (mut o, mut n) = (0, 0);
    let mut i = 0;
    while o < end.0 || n < end.1 {
        let (so, sn) = same.get(i).copied().unwrap_or(end);
        match (so - o, sn - n) {
            (0, 0) => {
                let len = same[i..]
                    .iter()
                    .enumerate()
                    .take_while(|&(k, &(a, b))| (a, b) == (o + k, n + k))
                    .count();
                ops.push(DiffOp::Equal {
                    old_index: o,
                    new_index: n,
                    len,
                });
                (o, n, i) = (o + len, n + len, i + len);
            }
            (old_len, 0) => ops.push(DiffOp::Delete {
                old_index: o,
                old_len,
                new_index: n,
            }),
            (0, new_len) => ops.push(DiffOp::Insert {
                old_index: o,
                new_index: n,
                new_len,
            }),
            (old_len, new_len) => ops.push(DiffOp::Replace {
                old_index: o,
                old_len,
                new_index: n,
                new_len,
            }),
        }
        (o, n) = (so.max(o), sn.max(n));
    }
    ops
}

/// Each line's key: its device's `[idstr (instance)]`, and within the device the field
/// path, with the offset for a row of a long buffer (`  tx.data +0x0010`).
fn keys(doc: &[String]) -> Vec<(&str, &str)> {
    let mut device = "";
    doc.iter()
        .map(|line| {
            if line.starts_with('[') {
                device = line.find(']').map_or(line.as_str(), |end| &line[..=end]);
                (device, "")
            } else {
                let end = [" = ", ": ", " ("]
                    .iter()
                    .filter_map(|sep| line.find(sep))
                    .min()
                    .unwrap_or(line.len());
                (device, &line[..end])
            }
        })
        .collect()
}

/// `start,len` in unified-diff terms: 1-based, and an empty range names the line before.
fn hunk_range(range: &std::ops::Range<usize>) -> String {
    match range.len() {
        1 => format!("{}", range.start + 1),
        0 => format!("{},0", range.start),
        len => format!("{},{len}", range.start + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    /// Every section of either document, in order (new's order, old-only ones after the
    /// section they follow in old).
    fn hunks(old: &[String], new: &[String], context: usize) -> Vec<Hunk> {
        let names = |d: &[String]| -> Vec<String> {
            d.iter()
                .filter_map(|l| header_name(l))
                .map(String::from)
                .collect()
        };
        let mut order = names(new);
        let mut previous = 0;
        for name in names(old) {
            match order.iter().position(|n| *n == name) {
                Some(at) => previous = at + 1,
                None => {
                    order.insert(previous, name);
                    previous += 1;
                }
            }
        }
        let all: HashSet<&str> = order.iter().map(String::as_str).collect();
        section_hunks(old, new, &order, &all, context)
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
    fn a_device_on_one_side_is_one_block_even_when_its_lines_repeat_others() {
        let old = doc(&[
            "[stream]",
            "[apic (0)] version 3",
            "  id = 0x00",
            "  tpr = 0x00",
            "[cpu (0)] version 12",
            "  env.eip = 0x0000fff0",
        ]);
        let new = doc(&[
            "[stream]",
            "[apic (0)] version 3",
            "  id = 0x00",
            "  tpr = 0x00",
            "[apic (1)] version 3",
            "  id = 0x01",
            "  tpr = 0x00",
            "[cpu (0)] version 12",
            "  env.eip = 0x0000fff1",
        ]);
        let hunks = hunks(&old, &new, 0);
        let lines = |h: &Hunk| -> Vec<String> {
            h.lines
                .iter()
                .map(|(tag, text)| format!("{tag}{text}"))
                .collect()
        };
        assert_eq!(hunks.len(), 2);
        assert_eq!(hunks[0].range, "@@ -4,0 +5,3 @@");
        assert_eq!(
            lines(&hunks[0]),
            ["+[apic (1)] version 3", "+  id = 0x01", "+  tpr = 0x00"]
        );
        assert_eq!(
            lines(&hunks[1]),
            ["-  env.eip = 0x0000fff0", "+  env.eip = 0x0000fff1"]
        );
        assert_eq!(hunks[1].device, "[cpu (0)] version 12");
    }

    #[test]
    fn lines_without_a_unique_key_are_aligned_by_text() {
        // Two rows with one key (a field listed twice): the text diff between keys keeps
        // the unchanged one out of the diff.
        let old = doc(&[
            "[d (0)] version 1",
            "  x = 0x01",
            "  x = 0x02",
            "  y = 0x03",
        ]);
        let new = doc(&[
            "[d (0)] version 1",
            "  x = 0x01",
            "  x = 0x05",
            "  y = 0x03",
        ]);
        let hunks = hunks(&old, &new, 0);
        assert_eq!(hunks.len(), 1);
        assert_eq!(hunks[0].range, "@@ -3 +3 @@");
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
