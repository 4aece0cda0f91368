//! Change events: after every committed transaction that changes visible records, one event
//! naming the scope, what made the change, the run (if a sync made it) and each changed key
//! with its operation.
//!
//! They come from [`Observed`], a wrapper around any [`Store`]: it learns each transaction's
//! changes from the [`Changeset`] the planner returned, and publishes them on its
//! [`EventHub`] only once the store has committed, so a listener never sees a change that was
//! rolled back, and a listener that reads the store sees the committed state.
//!
//! ```
//! # futures_executor::block_on(async {
//! use std::sync::{Arc, Mutex};
//! use tether_engine::{events::{ChangeOp, Observed}, MemoryStore, ScopeHandle, ScopeId};
//! let store = Observed::new(MemoryStore::new());
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! let _sub = store.events().subscribe(move |e| sink.lock().unwrap().push(e.clone()));
//! let scope = ScopeHandle::new(&store, ScopeId::new("org-1").unwrap());
//! scope.put("objects", "obj_1", serde_json::json!({"name": "orders"})).await.unwrap();
//! let events = seen.lock().unwrap();
//! assert_eq!(events[0].changes[0].op, ChangeOp::Insert);
//! # });
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};

use crate::digest::Snapshot;
use crate::error::Result;
use crate::query::{Hit, IndexSet, Scan};
use crate::rules::{Changeset, Row, RowWrite, ScopeState};
use crate::store::{Applied, MaybeSend, MaybeSync, Planner, Store};
use crate::types::{Conflict, Key, KeyRange, Millis, Run, ScopeId};

/// What made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A local edit (`put` or `delete`).
    #[default]
    Local,
    /// A page of a pull or of a full download.
    Pull,
    /// The answer to a push.
    Push,
    /// The sweep at the end of a full download (records the cloud no longer has).
    Sweep,
    /// A repair of rows that differed from the cloud.
    Repair,
}

/// How a key's visible record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// It became visible.
    Insert,
    /// Its visible data changed.
    Update,
    /// It is no longer visible (deleted, or a local delete is pending).
    Delete,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// Collection.
    pub collection: String,
    /// Record id.
    pub id: String,
    /// What happened to it.
    pub op: ChangeOp,
}

/// One committed transaction's visible changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The scope.
    pub scope: String,
    /// What made the change.
    pub source: Source,
    /// The id of the run that made it, when a sync did.
    pub run: Option<u64>,
    /// The changed keys, each once.
    pub changes: Vec<KeyChange>,
}

impl ChangeEvent {
    /// Whether the event changes a record of `collection`.
    pub fn touches(&self, collection: &str) -> bool {
        self.changes.iter().any(|c| c.collection == collection)
    }
}

/// The visible changes a changeset makes: a record that appears, disappears, changes its data,
/// or whose local edit is settled (the cloud accepted it: the record's `pending` flag clears,
/// which a UI showing "edited locally" must see). A write that keeps all of that (a version
/// refreshed by a page, a full download bringing the same data) is no change.
pub fn changes_of(cs: &Changeset) -> Vec<KeyChange> {
    let mut out = Vec::new();
    for w in &cs.rows {
        let prior = w.prior();
        let before = prior.and_then(|p| p.hash);
        let after = match w {
            RowWrite::Put { row, .. } => row.hash.filter(|_| row.data.is_some()),
            RowWrite::Touch { .. } => before,
            RowWrite::Remove { .. } => None,
        };
        let was_pending = prior.is_some_and(|p| p.pending.is_some());
        let settled = after.is_some() && was_pending != w.pending().is_some();
        let op = match (before, after) {
            (None, Some(_)) => ChangeOp::Insert,
            (Some(_), None) => ChangeOp::Delete,
            (Some(a), Some(b)) if a != b || settled => ChangeOp::Update,
            _ => continue,
        };
        let key = w.key();
        out.push(KeyChange {
            collection: key.collection.clone(),
            id: key.id.clone(),
            op,
        });
    }
    out
}

#[cfg(not(target_family = "wasm"))]
type ListenerFn = dyn Fn(&ChangeEvent) + Send + Sync;
#[cfg(target_family = "wasm")]
type ListenerFn = dyn Fn(&ChangeEvent);

/// Listeners of change events. Listeners are called in the committing task, after the commit,
/// in the order they subscribed; they should be quick (hand the event to a channel or a
/// queue). A listener may subscribe or unsubscribe others.
#[derive(Default)]
pub struct EventHub {
    listeners: Mutex<Listeners>,
}

#[derive(Default)]
struct Listeners {
    next: u64,
    list: Vec<(u64, Arc<ListenerFn>)>,
}

/// A subscription; dropping it (or calling [`Subscription::cancel`]) unsubscribes.
#[must_use = "dropping a subscription unsubscribes"]
pub struct Subscription {
    hub: Weak<EventHub>,
    id: u64,
}

impl Subscription {
    /// Unsubscribes now.
    pub fn cancel(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.lock().list.retain(|(id, _)| *id != self.id);
        }
    }
}

impl EventHub {
    fn lock(&self) -> MutexGuard<'_, Listeners> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes `listener` to every event of every scope.
    pub fn subscribe(
        self: &Arc<Self>,
        listener: impl Fn(&ChangeEvent) + MaybeSend + MaybeSync + 'static,
    ) -> Subscription {
        let mut l = self.lock();
        l.next += 1;
        let id = l.next;
        l.list.push((id, Arc::new(listener)));
        Subscription {
            hub: Arc::downgrade(self),
            id,
        }
    }

    /// Number of listeners.
    pub fn listeners(&self) -> usize {
        self.lock().list.len()
    }

    /// Calls every listener with `event`.
    pub fn publish(&self, event: &ChangeEvent) {
        let listeners: Vec<Arc<ListenerFn>> =
            self.lock().list.iter().map(|(_, f)| f.clone()).collect();
        for f in listeners {
            f(event);
        }
    }
}

/// A store that publishes a [`ChangeEvent`] after each committed transaction that changes
/// visible records. Every other operation is the inner store's.
pub struct Observed<S> {
    inner: S,
    hub: Arc<EventHub>,
    /// The run under way per scope (between `start_run` and `finish_run`).
    runs: Mutex<HashMap<String, u64>>,
}

impl<S> Observed<S> {
    /// Wraps `store`.
    pub fn new(store: S) -> Self {
        Observed {
            inner: store,
            hub: Arc::default(),
            runs: Mutex::default(),
        }
    }

    /// The hub its events are published on.
    pub fn events(&self) -> &Arc<EventHub> {
        &self.hub
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn runs(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, scope: &ScopeId, seen: Option<(Source, Vec<KeyChange>)>) {
        let Some((source, changes)) = seen.filter(|(_, c)| !c.is_empty()) else {
            return;
        };
        let run = match source {
            Source::Local => None,
            _ => self.runs().get(scope.as_str()).copied(),
        };
        self.hub.publish(&ChangeEvent {
            scope: scope.to_string(),
            source,
            run,
            changes,
        });
    }
}

/// `planner`, noting in `seen` what the changeset it returns changes (published only once the
/// store has committed it).
fn noting<'a>(
    planner: impl Planner + 'a,
    seen: &'a mut Option<(Source, Vec<KeyChange>)>,
) -> impl Planner + 'a {
    move |st: &ScopeState, rows: &[Option<Row>]| {
        let cs = planner(st, rows)?;
        *seen = Some((cs.source, changes_of(&cs)));
        Ok(cs)
    }
}

impl<S: Store> Store for Observed<S> {
    async fn scope_state(&self, scope: &ScopeId) -> Result<ScopeState> {
        self.inner.scope_state(scope).await
    }

    async fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        let mut seen = None;
        let applied = self
            .inner
            .update(scope, keys, with_data, noting(planner, &mut seen))
            .await?;
        self.publish(scope, seen);
        Ok(applied)
    }

    async fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        let mut seen = None;
        let applied = self
            .inner
            .update_stale(scope, generation, noting(planner, &mut seen))
            .await?;
        self.publish(scope, seen);
        Ok(applied)
    }

    async fn row(&self, scope: &ScopeId, key: &Key) -> Result<Option<Row>> {
        self.inner.row(scope, key).await
    }

    async fn list(
        &self,
        scope: &ScopeId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        self.inner.list(scope, collection, after, limit).await
    }

    async fn count(&self, scope: &ScopeId, collection: Option<&str>) -> Result<u64> {
        self.inner.count(scope, collection).await
    }

    async fn pending(
        &self,
        scope: &ScopeId,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        self.inner.pending(scope, after_seq, limit).await
    }

    async fn pending_count(&self, scope: &ScopeId) -> Result<u64> {
        self.inner.pending_count(scope).await
    }

    async fn conflicts(&self, scope: &ScopeId) -> Result<Vec<Conflict>> {
        self.inner.conflicts(scope).await
    }

    async fn dismiss_conflict(&self, scope: &ScopeId, id: u64) -> Result<bool> {
        self.inner.dismiss_conflict(scope, id).await
    }

    async fn start_run(&self, run: &Run) -> Result<u64> {
        let id = self.inner.start_run(run).await?;
        self.runs().insert(run.scope.clone(), id);
        Ok(id)
    }

    async fn finish_run(&self, run: &Run) -> Result<()> {
        self.runs().retain(|_, id| *id != run.id);
        self.inner.finish_run(run).await
    }

    async fn runs(&self, scope: &ScopeId, limit: usize) -> Result<Vec<Run>> {
        self.inner.runs(scope, limit).await
    }

    async fn runs_since(&self, scope: &ScopeId, since: Millis) -> Result<Vec<Run>> {
        self.inner.runs_since(scope, since).await
    }

    async fn range_snapshot(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> Result<Snapshot> {
        self.inner.range_snapshot(scope, range, rehash).await
    }

    async fn range_keys(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Key>> {
        self.inner.range_keys(scope, range, limit).await
    }

    async fn nth_key(&self, scope: &ScopeId, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        self.inner.nth_key(scope, range, offset).await
    }

    async fn scopes(&self) -> Result<Vec<ScopeId>> {
        self.inner.scopes().await
    }

    fn indexes(&self) -> IndexSet {
        self.inner.indexes()
    }

    async fn declare_indexes(&self, indexes: &IndexSet) -> Result<()> {
        self.inner.declare_indexes(indexes).await
    }

    async fn build_indexes(&self, batch: usize) -> Result<bool> {
        self.inner.build_indexes(batch).await
    }

    async fn scan(&self, scope: &ScopeId, scan: &Scan) -> Result<Vec<Hit>> {
        self.inner.scan(scope, scan).await
    }

    async fn scan_count(&self, scope: &ScopeId, scan: &Scan) -> Result<u64> {
        self.inner.scan_count(scope, scan).await
    }
}
