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
    let cli = Cli::parse();
    // Without RUST_LOG: warnings, and for a server also what its declared sources do (passes
    // starting, progressing, ending), which an operator follows in the log.
    let default = match cli.command {
        Command::Serve(_) => "warn,tether_server::sources=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    quiet_on_closed_stdout();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(code) => code,
        // The reader went away (`tether list ... | head -n 1`): the output it wanted is out,
        // so the command ends quietly and successfully, as `cat` does under a shell that
        // ignores SIGPIPE (not 141: `set -o pipefail` scripts would fail on it).
        Err(panic) if is_closed_stdout(panic.as_ref()) => ExitCode::SUCCESS,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn run(cli: Cli) -> ExitCode {
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

/// Rust ignores SIGPIPE, so a `println!` to a closed pipe panics with "failed printing to
/// stdout: Broken pipe" in whichever command is printing, however deep. The panic of that one
/// case prints nothing; `main` turns it into a quiet exit. Every other panic is reported as
/// usual.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The hook sees a formatted message only through `Display` ("panicked at
        // <place>:\n<message>") before Rust 1.91's `payload_as_str`.
        let shown = info.to_string();
        let message = shown.split_once('\n').map_or(shown.as_str(), |(_, m)| m);
        if !closed_stdout_message(message) {
            report(info);
        }
    }));
}

/// Whether a caught panic is `println!`'s on a closed standard output.
fn is_closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .is_some_and(closed_stdout_message)
}

/// Whether a panic message is `println!`'s on a closed standard output.
fn closed_stdout_message(message: &str) -> bool {
    // std's message: "failed printing to stdout: Broken pipe (os error 32)" (strerror in the
    // C locale, which a Rust program keeps).
    message.starts_with("failed printing to stdout")
        && message.to_ascii_lowercase().contains("broken pipe")
}
