//! The README's examples are real: every `$ migdiff ...` command shown in a code block is
//! run from the repository's root, and every output line shown under it must be a line of
//! what the command prints on stdout or stderr (`...` inside a line stands for any text;
//! `...` alone skips lines). Every command of the usage summary is run at least once, and
//! a `migdiff` command quoted in the text on a bundled dump must be one of the examples,
//! so that no output is shown that is not checked.

use std::path::Path;
use std::process::Command;

/// `(command line, shown output lines)` of each `$ migdiff` example.
fn examples(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_block = false;
    // The example the lines of this block belong to: none until a `$ migdiff` line, and
    // none after another command.
    let mut current: Option<usize> = None;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            current = None;
            continue;
        }
        if !in_block {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(cmd) if cmd.starts_with("migdiff ") => {
                out.push((cmd.to_string(), Vec::new()));
                current = Some(out.len() - 1);
            }
            Some(_) => current = None,
            None => {
                if let Some((_, shown)) = current.and_then(|i| out.get_mut(i)) {
                    shown.push(line.to_string());
                }
            }
        }
    }
    out
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The commands the usage summary lists: `show`, `export`, ..., and the diff itself
/// (`None`).
fn usage_commands(readme: &str) -> Vec<Option<String>> {
    let usage = readme.split("## Usage").nth(1).unwrap();
    let block = usage.split("```").nth(1).unwrap();
    let commands: Vec<Option<String>> = block
        .lines()
        .filter_map(|l| l.strip_prefix("migdiff "))
        .map(|rest| {
            let word = rest.split_whitespace().next().unwrap_or_default();
            let is_command = word.chars().all(|c| c.is_ascii_lowercase());
            is_command.then(|| word.to_string())
        })
        .collect();
    assert!(commands.len() >= 7, "{commands:?}");
    commands
}

#[test]
fn every_command_and_quoted_run_is_an_example() {
    let readme = readme();
    let examples = examples(&readme);
    let commands: Vec<&str> = examples.iter().map(|(c, _)| c.as_str()).collect();
    // Commands that run QEMU, which the tests do not have.
    let needs_qemu = [Some("capture".to_string()), Some("gate".to_string())];
    for command in usage_commands(&readme) {
        if needs_qemu.contains(&command) {
            continue;
        }
        let covered = commands.iter().any(|c| {
            let first = c.split_whitespace().nth(1).unwrap_or_default();
            match &command {
                Some(name) => first == name,
                None => first.starts_with('-') || first.starts_with("testdata/"),
            }
        });
        assert!(
            covered,
            "no `$ migdiff` example of {command:?} in README.md"
        );
    }
    // `migdiff ... testdata/...` quoted in the text: its output, if shown, is an example's.
    for quoted in readme.split('`').skip(1).step_by(2) {
        if quoted.starts_with("migdiff ") && quoted.contains("testdata/") {
            assert!(
                commands.contains(&quoted),
                "`{quoted}` is quoted but not an example"
            );
        }
    }
}

#[test]
fn readme_examples_print_what_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = examples(&readme());
    assert!(examples.len() >= 3, "only {} examples", examples.len());
    for (cmd, shown) in examples {
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        let printed = [out.stdout, out.stderr].concat();
        let printed = String::from_utf8_lossy(&printed);
        let printed: Vec<&str> = printed.lines().collect();
        for line in shown.iter().filter(|l| l.trim() != "..." && !l.is_empty()) {
            let found = printed.iter().any(|p| shows(line, p));
            assert!(
                found,
                "`{cmd}` does not print {line:?}; it printed:\n{}",
                printed.join("\n")
            );
        }
    }
}

/// Whether `shown` (with `...` for any text) is `printed`.
fn shows(shown: &str, printed: &str) -> bool {
    let pieces: Vec<&str> = shown.split("...").collect();
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return false;
    };
    if pieces.len() == 1 {
        return shown == printed;
    }
    if !printed.starts_with(first) || !printed.ends_with(last) {
        return false;
    }
    let mut rest = &printed[first.len()..printed.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}
