//! Live syncs (`SyncOptions::live_wait_s`): catch up, then round after round of push and
//! long-poll, each answer applied and verified, until cancelled; one run for the session.

use std::sync::Mutex;

use futures_executor::block_on;
use serde_json::json;
use tether_engine::cloud::Cloud;
use tether_engine::*;

fn clock() -> i64 {
    1_700_000_000_000
}

/// The in-process cloud as a long-polling server: each wait "passes" while a scripted writer
/// acts (a cloud write, a local edit), then the page after the checkpoint is answered. After
/// the script the caller's flag is raised, as a user stopping live sync would.
struct Waiting<'a> {
    cloud: &'a Cloud,
    store: &'a MemoryStore,
    script: Mutex<Vec<Step>>,
    cancel: &'a CancelFlag,
    waits: Mutex<Vec<u32>>,
}

enum Step {
    CloudPut(&'static str, serde_json::Value),
    LocalPut(&'static str, serde_json::Value),
    Nothing,
}

impl Remote for Waiting<'_> {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        self.cloud.pull_now(scope, cp, limit)
    }

    fn can_wait(&self) -> bool {
        true
    }

    async fn pull_wait(
        &self,
        scope: &ScopeId,
        cp: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> Result<Pulled> {
        self.waits.lock().unwrap().push(wait_s);
        let step = {
            let mut script = self.script.lock().unwrap();
            if script.is_empty() {
                None
            } else {
                Some(script.remove(0))
            }
        };
        match step {
            Some(Step::CloudPut(id, data)) => {
                self.cloud.put(scope, "objects", id, data, 0);
            }
            Some(Step::LocalPut(id, data)) => {
                ScopeHandle::new(self.store, scope.clone())
                    .put("objects", id, data)
                    .await
                    .unwrap();
            }
            Some(Step::Nothing) => {}
            None => self.cancel.cancel(),
        }
        self.cloud.pull_now(scope, cp, limit)
    }

    fn can_push(&self) -> bool {
        true
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        self.cloud.push(scope, mutations).await
    }
}

#[test]
fn a_live_sync_applies_each_change_as_it_comes_until_stopped() {
    let scope = ScopeId::new("org").unwrap();
    let cloud = Cloud::new();
    cloud.put(&scope, "objects", "a", json!({"v": 0}), 0);
    let store = MemoryStore::new();
    let cancel = CancelFlag::new();
    let remote = Waiting {
        cloud: &cloud,
        store: &store,
        script: Mutex::new(vec![
            Step::CloudPut("b", json!({"v": 1})),
            Step::Nothing,
            Step::LocalPut("mine", json!({"v": "local"})),
            Step::CloudPut("a", json!({"v": 2})),
        ]),
        cancel: &cancel,
        waits: Mutex::default(),
    };
    let opts = SyncOptions {
        trigger: Trigger::Live,
        live_wait_s: 25,
        cancel: Some(&cancel),
        ..SyncOptions::default()
    };
    let report = block_on(Syncer::new(&store, &remote, &clock).sync(&scope, opts)).unwrap();
    // The initial download did not wait; every round after it did, 25 s at a time.
    let waits = remote.waits.lock().unwrap().clone();
    assert_eq!(
        waits, [25; 5],
        "four scripted waits and the one that was stopped"
    );
    assert_eq!(report.run.status, RunStatus::Completed);
    assert_eq!(report.run.trigger, Trigger::Live);
    assert_eq!(report.run.counts.inserted, 2, "a, then b");
    assert_eq!(report.run.counts.updated, 1, "a again");
    assert_eq!(report.snapshot, cloud.snapshot(&scope));
    // The local edit made during a wait was pushed by the next round.
    assert_eq!(
        cloud
            .record(&scope, "objects", "mine")
            .map(|(_, d)| d["v"].clone()),
        Some(json!("local"))
    );
    let local = ScopeHandle::new(&store, scope.clone());
    assert_eq!(
        block_on(local.get("objects", "a")).unwrap().unwrap().data["v"],
        2
    );
    assert_eq!(block_on(store.pending_count(&scope)).unwrap(), 0);
    let runs = block_on(store.runs(&scope, 10)).unwrap();
    assert_eq!(runs.len(), 1, "one run for the whole session");
}

#[test]
fn a_live_sync_needs_a_remote_that_can_wait() {
    let scope = ScopeId::new("org").unwrap();
    let cloud = Cloud::new();
    let store = MemoryStore::new();
    let opts = SyncOptions {
        live_wait_s: 25,
        ..SyncOptions::default()
    };
    let err = block_on(Syncer::new(&store, &cloud, &clock).sync(&scope, opts)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}
