//! A copied replica file (or a backup restored as a new file) is recognised when opened: its
//! scopes forget their client id and their unanswered-push marks, so the copy and the original
//! do not share the cloud's memory of their mutations. A renamed file is the same replica.

#![cfg(unix)]

use futures_executor::block_on;
use serde_json::json;
use tether_engine::cloud::{Cloud, Faults};
use tether_engine::{Key, ScopeHandle, ScopeId, Store, SyncOptions, Syncer};
use tether_native::SqliteStore;

fn clock() -> i64 {
    1_000
}

fn scope() -> ScopeId {
    ScopeId::new("org-1").unwrap()
}

fn client(store: &SqliteStore) -> Option<String> {
    block_on(store.scope_state(&scope())).unwrap().client
}

fn sent(store: &SqliteStore) -> Option<u64> {
    block_on(store.row(&scope(), &Key::new("t", "r")))
        .unwrap()
        .unwrap()
        .sent
}

#[test]
fn a_copied_file_takes_a_new_client_id_and_a_renamed_one_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, copy, moved) = (
        dir.path().join("replica.db"),
        dir.path().join("copy.db"),
        dir.path().join("moved.db"),
    );
    let cloud = Cloud::new();
    cloud.put(&scope(), "t", "r", json!({"v": 0}), 0);
    let opts = || SyncOptions {
        client_entropy: Some([9; 16]),
        ..SyncOptions::default()
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        block_on(Syncer::new(&store, &cloud, &clock).sync(&scope(), opts())).unwrap();
        // A push whose answer is lost, the pull failing too: the row keeps its mark.
        block_on(ScopeHandle::new(&store, scope()).put("t", "r", json!({"v": 1}))).unwrap();
        cloud.inject(Faults {
            lose_push_answer: true,
            fail_pulls: 1,
            ..Faults::default()
        });
        block_on(Syncer::new(&store, &cloud, &clock).sync(&scope(), opts())).unwrap_err();
        assert_eq!(client(&store).as_deref(), Some("09".repeat(16).as_str()));
        assert!(sent(&store).is_some());
    }
    std::fs::copy(&path, &copy).unwrap();

    let original = SqliteStore::open(&path).unwrap();
    assert_eq!(client(&original).as_deref(), Some("09".repeat(16).as_str()));
    assert!(sent(&original).is_some(), "the original is not a copy");
    drop(original);

    let copied = SqliteStore::open(&copy).unwrap();
    assert_eq!(client(&copied), None, "a copy forgets its client id");
    assert_eq!(sent(&copied), None, "and its marks");
    let row = block_on(copied.row(&scope(), &Key::new("t", "r")))
        .unwrap()
        .unwrap();
    assert!(row.pending.is_some(), "the pending edit stays");
    // Its next push takes a new id, and its edit (applied by the original's lost push, so
    // the cloud holds the same data) settles without a conflict.
    let fresh = SyncOptions {
        client_entropy: Some([10; 16]),
        ..SyncOptions::default()
    };
    let report = block_on(Syncer::new(&copied, &cloud, &clock).sync(&scope(), fresh)).unwrap();
    assert_eq!(client(&copied).as_deref(), Some("0a".repeat(16).as_str()));
    assert_eq!(report.run.counts.conflicts, 0);
    drop(copied);
    // Opened again, the copy is that file now: nothing forgotten a second time.
    let copied = SqliteStore::open(&copy).unwrap();
    assert_eq!(client(&copied).as_deref(), Some("0a".repeat(16).as_str()));
    drop(copied);

    std::fs::rename(&path, &moved).unwrap();
    let renamed = SqliteStore::open(&moved).unwrap();
    assert_eq!(client(&renamed).as_deref(), Some("09".repeat(16).as_str()));
    assert!(sent(&renamed).is_some(), "a rename is no copy");
}
