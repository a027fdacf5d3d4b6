//! `migdiff capture` against a fake QEMU: a thread speaking QMP on a unix socket that
//! "migrates" a committed dump into the descriptor migdiff hands it (getfd), or fails the
//! way QEMU does. No QEMU needed; `migdiff capture` on real QEMU is in README.md.

use std::fs::File;
use std::io::{IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::{json, Value};

const FIXTURE: &str = "testdata/pc72-qemu72.mig";

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap()
}

fn migdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .output()
        .unwrap()
}

/// How the fake QEMU behaves.
#[derive(Clone, Copy)]
struct Fake {
    /// `query-status` before the migration.
    runstate: &'static str,
    /// `query-migrate`'s final answer: completed, or failed with this error-desc.
    fail_with: Option<&'static str>,
    /// Whether the migration stays `active` for ever.
    stuck: bool,
}

/// Reads what migdiff sends, line by line, collecting any descriptor passed with it.
struct Peer {
    stream: UnixStream,
    pending: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Peer {
    fn line(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let mut buf = [0u8; 4096];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = recvmsg(
                &self.stream,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::empty(),
            )
            .unwrap();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = message {
                    self.fds.extend(fds);
                }
            }
            if got.bytes == 0 {
                return None;
            }
            self.pending.extend_from_slice(&buf[..got.bytes]);
        }
    }
}

/// A fake QEMU on `dir/qmp.sock`; returns the commands it was sent.
fn fake_qemu(dir: &Path, fake: Fake) -> (PathBuf, JoinHandle<Vec<String>>) {
    let socket = dir.join("qmp.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut say = |value: Value| writer.write_all(format!("{value}\n").as_bytes()).unwrap();
        say(json!({"QMP": {"version": {}, "capabilities": ["oob"]}}));
        let mut peer = Peer {
            stream,
            pending: Vec::new(),
            fds: Vec::new(),
        };
        let mut seen = Vec::new();
        let mut migration: Option<OwnedFd> = None;
        while let Some(request) = peer.line() {
            let command = request["execute"].as_str().unwrap().to_string();
            let id = request["id"].clone();
            seen.push(command.clone());
            let answer = match command.as_str() {
                "query-version" => json!({
                    "qemu": {"major": 7, "minor": 2, "micro": 22}, "package": "fake"
                }),
                "query-status" => {
                    json!({"status": fake.runstate, "running": fake.runstate == "running"})
                }
                "getfd" => {
                    assert_eq!(request["arguments"]["fdname"], "migdiff-capture");
                    migration = peer.fds.pop();
                    json!({})
                }
                "migrate" => {
                    assert_eq!(request["arguments"]["uri"], "fd:migdiff-capture");
                    say(json!({"event": "MIGRATION", "data": {"status": "setup"}}));
                    // The stream goes into the pipe, then QEMU closes it.
                    let mut pipe = File::from(migration.take().expect("no descriptor"));
                    if fake.fail_with.is_none() {
                        pipe.write_all(&fixture()).unwrap();
                    }
                    json!({})
                }
                "query-migrate" => match fake.fail_with {
                    _ if fake.stuck => json!({"status": "active"}),
                    None => json!({"status": "completed", "total-time": 7}),
                    Some(desc) => json!({"status": "failed", "error-desc": desc}),
                },
                _ => json!({}),
            };
            say(json!({"return": answer, "id": id}));
        }
        seen
    });
    (socket, handle)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_running_vm_is_captured_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = fake_qemu(
        dir.path(),
        Fake {
            runstate: "running",
            fail_with: None,
            stuck: false,
        },
    );
    let dump = dir.path().join("vm.mig");
    let out = migdiff(&[
        "capture",
        "--qmp",
        socket.to_str().unwrap(),
        "-o",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dump).unwrap(), fixture());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("bytes from QEMU 7.2.22 (fake) (was running); the guest was resumed"),
        "{stdout}"
    );
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("vm.mig.json")).unwrap()).unwrap();
    assert_eq!(sidecar["qemu"]["qemu"]["minor"], 2);
    assert_eq!(sidecar["runstate"], "running");
    assert_eq!(sidecar["resumed"], true);
    assert_eq!(sidecar["stream_bytes"], fixture().len());
    assert_eq!(sidecar["command_line"], Value::Null);
    let seen = server.join().unwrap();
    assert_eq!(seen.first().map(String::as_str), Some("qmp_capabilities"));
    assert_eq!(seen.last().map(String::as_str), Some("cont"));
    // The dump decodes: what QEMU wrote is what migdiff kept.
    let show = migdiff(&["show", dump.to_str().unwrap()]);
    assert_eq!(show.status.code(), Some(0));
}

#[test]
fn leave_paused_and_a_paused_guest_get_no_cont() {
    for (runstate, flags) in [("running", &["--leave-paused"][..]), ("paused", &[][..])] {
        let dir = tempfile::tempdir().unwrap();
        let (socket, server) = fake_qemu(
            dir.path(),
            Fake {
                runstate,
                fail_with: None,
                stuck: false,
            },
        );
        let dump = dir.path().join("vm.mig");
        let mut args = vec![
            "capture",
            "--qmp",
            socket.to_str().unwrap(),
            "-o",
            dump.to_str().unwrap(),
        ];
        args.extend(flags);
        let out = migdiff(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .contains("the guest stays paused (postmigrate) until cont"),
            "{runstate}"
        );
        let seen = server.join().unwrap();
        assert!(!seen.contains(&"cont".to_string()), "{runstate}: {seen:?}");
    }
}

#[test]
fn a_failed_migration_gives_qemu_s_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = fake_qemu(
        dir.path(),
        Fake {
            runstate: "prelaunch",
            fail_with: Some("Unable to write to socket: Broken pipe"),
            stuck: false,
        },
    );
    let dump = dir.path().join("vm.mig");
    let out = migdiff(&[
        "capture",
        "--qmp",
        socket.to_str().unwrap(),
        "-o",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("migration failed: Unable to write to socket: Broken pipe"),
        "{}",
        stderr(&out)
    );
    assert!(!server.join().unwrap().contains(&"cont".to_string()));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("vm.mig"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_migration_that_never_completes_is_cancelled_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = fake_qemu(
        dir.path(),
        Fake {
            runstate: "running",
            fail_with: None,
            stuck: true,
        },
    );
    let dump = dir.path().join("vm.mig");
    let out = migdiff(&[
        "capture",
        "--timeout",
        "1",
        "--qmp",
        socket.to_str().unwrap(),
        "-o",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("migration not completed after 1 s (status active); cancelled"),
        "{}",
        stderr(&out)
    );
    let seen = server.join().unwrap();
    assert_eq!(seen.last().map(String::as_str), Some("migrate_cancel"));
    assert!(!dump.exists());
}

#[test]
fn a_socket_that_says_nothing_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let out = migdiff(&[
        "capture",
        "--timeout",
        "1",
        "--qmp",
        socket.to_str().unwrap(),
        "-o",
        dir.path().join("a.mig").to_str().unwrap(),
    ]);
    drop(listener);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("QMP: no answer waiting for the greeting (timed out)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_socket_and_one_that_is_not_qmp_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.sock");
    let out = migdiff(&[
        "capture",
        "--qmp",
        missing.to_str().unwrap(),
        "-o",
        dir.path().join("a.mig").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "cannot connect to QMP socket {}: No such file or directory",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );

    let socket = dir.path().join("ssh.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    });
    let out = migdiff(&[
        "capture",
        "--qmp",
        socket.to_str().unwrap(),
        "-o",
        dir.path().join("a.mig").to_str().unwrap(),
    ]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "is not a QMP socket: its first line is not a QMP greeting: \"SSH-2.0-OpenSSH_9.6\""
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_qemu_that_exits_early_is_told_by_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    // Stands for QEMU given a misspelt machine type; migdiff's own arguments follow it.
    let out = migdiff(&[
        "capture",
        "-o",
        dir.path().join("a.mig").to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo 'qemu-system-x86_64: unsupported machine type: \"pc-q53\"' >&2; exit 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "sh exited early (exit status: 1): qemu-system-x86_64: unsupported machine type: \"pc-q53\""
        ),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("a.mig").exists());
}

#[test]
fn nothing_to_capture_is_a_usage_error() {
    let out = migdiff(&["capture", "-o", "x.mig"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nothing to capture"),
        "{}",
        stderr(&out)
    );
}
