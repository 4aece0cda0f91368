//! "Every edit ends in one place": whole syncs in which the user edits while a push is in
//! flight or between pages of a download, the cloud changes during a repair, and verify repairs
//! with edits outstanding. After each, every local edit is accepted by the cloud, pending in the
//! outbox, or in the conflict journal with its data; none is overwritten without trace, none is
//! applied over a cloud version the user never saw.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::cloud::{Cloud, Faults};
use crate::error::Result;
use crate::remote::{Pulled, Remote};
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::sync::{SyncOptions, Syncer};
use crate::types::{
    Change, Checkpoint, KeyRange, Mutation, PushResponse, RemoteStatus, RunKind, ScopeId,
};
use crate::Snapshot;

use super::*;

/// A local edit: collection, id, data (`None` deletes).
type Edit = (&'static str, &'static str, Option<Value>);

/// The in-process cloud with a user and another writer acting in the middle of a sync.
struct Meddler<'a, S> {
    cloud: &'a Cloud,
    store: &'a S,
    /// Local edits made once the cloud has applied the next push, before its answer is applied.
    after_push: Mutex<Vec<Edit>>,
    /// Local edits made before the pull with this index (0-based) is answered.
    before_pull: Mutex<Vec<(u32, Edit)>>,
    /// Rewrite one record of the range asked for before answering the next range records.
    write_during_repair: Mutex<bool>,
    /// Rewrite one record outside the range asked for (a range already compared, or still to
    /// be) before answering the next range records.
    write_elsewhere_during_repair: Mutex<bool>,
    pulls: AtomicU32,
    can_push: bool,
}

impl<'a, S: Store> Meddler<'a, S> {
    fn new(cloud: &'a Cloud, store: &'a S) -> Self {
        Meddler {
            cloud,
            store,
            after_push: Mutex::default(),
            before_pull: Mutex::default(),
            write_during_repair: Mutex::default(),
            write_elsewhere_during_repair: Mutex::default(),
            pulls: AtomicU32::new(0),
            can_push: true,
        }
    }

    fn after_push(self, edits: Vec<Edit>) -> Self {
        *self.after_push.lock().unwrap() = edits;
        self
    }

    fn before_pull(self, pull: u32, edit: Edit) -> Self {
        self.before_pull.lock().unwrap().push((pull, edit));
        self
    }

    fn write_during_repair(self) -> Self {
        *self.write_during_repair.lock().unwrap() = true;
        self
    }

    fn write_elsewhere_during_repair(self) -> Self {
        *self.write_elsewhere_during_repair.lock().unwrap() = true;
        self
    }

    fn pull_only(mut self) -> Self {
        self.can_push = false;
        self
    }

    async fn edit(&self, scope: &ScopeId, edits: Vec<Edit>) {
        let local = ScopeHandle::new(self.store, scope.clone());
        for (collection, id, data) in edits {
            match data {
                Some(d) => local.put(collection, id, d).await.unwrap(),
                None => local.delete(collection, id).await.unwrap(),
            }
        }
    }
}

impl<S: Store> Remote for Meddler<'_, S> {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        let n = self.pulls.fetch_add(1, Ordering::SeqCst);
        let due: Vec<Edit> = {
            let mut hooks = self.before_pull.lock().unwrap();
            let (due, later) = std::mem::take(&mut *hooks)
                .into_iter()
                .partition(|(at, _)| *at == n);
            *hooks = later;
            due.into_iter().map(|(_, e)| e).collect()
        };
        self.edit(scope, due).await;
        self.cloud.pull_now(scope, cp, limit)
    }

    fn can_push(&self) -> bool {
        self.can_push
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        let answer = self.cloud.push(scope, mutations).await;
        let edits = std::mem::take(&mut *self.after_push.lock().unwrap());
        self.edit(scope, edits).await;
        answer
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.cloud.status(scope).await
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.cloud.range_digest(scope, range).await
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        if std::mem::take(&mut *self.write_during_repair.lock().unwrap()) {
            // Another writer changes a record of this very range: the records answered hold
            // the write, the snapshot of the last page does not.
            let records = self.cloud.range_records(scope, range).await?.unwrap();
            let first = &records[0];
            self.cloud.put(
                scope,
                &first.collection,
                &first.id,
                json!({"written": "during the repair"}),
                NOW,
            );
        }
        if std::mem::take(&mut *self.write_elsewhere_during_repair.lock().unwrap()) {
            let all = self
                .cloud
                .range_records(scope, &KeyRange::all())
                .await?
                .unwrap();
            let other = all
                .iter()
                .find(|c| !range.contains(&crate::Key::new(&c.collection, &c.id)))
                .expect("a record outside the range");
            self.cloud.put(
                scope,
                &other.collection,
                &other.id,
                json!({"written": "elsewhere during the repair"}),
                NOW,
            );
        }
        self.cloud.range_records(scope, range).await
    }
}

async fn data_of<S: Store>(
    local: &ScopeHandle<'_, S>,
    collection: &str,
    id: &str,
) -> Option<Value> {
    local
        .get(collection, id)
        .await
        .unwrap()
        .map(|r| Value::Object(r.data))
}

fn cloud_data(cloud: &Cloud, scope: &ScopeId, collection: &str, id: &str) -> Option<Value> {
    cloud
        .record(scope, collection, id)
        .map(|(_, d)| Value::Object(d))
}

/// The journal's entries for one record, as their local data.
async fn journaled<S: Store>(local: &ScopeHandle<'_, S>, id: &str) -> Vec<Option<Value>> {
    local
        .conflicts()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.record_id == id)
        .map(|c| c.local_data.map(Value::Object))
        .collect()
}

/// Edits made while their key's push is in flight: a revert to the cloud state, a delete of a
/// local create being pushed, a newer value, and a newer value while the push is rejected.
pub async fn edits_during_a_push_end_in_one_place<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    cloud.put(&s, "t", "revert", json!({"v": "A"}), NOW);
    cloud.put(&s, "t", "newer", json!({"v": "A"}), NOW);
    cloud.put(&s, "t", "lost", json!({"v": "A"}), NOW);
    sync(store, &cloud, &s, 100).await.unwrap();
    let local = ScopeHandle::new(store, s.clone());
    local.put("t", "revert", json!({"v": "B"})).await.unwrap();
    local
        .put("t", "created", json!({"v": "new"}))
        .await
        .unwrap();
    local.put("t", "newer", json!({"v": "C"})).await.unwrap();
    local.put("t", "lost", json!({"v": "E"})).await.unwrap();
    // Another writer gets to "lost" first: the push of E is rejected.
    cloud.put(&s, "t", "lost", json!({"v": "X"}), NOW);
    let meddler = Meddler::new(&cloud, store).after_push(vec![
        ("t", "revert", Some(json!({"v": "A"}))),
        ("t", "created", None),
        ("t", "newer", Some(json!({"v": "D"}))),
        ("t", "lost", Some(json!({"v": "F"}))),
    ]);
    Syncer::new(store, &meddler, &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(
        data_of(&local, "t", "revert").await,
        Some(json!({"v": "A"})),
        "the edit back to A made during the push of B is kept"
    );
    assert_eq!(
        data_of(&local, "t", "created").await,
        None,
        "a local create deleted during its push stays deleted"
    );
    assert_eq!(data_of(&local, "t", "newer").await, Some(json!({"v": "D"})));
    assert_eq!(
        data_of(&local, "t", "lost").await,
        Some(json!({"v": "X"})),
        "cloud wins"
    );
    assert_eq!(
        journaled(&local, "lost").await,
        [Some(json!({"v": "E"})), Some(json!({"v": "F"}))],
        "both edits made on the version the other writer replaced are journaled"
    );
    let report = sync(store, &cloud, &s, 100).await.unwrap();
    assert_eq!(report.run.counts.conflicts, 0);
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(
        cloud_data(&cloud, &s, "t", "revert"),
        Some(json!({"v": "A"}))
    );
    assert_eq!(cloud_data(&cloud, &s, "t", "created"), None);
    assert_eq!(
        cloud_data(&cloud, &s, "t", "newer"),
        Some(json!({"v": "D"}))
    );
    assert_eq!(cloud_data(&cloud, &s, "t", "lost"), Some(json!({"v": "X"})));
    assert_eq!(
        local.conflicts().await.unwrap().len(),
        2,
        "no false conflict"
    );
    assert_eq!(report.snapshot, cloud.snapshot(&s));
}

/// A push applied by the cloud whose answer is lost, then a newer edit of the same record:
/// the newer edit rests on the replica's own write, so it is no conflict, whether the pull of
/// the same run brings that write back or the next run pushes the newer edit on the old base
/// (the cloud recognises the mutation id). A write by someone else in between still is one.
pub async fn a_lost_push_answer_then_a_newer_edit_is_no_conflict<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    for id in ["same-run", "next-run", "deleted", "other-writer"] {
        cloud.put(&s, "t", id, json!({"v": 0}), NOW);
    }
    sync(store, &cloud, &s, 100).await.unwrap();
    let local = ScopeHandle::new(store, s.clone());
    let lose_answer = |fail_pulls| Faults {
        lose_push_answer: true,
        fail_pulls,
        ..Faults::default()
    };

    // The edit comes while the push is in flight; the pull of the same run brings v:1 back.
    local.put("t", "same-run", json!({"v": 1})).await.unwrap();
    cloud.inject(lose_answer(0));
    let meddler =
        Meddler::new(&cloud, store).after_push(vec![("t", "same-run", Some(json!({"v": 2})))]);
    let err = Syncer::new(store, &meddler, &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Network);
    assert_eq!(
        journaled(&local, "same-run").await,
        Vec::<Option<Value>>::new()
    );
    assert_eq!(
        data_of(&local, "t", "same-run").await,
        Some(json!({"v": 2}))
    );

    // The network is down for the pull as well; the user edits before the next run.
    local.put("t", "next-run", json!({"v": 1})).await.unwrap();
    local.delete("t", "deleted").await.unwrap();
    local
        .put("t", "other-writer", json!({"v": 1}))
        .await
        .unwrap();
    cloud.inject(lose_answer(1));
    sync(store, &cloud, &s, 100).await.unwrap_err();
    assert_eq!(
        cloud_data(&cloud, &s, "t", "next-run"),
        Some(json!({"v": 1}))
    );
    assert_eq!(cloud_data(&cloud, &s, "t", "deleted"), None);
    local.put("t", "next-run", json!({"v": 2})).await.unwrap();
    local
        .put("t", "deleted", json!({"v": "again"}))
        .await
        .unwrap();
    cloud.put(&s, "t", "other-writer", json!({"v": "theirs"}), NOW);
    local
        .put("t", "other-writer", json!({"v": 2}))
        .await
        .unwrap();

    let report = sync(store, &cloud, &s, 100).await.unwrap();
    assert_eq!(report.run.counts.conflicts, 1, "only the other writer's");
    for (id, v) in [
        ("same-run", json!({"v": 2})),
        ("next-run", json!({"v": 2})),
        ("deleted", json!({"v": "again"})),
        ("other-writer", json!({"v": "theirs"})),
    ] {
        assert_eq!(cloud_data(&cloud, &s, "t", id), Some(v.clone()), "{id}");
        assert_eq!(data_of(&local, "t", id).await, Some(v), "{id}");
    }
    assert_eq!(
        journaled(&local, "other-writer").await,
        [Some(json!({"v": 2}))]
    );
    assert_eq!(local.conflicts().await.unwrap().len(), 1);
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
}

/// `verify` with repair while edits are pending on versions another writer has replaced or
/// deleted: the repair does not move their base, so the edits lose (journaled) instead of
/// overwriting the other writer or resurrecting the deleted record.
pub async fn repair_never_moves_a_pending_base<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    cloud.put(&s, "t", "r", json!({"v": "A"}), NOW);
    cloud.put(&s, "t", "d", json!({"v": "A"}), NOW);
    cloud.put(&s, "t", "same", json!({"v": "A"}), NOW);
    sync(store, &cloud, &s, 100).await.unwrap();
    let local = ScopeHandle::new(store, s.clone());
    local.put("t", "r", json!({"v": "local"})).await.unwrap();
    local.put("t", "d", json!({"v": "local"})).await.unwrap();
    local.put("t", "same", json!({"v": "mine"})).await.unwrap();
    cloud.put(&s, "t", "r", json!({"v": "cloud"}), NOW);
    cloud.delete(&s, "t", "d", NOW);
    let verified = Syncer::new(store, &cloud, &clock)
        .verify(&s, true)
        .await
        .unwrap();
    assert!(!verified.matched && verified.matches_now, "{verified:?}");
    sync(store, &cloud, &s, 100).await.unwrap();
    assert_eq!(
        cloud_data(&cloud, &s, "t", "r"),
        Some(json!({"v": "cloud"}))
    );
    assert_eq!(cloud_data(&cloud, &s, "t", "d"), None, "not resurrected");
    assert_eq!(
        cloud_data(&cloud, &s, "t", "same"),
        Some(json!({"v": "mine"})),
        "an edit whose base the cloud still holds is pushed"
    );
    assert_eq!(journaled(&local, "r").await, [Some(json!({"v": "local"}))]);
    assert_eq!(journaled(&local, "d").await, [Some(json!({"v": "local"}))]);
    assert_eq!(data_of(&local, "t", "r").await, Some(json!({"v": "cloud"})));
    assert_eq!(data_of(&local, "t", "d").await, None);
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
}

/// A pending delete of a record the cloud deleted too, found by the sweep of a full download:
/// the edit got what it wanted, it is not a conflict.
pub async fn sweep_takes_a_pending_delete_the_cloud_agrees_with<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    cloud.put(&s, "t", "gone", json!({"v": 1}), NOW);
    cloud.put(&s, "t", "edited", json!({"v": 1}), NOW);
    cloud.put(&s, "t", "kept", json!({"v": 1}), NOW);
    sync(store, &cloud, &s, 100).await.unwrap();
    let local = ScopeHandle::new(store, s.clone());
    local.delete("t", "gone").await.unwrap();
    local
        .put("t", "edited", json!({"v": "mine"}))
        .await
        .unwrap();
    cloud.delete(&s, "t", "gone", NOW);
    let head = cloud.delete(&s, "t", "edited", NOW);
    cloud.purge_tombstones(&s, head);
    let report = Syncer::new(store, &Meddler::new(&cloud, store).pull_only(), &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.run.kind, RunKind::FullResync);
    assert_eq!(report.run.counts.conflicts, 1, "only the lost put");
    assert_eq!(journaled(&local, "gone").await, Vec::<Option<Value>>::new());
    assert_eq!(
        journaled(&local, "edited").await,
        [Some(json!({"v": "mine"}))]
    );
    assert_eq!(data_of(&local, "t", "gone").await, None);
    assert_eq!(
        store.pending_count(&s).await.unwrap(),
        1,
        "the delete stays pending until the cloud answers for it"
    );
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    let report = sync(store, &cloud, &s, 100).await.unwrap();
    assert_eq!(report.run.counts.conflicts, 0);
    assert_eq!(journaled(&local, "gone").await, Vec::<Option<Value>>::new());
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(cloud_data(&cloud, &s, "t", "gone"), None);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
}

/// Found by the simulation (seed 2228): a full download whose page misses a record (truncated;
/// the digest finds it afterwards) must not make the sweep settle a pending delete of that
/// record, which the repair then brings back with no trace of the delete.
pub async fn sweep_keeps_a_pending_delete_a_truncated_download_missed<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    cloud.put(&s, "t", "a", json!({"v": 1}), NOW);
    cloud.put(&s, "t", "r", json!({"v": 1}), NOW);
    sync(store, &cloud, &s, 100).await.unwrap();
    let local = ScopeHandle::new(store, s.clone());
    local.delete("t", "r").await.unwrap();
    cloud.put(&s, "t", "z", json!({"v": 1}), NOW);
    let head = cloud.delete(&s, "t", "z", NOW);
    cloud.purge_tombstones(&s, head);
    cloud.inject(Faults {
        truncate_next: true,
        ..Faults::default()
    });
    let pull_only = Meddler::new(&cloud, store).pull_only();
    let report = Syncer::new(store, &pull_only, &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.run.kind, RunKind::FullResync);
    sync(store, &cloud, &s, 100).await.unwrap();
    let delete_kept =
        cloud_data(&cloud, &s, "t", "r").is_none() || journaled(&local, "r").await == [None];
    assert!(delete_kept, "the delete is accepted or journaled, not lost");
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
}

/// A download's later pages carry tombstones of records deleted before it started (the
/// reference server sends them, and so does the in-process cloud): one for a key the user
/// created locally during the download leaves the create pending, no conflict.
pub async fn old_tombstones_keep_a_create_made_during_the_download<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    seed(&cloud, &s, 120);
    cloud.put(&s, "t", "gone", json!({"v": "old"}), NOW);
    cloud.delete(&s, "t", "gone", NOW);
    let meddler =
        Meddler::new(&cloud, store).before_pull(1, ("t", "gone", Some(json!({"v": "new"}))));
    let report = Syncer::new(store, &meddler, &clock)
        .sync(
            &s,
            SyncOptions {
                page_size: 50,
                ..SyncOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(report.run.kind, RunKind::Initial);
    assert!(report.run.pages >= 3, "the tombstone came after page 1");
    let local = ScopeHandle::new(store, s.clone());
    assert_eq!(report.run.counts.conflicts, 0);
    assert_eq!(local.conflicts().await.unwrap().len(), 0);
    assert_eq!(
        data_of(&local, "t", "gone").await,
        Some(json!({"v": "new"}))
    );
    assert_eq!(store.pending_count(&s).await.unwrap(), 1);
    sync(store, &cloud, &s, 50).await.unwrap();
    assert_eq!(
        cloud_data(&cloud, &s, "t", "gone"),
        Some(json!({"v": "new"}))
    );
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
}

/// Another writer changes a record while a range repair runs: the repaired replica equals the
/// cloud, not the last page's snapshot. That is a success (compared with a fresh answer), not
/// a full download, and after a reset not an `Integrity` error.
pub async fn repair_is_checked_against_a_fresh_cloud_answer<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 600).await;
    miss_a_change(&cloud, &s);
    let meddler = Meddler::new(&cloud, store).write_during_repair();
    let report = Syncer::new(store, &meddler, &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.run.kind, RunKind::Incremental, "no full download");
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(
        store.scope_state(&s).await.unwrap().totals,
        cloud.snapshot(&s)
    );

    // After a reset: a full download whose page lost a record, repaired while the cloud moves.
    let head = cloud.delete(&s, "tables", "id-00000", NOW);
    cloud.purge_tombstones(&s, head);
    cloud.inject(Faults {
        truncate_next: true,
        ..Faults::default()
    });
    let meddler = Meddler::new(&cloud, store).write_during_repair();
    let report = Syncer::new(store, &meddler, &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.run.kind, RunKind::FullResync);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        cloud.snapshot(&s)
    );

    // A write during the repair to a range it does not fix: the repaired replica lacks only
    // that write, which the next page brings. One catch-up pull, no full download.
    for i in 0..5 {
        let id = format!("id-{:05}", i * 3 + 2);
        cloud.put(&s, "columns", &id, json!({"v": "third"}), NOW);
    }
    cloud.inject(Faults {
        truncate_next: true,
        ..Faults::default()
    });
    let meddler = Meddler::new(&cloud, store).write_elsewhere_during_repair();
    let report = Syncer::new(store, &meddler, &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.run.kind, RunKind::Incremental, "no full download");
    assert!(report.run.counts.repaired > 0);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        cloud.snapshot(&s)
    );
}
