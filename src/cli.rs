//! Command-line arguments (clap) and the commands they run. No clap type leaves this file.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use migdiff::diff::{device_name, diff_dumps, Change};
use migdiff::filter::{parse_pattern_file, Filter, DEFAULT_IGNORES};
use migdiff::gate::{AllowList, GateResult};
use migdiff::input::{Container, Input};
use migdiff::render::document::document;
use migdiff::render::junit::write_junit;
use migdiff::render::report::{self, AllowedChange, Counts, DiffDocument, InputInfo};
use migdiff::render::unified::{write_unified, Labels};
use migdiff::render::Style;
use migdiff::{stream, Device, Dump, Schema};

/// What the process reports, as diff(1) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Same = 0,
    Different = 1,
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

Exit status: 0 no differences, 1 differences, 2 trouble (unreadable or corrupt input).";

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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the decoded device tree of one dump.
    ///
    /// The text form is the one `migdiff OLD NEW` diffs: one field per line, integers in
    /// hex padded to their size, long buffers as 16-byte rows with offsets.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The dump to decode (a file written by `migrate "exec:cat > FILE"` or `file:FILE`;
    /// `-` reads standard input).
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    format: ShowFormat,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Description (vmdesc) for dumps that have none (suppress-vmdesc=on, postcopy): another
    /// dump of the same configuration, or a vmdesc JSON. Dumps with their own ignore it.
    #[arg(long, value_name = "FILE")]
    desc: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// The reference dump.
    #[arg(value_name = "OLD", required = true)]
    old: Option<PathBuf>,
    /// The dump compared with it.
    #[arg(value_name = "NEW", required = true)]
    new: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Unified)]
    format: DiffFormat,
    /// Lines of context around each change in the unified diff.
    #[arg(short = 'U', long = "unified", value_name = "N", default_value_t = 3)]
    context: usize,
    /// When to colour the output. `auto`: only on a terminal, and never when NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Ignore differences whose path matches PATTERN (repeatable). Paths are matched as
    /// printed, `DEVICE (INSTANCE)/FIELD`; `*` matches anything, `/` included; brackets are
    /// literal. Example: 'cpu (*)/env.tsc'.
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
    #[command(flatten)]
    common: CommonArgs,
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
            ColorChoice::Auto => {
                io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        Style { color }
    }
}

pub fn run() -> Result<Outcome> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Show(args)) => show(&args),
        None => diff(&cli.diff),
    }
}

fn load_desc(common: &CommonArgs) -> Result<Option<Schema>> {
    let Some(path) = &common.desc else {
        return Ok(None);
    };
    let input = Input::open(path).with_context(|| format!("reading {}", path.display()))?;
    let data = input.stream();
    let schema = if data.first() == Some(&b'{') {
        migdiff::vmdesc::parse(data, 0)
    } else {
        stream::schema_of(data)
    };
    schema
        .map(Some)
        .with_context(|| format!("{}: taking the description", path.display()))
}

fn load(path: &Path, desc: Option<&Schema>) -> Result<Dump> {
    let input = Input::open(path).with_context(|| format!("reading {}", path.display()))?;
    let dump = stream::decode(input.stream(), desc).with_context(|| match &input.container {
        Container::Raw => format!("{}", path.display()),
        container => format!(
            "{} ({container}; offsets count from the stream's start)",
            path.display()
        ),
    })?;
    if input.container != Container::Raw {
        eprintln!("migdiff: note: {}: {}", path.display(), input.container);
    }
    for w in &dump.warnings {
        let section = w
            .section
            .as_ref()
            .map(|s| format!(" in section {s}"))
            .unwrap_or_default();
        eprintln!(
            "migdiff: warning: {}: at byte {:#x}{section}: {}",
            path.display(),
            w.offset,
            w.message
        );
    }
    Ok(dump)
}

fn show(args: &ShowArgs) -> Result<Outcome> {
    let desc = load_desc(&args.common)?;
    let dump = load(&args.file, desc.as_ref())?;
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        ShowFormat::Text => {
            for line in document(&dump, &Filter::none()) {
                writeln!(out, "{line}")?;
            }
        }
        ShowFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &dump)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(Outcome::Same)
}

fn ignore_filter(args: &DiffArgs) -> Result<Filter> {
    let mut patterns: Vec<String> = Vec::new();
    if !args.no_default_ignores {
        patterns.extend(DEFAULT_IGNORES.iter().map(|s| s.to_string()));
    }
    patterns.extend(args.ignore.iter().cloned());
    for path in &args.ignore_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading ignore file {}", path.display()))?;
        patterns.extend(parse_pattern_file(&text));
    }
    Ok(Filter::new(&patterns)?)
}

fn info(path: &Path, dump: &Dump) -> InputInfo {
    InputInfo {
        path: path.display().to_string(),
        size: dump.stream.size,
        machine: dump.machine.clone(),
        devices: dump.devices.len(),
        vmdesc_bytes: dump.stream.vmdesc_len,
    }
}

fn diff(args: &DiffArgs) -> Result<Outcome> {
    let (Some(old_path), Some(new_path)) = (&args.old, &args.new) else {
        anyhow::bail!("need two dumps: migdiff OLD NEW (see --help)");
    };
    let filter = ignore_filter(args)?;
    let allow = match &args.allow {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading allow file {}", path.display()))?;
            Some(AllowList::parse(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let desc = load_desc(&args.common)?;
    let (old, new) = rayon::join(
        || load(old_path, desc.as_ref()),
        || load(new_path, desc.as_ref()),
    );
    let (old, new) = (old?, new?);

    let (kept, ignored): (Vec<Change>, Vec<Change>) = diff_dumps(&old, &new)
        .into_iter()
        .partition(|c| !filter.ignores(c));
    let gate = match &allow {
        Some(list) => list.apply(kept),
        None => GateResult {
            failing: kept,
            ..GateResult::default()
        },
    };
    let counts = Counts::of(
        &gate.failing,
        ignored.len(),
        gate.allowed.len(),
        gate.stale.len(),
    );
    let style = args.color.style();
    let labels = Labels {
        old: &old_path.display().to_string(),
        new: &new_path.display().to_string(),
    };
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        DiffFormat::Unified => {
            let gated = allow.as_ref().map(|list| (&gate, list));
            if !gate.failing.is_empty() || !gate.allowed.is_empty() || !gate.stale.is_empty() {
                report::write_preamble(&mut out, &gate.failing, gated, &counts, style)?;
            }
            if !gate.failing.is_empty() {
                let (old_doc, new_doc) = (document(&old, &filter), document(&new, &filter));
                write_unified(&mut out, &labels, &old_doc, &new_doc, args.context, style)?;
            }
        }
        DiffFormat::Summary => report::write_summary(&mut out, &gate.failing, &counts, style)?,
        DiffFormat::Json => {
            let doc = DiffDocument {
                migdiff: env!("CARGO_PKG_VERSION"),
                old: &info(old_path, &old),
                new: &info(new_path, &new),
                identical: gate.failing.is_empty(),
                counts,
                changes: &gate.failing,
                allowed: gate
                    .allowed
                    .iter()
                    .filter_map(|(change, i)| {
                        let rule = allow.as_ref()?.rules.get(*i)?;
                        Some(AllowedChange { change, rule })
                    })
                    .collect(),
                stale_rules: allow
                    .as_ref()
                    .map(|list| {
                        gate.stale
                            .iter()
                            .filter_map(|&i| list.rules.get(i))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        DiffFormat::Junit => {
            let suite = format!("{} -> {}", labels.old, labels.new);
            write_junit(&mut out, &suite, &device_names(&old, &new), &gate)?;
        }
    }
    out.flush()?;
    let stale_fails = args.strict && !gate.stale.is_empty();
    Ok(if gate.failing.is_empty() && !stale_fails {
        Outcome::Same
    } else {
        Outcome::Different
    })
}

/// `stream`, `ram`, then every device of either dump in normalized order.
fn device_names(old: &Dump, new: &Dump) -> Vec<String> {
    let mut names: Vec<String> = ["stream".to_string(), "ram".to_string()].into();
    let mut devices: Vec<&Device> = old.sorted_devices();
    devices.extend(new.sorted_devices());
    devices.sort_by(|a, b| (&a.idstr, a.instance_id).cmp(&(&b.idstr, b.instance_id)));
    devices.dedup_by(|a, b| a.idstr == b.idstr && a.instance_id == b.instance_id);
    names.extend(devices.into_iter().map(device_name));
    names
}
