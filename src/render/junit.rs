//! `--format junit`: one test case per device (every device of either dump), failing when
//! the device has a difference the gate does not allow; the failure text lists them.

use std::io::{self, Write};

use crate::compare::{Comparison, Disposition, Finding};
use crate::render::count;
use crate::render::report::describe;

/// Escapes text for XML attributes and character data.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to write other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Writes the report: one case per section of either dump (`stream`, `ram`, `cpu (0)`, ...).
pub fn write_junit(w: &mut dyn Write, suite: &str, cmp: &Comparison) -> io::Result<()> {
    let devices = &cmp.devices;
    let of = |device: &str, counted: bool| -> Vec<&Finding> {
        cmp.findings
            .iter()
            .filter(|f| f.change.device == device)
            .filter(|f| match f.disposition {
                Disposition::Counted => counted,
                Disposition::Allowed { .. } | Disposition::Tolerated => !counted,
                Disposition::Ignored { .. } => false,
            })
            .collect()
    };
    let failures = devices.iter().filter(|d| !of(d, true).is_empty()).count();
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="migdiff" tests="{}" failures="{failures}">"#,
        devices.len()
    )?;
    writeln!(
        w,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="0">"#,
        xml(suite),
        devices.len()
    )?;
    for device in devices {
        write!(
            w,
            r#"    <testcase classname="{}" name="{}""#,
            xml(suite),
            xml(device)
        )?;
        let changes = of(device, true);
        let allowed = of(device, false);
        if changes.is_empty() && allowed.is_empty() {
            writeln!(w, "/>")?;
            continue;
        }
        writeln!(w, ">")?;
        if !changes.is_empty() {
            let message = count(changes.len(), "difference");
            let body: Vec<String> = changes.iter().map(|f| describe(&f.change)).collect();
            writeln!(
                w,
                r#"      <failure message="{message}" type="migdiff">{}</failure>"#,
                xml(&body.join("\n"))
            )?;
        }
        if !allowed.is_empty() {
            let body: Vec<String> = allowed
                .iter()
                .map(|f| {
                    let why = match f.disposition {
                        Disposition::Tolerated => "not breaking",
                        _ => "allowed",
                    };
                    format!("{why}: {}", describe(&f.change))
                })
                .collect();
            writeln!(
                w,
                "      <system-out>{}</system-out>",
                xml(&body.join("\n"))
            )?;
        }
        writeln!(w, "    </testcase>")?;
    }
    writeln!(w, "  </testsuite>")?;
    writeln!(w, "</testsuites>")
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            super::xml("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;?"
        );
    }
}
