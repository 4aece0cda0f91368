//! Commands that talk to a tether server over HTTP: `sync` and `verify` a replica with it,
//! `seed` it with the generated dataset through its admin API.

use std::process::ExitCode;

use tether_dataset::Dataset;
use tether_engine::subscription::Subscription;
use tether_engine::SyncOptions;

use crate::args::{ReplicaArgs, ServerArgs};
use crate::error::Result;
use crate::progress::Bar;

/// Options of `tether sync`.
#[derive(clap::Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Changes per page.
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// Download the scope in full under a new generation.
    #[arg(long)]
    full: bool,
    /// Stay live after catching up: long-poll the server and apply each change as it
    /// commits, until Ctrl-C; reconnects with backoff after a network error.
    #[arg(long, conflicts_with = "every")]
    live: bool,
    /// Pull and plan without writing anything, then say what a sync would insert, update,
    /// delete and which local edits would conflict.
    #[arg(long, conflicts_with_all = ["live", "every"])]
    dry_run: bool,
    /// Keep syncing in the background every DURATION (e.g. 15m, 30s, 1h; with jitter and
    /// backoff after failures), until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    every: Option<u64>,
    /// Hold only part of the scope (repeatable; replaces the subscriptions stored with the
    /// replica, which later syncs keep): a collection, optionally filtered, optionally with a
    /// priority (0, the default, is the highest; higher priorities complete first). Values are
    /// strings; for numbers give the JSON form `{"collection":…,"where":{…}}@PRIORITY`.
    #[arg(
        long,
        value_name = "COLLECTION[:PATH=VALUE[,VALUE...]]...[@PRIORITY]",
        value_parser = parse_only,
        conflicts_with_all = ["all", "dry_run"]
    )]
    only: Vec<(Subscription, u8)>,
    /// Hold the whole scope again (forgets the subscriptions; the next sync downloads what the
    /// replica lacks).
    #[arg(long, conflicts_with = "dry_run")]
    all: bool,
}

/// `files:repository=r1,r2:language=sql@1` (or the JSON form, `@1` optional) as a
/// subscription and its priority.
fn parse_only(text: &str) -> std::result::Result<(Subscription, u8), String> {
    let (body, priority) = match text.rsplit_once('@') {
        Some((body, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (
            body,
            p.parse::<u8>()
                .map_err(|_| format!("{p:?}: a priority is 0 to 255"))?,
        ),
        _ => (text, 0),
    };
    let sub = if body.starts_with('{') {
        Subscription::parse(body).map_err(|e| e.to_string())?
    } else {
        let mut parts = body.split(':');
        let collection = parts.next().unwrap_or_default();
        let mut sub = Subscription::new(collection);
        for filter in parts {
            let (path, values) = filter
                .split_once('=')
                .ok_or_else(|| format!("{filter:?}: a filter is PATH=VALUE[,VALUE...]"))?;
            let values = values.split(',').map(|v| serde_json::json!(v));
            sub = sub.with_filter(path, values);
        }
        sub
    };
    sub.validate().map_err(|e| e.to_string())?;
    Ok((sub, priority))
}

/// `15m`, `30s`, `1h`, `500ms` as milliseconds.
fn parse_every(text: &str) -> std::result::Result<u64, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 15m"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    if ms == 0 {
        return Err("the interval must be above 0".into());
    }
    Ok(ms)
}

/// Options of `tether verify`.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Fix differing key ranges in place (cloud wins).
    #[arg(long)]
    repair: bool,
}

/// Options of `tether seed`.
#[derive(clap::Args)]
pub(crate) struct SeedArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The scope.
    #[arg(long, default_value = "org-1")]
    scope: String,
    /// Records to generate.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub(crate) fn sync(a: &SyncArgs) -> Result<ExitCode> {
    if !a.only.is_empty() || a.all {
        let replica = a.replica.open()?;
        let evicted = replica
            .scope(&a.replica.scope)?
            .set_subscriptions(a.only.clone())?;
        if evicted > 0 {
            println!("{evicted} records no subscription selects left the replica");
        }
    }
    if a.live {
        return live(a);
    }
    if let Some(every) = a.every {
        return every_interval(a, every);
    }
    if a.dry_run {
        return dry_run(a);
    }
    let remote = a.server.http()?;
    let replica = a.replica.open()?;
    let scope = replica.scope(&a.replica.scope)?;
    let bar = Bar::new("sync");
    let progress = |p: &tether_engine::Progress| bar.event(p);
    let report = scope.sync(
        &remote,
        SyncOptions {
            page_size: a.page_size,
            full: a.full,
            progress: Some(&progress),
            ..SyncOptions::default()
        },
    );
    bar.finish();
    let report = report?;
    let c = report.run.counts;
    println!(
        "{:?} sync of {}: {} pages, {} inserted, {} updated, {} deleted, {} unchanged, {} conflicts, {} bytes",
        report.run.kind, a.replica.scope, report.run.pages, c.inserted, c.updated, c.deleted,
        c.unchanged, c.conflicts, report.run.bytes_received
    );
    let held = scope.subscriptions()?;
    if held.is_empty() {
        println!(
            "verified: {} records, digest {}",
            report.snapshot.count, report.snapshot.digest
        );
    } else {
        println!(
            "holds {} records of {} subscriptions, each verified against the cloud's subset:",
            report.snapshot.count,
            held.len()
        );
        for h in held {
            println!("  {} (priority {})", h.subscription.encode(), h.priority);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tether sync --dry-run`.
fn dry_run(a: &SyncArgs) -> Result<ExitCode> {
    let remote = a.server.http()?;
    let replica = a.replica.open()?;
    let scope = replica.scope(&a.replica.scope)?;
    let p = scope.preview(
        &remote,
        SyncOptions {
            page_size: a.page_size,
            full: a.full,
            ..SyncOptions::default()
        },
    )?;
    let c = p.counts;
    println!(
        "{} sync of {} would insert {}, update {}, delete {} ({} unchanged) from {} pages, \
         push {} local edits; {} local edits would conflict",
        if p.full { "a full" } else { "an incremental" },
        a.replica.scope,
        c.inserted,
        c.updated,
        c.deleted,
        c.unchanged,
        p.pages,
        p.pushes,
        c.conflicts
    );
    for k in &p.conflicts {
        println!("  conflict: {}/{}", k.collection, k.id);
    }
    println!("nothing was written");
    Ok(ExitCode::SUCCESS)
}

/// Raised on Ctrl-C.
fn ctrl_c() -> tether_engine::CancelFlag {
    let stop = tether_engine::CancelFlag::new();
    let on_signal = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let _ = rt.block_on(tokio::signal::ctrl_c());
        }
        on_signal.cancel();
    });
    stop
}

/// `tether sync --every D`: a background sync until Ctrl-C, each outcome printed.
fn every_interval(a: &SyncArgs, every_ms: u64) -> Result<ExitCode> {
    let remote = a.server.http()?;
    let replica = a.replica.open()?;
    let options = tether_native::BackgroundOptions {
        schedule: tether_engine::schedule::Schedule {
            interval_ms: every_ms,
            ..tether_engine::schedule::Schedule::default()
        },
        page_size: a.page_size,
        sync_at_start: true,
        ..tether_native::BackgroundOptions::default()
    };
    let background = replica.background(&a.replica.scope, remote, options)?;
    let stop = ctrl_c();
    let mut seen = 0;
    while !stop.is_cancelled() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let status = background.status();
        if status.attempts != seen {
            seen = status.attempts;
            match (&status.last_error, &status.last_report) {
                (Some(e), _) if status.failures > 0 || !status.running => {
                    eprintln!("sync {seen} failed: {e}")
                }
                (_, Some(r)) => println!(
                    "sync {seen}: {} inserted, {} updated, {} deleted, {} conflicts; verified {} records",
                    r.run.counts.inserted, r.run.counts.updated, r.run.counts.deleted,
                    r.run.counts.conflicts, r.snapshot.count
                ),
                _ => {}
            }
        }
        if !status.running {
            return Err(status
                .last_error
                .unwrap_or_else(|| tether_engine::Error::invalid("background sync stopped"))
                .into());
        }
    }
    background.stop();
    Ok(ExitCode::SUCCESS)
}

/// `tether sync --live`: live sessions until Ctrl-C, each change reported as it is applied,
/// a new session after a retryable error (the engine's backoff schedule).
fn live(a: &SyncArgs) -> Result<ExitCode> {
    let remote = a.server.http()?;
    let replica = a.replica.open()?;
    let scope = replica.scope(&a.replica.scope)?;
    let stop = ctrl_c();
    let progress = |p: &tether_engine::Progress| {
        // Every answer is applied and committed, an idle one too (0 changes): say only what
        // changed.
        if p.phase == tether_engine::Phase::Apply && p.done > 0 {
            println!("applied {} changes", p.done);
        }
    };
    let schedule = tether_engine::schedule::Schedule::default();
    let mut failures = 0;
    loop {
        let started = std::time::Instant::now();
        let report = scope.sync(
            &remote,
            SyncOptions {
                trigger: tether_engine::Trigger::Live,
                page_size: a.page_size,
                full: a.full && failures == 0,
                live_wait_s: 25,
                progress: Some(&progress),
                cancel: Some(&stop),
                ..SyncOptions::default()
            },
        );
        match report {
            Ok(r) => {
                println!(
                    "stopped: {} records, digest {}",
                    r.snapshot.count, r.snapshot.digest
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if e.is_retryable() && !stop.is_cancelled() => {
                // A session that ran a while before failing starts the backoff afresh.
                if started.elapsed() > std::time::Duration::from_secs(60) {
                    failures = 0;
                }
                failures += 1;
                let wait = schedule.next_delay(failures, e.retry_after_ms(), 0.5);
                eprintln!("live sync interrupted ({e}); again in {} ms", wait);
                std::thread::sleep(std::time::Duration::from_millis(wait));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let replica = a.replica.open_existing()?;
    let report = replica
        .scope(&a.replica.scope)?
        .verify(&a.server.http()?, a.repair)?;
    println!(
        "cloud: {} records, digest {}\nlocal: {} records, digest {}",
        report.cloud.count, report.cloud.digest, report.local.count, report.local.digest
    );
    for s in &report.subscriptions {
        println!(
            "  {}: cloud {} records, local {}{}",
            s.subscription,
            s.cloud.count,
            s.local.count,
            if s.cloud == s.local {
                ""
            } else {
                " (differed)"
            }
        );
    }
    if a.repair && !report.matched {
        println!("repaired {} rows", report.repaired);
    }
    println!(
        "{}",
        if report.matches_now {
            "match"
        } else {
            "MISMATCH"
        }
    );
    Ok(if report.matches_now {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn seed(a: &SeedArgs) -> Result<ExitCode> {
    a.server
        .admin()?
        .seed(&a.scope, &Dataset::new(a.seed, a.records))?;
    println!("seeded {} records into scope {}", a.records, a.scope);
    Ok(ExitCode::SUCCESS)
}
