//! The normalized text form of a dump: one line per field, devices under `[idstr (instance)]`
//! headers, long buffers as 16-byte rows with offsets. `migdiff show` prints it, and the
//! unified diff is a line diff of two of them, so `migdiff show` of each side piped to
//! `diff -u` gives the same hunks.
//!
//! Nothing process-local (section ids, byte offsets) appears in it, so two dumps of the
//! same state give the same text whatever QEMU build wrote them.

use xxhash_rust::xxh3::Xxh3;

use super::{format_value, hex_bytes, INLINE_BYTES};
use crate::diff::{device_name, subject};
use crate::explain;
use crate::filter::Filter;
use crate::tree::{Dump, Node, Struct, Value};

/// Lines of the normalized form. Fields the filter ignores are left out, and bytes it masks
/// print as `..`, so ignored differences do not show in a diff of two documents.
pub fn document(dump: &Dump, filter: &Filter) -> Vec<String> {
    let keep = |subject: &str| !filter.is_match(subject);
    let mut lines = vec!["[stream]".to_string()];
    let commands: Vec<&str> = dump
        .stream
        .commands
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let stream_fields = [
        (
            "machine",
            dump.machine.clone().unwrap_or_else(|| "(none)".into()),
        ),
        ("capabilities", dump.capabilities.join(",")),
        ("commands", commands.join(",")),
        ("page_size", dump.page_size.to_string()),
    ];
    for (name, value) in stream_fields {
        if keep(&subject("stream", name)) {
            lines.push(format!("  {name} = {value}"));
        }
    }

    if !dump.ram.is_empty() {
        lines.push("[ram]".to_string());
        for block in &dump.ram {
            if !keep(&subject("ram", &block.name)) {
                continue;
            }
            let mut hasher = Xxh3::new();
            for digest in &block.digests {
                hasher.update(&digest.to_le_bytes());
            }
            let pages = block.used_length / dump.page_size.max(1);
            let gpa = block
                .addr
                .map(|a| format!(" at GPA {a:#x}"))
                .unwrap_or_default();
            lines.push(format!(
                "  {} = {:#x} bytes{gpa}, {pages} pages ({} zero, {} data{}), digest {:016x}",
                block.name,
                block.used_length,
                block.zero_pages,
                block.data_pages,
                if block.opaque_pages > 0 {
                    format!(", {} xbzrle", block.opaque_pages)
                } else {
                    String::new()
                },
                hasher.digest()
            ));
        }
    }

    for device in dump.sorted_devices() {
        let name = device_name(device);
        if !keep(&name) {
            continue;
        }
        lines.push(format!("[{name}] version {}", device.version_id));
        let ctx = Ctx {
            idstr: &device.idstr,
            device: &name,
            filter,
        };
        struct_lines(&device.body, "", &ctx, &mut lines);
    }
    lines
}

/// Where the lines being written belong.
struct Ctx<'a> {
    idstr: &'a str,
    /// Display name, `cpu (0)`.
    device: &'a str,
    filter: &'a Filter,
}

fn struct_lines(s: &Struct, prefix: &str, ctx: &Ctx<'_>, lines: &mut Vec<String>) {
    for node in &s.fields {
        node_lines(node, &format!("{prefix}{}", node.name), ctx, lines);
    }
    for sub in &s.subsections {
        let sub_prefix = crate::tree::subsection_prefix(prefix, &sub.body.vmsd_name);
        let sub_path = sub_prefix.trim_end_matches('/');
        if ctx.filter.is_match(&subject(ctx.device, sub_path)) {
            continue;
        }
        let version = sub.body.version.unwrap_or(0);
        lines.push(format!("  {sub_path} (subsection, version {version})"));
        struct_lines(&sub.body, &sub_prefix, ctx, lines);
    }
}

fn node_lines(node: &Node, path: &str, ctx: &Ctx<'_>, lines: &mut Vec<String>) {
    let subject = subject(ctx.device, path);
    match &node.value {
        Value::Struct(s) => struct_lines(s, &crate::tree::child_prefix(path), ctx, lines),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                node_lines(item, &format!("{path}[{i}]"), ctx, lines);
            }
        }
        _ if ctx.filter.is_match(&subject) => {}
        Value::Bytes(bytes) => {
            let mask = ctx.filter.byte_mask(&subject);
            if bytes.is_empty() {
                lines.push(format!("  {path} = {}", format_value(node)));
            } else if bytes.len() <= INLINE_BYTES {
                lines.push(format!("  {path} = {}", masked_hex(bytes, 0, &mask)));
                return;
            }
            lines.push(format!("  {path} = {}", format_value(node)));
            for (row, chunk) in bytes.chunks(INLINE_BYTES).enumerate() {
                let start = row * INLINE_BYTES;
                let hex = masked_hex(chunk, start as u64, &mask);
                lines.push(format!("  {path} +{start:#06x}: {hex}"));
            }
        }
        value => {
            let text = format!("  {path} = {}", format_value(node));
            match annotation(ctx.idstr, path, value) {
                Some(note) => lines.push(format!("{text}  # {note}")),
                None => lines.push(text),
            }
        }
    }
}

/// What a value means, for fields [`explain`] knows. Only facts about this value, never
/// about other fields (not liveness), so an annotation changes only when its line does.
fn annotation(idstr: &str, path: &str, value: &Value) -> Option<String> {
    let raw = match *value {
        Value::Uint { value, .. } => value,
        Value::Int { value, .. } => value as u64,
        _ => return None,
    };
    explain::value_meaning(idstr, path, raw)
}

/// Hex bytes, with bytes inside `mask` (offsets from `base`) shown as `..`.
fn masked_hex(bytes: &[u8], base: u64, mask: &[(u64, u64)]) -> String {
    if mask.is_empty() {
        return hex_bytes(bytes);
    }
    let masked = |i: usize| {
        let at = base + i as u64;
        mask.iter().any(|&(s, e)| s <= at && at < e)
    };
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if masked(i) {
                "..".to_string()
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
