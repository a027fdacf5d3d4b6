//! Explanations of x86 CPU state values, with the names QEMU's headers give them.
//!
//! A diff line such as `cpu (0)/env.hflags: 0x00000040 -> 0x000000b0` means nothing without
//! QEMU's `target/i386/cpu.h` at hand. This module carries the relevant tables and renders:
//!
//! * flag words (hflags, hflags2, cr0, cr4, efer, xcr0, xstate_bv, xss, eflags, mxcsr, x87
//!   control/status words, MCG_CAP/MCG_STATUS, PAT, MTRR default type): a value as its set
//!   names joined by `|` (`PE|ET`, multi-bit fields as `CPL=3`); a change as the bits set and
//!   cleared in bit order (`+CS32 +SS32 -ADDSEG +PE`, multi-bit fields as `CPL 0->3`); bits no
//!   table names as `bit12`;
//! * segment descriptor flags: `CS: code RXA, DPL0, P, DB, G` for a value, `CS: DPL 0->3, +L`
//!   for a change (format in the comments of `segment_value` and `describe_type`);
//! * the MSR behind a field (`MSR_STAR (0xc0000081)`), as read from `target/i386/machine.c`
//!   (which field) and `target/i386/kvm/kvm.c` (which MSR KVM loads it from / stores it to);
//! * the architectural register a vmstate path holds ([`register_name`]) and whether its xsave
//!   component is live ([`is_live`]).
//!
//! Tables follow QEMU master (10.2) and are checked against QEMU 10.0 / 7.2 streams. Paths are
//! as migdiff prints them: main-section fields bare (`env.hflags`), subsection fields behind the
//! subsection's vmsd name (`cpu/avx512/env.opmask_regs[3]`). Where a vmsd lists the same field
//! name twice QEMU's vmdesc numbers the occurrences (`env.xmm_regs[0]`, `env.xmm_regs[1]`).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

/// What a value means: the register it is (`cr0`) and what its bits say (`PE|ET`),
/// combined as `cr0: PE|ET`; either alone when only one is known.
pub fn value_meaning(width: Width, path: &str, value: u64) -> Option<String> {
    combine(register_name(width, path), explain_value(path, value))
}

/// What a change means, combined the same way: `cr0: +PE -NW -CD`.
pub fn change_meaning(width: Width, path: &str, old: u64, new: u64) -> Option<String> {
    combine(register_name(width, path), explain_change(path, old, new))
}

/// `register: explanation`, dropping the register when the explanation already names it
/// (`cs.attr` + `CS: code RXA` gives `CS: code RXA`).
fn combine(register: Option<String>, explanation: Option<String>) -> Option<String> {
    match (register, explanation) {
        (Some(r), Some(e)) => {
            let stem = r
                .split(['.', ' '])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if e.to_ascii_lowercase().starts_with(&stem) {
                Some(e)
            } else {
                Some(format!("{r}: {e}"))
            }
        }
        (r, e) => r.or(e),
    }
}

/// A short explanation of how `old` became `new` for the field `path` of device `idstr`
/// (idstr is the bare section name, e.g. "cpu"; path as printed by migdiff, e.g. "env.hflags").
/// None when the field is not one this module knows.
pub fn explain_change(path: &str, old: u64, new: u64) -> Option<String> {
    Some(match lookup(path)? {
        Known::Flags(word, msr) => with_note(msr, render_change(word, old, new)),
        Known::Segment(seg) => format!("{}: {}", seg.name(), segment_change(seg, old, new)),
        Known::Msr(note) => note,
        Known::A20 => {
            let (o, n) = (a20_text(old), a20_text(new));
            if o == n {
                format!("A20 {o} (unchanged)")
            } else {
                format!("A20 {o}->{n}")
            }
        }
    })
}

/// A short explanation of a single value (for `migdiff show`-style output), same rules.
pub fn explain_value(path: &str, value: u64) -> Option<String> {
    Some(match lookup(path)? {
        Known::Flags(word, msr) => with_note(msr, render_value(word, value)),
        Known::Segment(seg) => format!("{}: {}", seg.name(), segment_value(seg, value)),
        Known::Msr(note) => note,
        Known::A20 => format!("A20 {}", a20_text(value)),
    })
}

/// The register a vmstate path holds, named as an x86 programmer would, if it is one:
/// `"env.xmm_regs[0][3]._q_ZMMReg[0]"` -> `Some("xmm3 (bits 0-63)")`,
/// `"env.xmm_regs[1][3]._q_ZMMReg[2]"` -> `Some("ymmh3 (bits 128-191)")`...
pub fn register_name(width: Width, path: &str) -> Option<String> {
    let (reg, nums) = find_register(path)?;
    let name = reg.kind.name(&nums)?;
    match width {
        Width::Long => Some(name),
        Width::Legacy => legacy_name(name),
    }
}

/// The registers of a CPU: x86-64's (`rax`, `rip`, `rflags`) or, for a qemu-system-i386
/// dump, whose general registers and eip are 4 bytes, i386's (`eax`, `eip`, `eflags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Long,
    Legacy,
}

/// A long-mode name as i386 has it: `rax` -> `eax`; none for what i386 lacks (`r8`).
fn legacy_name(name: String) -> Option<String> {
    match name.strip_prefix('r') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => None,
        Some(rest) => Some(format!("e{rest}")),
        None => Some(name),
    }
}

/// Whether the xsave component holding register path `path` is live given xstate_bv,
/// e.g. ymmh registers need XSTATE_YMM; None when the path is not an xsave register.
pub fn is_live(path: &str, xstate_bv: u64) -> Option<bool> {
    let (reg, nums) = find_register(path)?;
    // Only paths that name a real register (index in range) count.
    reg.kind.name(&nums)?;
    let bit = reg.xstate?;
    Some(xstate_bv.checked_shr(bit).unwrap_or(0) & 1 == 1)
}

use std::collections::HashMap;

use super::flags::{bit, named, num, render_change, render_value, FlagWord};
use super::Section;
use crate::tree::{Node, Value};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Flag words
// ---------------------------------------------------------------------------------------------

// hflags: QEMU target/i386/cpu.h, HF_*_SHIFT / HF_*_MASK ("hidden flags"). CPL (HF_CPL_MASK) and
// IOPL (HF_IOPL_MASK) are 2-bit fields. There is no MMU index in hflags. Bits 2 and 29-31 are
// not defined.
const HFLAGS: FlagWord = FlagWord {
    parts: &[
        num(0, 2, "CPL", true),
        bit(3, "INHIBIT_IRQ"),
        bit(4, "CS32"),
        bit(5, "SS32"),
        bit(6, "ADDSEG"),
        bit(7, "PE"),
        bit(8, "TF"),
        bit(9, "MP"),
        bit(10, "EM"),
        bit(11, "TS"),
        num(12, 2, "IOPL", false),
        bit(14, "LMA"),
        bit(15, "CS64"),
        bit(16, "RF"),
        bit(17, "VM"),
        bit(18, "AC"),
        bit(19, "SMM"),
        bit(20, "SVME"),
        bit(21, "GUEST"),
        bit(22, "OSFXSR"),
        bit(23, "SMAP"),
        bit(24, "IOBPT"),
        bit(25, "MPX_EN"),
        bit(26, "MPX_IU"),
        bit(27, "UMIP"),
        bit(28, "AVX_EN"),
    ],
    fixed: 0,
};

// hflags2: QEMU target/i386/cpu.h, HF2_*_SHIFT / HF2_*_MASK.
const HFLAGS2: FlagWord = FlagWord {
    parts: &[
        bit(0, "GIF"),
        bit(1, "HIF"),
        bit(2, "NMI"),
        bit(3, "VINTR"),
        bit(4, "SMM_INSIDE_NMI"),
        bit(5, "MPX_PR"),
        bit(6, "NPT"),
        bit(7, "IGNNE"),
        bit(8, "VGIF"),
    ],
    fixed: 0,
};

// CR0: QEMU target/i386/cpu.h, CR0_*_MASK.
const CR0: FlagWord = FlagWord {
    parts: &[
        bit(0, "PE"),
        bit(1, "MP"),
        bit(2, "EM"),
        bit(3, "TS"),
        bit(4, "ET"),
        bit(5, "NE"),
        bit(16, "WP"),
        bit(18, "AM"),
        bit(29, "NW"),
        bit(30, "CD"),
        bit(31, "PG"),
    ],
    fixed: 0,
};

// CR4: QEMU target/i386/cpu.h, CR4_*_MASK (CR4_FRED_MASK is bit 32, x86_64 only).
const CR4: FlagWord = FlagWord {
    parts: &[
        bit(0, "VME"),
        bit(1, "PVI"),
        bit(2, "TSD"),
        bit(3, "DE"),
        bit(4, "PSE"),
        bit(5, "PAE"),
        bit(6, "MCE"),
        bit(7, "PGE"),
        bit(8, "PCE"),
        bit(9, "OSFXSR"),
        bit(10, "OSXMMEXCPT"),
        bit(11, "UMIP"),
        bit(12, "LA57"),
        bit(13, "VMXE"),
        bit(14, "SMXE"),
        bit(16, "FSGSBASE"),
        bit(17, "PCIDE"),
        bit(18, "OSXSAVE"),
        bit(20, "SMEP"),
        bit(21, "SMAP"),
        bit(22, "PKE"),
        bit(23, "CET"),
        bit(24, "PKS"),
        bit(28, "LAM_SUP"),
        bit(32, "FRED"),
    ],
    fixed: 0,
};

// EFER: QEMU target/i386/cpu.h, MSR_EFER_* bits.
const EFER: FlagWord = FlagWord {
    parts: &[
        bit(0, "SCE"),
        bit(8, "LME"),
        bit(10, "LMA"),
        bit(11, "NXE"),
        bit(12, "SVME"),
        bit(14, "FFXSR"),
    ],
    fixed: 0,
};

// XCR0 / XSTATE_BV / IA32_XSS / IA32_XFD: QEMU target/i386/cpu.h, XSTATE_*_BIT.
const XSTATE_FP: u32 = 0;
const XSTATE_SSE: u32 = 1;
const XSTATE_YMM: u32 = 2;
const XSTATE_BNDREGS: u32 = 3;
const XSTATE_BNDCSR: u32 = 4;
const XSTATE_OPMASK: u32 = 5;
const XSTATE_ZMM_HI256: u32 = 6;
const XSTATE_HI16_ZMM: u32 = 7;
const XSTATE_PKRU: u32 = 9;
const XSTATE_APX: u32 = 19;
const XSTATE: FlagWord = FlagWord {
    parts: &[
        bit(XSTATE_FP, "FP"),
        bit(XSTATE_SSE, "SSE"),
        bit(XSTATE_YMM, "YMM"),
        bit(XSTATE_BNDREGS, "BNDREGS"),
        bit(XSTATE_BNDCSR, "BNDCSR"),
        bit(XSTATE_OPMASK, "OPMASK"),
        bit(XSTATE_ZMM_HI256, "ZMM_Hi256"),
        bit(XSTATE_HI16_ZMM, "Hi16_ZMM"),
        bit(8, "PT"),
        bit(XSTATE_PKRU, "PKRU"),
        bit(11, "CET_U"),
        bit(12, "CET_S"),
        bit(15, "ARCH_LBR"),
        bit(17, "XTILE_CFG"),
        bit(18, "XTILE_DATA"),
        bit(XSTATE_APX, "APX"),
    ],
    fixed: 0,
};

// EFLAGS: QEMU target/i386/cpu.h, CC_* (arithmetic flags, named here as the SDM does: CC_C is
// CF...) and TF_MASK .. ID_MASK; IOPL_MASK is a 2-bit field. Bit 1 always reads as 1.
const EFLAGS: FlagWord = FlagWord {
    parts: &[
        bit(0, "CF"),
        bit(2, "PF"),
        bit(4, "AF"),
        bit(6, "ZF"),
        bit(7, "SF"),
        bit(8, "TF"),
        bit(9, "IF"),
        bit(10, "DF"),
        bit(11, "OF"),
        num(12, 2, "IOPL", false),
        bit(14, "NT"),
        bit(16, "RF"),
        bit(17, "VM"),
        bit(18, "AC"),
        bit(19, "VIF"),
        bit(20, "VIP"),
        bit(21, "ID"),
    ],
    fixed: 1 << 1,
};

/// Rounding control, shared by MXCSR.RC and the x87 FCW.RC (Intel SDM 4.8.4).
const ROUNDING: &[&str] = &["nearest", "down", "up", "zero"];

// MXCSR: QEMU target/i386/tcg/fpu_helper.c has SSE_DAZ, SSE_RC_SHIFT/SSE_RC_MASK, SSE_FZ; the
// exception flag and mask names are the Intel SDM's (QEMU uses float_flag_* internally).
const MXCSR: FlagWord = FlagWord {
    parts: &[
        bit(0, "IE"),
        bit(1, "DE"),
        bit(2, "ZE"),
        bit(3, "OE"),
        bit(4, "UE"),
        bit(5, "PE"),
        bit(6, "DAZ"),
        bit(7, "IM"),
        bit(8, "DM"),
        bit(9, "ZM"),
        bit(10, "OM"),
        bit(11, "UM"),
        bit(12, "PM"),
        named(13, 2, "RC", ROUNDING, false),
        bit(15, "FZ"),
    ],
    fixed: 0,
};

// x87 control word (env.fpuc): QEMU target/i386/tcg/fpu_helper.c has FPUC_EM (the six mask
// bits) and FPU_RC_SHIFT/FPU_RC_MASK; the other names are the Intel SDM's (8.1.5). Bit 6 is
// reserved and set by FNINIT (reset value 0x037f).
const FPUC: FlagWord = FlagWord {
    parts: &[
        bit(0, "IM"),
        bit(1, "DM"),
        bit(2, "ZM"),
        bit(3, "OM"),
        bit(4, "UM"),
        bit(5, "PM"),
        named(
            8,
            2,
            "PC",
            &["24-bit", "reserved", "53-bit", "64-bit"],
            true,
        ),
        named(10, 2, "RC", ROUNDING, false),
        bit(12, "X"),
    ],
    fixed: 1 << 6,
};

// x87 status word (env.fpus_vmstate, which machine.c's cpu_pre_save builds with TOP = fpstt in
// bits 11-13): QEMU target/i386/tcg/fpu_helper.c FPUS_IE .. FPUS_B (FPUS_SE is the SDM's ES);
// C0-C3 and TOP are the Intel SDM's names (8.1.3).
const FPUS: FlagWord = FlagWord {
    parts: &[
        bit(0, "IE"),
        bit(1, "DE"),
        bit(2, "ZE"),
        bit(3, "OE"),
        bit(4, "UE"),
        bit(5, "PE"),
        bit(6, "SF"),
        bit(7, "ES"),
        bit(8, "C0"),
        bit(9, "C1"),
        bit(10, "C2"),
        num(11, 3, "TOP", false),
        bit(14, "C3"),
        bit(15, "B"),
    ],
    fixed: 0,
};

// IA32_MCG_CAP: QEMU target/i386/cpu.h, MCG_CAP_BANKS_MASK (bank count, bits 0-7), MCG_CTL_P,
// MCG_SER_P, MCG_LMCE_P. Other capability bits QEMU never sets print as bitN.
const MCG_CAP: FlagWord = FlagWord {
    parts: &[
        num(0, 8, "banks", true),
        bit(8, "CTL_P"),
        bit(24, "SER_P"),
        bit(27, "LMCE_P"),
    ],
    fixed: 0,
};

// IA32_MCG_STATUS: QEMU target/i386/cpu.h, MCG_STATUS_*.
const MCG_STATUS: FlagWord = FlagWord {
    parts: &[
        bit(0, "RIPV"),
        bit(1, "EIPV"),
        bit(2, "MCIP"),
        bit(3, "LMCE"),
    ],
    fixed: 0,
};

/// PAT memory types by encoding (Intel SDM table 13-10); 2 and 3 are reserved.
const PAT_TYPES: &[&str] = &["UC", "WC", "", "", "WT", "WP", "WB", "UC-"];

// IA32_PAT: QEMU has no names for its entries (cpu.h only defines MSR_PAT); the layout is the
// Intel SDM's (13.12.2): eight 3-bit entries PA0..PA7, one per byte. QEMU resets it to
// 0x0007040600070406 (WB, WT, UC-, UC twice).
const PAT: FlagWord = FlagWord {
    parts: &[
        named(0, 3, "PA0", PAT_TYPES, true),
        named(8, 3, "PA1", PAT_TYPES, true),
        named(16, 3, "PA2", PAT_TYPES, true),
        named(24, 3, "PA3", PAT_TYPES, true),
        named(32, 3, "PA4", PAT_TYPES, true),
        named(40, 3, "PA5", PAT_TYPES, true),
        named(48, 3, "PA6", PAT_TYPES, true),
        named(56, 3, "PA7", PAT_TYPES, true),
    ],
    fixed: 0,
};

/// MTRR memory types by encoding (Intel SDM table 12-8); 2, 3 and 7 and above are reserved.
const MTRR_TYPES: &[&str] = &["UC", "WC", "", "", "WT", "WP", "WB"];

// IA32_MTRR_DEF_TYPE: QEMU target/i386/cpu.h has MSR_MTRR_ENABLE (bit 11, E) and the
// MSR_MTRR_MEM_TYPE_WB encoding; the default type field (bits 0-7) and FE (fixed-range enable,
// bit 10) are the Intel SDM's (12.11.2.1).
const MTRR_DEFTYPE: FlagWord = FlagWord {
    parts: &[
        named(0, 8, "type", MTRR_TYPES, true),
        bit(10, "FE"),
        bit(11, "E"),
    ],
    fixed: 0,
};

/// An MSR: its QEMU macro name and number.
type Msr = (&'static str, u32);

// Flag-word fields: vmstate field (target/i386/machine.c) -> table, and the MSR KVM moves it
// through (target/i386/kvm/kvm.c kvm_put_msrs/kvm_get_msrs), if any.
const FLAG_FIELDS: &[(&str, &FlagWord, Option<Msr>)] = &[
    ("env.eflags", &EFLAGS, None),
    ("env.hflags", &HFLAGS, None),
    ("env.hflags2", &HFLAGS2, None),
    ("env.cr[0]", &CR0, None),
    ("env.cr[4]", &CR4, None),
    ("env.fpuc", &FPUC, None),
    ("env.fpus_vmstate", &FPUS, None),
    ("env.mxcsr", &MXCSR, None),
    ("env.xcr0", &XSTATE, None),
    ("env.xstate_bv", &XSTATE, None),
    ("env.efer", &EFER, Some(("MSR_EFER", 0xc000_0080))),
    ("env.pat", &PAT, Some(("MSR_PAT", 0x277))),
    (
        "env.mtrr_deftype",
        &MTRR_DEFTYPE,
        Some(("MSR_MTRRdefType", 0x2ff)),
    ),
    ("env.mcg_cap", &MCG_CAP, Some(("MSR_MCG_CAP", 0x179))),
    (
        "env.mcg_status",
        &MCG_STATUS,
        Some(("MSR_MCG_STATUS", 0x17a)),
    ),
    ("env.xss", &XSTATE, Some(("MSR_IA32_XSS", 0xda0))),
    ("env.msr_xfd", &XSTATE, Some(("MSR_IA32_XFD", 0x1c4))),
    (
        "env.msr_xfd_err",
        &XSTATE,
        Some(("MSR_IA32_XFD_ERR", 0x1c5)),
    ),
];

// MSR-backed fields: vmstate field (target/i386/machine.c, main section and subsections) ->
// MSR macro and number from target/i386/cpu.h (MSR_*), include/standard-headers/asm-x86/
// kvm_para.h (MSR_KVM_*) and target/i386/kvm/hyperv-proto.h (HV_X64_MSR_*). The pairing is the
// one target/i386/kvm/kvm.c uses. env.smbase is the SMBASE register; KVM moves it as
// MSR_IA32_SMBASE. KVM's clock fields use the legacy MSR numbers (kvm.c: MSR_KVM_SYSTEM_TIME).
const MSR_FIELDS: &[(&str, Msr)] = &[
    ("env.sysenter_cs", ("MSR_IA32_SYSENTER_CS", 0x174)),
    ("env.sysenter_esp", ("MSR_IA32_SYSENTER_ESP", 0x175)),
    ("env.sysenter_eip", ("MSR_IA32_SYSENTER_EIP", 0x176)),
    ("env.star", ("MSR_STAR", 0xc000_0081)),
    ("env.lstar", ("MSR_LSTAR", 0xc000_0082)),
    ("env.cstar", ("MSR_CSTAR", 0xc000_0083)),
    ("env.fmask", ("MSR_FMASK", 0xc000_0084)),
    ("env.kernelgsbase", ("MSR_KERNELGSBASE", 0xc000_0102)),
    ("env.smbase", ("MSR_IA32_SMBASE", 0x9e)),
    ("env.vm_hsave", ("MSR_VM_HSAVE_PA", 0xc001_0117)),
    ("env.tsc", ("MSR_IA32_TSC", 0x10)),
    ("env.mcg_ctl", ("MSR_MCG_CTL", 0x17b)),
    ("env.tsc_aux", ("MSR_TSC_AUX", 0xc000_0103)),
    ("env.system_time_msr", ("MSR_KVM_SYSTEM_TIME", 0x12)),
    ("env.wall_clock_msr", ("MSR_KVM_WALL_CLOCK", 0x11)),
    // Subsections.
    ("env.steal_time_msr", ("MSR_KVM_STEAL_TIME", 0x4b56_4d03)),
    ("env.async_pf_en_msr", ("MSR_KVM_ASYNC_PF_EN", 0x4b56_4d02)),
    (
        "env.async_pf_int_msr",
        ("MSR_KVM_ASYNC_PF_INT", 0x4b56_4d06),
    ),
    ("env.pv_eoi_en_msr", ("MSR_KVM_PV_EOI_EN", 0x4b56_4d04)),
    (
        "env.poll_control_msr",
        ("MSR_KVM_POLL_CONTROL", 0x4b56_4d05),
    ),
    ("env.tsc_adjust", ("MSR_TSC_ADJUST", 0x3b)),
    ("env.msr_smi_count", ("MSR_SMI_COUNT", 0x34)),
    ("env.tsc_deadline", ("MSR_IA32_TSCDEADLINE", 0x6e0)),
    ("env.msr_ia32_misc_enable", ("MSR_IA32_MISC_ENABLE", 0x1a0)),
    (
        "env.msr_ia32_feature_control",
        ("MSR_IA32_FEATURE_CONTROL", 0x3a),
    ),
    ("env.msr_bndcfgs", ("MSR_IA32_BNDCFGS", 0xd90)),
    (
        "env.msr_hv_guest_os_id",
        ("HV_X64_MSR_GUEST_OS_ID", 0x4000_0000),
    ),
    (
        "env.msr_hv_hypercall",
        ("HV_X64_MSR_HYPERCALL", 0x4000_0001),
    ),
    (
        "env.msr_hv_vapic",
        ("HV_X64_MSR_APIC_ASSIST_PAGE", 0x4000_0073),
    ),
    ("env.msr_hv_tsc", ("HV_X64_MSR_REFERENCE_TSC", 0x4000_0021)),
    ("env.msr_hv_runtime", ("HV_X64_MSR_VP_RUNTIME", 0x4000_0010)),
    (
        "env.msr_hv_synic_control",
        ("HV_X64_MSR_SCONTROL", 0x4000_0080),
    ),
    (
        "env.msr_hv_synic_evt_page",
        ("HV_X64_MSR_SIEFP", 0x4000_0082),
    ),
    (
        "env.msr_hv_synic_msg_page",
        ("HV_X64_MSR_SIMP", 0x4000_0083),
    ),
    (
        "env.msr_hv_reenlightenment_control",
        ("HV_X64_MSR_REENLIGHTENMENT_CONTROL", 0x4000_0106),
    ),
    (
        "env.msr_hv_tsc_emulation_control",
        ("HV_X64_MSR_TSC_EMULATION_CONTROL", 0x4000_0107),
    ),
    (
        "env.msr_hv_tsc_emulation_status",
        ("HV_X64_MSR_TSC_EMULATION_STATUS", 0x4000_0108),
    ),
    ("env.umwait", ("MSR_IA32_UMWAIT_CONTROL", 0xe1)),
    ("env.pkrs", ("MSR_IA32_PKRS", 0x6e1)),
    ("env.mcg_ext_ctl", ("MSR_MCG_EXT_CTL", 0x4d0)),
    ("env.spec_ctrl", ("MSR_IA32_SPEC_CTRL", 0x48)),
    (
        "env.amd_tsc_scale_msr",
        ("MSR_AMD64_TSC_RATIO", 0xc000_0104),
    ),
    ("env.msr_rtit_ctrl", ("MSR_IA32_RTIT_CTL", 0x570)),
    ("env.msr_rtit_status", ("MSR_IA32_RTIT_STATUS", 0x571)),
    (
        "env.msr_rtit_output_base",
        ("MSR_IA32_RTIT_OUTPUT_BASE", 0x560),
    ),
    (
        "env.msr_rtit_output_mask",
        ("MSR_IA32_RTIT_OUTPUT_MASK", 0x561),
    ),
    ("env.msr_rtit_cr3_match", ("MSR_IA32_RTIT_CR3_MATCH", 0x572)),
    ("env.virt_ssbd", ("MSR_VIRT_SSBD", 0xc001_011f)),
    ("env.tsx_ctrl", ("MSR_IA32_TSX_CTRL", 0x122)),
    ("env.msr_hwcr", ("MSR_K7_HWCR", 0xc001_0015)),
    ("env.fred_rsp0", ("MSR_IA32_FRED_RSP0", 0x1cc)),
    ("env.fred_rsp1", ("MSR_IA32_FRED_RSP1", 0x1cd)),
    ("env.fred_rsp2", ("MSR_IA32_FRED_RSP2", 0x1ce)),
    ("env.fred_rsp3", ("MSR_IA32_FRED_RSP3", 0x1cf)),
    ("env.fred_stklvls", ("MSR_IA32_FRED_STKLVLS", 0x1d0)),
    ("env.fred_ssp1", ("MSR_IA32_FRED_SSP1", 0x1d1)),
    ("env.fred_ssp2", ("MSR_IA32_FRED_SSP2", 0x1d2)),
    ("env.fred_ssp3", ("MSR_IA32_FRED_SSP3", 0x1d3)),
    ("env.fred_config", ("MSR_IA32_FRED_CONFIG", 0x1d4)),
    ("env.msr_lbr_ctl", ("MSR_ARCH_LBR_CTL", 0x14ce)),
    ("env.msr_lbr_depth", ("MSR_ARCH_LBR_DEPTH", 0x14cf)),
    ("env.u_cet", ("MSR_IA32_U_CET", 0x6a0)),
    ("env.s_cet", ("MSR_IA32_S_CET", 0x6a2)),
    ("env.pl0_ssp", ("MSR_IA32_PL0_SSP", 0x6a4)),
    ("env.pl1_ssp", ("MSR_IA32_PL1_SSP", 0x6a5)),
    ("env.pl2_ssp", ("MSR_IA32_PL2_SSP", 0x6a6)),
    ("env.pl3_ssp", ("MSR_IA32_PL3_SSP", 0x6a7)),
    ("env.int_ssp_table", ("MSR_IA32_INT_SSP_TAB", 0x6a8)),
];

/// An MSR name with an index in it, and its number.
type IndexedMsr = fn(u32) -> Option<(String, u32)>;

/// `base + index * stride` when `index < count`.
fn msr_at(index: u32, count: u32, base: u32, stride: u32) -> Option<u32> {
    if index >= count {
        return None;
    }
    base.checked_add(index.checked_mul(stride)?)
}

// MTRR fixed-range MSRs in env.mtrr_fixed order: QEMU target/i386/cpu.h MSR_MTRRfix*
// (kvm.c stores mtrr_fixed[0..10] in this order).
const MTRR_FIXED: &[Msr] = &[
    ("MSR_MTRRfix64K_00000", 0x250),
    ("MSR_MTRRfix16K_80000", 0x258),
    ("MSR_MTRRfix16K_A0000", 0x259),
    ("MSR_MTRRfix4K_C0000", 0x268),
    ("MSR_MTRRfix4K_C8000", 0x269),
    ("MSR_MTRRfix4K_D0000", 0x26a),
    ("MSR_MTRRfix4K_D8000", 0x26b),
    ("MSR_MTRRfix4K_E0000", 0x26c),
    ("MSR_MTRRfix4K_E8000", 0x26d),
    ("MSR_MTRRfix4K_F0000", 0x26e),
    ("MSR_MTRRfix4K_F8000", 0x26f),
];

/// The four MSRs of a machine-check bank, in MSR_MC0_CTL .. MSR_MC0_MISC order.
const MC_BANK_REGS: &[&str] = &["CTL", "STATUS", "ADDR", "MISC"];

// Array-element MSR fields: vmstate path pattern (`#` = an index) -> MSR. Numbering as
// target/i386/kvm/kvm.c does it: MSR_MC0_CTL + i (MCE_BANKS_DEF * 4 = 40 entries),
// MSR_MTRRphysBase/Mask(i) (MSR_MTRRcap_VCNT = 8), MSR_IA32_RTIT_ADDR0_A + i (MAX_RTIT_ADDRS),
// MSR_IA32_SGXLEPUBKEYHASH0 + i, MSR_ARCH_LBR_{FROM,TO,INFO}_0 + i (ARCH_LBR_NR_ENTRIES = 32),
// HV_X64_MSR_CRASH_P0 + i, HV_X64_MSR_SINT0 + i, HV_X64_MSR_STIMER0_{CONFIG,COUNT} + 2i.
const INDEXED_MSRS: &[(&str, IndexedMsr)] = &[
    ("env.mce_banks[#]", |i| {
        let reg = MC_BANK_REGS.get(usize::try_from(i % 4).ok()?)?;
        Some((format!("MSR_MC{}_{reg}", i / 4), msr_at(i, 40, 0x400, 1)?))
    }),
    ("env.mtrr_fixed[#]", |i| {
        let (name, number) = MTRR_FIXED.get(usize::try_from(i).ok()?)?;
        Some(((*name).to_string(), *number))
    }),
    ("env.mtrr_var[#].base", |i| {
        Some((format!("MSR_MTRRphysBase{i}"), msr_at(i, 8, 0x200, 2)?))
    }),
    ("env.mtrr_var[#].mask", |i| {
        Some((format!("MSR_MTRRphysMask{i}"), msr_at(i, 8, 0x201, 2)?))
    }),
    ("env.msr_rtit_addrs[#]", |i| {
        let ab = if i % 2 == 0 { 'A' } else { 'B' };
        let number = msr_at(i, 8, 0x580, 1)?;
        Some((format!("MSR_IA32_RTIT_ADDR{}_{ab}", i / 2), number))
    }),
    ("env.msr_ia32_sgxlepubkeyhash[#]", |i| {
        let number = msr_at(i, 4, 0x8c, 1)?;
        Some((format!("MSR_IA32_SGXLEPUBKEYHASH{i}"), number))
    }),
    ("env.lbr_records[#].from", |i| {
        Some((format!("MSR_ARCH_LBR_FROM_{i}"), msr_at(i, 32, 0x1500, 1)?))
    }),
    ("env.lbr_records[#].to", |i| {
        Some((format!("MSR_ARCH_LBR_TO_{i}"), msr_at(i, 32, 0x1600, 1)?))
    }),
    ("env.lbr_records[#].info", |i| {
        Some((format!("MSR_ARCH_LBR_INFO_{i}"), msr_at(i, 32, 0x1200, 1)?))
    }),
    ("env.msr_hv_crash_params[#]", |i| {
        let number = msr_at(i, 5, 0x4000_0100, 1)?;
        Some((format!("HV_X64_MSR_CRASH_P{i}"), number))
    }),
    ("env.msr_hv_synic_sint[#]", |i| {
        Some((
            format!("HV_X64_MSR_SINT{i}"),
            msr_at(i, 16, 0x4000_0090, 1)?,
        ))
    }),
    ("env.msr_hv_stimer_config[#]", |i| {
        let number = msr_at(i, 4, 0x4000_00b0, 2)?;
        Some((format!("HV_X64_MSR_STIMER{i}_CONFIG"), number))
    }),
    ("env.msr_hv_stimer_count[#]", |i| {
        let number = msr_at(i, 4, 0x4000_00b1, 2)?;
        Some((format!("HV_X64_MSR_STIMER{i}_COUNT"), number))
    }),
];

fn msr_note(name: &str, number: u32) -> String {
    format!("{name} ({number:#x})")
}

fn with_note(msr: Option<Msr>, text: String) -> String {
    match msr {
        Some((name, number)) => format!("{}: {text}", msr_note(name, number)),
        None => text,
    }
}

/// env.a20_mask (an INT32: migdiff may hand it over sign-extended): all ones when the A20 gate
/// is open, bit 20 clear when it is masked (QEMU x86_cpu_set_a20).
fn a20_text(mask: u64) -> &'static str {
    if mask & (1 << 20) != 0 {
        "on"
    } else {
        "off"
    }
}

// ---------------------------------------------------------------------------------------------
// Segment descriptor flags
// ---------------------------------------------------------------------------------------------

// Segment descriptor flags (SegmentCache.flags, the descriptor's high dword): QEMU
// target/i386/cpu.h, DESC_*_SHIFT / DESC_*_MASK.
const DESC_G_MASK: u64 = 1 << 23;
const DESC_B_MASK: u64 = 1 << 22;
const DESC_L_MASK: u64 = 1 << 21;
const DESC_AVL_MASK: u64 = 1 << 20;
const DESC_P_MASK: u64 = 1 << 15;
const DESC_DPL_SHIFT: u32 = 13;
const DESC_S_MASK: u64 = 1 << 12;
const DESC_TYPE_SHIFT: u32 = 8;
const DESC_CS_MASK: u64 = 1 << 11;
const DESC_C_MASK: u64 = 1 << 10;
const DESC_E_MASK: u64 = 1 << 10;
const DESC_R_MASK: u64 = 1 << 9;
const DESC_W_MASK: u64 = 1 << 9;
const DESC_A_MASK: u64 = 1 << 8;
const DESC_TSS_BUSY_MASK: u64 = 1 << 9;
/// Flags bits that are descriptor attributes; the rest (base 23:16 in bits 0-7, limit 19:16 in
/// bits 16-19, base 31:24 in bits 24-31) are a copy of base/limit and are not explained.
const DESC_ATTR_MASK: u64 = 0x00f0_ff00;

// The single-bit attributes after type, DPL and P, in print order (cpu.h DESC_AVL_MASK,
// DESC_L_MASK, DESC_B_MASK, DESC_G_MASK).
const DESC_BITS: &[(u64, &str)] = &[
    (DESC_AVL_MASK, "AVL"),
    (DESC_L_MASK, "L"),
    (DESC_B_MASK, "DB"),
    (DESC_G_MASK, "G"),
];

// Segment registers by env.segs index: QEMU target/i386/cpu.h enum X86Seg (R_ES .. R_GS).
const SEG_NAMES: &[&str] = &["ES", "CS", "SS", "DS", "FS", "GS"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    /// `env.segs[i]`: index into [`SEG_NAMES`].
    Data(usize),
    Ldtr,
    Tr,
    Gdtr,
    Idtr,
}

impl Seg {
    fn name(self) -> &'static str {
        match self {
            Seg::Data(i) => SEG_NAMES.get(i).copied().unwrap_or("?"),
            Seg::Ldtr => "LDTR",
            Seg::Tr => "TR",
            Seg::Gdtr => "GDTR",
            Seg::Idtr => "IDTR",
        }
    }
}

/// The type of a descriptor (S and the 4-bit type field).
///
/// Code and data segments print as `code` or `data` and access letters in the order R W X C E A:
/// R readable (data is always), W writable, X executable (code is always), C conforming,
/// E expand-down, A accessed. `code RXA` is the usual code segment, `data RWA` the usual data
/// segment. System descriptors print by name (`LDT`, `TSS busy`; `TSS` means the 32-bit TSS type,
/// which is also the 64-bit TSS in long mode; `TSS16` the 16-bit one), others as `system type N`.
fn describe_type(flags: u64) -> String {
    if flags & DESC_S_MASK != 0 {
        let code = flags & DESC_CS_MASK != 0;
        let mut s = String::from(if code { "code " } else { "data " });
        if !code || flags & DESC_R_MASK != 0 {
            s.push('R');
        }
        if !code && flags & DESC_W_MASK != 0 {
            s.push('W');
        }
        if code {
            s.push('X');
        }
        if code && flags & DESC_C_MASK != 0 {
            s.push('C');
        }
        if !code && flags & DESC_E_MASK != 0 {
            s.push('E');
        }
        if flags & DESC_A_MASK != 0 {
            s.push('A');
        }
        s
    } else {
        let ty = (flags >> DESC_TYPE_SHIFT) & 0xf;
        let busy = if flags & DESC_TSS_BUSY_MASK != 0 {
            "busy"
        } else {
            "avail"
        };
        match ty {
            0x2 => "LDT".to_string(),
            0x1 | 0x3 => format!("TSS16 {busy}"),
            0x9 | 0xb => format!("TSS {busy}"),
            _ => format!("system type {ty}"),
        }
    }
}

fn dpl(flags: u64) -> u64 {
    (flags >> DESC_DPL_SHIFT) & 3
}

/// Segment flags as `TYPE, DPLn, P|NP[, AVL][, L][, DB][, G]`, e.g. 0x00c09b00 ->
/// `code RXA, DPL0, P, DB, G` (see [`describe_type`] for TYPE). DB is the D/B bit (default
/// operand size for code, stack size / expand-down limit for data), L the 64-bit code bit,
/// G 4 KiB limit granularity. Flags 0 is a null (unusable) selector's, or for GDTR/IDTR the
/// unused attribute word.
fn segment_value(seg: Seg, flags: u64) -> String {
    let flags = flags & DESC_ATTR_MASK;
    if flags == 0 {
        return if matches!(seg, Seg::Gdtr | Seg::Idtr) {
            "unused".to_string()
        } else {
            "null".to_string()
        };
    }
    let mut parts = vec![
        describe_type(flags),
        format!("DPL{}", dpl(flags)),
        (if flags & DESC_P_MASK != 0 { "P" } else { "NP" }).to_string(),
    ];
    parts.extend(
        DESC_BITS
            .iter()
            .filter(|(mask, _)| flags & mask != 0)
            .map(|(_, name)| (*name).to_string()),
    );
    parts.join(", ")
}

/// What changed between two segment flag values, comma separated: a type change as
/// `data RW->code RXA` (or, within code or within data, the access letters set and cleared:
/// `+A`), `DPL 0->3`, and `+P`/`-P`, `+L`, `-DB`... Changes in the base/limit copy bits alone
/// give `attributes unchanged (base/limit bits only)`.
fn segment_change(seg: Seg, old: u64, new: u64) -> String {
    let (old, new) = (old & DESC_ATTR_MASK, new & DESC_ATTR_MASK);
    if old == new {
        return "attributes unchanged (base/limit bits only)".to_string();
    }
    if old == 0 || new == 0 {
        return format!("{} -> {}", segment_value(seg, old), segment_value(seg, new));
    }
    let mut parts = Vec::new();
    let type_mask = DESC_S_MASK | (0xf << DESC_TYPE_SHIFT);
    if (old ^ new) & type_mask != 0 {
        let same_class = (old ^ new) & (DESC_S_MASK | DESC_CS_MASK) == 0 && old & DESC_S_MASK != 0;
        if same_class {
            let letters = |f: u64| describe_type(f).split_once(' ').map(|(_, l)| l.to_string());
            let (lo, ln) = (
                letters(old).unwrap_or_default(),
                letters(new).unwrap_or_default(),
            );
            let mut letter_changes: Vec<String> = Vec::new();
            for c in "RWXCEA".chars() {
                match (lo.contains(c), ln.contains(c)) {
                    (false, true) => letter_changes.push(format!("+{c}")),
                    (true, false) => letter_changes.push(format!("-{c}")),
                    _ => {}
                }
            }
            parts.push(letter_changes.join(" "));
        } else {
            parts.push(format!("{}->{}", describe_type(old), describe_type(new)));
        }
    }
    if dpl(old) != dpl(new) {
        parts.push(format!("DPL {}->{}", dpl(old), dpl(new)));
    }
    for (mask, name) in std::iter::once(&(DESC_P_MASK, "P")).chain(DESC_BITS.iter()) {
        if (old ^ new) & mask != 0 {
            let sign = if new & mask != 0 { '+' } else { '-' };
            parts.push(format!("{sign}{name}"));
        }
    }
    parts.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Field lookup
// ---------------------------------------------------------------------------------------------

/// What a known field is.
enum Known {
    Flags(&'static FlagWord, Option<Msr>),
    Segment(Seg),
    /// An MSR note, already rendered.
    Msr(String),
    A20,
}

/// `path` split into the subsection vmsd name (`""` for the main section) and the field.
fn split_subsection(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn lookup(path: &str) -> Option<Known> {
    let (sub, field) = split_subsection(path);
    // `show` asks for every field of every CPU: index the exact names once.
    static FLAGS: OnceLock<HashMap<&str, (&FlagWord, Option<Msr>)>> = OnceLock::new();
    static MSRS: OnceLock<HashMap<&str, Msr>> = OnceLock::new();
    let flags = FLAGS.get_or_init(|| FLAG_FIELDS.iter().map(|&(f, w, m)| (f, (w, m))).collect());
    if let Some(&(word, msr)) = flags.get(field) {
        return Some(Known::Flags(word, msr));
    }
    let msrs = MSRS.get_or_init(|| MSR_FIELDS.iter().copied().collect());
    if let Some(&(name, number)) = msrs.get(field) {
        return Some(Known::Msr(msr_note(name, number)));
    }
    for (pattern, msr) in INDEXED_MSRS {
        if let Some([i]) = match_pattern(field, pattern).as_deref() {
            let (name, number) = msr(u32::try_from(*i).ok()?)?;
            return Some(Known::Msr(msr_note(&name, number)));
        }
    }
    if sub.is_empty() {
        if field == "env.a20_mask" {
            return Some(Known::A20);
        }
        let seg = match field {
            "env.ldt.flags" => Some(Seg::Ldtr),
            "env.tr.flags" => Some(Seg::Tr),
            "env.gdt.flags" => Some(Seg::Gdtr),
            "env.idt.flags" => Some(Seg::Idtr),
            _ => match match_pattern(field, "env.segs[#].flags").as_deref() {
                Some([i]) if *i < 6 => Some(Seg::Data(usize::try_from(*i).ok()?)),
                _ => None,
            },
        };
        return seg.map(Known::Segment);
    }
    None
}

/// Matches `s` against `pattern`, where each `#` stands for a decimal number; the numbers.
fn match_pattern(s: &str, pattern: &str) -> Option<Vec<u64>> {
    let mut pieces = pattern.split('#');
    let mut rest = s.strip_prefix(pieces.next()?)?;
    let mut nums = Vec::new();
    for piece in pieces {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at_checked(digits)?;
        nums.push(number.parse().ok()?);
        rest = after.strip_prefix(piece)?;
    }
    rest.is_empty().then_some(nums)
}

// ---------------------------------------------------------------------------------------------
// Registers
// ---------------------------------------------------------------------------------------------

/// How the numbers a register path pattern captures turn into a name.
enum RegKind {
    /// No numbers.
    Fixed(&'static str),
    /// One number, an index into the names; then `suffix`.
    Names(&'static [&'static str], &'static str),
    /// One number `n` below `count`: `{prefix}{n + offset}{suffix}`.
    Numbered {
        prefix: &'static str,
        offset: u64,
        count: u64,
        suffix: &'static str,
    },
    /// Register `n` (below 16) and quadword `k` (`lanes.0..=lanes.1`) of a ZMMReg:
    /// `{prefix}{n + offset} (bits 64k-64k+63)`.
    Vector {
        prefix: &'static str,
        offset: u64,
        lanes: (u64, u64),
    },
    /// x87 physical data register `n` (below 8): significand (the MMX register) or
    /// sign+exponent.
    X87 { exponent: bool },
}

impl RegKind {
    fn name(&self, nums: &[u64]) -> Option<String> {
        match (self, nums) {
            (RegKind::Fixed(name), []) => Some((*name).to_string()),
            (RegKind::Names(names, suffix), [i]) => {
                let name = names.get(usize::try_from(*i).ok()?)?;
                Some(format!("{name}{suffix}"))
            }
            (
                RegKind::Numbered {
                    prefix,
                    offset,
                    count,
                    suffix,
                },
                [i],
            ) if i < count => Some(format!("{prefix}{}{suffix}", i.checked_add(*offset)?)),
            (
                RegKind::Vector {
                    prefix,
                    offset,
                    lanes: (lo, hi),
                },
                [n, k],
            ) if *n < 16 && (lo..=hi).contains(&k) => Some(format!(
                "{prefix}{} (bits {}-{})",
                n.checked_add(*offset)?,
                k * 64,
                k * 64 + 63
            )),
            (RegKind::X87 { exponent }, [n]) if *n < 8 => Some(if *exponent {
                format!("x87 R{n} (bits 64-79)")
            } else {
                format!("x87 R{n}/mm{n} (bits 0-63)")
            }),
            _ => None,
        }
    }
}

/// A register-holding vmstate path: subsection (`""` = main section), field pattern (`#` = a
/// number), how to name it, and the XSTATE component (bit) that holds it, if any.
struct Register {
    sub: &'static str,
    pattern: &'static str,
    kind: RegKind,
    xstate: Option<u32>,
}

const fn reg(
    sub: &'static str,
    pattern: &'static str,
    kind: RegKind,
    xstate: Option<u32>,
) -> Register {
    Register {
        sub,
        pattern,
        kind,
        xstate,
    }
}

// General registers by env.regs index: QEMU target/i386/cpu.h R_EAX .. R_R15.
const GPR_NAMES: &[&str] = &[
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

// Segment registers by env.segs index (cpu.h X86Seg R_ES .. R_GS), as register names.
const SEG_REGS: &[&str] = &["es", "cs", "ss", "ds", "fs", "gs"];

// Register-holding fields of QEMU target/i386/machine.c: vmstate_x86_cpu (main section),
// vmstate_fpop_ip_dp, vmstate_avx512 (opmask, ZMM_Hi256 = xmm_regs[0..15] quadwords 4-7,
// Hi16_ZMM = xmm_regs[16..31], which vmdesc numbers 0..15), vmstate_mpx, vmstate_pkru and
// vmstate_apx (env.regs[16..31], numbered 0..15). XSTATE bits from cpu.h XSTATE_*_BIT.
// x87 registers are the physical data registers R0-R7 (env.fpregs index; ST(i) is
// R((TOP + i) & 7), QEMU's ST(n) macro), whose low 64 bits are mm0-mm7.
const REGISTERS: &[Register] = &[
    reg("", "env.regs[#]", RegKind::Names(GPR_NAMES, ""), None),
    reg("", "env.eip", RegKind::Fixed("rip"), None),
    reg("", "env.eflags", RegKind::Fixed("rflags"), None),
    reg("", "env.fpuc", RegKind::Fixed("fcw"), Some(XSTATE_FP)),
    reg(
        "",
        "env.fpus_vmstate",
        RegKind::Fixed("fsw"),
        Some(XSTATE_FP),
    ),
    reg(
        "",
        "env.fptag_vmstate",
        RegKind::Fixed("ftw (abridged, 1 = valid)"),
        Some(XSTATE_FP),
    ),
    reg(
        "",
        "env.fpregs[#].tmp.tmp_mant",
        RegKind::X87 { exponent: false },
        Some(XSTATE_FP),
    ),
    reg(
        "",
        "env.fpregs[#].tmp.tmp_exp",
        RegKind::X87 { exponent: true },
        Some(XSTATE_FP),
    ),
    reg(
        "",
        "env.segs[#].selector",
        RegKind::Names(SEG_REGS, ""),
        None,
    ),
    reg(
        "",
        "env.segs[#].base",
        RegKind::Names(SEG_REGS, ".base"),
        None,
    ),
    reg(
        "",
        "env.segs[#].limit",
        RegKind::Names(SEG_REGS, ".limit"),
        None,
    ),
    reg(
        "",
        "env.segs[#].flags",
        RegKind::Names(SEG_REGS, ".attr"),
        None,
    ),
    reg("", "env.ldt.selector", RegKind::Fixed("ldtr"), None),
    reg("", "env.ldt.base", RegKind::Fixed("ldtr.base"), None),
    reg("", "env.ldt.limit", RegKind::Fixed("ldtr.limit"), None),
    reg("", "env.ldt.flags", RegKind::Fixed("ldtr.attr"), None),
    reg("", "env.tr.selector", RegKind::Fixed("tr"), None),
    reg("", "env.tr.base", RegKind::Fixed("tr.base"), None),
    reg("", "env.tr.limit", RegKind::Fixed("tr.limit"), None),
    reg("", "env.tr.flags", RegKind::Fixed("tr.attr"), None),
    reg("", "env.gdt.base", RegKind::Fixed("gdtr.base"), None),
    reg("", "env.gdt.limit", RegKind::Fixed("gdtr.limit"), None),
    reg("", "env.idt.base", RegKind::Fixed("idtr.base"), None),
    reg("", "env.idt.limit", RegKind::Fixed("idtr.limit"), None),
    reg(
        "",
        "env.cr[#]",
        RegKind::Numbered {
            prefix: "cr",
            offset: 0,
            count: 9,
            suffix: "",
        },
        None,
    ),
    reg(
        "",
        "env.dr[#]",
        RegKind::Numbered {
            prefix: "dr",
            offset: 0,
            count: 8,
            suffix: "",
        },
        None,
    ),
    reg("", "env.mxcsr", RegKind::Fixed("mxcsr"), None),
    reg(
        "",
        "env.xmm_regs[0][#]._q_ZMMReg[#]",
        RegKind::Vector {
            prefix: "xmm",
            offset: 0,
            lanes: (0, 1),
        },
        Some(XSTATE_SSE),
    ),
    reg("", "env.xcr0", RegKind::Fixed("xcr0"), None),
    reg(
        "",
        "env.xmm_regs[1][#]._q_ZMMReg[#]",
        RegKind::Vector {
            prefix: "ymmh",
            offset: 0,
            lanes: (2, 3),
        },
        Some(XSTATE_YMM),
    ),
    reg(
        "cpu/fpop_ip_dp",
        "env.fpop",
        RegKind::Fixed("fop"),
        Some(XSTATE_FP),
    ),
    reg(
        "cpu/fpop_ip_dp",
        "env.fpip",
        RegKind::Fixed("fip"),
        Some(XSTATE_FP),
    ),
    reg(
        "cpu/fpop_ip_dp",
        "env.fpdp",
        RegKind::Fixed("fdp"),
        Some(XSTATE_FP),
    ),
    reg(
        "cpu/avx512",
        "env.opmask_regs[#]",
        RegKind::Numbered {
            prefix: "k",
            offset: 0,
            count: 8,
            suffix: "",
        },
        Some(XSTATE_OPMASK),
    ),
    reg(
        "cpu/avx512",
        "env.xmm_regs[0][#]._q_ZMMReg[#]",
        RegKind::Vector {
            prefix: "zmmh",
            offset: 0,
            lanes: (4, 7),
        },
        Some(XSTATE_ZMM_HI256),
    ),
    reg(
        "cpu/avx512",
        "env.xmm_regs[1][#]._q_ZMMReg[#]",
        RegKind::Vector {
            prefix: "zmm",
            offset: 16,
            lanes: (0, 7),
        },
        Some(XSTATE_HI16_ZMM),
    ),
    reg(
        "cpu/mpx",
        "env.bnd_regs[#].lb",
        RegKind::Numbered {
            prefix: "bnd",
            offset: 0,
            count: 4,
            suffix: " (lower bound)",
        },
        Some(XSTATE_BNDREGS),
    ),
    reg(
        "cpu/mpx",
        "env.bnd_regs[#].ub",
        RegKind::Numbered {
            prefix: "bnd",
            offset: 0,
            count: 4,
            suffix: " (upper bound)",
        },
        Some(XSTATE_BNDREGS),
    ),
    reg(
        "cpu/mpx",
        "env.bndcs_regs.cfgu",
        RegKind::Fixed("BNDCFGU"),
        Some(XSTATE_BNDCSR),
    ),
    reg(
        "cpu/mpx",
        "env.bndcs_regs.sts",
        RegKind::Fixed("BNDSTATUS"),
        Some(XSTATE_BNDCSR),
    ),
    reg(
        "cpu/pkru",
        "env.pkru",
        RegKind::Fixed("pkru"),
        Some(XSTATE_PKRU),
    ),
    reg(
        "cpu/apx",
        "env.regs[#]",
        RegKind::Numbered {
            prefix: "r",
            offset: 16,
            count: 16,
            suffix: "",
        },
        Some(XSTATE_APX),
    ),
];

/// The register entry for `path` and the numbers its pattern captured.
fn find_register(path: &str) -> Option<(&'static Register, Vec<u64>)> {
    // `show` asks for every field of every CPU: index the table once by the path's shape,
    // so a field only tries the few patterns that can match it, in table order.
    type Index = HashMap<(&'static str, String), Vec<&'static Register>>;
    static INDEX: OnceLock<Index> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index = Index::new();
        for r in REGISTERS {
            index.entry((r.sub, shape(r.pattern))).or_default().push(r);
        }
        index
    });
    let (sub, field) = split_subsection(path);
    index
        .get(&(sub, shape(field)))?
        .iter()
        .find_map(|r| Some((*r, match_pattern(field, r.pattern)?)))
}

/// `s` with every run of digits and `#` as one `#`: a path and every pattern that matches it
/// have the same shape (`env.xmm_regs[0][#]` and `env.xmm_regs[3][12]` are both
/// `env.xmm_regs[#][#]`).
fn shape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let numeric = c == '#' || c.is_ascii_digit();
        if !(numeric && out.ends_with('#')) {
            out.push(if numeric { '#' } else { c });
        }
    }
    out
}

/// What a change of a cpu field means, with what the rest of the dumps say about it: for an
/// xsave register, whether it is live where QEMU keeps `xstate_bv` ([`tracks_xstate`]); for
/// rdx of two CPUs at reset, the CPU signature it holds.
pub fn section_change(
    old: &Section<'_>,
    new: &Section<'_>,
    width: Width,
    path: &str,
    from: u64,
    to: u64,
) -> Option<String> {
    if let Some(models) = reset_signatures(old, new, path, from, to) {
        return Some(models);
    }
    let meaning = change_meaning(width, path, from, to)?;
    let live = tracks_xstate(new).and_then(|(xcr0, bv)| {
        is_live(path, xcr0).filter(|enabled| *enabled)?;
        is_live(path, bv)
    });
    Some(match live {
        Some(true) => format!("{meaning}, live"),
        Some(false) => format!("{meaning}, stale: its xsave component is not in xstate_bv"),
        None => meaning,
    })
}

/// XCR0 and XSTATE_BV of a cpu section, when they say which xsave components are live.
///
/// KVM fills `env.xstate_bv` from the vCPU's XSAVE area when it saves; TCG leaves it 0 with
/// live registers (QEMU 10.0), so only a dump KVM made says anything. The `kvmclock`
/// section is the evidence: QEMU creates that device only under KVM. A component counts
/// only when the guest enabled it in XCR0 (a CPU without XSAVE has XCR0 0: nothing is said).
fn tracks_xstate(section: &Section<'_>) -> Option<(u64, u64)> {
    if !section.dump.devices.iter().any(|d| d.idstr == "kvmclock") {
        return None;
    }
    let field = |name: &str| {
        section
            .device
            .body
            .fields
            .iter()
            .find(|n| n.name == name)
            .and_then(int)
    };
    Some((field("env.xcr0")?, field("env.xstate_bv")?))
}

fn int(node: &Node) -> Option<u64> {
    match node.value {
        Value::Uint { value, .. } => Some(value),
        Value::Int { value, .. } => Some(value as u64),
        _ => None,
    }
}

/// The traces a CPU model leaves in a booted guest's state, for [`super::Evidence`]: CR4
/// feature bits and XCR0 components one side's OS enabled and the other's did not, and the
/// subsections QEMU sends for every CPU with a feature (target/i386/machine.c `.needed`
/// functions that read only `env->features`).
///
/// A booted guest sets CR4 and XCR0 bits the reset state lacks, so the bits count only when
/// both CPUs run with paging in long mode: an OS has configured the CPU on both sides, and
/// it can set these bits only where the CPU has the feature (CR4 or XSETBV fault otherwise).
pub fn model_evidence(old: &Section<'_>, new: &Section<'_>) -> Vec<super::Evidence> {
    let mut evidence = Vec::new();
    let field = |s: &Section<'_>, name: &str| s.device.body.find(name).as_deref().and_then(int);
    let configured = |s: &Section<'_>| {
        let paging = field(s, "env.cr[0]").is_some_and(|cr0| cr0 & CR0_PG != 0);
        paging && field(s, "env.efer").is_some_and(|efer| efer & EFER_LMA != 0)
    };
    if configured(old) && configured(new) {
        let word = |name: &str| Some((field(old, name)?, field(new, name)?));
        if let Some((o, n)) = word("env.cr[4]") {
            if let Some(text) = one_side_only(&CR4, o & CR4_FEATURES, n & CR4_FEATURES) {
                evidence.push(super::Evidence::new(
                    "env.cr[4]",
                    format!("cr4 {text}, both CPUs in long mode with paging"),
                ));
            }
        }
        if let Some((o, n)) = word("env.xcr0") {
            if let Some(text) = one_side_only(&XSTATE, o, n) {
                evidence.push(super::Evidence::new("env.xcr0", format!("xcr0 {text}")));
            }
        }
    }
    let subsections = |s: &Section<'_>| -> Vec<String> {
        s.device
            .body
            .subsections
            .iter()
            .map(|sub| sub.body.vmsd_name.to_string())
            .collect()
    };
    let (old_subs, new_subs) = (subsections(old), subsections(new));
    for (name, feature) in FEATURE_SUBSECTIONS {
        let side = match (
            old_subs.iter().any(|s| s == name),
            new_subs.iter().any(|s| s == name),
        ) {
            (true, false) => "old",
            (false, true) => "new",
            _ => continue,
        };
        evidence.push(super::Evidence::new(
            *name,
            format!("{name} in {side} only (QEMU sends it for every CPU with {feature})"),
        ));
    }
    evidence
}

const CR0_PG: u64 = 1 << 31;
const EFER_LMA: u64 = 1 << 10;

/// CR4 bits an OS sets when the CPU has the feature: UMIP, LA57, FSGSBASE, PCIDE,
/// OSXSAVE, SMEP, SMAP, PKE.
const CR4_FEATURES: u64 =
    (1 << 11) | (1 << 12) | (1 << 16) | (1 << 17) | (1 << 18) | (1 << 20) | (1 << 21) | (1 << 22);

/// Subsections whose `.needed` reads only the CPU's features, and the feature.
const FEATURE_SUBSECTIONS: &[(&str, &str)] = &[
    ("cpu/amd_tsc_scale_msr", "SVM TSC scaling"),
    ("cpu/msr_tsx_ctrl", "TSX_CTRL in IA32_ARCH_CAPABILITIES"),
    ("cpu/intel_sgx", "SGX launch control"),
    ("cpu/msr_xfd", "XFD"),
    ("cpu/fred", "FRED"),
    ("cpu/intel_amx_xtile", "AMX-TILE"),
    ("cpu/arch_lbr", "architectural LBR"),
    ("cpu/cet_shstk", "CET shadow stacks"),
    ("cpu/cet", "CET"),
    ("cpu/apx", "APX"),
];

/// `has A|B in new only` (and/or `in old only`) for the bits of `word` set on one side.
fn one_side_only(word: &FlagWord, old: u64, new: u64) -> Option<String> {
    let side = |bits: u64, name: &str| {
        (bits != 0).then(|| format!("has {} in {name} only", render_value(word, bits)))
    };
    let parts: Vec<String> = [side(old & !new, "old"), side(new & !old, "new")]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// At reset EDX holds the processor signature (CPUID leaf 1 EAX; QEMU x86_cpu_reset_hold),
/// the one trace of the CPU model a stream carries before the guest runs. Two CPUs both at
/// the reset vector with different EDX were made with different CPU models.
fn reset_signatures(
    old: &Section<'_>,
    new: &Section<'_>,
    path: &str,
    from: u64,
    to: u64,
) -> Option<String> {
    if path != "env.regs[2]" || !(at_reset(old) && at_reset(new)) {
        return None;
    }
    Some(format!(
        "edx at reset is the CPU signature: {} -> {}: the CPU models differ (CPUID itself \
         is not in the stream)",
        signature(from),
        signature(to)
    ))
}

/// Whether a cpu section is in the reset state: CS:IP at F000:FFF0 and CR0 at its reset
/// value (Intel SDM 9.1.1), so no instruction has run.
fn at_reset(section: &Section<'_>) -> bool {
    let field = |name: &str| section.device.body.find(name).as_deref().and_then(int);
    field("env.eip") == Some(0xfff0)
        && field("env.segs[1].selector") == Some(0xf000)
        && field("env.cr[0]") == Some(0x6000_0010)
}

/// `family 6 model 6 stepping 3` from a CPUID leaf 1 EAX (Intel SDM CPUID, figure 3-6).
fn signature(eax: u64) -> String {
    let stepping = eax & 0xf;
    let mut model = (eax >> 4) & 0xf;
    let mut family = (eax >> 8) & 0xf;
    if family == 0xf {
        family += (eax >> 20) & 0xff;
    }
    if family == 6 || family >= 0xf {
        model += ((eax >> 16) & 0xf) << 4;
    }
    format!("family {family} model {model} stepping {stepping}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meanings_combine_register_and_bits() {
        assert_eq!(
            change_meaning(Width::Long, "env.cr[0]", 0x6000_0010, 0x11).as_deref(),
            Some("cr0: +PE -NW -CD")
        );
        assert_eq!(
            value_meaning(Width::Long, "env.segs[1].flags", 0x9b00).as_deref(),
            Some("CS: code RXA, DPL0, P")
        );
        assert_eq!(
            value_meaning(Width::Long, "env.regs[1]", 7).as_deref(),
            Some("rcx")
        );
    }

    fn change(path: &str, old: u64, new: u64) -> String {
        explain_change(path, old, new).unwrap()
    }

    fn value(path: &str, v: u64) -> String {
        explain_value(path, v).unwrap()
    }

    fn name(path: &str) -> Option<String> {
        register_name(Width::Long, path)
    }

    #[test]
    fn tables_are_sorted_disjoint_and_in_range() {
        let words = [
            &HFLAGS,
            &HFLAGS2,
            &CR0,
            &CR4,
            &EFER,
            &XSTATE,
            &EFLAGS,
            &MXCSR,
            &FPUC,
            &FPUS,
            &MCG_CAP,
            &MCG_STATUS,
            &PAT,
            &MTRR_DEFTYPE,
        ];
        for word in words {
            let mut seen = word.fixed;
            let mut last = None;
            for p in word.parts {
                assert!(p.width >= 1 && p.shift + p.width <= 64, "{p:?}");
                assert_eq!(seen & p.mask(), 0, "overlap at {p:?}");
                assert!(last < Some(p.shift), "unsorted at {p:?}");
                seen |= p.mask();
                last = Some(p.shift);
            }
        }
    }

    #[test]
    fn hflags_reset_to_seabios() {
        assert_eq!(change("env.hflags", 0x40, 0xb0), "+CS32 +SS32 -ADDSEG +PE");
        assert_eq!(value("env.hflags", 0x40), "CPL=0|ADDSEG");
        assert_eq!(value("env.hflags", 0xb0), "CPL=0|CS32|SS32|PE");
    }

    #[test]
    fn hflags_multi_bit_and_unknown_bits() {
        assert_eq!(change("env.hflags", 0xb0, 0xb3), "CPL 0->3");
        assert_eq!(value("env.hflags", 0xc0b3), "CPL=3|CS32|SS32|PE|LMA|CS64");
        assert_eq!(change("env.hflags", 0x0, 0x4004), "+bit2 +LMA");
        assert_eq!(value("env.hflags", 0x1000_0004), "CPL=0|bit2|AVX_EN");
        assert_eq!(change("env.hflags", 0x80, 0x80), "unchanged");
    }

    #[test]
    fn hflags2() {
        assert_eq!(value("env.hflags2", 0x101), "GIF|VGIF");
        assert_eq!(change("env.hflags2", 0x101, 0x105), "+NMI");
        assert_eq!(change("env.hflags2", 0x101, 0x100), "-GIF");
    }

    #[test]
    fn cr0_reset_and_protected_mode() {
        assert_eq!(value("env.cr[0]", 0x6000_0010), "ET|NW|CD");
        assert_eq!(value("env.cr[0]", 0x11), "PE|ET");
        assert_eq!(change("env.cr[0]", 0x6000_0010, 0x11), "+PE -NW -CD");
        assert_eq!(change("env.cr[0]", 0x11, 0x8000_0011), "+PG");
    }

    #[test]
    fn cr4() {
        assert_eq!(
            value("env.cr[4]", 0x0000_06f0),
            "PSE|PAE|MCE|PGE|OSFXSR|OSXMMEXCPT"
        );
        assert_eq!(change("env.cr[4]", 0x20, 0x1_0004_0020), "+OSXSAVE +FRED");
        assert_eq!(value("env.cr[4]", 0), "none");
        assert_eq!(value("env.cr[4]", 1 << 15), "bit15");
    }

    #[test]
    fn efer_bits_with_msr_note() {
        assert_eq!(
            change("env.efer", 0, 0xd01),
            "MSR_EFER (0xc0000080): +SCE +LME +LMA +NXE"
        );
        assert_eq!(value("env.efer", 0x500), "MSR_EFER (0xc0000080): LME|LMA");
        // The efer32 subsection holds the same MSR.
        assert_eq!(
            value("cpu/efer32/env.efer", 0x800),
            "MSR_EFER (0xc0000080): NXE"
        );
    }

    #[test]
    fn xstate_components() {
        assert_eq!(value("env.xcr0", 1), "FP");
        assert_eq!(change("env.xcr0", 1, 7), "+SSE +YMM");
        assert_eq!(
            value("env.xcr0", 0x2e7),
            "FP|SSE|YMM|OPMASK|ZMM_Hi256|Hi16_ZMM|PKRU"
        );
        assert_eq!(value("env.xstate_bv", 0), "none");
        assert_eq!(
            change("env.xstate_bv", 0x3, 0x8_0000 | 0x6_0000 | 0x1),
            "-SSE +XTILE_CFG +XTILE_DATA +APX"
        );
        assert_eq!(
            value("cpu/xss/env.xss", 0x1900),
            "MSR_IA32_XSS (0xda0): PT|CET_U|CET_S"
        );
        assert_eq!(
            value("cpu/msr_xfd/env.msr_xfd", 0x4_0000),
            "MSR_IA32_XFD (0x1c4): XTILE_DATA"
        );
    }

    #[test]
    fn eflags_hides_fixed_bit() {
        assert_eq!(value("env.eflags", 0x2), "none");
        assert_eq!(value("env.eflags", 0x3246), "PF|ZF|IF|IOPL=3");
        assert_eq!(change("env.eflags", 0x2, 0x202), "+IF");
        assert_eq!(change("env.eflags", 0x2, 0x0), "-bit1");
    }

    #[test]
    fn mxcsr() {
        assert_eq!(value("env.mxcsr", 0x1f80), "IM|DM|ZM|OM|UM|PM");
        assert_eq!(value("env.mxcsr", 0x9fc1), "IE|DAZ|IM|DM|ZM|OM|UM|PM|FZ");
        assert_eq!(change("env.mxcsr", 0x1f80, 0x3f80), "RC nearest->down");
        assert_eq!(value("env.mxcsr", 0x7f80), "IM|DM|ZM|OM|UM|PM|RC=zero");
    }

    #[test]
    fn x87_control_and_status() {
        assert_eq!(value("env.fpuc", 0x037f), "IM|DM|ZM|OM|UM|PM|PC=64-bit");
        assert_eq!(change("env.fpuc", 0x037f, 0x027f), "PC 64-bit->53-bit");
        assert_eq!(value("env.fpus_vmstate", 0), "none");
        assert_eq!(value("env.fpus_vmstate", 0x3800 | 0x4100), "C0|TOP=7|C3");
        assert_eq!(change("env.fpus_vmstate", 0x0, 0x3881), "+IE +ES TOP 0->7");
    }

    #[test]
    fn machine_check_words() {
        assert_eq!(
            value("env.mcg_cap", 0x0100_010a),
            "MSR_MCG_CAP (0x179): banks=10|CTL_P|SER_P"
        );
        assert_eq!(
            change("env.mcg_status", 0, 0x5),
            "MSR_MCG_STATUS (0x17a): +RIPV +MCIP"
        );
    }

    #[test]
    fn pat() {
        assert_eq!(
            value("env.pat", 0x0007_0406_0007_0406),
            "MSR_PAT (0x277): PA0=WB|PA1=WT|PA2=UC-|PA3=UC|PA4=WB|PA5=WT|PA6=UC-|PA7=UC"
        );
        assert_eq!(
            change("env.pat", 0x0007_0406_0007_0406, 0x0007_0106_0007_0406),
            "MSR_PAT (0x277): PA5 WT->WC"
        );
    }

    #[test]
    fn mtrr_default_type() {
        assert_eq!(
            value("env.mtrr_deftype", 0xc06),
            "MSR_MTRRdefType (0x2ff): type=WB|FE|E"
        );
        assert_eq!(
            change("env.mtrr_deftype", 0, 0xc06),
            "MSR_MTRRdefType (0x2ff): type UC->WB +FE +E"
        );
        assert_eq!(
            value("env.mtrr_deftype", 0x2),
            "MSR_MTRRdefType (0x2ff): type=2"
        );
    }

    #[test]
    fn segment_values() {
        assert_eq!(value("env.segs[1].flags", 0x9b00), "CS: code RXA, DPL0, P");
        assert_eq!(
            value("env.segs[1].flags", 0x00c0_9b00),
            "CS: code RXA, DPL0, P, DB, G"
        );
        // Limit 19:16 and base bits are not attributes.
        assert_eq!(
            value("env.segs[1].flags", 0xffcf_9bff),
            "CS: code RXA, DPL0, P, DB, G"
        );
        assert_eq!(
            value("env.segs[1].flags", 0x00a0_9b00),
            "CS: code RXA, DPL0, P, L, G"
        );
        assert_eq!(value("env.segs[0].flags", 0x9300), "ES: data RWA, DPL0, P");
        assert_eq!(value("env.segs[2].flags", 0xf200), "SS: data RW, DPL3, P");
        assert_eq!(
            value("env.segs[5].flags", 0x0010_1400),
            "GS: data RE, DPL0, NP, AVL"
        );
        assert_eq!(value("env.segs[4].flags", 0), "FS: null");
        assert_eq!(value("env.segs[1].flags", 0x9e00), "CS: code RXC, DPL0, P");
        assert_eq!(value("env.segs[1].flags", 0x9800), "CS: code X, DPL0, P");
        assert_eq!(value("env.tr.flags", 0x8b00), "TR: TSS busy, DPL0, P");
        assert_eq!(value("env.tr.flags", 0x8100), "TR: TSS16 avail, DPL0, P");
        assert_eq!(value("env.ldt.flags", 0x8200), "LDTR: LDT, DPL0, P");
        assert_eq!(value("env.gdt.flags", 0), "GDTR: unused");
        assert_eq!(
            value("env.idt.flags", 0x8c00),
            "IDTR: system type 12, DPL0, P"
        );
        assert_eq!(explain_value("env.segs[6].flags", 0x9300), None);
    }

    #[test]
    fn segment_changes() {
        assert_eq!(
            change("env.segs[1].flags", 0x9b00, 0x00a0_9b00),
            "CS: +L, +G"
        );
        assert_eq!(
            change("env.segs[1].flags", 0x00a0_9b00, 0x00a0_fb00),
            "CS: DPL 0->3"
        );
        assert_eq!(
            change("env.segs[1].flags", 0x00c0_9b00, 0x00a0_fb00),
            "CS: DPL 0->3, +L, -DB"
        );
        assert_eq!(change("env.segs[3].flags", 0x9200, 0x9300), "DS: +A");
        assert_eq!(
            change("env.segs[3].flags", 0x9300, 0x9b00),
            "DS: data RWA->code RXA"
        );
        assert_eq!(
            change("env.tr.flags", 0x8900, 0x8b00),
            "TR: TSS avail->TSS busy"
        );
        assert_eq!(
            change("env.segs[1].flags", 0x00c0_9b00, 0x00cf_9b00),
            "CS: attributes unchanged (base/limit bits only)"
        );
        assert_eq!(
            change("env.segs[4].flags", 0x9300, 0),
            "FS: data RWA, DPL0, P -> null"
        );
    }

    #[test]
    fn msr_notes() {
        assert_eq!(value("env.star", 0), "MSR_STAR (0xc0000081)");
        assert_eq!(change("env.lstar", 0, 1), "MSR_LSTAR (0xc0000082)");
        assert_eq!(
            value("env.kernelgsbase", 0),
            "MSR_KERNELGSBASE (0xc0000102)"
        );
        assert_eq!(
            value("env.sysenter_eip", 0),
            "MSR_IA32_SYSENTER_EIP (0x176)"
        );
        assert_eq!(value("env.tsc", 0), "MSR_IA32_TSC (0x10)");
        assert_eq!(
            value("env.system_time_msr", 0),
            "MSR_KVM_SYSTEM_TIME (0x12)"
        );
        assert_eq!(value("env.smbase", 0x30000), "MSR_IA32_SMBASE (0x9e)");
        assert_eq!(
            value("cpu/poll_control_msr/env.poll_control_msr", 1),
            "MSR_KVM_POLL_CONTROL (0x4b564d05)"
        );
        assert_eq!(
            value("cpu/msr_smi_count/env.msr_smi_count", 0),
            "MSR_SMI_COUNT (0x34)"
        );
        assert_eq!(value("env.mce_banks[5]", 0), "MSR_MC1_STATUS (0x405)");
        assert_eq!(value("env.mce_banks[39]", 0), "MSR_MC9_MISC (0x427)");
        assert_eq!(explain_value("env.mce_banks[40]", 0), None);
        assert_eq!(value("env.mtrr_fixed[3]", 0), "MSR_MTRRfix4K_C0000 (0x268)");
        assert_eq!(explain_value("env.mtrr_fixed[11]", 0), None);
        assert_eq!(
            value("env.mtrr_var[1].mask", 0),
            "MSR_MTRRphysMask1 (0x203)"
        );
        assert_eq!(
            value("env.mtrr_var[7].base", 0),
            "MSR_MTRRphysBase7 (0x20e)"
        );
        assert_eq!(
            value("cpu/intel_pt/env.msr_rtit_addrs[3]", 0),
            "MSR_IA32_RTIT_ADDR1_B (0x583)"
        );
        assert_eq!(
            value("cpu/msr_hyperv_stimer/env.msr_hv_stimer_count[2]", 0),
            "HV_X64_MSR_STIMER2_COUNT (0x400000b5)"
        );
        assert_eq!(
            value("cpu/arch_lbr/env.lbr_records[31].info", 0),
            "MSR_ARCH_LBR_INFO_31 (0x121f)"
        );
    }

    #[test]
    fn a20() {
        assert_eq!(value("env.a20_mask", 0xffff_ffff), "A20 on");
        assert_eq!(value("env.a20_mask", u64::MAX), "A20 on");
        assert_eq!(
            change("env.a20_mask", 0xffef_ffff, 0xffff_ffff),
            "A20 off->on"
        );
    }

    #[test]
    fn unknown_device_or_field() {
        assert_eq!(explain_change("env.regs[0]", 0, 1), None);
        assert_eq!(explain_value("env.cr[2]", 0), None);
        assert_eq!(explain_value("env.hflagsx", 0), None);
    }

    #[test]
    fn general_and_control_registers() {
        assert_eq!(name("env.regs[0]").as_deref(), Some("rax"));
        assert_eq!(name("env.regs[4]").as_deref(), Some("rsp"));
        assert_eq!(name("env.regs[7]").as_deref(), Some("rdi"));
        assert_eq!(name("env.regs[15]").as_deref(), Some("r15"));
        assert_eq!(name("env.regs[16]"), None);
        assert_eq!(name("env.eip").as_deref(), Some("rip"));
        assert_eq!(name("env.eflags").as_deref(), Some("rflags"));
        assert_eq!(name("env.cr[3]").as_deref(), Some("cr3"));
        assert_eq!(name("env.dr[7]").as_deref(), Some("dr7"));
        assert_eq!(name("env.segs[1].selector").as_deref(), Some("cs"));
        assert_eq!(name("env.segs[4].base").as_deref(), Some("fs.base"));
        assert_eq!(name("env.gdt.limit").as_deref(), Some("gdtr.limit"));
        assert_eq!(name("cpu/apx/env.regs[0]").as_deref(), Some("r16"));
        assert_eq!(name("cpu/apx/env.regs[15]").as_deref(), Some("r31"));
        assert_eq!(name("env.hflags"), None);
    }

    #[test]
    fn shape_folds_numbers_and_placeholders() {
        assert_eq!(
            shape("env.xmm_regs[0][#]._q_ZMMReg[#]"),
            "env.xmm_regs[#][#]._q_ZMMReg[#]"
        );
        assert_eq!(
            shape("env.xmm_regs[1][15]._q_ZMMReg[3]"),
            "env.xmm_regs[#][#]._q_ZMMReg[#]"
        );
        assert_eq!(shape("env.eip"), "env.eip");
    }

    #[test]
    fn vector_registers() {
        assert_eq!(
            name("env.xmm_regs[0][3]._q_ZMMReg[0]").as_deref(),
            Some("xmm3 (bits 0-63)")
        );
        assert_eq!(
            name("env.xmm_regs[0][15]._q_ZMMReg[1]").as_deref(),
            Some("xmm15 (bits 64-127)")
        );
        assert_eq!(
            name("env.xmm_regs[1][3]._q_ZMMReg[2]").as_deref(),
            Some("ymmh3 (bits 128-191)")
        );
        assert_eq!(
            name("env.xmm_regs[1][0]._q_ZMMReg[3]").as_deref(),
            Some("ymmh0 (bits 192-255)")
        );
        assert_eq!(name("env.xmm_regs[1][0]._q_ZMMReg[0]"), None);
        assert_eq!(name("env.xmm_regs[0][16]._q_ZMMReg[0]"), None);
        assert_eq!(
            name("cpu/avx512/env.xmm_regs[0][2]._q_ZMMReg[7]").as_deref(),
            Some("zmmh2 (bits 448-511)")
        );
        assert_eq!(
            name("cpu/avx512/env.xmm_regs[1][0]._q_ZMMReg[0]").as_deref(),
            Some("zmm16 (bits 0-63)")
        );
        assert_eq!(
            name("cpu/avx512/env.xmm_regs[1][15]._q_ZMMReg[5]").as_deref(),
            Some("zmm31 (bits 320-383)")
        );
        assert_eq!(name("cpu/avx512/env.opmask_regs[7]").as_deref(), Some("k7"));
        assert_eq!(name("cpu/avx512/env.opmask_regs[8]"), None);
    }

    #[test]
    fn x87_mpx_pkru_registers() {
        assert_eq!(
            name("env.fpregs[3].tmp.tmp_mant").as_deref(),
            Some("x87 R3/mm3 (bits 0-63)")
        );
        assert_eq!(
            name("env.fpregs[3].tmp.tmp_exp").as_deref(),
            Some("x87 R3 (bits 64-79)")
        );
        assert_eq!(name("env.fpuc").as_deref(), Some("fcw"));
        assert_eq!(name("cpu/fpop_ip_dp/env.fpip").as_deref(), Some("fip"));
        assert_eq!(
            name("cpu/mpx/env.bnd_regs[1].ub").as_deref(),
            Some("bnd1 (upper bound)")
        );
        assert_eq!(
            name("cpu/mpx/env.bndcs_regs.cfgu").as_deref(),
            Some("BNDCFGU")
        );
        assert_eq!(name("cpu/pkru/env.pkru").as_deref(), Some("pkru"));
    }

    #[test]
    fn liveness_follows_xstate_bv() {
        let ymmh = "env.xmm_regs[1][3]._q_ZMMReg[2]";
        assert_eq!(is_live(ymmh, 0x3), Some(false));
        assert_eq!(is_live(ymmh, 0x7), Some(true));
        assert_eq!(is_live("env.xmm_regs[0][3]._q_ZMMReg[0]", 0x2), Some(true));
        assert_eq!(is_live("env.xmm_regs[0][3]._q_ZMMReg[0]", 0x1), Some(false));
        assert_eq!(is_live("env.fpregs[0].tmp.tmp_mant", 0x1), Some(true));
        assert_eq!(is_live("cpu/avx512/env.opmask_regs[1]", 0x20), Some(true));
        assert_eq!(
            is_live("cpu/avx512/env.xmm_regs[0][1]._q_ZMMReg[4]", 0x80),
            Some(false)
        );
        assert_eq!(
            is_live("cpu/avx512/env.xmm_regs[1][1]._q_ZMMReg[4]", 0x80),
            Some(true)
        );
        assert_eq!(is_live("cpu/mpx/env.bnd_regs[0].lb", 0x8), Some(true));
        assert_eq!(is_live("cpu/mpx/env.bndcs_regs.sts", 0x8), Some(false));
        assert_eq!(is_live("cpu/pkru/env.pkru", 0x200), Some(true));
        assert_eq!(is_live("cpu/apx/env.regs[3]", 0x8_0000), Some(true));
        assert_eq!(is_live("env.regs[0]", u64::MAX), None);
        assert_eq!(is_live("env.mxcsr", u64::MAX), None);
        assert_eq!(is_live("env.xmm_regs[0][99]._q_ZMMReg[0]", u64::MAX), None);
    }

    #[test]
    fn hostile_paths_do_not_panic() {
        let paths = [
            "",
            "/",
            "//",
            "[",
            "]",
            "#",
            "env.regs[",
            "env.regs[]",
            "env.regs[-1]",
            "env.regs[99999999999999999999999999]",
            "env.regs[18446744073709551615]",
            "cpu/apx/env.regs[18446744073709551615]",
            "env.xmm_regs[0][18446744073709551615]._q_ZMMReg[18446744073709551615]",
            "cpu/avx512/env.xmm_regs[1][4294967296]._q_ZMMReg[0]",
            "env.mce_banks[4294967296]",
            "env.mce_banks[18446744073709551615]",
            "env.mtrr_var[4294967295].base",
            "env.segs[18446744073709551615].flags",
            "env.fpregs[9].tmp.tmp_mant",
            "cpu/avx512/",
            "env.segs[1].flagsé",
            "é/env.hflags",
        ];
        for p in paths {
            for v in [0, 1, u64::MAX, 0x8000_0000_0000_0000] {
                let _ = explain_value(p, v);
                let _ = explain_change(p, v, !v);
                let _ = is_live(p, v);
            }
            let _ = register_name(Width::Long, p);
        }
        // Every known field renders any value without panicking.
        for (field, _, _) in FLAG_FIELDS {
            for v in [0, u64::MAX, 0x5555_5555_5555_5555] {
                assert!(explain_value(field, v).is_some());
                assert!(explain_change(field, v, !v).is_some());
            }
        }
        let all = change("env.hflags", 0, u64::MAX);
        assert!(all.starts_with("CPL 0->3 +bit2 +INHIBIT_IRQ"), "{all}");
        assert!(all.contains("+AVX_EN +bit29 +bit30"), "{all}");
        assert!(all.ends_with("+bit62 +bit63"), "{all}");
    }

    #[test]
    fn pattern_matching() {
        assert_eq!(match_pattern("env.regs[12]", "env.regs[#]"), Some(vec![12]));
        assert_eq!(
            match_pattern("a[1][2].b[3]", "a[#][#].b[#]"),
            Some(vec![1, 2, 3])
        );
        assert_eq!(match_pattern("env.regs[12]x", "env.regs[#]"), None);
        assert_eq!(match_pattern("env.regs[]", "env.regs[#]"), None);
        assert_eq!(match_pattern("env.eip", "env.eip"), Some(vec![]));
    }
}
