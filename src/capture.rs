//! Making a dump: migrate a QEMU's state to a file over QMP and wait for it to complete,
//! either of a QEMU migdiff starts (stopped with `-S`, quit and reaped afterwards) or of a
//! running VM (resumed afterwards, since a completed migration leaves the source paused in
//! `postmigrate`). Beside `OUT` goes `OUT.json`, a [`Capture`]: which QEMU made the dump
//! and how.
//!
//! The stream travels through a pipe whose write end is handed to QEMU with `getfd` and
//! `migrate fd:`: migdiff writes the file itself, so it is complete when the pipe closes
//! (with `exec:cat > FILE` the `cat` may still be writing when QEMU says `completed`), no
//! shell quotes the path, and a QEMU running as another user needs no access to it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::pipe::{pipe_with, PipeFlags};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::qmp::{MigrationInfo, QemuVersion, Qmp, QmpError, Status};

/// How often `query-migrate` is asked, and a starting QEMU's socket looked for.
const POLL: Duration = Duration::from_millis(50);
/// How long QEMU has to exit after `quit`, before it is killed.
const QUIT_GRACE: Duration = Duration::from_secs(10);
/// The name the pipe's write end is given in QEMU (`getfd`).
const FD_NAME: &str = "migdiff-capture";

/// What `OUT.json` records about a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// The migdiff version that made the dump.
    pub migdiff: String,
    /// QEMU's `query-version`.
    pub qemu: QemuVersion,
    /// The command line migdiff started QEMU with, less its private QMP socket; none for a
    /// VM it attached to with `--qmp`.
    pub command_line: Option<Vec<String>>,
    /// The run state before the migration (`prelaunch` for `-S`, `running`, `paused`).
    pub runstate: String,
    /// Whether the guest was resumed afterwards (`cont`).
    pub resumed: bool,
    /// The stream's length in bytes.
    pub stream_bytes: u64,
    /// What QEMU reports the migration took, in milliseconds.
    pub total_time_ms: Option<u64>,
}

/// The sidecar of `out`: `OUT.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Why a capture failed.
#[derive(Debug)]
pub enum CaptureError {
    Qmp(QmpError),
    /// QEMU could not be started.
    Spawn {
        program: String,
        source: io::Error,
    },
    /// QEMU exited before the dump was complete; what it printed says why.
    Exited {
        program: String,
        status: ExitStatus,
        stderr: String,
    },
    /// QEMU did not get as far as `what` in time (opening its QMP socket, listing its
    /// machine types).
    Stuck {
        what: String,
        seconds: u64,
    },
    /// The migration ended `failed` or `cancelled`; `desc` is QEMU's `error-desc`.
    Migration {
        status: String,
        desc: String,
    },
    /// The migration did not complete in time (last status given); it was cancelled.
    Timeout {
        seconds: u64,
        status: String,
    },
    /// The output file or the pipe failed.
    Output {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Qmp(e) => e.fmt(f),
            CaptureError::Spawn { program, source } => {
                write!(f, "cannot start {program}: {source}")
            }
            CaptureError::Exited {
                program,
                status,
                stderr,
            } => {
                write!(f, "{program} exited early ({status})")?;
                match stderr.trim() {
                    "" => Ok(()),
                    text => write!(f, ": {text}"),
                }
            }
            CaptureError::Stuck { what, seconds } => {
                write!(f, "{what} within {seconds} s")
            }
            CaptureError::Migration { status, desc } => {
                write!(f, "migration {status}: {desc}")
            }
            CaptureError::Timeout { seconds, status } => write!(
                f,
                "migration not completed after {seconds} s (status {status}); cancelled"
            ),
            CaptureError::Output { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

// The source is part of the message: `{:#}` chains would print it twice.
impl std::error::Error for CaptureError {}

impl From<QmpError> for CaptureError {
    fn from(e: QmpError) -> Self {
        CaptureError::Qmp(e)
    }
}

/// Captures a VM that is already running, through its QMP socket. A guest that was running
/// is resumed afterwards unless `resume` is false; a paused one stays paused.
pub fn capture_running(
    socket: &Path,
    out: &Path,
    timeout: Duration,
    resume: bool,
) -> Result<Capture, CaptureError> {
    let mut qmp = Qmp::connect(socket, timeout)?;
    let capture = capture_with(&mut qmp, out, timeout, |qmp, runstate| {
        let resumed = resume && runstate == "running";
        if resumed {
            qmp.execute::<Value>("cont", None)?;
        }
        Ok(resumed)
    })?;
    write_sidecar(out, &capture)?;
    Ok(capture)
}

/// Starts `command` (QEMU and its arguments) with a private QMP socket, stopped (`-S`)
/// unless `run` gives the seconds to let the guest run first, captures it into `out`,
/// quits and reaps it.
pub fn capture_started(
    command: &[String],
    out: &Path,
    run: Option<Duration>,
    timeout: Duration,
) -> Result<Capture, CaptureError> {
    let mut qemu = Qemu::start(command, run.is_none())?;
    let result = (|| -> Result<Capture, CaptureError> {
        let mut qmp = qemu.connect(timeout)?;
        if let Some(run) = run {
            qemu.sleep(run)?;
        }
        let capture = capture_with(&mut qmp, out, timeout, |_, _| Ok(false));
        let capture = qemu.explain(capture)?;
        // QEMU may close the socket before answering quit.
        let _ = qmp.execute::<Value>("quit", None);
        Ok(capture)
    })();
    // On an error QEMU is killed as it is dropped; after quit it has time to exit.
    let mut capture = result?;
    if let Some(exited) = qemu.reap() {
        return Err(exited);
    }
    capture.command_line = Some(qemu.command_line.clone());
    write_sidecar(out, &capture)?;
    Ok(capture)
}

/// Migrates into `out` and records how; `after` runs once the migration completed, with
/// the run state before it, and says whether the guest was resumed.
fn capture_with(
    qmp: &mut Qmp,
    out: &Path,
    timeout: Duration,
    after: impl FnOnce(&mut Qmp, &str) -> Result<bool, CaptureError>,
) -> Result<Capture, CaptureError> {
    let qemu: QemuVersion = qmp.execute("query-version", None)?;
    let runstate = qmp.execute::<Status>("query-status", None)?.status;
    // Written aside and renamed once complete: half a stream is worse than none.
    let mut part = out.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let (info, stream_bytes) = match migrate_to(qmp, &part, timeout) {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, out).map_err(|source| CaptureError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    let resumed = after(qmp, &runstate)?;
    Ok(Capture {
        migdiff: env!("CARGO_PKG_VERSION").to_string(),
        qemu,
        command_line: None,
        runstate,
        resumed,
        stream_bytes,
        total_time_ms: info.total_time,
    })
}

/// `getfd` + `migrate fd:` into a pipe drained into `out`; waits for `completed` and for
/// QEMU to close the pipe. Returns the final `query-migrate` and the stream's length.
fn migrate_to(
    qmp: &mut Qmp,
    out: &Path,
    timeout: Duration,
) -> Result<(MigrationInfo, u64), CaptureError> {
    let output_error = |source| CaptureError::Output {
        path: out.to_path_buf(),
        source,
    };
    let file = File::create(out).map_err(output_error)?;
    // Close-on-exec: a QEMU another thread starts must not inherit the write end, or the
    // pipe would never close.
    let (read_end, write_end) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| output_error(e.into()))?;
    let drained = drain(read_end, file);
    qmp.execute_passing::<Value>(
        "getfd",
        Some(json!({ "fdname": FD_NAME })),
        Some(write_end.as_fd()),
    )?;
    // QEMU holds its own copy now; ours must go for the pipe to close when QEMU's does.
    drop(write_end);
    qmp.execute::<Value>("migrate", Some(json!({ "uri": format!("fd:{FD_NAME}") })))?;
    let deadline = Instant::now() + timeout;
    let info = loop {
        let info: MigrationInfo = qmp.execute("query-migrate", None)?;
        let status = info.status.clone().unwrap_or_default();
        match status.as_str() {
            "completed" => break info,
            "failed" | "cancelled" => {
                return Err(CaptureError::Migration {
                    status,
                    desc: info.error_desc.unwrap_or_default(),
                })
            }
            _ if Instant::now() > deadline => {
                let _ = qmp.execute::<Value>("migrate_cancel", None);
                return Err(CaptureError::Timeout {
                    seconds: timeout.as_secs(),
                    status,
                });
            }
            _ => std::thread::sleep(POLL),
        }
    };
    let left = deadline.saturating_duration_since(Instant::now()) + POLL;
    match drained.recv_timeout(left) {
        Ok(Ok(bytes)) => Ok((info, bytes)),
        Ok(Err(e)) => Err(output_error(e)),
        Err(_) => Err(output_error(io::Error::new(
            io::ErrorKind::TimedOut,
            "QEMU said completed but kept the migration pipe open",
        ))),
    }
}

/// Copies the pipe into `file` on a thread; the byte count (or the error) arrives on the
/// channel once the writer closes its end.
fn drain(read_end: OwnedFd, file: File) -> mpsc::Receiver<io::Result<u64>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut pipe = File::from(read_end);
        let mut file = BufWriter::new(file);
        let copied = io::copy(&mut pipe, &mut file).and_then(|n| {
            file.flush()?;
            Ok(n)
        });
        let _ = tx.send(copied);
    });
    rx
}

fn write_sidecar(out: &Path, capture: &Capture) -> Result<(), CaptureError> {
    let path = sidecar_path(out);
    let mut text = serde_json::to_string_pretty(capture).unwrap_or_default();
    text.push('\n');
    std::fs::write(&path, text).map_err(|source| CaptureError::Output { path, source })
}

/// A QEMU migdiff started: its private directory (QMP socket, stderr), killed and reaped
/// if still running when dropped.
struct Qemu {
    child: Child,
    program: String,
    /// What the user gave plus what migdiff added, less the QMP socket.
    command_line: Vec<String>,
    dir: tempfile::TempDir,
}

impl Qemu {
    fn start(command: &[String], stopped: bool) -> Result<Qemu, CaptureError> {
        let program = command.first().cloned().unwrap_or_default();
        let spawn_error = |source| CaptureError::Spawn {
            program: program.clone(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("migdiff-qemu")
            .tempdir()
            .map_err(spawn_error)?;
        let stderr = File::create(dir.path().join("stderr")).map_err(spawn_error)?;
        let mut command_line = command.to_vec();
        if stopped {
            command_line.push("-S".into());
        }
        // No window: a dump needs none. Only when the user chose no display of their own.
        let displays = ["-display", "-nographic", "-vnc", "-spice"];
        if !command.iter().any(|a| displays.contains(&a.as_str())) {
            command_line.extend(["-display".into(), "none".into()]);
        }
        // QEMU's option parser reads `,` as a separator; `,,` is a literal comma.
        let socket = dir.path().join("qmp.sock").display().to_string();
        let qmp = format!("unix:{},server=on,wait=off", socket.replace(',', ",,"));
        let child = Command::new(&program)
            .args(command_line.iter().skip(1))
            .args(["-qmp", &qmp])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(spawn_error)?;
        Ok(Qemu {
            child,
            program,
            command_line,
            dir,
        })
    }

    /// Waits for the socket QEMU creates once it has parsed its options.
    fn connect(&mut self, timeout: Duration) -> Result<Qmp, CaptureError> {
        let socket = self.dir.path().join("qmp.sock");
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if socket.exists() {
                match Qmp::connect(&socket, timeout) {
                    Err(QmpError::Connect { .. }) => {}
                    connected => return Ok(connected?),
                }
            }
            if Instant::now() > deadline {
                return Err(CaptureError::Stuck {
                    what: format!("{} opened no QMP socket", self.program),
                    seconds: timeout.as_secs(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Lets the guest run for `time`, failing early if QEMU exits.
    fn sleep(&mut self, time: Duration) -> Result<(), CaptureError> {
        let until = Instant::now() + time;
        while Instant::now() < until {
            self.check_running()?;
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
        Ok(())
    }

    fn check_running(&mut self) -> Result<(), CaptureError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(self.exited(status)),
            Ok(None) => Ok(()),
            Err(source) => Err(CaptureError::Spawn {
                program: self.program.clone(),
                source,
            }),
        }
    }

    /// A QMP failure of a QEMU that has exited is told by what QEMU printed.
    fn explain<T>(&mut self, result: Result<T, CaptureError>) -> Result<T, CaptureError> {
        match result {
            Err(CaptureError::Qmp(e)) => {
                // The socket closes a moment before the process is gone.
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return Err(self.exited(status));
                    }
                    std::thread::sleep(POLL);
                }
                Err(CaptureError::Qmp(e))
            }
            other => other,
        }
    }

    fn exited(&self, status: ExitStatus) -> CaptureError {
        let mut stderr = String::new();
        if let Ok(file) = File::open(self.dir.path().join("stderr")) {
            // The first lines say why; a QEMU that printed megabytes is cut short.
            let _ = file.take(4096).read_to_string(&mut stderr);
        }
        CaptureError::Exited {
            program: self.program.clone(),
            status,
            stderr,
        }
    }

    /// Waits for QEMU to exit after `quit`, killing it after a grace period. An exit
    /// status other than success is reported.
    fn reap(&mut self) -> Option<CaptureError> {
        let until = Instant::now() + QUIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return None,
                Ok(Some(status)) => return Some(self.exited(status)),
                Ok(None) if Instant::now() < until => std::thread::sleep(POLL),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The versioned machine types (`pc-q35-7.2`, not the alias `q35`) a QEMU binary offers,
/// from its `-machine help`, sorted.
pub fn machine_types(qemu: &str, timeout: Duration) -> Result<Vec<String>, CaptureError> {
    let help = run_to_end(qemu, &["-machine", "help"], timeout)?;
    Ok(versioned_machine_types(&help))
}

/// Writes `qemu -M machine -dump-vmstate` into `out`: every device class's description
/// with field versions, subsections and minimum versions, which settles for `check` what
/// two dumps leave open. Renamed into place once complete.
pub fn dump_vmstate(
    qemu: &str,
    machine: &str,
    out: &Path,
    timeout: Duration,
) -> Result<(), CaptureError> {
    let mut part = out.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let part_arg = part.display().to_string();
    let written = run_to_end(
        qemu,
        &["-M", machine, "-nodefaults", "-dump-vmstate", &part_arg],
        timeout,
    )
    .and_then(|_| {
        std::fs::rename(&part, out).map_err(|source| CaptureError::Output {
            path: out.to_path_buf(),
            source,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// Runs `qemu args...` to its end (killed after `timeout`) and returns what it printed; a
/// failure carries what it printed on stderr.
fn run_to_end(qemu: &str, args: &[&str], timeout: Duration) -> Result<String, CaptureError> {
    let program = format!("{qemu} {}", args.join(" "));
    let spawn_error = |source| CaptureError::Spawn {
        program: program.clone(),
        source,
    };
    let dir = tempfile::tempdir().map_err(spawn_error)?;
    let (stdout_path, stderr_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).map_err(spawn_error)?)
        .stderr(File::create(&stderr_path).map_err(spawn_error)?)
        .spawn()
        .map_err(spawn_error)?;
    let until = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < until => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CaptureError::Stuck {
                    what: format!("{program} did not finish"),
                    seconds: timeout.as_secs(),
                });
            }
        }
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    if !status.success() {
        return Err(CaptureError::Exited {
            program,
            status,
            stderr: read(&stderr_path).chars().take(4096).collect(),
        });
    }
    Ok(read(&stdout_path))
}

/// The first word of each `-machine help` line that ends in a version
/// (`pc-q35-7.2`, `pc-q35-4.0.1`), sorted by family, then version.
pub fn versioned_machine_types(help: &str) -> Vec<String> {
    let mut types: Vec<(&str, Vec<u64>, &str)> = help
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| {
            let (family, version) = name.rsplit_once('-')?;
            let numbers: Vec<u64> = version
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            (numbers.len() >= 2).then_some((family, numbers, name))
        })
        .collect();
    types.sort();
    types.dedup();
    types
        .into_iter()
        .map(|(_, _, name)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versioned_types_are_listed() {
        let help = "Supported machines are:\n\
            microvm              microvm (i386)\n\
            pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\n\
            pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)\n\
            pc-q35-2.10          Standard PC (Q35 + ICH9, 2009) (deprecated)\n\
            pc-q35-4.0.1         Standard PC (Q35 + ICH9, 2009) (deprecated)\n\
            pc-q35-2.9           Standard PC (Q35 + ICH9, 2009) (deprecated)\n\
            isapc                ISA-only PC\n\
            none                 empty machine\n\
            x-remote             Experimental remote machine\n";
        assert_eq!(
            versioned_machine_types(help),
            ["pc-i440fx-7.2", "pc-q35-2.9", "pc-q35-2.10", "pc-q35-4.0.1"]
        );
    }

    #[test]
    fn the_sidecar_sits_beside_the_dump() {
        assert_eq!(
            sidecar_path(Path::new("dumps/pc-q35-7.2-old.mig")),
            Path::new("dumps/pc-q35-7.2-old.mig.json")
        );
    }
}
