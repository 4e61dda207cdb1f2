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

    // A panic inside the storage engine is a damaged store, said as such, not a crash.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(message) = keel::store::engine_panic_message(info) {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
        default_hook(info);
    }));
    match keel::cli::run(cli) {
        Ok(code) => code,
        // `keel accounts list | head`: the reader went away; like every Unix tool, stop
        // quietly.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
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

/// Whether `err` is a write to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>().and_then(|e| e.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
