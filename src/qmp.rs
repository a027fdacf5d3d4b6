//! A small QMP client: JSON lines over a unix socket (QEMU's `docs/interop/qmp-spec.rst`).
//! Reads the greeting, negotiates capabilities, sends each command with an `id` and skips
//! the asynchronous events (`STOP`, `MIGRATION`, `RESUME`, ...) until the reply with that id.
//!
//! Hand-written rather than the `qapi` crate: migdiff sends six commands and reads three
//! fields of their replies, and `qapi`'s generated types pin one QEMU schema, while a
//! capture must talk to QEMU 7.2 and 10.0 alike.

use std::fmt;
use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest reply line accepted: `query-migrate` and `query-version` answer in well under a
/// kilobyte; something that sends megabytes without a newline is not QMP.
const MAX_LINE: u64 = 1 << 20;

/// Why a QMP exchange failed.
#[derive(Debug)]
pub enum QmpError {
    /// The socket could not be connected to (missing, refused, not a socket).
    Connect { path: PathBuf, source: io::Error },
    /// Reading or writing failed; a read timeout reads as `TimedOut` or `WouldBlock`.
    Io { during: String, source: io::Error },
    /// The peer closed the connection.
    Closed { during: String },
    /// The peer does not speak QMP: its first line is not a QMP greeting.
    NotQmp { path: PathBuf, first_line: String },
    /// A reply that is not the JSON QMP promises.
    Protocol { during: String, reason: String },
    /// QEMU answered the command with an error.
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QmpError::Connect { path, source } => {
                write!(
                    f,
                    "cannot connect to QMP socket {}: {source}",
                    path.display()
                )
            }
            QmpError::Io { during, source }
                if matches!(
                    source.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                write!(f, "QMP: no answer {during} (timed out)")
            }
            QmpError::Io { during, source } => write!(f, "QMP: {during}: {source}"),
            QmpError::Closed { during } => write!(f, "QMP: QEMU closed the connection {during}"),
            QmpError::NotQmp { path, first_line } => write!(
                f,
                "{} is not a QMP socket: its first line is not a QMP greeting: {first_line:?}",
                path.display()
            ),
            QmpError::Protocol { during, reason } => {
                write!(f, "QMP: unexpected reply {during}: {reason}")
            }
            QmpError::Command {
                command,
                class,
                desc,
            } => write!(f, "QMP {command} failed: {desc} ({class})"),
        }
    }
}

// The source is part of the message: `{:#}` chains would print it twice.
impl std::error::Error for QmpError {}

/// QEMU's version as `query-version` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct QemuVersion {
    pub qemu: VersionTriple,
    /// The distribution's package string (`Debian 1:10.0.2+ds-1`), often empty.
    pub package: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct VersionTriple {
    pub major: u64,
    pub minor: u64,
    pub micro: u64,
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let VersionTriple {
            major,
            minor,
            micro,
        } = self.qemu;
        write!(f, "{major}.{minor}.{micro}")?;
        match self.package.trim() {
            "" => Ok(()),
            package => write!(f, " ({package})"),
        }
    }
}

/// The part of `query-migrate`'s answer a capture needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MigrationInfo {
    /// `setup`, `active`, `device`, `completed`, `failed`, `cancelled`, ...; absent before
    /// the first migration.
    pub status: Option<String>,
    #[serde(rename = "error-desc")]
    pub error_desc: Option<String>,
    /// Milliseconds the migration took, once completed.
    #[serde(rename = "total-time")]
    pub total_time: Option<u64>,
}

/// `query-status`'s run state (`running`, `paused`, `prelaunch`, `postmigrate`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    pub status: String,
}

/// A connection that has negotiated capabilities and accepts commands.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Qmp {
    /// Connects to `path`, reads the greeting and leaves capabilities negotiation mode.
    /// `timeout` bounds each read, so a socket that is not QMP and says nothing fails too.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let io_error = |source| QmpError::Io {
            during: "setting up the socket".into(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
        stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
        let writer = stream.try_clone().map_err(io_error)?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            next_id: 0,
        };
        let during = "waiting for the greeting";
        let greeting = match qmp.read_line(during) {
            Ok(line) => line,
            Err(QmpError::Protocol { reason, .. }) => {
                return Err(QmpError::NotQmp {
                    path: path.to_path_buf(),
                    first_line: reason,
                })
            }
            Err(e) => return Err(e),
        };
        let is_greeting = serde_json::from_str::<Value>(&greeting)
            .is_ok_and(|v| v.get("QMP").is_some_and(Value::is_object));
        if !is_greeting {
            return Err(QmpError::NotQmp {
                path: path.to_path_buf(),
                first_line: greeting.chars().take(80).collect(),
            });
        }
        qmp.execute::<Value>("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Sends `command` and returns its `return` value, skipping events and replies to
    /// other ids.
    pub fn execute<T: DeserializeOwned>(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T, QmpError> {
        self.execute_passing(command, arguments, None)
    }

    /// [`execute`](Qmp::execute), passing `fd` along with the command (`SCM_RIGHTS`), as
    /// `getfd` wants it.
    pub fn execute_passing<T: DeserializeOwned>(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<T, QmpError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let during = format!("to {command}");
        let mut line = message.to_string();
        line.push('\n');
        self.send(line.as_bytes(), fd)
            .map_err(|source| match source.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => QmpError::Closed {
                    during: during.clone(),
                },
                _ => QmpError::Io {
                    during: during.clone(),
                    source,
                },
            })?;
        loop {
            let line = self.read_line(&during)?;
            let reply: Value = serde_json::from_str(&line).map_err(|e| QmpError::Protocol {
                during: during.clone(),
                reason: format!("not JSON ({e}): {:?}", truncated(&line)),
            })?;
            if reply.get("event").is_some() || reply.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                let field = |name: &str| {
                    error
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            let value = reply
                .get("return")
                .cloned()
                .ok_or_else(|| QmpError::Protocol {
                    during: during.clone(),
                    reason: format!("neither return nor error: {:?}", truncated(&line)),
                })?;
            return serde_json::from_value(value).map_err(|e| QmpError::Protocol {
                during: during.clone(),
                reason: e.to_string(),
            });
        }
    }

    /// Writes `bytes`, the first of them with `fd` attached.
    fn send(&mut self, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let Some(fd) = fd else {
            return self.writer.write_all(bytes);
        };
        let fds = [fd];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for the file descriptor"));
        }
        let sent = sendmsg(
            &self.writer,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::empty(),
        )?;
        self.writer.write_all(bytes.get(sent..).unwrap_or_default())
    }

    /// One line from QEMU, without its newline.
    fn read_line(&mut self, during: &str) -> Result<String, QmpError> {
        let mut buf = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .map_err(|source| QmpError::Io {
                during: during.to_string(),
                source,
            })?;
        if read == 0 {
            return Err(QmpError::Closed {
                during: during.to_string(),
            });
        }
        if buf.last() != Some(&b'\n') && read as u64 == MAX_LINE {
            return Err(QmpError::Protocol {
                during: during.to_string(),
                reason: format!("a line longer than {MAX_LINE} bytes"),
            });
        }
        String::from_utf8(buf)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| QmpError::Protocol {
                during: during.to_string(),
                reason: format!(
                    "not UTF-8: {:?}",
                    truncated(&String::from_utf8_lossy(e.as_bytes()))
                ),
            })
    }
}

/// The start of a long line, for an error message.
fn truncated(line: &str) -> String {
    line.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A server that greets, then answers each request with `reply(request)` lines.
    fn serve(
        dir: &Path,
        greeting: &'static str,
        reply: fn(&Value) -> Vec<String>,
    ) -> std::thread::JoinHandle<()> {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            writer.write_all(greeting.as_bytes()).unwrap();
            for line in BufReader::new(stream).lines() {
                let request: Value = serde_json::from_str(&line.unwrap()).unwrap();
                for out in reply(&request) {
                    writer.write_all(out.as_bytes()).unwrap();
                }
            }
        })
    }

    const GREETING: &str = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n";

    #[test]
    fn events_and_other_ids_are_skipped_and_errors_carry_qemu_s_desc() {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(dir.path(), GREETING, |request| {
            let id = &request["id"];
            match request["execute"].as_str().unwrap() {
                "query-status" => vec![
                    "{\"event\": \"STOP\", \"timestamp\": {}}\n".into(),
                    "{\"return\": {\"status\": \"other id\"}, \"id\": 999}\n".into(),
                    format!("{{\"return\": {{\"status\": \"paused\"}}, \"id\": {id}}}\n"),
                ],
                "cont" => vec![format!(
                    "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"nope\"}}, \"id\": {id}}}\n"
                )],
                _ => vec![format!("{{\"return\": {{}}, \"id\": {id}}}\n")],
            }
        });
        let mut qmp = Qmp::connect(&dir.path().join("qmp.sock"), Duration::from_secs(5)).unwrap();
        let status: Status = qmp.execute("query-status", None).unwrap();
        assert_eq!(status.status, "paused");
        let err = qmp.execute::<Value>("cont", None).unwrap_err();
        assert_eq!(err.to_string(), "QMP cont failed: nope (GenericError)");
        drop(qmp);
        server.join().unwrap();
    }

    #[test]
    fn a_greeting_that_is_not_qmp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(dir.path(), "SSH-2.0-OpenSSH_9.6\n", |_| Vec::new());
        let err = Qmp::connect(&dir.path().join("qmp.sock"), Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(
            matches!(&err, QmpError::NotQmp { first_line, .. } if first_line == "SSH-2.0-OpenSSH_9.6"),
            "{err}"
        );
        server.join().unwrap();
    }

    #[test]
    fn version_prints_with_its_package() {
        let v: QemuVersion = serde_json::from_str(
            r#"{"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": "Debian 1:10.0.2+ds-1"}"#,
        )
        .unwrap();
        assert_eq!(v.to_string(), "10.0.2 (Debian 1:10.0.2+ds-1)");
    }
}
