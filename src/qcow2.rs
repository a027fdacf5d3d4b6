//! qcow2 internal snapshots: where the VM state that HMP `savevm TAG` stores in a qcow2
//! image lives, found through the image's header, snapshot table and the snapshot's own
//! L1/L2 tables (QEMU's docs/interop/qcow2.rst; block/qcow2.h and qcow2-snapshot.c).
//!
//! QEMU writes the VM state into the image's virtual address space, past the guest disk:
//! at the first L1 entry boundary after the disk's size at the time of the snapshot
//! (`qcow2_vm_state_offset`). Reading it back is a walk of that range through the
//! snapshot's L1 table, cluster by cluster. This module only locates the bytes: it yields
//! [`Extent`]s (stored runs of the file, or zeros) and never copies; `input` assembles them.
//!
//! Every field read is bounds-checked against the image, and every error names the byte
//! offset of the field (or table entry) that is wrong.

use std::io;

/// `QCOW_MAGIC`: "QFI" and 0xfb.
pub const MAGIC: &[u8] = b"QFI\xfb";

// Header field offsets (QCowHeader in block/qcow2.h; all fields big-endian).
const VERSION_AT: u64 = 4;
const CLUSTER_BITS_AT: u64 = 20;
const SIZE_AT: u64 = 24;
const CRYPT_METHOD_AT: u64 = 32;
const NB_SNAPSHOTS_AT: u64 = 60;
const SNAPSHOTS_OFFSET_AT: u64 = 64;
/// Version 3 only; version 2 headers end here (72 bytes).
const INCOMPATIBLE_FEATURES_AT: u64 = 72;

/// `MIN_CLUSTER_BITS` and `MAX_CLUSTER_BITS`.
const CLUSTER_BITS: std::ops::RangeInclusive<u32> = 9..=21;
/// `QCOW_MAX_SNAPSHOTS`.
const MAX_SNAPSHOTS: u32 = 65536;
/// `QCOW_MAX_L1_SIZE` in entries (32 MiB of 8-byte entries).
const MAX_L1_ENTRIES: u32 = (32 << 20) / 8;

// Incompatible feature bits (QCOW2_INCOMPAT_*).
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// A compression type other than zlib: only compressed clusters use it, and those are
/// refused one by one anyway.
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;

const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// `QCOW_OFLAG_COMPRESSED`.
const L2E_COMPRESSED: u64 = 1 << 62;
/// `QCOW_OFLAG_ZERO` (version 3): the cluster reads as zeros.
const L2E_ZERO: u64 = 1;
/// Bytes of one (normal) L1 or L2 entry.
const ENTRY: u64 = 8;

/// `QCowSnapshotHeader`: the fixed part of a snapshot table entry.
const SNAPSHOT_HEADER_LEN: u64 = 40;

/// A parsed qcow2 image: its header fields and snapshot table, over the image's bytes.
pub struct Image<'a> {
    data: &'a [u8],
    pub version: u32,
    pub cluster_bits: u32,
    /// The guest disk's current size in bytes.
    pub size: u64,
    pub snapshots: Vec<Snapshot>,
}

/// One entry of the snapshot table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub l1_table_offset: u64,
    pub l1_size: u32,
    /// Bytes of VM state (`vm_state_size_large` when the entry's extra data has it).
    pub vm_state_size: u64,
    /// The guest disk's size when the snapshot was taken, which places the VM state.
    pub disk_size: u64,
    /// Where this entry starts in the image, for errors.
    pub entry_offset: u64,
}

/// A run of the VM state: bytes stored in the image file, or zeros (unallocated clusters
/// and clusters with the zero flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    Stored { host: u64, len: u64 },
    Zeros(u64),
}

impl Extent {
    /// Bytes of VM state this run covers.
    pub fn size(&self) -> u64 {
        match *self {
            Extent::Stored { len, .. } | Extent::Zeros(len) => len,
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `N` bytes of the image at `offset`, or an error naming `what`.
fn field<const N: usize>(data: &[u8], offset: u64, what: &str) -> io::Result<[u8; N]> {
    usize::try_from(offset)
        .ok()
        .and_then(|o| data.get(o..o.checked_add(N)?))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            invalid(format!(
                "qcow2 image truncated: {what} at byte {offset:#x} needs {N} bytes, the image has {}",
                data.len()
            ))
        })
}

fn be16(data: &[u8], offset: u64, what: &str) -> io::Result<u16> {
    field(data, offset, what).map(u16::from_be_bytes)
}

fn be32(data: &[u8], offset: u64, what: &str) -> io::Result<u32> {
    field(data, offset, what).map(u32::from_be_bytes)
}

fn be64(data: &[u8], offset: u64, what: &str) -> io::Result<u64> {
    field(data, offset, what).map(u64::from_be_bytes)
}

/// Whether `head` starts like a qcow2 image.
pub fn is_qcow2(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

impl<'a> Image<'a> {
    /// Reads the header and snapshot table; refuses what would make the VM state unreadable
    /// (encryption, an external data file, extended L2 entries, unknown features).
    pub fn parse(data: &'a [u8]) -> io::Result<Image<'a>> {
        if !is_qcow2(data) {
            return Err(invalid(
                "not a qcow2 image (no QFI\\xfb magic at byte 0)".into(),
            ));
        }
        let version = be32(data, VERSION_AT, "header version")?;
        if !(2..=3).contains(&version) {
            return Err(invalid(format!(
                "qcow2 version {version} at byte {VERSION_AT:#x}: migdiff reads versions 2 and 3"
            )));
        }
        let cluster_bits = be32(data, CLUSTER_BITS_AT, "header cluster_bits")?;
        if !CLUSTER_BITS.contains(&cluster_bits) {
            return Err(invalid(format!(
                "qcow2 cluster_bits {cluster_bits} at byte {CLUSTER_BITS_AT:#x} is outside \
                 {}..={} (clusters of 512 bytes to 2 MiB)",
                CLUSTER_BITS.start(),
                CLUSTER_BITS.end()
            )));
        }
        let crypt_method = be32(data, CRYPT_METHOD_AT, "header crypt_method")?;
        if crypt_method != 0 {
            let how = match crypt_method {
                1 => "AES",
                2 => "LUKS",
                _ => "an unknown method",
            };
            return Err(invalid(format!(
                "qcow2 image is encrypted (crypt_method {crypt_method}, {how}, at byte \
                 {CRYPT_METHOD_AT:#x}): every cluster, the VM state's too, needs the key; \
                 migdiff reads unencrypted images only"
            )));
        }
        if version >= 3 {
            check_features(be64(
                data,
                INCOMPATIBLE_FEATURES_AT,
                "header incompatible_features",
            )?)?;
        }
        let size = be64(data, SIZE_AT, "header size")?;
        let image = Image {
            data,
            version,
            cluster_bits,
            size,
            snapshots: Vec::new(),
        };
        let snapshots = image.read_snapshots()?;
        Ok(Image { snapshots, ..image })
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Bits of guest address one L2 table covers: the cluster's bits and the table's index.
    fn l1_shift(&self) -> u32 {
        // An L2 table is one cluster of 8-byte entries.
        self.cluster_bits + (self.cluster_bits - 3)
    }

    fn read_snapshots(&self) -> io::Result<Vec<Snapshot>> {
        let data = self.data;
        let count = be32(data, NB_SNAPSHOTS_AT, "header nb_snapshots")?;
        if count > MAX_SNAPSHOTS {
            return Err(invalid(format!(
                "qcow2 header nb_snapshots {count} at byte {NB_SNAPSHOTS_AT:#x} is over \
                 QEMU's limit of {MAX_SNAPSHOTS}"
            )));
        }
        let mut at = be64(data, SNAPSHOTS_OFFSET_AT, "header snapshots_offset")?;
        let mut snapshots = Vec::with_capacity(count.min(64) as usize);
        for index in 0..count {
            // Entries start 8-byte aligned.
            let entry = at.checked_next_multiple_of(8).unwrap_or(u64::MAX);
            let what = |field: &str| format!("snapshot table entry {index} {field}");
            let l1_table_offset = be64(data, entry, &what("l1_table_offset"))?;
            let l1_size = be32(data, entry + 8, &what("l1_size"))?;
            let id_len = be16(data, entry + 12, &what("id_str_size"))?;
            let name_len = be16(data, entry + 14, &what("name_size"))?;
            let small_vm_state = be32(data, entry + 32, &what("vm_state_size"))?;
            let extra_len = be32(data, entry + 36, &what("extra_data_size"))?;
            let extra = entry + SNAPSHOT_HEADER_LEN;
            // QCowSnapshotExtraData: vm_state_size_large, disk_size, icount, as far as present.
            let vm_state_size = if extra_len >= 8 {
                be64(data, extra, &what("vm_state_size_large"))?
            } else {
                u64::from(small_vm_state)
            };
            let disk_size = if extra_len >= 16 {
                be64(data, extra + 8, &what("disk_size"))?
            } else {
                // QEMU takes the image's size for entries written before disk_size existed.
                self.size
            };
            let id_at = extra + u64::from(extra_len);
            let id = self.text(id_at, id_len, &what("id_str"))?;
            let name_at = id_at + u64::from(id_len);
            let name = self.text(name_at, name_len, &what("name"))?;
            at = name_at + u64::from(name_len);
            snapshots.push(Snapshot {
                id,
                name,
                l1_table_offset,
                l1_size,
                vm_state_size,
                disk_size,
                entry_offset: entry,
            });
        }
        Ok(snapshots)
    }

    fn text(&self, offset: u64, len: u16, what: &str) -> io::Result<String> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|o| self.data.get(o..o.checked_add(usize::from(len))?))
            .ok_or_else(|| {
                invalid(format!(
                    "qcow2 image truncated: {what} at byte {offset:#x} needs {len} bytes, the \
                     image has {}",
                    self.data.len()
                ))
            })?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// The snapshot named `tag`, or else the one whose id is `tag` (a name wins over an id,
    /// since names are what `savevm` and `loadvm` take).
    pub fn snapshot(&self, tag: &str) -> io::Result<&Snapshot> {
        let found = self
            .snapshots
            .iter()
            .find(|s| s.name == tag)
            .or_else(|| self.snapshots.iter().find(|s| s.id == tag));
        found.ok_or_else(|| {
            invalid(format!(
                "no internal snapshot '{tag}' (by name or id) in this qcow2 image; {}",
                self.list_snapshots()
            ))
        })
    }

    /// "it has: 1 'a' (387 KiB of VM state), ..." for errors that ask for a tag.
    pub fn list_snapshots(&self) -> String {
        if self.snapshots.is_empty() {
            return "it has no internal snapshots (HMP `savevm TAG` makes one)".into();
        }
        let listed: Vec<String> = self
            .snapshots
            .iter()
            .map(|s| {
                let state = if s.vm_state_size == 0 {
                    "disk only".to_string()
                } else {
                    format!("{} bytes of VM state", s.vm_state_size)
                };
                format!("id {} '{}' ({state})", s.id, s.name)
            })
            .collect();
        format!("it has: {}", listed.join(", "))
    }

    /// Where `snapshot`'s VM state starts in the image's virtual address space: past the
    /// guest disk as it was then, rounded up to what one L1 entry covers.
    pub fn vm_state_offset(&self, snapshot: &Snapshot) -> io::Result<u64> {
        let covered = 1u64 << self.l1_shift();
        snapshot
            .disk_size
            .div_ceil(covered)
            .checked_mul(covered)
            .ok_or_else(|| {
                invalid(format!(
                    "snapshot '{}' (id {}, table entry at byte {:#x}): disk_size {} leaves no \
                     room for VM state in a 64-bit address space",
                    snapshot.name, snapshot.id, snapshot.entry_offset, snapshot.disk_size
                ))
            })
    }

    /// The runs that make up `snapshot`'s VM state, in order, each as long as it can be.
    /// Checked as they are walked: an error names the table entry that is wrong, and ends
    /// the walk.
    pub fn vm_state<'i>(&'i self, snapshot: &'i Snapshot) -> io::Result<Extents<'i, 'a>> {
        let snap = format!("snapshot '{}' (id {})", snapshot.name, snapshot.id);
        if snapshot.vm_state_size == 0 {
            return Err(invalid(format!(
                "{snap} has no VM state: it saved the disk only (`qemu-img snapshot -c` or \
                 blockdev-snapshot-internal-sync); HMP `savevm` saves the VM state too"
            )));
        }
        let l1_field = snapshot.entry_offset;
        if snapshot.l1_size > MAX_L1_ENTRIES {
            return Err(invalid(format!(
                "{snap}: l1_size {} at byte {:#x} is over QEMU's limit of {MAX_L1_ENTRIES} entries",
                snapshot.l1_size,
                l1_field + 8
            )));
        }
        if snapshot.l1_table_offset % self.cluster_size() != 0 {
            return Err(invalid(format!(
                "{snap}: l1_table_offset {:#x} at byte {l1_field:#x} is not aligned to a \
                 cluster ({} bytes)",
                snapshot.l1_table_offset,
                self.cluster_size()
            )));
        }
        let start = self.vm_state_offset(snapshot)?;
        let end = start.checked_add(snapshot.vm_state_size).ok_or_else(|| {
            invalid(format!(
                "{snap}: vm_state_size {} overflows the image's address space",
                snapshot.vm_state_size
            ))
        })?;
        let last_l1 = (end - 1) >> self.l1_shift();
        if last_l1 >= u64::from(snapshot.l1_size) {
            return Err(invalid(format!(
                "{snap}: its VM state (bytes {start:#x}..{end:#x} of the guest address space) \
                 needs L1 entries up to {last_l1}, and its L1 table (l1_size at byte {:#x}) has \
                 only {}",
                l1_field + 8,
                snapshot.l1_size
            )));
        }
        Ok(Extents {
            image: self,
            snapshot,
            start,
            pos: start,
            end,
            stored: 0,
        })
    }

    /// What the guest address `at` of `snapshot` holds: its cluster up to `end`, or, when
    /// the whole L2 table is unallocated, zeros up to the next L1 entry (so a hostile
    /// state of unallocated tables is walked a table at a time, not a cluster at a time).
    fn cluster(&self, snapshot: &Snapshot, start: u64, at: u64, end: u64) -> io::Result<Extent> {
        let up_to = |bits: u32| ((at | ((1 << bits) - 1)) + 1).min(end) - at;
        let len = up_to(self.cluster_bits);
        let where_ = || {
            format!(
                "snapshot '{}': VM state byte {:#x} (guest offset {at:#x})",
                snapshot.name,
                at - start
            )
        };
        let l1_at = snapshot
            .l1_table_offset
            .saturating_add((at >> self.l1_shift()) * ENTRY);
        let l1_entry = be64(self.data, l1_at, "L1 table entry")
            .map_err(|e| invalid(format!("{}: {e}", where_())))?;
        let l2_table = l1_entry & L1E_OFFSET_MASK;
        if l2_table == 0 {
            return Ok(Extent::Zeros(up_to(self.l1_shift())));
        }
        if l2_table % self.cluster_size() != 0 {
            return Err(invalid(format!(
                "{}: L1 entry at byte {l1_at:#x} ({l1_entry:#018x}) points to an L2 table at \
                 {l2_table:#x}, not aligned to a cluster ({} bytes)",
                where_(),
                self.cluster_size()
            )));
        }
        let index = (at >> self.cluster_bits) & ((self.cluster_size() / ENTRY) - 1);
        let l2_at = l2_table + index * ENTRY;
        let l2_entry = be64(self.data, l2_at, "L2 table entry").map_err(|e| {
            invalid(format!(
                "{}: L1 entry at byte {l1_at:#x} points to an L2 table at {l2_table:#x}: {e}",
                where_()
            ))
        })?;
        if l2_entry & L2E_COMPRESSED != 0 {
            return Err(invalid(format!(
                "{}: the cluster is compressed (L2 entry at byte {l2_at:#x}: {l2_entry:#018x}); \
                 migdiff reads uncompressed VM state only, and QEMU never compresses what \
                 savevm writes",
                where_()
            )));
        }
        if self.version >= 3 && l2_entry & L2E_ZERO != 0 {
            return Ok(Extent::Zeros(len));
        }
        let host = l2_entry & L2E_OFFSET_MASK;
        if host == 0 {
            return Ok(Extent::Zeros(len));
        }
        if host % self.cluster_size() != 0 {
            return Err(invalid(format!(
                "{}: L2 entry at byte {l2_at:#x} ({l2_entry:#018x}) points to data at \
                 {host:#x}, not aligned to a cluster ({} bytes)",
                where_(),
                self.cluster_size()
            )));
        }
        if host.saturating_add(len) > self.data.len() as u64 {
            return Err(invalid(format!(
                "{}: L2 entry at byte {l2_at:#x} ({l2_entry:#018x}) points to data at \
                 {host:#x}, past the end of the image ({} bytes)",
                where_(),
                self.data.len()
            )));
        }
        Ok(Extent::Stored { host, len })
    }
}

/// Refuses the incompatible features that change where or how clusters are stored.
fn check_features(bits: u64) -> io::Result<()> {
    let at = INCOMPATIBLE_FEATURES_AT;
    if bits & INCOMPAT_DATA_FILE != 0 {
        return Err(invalid(format!(
            "qcow2 image has an external data file (incompatible feature bit 2 at byte {at:#x}): \
             its clusters live in another file, which migdiff does not follow"
        )));
    }
    if bits & INCOMPAT_EXTL2 != 0 {
        return Err(invalid(format!(
            "qcow2 image has extended L2 entries (subclusters; incompatible feature bit 4 at \
             byte {at:#x}), which migdiff does not read"
        )));
    }
    let known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION;
    let unknown = bits & !known;
    if unknown != 0 {
        return Err(invalid(format!(
            "qcow2 image has unknown incompatible features {unknown:#x} (at byte {at:#x}): \
             a newer qcow2 than migdiff reads"
        )));
    }
    Ok(())
}

/// The [`Extent`]s of one snapshot's VM state, from [`Image::vm_state`]: walked lazily, so
/// memory does not grow with the state's size, with neighbouring clusters merged.
pub struct Extents<'i, 'a> {
    image: &'i Image<'a>,
    snapshot: &'i Snapshot,
    start: u64,
    pos: u64,
    end: u64,
    /// Bytes of stored runs so far: QEMU writes each cluster of VM state once, so they
    /// cannot add up to more than the image; tables that point at the same clusters again
    /// and again (a small image claiming gigabytes) stop here.
    stored: u64,
}

impl Extents<'_, '_> {
    fn at(&self, pos: u64) -> io::Result<Extent> {
        self.image.cluster(self.snapshot, self.start, pos, self.end)
    }

    /// The longest run from `pos`, which it moves past.
    fn run(&mut self) -> io::Result<Extent> {
        let (from, mut run) = (self.pos, self.at(self.pos)?);
        self.pos += run.size();
        while self.pos < self.end {
            // An error in the next cluster is reported by the next call.
            let Ok(next) = self.at(self.pos) else { break };
            run = match (run, next) {
                (Extent::Zeros(a), Extent::Zeros(b)) => Extent::Zeros(a + b),
                (Extent::Stored { host, len }, Extent::Stored { host: h, len: b })
                    if host + len == h =>
                {
                    Extent::Stored { host, len: len + b }
                }
                _ => break,
            };
            self.pos += next.size();
        }
        if let Extent::Stored { len, .. } = run {
            self.stored += len;
            let image_len = self.image.data.len() as u64;
            if self.stored > image_len {
                return Err(invalid(format!(
                    "snapshot '{}': VM state byte {:#x} (guest offset {from:#x}): its L2 \
                     entries point to {} bytes of stored VM state so far, more than the whole \
                     image ({image_len} bytes): they reference the same clusters again",
                    self.snapshot.name,
                    from - self.start,
                    self.stored
                )));
            }
        }
        Ok(run)
    }
}

impl Iterator for Extents<'_, '_> {
    type Item = io::Result<Extent>;

    fn next(&mut self) -> Option<io::Result<Extent>> {
        if self.pos >= self.end {
            return None;
        }
        let run = self.run();
        if run.is_err() {
            self.pos = self.end;
        }
        Some(run)
    }
}
