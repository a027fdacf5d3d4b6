//! Arm CPU state (target/arm/machine.c `vmstate_arm_cpu`): the general registers, `cpsr`
//! (PSTATE in AArch64, CPSR in AArch32), and the system register list QEMU migrates as two
//! arrays, `cpreg_vmstate_indexes` (KVM-style register IDs, target/arm/cpregs.h
//! `cpreg_to_kvm_id`) and `cpreg_vmstate_values`.
//!
//! A destination loads the incoming list only if it knows every register in it: a longer
//! list fails `cpreg_vmstate_array_len` (an `int32 le` field: "Invalid value N expecting
//! positive value <= M"), a register it lacks fails `cpu_post_load`. Register encodings and
//! names are the Arm ARM's.

use super::flags::{bit, named, num, render_change, render_value, FlagWord};
use super::{be, Layout, Reading, Span};
use crate::tree::{Device, Node, Value};

/// A system register's KVM-style ID: 0x6030_0000_0013_xxxx for AArch64 (KVM_REG_ARM64 |
/// KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | op0:op1:CRn:CRm:op2), 0x40?0_0000_xxxx_xxxx for
/// an AArch32 coprocessor register (QEMU's ENCODE_CP_REG: ns, cp, CRn, CRm, opc1, opc2).
pub fn register_name(id: u64) -> String {
    if id >> 60 == 6 && (id >> 16) & 0xfff == 0x013 {
        let e = id & 0xffff;
        let (op0, op1, crn, crm, op2) = (
            e >> 14,
            (e >> 11) & 7,
            (e >> 7) & 0xf,
            (e >> 3) & 0xf,
            e & 7,
        );
        return match SYSREGS
            .iter()
            .find(|(enc, _)| *enc == (op0, op1, crn, crm, op2))
        {
            Some((_, name)) => (*name).to_string(),
            None => format!("S{op0}_{op1}_C{crn}_C{crm}_{op2}"),
        };
    }
    if id >> 60 == 4 {
        let e = id & 0xffff_ffff;
        let (ns, cp) = ((e >> 29) & 1, (e >> 16) & 0xfff);
        // cpreg_to_kvm_id moves ENCODE_CP_REG's 64-bit flag (bit 15) to the size field.
        let wide = (id >> 52) & 0xf == 3;
        let (crn, crm, opc1, opc2) = ((e >> 11) & 0xf, (e >> 7) & 0xf, (e >> 3) & 7, e & 7);
        let secure = if ns == 1 { " (non-secure)" } else { "" };
        return if wide {
            format!("p{cp} opc1={opc1} c{crm} (64-bit){secure}")
        } else {
            format!("p{cp} opc1={opc1} c{crn} c{crm} opc2={opc2}{secure}")
        };
    }
    format!("register {id:#x}")
}

/// (op0, op1, CRn, CRm, op2) of the AArch64 system registers most worth naming.
type Encoding = (u64, u64, u64, u64, u64);
const SYSREGS: &[(Encoding, &str)] = &[
    ((2, 0, 0, 2, 2), "MDSCR_EL1"),
    ((3, 0, 0, 0, 0), "MIDR_EL1"),
    ((3, 0, 0, 0, 5), "MPIDR_EL1"),
    ((3, 0, 0, 0, 6), "REVIDR_EL1"),
    ((3, 0, 0, 4, 0), "ID_AA64PFR0_EL1"),
    ((3, 0, 0, 4, 1), "ID_AA64PFR1_EL1"),
    ((3, 0, 0, 4, 4), "ID_AA64ZFR0_EL1"),
    ((3, 0, 0, 4, 5), "ID_AA64SMFR0_EL1"),
    ((3, 0, 0, 5, 0), "ID_AA64DFR0_EL1"),
    ((3, 0, 0, 5, 1), "ID_AA64DFR1_EL1"),
    ((3, 0, 0, 6, 0), "ID_AA64ISAR0_EL1"),
    ((3, 0, 0, 6, 1), "ID_AA64ISAR1_EL1"),
    ((3, 0, 0, 6, 2), "ID_AA64ISAR2_EL1"),
    ((3, 0, 0, 7, 0), "ID_AA64MMFR0_EL1"),
    ((3, 0, 0, 7, 1), "ID_AA64MMFR1_EL1"),
    ((3, 0, 0, 7, 2), "ID_AA64MMFR2_EL1"),
    ((3, 0, 0, 7, 3), "ID_AA64MMFR3_EL1"),
    ((3, 0, 1, 0, 0), "SCTLR_EL1"),
    ((3, 0, 1, 0, 1), "ACTLR_EL1"),
    ((3, 0, 1, 0, 2), "CPACR_EL1"),
    ((3, 0, 1, 2, 0), "ZCR_EL1"),
    ((3, 0, 2, 0, 0), "TTBR0_EL1"),
    ((3, 0, 2, 0, 1), "TTBR1_EL1"),
    ((3, 0, 2, 0, 2), "TCR_EL1"),
    ((3, 0, 4, 0, 0), "SPSR_EL1"),
    ((3, 0, 4, 0, 1), "ELR_EL1"),
    ((3, 0, 4, 1, 0), "SP_EL0"),
    ((3, 0, 5, 1, 0), "AFSR0_EL1"),
    ((3, 0, 5, 1, 1), "AFSR1_EL1"),
    ((3, 0, 5, 2, 0), "ESR_EL1"),
    ((3, 0, 6, 0, 0), "FAR_EL1"),
    ((3, 0, 7, 4, 0), "PAR_EL1"),
    ((3, 0, 10, 2, 0), "MAIR_EL1"),
    ((3, 0, 10, 3, 0), "AMAIR_EL1"),
    ((3, 0, 12, 0, 0), "VBAR_EL1"),
    ((3, 0, 13, 0, 1), "CONTEXTIDR_EL1"),
    ((3, 0, 13, 0, 4), "TPIDR_EL1"),
    ((3, 0, 14, 1, 0), "CNTKCTL_EL1"),
    ((3, 1, 0, 0, 1), "CLIDR_EL1"),
    ((3, 2, 0, 0, 0), "CSSELR_EL1"),
    ((3, 3, 0, 0, 1), "CTR_EL0"),
    ((3, 3, 0, 0, 7), "DCZID_EL0"),
    ((3, 3, 4, 4, 0), "FPCR"),
    ((3, 3, 4, 4, 1), "FPSR"),
    ((3, 3, 13, 0, 2), "TPIDR_EL0"),
    ((3, 3, 13, 0, 3), "TPIDRRO_EL0"),
    ((3, 3, 14, 0, 0), "CNTFRQ_EL0"),
    ((3, 3, 14, 0, 2), "CNTVCT_EL0"),
    ((3, 3, 14, 2, 1), "CNTP_CTL_EL0"),
    ((3, 3, 14, 2, 2), "CNTP_CVAL_EL0"),
    ((3, 3, 14, 3, 1), "CNTV_CTL_EL0"),
    ((3, 3, 14, 3, 2), "CNTV_CVAL_EL0"),
    ((3, 4, 0, 0, 0), "VPIDR_EL2"),
    ((3, 4, 0, 0, 5), "VMPIDR_EL2"),
    ((3, 4, 1, 0, 0), "SCTLR_EL2"),
    ((3, 4, 1, 1, 0), "HCR_EL2"),
    ((3, 4, 1, 1, 2), "CPTR_EL2"),
    ((3, 4, 2, 0, 0), "TTBR0_EL2"),
    ((3, 4, 2, 0, 2), "TCR_EL2"),
    ((3, 4, 2, 1, 0), "VTTBR_EL2"),
    ((3, 4, 2, 1, 2), "VTCR_EL2"),
    ((3, 4, 5, 2, 0), "ESR_EL2"),
    ((3, 4, 6, 0, 0), "FAR_EL2"),
    ((3, 4, 10, 2, 0), "MAIR_EL2"),
    ((3, 4, 12, 0, 0), "VBAR_EL2"),
    ((3, 4, 14, 0, 3), "CNTVOFF_EL2"),
    ((3, 4, 14, 1, 0), "CNTHCTL_EL2"),
    ((3, 6, 1, 0, 0), "SCTLR_EL3"),
    ((3, 6, 1, 1, 0), "SCR_EL3"),
    ((3, 6, 1, 1, 2), "CPTR_EL3"),
    ((3, 6, 2, 0, 0), "TTBR0_EL3"),
    ((3, 6, 2, 0, 2), "TCR_EL3"),
    ((3, 6, 5, 2, 0), "ESR_EL3"),
    ((3, 6, 10, 2, 0), "MAIR_EL3"),
    ((3, 6, 12, 0, 0), "VBAR_EL3"),
];

// SCTLR_ELx (Arm ARM D23.2): the bits of SCTLR_EL1, which EL2/EL3 share where defined.
const SCTLR: FlagWord = FlagWord {
    parts: &[
        bit(0, "M"),
        bit(1, "A"),
        bit(2, "C"),
        bit(3, "SA"),
        bit(4, "SA0"),
        bit(5, "CP15BEN"),
        bit(6, "nAA"),
        bit(7, "ITD"),
        bit(8, "SED"),
        bit(9, "UMA"),
        bit(10, "EnRCTX"),
        bit(11, "EOS"),
        bit(12, "I"),
        bit(13, "EnDB"),
        bit(14, "DZE"),
        bit(15, "UCT"),
        bit(16, "nTWI"),
        bit(18, "nTWE"),
        bit(19, "WXN"),
        bit(20, "TSCXT"),
        bit(21, "IESB"),
        bit(22, "EIS"),
        bit(23, "SPAN"),
        bit(24, "E0E"),
        bit(25, "EE"),
        bit(26, "UCI"),
        bit(27, "EnDA"),
        bit(28, "nTLSMD"),
        bit(29, "LSMAOE"),
        bit(30, "EnIB"),
        bit(31, "EnIA"),
        bit(35, "BT0"),
        bit(36, "BT1"),
        bit(37, "ITFSB"),
        num(38, 2, "TCF0", false),
        num(40, 2, "TCF", false),
        bit(42, "ATA0"),
        bit(43, "ATA"),
        bit(44, "DSSBS"),
    ],
    fixed: 0,
};

// PSTATE as QEMU saves it for AArch64 (pstate_read; Arm ARM C5.2.18 SPSR_EL1 layout):
// M[3:0] (EL and SP selector) is spelled separately.
const PSTATE: FlagWord = FlagWord {
    parts: &[
        bit(6, "F"),
        bit(7, "I"),
        bit(8, "A"),
        bit(9, "D"),
        num(10, 2, "BTYPE", false),
        bit(12, "SSBS"),
        bit(20, "IL"),
        bit(21, "SS"),
        bit(22, "PAN"),
        bit(23, "UAO"),
        bit(24, "DIT"),
        bit(25, "TCO"),
        bit(28, "V"),
        bit(29, "C"),
        bit(30, "Z"),
        bit(31, "N"),
    ],
    fixed: 0,
};

// CPSR for AArch32 (cpsr_read; Arm ARM G8.2.33): M[4:0] is spelled separately.
const CPSR: FlagWord = FlagWord {
    parts: &[
        bit(5, "T"),
        bit(6, "F"),
        bit(7, "I"),
        bit(8, "A"),
        bit(9, "E"),
        named(16, 4, "GE", &[], false),
        bit(22, "PAN"),
        bit(24, "J"),
        bit(27, "Q"),
        bit(28, "V"),
        bit(29, "C"),
        bit(30, "Z"),
        bit(31, "N"),
    ],
    fixed: 0,
};

/// `AArch64 EL1h, Z|I|F`: the execution state and mode, then the flags.
pub fn cpsr_text(v: u64) -> String {
    if v & 0x10 == 0 {
        let sp = if v & 1 == 1 { 'h' } else { 't' };
        let flags = render_value(&PSTATE, v & !0x1f);
        format!("AArch64 EL{}{sp}, {flags}", (v >> 2) & 3)
    } else {
        let mode = match v & 0x1f {
            0x10 => "usr",
            0x11 => "fiq",
            0x12 => "irq",
            0x13 => "svc",
            0x16 => "mon",
            0x17 => "abt",
            0x1a => "hyp",
            0x1b => "und",
            0x1f => "sys",
            _ => "reserved mode",
        };
        format!("AArch32 {mode}, {}", render_value(&CPSR, v & !0x1f))
    }
}

/// `cpsr`, sent as a big-endian word of a type no description spells out.
pub fn layout(path: &str, bytes: &[u8]) -> Option<Layout> {
    if path != "cpsr" || bytes.len() != 4 {
        return None;
    }
    let v = be(bytes, 0, 4)?;
    Some(Layout {
        spans: vec![Span::new(0..4, "cpsr", Reading::Text(cpsr_text(v)))],
    })
}

/// The register a path holds, and for a system register value what its bits say.
pub fn value_meaning(device: &Device, path: &str, value: u64) -> Option<String> {
    if index(path, "cpreg_vmstate_indexes[").is_some() {
        return Some(register_name(value));
    }
    if let Some(i) = index(path, "cpreg_vmstate_values[") {
        let name = register_name(register_id(device, i)?);
        return Some(match sctlr_bits(&name, value) {
            Some(bits) => format!("{name}: {bits}"),
            None => name,
        });
    }
    register(path)
}

/// What a change means; for the register list, which registers one side has alone.
pub fn change_meaning(
    old: &Device,
    new: &Device,
    path: &str,
    from: u64,
    to: u64,
) -> Option<String> {
    if path == "cpreg_vmstate_array_len" {
        return list_difference(old, new);
    }
    if index(path, "cpreg_vmstate_indexes[").is_some() {
        return Some(format!("{} -> {}", register_name(from), register_name(to)));
    }
    if let Some(i) = index(path, "cpreg_vmstate_values[") {
        let (o, n) = (register_id(old, i)?, register_id(new, i)?);
        if o != n {
            return Some(format!(
                "slot {i} holds {} in old, {} in new: the register lists differ",
                register_name(o),
                register_name(n)
            ));
        }
        let name = register_name(n);
        return Some(if SCTLR_NAMES.contains(&name.as_str()) {
            format!("{name}: {}", render_change(&SCTLR, from, to))
        } else {
            name
        });
    }
    register(path)
}

const SCTLR_NAMES: &[&str] = &["SCTLR_EL1", "SCTLR_EL2", "SCTLR_EL3"];

fn sctlr_bits(name: &str, value: u64) -> Option<String> {
    SCTLR_NAMES
        .contains(&name)
        .then(|| render_value(&SCTLR, value))
}

/// `17` from `cpreg_vmstate_values[17]`.
fn index(path: &str, prefix: &str) -> Option<usize> {
    path.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
}

/// The general registers: AArch64 x0-x30 and sp (QEMU keeps SP in xregs[31]), AArch32
/// r0-r12, sp, lr, pc.
fn register(path: &str) -> Option<String> {
    if let Some(n) = index(path, "env.xregs[") {
        return match n {
            0..=30 => Some(format!("x{n}")),
            31 => Some("sp".into()),
            _ => None,
        };
    }
    if let Some(n) = index(path, "env.regs[") {
        return match n {
            0..=12 => Some(format!("r{n}")),
            13 => Some("sp (r13)".into()),
            14 => Some("lr (r14)".into()),
            15 => Some("pc (r15)".into()),
            _ => None,
        };
    }
    if let Some(n) = index(path, "env.elr_el[") {
        return (1..=3).contains(&n).then(|| format!("ELR_EL{n}"));
    }
    if let Some(n) = index(path, "env.sp_el[") {
        return (n <= 3).then(|| format!("SP_EL{n}"));
    }
    None
}

/// The IDs of a cpu section's register list.
fn register_ids(device: &Device) -> Option<Vec<u64>> {
    let node = device
        .body
        .fields
        .iter()
        .find(|n| n.name == "cpreg_vmstate_indexes")?;
    ids_of(node)
}

fn ids_of(node: &Node) -> Option<Vec<u64>> {
    match &node.value {
        Value::Scalars(s) => Some(s.values().collect()),
        Value::Array(items) => items
            .iter()
            .map(|n| match n.value {
                Value::Uint { value, .. } => Some(value),
                Value::Int { value, .. } => Some(value as u64),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn register_id(device: &Device, i: usize) -> Option<u64> {
    register_ids(device)?.get(i).copied()
}

/// Past this many, a list of registers says how many more.
const SHOWN: usize = 12;

/// `330 -> 312 registers; old only: ID_AA64ZFR0_EL1, ...; new only: ...`.
fn list_difference(old: &Device, new: &Device) -> Option<String> {
    let (o, n) = (register_ids(old)?, register_ids(new)?);
    let names = |ids: Vec<u64>| {
        let more = ids.len().saturating_sub(SHOWN);
        let mut list: Vec<String> = ids.into_iter().take(SHOWN).map(register_name).collect();
        if more > 0 {
            list.push(format!("and {more} more"));
        }
        list.join(", ")
    };
    let only = |a: &[u64], b: &[u64]| -> Vec<u64> {
        a.iter().filter(|id| !b.contains(id)).copied().collect()
    };
    let (old_only, new_only) = (only(&o, &n), only(&n, &o));
    let mut text = format!("{} -> {} system registers", o.len(), n.len());
    if !old_only.is_empty() {
        text.push_str(&format!("; old only: {}", names(old_only)));
    }
    if !new_only.is_empty() {
        text.push_str(&format!("; new only: {}", names(new_only)));
    }
    text.push_str(
        "; a destination refuses a list with a register it lacks (the CPU models differ)",
    );
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_registers_by_id() {
        assert_eq!(register_name(0x6030_0000_0013_c080), "SCTLR_EL1");
        assert_eq!(register_name(0x6030_0000_0013_c100), "TTBR0_EL1");
        assert_eq!(register_name(0x6030_0000_0013_c510), "MAIR_EL1");
        assert_eq!(register_name(0x6030_0000_0013_c600), "VBAR_EL1");
        assert_eq!(register_name(0x6030_0000_0013_df7f), "S3_3_C14_C15_7");
        assert_eq!(
            register_name(0x4020_0000_000f_6801),
            "p15 opc1=0 c13 c0 opc2=1"
        );
        assert_eq!(
            register_name(0x4020_0000_200e_0000),
            "p14 opc1=0 c0 c0 opc2=0 (non-secure)"
        );
        assert_eq!(register_name(7), "register 0x7");
    }

    #[test]
    fn pstate_and_cpsr() {
        assert_eq!(cpsr_text(0x4000_03c5), "AArch64 EL1h, F|I|A|D|Z");
        assert_eq!(cpsr_text(0x3c0), "AArch64 EL0t, F|I|A|D");
        assert_eq!(cpsr_text(0x1d3), "AArch32 svc, F|I|A");
    }

    #[test]
    fn sctlr_bits_are_named() {
        assert_eq!(
            sctlr_bits("SCTLR_EL1", 0x30d0_1805).as_deref(),
            Some("M|C|EOS|I|TSCXT|EIS|SPAN|nTLSMD|LSMAOE")
        );
        assert_eq!(sctlr_bits("TCR_EL1", 1), None);
    }
}
