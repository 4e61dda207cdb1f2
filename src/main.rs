//! The `keel` binary: parse the command line, set up logging, call the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: sled copies its nodes on every write and a
/// pass allocates per account, and glibc malloc was a third of a full pass's profile.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = keel::cli::Cli::parse();
    // The daemon reports each tick at info level; one-shot commands only warn.
    let daemon = matches!(&cli.command, keel::cli::Command::Run(args) if !args.once);
    let default_level = match cli.verbose {
        0 if daemon => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match keel::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A user error reads as a message about their input, cargo-style, never a panic.
            eprint!("error: {err}");
            if !format!("{err}").ends_with('\n') {
                eprintln!();
            }
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
