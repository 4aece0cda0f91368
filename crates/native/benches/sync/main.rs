//! Sync benchmark: `cargo bench -p tether-native --bench sync`.
//!
//! For each size (100,000 and 1,000,000 generated records; `TETHER_BENCH_RECORDS=N` runs one
//! size N instead, for a quick smoke run), in child processes so each has its own peak RSS:
//!
//! - **raw**: a plain rusqlite upsert (`INSERT .. ON CONFLICT DO UPDATE` of collection, id,
//!   data JSON text, version, updated_at, hash) of the generated pages, one transaction per
//!   page of 1,000, into a table of the same shape (`WITHOUT ROWID`, same pragmas);
//! - **engine**: an initial sync of the same pages through the full engine path (`Syncer` over
//!   `SqliteStore` with `tether_native::Threads` as `Replica::sync` runs it: hash check of every
//!   record on a second thread, digest, checkpoint per page, history), then
//!   an incremental sync of 1,000 changed records on the replica just built.
//!
//! With `TETHER_BENCH_INDEXED=1` the engine side declares an index on the columns' `object` and
//! `position` first, so every page also writes its entries (the cost of an indexed
//! collection; without it, the path of collections without indexes).
//!
//! Page building (the cloud's side: generating and hashing records) is timed separately and
//! left out of both rates, so the ratio compares what each side does with the same pages.

mod source;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tether_dataset::Dataset;
use tether_engine::{ScopeId, Store, SyncOptions, Syncer};
use tether_native::SqliteStore;

use source::Source;

const SEED: u64 = 2026;
const PAGE: u64 = 1_000;
const CHANGES: u64 = 1_000;

fn main() {
    if let Ok(mode) = std::env::var("TETHER_BENCH_CHILD") {
        let n: u64 = env_num("TETHER_BENCH_N");
        let dir = std::env::var("TETHER_BENCH_DIR").expect("TETHER_BENCH_DIR");
        let line = match mode.as_str() {
            "raw" => raw_child(n, Path::new(&dir)),
            _ => engine_child(n, Path::new(&dir)),
        };
        println!("RESULT {line}");
        return;
    }
    let sizes: Vec<u64> = match std::env::var("TETHER_BENCH_RECORDS") {
        Ok(s) => vec![s.parse().expect("TETHER_BENCH_RECORDS must be a number")],
        Err(_) => vec![100_000, 1_000_000],
    };
    println!(
        "tether sync benchmark: pages of {PAGE}, {} core(s)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if cfg!(debug_assertions) {
        println!("unoptimized build (smoke run): the numbers below are not meaningful");
    }
    let mut failed = false;
    for &n in &sizes {
        // The machine may be shared: run raw and engine alternately, each in a fresh
        // directory, and keep each side's best round.
        let rounds: usize = std::env::var("TETHER_BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if n > 200_000 { 2 } else { 3 });
        let (mut raw, mut engine) = (Vec::new(), Vec::new());
        for _ in 0..rounds.max(1) {
            let dir = tempfile::tempdir().expect("temp dir");
            raw.push(child("raw", n, dir.path()));
            engine.push(child("engine", n, dir.path()));
        }
        let best =
            |runs: &[Results], key: &str| runs.iter().map(|r| r[key]).fold(f64::MIN, f64::max);
        let least =
            |runs: &[Results], key: &str| runs.iter().map(|r| r[key]).fold(f64::MAX, f64::min);
        let (raw_rate, engine_rate) = (best(&raw, "rows_per_s"), best(&engine, "rows_per_s"));
        let ratio = engine_rate / raw_rate;
        println!("\n{n} records (best of {} rounds)", raw.len());
        println!(
            "  raw rusqlite upsert : {raw_rate:>10.0} rows/s  (peak RSS {:.1} MiB)",
            best(&raw, "peak_rss_kib") / 1024.0
        );
        println!(
            "  engine initial sync : {engine_rate:>10.0} rows/s  (peak RSS {:.1} MiB)",
            best(&engine, "peak_rss_kib") / 1024.0
        );
        println!("  ratio engine / raw  : {ratio:.2} (bar: >= 0.70)");
        println!(
            "  incremental sync of {CHANGES} changes: {:.1} ms engine time ({:.1} ms wall, bar: < 50 ms)",
            least(&engine, "incremental_ms"),
            least(&engine, "incremental_wall_ms")
        );
        println!(
            "  replica file {:.0} MiB, raw file {:.0} MiB",
            engine[0]["file_mib"], raw[0]["file_mib"]
        );
        failed |= ratio < 0.7;
    }
    if failed {
        println!("\nNOTE: ratio below the 0.70 bar");
    }
}

type Results = std::collections::HashMap<String, f64>;

/// Runs this binary as a child in `mode`; returns its result numbers.
fn child(mode: &str, n: u64, dir: &Path) -> Results {
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .env("TETHER_BENCH_CHILD", mode)
        .env("TETHER_BENCH_N", n.to_string())
        .env("TETHER_BENCH_DIR", dir)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode} child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("child result line");
    serde_json::from_str(line).expect("child result json")
}

fn raw_child(n: u64, dir: &Path) -> String {
    let path = dir.join("raw.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16000;
         CREATE TABLE records (collection TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
           version INTEGER NOT NULL, updated_at TEXT NOT NULL, hash BLOB NOT NULL,
           PRIMARY KEY (collection, id)) WITHOUT ROWID;",
    )
    .unwrap();
    let source = Source::new(Dataset::new(SEED, n));
    let mut busy = Duration::ZERO;
    let pages = n.div_ceil(PAGE);
    let mut text = String::with_capacity(1024);
    for k in 0..pages {
        let changes = source.page(k, PAGE);
        let started = Instant::now();
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO records (collection, id, data, version, updated_at, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,
                     version = excluded.version, updated_at = excluded.updated_at,
                     hash = excluded.hash",
                )
                .unwrap();
            for c in &changes {
                text.clear();
                // SAFETY-free: serde_json writes valid UTF-8 into the String's bytes.
                let mut bytes = std::mem::take(&mut text).into_bytes();
                serde_json::to_writer(&mut bytes, c.data.as_ref().unwrap()).unwrap();
                text = String::from_utf8(bytes).unwrap();
                let hash: tether_engine::RecordHash = c.hash.as_deref().unwrap().parse().unwrap();
                stmt.execute(params![
                    c.collection,
                    c.id,
                    text,
                    c.version as i64,
                    c.updated_at,
                    &hash.0[..]
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        busy += started.elapsed();
    }
    let secs = busy.as_secs_f64();
    format!(
        r#"{{"rows_per_s": {}, "seconds": {secs}, "peak_rss_kib": {}, "file_mib": {}}}"#,
        n as f64 / secs,
        peak_rss_kib(),
        file_mib(&path)
    )
}

fn engine_child(n: u64, dir: &Path) -> String {
    let path = dir.join("replica.db");
    let store = SqliteStore::open(&path).unwrap();
    if std::env::var_os("TETHER_BENCH_INDEXED").is_some() {
        // Most records of the dataset are columns: an index on them is the costly case.
        let set = tether_engine::IndexSet::builder()
            .index("columns", ["object", "position"])
            .build()
            .unwrap();
        futures_executor::block_on(store.declare_indexes(&set)).unwrap();
    }
    let ds = Dataset::new(SEED, n);
    let source = Source::new(ds);
    let scope = ScopeId::new("bench").unwrap();
    let clock = || 1_767_225_600_000;
    // As `Replica::sync` runs it: the next page validated on a second thread.
    let opts = SyncOptions {
        page_size: PAGE as u32,
        offload: Some(&tether_native::Threads),
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let report =
        futures_executor::block_on(Syncer::new(&store, &source, &clock).sync(&scope, opts))
            .expect("initial sync");
    let wall = started.elapsed();
    assert_eq!(report.snapshot.count, n);
    assert_eq!(report.run.counts.inserted, n);
    let secs = (wall - source.building()).as_secs_f64();
    let peak = peak_rss_kib();

    // Incremental: CHANGES records spread evenly over the replica, changed in round 1. The
    // indices are distinct for any n (j * n / c strictly increases when n >= c).
    let c = CHANGES.min(n);
    let indices: Vec<u64> = (0..c).map(|j| j * n / c).collect();
    source.set_changes(1, indices);
    let before = source.building();
    let started = Instant::now();
    let inc = futures_executor::block_on(Syncer::new(&store, &source, &clock).sync(&scope, opts))
        .expect("incremental sync");
    let inc_wall = started.elapsed();
    let inc_engine = inc_wall - (source.building() - before);
    assert_eq!(inc.run.counts.updated, CHANGES.min(n));
    let state = futures_executor::block_on(store.scope_state(&scope)).unwrap();
    assert_eq!(state.totals, inc.snapshot);
    format!(
        r#"{{"rows_per_s": {}, "seconds": {secs}, "peak_rss_kib": {peak}, "file_mib": {}, "incremental_ms": {}, "incremental_wall_ms": {}}}"#,
        n as f64 / secs,
        file_mib(&path),
        inc_engine.as_secs_f64() * 1e3,
        inc_wall.as_secs_f64() * 1e3,
    )
}

/// Peak resident set size of this process (VmHWM), in KiB; 0 where /proc is not available.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn file_mib(path: &Path) -> f64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_extension("db-wal");
    (size(path) + size(&wal)) as f64 / (1024.0 * 1024.0)
}

fn env_num(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name} must be a number"))
}
