//! The JSON `qemu-system-* -M TYPE -dump-vmstate FILE` writes: every device class of a
//! machine type with its static vmsd (all fields of all versions, all subsections, C sizes;
//! no types, no values, no instances). Read into a value-less [`Dump`] so that
//! `--schema-only` compares two of them with the same diff as two dumps.
//!
//! Devices are keyed by QOM type name (`e1000`), not by section idstr, so such files compare
//! only with each other. Array lengths (`num`) are left out: QEMU writes them only since 8.1,
//! so keeping them would make every array differ from a 7.2 file; fields compare by their
//! per-element size, as vmstate-static-checker.py does.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::tree::{Device, Dump, Node, StreamInfo, Struct, Subsection, Value};

/// Builds a value-less dump from `-dump-vmstate` JSON.
pub fn dump_from_vmstate(json: &Json) -> Result<Dump, String> {
    let map = json.as_object().ok_or("not a JSON object")?;
    let machine = json
        .pointer("/vmschkmachine/Name")
        .and_then(Json::as_str)
        .map(String::from);
    let mut devices = Vec::new();
    for (key, entry) in map.iter().filter(|(k, _)| *k != "vmschkmachine") {
        let desc = entry
            .get("Description")
            .ok_or_else(|| format!("{key}: no \"Description\""))?;
        let mut body = struct_from(desc).map_err(|e| format!("{key}: {e}"))?;
        // The oldest version the destination accepts matters as much as the newest.
        if let Some(min) = entry.get("minimum_version_id").and_then(Json::as_u64) {
            body.fields.insert(
                0,
                leaf(
                    "(minimum_version_id)",
                    "version",
                    4,
                    Value::Uint {
                        value: min,
                        size: 4,
                    },
                ),
            );
        }
        devices.push(Device {
            idstr: key.clone(),
            instance_id: 0,
            section_id: 0,
            version_id: number(entry, "version_id")? as u32,
            offset: 0,
            len: 0,
            body,
        });
    }
    Ok(Dump {
        machine,
        capabilities: Vec::new(),
        page_size: 0,
        devices,
        ram: Vec::new(),
        stream: StreamInfo {
            size: 0,
            footers: true,
            commands: Vec::new(),
            ram_chunks: 0,
            vmdesc_len: None,
        },
        warnings: Vec::new(),
    })
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
        let value = match f.get("Description") {
            Some(nested) => Value::Struct(Box::new(
                struct_from(nested).map_err(|e| format!("{name}: {e}"))?,
            )),
            None => Value::Bytes(Vec::new()),
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
        fields: nodes,
        subsections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_numbered_and_array_lengths_left_out() {
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
        assert_eq!(
            names,
            ["(minimum_version_id)", "config[0]", "config[1]", "regs"]
        );
        assert_eq!(body.fields[2].len, 4096);
        assert_eq!(body.fields[3].value, Value::Bytes(Vec::new()));
        assert_eq!(&*body.fields[3].type_name, "field since v2");
        assert_eq!(body.subsections[0].body.vmsd_name, "e1000/mit_state");
    }
}
