//! What fields mean: the register a path holds, the bits a flag word has set, the
//! registers inside a PCI config space or a virtio blob.
//!
//! Explainers are target- or device-specific; the diff and the renderers know none of them.
//! Each is registered below and speaks only for what it claims: a CPU explainer for the
//! `cpu` sections of a dump of its target, told from the stream ([`Target::of`]: the cpu
//! section's field names and sizes, never the section name alone); a device explainer for
//! the fields of its description type (`pci config`, `virtio`), on any target.
//!
//! Explanations reach the user three ways: the `# ...` annotation of a line of `show` (a fact
//! about that line's value, [`Section::value`] and [`Layout::note`]), the meaning of a change
//! ([`annotate`]: the notes above a diff, JSON `meaning`), and, for what only a comparison of
//! two dumps shows (a CPU model, a register list), the meaning of the change that shows it.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod arm;
mod flags;
mod pci;
mod riscv;
mod virtio;
mod x86;

use std::collections::HashMap;
use std::ops::Range;

use crate::diff::{device_name, Change, Leaf};
use crate::tree::{child_prefix, Device, Dump, Node, Struct, Value};

pub use layout::{Layout, Reading, Span};

/// The CPU a dump was made for, as its first `cpu` section shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// x86: `env.eip` of 8 bytes (qemu-system-x86_64) or 4 (qemu-system-i386).
    X86(x86::Width),
    /// Arm: `cpsr` and the `cpreg_vmstate_*` register list.
    Arm,
    /// RISC-V: `env.misa_mxl` and `env.mstatus`.
    Riscv,
    /// No cpu section, or one no explainer knows (s390x, ppc, ...).
    Other,
}

impl Target {
    /// Told from the fields of the dump's first `cpu` section.
    pub fn of(dump: &Dump) -> Target {
        let Some(cpu) = dump.devices.iter().find(|d| d.idstr == CPU) else {
            return Target::Other;
        };
        let field = |name: &str| cpu.body.fields.iter().find(|n| n.name == name);
        if let Some(eip) = field("env.eip") {
            return match eip.len {
                8 => Target::X86(x86::Width::Long),
                4 => Target::X86(x86::Width::Legacy),
                _ => Target::Other,
            };
        }
        if field("cpsr").is_some() && field("cpreg_vmstate_array_len").is_some() {
            return Target::Arm;
        }
        if field("env.misa_mxl").is_some() && field("env.mstatus").is_some() {
            return Target::Riscv;
        }
        Target::Other
    }
}

/// The section name of CPU state on every target.
const CPU: &str = "cpu";

/// One device section of a dump of a known target: what explainers are asked about.
#[derive(Debug, Clone, Copy)]
pub struct Section<'d> {
    pub target: Target,
    pub device: &'d Device,
    /// The whole dump, for evidence outside the section (which accelerator made it).
    pub dump: &'d Dump,
}

impl<'d> Section<'d> {
    pub fn new(dump: &'d Dump, target: Target, device: &'d Device) -> Section<'d> {
        Section {
            target,
            device,
            dump,
        }
    }

    fn is_cpu(&self) -> bool {
        self.device.idstr == CPU
    }

    /// What an integer field's value means, for `show`: only facts about this value (and
    /// the section's fixed layout), so an annotation changes only when its line does.
    pub fn value(&self, path: &str, value: u64) -> Option<String> {
        match self.target {
            Target::X86(width) if self.is_cpu() => x86::value_meaning(width, path, value),
            Target::Arm if self.is_cpu() => arm::value_meaning(self.device, path, value),
            Target::Riscv if self.is_cpu() => riscv::value_meaning(path, value),
            _ => None,
        }
    }

    /// What a change of an integer field means.
    fn change(&self, old: &Section<'_>, path: &str, from: u64, to: u64) -> Option<String> {
        match self.target {
            Target::X86(width) if self.is_cpu() => {
                x86::section_change(old, self, width, path, from, to)
            }
            Target::Arm if self.is_cpu() => {
                arm::change_meaning(old.device, self.device, path, from, to)
            }
            Target::Riscv if self.is_cpu() => riscv::change_meaning(path, from, to),
            _ => None,
        }
    }

    /// The named parts of a buffer field, for the explainers that know its type; also the
    /// few CPU fields QEMU sends as raw words (Arm's `cpsr`).
    pub fn layout(&self, path: &str, node: &Node) -> Option<Layout> {
        let Value::Bytes(bytes) = &node.value else {
            return None;
        };
        match &*node.type_name {
            "pci config" => Some(pci::layout(bytes)),
            "virtio" => virtio::layout(bytes),
            _ if self.target == Target::Arm && self.is_cpu() => arm::layout(path, bytes),
            _ => None,
        }
    }
}

/// The sections of one dump, for renderers that walk it.
#[derive(Debug, Clone, Copy)]
pub struct Explainer<'d> {
    dump: &'d Dump,
    target: Target,
}

impl<'d> Explainer<'d> {
    pub fn new(dump: &'d Dump) -> Explainer<'d> {
        Explainer {
            dump,
            target: Target::of(dump),
        }
    }

    pub fn section(&self, device: &'d Device) -> Section<'d> {
        Section::new(self.dump, self.target, device)
    }
}

/// Fills in the meaning of each change that has none yet: integer fields by their
/// explainer, buffers by the named parts their changed bytes fall in.
pub fn annotate(old: &Dump, new: &Dump, changes: &mut [Change]) {
    let (old_x, new_x) = (Explainer::new(old), Explainer::new(new));
    let (old_devices, new_devices) = (by_name(old), by_name(new));
    for change in changes.iter_mut().filter(|c| c.meaning.is_none()) {
        let (Some(o), Some(n)) = (
            old_devices.get(&change.device),
            new_devices.get(&change.device),
        ) else {
            continue;
        };
        let (os, ns) = (old_x.section(o), new_x.section(n));
        change.meaning = match (&change.old, &change.new) {
            (Some(Leaf::Int { value: from, .. }), Some(Leaf::Int { value: to, .. })) => {
                ns.change(&os, &change.path, *from, *to)
            }
            (Some(Leaf::Bytes(_)), Some(Leaf::Bytes(_))) => {
                let path = change.renamed_from.as_deref().unwrap_or(&change.path);
                match (o.body.find(path), n.body.find(&change.path)) {
                    (Some(on), Some(nn)) => {
                        match (os.layout(path, &on), ns.layout(&change.path, &nn)) {
                            (Some(ol), Some(nl)) => layout::change(&ol, &nl, &change.ranges),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        };
    }
    if let (Some(o), Some(n)) = (first_cpu(old), first_cpu(new)) {
        note_cpu_models(&old_x.section(o), &new_x.section(n), changes);
    }
}

/// One trace of the CPU model a dump was made with, and the path of the change showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    path: String,
    text: String,
}

impl Evidence {
    fn new(path: impl Into<String>, text: impl Into<String>) -> Evidence {
        Evidence {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// Says the CPU models likely differ, with the evidence, in the meaning of the first cpu
/// change the evidence points at: CPUID is not in the stream, but what a model lets the
/// guest enable, and what QEMU sends for a model's features, is.
fn note_cpu_models(old: &Section<'_>, new: &Section<'_>, changes: &mut [Change]) {
    let evidence = match (old.target, new.target) {
        (Target::X86(_), Target::X86(_)) => x86::model_evidence(old, new),
        (Target::Arm, Target::Arm) => arm::model_evidence(old.device, new.device),
        _ => return,
    };
    let device = device_name(new.device);
    let Some(at) = evidence.iter().find_map(|e| {
        changes
            .iter()
            .position(|c| c.device == device && c.path == e.path)
    }) else {
        return;
    };
    let Some(anchor) = changes.get_mut(at) else {
        return;
    };
    let texts: Vec<&str> = evidence.iter().map(|e| e.text.as_str()).collect();
    let note = format!("the CPU models likely differ: {}", texts.join("; "));
    anchor.meaning = Some(match anchor.meaning.take() {
        Some(meaning) => format!("{meaning}; {note}"),
        None => note,
    });
}

/// Where a destination refuses a device's PCI config space (QEMU `get_pci_config_device`):
/// the path of the field and QEMU's message, for the first config space (a `pci config`
/// field, or the one a virtio-pci blob starts with) whose read-only bytes differ.
pub fn bad_config_data(src: &Device, dst: &Device) -> Option<(String, String)> {
    let theirs = config_spaces(&src.body, "");
    config_spaces(&dst.body, "")
        .into_iter()
        .find_map(|(path, device)| {
            let (_, read) = theirs.iter().find(|(p, _)| *p == path)?;
            Some((path, pci::bad_config_data(read, device)?))
        })
}

/// Why a CPU's post_load refuses the section once every field loaded (Arm's register
/// list), if it does.
pub fn cpu_post_load_refusal(src: &Device, dst: &Device) -> Option<String> {
    arm::post_load_refusal(src, dst)
}

/// The PCI config spaces of a struct, by path.
fn config_spaces<'s>(s: &'s Struct, prefix: &str) -> Vec<(String, &'s [u8])> {
    let mut out = Vec::new();
    for node in &s.fields {
        let path = format!("{prefix}{}", node.name);
        match (&*node.type_name, &node.value) {
            ("pci config", Value::Bytes(bytes)) => out.push((path, bytes.as_slice())),
            ("virtio", Value::Bytes(bytes)) => {
                out.extend(virtio::config_space(bytes).map(|c| (path, c)));
            }
            (_, Value::Struct(inner)) => out.extend(config_spaces(inner, &child_prefix(&path))),
            _ => {}
        }
    }
    out
}

fn first_cpu(dump: &Dump) -> Option<&Device> {
    dump.devices.iter().find(|d| d.idstr == CPU)
}

/// A dump's devices by display name (`cpu (0)`), as changes name them.
fn by_name(dump: &Dump) -> HashMap<String, &Device> {
    dump.devices.iter().map(|d| (device_name(d), d)).collect()
}

mod layout {
    //! A buffer cut into named parts, and how a part reads.
    use super::flags::{change_words, render_words, FlagWord};
    use super::Range;

    /// How a part's value reads.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Reading {
        /// A number, printed in hex.
        Number(u64),
        /// A flag word, or words naming disjoint bits of one: `IO|MEM|BUS_MASTER`.
        Flags(u64, &'static [&'static FlagWord]),
        /// Words whose meaning is already spelled out (`AArch64 EL1h`): compared as text.
        Text(String),
        /// Bytes no explainer reads: named, never interpreted.
        Opaque,
    }

    /// A named stretch of a buffer: `command` at 0x4..0x6.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Span {
        pub range: Range<usize>,
        pub name: String,
        pub reading: Reading,
    }

    impl Span {
        pub fn new(range: Range<usize>, name: impl Into<String>, reading: Reading) -> Span {
            Span {
                range,
                name: name.into(),
                reading,
            }
        }

        /// `command=IO|MEM`, `vendor=0x1af4`, or the name alone for opaque bytes.
        fn value_text(&self) -> String {
            match &self.reading {
                Reading::Number(v) => format!("{}={v:#x}", self.name),
                Reading::Flags(v, words) => format!("{}={}", self.name, render_words(words, *v)),
                Reading::Text(t) => format!("{}={t}", self.name),
                Reading::Opaque => self.name.clone(),
            }
        }
    }

    /// The parts of one buffer, in offset order.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Layout {
        pub spans: Vec<Span>,
    }

    /// Past this many parts, a change's meaning says how many more there are.
    const SHOWN: usize = 8;

    impl Layout {
        /// The parts that start in `rows` (a line of hex), for its `# ...` annotation.
        pub fn note(&self, rows: Range<usize>) -> Option<String> {
            let parts: Vec<String> = self
                .spans
                .iter()
                .filter(|s| rows.contains(&s.range.start))
                .map(Span::value_text)
                .collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
    }

    /// The parts of `new` the changed byte `ranges` touch, each with how it changed
    /// (`command: +MEM +BUS_MASTER`); a part the old layout lacks is said to be new.
    pub fn change(old: &Layout, new: &Layout, ranges: &[(u64, u64)]) -> Option<String> {
        let touched = |s: &Span| {
            ranges.iter().any(|&(a, b)| {
                (s.range.start as u64) < b && a < (s.range.end as u64).max(s.range.start as u64 + 1)
            })
        };
        let parts: Vec<String> = new
            .spans
            .iter()
            .filter(|s| touched(s))
            .map(|n| match old.spans.iter().find(|o| o.name == n.name) {
                Some(o) => span_change(o, n),
                None => format!("{} (new only)", n.value_text()),
            })
            .filter(|t| !t.is_empty())
            .collect();
        let more = parts.len().saturating_sub(SHOWN);
        let mut text = parts.into_iter().take(SHOWN).collect::<Vec<_>>().join("; ");
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        (!text.is_empty()).then_some(text)
    }

    /// `name: +A -B`, `name: 0x1 -> 0x2`, `name changed`; empty when equal.
    fn span_change(old: &Span, new: &Span) -> String {
        match (&old.reading, &new.reading) {
            (a, b) if a == b => String::new(),
            (Reading::Flags(a, _), Reading::Flags(b, words)) => {
                format!("{}: {}", new.name, change_words(words, *a, *b))
            }
            (Reading::Number(a), Reading::Number(b)) => {
                format!("{}: {a:#x} -> {b:#x}", new.name)
            }
            (Reading::Text(a), Reading::Text(b)) => format!("{}: {a} -> {b}", new.name),
            _ => format!("{} changed", new.name),
        }
    }
}

/// Bytes `at..at + N` of `bytes` as a little-endian number (PCI config space is
/// little-endian); None past the end.
fn le(bytes: &[u8], at: usize, len: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(len)?)?;
    Some(slice.iter().rev().fold(0, |v, b| (v << 8) | u64::from(*b)))
}

/// Bytes `at..at + N` as a big-endian number (what `qemu_put_be*` writes).
fn be(bytes: &[u8], at: usize, len: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(len)?)?;
    Some(slice.iter().fold(0, |v, b| (v << 8) | u64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(name: &str) -> Dump {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name);
        crate::decode(&std::fs::read(path).unwrap(), None).unwrap()
    }

    #[test]
    fn the_target_is_told_from_the_cpu_section() {
        use Target::*;
        assert!(matches!(Target::of(&dump("pc10-stopped.mig")), X86(_)));
        assert_ne!(
            Target::of(&dump("pc10-stopped.mig")),
            Target::of(&dump("pc10-i386.mig"))
        );
        assert_eq!(Target::of(&dump("aarch64-max-stopped.mig")), Arm);
        assert_eq!(Target::of(&dump("riscv64-stopped.mig")), Riscv);
    }
}
