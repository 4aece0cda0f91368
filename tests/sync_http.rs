//! End-to-end sync over real HTTP on loopback: tether-native's `Replica` (SQLite file) and
//! `HttpRemote` against the server, on SQLite and on PostgreSQL storage.

#[path = "../crates/server/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Harness, READER, S1_ONLY};
use serde_json::json;
use tether_engine::{
    Checkpoint, Error, Mutation, Phase, Progress, Pulled, PushResponse, Remote, RunKind,
    ScopeHandle, ScopeId, SyncOptions,
};
use tether_native::http::HttpRemote;
use tether_native::Replica;

both!(
    initial_then_incremental,
    reset_behind_the_horizon,
    cloud_wins_and_accepted_pushes,
    interrupted_initial_sync_resumes,
    replicas_converge_under_writes,
    range_repair_fixes_a_corrupted_replica,
    auth_errors_are_typed,
    edits_during_a_push_end_in_one_place,
    old_tombstones_keep_a_local_create,
    an_edit_the_cloud_cannot_store_is_refused_where_it_is_made,
    a_push_over_the_body_limit_goes_in_batches,
);

postgres_only!(
    sql_writes,
    a_sql_update_without_hash_does_not_stop_a_pushing_replica,
    a_row_the_server_cannot_read_does_not_stop_sync,
);

/// The client side of the harness's server.
trait Client {
    /// An HTTP remote of the running server, with fast retries.
    fn remote(&self, token: &str) -> HttpRemote;
}

impl Client for Harness {
    fn remote(&self, token: &str) -> HttpRemote {
        support::remote(&self.url(), token)
    }
}

fn opts(page_size: u32) -> SyncOptions<'static> {
    SyncOptions {
        page_size,
        ..SyncOptions::default()
    }
}

fn initial_then_incremental(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..10_000);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);

    let report = scope.sync(&remote, opts(1000)).unwrap();
    assert_eq!(report.run.kind, RunKind::Initial);
    assert_eq!(report.run.counts.inserted, 10_000);
    assert_eq!(report.run.pages, 10);
    assert!(
        report.run.bytes_received > 1_000_000,
        "{}",
        report.run.bytes_received
    );
    let cloud = h.status("s1");
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );

    // 300 updates, 200 deletes, 100 new records.
    let ds = tether_dataset::Dataset::new(7, 10_100);
    let mut upserts = Vec::new();
    for i in 0..300 {
        let r = ds.version_of(i * 3, 1);
        upserts.push(json!({"collection": r.collection, "id": r.id, "data": r.data}));
    }
    for i in 10_000..10_100 {
        let r = ds.record(i);
        upserts.push(json!({"collection": r.collection, "id": r.id, "data": r.data}));
    }
    let deletes: Vec<_> = (5000..5200)
        .map(|i| {
            let r = ds.record(i);
            json!({"collection": r.collection, "id": r.id})
        })
        .collect();
    h.admin("s1", json!({"upserts": upserts, "deletes": deletes}));

    let report = scope.sync(&remote, opts(1000)).unwrap();
    assert_eq!(report.run.kind, RunKind::Incremental);
    let c = report.run.counts;
    assert_eq!((c.inserted, c.updated, c.deleted), (100, 300, 200), "{c:?}");
    let cloud = h.status("s1");
    assert_eq!(cloud.count, 9_900);
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );
    assert_eq!(scope.count(None).unwrap(), 9_900);
    let updated = ds.version_of(3, 1);
    assert_eq!(
        scope
            .get(updated.collection, &updated.id)
            .unwrap()
            .unwrap()
            .data,
        updated.data
    );
    let gone = ds.record(5100);
    assert!(scope.get(gone.collection, &gone.id).unwrap().is_none());
}

fn reset_behind_the_horizon(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..1000);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(300)).unwrap();
    let checkpoint = scope.status().unwrap().checkpoint.unwrap();

    let ds = tether_dataset::Dataset::new(7, 1000);
    let keys: Vec<_> = (100..200).map(|i| ds.record(i)).collect();
    let keys: Vec<_> = keys.iter().map(|r| (r.collection, r.id.as_str())).collect();
    h.delete("s1", &keys);
    h.upsert("s1", &[("objects", "new_1", json!({"n": 1}))]);
    assert_eq!(h.purge("s1"), 100);

    // The old checkpoint is now behind the horizon: 410 with {"reset": true}.
    let (status, body) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/changes?checkpoint={}", checkpoint.as_str()),
        Some(READER),
        None,
    );
    assert_eq!((status, &body["reset"]), (410, &json!(true)), "{body}");

    let report = scope.sync(&remote, opts(300)).unwrap();
    assert_eq!(report.run.kind, RunKind::FullResync);
    assert_eq!(
        report.run.counts.deleted, 100,
        "stale rows swept: {:?}",
        report.run.counts
    );
    assert_eq!(scope.count(None).unwrap(), 901);
    for (c, i) in &keys {
        assert!(scope.get(c, i).unwrap().is_none(), "stale row {c}/{i} left");
    }
    let cloud = h.status("s1");
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );

    // A multi-page initial sync right after a purge must not loop on resets: the first page's
    // checkpoint carries the sequence it was read at.
    let dir2 = tempfile::tempdir().unwrap();
    let fresh = Replica::open(dir2.path().join("r.db")).unwrap();
    let report = fresh.scope("s1").unwrap().sync(&remote, opts(100)).unwrap();
    assert_eq!(report.run.kind, RunKind::Initial);
    assert_eq!(report.snapshot.digest, cloud.digest);
}

fn cloud_wins_and_accepted_pushes(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert(
        "s1",
        &[
            ("objects", "a", json!({"name": "a0"})),
            ("objects", "b", json!({"name": "b0"})),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(100)).unwrap();

    // Local edit of a and cloud edit of a: the cloud wins, the local edit is journaled.
    scope.put("objects", "a", json!({"name": "local"})).unwrap();
    h.upsert("s1", &[("objects", "a", json!({"name": "cloud"}))]);
    // Local edit of b that nobody else touches: accepted, no conflict.
    scope.put("objects", "b", json!({"name": "b1"})).unwrap();
    // A local create.
    scope.put("objects", "c", json!({"name": "c1"})).unwrap();

    let report = scope.sync(&remote, opts(100)).unwrap();
    assert_eq!(report.run.counts.conflicts, 1, "{:?}", report.run.counts);
    assert_eq!(
        scope.get("objects", "a").unwrap().unwrap().data["name"],
        "cloud"
    );
    let conflicts = scope.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].record_id, "a");
    assert_eq!(conflicts[0].local_data.as_ref().unwrap()["name"], "local");

    // The accepted edits are in the cloud and were not reported as conflicts.
    let (_, records) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    let names: Vec<_> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["cloud", "b1", "c1"]);
    let b = scope.get("objects", "b").unwrap().unwrap();
    assert!(!b.pending && b.version > 0);
    assert_eq!(scope.status().unwrap().pending_edits, 0);

    // Another sync changes nothing and reports no conflict.
    let again = scope.sync(&remote, opts(100)).unwrap();
    assert_eq!(again.run.counts.conflicts, 0);
    assert_eq!(again.snapshot.digest, h.status("s1").digest);
}

fn interrupted_initial_sync_resumes(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..10_000);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();

    // Stop the server once the third page is committed.
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let stopper = |p: &Progress| {
        if p.phase == Phase::Apply && p.done == 3000 {
            stopped_tx.send(h.stop()).unwrap();
        }
    };
    let err = scope
        .sync(
            &h.remote(READER),
            SyncOptions {
                page_size: 1000,
                progress: Some(&stopper),
                ..SyncOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    let first = stopped_rx.recv().unwrap();
    // Three pages committed when the server stopped; the fourth may have been downloaded
    // already (the next page is pulled while one is written), and the fifth too (the HTTP
    // remote pulls one more page ahead, `HttpOptions::pull_ahead`): then they are committed too.
    // (The server's counts are read as it stops, while the page ahead may still be answered.)
    assert!((3..=5).contains(&first.pulls), "{} pulls", first.pulls);
    let kept = scope.count(None).unwrap();
    assert!(
        (3000..=5000).contains(&kept) && kept % 1000 == 0,
        "{kept} kept"
    );
    let checkpoint = scope.status().unwrap().checkpoint;
    assert!(checkpoint.is_some());

    h.restart();
    let report = scope.sync(&h.remote(READER), opts(1000)).unwrap();
    assert_eq!(report.run.counts.inserted, 10_000 - kept);
    let second = h.stats();
    assert_eq!(
        (second.pulls, second.changes_sent),
        (10 - kept / 1000, 10_000 - kept),
        "the resumed sync downloads nothing it already committed"
    );
    let cloud = h.status("s1");
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );
}

fn replicas_converge_under_writes(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..2000);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let ds = tether_dataset::Dataset::new(7, 3000);
            for round in 1..=30u64 {
                let mut upserts = Vec::new();
                for k in 0..20 {
                    let r = ds.version_of((round * 37 + k * 101) % 2000, round);
                    upserts.push(json!({"collection": r.collection, "id": r.id, "data": r.data}));
                }
                let created = ds.record(2000 + round);
                upserts.push(json!({"collection": created.collection, "id": created.id, "data": created.data}));
                let gone = ds.record(round * 13);
                h.admin(
                    "s1",
                    json!({"upserts": upserts, "deletes": [{"collection": gone.collection, "id": gone.id}]}),
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        for dir in &dirs {
            s.spawn(|| {
                let replica = Replica::open(dir.path().join("r.db")).unwrap();
                let scope = replica.scope("s1").unwrap();
                let remote = h.remote(READER);
                for _ in 0..20 {
                    if Instant::now() > deadline {
                        break;
                    }
                    scope.sync(&remote, opts(250)).unwrap();
                }
            });
        }
        writer.join().unwrap();
    });
    let cloud = h.status("s1");
    for dir in &dirs {
        let replica = Replica::open(dir.path().join("r.db")).unwrap();
        let scope = replica.scope("s1").unwrap();
        let report = scope.sync(&h.remote(READER), opts(250)).unwrap();
        assert_eq!(
            (report.snapshot.count, report.snapshot.digest),
            (cloud.count, cloud.digest)
        );
        assert_eq!(scope.count(None).unwrap(), cloud.count);
        let verified = scope.verify(&h.remote(READER), false).unwrap();
        assert!(verified.matched, "{verified:?}");
    }
}

fn range_repair_fixes_a_corrupted_replica(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..3000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(1000)).unwrap();

    let ds = tether_dataset::Dataset::new(7, 3000);
    let (changed, removed) = (ds.record(1234), ds.record(2222));
    {
        // Behind the engine's back: one row's data changed, another row removed.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let n = conn
            .execute(
                "UPDATE records SET data = '{\"tampered\":true}' WHERE collection = ?1 AND id = ?2",
                [changed.collection, changed.id.as_str()],
            )
            .unwrap();
        assert_eq!(n, 1);
        let n = conn
            .execute(
                "DELETE FROM records WHERE collection = ?1 AND id = ?2",
                [removed.collection, removed.id.as_str()],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let before = h.stats();
    let check = scope.verify(&remote, false).unwrap();
    assert!(!check.matched && !check.matches_now, "{check:?}");

    let fixed = scope.verify(&remote, true).unwrap();
    assert!(fixed.matches_now, "{fixed:?}");
    assert_eq!(fixed.repaired, 2, "{fixed:?}");
    assert_eq!(
        scope
            .get(changed.collection, &changed.id)
            .unwrap()
            .unwrap()
            .data,
        changed.data
    );
    assert!(scope
        .get(removed.collection, &removed.id)
        .unwrap()
        .is_some());
    let after = h.stats();
    assert_eq!(after.pulls, before.pulls, "repaired in place, no resync");

    // The maintained totals agree too: the next sync verifies without any download.
    let report = scope.sync(&remote, opts(1000)).unwrap();
    assert_eq!(report.run.kind, RunKind::Incremental);
    assert_eq!(report.run.counts.inserted + report.run.counts.updated, 0);
    assert_eq!(report.snapshot.digest, h.status("s1").digest);
}

/// The server's 401 and 403 reach the engine as typed errors, and a scope-limited token syncs
/// only its scope.
fn auth_errors_are_typed(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "one", json!({"n": 1}))]);
    h.upsert("s2", &[("objects", "secret", json!({"n": 2}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let err = replica
        .scope("s2")
        .unwrap()
        .sync(&h.remote(S1_ONLY), SyncOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth {
                status: Some(403),
                ..
            }
        ),
        "{err:?}"
    );
    let err = replica
        .scope("s1")
        .unwrap()
        .sync(&h.remote("nope"), SyncOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );

    // A granted scope shows only its own data.
    let s1 = replica.scope("s1").unwrap();
    let report = s1.sync(&h.remote(S1_ONLY), SyncOptions::default()).unwrap();
    assert_eq!(report.snapshot.count, 1);
    assert!(s1.get("objects", "secret").unwrap().is_none());
}

/// The backend writing its own PostgreSQL database with plain SQL: the trigger assigns the
/// version under the scope lock, a missing hash is computed by the server, `DELETE` leaves a
/// tombstone, and replicas sync all of it. (SQLite storage has no trigger path.)
fn sql_writes(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..100);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    scope
        .sync(&h.remote(READER), SyncOptions::default())
        .unwrap();
    let schema = h.schema().unwrap();
    h.rt.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(&common::pg_url().unwrap(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "SET search_path = {schema};
                 INSERT INTO records (scope, collection, id, data)
                   VALUES ('s1', 'objects', 'sql_new', '{{\"name\": \"from sql\", \"n\": 1.50}}');
                 UPDATE records SET data = data || '{{\"touched\": true}}'
                   WHERE scope = 's1' AND collection = 'repositories';
                 DELETE FROM records WHERE scope = 's1' AND collection = 'lineage';"
            ))
            .await
            .unwrap();
    });
    let report = scope
        .sync(&h.remote(READER), SyncOptions::default())
        .unwrap();
    let cloud = h.status("s1");
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );
    assert_eq!(cloud.count, 100 + 1 - 10);
    let new = scope.get("objects", "sql_new").unwrap().unwrap();
    assert_eq!(new.data["name"], "from sql");
    let repo = scope.get("repositories", "repo_000000").unwrap().unwrap();
    assert_eq!(repo.data["touched"], true);
    assert_eq!(scope.count(Some("lineage")).unwrap(), 0);
    let verified = scope.verify(&h.remote(READER), false).unwrap();
    assert!(verified.matched, "{verified:?}");
}

/// A local edit of `objects/<id>`: data, or `None` to delete.
type Edit = (&'static str, Option<serde_json::Value>);

/// The server's remote with the user editing in the middle of a sync, through the replica's
/// store (the `Replica` facade's own methods block, and would nest inside the sync's executor).
struct Meddler<'a> {
    remote: HttpRemote,
    store: &'a tether_native::SqliteStore,
    /// Edits made once the server has applied the next push, before its answer is applied.
    after_push: Mutex<Vec<Edit>>,
    /// Edits made before the pull with this index (0-based) is sent.
    before_pull: Mutex<Option<(u32, Vec<Edit>)>>,
    pulls: AtomicU32,
}

impl<'a> Meddler<'a> {
    fn new(remote: HttpRemote, replica: &'a Replica) -> Self {
        Meddler {
            remote,
            store: replica.store(),
            after_push: Mutex::default(),
            before_pull: Mutex::default(),
            pulls: AtomicU32::new(0),
        }
    }

    async fn edit(&self, scope: &ScopeId, edits: Vec<Edit>) {
        let local = ScopeHandle::new(self.store, scope.clone());
        for (id, data) in edits {
            match data {
                Some(d) => local.put("objects", id, d).await.unwrap(),
                None => local.delete("objects", id).await.unwrap(),
            }
        }
    }
}

impl Remote for Meddler<'_> {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> tether_engine::Result<Pulled> {
        let n = self.pulls.fetch_add(1, Ordering::SeqCst);
        let due = {
            let mut hook = self.before_pull.lock().unwrap();
            match hook.take() {
                Some((at, edits)) if at == n => edits,
                other => {
                    *hook = other;
                    Vec::new()
                }
            }
        };
        self.edit(scope, due).await;
        self.remote.pull(scope, checkpoint, limit).await
    }

    fn can_push(&self) -> bool {
        true
    }

    fn begin_run(&self) {
        self.remote.begin_run()
    }

    async fn push(
        &self,
        scope: &ScopeId,
        mutations: &[Mutation],
    ) -> tether_engine::Result<PushResponse> {
        let answer = self.remote.push(scope, mutations).await;
        let edits = std::mem::take(&mut *self.after_push.lock().unwrap());
        self.edit(scope, edits).await;
        answer
    }
}

/// The server's live data of `objects/<id>`.
fn cloud_data(h: &Harness, id: &str) -> Option<serde_json::Value> {
    let (_, body) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["collection"] == "objects" && r["id"] == id)
        .map(|r| r["data"].clone())
}

/// Edits made while the push of the previous edit of the same key is in flight: a revert to
/// the cloud state, and a delete of a local create being pushed. Both end in the cloud.
fn edits_during_a_push_end_in_one_place(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"v": "A"}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(100)).unwrap();

    scope.put("objects", "a", json!({"v": "B"})).unwrap();
    scope.put("objects", "c", json!({"v": "new"})).unwrap();
    let meddler = Meddler::new(h.remote(READER), &replica);
    *meddler.after_push.lock().unwrap() = vec![("a", Some(json!({"v": "A"}))), ("c", None)];
    scope.sync(&meddler, opts(100)).unwrap();
    assert_eq!(scope.get("objects", "a").unwrap().unwrap().data["v"], "A");
    assert!(
        scope.get("objects", "c").unwrap().is_none(),
        "not resurrected"
    );

    let report = scope.sync(&remote, opts(100)).unwrap();
    assert_eq!(report.run.counts.conflicts, 0);
    assert_eq!(cloud_data(&h, "a"), Some(json!({"v": "A"})));
    assert_eq!(cloud_data(&h, "c"), None);
    assert!(scope.conflicts().unwrap().is_empty());
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    assert_eq!(report.snapshot.digest, h.status("s1").digest);
}

/// A key deleted in the cloud before an initial download started, and created locally during
/// it: the download's later pages carry no tombstone of it (an initial download streams live
/// records only), so the create stays pending, with no conflict, and the next sync pushes it.
fn old_tombstones_keep_a_local_create(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..300);
    h.upsert("s1", &[("objects", "gone", json!({"v": "old"}))]);
    h.delete("s1", &[("objects", "gone")]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let meddler = Meddler::new(h.remote(READER), &replica);
    *meddler.before_pull.lock().unwrap() = Some((1, vec![("gone", Some(json!({"v": "new"})))]));

    let report = scope.sync(&meddler, opts(100)).unwrap();
    assert_eq!(report.run.kind, RunKind::Initial);
    assert!(report.run.pages >= 3, "the create was made after page 1");
    assert_eq!(report.run.counts.conflicts, 0, "{:?}", report.run.counts);
    assert_eq!(report.run.counts.deleted, 0, "{:?}", report.run.counts);
    assert!(scope.conflicts().unwrap().is_empty());
    let gone = scope.get("objects", "gone").unwrap().unwrap();
    assert!(gone.pending && gone.data["v"] == "new");

    scope.sync(&h.remote(READER), opts(100)).unwrap();
    assert_eq!(cloud_data(&h, "gone"), Some(json!({"v": "new"})));
    assert_eq!(scope.status().unwrap().pending_edits, 0);
}

/// Issue 8 item 5: a plain-SQL `UPDATE ... SET data` without `hash` while a replica holds a
/// pending edit of that record. The push (stale base) is rejected; its answer carries the
/// hash, so the sync completes, the cloud wins and the local edit is journaled with its data.
fn a_sql_update_without_hash_does_not_stop_a_pushing_replica(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"name": "a0"}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(100)).unwrap();

    scope.put("objects", "a", json!({"name": "local"})).unwrap();
    h.sql(
        "UPDATE records SET data = '{\"name\": \"sql\"}'
           WHERE scope = 's1' AND collection = 'objects' AND id = 'a';",
    );
    let report = scope.sync(&remote, opts(100)).unwrap();
    assert_eq!(report.run.counts.conflicts, 1, "{:?}", report.run.counts);
    assert_eq!(
        scope.get("objects", "a").unwrap().unwrap().data["name"],
        "sql"
    );
    let conflicts = scope.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].local_data.as_ref().unwrap()["name"], "local");
    let cloud = h.status("s1");
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );
    assert!(scope.verify(&remote, false).unwrap().matched);
}

/// Issue 8 item 6: rows written by plain SQL that the server cannot read back (`1e400`, deep
/// nesting; one of them a record replicas already hold) no longer stop every sync of the
/// scope. The row is quarantined: replicas drop their copy, and their digest still matches.
fn a_row_the_server_cannot_read_does_not_stop_sync(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..200);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(100)).unwrap();
    let victim = tether_dataset::Dataset::new(7, 200).record(17);
    let deep = format!("{{\"d\": {}{}}}", "[".repeat(300), "]".repeat(300));
    h.sql(&format!(
        "INSERT INTO records (scope, collection, id, data)
           VALUES ('s1', 'objects', 'huge', '{{\"x\": 1e400}}');
         INSERT INTO records (scope, collection, id, data) VALUES ('s1', 'objects', 'deep', '{deep}');
         UPDATE records SET data = '{{\"x\": 1e400}}'
           WHERE scope = 's1' AND collection = '{}' AND id = '{}';",
        victim.collection, victim.id
    ));
    let report = scope.sync(&remote, opts(100)).unwrap();
    let cloud = h.status("s1");
    assert_eq!(cloud.count, 199);
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );
    assert!(scope.get(victim.collection, &victim.id).unwrap().is_none());
    assert_eq!(scope.count(None).unwrap(), 199);
    assert!(scope.verify(&remote, false).unwrap().matched);

    // A new replica's initial sync gets the same.
    let fresh = Replica::open(dir.path().join("fresh.db")).unwrap();
    let fresh = fresh.scope("s1").unwrap();
    let report = fresh.sync(&remote, opts(50)).unwrap();
    assert_eq!(
        (report.snapshot.count, report.snapshot.digest),
        (cloud.count, cloud.digest)
    );
    assert!(fresh.verify(&remote, false).unwrap().matched);
}

/// Issue 8 item 5, issue 18 item 12: an edit with U+0000 in a string (valid JSON; PostgreSQL's
/// jsonb refuses it) used to be accepted locally and then refused by the cloud (a 500 that
/// failed every sync, later `invalid_data`). The cloud can never hold it, so the edit is
/// refused where it is made (`BadText`), nothing is pending, and syncs go on. (The server still
/// refuses such a mutation alone from any other client: crates/server/tests/limits.rs.)
fn an_edit_the_cloud_cannot_store_is_refused_where_it_is_made(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"name": "a0"}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(100)).unwrap();

    let err = scope
        .put("objects", "a", json!({"name": "a\u{0}b"}))
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.detail()),
        (
            tether_engine::ErrorKind::InvalidInput,
            Some(tether_engine::Detail::BadText)
        ),
        "{err}"
    );
    scope.put("objects", "b", json!({"name": "b1"})).unwrap();
    h.upsert("s1", &[("objects", "c", json!({"name": "from the cloud"}))]);
    let report = scope.sync(&remote, opts(100)).unwrap();
    assert_eq!(report.run.counts.conflicts, 0, "{:?}", report.run.counts);
    assert!(scope.conflicts().unwrap().is_empty());
    assert_eq!(
        scope.get("objects", "a").unwrap().unwrap().data["name"],
        "a0"
    );
    assert!(!scope.get("objects", "b").unwrap().unwrap().pending);
    assert_eq!(
        scope.get("objects", "c").unwrap().unwrap().data["name"],
        "from the cloud"
    );
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    assert_eq!(report.snapshot.digest, h.status("s1").digest);
    assert!(scope.verify(&remote, false).unwrap().matched);
}

/// Issue 8, item 5: 500 edits of 17 KB (8.5 MB, over the server's 8 MiB body limit) used to be
/// one push answered 413 every time. Batches are cut by bytes now: all are accepted.
fn a_push_over_the_body_limit_goes_in_batches(backend: Backend) {
    let h = Harness::start(backend);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let remote = h.remote(READER);
    scope.sync(&remote, opts(100)).unwrap();
    let filler = "x".repeat(17 * 1024);
    for i in 0..500 {
        let id = format!("big_{i:03}");
        scope
            .put("objects", &id, json!({"i": i, "filler": filler}))
            .unwrap();
    }
    let report = scope.sync(&remote, opts(1000)).unwrap();
    assert_eq!(report.run.counts.conflicts, 0, "{:?}", report.run.counts);
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    assert_eq!(h.status("s1").count, 500);
    assert_eq!(report.snapshot.digest, h.status("s1").digest);
}
