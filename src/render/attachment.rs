//! `migdiff report`: a self-contained comparison for a bug tracker. Markdown pastes into
//! GitLab and GitHub issues; HTML is one file with no external assets, a collapsible
//! section per device and the terminal's colours. Neither holds guest memory: RAM appears
//! only as page counts, digests and offsets.

use std::io::{self, Write};

use similar::ChangeTag;

use super::report::{summary_rows, verdict, InputInfo, SUMMARY_COLUMNS};
use super::unified::{Hunk, Labels};
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

pub fn write_markdown(w: &mut dyn Write, r: &Report<'_>) -> io::Result<()> {
    writeln!(
        w,
        "# migdiff report: `{}` vs `{}`\n",
        r.labels.old, r.labels.new
    )?;
    writeln!(w, "**{}**\n", verdict(&r.comparison.counts))?;
    writeln!(w, "| | old | new |\n|---|---|---|")?;
    for (label, old, new) in input_rows(r) {
        writeln!(w, "| {label} | `{}` | `{}` |", md_cell(&old), md_cell(&new))?;
    }
    let rows = summary_rows(r.comparison);
    if !rows.is_empty() {
        let [p, s, v, ram] = SUMMARY_COLUMNS;
        writeln!(w, "\n## Differences by device\n\n| device | {p} | {s} | {v} | {ram} |\n|---|--:|--:|--:|--:|")?;
        for (device, [a, b, c, d]) in &rows {
            writeln!(w, "| `{}` | {a} | {b} | {c} | {d} |", md_cell(device))?;
        }
    }
    if !r.notes.is_empty() {
        writeln!(w, "\n## Notes\n")?;
        for (tag, text) in r.notes {
            writeln!(w, "- **{tag}** `{}`", text.replace('`', "'"))?;
        }
    }
    if !r.hunks.is_empty() {
        let lines: Vec<String> = r
            .hunks
            .iter()
            .flat_map(|h| {
                std::iter::once(format!("{} {}", h.range, h.device))
                    .chain(h.lines.iter().map(|(t, l)| diff_line(*t, l)))
            })
            .collect();
        // A fence longer than any run of backticks in the diff.
        let fence = "`".repeat(
            3 + lines
                .iter()
                .map(|l| l.matches('`').count())
                .max()
                .unwrap_or(0),
        );
        writeln!(
            w,
            "\n## Diff\n\n<details><summary>{} hunks</summary>\n",
            r.hunks.len()
        )?;
        writeln!(w, "{fence}diff\n--- {}\n+++ {}", r.labels.old, r.labels.new)?;
        for line in lines {
            writeln!(w, "{line}")?;
        }
        writeln!(w, "{fence}\n\n</details>")?;
    }
    writeln!(w, "\n---\nmigdiff {}. {FOOTER}", env!("CARGO_PKG_VERSION"))
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Same palette as the terminal: red removed, green added, cyan hunks, yellow notes.
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}\
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
