//! A virtio-pci device's `virtio` blob, field by field in the order QEMU writes it
//! (hw/virtio/virtio.c `virtio_save`, with hw/virtio/virtio-pci.c's `save_config` and
//! `save_queue`): the PCI device state and MSI-X table, the device status and feature bits,
//! the device's config, one row per virtqueue, then the `virtio/...` subsections of
//! `vmstate_virtio`. The device's own state between the queues and the subsections has no
//! description in the stream: it stays bytes.
//!
//! Status and feature bit names are the virtio spec's (Linux's virtio_config.h,
//! virtio_net.h, virtio_blk.h, which QEMU carries in include/standard-headers/linux/).

use super::flags::{bit, FlagWord};
use super::pci::{self, VIRTIO_VENDOR};
use super::{be, le, Layout, Reading, Span};

// Device status (virtio_config.h VIRTIO_CONFIG_S_*).
const STATUS: FlagWord = FlagWord {
    parts: &[
        bit(0, "ACKNOWLEDGE"),
        bit(1, "DRIVER"),
        bit(2, "DRIVER_OK"),
        bit(3, "FEATURES_OK"),
        bit(6, "NEEDS_RESET"),
        bit(7, "FAILED"),
    ],
    fixed: 0,
};

// Transport feature bits, the same for every device (virtio_config.h VIRTIO_F_*, and
// VIRTIO_RING_F_* of virtio_ring.h).
const TRANSPORT: FlagWord = FlagWord {
    parts: &[
        bit(24, "VIRTIO_F_NOTIFY_ON_EMPTY"),
        bit(27, "VIRTIO_F_ANY_LAYOUT"),
        bit(28, "VIRTIO_RING_F_INDIRECT_DESC"),
        bit(29, "VIRTIO_RING_F_EVENT_IDX"),
        bit(30, "VIRTIO_F_BAD_FEATURE"),
        bit(32, "VIRTIO_F_VERSION_1"),
        bit(33, "VIRTIO_F_ACCESS_PLATFORM"),
        bit(34, "VIRTIO_F_RING_PACKED"),
        bit(35, "VIRTIO_F_IN_ORDER"),
        bit(36, "VIRTIO_F_ORDER_PLATFORM"),
        bit(37, "VIRTIO_F_SR_IOV"),
        bit(38, "VIRTIO_F_NOTIFICATION_DATA"),
        bit(39, "VIRTIO_F_NOTIF_CONFIG_DATA"),
        bit(40, "VIRTIO_F_RING_RESET"),
        bit(41, "VIRTIO_F_ADMIN_VQ"),
    ],
    fixed: 0,
};

// virtio-net feature bits (virtio_net.h VIRTIO_NET_F_*).
const NET: FlagWord = FlagWord {
    parts: &[
        bit(0, "VIRTIO_NET_F_CSUM"),
        bit(1, "VIRTIO_NET_F_GUEST_CSUM"),
        bit(2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"),
        bit(3, "VIRTIO_NET_F_MTU"),
        bit(5, "VIRTIO_NET_F_MAC"),
        bit(6, "VIRTIO_NET_F_GSO"),
        bit(7, "VIRTIO_NET_F_GUEST_TSO4"),
        bit(8, "VIRTIO_NET_F_GUEST_TSO6"),
        bit(9, "VIRTIO_NET_F_GUEST_ECN"),
        bit(10, "VIRTIO_NET_F_GUEST_UFO"),
        bit(11, "VIRTIO_NET_F_HOST_TSO4"),
        bit(12, "VIRTIO_NET_F_HOST_TSO6"),
        bit(13, "VIRTIO_NET_F_HOST_ECN"),
        bit(14, "VIRTIO_NET_F_HOST_UFO"),
        bit(15, "VIRTIO_NET_F_MRG_RXBUF"),
        bit(16, "VIRTIO_NET_F_STATUS"),
        bit(17, "VIRTIO_NET_F_CTRL_VQ"),
        bit(18, "VIRTIO_NET_F_CTRL_RX"),
        bit(19, "VIRTIO_NET_F_CTRL_VLAN"),
        bit(20, "VIRTIO_NET_F_CTRL_RX_EXTRA"),
        bit(21, "VIRTIO_NET_F_GUEST_ANNOUNCE"),
        bit(22, "VIRTIO_NET_F_MQ"),
        bit(23, "VIRTIO_NET_F_CTRL_MAC_ADDR"),
        bit(50, "VIRTIO_NET_F_DEVICE_STATS"),
        bit(52, "VIRTIO_NET_F_VQ_NOTF_COAL"),
        bit(53, "VIRTIO_NET_F_NOTF_COAL"),
        bit(54, "VIRTIO_NET_F_GUEST_USO4"),
        bit(55, "VIRTIO_NET_F_GUEST_USO6"),
        bit(56, "VIRTIO_NET_F_HOST_USO"),
        bit(57, "VIRTIO_NET_F_HASH_REPORT"),
        bit(59, "VIRTIO_NET_F_GUEST_HDRLEN"),
        bit(60, "VIRTIO_NET_F_RSS"),
        bit(61, "VIRTIO_NET_F_RSC_EXT"),
        bit(62, "VIRTIO_NET_F_STANDBY"),
        bit(63, "VIRTIO_NET_F_SPEED_DUPLEX"),
    ],
    fixed: 0,
};

// virtio-blk feature bits (virtio_blk.h VIRTIO_BLK_F_*).
const BLK: FlagWord = FlagWord {
    parts: &[
        bit(0, "VIRTIO_BLK_F_BARRIER"),
        bit(1, "VIRTIO_BLK_F_SIZE_MAX"),
        bit(2, "VIRTIO_BLK_F_SEG_MAX"),
        bit(4, "VIRTIO_BLK_F_GEOMETRY"),
        bit(5, "VIRTIO_BLK_F_RO"),
        bit(6, "VIRTIO_BLK_F_BLK_SIZE"),
        bit(7, "VIRTIO_BLK_F_SCSI"),
        bit(9, "VIRTIO_BLK_F_FLUSH"),
        bit(10, "VIRTIO_BLK_F_TOPOLOGY"),
        bit(11, "VIRTIO_BLK_F_CONFIG_WCE"),
        bit(12, "VIRTIO_BLK_F_MQ"),
        bit(13, "VIRTIO_BLK_F_DISCARD"),
        bit(14, "VIRTIO_BLK_F_WRITE_ZEROES"),
        bit(15, "VIRTIO_BLK_F_LIFETIME"),
        bit(16, "VIRTIO_BLK_F_SECURE_ERASE"),
        bit(17, "VIRTIO_BLK_F_ZONED"),
    ],
    fixed: 0,
};

/// The feature words of a virtio device type (virtio spec 5: 1 network, 2 block).
fn features(device_type: u64) -> &'static [&'static FlagWord] {
    match device_type {
        1 => &[&TRANSPORT, &NET],
        2 => &[&TRANSPORT, &BLK],
        _ => &[&TRANSPORT],
    }
}

/// The virtio device type a virtio-pci function is: modern IDs are 0x1040 + type,
/// transitional ones 0x1000.. with the type in the subsystem ID (virtio spec 4.1.2.1).
fn device_type(config: &[u8]) -> Option<u64> {
    match le(config, 2, 2)? {
        id @ 0x1040..=0x107f => Some(id - 0x1040),
        0x1000..=0x103f => le(config, 0x2e, 2),
        _ => None,
    }
}

/// Reads the blob front to back, each read a named span.
struct Cursor<'b> {
    bytes: &'b [u8],
    at: usize,
    spans: Vec<Span>,
}

impl<'b> Cursor<'b> {
    /// A big-endian number of `len` bytes, named.
    fn number(&mut self, len: usize, name: impl Into<String>) -> Option<u64> {
        let v = be(self.bytes, self.at, len)?;
        self.push(len, name, Reading::Number(v));
        Some(v)
    }

    fn push(&mut self, len: usize, name: impl Into<String>, reading: Reading) {
        self.spans
            .push(Span::new(self.at..self.at + len, name, reading));
        self.at += len;
    }

    /// `len` bytes read elsewhere or not at all.
    fn take(&mut self, len: usize) -> Option<&'b [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(slice)
    }
}

/// The PCI config space a virtio-pci blob starts with (after vmstate_pci_device's
/// version_id); None for another transport.
pub fn config_space(bytes: &[u8]) -> Option<&[u8]> {
    if be(bytes, 0, 4)? != 2 || le(bytes, 4, 2)? != VIRTIO_VENDOR {
        return None;
    }
    let caps = pci::capabilities(bytes.get(4..4 + 256)?);
    // A PCI Express function has the 4 KiB extended config space (pci_config_size).
    let size = if caps.iter().any(|(_, id)| *id == 0x10) {
        4096
    } else {
        256
    };
    bytes.get(4..4 + size)
}

/// The parts of a virtio-pci blob; None for another transport or a blob this reading does
/// not fit (what is past the point it stops fitting is not guessed).
pub fn layout(bytes: &[u8]) -> Option<Layout> {
    let mut c = Cursor {
        bytes,
        at: 0,
        spans: Vec::new(),
    };
    // pci_device_save: vmstate_pci_device's version_id, config space, irq_state.
    let config = config_space(bytes)?;
    let device_type = device_type(config)?;
    let caps = pci::capabilities(config);
    c.number(4, "pci version_id")?;
    c.take(config.len())?;
    for mut span in pci::layout(config).spans {
        span.range = span.range.start + 4..span.range.end + 4;
        span.name = format!("pci {}", span.name);
        c.spans.push(span);
    }
    for i in 0..4 {
        c.number(4, format!("pci irq_state[{i}]"))?;
    }
    // msix_save: the table (16 bytes an entry) and the pending bits, then the config
    // vector; all only with MSI-X.
    let msix = caps.iter().find(|(_, id)| *id == 0x11).map(|(at, _)| *at);
    let vectors = match msix {
        Some(at) => Some(usize::try_from(le(config, at + 2, 2)? & 0x7ff).ok()? + 1),
        None => None,
    };
    if let Some(n) = vectors {
        for i in 0..n {
            let entry = c.bytes.get(c.at..c.at + 16)?;
            let address = le(entry, 0, 8)?;
            let data = le(entry, 8, 4)?;
            let masked = if le(entry, 12, 4)? & 1 == 1 {
                ", masked"
            } else {
                ""
            };
            let text = format!("address {address:#x} data {data:#x}{masked}");
            c.push(16, format!("msix vector {i}"), Reading::Text(text));
        }
        c.push(n.div_ceil(8), "msix pending bits", Reading::Opaque);
        c.number(2, "config_vector")?;
    }
    // virtio_save.
    let status = be(bytes, c.at, 1)?;
    c.push(1, "status", Reading::Flags(status, &[&STATUS]));
    c.number(1, "isr")?;
    c.number(2, "queue_sel")?;
    let low = be(bytes, c.at, 4)?;
    c.push(
        4,
        "guest_features (low 32)",
        Reading::Flags(low, features(device_type)),
    );
    let config_len = usize::try_from(c.number(4, "config_len")?).ok()?;
    device_config(&mut c, device_type, config_len)?;
    let queues = usize::try_from(c.number(4, "queues")?).ok()?;
    for i in 0..queues {
        let (num, desc, last_avail) = (
            be(bytes, c.at, 4)?,
            be(bytes, c.at + 4, 8)?,
            be(bytes, c.at + 12, 2)?,
        );
        let mut text = format!("num {num} desc {desc:#x} last_avail_idx {last_avail}");
        let mut len = 14;
        if vectors.is_some() {
            text.push_str(&format!(" vector {}", vector(be(bytes, c.at + 14, 2)?)));
            len += 2;
        }
        c.push(len, format!("queue {i}"), Reading::Text(text));
    }
    let start = c.at;
    let subsections = find_subsections(bytes, start);
    if subsections > start {
        c.push(subsections - start, "device state", Reading::Opaque);
    }
    if subsections < bytes.len() {
        read_subsections(&mut c, queues, device_type);
    }
    if c.at < bytes.len() {
        c.spans
            .push(Span::new(c.at..bytes.len(), "rest", Reading::Opaque));
    }
    Some(Layout { spans: c.spans })
}

/// `VIRTIO_NO_VECTOR` (0xffff) reads as `none`.
fn vector(v: u64) -> String {
    if v == 0xffff {
        "none".into()
    } else {
        v.to_string()
    }
}

/// The device's config space (little-endian, virtio 1.0): what net and block devices put
/// first (virtio spec 5.1.4, 5.2.4); the rest is bytes.
fn device_config(c: &mut Cursor<'_>, device_type: u64, len: usize) -> Option<()> {
    let end = c.at.checked_add(len)?;
    c.bytes.get(c.at..end)?;
    match device_type {
        1 if len >= 8 => {
            let mac = c.bytes.get(c.at..c.at + 6)?;
            let text = mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            c.push(6, "config mac", Reading::Text(text));
            let link = le(c.bytes, c.at, 2)?;
            let text = if link & 1 == 1 {
                "link up"
            } else {
                "link down"
            };
            c.push(2, "config status", Reading::Text(text.into()));
        }
        2 if len >= 8 => {
            let sectors = le(c.bytes, c.at, 8)?;
            c.push(
                8,
                "config capacity (512-byte sectors)",
                Reading::Number(sectors),
            );
        }
        _ => {}
    }
    if end > c.at {
        c.push(end - c.at, "config", Reading::Opaque);
    }
    Some(())
}

/// The subsections of `vmstate_virtio` QEMU may send, in the order it sends them.
const SUBSECTIONS: &[&str] = &[
    "virtio/device_endian",
    "virtio/128bit_features",
    "virtio/64bit_features",
    "virtio/virtqueues",
    "virtio/ringsize",
    "virtio/broken",
    "virtio/extra_state",
    "virtio/started",
    "virtio/packed_virtqueues",
    "virtio/disabled",
];

/// Where the first `virtio/...` subsection header is (0x05, name length, name): after the
/// device's own state, which no description sizes; the end when there is none.
fn find_subsections(bytes: &[u8], from: usize) -> usize {
    (from..bytes.len())
        .find(|&at| subsection_at(bytes, at).is_some())
        .unwrap_or(bytes.len())
}

/// The known subsection whose header starts at `at`, and the header's length.
fn subsection_at(bytes: &[u8], at: usize) -> Option<(&'static str, usize)> {
    if *bytes.get(at)? != 0x05 {
        return None;
    }
    let len = usize::from(*bytes.get(at + 1)?);
    let name = bytes.get(at + 2..at + 2 + len)?;
    let known = SUBSECTIONS.iter().find(|s| s.as_bytes() == name)?;
    Some((known, 2 + len + 4))
}

/// The queues a device may have (include/hw/virtio/virtio.h VIRTIO_QUEUE_MAX): the
/// per-queue subsections send a row for every one.
const QUEUE_MAX: usize = 1024;

/// The rows of a per-queue subsection past the device's queues, as one span.
fn unused_queues(c: &mut Cursor<'_>, queues: usize, row: usize, what: &str) -> Option<()> {
    let rest = QUEUE_MAX.checked_sub(queues)?;
    if rest > 0 {
        let len = rest.checked_mul(row)?;
        c.bytes.get(c.at..c.at.checked_add(len)?)?;
        let name = format!("queues {queues}-{} {what}", QUEUE_MAX - 1);
        c.push(len, name, Reading::Opaque);
    }
    Some(())
}

/// Each subsection's header and fields, while they are ones this module knows.
fn read_subsections(c: &mut Cursor<'_>, queues: usize, device_type: u64) -> Option<()> {
    while let Some((name, header)) = subsection_at(c.bytes, c.at) {
        c.push(header, name, Reading::Opaque);
        match name {
            "virtio/device_endian" => {
                // VIRTIO_DEVICE_ENDIAN_* of include/hw/virtio/virtio.h.
                let text = match be(c.bytes, c.at, 1)? {
                    1 => "little",
                    2 => "big",
                    _ => "unknown",
                };
                c.push(1, "device_endian", Reading::Text(text.into()));
            }
            "virtio/64bit_features" => {
                let v = be(c.bytes, c.at, 8)?;
                c.push(
                    8,
                    "guest_features",
                    Reading::Flags(v, features(device_type)),
                );
            }
            "virtio/128bit_features" => {
                c.number(8, "guest_features (bits 64-127)")?;
            }
            "virtio/virtqueues" => {
                for i in 0..queues {
                    let (avail, used) = (be(c.bytes, c.at, 8)?, be(c.bytes, c.at + 8, 8)?);
                    let text = format!("avail {avail:#x} used {used:#x}");
                    c.push(16, format!("queue {i} rings"), Reading::Text(text));
                }
                unused_queues(c, queues, 16, "rings")?;
            }
            "virtio/ringsize" => {
                for i in 0..queues {
                    c.number(4, format!("queue {i} num_default"))?;
                }
                unused_queues(c, queues, 4, "num_default")?;
            }
            "virtio/packed_virtqueues" => {
                for i in 0..queues {
                    c.push(10, format!("queue {i} packed state"), Reading::Opaque);
                }
                unused_queues(c, queues, 10, "packed state")?;
            }
            "virtio/broken" | "virtio/started" | "virtio/disabled" => {
                let v = be(c.bytes, c.at, 1)?;
                let field = name.trim_start_matches("virtio/");
                c.push(1, field, Reading::Text((v != 0).to_string()));
            }
            // The transport's own state (virtio-pci's modern_state with a row for each of
            // the 1024 possible queues): up to the next subsection.
            _ => {
                let next = find_subsections(c.bytes, c.at);
                c.push(next - c.at, "transport state", Reading::Opaque);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_transport_is_not_read() {
        assert_eq!(layout(&[]), None);
        assert_eq!(layout(&[0, 0, 0, 2, 0x86, 0x80]), None);
        assert_eq!(layout(&[0, 0, 0, 3]), None);
    }

    #[test]
    fn subsection_headers_are_found_by_name() {
        let mut bytes = vec![0xff, 0x05, 3, b'a', b'b', b'c'];
        let name = b"virtio/started";
        bytes.extend([0x05, name.len() as u8]);
        bytes.extend(name);
        bytes.extend([0, 0, 0, 1, 1]);
        assert_eq!(find_subsections(&bytes, 0), 6);
        assert_eq!(
            subsection_at(&bytes, 6),
            Some(("virtio/started", 2 + 14 + 4))
        );
    }
}
