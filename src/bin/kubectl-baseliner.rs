//! `baseliner` as a kubectl plugin: kubectl runs `kubectl-baseliner` from
//! $PATH for `kubectl baseliner ...`.

use std::process::ExitCode;

fn main() -> ExitCode {
    baseliner::cli::main("kubectl baseliner")
}
