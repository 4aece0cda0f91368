//! Replicas that share a client id (issue 18, item 1): two fresh replicas whose derived ids
//! collided, and a copied replica file. Neither may overwrite a write it never saw; the edit
//! that loses goes to its replica's conflict journal. Also the case the unanswered mark exists
//! for, with a copy made while a push was in flight.

use futures_executor::block_on;
use serde_json::{json, Value};
use tether_engine::cloud::{Cloud, Faults};
use tether_engine::*;

fn clock() -> i64 {
    1_000
}

fn scope() -> ScopeId {
    ScopeId::new("org-1").unwrap()
}

/// One sync with `entropy` for the client id.
fn sync(store: &MemoryStore, cloud: &Cloud, entropy: Option<[u8; 16]>) -> Result<SyncReport> {
    let opts = SyncOptions {
        client_entropy: entropy,
        ..SyncOptions::default()
    };
    block_on(Syncer::new(store, cloud, &clock).sync(&scope(), opts))
}

fn put(store: &MemoryStore, id: &str, data: Value) {
    block_on(ScopeHandle::new(store, scope()).put("t", id, data)).unwrap();
}

fn cloud_data(cloud: &Cloud, id: &str) -> Option<Value> {
    cloud
        .record(&scope(), "t", id)
        .map(|(_, d)| Value::Object(d))
}

fn journaled(store: &MemoryStore, id: &str) -> Vec<Option<Value>> {
    block_on(ScopeHandle::new(store, scope()).conflicts())
        .unwrap()
        .into_iter()
        .filter(|c| c.record_id == id)
        .map(|c| c.local_data.map(Value::Object))
        .collect()
}

fn client(store: &MemoryStore) -> Option<String> {
    block_on(store.scope_state(&scope())).unwrap().client
}

/// Two fresh replicas save the same default settings and get the same client id (seen with
/// derived ids: same scope, same millisecond, same first edit). P then saves `settings`; Q,
/// which never saw P's edit, saves it too, under a later sequence number: Q's edit must lose
/// to P's, into Q's journal, not replace it.
#[test]
fn replicas_sharing_an_id_do_not_overwrite_each_other() {
    let cloud = Cloud::new();
    let (p, q) = (MemoryStore::new(), MemoryStore::new());
    let shared = Some([7; 16]);
    for r in [&p, &q] {
        put(r, "settings", json!({"theme": "default"}));
        sync(r, &cloud, shared).unwrap();
    }
    assert_eq!(client(&p), client(&q), "the case needs one id on both");
    put(&p, "settings", json!({"theme": "dark"}));
    sync(&p, &cloud, shared).unwrap();
    // Q edits another record first, so its edit of `settings` has the higher number.
    put(&q, "other", json!({"n": 1}));
    put(&q, "settings", json!({"theme": "light"}));
    let report = sync(&q, &cloud, shared).unwrap();

    assert_eq!(
        cloud_data(&cloud, "settings"),
        Some(json!({"theme": "dark"}))
    );
    assert_eq!(report.run.counts.conflicts, 1);
    assert_eq!(
        journaled(&q, "settings"),
        vec![Some(json!({"theme": "light"}))]
    );
    assert!(journaled(&p, "settings").is_empty());
}

/// B is a copy of A (a restored backup). C edits `r`; A pulls it and edits `r` on top; B
/// edits `r` on its stale base and syncs: B's edit loses, into B's journal. A's and C's edits
/// are not overwritten.
#[test]
fn a_copied_replica_does_not_overwrite_what_it_never_saw() {
    let cloud = Cloud::new();
    cloud.put(&scope(), "t", "r", json!({"by": "init"}), 0);
    let (a, c) = (MemoryStore::new(), MemoryStore::new());
    let a_id = Some([1; 16]);
    put(&a, "s", json!({"n": 0}));
    sync(&a, &cloud, a_id).unwrap();
    sync(&c, &cloud, Some([3; 16])).unwrap();
    // The backup, with A's client id and sequence counter.
    let b = MemoryStore::import(&a.export()).unwrap();
    assert_eq!(client(&a), client(&b));

    put(&c, "r", json!({"by": "C"}));
    sync(&c, &cloud, Some([3; 16])).unwrap();
    sync(&a, &cloud, a_id).unwrap();
    put(&a, "r", json!({"by": "A, after C"}));
    sync(&a, &cloud, a_id).unwrap();
    // B's edit of `r` comes after an edit of another record, so it is numbered above A's.
    put(&b, "s", json!({"n": 1}));
    put(&b, "r", json!({"by": "B, stale"}));
    let report = sync(&b, &cloud, a_id).unwrap();

    assert_eq!(cloud_data(&cloud, "r"), Some(json!({"by": "A, after C"})));
    assert_eq!(report.run.counts.conflicts, 1);
    assert_eq!(journaled(&b, "r"), vec![Some(json!({"by": "B, stale"}))]);
    assert!(journaled(&a, "r").is_empty());
    // B now holds the cloud's state; A and B agree.
    let b_view = block_on(ScopeHandle::new(&b, scope()).get("t", "r")).unwrap();
    assert_eq!(
        b_view.map(|r| Value::Object(r.data)),
        Some(json!({"by": "A, after C"}))
    );
}

/// A push whose answer is lost (the pull fails too), then the file is copied. The original's
/// next edit names the lost mutation and is applied over it (no false conflict); the copy's
/// edit, which names it too, finds the original's newer write and loses.
#[test]
fn a_copy_made_while_a_push_was_unanswered_cannot_replace_the_original() {
    let cloud = Cloud::new();
    cloud.put(&scope(), "t", "r", json!({"v": 0}), 0);
    let a = MemoryStore::new();
    let id = Some([5; 16]);
    sync(&a, &cloud, id).unwrap();
    put(&a, "r", json!({"v": 1}));
    cloud.inject(Faults {
        lose_push_answer: true,
        fail_pulls: 1,
        ..Faults::default()
    });
    sync(&a, &cloud, id).unwrap_err();
    assert_eq!(cloud_data(&cloud, "r"), Some(json!({"v": 1})));
    let row = block_on(a.row(&scope(), &Key::new("t", "r")))
        .unwrap()
        .unwrap();
    assert!(row.pending.is_some() && row.sent == row.pending, "{row:?}");
    let b = MemoryStore::import(&a.export()).unwrap();

    put(&a, "r", json!({"v": 2}));
    let report = sync(&a, &cloud, id).unwrap();
    assert_eq!(
        report.run.counts.conflicts, 0,
        "the replaced write was A's own"
    );
    assert_eq!(cloud_data(&cloud, "r"), Some(json!({"v": 2})));
    let row = block_on(a.row(&scope(), &Key::new("t", "r")))
        .unwrap()
        .unwrap();
    assert_eq!((row.pending, row.sent), (None, None));

    put(&b, "r", json!({"v": "B"}));
    let report = sync(&b, &cloud, id).unwrap();
    assert_eq!(report.run.counts.conflicts, 1);
    assert_eq!(cloud_data(&cloud, "r"), Some(json!({"v": 2})));
    assert_eq!(journaled(&b, "r"), vec![Some(json!({"v": "B"}))]);
}

/// The driver's random bytes make the id: 32 hex digits, different for different bytes, and
/// kept once made.
#[test]
fn the_client_id_comes_from_the_drivers_random_bytes() {
    let cloud = Cloud::new();
    let (p, q) = (MemoryStore::new(), MemoryStore::new());
    for (r, bytes) in [(&p, [0xab; 16]), (&q, [0xcd; 16])] {
        put(r, "settings", json!({"theme": "default"}));
        sync(r, &cloud, Some(bytes)).unwrap();
    }
    assert_eq!(client(&p).as_deref(), Some("ab".repeat(16).as_str()));
    assert_eq!(client(&q).as_deref(), Some("cd".repeat(16).as_str()));
    put(&p, "settings", json!({"theme": "dark"}));
    sync(&p, &cloud, Some([0x11; 16])).unwrap();
    assert_eq!(client(&p).as_deref(), Some("ab".repeat(16).as_str()));
}
