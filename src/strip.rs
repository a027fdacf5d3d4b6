//! Rewrites a stream with every RAM page sent as a zero page. Everything else (the header,
//! configuration, device sections, commands, footers and the vmdesc) is copied byte for
//! byte, so every decoder reads the same device state and QEMU loads the result (unless a
//! device's post_load reads guest memory that is gone, see [`DEFAULT_KEEP`]), but it holds
//! no guest memory: for bug reports, and to keep dumps of booted guests small.
//!
//! A page record is `be64 addr|flags`, the block name unless CONTINUE is set, then the
//! page (PAGE), its XBZRLE delta or its compressed form; a ZERO record carries one fill byte
//! instead (`migration/ram.c`, `save_zero_page`).

use std::io::{self, Write};

use crate::error::ParseError;
use crate::filter::Filter;
use crate::ram::{FLAG_CONTINUE, FLAG_ZERO};
use crate::stream;
use crate::vmdesc::Schema;

/// Pages kept unless told otherwise, as `ram/BLOCK@RANGES` patterns (the ignore syntax).
///
/// x86's legacy ROM window, where the firmware copies the BIOS and option ROMs: firmware,
/// not guest data, and QEMU's kvmvapic reads its option ROM there when loading a stream
/// ("error while loading state for instance 0x0 of device 'kvm-tpr-opt'" without it).
pub const DEFAULT_KEEP: &[&str] = &["ram/pc.ram@0xc0000-0xfffff"];

/// What [`strip`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stripped {
    /// Page records rewritten as zero pages.
    pub zeroed: u64,
    /// Page records kept because a keep pattern covers them.
    pub kept: u64,
    /// Size of the rewritten stream.
    pub bytes: u64,
}

/// Why a stream could not be stripped.
#[derive(Debug)]
#[non_exhaustive]
pub enum StripError {
    Parse(ParseError),
    /// A mapped-ram stream keeps pages at fixed file offsets, not in records.
    MappedRam,
    Write(io::Error),
}

impl std::fmt::Display for StripError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StripError::Parse(e) => e.fmt(f),
            StripError::MappedRam => f.write_str(
                "a mapped-ram stream keeps its pages at fixed file offsets: strip rewrites \
                 page records and would leave them all in place",
            ),
            StripError::Write(e) => write!(f, "writing the stripped stream: {e}"),
        }
    }
}

impl std::error::Error for StripError {}

/// Decodes `data` (checking the whole stream, as for a diff), then writes it to `out` with
/// every page record that has contents turned into a zero-page record for the same page,
/// except pages that `keep` covers (`ram/BLOCK`, or `ram/BLOCK@RANGES` for some bytes).
///
/// ```
/// let data = std::fs::read("testdata/pc10-running.mig")?;
/// let keep = migdiff::Filter::new(migdiff::DEFAULT_KEEP)?;
/// let mut out = Vec::new();
/// let done = migdiff::strip(&data, None, &keep, &mut out)?;
/// assert_eq!(done.bytes, out.len() as u64);
/// // The same devices; RAM holds data only in the window kept (pc.ram's ROM copies).
/// let stripped = migdiff::decode(&out, None)?;
/// assert_eq!(stripped.devices.len(), migdiff::decode(&data, None)?.devices.len());
/// assert!(stripped.ram.iter().all(|b| b.data_pages == 0 || b.name == "pc.ram"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn strip(
    data: &[u8],
    desc: Option<&Schema>,
    keep: &Filter,
    out: &mut dyn Write,
) -> Result<Stripped, StripError> {
    let (dump, records) =
        stream::decode_with_page_records(data, desc).map_err(StripError::Parse)?;
    if dump.capabilities.iter().any(|c| c == "mapped-ram") {
        return Err(StripError::MappedRam);
    }
    let page_size = dump.page_size;
    let keep_ranges: Vec<(bool, Vec<(u64, u64)>)> = dump
        .ram
        .iter()
        .map(|b| {
            let subject = format!("ram/{}", b.name);
            (keep.is_match(&subject), keep.byte_mask(&subject))
        })
        .collect();
    let mut done = Stripped {
        zeroed: 0,
        kept: 0,
        bytes: 0,
    };
    let mut copied_to = 0usize;
    let mut emit = |bytes: &[u8], done: &mut Stripped| -> Result<(), StripError> {
        out.write_all(bytes).map_err(StripError::Write)?;
        done.bytes += bytes.len() as u64;
        Ok(())
    };
    for record in &records {
        // The decoder read these offsets from `data`, in increasing order: in bounds.
        let (header, payload, end) = (
            record.header as usize,
            record.payload as usize,
            record.end as usize,
        );
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&data[header..header + 8]);
        let old = u64::from_be_bytes(raw);
        let addr = old & !(page_size - 1);
        let kept = keep_ranges
            .get(record.block)
            .is_some_and(|(whole, ranges)| {
                *whole
                    || ranges
                        .iter()
                        .any(|&(start, stop)| start < addr + page_size && addr < stop)
            });
        if kept {
            done.kept += 1;
            continue;
        }
        let new = addr | FLAG_ZERO | (old & FLAG_CONTINUE);
        emit(&data[copied_to..header], &mut done)?;
        emit(&new.to_be_bytes(), &mut done)?;
        // The block name, when the record names one.
        emit(&data[header + 8..payload], &mut done)?;
        emit(&[0], &mut done)?;
        done.zeroed += 1;
        copied_to = end;
    }
    emit(&data[copied_to..], &mut done)?;
    Ok(done)
}
