//! The README's examples are real: every `$ migdiff ...` command shown in a code block is
//! run from the repository's root, and every output line shown under it must be a line of
//! what the command prints (`...` inside a line stands for any text; `...` alone skips
//! lines).

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

#[test]
fn readme_examples_print_what_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let examples = examples(&readme);
    assert!(examples.len() >= 3, "only {} examples", examples.len());
    for (cmd, shown) in examples {
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
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
