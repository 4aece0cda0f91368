//! `tether demo`: the whole life of a replica in one command, over real HTTP: a tether server
//! starts in-process on `127.0.0.1:0` over a fresh SQLite database, the generated dataset is
//! loaded through its admin API, and the replica syncs from it with the HTTP remote.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{json, Value};
use tether_dataset::Dataset;
use tether_engine::{SyncOptions, SyncReport};
use tether_native::http::HttpRemote;
use tether_native::{Replica, ScopeRef};
use tether_server::config::{Config, StorageConfig, Tokens};

use crate::admin::{self, Admin};
use crate::error::{CliError, Result};
use crate::progress::Bar;
use crate::serve::runtime;

/// Options of `tether demo`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Records in the generated cloud dataset.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Directory of the demo's files, `<dir>/replica.db` and `<dir>/cloud.db`, both replaced
    /// on every run.
    #[arg(long, default_value = "./tether-demo")]
    dir: PathBuf,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const SCOPE: &str = "org-1";

pub(crate) fn run(args: &Args) -> Result<ExitCode> {
    if args.records == 0 {
        return Err(CliError::Usage("--records must be at least 1".into()));
    }
    let db = fresh_file(&args.dir, "replica.db")?;
    let cloud_db = fresh_file(&args.dir, "cloud.db")?;
    let now = tether_engine::time::rfc3339(tether_native::now());

    println!(
        "Tether demo: {} records, replica {}",
        args.records,
        db.display()
    );
    let started = Instant::now();
    let token = "demo-token";
    let rt = runtime()?;
    let config = Config::new(
        ([127, 0, 0, 1], 0).into(),
        StorageConfig::Sqlite {
            path: cloud_db.clone(),
        },
        Tokens::default().grant(token, &[SCOPE], true),
    );
    let server = rt.block_on(tether_server::serve(config))?;
    let url = server.url();
    println!(
        "  server listening on {url} (SQLite at {})",
        cloud_db.display()
    );
    let cloud = Admin::new(&url, token);
    let ds = Dataset::new(args.seed, args.records);
    cloud.seed(SCOPE, &ds)?;
    println!(
        "  cloud ready: {} records in 6 collections, loaded over HTTP ({:.1} s)",
        args.records,
        started.elapsed().as_secs_f64()
    );

    let remote = HttpRemote::new(&url, token);
    let replica = Replica::open(&db)?;
    let scope = replica.scope(SCOPE)?;
    let first = sync(&scope, &remote, "initial")?;
    print_run("initial sync", &first);

    // The cloud moves on: about 2% of records change, 0.5% are deleted, 1% are new.
    let n = args.records;
    let changed: Vec<Value> = (0..n)
        .step_by(50)
        .map(|i| admin::upsert(&ds.version_of(i, 1)))
        .collect();
    let deleted: Vec<Value> = (25..n)
        .step_by(200)
        .map(|i| admin::delete(&ds.record(i)))
        .collect();
    let added: Vec<Value> = (n..n + (n / 100).max(1))
        .map(|i| admin::upsert(&ds.record(i)))
        .collect();
    let counts = (changed.len(), deleted.len(), added.len());
    cloud.upsert_all(SCOPE, &changed)?;
    cloud.delete_all(SCOPE, &deleted)?;
    cloud.upsert_all(SCOPE, &added)?;
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
    cloud.write(
        SCOPE,
        &[json!({"collection": victim.collection, "id": victim.id, "data": cloud_side})],
        &[],
    )?;
    let kept = ds.record(2);
    let mut edited = kept.data.clone();
    edited.insert("reviewed_at".into(), json!(now));
    scope.put(kept.collection, &kept.id, Value::Object(edited))?;
    println!(
        "  cloud changes: {} updated, {} deleted, {} added; 2 local edits ({}/{} will conflict)",
        counts.0, counts.1, counts.2, victim.collection, victim.id
    );

    let second = sync(&scope, &remote, "incremental")?;
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
    let verify = scope.verify(&remote, false)?;
    rt.block_on(server.shutdown());
    println!(
        "  total {:.1} s; inspect the replica with `tether status --db {}`",
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

/// Removes a database file of an earlier run (only the files Tether writes, never the
/// directory's other contents) so that the demo starts from scratch every time.
fn fresh_file(dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::File {
        path: dir.to_owned(),
        source,
    })?;
    let db = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CliError::File {
                    path: p.into(),
                    source,
                })
            }
        }
    }
    Ok(db)
}

fn sync(scope: &ScopeRef<'_>, remote: &HttpRemote, label: &str) -> Result<(SyncReport, f64)> {
    let bar = Bar::new(label);
    let sink = |p: &tether_engine::Progress| bar.event(p);
    let opts = SyncOptions {
        progress: Some(&sink),
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let _span = tracing::info_span!("sync", scope = SCOPE, label).entered();
    let report = scope.sync(remote, opts);
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
