//! Inputs: a path to a decoded dump (stream, compressed stream, libvirt image, export or
//! `-dump-vmstate` JSON), with what reports say about it, and output files; and what the
//! command line says on stderr while it reads them (notes, warnings, progress), which
//! `--quiet` silences. The commands in `cli.rs` take their trees from here.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::export::{is_json, json_kind, Export, JsonKind};
use crate::input::{Container, Input};
use crate::render::report::InputInfo;
use crate::{stream, Dump, Schema};

/// The description given with `--desc`: a vmdesc JSON, or another dump's.
pub fn load_desc(path: Option<&Path>) -> Result<Option<Schema>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let input = Input::open(path).with_context(|| format!("reading {}", path.display()))?;
    let data = input.stream();
    let schema = if is_json(data) {
        crate::vmdesc::parse(data, 0)
    } else {
        stream::schema_of(data)
    };
    schema
        .map(Some)
        .with_context(|| format!("{}: taking the description", path.display()))
}

/// One decoded input, and how to describe it.
pub struct Loaded {
    pub dump: Dump,
    pub info: InputInfo,
    /// The stream's bytes and container, kept for exports.
    pub input: Input,
}

/// What a caller needs from an input beyond the decoded dump.
#[derive(Clone, Copy, Default)]
pub struct LoadOptions {
    /// Accept `-dump-vmstate` JSON (it has no values).
    pub schema: bool,
    /// Compute the stream's SHA-256 (reads every byte again).
    pub hash: bool,
}

/// Inputs at least this large get a progress bar (on a terminal only).
const PROGRESS_THRESHOLD: usize = 256 << 20;

/// What migdiff says on stderr besides errors: notes, warnings and progress bars, all of
/// them silenced by `--quiet`. Errors are not said here: `main` prints them, quiet or not.
pub struct Stderr {
    quiet: bool,
    bars: MultiProgress,
}

impl Stderr {
    pub fn new(quiet: bool) -> Stderr {
        let bars = if quiet {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        };
        Stderr { quiet, bars }
    }

    pub fn note(&self, message: &str) {
        if !self.quiet {
            self.bars.suspend(|| eprintln!("migdiff: note: {message}"));
        }
    }

    pub fn warn(&self, message: &str) {
        if !self.quiet {
            self.bars
                .suspend(|| eprintln!("migdiff: warning: {message}"));
        }
    }

    /// A progress bar for decoding `name`, drawn when stderr is a terminal and the input
    /// is large; never in pipes, CI logs or with `--quiet`.
    fn progress_bar(&self, name: &str, len: usize) -> Option<ProgressBar> {
        if self.quiet || len < PROGRESS_THRESHOLD || !io::stderr().is_terminal() {
            return None;
        }
        let style = ProgressStyle::with_template(
            "{msg:30!} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .ok()?;
        let bar = self.bars.add(
            ProgressBar::new(len as u64)
                .with_style(style)
                .with_message(name.to_string()),
        );
        Some(bar)
    }
}

pub fn load(
    path: &Path,
    desc: Option<&Schema>,
    opts: LoadOptions,
    stderr: &Stderr,
) -> Result<Loaded> {
    let name = path.display().to_string();
    let input = Input::open(path).with_context(|| format!("reading {name}"))?;
    let data = input.stream();
    let (dump, container) = if is_json(data) {
        load_json(data, &name, opts)?
    } else {
        let bar = stderr.progress_bar(&name, data.len());
        let mut advance = |offset: u64| {
            // What is decoded is not read again: keep it out of our resident set.
            input.release(offset);
            if let Some(bar) = &bar {
                bar.set_position(offset);
            }
        };
        let decoded = stream::decode_with_progress(data, desc, &mut advance);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let dump = decoded.with_context(|| match &input.container {
            Container::Raw => name.clone(),
            container => format!("{name} ({container}; offsets count from the stream's start)"),
        })?;
        if input.container != Container::Raw {
            stderr.note(&format!("{name}: {}", input.container));
        }
        (dump, input.container.to_string())
    };
    for w in &dump.warnings {
        let section = w
            .section
            .as_ref()
            .map(|s| format!(" in section {s}"))
            .unwrap_or_default();
        stderr.warn(&format!(
            "{name}: at byte {:#x}{section}: {}",
            w.offset, w.message
        ));
    }
    let info = InputInfo {
        path: name,
        size: data.len() as u64,
        machine: dump.machine.clone(),
        devices: dump.devices.len(),
        vmdesc_bytes: dump.stream.vmdesc_len,
        container,
        sha256: opts.hash.then(|| crate::export::sha256_hex(data)),
    };
    Ok(Loaded { dump, info, input })
}

/// How a `-dump-vmstate` input is described (and recognized) once loaded.
pub const VMSTATE_CONTAINER: &str = "-dump-vmstate description";

/// A JSON input: an export (a dump), or with `--schema-only` a `-dump-vmstate` file.
pub fn load_json(data: &[u8], name: &str, opts: LoadOptions) -> Result<(Dump, String)> {
    let kind = json_kind(data)
        .with_context(|| format!("{name}: not a migration stream, and not valid JSON"))?;
    match kind {
        JsonKind::Export => {
            // Straight into the tree: a generic JSON value first took 25 times the file's
            // size in memory.
            let export =
                crate::export::read(data).with_context(|| format!("{name}: bad migdiff export"))?;
            let container = format!("migdiff export of {}", export.source.path);
            Ok((export.dump, container))
        }
        JsonKind::DumpVmstate if opts.schema => {
            let json: serde_json::Value = serde_json::from_slice(data)
                .with_context(|| format!("{name}: bad -dump-vmstate file"))?;
            let dump = crate::vmstate_dump::dump_from_vmstate(&json)
                .map_err(|e| anyhow::anyhow!("{name}: bad -dump-vmstate file: {e}"))?;
            Ok((dump, VMSTATE_CONTAINER.into()))
        }
        JsonKind::DumpVmstate => {
            anyhow::bail!("{name} is -dump-vmstate output: it has descriptions but no state; compare two of them with --schema-only")
        }
        JsonKind::Vmdesc => {
            anyhow::bail!("{name} is a vmdesc (a description without state): pass it with --desc for a dump that lacks one")
        }
        JsonKind::Unknown => {
            anyhow::bail!("{name}: JSON, but not a migdiff export or -dump-vmstate file")
        }
    }
}

/// Where `-o FILE` sends a command's output: FILE, or standard output for `-` or no `-o`
/// (as for inputs, `-` is never a file name; write `./-` for a file called `-`).
pub fn output(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) if p != Path::new("-") => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        _ => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

pub fn export_of(loaded: Loaded) -> Export {
    if let Some(container) = loaded.info.container.strip_prefix("migdiff export of ") {
        // Re-exporting an export keeps the original source.
        let mut export = Export::new(
            loaded.dump,
            &loaded.info.path,
            loaded.input.stream(),
            String::new(),
        );
        export.source.container = format!("migdiff export of {container}");
        return export;
    }
    Export::new(
        loaded.dump,
        &loaded.info.path,
        loaded.input.stream(),
        loaded.info.container,
    )
}
