//! The blocking `Replica` facade over a real file: bad input, persistence across reopen, local
//! edits and conflicts, and one sync per scope at a time.

use std::sync::Arc;

use serde_json::json;
use tether_engine::cloud::Cloud;
use tether_engine::{Detail, ErrorKind, RunKind, RunStatus, ScopeId};
use tether_native::{Replica, SyncOptions, SCHEMA_VERSION};

fn sid(s: &str) -> ScopeId {
    ScopeId::new(s).unwrap()
}

#[test]
fn empty_or_malformed_scope_name_is_invalid_input() {
    let replica = Replica::open_in_memory().unwrap();
    for bad in ["", "a\nb", &"x".repeat(300)] {
        let err = replica.scope(bad).err().expect("must be refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
}

#[test]
fn text_file_is_not_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(100)).unwrap();
    let err = Replica::open(&path).err().expect("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    // Untouched.
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("these are my notes"));
}

#[test]
fn other_apps_sqlite_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos (name) VALUES ('cat');")
            .unwrap();
    }
    let err = Replica::open(&path).err().expect("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("another application"), "{err}");
    let c = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = c
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no Tether table was added");
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "journal mode not switched to WAL");

    // Same with a user_version the other app happens to share with us.
    c.pragma_update(None, "user_version", SCHEMA_VERSION)
        .unwrap();
    drop(c);
    let err = Replica::open(&path).err().expect("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a Tether replica"), "{err}");
}

#[test]
fn newer_schema_version_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    drop(Replica::open(&path).unwrap());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Replica::open(&path).err().expect("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("version {}", SCHEMA_VERSION + 1)) && msg.contains("upgrade"),
        "{msg}"
    );
}

#[test]
fn directory_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let err = Replica::open(dir.path()).err().expect("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn state_survives_reopen_and_next_sync_is_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = Cloud::new();
    let s = sid("org-1");
    for i in 0..250 {
        cloud.put(
            &s,
            "objects",
            &format!("obj_{i:04}"),
            json!({"n": i}),
            1_000,
        );
    }
    {
        let replica = Replica::open(&path).unwrap();
        let scope = replica.scope("org-1").unwrap();
        let opts = SyncOptions {
            page_size: 100,
            ..SyncOptions::default()
        };
        let report = scope.sync(&cloud, opts).unwrap();
        assert_eq!(report.run.kind, RunKind::Initial);
        assert_eq!(report.run.pages, 3);
        assert_eq!(report.snapshot, cloud.snapshot(&s));
    }
    cloud.put(&s, "objects", "obj_0001", json!({"n": "changed"}), 2_000);
    cloud.delete(&s, "objects", "obj_0002", 2_000);
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope("org-1").unwrap();
    assert_eq!(scope.count(None).unwrap(), 250);
    let pulls = cloud.pulls();
    let report = scope.sync(&cloud, SyncOptions::default()).unwrap();
    assert_eq!(report.run.kind, RunKind::Incremental);
    assert_eq!(
        cloud.pulls() - pulls,
        1,
        "one page of changes, nothing downloaded again"
    );
    assert_eq!(
        (report.run.counts.updated, report.run.counts.deleted),
        (1, 1)
    );
    assert_eq!(
        scope.get("objects", "obj_0001").unwrap().unwrap().data["n"],
        "changed"
    );
    assert!(scope.get("objects", "obj_0002").unwrap().is_none());
    let page = scope.list("objects", Some("obj_0100"), 3).unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["obj_0101", "obj_0102", "obj_0103"]);
    assert_eq!(scope.history(10).unwrap().len(), 2);
    let stats = scope.stats(1).unwrap();
    assert_eq!((stats.runs, stats.completed), (2, 2));
    let status = scope.status().unwrap();
    assert_eq!(status.count, 249);
    assert!(!status.sync_recommended, "{:?}", status.reason);
    assert_eq!(replica.scopes().unwrap(), vec![s.clone()]);
    let v = scope.verify(&cloud, false).unwrap();
    assert!(v.matched && v.matches_now);
}

#[test]
fn overwritten_local_edit_becomes_a_conflict_and_can_be_dismissed() {
    let replica = Replica::open_in_memory().unwrap();
    let scope = replica.scope("org-1").unwrap();
    let cloud = Cloud::new();
    let s = sid("org-1");
    cloud.put(&s, "objects", "a", json!({"owner": "ana"}), 0);
    scope.sync(&cloud, SyncOptions::default()).unwrap();

    scope
        .put("objects", "a", json!({"owner": "local"}))
        .unwrap();
    assert!(scope.get("objects", "a").unwrap().unwrap().pending);
    cloud.put(&s, "objects", "a", json!({"owner": "cloud"}), 0);
    let report = scope.sync(&cloud, SyncOptions::default()).unwrap();
    assert_eq!(report.run.counts.conflicts, 1);
    assert_eq!(
        scope.get("objects", "a").unwrap().unwrap().data["owner"],
        "cloud"
    );
    let conflicts = scope.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].local_data.as_ref().unwrap()["owner"], "local");
    scope.dismiss_conflict(conflicts[0].id).unwrap();
    assert!(scope.conflicts().unwrap().is_empty());
    let err = scope.dismiss_conflict(conflicts[0].id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    let err = scope.put("objects", "b", json!([1, 2])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn two_syncs_of_one_scope_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = Arc::new(Cloud::new());
    let s = sid("org-1");
    for i in 0..2_000 {
        cloud.put(&s, "objects", &format!("obj_{i:05}"), json!({"n": i}), 0);
    }
    // Two `Replica`s of one file in one process share the per-scope lock.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (cloud, path) = (cloud.clone(), path.clone());
            std::thread::spawn(move || {
                let replica = Replica::open(&path).unwrap();
                let scope = replica.scope("org-1").unwrap();
                let opts = SyncOptions {
                    page_size: 50,
                    ..SyncOptions::default()
                };
                scope.sync(&*cloud, opts).unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let replica = Replica::open(&path).unwrap();
    let runs = replica.scope("org-1").unwrap().history(10).unwrap();
    assert_eq!(runs.len(), 2);
    // An overlapping start would have marked the other run as interrupted.
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Completed),
        "{runs:#?}"
    );
}

#[test]
fn many_opens_of_a_new_file_at_once_all_succeed() {
    // The first openers of a new file migrate it and switch it to WAL while the others read
    // it: a switch that met another's write lock once failed with "database is locked".
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let path = dir.path().join(format!("replica-{round}.db"));
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (barrier, path) = (barrier.clone(), path.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let replica = Replica::open(&path)?;
                    replica.scope("org-1")?.status().map(|_| ())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
    }
}

#[test]
fn a_version_1_file_is_migrated_in_place_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = Cloud::new();
    let s = sid("org-1");
    cloud.put(&s, "objects", "obj_1", json!({"n": 1}), 1_000);
    {
        let replica = Replica::open(&path).unwrap();
        replica
            .scope("org-1")
            .unwrap()
            .sync(&cloud, SyncOptions::default())
            .unwrap();
    }
    // Turn the file back into what version 1 wrote: no `runs.error_detail`, no
    // `conflicts.reason`, no `scopes.client`, no index tables, no `records.sent`, no
    // `scopes.subscriptions`.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "ALTER TABLE runs DROP COLUMN error_detail; ALTER TABLE conflicts DROP COLUMN reason; \
             ALTER TABLE scopes DROP COLUMN client; DROP TABLE index_entries; \
             DROP TABLE indexes; ALTER TABLE records DROP COLUMN sent; \
             ALTER TABLE scopes DROP COLUMN subscriptions; ALTER TABLE scopes DROP COLUMN evicting; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope("org-1").unwrap();
    assert_eq!(
        scope.history(10).unwrap().len(),
        1,
        "runs of version 1 are kept"
    );
    assert_eq!(scope.count(None).unwrap(), 1);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    // A failure's detail is stored from now on.
    let err = scope
        .sync(&Unreachable, SyncOptions::default())
        .unwrap_err();
    assert_eq!(err.detail(), Some(Detail::NotSupported));
    let last = scope.history(1).unwrap().remove(0);
    assert_eq!(last.status, RunStatus::Failed);
    assert_eq!(last.error.unwrap().detail, Some(Detail::NotSupported));
}

#[test]
fn a_version_2_file_is_migrated_in_place_and_keeps_its_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = Cloud::new();
    let s = sid("org-1");
    cloud.put(&s, "objects", "obj_1", json!({"n": 1}), 1_000);
    {
        let replica = Replica::open(&path).unwrap();
        let scope = replica.scope("org-1").unwrap();
        scope.sync(&cloud, SyncOptions::default()).unwrap();
        scope.put("objects", "obj_1", json!({"n": "mine"})).unwrap();
        cloud.put(&s, "objects", "obj_1", json!({"n": "cloud's"}), 2_000);
        scope.sync(&cloud, SyncOptions::default()).unwrap();
        assert_eq!(scope.conflicts().unwrap().len(), 1);
    }
    // Turn the file back into what version 2 wrote: no `conflicts.reason`, no `scopes.client`,
    // no index tables, no `records.sent`.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "ALTER TABLE conflicts DROP COLUMN reason; ALTER TABLE scopes DROP COLUMN client; \
             DROP TABLE index_entries; DROP TABLE indexes; ALTER TABLE records DROP COLUMN sent; \
             ALTER TABLE scopes DROP COLUMN subscriptions; ALTER TABLE scopes DROP COLUMN evicting; \
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope("org-1").unwrap();
    let conflicts = scope.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1, "conflicts of version 2 are kept");
    assert_eq!(conflicts[0].local_data.as_ref().unwrap()["n"], "mine");
    assert_eq!(
        conflicts[0].reason, None,
        "an edit that lost to another writer"
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let reasons: i64 = c
        .query_row("SELECT COUNT(reason) FROM conflicts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reasons, 0, "the column exists, NULL for old entries");
    // Version 4: the next push names its mutations with a client id kept in the file.
    let client = |c: &rusqlite::Connection| -> Option<String> {
        c.query_row("SELECT client FROM scopes", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(client(&c), None);
    scope.put("objects", "obj_2", json!({"n": 2})).unwrap();
    scope.sync(&cloud, SyncOptions::default()).unwrap();
    let made = client(&c).expect("a client id after the first push");
    // Random (the replica's getrandom): 128 bits as hex.
    assert_eq!(made.len(), 32, "{made}");
    scope.put("objects", "obj_2", json!({"n": 3})).unwrap();
    scope.sync(&cloud, SyncOptions::default()).unwrap();
    assert_eq!(client(&c), Some(made), "kept");
}

/// A remote whose every pull fails with a detail, to see it recorded.
struct Unreachable;

impl tether_engine::Remote for Unreachable {
    async fn pull(
        &self,
        _: &ScopeId,
        _: Option<&tether_engine::Checkpoint>,
        _: u32,
    ) -> tether_engine::Result<tether_engine::Pulled> {
        Err(tether_engine::Error::protocol("no changes endpoint").with_detail(Detail::NotSupported))
    }
}

#[test]
fn checkpoints_run_off_the_writer_while_the_replica_is_open() {
    // The writer checkpoints by itself only past 8,000 WAL pages (32 MB); these ~5 MB of
    // records stay below that, so only the background checkpointer can move them into the
    // main file while the replica is still open. It runs once the WAL holds 1,000 pages (4 MB).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = Cloud::new();
    let s = sid("org-1");
    for i in 0..10_000 {
        let filler = "x".repeat(400);
        cloud.put(
            &s,
            "objects",
            &format!("obj_{i:05}"),
            json!({ "i": i, "f": filler }),
            0,
        );
    }
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope("org-1").unwrap();
    let opts = SyncOptions {
        page_size: 200,
        ..SyncOptions::default()
    };
    assert_eq!(scope.sync(&cloud, opts).unwrap().snapshot.count, 10_000);
    let main_file = || std::fs::metadata(&path).unwrap().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while main_file() < 2_500_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        main_file() >= 2_500_000,
        "the main file holds {} bytes while open: nothing was checkpointed",
        main_file()
    );
    drop(scope);
    drop(replica);
    let reopened = Replica::open(&path).unwrap();
    assert_eq!(
        reopened.scope("org-1").unwrap().count(None).unwrap(),
        10_000
    );
}

/// What the facade returns can be named through tether-native alone, without a dependency on
/// tether-engine.
#[test]
fn the_types_the_replica_returns_are_exported_by_tether_native() {
    let replica = Replica::open_in_memory().unwrap();
    let scope = replica.scope("org-1").unwrap();
    scope
        .put("objects", "obj_1", json!({"name": "orders"}))
        .unwrap();
    let id: &tether_native::ScopeId = scope.id();
    let record: Option<tether_native::Record> = scope.get("objects", "obj_1").unwrap();
    let status: tether_native::ScopeStatus = scope.status().unwrap();
    let history: Vec<tether_native::Run> = scope.history(10).unwrap();
    let stats: tether_native::Stats = scope.stats(7).unwrap();
    let conflicts: Vec<tether_native::Conflict> = scope.conflicts().unwrap();
    let failed: tether_native::Result<_> = replica.scope("");
    let kind: tether_native::ErrorKind = failed.err().expect("refused").kind();
    assert_eq!(id.as_str(), "org-1");
    assert_eq!(record.expect("put").data["name"], "orders");
    assert_eq!(status.pending_edits, 1);
    assert!(history.is_empty() && conflicts.is_empty() && stats.runs == 0);
    assert_eq!(kind, tether_native::ErrorKind::InvalidInput);
}
