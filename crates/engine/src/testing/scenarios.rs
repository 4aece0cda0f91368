//! Sync scenarios: whole runs of the [`Syncer`] over a store and an in-process [`Cloud`],
//! with faults (bad pages, failed pulls, lost push answers, resets, truncated pages).

use serde_json::json;

use crate::cloud::{Cloud, Faults};
use crate::error::{Error, ErrorKind};
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::sync::{SyncOptions, Syncer};
use crate::types::{Counts, Key, KeyRange, RunKind, RunStatus, ScopeId};

use super::*;

/// Initial sync in several pages, then incremental updates and deletes: equal digest, right
/// counters, history recorded.
pub async fn sync_initial_incremental_and_deletes<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    seed(&cloud, &s, 1000);
    let first = sync(store, &cloud, &s, 150).await.unwrap();
    assert_eq!(first.run.kind, RunKind::Initial);
    assert_eq!(first.run.pages, 7);
    assert_eq!(first.run.counts.inserted, 1000);
    assert_eq!(first.snapshot, cloud.snapshot(&s));
    assert_eq!(
        store.scope_state(&s).await.unwrap().totals,
        cloud.snapshot(&s)
    );
    assert_eq!(store.count(&s, Some("tables")).await.unwrap(), 334);
    for i in 0..50 {
        cloud.put(
            &s,
            "columns",
            &format!("id-{:05}", i * 3 + 1),
            json!({"changed": i}),
            NOW,
        );
    }
    for i in 0..30 {
        cloud.delete(&s, "tables", &format!("id-{:05}", i * 3), NOW);
    }
    cloud.put(&s, "tables", "new", json!({"fresh": true}), NOW);
    let second = sync(store, &cloud, &s, 40).await.unwrap();
    assert_eq!(second.run.kind, RunKind::Incremental);
    assert_eq!(
        (
            second.run.counts.inserted,
            second.run.counts.updated,
            second.run.counts.deleted
        ),
        (1, 50, 30)
    );
    assert_eq!(second.snapshot, cloud.snapshot(&s));
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        cloud.snapshot(&s)
    );
    let third = sync(store, &cloud, &s, 40).await.unwrap();
    assert_eq!(
        third.run.counts,
        Counts::default(),
        "nothing new: nothing done"
    );
    let runs = store.runs(&s, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs
        .iter()
        .all(|r| r.status == RunStatus::Completed && r.finished_at.is_some()));
    let local = ScopeHandle::new(store, s.clone());
    assert_eq!(
        local
            .get("columns", "id-00001")
            .await
            .unwrap()
            .unwrap()
            .data["changed"],
        0
    );
    assert!(local.get("tables", "id-00000").await.unwrap().is_none());
}

/// A page with a bad hash is rejected whole: nothing applied, checkpoint unchanged, the run
/// recorded as failed with a Protocol error.
pub async fn bad_page_is_rejected_whole<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 100).await;
    let before = store.scope_state(&s).await.unwrap();
    for i in 0..10 {
        cloud.put(
            &s,
            "columns",
            &format!("id-{:05}", i * 3 + 1),
            json!({"v": i}),
            NOW,
        );
    }
    cloud.inject(Faults {
        corrupt_next: true,
        ..Faults::default()
    });
    let err = sync(store, &cloud, &s, 1000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(
        store.scope_state(&s).await.unwrap(),
        before,
        "nothing of the page applied"
    );
    let run = &store.runs(&s, 1).await.unwrap()[0];
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_ref().unwrap().kind, ErrorKind::Protocol);
    let ok = sync(store, &cloud, &s, 1000).await.unwrap();
    assert_eq!(ok.run.counts.updated, 10);
    assert_eq!(ok.snapshot, cloud.snapshot(&s));
}

/// A sync that fails midway keeps its committed pages; the next one resumes from the stored
/// checkpoint and downloads nothing twice.
pub async fn interrupted_sync_resumes_from_checkpoint<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    seed(&cloud, &s, 500);
    // Let three pages through, then fail.
    struct FailAfter<'a>(&'a Cloud, std::sync::atomic::AtomicU32);
    impl crate::Remote for FailAfter<'_> {
        async fn pull(
            &self,
            scope: &ScopeId,
            cp: Option<&crate::Checkpoint>,
            limit: u32,
        ) -> crate::Result<crate::Pulled> {
            if self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3 {
                return Err(Error::network("connection reset"));
            }
            self.0.pull_now(scope, cp, limit)
        }
    }
    let flaky = FailAfter(&cloud, Default::default());
    let err = Syncer::new(store, &flaky, &clock)
        .sync(
            &s,
            SyncOptions {
                page_size: 100,
                ..SyncOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        store.count(&s, None).await.unwrap(),
        300,
        "three committed pages kept"
    );
    assert_eq!(
        store.runs(&s, 1).await.unwrap()[0]
            .error
            .as_ref()
            .unwrap()
            .kind,
        ErrorKind::Network
    );
    let pulls_before = cloud.pulls();
    let resumed = sync(store, &cloud, &s, 100).await.unwrap();
    assert_eq!(resumed.run.counts.inserted, 200, "only what was missing");
    assert_eq!(
        cloud.pulls() - pulls_before,
        2,
        "two pages left, none downloaded again"
    );
    assert_eq!(
        resumed.run.kind,
        RunKind::Initial,
        "still the initial download"
    );
    assert_eq!(resumed.snapshot, cloud.snapshot(&s));
}

/// Local edits are visible at once, pushed by sync; the cloud wins over a conflicting edit,
/// which goes to the journal; an accepted edit is not a conflict.
pub async fn local_edits_push_and_conflicts<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 30).await;
    let local = ScopeHandle::new(store, s.clone());
    local
        .put("tables", "id-00000", json!({"name": "mine"}))
        .await
        .unwrap();
    local
        .put("tables", "id-00003", json!({"name": "also mine"}))
        .await
        .unwrap();
    local
        .put("tables", "brand-new", json!({"name": "created offline"}))
        .await
        .unwrap();
    local.delete("columns", "id-00001").await.unwrap();
    assert_eq!(
        local.get("tables", "id-00000").await.unwrap().unwrap().data["name"],
        "mine"
    );
    assert!(local.get("columns", "id-00001").await.unwrap().is_none());
    assert_eq!(store.pending_count(&s).await.unwrap(), 4);
    assert_eq!(
        store.scope_state(&s).await.unwrap().totals,
        cloud.snapshot(&s),
        "digest tracks the cloud state"
    );
    // The cloud changes one of the edited records first: that edit must lose.
    cloud.put(&s, "tables", "id-00003", json!({"name": "cloud's"}), NOW);
    let report = sync(store, &cloud, &s, 1000).await.unwrap();
    assert_eq!(report.run.counts.conflicts, 1);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(
        cloud.record(&s, "tables", "id-00000").unwrap().1["name"],
        "mine",
        "accepted"
    );
    assert_eq!(
        cloud.record(&s, "tables", "brand-new").unwrap().1["name"],
        "created offline"
    );
    assert!(
        cloud.record(&s, "columns", "id-00001").is_none(),
        "delete accepted"
    );
    assert_eq!(
        local.get("tables", "id-00003").await.unwrap().unwrap().data["name"],
        "cloud's",
        "cloud wins"
    );
    let conflicts = local.conflicts().await.unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].record_id, "id-00003");
    assert_eq!(
        conflicts[0].local_data.as_ref().unwrap()["name"],
        "also mine",
        "the losing edit is kept"
    );
    // Edit again, then the cloud overwrites it before we push (pull-side conflict).
    local
        .put("tables", "id-00006", json!({"name": "offline edit"}))
        .await
        .unwrap();
    cloud.put(
        &s,
        "tables",
        "id-00006",
        json!({"name": "cloud again"}),
        NOW,
    );
    struct PullOnly<'a>(&'a Cloud);
    impl crate::Remote for PullOnly<'_> {
        async fn pull(
            &self,
            scope: &ScopeId,
            cp: Option<&crate::Checkpoint>,
            limit: u32,
        ) -> crate::Result<crate::Pulled> {
            self.0.pull_now(scope, cp, limit)
        }
    }
    let r = Syncer::new(store, &PullOnly(&cloud), &clock)
        .sync(&s, SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(r.run.counts.conflicts, 1);
    assert_eq!(local.conflicts().await.unwrap().len(), 2);
    assert_eq!(
        local.get("tables", "id-00006").await.unwrap().unwrap().data["name"],
        "cloud again"
    );
    // A push whose answer was lost is retried; the cloud already has it: no conflict.
    local
        .put("tables", "id-00009", json!({"name": "retried"}))
        .await
        .unwrap();
    cloud.inject(Faults {
        lose_push_answer: true,
        ..Faults::default()
    });
    assert_eq!(
        sync(store, &cloud, &s, 1000).await.unwrap_err().kind(),
        ErrorKind::Network
    );
    let again = sync(store, &cloud, &s, 1000).await.unwrap();
    assert_eq!(
        again.run.counts.conflicts, 0,
        "our own earlier write is not a conflict"
    );
    assert_eq!(local.conflicts().await.unwrap().len(), 2);
    assert_eq!(again.snapshot, cloud.snapshot(&s));
}

/// A checkpoint behind the tombstone horizon gets a reset: full download under a new
/// generation, rows the cloud no longer has are swept, the digest matches.
pub async fn reset_resyncs_and_sweeps<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    seed(&cloud, &s, 200);
    sync(store, &cloud, &s, 64).await.unwrap();
    for i in 0..40 {
        cloud.delete(&s, "columns", &format!("id-{:05}", i * 3 + 1), NOW);
    }
    cloud.put(&s, "tables", "id-00000", json!({"after": "reset"}), NOW);
    let head = cloud.put(&s, "tables", "late", json!({}), NOW);
    cloud.purge_tombstones(&s, head);
    let gen_before = store.scope_state(&s).await.unwrap().generation;
    let report = sync(store, &cloud, &s, 64).await.unwrap();
    assert_eq!(report.run.kind, RunKind::FullResync);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(store.count(&s, None).await.unwrap(), 161);
    assert!(
        store
            .row(&s, &Key::new("columns", "id-00001"))
            .await
            .unwrap()
            .is_none(),
        "stale row swept"
    );
    let state = store.scope_state(&s).await.unwrap();
    assert_eq!(state.generation, gen_before + 1);
    assert!(!state.full_sync);
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        cloud.snapshot(&s)
    );
    let next = sync(store, &cloud, &s, 64).await.unwrap();
    assert_eq!(next.run.kind, RunKind::Incremental);
}

/// A replica that silently missed a change is repaired range by range, without a full
/// download.
pub async fn divergence_is_repaired_in_place<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 600).await;
    miss_a_change(&cloud, &s);
    let report = sync(store, &cloud, &s, 1000).await.unwrap();
    assert_eq!(
        report.run.kind,
        RunKind::Incremental,
        "no full resync needed"
    );
    assert_eq!(report.run.counts.repaired, 1);
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        cloud.snapshot(&s)
    );
    assert!(cloud.pulls() <= 3, "repair fetched ranges, not the scope");
}

/// A preview pulls and plans what a sync would, writes nothing, and tells inserts, updates,
/// deletes, the local edits that would lose and the edits that would be pushed; in full after
/// a reset, the rows the sweep would remove count as deleted.
pub async fn preview_tells_what_a_sync_would_do_and_writes_nothing<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 30).await;
    for i in 0..3 {
        cloud.put(&s, "tables", &format!("new-{i}"), json!({"i": i}), NOW);
    }
    cloud.put(&s, "tables", "id-00000", json!({"changed": true}), NOW);
    cloud.put(&s, "columns", "id-00001", json!({"changed": true}), NOW);
    cloud.delete(&s, "columns", "id-00002", NOW);
    let local = ScopeHandle::new(store, s.clone());
    local
        .put("columns", "id-00001", json!({"mine": true}))
        .await
        .unwrap();
    local
        .put("columns", "local-create", json!({}))
        .await
        .unwrap();
    let before = (
        store.scope_state(&s).await.unwrap(),
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        store.pending_count(&s).await.unwrap(),
        store.runs(&s, 100).await.unwrap().len(),
    );
    let p = Syncer::new(store, &cloud, &clock)
        .preview(&s, SyncOptions::default())
        .await
        .unwrap();
    assert!(!p.full);
    assert_eq!(p.pushes, 2);
    assert_eq!(
        (
            p.counts.inserted,
            p.counts.updated,
            p.counts.deleted,
            p.counts.conflicts
        ),
        (3, 1, 1, 1),
        "{p:?}: the conflicting edit is journaled by the push, so counted as a conflict only"
    );
    assert_eq!(p.conflicts, [Key::new("columns", "id-00001")]);
    let after = (
        store.scope_state(&s).await.unwrap(),
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        store.pending_count(&s).await.unwrap(),
        store.runs(&s, 100).await.unwrap().len(),
    );
    assert_eq!(after, before, "nothing written, no run recorded");
    // The sync itself then does it, with the same counts.
    let report = sync(store, &cloud, &s, 1000).await.unwrap();
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    let c = report.run.counts;
    assert_eq!(
        (c.inserted, c.updated, c.deleted, c.conflicts),
        (
            p.counts.inserted,
            p.counts.updated,
            p.counts.deleted,
            p.counts.conflicts
        ),
        "the preview foretold the sync"
    );

    // After a purge the checkpoint resets: a full download whose sweep removes a row.
    let gone = cloud.delete(&s, "tables", "id-00003", NOW);
    cloud.purge_tombstones(&s, gone);
    let p = Syncer::new(store, &cloud, &clock)
        .preview(&s, SyncOptions::default())
        .await
        .unwrap();
    assert!(p.full);
    assert_eq!(p.counts.deleted, 1, "{p:?}");
    assert_eq!(p.counts.inserted, 0, "{p:?}");
}
