//! What migdiff says fields mean, on real dumps: each explainer speaks only for the target
//! or device it knows, and what it says is snapshotted.

use std::path::PathBuf;
use std::process::Command;

use migdiff::{check, compare, Answer, Config, Destination, Dump, Value};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// A dump, zstd-compressed or not.
fn dump(name: &str) -> Dump {
    migdiff::load(testdata(name)).unwrap()
}

/// `device/path: meaning` for every change with a meaning, in diff order.
fn meanings(old: &str, new: &str) -> String {
    let cmp = compare(&dump(old), &dump(new), &Config::default());
    cmp.findings
        .iter()
        .filter_map(|f| {
            Some(format!(
                "{}: {}",
                f.change.subject(),
                f.change.meaning.as_ref()?
            ))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of `migdiff show FILE` in section `section` that carry an annotation.
fn annotated(file: &str, section: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .arg("show")
        .arg(testdata(file))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let header = format!("[{section}]");
    text.lines()
        .skip_while(|l| !l.starts_with(&header))
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| l.contains("  # "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn i386_registers_have_i386_names() {
    let lines = annotated("pc10-i386.mig", "cpu (0)");
    assert!(lines.contains("env.regs[0] = 0x00000000  # eax"), "{lines}");
    assert!(lines.contains("env.eip = 0x0000fff0  # eip"), "{lines}");
    assert!(
        lines.contains("env.eflags = 0x00000002  # eflags: none"),
        "{lines}"
    );
    assert!(!lines.contains("# r"), "{lines}");
}

#[test]
fn x86_names_stay_off_other_targets() {
    for file in ["aarch64-max-stopped.mig", "riscv64-stopped.mig"] {
        let lines = annotated(file, "cpu (0)");
        for x86 in ["# rax", "# rip", "# rflags", "# CPL=", "MSR_"] {
            assert!(!lines.contains(x86), "{file}: {x86} in\n{lines}");
        }
    }
}

#[test]
fn aarch64_cpu_state() {
    let lines = annotated("aarch64-max-stopped.mig", "cpu (0)");
    let picked: Vec<&str> = lines
        .lines()
        .filter(|l| {
            l.contains("cpsr")
                || l.contains("env.xregs[31]")
                || l.contains("SCTLR_EL1")
                || l.contains("TCR_EL1")
                || l.contains("MAIR_EL1")
                || l.contains("VBAR_EL1")
        })
        .collect();
    insta::assert_snapshot!(picked.join("\n"));
}

#[test]
fn aarch64_register_lists_of_two_cpu_models() {
    let text = meanings("aarch64-a57-stopped.mig", "aarch64-max-stopped.mig");
    let len = text
        .lines()
        .find(|l| l.contains("cpreg_vmstate_array_len"))
        .unwrap();
    insta::assert_snapshot!(len);
}

#[test]
fn riscv_csrs() {
    let lines = annotated("riscv64-stopped.mig", "cpu (0)");
    let picked: Vec<&str> = lines
        .lines()
        .filter(|l| !l.contains("env.gpr[") && !l.contains("env.fpr["))
        .collect();
    insta::assert_snapshot!(picked.join("\n"));
    insta::assert_snapshot!(
        "riscv_stopped_to_running",
        meanings("riscv64-stopped.mig", "riscv64-running.mig")
    );
}

#[test]
fn firmware_programming_pci_config_is_named() {
    // SeaBIOS enabled decoding, assigned the IDE BAR and routed interrupts.
    let text = meanings("pc10-stopped.mig", "pc10-running.mig");
    assert!(text.contains(
        "0000:00:01.1/ide (0)/parent_obj.config[0]: command: +IO +MEM +SERR; BAR4: io 0x0 -> \
         io 0xc000"
    ));
    insta::assert_snapshot!(text);
}

#[test]
fn virtio_net_blob_is_read_field_by_field() {
    insta::assert_snapshot!(annotated(
        "pc10-virtio-net.mig",
        "0000:00:02.0/virtio-net (0)"
    ));
}

#[test]
fn tcg_dumps_say_nothing_of_xsave_liveness() {
    // Under TCG QEMU leaves xstate_bv at 0 with live registers: no dump here came from KVM.
    for (old, new) in [
        ("pc10-stopped.mig", "pc10-running.mig"),
        ("q35-10.mig", "q35-10-busy.mig"),
    ] {
        let text = meanings(old, new);
        assert!(!text.contains("live") && !text.contains("stale"), "{text}");
    }
}

#[test]
fn another_cpu_model_is_named_from_the_reset_signature() {
    let text = meanings("pc10-stopped.mig", "pc10-cpu-max.mig");
    assert!(
        text.contains(
            "cpu (0)/env.regs[2]: edx at reset is the CPU signature: family 15 model 107 \
             stepping 1 -> family 6 model 6 stepping 3: the CPU models differ"
        ),
        "{text}"
    );
    // Once the guest ran, rdx is a register like any other.
    assert!(!meanings("pc10-stopped.mig", "pc10-running.mig").contains("signature"));
}

#[test]
fn a_virtio_device_of_another_kind_is_bad_config_data() {
    let dst = dump("pc10-virtio-net.mig");
    let mut src = dst.clone();
    let device = src
        .devices
        .iter_mut()
        .find(|d| d.idstr.ends_with("/virtio-net"))
        .unwrap();
    let Value::Bytes(blob) = &mut device.body.fields[0].value else {
        panic!("virtio-net's first field is its blob");
    };
    // Config byte 2, the device ID's low byte: 0x1000 (transitional net) -> 0x1001 (block).
    blob[4 + 2] = 0x01;
    let mut destination = Destination::default();
    destination.dump = Some(&dst);
    let verdict = check(&src, destination);
    assert_eq!(verdict.answer, Answer::Refused);
    assert_eq!(
        verdict.reasons[0].message,
        "get_pci_config_device: Bad config data: i=0x2 read: 1 device: 0 cmask: ff wmask: 0 \
         w1cmask:0"
    );
    assert_eq!(verdict.reasons[0].detail.as_deref(), Some("virtio"));
    // And the diff names the register.
    let cmp = compare(&dst, &src, &Config::default());
    let change = cmp
        .findings
        .iter()
        .find(|f| f.change.path == "virtio")
        .unwrap();
    assert_eq!(
        change.change.meaning.as_deref(),
        Some("pci device: 0x1000 -> 0x1001")
    );
}

/// The meanings of the changes of one device, `path: meaning` in diff order.
fn meanings_in(old: &str, new: &str, device: &str) -> String {
    let cmp = compare(&dump(old), &dump(new), &Config::default());
    cmp.findings
        .iter()
        .filter(|f| f.change.device == device)
        .filter_map(|f| Some(format!("{}: {}", f.change.path, f.change.meaning.as_ref()?)))
        .collect::<Vec<_>>()
        .join("\n")
}

const MODELS_DIFFER: &str = "the CPU models likely differ";

#[test]
fn a_different_cpu_model_is_named_from_its_traces() {
    let named = |old: &str, new: &str| -> String {
        meanings(old, new)
            .lines()
            .filter(|l| l.contains(MODELS_DIFFER))
            .collect::<Vec<_>>()
            .join("\n")
    };
    insta::assert_snapshot!(
        "x86_qemu64_against_max",
        named("guest-q35-10-qemu64.mig.zst", "guest-q35-10-max.mig.zst")
    );
    insta::assert_snapshot!(
        "arm_cortex_a57_against_max",
        named("guest-aarch64-a57.mig.zst", "guest-aarch64-max.mig.zst")
    );
    assert!(!named("aarch64-a57-stopped.mig", "aarch64-max-stopped.mig").is_empty());
}

/// A booted guest enables CR4 and XCR0 bits its reset state lacks, and a QEMU upgrade
/// changes the stream: neither is a different CPU model.
#[test]
fn one_cpu_model_is_never_said_to_differ() {
    for (old, new) in [
        ("pc10-stopped.mig", "pc10-running.mig"),
        (
            "guest-q35-10-max-stopped.mig.zst",
            "guest-q35-10-max.mig.zst",
        ),
        ("guest-q35-72-qemu72.mig.zst", "guest-q35-72-qemu10.mig.zst"),
        ("aarch64-max-stopped.mig", "aarch64-max-running.mig.zst"),
        ("aarch64-a57-stopped.mig", "aarch64-a57-running.mig.zst"),
        ("riscv64-stopped.mig", "riscv64-running.mig"),
    ] {
        let text = meanings(old, new);
        assert!(!text.contains(MODELS_DIFFER), "{old} {new}:\n{text}");
    }
}

/// Register lists of two models: values compared by register ID, not by slot.
#[test]
fn arm_register_changes_are_matched_by_register_id() {
    let text = meanings_in(
        "guest-aarch64-a57.mig.zst",
        "guest-aarch64-max.mig.zst",
        "cpu (0)",
    );
    let cpregs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("cpreg_vmstate") || l.starts_with("cpsr"))
        .collect();
    // The slots after the first register max has alone hold other registers than
    // cortex-a57's: a value slot speaks for its register in new wherever it was in old.
    assert!(
        cpregs
            .iter()
            .any(|l| l.contains("TTBR0_EL1") && l.contains("(old slot ")),
        "{text}"
    );
    insta::assert_snapshot!(cpregs.join("\n"));
}

/// A booted Linux guest against the same VM at reset: the PCI command bits, virtio
/// status, negotiated features and queues, and the XCR0 components the kernel enabled.
#[test]
fn booted_guest_explained() {
    let (old, new) = (
        "guest-q35-10-max-stopped.mig.zst",
        "guest-q35-10-max.mig.zst",
    );
    // The virtio blobs change length as the guest boots (a schema change, read by `show`).
    let mut text = String::new();
    for device in ["0000:00:01.0/virtio-net (0)", "0000:00:02.0/virtio-blk (0)"] {
        let lines = annotated(new, device);
        let picked: Vec<&str> = lines
            .lines()
            .filter(|l| {
                [
                    "command=",
                    "status=",
                    "guest_features",
                    "queue ",
                    "control=",
                ]
                .iter()
                .any(|part| l.contains(part))
            })
            .collect();
        text.push_str(&format!("[{device}]\n{}\n", picked.join("\n")));
    }
    let cpu = meanings_in(old, new, "cpu (0)");
    let picked: Vec<&str> = cpu
        .lines()
        .filter(|l| {
            ["env.xcr0", "env.cr[", "env.efer", "env.hflags"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    text.push_str(&format!("[cpu (0)]\n{}\n", picked.join("\n")));
    insta::assert_snapshot!(text);
}

/// A booted arm64 Linux guest: PSTATE and the EL1 system registers the kernel set.
#[test]
fn booted_aarch64_guest_system_registers() {
    let lines = annotated("guest-aarch64-max.mig.zst", "cpu (0)");
    let picked: Vec<&str> = lines
        .lines()
        .filter(|l| {
            [
                "cpsr",
                "SCTLR_EL1",
                "TCR_EL1",
                "TTBR0_EL1",
                "TTBR1_EL1",
                "MAIR_EL1",
                "VBAR_EL1",
                "SP_EL0",
                "ELR_EL1",
                "CPACR_EL1",
                "ID_AA64PFR0_EL1",
            ]
            .iter()
            .any(|name| l.contains(&format!("# {name}")) || l.contains(&format!("{name} ")))
        })
        .collect();
    insta::assert_snapshot!(picked.join("\n"));
}

/// A booted riscv64 guest's CSRs as migdiff names them (stopped against running firmware).
#[test]
fn riscv_running_csrs() {
    let lines = annotated("riscv64-running.mig", "cpu (0)");
    let picked: Vec<&str> = lines
        .lines()
        .filter(|l| !l.contains("env.gpr[") && !l.contains("env.fpr["))
        .collect();
    insta::assert_snapshot!(picked.join("\n"));
}
