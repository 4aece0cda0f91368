//! Commands that talk to a tether server over HTTP: `sync` and `verify` a replica with it,
//! `seed` it with the generated dataset through its admin API.

use std::process::ExitCode;

use tether_dataset::Dataset;
use tether_engine::SyncOptions;
use tether_native::http::HttpRemote;

use crate::admin::Admin;
use crate::args::{ReplicaArgs, ServerArgs};
use crate::error::Result;
use crate::progress::Bar;

/// Options of `tether sync`.
#[derive(clap::Args)]
pub struct SyncArgs {
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
}

/// Options of `tether verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
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
pub struct SeedArgs {
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

pub fn sync(a: &SyncArgs) -> Result<ExitCode> {
    let replica = a.replica.open()?;
    let scope = replica.scope(&a.replica.scope)?;
    let remote = HttpRemote::new(&a.server.remote, &a.server.token);
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
    println!(
        "verified: {} records, digest {}",
        report.snapshot.count, report.snapshot.digest
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let replica = a.replica.open_existing()?;
    let report = replica.scope(&a.replica.scope)?.verify(
        &HttpRemote::new(&a.server.remote, &a.server.token),
        a.repair,
    )?;
    println!(
        "cloud: {} records, digest {}\nlocal: {} records, digest {}",
        report.cloud.count, report.cloud.digest, report.local.count, report.local.digest
    );
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

pub fn seed(a: &SeedArgs) -> Result<ExitCode> {
    Admin::new(&a.server.remote, &a.server.token)
        .seed(&a.scope, &Dataset::new(a.seed, a.records))?;
    println!("seeded {} records into scope {}", a.records, a.scope);
    Ok(ExitCode::SUCCESS)
}
