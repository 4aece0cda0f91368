//! The sync driver.
//!
//! [`Syncer::sync`] runs one sync of one scope, in this order:
//!
//! 1. record the run as started ([`Store::start_run`]);
//! 2. push the outbox, if the remote accepts pushes, in sequence order, applying each batch's
//!    results in one transaction (accepted edits take the cloud's version; rejected ones go to
//!    the conflict journal and the cloud's state is written). A push that fails does not stop
//!    the run, except with [`Error::Auth`] or [`Error::Cancelled`]: the pull runs, and the run
//!    then fails with the push's error (the unanswered edits stay pending);
//! 3. pull pages from the stored checkpoint until `has_more` is false, validating each page
//!    (every record's hash) and applying it with its checkpoint in one transaction. A `410`
//!    reset starts a full download under a new generation; the rows of older generations stay
//!    readable until its last page lands and they are swept;
//! 4. verify the maintained count and digest against the last page's snapshot. On a mismatch,
//!    repair differing key ranges if the remote answers range queries and compare with a fresh
//!    cloud answer; if that differs, pull once more from the checkpoint (a cloud write during
//!    the repair, to a range it did not fix) and verify again; else (or if that fails) download
//!    in full once more; a mismatch after that is an [`Error::Integrity`];
//! 5. record the run's outcome and counters.
//!
//! The driver never reads a clock: the [`Clock`] is passed in. Cancellation is checked between
//! pages; a cancelled run keeps every committed page.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::digest::{RecordHash, Snapshot};
use crate::error::{Detail, Error, ErrorKind, IntegrityMismatch, Result, RunError};
use crate::events::EventHub;
use crate::remote::{Pulled, Remote};
use crate::rules::{
    plan_page, plan_push, plan_repair, plan_sweep, plan_unanswered, validate_change, validate_page,
    validate_push, Changeset, Mode, PushOutcome, PushResult, Row, ScopeState,
};
use crate::store::{Applied, MaybeSend, MaybeSync, Planner, Store};

mod pipeline;
mod preview;
mod push;
mod repair;
mod subsets;

use crate::types::{
    Change, Counts, Key, KeyRange, Millis, MutationResult, Phase, Progress, Run, RunKind,
    RunStatus, ScopeId, Trigger,
};
pub use preview::Preview;
pub use subsets::SubsetCheck;

/// A source of the current time, in milliseconds since the Unix epoch.
pub trait Clock: MaybeSend + MaybeSync {
    /// Now.
    fn now(&self) -> Millis;
}

impl<F: Fn() -> Millis + MaybeSend + MaybeSync> Clock for F {
    fn now(&self) -> Millis {
        self()
    }
}

/// Receives progress events.
pub trait ProgressSink: MaybeSend + MaybeSync {
    /// Called for each event.
    fn progress(&self, event: &Progress);
}

impl<F: Fn(&Progress) + MaybeSend + MaybeSync> ProgressSink for F {
    fn progress(&self, event: &Progress) {
        self(event)
    }
}

/// A cancellation flag shared between the caller and a running sync.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the sync to stop at the next page boundary.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

use pipeline::Fetched;
pub use pipeline::{run_on, Offload};

/// Options of one sync.
#[derive(Clone, Copy)]
pub struct SyncOptions<'a> {
    /// What started the run.
    pub trigger: Trigger,
    /// Changes asked for per page.
    pub page_size: u32,
    /// Local edits pushed per request.
    pub push_batch: usize,
    /// Most bytes of a push request's body (the serialized mutations): a batch is cut before
    /// the mutation that would take it over, and an edit that alone exceeds it is never sent but
    /// journaled with reason `too_large`. Keep it under the server's body limit (the reference
    /// server's `max_body_bytes` is 8 MiB by default).
    pub push_bytes: usize,
    /// Download the scope in full under a new generation, whatever the checkpoint.
    pub full: bool,
    /// Live sync when above 0: after catching up, the run does not end but waits for the
    /// cloud's next change with long-polls of this many seconds ([`Remote::pull_wait`]),
    /// pushing the outbox and applying each answer in its own transaction, verified, until
    /// `cancel` is raised (checked between long-polls, so within this many seconds) or an
    /// error ends it. One run records the whole session. Needs [`Remote::can_wait`]; the
    /// reference server allows up to 60.
    pub live_wait_s: u32,
    /// Progress events go here.
    pub progress: Option<&'a dyn ProgressSink>,
    /// Cancellation.
    pub cancel: Option<&'a CancelFlag>,
    /// Where the next page is validated and hashed while this one is written (natively a
    /// worker thread, which `tether-native` supplies when this is `None`); `None` runs it
    /// inline. The next page is pulled during the write either way.
    pub offload: Option<&'a dyn Offload>,
    /// 16 bytes from the platform's CSPRNG, of which the scope's client id is made at its
    /// first push (used only while the scope has none). `tether-native`'s `Replica` and the
    /// wasm API fill it in; `None` (tests, simulations) derives the id from the scope, the
    /// time and the first edits instead, which two fresh replicas can share.
    pub client_entropy: Option<[u8; 16]>,
}

impl Default for SyncOptions<'_> {
    fn default() -> Self {
        SyncOptions {
            trigger: Trigger::Manual,
            page_size: 1000,
            push_batch: 500,
            push_bytes: PUSH_BYTES,
            full: false,
            live_wait_s: 0,
            progress: None,
            cancel: None,
            offload: None,
            client_entropy: None,
        }
    }
}

/// The outcome of a completed sync.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// The run, as recorded in history.
    pub run: Run,
    /// The verified count and digest (equal on both sides).
    pub snapshot: Snapshot,
}

/// The outcome of [`Syncer::verify`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// What the cloud reported.
    pub cloud: Snapshot,
    /// What the replica's rows hash to (data hashed again).
    pub local: Snapshot,
    /// Whether they matched before any repair.
    pub matched: bool,
    /// Rows rewritten or removed by the repair (0 without repair).
    pub repaired: u64,
    /// Whether they match now.
    pub matches_now: bool,
    /// A partial replica's subscriptions, each compared on its own (`cloud` and `local` are
    /// then their sums, and `matched` says every one matched).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubsetCheck>,
}

/// Default [`SyncOptions::push_bytes`]: 4 MiB, half the reference server's default body limit.
pub const PUSH_BYTES: usize = 4 << 20;

// A mutation of the largest record fits one push, with room for its key, its envelope and a
// serialization that spells numbers longer than the canonical text does.
const _: () = assert!(2 * crate::limits::MAX_RECORD_BYTES <= PUSH_BYTES);

/// Bytes of a push body around its mutations: `{"mutations":[` and `]}`.
pub(crate) const PUSH_ENVELOPE: usize = r#"{"mutations":[]}"#.len();

/// Ranges with at most this many records on either side are fetched whole during repair.
pub(crate) const REPAIR_LEAF: u64 = 64;

/// Pages in a row that may say `has_more` and carry no changes; the next such page ends the
/// pull as [`Detail::NoProgress`]. A page that only moves the checkpoint is not wrong in itself
/// (a cloud may page over a log whose entries it filters), but a hundred in a row is a remote
/// that spins, not one that pages (docs/engine.md, "Bounded remotes").
pub const MAX_EMPTY_PAGES: u32 = 100;

/// Highest version a replica accepts: stores keep versions as SQLite `INTEGER` (`i64`), so a
/// larger one is the remote's fault, reported as `Protocol` [`Detail::Malformed`] before any
/// store sees it.
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// Drives syncs of a [`Store`] from a [`Remote`].
///
/// ```
/// # futures_executor::block_on(async {
/// use tether_engine::{cloud::Cloud, memory::MemoryStore, ScopeId, SyncOptions, Syncer};
/// let cloud = Cloud::new();
/// let scope = ScopeId::new("org-1").unwrap();
/// cloud.put(&scope, "objects", "obj_1", serde_json::json!({"name": "orders"}), 1_000);
/// let store = MemoryStore::new();
/// let clock = || 1_000;
/// let report = Syncer::new(&store, &cloud, &clock).sync(&scope, SyncOptions::default()).await.unwrap();
/// assert_eq!(report.snapshot.count, 1);
/// # });
/// ```
pub struct Syncer<'a, S, R> {
    store: &'a S,
    remote: &'a R,
    clock: &'a dyn Clock,
    /// What a push of the running sync sent without getting an answer: key and pushed hash.
    unanswered: Mutex<Vec<(Key, Option<RecordHash>)>>,
    /// Where each committed write's visible changes are published, if anywhere.
    events: Option<&'a EventHub>,
    /// The id of the run under way, which its change events name.
    run: Mutex<Option<u64>>,
}

impl<'a, S: Store, R: Remote> Syncer<'a, S, R> {
    /// A driver over `store` and `remote`, reading time from `clock`.
    pub fn new(store: &'a S, remote: &'a R, clock: &'a dyn Clock) -> Self {
        Syncer {
            store,
            remote,
            clock,
            unanswered: Mutex::default(),
            events: None,
            run: Mutex::default(),
        }
    }

    /// Publishes the visible changes of each write this driver commits on `hub` (the
    /// [`events`](crate::events) module), right after the store committed it.
    pub fn events(mut self, hub: &'a EventHub) -> Self {
        self.events = Some(hub);
        self
    }

    /// [`Store::update`], then the change event of what it committed.
    async fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        let applied = self.store.update(scope, keys, with_data, planner).await?;
        self.publish(scope, &applied);
        Ok(applied)
    }

    /// [`Store::update_stale`], then the change event of what it committed.
    async fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        let applied = self.store.update_stale(scope, generation, planner).await?;
        self.publish(scope, &applied);
        Ok(applied)
    }

    fn publish(&self, scope: &ScopeId, applied: &Applied) {
        if let Some(hub) = self.events {
            let run = *self.run.lock().unwrap_or_else(|p| p.into_inner());
            hub.publish_applied(scope, applied, run);
        }
    }

    /// Runs one sync of `scope` (see the module docs). The run is recorded in history whatever
    /// the outcome; on failure the error is returned and the run is marked failed with it.
    pub async fn sync(&self, scope: &ScopeId, opts: SyncOptions<'_>) -> Result<SyncReport> {
        self.remote.begin_run();
        let state = self.store.scope_state(scope).await?;
        let kind = if opts.full {
            RunKind::FullResync
        } else if state.synced_at.is_none() {
            RunKind::Initial
        } else if state.full_sync {
            RunKind::FullResync
        } else {
            RunKind::Incremental
        };
        let mut run = Run {
            id: 0,
            scope: scope.to_string(),
            kind,
            trigger: opts.trigger,
            started_at: self.clock.now(),
            finished_at: None,
            status: RunStatus::Running,
            pages: 0,
            counts: Default::default(),
            bytes_received: 0,
            error: None,
        };
        run.id = self.store.start_run(&run).await?;
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = Some(run.id);
        let result = self.drive(scope, &opts, &mut run).await;
        let now = self.clock.now();
        run.finished_at = Some(now);
        match &result {
            Ok(_) => run.status = RunStatus::Completed,
            Err(Error::Cancelled) => run.status = RunStatus::Cancelled,
            Err(e) => {
                run.status = RunStatus::Failed;
                run.error = Some(RunError::from(e));
            }
        }
        if result.is_ok() {
            self.update(scope, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
                Ok(Changeset {
                    scope: ScopeState {
                        synced_at: Some(now),
                        ..st.clone()
                    },
                    ..Changeset::default()
                })
            })
            .await?;
        }
        let finished = self.store.finish_run(&run).await;
        // A later verify or repair through this driver is no part of the run.
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let snapshot = result?;
        finished?;
        Ok(SyncReport { run, snapshot })
    }

    async fn drive(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<Snapshot> {
        if opts.live_wait_s == 0 {
            return self.round(scope, opts, run).await;
        }
        if !self.remote.can_wait() {
            return Err(Error::invalid(
                "this remote cannot wait for changes: a live sync needs long-polls",
            ));
        }
        // Caught up once (in full if asked), then round after round of push and long-poll.
        let mut verified = self.round(scope, opts, run).await?;
        let again = SyncOptions {
            full: false,
            ..*opts
        };
        loop {
            if opts.cancel.is_some_and(CancelFlag::is_cancelled) {
                return Ok(verified);
            }
            match self.round(scope, &again, run).await {
                Ok(s) => verified = s,
                // Stopped between two answers: what was applied is verified; a live run that
                // was asked to stop has completed.
                Err(Error::Cancelled) => return Ok(verified),
                Err(e) => return Err(e),
            }
        }
    }

    /// One push and pull: steps 2 to 4 of the module docs.
    async fn round(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<Snapshot> {
        if let Ok(mut unanswered) = self.unanswered.lock() {
            unanswered.clear();
        }
        let pushed = if self.remote.can_push() {
            self.push(scope, opts, run).await
        } else {
            Ok(())
        };
        match pushed {
            // Pulling with a token the cloud refuses, or after the caller asked to stop, is
            // pointless; any other push failure must not stop the replica from receiving.
            Err(e) if matches!(e.kind(), ErrorKind::Auth | ErrorKind::Cancelled) => Err(e),
            pushed => {
                let snapshot = self.pull_and_verify(scope, opts, run).await?;
                // The pull completed; the run still fails with the push's error, the edits
                // that were not answered stay pending for the next run.
                pushed.map(|()| snapshot)
            }
        }
    }

    /// Steps 3 and 4 of the module docs: pull to the last page, sweep, verify and repair.
    async fn pull_and_verify(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<Snapshot> {
        let mut state = self.store.scope_state(scope).await?;
        if state.evicting {
            // A narrowing of the subscriptions was cut short before its eviction ended.
            let handle = crate::scope::ScopeHandle::new(self.store, scope.clone());
            let handle = match self.events {
                Some(hub) => handle.events(hub),
                None => handle,
            };
            run.counts.deleted += handle.evict_unselected().await?;
        }
        if !state.subscriptions.is_empty() {
            return self.pull_subsets(scope, opts, run).await;
        }
        let mut resynced = false;
        let mut caught_up = false;
        if opts.full || (state.checkpoint.is_none() && !state.full_sync) {
            state = self.begin_full(scope).await?;
            resynced = opts.full;
        }
        loop {
            let Some(snapshot) = self
                .pull_all(scope, opts, run, &mut state, &mut resynced)
                .await?
            else {
                return self.pull_subsets(scope, opts, run).await;
            };
            if state.full_sync {
                self.emit_finished(opts, scope, Phase::Sweep, run);
                let now = self.clock.now();
                let scope_name = scope.as_str();
                let applied = self
                    .update_stale(
                        scope,
                        state.generation,
                        |st: &ScopeState, rows: &[Option<Row>]| match st.subscriptions.is_empty() {
                            true => plan_sweep(scope_name, st, rows, now),
                            false => Ok(unchanged(st)),
                        },
                    )
                    .await?;
                run.counts += applied.counts;
            }
            state = self.store.scope_state(scope).await?;
            if !state.subscriptions.is_empty() {
                // Subscriptions declared since the last page: the whole scope's snapshot no
                // longer describes the replica, whose subscriptions are pulled and verified.
                return self.pull_subsets(scope, opts, run).await;
            }
            self.emit_finished(opts, scope, Phase::Verify, run);
            if state.totals == snapshot {
                return Ok(snapshot);
            }
            let mut expected = snapshot;
            if self.repair(scope, run).await?.is_some() {
                state = self.store.scope_state(scope).await?;
                if !state.subscriptions.is_empty() {
                    return self.pull_subsets(scope, opts, run).await;
                }
                // The cloud may have moved on since the last page: the repaired ranges hold
                // what it answered during the repair, so compare with what it says now.
                if let Some(fresh) = self.cloud_snapshot(scope).await? {
                    expected = fresh;
                }
                if state.totals == expected {
                    return Ok(expected);
                }
                // A cloud write during the repair to a range it did not fix (one compared
                // already, or one that matched) is missing only from the replica; the pages
                // after the checkpoint bring it. Catch up once before downloading in full.
                if !caught_up {
                    caught_up = true;
                    continue;
                }
            }
            if resynced {
                return Err(Error::Integrity(Box::new(IntegrityMismatch {
                    scope: scope.to_string(),
                    expected,
                    actual: state.totals,
                })));
            }
            state = self.begin_full(scope).await?;
            run.kind = RunKind::FullResync;
            resynced = true;
        }
    }

    /// Pulls and applies pages until the last one; returns the cloud's snapshot, or `None` if
    /// subscriptions were declared meanwhile (the page in flight is dropped: a partial replica
    /// holds only what they select).
    async fn pull_all(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
        state: &mut ScopeState,
        resynced: &mut bool,
    ) -> Result<Option<Snapshot>> {
        let mut done = 0u64;
        let mut total = None;
        let mut empty_pages = 0u32;
        // A live sync waits on its first pull of a round, once the replica is caught up (an
        // incremental checkpoint): the server answers at once if anything is new.
        let mut wait = if state.checkpoint.is_some() && !state.full_sync {
            opts.live_wait_s
        } else {
            0
        };
        let limit = opts.page_size.max(1);
        // The next page, pulled and validated while the current one was written.
        let mut ahead: Option<Result<Fetched>> = None;
        loop {
            check_cancel(opts)?;
            let fetched = match ahead.take() {
                Some(f) => f?,
                None => {
                    let cp = state.checkpoint.clone();
                    let f = self
                        .fetch(scope, cp.as_ref(), limit, wait, opts, None)
                        .await?;
                    wait = 0;
                    f
                }
            };
            let (page, bytes) = match fetched {
                Fetched::Reset if state.checkpoint.is_none() => {
                    return Err(Error::protocol(
                        "the remote answered reset to a pull from the start",
                    )
                    .with_detail(Detail::NoProgress))
                }
                Fetched::Reset => {
                    if *resynced {
                        return Err(
                            Error::protocol("the remote answered reset twice in one run")
                                .with_detail(Detail::NoProgress),
                        );
                    }
                    *state = self.begin_full(scope).await?;
                    run.kind = RunKind::FullResync;
                    *resynced = true;
                    done = 0;
                    total = None;
                    continue;
                }
                Fetched::Page(page, bytes) => (page, bytes),
            };
            run.bytes_received = run.bytes_received.saturating_add(bytes);
            // Announced once the page is here, so that even the first event carries the total
            // the remote estimates (`remaining` counts what comes after this page).
            let n = page.changes.len() as u64;
            total = page
                .remaining
                .map(|r| done.saturating_add(n).saturating_add(r))
                .or(total);
            self.emit_counts(opts, scope, Phase::Pull, done, total);
            check_progress(
                page.has_more,
                page.changes.len(),
                &page.checkpoint,
                state.checkpoint.as_ref(),
                &mut empty_pages,
            )?;
            let mode = if state.full_sync {
                Mode::Full
            } else {
                Mode::Incremental
            };
            let keys = page.keys();
            let now = self.clock.now();
            let scope_name = scope.as_str();
            let (checkpoint, has_more, remaining, snapshot) = (
                page.checkpoint.clone(),
                page.has_more,
                page.remaining,
                page.snapshot,
            );
            let unanswered = self
                .unanswered
                .lock()
                .map(|u| u.clone())
                .unwrap_or_default();
            let partial = AtomicBool::new(false);
            let partial_ref = &partial;
            let planned = pipeline::Gate::default();
            let planned_ref = &planned;
            // The planner is called once: it moves the records out of the page, no clone.
            let apply = self.update(
                scope,
                &keys,
                false,
                move |st: &ScopeState, rows: &[Option<Row>]| {
                    planned_ref.open();
                    if !st.subscriptions.is_empty() {
                        partial_ref.store(true, Ordering::Relaxed);
                        return Ok(unchanged(st));
                    }
                    plan_page(scope_name, st, page, rows, mode, &unanswered, now)
                },
            );
            let applied = if has_more {
                // The next page is pulled from this page's checkpoint while this one is
                // written; if the write fails, it is dropped with the error.
                let next = self.fetch(scope, Some(&checkpoint), limit, 0, opts, Some(&planned));
                let (next, applied) = pipeline::overlap(next, apply, &planned).await;
                ahead = Some(next);
                applied?
            } else {
                apply.await?
            };
            if partial.load(Ordering::Relaxed) {
                return Ok(None);
            }
            state.checkpoint = Some(checkpoint);
            state.totals = applied.totals;
            run.pages += 1;
            run.counts += applied.counts;
            // `remaining` is the remote's number: any value must give a sane total.
            done = done.saturating_add(n);
            total = remaining.map(|r| done.saturating_add(r)).or(total);
            if !has_more {
                // The last page: whatever the estimate said, this is all there was.
                total = Some(done);
            }
            self.emit_counts(opts, scope, Phase::Apply, done, total);
            if !has_more {
                // validate_page guarantees the last page carries its snapshot.
                return snapshot.map(Some).ok_or_else(|| {
                    Error::protocol("last page without snapshot")
                        .with_detail(Detail::SnapshotMissing)
                });
            }
        }
    }

    async fn begin_full(&self, scope: &ScopeId) -> Result<ScopeState> {
        self.update(scope, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
            if !st.subscriptions.is_empty() {
                // Partial meanwhile: its subscriptions are pulled instead (the first page of
                // the whole scope sees it), and a partial replica is never in a full download.
                return Ok(unchanged(st));
            }
            Ok(Changeset {
                scope: ScopeState {
                    checkpoint: None,
                    generation: st.generation + 1,
                    full_sync: true,
                    ..st.clone()
                },
                ..Changeset::default()
            })
        })
        .await?;
        self.store.scope_state(scope).await
    }

    /// An event of a phase after the last page (sweep, verify): every record of the run is in,
    /// so the total is what was done and the percentage 100, the end of a progress bar.
    fn emit_finished(&self, opts: &SyncOptions<'_>, scope: &ScopeId, phase: Phase, run: &Run) {
        let c = &run.counts;
        let done = c.inserted + c.updated + c.deleted + c.unchanged;
        self.emit_counts(opts, scope, phase, done, Some(done));
    }

    fn emit_counts(
        &self,
        opts: &SyncOptions<'_>,
        scope: &ScopeId,
        phase: Phase,
        done: u64,
        total: Option<u64>,
    ) {
        if let Some(sink) = opts.progress {
            let percent = percent(done, total);
            sink.progress(&Progress {
                scope: scope.to_string(),
                phase,
                done,
                total,
                percent,
                subscription: None,
                priority: None,
            });
        }
    }
}

/// Whether a page moves the pull on: one that says `has_more` with no changes must at least
/// move the checkpoint, and at most [`MAX_EMPTY_PAGES`] may do so in a row (a remote that
/// spins, not one that pages). `empty_pages` counts them across the calls of one pull.
fn check_progress(
    has_more: bool,
    changes: usize,
    next: &crate::types::Checkpoint,
    from: Option<&crate::types::Checkpoint>,
    empty_pages: &mut u32,
) -> Result<()> {
    if !has_more || changes > 0 {
        *empty_pages = 0;
        return Ok(());
    }
    if Some(next) == from {
        return Err(Error::protocol(
            "the remote said has_more but sent no changes and the same checkpoint",
        )
        .with_detail(Detail::NoProgress));
    }
    *empty_pages += 1;
    if *empty_pages > MAX_EMPTY_PAGES {
        return Err(Error::protocol(format!(
            "the remote said has_more but sent no changes {empty_pages} pages in a row"
        ))
        .with_detail(Detail::NoProgress));
    }
    Ok(())
}

/// A changeset that writes nothing: `state` as it is.
fn unchanged(state: &ScopeState) -> Changeset {
    Changeset {
        scope: state.clone(),
        ..Changeset::default()
    }
}

/// `done / total` as a percentage in `[0, 100]` (100 for an empty total).
fn percent(done: u64, total: Option<u64>) -> Option<f64> {
    total.map(|t| {
        if t == 0 {
            100.0
        } else {
            (done as f64 * 100.0 / t as f64).min(100.0)
        }
    })
}

/// Every version the remote sent fits a store ([`MAX_VERSION`]).
pub(crate) fn check_versions<'c>(changes: impl IntoIterator<Item = &'c Change>) -> Result<()> {
    changes
        .into_iter()
        .try_for_each(|c| check_version(format_args!("{}/{}", c.collection, c.id), c.version))
}

pub(crate) fn check_version(what: impl std::fmt::Display, version: u64) -> Result<()> {
    if version > MAX_VERSION {
        return Err(Error::protocol(format!(
            "{what} has version {version}, above the largest a replica stores ({MAX_VERSION})"
        ))
        .with_detail(Detail::Malformed));
    }
    Ok(())
}

pub(crate) fn check_cancel(opts: &SyncOptions<'_>) -> Result<()> {
    match opts.cancel {
        Some(c) if c.is_cancelled() => Err(Error::Cancelled),
        _ => Ok(()),
    }
}
