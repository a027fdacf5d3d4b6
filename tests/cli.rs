//! The `migdiff` binary on real fixture pairs: exit codes, output (snapshots), colour.
//! Update snapshots with `INSTA_UPDATE=always cargo test` or `cargo insta review`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Runs migdiff in testdata/ so that paths in the output are the bare file names.
fn migdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .current_dir(fixture(""))
        .env_remove("NO_COLOR")
        .output()
        .expect("migdiff runs")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = migdiff(args);
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Exit code and stdout, as one snapshot.
fn snapshot_of(args: &[&str]) -> String {
    let (code, stdout, stderr) = run(args);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    format!("exit: {code}\n{stdout}")
}

#[test]
fn a_dump_against_itself_is_silent_and_exit_0() {
    let (code, stdout, _) = run(&["pc10-stopped.mig", "pc10-stopped.mig"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
}

#[test]
fn same_stopped_vm_dumped_twice_differs_only_in_default_noise() {
    let (code, stdout, _) = run(&["pc10-stopped.mig", "pc10-stopped-again.mig"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    // The noise is there: the defaults hide it.
    insta::assert_snapshot!(snapshot_of(&[
        "--no-default-ignores",
        "pc10-stopped.mig",
        "pc10-stopped-again.mig"
    ]));
}

#[test]
fn same_machine_type_on_qemu_7_2_and_10() {
    insta::assert_snapshot!(snapshot_of(&["pc72-qemu72.mig", "pc72-qemu10.mig"]));
}

#[test]
fn q35_against_pc_lists_devices_on_one_side() {
    insta::assert_snapshot!(snapshot_of(&[
        "--format",
        "summary",
        "q35-10.mig",
        "pc10-stopped.mig"
    ]));
    let (code, stdout, _) = run(&["q35-10.mig", "pc10-stopped.mig"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("device  0000:00:1f.0/ICH9LPC (0): only in old"));
    assert!(stdout.contains("device  0000:00:01.0/PIIX3 (0): only in new"));
}

#[test]
fn one_cpu_against_two() {
    insta::assert_snapshot!(snapshot_of(&[
        "--format",
        "summary",
        "pc10-stopped.mig",
        "pc10-smp2.mig"
    ]));
    let (_, stdout, _) = run(&["pc10-stopped.mig", "pc10-smp2.mig"]);
    for device in ["cpu (1)", "cpu_common (1)", "apic (1)"] {
        assert!(
            stdout.contains(&format!("device  {device}: only in new")),
            "{device}"
        );
    }
}

#[test]
fn stopped_against_running() {
    insta::assert_snapshot!(snapshot_of(&["pc10-stopped.mig", "pc10-running.mig"]));
}

#[test]
fn json_output_has_the_documented_fields() {
    let (code, stdout, _) = run(&["--format", "json", "pc72-qemu72.mig", "pc72-qemu10.mig"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["old"]["machine"], "pc-i440fx-7.2");
    let rename = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "field_renamed")
        .expect("a rename");
    assert_eq!(rename["device"], "hpet (0)");
    assert_eq!(rename["path"], "num_timers_save");
    assert_eq!(rename["class"], "schema");
    assert_eq!(rename["renamed_from"], "num_timers");
    assert_eq!(rename["wire"]["forward"], "identical");
    // Values are typed, with the text the other outputs print.
    let runstate = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "has_vm_was_suspended")
        .expect("an added field");
    assert_eq!(runstate["new"]["type"], "int");
    assert_eq!(runstate["new"]["value"], 1);
    assert_eq!(runstate["new"]["text"], "0x01");
    assert_eq!(runstate["new_type"]["len"], 1);
    assert!(rename["old_offset"].as_u64().unwrap() > 0);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let pair = ["pc72-qemu72.mig", "pc72-qemu10.mig"];
    let (_, always, _) = run(&["--color", "always", pair[0], pair[1]]);
    assert!(always.contains("\x1b[31m-") && always.contains("\x1b[32m+"));
    let (_, never, _) = run(&["--color", "never", pair[0], pair[1]]);
    assert!(!never.contains('\x1b'));
    // `auto` with stdout a pipe, as here: no colour.
    let (_, auto, _) = run(pair.as_slice());
    assert_eq!(auto, never);
}

#[test]
fn ignore_patterns_and_ignore_file() {
    let pair = ["pc72-qemu72.mig", "pc72-qemu10.mig"];
    let (code, stdout, _) = run(&[
        "--format",
        "summary",
        "--ignore",
        "globalstate (0)/*",
        "--ignore",
        "hpet (0)/*",
        "--ignore",
        "ram/*",
        pair[0],
        pair[1],
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.ends_with("no differences; 11 ignored\n"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ignore");
    std::fs::write(
        &file,
        "# expected across QEMU builds\nglobalstate (0)/*\nhpet (0)/*  # renamed\nram/*\n",
    )
    .unwrap();
    let (code, _, _) = run(&["--ignore-file", file.to_str().unwrap(), pair[0], pair[1]]);
    assert_eq!(code, 0);
}

#[test]
fn trouble_is_exit_2_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(fixture("pc10-stopped.mig")).unwrap();
    let cut = dir.path().join("cut.mig");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let (code, stdout, stderr) = run(&["pc10-stopped.mig", cut.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("migdiff: error: "), "{stderr}");
    assert!(stderr.contains("cut.mig"), "{stderr}");
    assert!(stderr.contains("at byte 0x"), "{stderr}");

    let (code, _, stderr) = run(&["pc10-stopped.mig", "no-such-file.mig"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("reading no-such-file.mig"), "{stderr}");
    let (code, _, _) = run(&["--bogus-flag", "a", "b"]);
    assert_eq!(code, 2);
}

#[test]
fn show_prints_the_tree_and_json_round_trips() {
    let (code, text, _) = run(&["show", "pc72-qemu72.mig"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(text);
    let (_, json, _) = run(&["show", "--format", "json", "pc72-qemu72.mig"]);
    let export: migdiff::Export = serde_json::from_str(&json).unwrap();
    let data = std::fs::read(fixture("pc72-qemu72.mig")).unwrap();
    assert_eq!(export.dump, migdiff::decode(&data, None).unwrap());
}

#[test]
fn help_teaches_with_examples_and_exit_codes() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "migdiff old.mig new.mig",
        "--ignore",
        "Exit status: 0",
        "show",
    ] {
        assert!(stdout.contains(needle), "--help lacks {needle}");
    }
}

fn json_changes(args: &[&str]) -> Vec<serde_json::Value> {
    let (_, stdout, _) = run(args);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    doc["changes"].as_array().unwrap().clone()
}

fn meaning_of<'a>(changes: &'a [serde_json::Value], path: &str) -> &'a str {
    let change = changes
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change at {path}"));
    change["meaning"]
        .as_str()
        .unwrap_or_else(|| panic!("no meaning at {path}"))
}

#[test]
fn cpu_changes_are_explained_stopped_vs_running() {
    let changes = json_changes(&["--format", "json", "pc10-stopped.mig", "pc10-running.mig"]);
    // SeaBIOS cleared CR0.NW/CD and enabled interrupts.
    assert_eq!(meaning_of(&changes, "env.cr[0]"), "cr0: -NW -CD");
    assert_eq!(meaning_of(&changes, "env.eflags"), "rflags: +PF +ZF +IF");
    assert_eq!(meaning_of(&changes, "env.eip"), "rip");
    assert_eq!(
        meaning_of(&changes, "env.segs[1].flags"),
        "CS: attributes unchanged (base/limit bits only)"
    );
    // The unified output lists them above the diff and annotates the lines.
    let (_, text, _) = run(&["pc10-stopped.mig", "pc10-running.mig"]);
    assert!(text.contains(
        "value   cpu (0)/env.cr[0]: 0x0000000060000010 -> 0x0000000000000010  (cr0: -NW -CD)"
    ));
    assert!(text.contains("+  env.eflags = 0x0000000000000246  # rflags: PF|ZF|IF"));
}

#[test]
fn cpu_model_changes_cpuid_dependent_state() {
    let (code, text, _) = run(&["pc10-stopped.mig", "pc10-cpu-max.mig"]);
    assert_eq!(code, 1);
    // EDX at reset holds the CPUID signature: qemu64 versus max.
    assert!(
        text.contains(
            "value   cpu (0)/env.regs[2]: 0x0000000000060fb1 -> 0x0000000000000663  (edx at \
             reset is the CPU signature: family 15 model 107 stepping 1 -> family 6 model 6 \
             stepping 3: the CPU models differ (CPUID itself is not in the stream))"
        ),
        "{text}"
    );
    // -cpu max has the IA32_MISC_ENABLE MSR, sent in its own subsection.
    assert!(text.contains("+  cpu/msr_ia32_misc_enable (subsection, version 1)"));
    let changes = json_changes(&["--format", "json", "pc10-stopped.mig", "pc10-cpu-max.mig"]);
    let added = changes
        .iter()
        .find(|c| c["kind"] == "subsection_added")
        .unwrap();
    assert_eq!(added["path"], "cpu/msr_ia32_misc_enable");
}

#[test]
fn i386_against_x86_64_cpu_state_is_a_schema_change() {
    // VMSTATE_UINTTL is 32 bits on qemu-system-i386 and 64 on x86_64; i386 has 8 GPRs.
    let changes = json_changes(&["--format", "json", "pc10-stopped.mig", "pc10-i386.mig"]);
    let find = |path: &str| {
        changes
            .iter()
            .find(|c| c["path"] == path)
            .unwrap_or_else(|| panic!("{path}"))
    };
    assert_eq!(find("env.eip")["kind"], "type_changed");
    assert_eq!(find("env.eip")["old_type"]["type"], "uint64");
    assert_eq!(find("env.eip")["new_type"]["len"], 4);
    assert_eq!(find("env.regs")["kind"], "length_changed");
    assert_eq!(find("env.regs")["old"]["value"], 16);
    assert_eq!(find("env.regs")["new"]["text"], "8 elements");
    // Only the CPU differs.
    assert!(
        changes.iter().all(|c| c["device"] == "cpu (0)"),
        "{changes:?}"
    );
}

/// Every renderer formats the same comparison: QEMU 7.2 against 10.0 on pc-i440fx-7.2, with
/// an allow list that allows some of it and has a stale pinned rule, so that counted,
/// allowed and stale all show.
mod renderers {
    use super::*;

    const ALLOW: &str = "\
globalstate (0)/*                    # reshaped after 7.2, same bytes
hpet (0)/num_timers_save = 1 -> 2    # pinned to values it does not have
";

    /// `migdiff [ARGS...] --allow FILE OLD NEW` (ARGS may start with a subcommand).
    fn with_allow(args: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let allow = dir.path().join("gate.allow");
        std::fs::write(&allow, ALLOW).unwrap();
        let allow = allow.to_str().unwrap().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--allow", &allow]);
        all.extend(["pc72-qemu72.mig", "pc72-qemu10.mig"]);
        snapshot_of(&all).replace(&allow, "gate.allow")
    }

    #[test]
    fn unified() {
        insta::assert_snapshot!(with_allow(&[]));
    }

    #[test]
    fn summary() {
        insta::assert_snapshot!(with_allow(&["--format", "summary"]));
    }

    #[test]
    fn json() {
        insta::assert_snapshot!(with_allow(&["--format", "json"]));
    }

    #[test]
    fn junit() {
        insta::assert_snapshot!(with_allow(&["--format", "junit"]));
    }

    #[test]
    fn markdown_report() {
        insta::assert_snapshot!(
            with_allow(&["report"]).replace(env!("CARGO_PKG_VERSION"), "VERSION")
        );
    }

    #[test]
    fn html_report() {
        insta::assert_snapshot!(
            with_allow(&["report", "--html"]).replace(env!("CARGO_PKG_VERSION"), "VERSION")
        );
    }

    /// A device on one side only is its header and a summary line, unless `--full`: every
    /// one of its lines would be a difference (virtio-net's 46 KB blob was 2,800 rows).
    #[test]
    fn one_sided_devices_are_summarized_unless_full() {
        let pair = ["pc10-stopped.mig", "pc10-virtio-net.mig"];
        insta::assert_snapshot!(snapshot_of(&pair));
        let (code, full, _) = run(&[&["--full"][..], &pair].concat());
        assert_eq!(code, 1);
        assert!(
            full.contains("+[0000:00:02.0/virtio-net (0)] version 11\n+  virtio = 46143 bytes\n")
        );
        // Its zero rows are runs, one line each.
        assert!(full.lines().count() < 100, "{full}");
    }

    /// `patch` (diffy's) applied to `old`: the hunks of migdiff's output, from `--- `.
    fn patched(diff: &str, old: &str) -> String {
        let hunks = &diff[diff.find("\n--- ").expect("a unified diff") + 1..];
        let patch = diffy::Patch::from_str(hunks).expect("a valid unified diff");
        diffy::apply(old, &patch).expect("the hunks apply")
    }

    /// With nothing set aside (no ignores, devices in full), the diff is a unified diff of
    /// the two `show` texts: applied to one, it gives the other.
    #[test]
    fn the_diff_patches_one_show_text_into_the_other() {
        for (old, new) in [
            ("pc72-qemu72.mig", "pc72-qemu10.mig"),
            ("pc10-stopped.mig", "pc10-running.mig"),
            ("pc10-stopped.mig", "pc10-virtio-net.mig"),
            ("q35-10.mig", "pc10-stopped.mig"),
        ] {
            let (code, diff, _) = run(&["--no-default-ignores", "--full", old, new]);
            assert_eq!(code, 1);
            let (_, old_text, _) = run(&["show", old]);
            let (_, new_text, _) = run(&["show", new]);
            assert!(patched(&diff, &old_text) == new_text, "{old} -> {new}");
        }
    }

    /// Under ignores, masked bytes show as `..` (CMOS clock bytes here, in a context line);
    /// that the hunks still patch one filtered document into the other is a unit test of
    /// render::unified.
    #[test]
    fn under_default_ignores_masked_bytes_show_as_dots() {
        let (code, diff, _) = run(&["pc10-stopped.mig", "pc10-smp2.mig"]);
        assert_eq!(code, 1);
        assert!(
            diff.contains("\n   cmos_data +0x0030: 00 7c .. 00"),
            "{diff}"
        );
    }

    #[test]
    fn check_json() {
        insta::assert_snapshot!(snapshot_of(&[
            "check",
            "--format",
            "json",
            "q35-72-am53c974-qemu72.mig",
            "--against",
            "q35-72-am53c974-qemu10.mig",
            "--against",
            "vmstate-q35-72-qemu10.json",
        ]));
    }
}

/// `migdiff export X | head -c1`: the reader goes away; migdiff ends quietly with status 0,
/// as ripgrep does, from every writer (serde_json's included).
#[test]
fn a_closed_pipe_is_not_trouble() {
    use std::io::Read;
    use std::process::Stdio;
    for args in [
        &["export", "q35-10-busy.mig"][..],
        &["show", "--format", "json", "q35-10-busy.mig"],
        &["show", "q35-10-busy.mig"],
        // Markdown fits a comment, smaller than a pipe's buffer: HTML in full does not.
        &[
            "report",
            "--html",
            "--full",
            "pc10-stopped.mig",
            "q35-10-busy.mig",
        ],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_migdiff"))
            .args(args)
            .current_dir(fixture(""))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The subcommands `migdiff --help` lists (help aside).
fn subcommands() -> Vec<String> {
    let (_, help, _) = run(&["--help"]);
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    names
}

#[test]
fn completions_and_man_page_cover_every_subcommand() {
    let commands = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, stderr) = run(&["completions", shell]);
        assert_eq!((code, stderr.as_str()), (0, ""), "{shell}");
        for command in &commands {
            assert!(script.contains(command.as_str()), "{shell}: no {command}");
        }
    }
    let (code, page, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(page.contains(".TH migdiff 1"), "not roff: {page}");
    for command in &commands {
        assert!(page.contains(command.as_str()), "man page: no {command}");
    }
    assert!(page.contains("\\-\\-quiet"), "man page: no --quiet");
}

#[test]
fn a_misspelt_subcommand_is_named_not_read() {
    for (typed, meant) in [("shwo", "show"), ("exprot", "export"), ("chekc", "check")] {
        let (code, stdout, stderr) = run(&[typed, "pc10-stopped.mig"]);
        assert_eq!(code, 2);
        assert_eq!(stdout, "");
        assert_eq!(
            stderr,
            format!("migdiff: error: no file '{typed}'; did you mean `migdiff {meant}`?\n")
        );
    }
    // A file of that name is a file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("pc10-stopped.mig"), dir.path().join("shwo")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["shwo", "shwo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `-o -` is standard output for every command that takes `-o`, never a file named `-`.
#[test]
fn dash_output_is_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = fixture("pc10-stopped.mig");
    let smp2 = fixture("pc10-smp2.mig");
    let (stopped, smp2) = (stopped.to_str().unwrap(), smp2.to_str().unwrap());
    for args in [
        &["export", stopped, "-o", "-"][..],
        &["report", stopped, smp2, "-o", "-"],
        &["report", "--html", stopped, smp2, "--output", "-"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.stdout.len() > 1000, "{args:?}: {out:?}");
        assert!(
            !dir.path().join("-").exists(),
            "{args:?} wrote a file named -"
        );
    }
}

/// Exports (and `show --format json`, the same layout) are indented by default and one
/// line with `--compact`; both read back as the same dump.
#[test]
fn json_is_indented_unless_compact() {
    for command in [&["export"][..], &["show", "--format", "json"]] {
        let with = |extra: &[&str]| {
            let args: Vec<&str> = [command, extra, &["pc10-e1000.mig"]].concat();
            let (code, json, stderr) = run(&args);
            assert_eq!((code, stderr.as_str()), (0, ""), "{args:?}");
            json
        };
        let (indented, compact) = (with(&[]), with(&["--compact"]));
        assert_eq!(compact.lines().count(), 1);
        assert!(indented.lines().count() > 1000);
        assert!(indented.contains("\n  \"dump\": {\n"));
        let read = |text: &str| migdiff::read_export(text.as_bytes()).unwrap().dump;
        assert_eq!(read(&indented), read(&compact));
    }
}

/// `--quiet`: nothing on stderr but errors; the diff and `check` answer by exit status
/// alone, as `cmp -s` does; the commands whose output is the point still write it.
#[test]
fn quiet_says_nothing_but_the_exit_status() {
    // A gzip input and a running guest's dump both add notes to stderr without --quiet.
    let (code, _, stderr) = run(&["pc10-stopped.mig.gz", "pc10-smp2.mig"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("migdiff: note:"), "{stderr}");
    for args in [
        &["--quiet", "pc10-stopped.mig.gz", "pc10-smp2.mig"][..],
        &[
            "pc10-stopped.mig.gz",
            "pc10-smp2.mig",
            "-q",
            "--format",
            "json",
        ],
        &[
            "check",
            "-q",
            "pc10-smp2.mig",
            "--against",
            "pc10-stopped.mig.gz",
        ],
    ] {
        assert_eq!(run(args), (1, String::new(), String::new()), "{args:?}");
    }
    assert_eq!(
        run(&["-q", "pc10-stopped.mig", "pc10-stopped.mig.gz"]),
        (0, String::new(), String::new())
    );
    let (code, stdout, stderr) = run(&["show", "-q", "pc10-stopped.mig.gz"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert!(stdout.starts_with("[stream]\n"), "{stdout}");
    // Trouble is still explained.
    let (code, stdout, stderr) = run(&["-q", "no-such.mig", "pc10-stopped.mig"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.starts_with("migdiff: error: reading no-such.mig"),
        "{stderr}"
    );
}
