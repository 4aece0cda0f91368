//! `tether status`, `tether history`, `tether conflicts`: read-only views of a replica file.

use std::process::ExitCode;

use tether_engine::time::rfc3339;

use crate::args::ReplicaArgs;
use crate::error::{CliError, Result};

/// Which replica file and scope to look at.
#[derive(clap::Args)]
pub(crate) struct Target {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `tether history`.
#[derive(clap::Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    target: Target,
    /// Runs to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

/// Options of `tether stats`.
#[derive(clap::Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    target: Target,
    /// Window, in days back from now.
    #[arg(long, default_value_t = 7)]
    days: u32,
}

pub(crate) fn stats(a: &StatsArgs) -> Result<ExitCode> {
    let replica = a.target.replica.open_existing()?;
    let s = replica.scope(&a.target.replica.scope)?.stats(a.days)?;
    if a.target.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let pct = s
        .success_rate
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let mean = s
        .mean_duration_ms
        .map_or_else(|| "-".to_owned(), |m| format!("{m:.0} ms"));
    println!(
        "last {} days: {} runs ({} completed, {} failed, {} cancelled), success {pct}, mean \
         {mean}; {} inserted, {} updated, {} deleted, {} conflicts, {} bytes received",
        s.days,
        s.runs,
        s.completed,
        s.failed,
        s.cancelled,
        s.inserted,
        s.updated,
        s.deleted,
        s.conflicts,
        s.bytes_received
    );
    Ok(ExitCode::SUCCESS)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(CliError::Output)?;
    println!("{text}");
    Ok(())
}

fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never".to_owned(), rfc3339)
}

pub(crate) fn status(t: &Target) -> Result<ExitCode> {
    let replica = t.replica.open_existing()?;
    let s = replica.scope(&t.replica.scope)?.status()?;
    if t.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("scope            {}", s.scope);
    println!("last synced      {}", time(s.last_synced_at));
    println!(
        "checkpoint       {}",
        s.checkpoint.as_ref().map_or("none", |c| c.as_str())
    );
    println!("records (cloud)  {}", s.count);
    println!("records (local)  {}", s.visible);
    println!("digest           {}", s.digest);
    println!("pending edits    {}", s.pending_edits);
    println!("open conflicts   {}", s.open_conflicts);
    if s.full_sync_in_progress {
        println!("full download    in progress");
    }
    for h in &s.subscriptions {
        println!(
            "subscription     {} (priority {}, {})",
            h.subscription.encode(),
            h.priority,
            if h.complete {
                "complete"
            } else {
                "downloading"
            }
        );
    }
    if let Some(e) = &s.last_error {
        println!("last error       [{}] {}", e.kind.as_str(), e.message);
    }
    println!(
        "sync recommended {}",
        match &s.reason {
            Some(r) => format!("yes ({r})"),
            None => "no".to_owned(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn history(h: &HistoryArgs) -> Result<ExitCode> {
    let replica = h.target.replica.open_existing()?;
    let runs = replica.scope(&h.target.replica.scope)?.history(h.limit)?;
    if h.target.json {
        print_json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<12} {:<10} {:<24} {:>9} {:>6} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "run",
        "kind",
        "status",
        "started",
        "ms",
        "pages",
        "inserted",
        "updated",
        "deleted",
        "unchanged",
        "conflicts"
    );
    for r in &runs {
        println!(
            "{:>5}  {:<12} {:<10} {:<24} {:>9} {:>6} {:>9} {:>8} {:>8} {:>9} {:>9}",
            r.id,
            name(&r.kind),
            name(&r.status),
            rfc3339(r.started_at),
            r.duration_ms()
                .map_or_else(|| "-".to_owned(), |d| d.to_string()),
            r.pages,
            r.counts.inserted,
            r.counts.updated,
            r.counts.deleted,
            r.counts.unchanged,
            r.counts.conflicts
        );
        if let Some(e) = &r.error {
            println!("       error [{}] {}", e.kind.as_str(), e.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn conflicts(t: &Target) -> Result<ExitCode> {
    let replica = t.replica.open_existing()?;
    let conflicts = replica.scope(&t.replica.scope)?.conflicts()?;
    if t.json {
        print_json(&conflicts)?;
        return Ok(ExitCode::SUCCESS);
    }
    if conflicts.is_empty() {
        println!("no open conflicts");
    }
    for c in &conflicts {
        println!(
            "#{} {}/{}: local {} on version {} lost to cloud version {} at {}",
            c.id,
            c.collection,
            c.record_id,
            name(&c.local_op),
            c.base_version
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            c.cloud_version,
            rfc3339(c.at)
        );
        if let Some(d) = &c.local_data {
            println!("    local data: {}", serde_json::Value::Object(d.clone()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The wire name of a serde enum (`initial`, `completed`, `put`), as scripts see it in JSON.
fn name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
