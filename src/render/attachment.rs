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

/// Light and dark palettes (the system's choice, or the toggle's): red removed, green
/// added, cyan hunks, yellow notes, as on a terminal; changed bytes marked within a line.
pub(crate) const STYLE: &str = ":root{--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--code:#f6f8fa;\
--del:#b31d28;--del-bg:#ffebe9;--del-mark:#ffb3ad;--ins:#116329;--ins-bg:#dafbe1;--ins-mark:#8ce99a;\
--hunk:#0a6d7a;--tag:#8a5a00;--link:#0969da}\
:root[data-theme=dark]{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--code:#161b22;\
--del:#ff9492;--del-bg:#3c1618;--del-mark:#8e1519;--ins:#7ee787;--ins-bg:#12261e;--ins-mark:#1a6b32;\
--hunk:#56d4dd;--tag:#e3b341;--link:#4493f8}\
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){--bg:#0d1117;--fg:#e6edf3;\
--muted:#9198a1;--line:#3d444d;--code:#161b22;--del:#ff9492;--del-bg:#3c1618;--del-mark:#8e1519;\
--ins:#7ee787;--ins-bg:#12261e;--ins-mark:#1a6b32;--hunk:#56d4dd;--tag:#e3b341;--link:#4493f8}}\
body{font-family:system-ui,sans-serif;margin:2em;max-width:110em;background:var(--bg);color:var(--fg)}\
a{color:var(--link)}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid var(--line);padding:.2em .6em;text-align:left}td.n{text-align:right}\
code,pre{font-family:ui-monospace,monospace;font-size:.9em}\
pre{background:var(--code);padding:.5em;overflow-x:auto;margin:.3em 0 1em;line-height:1.4}\
.del{color:var(--del)}.ins{color:var(--ins)}pre>.del{background:var(--del-bg);display:inline-block;min-width:100%}\
pre>.ins{background:var(--ins-bg);display:inline-block;min-width:100%}\
.del mark{background:var(--del-mark);color:inherit}.ins mark{background:var(--ins-mark);color:inherit}\
.hunk{color:var(--hunk)}.tag{color:var(--tag);font-weight:bold}.muted{color:var(--muted)}\
details.dev{border-top:1px solid var(--line)}details.dev>summary{cursor:pointer;padding:.3em 0;\
font-family:ui-monospace,monospace}.verdict{font-weight:bold;font-size:1.1em}\
.tools{float:right}.tools input{margin-right:.5em}\
.tools input,.tools button{background:var(--code);color:var(--fg);border:1px solid var(--line);\
padding:.2em .5em;font:inherit}";

/// The filter box and the theme toggle: both hidden until this runs, so without scripts the
/// page is whole and still follows the system's theme.
const SCRIPT: &str = "(function(){var d=document,r=d.documentElement,f=d.getElementById('filter'),\
t=d.getElementById('theme');f.hidden=t.hidden=false;\
t.onclick=function(){var dark=r.dataset.theme?r.dataset.theme==='dark':\
matchMedia('(prefers-color-scheme: dark)').matches;r.dataset.theme=dark?'light':'dark'};\
f.oninput=function(){var q=f.value.toLowerCase();\
d.querySelectorAll('[data-device]').forEach(function(e){\
e.hidden=q!==''&&e.dataset.device.toLowerCase().indexOf(q)<0;\
if(q!==''&&!e.hidden&&e.tagName==='DETAILS')e.open=true})}})();";

/// One device's lines in the diff: the pieces of the hunks inside its section.
struct DeviceDiff<'h> {
    name: String,
    header: &'h str,
    /// Each piece: the hunk's range where the piece is the first of its hunk shown, and
    /// its lines.
    pieces: Vec<(Option<&'h str>, &'h [DiffLine])>,
}

type DiffLine = (ChangeTag, String);

/// The hunks cut at section headers and gathered per device, in order; a piece with no
/// change (context before a hunk's first change) is left out.
fn per_device(hunks: &[Hunk]) -> Vec<DeviceDiff<'_>> {
    let mut out: Vec<DeviceDiff<'_>> = Vec::new();
    for hunk in hunks {
        let mut starts: Vec<usize> = vec![0];
        starts.extend(
            hunk.lines
                .iter()
                .enumerate()
                .filter(|(i, (_, l))| *i > 0 && header_name(l).is_some())
                .map(|(i, _)| i),
        );
        let mut range = Some(hunk.range.as_str());
        for (k, &from) in starts.iter().enumerate() {
            let to = starts.get(k + 1).copied().unwrap_or(hunk.lines.len());
            let lines = &hunk.lines[from..to];
            if lines.iter().all(|(tag, _)| *tag == ChangeTag::Equal) {
                continue;
            }
            let header = match lines.first() {
                Some((_, l)) if header_name(l).is_some() => l.as_str(),
                _ => hunk.device.as_str(),
            };
            let name = header_name(header).unwrap_or(header).to_string();
            let range = range.take();
            match out.iter_mut().find(|d| d.name == name) {
                Some(device) => device.pieces.push((range, lines)),
                None => out.push(DeviceDiff {
                    name,
                    header,
                    pieces: vec![(range, lines)],
                }),
            }
        }
    }
    out
}

/// A removed line and the added line that replaces it, with the words (hex bytes, values)
/// that differ marked.
fn marked_pair(old: &str, new: &str) -> (String, String) {
    let diff = similar::TextDiff::from_words(old, new);
    let (mut o, mut n) = (String::new(), String::new());
    for change in diff.iter_all_changes() {
        let text = html(change.value());
        match change.tag() {
            ChangeTag::Equal => {
                o.push_str(&text);
                n.push_str(&text);
            }
            ChangeTag::Delete => o.push_str(&format!("<mark>{text}</mark>")),
            ChangeTag::Insert => n.push_str(&format!("<mark>{text}</mark>")),
        }
    }
    (o, n)
}

/// Diff lines as HTML: a run of removed lines followed by as many added ones is paired line
/// by line for [`marked_pair`].
fn write_lines(w: &mut dyn Write, lines: &[DiffLine]) -> io::Result<()> {
    let mut i = 0;
    while let Some((tag, text)) = lines.get(i) {
        let dels = lines[i..]
            .iter()
            .take_while(|(t, _)| *t == ChangeTag::Delete)
            .count();
        let inss = lines[i + dels..]
            .iter()
            .take_while(|(t, _)| *t == ChangeTag::Insert)
            .count();
        if dels > 0 && dels == inss {
            let (old, new) = (&lines[i..i + dels], &lines[i + dels..i + 2 * dels]);
            let marked: Vec<(String, String)> = old
                .iter()
                .zip(new)
                .map(|(o, n)| marked_pair(&o.1, &n.1))
                .collect();
            for (o, _) in &marked {
                writeln!(w, "<span class=\"del\">-{o}</span>")?;
            }
            for (_, n) in &marked {
                writeln!(w, "<span class=\"ins\">+{n}</span>")?;
            }
            i += 2 * dels;
            continue;
        }
        let line = html(&diff_line(*tag, text));
        match tag {
            ChangeTag::Equal => writeln!(w, "{line}")?,
            ChangeTag::Delete => writeln!(w, "<span class=\"del\">{line}</span>")?,
            ChangeTag::Insert => writeln!(w, "<span class=\"ins\">{line}</span>")?,
        }
        i += 1;
    }
    Ok(())
}

/// `d-cpu-0`: an HTML id for a device's section.
fn anchor(device: &str) -> String {
    let id: String = device
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("d-{id}")
}

pub fn write_html(w: &mut dyn Write, r: &Report<'_>) -> io::Result<()> {
    let title = format!("migdiff report: {} vs {}", r.labels.old, r.labels.new);
    writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"color-scheme\" content=\"light dark\">"
    )?;
    writeln!(
        w,
        "<title>{}</title><style>{STYLE}</style></head><body>",
        html(&title)
    )?;
    writeln!(
        w,
        "<div class=\"tools\"><input id=\"filter\" type=\"search\" placeholder=\"filter devices\" \
         hidden><button id=\"theme\" type=\"button\" hidden>light / dark</button></div>"
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
    let devices = per_device(r.hunks);
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
            let name = match devices.iter().any(|d| d.name == *device) {
                true => format!("<a href=\"#{}\">{}</a>", anchor(device), html(device)),
                false => html(device),
            };
            write!(
                w,
                "<tr data-device=\"{}\"><td><code>{name}</code></td>",
                html(device)
            )?;
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
    if !devices.is_empty() {
        writeln!(
            w,
            "<h2>Diff</h2><p><code>--- {}</code><br><code>+++ {}</code></p>",
            html(r.labels.old),
            html(r.labels.new)
        )?;
        for device in &devices {
            write_device(w, device, rows.iter().find(|(d, _)| *d == device.name))?;
        }
    }
    writeln!(
        w,
        "<hr><p>migdiff {}. {FOOTER}</p>\n<script>{SCRIPT}</script>\n</body></html>",
        env!("CARGO_PKG_VERSION")
    )
}

/// One device's section: open when its values, schema or RAM changed; a device on one side
/// only is collapsed, its summary line saying so.
fn write_device(
    w: &mut dyn Write,
    device: &DeviceDiff<'_>,
    row: Option<&(String, [usize; 4])>,
) -> io::Result<()> {
    let [_, schema, values, ram] = row.map_or([0; 4], |r| r.1);
    let every = |tag| {
        device
            .pieces
            .iter()
            .all(|(_, lines)| lines.iter().all(|(t, _)| *t == tag))
    };
    // A device on one side only says so, with its summary line when it has one.
    let body: Vec<&str> = device
        .pieces
        .iter()
        .flat_map(|(_, lines)| lines.iter().skip(1).map(|(_, l)| l.trim()))
        .collect();
    let summary = match body.as_slice() {
        [line] => format!(" {}", html(line)),
        lines => format!(" {}", count(lines.len(), "line")),
    };
    let side = if every(ChangeTag::Insert) {
        format!(" <span class=\"ins\">only in new</span>{summary}")
    } else if every(ChangeTag::Delete) {
        format!(" <span class=\"del\">only in old</span>{summary}")
    } else {
        String::new()
    };
    let changed = schema + values + ram > 0 || device.name == "stream";
    let mut counts = Vec::new();
    for (n, what) in [(schema, "schema"), (values, "value"), (ram, "RAM")] {
        match (n, what) {
            (0, _) => {}
            (n, "value") => counts.push(count(n, what)),
            (n, _) => counts.push(format!("{n} {what}")),
        }
    }
    writeln!(
        w,
        "<details class=\"dev\" id=\"{}\" data-device=\"{}\"{}><summary>{}{side} \
         <span class=\"muted\">{}</span></summary><pre>",
        anchor(&device.name),
        html(&device.name),
        if changed && side.is_empty() {
            " open"
        } else {
            ""
        },
        html(device.header),
        counts.join(", ")
    )?;
    for (range, lines) in &device.pieces {
        match range {
            Some(range) => writeln!(w, "<span class=\"hunk\">{}</span>", html(range))?,
            None => writeln!(w, "<span class=\"hunk\">…</span>")?,
        }
        write_lines(w, lines)?;
    }
    writeln!(w, "</pre></details>")
}
