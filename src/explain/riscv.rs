//! RISC-V CPU state (target/riscv/machine.c `vmstate_riscv_cpu` and its subsections): the
//! integer registers by ABI name, the CSRs QEMU keeps as `env` fields by CSR name and
//! number, and the bits of mstatus, mip/mie, satp and misa. Numbers and bits are the
//! privileged spec's (QEMU's target/riscv/cpu_bits.h).

use super::flags::{bit, named, num, render_change, render_value, FlagWord};

/// Integer registers x0-x31 by ABI name (RISC-V psABI).
const GPR_NAMES: &[&str] = &[
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

// mstatus / vsstatus / mstatus_hs (cpu_bits.h MSTATUS_*).
const MSTATUS: FlagWord = FlagWord {
    parts: &[
        bit(1, "SIE"),
        bit(3, "MIE"),
        bit(5, "SPIE"),
        bit(6, "UBE"),
        bit(7, "MPIE"),
        bit(8, "SPP"),
        named(9, 2, "VS", EXT_STATE, false),
        named(11, 2, "MPP", &["U", "S", "", "M"], true),
        named(13, 2, "FS", EXT_STATE, false),
        named(15, 2, "XS", EXT_STATE, false),
        bit(17, "MPRV"),
        bit(18, "SUM"),
        bit(19, "MXR"),
        bit(20, "TVM"),
        bit(21, "TW"),
        bit(22, "TSR"),
        named(32, 2, "UXL", XLEN, false),
        named(34, 2, "SXL", XLEN, false),
        bit(36, "SBE"),
        bit(37, "MBE"),
        bit(38, "GVA"),
        bit(39, "MPV"),
        bit(63, "SD"),
    ],
    fixed: 0,
};

/// FS/VS/XS: the state of an extension's registers.
const EXT_STATE: &[&str] = &["Off", "Initial", "Clean", "Dirty"];
/// UXL/SXL (and misa's MXL): 1 = 32-bit, 2 = 64-bit, 3 = 128-bit.
const XLEN: &[&str] = &["", "32", "64", "128"];

// mip / mie / mideleg / sie and the like (cpu_bits.h MIP_*).
const INTERRUPTS: FlagWord = FlagWord {
    parts: &[
        bit(1, "SSI"),
        bit(2, "VSSI"),
        bit(3, "MSI"),
        bit(5, "STI"),
        bit(6, "VSTI"),
        bit(7, "MTI"),
        bit(9, "SEI"),
        bit(10, "VSEI"),
        bit(11, "MEI"),
        bit(12, "SGEI"),
        bit(13, "LCOFI"),
    ],
    fixed: 0,
};

// satp / vsatp / hgatp (RV64): MODE in bits 60-63.
const SATP: FlagWord = FlagWord {
    parts: &[
        num(0, 44, "PPN", false),
        num(44, 16, "ASID", false),
        named(
            60,
            4,
            "MODE",
            &[
                "Bare", "", "", "", "", "", "", "", "Sv39", "Sv48", "Sv57", "Sv64",
            ],
            true,
        ),
    ],
    fixed: 0,
};

/// CSR fields: the `env` field, the CSR's name and number, and its bits where named.
const CSRS: &[(&str, &str, u32, Option<&FlagWord>)] = &[
    ("env.mstatus", "mstatus", 0x300, Some(&MSTATUS)),
    ("env.medeleg", "medeleg", 0x302, None),
    ("env.mideleg", "mideleg", 0x303, Some(&INTERRUPTS)),
    ("env.mie", "mie", 0x304, Some(&INTERRUPTS)),
    ("env.mtvec", "mtvec", 0x305, None),
    ("env.mcounteren", "mcounteren", 0x306, None),
    ("env.mvien", "mvien", 0x308, None),
    ("env.mvip", "mvip", 0x309, None),
    ("env.mcountinhibit", "mcountinhibit", 0x320, None),
    ("env.mscratch", "mscratch", 0x340, None),
    ("env.mepc", "mepc", 0x341, None),
    ("env.mcause", "mcause", 0x342, None),
    ("env.mtval", "mtval", 0x343, None),
    ("env.mip", "mip", 0x344, Some(&INTERRUPTS)),
    ("env.miselect", "miselect", 0x350, None),
    ("env.mhartid", "mhartid", 0xf14, None),
    ("env.sie", "sie", 0x104, Some(&INTERRUPTS)),
    ("env.stvec", "stvec", 0x105, None),
    ("env.scounteren", "scounteren", 0x106, None),
    ("env.sscratch", "sscratch", 0x140, None),
    ("env.sepc", "sepc", 0x141, None),
    ("env.scause", "scause", 0x142, None),
    ("env.stval", "stval", 0x143, None),
    ("env.stimecmp", "stimecmp", 0x14d, None),
    ("env.siselect", "siselect", 0x150, None),
    ("env.satp", "satp", 0x180, Some(&SATP)),
    ("env.scountinhibit", "scountinhibit", 0x120, None),
    ("env.menvcfg", "menvcfg", 0x30a, None),
    ("env.senvcfg", "senvcfg", 0x10a, None),
    ("env.henvcfg", "henvcfg", 0x60a, None),
    ("env.hstatus", "hstatus", 0x600, None),
    ("env.hedeleg", "hedeleg", 0x602, None),
    ("env.hideleg", "hideleg", 0x603, Some(&INTERRUPTS)),
    ("env.hcounteren", "hcounteren", 0x606, None),
    ("env.hvien", "hvien", 0x608, None),
    ("env.hvictl", "hvictl", 0x609, None),
    ("env.htval", "htval", 0x643, None),
    ("env.hvip", "hvip", 0x645, None),
    ("env.htinst", "htinst", 0x64a, None),
    ("env.hgatp", "hgatp", 0x680, Some(&SATP)),
    ("env.hgeie", "hgeie", 0x607, None),
    ("env.hgeip", "hgeip", 0xe12, None),
    ("env.vsstatus", "vsstatus", 0x200, Some(&MSTATUS)),
    ("env.vstvec", "vstvec", 0x205, None),
    ("env.vsscratch", "vsscratch", 0x240, None),
    ("env.vsepc", "vsepc", 0x241, None),
    ("env.vscause", "vscause", 0x242, None),
    ("env.vstval", "vstval", 0x243, None),
    ("env.vstimecmp", "vstimecmp", 0x24d, None),
    ("env.vsatp", "vsatp", 0x280, Some(&SATP)),
    ("env.vsiselect", "vsiselect", 0x250, None),
    ("env.mtval2", "mtval2", 0x34b, None),
    ("env.mtinst", "mtinst", 0x34a, None),
];

/// A CSR field's entry, by the field name after any subsection (`cpu/hyper/env.hstatus`).
fn csr(
    path: &str,
) -> Option<&'static (&'static str, &'static str, u32, Option<&'static FlagWord>)> {
    let field = path.rsplit_once('/').map_or(path, |(_, f)| f);
    CSRS.iter().find(|(f, ..)| *f == field)
}

pub fn value_meaning(path: &str, value: u64) -> Option<String> {
    if let Some((_, name, number, word)) = csr(path) {
        return Some(match word {
            Some(word) => format!("{name} ({number:#x}): {}", render_value(word, value)),
            None => format!("{name} ({number:#x})"),
        });
    }
    match path {
        "env.priv" => Some(format!("privilege {}", privilege(value))),
        "env.misa_ext" | "env.misa_ext_mask" => Some(format!("misa extensions {}", letters(value))),
        "env.misa_mxl" => Some(format!(
            "MXL: {}-bit",
            XLEN.get(usize::try_from(value).ok()?)
                .filter(|x| !x.is_empty())?
        )),
        "env.pc" => Some("pc".into()),
        _ => gpr(path),
    }
}

pub fn change_meaning(path: &str, old: u64, new: u64) -> Option<String> {
    if let Some((_, name, number, word)) = csr(path) {
        return Some(match word {
            Some(word) => format!("{name} ({number:#x}): {}", render_change(word, old, new)),
            None => format!("{name} ({number:#x})"),
        });
    }
    match path {
        "env.priv" => Some(format!(
            "privilege {} -> {}",
            privilege(old),
            privilege(new)
        )),
        "env.misa_ext" | "env.misa_ext_mask" => Some(format!(
            "misa extensions {} -> {}",
            letters(old),
            letters(new)
        )),
        _ => value_meaning(path, new),
    }
}

/// `x10 (a0)` for `env.gpr[10]`.
fn gpr(path: &str) -> Option<String> {
    let n: usize = path
        .strip_prefix("env.gpr[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    Some(format!("x{n} ({})", GPR_NAMES.get(n)?))
}

/// U, S or M (PRV_U = 0, PRV_S = 1, PRV_M = 3).
fn privilege(v: u64) -> String {
    match v {
        0 => "U".into(),
        1 => "S".into(),
        3 => "M".into(),
        v => v.to_string(),
    }
}

/// misa's extension bits as letters (bit 0 = A ... bit 25 = Z): `ACDFHIMSU`.
fn letters(v: u64) -> String {
    (0..26u8)
        .filter(|b| v >> b & 1 == 1)
        .map(|b| char::from(b'A' + b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state_of_a_rv64_hart() {
        assert_eq!(
            value_meaning("env.mstatus", 0x0000_000a_0000_0000).as_deref(),
            Some("mstatus (0x300): MPP=U|UXL=64|SXL=64")
        );
        assert_eq!(
            value_meaning("env.misa_ext", 0x0014_11ad).as_deref(),
            Some("misa extensions ACDFHIMSU")
        );
        assert_eq!(
            value_meaning("env.mip", 0x80).as_deref(),
            Some("mip (0x344): MTI")
        );
        assert_eq!(value_meaning("env.priv", 3).as_deref(), Some("privilege M"));
        assert_eq!(value_meaning("env.gpr[10]", 0).as_deref(), Some("x10 (a0)"));
        assert_eq!(value_meaning("env.gpr[32]", 0), None);
        assert_eq!(
            change_meaning("cpu/hyper/env.vsatp", 0, 0x8000_0000_0008_0000).as_deref(),
            Some("vsatp (0x280): PPN 0->524288 MODE Bare->Sv39")
        );
    }
}
