//! migdiff decodes QEMU migration streams (savevm dumps) into a normalized device tree and
//! diffs two of them field by field.
//!
//! The pipeline, one module per stage, data flowing one way:
//!
//! 1. input (with qcow2): file, pipe, compressed container or qcow2 internal snapshot →
//!    stream bytes ([`Input`]).
//! 2. vmdesc: the JSON description QEMU appends after the stream → [`Schema`].
//! 3. stream (with decode, ram and iterative): stream bytes + schema → [`Dump`]
//!    ([`decode`]).
//! 4. diff: two dumps → typed [`Change`]s, each with its [`Wire`] impact.
//! 5. compare: changes + ignores, allow rules, [`FailOn`] → a [`Comparison`], which every
//!    output renders ([`compare`]), each change with what it means (explain); [`check`]
//!    replays QEMU's loader instead, for a [`Verdict`].
//! 6. render (with explain for the `# ...` of a line): a comparison and the two trees →
//!    unified diff, summary, JSON, JUnit, Markdown, HTML ([`write_tree`], [`write_summary`]).
//!
//! The library is what this page lists; the stages are private. Build it without the
//! command line's dependencies (clap, indicatif, rayon, ...) with
//! `default-features = false`.
//!
//! Load two dumps (any input the command line takes: a stream, gzip or zstd, a libvirt save
//! image, a migdiff export) and compare them:
//!
//! ```
//! use migdiff::{compare, load, Config, Load};
//!
//! let old = load("testdata/pc72-qemu72.mig")?;
//! let new = load("testdata/pc72-qemu10.mig")?;
//! let cmp = compare(&old, &new, &Config::default());
//! // QEMU 10.0 renamed hpet's num_timers: a schema change that changes nothing on the wire.
//! let rename = cmp.counted().find(|c| c.path == "num_timers_save").unwrap();
//! assert_eq!(rename.wire.forward, Load::Identical);
//! assert_eq!(cmp.counts.breaking, 0);
//! # Ok::<(), migdiff::LoadError>(())
//! ```
//!
//! Would the destination that made one dump load another? (See [`check`].)
//!
//! ```
//! use migdiff::{check, load, Answer, Destination};
//!
//! let src = load("testdata/pc10-smp2.mig")?;
//! let dst = load("testdata/pc10-stopped.mig")?;
//! let mut destination = Destination::default();
//! destination.dump = Some(&dst);
//! let verdict = check(&src, destination);
//! assert_eq!(verdict.answer, Answer::Refused);
//! // QEMU's own words: the second CPU has nowhere to go.
//! assert!(verdict.reasons[0].message.contains("Unknown savevm section or instance"));
//! # Ok::<(), migdiff::LoadError>(())
//! ```

// Without the command line, the renderers and side-file readers only it calls (JUnit,
// Markdown, HTML, ignore and allow files) are compiled but unused: not part of the API.
#![cfg_attr(not(feature = "cli"), allow(dead_code))]

use std::io::{self, Write};
use std::path::Path;

mod budget;
// The commands that run QEMU (`capture`, `gate`): a QMP client, a capture, and the per
// machine type verdicts of a gate.
#[cfg(feature = "cli")]
mod capture;
mod check;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod compare;
mod decode;
mod diff;
mod error;
mod explain;
mod export;
mod filter;
mod gate;
mod hex;
mod input;
#[cfg(feature = "cli")]
mod inputs;
mod iterative;
#[cfg(feature = "cli")]
mod matrix;
mod qcow2;
#[cfg(feature = "cli")]
mod qemu_cmds;
#[cfg(feature = "cli")]
mod qmp;
mod ram;
mod reader;
mod render;
mod stream;
mod strip;
mod tree;
mod vmdesc;
mod vmstate_dump;

pub use check::{check, Answer, Destination, Reason, Severity, Verdict};
pub use compare::{compare, Comparison, Config, Counts, Disposition, FailOn, Finding, StaleRule};
pub use diff::{Change, ChangeClass, ChangeKind, Leaf, Load, PageCount, Shape, Wire};
pub use error::{ErrorKind, ParseError, SectionRef};
pub use export::{read as read_export, Export, ReadError as ExportError, Source};
pub use filter::{Filter, PatternError, DEFAULT_IGNORES};
pub use gate::{AllowError, AllowList, AllowRule};
pub use input::{Budget, Container, Input};
pub use stream::{decode, schema_of};
pub use strip::{strip, StripError, Stripped, DEFAULT_KEEP};
pub use tree::{
    ClassFile, Device, Dump, Node, RamBlock, Scalars, StreamInfo, Struct, Value, NOT_SENT, UNKNOWN,
};
pub use vmdesc::Schema;

/// Why [`load`] could not give a dump.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read, or is not a stream, container or JSON migdiff knows.
    Io(io::Error),
    /// The stream is damaged or not one migdiff decodes.
    Parse(ParseError),
    /// JSON, but not a readable migdiff export.
    Export(ExportError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "{e}"),
            LoadError::Parse(e) => write!(f, "{e}"),
            LoadError::Export(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io(e) => Some(e),
            LoadError::Parse(e) => Some(e),
            LoadError::Export(e) => Some(e),
        }
    }
}

/// Reads and decodes one dump: a path, `-` for standard input or `file:PATH,offset=N`,
/// holding a stream (raw, gzip, zstd or in a libvirt save image, see [`Input`]) with its
/// own vmdesc, or a migdiff [`Export`]. For a stream without a vmdesc, open it with
/// [`Input::open`] and [`decode`] it with a [`Schema`] from [`schema_of`].
///
/// ```
/// let dump = migdiff::load("testdata/pc10-stopped.mig.gz")?;
/// assert_eq!(dump.machine.as_deref(), Some("pc-i440fx-10.0"));
/// assert!(dump.devices.iter().any(|d| d.idstr == "cpu"));
/// # Ok::<(), migdiff::LoadError>(())
/// ```
pub fn load(path: impl AsRef<Path>) -> Result<Dump, LoadError> {
    let input = Input::open(path.as_ref()).map_err(LoadError::Io)?;
    let data = input.stream();
    if export::is_json(data) {
        return Ok(export::read(data).map_err(LoadError::Export)?.dump);
    }
    decode(data, None).map_err(LoadError::Parse)
}

/// Writes the decoded tree of `dump` as `migdiff show` prints it: one field per line,
/// integers in hex padded to their size, long buffers as 16-byte rows with offsets. The
/// text two dumps' diff is made of.
///
/// ```
/// let dump = migdiff::load("testdata/pc10-stopped.mig")?;
/// let mut text = Vec::new();
/// migdiff::write_tree(&mut text, &dump)?;
/// let text = String::from_utf8(text)?;
/// assert!(text.lines().any(|l| l.starts_with("[cpu (0)]")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_tree(w: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    let mut result = Ok(());
    render::document::write_document(dump, render::document::View::all(), &mut |line| {
        if result.is_ok() {
            result = writeln!(w, "{line}");
        }
    });
    result
}

/// Writes what `migdiff --format summary` prints: differences counted per device, and the
/// verdict.
///
/// ```
/// use migdiff::{compare, load, Config};
///
/// let old = load("testdata/pc10-stopped.mig")?;
/// let new = load("testdata/pc10-smp2.mig")?;
/// let mut config = Config::default();
/// config.filter = migdiff::Filter::new(migdiff::DEFAULT_IGNORES)?;
/// let mut text = Vec::new();
/// migdiff::write_summary(&mut text, &compare(&old, &new, &config))?;
/// let text = String::from_utf8(text)?;
/// assert!(text.ends_with("7 differences: 3 device presence, 1 value, 3 RAM; 4 ignored\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_summary(w: &mut dyn Write, cmp: &Comparison) -> io::Result<()> {
    render::report::write_summary(w, cmp, render::Style::default())
}
