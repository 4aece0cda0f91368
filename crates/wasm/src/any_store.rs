//! [`AnyStore`]: the API's store: IndexedDB in browsers, a `node:sqlite` file in Node (VS Code
//! extension hosts), or memory. An enum rather than `dyn`: the `Store` trait returns `impl Future`.

use tether_engine::query::{Hit, Scan};
use tether_engine::rules::Changeset;
use tether_engine::store::{Applied, Planner};
use tether_engine::{
    Conflict, IndexSet, Key, KeyRange, MemoryStore, Millis, Result, Row, Run, ScopeId, ScopeState,
    Snapshot, Store,
};

#[cfg(feature = "node-sqlite")]
use crate::node_sqlite::NodeSqliteStore;
use crate::IdbStore;

/// A store of either kind.
pub enum AnyStore {
    /// IndexedDB.
    Idb(IdbStore),
    /// A SQLite file through `node:sqlite`, in the native replica's format (the `node-sqlite`
    /// feature).
    #[cfg(feature = "node-sqlite")]
    Sqlite(NodeSqliteStore),
    /// In memory, exportable as a JSON snapshot.
    Memory(MemoryStore),
}

macro_rules! delegate {
    ($self:ident . $m:ident ( $($a:expr),* )) => {
        match $self {
            AnyStore::Idb(s) => s.$m($($a),*).await,
            #[cfg(feature = "node-sqlite")]
            AnyStore::Sqlite(s) => s.$m($($a),*).await,
            AnyStore::Memory(s) => s.$m($($a),*).await,
        }
    };
}

/// A planner behind a pointer: each store's `update` is compiled once for it rather than once
/// per planner of the engine (page, push, local edit, sweep, repair, state-only updates), which
/// keeps tens of kilobytes out of the wasm.
type BoxedPlanner<'p> = Box<dyn FnOnce(&ScopeState, &[Option<Row>]) -> Result<Changeset> + 'p>;

impl AnyStore {
    async fn update_boxed(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: BoxedPlanner<'_>,
    ) -> Result<Applied> {
        delegate!(self.update(scope, keys, with_data, planner))
    }

    async fn update_stale_boxed(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: BoxedPlanner<'_>,
    ) -> Result<Applied> {
        delegate!(self.update_stale(scope, generation, planner))
    }
}

impl Store for AnyStore {
    async fn scope_state(&self, scope: &ScopeId) -> Result<ScopeState> {
        delegate!(self.scope_state(scope))
    }
    async fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.update_boxed(scope, keys, with_data, Box::new(planner))
            .await
    }
    async fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.update_stale_boxed(scope, generation, Box::new(planner))
            .await
    }
    async fn row(&self, scope: &ScopeId, key: &Key) -> Result<Option<Row>> {
        delegate!(self.row(scope, key))
    }
    async fn list(
        &self,
        scope: &ScopeId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        delegate!(self.list(scope, collection, after, limit))
    }
    async fn count(&self, scope: &ScopeId, collection: Option<&str>) -> Result<u64> {
        delegate!(self.count(scope, collection))
    }
    async fn pending(
        &self,
        scope: &ScopeId,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        delegate!(self.pending(scope, after_seq, limit))
    }
    async fn pending_count(&self, scope: &ScopeId) -> Result<u64> {
        delegate!(self.pending_count(scope))
    }
    async fn conflicts(&self, scope: &ScopeId) -> Result<Vec<Conflict>> {
        delegate!(self.conflicts(scope))
    }
    async fn dismiss_conflict(&self, scope: &ScopeId, id: u64) -> Result<bool> {
        delegate!(self.dismiss_conflict(scope, id))
    }
    async fn start_run(&self, run: &Run) -> Result<u64> {
        delegate!(self.start_run(run))
    }
    async fn finish_run(&self, run: &Run) -> Result<()> {
        delegate!(self.finish_run(run))
    }
    async fn runs(&self, scope: &ScopeId, limit: usize) -> Result<Vec<Run>> {
        delegate!(self.runs(scope, limit))
    }
    async fn runs_since(&self, scope: &ScopeId, since: Millis) -> Result<Vec<Run>> {
        delegate!(self.runs_since(scope, since))
    }
    async fn range_snapshot(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> Result<Snapshot> {
        delegate!(self.range_snapshot(scope, range, rehash))
    }
    async fn range_keys(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Key>> {
        delegate!(self.range_keys(scope, range, limit))
    }
    async fn nth_key(&self, scope: &ScopeId, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        delegate!(self.nth_key(scope, range, offset))
    }
    async fn scopes(&self) -> Result<Vec<ScopeId>> {
        delegate!(self.scopes())
    }
    fn indexes(&self) -> IndexSet {
        match self {
            AnyStore::Idb(s) => s.indexes(),
            #[cfg(feature = "node-sqlite")]
            AnyStore::Sqlite(s) => s.indexes(),
            AnyStore::Memory(s) => s.indexes(),
        }
    }
    async fn declare_indexes(&self, indexes: &IndexSet) -> Result<()> {
        delegate!(self.declare_indexes(indexes))
    }
    async fn build_indexes(&self, batch: usize) -> Result<bool> {
        delegate!(self.build_indexes(batch))
    }
    async fn scan(&self, scope: &ScopeId, scan: &Scan) -> Result<Vec<Hit>> {
        delegate!(self.scan(scope, scan))
    }
    async fn scan_count(&self, scope: &ScopeId, scan: &Scan) -> Result<u64> {
        delegate!(self.scan_count(scope, scan))
    }
}
