//! The commands that run QEMU: `capture` (one dump) and `gate` (every versioned machine type
//! two QEMU binaries share, captured by each, compared and replayed both ways). They take
//! their configuration from `cli.rs`, their dumps from the library's capture and their
//! verdicts from its matrix.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use globset::Glob;
use rayon::prelude::*;

use crate::capture::{
    capture_running, capture_started, dump_vmstate, machine_types, sidecar_path, Capture,
};
use crate::filter::{Filter, DEFAULT_IGNORES};
use crate::gate::AllowList;
use crate::matrix::{compare_machine, GateVerdict, Matrix, Outcome, Pair, Row, Rules, Side};
use crate::render::matrix::{machine_count, write_html, write_junit, write_markdown, write_text};
use crate::render::Style;

use crate::cli::Outcome as Exit;
use crate::inputs::{load, output, LoadOptions, Stderr};

/// What `migdiff capture` captures.
pub enum CaptureSource {
    /// Start QEMU with these arguments; let the guest run this long first (else `-S`).
    Start {
        command: Vec<String>,
        run: Option<Duration>,
    },
    /// Attach to a running VM's QMP socket; resume it afterwards unless `leave_paused`.
    Attach { socket: PathBuf, leave_paused: bool },
}

pub struct CaptureConfig {
    pub source: CaptureSource,
    pub output: PathBuf,
    pub timeout: Duration,
}

pub fn capture(config: &CaptureConfig) -> Result<Exit> {
    let out = &config.output;
    let capture = match &config.source {
        CaptureSource::Start { command, run } => {
            capture_started(command, out, *run, config.timeout)
        }
        CaptureSource::Attach {
            socket,
            leave_paused,
        } => capture_running(socket, out, config.timeout, !leave_paused),
    }
    .with_context(|| format!("capturing {}", out.display()))?;
    let after = if capture.resumed {
        "; the guest was resumed"
    } else if matches!(config.source, CaptureSource::Attach { .. }) {
        "; the guest stays paused (postmigrate) until cont"
    } else {
        ""
    };
    println!(
        "migdiff capture: {}: {} bytes from QEMU {} (was {}){after}; described in {}",
        out.display(),
        capture.stream_bytes,
        capture.qemu,
        capture.runstate,
        sidecar_path(out).display()
    );
    Ok(Exit::Same)
}

pub struct GateConfig {
    /// The two QEMU binaries; none when every dump is in `dumps` already.
    pub qemus: Option<(String, String)>,
    /// Machine-type globs; empty: all.
    pub machines: Vec<String>,
    /// Arguments added to every QEMU after `-M TYPE -nodefaults -m 32 -accel tcg`.
    pub devices: Vec<String>,
    pub allow: Option<PathBuf>,
    pub strict: bool,
    pub fail_on_identical: bool,
    pub jobs: usize,
    pub junit: Option<PathBuf>,
    pub report: Option<PathBuf>,
    /// Where dumps are kept and reused (`TYPE-old.mig`, `TYPE-new.mig`); else a temporary
    /// directory.
    pub dumps: Option<PathBuf>,
    pub timeout: Duration,
    pub style: Style,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Which {
    Old,
    New,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Old => "old",
            Which::New => "new",
        }
    }
}

fn dump_path(dir: &Path, machine: &str, which: Which) -> PathBuf {
    dir.join(format!("{machine}-{}.mig", which.name()))
}

fn vmstate_path(dir: &Path, machine: &str, which: Which) -> PathBuf {
    dir.join(format!("{machine}-{}.vmstate.json", which.name()))
}

/// What a gate makes with a QEMU for one machine type.
#[derive(Clone, Copy)]
enum Made {
    /// The stopped guest's migration stream.
    Dump,
    /// `-dump-vmstate`: the classes `check` settles open questions with.
    Vmstate,
}

pub fn gate(config: &GateConfig) -> Result<Exit> {
    let allow = match &config.allow {
        Some(path) => {
            let text = crate::input::read_text(path, "allow file")
                .with_context(|| format!("reading allow file {}", path.display()))?;
            Some(AllowList::parse(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let temporary;
    let dir = match &config.dumps {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating dump directory {}", dir.display()))?;
            dir.as_path()
        }
        None => {
            temporary = tempfile::Builder::new().prefix("migdiff-gate").tempdir()?;
            temporary.path()
        }
    };
    let offered = offered_machine_types(config, dir)?;
    let machines = select(&offered, &config.machines)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs.max(1))
        .build()?;
    let started = Instant::now();
    let failed = pool.install(|| capture_missing(config, dir, &machines));
    let rules = Rules {
        filter: Filter::new(DEFAULT_IGNORES)?,
        allow: allow.clone(),
        fail_on_identical: config.fail_on_identical,
    };
    let rows: Vec<Row> = pool.install(|| {
        machines
            .par_iter()
            .map(|machine| Row {
                machine: machine.clone(),
                outcome: match failed.get(machine) {
                    Some(error) => Outcome::Trouble {
                        error: error.clone(),
                    },
                    None => compare_dumps(dir, machine, &rules),
                },
            })
            .collect()
    });
    let side = |which: Which| Side {
        qemu: match (&config.qemus, which) {
            (Some((old, _)), Which::Old) => old.clone(),
            (Some((_, new)), Which::New) => new.clone(),
            (None, _) => format!("dumps in {}", dir.display()),
        },
        versions: recorded_versions(dir, &machines, which),
    };
    let matrix = Matrix::new(side(Which::Old), side(Which::New), rows, allow.as_ref());
    eprintln!(
        "migdiff gate: {} in {:.1} s",
        machine_count(machines.len()),
        started.elapsed().as_secs_f64()
    );
    let mut out = BufWriter::new(io::stdout().lock());
    write_text(&mut out, &matrix, config.style)?;
    out.flush()?;
    if let Some(path) = &config.junit {
        let mut w = output(Some(path))?;
        write_junit(&mut w, &matrix)?;
        w.flush()?;
    }
    if let Some(path) = &config.report {
        let mut w = output(Some(path))?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => write_html(&mut w, &matrix)?,
            _ => write_markdown(&mut w, &matrix)?,
        }
        w.flush()?;
    }
    match matrix.verdict(config.strict) {
        GateVerdict::Pass => Ok(Exit::Same),
        GateVerdict::Fail => Ok(Exit::Different),
        GateVerdict::Trouble => bail!(
            "{} of {} could not be compared (see the matrix)",
            matrix.totals().trouble,
            machine_count(machines.len())
        ),
    }
}

/// The versioned machine types both QEMUs offer; without QEMUs, those with both dumps in
/// `dir`.
fn offered_machine_types(config: &GateConfig, dir: &Path) -> Result<Vec<String>> {
    let Some((old, new)) = &config.qemus else {
        let mut types = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let name = entry?.file_name();
            let Some(machine) = name.to_str().and_then(|n| n.strip_suffix("-old.mig")) else {
                continue;
            };
            if dump_path(dir, machine, Which::New).exists() {
                types.push(machine.to_string());
            }
        }
        types.sort();
        if types.is_empty() {
            bail!(
                "{} holds no pair of dumps TYPE-old.mig and TYPE-new.mig (give --old and --new \
                 QEMUs to make them)",
                dir.display()
            );
        }
        return Ok(types);
    };
    let list = |qemu: &str| {
        machine_types(qemu, config.timeout)
            .with_context(|| format!("listing the machine types of {qemu}"))
    };
    let (old_types, new_types) = rayon::join(|| list(old), || list(new));
    let new_types: BTreeSet<String> = new_types?.into_iter().collect();
    let common: Vec<String> = old_types?
        .into_iter()
        .filter(|t| new_types.contains(t))
        .collect();
    if common.is_empty() {
        bail!("{old} and {new} offer no versioned machine type in common");
    }
    Ok(common)
}

/// The machine types the `--machines` globs select; a glob that selects none is an error
/// that lists what there is.
fn select(offered: &[String], globs: &[String]) -> Result<Vec<String>> {
    if globs.is_empty() {
        return Ok(offered.to_vec());
    }
    let mut selected = BTreeSet::new();
    for glob in globs {
        let matcher = Glob::new(glob)
            .with_context(|| format!("--machines '{glob}'"))?
            .compile_matcher();
        let mut matched = false;
        for machine in offered.iter().filter(|m| matcher.is_match(m)) {
            matched = true;
            selected.insert(machine.clone());
        }
        if !matched {
            bail!(
                "--machines '{glob}' matches none of the {} machine types: {}",
                offered.len(),
                offered.join(" ")
            );
        }
    }
    Ok(offered
        .iter()
        .filter(|m| selected.contains(*m))
        .cloned()
        .collect())
}

/// Makes every dump and `-dump-vmstate` file `dir` lacks, each with its QEMU; returns
/// why the ones that failed did, by machine type.
fn capture_missing(
    config: &GateConfig,
    dir: &Path,
    machines: &[String],
) -> HashMap<String, String> {
    let Some((old, new)) = &config.qemus else {
        return HashMap::new();
    };
    let path = |machine: &str, which, made| match made {
        Made::Dump => dump_path(dir, machine, which),
        Made::Vmstate => vmstate_path(dir, machine, which),
    };
    let tasks: Vec<(&String, Which, &String, Made)> = machines
        .iter()
        .flat_map(|m| {
            [(Which::Old, old), (Which::New, new)]
                .into_iter()
                .flat_map(move |(which, qemu)| {
                    [Made::Dump, Made::Vmstate].map(|made| (m, which, qemu, made))
                })
        })
        .filter(|(m, which, _, made)| !path(m, *which, *made).exists())
        .collect();
    if !tasks.is_empty() {
        eprintln!(
            "migdiff gate: making {} dumps and -dump-vmstate files in {}, {} at a time",
            tasks.len(),
            dir.display(),
            config.jobs.max(1)
        );
    }
    let failures: Vec<(String, String)> = tasks
        .par_iter()
        .filter_map(|(machine, which, qemu, made)| {
            let out = path(machine, *which, *made);
            let made = match made {
                Made::Dump => {
                    let mut command = vec![
                        qemu.to_string(),
                        "-M".into(),
                        machine.to_string(),
                        "-nodefaults".into(),
                        "-m".into(),
                        "32".into(),
                        "-accel".into(),
                        "tcg".into(),
                    ];
                    command.extend(config.devices.iter().cloned());
                    capture_started(&command, &out, None, config.timeout).map(drop)
                }
                Made::Vmstate => dump_vmstate(qemu, machine, &out, config.timeout),
            };
            made.err()
                .map(|e| (machine.to_string(), format!("{} QEMU: {e}", which.name())))
        })
        .collect();
    let mut by_machine: HashMap<String, String> = HashMap::new();
    for (machine, error) in failures {
        by_machine
            .entry(machine)
            .and_modify(|e| {
                e.push_str("; ");
                e.push_str(&error);
            })
            .or_insert(error);
    }
    by_machine
}

/// Loads one machine type's dumps, and the `-dump-vmstate` files `dir` holds for it.
fn compare_dumps(dir: &Path, machine: &str, rules: &Rules) -> Outcome {
    // The matrix reports what matters; per-dump notes would repeat for every type.
    let bars = Stderr::new(true);
    let dump = |which| {
        load(
            &dump_path(dir, machine, which),
            None,
            LoadOptions::default(),
            &bars,
        )
    };
    let classes = |which| {
        let path = vmstate_path(dir, machine, which);
        let schema = LoadOptions {
            schema: true,
            hash: false,
        };
        path.exists()
            .then(|| load(&path, None, schema, &bars))
            .transpose()
    };
    let loaded = (|| -> Result<_> {
        Ok((
            dump(Which::Old)?,
            dump(Which::New)?,
            classes(Which::Old)?,
            classes(Which::New)?,
        ))
    })();
    match loaded {
        Ok((old, new, old_classes, new_classes)) => {
            let pair = Pair {
                old: &old.dump,
                new: &new.dump,
                old_classes: old_classes.as_ref().map(|c| &c.dump),
                new_classes: new_classes.as_ref().map(|c| &c.dump),
            };
            Outcome::Compared(Box::new(compare_machine(machine, pair, rules)))
        }
        Err(e) => Outcome::Trouble {
            error: format!("{e:#}"),
        },
    }
}

/// The QEMU versions the sidecars of `which`'s dumps record, distinct.
fn recorded_versions(dir: &Path, machines: &[String], which: Which) -> Vec<String> {
    let versions: BTreeSet<String> = machines
        .iter()
        .filter_map(|m| {
            let text = std::fs::read_to_string(sidecar_path(&dump_path(dir, m, which))).ok()?;
            let capture: Capture = serde_json::from_str(&text).ok()?;
            Some(capture.qemu.to_string())
        })
        .collect();
    versions.into_iter().collect()
}
