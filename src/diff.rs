//! Structural diff of two dumps: devices matched by `(idstr, instance_id)`, fields by name
//! (renames found by aligning the two field-name sequences), arrays element by element,
//! subsections by name. Schema changes (fields added, removed, renamed, retyped; versions)
//! are told apart from value changes.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use similar::{capture_diff_slices, Algorithm, DiffOp};

use crate::explain;
use crate::render::format_value;
use crate::tree::{Device, Dump, Node, RamBlock, Struct, Value};

/// What kind of difference a [`Change`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Machine type, capabilities or commands of the stream itself.
    Stream,
    DeviceAdded,
    DeviceRemoved,
    /// The section's version_id.
    VersionChanged,
    FieldAdded,
    FieldRemoved,
    /// A field whose name changed at the same place with the same type (`num_timers` →
    /// `num_timers_save`); its value is compared too.
    FieldRenamed,
    /// Same name, other type or size.
    TypeChanged,
    SubsectionAdded,
    SubsectionRemoved,
    /// An array with another number of elements.
    LengthChanged,
    Value,
    RamBlockAdded,
    RamBlockRemoved,
    RamBlockResized,
    RamPages,
}

/// Whether a change is in the description (schema) or in the state (values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeClass {
    Stream,
    Device,
    Schema,
    Value,
    Ram,
}

impl ChangeKind {
    pub fn class(self) -> ChangeClass {
        use ChangeKind::*;
        match self {
            Stream => ChangeClass::Stream,
            DeviceAdded | DeviceRemoved => ChangeClass::Device,
            VersionChanged | FieldAdded | FieldRemoved | FieldRenamed | TypeChanged => {
                ChangeClass::Schema
            }
            SubsectionAdded | SubsectionRemoved | LengthChanged | Value => ChangeClass::Value,
            RamBlockAdded | RamBlockRemoved | RamBlockResized | RamPages => ChangeClass::Ram,
        }
    }
}

/// One difference. `device` is the display name (`cpu (0)`), `path` the field path inside
/// it (`env.hflags`, `cpu/avx512/env.opmask_regs[3]`), empty for the device itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub device: String,
    pub path: String,
    pub kind: ChangeKind,
    pub class: ChangeClass,
    pub old: Option<String>,
    pub new: Option<String>,
    pub old_offset: Option<u64>,
    pub new_offset: Option<u64>,
    /// For byte buffers: the changed byte ranges `[start, end)`; for RAM: changed page ranges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<(u64, u64)>,
    /// Extra words: the old name of a renamed field, the old and new type of a retyped one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the change means, for fields migdiff knows (x86 CPU state: flag bits set and
    /// cleared, the register a path holds and whether its xsave component is live).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
}

impl Change {
    /// A change of `kind` at `device`/`path`, its class that of the kind, nothing else set.
    pub fn new(device: impl Into<String>, path: impl Into<String>, kind: ChangeKind) -> Change {
        Change {
            device: device.into(),
            path: path.into(),
            kind,
            class: kind.class(),
            old: None,
            new: None,
            old_offset: None,
            new_offset: None,
            ranges: Vec::new(),
            note: None,
            meaning: None,
        }
    }

    /// `device/path`, the string ignore and allow patterns match.
    pub fn subject(&self) -> String {
        subject(&self.device, &self.path)
    }
}

pub fn subject(device: &str, path: &str) -> String {
    if path.is_empty() {
        device.to_string()
    } else {
        format!("{device}/{path}")
    }
}

/// Display name of a device: `idstr (instance_id)`.
pub fn device_name(d: &Device) -> String {
    format!("{} ({})", d.idstr, d.instance_id)
}

/// All differences between two dumps, devices in normalized order (old, then new-only).
pub fn diff_dumps(old: &Dump, new: &Dump) -> Vec<Change> {
    let mut out = Vec::new();
    diff_stream(old, new, &mut out);
    let new_by_key: HashMap<(&str, u32), &Device> = new
        .devices
        .iter()
        .map(|d| ((d.idstr.as_str(), d.instance_id), d))
        .collect();
    let old_keys: HashSet<(&str, u32)> = old
        .devices
        .iter()
        .map(|d| (d.idstr.as_str(), d.instance_id))
        .collect();
    for o in old.sorted_devices() {
        match new_by_key.get(&(o.idstr.as_str(), o.instance_id)) {
            Some(n) => diff_device(o, n, &mut out),
            None => out.push(device_change(o, ChangeKind::DeviceRemoved)),
        }
    }
    for n in new.sorted_devices() {
        if !old_keys.contains(&(n.idstr.as_str(), n.instance_id)) {
            out.push(device_change(n, ChangeKind::DeviceAdded));
        }
    }
    diff_ram(old, new, &mut out);
    out
}

fn device_change(d: &Device, kind: ChangeKind) -> Change {
    let (old_offset, new_offset) = match kind {
        ChangeKind::DeviceRemoved => (Some(d.offset), None),
        _ => (None, Some(d.offset)),
    };
    Change {
        old_offset,
        new_offset,
        note: Some(match d.len {
            0 => format!("version {}", d.version_id),
            len => format!("version {}, {len} bytes", d.version_id),
        }),
        ..Change::new(device_name(d), "", kind)
    }
}

fn stream_change(path: &str, old: String, new: String) -> Change {
    Change {
        old: Some(old),
        new: Some(new),
        ..Change::new("stream", path, ChangeKind::Stream)
    }
}

fn diff_stream(old: &Dump, new: &Dump, out: &mut Vec<Change>) {
    let machine = |d: &Dump| d.machine.clone().unwrap_or_else(|| "(none)".into());
    if old.machine != new.machine {
        out.push(stream_change("machine", machine(old), machine(new)));
    }
    if old.capabilities != new.capabilities {
        out.push(stream_change(
            "capabilities",
            old.capabilities.join(","),
            new.capabilities.join(","),
        ));
    }
    let commands = |d: &Dump| {
        d.stream
            .commands
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    if commands(old) != commands(new) {
        out.push(stream_change("commands", commands(old), commands(new)));
    }
    if old.page_size != new.page_size {
        out.push(stream_change(
            "page_size",
            old.page_size.to_string(),
            new.page_size.to_string(),
        ));
    }
}

struct Ctx<'o> {
    /// Bare section name, for [`explain`].
    idstr: String,
    device: String,
    /// The new side's `env.xstate_bv`, for whether a changed register is live.
    xstate_bv: Option<u64>,
    out: &'o mut Vec<Change>,
}

impl Ctx<'_> {
    fn push(&mut self, kind: ChangeKind, path: &str, old: Option<&Node>, new: Option<&Node>) {
        // An added or removed field is described by its type and size.
        let shape = match (kind, old.or(new)) {
            (ChangeKind::FieldAdded | ChangeKind::FieldRemoved, Some(n)) => {
                let unit = if n.len == 1 { "byte" } else { "bytes" };
                Some(format!("{}, {} {unit}", n.type_name, n.len))
            }
            _ => None,
        };
        self.out.push(Change {
            old: old.map(format_value),
            new: new.map(format_value),
            old_offset: old.map(|n| n.offset),
            new_offset: new.map(|n| n.offset),
            note: shape,
            ..Change::new(self.device.clone(), path, kind)
        });
    }
}

/// Differences between two sections of the same device, appended to `out`.
pub fn diff_device(old: &Device, new: &Device, out: &mut Vec<Change>) {
    let mut ctx = Ctx {
        idstr: old.idstr.clone(),
        device: device_name(old),
        xstate_bv: new
            .body
            .fields
            .iter()
            .find(|n| n.name == "env.xstate_bv")
            .and_then(as_u64),
        out,
    };
    if old.version_id != new.version_id {
        ctx.out.push(Change {
            old: Some(old.version_id.to_string()),
            new: Some(new.version_id.to_string()),
            old_offset: Some(old.offset),
            new_offset: Some(new.offset),
            ..Change::new(ctx.device.clone(), "", ChangeKind::VersionChanged)
        });
    }
    diff_struct(&old.body, &new.body, "", &mut ctx);
}

fn diff_struct(old: &Struct, new: &Struct, prefix: &str, ctx: &mut Ctx<'_>) {
    let old_names: Vec<&str> = old.fields.iter().map(|n| n.name.as_str()).collect();
    let new_names: Vec<&str> = new.fields.iter().map(|n| n.name.as_str()).collect();
    for op in capture_diff_slices(Algorithm::Myers, &old_names, &new_names) {
        match op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                for i in 0..len {
                    let (o, n) = (&old.fields[old_index + i], &new.fields[new_index + i]);
                    diff_node(o, n, &format!("{prefix}{}", o.name), ctx);
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                for o in &old.fields[old_index..old_index + old_len] {
                    ctx.push(
                        ChangeKind::FieldRemoved,
                        &format!("{prefix}{}", o.name),
                        Some(o),
                        None,
                    );
                }
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                for n in &new.fields[new_index..new_index + new_len] {
                    ctx.push(
                        ChangeKind::FieldAdded,
                        &format!("{prefix}{}", n.name),
                        None,
                        Some(n),
                    );
                }
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                let olds = &old.fields[old_index..old_index + old_len];
                let news = &new.fields[new_index..new_index + new_len];
                diff_replaced(olds, news, prefix, ctx);
            }
        }
    }
    for sub in &old.subsections {
        let name = &sub.body.vmsd_name;
        let sub_prefix = crate::tree::subsection_prefix(prefix, name);
        match new.subsections.iter().find(|s| &s.body.vmsd_name == name) {
            Some(n) => diff_struct(&sub.body, &n.body, &sub_prefix, ctx),
            None => subsection_change(
                ctx,
                ChangeKind::SubsectionRemoved,
                &sub_prefix,
                Some(sub.offset),
                None,
            ),
        }
    }
    for sub in &new.subsections {
        let name = &sub.body.vmsd_name;
        if !old.subsections.iter().any(|s| &s.body.vmsd_name == name) {
            let sub_prefix = crate::tree::subsection_prefix(prefix, name);
            subsection_change(
                ctx,
                ChangeKind::SubsectionAdded,
                &sub_prefix,
                None,
                Some(sub.offset),
            );
        }
    }
}

fn subsection_change(
    ctx: &mut Ctx<'_>,
    kind: ChangeKind,
    prefix: &str,
    old_offset: Option<u64>,
    new_offset: Option<u64>,
) {
    ctx.out.push(Change {
        old: old_offset.map(|_| "present".into()),
        new: new_offset.map(|_| "present".into()),
        old_offset,
        new_offset,
        ..Change::new(ctx.device.clone(), prefix.trim_end_matches('/'), kind)
    });
}

/// Fields that sit where others were: pairwise renames when the shapes match, else
/// removals and additions.
fn diff_replaced(olds: &[Node], news: &[Node], prefix: &str, ctx: &mut Ctx<'_>) {
    let paired = olds.len().min(news.len());
    for (i, o) in olds.iter().enumerate() {
        match news.get(i).filter(|n| i < paired && same_shape(o, n)) {
            Some(n) => {
                let path = format!("{prefix}{}", n.name);
                ctx.push(ChangeKind::FieldRenamed, &path, Some(o), Some(n));
                if let Some(last) = ctx.out.last_mut() {
                    last.note = Some(format!("renamed from '{prefix}{}'", o.name));
                    if o.value == n.value {
                        last.old = None;
                        last.new = None;
                    }
                }
                if o.value != n.value {
                    diff_node(o, n, &path, ctx);
                }
            }
            None => ctx.push(
                ChangeKind::FieldRemoved,
                &format!("{prefix}{}", o.name),
                Some(o),
                None,
            ),
        }
    }
    for (i, n) in news.iter().enumerate() {
        let renamed = olds.get(i).is_some_and(|o| i < paired && same_shape(o, n));
        if !renamed {
            ctx.push(
                ChangeKind::FieldAdded,
                &format!("{prefix}{}", n.name),
                None,
                Some(n),
            );
        }
    }
}

fn same_shape(a: &Node, b: &Node) -> bool {
    a.type_name == b.type_name && a.len == b.len
}

fn diff_node(old: &Node, new: &Node, path: &str, ctx: &mut Ctx<'_>) {
    match (&old.value, &new.value) {
        (Value::Struct(o), Value::Struct(n)) => {
            diff_struct(o, n, &crate::tree::child_prefix(path), ctx)
        }
        (Value::Array(_) | Value::Scalars(_), Value::Array(_) | Value::Scalars(_)) => {
            diff_array(old, new, path, ctx)
        }
        (o, n)
            if !same_shape(old, new) || std::mem::discriminant(o) != std::mem::discriminant(n) =>
        {
            ctx.push(ChangeKind::TypeChanged, path, Some(old), Some(new));
            if let Some(last) = ctx.out.last_mut() {
                last.note = Some(format!(
                    "{} of {} bytes -> {} of {} bytes",
                    old.type_name, old.len, new.type_name, new.len
                ));
            }
        }
        (o, n) if o != n => {
            ctx.push(ChangeKind::Value, path, Some(old), Some(new));
            let meaning = meaning(ctx, path, old, new);
            if let Some(last) = ctx.out.last_mut() {
                last.meaning = meaning;
            }
            if let (Value::Bytes(ob), Value::Bytes(nb), Some(last)) = (o, n, ctx.out.last_mut()) {
                last.ranges = byte_ranges(ob, nb);
            }
        }
        _ => {}
    }
}

/// Arrays element by element, then their lengths.
fn diff_array(old: &Node, new: &Node, path: &str, ctx: &mut Ctx<'_>) {
    match (&old.value, &new.value) {
        // One layout: compare the numbers, and build nodes only for elements that differ.
        (Value::Scalars(o), Value::Scalars(n))
            if (o.size(), o.signed()) == (n.size(), n.signed())
                && old.type_name == new.type_name =>
        {
            for (i, (ov, nv)) in o.values().zip(n.values()).enumerate() {
                if ov != nv {
                    if let (Some(oe), Some(ne)) = (o.element(old, i), n.element(new, i)) {
                        diff_node(&oe, &ne, &format!("{path}[{i}]"), ctx);
                    }
                }
            }
        }
        _ => {
            let (o, n) = (old.elements(), new.elements());
            let (o, n) = (
                o.as_deref().unwrap_or_default(),
                n.as_deref().unwrap_or_default(),
            );
            for (i, (oe, ne)) in o.iter().zip(n).enumerate() {
                diff_node(oe, ne, &format!("{path}[{i}]"), ctx);
            }
        }
    }
    let (o, n) = (old.value.element_count(), new.value.element_count());
    if o != n {
        ctx.out.push(Change {
            old: Some(format!("{} elements", o.unwrap_or(0))),
            new: Some(format!("{} elements", n.unwrap_or(0))),
            old_offset: Some(old.offset),
            new_offset: Some(new.offset),
            ..Change::new(ctx.device.clone(), path, ChangeKind::LengthChanged)
        });
    }
}

fn as_u64(node: &Node) -> Option<u64> {
    match node.value {
        Value::Uint { value, .. } => Some(value),
        Value::Int { value, .. } => Some(value as u64),
        _ => None,
    }
}

/// What a change means (`cr0: +PE -NW -CD`); for an xsave register, whether it is live.
fn meaning(ctx: &Ctx<'_>, path: &str, old: &Node, new: &Node) -> Option<String> {
    let meaning = explain::change_meaning(&ctx.idstr, path, as_u64(old)?, as_u64(new)?)?;
    let live = ctx.xstate_bv.and_then(|bv| explain::is_live(path, bv));
    Some(match live {
        Some(true) => format!("{meaning}, live"),
        Some(false) => format!("{meaning}, stale: its xsave component is not in xstate_bv"),
        None => meaning,
    })
}

/// Ranges `[start, end)` where two equally long buffers differ; runs closer than 4 bytes merge.
pub fn byte_ranges(old: &[u8], new: &[u8]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (i, (a, b)) in old.iter().zip(new).enumerate() {
        if a == b {
            continue;
        }
        let i = i as u64;
        match ranges.last_mut() {
            Some(last) if i <= last.1 + 4 => last.1 = i + 1,
            _ => ranges.push((i, i + 1)),
        }
    }
    ranges
}

fn ram_change(
    block: &RamBlock,
    kind: ChangeKind,
    old: Option<String>,
    new: Option<String>,
) -> Change {
    Change {
        old,
        new,
        ..Change::new("ram", block.name.clone(), kind)
    }
}

fn diff_ram(old: &Dump, new: &Dump, out: &mut Vec<Change>) {
    let size = |b: &RamBlock| format!("{:#x} bytes", b.used_length);
    for o in &old.ram {
        let Some(n) = new.ram.iter().find(|n| n.name == o.name) else {
            out.push(ram_change(
                o,
                ChangeKind::RamBlockRemoved,
                Some(size(o)),
                None,
            ));
            continue;
        };
        if o.used_length != n.used_length {
            out.push(ram_change(
                o,
                ChangeKind::RamBlockResized,
                Some(size(o)),
                Some(size(n)),
            ));
            continue;
        }
        let page = old.page_size.max(1);
        let total = o.used_length / page;
        // Byte ranges within the block, whole pages at a time.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for i in 0..o.digests.len().max(n.digests.len()) {
            if o.digest(i) != n.digest(i) {
                let start = i as u64 * page;
                match ranges.last_mut() {
                    Some(last) if last.1 == start => last.1 = start + page,
                    _ => ranges.push((start, start + page)),
                }
            }
        }
        if !ranges.is_empty() {
            let pages: u64 = ranges.iter().map(|r| (r.1 - r.0) / page).sum();
            let mut change = ram_change(
                o,
                ChangeKind::RamPages,
                Some(format!("{total} pages")),
                Some(pages.to_string()),
            );
            change.ranges = ranges;
            change.note = o
                .addr
                .map(|gpa| format!("block at guest-physical {gpa:#x}"));
            out.push(change);
        }
    }
    for n in &new.ram {
        if !old.ram.iter().any(|o| o.name == n.name) {
            out.push(ram_change(
                n,
                ChangeKind::RamBlockAdded,
                None,
                Some(size(n)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint(name: &str, value: u64) -> Node {
        Node {
            name: name.into(),
            type_name: "uint8".into(),
            offset: 0,
            len: 1,
            value: Value::Uint { value, size: 1 },
        }
    }

    fn device(fields: Vec<Node>) -> Device {
        Device {
            idstr: "hpet".into(),
            instance_id: 0,
            section_id: 1,
            version_id: 2,
            offset: 0,
            len: 0,
            body: Struct {
                vmsd_name: "hpet".into(),
                version: Some(2),
                fields,
                subsections: Vec::new(),
            },
        }
    }

    fn diff(old: Vec<Node>, new: Vec<Node>) -> Vec<Change> {
        let mut out = Vec::new();
        diff_device(&device(old), &device(new), &mut out);
        out
    }

    /// `regs`, four uint16 at offset 8, as scalars or as element nodes.
    fn regs(values: &[u64], folded: bool) -> Node {
        let mut node = Node {
            name: "regs".into(),
            type_name: "uint16".into(),
            offset: 8,
            len: 2 * values.len() as u64,
            value: Value::Scalars(
                crate::tree::Scalars::new(
                    2,
                    false,
                    values
                        .iter()
                        .flat_map(|&v| (v as u16).to_be_bytes())
                        .collect(),
                )
                .unwrap(),
            ),
        };
        if !folded {
            node.value = Value::Array(node.elements().unwrap().into_owned());
        }
        node
    }

    #[test]
    fn scalar_arrays_diff_element_by_element_in_either_form() {
        for (old_folded, new_folded) in [(true, true), (false, true), (true, false)] {
            let changes = diff(
                vec![regs(&[1, 2, 3, 4], old_folded)],
                vec![regs(&[1, 2, 7, 4, 5], new_folded)],
            );
            let summary: Vec<_> = changes
                .iter()
                .map(|c| (c.kind, c.path.as_str(), c.old.as_deref(), c.new.as_deref()))
                .collect();
            assert_eq!(
                summary,
                [
                    (ChangeKind::Value, "regs[2]", Some("0x0003"), Some("0x0007")),
                    (
                        ChangeKind::LengthChanged,
                        "regs",
                        Some("4 elements"),
                        Some("5 elements")
                    ),
                ]
            );
            assert_eq!(changes[0].old_offset, Some(12));
        }
    }

    #[test]
    fn rename_is_a_schema_change_not_noise() {
        let changes = diff(
            vec![uint("config", 1), uint("num_timers", 3)],
            vec![uint("config", 1), uint("num_timers_save", 3)],
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ChangeKind::FieldRenamed);
        assert_eq!(changes[0].path, "num_timers_save");
        assert_eq!(
            changes[0].note.as_deref(),
            Some("renamed from 'num_timers'")
        );
    }

    #[test]
    fn value_and_added_field() {
        let changes = diff(
            vec![uint("a", 1), uint("b", 2)],
            vec![uint("a", 9), uint("b", 2), uint("c", 0)],
        );
        let kinds: Vec<_> = changes.iter().map(|c| (c.kind, c.path.as_str())).collect();
        assert_eq!(
            kinds,
            [(ChangeKind::Value, "a"), (ChangeKind::FieldAdded, "c")]
        );
        assert_eq!(changes[0].old.as_deref(), Some("0x01"));
        assert_eq!(changes[0].new.as_deref(), Some("0x09"));
    }

    fn u64_node(name: &str, value: u64) -> Node {
        Node {
            name: name.into(),
            type_name: "uint64".into(),
            offset: 0,
            len: 8,
            value: Value::Uint { value, size: 8 },
        }
    }

    /// A cpu section with `env.xstate_bv` and xmm3's low half, as QEMU's vmsd lays them out.
    fn cpu(xstate_bv: u64, xmm3_low: u64) -> Device {
        let xmm = |low: u64| Node {
            name: String::new(),
            type_name: "struct".into(),
            offset: 0,
            len: 16,
            value: Value::Struct(Box::new(Struct {
                vmsd_name: "xmm_reg".into(),
                version: Some(1),
                fields: vec![u64_node("_q_ZMMReg[0]", low), u64_node("_q_ZMMReg[1]", 0)],
                subsections: Vec::new(),
            })),
        };
        let mut device = device(vec![
            u64_node("env.xstate_bv", xstate_bv),
            Node {
                name: "env.xmm_regs[0]".into(),
                type_name: "struct".into(),
                offset: 0,
                len: 64,
                value: Value::Array(vec![xmm(0), xmm(0), xmm(0), xmm(xmm3_low)]),
            },
        ]);
        device.idstr = "cpu".into();
        device
    }

    #[test]
    fn changed_register_is_named_and_marked_live_or_stale() {
        let meaning = |xstate_bv: u64| {
            let mut out = Vec::new();
            diff_device(&cpu(xstate_bv, 0), &cpu(xstate_bv, 0xdead), &mut out);
            out.pop().and_then(|c| c.meaning).unwrap()
        };
        // XSTATE_SSE (bit 1) set: the register content is real state.
        assert_eq!(meaning(0b11), "xmm3 (bits 0-63), live");
        // Clear: the CPU holds xmm3 in its init state; the bytes are leftovers.
        assert_eq!(
            meaning(0b01),
            "xmm3 (bits 0-63), stale: its xsave component is not in xstate_bv"
        );
    }

    #[test]
    fn byte_ranges_merge_close_runs() {
        let old = [0u8; 32];
        let mut new = old;
        new[1] = 1;
        new[4] = 1;
        new[20] = 1;
        assert_eq!(byte_ranges(&old, &new), [(1, 5), (20, 21)]);
    }
}
