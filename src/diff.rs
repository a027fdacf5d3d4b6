//! Structural diff of two dumps: devices matched by `(idstr, instance_id)`, fields by name
//! (renames found by aligning the two field-name sequences), arrays element by element,
//! subsections by name. Every [`Change`] carries typed values ([`Leaf`]) and what it does on
//! the wire ([`Wire`]): whether the bytes of one side would load on the other, forward
//! (old → new) and backward.
//!
//! The wire rule follows QEMU's loader (`migration/vmstate.c`): a destination reads the
//! fields its own description lists, and names never travel. So within one struct, fields
//! that change name, type or split while their bytes stay where they were (the byte offsets
//! of both sides meet again after them) are identical on the wire; a layout that never
//! re-aligns desynchronizes the load when both sides read it at the same version: always
//! inside a nested struct (loaded with the destination's own version), and in a section or
//! subsection whose version did not change. Where the version did change, the description
//! does not say which fields it gates, and the change is undecided.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use similar::{capture_diff_slices, Algorithm, DiffOp};

use crate::render::{hex_bytes, push_int, INLINE_BYTES};
use crate::tree::{Device, Dump, Node, RamBlock, Struct, Value, UNKNOWN};

/// What kind of difference a [`Change`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// Machine type, capabilities, UUID, page size or commands of the stream itself.
    Stream,
    DeviceAdded,
    DeviceRemoved,
    /// The version_id of a section, or of a subsection (then `path` names it).
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
    /// A RAM block at another guest-physical address (sent with x-ignore-shared).
    RamBlockMoved,
    RamPages,
}

/// Whether a change is in the description (schema) or in the state (values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
            RamBlockAdded | RamBlockRemoved | RamBlockResized | RamBlockMoved | RamPages => {
                ChangeClass::Ram
            }
        }
    }
}

/// One side's value of a change, typed: what allow pins match and renderers format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leaf {
    /// An integer of `size` bytes; `value` sign-extended when `signed`.
    Int {
        value: u64,
        size: u8,
        signed: bool,
    },
    Bool(bool),
    Bytes(Vec<u8>),
    /// A quoted string of the stream (a configuration capability).
    Text(String),
    /// A plain word: a machine type, a list of commands or capabilities, `struct`.
    Label(String),
    /// A NULL pointer of an array of pointers.
    Null,
    /// An array's element count.
    Elements(u64),
    /// A section's or subsection's version_id.
    Version(u32),
    /// A device section: its version and its length in the stream.
    Section {
        version: u32,
        len: u64,
    },
    /// A subsection that was sent.
    Present,
    /// A RAM block's used length.
    Size(u64),
    /// A guest-physical address.
    Address(u64),
    /// A field without a value (`--schema-only`, `-dump-vmstate`): its type and size.
    Shape {
        type_name: String,
        len: u64,
    },
}

impl Leaf {
    /// The value of a field as a leaf.
    pub fn of(node: &Node) -> Leaf {
        match &node.value {
            Value::Bool(b) => Leaf::Bool(*b),
            &Value::Uint { value, size } => Leaf::Int {
                value,
                size,
                signed: false,
            },
            &Value::Int { value, size } => Leaf::Int {
                value: value as u64,
                size,
                signed: true,
            },
            Value::Bytes(b) if b.is_empty() && node.len > 0 => Leaf::Shape {
                type_name: node.type_name.to_string(),
                len: node.len,
            },
            Value::Bytes(b) => Leaf::Bytes(b.clone()),
            Value::Text(t) => Leaf::Text(t.clone()),
            Value::Null => Leaf::Null,
            Value::Struct(_) => Leaf::Label("struct".into()),
            Value::Array(_) | Value::Scalars(_) => {
                Leaf::Elements(node.value.element_count().unwrap_or(0) as u64)
            }
        }
    }

    /// The integer, for explanations and numeric allow pins.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Leaf::Int { value, .. } | Leaf::Elements(value) | Leaf::Size(value) => Some(value),
            Leaf::Address(value) => Some(value),
            Leaf::Version(v) => Some(u64::from(v)),
            Leaf::Bool(b) => Some(u64::from(b)),
            _ => None,
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Leaf::Int { .. } => "int",
            Leaf::Bool(_) => "bool",
            Leaf::Bytes(_) => "bytes",
            Leaf::Text(_) => "text",
            Leaf::Label(_) => "label",
            Leaf::Null => "null",
            Leaf::Elements(_) => "elements",
            Leaf::Version(_) => "version",
            Leaf::Section { .. } => "section",
            Leaf::Present => "present",
            Leaf::Size(_) => "size",
            Leaf::Address(_) => "address",
            Leaf::Shape { .. } => "shape",
        }
    }
}

/// As printed everywhere: integers in hex padded to their size, short buffers as hex bytes.
impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            &Leaf::Int {
                value,
                size,
                signed,
            } => {
                let mut s = String::new();
                push_int(&mut s, value, size, signed);
                f.write_str(&s)
            }
            Leaf::Bool(b) => write!(f, "{b}"),
            Leaf::Bytes(b) if b.len() <= INLINE_BYTES => f.write_str(&hex_bytes(b)),
            Leaf::Bytes(b) => write!(f, "{} bytes", b.len()),
            Leaf::Text(t) => write!(f, "{t:?}"),
            Leaf::Label(t) => f.write_str(t),
            Leaf::Null => f.write_str("nullptr"),
            Leaf::Elements(n) => write!(f, "{n} elements"),
            Leaf::Version(v) => write!(f, "{v}"),
            Leaf::Section { version, len: 0 } => write!(f, "version {version}"),
            Leaf::Section { version, len } => write!(f, "version {version}, {len} bytes"),
            Leaf::Present => f.write_str("present"),
            Leaf::Size(n) => write!(f, "{n:#x} bytes"),
            Leaf::Address(a) => write!(f, "{a:#x}"),
            Leaf::Shape { type_name, len } => write!(f, "({type_name}, {len} bytes)"),
        }
    }
}

/// `{"type": "int", "text": "0x0040", "value": 64, "size": 2, "signed": false}`: the typed
/// value, and its text as the other outputs print it.
impl Serialize for Leaf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.kind_name())?;
        map.serialize_entry("text", &self.to_string())?;
        match self {
            Leaf::Int {
                value,
                size,
                signed,
            } => {
                if *signed {
                    map.serialize_entry("value", &(*value as i64))?;
                } else {
                    map.serialize_entry("value", value)?;
                }
                map.serialize_entry("size", size)?;
            }
            Leaf::Bytes(b) => {
                map.serialize_entry("len", &b.len())?;
                if b.len() <= 64 {
                    map.serialize_entry("hex", &crate::hex::encode(b))?;
                }
            }
            Leaf::Section { version, len } => {
                map.serialize_entry("version", version)?;
                map.serialize_entry("len", len)?;
            }
            Leaf::Shape { type_name, len } => {
                map.serialize_entry("field_type", type_name)?;
                map.serialize_entry("len", len)?;
            }
            Leaf::Bool(b) => map.serialize_entry("value", b)?,
            Leaf::Text(t) | Leaf::Label(t) => map.serialize_entry("value", t)?,
            Leaf::Elements(n) | Leaf::Size(n) | Leaf::Address(n) => {
                map.serialize_entry("value", n)?
            }
            Leaf::Version(v) => map.serialize_entry("value", v)?,
            Leaf::Null | Leaf::Present => {}
        }
        map.end()
    }
}

/// A field's type and its size in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Shape {
    #[serde(rename = "type")]
    pub type_name: String,
    pub len: u64,
}

/// `buffer, 66 bytes`.
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.len == 1 { "byte" } else { "bytes" };
        write!(f, "{}, {} {unit}", self.type_name, self.len)
    }
}

impl Shape {
    fn of(node: &Node) -> Shape {
        Shape {
            type_name: node.type_name.to_string(),
            len: node.len,
        }
    }
}

/// How many pages of a RAM block differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PageCount {
    pub changed: u64,
    pub total: u64,
    pub page_size: u64,
    /// Pages whose content one side does not give ([`UNKNOWN`]): neither same nor changed.
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a destination does with the other side's bytes in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Load {
    /// The same bytes at the same places: names or types differ, the wire does not.
    Identical,
    /// Loads: state differs, the layout does not (or the destination skips what it lacks).
    Loads,
    /// Cannot be told from the descriptions at hand (`why` says what would decide it).
    Undecided,
    /// The destination refuses the stream.
    Breaks,
}

/// The wire impact of a change: forward is old's stream into new's QEMU, backward the
/// reverse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Wire {
    pub forward: Load,
    pub backward: Load,
    /// Why, in QEMU's words where QEMU has them; empty for plain state changes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
}

impl Wire {
    pub fn identical(why: impl Into<String>) -> Wire {
        Wire::new(Load::Identical, Load::Identical, why)
    }

    pub fn loads() -> Wire {
        Wire::new(Load::Loads, Load::Loads, "")
    }

    pub fn new(forward: Load, backward: Load, why: impl Into<String>) -> Wire {
        Wire {
            forward,
            backward,
            why: why.into(),
        }
    }

    /// The worse of the two directions.
    pub fn worst(&self) -> Load {
        self.forward.max(self.backward)
    }
}

/// One difference. `device` is the display name (`cpu (0)`, `stream`, `ram`), `path` the
/// field path inside it (`env.hflags`, `cpu/avx512/env.opmask_regs[3]`), empty for the
/// device itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Change {
    pub device: String,
    pub path: String,
    pub kind: ChangeKind,
    pub class: ChangeClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Leaf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Leaf>,
    /// Type and size of a field added, removed, renamed or retyped, per side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_type: Option<Shape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_type: Option<Shape>,
    pub old_offset: Option<u64>,
    pub new_offset: Option<u64>,
    /// For byte buffers: the changed byte ranges `[start, end)`; for RAM: changed bytes,
    /// whole pages at a time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<(u64, u64)>,
    /// For RAM: how many pages differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageCount>,
    /// The path the field had in the old dump, for a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// What the change means, for fields an explainer knows (`crate::explain::annotate`:
    /// flag bits set and cleared, the register a path holds, the PCI or virtio register a
    /// changed byte is in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
    pub wire: Wire,
}

impl Change {
    /// A change of `kind` at `device`/`path`, its class that of the kind, loading both
    /// ways, nothing else set.
    pub fn new(device: impl Into<String>, path: impl Into<String>, kind: ChangeKind) -> Change {
        Change {
            device: device.into(),
            path: path.into(),
            kind,
            class: kind.class(),
            old: None,
            new: None,
            old_type: None,
            new_type: None,
            old_offset: None,
            new_offset: None,
            ranges: Vec::new(),
            pages: None,
            renamed_from: None,
            meaning: None,
            wire: Wire::loads(),
        }
    }

    /// `device/path`, the string ignore and allow patterns match.
    pub fn subject(&self) -> String {
        subject(&self.device, &self.path)
    }

    /// The subject of the old side's lines: a renamed field's old path.
    pub fn old_subject(&self) -> String {
        subject(
            &self.device,
            self.renamed_from.as_deref().unwrap_or(&self.path),
        )
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

/// All differences between two dumps: the stream, RAM, then devices in normalized order
/// (old, then new-only).
pub fn diff_dumps<'d>(old: &'d Dump, new: &'d Dump) -> Vec<Change> {
    let mut out = Vec::new();
    diff_stream(old, new, &mut out);
    diff_ram(old, new, &mut out);
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
    let classes = old.classes.or(new.classes).map(|_| {
        let exact = |d: &Dump| d.classes.is_some_and(|c| c.array_lengths);
        exact(old) && exact(new)
    });
    let fixed_sizes = classes == Some(true);
    let pair = |o: &Device, n: &Device, name: String, out: &mut Vec<Change>| {
        let first = out.len();
        diff_section(o, n, name, fixed_sizes, classes.is_none(), out);
        if let (Some(exact), Some(change)) = (classes, out.get_mut(first)) {
            class_version_wire(change, o, n);
            for change in out.iter_mut().skip(first) {
                class_layout_wire(change, exact);
            }
        }
    };
    // Between -dump-vmstate files, classes that share a section name (isa-fdc, sun-fdtwo:
    // "fdc") and describe it alike are one entry; one that differs on one side only is
    // compared with the first of its section name on the other.
    let first_of = |dump: &'d Dump, idstr: &str| -> Option<&'d Device> {
        classes?;
        dump.devices
            .iter()
            .find(|d| d.idstr == idstr && d.instance_id == 0)
    };
    for o in old.sorted_devices() {
        match new_by_key.get(&(o.idstr.as_str(), o.instance_id)) {
            Some(n) => pair(o, n, device_name(o), &mut out),
            None => match first_of(new, &o.idstr) {
                Some(n) => pair(o, n, device_name(o), &mut out),
                None => out.push(device_change(o, ChangeKind::DeviceRemoved)),
            },
        }
    }
    for n in new.sorted_devices() {
        if !old_keys.contains(&(n.idstr.as_str(), n.instance_id)) {
            match first_of(old, &n.idstr) {
                Some(o) => pair(o, n, device_name(n), &mut out),
                None => out.push(device_change(n, ChangeKind::DeviceAdded)),
            }
        }
    }
    if classes.is_some() {
        // A class only the new QEMU has cannot be in the old one's streams.
        for change in out.iter_mut().filter(|c| c.class == ChangeClass::Device) {
            let maybe = (Load::Undecided, Load::Loads);
            let (forward, backward) = if change.kind == ChangeKind::DeviceAdded {
                (maybe.1, maybe.0)
            } else {
                maybe
            };
            change.wire = Wire::new(
                forward,
                backward,
                "-dump-vmstate lists the classes a QEMU has, not the devices a machine uses: \
                 breaks only where the machine has this device",
            );
        }
    }
    out
}

/// Between `-dump-vmstate` classes, minimum versions are known: a section version that went
/// up loads forward exactly when the new minimum allows the old version.
fn class_version_wire(change: &mut Change, old: &Device, new: &Device) {
    if change.kind != ChangeKind::VersionChanged || !change.path.is_empty() {
        return;
    }
    let (ov, nv) = (u64::from(old.version_id), u64::from(new.version_id));
    let (new_min, old_min) = (new.body.minimum_version, old.body.minimum_version);
    if nv > ov {
        if let Some(min) = new_min {
            change.wire.forward = if min <= ov { Load::Loads } else { Load::Breaks };
            if min > ov {
                change.wire.why = too_old_message(&new.body.vmsd_name, ov, min);
            }
        }
    } else if let Some(min) = old_min {
        change.wire.backward = if min <= nv { Load::Loads } else { Load::Breaks };
    }
}

/// Between `-dump-vmstate` classes, a field behind a `field_exists` test, or sizes that
/// may be per element (a file older than QEMU 8.1 has no array lengths), cannot show a
/// layout break for sure.
fn class_layout_wire(change: &mut Change, exact_sizes: bool) {
    if !matches!(
        change.kind,
        ChangeKind::FieldAdded | ChangeKind::FieldRemoved | ChangeKind::TypeChanged
    ) {
        return;
    }
    let conditional = [&change.old_type, &change.new_type]
        .into_iter()
        .flatten()
        .any(|s| s.type_name.ends_with("conditional"));
    let mut downgraded = false;
    for load in [&mut change.wire.forward, &mut change.wire.backward] {
        if *load == Load::Breaks && (conditional || !exact_sizes) {
            *load = Load::Undecided;
            downgraded = true;
        }
    }
    if downgraded {
        let why = if conditional {
            "a field behind a field_exists test: breaks if the test holds on both sides"
        } else {
            "sizes per element (a -dump-vmstate older than QEMU 8.1 has no array lengths)"
        };
        change.wire.why = format!("{}; {why}", change.wire.why);
    }
}

/// QEMU's words for a section the destination does not have (savevm.c,
/// qemu_loadvm_section_start_full).
pub fn unknown_section_message(idstr: &str, instance_id: u32) -> String {
    format!(
        "Unknown savevm section or instance '{idstr}' {instance_id}. Make sure that your current \
         VM setup matches your saved VM setup, including any hotplugged devices"
    )
}

fn device_change(d: &Device, kind: ChangeKind) -> Change {
    let leaf = Some(Leaf::Section {
        version: d.version_id,
        len: d.len,
    });
    let why = unknown_section_message(&d.idstr, d.instance_id);
    let mut change = Change::new(device_name(d), "", kind);
    // A section the stream lacks leaves the destination's device at its reset state.
    if kind == ChangeKind::DeviceRemoved {
        (change.old, change.old_offset) = (leaf, Some(d.offset));
        change.wire = Wire::new(Load::Breaks, Load::Loads, why);
    } else {
        (change.new, change.new_offset) = (leaf, Some(d.offset));
        change.wire = Wire::new(Load::Loads, Load::Breaks, why);
    }
    change
}

fn stream_change(path: &str, old: Leaf, new: Leaf, wire: Wire) -> Change {
    Change {
        old: Some(old),
        new: Some(new),
        wire,
        ..Change::new("stream", path, ChangeKind::Stream)
    }
}

/// The configuration section and stream framing, as `savevm.c` checks them on load.
fn diff_stream(old: &Dump, new: &Dump, out: &mut Vec<Change>) {
    let label = |s: Option<&str>| Leaf::Label(s.unwrap_or("(none)").to_string());
    if old.machine != new.machine {
        let wire = match (&old.machine, &new.machine) {
            (Some(o), Some(n)) => Wire::new(
                Load::Breaks,
                Load::Breaks,
                format!("Machine type received is '{o}' and local is '{n}'"),
            ),
            // One side sends no configuration section (Xen, send-configuration=off).
            (None, _) => Wire::new(
                Load::Breaks,
                Load::Breaks,
                "Configuration section missing; backward: Unknown savevm section type 7",
            ),
            (_, None) => Wire::new(
                Load::Breaks,
                Load::Breaks,
                "Unknown savevm section type 7; backward: Configuration section missing",
            ),
        };
        out.push(stream_change(
            "machine",
            label(old.machine.as_deref()),
            label(new.machine.as_deref()),
            wire,
        ));
    }
    if old.capabilities != new.capabilities {
        let why = "QEMU refuses a validated capability (x-ignore-shared, mapped-ram) that is on \
                   at one end only (\"Capability ... is off, but received capability is on\")";
        out.push(stream_change(
            "capabilities",
            Leaf::Label(old.capabilities.join(",")),
            Leaf::Label(new.capabilities.join(",")),
            Wire::new(Load::Breaks, Load::Breaks, why),
        ));
    }
    if old.uuid != new.uuid {
        // Only a destination with validate-uuid compares it, and only the source's
        // validate-uuid sends it.
        let why = "with validate-uuid on, QEMU refuses a UUID that is not its own \
                   (\"UUID received is ... and local is ...\")";
        out.push(stream_change(
            "uuid",
            label(old.uuid.as_deref()),
            label(new.uuid.as_deref()),
            Wire::new(Load::Undecided, Load::Undecided, why),
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
        // A destination skips a command it knows; QEMU before 10.0 does not know
        // SWITCHOVER_START, which machine types from 10.0 send.
        let why = "a QEMU that does not know a command refuses it (\"MIG_CMD 0xb unknown\" for \
                   SWITCHOVER_START before QEMU 10.0)";
        let more = |a: &Dump, b: &Dump| {
            a.stream
                .commands
                .iter()
                .any(|c| !b.stream.commands.iter().any(|d| d.name == c.name))
        };
        let direction = |extra: bool| if extra { Load::Undecided } else { Load::Loads };
        out.push(stream_change(
            "commands",
            Leaf::Label(commands(old)),
            Leaf::Label(commands(new)),
            Wire::new(direction(more(old, new)), direction(more(new, old)), why),
        ));
    }
    if old.page_size != new.page_size {
        out.push(stream_change(
            "page_size",
            Leaf::Size(old.page_size),
            Leaf::Size(new.page_size),
            Wire::new(
                Load::Breaks,
                Load::Breaks,
                "RAM pages of another target page size",
            ),
        ));
    }
    if let (Some(o), Some(n)) = (old.stream.ram_instance, new.stream.ram_instance) {
        if o != n {
            let instance = |value: u32| Leaf::Int {
                value: u64::from(value),
                size: 4,
                signed: false,
            };
            out.push(stream_change(
                "ram_instance",
                instance(o),
                instance(n),
                Wire::new(
                    Load::Breaks,
                    Load::Breaks,
                    unknown_section_message("ram", o),
                ),
            ));
        }
    }
}

/// Where a struct's fields are loaded, for the wire rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Loaded at the version the stream carries, the same on both sides: the destination
    /// reads exactly the fields it describes.
    SameVersion,
    /// Loaded at a version that differs between the sides: the destination reads the
    /// fields its vmsd enables for the incoming version, which no vmdesc records.
    OtherVersion { old: u64, new: u64 },
}

struct Ctx<'o> {
    device: String,
    /// Whether every field has one size whatever the state: between `-dump-vmstate`
    /// files with array lengths, where a buffer's size is its declared one.
    fixed_sizes: bool,
    /// Whether the trees come from vmdescs, which list the fields a save sent (not those a
    /// field_exists test left out), rather than from `-dump-vmstate` classes.
    sent_fields: bool,
    out: &'o mut Vec<Change>,
}

impl Ctx<'_> {
    fn change(
        &self,
        kind: ChangeKind,
        path: &str,
        old: Option<&Node>,
        new: Option<&Node>,
    ) -> Change {
        Change {
            old: old.map(Leaf::of),
            new: new.map(Leaf::of),
            old_offset: old.map(|n| n.offset),
            new_offset: new.map(|n| n.offset),
            ..Change::new(self.device.clone(), path, kind)
        }
    }
}

/// Differences between two sections of the same device, appended to `out`.
pub fn diff_device(old: &Device, new: &Device, out: &mut Vec<Change>) {
    diff_section(old, new, device_name(old), false, true, out)
}

/// [`diff_device`], the changes under display name `name`.
fn diff_section(
    old: &Device,
    new: &Device,
    name: String,
    fixed_sizes: bool,
    sent_fields: bool,
    out: &mut Vec<Change>,
) {
    let mut ctx = Ctx {
        fixed_sizes,
        sent_fields,
        device: name,
        out,
    };
    let scope = version_scope(u64::from(old.version_id), u64::from(new.version_id));
    if old.version_id != new.version_id {
        let mut change = Change {
            old: Some(Leaf::Version(old.version_id)),
            new: Some(Leaf::Version(new.version_id)),
            old_offset: Some(old.offset),
            new_offset: Some(new.offset),
            ..Change::new(ctx.device.clone(), "", ChangeKind::VersionChanged)
        };
        change.wire = version_wire(
            &old.idstr,
            old.version_id,
            new.version_id,
            unsupported_version_message,
        );
        ctx.out.push(change);
    }
    if SPARSE_SECTIONS.contains(&old.idstr.as_str()) {
        diff_entries(&old.body, &new.body, &mut ctx);
    } else {
        diff_struct(&old.body, &new.body, "", scope, &mut ctx);
    }
}

/// Iterative sections whose fields are the entries of a table keyed by name (valid HPTEs,
/// windows of storage attributes, dirty bitmap chunks; see [`crate::iterative`]): an entry
/// on one side only is a value that appeared or went away, not a field of another layout.
pub const SPARSE_SECTIONS: [&str; 3] = ["spapr/htab", "s390-storage_attributes", "dirty-bitmap"];

/// [`SPARSE_SECTIONS`]: entries compared by name; one side's missing entry is `absent`.
fn diff_entries(old: &Struct, new: &Struct, ctx: &mut Ctx<'_>) {
    let news: HashMap<&str, &Node> = new.fields.iter().map(|n| (n.name.as_str(), n)).collect();
    let olds: HashMap<&str, &Node> = old.fields.iter().map(|n| (n.name.as_str(), n)).collect();
    let absent = || Some(Leaf::Label("absent".into()));
    for o in &old.fields {
        match news.get(o.name.as_str()) {
            Some(n) => diff_node(o, n, &o.name, Scope::SameVersion, ctx),
            None => {
                let mut change = ctx.change(ChangeKind::Value, &o.name, Some(o), None);
                change.new = absent();
                ctx.out.push(change);
            }
        }
    }
    for n in &new.fields {
        if !olds.contains_key(n.name.as_str()) {
            let mut change = ctx.change(ChangeKind::Value, &n.name, None, Some(n));
            change.old = absent();
            ctx.out.push(change);
        }
    }
}

fn version_scope(old: u64, new: u64) -> Scope {
    if old == new {
        Scope::SameVersion
    } else {
        Scope::OtherVersion { old, new }
    }
}

/// A version that went up loads forward only if the new minimum_version_id allows the old
/// version (no dump records it), and is refused backward; `too_new` words the refusal.
fn version_wire(name: &str, old: u32, new: u32, too_new: fn(&str, u64, u64) -> String) -> Wire {
    let minimum = |v: u32| format!("loads if the destination's minimum_version_id is at most {v}");
    let (o, n) = (u64::from(old), u64::from(new));
    if new > old {
        Wire::new(
            Load::Undecided,
            Load::Breaks,
            format!("{}; backward: {}", minimum(old), too_new(name, n, o)),
        )
    } else {
        Wire::new(
            Load::Breaks,
            Load::Undecided,
            format!("{}; backward: {}", too_new(name, o, n), minimum(new)),
        )
    }
}

fn diff_struct(old: &Struct, new: &Struct, prefix: &str, scope: Scope, ctx: &mut Ctx<'_>) {
    let old_names: Vec<&str> = old.fields.iter().map(|n| n.name.as_str()).collect();
    let new_names: Vec<&str> = new.fields.iter().map(|n| n.name.as_str()).collect();
    // Byte positions of each field in its struct, and where both sides' layouts meet.
    let layout = Layout::new(&old.fields, &new.fields);
    let mut placed: Vec<(usize, Placement)> = Vec::new();
    for op in align_names(&old_names, &new_names) {
        match op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                for i in 0..len {
                    let (oi, ni) = (old_index + i, new_index + i);
                    let (o, n) = (&old.fields[oi], &new.fields[ni]);
                    let before = ctx.out.len();
                    diff_node(o, n, &format!("{prefix}{}", o.name), scope, ctx);
                    // A retyped field (or array element) is judged by where its bytes sit;
                    // a nested struct judged its own.
                    if !matches!(o.value, Value::Struct(_)) {
                        for k in before..ctx.out.len() {
                            if ctx.out[k].kind == ChangeKind::TypeChanged {
                                placed.push((k, Placement::Both(oi, ni)));
                            }
                        }
                    }
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                for oi in old_index..old_index + old_len {
                    let o = &old.fields[oi];
                    let change = field_change(ctx, ChangeKind::FieldRemoved, prefix, Some(o), None);
                    placed.push((ctx.out.len(), Placement::Old(oi)));
                    ctx.out.push(change);
                }
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                for ni in new_index..new_index + new_len {
                    let n = &new.fields[ni];
                    let change = field_change(ctx, ChangeKind::FieldAdded, prefix, None, Some(n));
                    placed.push((ctx.out.len(), Placement::New(ni)));
                    ctx.out.push(change);
                }
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                let first = ctx.out.len();
                diff_replaced(
                    old,
                    new,
                    (old_index, old_len),
                    (new_index, new_len),
                    prefix,
                    scope,
                    ctx,
                    &mut placed,
                );
                if old_len.saturating_mul(new_len) > MAX_ALIGNMENT {
                    for change in ctx.out.iter_mut().skip(first) {
                        change
                            .meaning
                            .get_or_insert_with(|| PAIRED_BY_POSITION.into());
                    }
                }
            }
        }
    }
    for (k, placement) in placed {
        if let Some(change) = ctx.out.get_mut(k) {
            if let Some(wire) =
                layout.wire(placement, change, scope, ctx.fixed_sizes, ctx.sent_fields)
            {
                change.wire = wire;
            }
        }
    }
    diff_subsections(old, new, prefix, ctx);
}

/// Past this many name pairs between the first and last differing field, names are not
/// aligned (Myers is quadratic there: 100,000 renamed fields took over a minute): the
/// stretch is one replaced run, paired by position, and each change says so.
const MAX_ALIGNMENT: usize = 4_000_000;

/// What a change in a stretch too long to align by name says of itself.
pub const PAIRED_BY_POSITION: &str =
    "paired by position: too many fields differ here to align them by name";

/// The edit script between two field-name lists: Myers, except that a differing stretch
/// too long to align is one replaced run (the common head and tail stay equal).
fn align_names(old: &[&str], new: &[&str]) -> Vec<DiffOp> {
    let head = old.iter().zip(new).take_while(|(o, n)| o == n).count();
    let tail = old[head..]
        .iter()
        .rev()
        .zip(new[head..].iter().rev())
        .take_while(|(o, n)| o == n)
        .count();
    let (old_len, new_len) = (old.len() - head - tail, new.len() - head - tail);
    if old_len.saturating_mul(new_len) <= MAX_ALIGNMENT {
        return capture_diff_slices(Algorithm::Myers, old, new);
    }
    let mut ops = Vec::with_capacity(3);
    if head > 0 {
        ops.push(DiffOp::Equal {
            old_index: 0,
            new_index: 0,
            len: head,
        });
    }
    ops.push(DiffOp::Replace {
        old_index: head,
        old_len,
        new_index: head,
        new_len,
    });
    if tail > 0 {
        ops.push(DiffOp::Equal {
            old_index: head + old_len,
            new_index: head + new_len,
            len: tail,
        });
    }
    ops
}

/// Subsections are matched by name (the wire carries it); each is loaded at the version it
/// carries.
fn diff_subsections(old: &Struct, new: &Struct, prefix: &str, ctx: &mut Ctx<'_>) {
    for sub in &old.subsections {
        let name = &sub.body.vmsd_name;
        let sub_prefix = crate::tree::subsection_prefix(prefix, name);
        let path = sub_prefix.trim_end_matches('/');
        match new.subsections.iter().find(|s| &s.body.vmsd_name == name) {
            Some(n) => {
                let (ov, nv) = (sub.body.version.unwrap_or(0), n.body.version.unwrap_or(0));
                if ov != nv {
                    let (ov32, nv32) = (ov as u32, nv as u32);
                    let mut change = Change {
                        old: Some(Leaf::Version(ov32)),
                        new: Some(Leaf::Version(nv32)),
                        old_offset: Some(sub.offset),
                        new_offset: Some(n.offset),
                        ..Change::new(ctx.device.clone(), path, ChangeKind::VersionChanged)
                    };
                    change.wire = version_wire(name, ov32, nv32, too_new_message);
                    ctx.out.push(change);
                }
                diff_struct(&sub.body, &n.body, &sub_prefix, version_scope(ov, nv), ctx)
            }
            None => {
                let mut change = Change {
                    old: Some(Leaf::Present),
                    old_offset: Some(sub.offset),
                    ..Change::new(ctx.device.clone(), path, ChangeKind::SubsectionRemoved)
                };
                change.wire = subsection_wire(name, &old.vmsd_name, false);
                ctx.out.push(change);
            }
        }
    }
    for sub in &new.subsections {
        let name = &sub.body.vmsd_name;
        if !old.subsections.iter().any(|s| &s.body.vmsd_name == name) {
            let sub_prefix = crate::tree::subsection_prefix(prefix, name);
            let mut change = Change {
                new: Some(Leaf::Present),
                new_offset: Some(sub.offset),
                ..Change::new(
                    ctx.device.clone(),
                    sub_prefix.trim_end_matches('/'),
                    ChangeKind::SubsectionAdded,
                )
            };
            change.wire = subsection_wire(name, &new.vmsd_name, true);
            ctx.out.push(change);
        }
    }
}

/// A subsection one side sent: the other side loads a stream without it, and loads one with
/// it only if its vmsd knows the subsection, which a dump that did not send it cannot show.
fn subsection_wire(name: &str, parent: &str, only_in_new: bool) -> Wire {
    let why = format!(
        "loads only if the destination knows subsection '{name}' (else \"VM subsection '{name}' \
         in '{parent}' does not exist\")"
    );
    if only_in_new {
        Wire::new(Load::Loads, Load::Undecided, why)
    } else {
        Wire::new(Load::Undecided, Load::Loads, why)
    }
}

/// Where a field change sits: on one side, or the same field on both.
#[derive(Debug, Clone, Copy)]
enum Placement {
    Old(usize),
    New(usize),
    Both(usize, usize),
}

/// Byte offsets of the fields of one struct on both sides, and the offsets both layouts
/// share: a stretch of fields between two shared offsets carries the same number of bytes
/// on both sides, whatever its fields are called.
struct Layout {
    old_starts: Vec<u64>,
    new_starts: Vec<u64>,
    /// Ascending.
    shared: Vec<u64>,
}

impl Layout {
    fn new(old: &[Node], new: &[Node]) -> Layout {
        let starts = |fields: &[Node]| -> Vec<u64> {
            let mut at = 0u64;
            let mut starts = Vec::with_capacity(fields.len() + 1);
            for f in fields {
                starts.push(at);
                at = at.saturating_add(f.len);
            }
            starts.push(at);
            starts
        };
        let (old_starts, new_starts) = (starts(old), starts(new));
        let in_new: HashSet<u64> = new_starts.iter().copied().collect();
        let shared = old_starts
            .iter()
            .copied()
            .filter(|o| in_new.contains(o))
            .collect();
        Layout {
            old_starts,
            new_starts,
            shared,
        }
    }

    /// Whether the layouts meet again at or after byte `end`.
    fn realigned_after(&self, end: u64) -> bool {
        self.shared.last().is_some_and(|&s| s >= end)
    }

    fn end(starts: &[u64], i: usize) -> u64 {
        starts.get(i + 1).copied().unwrap_or(0)
    }

    /// The wire impact of a field change at `placement`; `None` keeps the one the change
    /// has (a buffer whose length may travel in the stream).
    fn wire(
        &self,
        placement: Placement,
        change: &Change,
        scope: Scope,
        fixed_sizes: bool,
        sent_fields: bool,
    ) -> Option<Wire> {
        let (realigned, bytes_differ) = match placement {
            Placement::Old(i) => (self.realigned_after(Self::end(&self.old_starts, i)), true),
            Placement::New(i) => (self.realigned_after(Self::end(&self.new_starts, i)), true),
            Placement::Both(i, j) => {
                let (oe, ne) = (
                    Self::end(&self.old_starts, i),
                    Self::end(&self.new_starts, j),
                );
                (self.realigned_after(oe.max(ne)), oe != ne)
            }
        };
        if !bytes_differ || realigned {
            return Some(Wire::identical("the same bytes travel at the same places"));
        }
        if change.wire.forward == Load::Undecided && !fixed_sizes {
            return None;
        }
        let what = describe_field(change);
        let one_side = !matches!(placement, Placement::Both(..));
        Some(match scope {
            // A dump's vmdesc lists the fields sent, so a field on one side only may sit
            // behind a field_exists test (ide's identify_data follows identify_set): the
            // destination's loader then tests it on the incoming values and agrees.
            Scope::SameVersion if one_side && sent_fields => Wire::new(
                Load::Undecided,
                Load::Undecided,
                format!(
                    "{what} at the same version: loads if a field_exists test left it out \
                     (the destination tests it too), desynchronizes (\"Missing section \
                     footer\") if the layout changed without a version bump; the \
                     destination's -dump-vmstate settles it"
                ),
            ),
            Scope::SameVersion => Wire::new(
                Load::Breaks,
                Load::Breaks,
                format!(
                    "{what}: the destination reads another field layout at the same version, \
                     the load desynchronizes (\"Missing section footer\")"
                ),
            ),
            Scope::OtherVersion { old, new } => Wire::new(
                Load::Undecided,
                Load::Undecided,
                format!(
                    "{what}: version {old} -> {new}; loads if the version gates it, which the \
                     description does not record"
                ),
            ),
        })
    }
}

/// `esp.drq_state (uint8, 1 byte) only in new`, for wire reasons.
fn describe_field(change: &Change) -> String {
    let shape = |s: &Option<Shape>| s.as_ref().map(Shape::to_string).unwrap_or_default();
    match change.kind {
        ChangeKind::FieldAdded => {
            format!("{} ({}) only in new", change.path, shape(&change.new_type))
        }
        ChangeKind::FieldRemoved => {
            format!("{} ({}) only in old", change.path, shape(&change.old_type))
        }
        _ => format!(
            "{} ({} -> {})",
            change.path,
            shape(&change.old_type),
            shape(&change.new_type)
        ),
    }
}

fn field_change(
    ctx: &Ctx<'_>,
    kind: ChangeKind,
    prefix: &str,
    old: Option<&Node>,
    new: Option<&Node>,
) -> Change {
    let name = old.or(new).map(|n| n.name.as_str()).unwrap_or_default();
    Change {
        old_type: old.map(Shape::of),
        new_type: new.map(Shape::of),
        ..ctx.change(kind, &format!("{prefix}{name}"), old, new)
    }
}

/// Fields that sit where others were: pairwise renames when the shapes match, else
/// removals and additions.
#[allow(clippy::too_many_arguments)]
fn diff_replaced(
    old: &Struct,
    new: &Struct,
    (old_index, old_len): (usize, usize),
    (new_index, new_len): (usize, usize),
    prefix: &str,
    scope: Scope,
    ctx: &mut Ctx<'_>,
    placed: &mut Vec<(usize, Placement)>,
) {
    let olds = &old.fields[old_index..old_index + old_len];
    let news = &new.fields[new_index..new_index + new_len];
    let renamed =
        |i: usize| matches!((olds.get(i), news.get(i)), (Some(o), Some(n)) if same_shape(o, n));
    for (i, o) in olds.iter().enumerate() {
        if let (true, Some(n)) = (renamed(i), news.get(i)) {
            let path = format!("{prefix}{}", n.name);
            let mut change = field_change(ctx, ChangeKind::FieldRenamed, prefix, Some(o), Some(n));
            change.path.clone_from(&path);
            change.renamed_from = Some(format!("{prefix}{}", o.name));
            change.wire = Wire::identical("names do not travel");
            ctx.out.push(change);
            if o.value != n.value {
                diff_node(o, n, &path, scope, ctx);
            }
        } else {
            let change = field_change(ctx, ChangeKind::FieldRemoved, prefix, Some(o), None);
            placed.push((ctx.out.len(), Placement::Old(old_index + i)));
            ctx.out.push(change);
        }
    }
    for (i, n) in news.iter().enumerate() {
        if !renamed(i) {
            let change = field_change(ctx, ChangeKind::FieldAdded, prefix, None, Some(n));
            placed.push((ctx.out.len(), Placement::New(new_index + i)));
            ctx.out.push(change);
        }
    }
}

fn same_shape(a: &Node, b: &Node) -> bool {
    a.type_name == b.type_name && a.len == b.len
}

fn is_integer(node: &Node) -> bool {
    matches!(
        node.value,
        Value::Uint { .. } | Value::Int { .. } | Value::Bool(_)
    )
}

fn diff_node(old: &Node, new: &Node, path: &str, scope: Scope, ctx: &mut Ctx<'_>) {
    match (&old.value, &new.value) {
        // Nested structs load with the destination's own version of their vmsd: a version
        // of its own changes nothing on the wire, its fields tell.
        (Value::Struct(o), Value::Struct(n)) => {
            if o.version != n.version {
                let version = |s: &Struct| Leaf::Version(s.version.unwrap_or(0) as u32);
                let mut change = ctx.change(ChangeKind::VersionChanged, path, None, None);
                (change.old, change.new) = (Some(version(o)), Some(version(n)));
                change.wire = Wire::new(
                    Load::Loads,
                    Load::Loads,
                    "a nested struct is loaded at the destination's own version",
                );
                ctx.out.push(change);
            }
            let first = ctx.out.len();
            diff_struct(
                o,
                n,
                &crate::tree::child_prefix(path),
                Scope::SameVersion,
                ctx,
            );
            if o.version != n.version {
                // Each side describes the fields it sends at its own version; what the
                // other reads may follow values in the stream (ESP's mig_version_id picks
                // its fields), so a layout change is not settled by either description.
                for change in ctx.out.iter_mut().skip(first) {
                    if change.class == ChangeClass::Schema && change.wire.worst() != Load::Loads {
                        change.wire = Wire::new(
                            Load::Undecided,
                            Load::Undecided,
                            format!(
                                "{}; the struct {path} went from version {} to {}, and which \
                                 fields each side reads may follow values in the stream: the \
                                 destination's -dump-vmstate settles it",
                                change.wire.why,
                                o.version.unwrap_or(0),
                                n.version.unwrap_or(0)
                            ),
                        );
                    }
                }
            }
        }
        (Value::Array(_) | Value::Scalars(_), Value::Array(_) | Value::Scalars(_)) => {
            diff_array(old, new, path, scope, ctx)
        }
        (o, n)
            if !same_shape(old, new) || std::mem::discriminant(o) != std::mem::discriminant(n) =>
        {
            let mut change = Change {
                old_type: Some(Shape::of(old)),
                new_type: Some(Shape::of(new)),
                ..ctx.change(ChangeKind::TypeChanged, path, Some(old), Some(new))
            };
            // Placed by the caller, which knows the layout; a same-size retype of a number
            // is the same bytes, a buffer's length may travel in the stream.
            change.wire = if old.len == new.len && is_integer(old) && is_integer(new) {
                Wire::identical("a number of the same size")
            } else if old.len != new.len && !(is_integer(old) && is_integer(new)) {
                Wire::new(
                    Load::Undecided,
                    Load::Undecided,
                    format!("{path}: loads only if its length travels in the stream"),
                )
            } else {
                Wire::loads()
            };
            ctx.out.push(change);
        }
        (o, n) if o != n => {
            let mut change = ctx.change(ChangeKind::Value, path, Some(old), Some(new));
            if let (true, Some(o), Some(n)) =
                (old.type_name.ends_with(" equal"), as_u64(old), as_u64(new))
            {
                // vmstate-types.c, get_*_equal: the value sent must be the destination's own;
                // QEMU prints the local value first.
                change.wire = Wire::new(Load::Breaks, Load::Breaks, format!("{n:x} != {o:x}"));
            }
            if let (true, Value::Int { value: o, .. }, Value::Int { value: n, .. }) =
                (&*old.type_name == "int32 le", &old.value, &new.value)
            {
                change.wire = int32_le_wire(*o, *n);
            }
            if let (Value::Bytes(ob), Value::Bytes(nb)) = (o, n) {
                change.ranges = byte_ranges(ob, nb);
            }
            ctx.out.push(change);
        }
        _ => {}
    }
}

/// vmstate-types.c, get_int32_le: the value sent must lie in 0..=the destination's own
/// (Arm's cpreg_vmstate_array_len: no more system registers than the destination has).
fn int32_le_wire(old: i64, new: i64) -> Wire {
    let load = |sent: i64, local: i64| {
        if (0..=local).contains(&sent) {
            (Load::Loads, None)
        } else {
            let why = format!("Invalid value {sent} expecting positive value <= {local}");
            (Load::Breaks, Some(why))
        }
    };
    let ((forward, f_why), (backward, b_why)) = (load(old, new), load(new, old));
    let why = f_why
        .or(b_why)
        .unwrap_or_else(|| "a value the destination's bound admits".into());
    Wire::new(forward, backward, why)
}

/// Arrays element by element, then their lengths.
fn diff_array(old: &Node, new: &Node, path: &str, scope: Scope, ctx: &mut Ctx<'_>) {
    match (&old.value, &new.value) {
        // One layout: compare the numbers, and build nodes only for elements that differ.
        (Value::Scalars(o), Value::Scalars(n))
            if (o.size(), o.signed()) == (n.size(), n.signed())
                && old.type_name == new.type_name =>
        {
            for (i, (ov, nv)) in o.values().zip(n.values()).enumerate() {
                if ov != nv {
                    if let (Some(oe), Some(ne)) = (o.element(old, i), n.element(new, i)) {
                        diff_node(&oe, &ne, &format!("{path}[{i}]"), scope, ctx);
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
                diff_node(oe, ne, &format!("{path}[{i}]"), scope, ctx);
            }
        }
    }
    let (o, n) = (old.value.element_count(), new.value.element_count());
    if o != n {
        let mut change = Change {
            old: Some(Leaf::Elements(o.unwrap_or(0) as u64)),
            new: Some(Leaf::Elements(n.unwrap_or(0) as u64)),
            old_offset: Some(old.offset),
            new_offset: Some(new.offset),
            ..Change::new(ctx.device.clone(), path, ChangeKind::LengthChanged)
        };
        change.wire = Wire::new(
            Load::Undecided,
            Load::Undecided,
            "loads if the element count travels in the stream (a VARRAY), not if the \
             destination's array has a fixed length",
        );
        ctx.out.push(change);
    }
}

fn as_u64(node: &Node) -> Option<u64> {
    match node.value {
        Value::Uint { value, .. } => Some(value),
        Value::Int { value, .. } => Some(value as u64),
        _ => None,
    }
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

/// ROM blobs QEMU builds at run time live in resizable RAM blocks (fw_cfg's `/rom@etc/...`):
/// a size change is accepted up to the block's maximum, which no description records.
pub fn resizable(block: &str) -> bool {
    block.starts_with("/rom@")
}

/// QEMU's words for a section newer than the local vmsd (savevm.c,
/// qemu_loadvm_section_start_full).
pub fn unsupported_version_message(idstr: &str, incoming: u64, local: u64) -> String {
    format!("savevm: unsupported version {incoming} for '{idstr}' v{local}")
}

/// QEMU's words for a vmsd (a subsection's too) loaded at a version above its own
/// (vmstate.c, vmstate_load_state).
pub fn too_new_message(vmsd: &str, incoming: u64, local: u64) -> String {
    format!("{vmsd}: incoming version_id {incoming} is too new for local version_id {local}")
}

/// QEMU's words for a version below a vmsd's minimum (vmstate.c, vmstate_load_state; two
/// spaces before the number, as QEMU prints it).
pub fn too_old_message(vmsd: &str, incoming: u64, minimum: u64) -> String {
    format!(
        "{vmsd}: incoming version_id {incoming} is too old for local minimum version_id  {minimum}"
    )
}

/// QEMU's words for a RAM block of another size (what 7.2 and 10.0 print, qemu_ram_resize).
pub fn size_mismatch_message(block: &str, incoming: u64, local: u64) -> String {
    format!("Size mismatch: {block}: {incoming:#x} != {local:#x}")
}

/// QEMU's words for a RAM block at another guest-physical address (ram.c, parse_ramblock;
/// decimal, and no space before `!=`, as QEMU prints it).
pub fn gpa_mismatch_message(block: &str, incoming: u64, local: u64) -> String {
    format!(
        "Mismatched GPAs for block {block} {}!= {}",
        incoming as i64, local as i64
    )
}

/// QEMU's words for a RAM block the destination lacks (ram.c, parse_ramblock).
pub fn unknown_ramblock_message(block: &str) -> String {
    format!("Unknown ramblock \"{block}\", cannot accept migration")
}

fn ram_change(block: &RamBlock, kind: ChangeKind, old: Option<Leaf>, new: Option<Leaf>) -> Change {
    Change {
        old,
        new,
        ..Change::new("ram", block.name.clone(), kind)
    }
}

/// Pages of each RAM block (of one size on both sides) whose content one side or both do
/// not give ([`UNKNOWN`]: an XBZRLE delta without a base, a compressed page): compared
/// neither as same nor as different, so counted apart.
pub fn unknown_pages(old: &Dump, new: &Dump) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for o in &old.ram {
        let Some(n) = new.ram.iter().find(|n| n.name == o.name) else {
            continue;
        };
        if o.used_length != n.used_length || (o.unknown_pages == 0 && n.unknown_pages == 0) {
            continue;
        }
        let count = (0..o.digests.len().max(n.digests.len()))
            .filter(|&i| o.digest(i) == UNKNOWN || n.digest(i) == UNKNOWN)
            .count() as u64;
        if count > 0 {
            out.push((o.name.clone(), count));
        }
    }
    out
}

fn diff_ram(old: &Dump, new: &Dump, out: &mut Vec<Change>) {
    let size = |b: &RamBlock| Some(Leaf::Size(b.used_length));
    for o in &old.ram {
        let Some(n) = new.ram.iter().find(|n| n.name == o.name) else {
            let mut change = ram_change(o, ChangeKind::RamBlockRemoved, size(o), None);
            change.wire = Wire::new(Load::Breaks, Load::Loads, unknown_ramblock_message(&o.name));
            out.push(change);
            continue;
        };
        if o.addr != n.addr {
            let addr = |b: &RamBlock| b.addr.map(Leaf::Address);
            let mut change = ram_change(o, ChangeKind::RamBlockMoved, addr(o), addr(n));
            let why = gpa_mismatch_message(&o.name, o.addr.unwrap_or(0), n.addr.unwrap_or(0));
            change.wire = Wire::new(Load::Breaks, Load::Breaks, why);
            out.push(change);
        }
        if o.used_length != n.used_length {
            let mut change = ram_change(o, ChangeKind::RamBlockResized, size(o), size(n));
            change.wire = if resizable(&o.name) {
                Wire::new(
                    Load::Undecided,
                    Load::Undecided,
                    "a resizable block: loads if within the destination block's maximum size",
                )
            } else {
                let forward = size_mismatch_message(&o.name, o.used_length, n.used_length);
                Wire::new(Load::Breaks, Load::Breaks, forward)
            };
            out.push(change);
            continue;
        }
        let page = old.page_size.max(1);
        // Byte ranges within the block, whole pages at a time.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut unknown = 0;
        for i in 0..o.digests.len().max(n.digests.len()) {
            let (a, b) = (o.digest(i), n.digest(i));
            if a == UNKNOWN || b == UNKNOWN {
                unknown += 1;
            } else if a != b {
                let start = i as u64 * page;
                match ranges.last_mut() {
                    Some(last) if last.1 == start => last.1 = start + page,
                    _ => ranges.push((start, start + page)),
                }
            }
        }
        if !ranges.is_empty() {
            let changed: u64 = ranges.iter().map(|r| (r.1 - r.0) / page).sum();
            let mut change = ram_change(o, ChangeKind::RamPages, None, None);
            change.pages = Some(PageCount {
                changed,
                total: o.used_length / page,
                page_size: page,
                unknown,
            });
            change.ranges = ranges;
            out.push(change);
        }
    }
    for n in &new.ram {
        if !old.ram.iter().any(|o| o.name == n.name) {
            let mut change = ram_change(n, ChangeKind::RamBlockAdded, None, size(n));
            change.wire = Wire::new(Load::Loads, Load::Breaks, unknown_ramblock_message(&n.name));
            out.push(change);
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
                minimum_version: None,
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

    fn text(leaf: &Option<Leaf>) -> Option<String> {
        leaf.as_ref().map(Leaf::to_string)
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
                .map(|c| (c.kind, c.path.as_str(), text(&c.old), text(&c.new)))
                .collect();
            assert_eq!(
                summary,
                [
                    (
                        ChangeKind::Value,
                        "regs[2]",
                        Some("0x0003".into()),
                        Some("0x0007".into())
                    ),
                    (
                        ChangeKind::LengthChanged,
                        "regs",
                        Some("4 elements".into()),
                        Some("5 elements".into())
                    ),
                ]
            );
            assert_eq!(changes[0].old_offset, Some(12));
            assert_eq!(
                changes[0].old,
                Some(Leaf::Int {
                    value: 3,
                    size: 2,
                    signed: false
                })
            );
        }
    }

    #[test]
    fn rename_is_a_schema_change_identical_on_the_wire() {
        let changes = diff(
            vec![uint("config", 1), uint("num_timers", 3)],
            vec![uint("config", 1), uint("num_timers_save", 3)],
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ChangeKind::FieldRenamed);
        assert_eq!(changes[0].path, "num_timers_save");
        assert_eq!(changes[0].renamed_from.as_deref(), Some("num_timers"));
        assert_eq!(changes[0].wire.worst(), Load::Identical);
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
        assert_eq!(text(&changes[0].old).as_deref(), Some("0x01"));
        assert_eq!(text(&changes[0].new).as_deref(), Some("0x09"));
        assert_eq!(changes[0].wire.worst(), Load::Loads);
        // One more byte at the same version: a field_exists test that held on one side
        // only, or a layout changed without a version bump. Two dumps cannot tell which.
        assert_eq!(changes[1].wire.forward, Load::Undecided);
        assert!(changes[1]
            .wire
            .why
            .contains("c (uint8, 1 byte) only in new at the same version"));
    }

    fn buffer(name: &str, len: u64) -> Node {
        Node {
            name: name.into(),
            type_name: "buffer".into(),
            offset: 0,
            len,
            value: Value::Bytes(vec![0; len as usize]),
        }
    }

    #[test]
    fn a_buffer_split_into_fields_of_the_same_bytes_is_identical_on_the_wire() {
        // globalstate after QEMU 7.2: runstate[100] became runstate[32] + 2 bools + unused[66].
        let changes = diff(
            vec![uint("size", 10), buffer("runstate", 100)],
            vec![
                uint("size", 10),
                buffer("runstate", 32),
                uint("has_vm_was_suspended", 1),
                uint("vm_was_suspended", 0),
                buffer("unused", 66),
            ],
        );
        assert_eq!(changes.len(), 4);
        for c in &changes {
            assert_eq!(c.wire.worst(), Load::Identical, "{c:?}");
        }
    }

    #[test]
    fn a_field_added_inside_a_nested_struct_is_undecided_whatever_the_section_version() {
        let esp = |fields: Vec<Node>| Node {
            name: "esp".into(),
            type_name: "struct".into(),
            offset: 0,
            len: fields.iter().map(|f| f.len).sum(),
            value: Value::Struct(Box::new(Struct {
                vmsd_name: "esp".into(),
                version: Some(5),
                minimum_version: None,
                fields,
                subsections: Vec::new(),
            })),
        };
        let old = device(vec![esp(vec![uint("ti_rptr", 0)])]);
        let mut new = device(vec![esp(vec![uint("ti_rptr", 0), uint("drq_state", 0)])]);
        new.version_id = 3;
        let mut out = Vec::new();
        diff_device(&old, &new, &mut out);
        let added = out
            .iter()
            .find(|c| c.kind == ChangeKind::FieldAdded)
            .unwrap();
        assert_eq!(added.path, "esp.drq_state");
        // Loaded at the destination's own struct version whatever the section's: the same
        // question as at the same version, which only the destination's classes settle.
        assert_eq!(added.wire.forward, Load::Undecided);
        assert!(
            added.wire.why.contains("at the same version"),
            "{}",
            added.wire.why
        );
    }

    #[test]
    fn an_int32_le_loads_only_up_to_the_destinations_own_value() {
        let forward_refused = int32_le_wire(328, 274);
        assert_eq!(
            (forward_refused.forward, forward_refused.backward),
            (Load::Breaks, Load::Loads)
        );
        assert_eq!(
            forward_refused.why,
            "Invalid value 328 expecting positive value <= 274"
        );
        let negative = int32_le_wire(-1, 5);
        assert_eq!(
            (negative.forward, negative.backward),
            (Load::Breaks, Load::Breaks)
        );
        let smaller = int32_le_wire(3, 4);
        assert_eq!(
            (smaller.forward, smaller.backward),
            (Load::Loads, Load::Breaks)
        );
        assert_eq!(int32_le_wire(4, 4).worst(), Load::Loads);
    }

    #[test]
    fn too_many_renamed_fields_are_paired_by_position() {
        let names = |prefix: &str| -> Vec<Node> {
            (0..100_000)
                .map(|i| uint(&format!("{prefix}{i}"), 1))
                .collect()
        };
        let mut old = names("a");
        old.insert(0, uint("same", 1));
        let changes = diff(old, names("b"));
        assert_eq!(changes.len(), 100_001);
        assert_eq!(changes[0].kind, ChangeKind::FieldRenamed);
        assert_eq!(changes[0].renamed_from.as_deref(), Some("same"));
        assert_eq!(changes[0].meaning.as_deref(), Some(PAIRED_BY_POSITION));
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

    #[test]
    fn leaves_serialize_typed_with_their_text() {
        let leaf = Leaf::Int {
            value: u64::MAX,
            size: 2,
            signed: true,
        };
        let json = serde_json::to_value(&leaf).unwrap();
        assert_eq!(json["type"], "int");
        assert_eq!(json["value"], -1);
        assert_eq!(json["text"], "0xffff (-1)");
    }
}
