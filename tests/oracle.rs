//! migdiff must agree, value for value, with QEMU's own `scripts/analyze-migration.py -d state`
//! on real dumps. The oracle's outputs are committed in testdata/oracle/ (made by
//! scripts/gen-testdata.sh), so this test needs neither Python nor QEMU.
//!
//! The oracle's shape is rebuilt from migdiff's tree by [`oracle_view`], which follows the
//! script's rendering rules; where the script is wrong, the view copies it and the
//! difference is documented and asserted in `where_the_oracle_is_wrong`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use migdiff::{Node, Struct, Value};
use serde_json::{Map, Value as Json};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The stems of the stream fixtures, raw (`NAME.mig`) or zstd-compressed (`NAME.mig.zst`,
/// as booted guests' dumps are committed); a compressed copy of a raw fixture
/// (pc10-stopped.mig.zst) counts once.
fn stream_stems() -> BTreeSet<String> {
    std::fs::read_dir(testdata())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            let stem = name
                .strip_suffix(".mig")
                .or_else(|| name.strip_suffix(".mig.zst"))?;
            Some(stem.to_string())
        })
        .collect()
}

/// The stream of fixture `stem`: NAME.mig, or else NAME.mig.zst decompressed.
fn read_stream(stem: &str) -> Vec<u8> {
    let raw = testdata().join(format!("{stem}.mig"));
    if raw.exists() {
        return std::fs::read(raw).unwrap();
    }
    let file = std::fs::File::open(testdata().join(format!("{stem}.mig.zst"))).unwrap();
    zstd::decode_all(file).unwrap()
}

/// Types analyze-migration.py reads as signed integers (`VMSDFieldInt`). Note
/// `uint8 equal`, `uint16 equal` and `int64 equal`: QEMU's C code treats them as unsigned.
const ORACLE_SIGNED: &[&str] = &[
    "int8",
    "int16",
    "int32",
    "int32 equal",
    "int32 le",
    "int64",
    "int64 equal",
    "uint8 equal",
    "uint16 equal",
];
const ORACLE_UNSIGNED: &[&str] = &["uint8", "uint16", "uint32", "uint32 equal", "uint64"];

fn oracle_int(bytes: &[u8], signed: bool) -> Json {
    let unsigned = bytes
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let bits = bytes.len() * 8;
    let text = format!("{unsigned:#0width$x}", width = bytes.len() * 2 + 2);
    let negative = signed && bits > 0 && unsigned >> (bits - 1) == 1;
    if negative {
        let value = unsigned as i128 - (1i128 << bits);
        Json::String(format!("{text} ({value})"))
    } else {
        Json::String(text)
    }
}

/// One field element as the script prints it.
fn leaf_view(data: &[u8], node: &Node) -> Json {
    let raw = &data[node.offset as usize..(node.offset + node.len) as usize];
    let ty = &*node.type_name;
    match &node.value {
        Value::Struct(s) if ty == "struct" => struct_view(data, s),
        Value::Bool(b) if ty == "bool" => Json::Bool(*b),
        Value::Text(t) if ty == "capability" => Json::String(t.clone()),
        Value::Null if ty == "nullptr" => Json::String("nullptr".into()),
        _ if ORACLE_SIGNED.contains(&ty) => oracle_int(raw, true),
        _ if ORACLE_UNSIGNED.contains(&ty) => oracle_int(raw, false),
        // Everything else (buffer, timer, tmp, vstruct, CPU_Double_U, virtio, ...) is hex.
        _ => Json::String(
            raw.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

fn struct_view(data: &[u8], s: &Struct) -> Json {
    let mut map = Map::new();
    for node in &s.fields {
        let value = match node.elements() {
            // The script has no reader for lists: it reads their vmdesc size (the 1-byte
            // end marker of an empty list) as bytes (s390x's qemu-s390-flic-full/io[0]).
            _ if matches!(&*node.type_name, "qlist" | "qtailq") => leaf_view(data, node),
            // The script folds one-element arrays into a scalar and longer ones into a list.
            Some(items) if items.len() == 1 => leaf_view(data, &items[0]),
            Some(items) => Json::Array(items.iter().map(|n| leaf_view(data, n)).collect()),
            None => leaf_view(data, node),
        };
        map.insert(node.name.clone(), value);
    }
    for sub in &s.subsections {
        map.insert(sub.body.vmsd_name.clone(), struct_view(data, &sub.body));
    }
    Json::Object(map)
}

/// migdiff's decode of `data`, in the shape of `analyze-migration.py -d state`.
fn oracle_view(data: &[u8]) -> Json {
    let dump = migdiff::decode(data, None).expect("fixture decodes");
    let mut top = Map::new();
    for d in &dump.devices {
        // The script reads these iterative sections to their end and shows nothing of them.
        let view = if ["spapr/htab", "s390-storage_attributes"].contains(&d.idstr.as_str()) {
            Json::String(String::new())
        } else {
            struct_view(data, &d.body)
        };
        top.insert(format!("{} ({})", d.idstr, d.section_id), view);
    }
    let sizes: Map<String, Json> = dump
        .ram
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                Json::String(format!("{:#018x}", b.used_length)),
            )
        })
        .collect();
    let mut ram = Map::new();
    ram.insert("section sizes".into(), Json::Object(sizes));
    top.insert("ram".into(), Json::Object(ram));
    Json::Object(top)
}

/// Stream fixtures the oracle cannot read, each with why: no vmdesc; XBZRLE pages; a
/// POSTCOPY_ADVISE command (dirty-bitmaps on); the second dump of a pair, whose layout
/// the first one's oracle output covers.
const NO_ORACLE: &[&str] = &[
    "suppress-vmdesc",
    "pc10-xbzrle-live",
    "pc10-dirty-bitmap",
    "pseries-stopped-again",
    "s390x-stopped-again",
];

/// The oracle's output with its "ram (N)" key renamed to "ram" (migdiff does not keep the
/// RAM section's process-local id). Large outputs are committed zstd-compressed.
fn oracle_output(path: &Path) -> Json {
    let text = if path.extension().is_some_and(|e| e == "zst") {
        String::from_utf8(zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap()).unwrap()
    } else {
        std::fs::read_to_string(path).unwrap()
    };
    let Json::Object(map) = serde_json::from_str::<Json>(&text).unwrap() else {
        panic!("{}: not an object", path.display())
    };
    Json::Object(
        map.into_iter()
            .map(|(k, v)| {
                if k.starts_with("ram (") {
                    ("ram".into(), v)
                } else {
                    (k, v)
                }
            })
            .collect(),
    )
}

/// Path of the first place two JSON values differ, for a readable failure.
fn first_difference(path: &str, ours: &Json, theirs: &Json) -> Option<String> {
    match (ours, theirs) {
        (Json::Object(a), Json::Object(b)) => {
            for key in a.keys().chain(b.keys()) {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => {
                        if let Some(d) = first_difference(&format!("{path}/{key}"), x, y) {
                            return Some(d);
                        }
                    }
                    (x, y) => return Some(format!("{path}/{key}: migdiff {x:?}, oracle {y:?}")),
                }
            }
            None
        }
        (Json::Array(a), Json::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        _ if ours == theirs => None,
        _ => Some(format!("{path}: migdiff {ours}, oracle {theirs}")),
    }
}

#[test]
fn every_fixture_agrees_with_analyze_migration() {
    let oracle_dir = testdata().join("oracle");
    let mut checked = 0;
    let mut fields = 0;
    for entry in std::fs::read_dir(&oracle_dir).unwrap() {
        let oracle_path = entry.unwrap().path();
        let name = oracle_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let Some(stem) = name
            .strip_suffix(".state.json")
            .or_else(|| name.strip_suffix(".state.json.zst"))
        else {
            continue;
        };
        let data = read_stream(stem);
        let ours = oracle_view(&data);
        let theirs = oracle_output(&oracle_path);
        if let Some(diff) = first_difference(stem, &ours, &theirs) {
            panic!("{stem}: migdiff disagrees with analyze-migration.py at {diff}");
        }
        fields += count_leaves(&theirs);
        checked += 1;
    }
    // Every dump the oracle can read has its output.
    let dumps = stream_stems()
        .iter()
        .filter(|stem| !NO_ORACLE.iter().any(|n| stem.contains(n)))
        .count();
    assert_eq!(checked, dumps, "fixtures without an oracle output");
    assert!(checked >= 15, "only {checked} fixtures");
    assert!(fields > 10_000, "only {fields} fields compared");
}

fn count_leaves(v: &Json) -> usize {
    match v {
        Json::Object(m) => m.values().map(count_leaves).sum(),
        Json::Array(a) => a.iter().map(count_leaves).sum(),
        _ => 1,
    }
}

/// Arm CPU field types (target/arm/machine.c: the `cpsr` and `fpscr` registers, the
/// `powered_off` flag) that migdiff shows as raw bytes, with a warning, until it decodes them.
const NOT_DECODED_YET: &[&str] = &["cpsr", "fpscr", "powered_off"];

#[test]
fn every_fixture_decodes_without_unknown_types_and_round_trips_through_json() {
    let mut decoded = 0;
    for stem in stream_stems() {
        if stem.contains("suppress-vmdesc") {
            continue;
        }
        let data = read_stream(&stem);
        let dump = migdiff::decode(&data, None).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let unexpected: Vec<_> = dump
            .warnings
            .iter()
            .filter(|w| {
                !NOT_DECODED_YET
                    .iter()
                    .any(|ty| w.message.starts_with(&format!("type '{ty}' ")))
            })
            .collect();
        assert!(unexpected.is_empty(), "{stem}: {unexpected:?}");
        assert!(!dump.devices.is_empty() && !dump.ram.is_empty(), "{stem}");
        // Read back from JSON (an export), arrays of scalars fold as the decoder folds them.
        let json = serde_json::to_string(&dump).unwrap();
        let back: migdiff::Dump = serde_json::from_str(&json).unwrap();
        assert!(back == dump, "{stem}: JSON round trip differs");
        decoded += 1;
    }
    assert!(decoded >= 10, "only {decoded} fixtures");
}
