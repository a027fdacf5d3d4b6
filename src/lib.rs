//! migdiff decodes QEMU migration streams (savevm dumps) into a normalized device tree and
//! diffs two of them field by field.
//!
//! The pipeline, one module per stage, data flowing one way:
//!
//! 1. [`input`]: file, pipe or compressed container → stream bytes.
//! 2. [`vmdesc`]: the JSON description QEMU appends after the stream → [`Schema`].
//! 3. [`stream`] (with [`decode`] and [`ram`]): stream bytes + schema → [`Dump`].
//! 4. [`diff`]: two dumps → a list of [`Change`](diff::Change)s.
//! 5. [`render`]: dumps and changes → text, unified diff, JSON.
//!
//! ```no_run
//! let old = migdiff::stream::decode(&std::fs::read("old.mig")?, None)?;
//! let new = migdiff::stream::decode(&std::fs::read("new.mig")?, None)?;
//! let changes = migdiff::diff::diff_dumps(&old, &new);
//! println!("{} differences", changes.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod check;
pub mod compare;
pub mod decode;
pub mod diff;
pub mod error;
pub mod explain;
pub mod export;
pub mod filter;
pub mod gate;
mod hex;
pub mod input;
pub mod ram;
pub mod reader;
pub mod render;
pub mod stream;
pub mod tree;
pub mod vmdesc;
pub mod vmstate_dump;

pub use error::{ErrorKind, ParseError, SectionRef};
pub use tree::{Device, Dump, Node, Scalars, Struct, Value};
pub use vmdesc::Schema;
