//! The vmdesc: the JSON description QEMU appends after the stream's EOF byte, parsed into a
//! typed [`Schema`]. This module never reads stream bytes, only the JSON text.
//!
//! QEMU's JSON has duplicate keys (qtailq, qlist and gtree repeat `vmsd_name`/`version`/
//! `fields` once per element), so it is first read into [`Json`], which keeps every key in
//! order, instead of `serde_json::Value`, which would silently keep only one.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{ErrorKind, ParseError};

/// Where the stream data ends and the vmdesc JSON is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the 0x06 marker: the stream's device data ends here.
    pub marker: usize,
    /// Offset of the first JSON byte.
    pub json_start: usize,
}

const QEMU_VM_VMDESCRIPTION: u8 = 0x06;

/// Finds the vmdesc trailer: `0x06`, a be32 length, then that many bytes of JSON to the
/// end of the file. QEMU's JSON writer escapes every byte below 0x20, so the JSON never
/// holds 0x06, and every 0x06 after the marker is a byte of the length: the marker is the
/// last 0x06 or one of the four bytes before it, and each such candidate is validated (a
/// `{` after the length, a length that reaches the end of the file). The last 0x06 alone
/// is wrong whenever the length holds one (about one dump in 128, 0xcd06 bytes of JSON
/// for instance: the marker found was the length's own byte). Unlike
/// analyze-migration.py's NUL heuristic this works whatever bytes the length holds.
/// Returns `Ok(None)` when the file has no trailer at all, and an error when a trailer is
/// there but its length does not fit.
pub fn locate(data: &[u8]) -> Result<Option<Trailer>, ParseError> {
    let Some(last) = data.iter().rposition(|&b| b == QEMU_VM_VMDESCRIPTION) else {
        return Ok(None);
    };
    let mut misfit = None;
    for marker in (last.saturating_sub(4)..=last).rev() {
        if data.get(marker) != Some(&QEMU_VM_VMDESCRIPTION) {
            continue;
        }
        let json_start = marker + 5;
        if data.get(json_start) != Some(&b'{') {
            continue;
        }
        let Some(len_bytes) = data
            .get(marker + 1..json_start)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
        else {
            continue;
        };
        let declared = u64::from(u32::from_be_bytes(len_bytes));
        let actual = (data.len() - json_start) as u64;
        if declared == actual {
            return Ok(Some(Trailer { marker, json_start }));
        }
        misfit.get_or_insert(ParseError::new(
            marker as u64 + 1,
            ErrorKind::BadVmdesc(format!(
                "length field says {declared} bytes of JSON but {actual} bytes follow it"
            )),
        ));
    }
    match misfit {
        Some(err) => Err(err),
        None => Ok(None),
    }
}

/// A JSON value that keeps duplicate object keys, in order. Strings borrow from the text
/// unless they hold escapes: the vmdesc is read once, and copying every key would double
/// the cost of reading it.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// A key that borrows from the text when it can ([`Cow`]'s own impl always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        match d.deserialize_str(JsonVisitor)? {
            Json::Str(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("object key is not a string")),
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some((Key(key), value)) = map.next_entry()? {
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

impl<'a> Json<'a> {
    fn entries(&self) -> &[(Cow<'a, str>, Json<'a>)] {
        match self {
            Json::Object(entries) => entries,
            _ => &[],
        }
    }

    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.entries()
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// The typed description of a whole dump.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Schema {
    /// `page_size`, when the description has it.
    pub page_size: Option<u64>,
    /// The configuration section's description (QEMU >= 8.2 only).
    pub configuration: Option<StructDesc>,
    /// FULL sections, in stream order.
    pub devices: Vec<DeviceDesc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDesc {
    pub idstr: String,
    pub instance_id: u32,
    pub body: StructDesc,
}

/// A vmsd: fields, then the subsections that were sent, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub struct StructDesc {
    /// Empty for old-style (`save_state`) devices, which are one opaque `data` buffer.
    pub vmsd_name: String,
    pub version: Option<u64>,
    pub fields: Vec<FieldDesc>,
    pub subsections: Vec<StructDesc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldDesc {
    /// Verbatim, brackets included (`env.cr[0]`, `unused[1]`): names are opaque strings.
    pub name: String,
    pub type_name: std::sync::Arc<str>,
    /// Bytes written for one element: the authority over the type name.
    pub size: u64,
    /// What the type name means for decoding, worked out once here rather than per element.
    pub kind: Kind,
    /// How many entries from this one on share its name (indexed elements, nullptr runs):
    /// they decode as one array. Worked out once, here.
    pub run: usize,
    /// Compressed array: this entry describes element 0 of `array_len` identical elements.
    pub array_len: Option<u64>,
    /// Non-compressed array element (QEMU >= 10.0 omits it on the last element).
    pub index: Option<u64>,
    /// Nested descriptions: the `struct` of a struct field, or the descriptions embedded in
    /// the field object itself (vstruct, tmp; one per element for qtailq/qlist/gtree).
    pub nested: Vec<StructDesc>,
}

/// How a field's bytes are laid out, from its VMStateInfo name (`migration/vmstate-types.c`
/// and the device-specific infos) and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `struct`, `vstruct`, `tmp`: a nested vmsd, inlined.
    Struct,
    /// `qtailq`, `qlist`: marked elements, one nested description each.
    List,
    /// `gtree`: a node count, then marked key/value pairs.
    Gtree,
    /// `capability`: a counted string.
    Capability,
    /// A NULL pointer in a pointer array: `nullptr`, or `uint64` of size 1 before QEMU 10.0.
    Nullptr,
    Bool,
    /// Big-endian two's complement (`int32 le` means less-or-equal, not little-endian).
    Signed,
    /// Big-endian unsigned, including `*_equal`, timers and float bit patterns.
    Unsigned,
    /// Bytes on purpose: buffers and custom infos with no description (virtio, PCI config).
    Opaque,
    /// A type migdiff does not know: decoded as bytes, with a warning.
    Unknown,
}

impl Kind {
    pub fn of(type_name: &str, size: u64) -> Kind {
        match type_name {
            "struct" | "vstruct" | "tmp" => Kind::Struct,
            "qtailq" | "qlist" => Kind::List,
            "gtree" => Kind::Gtree,
            "capability" => Kind::Capability,
            "nullptr" => Kind::Nullptr,
            "uint64" if size == 1 => Kind::Nullptr,
            "bool" => Kind::Bool,
            "int8" | "int16" | "int32" | "int64" | "int32 equal" | "int32 le" => Kind::Signed,
            "uint8" | "uint16" | "uint32" | "uint64" | "uint8 equal" | "uint16 equal"
            | "uint32 equal" | "int64 equal" | "timer" | "CPU_Double_U" | "float64"
            | "uint16_from_uint8" | "int32_as_uint16" => Kind::Unsigned,
            // target/ppc/machine.c: FP and VSX doublewords, the VSCR word.
            "fpr" | "vsr" | "cpu/altivec/vscr" => Kind::Unsigned,
            "buffer"
            | "unused_buffer"
            | "bitmap"
            | "virtio"
            | "pci config"
            | "pci irq state"
            | "msix state"
            | "shpc"
            | "virtqueue_extra_state"
            | "scsi-requests"
            | "usb-redir-parser"
            | "usb-redir-bufpq"
            | "usb-redir-packet-id-q"
            | "vdagent/cbinfos"
            // target/ppc/machine.c: a 128-bit Altivec register, an SLB entry (two u64).
            | "avr"
            | "slbe"
            | "unknown" => Kind::Opaque,
            _ => Kind::Unknown,
        }
    }

    /// Whether elements hold other fields (and so need their path as a prefix).
    pub fn is_compound(self) -> bool {
        matches!(self, Kind::Struct | Kind::List | Kind::Gtree)
    }
}

/// Parses vmdesc JSON text. `base` is the JSON's offset in the file, for error offsets.
pub fn parse(text: &[u8], base: u64) -> Result<Schema, ParseError> {
    let json: Json = serde_json::from_slice(text).map_err(|e| {
        // The vmdesc is written on one line, so the column is the byte offset (1-based).
        let at = if e.line() <= 1 {
            base + (e.column() as u64).saturating_sub(1)
        } else {
            base
        };
        ParseError::new(at, ErrorKind::BadVmdesc(format!("JSON syntax: {e}")))
    })?;
    schema_from_json(&json).map_err(|msg| ParseError::new(base, ErrorKind::BadVmdesc(msg)))
}

/// Builds a schema from parsed vmdesc JSON (the format QEMU appends to a stream).
pub fn schema_from_json(json: &Json) -> Result<Schema, String> {
    let devices = json
        .get("devices")
        .and_then(Json::as_array)
        .ok_or("no \"devices\" array")?;
    let devices = devices
        .iter()
        .enumerate()
        .map(|(i, d)| device_desc(d).map_err(|e| format!("devices[{i}]: {e}")))
        .collect::<Result<_, _>>()?;
    let configuration = json
        .get("configuration")
        .map(|c| struct_desc(c.entries()).map_err(|e| format!("configuration: {e}")))
        .transpose()?;
    Ok(Schema {
        page_size: json.get("page_size").and_then(Json::as_u64),
        configuration,
        devices,
    })
}

fn device_desc(d: &Json) -> Result<DeviceDesc, String> {
    let idstr = d.get("name").and_then(Json::as_str).ok_or("no \"name\"")?;
    let instance_id = d
        .get("instance_id")
        .and_then(Json::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| format!("{idstr}: no valid \"instance_id\""))?;
    let body = struct_desc(d.entries()).map_err(|e| format!("{idstr}: {e}"))?;
    Ok(DeviceDesc {
        idstr: idstr.to_string(),
        instance_id,
        body,
    })
}

/// A vmsd description from the keys `vmsd_name`, `version`, `fields`, `subsections`.
fn struct_desc(entries: &[(Cow<'_, str>, Json<'_>)]) -> Result<StructDesc, String> {
    let mut desc = StructDesc {
        vmsd_name: String::new(),
        version: None,
        fields: Vec::new(),
        subsections: Vec::new(),
    };
    for (key, value) in entries {
        match &**key {
            "vmsd_name" => desc.vmsd_name = value.as_str().unwrap_or_default().to_string(),
            "version" => desc.version = value.as_u64(),
            "fields" => {
                let fields = value.as_array().ok_or("\"fields\" is not an array")?;
                desc.fields = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| field_desc(f).map_err(|e| format!("fields[{i}]: {e}")))
                    .collect::<Result<_, _>>()?;
                count_runs(&mut desc.fields);
            }
            "subsections" => {
                let subs = value.as_array().ok_or("\"subsections\" is not an array")?;
                desc.subsections = subs
                    .iter()
                    .map(|s| struct_desc(s.entries()))
                    .collect::<Result<_, _>>()?;
            }
            _ => {}
        }
    }
    Ok(desc)
}

/// Sets each field's `run`: how many entries from it on share its name.
fn count_runs(fields: &mut [FieldDesc]) {
    for i in (0..fields.len()).rev() {
        let same_as_next = match (fields.get(i), fields.get(i + 1)) {
            (Some(a), Some(b)) => a.name == b.name,
            _ => false,
        };
        let next_run = fields.get(i + 1).map_or(0, |f| f.run);
        if let Some(f) = fields.get_mut(i) {
            f.run = if same_as_next { next_run + 1 } else { 1 };
        }
    }
}

fn field_desc(f: &Json) -> Result<FieldDesc, String> {
    let name = f.get("name").and_then(Json::as_str).ok_or("no \"name\"")?;
    let type_name = f
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("{name}: no \"type\""))?;
    let size = f
        .get("size")
        .and_then(Json::as_u64)
        .ok_or_else(|| format!("{name}: no valid \"size\""))?;
    let mut nested = Vec::new();
    if let Some(s) = f.get("struct") {
        nested.push(struct_desc(s.entries()).map_err(|e| format!("{name}: {e}"))?);
    }
    // Embedded descriptions: each group starts at a "vmsd_name" key.
    let entries = f.entries();
    let starts: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, (k, _))| (k == "vmsd_name").then_some(i))
        .collect();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(entries.len());
        let group = entries.get(start..end).unwrap_or_default();
        nested.push(struct_desc(group).map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(FieldDesc {
        name: name.to_string(),
        type_name: type_name.into(),
        size,
        kind: Kind::of(type_name, size),
        run: 1,
        array_len: f.get("array_len").and_then(Json::as_u64),
        index: f.get("index").and_then(Json::as_u64),
        nested,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `0x00 0x06 be32(len) json` after some stream bytes, the JSON padded to `len` bytes.
    fn trailer(len: usize) -> Vec<u8> {
        let mut json = br#"{"page_size": 4096, "devices": []}"#.to_vec();
        json.splice(1..1, std::iter::repeat_n(b' ', len - json.len()));
        let mut data = b"QEVM\x00\x00\x00\x03\x06\x06".to_vec();
        data.push(0x00);
        data.push(QEMU_VM_VMDESCRIPTION);
        data.extend_from_slice(&(len as u32).to_be_bytes());
        data.extend_from_slice(&json);
        data
    }

    #[test]
    fn vmdesc_length_holding_a_0x06_byte_is_found() {
        // Regression: the last 0x06 of the file was taken as the marker, which for these
        // lengths is a byte of the length itself, and a valid dump had "no vmdesc".
        for len in [0xcd06, 0x0606, 0x06_0606, 0x0106, 0x0600, 0x7b06] {
            let data = trailer(len);
            let found = locate(&data).unwrap().expect("a trailer");
            assert_eq!(found.marker, 11, "length {len:#x}");
            assert_eq!(found.json_start, 16);
        }
        // A marker whose length does not reach the end is still an error, not "none".
        let mut data = trailer(0x106);
        data.pop();
        assert!(matches!(
            locate(&data).unwrap_err().kind,
            ErrorKind::BadVmdesc(_)
        ));
    }

    fn with_trailer(stream: &[u8], json: &[u8]) -> Vec<u8> {
        let mut out = stream.to_vec();
        out.push(0x06);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(json);
        out
    }

    #[test]
    fn locates_trailer_even_when_length_contains_brace() {
        // A JSON length of 0x7b bytes: analyze-migration.py's heuristic fails on this.
        let mut json = b"{\"devices\": []".to_vec();
        json.resize(0x7a, b' ');
        json.push(b'}');
        let file = with_trailer(b"QEVM\0\0\0\x03\x00", &json);
        let t = locate(&file).unwrap().unwrap();
        assert_eq!(t.marker, 9);
        assert_eq!(t.json_start, 14);
    }

    #[test]
    fn no_trailer_and_bad_length() {
        assert_eq!(locate(b"QEVM\0\0\0\x03\x00").unwrap(), None);
        let mut file = with_trailer(b"QEVM", b"{}");
        file.push(b' ');
        let err = locate(&file).unwrap_err();
        assert_eq!(err.offset, 5);
        assert!(err.to_string().contains("says 2 bytes of JSON but 3"));
    }

    #[test]
    fn duplicate_keys_become_one_description_per_element() {
        let text = br#"{"page_size": 4096, "devices": [{"name": "q", "instance_id": 0,
            "vmsd_name": "q", "version": 1, "fields": [{"name": "list", "type": "qtailq",
            "vmsd_name": "elem", "version": 1, "fields": [{"name": "a", "type": "uint8", "size": 1}],
            "vmsd_name": "elem", "version": 1, "fields": [{"name": "a", "type": "uint8", "size": 1}],
            "size": 5}]}]}"#;
        let schema = parse(text, 100).unwrap();
        let field = &schema.devices[0].body.fields[0];
        assert_eq!(&*field.type_name, "qtailq");
        assert_eq!(field.nested.len(), 2);
        assert_eq!(field.nested[1].fields[0].name, "a");
    }

    #[test]
    fn escaped_keys_and_strings_are_unescaped() {
        let text = br#"{"devices": [{"na\u006de": "a\"b", "instance_id": 0, "vmsd_name": "x",
            "version": 1, "fields": []}]}"#;
        let schema = parse(text, 0).unwrap();
        assert_eq!(schema.devices[0].idstr, "a\"b");
    }

    #[test]
    fn syntax_error_offset_is_absolute() {
        let err = parse(br#"{"devices": [}"#, 1000).unwrap_err();
        assert_eq!(err.offset, 1013);
        assert!(matches!(err.kind, ErrorKind::BadVmdesc(_)));
    }

    #[test]
    fn missing_size_names_the_device_and_field() {
        let text = br#"{"devices": [{"name": "timer", "instance_id": 0, "vmsd_name": "timer",
            "version": 2, "fields": [{"name": "ticks", "type": "int64"}]}]}"#;
        let err = parse(text, 0).unwrap_err();
        assert!(err
            .to_string()
            .contains("devices[0]: timer: fields[0]: ticks: no valid \"size\""));
    }
}
