//! Reading a dump: from a file, standard input (`-`) or a QEMU `file:PATH,offset=N` URI,
//! unwrapping the containers people attach to bug reports: gzip and zstd (detected by
//! magic, as written by `migrate "exec:gzip -c > f"`) and libvirt save images
//! (`virsh save`: a header and the domain XML before the stream, possibly compressed).
//!
//! A regular file is memory-mapped (no copy, so multi-GB dumps cost no heap). A
//! compressed stream is inflated into an unlinked temporary file that is then mapped, so
//! memory stays bounded whatever the dump's size.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::ops::Deref;
use std::path::Path;

use std::cell::Cell;

use memmap2::{Advice, Mmap, UncheckedAdvice};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// `QEMU_SAVE_MAGIC` (and the partial-write variant) from libvirt's qemu_saveimage.h.
const LIBVIRT_MAGIC: &[u8] = b"LibvirtQemudSave";
const LIBVIRT_PARTIAL: &[u8] = b"LibvirtQemudPart";
/// `virQEMUSaveHeader`: magic, then version, data_len, was_running, format, cookieOffset
/// and 14 unused u32s, in the byte order of the host that wrote it.
const LIBVIRT_HEADER_LEN: usize = 16 + 19 * 4;

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
        }
    }
}

/// An opened input: the QEMU stream's bytes and what they came wrapped in. Byte offsets in
/// errors count from the start of the (decompressed) stream.
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

    /// Opens `spec`: a path, `-` for standard input, or `file:PATH[,offset=N]`.
    pub fn open(spec: &Path) -> io::Result<Input> {
        let (path, offset) = parse_file_uri(spec)?;
        let bytes = read_or_map(&path)?;
        let offset = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= bytes.len())
            .ok_or_else(|| {
                invalid(format!(
                    "offset {offset} is beyond the end of the file ({} bytes)",
                    bytes.len()
                ))
            })?;
        unwrap_container(bytes, offset)
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

fn read_or_map(path: &Path) -> io::Result<Bytes> {
    if path.as_os_str() == "-" {
        let mut data = Vec::new();
        io::stdin().lock().read_to_end(&mut data)?;
        return Ok(Bytes::Owned(data));
    }
    let file = File::open(path)?;
    map_or_read(file)
}

fn map_or_read(mut file: File) -> io::Result<Bytes> {
    if file.metadata()?.is_file() {
        // SAFETY: the map is read-only; a dump rewritten while we read it can only make us
        // decode garbage, which the decoder reports as an error like any bad input.
        if let Ok(map) = unsafe { Mmap::map(&file) } {
            // Read front to back, once: let the kernel read ahead.
            let _ = map.advise(Advice::Sequential);
            return Ok(Bytes::Mapped(map));
        }
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(Bytes::Owned(data))
}

fn unwrap_container(bytes: Bytes, start: usize) -> io::Result<Input> {
    let head = bytes.get(start..).unwrap_or_default();
    if head.starts_with(GZIP_MAGIC) {
        let inflated = inflate(flate2::read::MultiGzDecoder::new(head))?;
        return Ok(Input::new(inflated, 0, Container::Gzip));
    }
    if head.starts_with(ZSTD_MAGIC) {
        let inflated = inflate(zstd::stream::read::Decoder::new(head)?)?;
        return Ok(Input::new(inflated, 0, Container::Zstd));
    }
    if head.starts_with(LIBVIRT_PARTIAL) {
        return Err(invalid(
            "libvirt save image is incomplete (magic LibvirtQemudPart: the save never finished)"
                .into(),
        ));
    }
    if head.starts_with(LIBVIRT_MAGIC) {
        return unwrap_libvirt(bytes, start);
    }
    Ok(Input::new(bytes, start, Container::Raw))
}

/// Decompresses into an unlinked temporary file and maps it: memory stays bounded.
fn inflate(mut decoder: impl Read) -> io::Result<Bytes> {
    let mut file = tempfile::tempfile()?;
    let mut out = io::BufWriter::new(&mut file);
    io::copy(&mut decoder, &mut out).map_err(|e| invalid(format!("decompressing: {e}")))?;
    out.flush()?;
    drop(out);
    file.rewind()?;
    map_or_read(file)
}

fn unwrap_libvirt(bytes: Bytes, start: usize) -> io::Result<Input> {
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
            let mut inner = unwrap_container(bytes, stream_start)?;
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
