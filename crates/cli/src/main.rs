//! The `tether` command-line tool: `tether demo` syncs a generated metadata catalog from an
//! in-process server into a local SQLite replica; `serve` runs a server, `seed` loads it,
//! `sync` and `verify` a replica with it; `status`, `history` and `conflicts` inspect a
//! replica file (`--json` for scripts); `get`, `list`, `put`, `delete` read and edit it.
//!
//! Every command that takes a replica takes `--db` (default [`args::DEFAULT_REPLICA`]) and
//! `--scope` (default `org-1`). Each command group lives in its own module with its own clap
//! `Args`; adding a subcommand is one variant in [`Command`] and one module.

mod admin;
mod args;
mod demo;
mod error;
mod inspect;
mod progress;
mod records;
mod remote;
mod serve;

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
    /// Start a server in-process, load a generated metadata catalog, sync it into a replica, change
    /// it on both sides, sync again, and verify the replica equals the cloud.
    Demo(demo::Args),
    /// Show a scope's status: checkpoint, counts, digest, pending edits, conflicts.
    Status(inspect::Target),
    /// Show a scope's sync runs, newest first.
    History(inspect::HistoryArgs),
    /// Sums of a scope's sync runs over the last days: runs, success rate, mean duration,
    /// records changed, conflicts, bytes.
    Stats(inspect::StatsArgs),
    /// Show the local edits the cloud overwrote.
    Conflicts(inspect::Target),
    /// Run a tether server (SQLite by default, --database-url for PostgreSQL).
    Serve(Box<serve::ServeArgs>),
    /// Sync a scope of a replica file with a server, with a progress bar.
    Sync(remote::SyncArgs),
    /// Compare a replica with the server's digest; --repair fixes differing ranges.
    Verify(remote::VerifyArgs),
    /// Load a generated metadata dataset into a server through its admin API.
    Seed(remote::SeedArgs),
    /// Print a record of the replica.
    Get(records::KeyArgs),
    /// List records of a collection in the replica.
    List(records::ListArgs),
    /// Create or replace a record locally (pushed by the next sync).
    Put(records::PutArgs),
    /// Delete a record locally (pushed by the next sync).
    Delete(records::KeyArgs),
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
        Command::Stats(s) => inspect::stats(&s),
        Command::Conflicts(t) => inspect::conflicts(&t),
        Command::Serve(a) => serve::serve(&a),
        Command::Sync(a) => remote::sync(&a),
        Command::Verify(a) => remote::verify(&a),
        Command::Seed(a) => remote::seed(&a),
        Command::Get(a) => records::get(&a),
        Command::List(a) => records::list(&a),
        Command::Put(a) => records::put(&a),
        Command::Delete(a) => records::delete(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.kind());
            ExitCode::FAILURE
        }
    }
}
