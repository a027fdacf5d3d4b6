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

use std::collections::{HashMap, VecDeque};

use twox_hash::XxHash3_64;

use crate::error::{ErrorKind, ParseError};
use crate::reader::Reader;
use crate::tree::{RamBlock, Warning, NOT_SENT, UNKNOWN};

// RAM_SAVE_FLAG_* from migration/ram.h.
pub(crate) const FLAG_ZERO: u64 = 0x002;
const FLAG_MEM_SIZE: u64 = 0x004;
const FLAG_PAGE: u64 = 0x008;
const FLAG_EOS: u64 = 0x010;
pub(crate) const FLAG_CONTINUE: u64 = 0x020;
const FLAG_XBZRLE: u64 = 0x040;
const FLAG_HOOK: u64 = 0x080;
const FLAG_COMPRESS_PAGE: u64 = 0x100;
const FLAG_MULTIFD_FLUSH: u64 = 0x200;

/// `ENCODING_FLAG_XBZRLE` (migration/ram.c): the only encoding byte an XBZRLE record has.
const ENCODING_FLAG_XBZRLE: u8 = 0x01;

/// `MAPPED_RAM_HDR_VERSION` (migration/ram.c): the newest mapped-ram block header.
const MAPPED_RAM_HDR_VERSION: u32 = 1;

/// Bytes of reconstructed XBZRLE pages kept to decode the next delta of the same page. QEMU's
/// own XBZRLE cache (64 MiB by default) bounds the pages that get deltas at one time, so a
/// stream rarely needs more; a page that fell out is rebuilt from the stream.
const XBZRLE_CACHE_BYTES: usize = 128 << 20;

/// Deltas that may be re-applied to rebuild pages that fell out of the cache: a base, and
/// more for each XBZRLE record. What a hostile stream of long delta chains may cost before
/// its pages become unknown.
const XBZRLE_REPLAY_BASE: u64 = 1 << 20;
const XBZRLE_REPLAY_PER_RECORD: u64 = 8;

/// What changes the RAM wire format, from the configuration section.
#[derive(Debug, Clone, Copy, Default)]
pub struct RamOptions {
    pub page_size: u64,
    /// `x-ignore-shared`: each block header carries its guest-physical address.
    pub ignore_shared: bool,
    /// `mapped-ram`: pages live at fixed file offsets instead of in records.
    pub mapped_ram: bool,
}

/// Where the latest version of a page is, for XBZRLE: [`LOC_NONE`] (never sent, or not
/// reconstructible), [`LOC_ZERO`], the stream offset of a PAGE record's bytes, or
/// [`LOC_VERSION`] | an index into [`Xbzrle::versions`].
const LOC_NONE: u64 = 0;
const LOC_ZERO: u64 = 1;
const LOC_VERSION: u64 = 1 << 63;

struct BlockState {
    name: String,
    used_length: u64,
    addr: Option<u64>,
    /// Digest per page index, grown as pages arrive (never sized from the file up front).
    digests: Vec<u64>,
    /// Latest version of each page (`LOC_*`), kept only once the stream has XBZRLE records.
    locations: Vec<u64>,
    zero: u64,
    data: u64,
    unknown: u64,
    /// Why the first unknown page of this block is unknown.
    unknown_why: Option<(u64, String)>,
}

/// A page rebuilt from an XBZRLE record: the delta (the offset of its encoding byte) over
/// the version at `base` (a `LOC_*`).
#[derive(Clone, Copy)]
struct Version {
    base: u64,
    at: u64,
}

/// XBZRLE state: every delta version, and the newest ones' bytes.
#[derive(Default)]
struct Xbzrle {
    versions: Vec<Version>,
    cache: HashMap<u64, Box<[u8]>>,
    order: VecDeque<u64>,
    cached_bytes: usize,
    cache_limit: usize,
    /// Deltas that may still be re-applied to rebuild evicted pages.
    replay_budget: u64,
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

/// Accumulates the RAM section across its chunks. `data` is the whole stream: XBZRLE bases
/// and mapped-ram pages are read from it by offset.
pub struct RamParser<'a> {
    opts: RamOptions,
    data: &'a [u8],
    /// Page records with contents, kept only when asked for (rewriting a stream).
    page_records: Option<Vec<PageRecord>>,
    blocks: Vec<BlockState>,
    /// Index into `blocks` of the block the last record named (for CONTINUE).
    current: Option<usize>,
    /// Pages that may still be filled in as "never sent" to close gaps; bounded by the input
    /// size so a hostile page offset cannot make us allocate more than the file justifies.
    gap_budget: u64,
    zero_digest: u64,
    /// Where each chunk's records start, to find the bases of the first XBZRLE record.
    chunk_starts: Vec<u64>,
    /// Present once the stream has had an XBZRLE record.
    xbzrle: Option<Xbzrle>,
    /// [`XBZRLE_CACHE_BYTES`], smaller in tests.
    xbzrle_cache_bytes: usize,
    warnings: Vec<Warning>,
}

/// One RAM record, as read.
enum Record<'a> {
    Eos,
    BlockList(u64),
    Zero {
        block: usize,
        addr: u64,
    },
    Page {
        block: usize,
        addr: u64,
        at: u64,
    },
    Xbzrle {
        block: usize,
        addr: u64,
        at: u64,
        flag: u8,
        delta: &'a [u8],
    },
    Compressed {
        block: usize,
        addr: u64,
        at: u64,
    },
    MultifdFlush,
}

impl Record<'_> {
    /// The block and where the page's contents start, for records that carry some.
    fn contents(&self) -> Option<(usize, u64)> {
        match *self {
            Record::Page { block, at, .. }
            | Record::Xbzrle { block, at, .. }
            | Record::Compressed { block, at, .. } => Some((block, at)),
            _ => None,
        }
    }
}

impl<'a> RamParser<'a> {
    pub fn new(opts: RamOptions, data: &'a [u8]) -> Result<Self, ParseError> {
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
            data,
            page_records: None,
            blocks: Vec::new(),
            current: None,
            gap_budget: data.len() as u64,
            zero_digest: digest(&vec![0u8; page]),
            chunk_starts: Vec::new(),
            xbzrle: None,
            xbzrle_cache_bytes: XBZRLE_CACHE_BYTES,
            warnings: Vec::new(),
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

    /// Reads one record header and what it carries (page bytes are only located).
    fn record(
        &self,
        r: &mut Reader<'a>,
        current: &mut Option<usize>,
    ) -> Result<Record<'a>, ParseError> {
        let at = r.offset();
        let mask = self.opts.page_size - 1;
        let header = r.be64("RAM record header")?;
        let flags = header & mask;
        let addr = header & !mask;
        Ok(match flags & !FLAG_CONTINUE {
            FLAG_EOS => Record::Eos,
            FLAG_MEM_SIZE => Record::BlockList(addr),
            FLAG_ZERO => {
                let block = self.block_for(r, flags, at, current)?;
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
                Record::Zero { block, addr }
            }
            FLAG_PAGE => {
                let block = self.block_for(r, flags, at, current)?;
                let at = r.offset();
                r.bytes(self.opts.page_size, "RAM page")?;
                Record::Page { block, addr, at }
            }
            FLAG_XBZRLE => {
                let block = self.block_for(r, flags, at, current)?;
                let at = r.offset();
                let flag = r.u8("XBZRLE encoding flag")?;
                let len = r.be16("XBZRLE length")?;
                let delta = r.bytes(u64::from(len), "XBZRLE data")?;
                Record::Xbzrle {
                    block,
                    addr,
                    at,
                    flag,
                    delta,
                }
            }
            FLAG_COMPRESS_PAGE => {
                let block = self.block_for(r, flags, at, current)?;
                let at = r.offset();
                let len = r.be32("compressed page length")?;
                r.bytes(u64::from(len), "compressed page")?;
                Record::Compressed { block, addr, at }
            }
            FLAG_MULTIFD_FLUSH => Record::MultifdFlush,
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
        })
    }

    /// Reads one chunk's records, up to and including its EOS. `r` reads the stream this
    /// parser was made with. `tick(offset)` is called every few thousand records (one chunk
    /// may hold all of guest RAM).
    pub fn read_chunk(
        &mut self,
        r: &mut Reader<'a>,
        tick: &mut dyn FnMut(u64),
    ) -> Result<(), ParseError> {
        self.chunk_starts.push(r.offset());
        let mut records: u64 = 0;
        loop {
            let at = r.offset();
            if records % 4096 == 0 {
                tick(at);
            }
            records += 1;
            let mut current = self.current;
            let record = self.record(r, &mut current)?;
            self.current = current;
            if let (Some(records), Some((block, payload))) =
                (self.page_records.as_mut(), record.contents())
            {
                records.push(PageRecord {
                    header: at,
                    payload,
                    end: r.offset(),
                    block,
                });
            }
            match record {
                Record::Eos => return Ok(()),
                Record::BlockList(total) => self.read_block_list(r, total, tick)?,
                Record::MultifdFlush => {}
                Record::Zero { block, addr } => {
                    self.store(block, addr, self.zero_digest, LOC_ZERO, at)?
                }
                Record::Page {
                    block,
                    addr,
                    at: bytes_at,
                } => {
                    let page = self.page_at(bytes_at).unwrap_or_default();
                    self.store(block, addr, digest(page), bytes_at, at)?;
                }
                Record::Compressed { block, addr, .. } => {
                    self.store(block, addr, UNKNOWN, LOC_NONE, at)?;
                    self.note_unknown(block, at, "a compressed page (compress capability)");
                }
                Record::Xbzrle {
                    block,
                    addr,
                    at: delta_at,
                    flag,
                    delta,
                } => self.read_xbzrle(block, addr, at, delta_at, flag, delta)?,
            }
        }
    }

    /// An XBZRLE record: the delta applied over the page's previous version in the stream.
    fn read_xbzrle(
        &mut self,
        block: usize,
        addr: u64,
        at: u64,
        delta_at: u64,
        flag: u8,
        delta: &[u8],
    ) -> Result<(), ParseError> {
        if self.xbzrle.is_none() {
            self.start_xbzrle(at)?;
        }
        if let Some(x) = self.xbzrle.as_mut() {
            x.replay_budget = x.replay_budget.saturating_add(XBZRLE_REPLAY_PER_RECORD);
        }
        let index = self.page_index(block, addr, at)?;
        let base = self
            .blocks
            .get(block)
            .and_then(|b| b.locations.get(index))
            .copied()
            .unwrap_or(LOC_NONE);
        let page = usize::try_from(self.opts.page_size).unwrap_or(0);
        let built = if flag != ENCODING_FLAG_XBZRLE {
            Err(format!(
                "an XBZRLE record with encoding {flag:#04x} (QEMU knows only 0x01)"
            ))
        } else if delta.len() > page {
            Err(format!(
                "an XBZRLE delta of {} bytes, longer than a page",
                delta.len()
            ))
        } else {
            match self.resolve(base) {
                None if base == LOC_NONE => {
                    Err("an XBZRLE delta whose page was not sent before it".to_string())
                }
                None => Err(
                    "an XBZRLE delta whose base could not be rebuilt within the replay budget"
                        .to_string(),
                ),
                Some(mut content) => match xbzrle_decode(delta, &mut content) {
                    Ok(()) => Ok(content),
                    Err(why) => Err(format!("a malformed XBZRLE delta ({why})")),
                },
            }
        };
        match built {
            Ok(content) => {
                let d = digest(&content);
                let loc = match self.xbzrle.as_mut() {
                    Some(x) => {
                        let v = x.versions.len() as u64;
                        x.versions.push(Version { base, at: delta_at });
                        x.remember(v, content.into_boxed_slice());
                        LOC_VERSION | v
                    }
                    None => LOC_NONE,
                };
                self.store(block, addr, d, loc, at)
            }
            Err(why) => {
                self.store(block, addr, UNKNOWN, LOC_NONE, at)?;
                self.note_unknown(block, at, &why);
                Ok(())
            }
        }
    }

    /// The first XBZRLE record: from now on every page's latest version is kept, and the
    /// records before this one are read again for theirs.
    fn start_xbzrle(&mut self, stop: u64) -> Result<(), ParseError> {
        self.xbzrle = Some(Xbzrle {
            replay_budget: XBZRLE_REPLAY_BASE,
            cache_limit: self.xbzrle_cache_bytes,
            ..Xbzrle::default()
        });
        for b in &mut self.blocks {
            b.locations = vec![LOC_NONE; b.digests.len()];
        }
        let data = self.data;
        let mut current = None;
        for &start in &self.chunk_starts.clone() {
            let mut r = Reader::new(data);
            r.bytes(start, "RAM chunk")?;
            while r.offset() < stop {
                let record = self.record(&mut r, &mut current)?;
                let (block, addr, loc) = match record {
                    Record::Eos => break,
                    Record::BlockList(total) => {
                        self.skip_block_list(&mut r, total)?;
                        continue;
                    }
                    Record::Zero { block, addr } => (block, addr, LOC_ZERO),
                    Record::Page { block, addr, at } => (block, addr, at),
                    Record::Compressed { block, addr, .. } | Record::Xbzrle { block, addr, .. } => {
                        (block, addr, LOC_NONE)
                    }
                    Record::MultifdFlush => continue,
                };
                let index = usize::try_from(addr / self.opts.page_size).unwrap_or(usize::MAX);
                if let Some(slot) = self
                    .blocks
                    .get_mut(block)
                    .and_then(|b| b.locations.get_mut(index))
                {
                    *slot = loc;
                }
            }
        }
        Ok(())
    }

    /// The bytes of the version at `loc`, rebuilt from the stream where needed.
    fn resolve(&mut self, loc: u64) -> Option<Vec<u8>> {
        let page = usize::try_from(self.opts.page_size).ok()?;
        // Follow the deltas back to a page in the stream, a zero page or a cached version.
        let mut chain = Vec::new();
        let mut at = loc;
        let mut content = loop {
            match at {
                LOC_NONE => return None,
                LOC_ZERO => break vec![0u8; page],
                v if v & LOC_VERSION != 0 => {
                    let x = self.xbzrle.as_ref()?;
                    if let Some(bytes) = x.cache.get(&(v & !LOC_VERSION)) {
                        break bytes.to_vec();
                    }
                    let version = *x.versions.get(usize::try_from(v & !LOC_VERSION).ok()?)?;
                    chain.push(version.at);
                    at = version.base;
                }
                offset => break self.page_at(offset)?.to_vec(),
            }
        };
        let x = self.xbzrle.as_mut()?;
        x.replay_budget = x.replay_budget.checked_sub(chain.len() as u64)?;
        for delta_at in chain.into_iter().rev() {
            let mut r = Reader::new(self.data);
            r.bytes(delta_at, "XBZRLE record").ok()?;
            r.u8("XBZRLE encoding flag").ok()?;
            let len = r.be16("XBZRLE length").ok()?;
            let delta = r.bytes(u64::from(len), "XBZRLE data").ok()?;
            xbzrle_decode(delta, &mut content).ok()?;
        }
        if loc & LOC_VERSION != 0 {
            if let Some(x) = self.xbzrle.as_mut() {
                x.remember(loc & !LOC_VERSION, content.clone().into_boxed_slice());
            }
        }
        Some(content)
    }

    fn page_at(&self, offset: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let len = usize::try_from(self.opts.page_size).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    fn note_unknown(&mut self, block: usize, at: u64, why: &str) {
        if let Some(b) = self.blocks.get_mut(block) {
            if b.unknown_why.is_none() {
                b.unknown_why = Some((at, why.to_string()));
            }
        }
    }

    /// MEM_SIZE: blocks until their lengths add up to the total carried in the header.
    fn read_block_list(
        &mut self,
        r: &mut Reader<'a>,
        total: u64,
        tick: &mut dyn FnMut(u64),
    ) -> Result<(), ParseError> {
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
                locations: Vec::new(),
                zero: 0,
                data: 0,
                unknown: 0,
                unknown_why: None,
            });
            if self.opts.mapped_ram {
                self.read_mapped_ram(r, tick)?;
            }
        }
        Ok(())
    }

    /// The block list read again (for the XBZRLE bases): only its length matters.
    fn skip_block_list(&self, r: &mut Reader<'a>, total: u64) -> Result<(), ParseError> {
        let mut sum: u64 = 0;
        while sum < total {
            r.counted_str("RAM block name")?;
            sum = sum.saturating_add(r.be64("RAM block length")?);
            if self.opts.ignore_shared {
                r.be64("RAM block address")?;
            }
            if self.opts.mapped_ram {
                return Ok(()); // mapped-ram streams have no XBZRLE records
            }
        }
        Ok(())
    }

    /// mapped-ram (migration/ram.c, `mapped_ram_setup_ramblock`): after the block's name
    /// and length, `be32 version, be64 page_size, be64 bitmap_offset, be64 pages_offset`;
    /// page `i` is at `pages_offset + i * page_size` when bit `i` of the bitmap (host
    /// `unsigned long`s, little-endian on every host QEMU writes these files on but s390x)
    /// is set, and zero when it is clear. The stream goes on at `pages_offset + length`.
    fn read_mapped_ram(
        &mut self,
        r: &mut Reader<'a>,
        tick: &mut dyn FnMut(u64),
    ) -> Result<(), ParseError> {
        let at = r.offset();
        let version = r.be32("mapped-ram header version")?;
        let page_size = r.be64("mapped-ram page size")?;
        let bitmap_offset = r.be64("mapped-ram bitmap offset")?;
        let pages_offset = r.be64("mapped-ram pages offset")?;
        let invalid = |msg: String| ParseError::new(at, ErrorKind::Invalid(msg));
        if version == 0 || version > MAPPED_RAM_HDR_VERSION {
            return Err(ParseError::new(
                at,
                ErrorKind::Unsupported(format!(
                    "mapped-ram header version {version} (migdiff reads version {MAPPED_RAM_HDR_VERSION})"
                )),
            ));
        }
        if page_size != self.opts.page_size {
            return Err(invalid(format!(
                "mapped-ram page size {page_size:#x} is not the stream's {:#x}",
                self.opts.page_size
            )));
        }
        let Some(index) = self.blocks.len().checked_sub(1) else {
            return Err(invalid("mapped-ram header without a block".into()));
        };
        let used_length = self.blocks.get(index).map_or(0, |b| b.used_length);
        if self.opts.ignore_shared && bitmap_offset == 0 && pages_offset == 0 {
            return Ok(()); // a shared block: nothing of it is in the file
        }
        let pages = used_length / page_size;
        let bitmap_len = pages.div_ceil(64) * 8;
        let end = pages_offset.checked_add(used_length);
        let bitmap = usize::try_from(bitmap_offset).ok().and_then(|start| {
            let len = usize::try_from(bitmap_len).ok()?;
            self.data.get(start..start.checked_add(len)?)
        });
        let within = |e: &u64| *e >= r.offset() && *e <= self.data.len() as u64;
        let (Some(end), Some(bitmap)) = (end.filter(within), bitmap) else {
            return Err(invalid(format!(
                "mapped-ram block at {pages_offset:#x} (bitmap at {bitmap_offset:#x}) is not within the file of {:#x} bytes",
                self.data.len()
            )));
        };
        for i in 0..pages {
            if i % 4096 == 0 {
                tick(pages_offset + i * page_size);
            }
            let byte = bitmap.get((i / 8) as usize).copied().unwrap_or(0);
            let (digest, loc) = if byte >> (i % 8) & 1 == 1 {
                let offset = pages_offset + i * page_size;
                (digest(self.page_at(offset).unwrap_or_default()), offset)
            } else {
                (self.zero_digest, LOC_ZERO)
            };
            self.store(index, i * page_size, digest, loc, at)?;
        }
        r.bytes(end - r.offset(), "mapped-ram pages")?;
        Ok(())
    }

    /// The block a page record is for: named in the record, or the previous one (CONTINUE).
    fn block_for(
        &self,
        r: &mut Reader<'_>,
        flags: u64,
        at: u64,
        current: &mut Option<usize>,
    ) -> Result<usize, ParseError> {
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
            *current = Some(index);
        }
        current.ok_or_else(|| {
            ParseError::new(
                at,
                ErrorKind::Invalid("CONTINUE page record before any block was named".into()),
            )
        })
    }

    /// The page index of `addr` in `block`, checked against the block's length.
    fn page_index(&self, block: usize, addr: u64, at: u64) -> Result<usize, ParseError> {
        let Some(b) = self.blocks.get(block) else {
            return Err(ParseError::new(
                at,
                ErrorKind::Invalid("page for a missing block".into()),
            ));
        };
        if addr >= b.used_length {
            return Err(ParseError::new(
                at,
                ErrorKind::Invalid(format!(
                    "page offset {addr:#x} is beyond RAM block '{}' of {:#x} bytes",
                    b.name, b.used_length
                )),
            ));
        }
        let index = addr / self.opts.page_size;
        usize::try_from(index).map_err(|_| {
            ParseError::new(
                at,
                ErrorKind::Invalid(format!("page index {index} does not fit in memory")),
            )
        })
    }

    fn store(
        &mut self,
        block: usize,
        addr: u64,
        digest: u64,
        loc: u64,
        at: u64,
    ) -> Result<(), ParseError> {
        let index = self.page_index(block, addr, at)?;
        let track = self.xbzrle.is_some();
        let Some(b) = self.blocks.get_mut(block) else {
            return Ok(());
        };
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
        if track {
            if index >= b.locations.len() {
                b.locations.resize(index + 1, LOC_NONE);
            }
            if let Some(slot) = b.locations.get_mut(index) {
                *slot = loc;
            }
        }
        if let Some(slot) = b.digests.get_mut(index) {
            // A page sent again (a dirty page in a later pass) replaces the earlier copy.
            match *slot {
                NOT_SENT => {}
                UNKNOWN => b.unknown -= 1,
                d if d == self.zero_digest => b.zero -= 1,
                _ => b.data -= 1,
            }
            *slot = digest;
        }
        match digest {
            UNKNOWN => b.unknown += 1,
            d if d == self.zero_digest => b.zero += 1,
            _ => b.data += 1,
        }
        Ok(())
    }

    /// The blocks, and a warning for each block with pages whose content is unknown.
    pub fn finish(mut self) -> (Vec<RamBlock>, Vec<Warning>) {
        let mut warnings = std::mem::take(&mut self.warnings);
        let blocks = self
            .blocks
            .into_iter()
            .map(|mut b| {
                if let (n @ 1.., Some((at, why))) = (b.unknown, b.unknown_why.take()) {
                    let pages = if n == 1 { "page" } else { "pages" };
                    warnings.push(Warning {
                        offset: at,
                        section: None,
                        message: format!(
                            "RAM block '{}': {n} {pages} of unknown content, counted neither as same nor as different (the first: {why})",
                            b.name
                        ),
                    });
                }
                // Pages never sent at the end carry no information.
                while b.digests.last() == Some(&NOT_SENT) {
                    b.digests.pop();
                }
                RamBlock {
                    digests: b.digests,
                    name: b.name,
                    used_length: b.used_length,
                    addr: b.addr,
                    zero_pages: b.zero,
                    data_pages: b.data,
                    unknown_pages: b.unknown,
                }
            })
            .collect();
        (blocks, warnings)
    }
}

impl Xbzrle {
    /// Keeps the bytes of version `v`, forgetting the oldest ones beyond the cache's size.
    fn remember(&mut self, v: u64, bytes: Box<[u8]>) {
        if self.cache.contains_key(&v) {
            return;
        }
        self.cached_bytes += bytes.len();
        self.cache.insert(v, bytes);
        self.order.push_back(v);
        while self.cached_bytes > self.cache_limit {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.cache.remove(&old) {
                self.cached_bytes -= b.len();
            }
        }
    }
}

/// `xbzrle_decode_buffer` (migration/xbzrle.c) over `page`, which holds the previous
/// version: pairs of a ULEB128 run of unchanged bytes and a ULEB128 run of new bytes
/// followed by those bytes, each length at most 14 bits; QEMU's own checks, in its order.
pub fn xbzrle_decode(src: &[u8], page: &mut [u8]) -> Result<(), String> {
    let (slen, dlen) = (src.len(), page.len());
    let (mut i, mut d) = (0usize, 0usize);
    while i < slen {
        if slen - i < 2 {
            return Err(format!("{} byte left where a zero run starts", slen - i));
        }
        let (zrun, n) = uleb128_small(src.get(i..).unwrap_or_default())
            .ok_or_else(|| format!("bad length at delta byte {i}"))?;
        if i != 0 && zrun == 0 {
            return Err(format!("empty zero run at delta byte {i}"));
        }
        i += n;
        d += zrun;
        if d > dlen {
            return Err(format!("zero run past the page end ({d} > {dlen})"));
        }
        if slen - i < 2 {
            return Err(format!("{} byte left where a data run starts", slen - i));
        }
        let (nzrun, n) = uleb128_small(src.get(i..).unwrap_or_default())
            .ok_or_else(|| format!("bad length at delta byte {i}"))?;
        if nzrun == 0 {
            return Err(format!("empty data run at delta byte {i}"));
        }
        i += n;
        if d + nzrun > dlen || i + nzrun > slen {
            return Err(format!(
                "data run of {nzrun} bytes past the page or the delta"
            ));
        }
        let (Some(to), Some(from)) = (page.get_mut(d..d + nzrun), src.get(i..i + nzrun)) else {
            return Err("data run out of bounds".into());
        };
        to.copy_from_slice(from);
        d += nzrun;
        i += nzrun;
    }
    Ok(())
}

/// `uleb128_decode_small` (util/cutils.c): one byte below 0x80, or two with the second
/// below 0x80. The length and the bytes it took.
fn uleb128_small(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.first()?;
    if first & 0x80 == 0 {
        return Some((usize::from(first), 1));
    }
    let second = *input.get(1)?;
    if second & 0x80 != 0 {
        return None;
    }
    Some((usize::from(first & 0x7f) | usize::from(second) << 7, 2))
}

/// Page digest; 0 and 1 are reserved for "never sent" and "unknown".
///
/// XXH3_64bits with seed 0 and the default secret (what `xxhsum -H3` prints), so digests in
/// exports stay comparable across builds; twox-hash picks AVX2, SSE2 or NEON at run time.
fn digest(page: &[u8]) -> u64 {
    XxHash3_64::oneshot(page).max(UNKNOWN + 1)
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
            let want = xxhash_rust::xxh3::xxh3_64(page).max(UNKNOWN + 1);
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

    /// Reads `chunks` in order from one stream, as the walker does.
    fn parse_with(
        opts: RamOptions,
        chunks: &[Vec<u8>],
        cache: usize,
    ) -> Result<(Vec<RamBlock>, Vec<Warning>), ParseError> {
        let data: Vec<u8> = chunks.concat();
        let mut p = RamParser::new(opts, &data)?;
        p.xbzrle_cache_bytes = cache;
        let mut r = Reader::new(&data);
        for _ in chunks {
            p.read_chunk(&mut r, &mut |_| {})?;
        }
        Ok(p.finish())
    }

    fn parse(chunks: &[Vec<u8>]) -> Result<(Vec<RamBlock>, Vec<Warning>), ParseError> {
        parse_with(opts(), chunks, XBZRLE_CACHE_BYTES)
    }

    fn record(flags: u64, addr: u64, block: Option<&str>, body: &[u8]) -> Vec<u8> {
        let mut out = (addr | flags | if block.is_none() { FLAG_CONTINUE } else { 0 })
            .to_be_bytes()
            .to_vec();
        if let Some(name) = block {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    fn chunk(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = records.concat();
        out.extend_from_slice(&FLAG_EOS.to_be_bytes());
        out
    }

    /// `xbzrle_encode_buffer`'s output for `old` -> `new` (runs of equal and of changed
    /// bytes, lengths below 0x4000), with the record's encoding byte and length before it.
    fn xbzrle(old: &[u8], new: &[u8]) -> Vec<u8> {
        fn uleb(out: &mut Vec<u8>, n: usize) {
            if n < 0x80 {
                out.push(n as u8);
            } else {
                out.push((n & 0x7f) as u8 | 0x80);
                out.push((n >> 7) as u8);
            }
        }
        let mut delta = Vec::new();
        let mut i = 0;
        while i < new.len() {
            let z = (i..new.len())
                .find(|&j| old[j] != new[j])
                .unwrap_or(new.len());
            if z == new.len() {
                break;
            }
            uleb(&mut delta, z - i);
            let nz = (z..new.len())
                .find(|&j| old[j] == new[j])
                .unwrap_or(new.len());
            uleb(&mut delta, nz - z);
            delta.extend_from_slice(&new[z..nz]);
            i = nz;
        }
        let mut out = vec![ENCODING_FLAG_XBZRLE];
        out.extend_from_slice(&(delta.len() as u16).to_be_bytes());
        out.extend_from_slice(&delta);
        out
    }

    fn page(seed: u8) -> Vec<u8> {
        (0..4096u32)
            .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
            .collect()
    }

    #[test]
    fn xbzrle_chains_rebuild_the_page_a_plain_record_would_carry() {
        let (v0, mut v1) = (page(3), page(3));
        v1[10..20].fill(0xee);
        let mut v2 = v1.clone();
        v2[4000..4096].fill(0x11);
        v2[0] = 0x42;
        let zero = vec![0u8; 4096];
        let mut z1 = zero.clone();
        z1[100] = 7;
        let chunks = [
            block_list(&[("ram", 3 * 4096)]),
            chunk(&[
                record(FLAG_PAGE, 0, Some("ram"), &v0),
                record(FLAG_ZERO, 4096, None, &[0]),
                record(FLAG_PAGE, 8192, None, &v2),
            ]),
            chunk(&[
                record(FLAG_XBZRLE, 0, Some("ram"), &xbzrle(&v0, &v1)),
                record(FLAG_XBZRLE, 4096, None, &xbzrle(&zero, &z1)),
            ]),
            chunk(&[record(FLAG_XBZRLE, 0, Some("ram"), &xbzrle(&v1, &v2))]),
        ];
        // With the cache, and with every base rebuilt from the stream.
        for cache in [XBZRLE_CACHE_BYTES, 0] {
            let (blocks, warnings) = parse_with(opts(), &chunks, cache).unwrap();
            let b = &blocks[0];
            assert_eq!(b.digest(0), digest(&v2), "cache {cache}");
            assert_eq!(b.digest(0), b.digest(2));
            assert_eq!(b.digest(1), digest(&z1));
            assert_eq!((b.zero_pages, b.data_pages, b.unknown_pages), (0, 3, 0));
            assert!(warnings.is_empty());
        }
    }

    #[test]
    fn xbzrle_without_a_base_or_malformed_leaves_the_page_unknown() {
        let v0 = page(5);
        let mut v1 = v0.clone();
        v1[1] = 0;
        let good = xbzrle(&v0, &v1);
        let mut bad_flag = good.clone();
        bad_flag[0] = 2;
        // A zero run then nothing: QEMU's decoder refuses it.
        let truncated = [1, 0, 1, 5];
        let (blocks, warnings) = parse(&[
            block_list(&[("ram", 4 * 4096)]),
            chunk(&[
                record(FLAG_PAGE, 0, Some("ram"), &v0),
                record(FLAG_PAGE, 4096, None, &v0),
                record(FLAG_PAGE, 8192, None, &v0),
            ]),
            chunk(&[
                record(FLAG_XBZRLE, 3 * 4096, Some("ram"), &good),
                record(FLAG_XBZRLE, 4096, None, &bad_flag),
                record(FLAG_XBZRLE, 8192, None, &truncated),
                record(FLAG_XBZRLE, 0, None, &good),
            ]),
        ])
        .unwrap();
        let b = &blocks[0];
        assert_eq!(b.digest(0), digest(&v1));
        for i in 1..4 {
            assert_eq!(b.digest(i), UNKNOWN, "page {i}");
        }
        assert_eq!((b.data_pages, b.unknown_pages), (1, 3));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .message
                .contains("'ram': 3 pages of unknown content")
                && warnings[0].message.contains("not sent before"),
            "{}",
            warnings[0].message
        );
        // A delta over an unknown page stays unknown; a full page makes it known again.
        let (blocks, _) = parse(&[
            block_list(&[("ram", 4096)]),
            chunk(&[record(FLAG_XBZRLE, 0, Some("ram"), &good)]),
            chunk(&[record(FLAG_XBZRLE, 0, Some("ram"), &good)]),
        ])
        .unwrap();
        assert_eq!(blocks[0].digest(0), UNKNOWN);
        let (blocks, _) = parse(&[
            block_list(&[("ram", 4096)]),
            chunk(&[record(FLAG_XBZRLE, 0, Some("ram"), &good)]),
            chunk(&[record(FLAG_PAGE, 0, Some("ram"), &v1)]),
        ])
        .unwrap();
        assert_eq!(
            (blocks[0].digest(0), blocks[0].unknown_pages),
            (digest(&v1), 0)
        );
    }

    #[test]
    fn xbzrle_decoder_follows_qemus_checks() {
        let mut p = vec![0u8; 16];
        // zrun 2, nzrun 3 (a b c), zrun 1, nzrun 1 (d).
        xbzrle_decode(&[2, 3, b'a', b'b', b'c', 1, 1, b'd'], &mut p).unwrap();
        assert_eq!(&p[..8], b"\0\0abc\0d\0");
        // Two-byte lengths: zrun 0x80 reaches byte 128.
        let mut big = vec![0u8; 256];
        xbzrle_decode(&[0x80, 0x01, 1, 9], &mut big).unwrap();
        assert_eq!((big[127], big[128]), (0, 9));
        for bad in [
            &[5][..],            // one byte left
            &[0, 0, 1],          // empty data run
            &[2, 1, 1, 0, 1, 1], // empty zero run after the first
            &[15, 2, 1, 1],      // data run past the page end
            &[17, 1, 1],         // zero run past the page end
            &[0x80, 0x80, 1, 1], // a third length byte
            &[0, 3, 1, 2],       // data run past the delta
        ] {
            assert!(xbzrle_decode(bad, &mut p.clone()).is_err(), "{bad:?}");
        }
    }

    /// A mapped-ram block list: each block's header points at a bitmap and pages later in
    /// the file, and the stream goes on after them.
    #[test]
    fn mapped_ram_pages_come_from_the_bitmap_and_fixed_offsets() {
        let v = page(9);
        let mut data = ((3 * 4096) | FLAG_MEM_SIZE).to_be_bytes().to_vec();
        data.extend_from_slice(b"\x03ram");
        data.extend_from_slice(&(3u64 * 4096).to_be_bytes());
        let header_at = data.len();
        let (bitmap_at, pages_at) = (header_at as u64 + 28, 0x100u64);
        data.extend_from_slice(&1u32.to_be_bytes());
        data.extend_from_slice(&4096u64.to_be_bytes());
        data.extend_from_slice(&bitmap_at.to_be_bytes());
        data.extend_from_slice(&pages_at.to_be_bytes());
        data.extend_from_slice(&[0b101, 0, 0, 0, 0, 0, 0, 0]); // pages 0 and 2
        data.resize(pages_at as usize, 0);
        data.extend_from_slice(&v);
        data.extend_from_slice(&[0x77; 4096]); // bit clear: a zero page whatever is here
        data.extend_from_slice(&v);
        data.extend_from_slice(&FLAG_EOS.to_be_bytes());
        let mapped = RamOptions {
            mapped_ram: true,
            ..opts()
        };
        let (blocks, _) = parse_with(mapped, &[data.clone()], 0).unwrap();
        let b = &blocks[0];
        assert_eq!(b.digests, [digest(&v), digest(&[0; 4096]), digest(&v)]);
        assert_eq!((b.zero_pages, b.data_pages), (1, 2));

        // Version 2, pages past the end of the file, another page size.
        for (at, bytes, want) in [
            (header_at, &2u32.to_be_bytes()[..], "header version 2"),
            (
                header_at + 20,
                &0x10_0000u64.to_be_bytes()[..],
                "not within the file",
            ),
            (
                header_at + 4,
                &8192u64.to_be_bytes()[..],
                "page size 0x2000",
            ),
        ] {
            let mut bad = data.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            let err = parse_with(mapped, &[bad], 0).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn zero_and_data_pages_with_continue_across_chunks() {
        let mut zeros = FLAG_ZERO.to_be_bytes().to_vec();
        zeros.extend_from_slice(b"\x06pc.ram\x00");
        zeros.extend_from_slice(&(4096 | FLAG_ZERO | FLAG_CONTINUE).to_be_bytes());
        zeros.push(0);
        zeros.extend_from_slice(&FLAG_EOS.to_be_bytes());
        // Next chunk continues the same block: page 3 with data.
        let mut data = ((3 * 4096) | FLAG_PAGE | FLAG_CONTINUE)
            .to_be_bytes()
            .to_vec();
        data.extend_from_slice(&[0xaa; 4096]);
        data.extend_from_slice(&FLAG_EOS.to_be_bytes());
        let (blocks, _) = parse(&[
            block_list(&[("pc.ram", 4 * 4096), ("pc.rom", 4096)]),
            zeros,
            data,
        ])
        .unwrap();
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
        let mut chunk = (4096 | FLAG_ZERO).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"\x01a\x00");
        let err = parse(&[block_list(&[("a", 4096)]), chunk]).unwrap_err();
        assert!(err.to_string().contains("beyond RAM block 'a'"));

        // The total says one page, the block claims two.
        let mut list = (4096 | FLAG_MEM_SIZE).to_be_bytes().to_vec();
        list.extend_from_slice(b"\x01a");
        list.extend_from_slice(&8192u64.to_be_bytes());
        assert!(parse(&[list]).is_err());
    }

    #[test]
    fn hostile_gap_is_refused_before_allocating() {
        let mut chunk = ((1u64 << 49) | FLAG_ZERO).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"\x01a\x00");
        let err = parse(&[block_list(&[("a", 1 << 50)]), chunk]).unwrap_err();
        assert!(err.to_string().contains("gap larger"));
    }
}
