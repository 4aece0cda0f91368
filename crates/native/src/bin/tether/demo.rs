//! `tether demo`: the whole life of a replica in one command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{json, Value};
use tether_engine::cloud::Cloud;
use tether_engine::{Error, Result, ScopeId, SyncOptions, SyncReport};
use tether_native::dataset::Dataset;
use tether_native::{Replica, ScopeRef};

use crate::progress::Bar;

/// Options of `tether demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Records in the generated cloud dataset.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Directory of the replica file (`<dir>/replica.db`, replaced on every run).
    #[arg(long, default_value = "./tether-demo")]
    dir: PathBuf,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const SCOPE: &str = "org-1";

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.records == 0 {
        return Err(Error::invalid("--records must be at least 1"));
    }
    let db = fresh_replica_path(&args.dir)?;
    let scope_id = ScopeId::new(SCOPE)?;
    let now = tether_engine::cloud::rfc3339(clock());

    println!(
        "Tether demo: {} records, replica {}",
        args.records,
        db.display()
    );
    let started = Instant::now();
    let cloud = Cloud::new();
    let ds = Dataset::new(args.seed, args.records);
    ds.load_into(&cloud, &scope_id, clock());
    println!(
        "  cloud ready: {} records in 6 collections ({:.1} s)",
        args.records,
        started.elapsed().as_secs_f64()
    );

    let replica = Replica::open(&db)?;
    let scope = replica.scope(SCOPE)?;
    let first = sync(&scope, &cloud, "initial")?;
    print_run("initial sync", &first);

    // The cloud moves on: about 2% of records change, 0.5% are deleted, 1% are new.
    let n = args.records;
    let (mut changed, mut deleted, mut added) = (0, 0, 0);
    for i in (0..n).step_by(50) {
        let r = ds.version_of(i, 1);
        cloud.put(
            &scope_id,
            r.collection,
            &r.id,
            Value::Object(r.data),
            clock(),
        );
        changed += 1;
    }
    for i in (25..n).step_by(200) {
        let r = ds.record(i);
        cloud.delete(&scope_id, r.collection, &r.id, clock());
        deleted += 1;
    }
    for i in n..n + (n / 100).max(1) {
        let r = ds.record(i);
        cloud.put(
            &scope_id,
            r.collection,
            &r.id,
            Value::Object(r.data),
            clock(),
        );
        added += 1;
    }
    // A local edit that the cloud overwrites before it is pushed: a conflict, kept in the
    // journal. And one that goes through.
    let victim = ds.record(1);
    scope.put(
        victim.collection,
        &victim.id,
        json!({"path": "edited/locally.sql", "note": "edited offline"}),
    )?;
    let mut cloud_side = victim.data.clone();
    cloud_side.insert("owners".into(), json!(["@platform"]));
    cloud.put(
        &scope_id,
        victim.collection,
        &victim.id,
        Value::Object(cloud_side),
        clock(),
    );
    let kept = ds.record(2);
    let mut edited = kept.data.clone();
    edited.insert("reviewed_at".into(), json!(now));
    scope.put(kept.collection, &kept.id, Value::Object(edited))?;
    println!(
        "  cloud changes: {changed} updated, {deleted} deleted, {added} added; 2 local edits \
         ({}/{} will conflict)",
        victim.collection, victim.id
    );

    let second = sync(&scope, &cloud, "incremental")?;
    print_run("incremental sync", &second);

    let conflicts = scope.conflicts()?;
    for c in &conflicts {
        println!(
            "  conflict #{}: local {} of {}/{} (made on version {}) lost to cloud version {}",
            c.id,
            match c.local_op {
                tether_engine::Op::Put => "put",
                tether_engine::Op::Delete => "delete",
            },
            c.collection,
            c.record_id,
            c.base_version
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            c.cloud_version
        );
    }
    let verify = scope.verify(&cloud, false)?;
    println!(
        "  total {:.1} s; replica {}",
        started.elapsed().as_secs_f64(),
        db.display()
    );
    if verify.matches_now {
        println!(
            "verified: count {} digest {}",
            verify.local.count, verify.local.digest
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "VERIFICATION FAILED: replica has {} records (digest {}), cloud has {} (digest {})",
            verify.local.count, verify.local.digest, verify.cloud.count, verify.cloud.digest
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Removes the replica file of an earlier run (only the files Tether writes, never the
/// directory's other contents) so that the demo starts from scratch every time.
fn fresh_replica_path(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::invalid(format!("cannot create {}: {e}", dir.display())))?;
    let db = dir.join("replica.db");
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::storage(format!("cannot remove {p:?}: {e}"))),
        }
    }
    Ok(db)
}

fn sync(scope: &ScopeRef<'_>, cloud: &Cloud, label: &str) -> Result<(SyncReport, f64)> {
    let bar = Bar::new(label);
    let sink = |p: &tether_engine::Progress| bar.event(p);
    let opts = SyncOptions {
        progress: Some(&sink),
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let _span = tracing::info_span!("sync", scope = SCOPE, label).entered();
    let report = scope.sync(cloud, opts);
    bar.finish();
    Ok((report?, started.elapsed().as_secs_f64()))
}

fn print_run(label: &str, (report, secs): &(SyncReport, f64)) {
    let c = &report.run.counts;
    let rows = c.inserted + c.updated + c.deleted + c.unchanged;
    println!(
        "  {label}: {} inserted, {} updated, {} deleted, {} unchanged, {} conflicts in {} pages; \
         {:.2} s, {:.0} records/s",
        c.inserted,
        c.updated,
        c.deleted,
        c.unchanged,
        c.conflicts,
        report.run.pages,
        secs,
        rows as f64 / secs.max(1e-9)
    );
}

fn clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
