//! Queries on a native replica (SQLite file), as ratios in one run:
//!
//! - initial sync of `TETHER_BENCH_RECORDS` records (default 1,000,000) of the metadata dataset
//!   from the in-process cloud, without indexes and with two (`columns` by `[object,
//!   position]`, `objects` by `name`): records/s each and the ratio (the cost of keeping them);
//! - an indexed equality query (the columns of one object, in position order) and a prefix
//!   query (the first 20 objects whose name starts with a typed prefix): p50 and p99 over
//!   `TETHER_BENCH_QUERIES` queries (default 1,000), against a full scan of the collection that
//!   finds the same columns (p50 of a few runs);
//! - the delay from a transaction's commit to a live query's fresh result (the change event,
//!   then the query run again on another thread), p50 and p99 over 200 local edits.
//!
//! `cargo bench -p tether-tests --bench queries` (release); `TETHER_BENCH_RECORDS=2000` for a
//! smoke run.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_executor::block_on as block;
use serde_json::json;
use tether_dataset::Dataset;
use tether_engine::cloud::Cloud;
use tether_engine::events::EventHub;
use tether_engine::{IndexSet, Query, ScopeHandle, ScopeId, Store, SyncOptions, Syncer};
use tether_native::SqliteStore;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn clock() -> i64 {
    1_767_225_600_000
}

fn main() {
    let n = env("TETHER_BENCH_RECORDS", 1_000_000) as u64;
    let queries = env("TETHER_BENCH_QUERIES", 1_000);
    let scope = ScopeId::new("bench").unwrap();
    let cloud = Cloud::new();
    let ds = Dataset::new(7, n);
    ds.load_into(&cloud, &scope, clock());
    let dir = tempfile::tempdir().expect("temp dir");
    let indexes = IndexSet::builder()
        .index("columns", ["object", "position"])
        .index("objects", ["name"])
        .build()
        .unwrap();
    let opts = || SyncOptions {
        page_size: 1000,
        ..SyncOptions::default()
    };

    println!("native queries on a SQLite replica, {n} records of the metadata dataset");
    let plain = SqliteStore::open(dir.path().join("plain.db")).unwrap();
    let t = Instant::now();
    block(Syncer::new(&plain, &cloud, &clock).sync(&scope, opts())).unwrap();
    let plain_rate = n as f64 / t.elapsed().as_secs_f64();
    let indexed = SqliteStore::open(dir.path().join("indexed.db")).unwrap();
    block(indexed.declare_indexes(&indexes)).unwrap();
    while !block(indexed.build_indexes(1000)).unwrap() {}
    let t = Instant::now();
    block(Syncer::new(&indexed, &cloud, &clock).sync(&scope, opts())).unwrap();
    let indexed_rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "initial sync: {plain_rate:>9.0} rec/s without indexes, {indexed_rate:>9.0} rec/s with 2 ({:.2}x)",
        indexed_rate / plain_rate
    );

    let h = ScopeHandle::new(&indexed, scope.clone());
    let objects: Vec<String> = ds
        .iter()
        .filter(|r| r.collection == "objects")
        .map(|r| r.id)
        .collect();
    let mut rng = 0x2545_f491_u64;
    let mut pick = |len: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % len as u64) as usize
    };
    let mut eq_times = Vec::with_capacity(queries);
    let mut found = 0;
    for _ in 0..queries {
        let object = &objects[pick(objects.len())];
        let q = Query::on("columns", ["object", "position"]).eq([json!(object)]);
        let t = Instant::now();
        let page = block(h.query(&q)).unwrap();
        eq_times.push(t.elapsed());
        found += page.records.len();
    }
    eq_times.sort();
    let prefixes = ["st", "stg_", "fct_or", "dim_cu", "int_", "mart_f", "raw_"];
    let mut prefix_times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let p = prefixes[pick(prefixes.len())];
        let q = Query::on("objects", ["name"]).prefix(p).limit(20);
        let t = Instant::now();
        block(h.query(&q)).unwrap();
        prefix_times.push(t.elapsed());
    }
    prefix_times.sort();
    // The same equality answered without an index: read the whole collection and filter.
    let scans = if n >= 100_000 { 5 } else { 20 };
    let mut scan_times = Vec::new();
    for _ in 0..scans {
        let object = &objects[pick(objects.len())];
        let t = Instant::now();
        let mut after: Option<String> = None;
        let mut hits = 0;
        loop {
            let rows = block(h.list("columns", after.as_deref(), 10_000)).unwrap();
            let Some(last) = rows.last() else { break };
            after = Some(last.id.clone());
            hits += rows
                .iter()
                .filter(|r| r.data["object"] == json!(object))
                .count();
        }
        scan_times.push(t.elapsed());
        assert!(hits > 0);
    }
    scan_times.sort();
    let (eq50, eq99) = (percentile(&eq_times, 0.5), percentile(&eq_times, 0.99));
    let (pre50, pre99) = (
        percentile(&prefix_times, 0.5),
        percentile(&prefix_times, 0.99),
    );
    let scan50 = percentile(&scan_times, 0.5);
    println!(
        "equality (columns of one object, {:.1} each): p50 {eq50:.3} ms, p99 {eq99:.3} ms",
        found as f64 / queries as f64
    );
    println!("prefix (first 20 objects by name):   p50 {pre50:.3} ms, p99 {pre99:.3} ms");
    println!(
        "full scan of columns for one object: p50 {scan50:.1} ms ({:.0}x the indexed p50)",
        scan50 / eq50
    );

    // Live query delay: commit -> event -> the query run again on its own thread.
    let hub = std::sync::Arc::new(EventHub::default());
    let (tx, rx) = mpsc::channel::<Instant>();
    let _sub = hub.subscribe(move |_| {
        let _ = tx.send(Instant::now());
    });
    let object = objects[0].clone();
    let (done_tx, done_rx) = mpsc::channel::<Duration>();
    let edits = 200;
    std::thread::scope(|s| {
        let store = &indexed;
        let (reader_scope, reader_object) = (scope.clone(), object.clone());
        s.spawn(move || {
            let h = ScopeHandle::new(store, reader_scope);
            let q = Query::on("columns", ["object", "position"]).eq([json!(reader_object)]);
            while let Ok(committed) = rx.recv() {
                let page = block(h.query(&q)).unwrap();
                assert!(!page.records.is_empty());
                let _ = done_tx.send(committed.elapsed());
            }
        });
        let w = ScopeHandle::new(&indexed, scope.clone()).events(&hub);
        let mut delays = Vec::with_capacity(edits);
        for i in 0..edits {
            let data = json!({"object": object, "position": 1000 + i, "name": "live"});
            block(w.put("columns", &format!("live_{i}"), data)).unwrap();
            delays.push(done_rx.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        drop(_sub);
        delays.sort();
        println!(
            "live query, commit -> fresh result: p50 {:.3} ms, p99 {:.3} ms ({edits} edits)",
            percentile(&delays, 0.5),
            percentile(&delays, 0.99)
        );
    });
}
