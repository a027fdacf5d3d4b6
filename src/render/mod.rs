//! Output: every function here takes decoded data and writes text; nothing here decodes
//! or compares. Colour is a parameter, never detected here.

pub mod attachment;
pub mod document;
pub mod junit;
#[cfg(feature = "cli")]
pub mod matrix;
pub mod report;
pub mod unified;

use owo_colors::OwoColorize;

use crate::tree::{Node, Value};

/// How to paint output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Paint {
    Removed,
    Added,
    Hunk,
    Header,
    Note,
}

impl Style {
    pub fn paint(&self, paint: Paint, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        match paint {
            Paint::Removed => text.red().to_string(),
            Paint::Added => text.green().to_string(),
            Paint::Hunk => text.cyan().to_string(),
            Paint::Header => text.bold().to_string(),
            Paint::Note => text.yellow().to_string(),
        }
    }
}

/// `1 page`, `2 pages`, `0 pages`: a count and its noun in the right number. Every noun
/// migdiff counts takes `s` in the plural.
pub fn count(n: impl std::fmt::Display, noun: &str) -> String {
    let n = n.to_string();
    let s = if n == "1" { "" } else { "s" };
    format!("{n} {noun}{s}")
}

/// Buffers up to this many bytes are shown inline; longer ones as 16-byte rows.
pub const INLINE_BYTES: usize = 16;

/// A leaf value as text onto `out` (no allocation per value): integers in hex padded to
/// their size (`0x00000040`), negative signed values with their decimal
/// (`0xffffffff (-1)`), short buffers as hex bytes. Changes print their values the same way
/// ([`Leaf`](crate::diff::Leaf)'s `Display`).
pub fn write_value(out: &mut String, node: &Node) {
    use std::fmt::Write as _;
    let _ = match &node.value {
        Value::Bool(b) => write!(out, "{b}"),
        Value::Uint { value, size } => {
            push_int(out, *value, *size, false);
            Ok(())
        }
        Value::Int { value, size } => {
            push_int(out, *value as u64, *size, true);
            Ok(())
        }
        // A value blanked for --schema-only: its shape is all there is.
        Value::Bytes(b) if b.is_empty() && node.len > 0 => {
            write!(out, "({}, {})", node.type_name, count(node.len, "byte"))
        }
        Value::Bytes(b) if b.len() <= INLINE_BYTES => {
            out.push_str(&hex_bytes(b));
            Ok(())
        }
        Value::Bytes(b) => write!(out, "{} bytes", b.len()),
        Value::Text(t) => write!(out, "{t:?}"),
        Value::Null => write!(out, "nullptr"),
        Value::Struct(_) => write!(out, "struct"),
        Value::Array(_) | Value::Scalars(_) => {
            let elements = node.value.element_count().unwrap_or(0);
            out.push_str(&count(elements, "element"));
            Ok(())
        }
    };
}

/// An integer of `size` bytes in hex padded to its size (`0x00000040`); a negative signed
/// one (`value` sign-extended) with its decimal too (`0xffffffff (-1)`).
pub fn push_int(out: &mut String, value: u64, size: u8, signed: bool) {
    use std::fmt::Write as _;
    let digits = usize::from(size) * 2;
    if signed && (value as i64) < 0 {
        let bits = u32::from(size.clamp(1, 8)) * 8;
        push_hex(out, value & (u64::MAX >> (64 - bits)), digits);
        let _ = write!(out, " ({})", value as i64);
    } else {
        push_hex(out, value, digits);
    }
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `0x` and `value` in `digits` lowercase hex digits, zero-padded: the hot path of `show`,
/// where `core::fmt` with a width was most of the time.
pub fn push_hex(out: &mut String, value: u64, digits: usize) {
    out.push_str("0x");
    let digits = digits
        .clamp(1, 16)
        .max((64 - value.leading_zeros() as usize).div_ceil(4));
    for i in (0..digits).rev() {
        out.push(char::from(DIGITS[((value >> (i * 4)) & 0xf) as usize]));
    }
}

/// `n` in decimal, without `core::fmt`.
pub fn push_decimal(out: &mut String, mut n: usize) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[at..] {
        out.push(char::from(b));
    }
}

/// `00 ab ff`: space-separated lowercase hex, by table (this runs for every byte of every
/// buffer `show` prints).
pub fn hex_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(value: Value) -> Node {
        Node {
            name: "x".into(),
            type_name: "t".into(),
            offset: 0,
            len: 0,
            value,
        }
    }

    #[test]
    fn hand_rolled_hex_and_decimal_match_fmt() {
        for (value, digits) in [(0u64, 2), (0x40, 8), (u64::MAX, 16), (0x1234, 2), (5, 1)] {
            let mut s = String::new();
            push_hex(&mut s, value, digits);
            assert_eq!(s, format!("{value:#0w$x}", w = digits + 2));
        }
        for n in [0usize, 7, 10, 4095, usize::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    fn format_value(node: &Node) -> String {
        let mut out = String::new();
        write_value(&mut out, node);
        out
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "page"), "1 page");
        assert_eq!(count(0u64, "byte"), "0 bytes");
        assert_eq!(count(2usize, "hunk"), "2 hunks");
    }

    #[test]
    fn values_render_like_qemu_tools() {
        assert_eq!(
            format_value(&node(Value::Uint {
                value: 0x40,
                size: 4
            })),
            "0x00000040"
        );
        assert_eq!(
            format_value(&node(Value::Int { value: -1, size: 2 })),
            "0xffff (-1)"
        );
        assert_eq!(format_value(&node(Value::Bytes(vec![0, 0xab]))), "00 ab");
        assert_eq!(format_value(&node(Value::Bytes(vec![0; 17]))), "17 bytes");
        assert_eq!(format_value(&node(Value::Null)), "nullptr");
    }
}
