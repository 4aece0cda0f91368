//! Background sync on a thread: syncs at start and every interval, backs off after retryable
//! failures instead of looping, stops for good on `Auth`, wakes on `sync_now`, and ends when
//! stopped or dropped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_engine::cloud::Cloud;
use tether_engine::schedule::Schedule;
use tether_engine::{Checkpoint, Error, ErrorKind, Pulled, Remote, Result, ScopeId};
use tether_native::{BackgroundOptions, BackgroundSync, Replica};

/// The in-process cloud; the next `fail` pulls fail with `error`.
struct Flaky {
    cloud: Cloud,
    pulls: AtomicU32,
    fail: AtomicU32,
    error: Error,
}

impl Remote for Flaky {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if fail.is_ok() {
            return Err(self.error.clone());
        }
        self.cloud.pull_now(scope, cp, limit)
    }
}

fn flaky(fail: u32, error: Error) -> Arc<Flaky> {
    let cloud = Cloud::new();
    cloud.put(
        &ScopeId::new("org").unwrap(),
        "objects",
        "a",
        json!({"n": 1}),
        0,
    );
    Arc::new(Flaky {
        cloud,
        pulls: AtomicU32::new(0),
        fail: AtomicU32::new(fail),
        error,
    })
}

fn fast(interval_ms: u64) -> BackgroundOptions {
    BackgroundOptions {
        schedule: Schedule {
            interval_ms,
            jitter: 0.0,
            backoff_base_ms: 100,
            backoff_cap_ms: 400,
        },
        ..BackgroundOptions::default()
    }
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn replica() -> (tempfile::TempDir, Replica) {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("replica.db")).unwrap();
    (dir, replica)
}

#[test]
fn it_syncs_at_start_and_every_interval_until_stopped() {
    let (_dir, replica) = replica();
    let remote = flaky(0, Error::network("unused"));
    let bg = replica.background("org", remote.clone(), fast(30)).unwrap();
    until("three syncs", || bg.status().attempts >= 3);
    assert_eq!(replica.scope("org").unwrap().count(None).unwrap(), 1);
    let scope = ScopeId::new("org").unwrap();
    remote.cloud.put(&scope, "objects", "b", json!({"n": 2}), 0);
    until("the new record", || {
        replica.scope("org").unwrap().count(None).unwrap() == 2
    });
    let status = bg.stop();
    assert!(!status.running);
    assert_eq!(status.failures, 0);
    let history = replica.scope("org").unwrap().history(100).unwrap();
    assert!(history
        .iter()
        .all(|r| r.trigger == tether_engine::Trigger::Background));
    let after = remote.pulls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        remote.pulls.load(Ordering::SeqCst),
        after,
        "nothing after stop"
    );
}

#[test]
fn retryable_failures_back_off_and_auth_stops_it() {
    let (_dir, replica) = replica();
    // An interval of 10 ms, but failures wait 100, 200, 400, 400 ms: a few attempts, not
    // hundreds, in the first second.
    let remote = flaky(u32::MAX, Error::network("down"));
    let bg = replica.background("org", remote.clone(), fast(10)).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let status = bg.status();
    assert!(status.running);
    assert!((2..=6).contains(&status.attempts), "{status:?}");
    assert_eq!(u64::from(status.failures), status.attempts);
    assert_eq!(status.last_error.unwrap().kind(), ErrorKind::Network);
    drop(bg);
    let after = remote.pulls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        remote.pulls.load(Ordering::SeqCst),
        after,
        "dropped: stopped"
    );

    let denied = flaky(
        u32::MAX,
        Error::Auth {
            message: "expired".into(),
            status: Some(401),
        },
    );
    let bg = replica.background("org", denied.clone(), fast(10)).unwrap();
    until("it gives up", || !bg.status().running);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(bg.status().attempts, 1, "an Auth error is not retried");
    assert_eq!(denied.pulls.load(Ordering::SeqCst), 1);
}

#[test]
fn sync_now_wakes_it_and_one_sync_runs_at_a_time() {
    let (_dir, replica) = replica();
    let remote = flaky(0, Error::network("unused"));
    let options = BackgroundOptions {
        sync_at_start: false,
        ..fast(3_600_000)
    };
    let bg: BackgroundSync = replica.background("org", remote.clone(), options).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(bg.status().attempts, 0, "waits a full interval");
    bg.sync_now();
    until("the woken sync", || bg.status().last_report.is_some());
    assert_eq!(bg.status().attempts, 1);
    // A manual sync of the same scope meanwhile takes the same lock: both complete, in turn.
    bg.sync_now();
    let manual = replica
        .scope("org")
        .unwrap()
        .sync(remote.as_ref(), tether_native::SyncOptions::default())
        .unwrap();
    assert_eq!(
        manual.snapshot,
        remote.cloud.snapshot(&ScopeId::new("org").unwrap())
    );
    until("the second background sync", || bg.status().attempts == 2);
}

#[test]
fn an_in_memory_replica_cannot_sync_in_the_background() {
    let replica = Replica::open_in_memory().unwrap();
    let err = match replica.background("org", flaky(0, Error::network("x")), fast(10)) {
        Err(e) => e,
        Ok(_) => panic!("started"),
    };
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// The engine's `Schedule::after` decides for every error kind, here as in the JS package
/// (js/test/node.test.mjs, "background sync makes the engine's decision"): `Auth` and
/// `InvalidInput` stop it after one attempt; a `Network` error backs off, counting failures;
/// the other kinds wait the interval without counting.
#[test]
fn each_error_kind_gets_the_engines_decision() {
    let (_dir, replica) = replica();
    let cases = [
        (Error::invalid("not a url"), true),
        (
            Error::Auth {
                message: "expired".into(),
                status: Some(401),
            },
            true,
        ),
        (Error::protocol("malformed page"), false),
        (Error::storage("disk full"), false),
    ];
    for (error, stops) in cases {
        let kind = error.kind();
        let remote = flaky(u32::MAX, error);
        let bg = replica.background("org", remote.clone(), fast(20)).unwrap();
        if stops {
            until("it stops", || !bg.status().running);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(bg.status().attempts, 1, "{kind:?} is not retried");
        } else {
            until("a few attempts", || bg.status().attempts >= 3);
            let status = bg.status();
            assert!(status.running, "{kind:?}");
            assert_eq!(
                status.failures, 0,
                "{kind:?} waits the interval, no backoff"
            );
        }
        assert_eq!(bg.stop().last_error.unwrap().kind(), kind);
    }
}
