//! Command-line arguments (clap), turned into each command's configuration, and the
//! renderer each output format picks. No clap type leaves this file; inputs are loaded in
//! `inputs.rs`, compared and checked by the library. Built with the `cli` feature only.
//!
//! A subcommand is a variant of `Command`, its `Args` struct and one function taking them
//! and the `Global` options; `run` dispatches.

use std::collections::HashSet;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::inputs::{
    export_of, load, load_desc, output, LoadOptions, Loaded, Stderr, VMSTATE_CONTAINER,
};

use crate::check::{Answer, Destination, Severity};
use crate::compare::{compare, schema_trees, Comparison, Config, FailOn};
use crate::export::{is_json, write_json};
use crate::filter::{parse_pattern_file, Filter, DEFAULT_IGNORES};
use crate::gate::AllowList;
use crate::input::Input;
use crate::qemu_cmds::{CaptureConfig, CaptureSource, GateConfig};
use crate::render::attachment::{markdown, write_html, Report, COMMENT_LIMIT};
use crate::render::document::{document, one_sided, write_document, View};
use crate::render::junit::write_junit;
use crate::render::report::{self, DiffDocument};
use crate::render::unified::{unified_hunks, write_unified, Hunk, Labels};
use crate::render::Style;

/// What the process reports, as diff(1) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Outcome {
    Same = 0,
    Different = 1,
    /// `check` only: nothing refuses the stream, but not everything could be checked.
    Undecided = 3,
}

const EXAMPLES: &str = "\
Examples:
  Make a dump from a QEMU monitor (stopped guest, any machine type):
    (qemu) migrate \"exec:cat > old.mig\"

  What changed between two dumps:
    migdiff old.mig new.mig

  CI gate: only the verdict and counts, exit status 1 on any difference:
    migdiff --format summary old.mig new.mig

  Machine-readable differences:
    migdiff --format json old.mig new.mig | jq '.changes[] | select(.class == \"schema\")'

  Ignore a field of every CPU, and a whole device:
    migdiff --ignore 'cpu (*)/env.tsc' --ignore 'hpet (0)/*' old.mig new.mig

  The decoded state of one dump (the text both sides of a diff are made from):
    migdiff show old.mig

  Gate a QEMU update: fail only on differences not listed in the allow file:
    migdiff --allow expected.allow --strict --format junit old.mig new.mig > junit.xml

  Compare two machine types' device classes without booting (qemu -dump-vmstate FILE):
    migdiff --schema-only vmstate-old.json vmstate-new.json

  Would a QEMU 10 destination accept this stream? (its own dump and its -dump-vmstate;
  exit 0 loads, 1 refused, 3 not decided)
    migdiff check src.mig --against dst.mig --against dst-vmstate.json

  Attach to a bug report (no RAM contents; device state, registers included, in full;
  see `migdiff export --help`):
    migdiff export guest.mig -o guest-state.json
    migdiff report old.mig new.mig --html -o report.html

  Only the exit status, as `cmp -s` (errors are still printed):
    migdiff --quiet old.mig new.mig && echo same

Exit status: 0 no differences, 1 differences, 2 trouble (unreadable or corrupt input);
`check`: 0 loads, 1 refused, 3 not decided, 2 trouble.";

/// Decode two QEMU migration streams (savevm dumps) and show, field by field, how the device
/// state in one differs from the other.
///
/// Both dumps are decoded in parallel using the JSON description (vmdesc) QEMU appends to
/// every stream. Devices are matched by (idstr, instance id), fields by name; schema changes
/// (fields added, removed, renamed or resized, section versions) are listed above the diff,
/// value changes are the hunks of a unified diff of the two decoded trees.
#[derive(Parser, Debug)]
#[command(
    name = "migdiff",
    version,
    about = "Diff the device state of two QEMU migration streams, field by field",
    long_about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    diff: DiffArgs,
    #[command(flatten)]
    global: GlobalArgs,
}

/// Options every command takes.
#[derive(Args, Debug)]
struct GlobalArgs {
    /// Say nothing on stderr but errors: no notes, warnings or progress. The diff and
    /// `check` also print nothing on stdout and answer by exit status alone (as `cmp -s`);
    /// commands whose output is the point (show, export, report) still write it.
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// What every command is run with besides its own arguments.
struct Global {
    quiet: bool,
    stderr: Stderr,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the decoded device tree of one dump.
    ///
    /// The text form is the one `migdiff OLD NEW` diffs: one field per line, integers in
    /// hex padded to their size, long buffers as 16-byte rows with offsets.
    Show(ShowArgs),
    /// Write one dump's decoded state as JSON, for a bug report.
    ///
    /// What an export holds: every device's state in full, as it travelled, which includes
    /// CPU registers (general-purpose, control, segment, FPU/SSE/AVX, MSRs such as the
    /// TSC and the kernel's GS base), device buffers and FIFOs, keyboard and mouse queues
    /// (recent keystrokes), serial and USB buffers, virtio blobs (queue addresses and
    /// indices, the network card's MAC address), PCI config space, the VM's UUID and the
    /// machine type; the stream's size and sha256 and the input's path. Guest RAM is
    /// present only as a 64-bit digest per page, never a byte of its contents. With
    /// --redact, every value is withheld (see there). migdiff accepts an export wherever
    /// it accepts a dump.
    Export(ExportArgs),
    /// Write a self-contained comparison report (Markdown, or HTML with --html).
    ///
    /// Holds migdiff's version, both inputs (name, size, sha256, machine type, vmdesc size),
    /// the differences by device, the notes and the full diff. No guest memory.
    Report(ReportArgs),
    /// Would the destination load this stream? Replays QEMU's loader over it.
    ///
    /// Walks SRC section by section as the destination's loader would, against DST: a dump
    /// made by the destination QEMU with the same configuration (exact sections, instances,
    /// RAM blocks and field layouts), its `-M TYPE -dump-vmstate` JSON (every class with
    /// field versions, subsections and minimum versions, but no RAM and no instances), or
    /// both. Refusals carry QEMU's own wording and the field that causes them.
    /// Exit 0: it would load; 1: it would be refused; 3: not decided (nothing refuses it,
    /// but something the descriptions cannot show could; the reasons say what); 2: trouble.
    Check(CheckArgs),
    /// Write the same stream with every RAM page sent as a zero page: no guest memory.
    ///
    /// The header, configuration, device sections, commands and vmdesc are copied byte for
    /// byte, so QEMU still loads the result (`-incoming "exec:cat OUT"`) and reports the
    /// same load errors, and migdiff and analyze-migration.py decode the same device state.
    /// Only RAM contents are gone (RAM block names and sizes stay). Device state can hold
    /// secrets of its own (registers, buffers): see `export`. Writes a plain stream, also for
    /// a compressed input or a libvirt save image.
    Strip(StripArgs),
    /// Make a dump: migrate a QEMU's state into a file over QMP and wait for it to complete.
    ///
    /// Either starts QEMU (`-- QEMU ARGS...`) with a private QMP socket, stopped (`-S`)
    /// unless --run, and quits it afterwards; or attaches to a running VM's QMP socket
    /// (--qmp) and resumes the guest afterwards, since a completed migration leaves it
    /// paused. OUT.json records QEMU's version, the command line and the run state.
    Capture(CaptureArgs),
    /// Gate a QEMU update: every machine type two QEMU binaries share, loaded both ways.
    ///
    /// Every versioned machine type both binaries offer is dumped by each (stopped,
    /// `-nodefaults -m 32 -accel tcg`) with its `-dump-vmstate`, compared, and replayed into
    /// the other's loader both ways.
    ///
    /// Prints a matrix (machine type x forward/backward: loads, REFUSED, not decided; and
    /// the differences no allow rule expects). Differences identical on the wire do not
    /// fail. Exit 0: all pass; 1: a refusal or an unexpected difference (or, with --strict,
    /// a stale allow rule); 2: trouble (a dump could not be made or read).
    Gate(GateArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `migdiff completions bash > ~/.local/share/bash-completion/completions/migdiff`;
    /// zsh: `migdiff completions zsh > ~/.zfunc/_migdiff` (with `fpath+=~/.zfunc` before
    /// `compinit`); fish: `migdiff completions fish > ~/.config/fish/completions/migdiff.fish`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout.
    ///
    /// Install it with `migdiff man > ~/.local/share/man/man1/migdiff.1`.
    Man,
}

#[derive(Args, Debug)]
struct StripArgs {
    /// The dump to strip.
    file: PathBuf,
    /// Where to write the stripped stream (`-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Also keep the pages PATTERN covers (repeatable), in the ignore syntax: `ram/BLOCK`
    /// for a whole RAM block, `ram/BLOCK@0x0-0xfff` for some bytes of it.
    #[arg(long, value_name = "PATTERN")]
    keep: Vec<String>,
    /// Zero the pages kept by default too: x86's ROM window `ram/pc.ram@0xc0000-0xfffff`
    /// (BIOS and option-ROM copies; QEMU's kvmvapic reads it when loading).
    #[arg(long)]
    no_default_keep: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct CaptureArgs {
    /// Where to write the dump; OUT.json beside it records how it was made.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Capture the running VM behind this QMP socket (`-qmp unix:SOCKET,server=on,wait=off`)
    /// instead of starting QEMU.
    #[arg(long, value_name = "SOCKET", conflicts_with_all = ["run", "qemu"])]
    qmp: Option<PathBuf>,
    /// With --qmp: leave the guest paused (postmigrate) after the migration.
    #[arg(long, requires = "qmp")]
    leave_paused: bool,
    /// Let the guest run for SECONDS before migrating (default: stopped with -S, the least
    /// noise).
    #[arg(long, value_name = "SECONDS")]
    run: Option<f64>,
    /// Seconds to wait for QEMU's QMP socket, and for the migration to complete.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// The QEMU binary and its arguments, after `--`.
    #[arg(last = true, value_name = "QEMU ARGS")]
    qemu: Vec<String>,
}

#[derive(Args, Debug)]
struct GateArgs {
    /// The QEMU binary before the update.
    #[arg(long, value_name = "QEMU", requires = "new")]
    old: Option<String>,
    /// The QEMU binary after the update.
    #[arg(long, value_name = "QEMU", requires = "old")]
    new: Option<String>,
    /// Only the machine types matching GLOB (repeatable, or comma-separated), e.g.
    /// 'pc-q35-*'.
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    machines: Vec<String>,
    /// More QEMU arguments for every dump, split at spaces, e.g. '-device e1000'.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    devices: Option<String>,
    /// Expected differences; `[GLOB]` lines scope the rules below them to machine types.
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// Allow rules that allowed nothing fail the gate too.
    #[arg(long, requires = "allow")]
    strict: bool,
    /// Differences identical on the wire (renames, same-size retypes) fail too.
    #[arg(long)]
    fail_on_identical: bool,
    /// Dumps made at the same time (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Write a JUnit report: per machine type, forward, backward and differences.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the matrix as Markdown, or HTML when FILE ends in .html.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Keep the dumps in DIR as TYPE-old.mig and TYPE-new.mig (with their .json) and the
    /// classes as TYPE-old.vmstate.json and TYPE-new.vmstate.json, and reuse those already
    /// there. Without --old and --new, gate the pairs DIR holds.
    #[arg(long, value_name = "DIR", required_unless_present = "old")]
    dumps: Option<PathBuf>,
    /// Seconds to wait for each QEMU and each migration.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// When to colour the matrix.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The stream to be migrated (a dump or an export).
    src: PathBuf,
    /// The destination: a dump it made (same machine type and devices), and/or its
    /// `-M TYPE -dump-vmstate` JSON; give both for the most decided answer.
    #[arg(long, value_name = "DST", required = true)]
    against: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    format: ShowFormat,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The dump to decode (a file written by `migrate "exec:cat > FILE"` or `file:FILE`;
    /// `-` reads standard input).
    file: PathBuf,
    /// Output format (`json` is the export format, indented as an export is).
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    format: ShowFormat,
    #[command(flatten)]
    json: JsonArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The dump to export.
    file: PathBuf,
    /// Where to write the JSON (default, or `-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArgs,
    #[command(flatten)]
    common: CommonArgs,
}

/// How an export's JSON is laid out.
#[derive(Args, Debug)]
struct JsonArgs {
    /// One line instead of indented JSON (for programs; about half the time and size).
    #[arg(long)]
    compact: bool,
}

impl JsonArgs {
    fn write(&self, out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
        Ok(write_json(out, value, self.compact)?)
    }
}

#[derive(Args, Debug)]
struct ReportArgs {
    #[command(flatten)]
    compare: CompareArgs,
    /// One HTML file (no external assets) instead of Markdown.
    #[arg(long)]
    html: bool,
    /// Where to write the report (default, or `-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Lines of context around each change in the diff.
    #[arg(short = 'U', long = "unified", value_name = "N", default_value_t = 3)]
    context: usize,
    /// Devices on one side only in full, every field, instead of a summary line each.
    #[arg(long)]
    full: bool,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Description (vmdesc) for dumps that have none (suppress-vmdesc=on, postcopy): another
    /// dump of the same configuration, or a vmdesc JSON. Dumps with their own ignore it.
    #[arg(long, value_name = "FILE")]
    desc: Option<PathBuf>,
}

/// What to compare and which differences count: shared by the diff and `report`.
#[derive(Args, Debug)]
struct CompareArgs {
    /// The reference: a dump, an export, or (with --schema-only) -dump-vmstate JSON.
    #[arg(value_name = "OLD", required = true)]
    old: Option<PathBuf>,
    /// What is compared with it.
    #[arg(value_name = "NEW", required = true)]
    new: Option<PathBuf>,
    /// Ignore differences whose path matches PATTERN (repeatable). Paths are matched as
    /// printed, `DEVICE (INSTANCE)/FIELD`; `*` matches anything, `/` included; brackets are
    /// literal; `@0x0-0x9` limits a pattern to those bytes of a buffer.
    /// Example: 'cpu (*)/env.tsc'.
    #[arg(long, value_name = "PATTERN")]
    ignore: Vec<String>,
    /// Read more ignore patterns from FILE, one per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    ignore_file: Vec<PathBuf>,
    /// Do not ignore the built-in noise (RTC clock fields that differ between two dumps of
    /// the same stopped VM).
    #[arg(long)]
    no_default_ignores: bool,
    /// Expected differences (CI gate): one rule per line, `PATTERN [= OLD -> NEW] [# reason]`.
    /// Allowed differences do not fail; exit 0 when all are allowed. Rules that allow
    /// nothing are reported as stale.
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// With --allow: stale rules fail the gate too.
    #[arg(long, requires = "allow")]
    strict: bool,
    /// Compare only the descriptions: device versions, field names, types, sizes, array
    /// lengths and subsections, not values. Also reads two `-dump-vmstate` files.
    #[arg(long)]
    schema_only: bool,
    /// Which differences fail (exit 1): `any` difference, or only `breaking` ones, those
    /// that break forward migration (OLD's stream into NEW's QEMU); the rest are counted
    /// as not breaking, and those that might break are listed. Default: `breaking` with
    /// --schema-only, else `any`.
    #[arg(long, value_enum, value_name = "WHICH")]
    fail_on: Option<FailOnArg>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct DiffArgs {
    #[command(flatten)]
    compare: CompareArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Unified)]
    format: DiffFormat,
    /// Lines of context around each change in the unified diff.
    #[arg(short = 'U', long = "unified", value_name = "N", default_value_t = 3)]
    context: usize,
    /// Devices on one side only in full, every field, instead of a summary line each.
    #[arg(long)]
    full: bool,
    /// When to colour the output. `auto`: only on a terminal, and never when NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DiffFormat {
    /// A unified diff of the decoded trees, with schema and device notes above it.
    Unified,
    /// Counts per device and a one-line verdict.
    Summary,
    /// Every difference as JSON (schema in README.md).
    Json,
    /// JUnit XML for CI systems: one test case per device.
    Junit,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FailOnArg {
    /// Every difference not ignored or allowed.
    Any,
    /// Only differences that break loading OLD's stream into NEW's QEMU.
    Breaking,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ShowFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn style(self) -> Style {
        let color = match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => auto_color(
                io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("TERM").as_deref(),
            ),
        };
        Style { color }
    }
}

/// Colour on a terminal, unless NO_COLOR is set to anything non-empty (no-color.org) or
/// the terminal is dumb.
fn auto_color(
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

/// Parses the command line and runs the command it names.
#[doc(hidden)]
pub fn run() -> Result<Outcome> {
    if let Some(first) = std::env::args_os().nth(1) {
        check_not_misspelt(&first)?;
    }
    let cli = Cli::parse();
    let global = Global {
        quiet: cli.global.quiet,
        stderr: Stderr::new(cli.global.quiet),
    };
    match cli.command {
        Some(Command::Show(args)) => show(&args, &global),
        Some(Command::Export(args)) => export(&args, &global),
        Some(Command::Report(args)) => report(&args, &global),
        Some(Command::Check(args)) => check(&args, &global),
        Some(Command::Strip(args)) => strip(&args, &global),
        Some(Command::Capture(args)) => crate::qemu_cmds::capture(&capture_config(args)?),
        Some(Command::Gate(args)) => crate::qemu_cmds::gate(&gate_config(args)),
        Some(Command::Completions(args)) => completions(&args),
        Some(Command::Man) => man(),
        None => diff(&cli.diff, &global),
    }
}

fn capture_config(args: CaptureArgs) -> Result<CaptureConfig> {
    let source = match args.qmp {
        Some(socket) => CaptureSource::Attach {
            socket,
            leave_paused: args.leave_paused,
        },
        None if args.qemu.is_empty() => {
            anyhow::bail!("nothing to capture: give -- QEMU ARGS... or --qmp SOCKET (see --help)")
        }
        None => CaptureSource::Start {
            command: args.qemu,
            run: match args.run {
                Some(s) if !(0.0..=86400.0).contains(&s) => {
                    anyhow::bail!("--run {s}: give 0 to 86400 seconds")
                }
                run => run.map(Duration::from_secs_f64),
            },
        },
    };
    Ok(CaptureConfig {
        source,
        output: args.output,
        timeout: Duration::from_secs(args.timeout),
    })
}

fn gate_config(args: GateArgs) -> GateConfig {
    GateConfig {
        qemus: args.old.zip(args.new),
        machines: args.machines,
        devices: args
            .devices
            .map(|d| d.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        allow: args.allow,
        strict: args.strict,
        fail_on_identical: args.fail_on_identical,
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }),
        junit: args.junit,
        report: args.report,
        dumps: args.dumps,
        timeout: Duration::from_secs(args.timeout),
        style: args.color.style(),
    }
}

/// `migdiff shwo x.mig` is a diff of a file `shwo` with `x.mig` to clap; when there is no
/// file `shwo` and a subcommand is a letter or two away, say so instead of "reading shwo:
/// No such file".
fn check_not_misspelt(first: &std::ffi::OsStr) -> Result<()> {
    let Some(word) = first.to_str() else {
        return Ok(());
    };
    if word.starts_with('-') || word.contains(['/', ':', '.']) || Path::new(word).exists() {
        return Ok(());
    }
    let cli = Cli::command();
    let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
    if names.contains(&word) {
        return Ok(());
    }
    if let Some(name) = closest(word, names.into_iter().filter(|&name| name != "help")) {
        anyhow::bail!("no file '{word}'; did you mean `migdiff {name}`?");
    }
    Ok(())
}

/// The name closest to `word`, if one is within an edit per three letters (one to two; a
/// transposition is one edit).
fn closest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|name| (strsim::damerau_levenshtein(word, name), name))
        .filter(|&(distance, name)| distance <= (name.len() / 3).clamp(1, 2))
        .min()
        .map(|(_, name)| name)
}

fn completions(args: &CompletionsArgs) -> Result<Outcome> {
    let mut out = BufWriter::new(io::stdout().lock());
    clap_complete::generate(args.shell, &mut Cli::command(), "migdiff", &mut out);
    out.flush()?;
    Ok(Outcome::Same)
}

fn man() -> Result<Outcome> {
    let mut out = BufWriter::new(io::stdout().lock());
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(Outcome::Same)
}

/// One input for `show` and `export`, with its --desc.
fn load_single(file: &Path, common: &CommonArgs, global: &Global) -> Result<Loaded> {
    let desc = load_desc(common.desc.as_deref())?;
    load(file, desc.as_ref(), LoadOptions::default(), &global.stderr)
}

fn show(args: &ShowArgs, global: &Global) -> Result<Outcome> {
    let loaded = load_single(&args.file, &args.common, global)?;
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        ShowFormat::Text => {
            // Stream the lines; keep the first write error (a closed pipe) to report it.
            let mut failed: Option<io::Error> = None;
            write_document(&loaded.dump, View::all(), &mut |line| {
                if failed.is_none() {
                    let written = out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.write_all(b"\n"));
                    if let Err(e) = written {
                        failed = Some(e);
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        ShowFormat::Json => args.json.write(&mut out, &export_of(loaded))?,
    }
    out.flush()?;
    Ok(Outcome::Same)
}

fn export(args: &ExportArgs, global: &Global) -> Result<Outcome> {
    let loaded = load_single(&args.file, &args.common, global)?;
    let mut out = output(args.output.as_deref())?;
    args.json.write(&mut out, &export_of(loaded))?;
    out.flush()?;
    Ok(Outcome::Same)
}

fn strip(args: &StripArgs, global: &Global) -> Result<Outcome> {
    let desc = load_desc(args.common.desc.as_deref())?;
    let name = args.file.display();
    let input = Input::open(&args.file).with_context(|| format!("reading {name}"))?;
    if is_json(input.stream()) {
        anyhow::bail!("{name}: JSON holds no RAM pages; strip takes a migration stream");
    }
    let mut out = output(Some(&args.output))?;
    let mut keep: Vec<&str> = Vec::new();
    if !args.no_default_keep {
        keep.extend(crate::strip::DEFAULT_KEEP);
    }
    keep.extend(args.keep.iter().map(String::as_str));
    let keep = Filter::new(&keep)?;
    let stripped = crate::strip::strip(input.stream(), desc.as_ref(), &keep, &mut out)
        .with_context(|| format!("{name}"))?;
    out.flush()?;
    global.stderr.note(&format!(
        "{} RAM pages written as zero pages, {} kept; {} -> {} bytes",
        stripped.zeroed,
        stripped.kept,
        input.stream().len(),
        stripped.bytes
    ));
    Ok(Outcome::Same)
}

fn ignore_filter(args: &CompareArgs) -> Result<Filter> {
    let mut patterns: Vec<String> = Vec::new();
    if !args.no_default_ignores {
        patterns.extend(DEFAULT_IGNORES.iter().map(|s| s.to_string()));
    }
    patterns.extend(args.ignore.iter().cloned());
    for path in &args.ignore_file {
        let text = crate::input::read_text(path, "ignore file")
            .with_context(|| format!("reading ignore file {}", path.display()))?;
        patterns.extend(parse_pattern_file(&text));
    }
    Ok(Filter::new(&patterns)?)
}

/// The comparison's configuration from the arguments.
fn compare_config(args: &CompareArgs) -> Result<Config> {
    let allow = match &args.allow {
        Some(path) => {
            let text = crate::input::read_text(path, "allow file")
                .with_context(|| format!("reading allow file {}", path.display()))?;
            Some(AllowList::parse(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let fail_on = match args.fail_on {
        Some(FailOnArg::Any) => FailOn::Any,
        Some(FailOnArg::Breaking) => FailOn::Breaking,
        None if args.schema_only => FailOn::Breaking,
        None => FailOn::Any,
    };
    Ok(Config {
        filter: ignore_filter(args)?,
        allow,
        fail_on,
        schema_only: args.schema_only,
    })
}

/// Two inputs decoded and compared.
struct Compared {
    old: Loaded,
    new: Loaded,
    config: Config,
    cmp: Comparison,
}

impl Compared {
    fn labels(&self) -> Labels<'_> {
        Labels {
            old: &self.old.info.path,
            new: &self.new.info.path,
        }
    }

    fn notes(&self) -> Vec<(&'static str, String)> {
        report::notes(&self.cmp, self.config.allow.as_ref())
    }

    /// Hunks of the sections with counted differences, from the two normalized documents
    /// less what the comparison ignored, allowed or tolerated.
    fn hunks(&self, context: usize, full: bool) -> Vec<Hunk> {
        if self.cmp.counts.total() == 0 {
            return Vec::new();
        }
        let (old_quiet, new_quiet) = self.cmp.quiet_subjects();
        let filter = &self.config.filter;
        let summarized = if full {
            HashSet::new()
        } else {
            one_sided(&self.cmp)
        };
        let old_view = View {
            filter,
            quiet: &old_quiet,
            summarized: &summarized,
        };
        let new_view = View {
            filter,
            quiet: &new_quiet,
            summarized: &summarized,
        };
        // Only the trees cross threads (the inputs hold non-shareable state).
        let (old_dump, new_dump) = (&self.old.dump, &self.new.dump);
        let (old, new) = rayon::join(
            || document(old_dump, old_view),
            || document(new_dump, new_view),
        );
        let sections: HashSet<&str> = self.cmp.counted().map(|c| c.device.as_str()).collect();
        unified_hunks(&old, &new, &sections, context)
    }

    fn outcome(&self, strict: bool) -> Outcome {
        if self.cmp.passes(strict) {
            Outcome::Same
        } else {
            Outcome::Different
        }
    }
}

fn compared(args: &CompareArgs, hash: bool, global: &Global) -> Result<Compared> {
    let (Some(old_path), Some(new_path)) = (&args.old, &args.new) else {
        anyhow::bail!("need two dumps: migdiff OLD NEW (see --help)");
    };
    let config = compare_config(args)?;
    let desc = load_desc(args.common.desc.as_deref())?;
    let opts = LoadOptions {
        schema: args.schema_only,
        hash,
    };
    let (old, new) = rayon::join(
        || load(old_path, desc.as_ref(), opts, &global.stderr),
        || load(new_path, desc.as_ref(), opts, &global.stderr),
    );
    let (mut old, mut new) = (old?, new?);
    // Allow rules scoped to machine types apply to these dumps' types.
    let machines: Vec<&str> = [&old.dump.machine, &new.dump.machine]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let config = Config {
        allow: config.allow.map(|allow| allow.for_machines(&machines)),
        ..config
    };
    let cmp = compare(&old.dump, &new.dump, &config);
    if config.schema_only {
        // The hunks show what was compared.
        (old.dump, new.dump) = schema_trees(&old.dump, &new.dump);
    }
    Ok(Compared {
        old,
        new,
        config,
        cmp,
    })
}

fn diff(args: &DiffArgs, global: &Global) -> Result<Outcome> {
    let cmp = compared(&args.compare, false, global)?;
    if global.quiet {
        return Ok(cmp.outcome(args.compare.strict));
    }
    let style = args.color.style();
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        DiffFormat::Unified => {
            let notes = cmp.notes();
            let counts = &cmp.cmp.counts;
            // Unknown RAM pages are no difference, but "no output" would claim they match.
            let unknown = counts.unknown_pages > 0;
            if counts.total() > 0 || counts.tolerated > 0 || !notes.is_empty() || unknown {
                report::write_preamble(&mut out, &notes, &cmp.cmp.counts, style)?;
            }
            write_unified(
                &mut out,
                &cmp.labels(),
                &cmp.hunks(args.context, args.full),
                style,
            )?;
        }
        DiffFormat::Summary => report::write_summary(&mut out, &cmp.cmp, style)?,
        DiffFormat::Json => {
            let doc = DiffDocument::new(
                &cmp.cmp,
                cmp.config.allow.as_ref(),
                &cmp.old.info,
                &cmp.new.info,
            );
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        DiffFormat::Junit => {
            let labels = cmp.labels();
            let suite = format!("{} -> {}", labels.old, labels.new);
            write_junit(&mut out, &suite, &cmp.cmp)?;
        }
    }
    out.flush()?;
    Ok(cmp.outcome(args.compare.strict))
}

fn report(args: &ReportArgs, global: &Global) -> Result<Outcome> {
    let cmp = compared(&args.compare, true, global)?;
    let notes = cmp.notes();
    let hunks = cmp.hunks(args.context, args.full);
    let report = Report {
        labels: cmp.labels(),
        old: &cmp.old.info,
        new: &cmp.new.info,
        comparison: &cmp.cmp,
        notes: &notes,
        hunks: &hunks,
    };
    let mut out = output(args.output.as_deref())?;
    if args.html {
        write_html(&mut out, &report)?;
    } else {
        // Beside `-o report.md`, `report.full.diff`: for when the report must be trimmed.
        let full_diff_path = args.output.as_ref().map(|o| o.with_extension("full.diff"));
        let full_diff_name = full_diff_path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let md = markdown(&report, COMMENT_LIMIT, full_diff_name.as_deref());
        out.write_all(md.report.as_bytes())?;
        if let (Some(path), Some(text)) = (full_diff_path, md.full_diff) {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    out.flush()?;
    Ok(cmp.outcome(args.compare.strict))
}

fn check(args: &CheckArgs, global: &Global) -> Result<Outcome> {
    let desc = load_desc(args.common.desc.as_deref())?;
    let schema = LoadOptions {
        schema: true,
        hash: false,
    };
    let stderr = &global.stderr;
    let (src, against) = rayon::join(
        || load(&args.src, desc.as_ref(), LoadOptions::default(), stderr),
        || {
            args.against
                .iter()
                .map(|path| load(path, None, schema, stderr))
                .collect::<Result<Vec<_>>>()
        },
    );
    let (src, against) = (src?, against?);
    let mut destination = Destination::default();
    for dst in &against {
        let slot = if dst.info.container == VMSTATE_CONTAINER {
            &mut destination.classes
        } else {
            &mut destination.dump
        };
        if slot.replace(&dst.dump).is_some() {
            anyhow::bail!(
                "--against {}: give at most one destination dump and one -dump-vmstate file",
                dst.info.path
            );
        }
    }
    let verdict = crate::check::check(&src.dump, destination);
    let outcome = match verdict.answer {
        Answer::Loads => Outcome::Same,
        Answer::Refused => Outcome::Different,
        Answer::Undecided => Outcome::Undecided,
    };
    if global.quiet {
        return Ok(outcome);
    }
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        ShowFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &verdict)?;
            writeln!(out)?;
        }
        ShowFormat::Text => {
            let count = |severity: Severity| {
                verdict
                    .reasons
                    .iter()
                    .filter(|r| r.severity == severity)
                    .count()
            };
            let (refusals, open) = (count(Severity::Refused), count(Severity::Undecided));
            let src_name = &src.info.path;
            let dst_name = against
                .iter()
                .map(|d| d.info.path.as_str())
                .collect::<Vec<_>>()
                .join(" and ");
            let plural = |n: usize, one: &str, many: &str| {
                format!("{n} {}", if n == 1 { one } else { many })
            };
            match verdict.answer {
                Answer::Loads => writeln!(out, "migdiff check: {src_name} would load on the destination described by {dst_name}")?,
                Answer::Refused => writeln!(out, "migdiff check: {src_name} would be REFUSED by the destination described by {dst_name}: {}, the first stops the load ({} undecided)", plural(refusals, "reason", "reasons"), open)?,
                Answer::Undecided => writeln!(out, "migdiff check: NOT DECIDED whether the destination described by {dst_name} would load {src_name}: nothing refuses it, {} cannot be checked", plural(open, "thing", "things"))?,
            }
            for reason in &verdict.reasons {
                let tag = match reason.severity {
                    Severity::Refused => "refused",
                    Severity::Undecided => "undecided",
                };
                write!(out, "{tag:<9} {}: {}", reason.subject, reason.message)?;
                match &reason.detail {
                    Some(detail) => writeln!(out, " [{detail}]")?,
                    None => writeln!(out)?,
                }
            }
        }
    }
    out.flush()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::{auto_color, closest};
    use std::ffi::OsStr;

    #[test]
    fn a_misspelt_subcommand_is_named() {
        let names = ["show", "export", "report", "check", "completions", "man"];
        let near = |word: &str| closest(word, names.into_iter());
        assert_eq!(near("shwo"), Some("show"));
        assert_eq!(near("exprot"), Some("export"));
        assert_eq!(near("chek"), Some("check"));
        assert_eq!(near("completion"), Some("completions"));
        // Far from every name: no suggestion.
        assert_eq!(near("old"), None);
        assert_eq!(near("guest"), None);
        assert_eq!(near("ab"), None);
    }

    #[test]
    fn colour_auto_follows_terminal_no_color_and_term() {
        assert!(auto_color(true, None, Some(OsStr::new("xterm"))));
        assert!(!auto_color(false, None, None));
        assert!(!auto_color(true, Some(OsStr::new("1")), None));
        assert!(auto_color(true, Some(OsStr::new("")), None));
        assert!(!auto_color(true, None, Some(OsStr::new("dumb"))));
    }
}
