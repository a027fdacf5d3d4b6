//! The JSON `qemu-system-* -M TYPE -dump-vmstate FILE` writes: every device class of a
//! machine type with its static vmsd (all fields of all versions, all subsections, C sizes;
//! no types, no values, no instances). Read into a value-less [`Dump`] so that
//! `--schema-only` compares two of them with the same diff as two dumps, and `check` replays
//! a load against one.
//!
//! Classes are keyed by the name their sections carry on the wire, the vmsd name (`e1000`,
//! `pciespscsi`), not by QOM type name (`am53c974`): a QOM rename changes nothing that
//! travels; classes that share a vmsd are one entry where they describe it alike, else its
//! instances in QOM name order. Array lengths (`num`) are kept as the
//! field's value; QEMU writes them only since 8.1, so two files compare by whole-array size
//! when both have them and by per-element size otherwise (as vmstate-static-checker.py
//! does), and a layout difference is then undecided. A malformed class is skipped with a
//! warning, not the whole file.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::tree::{ClassFile, Device, Dump, Node, StreamInfo, Struct, Subsection, Value, Warning};

/// Builds a value-less dump from `-dump-vmstate` JSON.
pub fn dump_from_vmstate(json: &Json) -> Result<Dump, String> {
    let map = json.as_object().ok_or("not a JSON object")?;
    let machine = json
        .pointer("/vmschkmachine/Name")
        .and_then(Json::as_str)
        .map(String::from);
    let mut devices: Vec<Device> = Vec::new();
    let mut warnings = Vec::new();
    for (key, entry) in map.iter().filter(|(k, _)| *k != "vmschkmachine") {
        match class_from(entry) {
            Ok((version_id, body)) => {
                // Classes sharing a vmsd (pci-piix3, PIIX3-xen: "PIIX3") send the same
                // thing when their descriptions agree; the others are told apart by their
                // QOM names' order, which a rename rarely changes.
                let same_wire = devices.iter().filter(|d| d.idstr == body.vmsd_name);
                if same_wire
                    .clone()
                    .any(|d| d.version_id == version_id && d.body == body)
                {
                    continue;
                }
                devices.push(Device {
                    idstr: body.vmsd_name.clone(),
                    instance_id: same_wire.count() as u32,
                    section_id: 0,
                    version_id,
                    offset: 0,
                    len: 0,
                    body,
                });
            }
            Err(e) => warnings.push(Warning {
                offset: 0,
                section: None,
                message: format!("class {key}: {e}; skipped"),
            }),
        }
    }
    let array_lengths = map.values().any(has_num);
    Ok(Dump {
        classes: Some(ClassFile { array_lengths }),
        machine,
        capabilities: Vec::new(),
        uuid: None,
        page_size: 0,
        devices,
        ram: Vec::new(),
        stream: StreamInfo::default(),
        warnings,
    })
}

/// Whether any field under `v` has a `num` (QEMU >= 8.1 writes one for every array).
fn has_num(v: &Json) -> bool {
    match v {
        Json::Object(map) => map.contains_key("num") || map.values().any(has_num),
        Json::Array(items) => items.iter().any(has_num),
        _ => false,
    }
}

/// One class: its version and its description, the wire name as the vmsd name.
fn class_from(entry: &Json) -> Result<(u32, Struct), String> {
    let desc = entry.get("Description").ok_or("no \"Description\"")?;
    let body = struct_from(desc)?;
    if body.vmsd_name.is_empty() {
        return Err("a Description without a name".into());
    }
    // The class entry repeats its vmsd's version; where the two disagree (QEMU's checker
    // test data edits one without the other), the lower is what can be trusted to load.
    let listed = number(entry, "version_id")?;
    let version = body.version.map_or(listed, |v| v.min(listed));
    Ok((u32::try_from(version).map_err(|e| e.to_string())?, body))
}

/// What `-dump-vmstate` says of one field: from which version of its vmsd it is sent, and
/// whether a `field_exists` test decides too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDesc {
    pub since: u64,
    pub conditional: bool,
}

impl FieldDesc {
    /// The description of a field node built here (its type reads `field since vN` or
    /// `field since vN, conditional`); `None` for other nodes.
    pub fn of(node: &Node) -> Option<FieldDesc> {
        let rest = node.type_name.strip_prefix("field since v")?;
        let (since, conditional) = match rest.strip_suffix(", conditional") {
            Some(since) => (since, true),
            None => (rest, false),
        };
        Some(FieldDesc {
            since: since.parse().ok()?,
            conditional,
        })
    }
}

fn number(v: &Json, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Json::as_u64)
        .ok_or_else(|| format!("no valid \"{key}\""))
}

fn leaf(name: &str, type_name: &str, len: u64, value: Value) -> Node {
    Node {
        name: name.into(),
        type_name: type_name.into(),
        offset: 0,
        len,
        value,
    }
}

/// A vmsd description: `name`, `version_id`, `Fields`, `Subsections`.
fn struct_from(desc: &Json) -> Result<Struct, String> {
    let fields = desc
        .get("Fields")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    // Like the vmdesc, number names declared more than once: `config[0]`, `config[1]`.
    let mut total: HashMap<&str, usize> = HashMap::new();
    for f in fields {
        *total
            .entry(f.get("field").and_then(Json::as_str).unwrap_or(""))
            .or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut nodes = Vec::with_capacity(fields.len());
    for f in fields {
        let name = f
            .get("field")
            .and_then(Json::as_str)
            .ok_or("field without a name")?;
        let ordinal = seen.entry(name).or_default();
        let unique = if total.get(name).copied().unwrap_or(0) > 1 {
            format!("{name}[{ordinal}]")
        } else {
            name.to_string()
        };
        *ordinal += 1;
        let size = number(f, "size").map_err(|e| format!("{name}: {e}"))?;
        let since = f.get("version_id").and_then(Json::as_u64).unwrap_or(0);
        let conditional = f
            .get("field_exists")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let type_name = format!(
            "field since v{since}{}",
            if conditional { ", conditional" } else { "" }
        );
        // The element count, where the file has one, stands in the value.
        let value = match (f.get("Description"), f.get("num").and_then(Json::as_u64)) {
            (Some(nested), _) => Value::Struct(Box::new(
                struct_from(nested).map_err(|e| format!("{name}: {e}"))?,
            )),
            (None, Some(num)) => Value::Uint {
                value: num,
                size: 4,
            },
            (None, None) => Value::Bytes(Vec::new()),
        };
        nodes.push(leaf(&unique, &type_name, size, value));
    }
    let subsections = desc
        .get("Subsections")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|s| {
            Ok(Subsection {
                offset: 0,
                body: struct_from(s)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Struct {
        vmsd_name: desc
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string(),
        version: desc.get("version_id").and_then(Json::as_u64),
        // The oldest version the destination accepts matters as much as the newest.
        minimum_version: desc.get("minimum_version_id").and_then(Json::as_u64),
        fields: nodes,
        subsections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_numbered_and_array_lengths_kept_apart() {
        let json: Json = serde_json::from_str(
            r#"{"vmschkmachine": {"Name": "pc-i440fx-7.2"},
                "e1000": {"Name": "e1000", "version_id": 2, "minimum_version_id": 1,
                  "Description": {"name": "e1000", "version_id": 2, "minimum_version_id": 1,
                    "Fields": [
                      {"field": "config", "version_id": 0, "field_exists": true, "size": 256},
                      {"field": "config", "version_id": 0, "field_exists": true, "size": 4096},
                      {"field": "regs", "version_id": 2, "field_exists": false, "num": 3, "size": 4}],
                    "Subsections": [{"name": "e1000/mit_state", "version_id": 1,
                      "minimum_version_id": 1, "Fields": []}]}}}"#,
        )
        .unwrap();
        let dump = dump_from_vmstate(&json).unwrap();
        assert_eq!(dump.machine.as_deref(), Some("pc-i440fx-7.2"));
        let body = &dump.devices[0].body;
        let names: Vec<&str> = body.fields.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["config[0]", "config[1]", "regs"]);
        assert_eq!(body.fields[1].len, 4096);
        // The element count stands in the value; the size stays per element.
        assert_eq!(
            (body.fields[2].len, body.fields[2].value.clone()),
            (4, Value::Uint { value: 3, size: 4 })
        );
        assert_eq!(
            FieldDesc::of(&body.fields[2]),
            Some(FieldDesc {
                since: 2,
                conditional: false
            })
        );
        assert_eq!(
            FieldDesc::of(&body.fields[0]).map(|d| d.conditional),
            Some(true)
        );
        assert_eq!(body.subsections[0].body.vmsd_name, "e1000/mit_state");
        assert_eq!(
            dump.classes,
            Some(ClassFile {
                array_lengths: true
            })
        );
        assert_eq!(body.minimum_version, Some(1));
    }

    #[test]
    fn classes_are_keyed_by_wire_name_and_a_malformed_one_is_skipped() {
        let json: Json = serde_json::from_str(
            r#"{"am53c974": {"Name": "am53c974", "version_id": 2,
                  "Description": {"name": "pciespscsi", "version_id": 2, "Fields": []}},
                "cfi.pflash01": {"Name": "cfi.pflash01", "version_id": 1},
                "dc390": {"Name": "dc390", "version_id": 2,
                  "Description": {"name": "pciespscsi", "version_id": 2, "Fields": []}},
                "sun-fdtwo": {"Name": "sun-fdtwo", "version_id": 2,
                  "Description": {"name": "pciespscsi", "version_id": 1, "Fields": []}}}"#,
        )
        .unwrap();
        let dump = dump_from_vmstate(&json).unwrap();
        let keys: Vec<_> = dump
            .devices
            .iter()
            .map(|d| (d.idstr.as_str(), d.instance_id))
            .collect();
        // am53c974 and dc390 send the same section; a third class that describes it
        // otherwise is another instance.
        assert_eq!(keys, [("pciespscsi", 0), ("pciespscsi", 1)]);
        assert_eq!(dump.devices[1].body.version, Some(1));
        assert_eq!(dump.warnings.len(), 1);
        assert!(dump.warnings[0].message.contains("cfi.pflash01"));
        assert_eq!(
            dump.classes,
            Some(ClassFile {
                array_lengths: false
            })
        );
    }
}
