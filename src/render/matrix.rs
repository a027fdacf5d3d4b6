//! `migdiff gate`'s outputs: the matrix as text, JUnit (three cases per machine type:
//! forward, backward, differences), Markdown and HTML. All of them are made of the same
//! cells and detail lines, so they cannot disagree.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::attachment::STYLE;
use super::junit::xml;
use super::report::{describe, rule_label};
use super::{Paint, Style};
use crate::check::{Answer, Severity, Verdict};
use crate::matrix::{Compared, Matrix, Outcome, Row, Side};

const COLUMNS: [&str; 6] = [
    "machine type",
    "forward",
    "backward",
    "unexpected",
    "identical",
    "allowed",
];

fn answer(verdict: &Verdict) -> &'static str {
    match verdict.answer {
        Answer::Loads => "loads",
        Answer::Refused => "REFUSED",
        Answer::Undecided => "not decided",
    }
}

/// The row's cells, in [`COLUMNS`] order.
fn cells(row: &Row) -> [String; 6] {
    match &row.outcome {
        Outcome::Compared(c) => [
            row.machine.clone(),
            answer(&c.forward).into(),
            answer(&c.backward).into(),
            c.unexpected.len().to_string(),
            c.identical.len().to_string(),
            c.allowed.to_string(),
        ],
        Outcome::Trouble { .. } => [
            row.machine.clone(),
            "trouble".into(),
            "trouble".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ],
    }
}

/// `qemu-system-x86_64 (QEMU 10.0.2)`.
fn side(side: &Side) -> String {
    match side.versions.as_slice() {
        [] => side.qemu.clone(),
        versions => format!("{} (QEMU {})", side.qemu, versions.join(", ")),
    }
}

/// The one-line conclusion.
pub fn summary(m: &Matrix) -> String {
    let t = m.totals();
    let mut text = format!(
        "{}: {} load both ways, {} refused, {} not decided, {} trouble; \
         {} unexpected differences, {} identical on the wire",
        machine_count(t.machines),
        t.load_both_ways,
        t.refused,
        t.undecided,
        t.trouble,
        t.unexpected,
        t.identical
    );
    if !m.stale_rules.is_empty() {
        text.push_str(&format!("; {} stale allow rules", m.stale_rules.len()));
    }
    text
}

/// Why a direction did not simply load: each reason, tagged.
fn reasons(direction: &str, verdict: &Verdict) -> Vec<String> {
    verdict
        .reasons
        .iter()
        .map(|r| {
            let tag = match r.severity {
                Severity::Refused => "refused",
                Severity::Undecided => "not decided",
            };
            let detail = r
                .detail
                .as_ref()
                .map(|d| format!(" [{d}]"))
                .unwrap_or_default();
            format!("{direction} {tag}: {}: {}{detail}", r.subject, r.message)
        })
        .collect()
}

/// What a machine type's row does not show: trouble, reasons, unexpected differences.
fn details(row: &Row) -> Vec<String> {
    match &row.outcome {
        Outcome::Trouble { error } => vec![format!("trouble: {error}")],
        Outcome::Compared(c) => {
            let mut lines = reasons("forward", &c.forward);
            lines.extend(reasons("backward", &c.backward));
            lines.extend(
                c.unexpected
                    .iter()
                    .map(|change| format!("unexpected: {}", describe(change))),
            );
            lines
        }
    }
}

/// `1 machine type`, `47 machine types`.
pub fn machine_count(n: usize) -> String {
    match n {
        1 => "1 machine type".into(),
        n => format!("{n} machine types"),
    }
}

/// `on 1 machine type`, `on 47 machine types`.
fn on_machine_types(n: usize) -> String {
    format!("on {}", machine_count(n))
}

/// The differences identical on the wire, each once, with how many machine types show it.
fn identical(m: &Matrix) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for row in &m.rows {
        if let Outcome::Compared(c) = &row.outcome {
            for change in &c.identical {
                *seen.entry(describe(change)).or_default() += 1;
            }
        }
    }
    seen
}

fn stale_lines(m: &Matrix) -> Vec<String> {
    m.stale_rules
        .iter()
        .map(|rule| {
            format!(
                "{} [{}]: allowed nothing on any machine type it applies to",
                rule.pattern,
                rule_label(rule)
            )
        })
        .collect()
}

pub fn write_text(w: &mut dyn Write, m: &Matrix, style: Style) -> io::Result<()> {
    writeln!(
        w,
        "migdiff gate: old {}, new {}",
        side(&m.old),
        side(&m.new)
    )?;
    let rows: Vec<[String; 6]> = m.rows.iter().map(cells).collect();
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(String::len)
            .chain([COLUMNS[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..COLUMNS.len()).map(width).collect();
    let line = |cells: &[&str]| -> String {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            match i {
                0..=2 => text.push_str(&format!("{cell:<width$}  ")),
                _ => text.push_str(&format!("{cell:>width$}  ")),
            }
        }
        text.trim_end().to_string()
    };
    writeln!(w, "{}", style.paint(Paint::Header, &line(&COLUMNS)))?;
    for (row, cells) in m.rows.iter().zip(&rows) {
        let text = line(&cells.each_ref().map(String::as_str));
        let fails = match &row.outcome {
            Outcome::Compared(c) => c.fails(),
            Outcome::Trouble { .. } => true,
        };
        if fails {
            writeln!(w, "{}", style.paint(Paint::Removed, &text))?;
        } else {
            writeln!(w, "{text}")?;
        }
    }
    for row in &m.rows {
        for detail in details(row) {
            writeln!(w, "{}: {detail}", row.machine)?;
        }
    }
    let identical = identical(m);
    if !identical.is_empty() {
        writeln!(w, "identical on the wire (not failing):")?;
        for (text, n) in &identical {
            writeln!(w, "  {text} ({})", on_machine_types(*n))?;
        }
    }
    for stale in stale_lines(m) {
        writeln!(w, "stale   {stale}")?;
    }
    writeln!(w, "{}", style.paint(Paint::Header, &summary(m)))
}

pub fn write_junit(w: &mut dyn Write, m: &Matrix) -> io::Result<()> {
    let suite = format!("migdiff gate: {} -> {}", m.old.qemu, m.new.qemu);
    let mut cases: Vec<String> = Vec::new();
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    let case = |name: &str, body: Option<String>| match body {
        None => format!(
            r#"    <testcase classname="{}" name="{}"/>"#,
            xml(&suite),
            xml(name)
        ),
        Some(body) => format!(
            "    <testcase classname=\"{}\" name=\"{}\">\n{body}\n    </testcase>",
            xml(&suite),
            xml(name)
        ),
    };
    for row in &m.rows {
        let c: &Compared = match &row.outcome {
            Outcome::Compared(c) => c,
            Outcome::Trouble { error } => {
                errors += 1;
                let body = format!(
                    r#"      <error message="trouble" type="migdiff">{}</error>"#,
                    xml(error)
                );
                cases.push(case(&row.machine, Some(body)));
                continue;
            }
        };
        for (direction, verdict) in [("forward", &c.forward), ("backward", &c.backward)] {
            let why = xml(&reasons(direction, verdict).join("\n"));
            let body = match verdict.answer {
                Answer::Loads => None,
                Answer::Refused => {
                    failures += 1;
                    Some(format!(
                        r#"      <failure message="refused" type="migdiff">{why}</failure>"#
                    ))
                }
                Answer::Undecided => {
                    skipped += 1;
                    Some(format!(r#"      <skipped message="not decided: {why}"/>"#))
                }
            };
            cases.push(case(&format!("{} {direction}", row.machine), body));
        }
        let mut body = Vec::new();
        if !c.unexpected.is_empty() {
            failures += 1;
            let list: Vec<String> = c.unexpected.iter().map(describe).collect();
            body.push(format!(
                r#"      <failure message="{} unexpected differences" type="migdiff">{}</failure>"#,
                c.unexpected.len(),
                xml(&list.join("\n"))
            ));
        }
        if !c.identical.is_empty() {
            let list: Vec<String> = c
                .identical
                .iter()
                .map(|change| format!("identical on the wire: {}", describe(change)))
                .collect();
            body.push(format!(
                "      <system-out>{}</system-out>",
                xml(&list.join("\n"))
            ));
        }
        let body = (!body.is_empty()).then(|| body.join("\n"));
        cases.push(case(&format!("{} differences", row.machine), body));
    }
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    let counts = format!(
        r#"tests="{}" failures="{failures}" errors="{errors}" skipped="{skipped}""#,
        cases.len()
    );
    writeln!(w, r#"<testsuites name="migdiff gate" {counts}>"#)?;
    writeln!(w, r#"  <testsuite name="{}" {counts}>"#, xml(&suite))?;
    for case in &cases {
        writeln!(w, "{case}")?;
    }
    writeln!(w, "  </testsuite>")?;
    writeln!(w, "</testsuites>")
}

fn md(text: &str) -> String {
    text.replace('|', "\\|")
}

pub fn write_markdown(w: &mut dyn Write, m: &Matrix) -> io::Result<()> {
    writeln!(w, "# migdiff gate\n")?;
    writeln!(w, "- old: `{}`\n- new: `{}`\n", side(&m.old), side(&m.new))?;
    writeln!(w, "**{}**\n", summary(m))?;
    writeln!(w, "| {} |", COLUMNS.join(" | "))?;
    writeln!(w, "|---|---|---|--:|--:|--:|")?;
    for row in &m.rows {
        let cells = cells(row).map(|c| md(&c));
        writeln!(w, "| `{}` | {} |", cells[0], cells[1..].join(" | "))?;
    }
    let failing: Vec<(&Row, Vec<String>)> = m
        .rows
        .iter()
        .map(|row| (row, details(row)))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    if !failing.is_empty() {
        writeln!(w, "\n## Details")?;
        for (row, lines) in failing {
            writeln!(w, "\n### `{}`\n", row.machine)?;
            for line in lines {
                writeln!(w, "- {}", md(&line))?;
            }
        }
    }
    let identical = identical(m);
    if !identical.is_empty() {
        writeln!(w, "\n## Identical on the wire (not failing)\n")?;
        for (text, n) in &identical {
            writeln!(w, "- `{}` ({})", md(text), on_machine_types(*n))?;
        }
    }
    let stale = stale_lines(m);
    if !stale.is_empty() {
        writeln!(w, "\n## Stale allow rules\n")?;
        for line in stale {
            writeln!(w, "- `{}`", md(&line))?;
        }
    }
    Ok(())
}

pub fn write_html(w: &mut dyn Write, m: &Matrix) -> io::Result<()> {
    writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>migdiff gate</title><style>{STYLE}</style></head><body>"
    )?;
    writeln!(
        w,
        "<h1>migdiff gate</h1>\n<p>old: <code>{}</code><br>new: <code>{}</code></p>\n\
         <p class=\"verdict\">{}</p>",
        xml(&side(&m.old)),
        xml(&side(&m.new)),
        xml(&summary(m))
    )?;
    write!(w, "<table><tr>")?;
    for column in COLUMNS {
        write!(w, "<th>{column}</th>")?;
    }
    writeln!(w, "</tr>")?;
    for row in &m.rows {
        let cells = cells(row);
        write!(w, "<tr><td><code>{}</code></td>", xml(&cells[0]))?;
        for (i, cell) in cells.iter().enumerate().skip(1) {
            let class = if i >= 3 { " class=\"n\"" } else { "" };
            write!(w, "<td{class}>{}</td>", xml(cell))?;
        }
        writeln!(w, "</tr>")?;
    }
    writeln!(w, "</table>")?;
    for row in &m.rows {
        let lines = details(row);
        if lines.is_empty() {
            continue;
        }
        writeln!(
            w,
            "<details open><summary>{}</summary><ul>",
            xml(&row.machine)
        )?;
        for line in lines {
            writeln!(w, "<li><code>{}</code></li>", xml(&line))?;
        }
        writeln!(w, "</ul></details>")?;
    }
    let identical = identical(m);
    if !identical.is_empty() {
        writeln!(w, "<h2>Identical on the wire (not failing)</h2><ul>")?;
        for (text, n) in &identical {
            writeln!(
                w,
                "<li><code>{}</code> ({})</li>",
                xml(text),
                on_machine_types(*n)
            )?;
        }
        writeln!(w, "</ul>")?;
    }
    let stale = stale_lines(m);
    if !stale.is_empty() {
        writeln!(w, "<h2>Stale allow rules</h2><ul>")?;
        for line in stale {
            writeln!(w, "<li><code>{}</code></li>", xml(&line))?;
        }
        writeln!(w, "</ul>")?;
    }
    writeln!(w, "</body></html>")
}
