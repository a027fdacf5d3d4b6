//! Reading a dump: from a file, standard input (`-`) or a QEMU `file:PATH,offset=N` URI,
//! unwrapping the containers people attach to bug reports: gzip and zstd (detected by
//! magic, as written by `migrate "exec:gzip -c > f"`) and libvirt save images
//! (`virsh save`: a header and the domain XML before the stream, possibly compressed).
//! `IMAGE@TAG` names the VM state HMP `savevm TAG` stored in a qcow2 image (see [`qcow2`]).
//!
//! A regular file is memory-mapped (no copy, so multi-GB dumps cost no heap). Everything
//! else, a compressed stream once inflated, standard input, a FIFO or a device, is copied
//! into an unlinked temporary file that is then mapped, so memory stays bounded whatever
//! the dump's size. What is copied has a [`Budget`], and its first bytes must look like
//! what migdiff reads before anything more is copied: `/dev/zero` or a compression bomb
//! fails at once with an error naming the budget, not after filling the disk.
//!
//! A qcow2 snapshot's VM state is scattered over the image's clusters: its stored clusters
//! are copied (by the kernel, `copy_file_range`, not through our memory) into a temporary
//! file, zero clusters left as holes, and that file is mapped.
//!
//! Temporary files are created in the system's temporary directory (`TMPDIR`) and never
//! have a name (`O_TMPFILE`, or unlinked at once), so they go away however migdiff exits,
//! Ctrl-C and `kill -9` included. Their cost is disk, not memory: a 1 GiB dump through a
//! pipe peaked at 30.5 MiB resident, 29.2 MiB from a file (README, "Performance").
//!
//! Side files (ignore and allow lists) are read whole, so they have a size limit of their
//! own: [`read_text`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::ops::Deref;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use std::cell::Cell;

use memmap2::{Advice, Mmap, UncheckedAdvice};

use crate::qcow2;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// `QEMU_VM_FILE_MAGIC`, the first four bytes of every migration stream.
const QEVM_MAGIC: &[u8] = b"QEVM";
/// `QEMU_SAVE_MAGIC` (and the partial-write variant) from libvirt's qemu_saveimage.h.
const LIBVIRT_MAGIC: &[u8] = b"LibvirtQemudSave";
const LIBVIRT_PARTIAL: &[u8] = b"LibvirtQemudPart";
/// `virQEMUSaveHeader`: magic, then version, data_len, was_running, format, cookieOffset
/// and 14 unused u32s, in the byte order of the host that wrote it.
const LIBVIRT_HEADER_LEN: usize = 16 + 19 * 4;
/// How many bytes are read, and checked, before anything is copied to a temporary file.
const HEAD_LEN: usize = 4096;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What migdiff copies to a temporary file before it reads an input. Regular files are
/// mapped in place and have no budget: their size bounds them.
///
/// The rule, with [`Budget::default`]:
///
/// - **Standard input, FIFOs and devices** have no size to go by: at most [`Budget::pipe`]
///   (2 GiB) is copied, seconds of writing (2 GiB took 2.9-8 s here, 4 GiB 17 s once past
///   the page cache's dirty limit: too close to a 20 s bound). That holds any guest with
///   2 GiB of live RAM and any guest that never ran up to ~800 GiB (a 4 GiB one is a
///   9.8 MB stream); bigger dumps belong in a regular file, which costs nothing to read,
///   and the error says so.
/// - **A gzip or zstd stream** decompresses to at most [`Budget::ratio`] (512) times its
///   compressed size, never less than [`Budget::floor`] (64 MiB) nor more than
///   [`Budget::cap`] (16 GiB). What real dumps expand by, measured: the 24 dumps in
///   testdata/ 2.4-6.9x (zstd -19), 2.2-5.8x (gzip -9); QEMU 10.0 dumps of 4 GiB and 16 GiB
///   guests that never ran (9.8 MB and 38 MB of zero-page records, the most compressible
///   thing QEMU writes) and of a 4 GiB guest that ran SeaBIOS at most 13x, 104x and 24x
///   with the zstd 1.5.4 CLI at any level 1-22 (the 16 GiB one: 9x at -1, 95x at -19, 104x
///   at -17, where zstd does best on it) and 4-7x with gzip -1..-9; with zstd 1.5.7 (the
///   library migdiff links) the 16 GiB dump 123x at -17, 99x at -19, and synthetic
///   zero-page records of 16, 64 and 256 GiB guests 177x, 217x and 222x at -17 (it levels
///   off), 140x and 108x at -19; a `migdiff export` 30x. 512x is more than twice the most
///   seen; deflate cannot pass ~1032x, while zstd reaches 32,000x on zeros (a 330 KB file
///   holds 10 GiB), which is what this stops: that file now fails after 161 MiB, in 0.2 s.
///   Past 16 GiB, decompress the dump yourself: a regular file has no budget.
/// - **A qcow2 snapshot's VM state** is at most [`Budget::cap`] (16 GiB): its stored
///   clusters are copied (at most the image's size), the rest are holes.
///
/// Either way the first bytes must be a known magic before any copy goes on (QEVM or JSON
/// inside a compressed stream; QEVM, gzip, zstd, a libvirt save image or JSON on standard
/// input), so `/dev/zero` is refused at byte 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// The most bytes copied from standard input, a FIFO or a device.
    pub pipe: u64,
    /// The most a compressed stream may expand, decompressed over compressed size.
    pub ratio: u64,
    /// What any compressed stream may decompress to, however small it is.
    pub floor: u64,
    /// What no compressed stream may decompress past, however large it is.
    pub cap: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            pipe: 2 * GIB,
            ratio: 512,
            floor: 64 * MIB,
            cap: 16 * GIB,
        }
    }
}

impl Budget {
    /// The decompressed size allowed for `compressed` bytes of gzip or zstd.
    pub fn inflated(&self, compressed: u64) -> u64 {
        compressed
            .saturating_mul(self.ratio)
            .max(self.floor)
            .min(self.cap)
    }
}

/// `n` bytes, for a person: `355 KiB`, `4 GiB`.
fn human(n: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if n >= size {
            return if n % size == 0 || n >= 100 * size {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.1} {unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n} bytes")
}

/// The most bytes [`read_text`] reads from an ignore or allow file: 4 MiB, room for the
/// 10,000 patterns a filter takes and for long `@ranges` lists. These lists are written by
/// hand or by a short script; a million-line one (~30 MB) is a mistake, and `/dev/zero`
/// must not grow memory.
pub const TEXT_LIMIT: u64 = 4 * MIB;

/// Reads a side file (`what` is what it is, for the error: "ignore file") as UTF-8 text, at
/// most [`TEXT_LIMIT`] bytes: a regular file by its size before reading a byte, anything
/// else (a FIFO, `/dev/zero`) by stopping one byte past the limit.
pub fn read_text(path: &Path, what: &str) -> io::Result<String> {
    read_text_limited(path, what, TEXT_LIMIT)
}

fn read_text_limited(path: &Path, what: &str, limit: u64) -> io::Result<String> {
    let too_big = |size: String| {
        invalid(format!(
            "{size}: {what}s are limited to {} (and 10,000 patterns). They are lists written \
             by hand or by a short script; a million-line one (~30 MB) is not a reasonable \
             list, and reading it would only grow memory",
            human(limit)
        ))
    };
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() > limit {
        return Err(too_big(format!(
            "{} bytes ({})",
            meta.len(),
            human(meta.len())
        )));
    }
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        let what = if meta.is_file() {
            "a file still growing?"
        } else {
            "a device or FIFO that never ends?"
        };
        return Err(too_big(format!("still going at byte {limit:#x} ({what})")));
    }
    Ok(text)
}

/// Bytes of one input, owned or mapped.
pub enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// How the stream was wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    Raw,
    Gzip,
    Zstd,
    /// A libvirt save image; `stream_offset` is where the QEMU stream starts in the file.
    Libvirt {
        machine: Option<String>,
        compression: String,
        stream_offset: u64,
    },
    /// The VM state of an internal snapshot of a qcow2 image (`IMAGE@TAG`), which starts at
    /// `vm_state_offset` of the image's virtual address space.
    Qcow2Snapshot {
        id: String,
        name: String,
        vm_state_offset: u64,
    },
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Container::Raw => f.write_str("raw stream"),
            Container::Gzip => f.write_str("gzip-compressed stream"),
            Container::Zstd => f.write_str("zstd-compressed stream"),
            Container::Libvirt {
                machine,
                compression,
                stream_offset,
            } => write!(
                f,
                "libvirt save image (machine {}, {compression} stream at byte {stream_offset:#x})",
                machine.as_deref().unwrap_or("unknown")
            ),
            Container::Qcow2Snapshot {
                id,
                name,
                vm_state_offset,
            } => write!(
                f,
                "VM state of qcow2 internal snapshot '{name}' (id {id}), at guest offset \
                 {vm_state_offset:#x} of the image"
            ),
        }
    }
}

/// An opened input: the QEMU stream's bytes and what they came wrapped in. Byte offsets in
/// errors count from the start of the (decompressed) stream.
#[non_exhaustive]
pub struct Input {
    bytes: Bytes,
    start: usize,
    pub container: Container,
    /// How far [`Input::release`] has dropped mapped pages.
    released: Cell<usize>,
}

impl Input {
    fn new(bytes: Bytes, start: usize, container: Container) -> Input {
        Input {
            bytes,
            start,
            container,
            released: Cell::new(0),
        }
    }

    /// The QEMU stream.
    pub fn stream(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }

    /// Tells the OS that the stream up to `offset` will not be read again, so its mapped
    /// pages leave this process's resident set: without it, decoding a 4 GiB dump would
    /// count 4 GiB of file pages as ours. The page cache keeps them; nothing is re-read.
    pub fn release(&self, offset: u64) {
        const ALIGN: usize = 1 << 21;
        let Bytes::Mapped(map) = &self.bytes else {
            return;
        };
        let end = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(self.start))
            .map_or(0, |e| e.min(map.len()) / ALIGN * ALIGN);
        let from = self.released.get();
        if end > from {
            // SAFETY: the map is read-only and backed by a file (never anonymous memory), so
            // MADV_DONTNEED only unmaps the pages: a later access faults them back in from
            // the page cache with the same content, and no reference sees a change.
            let _ =
                unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, from, end - from) };
            self.released.set(end);
        }
    }

    /// Opens `spec`: a path, `-` for standard input, `file:PATH[,offset=N]`, or `IMAGE@TAG`
    /// for a qcow2 image's internal snapshot, within the default [`Budget`].
    pub fn open(spec: &Path) -> io::Result<Input> {
        Input::open_with(spec, &Budget::default())
    }

    /// [`Input::open`] within `budget`.
    pub fn open_with(spec: &Path, budget: &Budget) -> io::Result<Input> {
        if let Some((image, tag)) = snapshot_spec(spec) {
            return open_snapshot(image, tag, budget);
        }
        let (path, offset) = parse_file_uri(spec)?;
        let bytes = read_or_map(&path, offset, budget)?;
        let offset = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= bytes.len())
            .ok_or_else(|| {
                invalid(format!(
                    "offset {offset} is beyond the end of the file ({} bytes)",
                    bytes.len()
                ))
            })?;
        unwrap_container(bytes, offset, budget)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `file:PATH,offset=N` (QEMU's file: migration URI; N decimal or 0x-hex) or a plain path.
fn parse_file_uri(spec: &Path) -> io::Result<(std::path::PathBuf, u64)> {
    let Some(rest) = spec.to_str().and_then(|s| s.strip_prefix("file:")) else {
        return Ok((spec.to_path_buf(), 0));
    };
    let (path, offset) = match rest.rsplit_once(",offset=") {
        Some((path, n)) => {
            let parsed = match n.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => n.parse(),
            };
            (
                path,
                parsed.map_err(|_| invalid(format!("bad offset '{n}' in {rest}")))?,
            )
        }
        None => (rest, 0),
    };
    Ok((path.into(), offset))
}

/// `IMAGE@TAG` when `spec` names no file, and the part before one of its `@`s (the last
/// that works: tags may hold `@` too) is a regular file. A path that exists always wins.
fn snapshot_spec(spec: &Path) -> Option<(&Path, &str)> {
    let text = spec.to_str()?;
    if text == "-" || spec.exists() {
        return None;
    }
    text.rmatch_indices('@').find_map(|(at, _)| {
        let (image, tag) = (&text[..at], &text[at + 1..]);
        (!tag.is_empty() && Path::new(image).is_file()).then(|| (Path::new(image), tag))
    })
}

/// The VM state of `image`'s snapshot `tag`, copied into a temporary file and mapped.
fn open_snapshot(image_path: &Path, tag: &str, budget: &Budget) -> io::Result<Input> {
    let file = File::open(image_path)?;
    // SAFETY: read-only; an image rewritten while we read it can only give garbage, which
    // the table checks or the decoder report like any bad input.
    let map = unsafe { Mmap::map(&file) }?;
    let image = qcow2::Image::parse(&map)?;
    let snapshot = image.snapshot(tag)?;
    let size = snapshot.vm_state_size;
    if size > budget.cap {
        return Err(invalid(format!(
            "snapshot '{}' (id {}) claims {size} bytes of VM state, more than the {} budget \
             for what is assembled from an image",
            snapshot.name,
            snapshot.id,
            human(budget.cap)
        )));
    }
    let mut out = tempfile::tempfile()?;
    for extent in image.vm_state(snapshot)? {
        match extent? {
            qcow2::Extent::Stored { host, len } => {
                let mut from = &file;
                from.seek(io::SeekFrom::Start(host))?;
                // File to file: the kernel copies (copy_file_range), no buffer of ours.
                let copied = io::copy(&mut from.take(len), &mut out)?;
                if copied != len {
                    return Err(invalid(format!(
                        "the image ended at byte {:#x} inside a VM state cluster at {host:#x} \
                         (was it truncated while being read?)",
                        host + copied
                    )));
                }
            }
            // A hole: reads as zeros, costs no disk.
            qcow2::Extent::Zeros(len) => {
                out.seek(io::SeekFrom::Current(len as i64))?;
            }
        }
    }
    out.set_len(size)?;
    let container = Container::Qcow2Snapshot {
        id: snapshot.id.clone(),
        name: snapshot.name.clone(),
        vm_state_offset: image.vm_state_offset(snapshot)?,
    };
    Ok(Input::new(map_file(out)?, 0, container))
}

/// A regular file mapped; anything else copied, within `budget`, to a temporary file that
/// is mapped. `offset` is where the caller will look for the stream.
fn read_or_map(path: &Path, offset: u64, budget: &Budget) -> io::Result<Bytes> {
    if path.as_os_str() == "-" {
        // Redirected from a file (`migdiff - b < a.mig`): map it like any file.
        let file = io::stdin().as_fd().try_clone_to_owned().map(File::from)?;
        return map_or_spool(file, "standard input", offset, budget);
    }
    let file = File::open(path)?;
    map_or_spool(file, "input", offset, budget)
}

fn map_or_spool(mut file: File, what: &str, offset: u64, budget: &Budget) -> io::Result<Bytes> {
    let meta = file.metadata()?;
    if meta.is_file() {
        // Standard input may have been read from already: then the stream starts where it
        // is, and what follows is copied like a pipe.
        let at_start = file.stream_position().map_or(true, |p| p == 0);
        // SAFETY: the map is read-only; a dump rewritten while we read it can only make us
        // decode garbage, which the decoder reports as an error like any bad input.
        match at_start.then(|| unsafe { Mmap::map(&file) }) {
            Some(Ok(map)) => {
                // Read front to back, once: let the kernel read ahead.
                let _ = map.advise(Advice::Sequential);
                return Ok(Bytes::Mapped(map));
            }
            // No address space left (a `ulimit -v`): copying would need as much again.
            Some(Err(e)) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("mapping {} bytes: {e}", meta.len()),
                ));
            }
            // A file system without mmap: copy it, like a pipe.
            Some(Err(_)) | None => {}
        }
    }
    let what = if meta.is_file() || what == "standard input" {
        what
    } else if meta.file_type().is_fifo() {
        "FIFO"
    } else {
        "device"
    };
    spool(file, what, offset, budget)
}

/// Copies a pipe, FIFO or device into a temporary file and maps it, at most `budget.pipe`
/// bytes, once its first bytes (at `offset`) look like something migdiff reads.
fn spool(mut reader: impl Read, what: &str, offset: u64, budget: &Budget) -> io::Result<Bytes> {
    let head_len = offset.saturating_add(HEAD_LEN as u64);
    let mut head = Vec::new();
    (&mut reader).take(head_len).read_to_end(&mut head)?;
    if let Some(at) = usize::try_from(offset).ok().filter(|&o| o < head.len()) {
        let first = &head[at..];
        if qcow2::is_qcow2(first) {
            return Err(invalid(format!(
                "the {what} is a qcow2 disk image: images are read in place, so name the \
                 file and a snapshot, as IMAGE@TAG; nothing more was read"
            )));
        }
        if !top_level_magic(first) {
            return Err(invalid(format!(
                "not a migration stream: the {what} starts with {} at byte {offset:#x}, \
                 where a QEMU stream has QEVM (51 45 56 4d), and nothing else migdiff reads \
                 (gzip, zstd, a libvirt save image, JSON) starts like that; nothing more was read",
                hex_prefix(first)
            )));
        }
    }
    let limit = budget.pipe;
    let file = copy_within(&head, reader, limit, |at| {
        format!(
            "the {what} goes on past byte {at:#x}: more than the {} budget ({limit} bytes) \
             for standard input, FIFOs and devices, which are copied to a temporary file; \
             save it to a regular file first (those are read in place, with no budget)",
            human(limit)
        )
    })?;
    map_file(file)
}

/// `head` then the rest of `reader` into an unlinked temporary file, failing with `message`
/// (given the offset of the first byte over) if there are more than `limit` bytes.
fn copy_within(
    head: &[u8],
    reader: impl Read,
    limit: u64,
    message: impl FnOnce(u64) -> String,
) -> io::Result<File> {
    let mut file = tempfile::tempfile()?;
    let mut out = BufWriter::with_capacity(1 << 20, &mut file);
    let head_len = head.len() as u64;
    if head_len > limit {
        return Err(invalid(message(limit)));
    }
    out.write_all(head)?;
    let rest = io::copy(&mut reader.take(limit - head_len + 1), &mut out)?;
    if head_len + rest > limit {
        return Err(invalid(message(limit)));
    }
    out.flush()?;
    drop(out);
    file.rewind()?;
    Ok(file)
}

fn map_file(file: File) -> io::Result<Bytes> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Bytes::Owned(Vec::new()));
    }
    // SAFETY: the file is ours alone (unlinked, never written again).
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| io::Error::new(e.kind(), format!("mapping {len} bytes: {e}")))?;
    let _ = map.advise(Advice::Sequential);
    Ok(Bytes::Mapped(map))
}

/// Whether `head` is not ruled out as `magic`: a prefix of it when shorter (a truncated
/// input is the decoder's to report), else starting with it.
fn may_be(head: &[u8], magic: &[u8]) -> bool {
    let n = head.len().min(magic.len());
    head[..n] == magic[..n]
}

/// JSON (an export, a vmdesc, `-dump-vmstate` output): `{` after any whitespace.
fn may_be_json(head: &[u8]) -> bool {
    head.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'{')
}

/// What an input may start with: a stream, a container of one, or JSON.
fn top_level_magic(head: &[u8]) -> bool {
    [
        QEVM_MAGIC,
        GZIP_MAGIC,
        ZSTD_MAGIC,
        LIBVIRT_MAGIC,
        LIBVIRT_PARTIAL,
    ]
    .iter()
    .any(|m| may_be(head, m))
        || may_be_json(head)
}

/// Up to 8 bytes in hex, and as text when some are printable.
fn hex_prefix(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(8)];
    let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
    if !shown.iter().any(u8::is_ascii_graphic) {
        return hex.join(" ");
    }
    let text: String = shown
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
        .collect();
    format!("{} ({text})", hex.join(" "))
}

fn unwrap_container(bytes: Bytes, start: usize, budget: &Budget) -> io::Result<Input> {
    let head = bytes.get(start..).unwrap_or_default();
    if head.starts_with(GZIP_MAGIC) {
        let inflated = inflate(&bytes, start, Container::Gzip, budget)?;
        return Ok(Input::new(inflated, 0, Container::Gzip));
    }
    if head.starts_with(ZSTD_MAGIC) {
        let inflated = inflate(&bytes, start, Container::Zstd, budget)?;
        return Ok(Input::new(inflated, 0, Container::Zstd));
    }
    if head.starts_with(LIBVIRT_PARTIAL) {
        return Err(invalid(
            "libvirt save image is incomplete (magic LibvirtQemudPart: the save never finished)"
                .into(),
        ));
    }
    if head.starts_with(LIBVIRT_MAGIC) {
        return unwrap_libvirt(bytes, start, budget);
    }
    if qcow2::is_qcow2(head) {
        let listed = qcow2::Image::parse(head).map(|image| image.list_snapshots());
        return Err(invalid(format!(
            "a qcow2 disk image, not a migration stream: name one of its internal snapshots \
             as IMAGE@TAG ({})",
            listed.unwrap_or_else(|e| e.to_string())
        )));
    }
    Ok(Input::new(bytes, start, Container::Raw))
}

/// Counts the bytes read through it, for errors that say how far into the file they are.
struct Counting<'a, R> {
    inner: R,
    count: &'a Cell<u64>,
    /// The mapping the compressed bytes come from, and where in it they start: what has
    /// been decompressed is released as it goes, as [`Input::release`] does for streams.
    source: &'a Bytes,
    start: usize,
    released: usize,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        const STEP: usize = 1 << 23;
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        let read_to = usize::try_from(self.count.get()).map_or(0, |c| c.saturating_add(self.start))
            / STEP
            * STEP;
        if let (Bytes::Mapped(map), true) = (self.source, read_to > self.released) {
            let to = read_to.min(map.len());
            // SAFETY: as in `Input::release`: a read-only, file-backed map; released pages
            // fault back in from the page cache unchanged.
            let _ = unsafe {
                map.unchecked_advise_range(
                    UncheckedAdvice::DontNeed,
                    self.released,
                    to - self.released,
                )
            };
            self.released = to;
        }
        Ok(n)
    }
}

/// A decoder whose errors say they came from decompressing (a corrupt or cut stream).
struct Decompressing<'a>(Box<dyn Read + 'a>);

impl Read for Decompressing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("decompressing: {e}")))
    }
}

/// Decompresses what `source` holds from `start` (gzip or zstd, as `container` says) into
/// an unlinked temporary file and maps it: memory stays bounded (the compressed pages are
/// released as they are read), and so does the file, by [`Budget::inflated`]. The decompressed data must start like a QEMU stream or JSON before
/// more than its first bytes are written.
fn inflate(
    source: &Bytes,
    start: usize,
    container: Container,
    budget: &Budget,
) -> io::Result<Bytes> {
    let compressed = source.get(start..).unwrap_or_default();
    let consumed = Cell::new(0);
    let counting = Counting {
        inner: compressed,
        count: &consumed,
        source,
        start,
        released: 0,
    };
    let mut decoder = Decompressing(match container {
        Container::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counting)),
        _ => Box::new(zstd::stream::read::Decoder::new(counting)?),
    });
    let mut head = Vec::new();
    (&mut decoder)
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)?;
    let qemu_or_json = may_be(&head, QEVM_MAGIC) || may_be_json(&head);
    if head.is_empty() || !qemu_or_json {
        let what = if head.is_empty() {
            "nothing".to_string()
        } else {
            hex_prefix(&head)
        };
        return Err(invalid(format!(
            "{container} holds no migration stream: its decompressed data starts with {what} \
             at byte 0, where a QEMU stream has QEVM (51 45 56 4d) or an export a JSON `{{`; \
             nothing more was decompressed"
        )));
    }
    let compressed_len = compressed.len() as u64;
    let limit = budget.inflated(compressed_len);
    let file = copy_within(&head, &mut decoder, limit, |at| {
        format!(
            "{container} expands past its budget: decompressed byte {at:#x} reached after \
             {} of {} compressed bytes; the budget is {} ({limit} bytes: {}x the compressed \
             size, at least {} and at most {}), dumps measured expand at most ~160x. If this is a \
             real dump, decompress it first and pass the raw file: files are read in place, \
             with no budget",
            consumed.get(),
            compressed_len,
            human(limit),
            budget.ratio,
            human(budget.floor),
            human(budget.cap),
        )
    })?;
    map_file(file)
}

fn unwrap_libvirt(bytes: Bytes, start: usize, budget: &Budget) -> io::Result<Input> {
    let header = bytes
        .get(start..start + LIBVIRT_HEADER_LEN)
        .ok_or_else(|| invalid("libvirt save image: header truncated".into()))?;
    let word = |i: usize| -> [u8; 4] {
        let mut w = [0u8; 4];
        w.copy_from_slice(header.get(16 + 4 * i..20 + 4 * i).unwrap_or(&[0; 4]));
        w
    };
    // Written in the saving host's byte order; version 2 (or 1) tells which.
    let little = matches!(u32::from_le_bytes(word(0)), 1 | 2);
    let read = |i: usize| {
        if little {
            u32::from_le_bytes(word(i))
        } else {
            u32::from_be_bytes(word(i))
        }
    };
    let (data_len, format) = (read(1) as usize, read(3));
    let xml_start = start + LIBVIRT_HEADER_LEN;
    let stream_start = xml_start
        .checked_add(data_len)
        .filter(|&s| s <= bytes.len())
        .ok_or_else(|| {
            invalid(format!(
                "libvirt save image: XML of {data_len} bytes runs past the end of the file"
            ))
        })?;
    let xml = bytes.get(xml_start..stream_start).unwrap_or_default();
    let xml = String::from_utf8_lossy(xml.split(|&b| b == 0).next().unwrap_or_default());
    let machine = machine_from_xml(&xml);
    let compression = ["raw", "gzip", "bzip2", "xz", "lzop", "zstd"]
        .get(format as usize)
        .map_or_else(|| format!("unknown format {format}"), |s| s.to_string());
    let container = Container::Libvirt {
        machine,
        compression: compression.clone(),
        stream_offset: stream_start as u64,
    };
    match compression.as_str() {
        "raw" => Ok(Input::new(bytes, stream_start, container)),
        "gzip" | "zstd" => {
            let mut inner = unwrap_container(bytes, stream_start, budget)?;
            inner.container = container;
            Ok(inner)
        }
        other => Err(invalid(format!(
            "libvirt save image compressed with {other}: decompress the stream first (it starts at byte {stream_start:#x})"
        ))),
    }
}

/// The `machine` attribute of `<type ... machine='pc-i440fx-7.2'>` in the domain XML.
fn machine_from_xml(xml: &str) -> Option<String> {
    let type_tag = &xml[xml.find("<type")?..];
    let type_tag = &type_tag[..type_tag.find('>')?];
    let at = type_tag.find("machine=")? + "machine=".len();
    let quote = type_tag[at..].chars().next()?;
    let value = &type_tag[at + quote.len_utf8()..];
    Some(value[..value.find(quote)?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uri_with_offset() {
        let (p, o) = parse_file_uri(Path::new("file:/tmp/x.mig,offset=0x1000")).unwrap();
        assert_eq!((p.to_str().unwrap(), o), ("/tmp/x.mig", 4096));
        let (p, o) = parse_file_uri(Path::new("file:a.mig")).unwrap();
        assert_eq!((p.to_str().unwrap(), o), ("a.mig", 0));
        assert!(parse_file_uri(Path::new("file:a,offset=zz")).is_err());
    }

    #[test]
    fn machine_type_from_domain_xml() {
        let xml = "<domain type='kvm'><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os></domain>";
        assert_eq!(machine_from_xml(xml).as_deref(), Some("pc-q35-7.2"));
        assert_eq!(machine_from_xml("<domain/>"), None);
    }
}
