//! Push scenarios: a push problem never blocks the pull, and a mutation the cloud can never
//! accept is journaled on its own.

use serde_json::json;

use crate::cloud::Faults;
use crate::error::ErrorKind;
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::sync::{SyncOptions, Syncer};
use crate::types::RunStatus;

use super::*;

/// A push that fails (network) does not end the run before the pull: the cloud's changes
/// arrive, the edit stays pending (not journaled), the run fails with the push's error, and
/// the next sync pushes the edit.
pub async fn failed_push_does_not_block_the_pull<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 10).await;
    let local = ScopeHandle::new(store, s.clone());
    local
        .put("tables", "id-00000", json!({"name": "mine"}))
        .await
        .unwrap();
    cloud.put(&s, "columns", "id-00001", json!({"name": "cloud's"}), NOW);
    cloud.inject(Faults {
        fail_pushes: 1,
        ..Faults::default()
    });
    let err = sync(store, &cloud, &s, 1000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network, "the run reports the push");
    assert_eq!(
        local
            .get("columns", "id-00001")
            .await
            .unwrap()
            .unwrap()
            .data["name"],
        "cloud's",
        "the pull ran after the failed push"
    );
    assert_eq!(
        store.pending_count(&s).await.unwrap(),
        1,
        "the edit stays pending"
    );
    assert!(
        local.conflicts().await.unwrap().is_empty(),
        "and is not journaled"
    );
    assert_eq!(
        local.get("tables", "id-00000").await.unwrap().unwrap().data["name"],
        "mine"
    );
    assert_eq!(
        store.scope_state(&s).await.unwrap().totals,
        cloud.snapshot(&s)
    );
    let run = &store.runs(&s, 1).await.unwrap()[0];
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.counts.updated, 1, "the run counts what the pull did");
    assert_eq!(run.error.as_ref().unwrap().kind, ErrorKind::Network);
    let ok = sync(store, &cloud, &s, 1000).await.unwrap();
    assert_eq!(ok.snapshot, cloud.snapshot(&s));
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(
        cloud.record(&s, "tables", "id-00000").unwrap().1["name"],
        "mine"
    );
}

/// Pushes are cut by bytes as well as by count: 30 edits of 1 KB under a 4 KB limit reach a
/// cloud that refuses larger bodies (as the server answers 413), all of them accepted.
pub async fn push_batches_are_cut_by_bytes<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 3).await;
    let local = ScopeHandle::new(store, s.clone());
    for i in 0..30 {
        local
            .put(
                "blobs",
                &format!("b{i:02}"),
                json!({"text": "x".repeat(1000)}),
            )
            .await
            .unwrap();
    }
    cloud.inject(Faults {
        max_push_bytes: Some(4096),
        ..Faults::default()
    });
    let opts = SyncOptions {
        push_bytes: 4096,
        ..SyncOptions::default()
    };
    let report = Syncer::new(store, &cloud, &clock)
        .sync(&s, opts)
        .await
        .unwrap();
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(cloud.snapshot(&s).count, 33, "every edit reached the cloud");
    assert!(local.conflicts().await.unwrap().is_empty());
}

/// An edit larger than the push limit is never sent: it is journaled with its data and reason
/// `too_large`, the row takes the cloud's state (a local create goes), and the other edits
/// and the pull go on.
pub async fn an_edit_over_the_push_limit_is_journaled_as_too_large<S: Store>(store: &S) {
    let (s, cloud) = synced(store, 10).await;
    let local = ScopeHandle::new(store, s.clone());
    let big = json!({"text": "x".repeat(10_000)});
    local.put("tables", "id-00000", big.clone()).await.unwrap();
    local.put("blobs", "new-big", big.clone()).await.unwrap();
    local
        .put("tables", "id-00003", json!({"name": "small"}))
        .await
        .unwrap();
    cloud.put(&s, "columns", "id-00001", json!({"name": "cloud's"}), NOW);
    cloud.inject(Faults {
        max_push_bytes: Some(4096),
        ..Faults::default()
    });
    let opts = SyncOptions {
        push_bytes: 4096,
        ..SyncOptions::default()
    };
    let report = Syncer::new(store, &cloud, &clock)
        .sync(&s, opts)
        .await
        .unwrap();
    assert_eq!(report.snapshot, cloud.snapshot(&s));
    assert_eq!(report.run.counts.conflicts, 2);
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert_eq!(
        cloud.record(&s, "tables", "id-00003").unwrap().1["name"],
        "small",
        "the other edit went through"
    );
    assert_eq!(
        local
            .get("columns", "id-00001")
            .await
            .unwrap()
            .unwrap()
            .data["name"],
        "cloud's",
        "the pull went on"
    );
    assert_eq!(
        local.get("tables", "id-00000").await.unwrap().unwrap().data["name"],
        "n0",
        "the row has the cloud's state again"
    );
    assert!(local.get("blobs", "new-big").await.unwrap().is_none());
    assert!(cloud.record(&s, "blobs", "new-big").is_none(), "never sent");
    let conflicts = local.conflicts().await.unwrap();
    assert_eq!(conflicts.len(), 2);
    for c in &conflicts {
        assert_eq!(c.reason.as_deref(), Some("too_large"), "{c:?}");
        assert_eq!(c.local_data.as_ref().unwrap()["text"], big["text"]);
    }
    assert_eq!(
        store
            .range_snapshot(&s, &crate::types::KeyRange::all(), true)
            .await
            .unwrap(),
        cloud.snapshot(&s)
    );
}
