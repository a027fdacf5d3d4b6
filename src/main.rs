//! The `migdiff` binary: parse arguments, run, map the outcome to diff(1)-style exit codes
//! (0 same, 1 different, 2 trouble), print any error chain once.

use std::process::ExitCode;

use migdiff::cli;

fn main() -> ExitCode {
    match cli::run() {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(err) => {
            // A closed pipe (`migdiff a b | head`) is not trouble, whichever writer met it.
            let broken_pipe = err.chain().any(|e| {
                let kind = e
                    .downcast_ref::<std::io::Error>()
                    .map(std::io::Error::kind)
                    .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
                kind == Some(std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("migdiff: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
