//! A sync that fills the disk (simulated with SQLite's `max_page_count`, which fails a write
//! with `SQLITE_FULL` exactly as a full disk does) stops with a `Storage` error, leaves a
//! consistent replica, and its run in history keeps the true cause and the pages applied. Once
//! space is freed, the next sync resumes from the checkpoint.

use futures_executor::block_on;
use tether_dataset::Dataset;
use tether_engine::cloud::Cloud;
use tether_engine::{Detail, ErrorKind, Run, RunStatus, ScopeId, Store, SyncOptions, Syncer};
use tether_native::SqliteStore;

fn sqlite(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// The run's end recorded in place: the engine's last write.
#[test]
fn a_sync_that_fills_the_disk_records_its_cause_and_resumes_once_space_is_freed() {
    let (store, _dir, cloud, scope) = setup();
    let applied = fill(&store, &cloud, &scope);
    let runs = block_on(store.runs(&scope, 10)).unwrap();
    check_failed_run(&runs[0], applied);
    resume(&store, &cloud, &scope, applied);
}

/// The run's end cannot be recorded either (on a really full disk the write of the run fails
/// too, here a trigger fails it): the pages applied are in history already, counted with each
/// page, and the next run of this store records the true end before its own start.
#[test]
fn a_run_whose_end_cannot_be_written_is_recorded_by_the_next_one() {
    let (store, dir, cloud, scope) = setup();
    let path = dir.path().join("replica.db");
    sqlite(&path)
        .execute_batch(
            "CREATE TRIGGER full BEFORE UPDATE OF status ON runs WHEN NEW.status <> 'running' \
             BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
        )
        .unwrap();
    let applied = fill(&store, &cloud, &scope);
    let runs = block_on(store.runs(&scope, 10)).unwrap();
    assert_eq!(runs[0].status, RunStatus::Running, "{runs:?}");
    assert_eq!(
        (runs[0].pages, runs[0].counts.inserted),
        (applied / u64::from(PAGE), applied),
        "counted as the pages landed: {runs:?}"
    );
    sqlite(&path).execute_batch("DROP TRIGGER full").unwrap();
    resume(&store, &cloud, &scope, applied);
    let runs = block_on(store.runs(&scope, 10)).unwrap();
    check_failed_run(&runs[1], applied);
}

const RECORDS: u64 = 3_000;
const PAGE: u32 = 100;

fn clock() -> i64 {
    1_767_225_600_000
}

fn opts() -> SyncOptions<'static> {
    SyncOptions {
        page_size: PAGE,
        ..SyncOptions::default()
    }
}

fn setup() -> (SqliteStore, tempfile::TempDir, Cloud, ScopeId) {
    let scope = ScopeId::new("org-1").unwrap();
    let cloud = Cloud::new();
    Dataset::new(11, RECORDS).load_into(&cloud, &scope, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("replica.db")).unwrap();
    (store, dir, cloud, scope)
}

/// Syncs with room for about half of the records: the sync fails as on a full disk, leaving
/// whole pages. Returns the records applied.
fn fill(store: &SqliteStore, cloud: &Cloud, scope: &ScopeId) -> u64 {
    let cap = store.pages().unwrap() + 150;
    assert_eq!(store.set_max_pages(cap).unwrap(), cap);
    let err = block_on(Syncer::new(store, cloud, &clock).sync(scope, opts())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err:?}");
    assert_eq!(err.detail(), Some(Detail::Quota), "{err:?}");
    let state = block_on(store.scope_state(scope)).unwrap();
    let applied = state.totals.count;
    assert!(
        applied > 0 && applied < RECORDS && applied % u64::from(PAGE) == 0,
        "whole pages applied: {applied}"
    );
    applied
}

fn check_failed_run(run: &Run, applied: u64) {
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.as_ref().expect("the run's error");
    assert_eq!(error.kind, ErrorKind::Storage, "{run:?}");
    assert_eq!(error.detail, Some(Detail::Quota), "{run:?}");
    assert_eq!(run.pages, applied / u64::from(PAGE), "{run:?}");
    assert_eq!(run.counts.inserted, applied, "{run:?}");
    assert!(run.finished_at.is_some(), "{run:?}");
}

/// Frees the space; the next sync goes on from the checkpoint.
fn resume(store: &SqliteStore, cloud: &Cloud, scope: &ScopeId, applied: u64) {
    store.set_max_pages(1 << 30).unwrap();
    let report = block_on(Syncer::new(store, cloud, &clock).sync(scope, opts())).unwrap();
    assert_eq!(report.run.counts.inserted, RECORDS - applied, "{report:?}");
    assert_eq!(report.snapshot, cloud.snapshot(scope));
    let runs = block_on(store.runs(scope, 10)).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].status, RunStatus::Completed, "{runs:?}");
    check_failed_run(&runs[1], applied);
}
