//! `migdiff report`: a self-contained comparison for a bug tracker. Markdown pastes into
//! GitLab and GitHub issues; HTML is one file with no external assets, a collapsible
//! section per device and the terminal's colours. Neither holds guest memory: RAM appears
//! only as page counts, digests and offsets.

use std::io::{self, Write};

use similar::ChangeTag;

use super::document::header_name;
use super::report::{summary_rows, verdict, InputInfo, SUMMARY_COLUMNS};
use super::unified::{Hunk, Labels};
use super::{count, Style};
use crate::compare::Comparison;

/// Everything a report shows.
pub struct Report<'a> {
    pub labels: Labels<'a>,
    pub old: &'a InputInfo,
    pub new: &'a InputInfo,
    pub comparison: &'a Comparison,
    pub notes: &'a [(&'a str, String)],
    pub hunks: &'a [Hunk],
}

const FOOTER: &str =
    "Guest RAM is summarized as page counts and digests: this report holds no memory contents.";

/// Rows of the inputs table: (label, old, new).
fn input_rows(r: &Report<'_>) -> Vec<(&'static str, String, String)> {
    let both = |f: &dyn Fn(&InputInfo) -> String| (f(r.old), f(r.new));
    let rows: [(&str, (String, String)); 7] = [
        ("file", both(&|i| i.path.clone())),
        ("size", both(&|i| format!("{} bytes", i.size))),
        ("sha256", both(&|i| i.sha256.clone().unwrap_or_default())),
        ("input", both(&|i| i.container.clone())),
        (
            "machine",
            both(&|i| i.machine.clone().unwrap_or_else(|| "(none)".into())),
        ),
        ("devices", both(&|i| i.devices.to_string())),
        (
            "vmdesc",
            both(&|i| {
                i.vmdesc_bytes
                    .map_or("(none)".into(), |n| format!("{n} bytes"))
            }),
        ),
    ];
    rows.into_iter().map(|(k, (o, n))| (k, o, n)).collect()
}

fn diff_line(tag: ChangeTag, text: &str) -> String {
    let sign = match tag {
        ChangeTag::Equal => ' ',
        ChangeTag::Delete => '-',
        ChangeTag::Insert => '+',
    };
    format!("{sign}{text}")
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// GitHub and GitLab take comments of at most this many characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// A Markdown report that fits a comment: the whole report when it fits, else a trimmed one
/// that names `full_diff_file`, and the text that file should hold.
pub struct Markdown {
    pub report: String,
    /// What `migdiff OLD NEW` prints (every note, every hunk): set when the report was
    /// trimmed.
    pub full_diff: Option<String>,
}

/// The Markdown report, at most `limit` characters when it can be: what does not fit is
/// left out, hunks of devices with changed values or schema last, then RAM, then devices
/// present on one side (then notes, from the end), and a line says what and where it is.
pub fn markdown(r: &Report<'_>, limit: usize, full_diff_file: Option<&str>) -> Markdown {
    let all: Vec<&Hunk> = r.hunks.iter().collect();
    let whole = markdown_text(r, r.notes, &all, None);
    if whole.chars().count() <= limit {
        return Markdown {
            report: whole,
            full_diff: None,
        };
    }
    let mut full_diff = Vec::new();
    let full_diff = super::report::write_preamble(
        &mut full_diff,
        r.notes,
        &r.comparison.counts,
        Style::default(),
    )
    .and_then(|()| {
        super::unified::write_unified(&mut full_diff, &r.labels, r.hunks, Style::default())
    })
    .map(|()| String::from_utf8_lossy(&full_diff).into_owned())
    .ok();
    let left_out = |notes: usize, chosen: &[usize]| LeftOut {
        notes: r.notes.len() - notes,
        hunks: r.hunks.len() - chosen.len(),
        devices: devices_left_out(r.hunks, chosen),
        file: full_diff_file,
        limit,
    };
    // Notes first, as many as fit with no hunk; then hunks by importance.
    let note_sizes = r.notes.iter().map(|n| note_line(n).chars().count());
    let skeleton = |notes: usize| {
        markdown_text(r, &r.notes[..notes], &[], Some(&left_out(notes, &[])))
            .chars()
            .count()
    };
    let mut notes = r.notes.len();
    let mut size = skeleton(notes);
    let note_sizes: Vec<usize> = note_sizes.collect();
    while size > limit && notes > 0 {
        notes -= 1;
        size -= note_sizes[notes];
    }
    let mut by_importance: Vec<(usize, &Hunk)> = r.hunks.iter().enumerate().collect();
    let rank = importance(r.comparison);
    by_importance.sort_by_key(|(at, hunk)| (rank(hunk), *at));
    // The diff block's fence and <details> lines, and the longer left-out line.
    let mut used = size + 200;
    let mut chosen: Vec<usize> = Vec::new();
    for (at, hunk) in by_importance {
        let cost = hunk_lines(hunk)
            .map(|l| l.chars().count() + 1)
            .sum::<usize>();
        if used + cost <= limit {
            used += cost;
            chosen.push(at);
        }
    }
    loop {
        chosen.sort_unstable();
        let shown: Vec<&Hunk> = chosen.iter().map(|&at| &r.hunks[at]).collect();
        let report = markdown_text(
            r,
            &r.notes[..notes],
            &shown,
            Some(&left_out(notes, &chosen)),
        );
        if report.chars().count() <= limit || chosen.is_empty() {
            return Markdown { report, full_diff };
        }
        // The estimate was short: drop the least important hunk shown.
        let least = chosen
            .iter()
            .copied()
            .max_by_key(|&at| (rank(&r.hunks[at]), at));
        chosen.retain(|&at| Some(at) != least);
    }
}

/// A hunk's rank: 0 for the stream and devices with schema or value differences, 1 for
/// RAM, 2 for devices present on one side only.
fn importance(cmp: &Comparison) -> impl Fn(&Hunk) -> u8 {
    let rows = summary_rows(cmp);
    move |hunk: &Hunk| {
        let name = header_name(&hunk.device).unwrap_or_default();
        match rows.iter().find(|(device, _)| device == name) {
            _ if name == "stream" => 0,
            Some((_, [_, schema, values, _])) if schema + values > 0 => 0,
            Some((_, [_, _, _, ram])) if *ram > 0 => 1,
            _ => 2,
        }
    }
}

/// Names of the devices with a hunk whose index is not in `chosen` (sorted), in order,
/// each once.
fn devices_left_out(all: &[Hunk], chosen: &[usize]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let left_out = (0..all.len()).filter(|at| chosen.binary_search(at).is_err());
    for hunk in left_out.map(|at| &all[at]) {
        let name = header_name(&hunk.device).unwrap_or(&hunk.device);
        if out.last().map(String::as_str) != Some(name) {
            out.push(name.to_string());
        }
    }
    out
}

/// What a trimmed report left out, and where the whole diff is.
struct LeftOut<'a> {
    notes: usize,
    hunks: usize,
    devices: Vec<String>,
    file: Option<&'a str>,
    limit: usize,
}

impl std::fmt::Display for LeftOut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMED: usize = 10;
        write!(
            f,
            "Trimmed to fit a {}-character comment: left out {}",
            self.limit,
            count(self.hunks, "hunk")
        )?;
        if !self.devices.is_empty() {
            let named: Vec<String> = self
                .devices
                .iter()
                .take(NAMED)
                .map(|d| format!("`{}`", md_cell(d)))
                .collect();
            write!(f, " (of {}", named.join(", "))?;
            if self.devices.len() > NAMED {
                write!(
                    f,
                    " and {} more",
                    count(self.devices.len() - NAMED, "device")
                )?;
            }
            write!(f, ")")?;
        }
        if self.notes > 0 {
            write!(f, " and {}", count(self.notes, "note"))?;
        }
        match self.file {
            Some(file) => write!(f, ". The full diff is in `{file}`, beside this report."),
            None => write!(f, ". `migdiff report -o FILE` writes the full diff beside FILE; `migdiff OLD NEW` prints it."),
        }
    }
}

fn note_line((tag, text): &(&str, String)) -> String {
    format!("- **{tag}** `{}`\n", text.replace('`', "'"))
}

/// A hunk as diff lines: its `@@` header, then each line with its sign.
fn hunk_lines(hunk: &Hunk) -> impl Iterator<Item = String> + '_ {
    std::iter::once(format!("{} {}", hunk.range, hunk.device))
        .chain(hunk.lines.iter().map(|(t, l)| diff_line(*t, l)))
}

/// The report with `notes` and `hunks` of all there are, and what was left out.
fn markdown_text(
    r: &Report<'_>,
    notes: &[(&str, String)],
    hunks: &[&Hunk],
    left_out: Option<&LeftOut<'_>>,
) -> String {
    use std::fmt::Write as _;
    let mut w = String::new();
    let _ = writeln!(
        w,
        "# migdiff report: `{}` vs `{}`\n",
        r.labels.old, r.labels.new
    );
    let _ = writeln!(w, "**{}**\n", verdict(&r.comparison.counts));
    if let Some(left_out) = left_out {
        let _ = writeln!(w, "> {left_out}\n");
    }
    let _ = writeln!(w, "| | old | new |\n|---|---|---|");
    for (label, old, new) in input_rows(r) {
        let _ = writeln!(w, "| {label} | `{}` | `{}` |", md_cell(&old), md_cell(&new));
    }
    let rows = summary_rows(r.comparison);
    if !rows.is_empty() {
        let [p, s, v, ram] = SUMMARY_COLUMNS;
        let _ = writeln!(w, "\n## Differences by device\n\n| device | {p} | {s} | {v} | {ram} |\n|---|--:|--:|--:|--:|");
        for (device, [a, b, c, d]) in &rows {
            let _ = writeln!(w, "| `{}` | {a} | {b} | {c} | {d} |", md_cell(device));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(w, "\n## Notes\n");
        for note in notes {
            w.push_str(&note_line(note));
        }
    }
    if !hunks.is_empty() {
        let lines: Vec<String> = hunks.iter().flat_map(|h| hunk_lines(h)).collect();
        // A fence longer than any run of backticks in the diff.
        let fence = "`".repeat(
            3 + lines
                .iter()
                .map(|l| l.matches('`').count())
                .max()
                .unwrap_or(0),
        );
        let _ = writeln!(
            w,
            "\n## Diff\n\n<details><summary>{}</summary>\n",
            count(hunks.len(), "hunk")
        );
        let _ = writeln!(w, "{fence}diff\n--- {}\n+++ {}", r.labels.old, r.labels.new);
        for line in lines {
            w.push_str(&line);
            w.push('\n');
        }
        let _ = writeln!(w, "{fence}\n\n</details>");
    }
    let _ = writeln!(w, "\n---\nmigdiff {}. {FOOTER}", env!("CARGO_PKG_VERSION"));
    w
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Same palette as the terminal: red removed, green added, cyan hunks, yellow notes.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
td.n{text-align:right}code,pre{font-family:ui-monospace,monospace;font-size:.9em}\
pre{background:#f8f8f8;padding:.5em;overflow-x:auto}.del{color:#c00}.ins{color:#080}\
.hunk{color:#088}.tag{color:#960;font-weight:bold}summary{cursor:pointer;font-family:ui-monospace,monospace}\
.verdict{font-weight:bold;font-size:1.1em}";

pub fn write_html(w: &mut dyn Write, r: &Report<'_>) -> io::Result<()> {
    let title = format!("migdiff report: {} vs {}", r.labels.old, r.labels.new);
    writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    )?;
    writeln!(
        w,
        "<title>{}</title><style>{STYLE}</style></head><body>",
        html(&title)
    )?;
    writeln!(
        w,
        "<h1>{}</h1>\n<p class=\"verdict\">{}</p>",
        html(&title),
        html(&verdict(&r.comparison.counts))
    )?;
    writeln!(w, "<table><tr><th></th><th>old</th><th>new</th></tr>")?;
    for (label, old, new) in input_rows(r) {
        writeln!(
            w,
            "<tr><th>{label}</th><td><code>{}</code></td><td><code>{}</code></td></tr>",
            html(&old),
            html(&new)
        )?;
    }
    writeln!(w, "</table>")?;
    let rows = summary_rows(r.comparison);
    if !rows.is_empty() {
        writeln!(
            w,
            "<h2>Differences by device</h2><table><tr><th>device</th>"
        )?;
        for column in SUMMARY_COLUMNS {
            write!(w, "<th>{column}</th>")?;
        }
        writeln!(w, "</tr>")?;
        for (device, counts) in &rows {
            write!(w, "<tr><td><code>{}</code></td>", html(device))?;
            for n in counts {
                write!(w, "<td class=\"n\">{n}</td>")?;
            }
            writeln!(w, "</tr>")?;
        }
        writeln!(w, "</table>")?;
    }
    if !r.notes.is_empty() {
        writeln!(w, "<h2>Notes</h2><pre>")?;
        for (tag, text) in r.notes {
            writeln!(w, "<span class=\"tag\">{tag:<7}</span> {}", html(text))?;
        }
        writeln!(w, "</pre>")?;
    }
    if !r.hunks.is_empty() {
        writeln!(
            w,
            "<h2>Diff</h2><p><code>--- {}</code><br><code>+++ {}</code></p>",
            html(r.labels.old),
            html(r.labels.new)
        )?;
        // One collapsible section per device, its hunks in order.
        let mut devices: Vec<(&str, Vec<&Hunk>)> = Vec::new();
        for hunk in r.hunks {
            match devices.last_mut() {
                Some((device, hunks)) if *device == hunk.device => hunks.push(hunk),
                _ => devices.push((&hunk.device, vec![hunk])),
            }
        }
        for (device, hunks) in devices {
            writeln!(w, "<details open><summary>{}</summary><pre>", html(device))?;
            for hunk in hunks {
                writeln!(w, "<span class=\"hunk\">{}</span>", html(&hunk.range))?;
                for (tag, text) in &hunk.lines {
                    let line = html(&diff_line(*tag, text));
                    match tag {
                        ChangeTag::Equal => writeln!(w, "{line}")?,
                        ChangeTag::Delete => writeln!(w, "<span class=\"del\">{line}</span>")?,
                        ChangeTag::Insert => writeln!(w, "<span class=\"ins\">{line}</span>")?,
                    }
                }
            }
            writeln!(w, "</pre></details>")?;
        }
    }
    writeln!(
        w,
        "<hr><p>migdiff {}. {FOOTER}</p>\n</body></html>",
        env!("CARGO_PKG_VERSION")
    )
}
