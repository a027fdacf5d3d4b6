//! Typed decode errors. Every error carries the absolute byte offset where it happened and,
//! once known, the section and field being decoded, so a message reads like
//! `truncated stream: need 4 bytes for be32, 2 left at byte 0x1a2b (6699) in section 'cpu' instance 0, field 'env.hflags'`.

use std::fmt;

/// A section of the stream, named the way QEMU's loader finds it: `(idstr, instance_id)`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub struct SectionRef {
    pub idstr: String,
    pub instance_id: u32,
}

impl fmt::Display for SectionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' instance {}", self.idstr, self.instance_id)
    }
}

/// Why decoding stopped, and where. Boxed, so that the `Result` of every small read stays
/// two words wide on the hot path; the details read through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseError(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// Absolute byte offset in the (decompressed) stream.
    pub offset: u64,
    /// The section being decoded, if any.
    pub section: Option<SectionRef>,
    /// Path of the field being decoded inside the section, if any.
    pub field: Option<String>,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The stream ended inside a value.
    Truncated {
        what: &'static str,
        need: u64,
        left: u64,
    },
    /// The first four bytes are not `QEVM`.
    BadMagic(u32),
    /// A stream version other than 3.
    UnsupportedVersion(u32),
    /// A top-level byte that is no section type QEMU writes.
    UnknownSectionType(u8),
    /// A PART/END section whose id was never opened by a START.
    UnknownSectionId(u32),
    /// A FULL or START section that the vmdesc does not describe.
    NoDescription,
    /// An iterative section migdiff has no parser for (its length is unknown, so it cannot be skipped).
    UnsupportedSection,
    /// A section footer (0x7e) with another section's id.
    FooterMismatch { expected: u32, found: u32 },
    /// The byte after a section's data is not a footer: the description and the stream disagree.
    MissingFooter {
        found: u8,
        last_field: Option<(String, u64)>,
    },
    /// A subsection the vmdesc lists is not next in the stream.
    MissingSubsection {
        expected: String,
        found: String,
        last_field: Option<(String, u64)>,
    },
    /// A struct decoded to a different length than the vmdesc `size` says.
    SizeMismatch { described: u64, decoded: u64 },
    /// A value that is not allowed where it stands (bad marker byte, RAM flag, ...).
    Invalid(String),
    /// The stream has no vmdesc trailer and no description was supplied.
    NoVmdesc,
    /// The vmdesc trailer is present but unusable.
    BadVmdesc(String),
    /// Structs or subsections nested deeper than migdiff follows.
    TooDeep,
    /// The input would make one decode build more than its budget allows (see `budget`).
    OverBudget { what: &'static str, limit: u64 },
    /// A feature of the stream that migdiff does not decode.
    Unsupported(String),
}

impl std::ops::Deref for ParseError {
    type Target = Details;
    fn deref(&self) -> &Details {
        &self.0
    }
}

impl ParseError {
    pub fn new(offset: u64, kind: ErrorKind) -> Self {
        ParseError(Box::new(Details {
            offset,
            section: None,
            field: None,
            kind,
        }))
    }

    /// The same error at another offset.
    pub fn at(mut self, offset: u64) -> Self {
        self.0.offset = offset;
        self
    }

    /// Attach the section, unless an inner decoder already did.
    pub fn in_section(mut self, section: &SectionRef) -> Self {
        if self.0.section.is_none() {
            self.0.section = Some(section.clone());
        }
        self
    }

    /// Attach the innermost field path, unless an inner decoder already did.
    pub fn in_field(mut self, path: &str) -> Self {
        if self.0.field.is_none() && !path.is_empty() {
            self.0.field = Some(path.to_string());
        }
        self
    }
}

fn write_last_field(f: &mut fmt::Formatter<'_>, last: &Option<(String, u64)>) -> fmt::Result {
    match last {
        Some((path, offset)) => write!(
            f,
            "; last field decoded: '{path}' at byte {offset:#x}: its vmdesc size is likely wrong"
        ),
        None => Ok(()),
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated { what, need, left } => {
                write!(f, "truncated stream: need {need} bytes for {what}, {left} left")
            }
            ErrorKind::BadMagic(m) => write!(
                f,
                "not a QEMU migration stream: magic {m:#010x}, expected 0x5145564d (\"QEVM\")"
            ),
            ErrorKind::UnsupportedVersion(2) => {
                write!(f, "stream version 2 is obsolete (QEMU rejects it too)")
            }
            ErrorKind::UnsupportedVersion(v) => {
                write!(f, "unsupported stream version {v}, expected 3")
            }
            ErrorKind::UnknownSectionType(t) => write!(f, "unknown section type {t:#04x}"),
            ErrorKind::UnknownSectionId(id) => {
                write!(f, "section id {id} continues a section that never started")
            }
            ErrorKind::NoDescription => write!(
                f,
                "section has no entry in the vmdesc, so its length is unknown"
            ),
            ErrorKind::UnsupportedSection => write!(
                f,
                "iterative section that migdiff cannot decode (it reads 'ram', 'spapr/htab', 's390-storage_attributes' and 'dirty-bitmap'), and its length is unknown"
            ),
            ErrorKind::FooterMismatch { expected, found } => write!(
                f,
                "section footer names section {found}, expected {expected}"
            ),
            ErrorKind::MissingFooter { found, last_field } => {
                write!(
                    f,
                    "desync: expected section footer 0x7e, found {found:#04x}"
                )?;
                write_last_field(f, last_field)
            }
            ErrorKind::MissingSubsection {
                expected,
                found,
                last_field,
            } => {
                write!(f, "desync: expected subsection '{expected}', found {found}")?;
                write_last_field(f, last_field)
            }
            ErrorKind::SizeMismatch { described, decoded } => write!(
                f,
                "desync: vmdesc says {described} bytes, fields decode to {decoded}"
            ),
            ErrorKind::Invalid(msg) => f.write_str(msg),
            ErrorKind::NoVmdesc => write!(
                f,
                "no vmdesc: the stream does not end with a JSON description \
                 (suppress-vmdesc=on, postcopy, or a truncated file); \
                 pass --desc FILE with a dump or vmdesc JSON of the same configuration"
            ),
            ErrorKind::BadVmdesc(msg) => write!(f, "bad vmdesc: {msg}"),
            ErrorKind::TooDeep => write!(f, "structs nested too deeply"),
            ErrorKind::OverBudget { what, limit } => write!(
                f,
                "the input asks for more than {limit} {what}, the work budget of one decode of \
                 an input this size: not a real dump"
            ),
            ErrorKind::Unsupported(msg) => write!(f, "unsupported: {msg}"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {:#x} ({})",
            self.kind, self.offset, self.offset
        )?;
        if let Some(section) = &self.section {
            write!(f, " in section {section}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field '{field}'")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_offset_section_and_field() {
        let err = ParseError::new(
            0x1a2b,
            ErrorKind::Truncated {
                what: "be32",
                need: 4,
                left: 2,
            },
        )
        .in_field("env.hflags")
        .in_section(&SectionRef {
            idstr: "cpu".into(),
            instance_id: 0,
        })
        .in_field("outer ignored");
        assert_eq!(
            err.to_string(),
            "truncated stream: need 4 bytes for be32, 2 left at byte 0x1a2b (6699) \
             in section 'cpu' instance 0, field 'env.hflags'"
        );
    }
}
