//! `migdiff check`: would the destination load the stream? On real fixture pairs, and on
//! -dump-vmstate files edited to break one loader rule each.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn check(src: &str, dst: &str) -> (i32, String) {
    check_against(src, &[dst])
}

/// `migdiff check SRC --against DST...`: exit status and standard output.
fn check_against(src: &str, dsts: &[&str]) -> (i32, String) {
    let mut args = vec!["check", src];
    for dst in dsts {
        args.extend(["--against", dst]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(&args)
        .current_dir(testdata())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// testdata/vmstate-pc72-qemu10.json with `edit` applied, in a temporary file.
fn edited_vmstate(dir: &Path, edit: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(testdata().join("vmstate-pc72-qemu10.json")).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    edit(&mut json);
    let path = dir.join("edited.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn qemu_7_2_stream_loads_on_qemu_10() {
    let (code, out) = check("pc72-qemu72.mig", "pc72-qemu10.mig");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("migdiff check: pc72-qemu72.mig would load"),
        "{out}"
    );
    let (code, out) = check_against(
        "pc72-qemu72.mig",
        &["pc72-qemu10.mig", "vmstate-pc72-qemu10.json"],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn dump_vmstate_alone_cannot_say_loads() {
    // No RAM, no instances, no cpu/apic/timer: what -dump-vmstate cannot describe is
    // undecided (exit 3), never passed over.
    let (code, out) = check("pc72-qemu72.mig", "vmstate-pc72-qemu10.json");
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("migdiff check: NOT DECIDED"), "{out}");
    assert!(
        out.contains("undecided ram: RAM blocks not checked"),
        "{out}"
    );
    assert!(out.contains("undecided sections: not checked: -dump-vmstate lists only qdev device classes [timer (0), cpu_common (0), cpu (0)"), "{out}");
}

/// QEMU 10.0.2 refuses a QEMU 7.2 stream of -device am53c974 (and dc390) on pc-q35-7.2 with
/// "Missing section footer for 0000:00:01.0/pciespscsi": ESP's nested struct gained an
/// unconditional drq_state byte. The two dumps alone cannot show it (the struct's fields
/// follow esp.mig_version_id in the stream); with the class description it is refused.
#[test]
fn esp_drq_state_added_in_a_nested_struct_is_refused() {
    for device in ["am53c974", "dc390"] {
        let src = format!("q35-72-{device}-qemu72.mig");
        let dst = format!("q35-72-{device}-qemu10.mig");
        let (code, out) = check_against(&src, &[&dst, "vmstate-q35-72-qemu10.json"]);
        assert_eq!(code, 1, "{out}");
        assert_eq!(
            out.lines().nth(1),
            Some("refused   0000:00:01.0/pciespscsi (0): Missing section footer for 0000:00:01.0/pciespscsi [the destination reads esp.drq_state (1 byte) that the source never sent]"),
            "{out}"
        );
        let (code, out) = check(&src, &dst);
        assert_eq!(code, 3, "{out}");
        assert!(
            out.contains("the struct esp went from version 6 to 7"),
            "{out}"
        );
    }
}

#[test]
fn ram_size_and_a_second_slirp_are_refused_in_qemus_words() {
    let (code, out) = check("pc10-stopped.mig", "pc10-m64.mig");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("refused   ram/pc.ram: Size mismatch: pc.ram: 0x2000000 != 0x4000000"),
        "{out}"
    );
    let (code, out) = check("pc10-two-slirp.mig", "pc10-stopped.mig");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("refused   slirp (1): Unknown savevm section or instance 'slirp' 1."),
        "{out}"
    );
}

#[test]
fn device_missing_on_the_destination_is_refused_by_name() {
    let (code, out) = check("pc10-e1000.mig", "pc10-stopped.mig");
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    // RAM comes first in the stream, so QEMU stops at the e1000's option ROM.
    assert_eq!(
        lines[1],
        "refused   ram/0000:00:02.0/e1000.rom: Unknown ramblock \"0000:00:02.0/e1000.rom\", cannot accept migration"
    );
    assert!(lines[2].starts_with(
        "refused   0000:00:02.0/e1000 (0): Unknown savevm section or instance '0000:00:02.0/e1000' 0."
    ));
}

#[test]
fn extra_cpu_and_other_machine_type_are_refused() {
    let (code, out) = check("pc10-smp2.mig", "pc10-stopped.mig");
    assert_eq!(code, 1);
    assert!(
        out.contains("refused   cpu (1): Unknown savevm section or instance 'cpu' 1."),
        "{out}"
    );
    let (code, out) = check("q35-10.mig", "pc10-stopped.mig");
    assert_eq!(code, 1);
    assert!(out.contains("refused   configuration: Machine type received is 'pc-q35-10.0' and local is 'pc-i440fx-10.0'"), "{out}");
}

#[test]
fn lowered_version_in_dump_vmstate_is_refused_with_the_version_rule() {
    let dir = tempfile::tempdir().unwrap();
    let dst = edited_vmstate(dir.path(), |j| j["hpet"]["version_id"] = 1.into());
    let (code, out) = check("pc72-qemu72.mig", &dst);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "refused   hpet (0): savevm: unsupported version 2 for 'hpet' v1 [class hpet]"
        ),
        "{out}"
    );

    let dst = edited_vmstate(dir.path(), |j| {
        j["hpet"]["version_id"] = 3.into();
        j["hpet"]["minimum_version_id"] = 3.into();
        j["hpet"]["Description"]["minimum_version_id"] = 3.into();
    });
    let (code, out) = check("pc72-qemu72.mig", &dst);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused   hpet (0): hpet: incoming version_id 2 is too old for local minimum version_id  3"), "{out}");
}

#[test]
fn unknown_subsection_is_refused_against_dump_vmstate() {
    let dir = tempfile::tempdir().unwrap();
    let dst = edited_vmstate(dir.path(), |j| {
        let subs = j["PIIX4_PM"]["Description"]["Subsections"]
            .as_array_mut()
            .unwrap();
        subs.retain(|s| s["name"] != "piix4_pm/memhp");
    });
    let (code, out) = check("pc72-qemu72.mig", &dst);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused   0000:00:01.3/piix4_pm (0): VM subsection 'piix4_pm/memhp' in 'piix4_pm' does not exist"), "{out}");
}

#[test]
fn subsection_the_destination_dump_did_not_send_is_settled_by_its_class() {
    // SeaBIOS's SMM run makes the source send cpu/msr_smi_count; a stopped destination did
    // not, so its dump cannot tell whether it knows the subsection.
    let (code, out) = check("pc10-running.mig", "pc10-stopped.mig");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "undecided cpu (0): loads only if the destination knows subsection 'cpu/msr_smi_count'"
        ),
        "{out}"
    );
}

#[test]
fn json_verdict() {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args([
            "check",
            "--format",
            "json",
            "pc10-smp2.mig",
            "--against",
            "pc10-stopped.mig",
        ])
        .current_dir(testdata())
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["loads"], false);
    assert_eq!(verdict["answer"], "refused");
    assert_eq!(verdict["reasons"][0]["severity"], "refused");
    assert_eq!(verdict["reasons"][0]["subject"], "cpu_common (1)");
}

/// QEMU refuses `-cpu max` (328 system registers) into `-cpu cortex-a57` (274) with "Invalid
/// value 328 expecting positive value <= 274", and the other way in the CPU's post_load
/// ("error while loading state for instance 0x0 of device 'cpu'"): both checked with real
/// `-incoming` loads of these booted guests. cpreg_vmstate_array_len is an `int32 le`,
/// bounded by the destination's; then `write_list_to_cpustate` cannot write back feature
/// ID registers, constants under TCG, that differ. One CPU model into itself loads.
#[test]
fn arm_cpu_models_refuse_each_other_in_qemus_words() {
    let (code, out) = check("guest-aarch64-max.mig.zst", "guest-aarch64-a57.mig.zst");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("refused   cpu (0): Invalid value 328 expecting positive value <= 274"),
        "{out}"
    );
    let (code, out) = check("guest-aarch64-a57.mig.zst", "guest-aarch64-max.mig.zst");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "refused   cpu (0): error while loading state for instance 0x0 of device 'cpu' \
             [feature ID registers differ, which the destination's CPU holds read-only: \
             ID_PFR0_EL1"
        ),
        "{out}"
    );
    let (code, out) = check("aarch64-max-stopped-again.mig", "aarch64-max-stopped.mig");
    assert_eq!(code, 0, "{out}");
}
