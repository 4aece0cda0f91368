//! The storage interface every replica store implements: SQLite, IndexedDB, memory.
//!
//! Each method is one whole operation and one storage transaction. There is no transaction
//! handle to carry across awaits, because IndexedDB commits a transaction as soon as anything
//! other than one of its own requests is awaited. Writes go through [`Store::update`]: the store
//! reads the scope state and the rows of the given keys, hands them to a pure [`Planner`] (the
//! engine's rules), and writes the resulting [`Changeset`] — all inside one transaction, so a
//! crash leaves either the old state or the new one.

use std::future::Future;

use crate::digest::Snapshot;
use crate::error::Result;
use crate::query::{Hit, IndexSet, Scan};
pub use crate::rules::snapshot_of;
use crate::rules::{changes_of, Changeset, KeyChange, Row, ScopeState, Source};
use crate::types::{Conflict, Key, KeyRange, Millis, Run, ScopeId};

/// `Send` off wasm, nothing on wasm (where futures are single-threaded and JS values are not
/// `Send`). Keyed on the target, never on a Cargo feature.
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_family = "wasm"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` off wasm, nothing on wasm (where futures are single-threaded and JS values are not
/// `Send`). Keyed on the target, never on a Cargo feature.
#[cfg(target_family = "wasm")]
pub trait MaybeSend {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` off wasm, nothing on wasm.
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_family = "wasm"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` off wasm, nothing on wasm.
#[cfg(target_family = "wasm")]
pub trait MaybeSync {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSync for T {}

/// The pure part of a write: from the scope state and the rows read, the changeset to write.
/// Returning an error aborts the transaction with nothing written.
///
/// `rows[i]` is the row of the i-th key passed to [`Store::update`]. A planner is `FnOnce`: a
/// store calls it exactly once per transaction, so it may move what it owns (a page's records)
/// into the changeset instead of cloning it. Any closure
/// `FnOnce(&ScopeState, &[Option<Row>]) -> Result<Changeset>` is a planner.
pub trait Planner: FnOnce(&ScopeState, &[Option<Row>]) -> Result<Changeset> + MaybeSend {}

impl<F> Planner for F where F: FnOnce(&ScopeState, &[Option<Row>]) -> Result<Changeset> + MaybeSend {}

/// What a committed [`Store::update`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The changeset's counters.
    pub counts: crate::types::Counts,
    /// The scope's totals after the write.
    pub totals: Snapshot,
    /// What made the write.
    pub source: Source,
    /// The visible changes it made ([`changes_of`]), for the change events the writer
    /// publishes once the store has committed.
    pub changes: Vec<KeyChange>,
}

impl Applied {
    /// Summarizes a changeset (for store implementations).
    pub fn of(changes: &Changeset) -> Self {
        Applied {
            counts: changes.counts,
            totals: changes.scope.totals,
            source: changes.source,
            changes: changes_of(changes),
        }
    }
}

/// A replica store. See the module docs for the transaction rules; the conformance suite
/// (feature `testing`, the `testing` module) checks an implementation against them.
pub trait Store: MaybeSend + MaybeSync {
    /// The scope's state; the default state for a scope never written.
    fn scope_state(&self, scope: &ScopeId) -> impl Future<Output = Result<ScopeState>> + MaybeSend;

    /// One transaction: read the scope state and the rows of `keys` (in order; absent rows are
    /// `None`), call `planner` (once), and write its changeset: the scope state, the row writes, the
    /// conflicts (assigning their ids). If `with_data` is false, rows without a pending edit
    /// may be handed to the planner without their data. Nothing is written if the planner
    /// or any write fails.
    fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> impl Future<Output = Result<Applied>> + MaybeSend;

    /// Like [`Store::update`], over the rows whose generation is older than `generation`
    /// (with their data), for the sweep at the end of a full download.
    fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> impl Future<Output = Result<Applied>> + MaybeSend;

    /// The row of a key, including a pending local delete (`data: None`).
    fn row(
        &self,
        scope: &ScopeId,
        key: &Key,
    ) -> impl Future<Output = Result<Option<Row>>> + MaybeSend;

    /// Visible rows of a collection (pending deletes left out), ordered by id, starting after
    /// `after`, at most `limit`.
    fn list(
        &self,
        scope: &ScopeId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Row>>> + MaybeSend;

    /// Number of visible rows, of one collection or of the whole scope.
    fn count(
        &self,
        scope: &ScopeId,
        collection: Option<&str>,
    ) -> impl Future<Output = Result<u64>> + MaybeSend;

    /// Rows with a pending edit, ordered by sequence number, with sequence number greater than
    /// `after_seq`, at most `limit`.
    fn pending(
        &self,
        scope: &ScopeId,
        after_seq: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Row>>> + MaybeSend;

    /// Number of rows with a pending edit.
    fn pending_count(&self, scope: &ScopeId) -> impl Future<Output = Result<u64>> + MaybeSend;

    /// Open conflicts, oldest first.
    fn conflicts(&self, scope: &ScopeId)
        -> impl Future<Output = Result<Vec<Conflict>>> + MaybeSend;

    /// Dismisses a conflict; `false` if there was none with that id in the scope.
    fn dismiss_conflict(
        &self,
        scope: &ScopeId,
        id: u64,
    ) -> impl Future<Output = Result<bool>> + MaybeSend;

    /// Records the start of a run and returns its id. Any run of the same scope still marked
    /// running is marked failed first (it was interrupted: runs of one scope never overlap).
    fn start_run(&self, run: &Run) -> impl Future<Output = Result<u64>> + MaybeSend;

    /// Stores the final state of a run (matched by `run.id`).
    fn finish_run(&self, run: &Run) -> impl Future<Output = Result<()>> + MaybeSend;

    /// Runs of a scope, newest first, at most `limit`.
    fn runs(
        &self,
        scope: &ScopeId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Run>>> + MaybeSend;

    /// Runs of a scope started at or after `since`, newest first.
    fn runs_since(
        &self,
        scope: &ScopeId,
        since: Millis,
    ) -> impl Future<Output = Result<Vec<Run>>> + MaybeSend;

    /// Count and digest of the cloud state of the rows in a key range, computed from the rows
    /// (not from the maintained totals). With `rehash`, each non-pending row's data is hashed
    /// again and that hash is used, so a row changed behind the engine's back shows up.
    fn range_snapshot(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> impl Future<Output = Result<Snapshot>> + MaybeSend;

    /// Keys of the rows in a key range, in order, at most `limit`.
    fn range_keys(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Key>>> + MaybeSend;

    /// The key at position `offset` (0-based, in key order) among the rows in a key range; used
    /// to split a range in two.
    fn nth_key(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        offset: u64,
    ) -> impl Future<Output = Result<Option<Key>>> + MaybeSend;

    /// Every scope with stored state.
    fn scopes(&self) -> impl Future<Output = Result<Vec<ScopeId>>> + MaybeSend;

    /// The indexes declared (by [`Store::declare_indexes`]), ready or still being built.
    fn indexes(&self) -> IndexSet;

    /// Declares the replica's indexes, in one transaction: an index no longer in `indexes` is
    /// dropped with its entries; a new one is recorded as building. From then on every write
    /// keeps every declared index (built or not) in its own transaction. Declaring the set
    /// already declared changes nothing (a build interrupted earlier stays where it was).
    fn declare_indexes(&self, indexes: &IndexSet) -> impl Future<Output = Result<()>> + MaybeSend;

    /// One step of building the indexes still building: the entries of at most `batch` more
    /// records, and the step's progress, in one transaction (so a build interrupted at any
    /// point resumes where it stopped). `true` once every declared index is ready.
    fn build_indexes(&self, batch: usize) -> impl Future<Output = Result<bool>> + MaybeSend;

    /// The entries of a ready index a [`Scan`] selects, each with its row (with data), in the
    /// scan's order. A scan of an index that is not declared, or still building, is an
    /// `InvalidInput` naming it.
    fn scan(
        &self,
        scope: &ScopeId,
        scan: &Scan,
    ) -> impl Future<Output = Result<Vec<Hit>>> + MaybeSend;

    /// The number of entries a [`Scan`] selects, ignoring its cursor and limit.
    fn scan_count(
        &self,
        scope: &ScopeId,
        scan: &Scan,
    ) -> impl Future<Output = Result<u64>> + MaybeSend;
}
