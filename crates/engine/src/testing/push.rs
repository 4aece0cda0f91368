//! Push scenarios: a push problem never blocks the pull, and a mutation the cloud can never
//! accept is journaled on its own.

use serde_json::json;

use crate::cloud::{Cloud, Faults};
use crate::error::ErrorKind;
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::types::RunStatus;

use super::*;

/// A push that fails (network) does not end the run before the pull: the cloud's changes
/// arrive, the edit stays pending (not journaled), the run fails with the push's error, and
/// the next sync pushes the edit.
pub async fn failed_push_does_not_block_the_pull<S: Store>(store: &S) {
    let s = sid("s");
    let cloud = Cloud::new();
    seed(&cloud, &s, 10);
    sync(store, &cloud, &s, 1000).await.unwrap();
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
