//! The `tether` command-line tool: `tether demo` syncs a generated metadata catalog from an
//! in-process cloud into a local SQLite replica; `status`, `history` and `conflicts` inspect a
//! replica file (`--json` for scripts).
//!
//! Each command group lives in its own module with its own clap `Args`; adding a subcommand
//! is one variant in [`Command`] and one module.

mod demo;
mod inspect;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tether: a local, verified replica of cloud data.
#[derive(Parser)]
#[command(name = "tether", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sync a generated metadata catalog from an in-process cloud into a local replica, change
    /// it on both sides, sync again, and verify the replica equals the cloud.
    Demo(demo::Args),
    /// Show a scope's status: checkpoint, counts, digest, pending edits, conflicts.
    Status(inspect::Target),
    /// Show a scope's sync runs, newest first.
    History(inspect::HistoryArgs),
    /// Show the local edits the cloud overwrote.
    Conflicts(inspect::Target),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Status(t) => inspect::status(&t),
        Command::History(h) => inspect::history(&h),
        Command::Conflicts(t) => inspect::conflicts(&t),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.kind().as_str());
            ExitCode::FAILURE
        }
    }
}
