//! A process killed (SIGKILL) in the middle of a sync leaves the last committed page and its
//! checkpoint; the next sync resumes from there without downloading committed pages again.
//!
//! The child process is this test binary itself, re-invoked on [`child_sync`] with an
//! environment variable naming the replica file. It syncs from a deliberately slow cloud and
//! prints a line after every committed page; the parent kills it after a few.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tether_dataset::Dataset;
use tether_engine::cloud::Cloud;
use tether_engine::{
    Checkpoint, KeyRange, Phase, Progress, Pulled, Remote, Result, RunKind, RunStatus, ScopeId,
    Store,
};
use tether_native::{Replica, SyncOptions};

const CHILD_ENV: &str = "TETHER_DURABILITY_CHILD";
const RECORDS: u64 = 3_000;
const PAGE: u32 = 100;
const SCOPE: &str = "org-1";

/// The same cloud in every process: deterministic data, versions 1..=RECORDS.
fn cloud() -> Cloud {
    let cloud = Cloud::new();
    Dataset::new(11, RECORDS).load_into(&cloud, &ScopeId::new(SCOPE).unwrap(), 1_000);
    cloud
}

/// A cloud that takes its time answering, so the child is surely mid-sync when killed.
struct Slow<'a>(&'a Cloud, Duration);

impl Remote for Slow<'_> {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        std::thread::sleep(self.1);
        self.0.pull_now(scope, checkpoint, limit)
    }
}

/// The child's side: a no-op unless started by the parent test.
#[test]
fn child_sync() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cloud = cloud();
    let replica = Replica::open(path).unwrap();
    let sink = |p: &Progress| {
        if p.phase == Phase::Apply {
            // One line per committed page; the parent counts them.
            println!("committed {}", p.done);
        }
    };
    let opts = SyncOptions {
        page_size: PAGE,
        progress: Some(&sink),
        ..SyncOptions::default()
    };
    let slow = Slow(&cloud, Duration::from_millis(40));
    replica.scope(SCOPE).unwrap().sync(&slow, opts).unwrap();
    println!("finished");
}

/// Starts a child syncing into `path`, waits for `pages` committed pages, and kills it.
fn kill_after(path: &std::path::Path, pages: usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_sync", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        assert_ne!(
            line, "finished",
            "the child finished before it could be killed"
        );
        if line.starts_with("committed ") {
            seen += 1;
            if seen == pages {
                break;
            }
        }
    }
    assert_eq!(
        seen, pages,
        "the child died before committing {pages} pages"
    );
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no rollback, no flush runs.
    child.wait().unwrap();
}

/// After a kill: the stored checkpoint covers exactly the stored rows, and the maintained
/// count and digest equal what the rows hash to. Returns the number of committed records.
fn check_consistent(path: &std::path::Path) -> u64 {
    let replica = Replica::open(path).unwrap();
    let scope = ScopeId::new(SCOPE).unwrap();
    let store = replica.store();
    let state = futures_executor::block_on(store.scope_state(&scope)).unwrap();
    let rows =
        futures_executor::block_on(store.range_snapshot(&scope, &KeyRange::all(), true)).unwrap();
    assert_eq!(state.totals, rows, "maintained totals equal the rows");
    // The cloud's initial checkpoint is "head:last version seen"; versions are 1..=RECORDS,
    // all live, so the rows must be exactly the versions up to it.
    let checkpoint = state
        .checkpoint
        .expect("a committed page left its checkpoint");
    let seen: u64 = checkpoint.0.split(':').nth(1).unwrap().parse().unwrap();
    assert_eq!(
        state.totals.count, seen,
        "checkpoint {checkpoint:?} covers the rows"
    );
    assert_eq!(seen % u64::from(PAGE), 0, "whole pages only");
    seen
}

#[test]
fn killed_mid_sync_resumes_from_the_last_committed_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");

    kill_after(&path, 3);
    let first = check_consistent(&path);
    assert!(first >= 3 * u64::from(PAGE) && first < RECORDS, "{first}");

    // A second crash on top of the first: the run resumes and is killed again.
    kill_after(&path, 4);
    let second = check_consistent(&path);
    assert!(
        second >= first + 4 * u64::from(PAGE) && second < RECORDS,
        "{second}"
    );

    // Resume in this process and count what is downloaded.
    let cloud = cloud();
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope(SCOPE).unwrap();
    let opts = SyncOptions {
        page_size: PAGE,
        ..SyncOptions::default()
    };
    let report = scope.sync(&cloud, opts).unwrap();
    let left = RECORDS - second;
    assert_eq!(
        report.run.counts.inserted, left,
        "only the records after the checkpoint"
    );
    assert_eq!(
        cloud.pulls(),
        left / u64::from(PAGE),
        "no committed page downloaded again"
    );
    assert_eq!(
        report.snapshot,
        cloud.snapshot(&ScopeId::new(SCOPE).unwrap())
    );
    assert_eq!(scope.count(None).unwrap(), RECORDS);

    let runs = scope.history(10).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].status, RunStatus::Completed);
    assert_eq!(runs[0].kind, RunKind::Initial, "still the first download");
    for killed in &runs[1..] {
        assert_eq!(killed.status, RunStatus::Failed, "{killed:?}");
        assert!(killed
            .error
            .as_ref()
            .is_some_and(|e| e.message.contains("interrupted")));
    }
    // Each killed run keeps the pages it committed, counted with each page.
    assert_eq!(
        [runs[2].pages, runs[1].pages],
        [first / u64::from(PAGE), (second - first) / u64::from(PAGE)],
        "{runs:?}"
    );
    assert_eq!(runs[1].counts.inserted, second - first, "{runs:?}");
    assert!(scope.verify(&cloud, false).unwrap().matched);
}
