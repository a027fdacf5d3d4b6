//! The iterative sections other than "ram" that QEMU writes into a migration file, each
//! decoded into a section of the tree whose fields are the entries of a table (see
//! [`crate::diff::SPARSE_SECTIONS`]: an entry present on one side only is a changed value):
//!
//! - `spapr/htab` (hw/ppc/spapr.c): the pseries hashed page table, as its valid HPTEs;
//! - `s390-storage_attributes` (hw/s390x/s390-stattrib.c): CMMA storage attributes, one
//!   byte per guest page, in windows of [`STATTR_WINDOW`] pages;
//! - `dirty-bitmap` (migration/block-dirty-bitmap.c): the block dirty bitmaps migrated with
//!   the `dirty-bitmaps` capability, each bitmap's start flags, granularity and bits.
//!
//! Every chunk (START, PART, END) is read to its end marker, as QEMU's loader reads it, so a
//! later entry replaces an earlier one.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{ErrorKind, ParseError};
use crate::reader::Reader;
use crate::tree::{Node, Struct, Value};

/// `HASH_PTE_SIZE_64`: one HPTE is two big-endian u64.
const HASH_PTE_SIZE_64: u64 = 16;
/// The largest hash table QEMU allocates (`spapr_hpt_shift_for_ramsize` caps it at 46).
const MAX_HTAB_SHIFT: u32 = 46;

// STATTR_FLAG_* (hw/s390x/s390-stattrib.c).
const STATTR_FLAG_EOS: u64 = 0x01;
const STATTR_FLAG_MORE: u64 = 0x02;
const STATTR_FLAG_ERROR: u64 = 0x04;
const STATTR_FLAG_DONE: u64 = 0x08;
/// s390x's TARGET_PAGE_BITS: the low bits of a storage attribute record's address word
/// hold its flags.
const S390_PAGE_MASK: u64 = 0xfff;
/// Pages per field of the storage attributes section.
pub const STATTR_WINDOW: u64 = 4096;

// DIRTY_BITMAP_MIG_FLAG_* (migration/block-dirty-bitmap.c).
const DBM_FLAG_EOS: u32 = 0x01;
const DBM_FLAG_ZEROES: u32 = 0x02;
const DBM_FLAG_BITMAP_NAME: u32 = 0x04;
const DBM_FLAG_DEVICE_NAME: u32 = 0x08;
const DBM_FLAG_START: u32 = 0x10;
const DBM_FLAG_COMPLETE: u32 = 0x20;
const DBM_FLAG_BITS: u32 = 0x40;
const DBM_EXTRA_FLAGS: u8 = 0x80;

/// The iterative sections this module decodes, with the one version QEMU writes of each.
pub const SECTIONS: [(&str, u32); 3] = [
    ("spapr/htab", 1),
    ("s390-storage_attributes", 0),
    ("dirty-bitmap", 1),
];

/// One iterative section's state across its chunks.
pub enum Section {
    Htab(Htab),
    StorageAttributes(StorageAttributes),
    DirtyBitmap(DirtyBitmap),
}

impl Section {
    /// The decoder for section `idstr` at `version`, or None when it is not one of
    /// [`SECTIONS`] at that version (the caller's error names which).
    pub fn new(idstr: &str, version: u32, input_len: u64) -> Option<Section> {
        let known = SECTIONS.iter().any(|&(n, v)| n == idstr && v == version);
        if !known {
            return None;
        }
        Some(match idstr {
            "spapr/htab" => Section::Htab(Htab::default()),
            "s390-storage_attributes" => Section::StorageAttributes(StorageAttributes {
                windows: BTreeMap::new(),
                budget: input_len.saturating_mul(64).saturating_add(16 << 20),
                done: false,
            }),
            _ => Section::DirtyBitmap(DirtyBitmap::default()),
        })
    }

    /// Reads one chunk to its end marker. `first`: the START chunk.
    pub fn read_chunk(&mut self, r: &mut Reader<'_>, first: bool) -> Result<(), ParseError> {
        match self {
            Section::Htab(h) => h.read_chunk(r, first),
            Section::StorageAttributes(s) => s.read_chunk(r),
            Section::DirtyBitmap(d) => d.read_chunk(r),
        }
    }

    /// The section's body: one field per entry.
    pub fn finish(self, vmsd_name: &str) -> Struct {
        let fields = match self {
            Section::Htab(h) => h.fields(),
            Section::StorageAttributes(s) => s.fields(),
            Section::DirtyBitmap(d) => d.fields(),
        };
        Struct {
            vmsd_name: vmsd_name.to_string(),
            version: None,
            minimum_version: None,
            fields,
            subsections: Vec::new(),
        }
    }
}

fn node(name: String, type_name: &str, offset: u64, len: u64, value: Value) -> Node {
    Node {
        name,
        type_name: Arc::from(type_name),
        offset,
        len,
        value,
    }
}

/// The hashed page table: `be32 header` (the table's log2 size in the START chunk, -1 for
/// none, 0 in later chunks), then in later chunks `be32 index, be16 n_valid, be16
/// n_invalid` with `n_valid` HPTEs, until an all-zero marker: entries `index..+n_valid`
/// are set, the `n_invalid` after them invalidated.
#[derive(Default)]
pub struct Htab {
    /// The header of the START chunk, with its offset.
    shift: Option<(i64, u64)>,
    /// Valid HPTEs by index: where their bytes are, and the bytes.
    entries: BTreeMap<u64, (u64, [u8; 16])>,
}

impl Htab {
    fn read_chunk(&mut self, r: &mut Reader<'_>, first: bool) -> Result<(), ParseError> {
        let at = r.offset();
        let header = r.be32("HTAB header")? as i32;
        if first || header != 0 {
            // spapr.c htab_load: a non-zero header gives the table size (or -1: no table).
            if header > 0 && header.unsigned_abs() > MAX_HTAB_SHIFT {
                return Err(ParseError::new(
                    at,
                    ErrorKind::Invalid(format!(
                        "HTAB shift {header} (QEMU allocates at most 2^46 bytes)"
                    )),
                ));
            }
            self.shift = Some((i64::from(header), at));
            return Ok(());
        }
        let slots = match self.shift {
            Some((shift, _)) if shift > 0 => Some((1u64 << shift) / HASH_PTE_SIZE_64),
            _ => None,
        };
        loop {
            let at = r.offset();
            let index = u64::from(r.be32("HPTE index")?);
            let n_valid = u64::from(r.be16("HPTE valid count")?);
            let n_invalid = u64::from(r.be16("HPTE invalid count")?);
            if index == 0 && n_valid == 0 && n_invalid == 0 {
                return Ok(());
            }
            if slots.is_some_and(|s| index + n_valid + n_invalid > s) {
                return Err(ParseError::new(
                    at,
                    ErrorKind::Invalid(format!(
                        "HTAB chunk of HPTEs {index}..{} beyond the table's {} entries (QEMU: \"htab_load() bad index\")",
                        index + n_valid + n_invalid,
                        slots.unwrap_or(0)
                    )),
                ));
            }
            for i in 0..n_valid {
                let offset = r.offset();
                let mut hpte = [0u8; 16];
                hpte.copy_from_slice(r.bytes(HASH_PTE_SIZE_64, "HPTE")?);
                self.entries.insert(index + i, (offset, hpte));
            }
            let start = index + n_valid;
            let gone: Vec<u64> = self
                .entries
                .range(start..start + n_invalid)
                .map(|(&k, _)| k)
                .collect();
            for k in gone {
                self.entries.remove(&k);
            }
        }
    }

    fn fields(self) -> Vec<Node> {
        let mut fields = Vec::with_capacity(self.entries.len() + 1);
        if let Some((shift, at)) = self.shift {
            fields.push(node(
                "htab_shift".into(),
                "int32",
                at,
                4,
                Value::Int {
                    value: shift,
                    size: 4,
                },
            ));
        }
        for (index, (offset, hpte)) in self.entries {
            fields.push(node(
                format!("hpte_{index:#010x}"),
                "hpte",
                offset,
                HASH_PTE_SIZE_64,
                Value::Bytes(hpte.to_vec()),
            ));
        }
        fields
    }
}

/// CMMA storage attributes: `be64 (gfn << 12) | flags`, and after a MORE flag `be64
/// count` and `count` attribute bytes for the pages from `gfn`; EOS ends a chunk, DONE
/// (the last values sent) is followed by EOS, ERROR is a failed source.
pub struct StorageAttributes {
    /// Attribute bytes by window of [`STATTR_WINDOW`] pages: the offset of the last record
    /// that wrote into the window, and its bytes up to the last page written.
    windows: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Window bytes a hostile stream may still make us allocate.
    budget: u64,
    done: bool,
}

impl StorageAttributes {
    fn read_chunk(&mut self, r: &mut Reader<'_>) -> Result<(), ParseError> {
        loop {
            let at = r.offset();
            let word = r.be64("storage attributes header")?;
            let (gfn, flags) = (word >> 12, word & S390_PAGE_MASK);
            match flags {
                STATTR_FLAG_EOS => return Ok(()),
                STATTR_FLAG_DONE => self.done = true,
                STATTR_FLAG_MORE => {
                    let count = r.be64("storage attributes count")?;
                    let bytes = r.bytes(count, "storage attributes")?;
                    self.store(gfn, bytes, at)?;
                }
                STATTR_FLAG_ERROR => {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::Invalid(
                            "the source flagged its storage attributes incomplete (QEMU: \"Storage attributes data is incomplete\")".into(),
                        ),
                    ))
                }
                _ => {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::Invalid(format!(
                            "storage attribute flags {flags:#x} (QEMU: \"Unexpected storage attribute flag data\")"
                        )),
                    ))
                }
            }
        }
    }

    fn store(&mut self, gfn: u64, bytes: &[u8], at: u64) -> Result<(), ParseError> {
        let mut page = gfn;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (window, within) = (page / STATTR_WINDOW, page % STATTR_WINDOW);
            let take = rest
                .len()
                .min(usize::try_from(STATTR_WINDOW - within).unwrap_or(1));
            let (now, later) = rest.split_at(take);
            let entry = self.windows.entry(window).or_insert((at, Vec::new()));
            entry.0 = at;
            let start = usize::try_from(within).unwrap_or(0);
            let end = start + now.len();
            if entry.1.len() < end {
                let grow = (end - entry.1.len()) as u64;
                self.budget = self.budget.checked_sub(grow).ok_or_else(|| {
                    ParseError::new(
                        at,
                        ErrorKind::Invalid(format!(
                            "storage attributes for page {page:#x} spread further than the input justifies"
                        )),
                    )
                })?;
                entry.1.resize(end, 0);
            }
            if let Some(to) = entry.1.get_mut(start..end) {
                to.copy_from_slice(now);
            }
            page = page.saturating_add(take as u64);
            rest = later;
        }
        Ok(())
    }

    fn fields(self) -> Vec<Node> {
        let mut fields = Vec::with_capacity(self.windows.len() + 1);
        for (window, (offset, bytes)) in self.windows {
            fields.push(node(
                format!("pages_{:#010x}", window * STATTR_WINDOW),
                "storage attributes",
                offset,
                bytes.len() as u64,
                Value::Bytes(bytes),
            ));
        }
        fields.push(node("done".into(), "bool", 0, 0, Value::Bool(self.done)));
        fields
    }
}

/// Block dirty bitmaps: records of `flags` (one byte, more with 0x80), the node and bitmap
/// names when they change, then: START `be32 granularity, u8 flags`; BITS `be64 first
/// sector, be32 sectors` and, unless ZEROES, `be64 size` and the serialized bits;
/// COMPLETE; EOS ends a chunk.
#[derive(Default)]
pub struct DirtyBitmap {
    node: Option<String>,
    bitmap: Option<String>,
    /// By `(node, bitmap)`.
    bitmaps: BTreeMap<(String, String), BitmapState>,
}

#[derive(Default)]
struct BitmapState {
    start: Option<(u64, u32, u8)>,
    complete: bool,
    /// By first sector: where it was, the sector count, and the bits (None: ZEROES).
    bits: BTreeMap<u64, (u64, u32, Option<Vec<u8>>)>,
}

impl DirtyBitmap {
    fn read_chunk(&mut self, r: &mut Reader<'_>) -> Result<(), ParseError> {
        loop {
            let at = r.offset();
            let first = r.u8("dirty bitmap flags")?;
            let mut flags = u32::from(first);
            if first & DBM_EXTRA_FLAGS != 0 {
                flags = flags << 8 | u32::from(r.u8("dirty bitmap flags")?);
                if flags & u32::from(DBM_EXTRA_FLAGS) != 0 {
                    flags = flags << 16 | u32::from(r.be16("dirty bitmap flags")?);
                }
            }
            if flags & DBM_FLAG_DEVICE_NAME != 0 {
                self.node = Some(r.counted_str("dirty bitmap node name")?);
            }
            if flags & DBM_FLAG_BITMAP_NAME != 0 {
                self.bitmap = Some(r.counted_str("dirty bitmap name")?);
            }
            if flags & DBM_FLAG_EOS != 0 {
                return Ok(());
            }
            let known = DBM_FLAG_ZEROES
                | DBM_FLAG_BITMAP_NAME
                | DBM_FLAG_DEVICE_NAME
                | DBM_FLAG_START
                | DBM_FLAG_COMPLETE
                | DBM_FLAG_BITS;
            if flags & !known != 0 {
                return Err(ParseError::new(
                    at,
                    ErrorKind::Invalid(format!("dirty bitmap flags {flags:#x}")),
                ));
            }
            let (Some(node), Some(bitmap)) = (self.node.clone(), self.bitmap.clone()) else {
                return Err(ParseError::new(
                    at,
                    ErrorKind::Invalid(
                        "dirty bitmap record before any node and bitmap name".into(),
                    ),
                ));
            };
            let state = self.bitmaps.entry((node, bitmap)).or_default();
            if flags & DBM_FLAG_START != 0 {
                let granularity = r.be32("dirty bitmap granularity")?;
                let start_flags = r.u8("dirty bitmap start flags")?;
                state.start = Some((at, granularity, start_flags));
            }
            if flags & DBM_FLAG_COMPLETE != 0 {
                state.complete = true;
            }
            if flags & DBM_FLAG_BITS != 0 {
                let first_sector = r.be64("dirty bitmap first sector")?;
                let sectors = r.be32("dirty bitmap sector count")?;
                let bits = if flags & DBM_FLAG_ZEROES != 0 {
                    None
                } else {
                    let size = r.be64("dirty bitmap bits size")?;
                    Some(r.bytes(size, "dirty bitmap bits")?.to_vec())
                };
                state.bits.insert(first_sector, (at, sectors, bits));
            }
        }
    }

    fn fields(self) -> Vec<Node> {
        let mut fields = Vec::new();
        for ((node_name, bitmap), state) in self.bitmaps {
            let prefix = format!("{node_name}/{bitmap}");
            if let Some((at, granularity, flags)) = state.start {
                fields.push(node(
                    format!("{prefix}.granularity"),
                    "uint32",
                    at,
                    4,
                    Value::Uint {
                        value: u64::from(granularity),
                        size: 4,
                    },
                ));
                fields.push(node(
                    format!("{prefix}.flags"),
                    "uint8",
                    at,
                    1,
                    Value::Uint {
                        value: u64::from(flags),
                        size: 1,
                    },
                ));
            }
            fields.push(node(
                format!("{prefix}.complete"),
                "bool",
                0,
                0,
                Value::Bool(state.complete),
            ));
            for (sector, (at, sectors, bits)) in state.bits {
                let name = format!("{prefix}.bits_{sector:#012x}+{sectors:#x}");
                // ZEROES: no bits travel, only the flag.
                let (ty, len, value) = match bits {
                    Some(b) => ("bitmap", b.len() as u64, Value::Bytes(b)),
                    None => ("zeroes", 0, Value::Text("all clear".into())),
                };
                fields.push(node(name, ty, at, len, value));
            }
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(section: &mut Section, chunks: &[Vec<u8>]) -> Result<(), ParseError> {
        let data = chunks.concat();
        let mut r = Reader::new(&data);
        for (i, _) in chunks.iter().enumerate() {
            section.read_chunk(&mut r, i == 0)?;
        }
        Ok(())
    }

    fn htab_chunk(entries: &[(u32, u16, u16, u8)]) -> Vec<u8> {
        let mut out = 0u32.to_be_bytes().to_vec();
        for &(index, valid, invalid, fill) in entries {
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&valid.to_be_bytes());
            out.extend_from_slice(&invalid.to_be_bytes());
            out.extend(std::iter::repeat_n(fill, usize::from(valid) * 16));
        }
        out.extend_from_slice(&[0; 8]);
        out
    }

    #[test]
    fn htab_entries_are_set_and_invalidated_in_stream_order() {
        let mut s = Section::new("spapr/htab", 1, 1000).unwrap();
        read(
            &mut s,
            &[
                21u32.to_be_bytes().to_vec(),
                htab_chunk(&[(4, 3, 0, 0xaa), (100, 1, 0, 0xbb)]),
                // Entry 5 rewritten, 6 invalidated.
                htab_chunk(&[(5, 1, 1, 0xcc)]),
            ],
        )
        .unwrap();
        let body = s.finish("spapr/htab");
        let names: Vec<&str> = body.fields.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "htab_shift",
                "hpte_0x00000004",
                "hpte_0x00000005",
                "hpte_0x00000064"
            ]
        );
        assert_eq!(body.fields[0].value, Value::Int { value: 21, size: 4 });
        assert_eq!(body.fields[2].value, Value::Bytes(vec![0xcc; 16]));
        // An index beyond 2^21 / 16 entries.
        let mut s = Section::new("spapr/htab", 1, 1000).unwrap();
        let err = read(
            &mut s,
            &[
                21u32.to_be_bytes().to_vec(),
                htab_chunk(&[(131_071, 2, 0, 1)]),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad index"), "{err}");
        assert!(Section::new("spapr/htab", 2, 0).is_none());
    }

    #[test]
    fn storage_attributes_fill_windows_of_pages() {
        let more = |gfn: u64, bytes: &[u8]| {
            let mut out = ((gfn << 12) | STATTR_FLAG_MORE).to_be_bytes().to_vec();
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
            out
        };
        let eos = STATTR_FLAG_EOS.to_be_bytes().to_vec();
        let done = STATTR_FLAG_DONE.to_be_bytes().to_vec();
        let mut s = Section::new("s390-storage_attributes", 0, 100_000).unwrap();
        read(
            &mut s,
            &[
                eos.clone(),
                [more(4094, &[1, 2, 3]), eos.clone()].concat(),
                [more(4095, &[9]), done, eos].concat(),
            ],
        )
        .unwrap();
        let body = s.finish("s390-storage_attributes");
        assert_eq!(body.fields[0].name, "pages_0x00000000");
        assert_eq!(body.fields[0].value, {
            let mut w = vec![0u8; 4096];
            w[4094] = 1;
            w[4095] = 9;
            Value::Bytes(w)
        });
        assert_eq!(body.fields[1].name, "pages_0x00001000");
        assert_eq!(body.fields[1].value, Value::Bytes(vec![3]));
        assert_eq!(body.fields[2].value, Value::Bool(true));
        let mut s = Section::new("s390-storage_attributes", 0, 0).unwrap();
        let err = read(&mut s, &[STATTR_FLAG_ERROR.to_be_bytes().to_vec()]).unwrap_err();
        assert!(err.to_string().contains("incomplete"));
    }

    #[test]
    fn dirty_bitmaps_keep_start_bits_and_completion() {
        let mut setup = vec![(DBM_FLAG_START | DBM_FLAG_DEVICE_NAME | DBM_FLAG_BITMAP_NAME) as u8];
        setup.extend_from_slice(b"\x05drive\x02b0");
        setup.extend_from_slice(&65536u32.to_be_bytes());
        setup.push(0x03); // enabled, persistent
        setup.push(DBM_FLAG_EOS as u8);
        let mut complete = vec![DBM_FLAG_BITS as u8];
        complete.extend_from_slice(&0u64.to_be_bytes());
        complete.extend_from_slice(&2048u32.to_be_bytes());
        complete.extend_from_slice(&32u64.to_be_bytes());
        complete.extend_from_slice(&[0x81; 32]);
        complete.push((DBM_FLAG_BITS | DBM_FLAG_ZEROES) as u8);
        complete.extend_from_slice(&2048u64.to_be_bytes());
        complete.extend_from_slice(&2048u32.to_be_bytes());
        complete.push(DBM_FLAG_COMPLETE as u8);
        complete.push(DBM_FLAG_EOS as u8);
        let mut s = Section::new("dirty-bitmap", 1, 0).unwrap();
        read(&mut s, &[setup, complete]).unwrap();
        let body = s.finish("dirty-bitmap");
        let names: Vec<&str> = body.fields.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "drive/b0.granularity",
                "drive/b0.flags",
                "drive/b0.complete",
                "drive/b0.bits_0x0000000000+0x800",
                "drive/b0.bits_0x0000000800+0x800"
            ]
        );
        assert_eq!(body.fields[3].value, Value::Bytes(vec![0x81; 32]));
        assert_eq!(body.fields[4].value, Value::Text("all clear".into()));
        assert_eq!(body.fields[2].value, Value::Bool(true));
    }
}
