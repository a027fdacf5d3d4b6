//! A unified diff (`--- OLD`, `+++ NEW`, `@@` hunks) of two normalized documents, the hunks
//! that change the sections a comparison counts differences in, with the device header of
//! each hunk after the `@@` (as `git diff` shows the enclosing function). `patch` applies
//! it to one document and gives the other.

use std::collections::HashSet;
use std::io::{self, Write};
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

/// One hunk: its `@@ -a,b +c,d @@` range, the section of its first change, and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub range: String,
    /// The `[device]` header line of the section of the hunk's first change (as `git diff`
    /// names the enclosing function); its context may start in the section before, and its
    /// lines run on into the next sections, each after its header line.
    pub device: String,
    pub lines: Vec<(ChangeTag, String)>,
}

/// The hunks of a line diff of two whole documents, aligned by field, with `context` lines
/// around each change, that change a section in `sections` (display names, `cpu (0)`).
/// Context runs on across sections and hunks closer than twice the context merge, as
/// `diff -u` does: hunks cut at section ends had short context, which `patch` reads as
/// "at the end of the file" and refused.
pub fn unified_hunks(
    old: &[String],
    new: &[String],
    sections: &HashSet<&str>,
    context: usize,
) -> Vec<Hunk> {
    let (old_in, new_in) = (section_of_lines(old), section_of_lines(new));
    let mut out = Vec::new();
    for group in group_diff_ops(line_ops(old, new), context) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let counted = group.iter().any(|op| {
            let (o, n) = (op.old_range(), op.new_range());
            op.tag() != similar::DiffTag::Equal
                && (o
                    .clone()
                    .any(|i| sections.contains(name_of(old, &old_in, i)))
                    || n.clone()
                        .any(|i| sections.contains(name_of(new, &new_in, i))))
        });
        if !counted {
            continue;
        }
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        // Named after the section of its first change, not of its first line of context.
        let header = group
            .iter()
            .find(|op| op.tag() != similar::DiffTag::Equal)
            .and_then(|op| match op.old_range() {
                o if o.is_empty() => new_in.get(op.new_range().start).and_then(|&at| new.get(at)),
                o => old_in.get(o.start).and_then(|&at| old.get(at)),
            });
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
            device: header.cloned().unwrap_or_default(),
            lines,
        });
    }
    out
}

/// The display name of the section line `line` of `doc` is in, given [`section_of_lines`].
fn name_of<'d>(doc: &'d [String], heads: &[usize], line: usize) -> &'d str {
    heads
        .get(line)
        .and_then(|&at| doc.get(at))
        .map_or("", |header| header_name(header).unwrap_or_default())
}

/// For each line of `doc`, the index of the section header line it is under (0 before
/// any).
fn section_of_lines(doc: &[String]) -> Vec<usize> {
    let mut at = 0;
    doc.iter()
        .enumerate()
        .map(|(i, line)| {
            if header_name(line).is_some() {
                at = i;
            }
            at
        })
        .collect()
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
    use crate::compare::{compare, Config};
    use crate::filter::{Filter, DEFAULT_IGNORES};
    use crate::render::document::{document, one_sided, View};

    /// Under ignores, the diff is one of the two documents less what was set aside: ignored
    /// fields left out, masked bytes as `..` (CMOS clock bytes here, in a context line),
    /// devices on one side only summarized. Applied with an independent patch tool, its
    /// hunks turn one into the other.
    #[test]
    fn under_default_ignores_the_diff_patches_the_documents_less_what_is_set_aside() {
        let decode = |name: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata")
                .join(name);
            crate::decode(&std::fs::read(path).unwrap(), None).unwrap()
        };
        let (old, new) = (decode("pc10-stopped.mig"), decode("pc10-smp2.mig"));
        let config = Config {
            filter: Filter::new(DEFAULT_IGNORES).unwrap(),
            ..Config::default()
        };
        let cmp = compare(&old, &new, &config);
        let (old_quiet, new_quiet) = cmp.quiet_subjects();
        let summarized = one_sided(&cmp);
        let lines = |dump, quiet| {
            let view = View {
                filter: &config.filter,
                quiet,
                summarized: &summarized,
            };
            document(dump, view)
        };
        let (old_lines, new_lines) = (lines(&old, &old_quiet), lines(&new, &new_quiet));
        let sections: HashSet<&str> = cmp.counted().map(|c| c.device.as_str()).collect();
        let hunks = unified_hunks(&old_lines, &new_lines, &sections, 3);
        let mut diff = Vec::new();
        let labels = Labels { old: "a", new: "b" };
        write_unified(&mut diff, &labels, &hunks, Style { color: false }).unwrap();
        let diff = String::from_utf8(diff).unwrap();
        assert!(
            diff.contains("\n   cmos_data +0x0030: 00 7c .. 00"),
            "{diff}"
        );
        let (old_text, new_text) = (old_lines.join("\n") + "\n", new_lines.join("\n") + "\n");
        assert!(old_text != new_text);
        let patch = diffy::Patch::from_str(&diff).expect("a valid unified diff");
        assert!(diffy::apply(&old_text, &patch).expect("the hunks apply") == new_text);
    }

    fn doc(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    /// The hunks of every section of either document.
    fn hunks(old: &[String], new: &[String], context: usize) -> Vec<Hunk> {
        let all: HashSet<&str> = old
            .iter()
            .chain(new)
            .filter_map(|l| header_name(l))
            .collect();
        unified_hunks(old, new, &all, context)
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
