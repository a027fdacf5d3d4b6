//! Output: every function here takes decoded data and writes text; nothing here decodes
//! or compares. Colour is a parameter, never detected here.

pub mod attachment;
pub mod document;
pub mod junit;
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

/// Buffers up to this many bytes are shown inline; longer ones as 16-byte rows.
pub const INLINE_BYTES: usize = 16;

/// A leaf value as text: integers in hex padded to their size (`0x00000040`), negative
/// signed values with their decimal (`0xffffffff (-1)`), short buffers as hex bytes.
pub fn format_value(node: &Node) -> String {
    match &node.value {
        Value::Bool(b) => b.to_string(),
        Value::Uint { value, size } => hex(*value, *size),
        Value::Int { value, size } if *value < 0 => {
            let bits = u32::from(*size) * 8;
            let raw = (*value as u64) & (u64::MAX >> (64 - bits));
            format!("{} ({value})", hex(raw, *size))
        }
        Value::Int { value, size } => hex(*value as u64, *size),
        // A value blanked for --schema-only: its shape is all there is.
        Value::Bytes(b) if b.is_empty() && node.len > 0 => {
            format!("({}, {} bytes)", node.type_name, node.len)
        }
        Value::Bytes(b) if b.len() <= INLINE_BYTES => hex_bytes(b),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Text(t) => format!("{t:?}"),
        Value::Null => "nullptr".into(),
        Value::Struct(_) => "struct".into(),
        Value::Array(items) => format!("{} elements", items.len()),
    }
}

fn hex(value: u64, size: u8) -> String {
    format!("{value:#0width$x}", width = usize::from(size) * 2 + 2)
}

pub fn hex_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
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
