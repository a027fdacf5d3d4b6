//! The normalized device tree: what one dump holds, independent of byte layout.
//!
//! Devices are keyed by `(idstr, instance_id)` (what QEMU's loader matches on), never by
//! section id, which shifts between QEMU builds. Every node keeps the byte offset and length
//! it was decoded from, for error messages and hex views. Guest RAM is kept only as
//! per-page digests.

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::SectionRef;

/// Everything migdiff decodes from one migration stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Dump {
    /// Machine type from the configuration section (`pc-i440fx-10.0`), if the stream has one.
    pub machine: Option<String>,
    /// Validated migration capabilities listed in the configuration (`x-ignore-shared`, ...).
    pub capabilities: Vec<String>,
    /// The VM's UUID from the configuration, sent with the validate-uuid capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Target page size used for RAM records.
    pub page_size: u64,
    /// Non-RAM sections, in stream order.
    pub devices: Vec<Device>,
    /// RAM blocks from the "ram" section, in stream order.
    pub ram: Vec<RamBlock>,
    /// Stream-level facts: commands, footers, vmdesc size.
    pub stream: StreamInfo,
    /// Things decoded with a fallback (unknown types, skipped data). Never silent.
    pub warnings: Vec<Warning>,
    /// Set when this is not a stream but `-dump-vmstate` class descriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassFile>,
}

/// What a `-dump-vmstate` file records beyond a vmdesc, and what it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClassFile {
    /// Whether fields carry their array lengths (`num`, QEMU >= 8.1): a field node's
    /// `len` is then per element, its value the element count.
    pub array_lengths: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamInfo {
    pub size: u64,
    /// Whether sections end with a 0x7e footer (all machine types since QEMU 2.4, except Xen).
    pub footers: bool,
    /// QEMU_VM_COMMANDs seen (SWITCHOVER_START on QEMU >= 10.0 machine types, ...).
    pub commands: Vec<Command>,
    /// Number of RAM chunks (START + PART + END sections).
    pub ram_chunks: u64,
    /// Length of the vmdesc JSON in bytes, when it came from the stream itself.
    pub vmdesc_len: Option<u64>,
    /// The instance id of the "ram" section (QEMU registers instance 0 and finds the
    /// section by idstr and instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_instance: Option<u32>,
}

/// No stream: what a description without one (`-dump-vmstate`) carries.
impl Default for StreamInfo {
    fn default() -> StreamInfo {
        StreamInfo {
            size: 0,
            footers: true,
            commands: Vec::new(),
            ram_chunks: 0,
            vmdesc_len: None,
            ram_instance: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub offset: u64,
    pub cmd: u16,
    pub name: String,
    pub len: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub offset: u64,
    pub section: Option<SectionRef>,
    pub message: String,
}

/// One device section (FULL), e.g. `cpu` instance 1 or `0000:00:03.0/e1000` instance 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Device {
    pub idstr: String,
    pub instance_id: u32,
    /// Local to one QEMU process; shown for reference, never used to match devices.
    pub section_id: u32,
    pub version_id: u32,
    /// Byte offset of the section header and length up to the end of its footer.
    pub offset: u64,
    pub len: u64,
    pub body: Struct,
}

impl Dump {
    /// Devices in normalized order, by `(idstr, instance_id)`: QEMU builds emit sections in
    /// different orders (7.2 and 10.0 differ for the same machine type), so stream order
    /// would show moved devices as changes.
    pub fn sorted_devices(&self) -> Vec<&Device> {
        let mut devices: Vec<&Device> = self.devices.iter().collect();
        devices.sort_by(|a, b| (&a.idstr, a.instance_id).cmp(&(&b.idstr, b.instance_id)));
        devices
    }
}

impl Dump {
    /// The same dump with every value blanked, keeping names, types, sizes, array lengths,
    /// subsections, versions and RAM block sizes: what `--schema-only` compares.
    /// `whole_arrays`: a `-dump-vmstate` field's size becomes that of all its elements.
    pub fn without_values(&self, whole_arrays: bool) -> Dump {
        let mut dump = self.clone();
        if whole_arrays {
            for device in &mut dump.devices {
                scale_arrays(&mut device.body);
            }
        }
        for device in &mut dump.devices {
            blank_struct(&mut device.body);
        }
        for block in &mut dump.ram {
            block.digests.clear();
            (block.zero_pages, block.data_pages, block.unknown_pages) = (0, 0, 0);
        }
        dump
    }
}

fn scale_arrays(s: &mut Struct) {
    for node in &mut s.fields {
        match &mut node.value {
            Value::Uint { value, .. } => node.len = node.len.saturating_mul(*value),
            Value::Struct(inner) => scale_arrays(inner),
            _ => {}
        }
    }
    for sub in &mut s.subsections {
        scale_arrays(&mut sub.body);
    }
}

fn blank_struct(s: &mut Struct) {
    for node in &mut s.fields {
        blank_node(node);
    }
    for sub in &mut s.subsections {
        blank_struct(&mut sub.body);
    }
}

fn blank_node(node: &mut Node) {
    if let Value::Scalars(_) = node.value {
        // Blanked elements are no longer numbers: keep them as nodes.
        node.value = Value::Array(node.elements().unwrap_or_default().into_owned());
    }
    match &mut node.value {
        Value::Struct(s) => blank_struct(s),
        Value::Array(items) => items.iter_mut().for_each(blank_node),
        value => *value = Value::Bytes(Vec::new()),
    }
}

impl Struct {
    /// The node at `path` (`env.segs[1].flags`, `cpu/avx512/env.opmask_regs[2]`), following
    /// the path rules of `child_prefix` and `subsection_prefix`. An element of a scalar
    /// array is built for the answer.
    pub fn find(&self, path: &str) -> Option<Cow<'_, Node>> {
        self.find_under(path, "")
    }

    fn find_under(&self, path: &str, prefix: &str) -> Option<Cow<'_, Node>> {
        let fields = self
            .fields
            .iter()
            .find_map(|node| node.find_under(path, &format!("{prefix}{}", node.name)));
        fields.or_else(|| {
            self.subsections.iter().find_map(|sub| {
                let sub_prefix = subsection_prefix(prefix, &sub.body.vmsd_name);
                path.starts_with(&sub_prefix)
                    .then(|| sub.body.find_under(path, &sub_prefix))
                    .flatten()
            })
        })
    }
}

impl Node {
    fn find_under(&self, path: &str, here: &str) -> Option<Cow<'_, Node>> {
        if path == here {
            return Some(Cow::Borrowed(self));
        }
        if !path.starts_with(here) {
            return None;
        }
        match &self.value {
            Value::Struct(s) => s.find_under(path, &child_prefix(here)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, n)| n.find_under(path, &format!("{here}[{i}]"))),
            Value::Scalars(scalars) => {
                let index = path
                    .strip_prefix(here)?
                    .strip_prefix('[')?
                    .strip_suffix(']')?;
                let i: usize = index.parse().ok()?;
                (i.to_string() == index)
                    .then(|| scalars.element(self, i))
                    .flatten()
                    .map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// The elements of an array node, `None` for any other node. Elements of a scalar
    /// array are built here, one node each, as they were before being folded.
    pub fn elements(&self) -> Option<Cow<'_, [Node]>> {
        match &self.value {
            Value::Array(items) => Some(Cow::Borrowed(items)),
            Value::Scalars(scalars) => Some(Cow::Owned(
                (0..scalars.len())
                    .filter_map(|i| scalars.element(self, i))
                    .collect(),
            )),
            _ => None,
        }
    }
}

impl Value {
    /// How many elements an array holds; `None` when this is not an array.
    pub fn element_count(&self) -> Option<usize> {
        match self {
            Value::Array(items) => Some(items.len()),
            Value::Scalars(scalars) => Some(scalars.len()),
            _ => None,
        }
    }
}

/// Integers of one size and signedness, the elements of an array node: element `i` has the
/// array's type, `size` bytes at the array's offset + `i * size`. Kept as the bytes that
/// travelled (big-endian): arrays of scalars run to tens of thousands of elements (e1000's
/// `mac_reg`, ICH9's `chip_config`), a node each would cost 88 bytes an element, and the
/// input then bounds the memory whatever count a description claims.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scalars {
    size: u8,
    signed: bool,
    bytes: Vec<u8>,
}

impl Scalars {
    /// `bytes` as integers of `size` bytes; `None` unless `size` is 1, 2, 4 or 8 and the
    /// bytes are whole elements.
    pub fn new(size: u8, signed: bool, bytes: Vec<u8>) -> Option<Scalars> {
        let whole = matches!(size, 1 | 2 | 4 | 8) && bytes.len() % usize::from(size) == 0;
        whole.then_some(Scalars {
            size,
            signed,
            bytes,
        })
    }

    /// Bytes per element: 1, 2, 4 or 8.
    pub fn size(&self) -> u8 {
        self.size
    }

    pub fn signed(&self) -> bool {
        self.signed
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / usize::from(self.size)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The elements as numbers, signed ones sign-extended to 64 bits.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.bytes
            .chunks_exact(usize::from(self.size))
            .map(|b| big_endian(b, self.signed))
    }

    /// Element `i` as a number, sign-extended to 64 bits when signed.
    pub fn get(&self, i: usize) -> Option<u64> {
        let size = usize::from(self.size);
        let bytes = self.bytes.get(i.checked_mul(size)?..)?.get(..size)?;
        Some(big_endian(bytes, self.signed))
    }

    /// Element `i` as a value.
    pub fn value(&self, i: usize) -> Option<Value> {
        let value = self.get(i)?;
        let size = self.size;
        Some(if self.signed {
            Value::Int {
                value: value as i64,
                size,
            }
        } else {
            Value::Uint { value, size }
        })
    }

    /// Element `i` of `array` (the node holding these scalars) as a node.
    pub fn element(&self, array: &Node, i: usize) -> Option<Node> {
        let size = u64::from(self.size);
        Some(Node {
            name: String::new(),
            type_name: array.type_name.clone(),
            offset: array.offset + i as u64 * size,
            len: size,
            value: self.value(i)?,
        })
    }

    /// The scalars `items` (the elements of `array`) are, when they are exactly that: all
    /// unnamed integers of the array's type and one size, laid end to end from its start.
    fn of(array: &Node, items: &[Node]) -> Option<Scalars> {
        let (size, signed) = match items.first()?.value {
            Value::Uint { size, .. } => (size, false),
            Value::Int { size, .. } => (size, true),
            _ => return None,
        };
        if !matches!(size, 1 | 2 | 4 | 8) {
            return None;
        }
        let step = u64::from(size);
        let mut bytes = Vec::with_capacity(items.len() * usize::from(size));
        for (i, item) in items.iter().enumerate() {
            let value = match item.value {
                Value::Uint { value, size: s } if !signed && s == size => value,
                Value::Int { value, size: s } if signed && s == size => value as u64,
                _ => return None,
            };
            let at = (i as u64)
                .checked_mul(step)
                .and_then(|o| o.checked_add(array.offset));
            let encoded = value.to_be_bytes();
            let encoded = encoded.get(8 - usize::from(size)..)?;
            let in_place = item.name.is_empty()
                && item.type_name == array.type_name
                && item.len == step
                && Some(item.offset) == at
                && big_endian(encoded, signed) == value;
            if !in_place {
                return None;
            }
            bytes.extend_from_slice(encoded);
        }
        Scalars::new(size, signed, bytes)
    }
}

/// A big-endian integer of 1 to 8 bytes; `signed`: sign-extended to 64 bits.
pub fn big_endian(bytes: &[u8], signed: bool) -> u64 {
    let mut be = [0u8; 8];
    let len = bytes.len().min(8);
    if let (Some(to), Some(from)) = (be.get_mut(8 - len..), bytes.get(..len)) {
        to.copy_from_slice(from);
    }
    let value = u64::from_be_bytes(be);
    let shift = 64 - 8 * len as u32;
    if signed && shift < 64 {
        (((value << shift) as i64) >> shift) as u64
    } else {
        value
    }
}

/// A node as exports spell it (layout 2): `name` (left out for an array element), `type`,
/// `offset`, `len` and the value, an integer as a bare number when its size is the node's
/// length, an array of integers as one list of numbers (each element's offset and size
/// follow from the array's), not an object per element.
impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut node = serializer.serialize_map(None)?;
        if !self.name.is_empty() {
            node.serialize_entry("name", &self.name)?;
        }
        node.serialize_entry("type", &self.type_name)?;
        node.serialize_entry("offset", &self.offset)?;
        node.serialize_entry("len", &self.len)?;
        node.serialize_entry(
            "value",
            &ValueOut {
                value: &self.value,
                len: self.len,
            },
        )?;
        node.end()
    }
}

/// A value in its node, which tells whether an integer's size needs spelling out.
struct ValueOut<'a> {
    value: &'a Value,
    len: u64,
}

impl Serialize for ValueOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        let sized = |size: u8| u64::from(size) == self.len;
        match self.value {
            Value::Bool(b) => map.serialize_entry("bool", b)?,
            &Value::Uint { value, size } if sized(size) => map.serialize_entry("uint", &value)?,
            &Value::Uint { value, size } => {
                map.serialize_entry("uint", &IntRepr::Sized { value, size })?
            }
            &Value::Int { value, size } if sized(size) => map.serialize_entry("int", &value)?,
            &Value::Int { value, size } => {
                map.serialize_entry("int", &IntRepr::Sized { value, size })?
            }
            Value::Bytes(b) => map.serialize_entry("bytes", &crate::hex::encode(b))?,
            Value::Text(t) => map.serialize_entry("text", t)?,
            Value::Null => map.serialize_entry("null", &())?,
            Value::Struct(s) => map.serialize_entry("struct", s)?,
            Value::Array(items) => map.serialize_entry("array", items)?,
            Value::Scalars(scalars) => {
                let size = scalars.size();
                if scalars.signed() {
                    let values: Vec<i64> = scalars.values().map(|v| v as i64).collect();
                    map.serialize_entry("ints", &ScalarsRepr { values, size })?
                } else {
                    let values: Vec<u64> = scalars.values().collect();
                    map.serialize_entry("uints", &ScalarsRepr { values, size })?
                }
            }
        }
        map.end()
    }
}

/// An integer with its size, where the node's length does not give it (and as layout 1
/// wrote every integer).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum IntRepr<T> {
    Plain(T),
    Sized { value: T, size: u8 },
}

#[derive(Serialize, Deserialize)]
struct ScalarsRepr<T> {
    values: Vec<T>,
    size: u8,
}

/// A value as read from JSON, layouts 1 and 2.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ValueRepr {
    Bool(bool),
    Uint(IntRepr<u64>),
    Int(IntRepr<i64>),
    Bytes(#[serde(deserialize_with = "hex_bytes::deserialize")] Vec<u8>),
    Text(String),
    Null,
    Struct(Box<Struct>),
    Array(Vec<Node>),
    Uints(ScalarsRepr<u64>),
    Ints(ScalarsRepr<i64>),
}

/// [`Node`] as read from JSON, before its value takes the node's size and arrays of
/// scalars fold into [`Scalars`].
#[derive(Deserialize)]
struct NodeFields {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    type_name: Arc<str>,
    offset: u64,
    len: u64,
    value: ValueRepr,
}

impl TryFrom<NodeFields> for Node {
    type Error = String;

    fn try_from(f: NodeFields) -> Result<Node, String> {
        let size = |repr_size: Option<u8>| -> Result<u8, String> {
            repr_size
                .or_else(|| u8::try_from(f.len).ok().filter(|s| matches!(s, 1..=8)))
                .ok_or_else(|| format!("an integer of {} bytes", f.len))
        };
        let scalars = |size: u8, signed: bool, values: Vec<u64>| -> Result<Value, String> {
            let step = usize::from(size);
            let mut bytes = Vec::with_capacity(values.len().saturating_mul(step));
            for v in values {
                bytes.extend_from_slice(v.to_be_bytes().get(8 - step.min(8)..).unwrap_or(&[]));
            }
            Scalars::new(size, signed, bytes)
                .map(Value::Scalars)
                .ok_or_else(|| format!("integers of {size} bytes"))
        };
        let value = match f.value {
            ValueRepr::Bool(b) => Value::Bool(b),
            ValueRepr::Uint(IntRepr::Plain(value)) => Value::Uint {
                value,
                size: size(None)?,
            },
            ValueRepr::Uint(IntRepr::Sized { value, size }) => Value::Uint { value, size },
            ValueRepr::Int(IntRepr::Plain(value)) => Value::Int {
                value,
                size: size(None)?,
            },
            ValueRepr::Int(IntRepr::Sized { value, size }) => Value::Int { value, size },
            ValueRepr::Bytes(b) => Value::Bytes(b),
            ValueRepr::Text(t) => Value::Text(t),
            ValueRepr::Null => Value::Null,
            ValueRepr::Struct(s) => Value::Struct(s),
            ValueRepr::Array(items) => Value::Array(items),
            ValueRepr::Uints(r) => scalars(r.size, false, r.values)?,
            ValueRepr::Ints(r) => scalars(
                r.size,
                true,
                r.values.into_iter().map(|v| v as u64).collect(),
            )?,
        };
        let mut node = Node {
            name: f.name,
            type_name: f.type_name,
            offset: f.offset,
            len: f.len,
            value,
        };
        // Layout 1 wrote arrays of integers as element nodes.
        if let Value::Array(items) = &node.value {
            if let Some(scalars) = Scalars::of(&node, items) {
                node.value = Value::Scalars(scalars);
            }
        }
        Ok(node)
    }
}

/// A vmsd's fields followed by the subsections that were sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Struct {
    /// The vmsd name (`cpu`, `fpreg`, `cpu/avx512`); empty for old-style `save_state` blobs.
    pub vmsd_name: String,
    pub version: Option<u64>,
    /// The oldest version the vmsd loads; only `-dump-vmstate` records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_version: Option<u64>,
    pub fields: Vec<Node>,
    pub subsections: Vec<Subsection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subsection {
    pub offset: u64,
    pub body: Struct,
}

/// One field: its vmdesc name and type, where it was in the stream, and its value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "NodeFields")]
#[non_exhaustive]
pub struct Node {
    pub name: String,
    /// Shared with the description and every element of an array: no copy per element.
    #[serde(rename = "type")]
    pub type_name: Arc<str>,
    pub offset: u64,
    pub len: u64,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    Bool(bool),
    /// An unsigned integer of `size` bytes (also timers, CPU_Double_U and float64 bit patterns).
    Uint {
        value: u64,
        size: u8,
    },
    /// A signed integer of `size` bytes.
    Int {
        value: i64,
        size: u8,
    },
    /// Raw bytes: buffers, bitmaps and opaque device blobs (virtio, PCI config, ...).
    Bytes(Vec<u8>),
    /// A text value (configuration capabilities).
    Text(String),
    /// A NULL pointer in an array of pointers (the 0x30 marker).
    Null,
    /// Boxed: most values are scalars, and an inline struct would make every one as big.
    Struct(Box<Struct>),
    /// Array elements in order; element nodes have an empty name.
    Array(Vec<Node>),
    /// An array of integers of one type and size: always this, never [`Value::Array`], so
    /// two decodes of the same state compare equal.
    Scalars(Scalars),
}

/// One RAM block of the "ram" section, with a digest per page instead of its contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RamBlock {
    pub name: String,
    pub used_length: u64,
    /// Guest-physical address, only sent with the x-ignore-shared capability.
    pub addr: Option<u64>,
    /// xxh3-64 digest of each page, by page index: 8 bytes a page, the only per-page state
    /// migdiff keeps. Pages past the end were never sent. In JSON: runs of equal digests.
    #[serde(rename = "pages", with = "digest_runs")]
    pub digests: Vec<u64>,
    pub zero_pages: u64,
    pub data_pages: u64,
    /// Pages whose content the stream does not give (an XBZRLE delta without a base, a
    /// compressed page): compared neither as same nor as different. `opaque_pages` in
    /// exports, the name export layout 2 has always had for them.
    #[serde(rename = "opaque_pages", alias = "unknown_pages")]
    pub unknown_pages: u64,
}

impl RamBlock {
    /// The digest of page `index` (`NOT_SENT` past the pages that were sent).
    pub fn digest(&self, index: usize) -> u64 {
        self.digests.get(index).copied().unwrap_or(NOT_SENT)
    }
}

/// `count` consecutive pages from page index `start` that share `digest`: the JSON form of
/// [`RamBlock::digests`], compact for the long runs of zero pages real dumps have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    pub start: u64,
    pub count: u64,
    #[serde(with = "hex_u64")]
    pub digest: u64,
}

/// The most pages a deserialized block may claim (1 TiB of 4 KiB pages): an export is
/// input too, and its runs must not make us allocate without bound.
const MAX_PAGES: u64 = 1 << 28;

thread_local! {
    /// Pages the export being read may still claim, across its blocks (see
    /// [`with_page_budget`]); none outside it.
    static PAGE_BUDGET: std::cell::RefCell<Option<crate::budget::Budget>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `read` (a deserialization of RAM blocks) with `budget` on the pages all its blocks
/// may claim together.
pub fn with_page_budget<T>(budget: crate::budget::Budget, read: impl FnOnce() -> T) -> T {
    PAGE_BUDGET.with(|b| *b.borrow_mut() = Some(budget));
    let out = read();
    PAGE_BUDGET.with(|b| *b.borrow_mut() = None);
    out
}

mod digest_runs {
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    use super::{PageRun, MAX_PAGES, NOT_SENT, PAGE_BUDGET};

    pub fn serialize<S: Serializer>(digests: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let mut runs: Vec<PageRun> = Vec::new();
        for (i, &d) in digests.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if run.digest == d => run.count += 1,
                _ => runs.push(PageRun {
                    start: i as u64,
                    count: 1,
                    digest: d,
                }),
            }
        }
        runs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let runs = Vec::<PageRun>::deserialize(d)?;
        let mut digests = Vec::new();
        for run in runs {
            let end = run.start.checked_add(run.count).filter(|&e| e <= MAX_PAGES);
            let end = end.ok_or_else(|| D::Error::custom("page run beyond 2^28 pages"))?;
            if run.start < digests.len() as u64 {
                return Err(D::Error::custom("page runs overlap or are out of order"));
            }
            // What the block grows by, gap included, counts against the whole export.
            let grows = end - digests.len() as u64;
            PAGE_BUDGET.with(|b| match b.borrow_mut().as_mut() {
                Some(budget) => budget.spend(grows).map_err(D::Error::custom),
                None => Ok(()),
            })?;
            digests.resize(run.start as usize, NOT_SENT);
            digests.resize(end as usize, run.digest);
        }
        while digests.last() == Some(&NOT_SENT) {
            digests.pop();
        }
        Ok(digests)
    }
}

/// Prefix for the fields of a struct stored at `path`: `env.segs[1]` → `env.segs[1].`.
pub fn child_prefix(path: &str) -> String {
    format!("{path}.")
}

/// Prefix for the fields of subsection `name` inside a struct whose fields have `prefix`:
/// `("", "cpu/avx512")` → `cpu/avx512/`, so a field reads `cpu/avx512/env.opmask_regs[0]`.
pub fn subsection_prefix(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}/")
}

/// Digest of a page that was never sent.
pub const NOT_SENT: u64 = 0;
/// Digest of a page whose content is unknown (an XBZRLE delta without a base in the stream, a
/// malformed delta, a compressed page); never equal to another page, never different either.
pub const UNKNOWN: u64 = 1;

mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        crate::hex::decode(&text).ok_or_else(|| D::Error::custom("bad hex string"))
    }
}

mod hex_u64 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pages: &str) -> Result<RamBlock, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"name": "pc.ram", "used_length": 16384, "addr": null, "pages": {pages},
                "zero_pages": 0, "data_pages": 0, "opaque_pages": 0}}"#
        ))
    }

    #[test]
    fn digests_travel_as_runs_and_come_back() {
        let b = block(
            r#"[{"start": 0, "count": 2, "digest": "00000000000000aa"},
                         {"start": 3, "count": 1, "digest": "00000000000000bb"}]"#,
        )
        .unwrap();
        assert_eq!(b.digests, [0xaa, 0xaa, NOT_SENT, 0xbb]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<RamBlock>(&json).unwrap(), b);
    }

    #[test]
    fn find_follows_struct_array_and_subsection_paths() {
        let leaf = |name: &str, value: u64| Node {
            name: name.into(),
            type_name: "uint32".into(),
            offset: value,
            len: 4,
            value: Value::Uint { value, size: 4 },
        };
        let seg = |flags: u64| Node {
            name: String::new(),
            type_name: "struct".into(),
            offset: 0,
            len: 4,
            value: Value::Struct(Box::new(Struct {
                vmsd_name: "segment".into(),
                version: None,
                minimum_version: None,
                fields: vec![leaf("flags", flags)],
                subsections: Vec::new(),
            })),
        };
        let s = Struct {
            vmsd_name: "cpu".into(),
            version: Some(12),
            minimum_version: None,
            fields: vec![
                leaf("env.cr[0]", 1),
                Node {
                    name: "env.segs".into(),
                    type_name: "struct".into(),
                    offset: 0,
                    len: 8,
                    value: Value::Array(vec![seg(10), seg(11)]),
                },
            ],
            subsections: vec![Subsection {
                offset: 0,
                body: Struct {
                    vmsd_name: "cpu/pkru".into(),
                    version: Some(1),
                    minimum_version: None,
                    fields: vec![leaf("env.pkru", 7)],
                    subsections: Vec::new(),
                },
            }],
        };
        assert_eq!(s.find("env.cr[0]").map(|n| n.offset), Some(1));
        assert_eq!(s.find("env.segs[1].flags").map(|n| n.offset), Some(11));
        assert_eq!(s.find("cpu/pkru/env.pkru").map(|n| n.offset), Some(7));
        assert!(s.find("env.segs[2].flags").is_none());
        assert!(s.find("env.cr").is_none());
    }

    #[test]
    fn scalar_elements_are_found_blanked_and_serialized_as_nodes() {
        let regs = Node {
            name: "regs".into(),
            type_name: "int32".into(),
            offset: 100,
            len: 8,
            value: Value::Scalars(
                Scalars::new(4, true, vec![0, 0, 0, 5, 0xff, 0xff, 0xff, 0xfe]).unwrap(),
            ),
        };
        let s = Struct {
            vmsd_name: "d".into(),
            version: None,
            minimum_version: None,
            fields: vec![regs.clone()],
            subsections: Vec::new(),
        };
        assert!(Scalars::new(3, false, vec![0; 3]).is_none());
        assert!(Scalars::new(2, false, vec![0; 3]).is_none());
        let found = s.find("regs[1]").unwrap();
        assert_eq!((found.offset, found.len), (104, 4));
        assert_eq!(found.value, Value::Int { value: -2, size: 4 });
        assert!(s.find("regs[01]").is_none() && s.find("regs[2]").is_none());

        // Layout 2: one list of numbers, the size once.
        let json = serde_json::to_value(&regs).unwrap();
        assert_eq!(
            json["value"],
            serde_json::json!({"ints": {"values": [5, -2], "size": 4}})
        );
        assert_eq!(serde_json::from_value::<Node>(json).unwrap(), regs);
        // Layout 1 spelled each element as a node; it still reads, and folds back.
        let v1 = serde_json::json!({"name": "regs", "type": "int32", "offset": 100, "len": 8,
            "value": {"array": [
                {"name": "", "type": "int32", "offset": 100, "len": 4, "value": {"int": {"value": 5, "size": 4}}},
                {"name": "", "type": "int32", "offset": 104, "len": 4, "value": {"int": {"value": -2, "size": 4}}}]}});
        assert_eq!(serde_json::from_value::<Node>(v1).unwrap(), regs);
        // An integer whose size is not its node's length keeps its size.
        let odd = Node {
            name: "x".into(),
            type_name: "uint32".into(),
            offset: 0,
            len: 8,
            value: Value::Uint { value: 7, size: 4 },
        };
        let json = serde_json::to_value(&odd).unwrap();
        assert_eq!(
            json["value"],
            serde_json::json!({"uint": {"value": 7, "size": 4}})
        );
        assert_eq!(serde_json::from_value::<Node>(json).unwrap(), odd);

        let mut blank = regs;
        blank_node(&mut blank);
        let Value::Array(items) = &blank.value else {
            panic!("blanked scalars stay scalars")
        };
        assert_eq!(items[1].value, Value::Bytes(Vec::new()));
        assert_eq!((items[1].offset, items[1].len), (104, 4));
    }

    #[test]
    fn hostile_runs_are_refused_before_allocating() {
        let huge = r#"[{"start": 0, "count": 1099511627776, "digest": "0000000000000002"}]"#;
        assert!(block(huge)
            .unwrap_err()
            .to_string()
            .contains("beyond 2^28 pages"));
        let overlap = r#"[{"start": 0, "count": 2, "digest": "0000000000000002"},
                          {"start": 1, "count": 1, "digest": "0000000000000003"}]"#;
        assert!(block(overlap).is_err());
    }
}
