//! Would the destination load this stream? Replays QEMU's loader (`migration/savevm.c`,
//! `vmstate.c`, `ram.c`) over the source's sections, in stream order, against what is known
//! of the destination: a dump made by the destination QEMU with the same configuration (its
//! exact sections, instances and RAM blocks, and the field layout it reads at its own
//! versions), its `-dump-vmstate` classes (every vmsd with field versions, conditions,
//! subsections and minimum versions, but no RAM and no instances), or both.
//!
//! Three verdicts: it loads, it is refused (the first reason is where the destination
//! stops, in QEMU's words), or it is not decided, with what would decide it. What travels
//! on the wire decides: names never do; a layout that desynchronizes does.

use serde::Serialize;

use crate::diff::{
    device_name, diff_device, resizable, size_mismatch_message, too_new_message, too_old_message,
    unknown_ramblock_message, unknown_section_message, unsupported_version_message, Change,
    ChangeKind, Load,
};
use crate::explain;
use crate::render::count;
use crate::tree::{Device, Dump, Node, Struct, Value};
use crate::vmstate_dump::FieldDesc;

/// What is known of the destination.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Destination<'a> {
    /// A dump made by the destination: exact sections and RAM blocks, but only the
    /// subsections its state happened to send, and no minimum versions.
    pub dump: Option<&'a Dump>,
    /// `-dump-vmstate` output: every device class and subsection, versions with their
    /// minimum; no RAM blocks, no instances and no non-qdev sections (cpu, apic, timer).
    pub classes: Option<&'a Dump>,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Answer {
    Loads,
    Refused,
    /// Nothing refuses it, but something the descriptions cannot show could.
    Undecided,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// The destination refuses the stream.
    Refused,
    /// Cannot be settled from the descriptions at hand.
    Undecided,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Reason {
    pub severity: Severity,
    /// `idstr (instance)`, `ram/BLOCK` or `configuration`.
    pub subject: String,
    /// QEMU's message for a refusal; what would decide it for an undecided one.
    pub message: String,
    /// Which field or value, where that helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verdict {
    pub answer: Answer,
    /// Kept for readers of the first JSON layout: `answer == "loads"`.
    pub loads: bool,
    /// In stream order: the destination stops at the first refusal.
    pub reasons: Vec<Reason>,
}

#[derive(Default)]
struct Checker {
    reasons: Vec<Reason>,
}

impl Checker {
    fn refuse(&mut self, subject: &str, message: String, detail: Option<String>) {
        self.push(Severity::Refused, subject, message, detail);
    }

    fn undecided(&mut self, subject: &str, message: String, detail: Option<String>) {
        self.push(Severity::Undecided, subject, message, detail);
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

/// Replays the load of `src` on the destination.
pub fn check(src: &Dump, dst: Destination<'_>) -> Verdict {
    let mut c = Checker::default();
    check_configuration(&mut c, src, dst);
    // The RAM section comes first in the stream.
    match dst.dump {
        Some(d) => check_ram(&mut c, src, d),
        None if !src.ram.is_empty() => c.undecided(
            "ram",
            "RAM blocks not checked: -dump-vmstate does not list them (give a dump of the \
             destination too)"
                .into(),
            None,
        ),
        None => {}
    }
    let mut not_listed = Vec::new();
    for device in &src.devices {
        let class = dst.classes.and_then(|classes| class_of(classes, device));
        match (dst.dump, class) {
            (Some(d), class) => check_against_dump(&mut c, device, d, class),
            (None, Some(class)) => check_against_class(&mut c, device, class, None),
            (None, None) => not_listed.push(device_name(device)),
        }
    }
    if dst.dump.is_none() && !src.devices.is_empty() {
        c.undecided(
            "sections",
            "instances not checked: -dump-vmstate lists device classes, not which devices the \
             destination has (give a dump of the destination too)"
                .into(),
            None,
        );
    }
    if !not_listed.is_empty() {
        c.undecided(
            "sections",
            "not checked: -dump-vmstate lists only qdev device classes".into(),
            Some(not_listed.join(", ")),
        );
    }
    let answer = if c.reasons.iter().any(|r| r.severity == Severity::Refused) {
        Answer::Refused
    } else if c.reasons.is_empty() {
        Answer::Loads
    } else {
        Answer::Undecided
    };
    Verdict {
        answer,
        loads: answer == Answer::Loads,
        reasons: c.reasons,
    }
}

/// savevm.c: the configuration section (qemu_loadvm_state_header) and
/// configuration_post_load's checks, in QEMU's order: UUID (a subsection, loaded first),
/// machine type, page size, capabilities.
fn check_configuration(c: &mut Checker, src: &Dump, dst: Destination<'_>) {
    let Some(d) = dst.dump.or(dst.classes) else {
        return;
    };
    let subject = "configuration";
    if let Some(d) = dst.dump {
        match (&src.machine, &d.machine) {
            (None, Some(_)) => c.refuse(subject, "Configuration section missing".into(), None),
            (Some(_), None) => c.refuse(
                subject,
                "Unknown savevm section type 7".into(),
                Some("the destination does not expect a configuration section (send-configuration=off)".into()),
            ),
            _ => {}
        }
        match (&src.uuid, &d.uuid) {
            (Some(s), Some(l)) if s != l => c.refuse(
                subject,
                format!("UUID received is {s} and local is {l}"),
                None,
            ),
            (Some(_), None) => c.undecided(
                subject,
                "the stream carries a UUID: a destination with -uuid and validate-uuid refuses \
                 one that is not its own, and its dump does not say whether it has them"
                    .into(),
                None,
            ),
            _ => {}
        }
    }
    if let (Some(s), Some(l)) = (&src.machine, &d.machine) {
        // A prefix compare of the received name's length.
        if !l.starts_with(s.as_str()) {
            c.refuse(
                subject,
                format!("Machine type received is '{s}' and local is '{l}'"),
                None,
            );
        }
    }
    let Some(d) = dst.dump else {
        return;
    };
    if src.page_size != d.page_size && d.page_size != 0 && src.page_size != 0 {
        c.refuse(
            subject,
            format!(
                "Received TARGET_PAGE_BITS is {} but local is {}",
                src.page_size.trailing_zeros(),
                d.page_size.trailing_zeros()
            ),
            None,
        );
    }
    let on_off = |on: bool| if on { "on" } else { "off" };
    let mut caps: Vec<&String> = src.capabilities.iter().chain(&d.capabilities).collect();
    caps.sort();
    caps.dedup();
    for cap in caps {
        let (received, local) = (src.capabilities.contains(cap), d.capabilities.contains(cap));
        if received != local {
            c.refuse(
                subject,
                format!(
                    "Capability {cap} is {}, but received capability is {}",
                    on_off(local),
                    on_off(received)
                ),
                received
                    .then(|| format!("migrate_set_capability {cap} on, before migrate-incoming")),
            );
        }
    }
    if let Some(instance) = src.stream.ram_instance.filter(|&i| i != 0) {
        c.refuse("ram", unknown_section_message("ram", instance), None);
    }
    let commands = |dump: &Dump| -> Vec<String> {
        dump.stream
            .commands
            .iter()
            .map(|c| c.name.clone())
            .collect()
    };
    let local = commands(d);
    for name in commands(src).iter().filter(|n| !local.contains(n)) {
        c.undecided(
            "stream",
            format!(
                "the stream sends command {name}, which the destination's dump did not: QEMU \
                 before 10.0 does not know SWITCHOVER_START (\"MIG_CMD 0xb unknown\")"
            ),
            None,
        );
    }
}

fn check_ram(c: &mut Checker, src: &Dump, dst: &Dump) {
    for block in &src.ram {
        let subject = format!("ram/{}", block.name);
        let Some(d) = dst.ram.iter().find(|b| b.name == block.name) else {
            c.refuse(&subject, unknown_ramblock_message(&block.name), None);
            continue;
        };
        if d.used_length != block.used_length {
            if resizable(&block.name) {
                c.undecided(
                    &subject,
                    format!(
                        "resizable block {:#x} in, {:#x} here: loads if within the block's \
                         maximum size, which no description records",
                        block.used_length, d.used_length
                    ),
                    None,
                );
            } else {
                c.refuse(
                    &subject,
                    size_mismatch_message(&block.name, block.used_length, d.used_length),
                    block.name.ends_with(".rom").then(|| {
                        "an option ROM of another size: give both sides the same romfile"
                            .to_string()
                    }),
                );
            }
        }
        if let (Some(s), Some(l)) = (block.addr, d.addr) {
            if s != l {
                c.refuse(
                    &subject,
                    crate::diff::gpa_mismatch_message(&block.name, s, l),
                    None,
                );
            }
        }
    }
}

/// savevm.c, qemu_loadvm_section_start_full: a section newer than the local vmsd.
fn too_new(c: &mut Checker, device: &Device, local: u32, detail: Option<String>) {
    c.refuse(
        &device_name(device),
        unsupported_version_message(
            &device.idstr,
            u64::from(device.version_id),
            u64::from(local),
        ),
        detail,
    );
}

/// vmstate.c, vmstate_load_state: a version below the vmsd's minimum.
fn too_old(c: &mut Checker, subject: &str, vmsd: &str, version: u64, minimum: u64) {
    c.refuse(subject, too_old_message(vmsd, version, minimum), None);
}

fn check_against_dump(c: &mut Checker, device: &Device, dst: &Dump, class: Option<&Device>) {
    let Some(local) = dst
        .devices
        .iter()
        .find(|d| d.idstr == device.idstr && d.instance_id == device.instance_id)
    else {
        c.refuse(
            &device_name(device),
            unknown_section_message(&device.idstr, device.instance_id),
            None,
        );
        return;
    };
    let subject = device_name(device);
    if device.version_id > local.version_id {
        return too_new(c, device, local.version_id, None);
    }
    if device.version_id < local.version_id {
        // The destination reads the fields its vmsd enables for the incoming version:
        // only the class description records which.
        match class {
            Some(class) => check_against_class(c, device, class, None),
            None => c.undecided(
                &subject,
                format!(
                    "older section version {} (local {}): loads if {} is at least the local \
                     minimum_version_id and the fields follow the version, which only the \
                     destination's -dump-vmstate records",
                    device.version_id, local.version_id, device.version_id
                ),
                None,
            ),
        }
        return;
    }
    if let Some((path, message)) = explain::bad_config_data(device, local) {
        // vmstate_pci_device's config is the first thing a PCI device's section loads.
        c.refuse(&subject, message, Some(path));
        return;
    }
    let mut changes = Vec::new();
    diff_device(device, local, &mut changes);
    let before = c.reasons.len();
    replay(c, &subject, device, &changes, class, local);
    let refused = c.reasons[before..]
        .iter()
        .any(|r| r.severity == Severity::Refused);
    if let (false, Some(why)) = (refused, explain::cpu_post_load_refusal(device, local)) {
        // Every field loaded; the CPU's post_load then matches the register lists.
        c.refuse(
            &subject,
            format!(
                "error while loading state for instance {:#x} of device '{}'",
                device.instance_id, device.idstr
            ),
            Some(why),
        );
    }
}

/// The first change at the same version that stops the load, or the first that leaves it
/// undecided; a layout the two dumps cannot settle is replayed against the class.
fn replay(
    c: &mut Checker,
    subject: &str,
    src: &Device,
    changes: &[Change],
    class: Option<&Device>,
    dst: &Device,
) {
    let mut undecided = None;
    for change in changes {
        match change.wire.forward {
            Load::Breaks => {
                let message = match change.kind {
                    ChangeKind::VersionChanged => {
                        change.wire.why.split("; ").next().unwrap_or("").to_string()
                    }
                    ChangeKind::Value => change.wire.why.clone(),
                    _ => format!("Missing section footer for {}", src.idstr),
                };
                let detail = (change.kind != ChangeKind::Value).then(|| change.wire.why.clone());
                c.refuse(subject, message, detail);
                // The load stops here: later fields are not read.
                return;
            }
            Load::Undecided if undecided.is_none() => undecided = Some(change),
            _ => {}
        }
    }
    let Some(change) = undecided else {
        return;
    };
    match class {
        // The class knows every subsection and which fields each version reads.
        Some(class) => check_against_class(c, src, class, Some(&dst.body)),
        None => c.undecided(subject, change.wire.why.clone(), Some(change.path.clone())),
    }
}

/// The class that loads `device`: the one whose vmsd name the section's idstr ends with
/// (`0000:00:01.0/pciespscsi` → `pciespscsi`; `-dump-vmstate` keys by QOM type, the wire
/// by vmsd name). `None` for sections that are not qdev devices.
fn class_of<'c>(classes: &'c Dump, device: &Device) -> Option<&'c Device> {
    let vmsd = &device.body.vmsd_name;
    let wire = device.idstr.rsplit('/').next().unwrap_or(&device.idstr);
    classes
        .devices
        .iter()
        .find(|d| !vmsd.is_empty() && &d.body.vmsd_name == vmsd)
        .or_else(|| classes.devices.iter().find(|d| d.body.vmsd_name == wire))
}

/// The section against the destination's class description: versions, the fields the
/// destination reads at the incoming version, and subsections. `local`: the section as the
/// destination's own dump sent it, which tells a scalar from an empty array.
fn check_against_class(c: &mut Checker, device: &Device, class: &Device, local: Option<&Struct>) {
    let subject = device_name(device);
    let version = u64::from(device.version_id);
    if device.version_id > class.version_id {
        return too_new(
            c,
            device,
            class.version_id,
            Some(format!("class {}", class.idstr)),
        );
    }
    if let Some(min) = class.body.minimum_version.filter(|&m| version < m) {
        return too_old(c, &subject, &class.body.vmsd_name, version, min);
    }
    match replay_struct(&device.body, &class.body, local, version, "") {
        Ok(()) => {}
        Err(Stop::Refused { message, detail }) => c.refuse(
            &subject,
            message.unwrap_or_else(|| format!("Missing section footer for {}", device.idstr)),
            Some(detail),
        ),
        Err(Stop::Undecided(why)) => c.undecided(&subject, why, None),
    }
}

/// Where a replay against a class stops.
enum Stop {
    /// QEMU's message, when it is not the missing footer of a desynchronized load.
    Refused {
        message: Option<String>,
        detail: String,
    },
    Undecided(String),
}

/// The fields the class reads at `version`, matched in order against what the source sent:
/// by name, or at the same place under a name the class does not have (names do not
/// travel). A conditional field the source did not send is taken as skipped (its test was
/// false at the source); a desynchronization after one is then undecided.
fn replay_struct(
    src: &Struct,
    class: &Struct,
    local: Option<&Struct>,
    version: u64,
    prefix: &str,
) -> Result<(), Stop> {
    let mut sent = src.fields.iter().peekable();
    let mut skipped: Option<String> = None;
    let refused = |detail: String| Stop::Refused {
        message: None,
        detail,
    };
    for field in &class.fields {
        let Some(desc) = FieldDesc::of(field) else {
            continue;
        };
        if desc.since > version {
            continue;
        }
        let path = format!("{prefix}{}", field.name);
        match sent.peek() {
            Some(node) if node.name == field.name || !class_has(class, &node.name) => {
                if let (Value::Struct(inner), Value::Struct(nested)) = (&node.value, &field.value) {
                    let local_inner = local.and_then(|l| child_struct(l, &node.name));
                    let nested_version = nested.version.unwrap_or(0);
                    replay_struct(
                        inner,
                        nested,
                        local_inner,
                        nested_version,
                        &format!("{path}."),
                    )?;
                }
                sent.next();
            }
            _ if desc.conditional => skipped = Some(path),
            _ => {
                // A VARRAY with no elements is neither sent nor described: only the
                // destination's own dump, sending it as a plain field, rules that out.
                let scalar = local
                    .and_then(|l| l.fields.iter().find(|n| n.name == field.name))
                    .is_some_and(|n| !matches!(n.value, Value::Array(_) | Value::Scalars(_)));
                let what = match sent.peek() {
                    Some(node) => format!(
                        "the destination reads {path} where the source sent {prefix}{} ({})",
                        node.name,
                        count(node.len, "byte")
                    ),
                    None => format!(
                        "the destination reads {path} ({}) that the source never sent",
                        count(field.len, "byte")
                    ),
                };
                // Reading past what was sent cannot be undone by a conditional field the
                // destination reads too: that only reads more.
                let past_the_end = sent.peek().is_none();
                return Err(if scalar && (skipped.is_none() || past_the_end) {
                    refused(what)
                } else {
                    Stop::Undecided(format!(
                        "{what}, unless it is an array with no elements here (then it is not \
                         sent){}",
                        skipped_note(&skipped)
                    ))
                });
            }
        }
    }
    if let Some(extra) = sent.next() {
        let what = format!(
            "the source sent {prefix}{} ({}) that the destination does not read",
            extra.name,
            count(extra.len, "byte")
        );
        return Err(match skipped {
            None => refused(what),
            Some(_) => Stop::Undecided(format!("{what}{}", skipped_note(&skipped))),
        });
    }
    for sub in &src.subsections {
        let name = &sub.body.vmsd_name;
        let subsection_stop = |message: String| Stop::Refused {
            message: Some(message),
            detail: format!("{prefix}{name}"),
        };
        let Some(known) = class.subsections.iter().find(|s| &s.body.vmsd_name == name) else {
            return Err(subsection_stop(format!(
                "VM subsection '{name}' in '{}' does not exist",
                src.vmsd_name
            )));
        };
        let incoming = sub.body.version.unwrap_or(0);
        let local_version = known.body.version.unwrap_or(0);
        if incoming > local_version {
            return Err(subsection_stop(too_new_message(
                name,
                incoming,
                local_version,
            )));
        }
        if let Some(min) = known.body.minimum_version.filter(|&m| incoming < m) {
            return Err(subsection_stop(too_old_message(name, incoming, min)));
        }
        let local_sub = local.and_then(|l| {
            l.subsections
                .iter()
                .find(|s| &s.body.vmsd_name == name)
                .map(|s| &s.body)
        });
        replay_struct(
            &sub.body,
            &known.body,
            local_sub,
            incoming,
            &format!("{prefix}{name}/"),
        )?;
    }
    Ok(())
}

/// `; or the field_exists test of X holds here`, after a skipped conditional field.
fn skipped_note(skipped: &Option<String>) -> String {
    skipped
        .as_ref()
        .map(|f| format!("; or the field_exists test of {f}, false at the source, holds here"))
        .unwrap_or_default()
}

/// The struct held by field `name` of `s`.
fn child_struct<'s>(s: &'s Struct, name: &str) -> Option<&'s Struct> {
    s.fields.iter().find_map(|n| match &n.value {
        Value::Struct(inner) if n.name == name => Some(&**inner),
        _ => None,
    })
}

fn class_has(class: &Struct, name: &str) -> bool {
    class.fields.iter().any(|f: &Node| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's own qtest scenario: x-ignore-shared and validate-uuid, GPAs per block.
    fn ignore_shared() -> Dump {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/pc10-ignore-shared.mig"
        );
        crate::stream::decode(&std::fs::read(path).unwrap(), None).unwrap()
    }

    fn refusals(src: &Dump, dst: &Dump) -> Vec<String> {
        let verdict = check(
            src,
            Destination {
                dump: Some(dst),
                classes: None,
            },
        );
        verdict
            .reasons
            .iter()
            .filter(|r| r.severity == Severity::Refused)
            .map(|r| r.message.clone())
            .collect()
    }

    #[test]
    fn the_same_dump_loads() {
        let dump = ignore_shared();
        let verdict = check(
            &dump,
            Destination {
                dump: Some(&dump),
                classes: None,
            },
        );
        assert_eq!(verdict.answer, Answer::Loads, "{verdict:?}");
    }

    #[test]
    fn metadata_qemu_checks_is_refused_in_its_words() {
        let src = ignore_shared();
        let mut dst = src.clone();
        dst.uuid = Some("11111111-2222-3333-4444-000000000000".into());
        dst.ram[2].addr = Some(0xfffe_0000);
        dst.machine = Some("pc-i440fx-10.0-extra".into());
        assert_eq!(
            refusals(&src, &dst),
            [
                "UUID received is 11111111-2222-3333-4444-555555555555 and local is \
                 11111111-2222-3333-4444-000000000000",
                "Mismatched GPAs for block pc.bios 4294705152!= 4294836224",
            ]
        );
        // The machine name is compared as a prefix of the received length, as QEMU does.
        dst.machine = Some("pc-q35-10.0".into());
        assert!(refusals(&src, &dst).contains(
            &"Machine type received is 'pc-i440fx-10.0' and local is 'pc-q35-10.0'".into()
        ));

        let mut dst = src.clone();
        dst.capabilities.clear();
        let mut odd = src.clone();
        odd.stream.ram_instance = Some(1);
        odd.page_size = 16384;
        assert_eq!(
            refusals(&odd, &dst),
            [
                "Received TARGET_PAGE_BITS is 14 but local is 12",
                "Capability x-ignore-shared is off, but received capability is on",
                "Unknown savevm section or instance 'ram' 1. Make sure that your current VM setup \
                 matches your saved VM setup, including any hotplugged devices",
            ]
        );
        let mut none = src.clone();
        none.machine = None;
        assert_eq!(refusals(&none, &src)[0], "Configuration section missing");
        assert_eq!(refusals(&src, &none)[0], "Unknown savevm section type 7");
    }
}
