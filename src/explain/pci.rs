//! PCI configuration space (a `pci config` field, or the start of a virtio-pci blob): the
//! standard header by register, the BARs, and the capability list walked by ID.
//!
//! Register offsets and bits are the PCI Local Bus spec's, as Linux's `pci_regs.h` (which
//! QEMU carries in include/standard-headers/linux/) names them. Which bytes a destination
//! compares on load is QEMU's hw/pci/pci.c: `get_pci_config_device` refuses a byte that
//! differs under `cmask & ~wmask & ~w1cmask`, masks set by `pci_init_cmask`,
//! `pci_init_wmask`, `pci_init_w1cmask` and `pci_add_capability`.

use std::ops::Range;

use super::flags::{bit, named, num, FlagWord};
use super::{le, Layout, Reading, Span};

/// The standard header's size; capabilities live after it.
const HEADER: usize = 0x40;
/// Offset of the capability pointer.
const CAPABILITY_LIST: usize = 0x34;
/// Status bit 4: the capability list is valid.
const STATUS_CAP_LIST: u8 = 0x10;
/// Capability IDs that need more than their header to read: PCI Local Bus spec, appendix H.
const CAP_PM: u8 = 0x01;
const CAP_MSI: u8 = 0x05;
const CAP_VENDOR: u8 = 0x09;
const CAP_EXP: u8 = 0x10;
const CAP_MSIX: u8 = 0x11;
/// Virtio's vendor ID (virtio spec 4.1.2): its vendor-specific capabilities are virtio's.
pub const VIRTIO_VENDOR: u64 = 0x1af4;

// PCI_COMMAND bits (pci_regs.h PCI_COMMAND_*).
const COMMAND: FlagWord = FlagWord {
    parts: &[
        bit(0, "IO"),
        bit(1, "MEM"),
        bit(2, "BUS_MASTER"),
        bit(3, "SPECIAL"),
        bit(4, "INVALIDATE"),
        bit(5, "VGA_PALETTE"),
        bit(6, "PARITY"),
        bit(7, "WAIT"),
        bit(8, "SERR"),
        bit(9, "FAST_BACK"),
        bit(10, "INTX_DISABLE"),
    ],
    fixed: 0,
};

// PCI_STATUS bits (pci_regs.h PCI_STATUS_*); DEVSEL is a 2-bit timing field.
const STATUS: FlagWord = FlagWord {
    parts: &[
        bit(0, "IMM_READY"),
        bit(3, "INTERRUPT"),
        bit(4, "CAP_LIST"),
        bit(5, "66MHZ"),
        bit(6, "UDF"),
        bit(7, "FAST_BACK"),
        bit(8, "PARITY"),
        named(9, 2, "DEVSEL", &["fast", "medium", "slow"], false),
        bit(11, "SIG_TARGET_ABORT"),
        bit(12, "REC_TARGET_ABORT"),
        bit(13, "REC_MASTER_ABORT"),
        bit(14, "SIG_SYSTEM_ERROR"),
        bit(15, "DETECTED_PARITY"),
    ],
    fixed: 0,
};

// MSI Message Control (pci_regs.h PCI_MSI_FLAGS_*): QMASK is log2 of the vectors the
// function can use, QSIZE of those enabled.
const MSI_FLAGS: FlagWord = FlagWord {
    parts: &[
        bit(0, "ENABLE"),
        num(1, 3, "QMASK", false),
        num(4, 3, "QSIZE", false),
        bit(7, "64BIT"),
        bit(8, "MASKBIT"),
    ],
    fixed: 0,
};

// MSI-X Message Control (pci_regs.h PCI_MSIX_FLAGS_*): QSIZE is the table size minus one.
const MSIX_FLAGS: FlagWord = FlagWord {
    parts: &[
        num(0, 11, "QSIZE", true),
        bit(14, "MASKALL"),
        bit(15, "ENABLE"),
    ],
    fixed: 0,
};

// Power Management Control/Status (pci_regs.h PCI_PM_CTRL_*).
const PM_CTRL: FlagWord = FlagWord {
    parts: &[
        named(0, 2, "state", &["D0", "D1", "D2", "D3hot"], true),
        bit(3, "NO_SOFT_RESET"),
        bit(8, "PME_ENABLE"),
        bit(15, "PME_STATUS"),
    ],
    fixed: 0,
};

/// Capability names by ID (PCI Local Bus spec appendix H; pci_regs.h PCI_CAP_ID_*).
fn capability_name(id: u8) -> Option<&'static str> {
    Some(match id {
        0x01 => "PM",
        0x02 => "AGP",
        0x03 => "VPD",
        0x04 => "slot ID",
        0x05 => "MSI",
        0x06 => "CompactPCI hot swap",
        0x07 => "PCI-X",
        0x08 => "HyperTransport",
        0x09 => "vendor-specific",
        0x0a => "debug port",
        0x0b => "CompactPCI CRC",
        0x0c => "hot plug",
        0x0d => "bridge subsystem ID",
        0x0e => "AGP 8x",
        0x0f => "secure device",
        0x10 => "PCIe",
        0x11 => "MSI-X",
        0x12 => "SATA",
        0x13 => "advanced features",
        0x14 => "enhanced allocation",
        0x15 => "flattening portal bridge",
        _ => return None,
    })
}

/// Virtio structure types of a vendor-specific capability (virtio spec 4.1.4,
/// VIRTIO_PCI_CAP_*_CFG).
fn virtio_cfg_name(cfg_type: u64) -> Option<&'static str> {
    Some(match cfg_type {
        1 => "common",
        2 => "notify",
        3 => "ISR",
        4 => "device",
        5 => "PCI cfg access",
        8 => "shared memory",
        9 => "vendor",
        _ => return None,
    })
}

/// PCIe device/port types (pci_regs.h PCI_EXP_TYPE_*), by the Capabilities register's
/// bits 4-7.
const EXP_TYPES: &[&str] = &[
    "endpoint",
    "legacy endpoint",
    "",
    "",
    "root port",
    "upstream port",
    "downstream port",
    "PCIe to PCI bridge",
    "PCI to PCIe bridge",
    "RC integrated endpoint",
    "RC event collector",
];

/// The capability chain: (offset, ID) from the pointer at 0x34, while the status register
/// says there is one; stops at a pointer into the header, one seen before, or past the
/// space (a damaged chain is read as far as it goes).
pub fn capabilities(config: &[u8]) -> Vec<(usize, u8)> {
    let mut caps: Vec<(usize, u8)> = Vec::new();
    if config.get(6).is_none_or(|s| s & STATUS_CAP_LIST == 0) {
        return caps;
    }
    let mut next = config
        .get(CAPABILITY_LIST)
        .map_or(0, |p| usize::from(p & !3));
    while next >= HEADER && !caps.iter().any(|(at, _)| *at == next) {
        let (Some(&id), Some(&after)) = (config.get(next), config.get(next + 1)) else {
            break;
        };
        caps.push((next, id));
        next = usize::from(after & !3);
    }
    caps
}

/// The named parts of a config space.
pub fn layout(config: &[u8]) -> Layout {
    let mut spans = Vec::new();
    let number = |spans: &mut Vec<Span>, at: usize, len: usize, name: &str| {
        if let Some(v) = le(config, at, len) {
            spans.push(Span::new(at..at + len, name, Reading::Number(v)));
        }
    };
    number(&mut spans, 0x00, 2, "vendor");
    number(&mut spans, 0x02, 2, "device");
    if let Some(v) = le(config, 0x04, 2) {
        spans.push(Span::new(
            0x04..0x06,
            "command",
            Reading::Flags(v, &[&COMMAND]),
        ));
    }
    if let Some(v) = le(config, 0x06, 2) {
        spans.push(Span::new(
            0x06..0x08,
            "status",
            Reading::Flags(v, &[&STATUS]),
        ));
    }
    number(&mut spans, 0x08, 1, "revision");
    number(&mut spans, 0x09, 3, "class");
    number(&mut spans, 0x0c, 1, "cache_line_size");
    number(&mut spans, 0x0d, 1, "latency_timer");
    number(&mut spans, 0x0e, 1, "header_type");
    let bridge = config.get(0x0e).is_some_and(|t| t & 0x7f == 1);
    let bars = if bridge { 2 } else { 6 };
    bar_spans(config, bars, &mut spans);
    if bridge {
        number(&mut spans, 0x18, 1, "primary_bus");
        number(&mut spans, 0x19, 1, "secondary_bus");
        number(&mut spans, 0x1a, 1, "subordinate_bus");
        number(&mut spans, 0x1c, 1, "io_base");
        number(&mut spans, 0x1d, 1, "io_limit");
        number(&mut spans, 0x20, 2, "memory_base");
        number(&mut spans, 0x22, 2, "memory_limit");
        number(&mut spans, 0x24, 2, "pref_memory_base");
        number(&mut spans, 0x26, 2, "pref_memory_limit");
        number(&mut spans, 0x3e, 2, "bridge_control");
    } else {
        number(&mut spans, 0x2c, 2, "subsystem_vendor");
        number(&mut spans, 0x2e, 2, "subsystem");
        number(&mut spans, 0x30, 4, "rom_address");
    }
    number(&mut spans, CAPABILITY_LIST, 1, "capabilities");
    number(&mut spans, 0x3c, 1, "interrupt_line");
    number(&mut spans, 0x3d, 1, "interrupt_pin");
    let virtio = le(config, 0, 2) == Some(VIRTIO_VENDOR);
    for (at, id) in capabilities(config) {
        capability_spans(config, at, id, virtio, &mut spans);
    }
    spans.sort_by_key(|s| s.range.start);
    Layout { spans }
}

/// `BAR0`..: `io 0xc000`, `mem32 0xfebf1000`, `mem64 pref 0xfe000000` (a 64-bit BAR takes
/// the next slot too); an unset BAR reads `0x0`.
fn bar_spans(config: &[u8], count: usize, spans: &mut Vec<Span>) {
    let mut i = 0;
    while i < count {
        let at = 0x10 + 4 * i;
        let Some(low) = le(config, at, 4) else {
            return;
        };
        let name = format!("BAR{i}");
        // 0 is an absent BAR's value as much as an unprogrammed 32-bit memory BAR's.
        if low == 0 {
            spans.push(Span::new(at..at + 4, name, Reading::Number(0)));
            i += 1;
            continue;
        }
        if low & 1 == 1 {
            let text = format!("io {:#x}", low & !3);
            spans.push(Span::new(at..at + 4, name, Reading::Text(text)));
            i += 1;
            continue;
        }
        let prefetch = if low & 8 != 0 { " pref" } else { "" };
        if (low >> 1) & 3 == 2 && i + 1 < count {
            let high = le(config, at + 4, 4).unwrap_or(0);
            let address = (high << 32) | (low & !0xf);
            let text = format!("mem64{prefetch} {address:#x}");
            spans.push(Span::new(at..at + 8, name, Reading::Text(text)));
            i += 2;
        } else {
            let text = format!("mem32{prefetch} {:#x}", low & !0xf);
            spans.push(Span::new(at..at + 4, name, Reading::Text(text)));
            i += 1;
        }
    }
}

/// A capability's header (`MSI-X@0x98: next 0x84`) and the registers migdiff reads.
fn capability_spans(config: &[u8], at: usize, id: u8, virtio: bool, spans: &mut Vec<Span>) {
    let label = match capability_name(id) {
        Some(name) => format!("{name}@{at:#x}"),
        None => format!("capability {id:#04x}@{at:#x}"),
    };
    let next = le(config, at + 1, 1).unwrap_or(0);
    spans.push(Span::new(
        at..at + 2,
        label.clone(),
        Reading::Text(format!("next {next:#x}")),
    ));
    type Words = Option<&'static [&'static FlagWord]>;
    let field = |spans: &mut Vec<Span>, offset: usize, len: usize, name: &str, word: Words| {
        let range: Range<usize> = at + offset..at + offset + len;
        if let Some(v) = le(config, range.start, len) {
            let reading = match word {
                Some(word) => Reading::Flags(v, word),
                None => Reading::Number(v),
            };
            spans.push(Span::new(range, format!("{label} {name}"), reading));
        }
    };
    match id {
        CAP_PM => {
            field(spans, 2, 2, "PMC", None);
            field(spans, 4, 2, "PMCSR", Some(&[&PM_CTRL]));
        }
        CAP_MSI => {
            let flags = le(config, at + 2, 2).unwrap_or(0);
            field(spans, 2, 2, "control", Some(&[&MSI_FLAGS]));
            field(spans, 4, 4, "address", None);
            let wide = flags & 0x80 != 0;
            if wide {
                field(spans, 8, 4, "address_hi", None);
            }
            let data = if wide { 12 } else { 8 };
            field(spans, data, 2, "data", None);
            if flags & 0x100 != 0 {
                field(spans, data + 4, 4, "mask", None);
                field(spans, data + 8, 4, "pending", None);
            }
        }
        CAP_MSIX => {
            field(spans, 2, 2, "control", Some(&[&MSIX_FLAGS]));
            for (offset, name) in [(4, "table"), (8, "PBA")] {
                if let Some(v) = le(config, at + offset, 4) {
                    let text = format!("BAR{} +{:#x}", v & 7, v & !7);
                    let name = format!("{label} {name}");
                    spans.push(Span::new(
                        at + offset..at + offset + 4,
                        name,
                        Reading::Text(text),
                    ));
                }
            }
        }
        CAP_EXP => {
            if let Some(flags) = le(config, at + 2, 2) {
                let kind = usize::try_from((flags >> 4) & 0xf)
                    .ok()
                    .and_then(|t| EXP_TYPES.get(t))
                    .filter(|t| !t.is_empty())
                    .map_or_else(|| format!("type {}", (flags >> 4) & 0xf), |t| t.to_string());
                let text = format!("version {}, {kind}", flags & 0xf);
                spans.push(Span::new(
                    at + 2..at + 4,
                    format!("{label} flags"),
                    Reading::Text(text),
                ));
            }
            field(spans, 4, 4, "DEVCAP", None);
            field(spans, 8, 2, "DEVCTL", None);
            field(spans, 10, 2, "DEVSTA", None);
            field(spans, 12, 4, "LNKCAP", None);
            field(spans, 16, 2, "LNKCTL", None);
            field(spans, 18, 2, "LNKSTA", None);
        }
        CAP_VENDOR if virtio => {
            let (Some(cfg_type), Some(bar), Some(offset), Some(length)) = (
                le(config, at + 3, 1),
                le(config, at + 4, 1),
                le(config, at + 8, 4),
                le(config, at + 12, 4),
            ) else {
                return;
            };
            let kind = virtio_cfg_name(cfg_type)
                .map_or_else(|| format!("type {cfg_type}"), str::to_string);
            let text = format!("virtio {kind}: BAR{bar} +{offset:#x} len {length:#x}");
            spans.push(Span::new(
                at + 2..at + 16,
                format!("{label} structure"),
                Reading::Text(text),
            ));
        }
        _ => {}
    }
}

/// The first config byte a destination whose device has config `device` refuses in the
/// incoming `read` (QEMU `get_pci_config_device`), in QEMU's words:
/// `get_pci_config_device: Bad config data: i=0x34 read: 84 device: 98 cmask: ff wmask: 0
/// w1cmask:0`.
///
/// Only bytes whose masks hold for every device are compared: the IDs, revision, class,
/// header type, capability pointer and the status register's capability bit
/// (`pci_init_cmask`), each capability's ID and next pointer, MSI-X's table size, table and
/// PBA registers (`msix_init` leaves them read-only), and the location of each virtio
/// structure (`virtio_pci_add_mem_cap`; the PCI cfg access capability's is writable).
/// BARs and other capability registers have masks only the device's code knows: a
/// difference there is not predicted.
pub fn bad_config_data(read: &[u8], device: &[u8]) -> Option<String> {
    let mut checked: Vec<(usize, u8)> = [0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0a, 0x0b, 0x0e]
        .into_iter()
        .chain([CAPABILITY_LIST])
        .map(|i| (i, 0xff))
        .collect();
    checked.push((6, STATUS_CAP_LIST));
    let virtio = le(device, 0, 2) == Some(VIRTIO_VENDOR);
    for (at, id) in capabilities(device) {
        checked.extend([(at, 0xff), (at + 1, 0xff)]);
        match id {
            CAP_MSIX => {
                checked.extend([(at + 2, 0xff), (at + 3, 0x07)]);
                checked.extend((at + 4..at + 12).map(|i| (i, 0xff)));
            }
            CAP_VENDOR if virtio => {
                let fixed = if le(device, at + 3, 1) == Some(5) {
                    4
                } else {
                    16
                };
                checked.extend((at + 2..at + fixed).map(|i| (i, 0xff)));
            }
            _ => {}
        }
    }
    checked.sort_unstable();
    checked.into_iter().find_map(|(i, cmask)| {
        let (r, d) = (*read.get(i)?, *device.get(i)?);
        ((r ^ d) & cmask != 0).then(|| {
            format!(
                "get_pci_config_device: Bad config data: i={i:#x} read: {r:x} device: {d:x} \
                 cmask: {cmask:x} wmask: 0 w1cmask:0"
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtio-net config space laid out as QEMU 10.0 builds it (capabilities at 0x98 and
    /// 0x84), with the BARs and command register a firmware would program.
    fn virtio_net() -> Vec<u8> {
        let mut c = vec![0u8; 256];
        let head: &[u8] = &[
            0xf4, 0x1a, 0x00, 0x10, 0x07, 0x01, 0x10, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
            0x00, 0x00, 0x41, 0xc0, 0x00, 0x00, 0x00, 0x10, 0xbf, 0xfe, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0xfe, 0x00, 0x00, 0x00, 0x00,
        ];
        c[..head.len()].copy_from_slice(head);
        c[0x2c..0x30].copy_from_slice(&[0xf4, 0x1a, 0x01, 0x00]);
        c[0x34] = 0x98;
        c[0x3c] = 0x0b;
        c[0x3d] = 0x01;
        c[0x98..0xa4].copy_from_slice(&[
            0x11, 0x84, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00,
        ]);
        c[0x84..0x94].copy_from_slice(&[
            0x09, 0x70, 0x14, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
            0x00, 0x00,
        ]);
        c
    }

    #[test]
    fn header_and_capabilities_are_named() {
        let layout = layout(&virtio_net());
        assert_eq!(
            layout.note(0..16).as_deref(),
            Some(
                "vendor=0x1af4, device=0x1000, command=IO|MEM|BUS_MASTER|SERR, status=CAP_LIST, \
                 revision=0x0, class=0x20000, cache_line_size=0x0, latency_timer=0x0, \
                 header_type=0x0"
            )
        );
        assert_eq!(
            layout.note(0x10..0x20).as_deref(),
            Some("BAR0=io 0xc040, BAR1=mem32 0xfebf1000, BAR2=0x0, BAR3=0x0")
        );
        assert_eq!(
            layout.note(0x20..0x30).as_deref(),
            Some("BAR4=mem64 pref 0xfe000000, subsystem_vendor=0x1af4, subsystem=0x1")
        );
        assert_eq!(
            layout.note(0x98..0xa8).as_deref(),
            Some(
                "MSI-X@0x98=next 0x84, MSI-X@0x98 control=QSIZE=3, MSI-X@0x98 table=BAR1 +0x0, \
                 MSI-X@0x98 PBA=BAR1 +0x800"
            )
        );
        assert_eq!(
            layout.note(0x84..0x94).as_deref(),
            Some(
                "vendor-specific@0x84=next 0x70, vendor-specific@0x84 structure=virtio \
                 PCI cfg access: BAR0 +0x0 len 0x4"
            )
        );
    }

    #[test]
    fn a_changed_command_register_is_named() {
        let new = virtio_net();
        let mut old = new.clone();
        old[4] = 0x03;
        let text = super::super::layout::change(&layout(&old), &layout(&new), &[(4, 5)]);
        assert_eq!(text.as_deref(), Some("command: +BUS_MASTER"));
    }

    #[test]
    fn bad_config_data_in_qemus_words() {
        let device = virtio_net();
        assert_eq!(bad_config_data(&device, &device), None);
        // Writable bytes (command, BARs, interrupt line) never refuse.
        let mut programmed = device.clone();
        programmed[4] = 0;
        programmed[0x10] = 0;
        programmed[0x3c] = 0xff;
        assert_eq!(bad_config_data(&programmed, &device), None);
        let mut other = device.clone();
        other[2] = 0x41;
        assert_eq!(
            bad_config_data(&other, &device).as_deref(),
            Some(
                "get_pci_config_device: Bad config data: i=0x2 read: 41 device: 0 cmask: ff \
                 wmask: 0 w1cmask:0"
            )
        );
        let mut moved = device.clone();
        moved[0x34] = 0x84;
        assert_eq!(
            bad_config_data(&moved, &device).as_deref(),
            Some(
                "get_pci_config_device: Bad config data: i=0x34 read: 84 device: 98 cmask: ff \
                 wmask: 0 w1cmask:0"
            )
        );
    }

    #[test]
    fn a_looping_chain_ends() {
        let mut c = virtio_net();
        c[0x85] = 0x98;
        assert_eq!(capabilities(&c), vec![(0x98, 0x11), (0x84, 0x09)]);
        assert!(capabilities(&c[..0x40]).is_empty());
    }
}
