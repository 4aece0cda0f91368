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
        |p| p.changes[1].data = Some(raw(json!({"i": "evil"}))),
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
        |p| p.changes[3].data = Some(raw(json!([1, 2, 3]))),
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
            p.changes[0].data = Some(raw(data));
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

/// Pages with `has_more`, no changes and a new checkpoint each time: the pull is stopped after
/// `MAX_EMPTY_PAGES` of them. (Before, only an unchanged checkpoint was caught and this remote
/// was pulled forever; the test's own bound of 10,000 pulls turns that into a failure.)
#[test]
fn a_remote_that_moves_the_checkpoint_but_sends_nothing_is_stopped() {
    use std::sync::atomic::{AtomicU32, Ordering};
    struct Spinning(AtomicU32);
    impl Remote for Spinning {
        async fn pull(&self, _: &ScopeId, _: Option<&Checkpoint>, _: u32) -> Result<Pulled> {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            if n > 10_000 {
                return Err(Error::invalid("the test's bound: 10,000 pulls"));
            }
            let page = Page {
                changes: Vec::new(),
                checkpoint: Some(Checkpoint(format!("c{n}"))),
                has_more: true,
                remaining: Some(1),
                snapshot: None,
            };
            Ok(Pulled::Page { page, bytes: 64 })
        }
    }
    let (_, store, scope) = setup();
    let remote = Spinning(AtomicU32::new(0));
    let err = block_on(Syncer::new(&store, &remote, &clock).sync(&scope, SyncOptions::default()))
        .unwrap_err();
    assert_eq!(err.detail(), Some(Detail::NoProgress), "{err}");
    assert!(err.to_string().contains("pages in a row"), "{err}");
    let pulls = remote.0.load(Ordering::Relaxed);
    assert_eq!(pulls, sync::MAX_EMPTY_PAGES + 1, "pulls before it stopped");
}

/// A page with changes in between resets the count: a slow trickle of real pages among empty
/// ones is progress.
#[test]
fn empty_pages_between_real_ones_are_not_a_stall() {
    use std::sync::atomic::{AtomicU32, Ordering};
    struct Sparse<'a>(&'a Cloud, AtomicU32);
    impl Remote for Sparse<'_> {
        async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, _: u32) -> Result<Pulled> {
            let n = self.1.fetch_add(1, Ordering::Relaxed) + 1;
            // Every 80th pull is one real change of the cloud's; the others only move on.
            if n % 80 != 0 {
                let page = Page {
                    changes: Vec::new(),
                    checkpoint: Some(Checkpoint(format!("{}+{n}", cp.map_or("", |c| c.as_str())))),
                    has_more: true,
                    remaining: None,
                    snapshot: None,
                };
                return Ok(Pulled::Page { page, bytes: 0 });
            }
            let real = cp.map(|c| Checkpoint(c.as_str().split('+').next().unwrap().to_owned()));
            let real = real.filter(|c| !c.as_str().is_empty());
            self.0.pull_now(scope, real.as_ref(), 1)
        }
    }
    let (cloud, store, scope) = setup();
    let remote = Sparse(&cloud, AtomicU32::new(0));
    let report =
        block_on(Syncer::new(&store, &remote, &clock).sync(&scope, SyncOptions::default()))
            .unwrap();
    assert_eq!(report.snapshot, cloud.snapshot(&scope));
    assert!(remote.1.load(Ordering::Relaxed) > sync::MAX_EMPTY_PAGES);
}

/// `remaining: u64::MAX` is the remote's number: progress saturates instead of overflowing
/// (a panic in debug builds before).
#[test]
fn a_huge_remaining_does_not_overflow_progress() {
    struct Huge<'a>(&'a Cloud);
    impl Remote for Huge<'_> {
        async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, _: u32) -> Result<Pulled> {
            let mut pulled = self.0.pull_now(scope, cp, 2)?;
            if let Pulled::Page { page, .. } = &mut pulled {
                page.remaining = Some(u64::MAX);
            }
            Ok(pulled)
        }
    }
    let (cloud, store, scope) = setup();
    let seen = Mutex::new(Vec::new());
    // The estimate shows in the events of pages as they arrive; the run still ends at 100.
    let sink = |p: &Progress| {
        if p.phase == Phase::Pull {
            seen.lock().unwrap().push((p.total, p.percent));
        }
    };
    let opts = SyncOptions {
        progress: Some(&sink),
        ..SyncOptions::default()
    };
    let report = block_on(Syncer::new(&store, &Huge(&cloud), &clock).sync(&scope, opts)).unwrap();
    assert_eq!(report.snapshot, cloud.snapshot(&scope));
    let seen = seen.into_inner().unwrap();
    let totals: Vec<_> = seen.iter().filter_map(|(t, p)| t.zip(*p)).collect();
    assert!(!totals.is_empty(), "{seen:?}");
    assert!(
        totals.iter().all(|&(t, p)| t == u64::MAX && p < 1e-9),
        "{seen:?}"
    );
}

/// A version above `i64::MAX` cannot be stored (SQLite integers are signed 64-bit): it is the
/// remote's fault, a `Protocol` error, not a `Storage` one, on every path a version comes in.
#[test]
fn a_version_above_i64_max_is_malformed() {
    rejects(
        "version 2^63",
        |p| p.changes[0].version = 1 << 63,
        "above the largest a replica stores",
        Detail::Malformed,
    );
}

#[test]
fn a_push_accepted_at_a_version_above_i64_max_is_malformed() {
    struct Accepting<'a>(&'a Cloud);
    impl Remote for Accepting<'_> {
        async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, n: u32) -> Result<Pulled> {
            self.0.pull_now(scope, cp, n)
        }
        fn can_push(&self) -> bool {
            true
        }
        async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
            let mut response = self.0.push_now(scope, mutations, 0)?;
            for r in &mut response.results {
                if let MutationResult::Accepted { version, .. } = r {
                    *version = u64::MAX;
                }
            }
            Ok(response)
        }
    }
    let (cloud, store, scope) = setup();
    let handle = ScopeHandle::new(&store, scope.clone());
    block_on(handle.put("objects", "o10", json!({"local": true}))).unwrap();
    let err = block_on(
        Syncer::new(&store, &Accepting(&cloud), &clock).sync(&scope, SyncOptions::default()),
    )
    .unwrap_err();
    assert_eq!(
        (err.kind(), err.detail()),
        (ErrorKind::Protocol, Some(Detail::Malformed)),
        "{err}"
    );
    // The answer was refused, so the edit stayed pending; the pull that follows a failed push
    // brings the cloud's record, which is the edit itself: settled, not journaled.
    assert_eq!(block_on(store.pending_count(&scope)).unwrap(), 0);
    assert!(block_on(handle.conflicts()).unwrap().is_empty());
    assert_eq!(
        block_on(handle.get("objects", "o10"))
            .unwrap()
            .unwrap()
            .data["local"],
        true
    );
}

/// Data nested `levels` deep (the object is level 1).
fn nested(levels: usize) -> serde_json::Value {
    let inner = levels - 1;
    serde_json::from_str(&format!(
        r#"{{"a":{}1{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    ))
    .unwrap()
}

/// Issue 18 (items 4, 5, 6, 12): an edit the cloud could never hold (too large, a key too
/// long, too deep, U+0000) is refused where it is made, with the limit as its detail, and
/// nothing is written; at each limit it is accepted.
#[test]
fn a_local_edit_over_a_limit_is_refused_with_its_detail() {
    let store = MemoryStore::new();
    let id = ScopeId::new("s").unwrap();
    let scope = ScopeHandle::new(&store, id.clone());
    let long_id = "k".repeat(limits::MAX_KEY_BYTES);
    let cases = [
        (
            "objects",
            "a",
            json!({ "t": "x".repeat(limits::MAX_RECORD_BYTES) }),
            Detail::TooLarge,
        ),
        ("objects", long_id.as_str(), json!({}), Detail::KeyTooLong),
        (
            "objects",
            "a",
            nested(limits::MAX_DEPTH + 1),
            Detail::TooDeep,
        ),
        ("objects", "a", nested(125), Detail::TooDeep),
        ("objects", "a", json!({ "t": "a\u{0}b" }), Detail::BadText),
        ("objects", "a", json!({ "a\u{0}": 1 }), Detail::BadText),
    ];
    for (collection, key, data, detail) in cases {
        let err = block_on(scope.put(collection, key, data)).unwrap_err();
        assert_eq!(
            (err.kind(), err.detail()),
            (ErrorKind::InvalidInput, Some(detail)),
            "{err}"
        );
    }
    let err = block_on(scope.delete("objects", &long_id)).unwrap_err();
    assert_eq!(err.detail(), Some(Detail::KeyTooLong), "{err}");
    assert_eq!(block_on(store.pending_count(&id)).unwrap(), 0);

    // At each limit: accepted.
    let fits = json!({ "t": "x".repeat(limits::MAX_RECORD_BYTES - 8) });
    block_on(scope.put("objects", "big", fits)).unwrap();
    block_on(scope.put("objects", "deep", nested(limits::MAX_DEPTH))).unwrap();
    let longest = "k".repeat(limits::MAX_KEY_BYTES - "objects".len());
    block_on(scope.put("objects", &longest, json!({}))).unwrap();
    assert_eq!(block_on(store.pending_count(&id)).unwrap(), 3);
}

/// A page holding a record over a limit is refused whole, as a protocol error naming it.
#[test]
fn a_page_with_a_record_over_a_limit() {
    let over = |data: serde_json::Value| {
        move |p: &mut Page| {
            p.changes[1].hash = Some(record_hash_of(&data));
            p.changes[1].data = Some(raw(data.clone()));
        }
    };
    rejects(
        "too deep",
        over(nested(limits::MAX_DEPTH + 1)),
        "nested at most",
        Detail::TooDeep,
    );
    rejects(
        "U+0000",
        over(json!({ "t": "\u{0}" })),
        "U+0000",
        Detail::BadText,
    );
    rejects(
        "too large",
        over(json!({ "t": "x".repeat(limits::MAX_RECORD_BYTES) })),
        "at most",
        Detail::TooLarge,
    );
    rejects(
        "key too long",
        |p| p.changes[1].id = "k".repeat(limits::MAX_KEY_BYTES),
        "at most",
        Detail::KeyTooLong,
    );
}

fn raw(v: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&v).unwrap()
}
