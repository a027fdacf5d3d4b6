//! The normalized text form of a dump: one line per field, devices under `[idstr (instance)]`
//! headers, long buffers as 16-byte rows with offsets (a run of rows that repeat the row
//! above as one `+0x0010-0x005f: *` line, like hexdump's `*`). `migdiff show` prints it, and the
//! unified diff is a line diff of two of them, so `migdiff show` of each side piped to
//! `diff -u` gives the same changes (migdiff aligns lines by field, `diff` by text).
//!
//! Nothing process-local (section ids, byte offsets) appears in it, so two dumps of the
//! same state give the same text whatever QEMU build wrote them.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::Hasher as _;

use twox_hash::XxHash3_64;

use super::{count, push_decimal, push_hex, push_int, write_value, DIGITS, INLINE_BYTES};
use crate::compare::Comparison;
use crate::diff::{device_name, subject, ChangeKind};
use crate::explain::{self, Section};
use crate::filter::Filter;
use crate::tree::{Dump, Node, Struct, Value};

/// What of a dump a document shows: all of it, or what a comparison did not set aside.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Fields matched by an ignore pattern are left out; bytes it masks print as `..`.
    pub filter: &'a Filter,
    /// Subjects (`device/path`) left out with everything under them: the differences a
    /// comparison allowed or tolerated.
    pub quiet: &'a HashSet<String>,
    /// Devices (`cpu (1)`) shown as their header and one summary line instead of their
    /// fields: those on one side only, whose every line would be a difference.
    pub summarized: &'a HashSet<String>,
}

impl View<'_> {
    /// Everything.
    pub fn all() -> View<'static> {
        static NONE: std::sync::OnceLock<(Filter, HashSet<String>)> = std::sync::OnceLock::new();
        let (filter, none) = NONE.get_or_init(Default::default);
        View {
            filter,
            quiet: none,
            summarized: none,
        }
    }

    fn is_empty(&self) -> bool {
        self.filter.is_empty() && self.quiet.is_empty()
    }

    fn hides(&self, subject: &str) -> bool {
        self.quiet.contains(subject) || self.filter.is_match(subject)
    }
}

/// Lines of the normalized form, collected (for the unified diff).
pub fn document(dump: &Dump, view: View<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    write_document(dump, view, &mut |line| lines.push(line.to_string()));
    lines
}

/// The normalized form, one line at a time to `sink` (for `show`, which streams it), so
/// differences set aside do not show in a diff of two documents.
pub fn write_document(dump: &Dump, view: View<'_>, sink: &mut dyn FnMut(&str)) {
    write_header(dump, view, sink);
    let explainer = explain::Explainer::new(dump);
    for device in dump.sorted_devices() {
        write_device(explainer.section(device), view, sink);
    }
}

/// The section a document line heads (`[cpu (0)] version 17` → `cpu (0)`), if it is a
/// header.
pub fn header_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    rest.find(']').and_then(|end| rest.get(..end))
}

/// `[stream]` and `[ram]`.
fn write_header(dump: &Dump, view: View<'_>, sink: &mut dyn FnMut(&str)) {
    let mut w = Writer::new(view, sink);
    w.emit_str("[stream]");
    let commands: Vec<&str> = dump
        .stream
        .commands
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut stream_fields = vec![
        (
            "machine",
            dump.machine.clone().unwrap_or_else(|| "(none)".into()),
        ),
        ("capabilities", dump.capabilities.join(",")),
        ("commands", commands.join(",")),
        ("page_size", dump.page_size.to_string()),
    ];
    if let Some(uuid) = &dump.uuid {
        stream_fields.insert(2, ("uuid", uuid.clone()));
    }
    if let Some(instance) = dump.stream.ram_instance.filter(|&i| i != 0) {
        stream_fields.push(("ram_instance", instance.to_string()));
    }
    for (name, value) in stream_fields {
        if !w.ignored("stream", name) {
            w.emit_str(&format!("  {name} = {value}"));
        }
    }

    if !dump.ram.is_empty() {
        w.emit_str("[ram]");
        for block in &dump.ram {
            if w.ignored("ram", &block.name) {
                continue;
            }
            let mut hasher = XxHash3_64::new();
            for digest in &block.digests {
                hasher.write(&digest.to_le_bytes());
            }
            let pages = block.used_length / dump.page_size.max(1);
            let gpa = block
                .addr
                .map(|a| format!(" at GPA {a:#x}"))
                .unwrap_or_default();
            let unknown = match block.unknown_pages {
                0 => String::new(),
                n => format!(", {n} unknown"),
            };
            w.emit_str(&format!(
                "  {} = {:#x} bytes{gpa}, {} ({} zero, {} data{unknown}), digest {:016x}",
                block.name,
                block.used_length,
                count(pages, "page"),
                block.zero_pages,
                block.data_pages,
                hasher.finish()
            ));
        }
    }
}

/// `[idstr (instance)] version N` and the device's fields.
fn write_device<'a>(section: Section<'a>, view: View<'a>, sink: &mut dyn FnMut(&str)) {
    let device = section.device;
    let name = device_name(device);
    if !view.is_empty() && view.hides(&name) {
        return;
    }
    let mut w = Writer::new(view, sink);
    w.emit_str(&format!("[{name}] version {}", device.version_id));
    if view.summarized.contains(&name) {
        w.emit_str(&format!(
            "  ({} in the stream, {}; --full lists them)",
            count(device.len, "byte"),
            count(field_count(&device.body), "field")
        ));
        return;
    }
    w.section = Some(section);
    w.device = name;
    w.struct_lines(&device.body);
}

/// Devices a comparison found on one side only, by display name: what a diff shows as a
/// summary ([`View::summarized`]) unless asked for in full.
pub fn one_sided(cmp: &Comparison) -> HashSet<String> {
    cmp.counted()
        .filter(|c| matches!(c.kind, ChangeKind::DeviceAdded | ChangeKind::DeviceRemoved))
        .map(|c| c.device.clone())
        .collect()
}

/// How many values a struct holds, nested structs, array elements and subsections
/// included: the value lines its full form has.
fn field_count(s: &Struct) -> usize {
    fn of(node: &Node) -> usize {
        match &node.value {
            Value::Struct(s) => field_count(s),
            Value::Array(items) => items.iter().map(of).sum(),
            Value::Scalars(scalars) => scalars.len(),
            _ => 1,
        }
    }
    s.fields.iter().map(of).sum::<usize>()
        + s.subsections
            .iter()
            .map(|sub| field_count(&sub.body))
            .sum::<usize>()
}

/// Builds each line in one reused buffer, with the current field path kept as a stack
/// (push a name, recurse, truncate): `show` prints tens of thousands of lines.
struct Writer<'a, 's> {
    filter: &'a Filter,
    quiet: &'a HashSet<String>,
    /// False when the view shows everything: then no subject string is built per field.
    filtering: bool,
    sink: &'s mut dyn FnMut(&str),
    line: String,
    path: String,
    subject: String,
    /// The device being written, for what its fields mean.
    section: Option<Section<'a>>,
    /// Display name of the current device, `cpu (0)`.
    device: String,
}

impl<'a, 's> Writer<'a, 's> {
    fn new(view: View<'a>, sink: &'s mut dyn FnMut(&str)) -> Self {
        Writer {
            filter: view.filter,
            quiet: view.quiet,
            filtering: !view.is_empty(),
            sink,
            line: String::with_capacity(128),
            path: String::with_capacity(64),
            subject: String::new(),
            section: None,
            device: String::new(),
        }
    }

    fn emit_str(&mut self, line: &str) {
        (self.sink)(line);
    }

    fn emit(&mut self) {
        (self.sink)(&self.line);
    }

    /// Whether the view leaves out `device/path` as a whole.
    fn ignored(&mut self, device: &str, path: &str) -> bool {
        self.filtering && {
            self.subject = subject(device, path);
            self.hides_subject()
        }
    }

    fn hides_subject(&self) -> bool {
        self.quiet.contains(&self.subject) || self.filter.is_match(&self.subject)
    }

    fn struct_lines(&mut self, s: &'a Struct) {
        let base = self.path.len();
        for node in &s.fields {
            self.path.push_str(&node.name);
            self.node_lines(node);
            self.path.truncate(base);
        }
        for sub in &s.subsections {
            self.path.push_str(&sub.body.vmsd_name);
            let skip = self.filtering && self.leaf_ignored();
            if !skip {
                self.line.clear();
                let version = sub.body.version.unwrap_or(0);
                let _ = write!(self.line, "  {} (subsection, version {version})", self.path);
                self.emit();
                self.path.push('/');
                self.struct_lines(&sub.body);
            }
            self.path.truncate(base);
        }
    }

    fn node_lines(&mut self, node: &'a Node) {
        if !self.quiet.is_empty() && {
            self.subject = subject(&self.device, &self.path);
            self.quiet.contains(&self.subject)
        } {
            return;
        }
        match &node.value {
            Value::Struct(s) => {
                self.path.push('.');
                self.struct_lines(s);
            }
            Value::Array(items) => self.each_element(items.len(), |w, i| {
                if let Some(item) = items.get(i) {
                    w.node_lines(item);
                }
            }),
            Value::Scalars(scalars) => self.each_element(scalars.len(), |w, i| {
                if let Some(value) = scalars.get(i) {
                    if !(w.filtering && w.leaf_ignored()) {
                        w.start_line();
                        w.push_int_line(value, scalars.size(), scalars.signed());
                    }
                }
            }),
            value => {
                let mask = if self.filtering {
                    if self.leaf_ignored() {
                        return;
                    }
                    self.filter.byte_mask(&self.subject)
                } else {
                    Vec::new()
                };
                self.leaf_lines(node, value, &mask);
            }
        }
    }

    /// Runs `element` for each index below `count`, with `[index]` on the path.
    fn each_element(&mut self, count: usize, mut element: impl FnMut(&mut Self, usize)) {
        let base = self.path.len();
        for i in 0..count {
            self.path.push('[');
            push_decimal(&mut self.path, i);
            self.path.push(']');
            element(self, i);
            self.path.truncate(base);
        }
    }

    /// Whether the view leaves out the field at the current path.
    fn leaf_ignored(&mut self) -> bool {
        self.subject = subject(&self.device, &self.path);
        self.hides_subject()
    }

    /// `  path = `, the start of a field's line.
    fn start_line(&mut self) {
        self.line.clear();
        self.line.push_str("  ");
        self.line.push_str(&self.path);
        self.line.push_str(" = ");
    }

    /// Ends the line with `  # note`, when there is one.
    fn end_line(&mut self, note: Option<String>) {
        if let Some(note) = note {
            self.line.push_str("  # ");
            self.line.push_str(&note);
        }
        self.emit();
    }

    /// Ends the line with an integer and what it means, for fields [`explain`] knows: facts
    /// about this value, never about the other dump (not liveness), so an annotation
    /// changes only when its line (or the layout of its section) does.
    fn push_int_line(&mut self, value: u64, size: u8, signed: bool) {
        push_int(&mut self.line, value, size, signed);
        let note = self.section.and_then(|s| s.value(&self.path, value));
        self.end_line(note);
    }

    /// `  path +0x0010`, the start of a buffer row's line.
    fn row_start(&mut self, offset: usize) {
        self.line.clear();
        self.line.push_str("  ");
        self.line.push_str(&self.path);
        self.line.push_str(" +");
        push_hex(&mut self.line, offset as u64, 4);
    }

    /// `  path +0x0010-0x005f: *`: the rows from `from` up to `to` repeat the row above.
    fn emit_repeat(&mut self, from: usize, to: usize) {
        self.row_start(from);
        self.line.push('-');
        push_hex(&mut self.line, to.saturating_sub(1) as u64, 4);
        self.line.push_str(": *");
        self.emit();
    }

    fn leaf_lines(&mut self, node: &Node, value: &Value, mask: &[(u64, u64)]) {
        self.start_line();
        match value {
            Value::Bytes(bytes) if !bytes.is_empty() && bytes.len() <= INLINE_BYTES => {
                masked_hex(&mut self.line, bytes, 0, mask);
                let layout = self.section.and_then(|s| s.layout(&self.path, node));
                self.end_line(layout.and_then(|l| l.note(0..bytes.len())));
            }
            Value::Bytes(bytes) if bytes.len() > INLINE_BYTES => {
                write_value(&mut self.line, node);
                self.emit();
                let layout = self.section.and_then(|s| s.layout(&self.path, node));
                // Rows that repeat the row above are one line, as hexdump's `*`: a 64 KiB
                // zero-filled virtio blob is two lines, not 4,096. The same bytes give the
                // same lines on both sides of a diff. A row with a note of its own (a field
                // of a decoded layout starts in it) is always printed.
                let (mut row_hex, mut previous) = (String::new(), String::new());
                let mut repeats_from = None;
                for (row, chunk) in bytes.chunks(INLINE_BYTES).enumerate() {
                    let start = row * INLINE_BYTES;
                    row_hex.clear();
                    masked_hex(&mut row_hex, chunk, start as u64, mask);
                    let rows = start..start + chunk.len();
                    let note = layout.as_ref().and_then(|l| l.note(rows));
                    if row > 0 && note.is_none() && row_hex == previous {
                        repeats_from.get_or_insert(start);
                        continue;
                    }
                    if let Some(from) = repeats_from.take() {
                        self.emit_repeat(from, start);
                    }
                    self.row_start(start);
                    self.line.push_str(": ");
                    self.line.push_str(&row_hex);
                    self.end_line(note);
                    std::mem::swap(&mut previous, &mut row_hex);
                }
                if let Some(from) = repeats_from {
                    self.emit_repeat(from, bytes.len());
                }
            }
            &Value::Uint { value, size } => self.push_int_line(value, size, false),
            &Value::Int { value, size } => self.push_int_line(value as u64, size, true),
            _ => {
                write_value(&mut self.line, node);
                self.emit();
            }
        }
    }
}

/// Hex bytes onto `out`, with bytes inside `mask` (offsets from `base`) shown as `..`.
fn masked_hex(out: &mut String, bytes: &[u8], base: u64, mask: &[(u64, u64)]) {
    // Rows are at most 16 bytes: spell the unmasked ones in a stack buffer, one copy out.
    if mask.is_empty() && bytes.len() <= INLINE_BYTES {
        let mut buf = [b' '; INLINE_BYTES * 3];
        for (i, &b) in bytes.iter().enumerate() {
            buf[3 * i] = DIGITS[usize::from(b >> 4)];
            buf[3 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        let len = (bytes.len() * 3).saturating_sub(1);
        out.push_str(std::str::from_utf8(&buf[..len]).unwrap_or_default());
        return;
    }
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if crate::filter::masks(mask, base + i as u64) {
            out.push_str("..");
        } else {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
    }
}
