//! The iterative "ram" section (`migration/ram.c`): the MEM_SIZE block list, then ZERO,
//! PAGE and XBZRLE records across any number of START/PART/END chunks, each ended by EOS.
//!
//! Guest RAM is never kept: each page becomes an xxh3-64 digest (8 bytes), and zero pages
//! get the digest of a zero page, so a ZERO record and an all-zero PAGE compare equal.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use twox_hash::XxHash3_64;

use crate::error::{ErrorKind, ParseError};
use crate::reader::Reader;
use crate::tree::{RamBlock, NOT_SENT, OPAQUE};

// RAM_SAVE_FLAG_* from migration/ram.h.
const FLAG_ZERO: u64 = 0x002;
const FLAG_MEM_SIZE: u64 = 0x004;
const FLAG_PAGE: u64 = 0x008;
const FLAG_EOS: u64 = 0x010;
const FLAG_CONTINUE: u64 = 0x020;
const FLAG_XBZRLE: u64 = 0x040;
const FLAG_HOOK: u64 = 0x080;
const FLAG_COMPRESS_PAGE: u64 = 0x100;
const FLAG_MULTIFD_FLUSH: u64 = 0x200;

/// What changes the RAM wire format, from the configuration section.
#[derive(Debug, Clone, Copy, Default)]
pub struct RamOptions {
    pub page_size: u64,
    /// `x-ignore-shared`: each block header carries its guest-physical address.
    pub ignore_shared: bool,
    /// `mapped-ram`: pages live at file offsets instead of in records.
    pub mapped_ram: bool,
}

struct BlockState {
    name: String,
    used_length: u64,
    addr: Option<u64>,
    /// Digest per page index, grown as pages arrive (never sized from the file up front).
    digests: Vec<u64>,
    zero: u64,
    data: u64,
    opaque: u64,
}

/// Where one page record's contents sit in the stream: `header` is the record's 8-byte
/// header, `payload..end` what follows the block name (the page, or its XBZRLE or
/// compressed form); `block` indexes the dump's RAM blocks. What [`crate::strip`] rewrites
/// as a zero page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRecord {
    pub header: u64,
    pub payload: u64,
    pub end: u64,
    pub block: usize,
}

/// Accumulates the RAM section across its chunks.
pub struct RamParser {
    opts: RamOptions,
    /// Page records with contents, kept only when asked for (rewriting a stream).
    page_records: Option<Vec<PageRecord>>,
    blocks: Vec<BlockState>,
    /// Index into `blocks` of the block the last record named (for CONTINUE).
    current: Option<usize>,
    /// Pages that may still be filled in as "never sent" to close gaps; bounded by the input
    /// size so a hostile page offset cannot make us allocate more than the file justifies.
    gap_budget: u64,
    zero_digest: u64,
}

impl RamParser {
    pub fn new(opts: RamOptions, input_len: u64) -> Result<Self, ParseError> {
        if opts.mapped_ram {
            return Err(ParseError::new(
                0,
                ErrorKind::Unsupported(
                    "mapped-ram RAM layout (file: migration with mapped-ram=on)".into(),
                ),
            ));
        }
        let page = usize::try_from(opts.page_size).unwrap_or(0);
        if !(512..=1 << 24).contains(&page) || !page.is_power_of_two() {
            return Err(ParseError::new(
                0,
                ErrorKind::Invalid(format!(
                    "page size {} is not a power of two in 512..16M",
                    opts.page_size
                )),
            ));
        }
        Ok(RamParser {
            opts,
            page_records: None,
            blocks: Vec::new(),
            current: None,
            gap_budget: input_len,
            zero_digest: digest(&vec![0u8; page]),
        })
    }

    /// Keeps where each page record with contents sits, for [`RamParser::page_records`].
    pub fn record_pages(&mut self) {
        self.page_records.get_or_insert_with(Vec::new);
    }

    /// The page records kept since [`RamParser::record_pages`], in stream order.
    pub fn page_records(&mut self) -> Vec<PageRecord> {
        self.page_records.take().unwrap_or_default()
    }

    fn note_page(&mut self, block: usize, header: u64, payload: u64, end: u64) {
        if let Some(records) = self.page_records.as_mut() {
            records.push(PageRecord {
                header,
                payload,
                end,
                block,
            });
        }
    }

    /// Reads one chunk's records, up to and including its EOS. `tick(offset)` is called
    /// every few thousand records (one chunk may hold all of guest RAM).
    pub fn read_chunk(
        &mut self,
        r: &mut Reader<'_>,
        tick: &mut dyn FnMut(u64),
    ) -> Result<(), ParseError> {
        let mask = self.opts.page_size - 1;
        let mut records: u64 = 0;
        loop {
            let at = r.offset();
            if records % 4096 == 0 {
                tick(at);
            }
            records += 1;
            let header = r.be64("RAM record header")?;
            let flags = header & mask;
            let addr = header & !mask;
            match flags & !FLAG_CONTINUE {
                FLAG_EOS => return Ok(()),
                FLAG_MEM_SIZE => self.read_block_list(r, addr)?,
                FLAG_ZERO => {
                    let block = self.block_for(r, flags, at)?;
                    let fill_at = r.offset();
                    let fill = r.u8("zero page fill byte")?;
                    if fill != 0 {
                        return Err(ParseError::new(
                            fill_at,
                            ErrorKind::Invalid(format!(
                                "zero page with fill byte {fill:#04x} (QEMU >= 8.2 refuses it)"
                            )),
                        ));
                    }
                    self.store(block, addr, self.zero_digest, at)?;
                }
                FLAG_PAGE => {
                    let block = self.block_for(r, flags, at)?;
                    let payload = r.offset();
                    let page = r.bytes(self.opts.page_size, "RAM page")?;
                    self.note_page(block, at, payload, r.offset());
                    self.store(block, addr, digest(page), at)?;
                }
                FLAG_XBZRLE => {
                    let block = self.block_for(r, flags, at)?;
                    let payload = r.offset();
                    r.u8("XBZRLE encoding flag")?;
                    let len = r.be16("XBZRLE length")?;
                    r.bytes(u64::from(len), "XBZRLE data")?;
                    self.note_page(block, at, payload, r.offset());
                    // A delta against the previous page content, which we do not keep.
                    self.store(block, addr, OPAQUE, at)?;
                }
                FLAG_COMPRESS_PAGE => {
                    let block = self.block_for(r, flags, at)?;
                    let payload = r.offset();
                    let len = r.be32("compressed page length")?;
                    r.bytes(u64::from(len), "compressed page")?;
                    self.note_page(block, at, payload, r.offset());
                    self.store(block, addr, OPAQUE, at)?;
                }
                FLAG_MULTIFD_FLUSH => {}
                FLAG_HOOK => {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::Unsupported("RAM_SAVE_FLAG_HOOK (RDMA) record".into()),
                    ))
                }
                _ => {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::Invalid(format!("unknown RAM record flags {flags:#x}")),
                    ))
                }
            }
        }
    }

    /// MEM_SIZE: blocks until their lengths add up to the total carried in the header.
    fn read_block_list(&mut self, r: &mut Reader<'_>, total: u64) -> Result<(), ParseError> {
        let mut sum: u64 = 0;
        while sum < total {
            let at = r.offset();
            let name = r.counted_str("RAM block name")?;
            let used_length = r.be64("RAM block length")?;
            let addr = if self.opts.ignore_shared {
                Some(r.be64("RAM block address")?)
            } else {
                None
            };
            sum = sum
                .checked_add(used_length)
                .filter(|&s| s <= total)
                .ok_or_else(|| {
                    ParseError::new(
                        at,
                        ErrorKind::Invalid(format!(
                        "RAM block '{name}' of {used_length:#x} bytes overruns the total {total:#x}"
                    )),
                    )
                })?;
            self.blocks.push(BlockState {
                name,
                used_length,
                addr,
                digests: Vec::new(),
                zero: 0,
                data: 0,
                opaque: 0,
            });
        }
        Ok(())
    }

    /// The block a page record is for: named in the record, or the previous one (CONTINUE).
    fn block_for(&mut self, r: &mut Reader<'_>, flags: u64, at: u64) -> Result<usize, ParseError> {
        if flags & FLAG_CONTINUE == 0 {
            let name_at = r.offset();
            let name = r.counted_str("RAM block name")?;
            let index = self
                .blocks
                .iter()
                .position(|b| b.name == name)
                .ok_or_else(|| {
                    ParseError::new(
                        name_at,
                        ErrorKind::Invalid(format!("page for unknown RAM block '{name}'")),
                    )
                })?;
            self.current = Some(index);
        }
        self.current.ok_or_else(|| {
            ParseError::new(
                at,
                ErrorKind::Invalid("CONTINUE page record before any block was named".into()),
            )
        })
    }

    fn store(&mut self, block: usize, addr: u64, digest: u64, at: u64) -> Result<(), ParseError> {
        let page_size = self.opts.page_size;
        let Some(b) = self.blocks.get_mut(block) else {
            return Err(ParseError::new(
                at,
                ErrorKind::Invalid("page for a missing block".into()),
            ));
        };
        let index = addr / page_size;
        if addr >= b.used_length {
            return Err(ParseError::new(
                at,
                ErrorKind::Invalid(format!(
                    "page offset {addr:#x} is beyond RAM block '{}' of {:#x} bytes",
                    b.name, b.used_length
                )),
            ));
        }
        let index = usize::try_from(index).map_err(|_| {
            ParseError::new(
                at,
                ErrorKind::Invalid(format!("page index {index} does not fit in memory")),
            )
        })?;
        if index >= b.digests.len() {
            let gap = (index - b.digests.len()) as u64;
            self.gap_budget = self.gap_budget.checked_sub(gap).ok_or_else(|| {
                ParseError::new(
                    at,
                    ErrorKind::Invalid(format!(
                        "page offset {addr:#x} leaves a gap larger than the input justifies"
                    )),
                )
            })?;
            b.digests.resize(index + 1, NOT_SENT);
        }
        if let Some(slot) = b.digests.get_mut(index) {
            // A page sent again (a dirty page in a later pass) replaces the earlier copy.
            match *slot {
                NOT_SENT => {}
                OPAQUE => b.opaque -= 1,
                d if d == self.zero_digest => b.zero -= 1,
                _ => b.data -= 1,
            }
            *slot = digest;
        }
        match digest {
            OPAQUE => b.opaque += 1,
            d if d == self.zero_digest => b.zero += 1,
            _ => b.data += 1,
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<RamBlock> {
        self.blocks
            .into_iter()
            .map(|mut b| RamBlock {
                digests: {
                    // Pages never sent at the end carry no information.
                    while b.digests.last() == Some(&NOT_SENT) {
                        b.digests.pop();
                    }
                    b.digests
                },
                name: b.name,
                used_length: b.used_length,
                addr: b.addr,
                zero_pages: b.zero,
                data_pages: b.data,
                opaque_pages: b.opaque,
            })
            .collect()
    }
}

/// Page digest; 0 and 1 are reserved for "never sent" and "opaque".
///
/// XXH3_64bits with seed 0 and the default secret (what `xxhsum -H3` prints), so digests in
/// exports stay comparable across builds; twox-hash picks AVX2, SSE2 or NEON at run time.
fn digest(page: &[u8]) -> u64 {
    XxHash3_64::oneshot(page).max(OPAQUE + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests are stored in exports, so they must never change: each of these is what
    /// `xxhsum -H3` (xxHash 0.8.1, the reference C implementation) prints for the page, and
    /// what xxhash-rust's `xxh3_64` (the page digest before twox-hash) returned.
    #[test]
    fn digest_is_xxh3_64_seed_0() {
        let mod251 = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
        let text = b"migdiff page ".repeat(400);
        let cases: [(&str, Vec<u8>, u64); 6] = [
            ("zero 4 KiB", vec![0; 4096], 0x93d7_6fe1_48c6_89ba),
            ("0xff 4 KiB", vec![0xff; 4096], 0x074c_fac2_7385_1dd6),
            ("i % 251, 4 KiB", mod251(4096), 0x7135_ffa5_04f1_bc71),
            ("text 4 KiB", text[..4096].to_vec(), 0x1ea5_2cfd_6f1d_365d),
            (
                "(7i + 3) % 256, 64 KiB",
                (0..65536).map(|i| (i * 7 + 3) as u8).collect(),
                0x5d03_b43b_14c7_5500,
            ),
            // 241 bytes: the first length past XXH3's short-input paths.
            ("i % 251, 241 bytes", mod251(241), 0x02e8_cd95_421c_6d02),
        ];
        for (what, page, want) in cases {
            assert_eq!(digest(&page), want, "{what}");
        }
    }

    /// The same as xxhash-rust's scalar/SSE2 `xxh3_64` (kept as a dev-dependency for this) on
    /// pseudo-random pages of every size QEMU uses and on odd lengths and alignments, so the
    /// runtime-dispatched (AVX2 here) path of twox-hash is compared with an independent one.
    #[test]
    fn digest_matches_xxhash_rust_on_random_pages() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let buf: Vec<u8> = (0..(1 << 20) + 64).map(|_| next() as u8).collect();
        let mut lens: Vec<usize> = (0..=1100).collect();
        lens.extend([4095, 4096, 4097, 8192, 16384, 65536, 1 << 20]);
        for _ in 0..2000 {
            lens.push(4096);
            lens.push(next() as usize % (1 << 20));
        }
        for len in lens {
            let off = next() as usize % (buf.len() - len + 1);
            let page = &buf[off..off + len];
            let want = xxhash_rust::xxh3::xxh3_64(page).max(OPAQUE + 1);
            assert_eq!(digest(page), want, "{len} bytes at {off}");
        }
    }

    fn opts() -> RamOptions {
        RamOptions {
            page_size: 4096,
            ..RamOptions::default()
        }
    }

    fn block_list(blocks: &[(&str, u64)]) -> Vec<u8> {
        let total: u64 = blocks.iter().map(|b| b.1).sum();
        let mut out = (total | FLAG_MEM_SIZE).to_be_bytes().to_vec();
        for (name, len) in blocks {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(&FLAG_EOS.to_be_bytes());
        out
    }

    #[test]
    fn zero_and_data_pages_with_continue_across_chunks() {
        let mut p = RamParser::new(opts(), 1 << 20).unwrap();
        let data = block_list(&[("pc.ram", 4 * 4096), ("pc.rom", 4096)]);
        p.read_chunk(&mut Reader::new(&data), &mut |_| {}).unwrap();
        let mut chunk = FLAG_ZERO.to_be_bytes().to_vec();
        chunk.extend_from_slice(b"\x06pc.ram\x00");
        chunk.extend_from_slice(&(4096 | FLAG_ZERO | FLAG_CONTINUE).to_be_bytes());
        chunk.push(0);
        chunk.extend_from_slice(&FLAG_EOS.to_be_bytes());
        p.read_chunk(&mut Reader::new(&chunk), &mut |_| {}).unwrap();
        // Next chunk continues the same block: page 3 with data.
        let mut chunk = ((3 * 4096) | FLAG_PAGE | FLAG_CONTINUE)
            .to_be_bytes()
            .to_vec();
        chunk.extend_from_slice(&[0xaa; 4096]);
        chunk.extend_from_slice(&FLAG_EOS.to_be_bytes());
        p.read_chunk(&mut Reader::new(&chunk), &mut |_| {}).unwrap();
        let blocks = p.finish();
        assert_eq!(blocks[0].zero_pages, 2);
        assert_eq!(blocks[0].data_pages, 1);
        let b = &blocks[0];
        assert_eq!(b.digests.len(), 4);
        assert_eq!(b.digest(2), NOT_SENT);
        assert_eq!(b.digest(0), b.digest(1));
        assert_ne!(b.digest(3), b.digest(0));
        assert_eq!(b.digest(99), NOT_SENT);
    }

    #[test]
    fn page_beyond_block_and_overrunning_list_are_errors() {
        let mut p = RamParser::new(opts(), 1 << 20).unwrap();
        p.read_chunk(&mut Reader::new(&block_list(&[("a", 4096)])), &mut |_| {})
            .unwrap();
        let mut chunk = (4096 | FLAG_ZERO).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"\x01a\x00");
        let err = p
            .read_chunk(&mut Reader::new(&chunk), &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("beyond RAM block 'a'"));

        // The total says one page, the block claims two.
        let mut list = (4096 | FLAG_MEM_SIZE).to_be_bytes().to_vec();
        list.extend_from_slice(b"\x01a");
        list.extend_from_slice(&8192u64.to_be_bytes());
        let mut p = RamParser::new(opts(), 1 << 20).unwrap();
        assert!(p.read_chunk(&mut Reader::new(&list), &mut |_| {}).is_err());
    }

    #[test]
    fn hostile_gap_is_refused_before_allocating() {
        let mut p = RamParser::new(opts(), 100).unwrap();
        p.read_chunk(
            &mut Reader::new(&block_list(&[("a", 1 << 50)])),
            &mut |_| {},
        )
        .unwrap();
        let mut chunk = ((1u64 << 49) | FLAG_ZERO).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"\x01a\x00");
        let err = p
            .read_chunk(&mut Reader::new(&chunk), &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("gap larger"));
    }
}
