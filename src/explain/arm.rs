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
        let known = if wide {
            CP_REGS64
                .iter()
                .find(|(enc, _)| *enc == (cp, opc1, crm))
                .map(|(_, name)| format!("{name} (64-bit)"))
        } else {
            CP_REGS
                .iter()
                .find(|(enc, _)| *enc == (cp, opc1, crn, crm, opc2))
                .map(|(_, name)| (*name).to_string())
        };
        return match known {
            Some(name) => format!("{name}{secure}"),
            None if wide => format!("p{cp} opc1={opc1} c{crm} (64-bit){secure}"),
            None => format!("p{cp} opc1={opc1} c{crn} c{crm} opc2={opc2}{secure}"),
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
    ((3, 0, 0, 1, 0), "ID_PFR0_EL1"),
    ((3, 0, 0, 1, 1), "ID_PFR1_EL1"),
    ((3, 0, 0, 1, 2), "ID_DFR0_EL1"),
    ((3, 0, 0, 1, 3), "ID_AFR0_EL1"),
    ((3, 0, 0, 1, 4), "ID_MMFR0_EL1"),
    ((3, 0, 0, 1, 5), "ID_MMFR1_EL1"),
    ((3, 0, 0, 1, 6), "ID_MMFR2_EL1"),
    ((3, 0, 0, 1, 7), "ID_MMFR3_EL1"),
    ((3, 0, 0, 2, 0), "ID_ISAR0_EL1"),
    ((3, 0, 0, 2, 1), "ID_ISAR1_EL1"),
    ((3, 0, 0, 2, 2), "ID_ISAR2_EL1"),
    ((3, 0, 0, 2, 3), "ID_ISAR3_EL1"),
    ((3, 0, 0, 2, 4), "ID_ISAR4_EL1"),
    ((3, 0, 0, 2, 5), "ID_ISAR5_EL1"),
    ((3, 0, 0, 2, 6), "ID_MMFR4_EL1"),
    ((3, 0, 0, 2, 7), "ID_ISAR6_EL1"),
    ((3, 0, 0, 3, 0), "MVFR0_EL1"),
    ((3, 0, 0, 3, 1), "MVFR1_EL1"),
    ((3, 0, 0, 3, 2), "MVFR2_EL1"),
    ((3, 0, 0, 3, 4), "ID_PFR2_EL1"),
    ((3, 0, 0, 3, 5), "ID_DFR1_EL1"),
    ((3, 0, 0, 3, 6), "ID_MMFR5_EL1"),
    ((3, 0, 0, 4, 0), "ID_AA64PFR0_EL1"),
    ((3, 0, 0, 4, 1), "ID_AA64PFR1_EL1"),
    ((3, 0, 0, 4, 2), "ID_AA64PFR2_EL1"),
    ((3, 0, 0, 4, 4), "ID_AA64ZFR0_EL1"),
    ((3, 0, 0, 4, 5), "ID_AA64SMFR0_EL1"),
    ((3, 0, 0, 5, 0), "ID_AA64DFR0_EL1"),
    ((3, 0, 0, 5, 1), "ID_AA64DFR1_EL1"),
    ((3, 0, 0, 5, 4), "ID_AA64AFR0_EL1"),
    ((3, 0, 0, 5, 5), "ID_AA64AFR1_EL1"),
    ((3, 0, 0, 6, 0), "ID_AA64ISAR0_EL1"),
    ((3, 0, 0, 6, 1), "ID_AA64ISAR1_EL1"),
    ((3, 0, 0, 6, 2), "ID_AA64ISAR2_EL1"),
    ((3, 0, 0, 7, 0), "ID_AA64MMFR0_EL1"),
    ((3, 0, 0, 7, 1), "ID_AA64MMFR1_EL1"),
    ((3, 0, 0, 7, 2), "ID_AA64MMFR2_EL1"),
    ((3, 0, 0, 7, 3), "ID_AA64MMFR3_EL1"),
    ((3, 0, 0, 7, 4), "ID_AA64MMFR4_EL1"),
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
    ((3, 1, 0, 0, 0), "CCSIDR_EL1"),
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

/// (coprocessor, opc1, CRn, CRm, opc2) of common AArch32 registers (Arm ARM G8; QEMU
/// target/arm/helper.c), by their AArch32 names.
type CpEncoding = (u64, u64, u64, u64, u64);
const CP_REGS: &[(CpEncoding, &str)] = &[
    ((14, 0, 0, 0, 0), "DBGDIDR"),
    ((15, 0, 0, 0, 0), "MIDR"),
    ((15, 0, 0, 0, 1), "CTR"),
    ((15, 0, 0, 0, 5), "MPIDR"),
    ((15, 0, 0, 0, 6), "REVIDR"),
    ((15, 0, 0, 1, 0), "ID_PFR0"),
    ((15, 0, 0, 1, 1), "ID_PFR1"),
    ((15, 0, 0, 1, 2), "ID_DFR0"),
    ((15, 0, 0, 1, 3), "ID_AFR0"),
    ((15, 0, 0, 1, 4), "ID_MMFR0"),
    ((15, 0, 0, 1, 5), "ID_MMFR1"),
    ((15, 0, 0, 1, 6), "ID_MMFR2"),
    ((15, 0, 0, 1, 7), "ID_MMFR3"),
    ((15, 0, 0, 2, 0), "ID_ISAR0"),
    ((15, 0, 0, 2, 1), "ID_ISAR1"),
    ((15, 0, 0, 2, 2), "ID_ISAR2"),
    ((15, 0, 0, 2, 3), "ID_ISAR3"),
    ((15, 0, 0, 2, 4), "ID_ISAR4"),
    ((15, 0, 0, 2, 5), "ID_ISAR5"),
    ((15, 0, 0, 2, 6), "ID_MMFR4"),
    ((15, 0, 0, 2, 7), "ID_ISAR6"),
    ((15, 0, 0, 3, 4), "ID_PFR2"),
    ((15, 0, 0, 3, 5), "ID_DFR1"),
    ((15, 0, 0, 3, 6), "ID_MMFR5"),
    ((15, 1, 0, 0, 0), "CCSIDR"),
    ((15, 1, 0, 0, 1), "CLIDR"),
    ((15, 2, 0, 0, 0), "CSSELR"),
    ((15, 0, 1, 0, 0), "SCTLR"),
    ((15, 0, 1, 0, 1), "ACTLR"),
    ((15, 0, 1, 0, 2), "CPACR"),
    ((15, 0, 1, 0, 3), "ACTLR2"),
    ((15, 0, 1, 1, 0), "SCR"),
    ((15, 0, 1, 1, 1), "SDER"),
    ((15, 0, 1, 1, 2), "NSACR"),
    ((15, 0, 2, 0, 0), "TTBR0"),
    ((15, 0, 2, 0, 1), "TTBR1"),
    ((15, 0, 2, 0, 2), "TTBCR"),
    ((15, 0, 2, 0, 3), "TTBCR2"),
    ((15, 0, 3, 0, 0), "DACR"),
    ((15, 0, 5, 0, 0), "DFSR"),
    ((15, 0, 5, 0, 1), "IFSR"),
    ((15, 0, 5, 1, 0), "ADFSR"),
    ((15, 0, 5, 1, 1), "AIFSR"),
    ((15, 0, 6, 0, 0), "DFAR"),
    ((15, 0, 6, 0, 2), "IFAR"),
    ((15, 0, 7, 4, 0), "PAR"),
    ((15, 0, 9, 12, 0), "PMCR"),
    ((15, 0, 9, 12, 1), "PMCNTENSET"),
    ((15, 0, 9, 12, 2), "PMCNTENCLR"),
    ((15, 0, 9, 12, 3), "PMOVSR"),
    ((15, 0, 9, 12, 5), "PMSELR"),
    ((15, 0, 9, 13, 0), "PMCCNTR"),
    ((15, 0, 9, 14, 0), "PMUSERENR"),
    ((15, 0, 9, 14, 1), "PMINTENSET"),
    ((15, 0, 9, 14, 2), "PMINTENCLR"),
    ((15, 0, 9, 14, 3), "PMOVSSET"),
    ((15, 0, 10, 2, 0), "PRRR/MAIR0"),
    ((15, 0, 10, 2, 1), "NMRR/MAIR1"),
    ((15, 0, 10, 3, 0), "AMAIR0"),
    ((15, 0, 10, 3, 1), "AMAIR1"),
    ((15, 0, 12, 0, 0), "VBAR"),
    ((15, 0, 12, 0, 1), "MVBAR"),
    ((15, 0, 13, 0, 0), "FCSEIDR"),
    ((15, 0, 13, 0, 1), "CONTEXTIDR"),
    ((15, 0, 13, 0, 2), "TPIDRURW"),
    ((15, 0, 13, 0, 3), "TPIDRURO"),
    ((15, 0, 13, 0, 4), "TPIDRPRW"),
    ((15, 0, 14, 0, 0), "CNTFRQ"),
    ((15, 0, 14, 1, 0), "CNTKCTL"),
    ((15, 0, 14, 2, 1), "CNTP_CTL"),
    ((15, 0, 14, 3, 1), "CNTV_CTL"),
    ((15, 4, 1, 0, 0), "HSCTLR"),
    ((15, 4, 1, 0, 1), "HACTLR"),
    ((15, 4, 1, 1, 0), "HCR"),
    ((15, 4, 1, 1, 1), "HDCR"),
    ((15, 4, 1, 1, 2), "HCPTR"),
    ((15, 4, 1, 1, 3), "HSTR"),
    ((15, 4, 1, 1, 4), "HCR2"),
    ((15, 4, 1, 1, 7), "HACR"),
    ((15, 4, 2, 0, 2), "HTCR"),
    ((15, 4, 2, 1, 2), "VTCR"),
    ((15, 4, 5, 2, 0), "HSR"),
    ((15, 4, 6, 0, 0), "HDFAR"),
    ((15, 4, 6, 0, 2), "HIFAR"),
    ((15, 4, 6, 0, 4), "HPFAR"),
    ((15, 4, 10, 2, 0), "HMAIR0"),
    ((15, 4, 10, 2, 1), "HMAIR1"),
    ((15, 4, 12, 0, 0), "HVBAR"),
    ((15, 4, 13, 0, 2), "HTPIDR"),
];

/// (coprocessor, opc1, CRm) of common 64-bit AArch32 registers (MCRR/MRRC).
const CP_REGS64: &[((u64, u64, u64), &str)] = &[
    ((14, 0, 1), "DBGDRAR"),
    ((14, 0, 2), "DBGDSAR"),
    ((15, 0, 2), "TTBR0"),
    ((15, 1, 2), "TTBR1"),
    ((15, 0, 7), "PAR"),
    ((15, 4, 2), "HTTBR"),
    ((15, 6, 2), "VTTBR"),
    ((15, 0, 14), "CNTPCT"),
    ((15, 1, 14), "CNTVCT"),
    ((15, 2, 14), "CNTP_CVAL"),
    ((15, 3, 14), "CNTV_CVAL"),
    ((15, 4, 14), "CNTVOFF"),
    ((15, 6, 14), "CNTHP_CVAL"),
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
        bit(32, "CMOW"),
        bit(33, "MSCEn"),
        bit(37, "ITFSB"),
        num(38, 2, "TCF0", false),
        num(40, 2, "TCF", false),
        bit(42, "ATA0"),
        bit(43, "ATA"),
        bit(44, "DSSBS"),
        bit(45, "TWEDEn"),
        bit(50, "TMT0"),
        bit(51, "TMT"),
        bit(52, "TME0"),
        bit(53, "TME"),
        bit(54, "EnASR"),
        bit(55, "EnAS0"),
        bit(56, "EnALS"),
        bit(57, "EPAN"),
        bit(60, "EnTP2"),
        bit(61, "NMI"),
        bit(62, "SPINTMASK"),
        bit(63, "TIDCP"),
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
        bit(13, "ALLINT"),
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
        bit(20, "IL"),
        bit(21, "DIT"),
        bit(22, "PAN"),
        bit(23, "SSBS"),
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

/// What a change means. When the two register lists differ, slots hold different
/// registers, so changes are told by register ID: the length's change (or, for lists of one
/// length, the first slot whose register differs) says which registers one side has alone
/// and which changed value; a value slot speaks for the register it holds in new, compared
/// with that register in old, wherever its slot.
pub fn change_meaning(
    old: &Device,
    new: &Device,
    path: &str,
    from: u64,
    to: u64,
) -> Option<String> {
    let lists = registers(old).zip(registers(new));
    let same_ids = lists
        .as_ref()
        .is_some_and(|(o, n)| o.len() == n.len() && o.iter().zip(n).all(|(a, b)| a.0 == b.0));
    if path == "cpreg_vmstate_array_len" {
        let (o, n) = lists?;
        return Some(list_difference(&o, &n));
    }
    if let Some(i) = index(path, "cpreg_vmstate_indexes[") {
        let (o, n) = lists?;
        let first = o.iter().zip(&n).position(|(a, b)| a.0 != b.0);
        return (o.len() == n.len() && first == Some(i)).then(|| list_difference(&o, &n));
    }
    if let Some(i) = index(path, "cpreg_vmstate_values[") {
        let (o, n) = lists?;
        let &(id, value) = n.get(i)?;
        if same_ids {
            return Some(value_change(id, from, to));
        }
        let (j, &(_, old_value)) = o.iter().enumerate().find(|(_, r)| r.0 == id)?;
        return (old_value != value)
            .then(|| format!("{} (old slot {j})", value_change(id, old_value, value)));
    }
    register(path)
}

/// `SCTLR_EL1: +M +C`, `TCR_EL1: 0x0 -> 0x32b5593519`.
fn value_change(id: u64, from: u64, to: u64) -> String {
    let name = register_name(id);
    if SCTLR_NAMES.contains(&name.as_str()) {
        format!("{name}: {}", render_change(&SCTLR, from, to))
    } else {
        format!("{name}: {from:#x} -> {to:#x}")
    }
}

/// Traces of two CPU models in the register lists: ID registers (op0 3, op1 0, CRn 0,
/// constant for a CPU model) both sides hold with different values, and registers one
/// side has alone.
pub fn model_evidence(old: &Device, new: &Device) -> Vec<super::Evidence> {
    let Some((o, n)) = registers(old).zip(registers(new)) else {
        return Vec::new();
    };
    let anchor = if o.len() == n.len() {
        match o.iter().zip(&n).position(|(a, b)| a.0 != b.0) {
            Some(i) => format!("cpreg_vmstate_indexes[{i}]"),
            None => String::new(),
        }
    } else {
        "cpreg_vmstate_array_len".to_string()
    };
    let mut evidence = Vec::new();
    let ids: Vec<u64> = n
        .iter()
        .filter(|(id, _)| is_id_register(*id))
        .filter(|&&(id, value)| o.iter().any(|r| r.0 == id && r.1 != value))
        .map(|r| r.0)
        .collect();
    if let Some(first) = ids.first() {
        let anchor = if anchor.is_empty() {
            let slot = n.iter().position(|r| r.0 == *first).unwrap_or_default();
            format!("cpreg_vmstate_values[{slot}]")
        } else {
            anchor.clone()
        };
        let names = ids.iter().copied().map(register_name).collect();
        evidence.push(super::Evidence::new(
            anchor,
            format!("ID registers differ: {}", listed(names)),
        ));
    }
    let alone: Vec<String> = [(only(&o, &n).len(), "old"), (only(&n, &o).len(), "new")]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, side)| format!("{count} system registers in {side} only"))
        .collect();
    if !alone.is_empty() {
        evidence.push(super::Evidence::new(anchor, alone.join(", ")));
    }
    evidence
}

/// op0 3, op1 0, CRn 0, CRm 1-7: the feature ID registers (MIDR and friends are CRm 0).
fn is_id_register(id: u64) -> bool {
    let e = id & 0xffff;
    let (op0, op1, crn, crm) = (e >> 14, (e >> 11) & 7, (e >> 7) & 0xf, (e >> 3) & 0xf);
    id >> 60 == 6 && (id >> 16) & 0xfff == 0x013 && (op0, op1, crn) == (3, 0, 0) && crm != 0
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

/// A cpu section's register list: (ID, value) pairs in slot order.
fn registers(device: &Device) -> Option<Vec<(u64, u64)>> {
    let field = |name: &str| device.body.fields.iter().find(|n| n.name == name);
    let ids = ints(field("cpreg_vmstate_indexes")?)?;
    let values = ints(field("cpreg_vmstate_values")?)?;
    (ids.len() == values.len()).then(|| ids.into_iter().zip(values).collect())
}

fn ints(node: &Node) -> Option<Vec<u64>> {
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

/// Why an Arm CPU's `cpu_post_load` (target/arm/machine.c) fails the load, if it does: a
/// register the source sends that the destination's CPU lacks ("register in their list
/// but not ours"), or a value `write_list_to_cpustate` cannot write back, as a feature ID
/// register's (constants under TCG) that differs. `None` when either side has no list.
pub fn post_load_refusal(src: &Device, dst: &Device) -> Option<String> {
    let (theirs, ours) = (registers(src)?, registers(dst)?);
    let missing = only(&theirs, &ours);
    if !missing.is_empty() {
        let names = listed(missing.into_iter().map(register_name).collect());
        return Some(format!(
            "the source's CPU has system registers the destination's lacks: {names}"
        ));
    }
    let fixed: Vec<String> = theirs
        .iter()
        .filter(|&&(id, _)| is_id_register(id))
        .filter_map(|&(id, value)| {
            let &(_, local) = ours.iter().find(|r| r.0 == id)?;
            (local != value).then(|| register_name(id))
        })
        .collect();
    (!fixed.is_empty()).then(|| {
        format!(
            "feature ID registers differ, which the destination's CPU holds read-only: {}",
            listed(fixed)
        )
    })
}

fn register_id(device: &Device, i: usize) -> Option<u64> {
    Some(registers(device)?.get(i)?.0)
}

/// Past this many, a list of registers says how many more.
const SHOWN: usize = 12;

/// `A, B, C and 4 more`.
fn listed(names: Vec<String>) -> String {
    let more = names.len().saturating_sub(SHOWN);
    let mut list: Vec<String> = names.into_iter().take(SHOWN).collect();
    if more > 0 {
        list.push(format!("and {more} more"));
    }
    list.join(", ")
}

/// The IDs of `a` that `b` lacks.
fn only(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<u64> {
    a.iter()
        .map(|r| r.0)
        .filter(|id| !b.iter().any(|r| r.0 == *id))
        .collect()
}

/// `274 -> 328 system registers; new only: ...; changed: SCTLR_EL1: +M, ...`, the lists
/// matched by register ID.
fn list_difference(old: &[(u64, u64)], new: &[(u64, u64)]) -> String {
    let names = |ids: Vec<u64>| listed(ids.into_iter().map(register_name).collect());
    let (old_only, new_only) = (only(old, new), only(new, old));
    let refused = !old_only.is_empty() || !new_only.is_empty();
    let changed: Vec<String> = new
        .iter()
        .filter_map(|&(id, value)| {
            let &(_, old_value) = old.iter().find(|r| r.0 == id)?;
            (old_value != value).then(|| value_change(id, old_value, value))
        })
        .collect();
    let mut text = format!("{} -> {} system registers", old.len(), new.len());
    if !old_only.is_empty() {
        text.push_str(&format!("; old only: {}", names(old_only)));
    }
    if !new_only.is_empty() {
        text.push_str(&format!("; new only: {}", names(new_only)));
    }
    if !changed.is_empty() {
        text.push_str(&format!("; changed (by register ID): {}", listed(changed)));
    }
    if refused {
        text.push_str("; a destination refuses a list with a register it lacks");
    }
    text
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
        assert_eq!(register_name(0x4020_0000_000f_6801), "CONTEXTIDR");
        assert_eq!(register_name(0x4020_0000_200e_0000), "DBGDIDR (non-secure)");
        assert_eq!(register_name(0x4030_0000_000f_0100), "TTBR0 (64-bit)");
        // Implementation defined (cortex-a57's L2CTLR): left as its encoding.
        assert_eq!(
            register_name(0x4020_0000_200f_480a),
            "p15 opc1=1 c9 c0 opc2=2 (non-secure)"
        );
        assert!(is_id_register(0x6030_0000_0013_c020));
        assert!(!is_id_register(0x6030_0000_0013_c000));
        assert!(!is_id_register(0x6030_0000_0013_c080));
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
