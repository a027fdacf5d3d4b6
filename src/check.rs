//! Would the destination load this stream? Walks a source dump as the destination's loader
//! (`migration/savevm.c`, `vmstate.c`, `ram.c`) would, against a description of the
//! destination: a dump made by the destination QEMU with the same machine type, or its
//! `-dump-vmstate` classes. Each reason to refuse carries QEMU's own wording.
//!
//! What travels on the wire decides: field names never do (a rename loads), a type change
//! of the same size loads, a scalar that changes size or appears at the same section
//! version desynchronizes the load. Things a description cannot settle are warnings.

use std::borrow::Cow;

use serde::Serialize;

use crate::diff::{device_name, diff_device, Change, ChangeKind};
use crate::tree::{Device, Dump, Node, Struct, Value};

/// What the destination is described by.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// A dump made by the destination: exact sections and RAM blocks, but only the
    /// subsections its state happened to send.
    Dump(&'a Dump),
    /// `-dump-vmstate` output: every device class and subsection, versions with their
    /// minimum; no RAM blocks and no non-qdev sections (cpu, apic, timer, ...).
    Classes(&'a Dump),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The destination refuses the stream.
    Refused,
    /// Cannot be settled from the descriptions, or loads with a caveat.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub severity: Severity,
    /// `idstr (instance)`, `ram/BLOCK` or `configuration`.
    pub subject: String,
    /// QEMU's message for a refusal; migdiff's for a warning.
    pub message: String,
    /// Which field or value, where that helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub loads: bool,
    /// In stream order: the destination stops at the first refusal.
    pub reasons: Vec<Reason>,
}

struct Checker {
    reasons: Vec<Reason>,
}

impl Checker {
    fn refuse(&mut self, subject: &str, message: String, detail: Option<String>) {
        self.push(Severity::Refused, subject, message, detail);
    }

    fn warn(&mut self, subject: &str, message: String, detail: Option<String>) {
        self.push(Severity::Warning, subject, message, detail);
    }

    fn push(&mut self, severity: Severity, subject: &str, message: String, detail: Option<String>) {
        self.reasons.push(Reason {
            severity,
            subject: subject.to_string(),
            message,
            detail,
        });
    }
}

pub fn check(src: &Dump, dst: Destination<'_>) -> Verdict {
    let mut c = Checker {
        reasons: Vec::new(),
    };
    let dst_dump = match dst {
        Destination::Dump(d) | Destination::Classes(d) => d,
    };
    if let (Some(s), Some(d)) = (&src.machine, &dst_dump.machine) {
        if s != d {
            // savevm.c, configuration_post_load.
            c.refuse(
                "configuration",
                format!("Machine type received is '{s}' and local is '{d}'"),
                None,
            );
        }
    }
    // The RAM section comes first in the stream.
    match dst {
        Destination::Dump(d) => check_ram(&mut c, src, d),
        Destination::Classes(_) => c.warn(
            "ram",
            "RAM blocks not checked: -dump-vmstate does not list them".into(),
            None,
        ),
    }
    let mut unchecked = Vec::new();
    for device in &src.devices {
        match dst {
            Destination::Dump(d) => check_against_dump(&mut c, device, d),
            Destination::Classes(d) => {
                if !check_against_class(&mut c, device, d) {
                    unchecked.push(device_name(device));
                }
            }
        }
    }
    if !unchecked.is_empty() {
        c.warn(
            "sections",
            "not checked: -dump-vmstate lists only qdev device classes".into(),
            Some(unchecked.join(", ")),
        );
    }
    Verdict {
        loads: !c.reasons.iter().any(|r| r.severity == Severity::Refused),
        reasons: c.reasons,
    }
}

/// ROM blobs QEMU builds at run time live in resizable RAM blocks (fw_cfg's `/rom@etc/...`):
/// a size change is accepted up to the block's maximum, which no description records.
fn resizable(block: &str) -> bool {
    block.starts_with("/rom@")
}

fn check_ram(c: &mut Checker, src: &Dump, dst: &Dump) {
    for block in &src.ram {
        let subject = format!("ram/{}", block.name);
        match dst.ram.iter().find(|b| b.name == block.name) {
            None => c.refuse(
                &subject,
                format!("Unknown ramblock \"{}\", cannot accept migration", block.name),
                None,
            ),
            Some(d) if d.used_length != block.used_length && resizable(&block.name) => c.warn(
                &subject,
                format!(
                    "resizable block {:#x} in, {:#x} here: loads if within the block's maximum size",
                    block.used_length, d.used_length
                ),
                None,
            ),
            Some(d) if d.used_length != block.used_length => c.refuse(
                &subject,
                // What QEMU 7.2 and 10.0 print (qemu_ram_resize), checked with -incoming.
                format!(
                    "Size mismatch: {}: {:#x} != {:#x}",
                    block.name, block.used_length, d.used_length
                ),
                block.name.ends_with(".rom").then(|| {
                    "an option ROM of another size: give both sides the same romfile".to_string()
                }),
            ),
            Some(_) => {}
        }
    }
}

fn unknown_section(c: &mut Checker, device: &Device) {
    // savevm.c, qemu_loadvm_section_start_full.
    c.refuse(
        &device_name(device),
        format!(
            "Unknown savevm section or instance '{}' {}. Make sure that your current VM setup \
             matches your saved VM setup, including any hotplugged devices",
            device.idstr, device.instance_id
        ),
        None,
    );
}

/// savevm.c, qemu_loadvm_section_start_full: a section newer than the local vmsd.
fn too_new(c: &mut Checker, device: &Device, local: u32, detail: Option<String>) {
    c.refuse(
        &device_name(device),
        format!(
            "savevm: unsupported version {} for '{}' v{local}",
            device.version_id, device.idstr
        ),
        detail,
    );
}

fn check_against_dump(c: &mut Checker, device: &Device, dst: &Dump) {
    let Some(local) = dst
        .devices
        .iter()
        .find(|d| d.idstr == device.idstr && d.instance_id == device.instance_id)
    else {
        return unknown_section(c, device);
    };
    let subject = device_name(device);
    if device.version_id > local.version_id {
        return too_new(c, device, local.version_id, None);
    }
    if device.version_id < local.version_id {
        c.warn(
            &subject,
            format!(
                "older section version {} (local {}): loads if {} is at least the local minimum_version_id, \
                 which only -dump-vmstate records; the field layout follows the version",
                device.version_id, local.version_id, device.version_id
            ),
            None,
        );
        return;
    }
    let mut changes = Vec::new();
    diff_device(device, local, &mut changes);
    check_layout(c, &subject, device, local, &changes);
}

/// Same version on both sides: the destination reads the fields it describes.
fn check_layout(c: &mut Checker, subject: &str, src: &Device, dst: &Device, changes: &[Change]) {
    let fields_len = |s: &Struct| -> u64 { s.fields.iter().map(|n| n.len).sum() };
    let same_total = fields_len(&src.body) == fields_len(&dst.body);
    for change in changes {
        let detail = Some(change.path.clone());
        match change.kind {
            ChangeKind::FieldAdded | ChangeKind::FieldRemoved | ChangeKind::TypeChanged
                if same_total =>
            {
                // globalstate after 7.2: runstate shrank by what the new fields take.
            }
            ChangeKind::FieldAdded | ChangeKind::FieldRemoved => c.refuse(
                subject,
                format!("Missing section footer for {}", src.idstr),
                Some(format!(
                    "{}: {} at the same section version {}, so the load desynchronizes",
                    change.path,
                    if change.kind == ChangeKind::FieldAdded {
                        "field only here"
                    } else {
                        "field only in the stream"
                    },
                    src.version_id
                )),
            ),
            ChangeKind::TypeChanged => {
                let scalar =
                    |n: Option<Cow<Node>>| n.is_some_and(|n| !matches!(n.value, Value::Bytes(_)));
                let (o, n) = (src.body.find(&change.path), dst.body.find(&change.path));
                if scalar(o) || scalar(n) {
                    c.refuse(
                        subject,
                        format!("Missing section footer for {}", src.idstr),
                        Some(format!(
                            "{}: {}",
                            change.path,
                            change.note.as_deref().unwrap_or("")
                        )),
                    );
                } else {
                    c.warn(
                        subject,
                        "buffer of another length: loads only if its length travels in the stream"
                            .into(),
                        Some(format!(
                            "{}: {}",
                            change.path,
                            change.note.as_deref().unwrap_or("")
                        )),
                    );
                }
            }
            ChangeKind::LengthChanged => c.warn(
                subject,
                "array of another length: loads only if its length travels in the stream".into(),
                detail,
            ),
            ChangeKind::SubsectionAdded => {}
            ChangeKind::SubsectionRemoved => c.warn(
                subject,
                format!(
                    "subsection {} was not sent by the destination's own dump: QEMU refuses it \
                     (\"VM subsection '{}' in '{}' does not exist\") only if it does not know it",
                    change.path, change.path, src.body.vmsd_name
                ),
                None,
            ),
            _ => {}
        }
    }
}

/// Checks a section against the class with its vmsd; false when there is none (cpu, apic,
/// timer and other non-qdev sections are not in -dump-vmstate).
fn check_against_class(c: &mut Checker, device: &Device, classes: &Dump) -> bool {
    let subject = device_name(device);
    let vmsd = &device.body.vmsd_name;
    let Some(class) = classes
        .devices
        .iter()
        .find(|d| !vmsd.is_empty() && &d.body.vmsd_name == vmsd)
    else {
        return false;
    };
    let minimum = class.body.fields.iter().find_map(|n| match n.value {
        Value::Uint { value, .. } if n.name == "(minimum_version_id)" => Some(value),
        _ => None,
    });
    let version = u64::from(device.version_id);
    if device.version_id > class.version_id {
        too_new(
            c,
            device,
            class.version_id,
            Some(format!("class {}", class.idstr)),
        );
    } else if let Some(min) = minimum.filter(|&m| version < m) {
        // vmstate.c, vmstate_load_state.
        c.refuse(
            &subject,
            format!("{vmsd}: incoming version_id {version} is too old for local minimum version_id {min}"),
            Some(format!("class {}", class.idstr)),
        );
    }
    check_subsections(c, &subject, &device.body, &class.body);
    true
}

/// Every subsection in the stream must be known to the destination's vmsd (vmstate.c,
/// vmstate_subsection_load); the class description lists all of them.
fn check_subsections(c: &mut Checker, subject: &str, src: &Struct, class: &Struct) {
    for sub in &src.subsections {
        let name = &sub.body.vmsd_name;
        match class.subsections.iter().find(|s| &s.body.vmsd_name == name) {
            Some(known) => check_subsections(c, subject, &sub.body, &known.body),
            None => c.refuse(
                subject,
                format!(
                    "VM subsection '{name}' in '{}' does not exist",
                    src.vmsd_name
                ),
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizable_blocks_are_fw_cfg_roms() {
        assert!(resizable("/rom@etc/acpi/tables"));
        assert!(!resizable("pc.rom"));
        assert!(!resizable("0000:00:03.0/e1000.rom"));
    }
}
