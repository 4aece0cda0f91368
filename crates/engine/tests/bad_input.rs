//! Bad input: a bad page is rejected whole with a typed Protocol error (nothing applied, the
//! checkpoint does not move, the run is recorded as failed); bad arguments are InvalidInput.

use std::sync::Mutex;

use futures_executor::block_on;
use serde_json::json;
use tether_engine::cloud::Cloud;
use tether_engine::*;

type Tamper = Box<dyn FnMut(&mut Page) + Send>;

/// Serves the cloud's pages, passing the next one through `tamper` when set.
struct Tampering<'a> {
    cloud: &'a Cloud,
    tamper: Mutex<Option<Tamper>>,
}

impl Remote for Tampering<'_> {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        let mut pulled = self.cloud.pull_now(scope, cp, limit)?;
        if let (Pulled::Page { page, .. }, Some(mut f)) =
            (&mut pulled, self.tamper.lock().unwrap().take())
        {
            f(page);
        }
        Ok(pulled)
    }
}

fn clock() -> i64 {
    1_000
}

fn setup() -> (Cloud, MemoryStore, ScopeId) {
    let scope = ScopeId::new("org").unwrap();
    let cloud = Cloud::new();
    for i in 0..20 {
        cloud.put(&scope, "objects", &format!("o{i:02}"), json!({ "i": i }), 0);
    }
    let store = MemoryStore::new();
    block_on(Syncer::new(&store, &cloud, &clock).sync(&scope, SyncOptions::default())).unwrap();
    for i in 0..5 {
        cloud.put(
            &scope,
            "objects",
            &format!("o{i:02}"),
            json!({ "i": i, "changed": true }),
            0,
        );
    }
    (cloud, store, scope)
}

fn rejects(name: &str, tamper: impl FnMut(&mut Page) + Send + 'static, want: &str, detail: Detail) {
    let (cloud, store, scope) = setup();
    let before_state = block_on(store.scope_state(&scope)).unwrap();
    let before_rows = store.export();
    let remote = Tampering {
        cloud: &cloud,
        tamper: Mutex::new(Some(Box::new(tamper))),
    };
    let err = block_on(Syncer::new(&store, &remote, &clock).sync(&scope, SyncOptions::default()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{name}: {err}");
    assert_eq!(err.detail(), Some(detail), "{name}: {err}");
    assert!(
        err.to_string().contains(want),
        "{name}: {err:?} should mention {want:?}"
    );
    assert_eq!(
        block_on(store.scope_state(&scope)).unwrap(),
        before_state,
        "{name}: checkpoint moved"
    );
    let runs = block_on(store.runs(&scope, 1)).unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed, "{name}");
    assert_eq!(
        runs[0].error.as_ref().unwrap().kind,
        ErrorKind::Protocol,
        "{name}"
    );
    assert_eq!(runs[0].error.as_ref().unwrap().detail, Some(detail));
    // Only the run history may differ: rows, conflicts and scope state are untouched.
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        v.as_object_mut().unwrap().remove("runs");
        v.as_object_mut().unwrap().remove("next_run");
        v
    };
    assert_eq!(
        strip(&store.export()),
        strip(&before_rows),
        "{name}: something was applied"
    );
    // The same sync without tampering then succeeds.
    let ok =
        block_on(Syncer::new(&store, &cloud, &clock).sync(&scope, SyncOptions::default())).unwrap();
    assert_eq!(ok.snapshot, cloud.snapshot(&scope), "{name}");
}

#[test]
fn hash_that_does_not_match_its_data() {
    rejects(
        "hash",
        |p| p.changes[1].data = Some(json!({"i": "evil"})),
        "hash mismatch",
        Detail::HashMismatch,
    );
}

#[test]
fn malformed_record() {
    rejects(
        "empty id",
        |p| p.changes[2].id.clear(),
        "empty collection or id",
        Detail::Malformed,
    );
    rejects(
        "bad hash text",
        |p| p.changes[0].hash = Some("not-hex".into()),
        "hash must be 64",
        Detail::Malformed,
    );
    rejects(
        "tombstone with data",
        |p| p.changes[0].deleted = true,
        "tombstone must have null data",
        Detail::Malformed,
    );
}

#[test]
fn data_that_is_not_an_object() {
    rejects(
        "array",
        |p| p.changes[3].data = Some(json!([1, 2, 3])),
        "must be a JSON object",
        Detail::Malformed,
    );
    rejects(
        "null",
        |p| p.changes[3].data = None,
        "must be a JSON object",
        Detail::Malformed,
    );
}

#[test]
fn missing_checkpoint() {
    rejects(
        "no checkpoint",
        |p| p.checkpoint = None,
        "no checkpoint",
        Detail::CheckpointMissing,
    );
    rejects(
        "empty checkpoint",
        |p| p.checkpoint = Some(Checkpoint(String::new())),
        "no checkpoint",
        Detail::CheckpointMissing,
    );
    rejects(
        "last page without snapshot",
        |p| p.snapshot = None,
        "snapshot",
        Detail::SnapshotMissing,
    );
}

#[test]
fn version_going_backwards() {
    rejects(
        "backwards",
        |p| {
            // Re-send record o00 (held at version 1) at version 0, with a correct hash.
            let data = json!({"i": "old"});
            p.changes[0].version = 0;
            p.changes[0].hash = Some(record_hash_of(&data));
            p.changes[0].data = Some(data);
        },
        "backwards",
        Detail::VersionBackwards,
    );
}

fn record_hash_of(v: &serde_json::Value) -> String {
    digest::record_hash(v.as_object().unwrap()).to_string()
}

#[test]
fn a_remote_that_makes_no_progress_is_a_protocol_error() {
    let (cloud, store, scope) = setup();
    let stuck = Tampering {
        cloud: &cloud,
        tamper: Mutex::new(Some(Box::new(|p: &mut Page| {
            p.changes.clear();
            p.has_more = true;
            p.snapshot = None;
        }))),
    };
    struct Twice<'a>(Tampering<'a>, Checkpoint);
    impl Remote for Twice<'_> {
        async fn pull(
            &self,
            scope: &ScopeId,
            cp: Option<&Checkpoint>,
            limit: u32,
        ) -> Result<Pulled> {
            let mut p = self.0.pull(scope, cp, limit).await?;
            if let Pulled::Page { page, .. } = &mut p {
                page.checkpoint = Some(self.1.clone());
                page.changes.clear();
                page.has_more = true;
            }
            Ok(p)
        }
    }
    let cp = block_on(store.scope_state(&scope))
        .unwrap()
        .checkpoint
        .unwrap();
    let err = block_on(
        Syncer::new(&store, &Twice(stuck, cp), &clock).sync(&scope, SyncOptions::default()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("same checkpoint"), "{err}");
    assert_eq!(err.detail(), Some(Detail::NoProgress));
}

#[test]
fn bad_arguments_are_invalid_input() {
    assert_eq!(
        ScopeId::new("").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        ScopeId::new("a\nb").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        ScopeId::new("x".repeat(300)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let store = MemoryStore::new();
    let scope = ScopeHandle::new(&store, ScopeId::new("s").unwrap());
    let err = block_on(scope.put("objects", "a", json!([1]))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("got an array"));
    assert_eq!(
        block_on(scope.put("", "a", json!({}))).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        block_on(scope.delete("objects", "")).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        block_on(scope.dismiss_conflict(42)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        block_on(store.count(scope.id(), None)).unwrap(),
        0,
        "nothing written"
    );
    assert_eq!(
        MemoryStore::import("{not json").err().unwrap().kind(),
        ErrorKind::InvalidInput
    );
}
