//! The export format: one decoded dump as self-contained JSON, for bug-report attachments.
//!
//! Guest RAM is present only as per-page xxh3 digests (runs of them), never as contents;
//! device state (CPU registers, device buffers, keyboard queues, virtio blobs, MAC
//! addresses, the UUID) is included in full unless `redact`ed. migdiff reads an export
//! wherever it reads a dump, so a maintainer can diff a user's attachment against a local
//! dump, or two redacted exports made with the same key against each other.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::budget::Budget;
use crate::tree::{Dump, Node, Struct, Value, NOT_SENT, UNKNOWN};

/// Version of the export layout this migdiff writes; bumped only for changes old readers
/// cannot skip. 2: integers as bare numbers, arrays of integers as lists (1 spelled each
/// element as a node).
pub const EXPORT_VERSION: u32 = 2;

/// The layouts this migdiff reads.
const READS: std::ops::RangeInclusive<u64> = 1..=2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Export {
    /// Marks the file as an export and gives its layout version.
    pub migdiff_export: u32,
    /// migdiff version that wrote it.
    pub migdiff: String,
    /// Whether every value was replaced by a keyed digest (`migdiff export --redact`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    pub source: Source,
    pub dump: Dump,
}

/// The dump an export was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Source {
    pub path: String,
    /// Size and SHA-256 of the stream (after decompression).
    pub size: u64,
    pub sha256: String,
    /// What the stream came wrapped in (`raw stream`, `gzip-compressed stream`, ...).
    pub container: String,
}

impl Export {
    pub fn new(dump: Dump, path: &str, stream: &[u8], container: String) -> Export {
        Export {
            migdiff_export: EXPORT_VERSION,
            migdiff: env!("CARGO_PKG_VERSION").to_string(),
            redacted: false,
            source: Source {
                path: path.to_string(),
                size: stream.len() as u64,
                sha256: sha256_hex(stream),
                container,
            },
            dump,
        }
    }
}

/// Withholds every value of the export's dump, keeping its structure: devices, field
/// names, types, offsets and lengths, versions, subsections, array lengths, the machine
/// type and capabilities, RAM block names, sizes and page counts stay. Each field's value
/// (integer, boolean, buffer, text, array of integers) becomes the text `redacted:` and
/// the first 8 bytes of SHA-256 over `key`, the field's path and its value, in hex; the
/// UUID likewise; each RAM page digest is re-keyed the same way. With the same key, the
/// same value at the same place gives the same text, so two redacted exports still diff
/// field by field (equal or different, never how); without the key, no value can be
/// guessed and checked, however few bits it has.
pub fn redact(export: &mut Export, key: &[u8]) {
    let keyed = |place: &str, value: &[u8]| -> [u8; 8] {
        let mut h = Sha256::new();
        for part in [key, place.as_bytes(), value] {
            // Length-prefixed, so no two (key, place, value) spell the same input.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let digest = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        out
    };
    let text = |place: &str, value: &[u8]| {
        Value::Text(format!(
            "redacted:{}",
            crate::hex::encode(&keyed(place, value))
        ))
    };
    let dump = &mut export.dump;
    if let Some(uuid) = &dump.uuid {
        dump.uuid = Some(format!(
            "redacted:{}",
            crate::hex::encode(&keyed("uuid", uuid.as_bytes()))
        ));
    }
    for device in &mut dump.devices {
        let place = format!("{} ({})", device.idstr, device.instance_id);
        redact_struct(&mut device.body, &place, &text);
    }
    for block in &mut dump.ram {
        for digest in &mut block.digests {
            if *digest != NOT_SENT && *digest != UNKNOWN {
                let place = format!("ram/{}", block.name);
                let rekeyed = u64::from_be_bytes(keyed(&place, &digest.to_be_bytes()));
                // Off the two markers, so a page stays a page.
                *digest = rekeyed.max(UNKNOWN + 1);
            }
        }
    }
    export.redacted = true;
}

fn redact_struct(s: &mut Struct, place: &str, text: &impl Fn(&str, &[u8]) -> Value) {
    for field in &mut s.fields {
        redact_node(field, &format!("{place}/{}", field.name), text);
    }
    for sub in &mut s.subsections {
        let place = format!("{place}/{}", sub.body.vmsd_name);
        redact_struct(&mut sub.body, &place, text);
    }
}

fn redact_node(node: &mut Node, place: &str, text: &impl Fn(&str, &[u8]) -> Value) {
    if let Value::Scalars(scalars) = &node.value {
        // Element by element, so that a diff still names the element that changed.
        let elements = (0..scalars.len()).filter_map(|i| scalars.element(node, i));
        node.value = Value::Array(elements.collect());
    }
    match &mut node.value {
        Value::Struct(s) => redact_struct(s, place, text),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                redact_node(item, &format!("{place}[{i}]"), text);
            }
        }
        value => {
            if let Some(bytes) = leaf_bytes(value) {
                *value = text(place, &bytes);
            }
        }
    }
}

/// The bytes a leaf value is digested from; `None` for what is not a leaf.
fn leaf_bytes(value: &Value) -> Option<Vec<u8>> {
    Some(match value {
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Uint { value, .. } => value.to_be_bytes().to_vec(),
        Value::Int { value, .. } => value.to_be_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        Value::Text(t) => t.as_bytes().to_vec(),
        // A NULL pointer marker is structure (the element was not sent); the rest is walked.
        Value::Null | Value::Struct(_) | Value::Array(_) | Value::Scalars(_) => return None,
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(data))
}

/// Writes `value` (an export, or anything serializable) as JSON and a newline: one line when
/// `compact`, else indented with lists of numbers and strings on one line each, so the
/// 32,768 registers of an e1000 stay one line and an indented export is about 1.5 times
/// the size of a compact one (plain indentation: 4 to 5 times).
pub fn write_json(
    w: &mut dyn std::io::Write,
    value: &impl Serialize,
    compact: bool,
) -> serde_json::Result<()> {
    if compact {
        serde_json::to_writer(&mut *w, value)?;
    } else {
        let mut ser = serde_json::Serializer::with_formatter(&mut *w, Indented::default());
        value.serialize(&mut ser)?;
    }
    w.write_all(b"\n").map_err(serde_json::Error::io)
}

/// serde_json's formatter for [`write_json`]: objects one key a line, and an array one
/// element a line if its first element is an object or array, else on one line.
#[derive(Default)]
struct Indented {
    /// The objects and arrays being written, innermost last.
    open: Vec<Open>,
}

enum Open {
    Object {
        has_keys: bool,
    },
    /// `block`: one element a line; `next`: the element about to start, and whether it
    /// is the first.
    Array {
        block: Option<bool>,
        next: Option<bool>,
    },
}

impl Indented {
    fn newline(&self, w: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.open.len() {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// Before a value: in an array, its separator, which sets the array's layout.
    fn element(
        &mut self,
        w: &mut (impl std::io::Write + ?Sized),
        container: bool,
    ) -> std::io::Result<()> {
        let Some(Open::Array { block, next }) = self.open.last_mut() else {
            return Ok(());
        };
        let Some(first) = next.take() else {
            return Ok(());
        };
        if *block.get_or_insert(container) {
            if !first {
                w.write_all(b",")?;
            }
            self.newline(w)
        } else if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
}

/// Scalars: the array separator, then as serde_json's compact formatter writes them.
macro_rules! scalars {
    ($($method:ident($t:ty)),*) => {$(
        fn $method<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: $t) -> std::io::Result<()> {
            self.element(w, false)?;
            serde_json::ser::CompactFormatter.$method(w, v)
        }
    )*};
}

impl serde_json::ser::Formatter for Indented {
    scalars!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str)
    );

    fn write_null<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.element(w, false)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.element(w, false)?;
        w.write_all(b"\"")
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.element(w, true)?;
        self.open.push(Open::Array {
            block: None,
            next: None,
        });
        w.write_all(b"[")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        _: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if let Some(Open::Array { next, .. }) = self.open.last_mut() {
            *next = Some(first);
        }
        Ok(())
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        if let Some(Open::Array {
            block: Some(true), ..
        }) = self.open.pop()
        {
            self.newline(w)?;
        }
        w.write_all(b"]")
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.element(w, true)?;
        self.open.push(Open::Object { has_keys: false });
        w.write_all(b"{")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if let Some(Open::Object { has_keys }) = self.open.last_mut() {
            *has_keys = true;
        }
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        if let Some(Open::Object { has_keys: true }) = self.open.pop() {
            self.newline(w)?;
        }
        w.write_all(b"}")
    }
}

/// Why a JSON input is not a readable export.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// An export layout this migdiff does not know (a newer migdiff wrote it).
    Version {
        found: u64,
        writer: Option<String>,
    },
    Json(serde_json::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Version { found, writer } => write!(
                f,
                "export layout version {found}{}; this migdiff ({}) reads versions {} to {}",
                writer
                    .as_ref()
                    .map(|w| format!(" (written by migdiff {w})"))
                    .unwrap_or_default(),
                env!("CARGO_PKG_VERSION"),
                READS.start(),
                READS.end()
            ),
            ReadError::Json(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Json(e) => Some(e),
            ReadError::Version { .. } => None,
        }
    }
}

/// Reads an export: its layout version first (unknown: an error, not a guess), then the
/// dump, with the pages its RAM blocks claim bounded by `Budget::pages`.
pub fn read(data: &[u8]) -> Result<Export, ReadError> {
    #[derive(Deserialize)]
    struct Header {
        migdiff_export: u64,
        migdiff: Option<String>,
    }
    let header: Header = serde_json::from_slice(data).map_err(ReadError::Json)?;
    if !READS.contains(&header.migdiff_export) {
        return Err(ReadError::Version {
            found: header.migdiff_export,
            writer: header.migdiff,
        });
    }
    let budget = Budget::pages(data.len() as u64);
    crate::tree::with_page_budget(budget, || serde_json::from_slice(data)).map_err(ReadError::Json)
}

/// What a JSON input is, told by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// A migdiff export.
    Export,
    /// `qemu-system-* -dump-vmstate FILE` output.
    DumpVmstate,
    /// A vmdesc (the JSON QEMU appends to a stream): a description without state.
    Vmdesc,
    Unknown,
}

/// Whether `data` looks like JSON rather than a migration stream (which starts with QEVM).
pub fn is_json(data: &[u8]) -> bool {
    data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// What the JSON `text` is, told by its top-level keys; the rest is read without being
/// kept. An error only when `text` is not JSON at all.
pub fn json_kind(text: &[u8]) -> Result<JsonKind, serde_json::Error> {
    #[derive(Deserialize)]
    struct TopLevel {
        migdiff_export: Option<IgnoredAny>,
        vmschkmachine: Option<IgnoredAny>,
        devices: Option<IgnoredAny>,
    }
    let top: TopLevel = match serde_json::from_slice(text) {
        Ok(top) => top,
        // JSON, but not an object.
        Err(e) if e.is_data() => return Ok(JsonKind::Unknown),
        Err(e) => return Err(e),
    };
    Ok(if top.migdiff_export.is_some() {
        JsonKind::Export
    } else if top.vmschkmachine.is_some() {
        JsonKind::DumpVmstate
    } else if top.devices.is_some() {
        JsonKind::Vmdesc
    } else {
        JsonKind::Unknown
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_json_keeps_lists_of_scalars_on_one_line() {
        let value = serde_json::json!({
            "empty": {}, "none": [], "uints": [1, 2, 3], "names": ["a", null],
            "fields": [{"name": "x", "value": [true]}, []],
        });
        let mut out = Vec::new();
        write_json(&mut out, &value, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{
  "empty": {},
  "fields": [
    {
      "name": "x",
      "value": [true]
    },
    []
  ],
  "names": ["a", null],
  "none": [],
  "uints": [1, 2, 3]
}
"#
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        let mut compact = Vec::new();
        write_json(&mut compact, &value, true).unwrap();
        assert_eq!(compact.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn sha256_of_nothing() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn kinds_by_top_level_keys() {
        let kind = |t: &str| json_kind(t.as_bytes()).unwrap();
        assert_eq!(kind(r#"{"migdiff_export": 1}"#), JsonKind::Export);
        assert_eq!(
            kind(r#"{"vmschkmachine": {"Name": "pc"}}"#),
            JsonKind::DumpVmstate
        );
        assert_eq!(
            kind(r#"{"page_size": 4096, "devices": []}"#),
            JsonKind::Vmdesc
        );
        assert_eq!(kind("{}"), JsonKind::Unknown);
        assert_eq!(kind("[1, 2]"), JsonKind::Unknown);
        assert!(json_kind(b"{\"devices\": [").is_err());
        assert!(is_json(b"  \n{") && !is_json(b"QEVM"));
    }
}
