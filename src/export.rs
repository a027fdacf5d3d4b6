//! The export format: one decoded dump as self-contained JSON, for bug-report attachments.
//!
//! Guest RAM is present only as per-page xxh3 digests (runs of them), never as contents,
//! so an export can be shared without leaking guest memory; device state (registers, PCI
//! config, virtio queues) is included in full. migdiff reads an export wherever it reads a
//! dump, so a maintainer can diff a user's attachment against a local dump.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::budget::Budget;
use crate::tree::Dump;

/// Version of the export layout this migdiff writes; bumped only for changes old readers
/// cannot skip. 2: integers as bare numbers, arrays of integers as lists (1 spelled each
/// element as a node).
pub const EXPORT_VERSION: u32 = 2;

/// The layouts this migdiff reads.
const READS: std::ops::RangeInclusive<u64> = 1..=2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// Marks the file as an export and gives its layout version.
    pub migdiff_export: u32,
    /// migdiff version that wrote it.
    pub migdiff: String,
    pub source: Source,
    pub dump: Dump,
}

/// The dump an export was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

pub fn sha256_hex(data: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(data))
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
/// dump, with the pages its RAM blocks claim bounded by [`Budget::pages`].
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
