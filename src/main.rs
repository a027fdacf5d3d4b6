//! The `migdiff` binary: parse arguments, run, map the outcome to diff(1)-style exit codes
//! (0 same, 1 different, 2 trouble), print any error chain once.

mod cli;
mod inputs;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(err) => {
            // A closed pipe (`migdiff a b | head`) is not trouble.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("migdiff: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
