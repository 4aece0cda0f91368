//! Live sync over real HTTP: the native replica long-polls the server (`wait=S`) and applies
//! each change as it commits, pushes the edits made meanwhile, and stops when asked; on both
//! storages.

#[path = "../crates/server/tests/common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{Backend, Harness, READER};
use serde_json::json;
use tether_engine::subscription::Subscription;
use tether_engine::{CancelFlag, ErrorKind, Phase, Progress, RunStatus, SyncOptions, Trigger};
use tether_native::http::{HttpOptions, HttpRemote, RetryPolicy};
use tether_native::{BackgroundOptions, Replica};

both!(a_live_replica_follows_the_server_until_stopped);
both!(a_live_replica_whose_server_vanishes_fails_typed_and_loses_nothing);
both!(a_background_live_replica_reconnects_when_its_server_returns);
both!(a_live_partial_replica_follows_its_subscriptions);

/// A live session of scope `s1` with waits of `wait_s`, reporting each applied page's count.
fn live_session(
    replica: &Replica,
    remote: &HttpRemote,
    wait_s: u32,
    stop: &CancelFlag,
    applied: mpsc::Sender<u64>,
) -> tether_engine::Result<tether_engine::SyncReport> {
    let sink = move |p: &Progress| {
        if p.phase == Phase::Apply && p.done > 0 {
            let _ = applied.send(p.done);
        }
    };
    replica.scope("s1")?.sync(
        remote,
        SyncOptions {
            trigger: Trigger::Live,
            live_wait_s: wait_s,
            progress: Some(&sink),
            cancel: Some(stop),
            ..SyncOptions::default()
        },
    )
}

/// Waits (20 s at most) until `done` says so.
fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A live session of a partial replica: it long-polls its highest-priority subscription,
/// applies a file that moves in and evicts one that moves out as they commit, takes a change
/// of its other subscription's collection at the latest when the wait ends, and never holds
/// what no subscription selects.
fn a_live_partial_replica_follows_its_subscriptions(backend: Backend) {
    let h = Harness::start_with(backend, |c| {
        c.filter_indexes = vec![tether_server::FilterIndex::parse("files:repository").unwrap()];
    });
    h.upsert(
        "s1",
        &[
            ("files", "f1", json!({"repository": "r1"})),
            ("files", "f2", json!({"repository": "r2"})),
            ("repositories", "r1", json!({"name": "one"})),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    let files = Subscription::new("files").with_filter("repository", [json!("r1")]);
    scope
        .set_subscriptions(vec![(files, 0), (Subscription::new("repositories"), 1)])
        .unwrap();
    let remote = HttpRemote::new(&h.url(), READER);
    let stop = CancelFlag::new();
    let (applied, _changes) = mpsc::channel::<u64>();
    let report = std::thread::scope(|s| {
        let live = s.spawn(|| live_session(&replica, &remote, 2, &stop, applied));
        let _stop = StopOnDrop(&stop);
        let has = |c: &str, id: &str| scope.get(c, id).unwrap().is_some();
        until("caught up", || {
            has("files", "f1") && has("repositories", "r1")
        });
        h.upsert("s1", &[("files", "f3", json!({"repository": "r1"}))]);
        until("f3 moved in", || has("files", "f3"));
        h.upsert("s1", &[("files", "f1", json!({"repository": "r2"}))]);
        until("f1 moved out", || !has("files", "f1"));
        h.upsert("s1", &[("repositories", "r2", json!({"name": "two"}))]);
        until("r2 arrived", || has("repositories", "r2"));
        assert!(!has("files", "f2"), "never selected");
        stop.cancel();
        live.join().unwrap()
    })
    .unwrap();
    assert_eq!(report.run.status, RunStatus::Completed);
    assert_eq!(report.run.counts.inserted, 4, "f1, r1, f3, r2");
    assert_eq!(report.run.counts.deleted, 1, "f1 evicted");
    let check = replica.scope("s1").unwrap().verify(&remote, false).unwrap();
    assert!(check.matched, "{check:?}");
}

/// Ends a live session when dropped: a failed assertion must still end it, or the scope would
/// wait for it forever.
struct StopOnDrop<'a>(&'a CancelFlag);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn a_live_replica_follows_the_server_until_stopped(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"v": 0}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let remote = HttpRemote::new(&h.url(), READER);
    let stop = CancelFlag::new();
    let (applied, changes) = mpsc::channel::<u64>();
    let report = std::thread::scope(|s| {
        let live = s.spawn(|| live_session(&replica, &remote, 5, &stop, applied));
        let _stop = StopOnDrop(&stop);
        let next = || {
            changes
                .recv_timeout(Duration::from_secs(20))
                .expect("applied in time")
        };
        assert_eq!(next(), 1, "caught up: a");
        // A cloud write while the replica waits: applied without another sync call.
        h.upsert("s1", &[("objects", "b", json!({"v": 1}))]);
        assert_eq!(next(), 1, "b");
        let scope = replica.scope("s1").unwrap();
        assert_eq!(scope.get("objects", "b").unwrap().unwrap().data["v"], 1);
        // A local edit made meanwhile is pushed by the next round (after the current wait).
        // The next page may bring c alone, or c with the echo of the pushed edit: wait for
        // the state, not for a number of events.
        scope.put("objects", "mine", json!({"v": "local"})).unwrap();
        h.upsert("s1", &[("objects", "c", json!({"v": 2}))]);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while scope.get("objects", "c").unwrap().is_none()
            || scope.status().unwrap().pending_edits > 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "c never applied, or the edit never pushed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.cancel();
        live.join().unwrap()
    })
    .unwrap();
    assert_eq!(report.run.status, RunStatus::Completed);
    assert_eq!(report.run.trigger, Trigger::Live);
    assert_eq!(report.run.counts.inserted, 3);
    let (_, records) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    let mine = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "mine")
        .cloned();
    assert_eq!(mine.unwrap()["data"]["v"], "local", "{records}");
    let scope = replica.scope("s1").unwrap();
    assert_eq!(
        scope.history(10).unwrap().len(),
        1,
        "one run for the session"
    );
    assert_eq!(
        scope.status().unwrap().count,
        h.status("s1").count,
        "the replica holds what the server holds"
    );
}

/// The server goes away while a live replica waits on it: the session ends with a typed
/// network error within its retry budget (not a hang), the run is recorded as failed, an edit
/// made meanwhile stays pending, and the next sync against the server, back on a new port,
/// pushes it once and converges.
fn a_live_replica_whose_server_vanishes_fails_typed_and_loses_nothing(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"v": 0}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let options = HttpOptions {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            retries: 3,
            backoff_base_ms: 50,
            backoff_cap_ms: 200,
            budget_ms: 1_000,
            run_budget_ms: 2_000,
            ..RetryPolicy::default()
        },
        ..HttpOptions::default()
    };
    let remote = HttpRemote::with_options(&h.url(), READER, options.clone());
    let stop = CancelFlag::new();
    let (applied, changes) = mpsc::channel::<u64>();
    let (outcome, elapsed) = std::thread::scope(|s| {
        let live = s.spawn(|| live_session(&replica, &remote, 2, &stop, applied));
        let _stop = StopOnDrop(&stop);
        changes
            .recv_timeout(Duration::from_secs(20))
            .expect("caught up in time");
        // Mid-wait: the server goes away.
        h.stop();
        let gone = std::time::Instant::now();
        let scope = replica.scope("s1").unwrap();
        scope
            .put("objects", "mine", json!({"v": "offline"}))
            .unwrap();
        let outcome = live.join().unwrap();
        (outcome, gone.elapsed())
    });
    let err = outcome.expect_err("the session cannot go on without its server");
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    assert!(
        elapsed < Duration::from_secs(30),
        "ended within its budget, not a hang: {elapsed:?}"
    );
    let scope = replica.scope("s1").unwrap();
    let last = scope.history(1).unwrap().remove(0);
    assert_eq!(last.status, RunStatus::Failed);
    assert_eq!(last.trigger, Trigger::Live);
    assert!(last.error.is_some());
    let status = scope.status().unwrap();
    assert_eq!(status.pending_edits, 1, "the edit made meanwhile is kept");
    assert!(status.sync_recommended);

    // Back, on a new port: one sync pushes the edit once and converges.
    h.restart();
    h.upsert("s1", &[("objects", "b", json!({"v": 1}))]);
    let remote = HttpRemote::with_options(&h.url(), READER, options);
    let report = scope.sync(&remote, SyncOptions::default()).unwrap();
    assert_eq!(report.run.status, RunStatus::Completed);
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    let (_, records) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    let mine: Vec<&serde_json::Value> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == "mine")
        .collect();
    assert_eq!(mine.len(), 1, "{records}");
    assert_eq!(mine[0]["data"]["v"], "offline");
    assert_eq!(scope.get("objects", "b").unwrap().unwrap().data["v"], 1);
    assert_eq!(scope.status().unwrap().digest, h.status("s1").digest);
}

/// A background sync that stays live (`BackgroundOptions::live_wait_s`) outlives its server:
/// the session fails when the server goes away, the thread backs off and starts a new one, and
/// once the server is back on its address the replica follows it again by itself, with the
/// edit made meanwhile pushed.
fn a_background_live_replica_reconnects_when_its_server_returns(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"v": 0}))]);
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let options = HttpOptions {
        connect_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        },
        ..HttpOptions::default()
    };
    let remote = HttpRemote::with_options(&h.url(), READER, options);
    let background = replica
        .background(
            "s1",
            remote,
            BackgroundOptions {
                schedule: tether_engine::schedule::Schedule {
                    backoff_base_ms: 100,
                    backoff_cap_ms: 400,
                    ..tether_engine::schedule::Schedule::default()
                },
                live_wait_s: Some(1),
                ..BackgroundOptions::default()
            },
        )
        .unwrap();
    let scope = replica.scope("s1").unwrap();
    let until = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("caught up", &|| {
        scope.get("objects", "a").unwrap().is_some()
    });
    h.stop();
    until("the session failed", &|| background.status().failures > 0);
    assert_eq!(
        background.status().last_error.map(|e| e.kind()),
        Some(ErrorKind::Network)
    );
    assert!(background.status().running, "a network failure is retried");
    scope
        .put("objects", "mine", json!({"v": "offline"}))
        .unwrap();
    h.restart_on_same_port();
    h.upsert("s1", &[("objects", "b", json!({"v": 1}))]);
    until("reconnected and followed", &|| {
        scope.get("objects", "b").unwrap().is_some() && scope.status().unwrap().pending_edits == 0
    });
    let status = background.stop();
    assert!(!status.running);
    let runs = scope.history(50).unwrap();
    assert!(runs.iter().all(|r| r.trigger == Trigger::Live), "{runs:?}");
    assert!(
        runs.iter().any(|r| r.status == RunStatus::Failed),
        "{runs:?}"
    );
    let (_, records) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    assert!(
        records["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "mine"),
        "{records}"
    );
    assert_eq!(scope.status().unwrap().digest, h.status("s1").digest);
}
