//! Decodes one vmsd body (a device section, a struct, a subsection) from stream bytes using
//! its vmdesc description, into [`tree::Struct`].
//!
//! The vmdesc `size` is the authority: scalars read exactly `size` bytes, and a struct whose
//! fields decode to another length than its `size` is a desync, reported at once with the
//! field, instead of garbage further on. Unknown type names decode as raw bytes with a
//! warning, never silently.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use crate::budget::Budget;
use crate::error::{ErrorKind, ParseError};
use crate::reader::Reader;
use crate::tree::{self, Node, Scalars, Struct, Subsection, Value, Warning};
use crate::vmdesc::{FieldDesc, Kind, StructDesc};

/// Structs, subsections and lists nested deeper than this are refused.
const MAX_DEPTH: usize = 64;

/// Array elements that take no bytes (empty structs, zero-size buffers) cost memory the
/// input does not bound; more than this many in one array are refused.
const MAX_EMPTY_ELEMENTS: u64 = 1 << 16;

const QEMU_VM_SUBSECTION: u8 = 0x05;
const VMS_NULLPTR_MARKER: u8 = 0x30;

/// Decoding state shared by one section: warnings and the last field decoded (for desync
/// messages).
pub struct Decoder<'r, 'a> {
    pub reader: &'r mut Reader<'a>,
    pub warnings: Vec<Warning>,
    pub last_field: Option<(String, u64)>,
    /// Nodes this decode may still build, shared by every section of the stream.
    budget: &'r mut Budget,
}

impl<'r, 'a> Decoder<'r, 'a> {
    pub fn new(reader: &'r mut Reader<'a>, budget: &'r mut Budget) -> Self {
        Decoder {
            reader,
            warnings: Vec::new(),
            last_field: None,
            budget,
        }
    }

    /// Counts `n` nodes against the decode's budget.
    fn build(&mut self, n: u64, path: &str) -> Result<(), ParseError> {
        self.budget
            .spend(n)
            .map_err(|kind| self.reader.error(kind).in_field(path))
    }

    /// Decodes a vmsd's fields and then each listed subsection. Field paths are
    /// `prefix + name` (see [`tree::child_prefix`]).
    pub fn decode_struct(
        &mut self,
        desc: &StructDesc,
        prefix: &str,
        depth: usize,
    ) -> Result<Struct, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.reader.error(ErrorKind::TooDeep).in_field(prefix));
        }
        self.build(1, prefix)?;
        let fields = self.decode_fields(&desc.fields, prefix, depth)?;
        let mut subsections = Vec::with_capacity(desc.subsections.len());
        for sub in &desc.subsections {
            subsections.push(self.decode_subsection(sub, prefix, depth)?);
        }
        Ok(Struct {
            vmsd_name: desc.vmsd_name.clone(),
            version: desc.version,
            minimum_version: None,
            fields,
            subsections,
        })
    }

    /// `0x05, u8 len, name, be32 version`, then the subsection's own fields and subsections.
    fn decode_subsection(
        &mut self,
        desc: &StructDesc,
        prefix: &str,
        depth: usize,
    ) -> Result<Subsection, ParseError> {
        let offset = self.reader.offset();
        let found = match self.reader.peek_u8() {
            Some(QEMU_VM_SUBSECTION) => {
                self.reader.u8("subsection marker")?;
                let name = self.reader.counted_str("subsection name")?;
                if name == desc.vmsd_name {
                    let version = self.reader.be32("subsection version")?;
                    let sub_prefix = tree::subsection_prefix(prefix, &desc.vmsd_name);
                    let mut body = self.decode_struct(desc, &sub_prefix, depth + 1)?;
                    body.version = Some(u64::from(version));
                    return Ok(Subsection { offset, body });
                }
                format!("subsection '{name}'")
            }
            Some(b) => format!("byte {b:#04x}"),
            None => "end of stream".to_string(),
        };
        Err(ParseError::new(
            offset,
            ErrorKind::MissingSubsection {
                expected: desc.vmsd_name.clone(),
                found,
                last_field: self.last_field.clone(),
            },
        )
        .in_field(prefix.trim_end_matches(['.', '/'])))
    }

    /// Decodes a field list. Consecutive entries with the same name (`index`ed elements,
    /// nullptr runs) and compressed `array_len` entries become one array node.
    fn decode_fields(
        &mut self,
        fields: &[FieldDesc],
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<Node>, ParseError> {
        let mut nodes: Vec<Node> = Vec::with_capacity(fields.len());
        let mut i = 0;
        while let Some(first) = fields.get(i) {
            let run = first.run.max(1);
            let group = fields.get(i..i + run).unwrap_or_default();
            i += run;
            let field_path = format!("{prefix}{}", first.name);
            let offset = self.reader.offset();
            let is_array = run > 1 || first.array_len.is_some() || first.index.is_some();
            let value = if is_array {
                self.decode_array(group, &field_path, depth)?
            } else {
                self.decode_element(first, &field_path, None, depth, true)?
                    .value
            };
            // Compound fields leave the innermost leaf they decoded as the last field.
            if !first.kind.is_compound() {
                self.last_field = Some(match &value {
                    Value::Array(items) => (
                        element_path(&field_path, items.len().checked_sub(1)),
                        items.last().map_or(offset, |n| n.offset),
                    ),
                    Value::Scalars(scalars) => {
                        let last = scalars.len().saturating_sub(1);
                        (
                            element_path(&field_path, Some(last)),
                            offset + last as u64 * u64::from(scalars.size()),
                        )
                    }
                    _ => (field_path, offset),
                });
            }
            nodes.push(Node {
                name: first.name.clone(),
                type_name: first.type_name.clone(),
                offset,
                len: self.reader.offset() - offset,
                value,
            });
        }
        Ok(nodes)
    }

    /// The elements of `group` (entries sharing one name, some compressed) as one array:
    /// [`Value::Scalars`] when they are integers of one type and size, else nodes.
    fn decode_array(
        &mut self,
        group: &[FieldDesc],
        field_path: &str,
        depth: usize,
    ) -> Result<Value, ParseError> {
        // Taken from the description, so never trusted for an allocation.
        let count = group
            .iter()
            .fold(0u64, |n, d| n.saturating_add(d.array_len.unwrap_or(1)));
        if let Some((size, signed)) = scalar_layout(group).filter(|_| count > 0) {
            return self.decode_scalars(count, size, signed, field_path);
        }
        let mut elements = Vec::with_capacity(usize::try_from(count).map_or(0, |n| n.min(1024)));
        let mut empty = 0u64;
        for desc in group {
            for _ in 0..desc.array_len.unwrap_or(1) {
                if self.reader.is_empty() {
                    return Err(self.no_more_elements(field_path, 1));
                }
                let check_size = elements.is_empty() || desc.array_len.is_none();
                let index = Some(elements.len());
                let element = self.decode_element(desc, field_path, index, depth, check_size)?;
                // Elements that take no bytes are not bounded by the input: bound them here.
                if element.len == 0 {
                    empty += 1;
                    if empty > MAX_EMPTY_ELEMENTS {
                        return Err(self
                            .reader
                            .error(ErrorKind::Invalid(format!(
                                "array of {count} elements that take no bytes each: more than {MAX_EMPTY_ELEMENTS} is not a real device"
                            )))
                            .in_field(field_path));
                    }
                }
                elements.push(element);
            }
        }
        Ok(Value::Array(elements))
    }

    /// `count` integers of `size` bytes, read as one slice: what the input holds bounds the
    /// memory, whatever count the description claims.
    fn decode_scalars(
        &mut self,
        count: u64,
        size: u8,
        signed: bool,
        field_path: &str,
    ) -> Result<Value, ParseError> {
        let step = u64::from(size);
        let len = count
            .checked_mul(step)
            .filter(|&len| len <= self.reader.remaining() as u64);
        if let Some(len) = len {
            let bytes = self.reader.bytes(len, "field value")?.to_vec();
            // Whole elements of a size scalar_layout checked, so never the error.
            return Scalars::new(size, signed, bytes)
                .map(Value::Scalars)
                .ok_or_else(|| {
                    self.reader
                        .error(ErrorKind::Invalid(format!("{size}-byte integers")))
                        .in_field(field_path)
                });
        }
        // Too few bytes: name the element that runs past the end.
        let whole = self.reader.remaining() as u64 / step;
        self.reader.bytes(whole * step, "field value")?;
        if self.reader.is_empty() {
            return Err(self.no_more_elements(field_path, step));
        }
        let index = usize::try_from(whole).ok();
        Err(self
            .reader
            .error(ErrorKind::Truncated {
                what: "field value",
                need: step,
                left: self.reader.remaining() as u64,
            })
            .in_field(&element_path(field_path, index)))
    }

    /// The input ended where an array promised `need` more bytes of elements.
    fn no_more_elements(&self, field_path: &str, need: u64) -> ParseError {
        self.reader
            .error(ErrorKind::Truncated {
                what: "array element",
                need,
                left: 0,
            })
            .in_field(field_path)
    }

    /// One element of a field (`index` within an array). `check_size`: whether the vmdesc
    /// `size` describes this element (it describes only element 0 of a compressed array).
    /// The element's path is built only where it is needed: for the children of a compound
    /// element, and for an error; a large array of scalars costs no string per element.
    fn decode_element(
        &mut self,
        desc: &FieldDesc,
        field_path: &str,
        index: Option<usize>,
        depth: usize,
        check_size: bool,
    ) -> Result<Node, ParseError> {
        let offset = self.reader.offset();
        self.build(1, field_path)?;
        let path = if desc.kind.is_compound() {
            element_path(field_path, index)
        } else {
            String::new()
        };
        let value = self
            .decode_value(desc, &path, depth)
            .map_err(|e| e.in_field(&element_path(field_path, index)))?;
        let len = self.reader.offset() - offset;
        let variable = desc.kind == Kind::Capability;
        if check_size && !variable && len != desc.size {
            return Err(ParseError::new(
                offset,
                ErrorKind::SizeMismatch {
                    described: desc.size,
                    decoded: len,
                },
            )
            .in_field(&element_path(field_path, index)));
        }
        Ok(Node {
            name: String::new(),
            type_name: desc.type_name.clone(),
            offset,
            len,
            value,
        })
    }

    fn decode_value(
        &mut self,
        desc: &FieldDesc,
        path: &str,
        depth: usize,
    ) -> Result<Value, ParseError> {
        match desc.kind {
            Kind::Struct => {
                let nested = desc.nested.first().ok_or_else(|| {
                    self.reader.error(ErrorKind::BadVmdesc(format!(
                        "'{}' field without a nested description",
                        desc.type_name
                    )))
                })?;
                Ok(Value::Struct(Box::new(self.decode_struct(
                    nested,
                    &tree::child_prefix(path),
                    depth + 1,
                )?)))
            }
            Kind::List => self.decode_list(desc, path, depth),
            Kind::Gtree => self.decode_gtree(desc, path, depth),
            Kind::Capability => Ok(Value::Text(self.reader.counted_str("capability")?)),
            _ => self.decode_scalar(desc),
        }
    }

    /// Scalars: read exactly `size` bytes and interpret them by kind.
    fn decode_scalar(&mut self, desc: &FieldDesc) -> Result<Value, ParseError> {
        let offset = self.reader.offset();
        let bytes = self.reader.bytes(desc.size, "field value")?;
        let size = u8::try_from(bytes.len())
            .ok()
            .filter(|s| matches!(s, 1 | 2 | 4 | 8));
        match (desc.kind, size) {
            (Kind::Nullptr, _) => {
                return match bytes {
                    [VMS_NULLPTR_MARKER] => Ok(Value::Null),
                    _ => Err(ParseError::new(
                        offset,
                        ErrorKind::Invalid(format!(
                            "nullptr field holds {}, expected the marker 0x30",
                            crate::hex::encode(bytes)
                        )),
                    )),
                }
            }
            (Kind::Bool, Some(1)) => return Ok(Value::Bool(bytes != [0])),
            (Kind::Signed, Some(size)) => {
                return Ok(Value::Int {
                    value: tree::big_endian(bytes, true) as i64,
                    size,
                })
            }
            (Kind::Unsigned, Some(size)) => {
                return Ok(Value::Uint {
                    value: tree::big_endian(bytes, false),
                    size,
                })
            }
            _ => {}
        }
        let ty = &*desc.type_name;
        if desc.kind != Kind::Opaque {
            self.warnings.push(Warning {
                offset,
                section: None,
                message: format!(
                    "type '{ty}' of size {} is not known to migdiff: decoded as raw bytes",
                    desc.size
                ),
            });
        }
        Ok(Value::Bytes(bytes.to_vec()))
    }

    /// QTAILQ/QLIST: `u8 1` + element before each element, `u8 0` after the last. The vmdesc
    /// has one embedded description per element.
    fn decode_list(
        &mut self,
        desc: &FieldDesc,
        path: &str,
        depth: usize,
    ) -> Result<Value, ParseError> {
        let mut elements = Vec::new();
        loop {
            let offset = self.reader.offset();
            match self.reader.u8("list marker")? {
                0 => return Ok(Value::Array(elements)),
                1 => {
                    let elem_path = format!("{path}[{}]", elements.len());
                    let body = self.nested_struct(desc, elements.len(), &elem_path, depth)?;
                    elements.push(struct_node(offset, self.reader.offset(), body));
                }
                other => {
                    return Err(ParseError::new(
                        offset,
                        ErrorKind::Invalid(format!("list marker {other:#04x}, expected 0 or 1")),
                    ))
                }
            }
        }
    }

    /// GTree: `be32 nnodes`, then per node `u8 1`, key (be64 when direct, else a struct),
    /// value struct; then `u8 0`. The vmdesc embeds key and value descriptions per node.
    fn decode_gtree(
        &mut self,
        desc: &FieldDesc,
        path: &str,
        depth: usize,
    ) -> Result<Value, ParseError> {
        let nnodes = u64::from(self.reader.be32("gtree node count")?);
        let per_node = if nnodes > 0 && desc.nested.len() as u64 >= 2 * nnodes {
            2
        } else {
            1
        };
        let mut elements = Vec::new();
        for node in 0..nnodes {
            let offset = self.reader.offset();
            let marker = self.reader.u8("gtree marker")?;
            if marker != 1 {
                return Err(ParseError::new(
                    offset,
                    ErrorKind::Invalid(format!("gtree marker {marker:#04x}, expected 1")),
                ));
            }
            let elem_path = format!("{path}[{node}]");
            let key_offset = self.reader.offset();
            let n = usize::try_from(node).unwrap_or(usize::MAX);
            let value_desc = if per_node == 2 {
                let key = self.nested_struct(desc, 2 * n, &elem_path, depth)?;
                elements.push(struct_node(key_offset, self.reader.offset(), key));
                2 * n + 1
            } else {
                let key = self.reader.be64("gtree direct key")?;
                elements.push(Node {
                    name: String::new(),
                    type_name: "uint64".into(),
                    offset: key_offset,
                    len: 8,
                    value: Value::Uint {
                        value: key,
                        size: 8,
                    },
                });
                n
            };
            let value_offset = self.reader.offset();
            let value = self.nested_struct(desc, value_desc, &elem_path, depth)?;
            elements.push(struct_node(value_offset, self.reader.offset(), value));
        }
        let offset = self.reader.offset();
        match self.reader.u8("gtree end marker")? {
            0 => Ok(Value::Array(elements)),
            other => Err(ParseError::new(
                offset,
                ErrorKind::Invalid(format!("gtree end marker {other:#04x}, expected 0")),
            )),
        }
    }

    fn nested_struct(
        &mut self,
        desc: &FieldDesc,
        n: usize,
        path: &str,
        depth: usize,
    ) -> Result<Struct, ParseError> {
        let nested = desc.nested.get(n).ok_or_else(|| {
            self.reader.error(ErrorKind::BadVmdesc(format!(
                "'{}' has element {n} in the stream but only {} descriptions",
                desc.name,
                desc.nested.len()
            )))
        })?;
        self.decode_struct(nested, &tree::child_prefix(path), depth + 1)
    }
}

/// Size and signedness of an array whose entries are all integers of its first entry's
/// type and size: such an array decodes to [`Scalars`], the same rule that
/// [`tree::Node`]'s deserializer folds element nodes by.
fn scalar_layout(group: &[FieldDesc]) -> Option<(u8, bool)> {
    let first = group.first()?;
    let signed = match first.kind {
        Kind::Signed => true,
        Kind::Unsigned => false,
        _ => return None,
    };
    let size = u8::try_from(first.size)
        .ok()
        .filter(|s| matches!(s, 1 | 2 | 4 | 8))?;
    group
        .iter()
        .all(|d| d.kind == first.kind && d.size == first.size && d.type_name == first.type_name)
        .then_some((size, signed))
}

/// `field[index]`, or the field itself outside an array.
fn element_path(field_path: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{field_path}[{i}]"),
        None => field_path.to_string(),
    }
}

fn struct_node(start: u64, end: u64, body: Struct) -> Node {
    Node {
        name: String::new(),
        type_name: "struct".into(),
        offset: start,
        len: end - start,
        value: Value::Struct(Box::new(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmdesc;

    fn schema(fields: &str, subsections: &str) -> StructDesc {
        let text = format!(
            r#"{{"devices": [{{"name": "d", "instance_id": 0, "vmsd_name": "d", "version": 1,
               "fields": [{fields}], "subsections": [{subsections}]}}]}}"#
        );
        vmdesc::parse(text.as_bytes(), 0)
            .unwrap()
            .devices
            .remove(0)
            .body
    }

    fn decode(desc: &StructDesc, data: &[u8]) -> Result<(Struct, Vec<Warning>), ParseError> {
        let mut r = Reader::new(data);
        let mut budget = Budget::nodes(data.len() as u64);
        let mut d = Decoder::new(&mut r, &mut budget);
        let s = d.decode_struct(desc, "", 0)?;
        Ok((s, d.warnings))
    }

    #[test]
    fn scalars_signedness_and_compressed_arrays() {
        let desc = schema(
            r#"{"name": "a", "type": "int16", "size": 2},
               {"name": "regs", "array_len": 3, "type": "uint32", "size": 4},
               {"name": "ok", "type": "bool", "size": 1}"#,
            "",
        );
        let data = [0xff, 0xfe, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1];
        let (s, warnings) = decode(&desc, &data).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(s.fields[0].value, Value::Int { value: -2, size: 2 });
        assert_eq!(
            s.fields[1].value,
            Value::Scalars(Scalars::new(4, false, data[2..14].to_vec()).unwrap())
        );
        let regs = s.fields[1].elements().unwrap();
        assert_eq!(regs.len(), 3);
        assert_eq!(regs[2].value, Value::Uint { value: 3, size: 4 });
        assert_eq!((regs[2].offset, regs[2].len), (10, 4));
        assert_eq!(&*regs[2].type_name, "uint32");
        assert_eq!(s.fields[2].value, Value::Bool(true));
    }

    #[test]
    fn scalar_arrays_fold_only_one_type_and_size() {
        let desc = schema(
            r#"{"name": "s", "array_len": 2, "type": "int8", "size": 1},
               {"name": "m", "index": 0, "type": "uint8", "size": 1},
               {"name": "m", "index": 1, "type": "uint8 equal", "size": 1},
               {"name": "b", "array_len": 2, "type": "bool", "size": 1}"#,
            "",
        );
        let (s, _) = decode(&desc, &[0xff, 1, 5, 6, 1, 0]).unwrap();
        let signed = s.fields[0].elements().unwrap();
        assert_eq!(signed[0].value, Value::Int { value: -1, size: 1 });
        assert_eq!(signed[1].value, Value::Int { value: 1, size: 1 });
        // Mixed types and non-integers stay nodes, each with its own type.
        let Value::Array(mixed) = &s.fields[1].value else {
            panic!("a mixed-type run is not scalars")
        };
        assert_eq!(&*mixed[1].type_name, "uint8 equal");
        assert!(matches!(s.fields[2].value, Value::Array(_)));
    }

    #[test]
    fn truncated_scalar_array_names_the_element() {
        let desc = schema(
            r#"{"name": "regs", "array_len": 3, "type": "uint32", "size": 4}"#,
            "",
        );
        let err = decode(&desc, &[0, 0, 0, 1, 0, 0]).unwrap_err();
        assert_eq!(err.offset, 4);
        assert_eq!(err.field.as_deref(), Some("regs[1]"));
        let err = decode(&desc, &[0, 0, 0, 1]).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("regs"));
    }

    #[test]
    fn indexed_elements_with_and_without_last_index_are_one_array() {
        // QEMU 10.0 drops "index" on the last element; 7.2 keeps it.
        for last in [r#", "index": 1"#, ""] {
            let desc = schema(
                &format!(
                    r#"{{"name": "x", "index": 0, "type": "uint8", "size": 1}},
                       {{"name": "x"{last}, "type": "uint8", "size": 1}}"#
                ),
                "",
            );
            let (s, _) = decode(&desc, &[7, 8]).unwrap();
            assert_eq!(s.fields.len(), 1);
            assert_eq!(s.fields[0].value.element_count(), Some(2));
        }
    }

    #[test]
    fn subsection_name_mismatch_is_a_desync_naming_last_field() {
        let desc = schema(
            r#"{"name": "a", "type": "uint8", "size": 1}"#,
            r#"{"vmsd_name": "d/sub", "version": 1, "fields": []}"#,
        );
        let mut data = vec![1, 0x05, 5];
        data.extend_from_slice(b"d/oth");
        let err = decode(&desc, &data).unwrap_err();
        assert_eq!(err.offset, 1);
        assert_eq!(
            err.kind,
            ErrorKind::MissingSubsection {
                expected: "d/sub".into(),
                found: "subsection 'd/oth'".into(),
                last_field: Some(("a".into(), 0)),
            }
        );
    }

    #[test]
    fn struct_size_mismatch_is_reported_at_the_field() {
        let desc = schema(
            r#"{"name": "s", "type": "struct", "size": 3, "struct": {"vmsd_name": "s",
                "version": 1, "fields": [{"name": "v", "type": "uint16", "size": 2}]}}"#,
            "",
        );
        let err = decode(&desc, &[0, 1, 2]).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("s"));
        assert_eq!(
            err.kind,
            ErrorKind::SizeMismatch {
                described: 3,
                decoded: 2
            }
        );
    }

    #[test]
    fn unknown_type_warns_and_keeps_bytes() {
        let desc = schema(r#"{"name": "w", "type": "uXXint32", "size": 4}"#, "");
        let (s, warnings) = decode(&desc, &[1, 2, 3, 4]).unwrap();
        assert_eq!(s.fields[0].value, Value::Bytes(vec![1, 2, 3, 4]));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message.contains("uXXint32"));
    }

    #[test]
    fn nullptr_old_and_new_names() {
        let desc = schema(
            r#"{"name": "p", "array_len": 2, "type": "nullptr", "size": 1},
               {"name": "q", "type": "uint64", "size": 1}"#,
            "",
        );
        let (s, _) = decode(&desc, b"000").unwrap();
        assert_eq!(s.fields[1].value, Value::Null);
        assert!(decode(&desc, b"001").is_err());
    }

    #[test]
    fn qtailq_and_gtree() {
        let elem = r#""vmsd_name": "e", "version": 1, "fields": [{"name": "v", "type": "uint8", "size": 1}]"#;
        let desc = schema(
            &format!(
                r#"{{"name": "l", "type": "qtailq", {elem}, {elem}, "size": 5}},
                   {{"name": "t", "type": "gtree", {elem}, "size": 15}}"#
            ),
            "",
        );
        let data = [
            1, 10, 1, 11, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 42, 12, 0,
        ];
        let (s, _) = decode(&desc, &data).unwrap();
        let Value::Array(list) = &s.fields[0].value else {
            panic!("not a list")
        };
        assert_eq!(list.len(), 2);
        let Value::Array(tree) = &s.fields[1].value else {
            panic!("not a tree")
        };
        assert_eq!(tree[0].value, Value::Uint { value: 42, size: 8 });
    }

    #[test]
    fn hostile_array_len_fails_fast() {
        let desc = schema(
            r#"{"name": "big", "array_len": 4000000000, "type": "uint8", "size": 1}"#,
            "",
        );
        assert!(decode(&desc, &[0; 16]).is_err());
    }
}
