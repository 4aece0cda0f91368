//! The cost of a subset at scale (docs/server.md, "Subsets"): the initial pull of a
//! subscription that selects 1% of a 1,000,000-record scope against the full pull of a
//! 10,000-record scope (the goal: within 2x), and the incremental pull of that subset after
//! 10,000 changes scattered over the scope. Ignored by default (it seeds a million records):
//!
//! ```text
//! cargo test -p tether-server --release --test subsets_scale -- --ignored --nocapture
//! ```
//!
//! `TETHER_SUBSET_RECORDS` changes the size of the large scope.

mod common;

use std::time::Instant;

use common::{Backend, Harness, ADMIN, READER};
use serde_json::{json, Value};
use tether_dataset::Dataset;
use tether_engine::protocol::encode;
use tether_engine::subscription::Subscription;

#[test]
#[ignore = "seeds a million records; run with --ignored"]
fn measure_subset_pull_at_scale_sqlite() {
    measure(Backend::Sqlite);
}

#[test]
#[ignore = "seeds a million records; run with --ignored"]
fn measure_subset_pull_at_scale_postgres() {
    if common::postgres("subsets_scale::measure_subset_pull_at_scale_postgres") {
        measure(Backend::Postgres);
    }
}

/// The generated dataset, each record with `shard: i % 100`: `files` with shard 7 are exactly
/// 1% of the records (the dataset's blocks of 100 hold one file at each slot from 1 to 15).
fn seed(h: &Harness, scope: &str, n: u64, round: u64) {
    let ds = Dataset::new(7, n);
    let mut batch = Vec::new();
    let url = format!("{}/v1/admin/scopes/{scope}/records", h.url());
    let flush = |batch: &mut Vec<Value>| {
        ureq::post(&url)
            .set("authorization", &format!("Bearer {ADMIN}"))
            .send_json(json!({ "upserts": std::mem::take(batch) }))
            .unwrap();
    };
    for i in 0..n {
        let mut r = ds.version_of(i, round);
        r.data.insert("shard".into(), json!(i % 100));
        batch.push(json!({"collection": r.collection, "id": r.id, "data": r.data}));
        if batch.len() == 10_000 {
            flush(&mut batch);
        }
    }
    if !batch.is_empty() {
        flush(&mut batch);
    }
}

/// Pulls to the end; returns (records, outside markers, pages, bytes, seconds, checkpoint).
fn pull(
    h: &Harness,
    scope: &str,
    sub: Option<&Subscription>,
    from: Option<String>,
) -> (usize, usize, usize, usize, f64, String) {
    let start = Instant::now();
    let (mut records, mut outside, mut pages, mut bytes) = (0, 0, 0, 0);
    let mut checkpoint = from;
    loop {
        let mut url = format!("{}/v1/scopes/{scope}/changes?limit=1000", h.url());
        if let Some(sub) = sub {
            url.push_str(&format!("&sub={}", encode(&sub.encode())));
        }
        if let Some(c) = &checkpoint {
            url.push_str(&format!("&checkpoint={}", encode(c)));
        }
        let text = ureq::get(&url)
            .set("authorization", &format!("Bearer {READER}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        bytes += text.len();
        let page: Value = serde_json::from_str(&text).unwrap();
        pages += 1;
        records += page["changes"].as_array().unwrap().len();
        outside += page["outside"].as_array().map_or(0, Vec::len);
        checkpoint = Some(page["checkpoint"].as_str().unwrap().to_string());
        if page["has_more"] != true {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (records, outside, pages, bytes, secs, checkpoint.unwrap())
}

fn measure(backend: Backend) {
    let n: u64 = std::env::var("TETHER_SUBSET_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let h = Harness::start_with(backend, |c| {
        c.filter_indexes = vec![tether_server::FilterIndex::parse("files:shard").unwrap()];
    });
    let t = Instant::now();
    seed(&h, "small", 10_000, 0);
    seed(&h, "big", n, 0);
    eprintln!(
        "{backend:?}: seeded {n} + 10000 records in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let sub = Subscription::new("files").with_filter("shard", [json!(7)]);
    // Best of three of each, alternated, so that neither gets a warmer cache.
    let mut full = f64::MAX;
    let mut subset = f64::MAX;
    let mut subset_run = None;
    for _ in 0..3 {
        let f = pull(&h, "small", None, None);
        assert_eq!(f.0, 10_000);
        full = full.min(f.4);
        let s = pull(&h, "big", Some(&sub), None);
        assert_eq!(s.0 as u64, n / 100);
        subset = subset.min(s.4);
        subset_run = Some(s);
    }
    let s = subset_run.unwrap();
    eprintln!(
        "{backend:?}: full pull of 10000 records: {:.3} s; initial pull of the 1% subset \
         ({} records, {} pages, {} bytes) of {n}: {:.3} s; ratio {:.2}",
        full,
        s.0,
        s.2,
        s.3,
        subset,
        subset / full
    );

    // 10,000 changes scattered over the scope (a prime stride, so distinct records of every
    // collection and shard), then the subset's incremental pull from where its initial pull
    // ended.
    let ds = Dataset::new(7, n);
    let mut batch = Vec::new();
    for k in 0..10_000u64.min(n) {
        let i = (k * 104_729 + 13) % n;
        let mut r = ds.version_of(i, 1);
        r.data.insert("shard".into(), json!(i % 100));
        batch.push(json!({"collection": r.collection, "id": r.id, "data": r.data}));
    }
    h.admin("big", json!({ "upserts": batch }));
    let inc = pull(&h, "big", Some(&sub), Some(s.5.clone()));
    eprintln!(
        "{backend:?}: incremental pull of the subset after 10000 scattered changes: {} \
         records, {} outside markers, {} pages, {} bytes, {:.3} s",
        inc.0, inc.1, inc.2, inc.3, inc.4
    );
}
