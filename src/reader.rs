//! The only code that touches raw stream bytes. Every read is bounds-checked and returns a
//! `Result`; offsets are absolute within the input, so errors point at the real byte.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use crate::error::{ErrorKind, ParseError};

#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn peek_u8(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub fn error(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(self.offset(), kind)
    }

    /// Borrow the next `n` bytes (zero copy).
    pub fn bytes(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], ParseError> {
        let slice = usize::try_from(n)
            .ok()
            .and_then(|n| self.data.get(self.pos..self.pos.checked_add(n)?));
        match slice {
            Some(s) => {
                self.pos += s.len();
                Ok(s)
            }
            None => Err(self.error(ErrorKind::Truncated {
                what,
                need: n,
                left: self.remaining() as u64,
            })),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N as u64, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn be16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn be32(&mut self, what: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn be64(&mut self, what: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A QEMU counted string: `u8 len` then `len` bytes, no NUL. Lengths are unsigned (up to 255).
    pub fn counted_str(&mut self, what: &'static str) -> Result<String, ParseError> {
        let len = self.u8(what)?;
        let bytes = self.bytes(u64::from(len), what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_tracks_offset() {
        let data = [1, 0, 2, 0, 0, 0, 3, 2, b'h', b'i'];
        let mut r = Reader::new(&data);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.be16("b").unwrap(), 2);
        assert_eq!(r.be32("c").unwrap(), 3);
        assert_eq!(r.offset(), 7);
        assert_eq!(r.counted_str("d").unwrap(), "hi");
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_read_reports_offset_and_need() {
        let data = [0, 0, 0, 0, 0, 0];
        let mut r = Reader::new(&data);
        r.bytes(4, "x").unwrap();
        let err = r.be32("be32").unwrap_err();
        assert_eq!(err.offset, 4);
        assert_eq!(
            err.kind.clone(),
            ErrorKind::Truncated {
                what: "be32",
                need: 4,
                left: 2
            }
        );
        // A failed read consumes nothing.
        assert_eq!(r.offset(), 4);
    }

    #[test]
    fn huge_length_is_an_error_not_a_panic() {
        let mut r = Reader::new(&[0u8; 3]);
        assert!(r.bytes(u64::MAX, "blob").is_err());
    }
}
