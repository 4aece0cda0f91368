//! Progress events as a UI draws them: the total is known from the first page the remote
//! estimates `remaining` for, percentages never go backwards, and every run ends at 100.

use std::sync::Mutex;

use futures_executor::block_on;
use serde_json::json;
use tether_engine::cloud::Cloud;
use tether_engine::*;

fn clock() -> i64 {
    1_700_000_000_000
}

fn seeded(n: usize) -> (Cloud, ScopeId) {
    let scope = ScopeId::new("org").unwrap();
    let cloud = Cloud::new();
    for i in 0..n {
        cloud.put(&scope, "objects", &format!("o{i:03}"), json!({ "i": i }), 0);
    }
    (cloud, scope)
}

fn events(store: &MemoryStore, cloud: &Cloud, scope: &ScopeId, full: bool) -> Vec<Progress> {
    let seen = Mutex::new(Vec::new());
    let sink = |p: &Progress| seen.lock().unwrap().push(p.clone());
    let opts = SyncOptions {
        progress: Some(&sink),
        page_size: 10,
        full,
        ..SyncOptions::default()
    };
    block_on(Syncer::new(store, cloud, &clock).sync(scope, opts)).unwrap();
    seen.into_inner().unwrap()
}

fn percents(events: &[Progress]) -> Vec<Option<f64>> {
    events.iter().map(|e| e.percent).collect()
}

#[test]
fn an_initial_sync_knows_its_total_from_the_first_page_and_ends_at_100() {
    let (cloud, scope) = seeded(25);
    let store = MemoryStore::new();
    let seen = events(&store, &cloud, &scope, false);
    let first = &seen[0];
    assert_eq!(first.phase, Phase::Pull, "{seen:?}");
    assert_eq!(first.total, Some(25), "{seen:?}");
    for e in seen
        .iter()
        .filter(|e| matches!(e.phase, Phase::Pull | Phase::Apply))
    {
        assert_eq!(e.total, Some(25), "{e:?}");
    }
    let pct: Vec<f64> = percents(&seen)
        .into_iter()
        .map(|p| p.expect("a known percent"))
        .collect();
    assert!(pct.windows(2).all(|w| w[0] <= w[1]), "{pct:?}");
    let last = seen.last().unwrap();
    assert_eq!(
        (last.phase, last.percent),
        (Phase::Verify, Some(100.0)),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.phase == Phase::Sweep && e.percent == Some(100.0)),
        "{seen:?}"
    );
}

#[test]
fn an_incremental_sync_and_a_full_resync_end_at_100() {
    let (cloud, scope) = seeded(25);
    let store = MemoryStore::new();
    events(&store, &cloud, &scope, false);
    for i in 0..3 {
        cloud.put(
            &scope,
            "objects",
            &format!("o{i:03}"),
            json!({ "i": i, "v": 2 }),
            0,
        );
    }
    let incremental = events(&store, &cloud, &scope, false);
    assert_eq!(
        incremental.last().unwrap().percent,
        Some(100.0),
        "{incremental:?}"
    );
    assert_eq!(incremental.last().unwrap().done, 3, "{incremental:?}");
    let full = events(&store, &cloud, &scope, true);
    assert_eq!(full.last().unwrap().percent, Some(100.0), "{full:?}");
    assert_eq!(full[0].total, Some(25), "{full:?}");
}
