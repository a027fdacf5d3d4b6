//! migdiff decodes QEMU migration streams (savevm dumps) into a normalized device tree and
//! diffs two of them field by field.
//!
//! The pipeline, one module per stage, data flowing one way:
//!
//! 1. [`input`]: file, pipe or compressed container → stream bytes.
//! 2. [`vmdesc`]: the JSON description QEMU appends after the stream → [`Schema`].
//! 3. [`stream`] (with [`decode`], [`ram`] and [`iterative`]): stream bytes + schema → [`Dump`].
//! 4. [`diff`]: two dumps → typed [`Change`](diff::Change)s, each with its wire impact.
//! 5. [`compare`]: changes + ignores, allow rules, `--fail-on` → a
//!    [`Comparison`](compare::Comparison), which every output renders; [`check`] replays
//!    QEMU's loader instead, for a [`Verdict`](check::Verdict).
//! 6. [`render`] (with [`explain`] for what fields mean): a comparison and the two trees →
//!    unified diff, summary, JSON, JUnit, Markdown, HTML.
//!
//! ```
//! use migdiff::compare::{compare, Config};
//! use migdiff::diff::Load;
//!
//! let old = migdiff::stream::decode(&std::fs::read("testdata/pc72-qemu72.mig")?, None)?;
//! let new = migdiff::stream::decode(&std::fs::read("testdata/pc72-qemu10.mig")?, None)?;
//! let cmp = compare(&old, &new, &Config::default());
//! // QEMU 10.0 renamed hpet's num_timers: a schema change that changes nothing on the wire.
//! let rename = cmp.counted().find(|c| c.path == "num_timers_save").unwrap();
//! assert_eq!(rename.wire.forward, Load::Identical);
//! assert_eq!(cmp.counts.breaking, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod budget;
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
pub mod iterative;
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
