//! The blocking [`Replica`] facade: the engine's async [`Syncer`] and [`ScopeHandle`] driven to
//! completion on the caller's thread. The SQLite store never awaits anything real, so
//! `block_on` never parks; async applications call these methods from a blocking task.
//!
//! The replica keeps an [`EventHub`] beside its store and hands it to every [`Syncer`] and
//! [`ScopeHandle`] it makes, so every write through the replica (a sync, a local edit, a
//! background sync) publishes a [`ChangeEvent`](tether_engine::events::ChangeEvent) after it
//! commits; `live.rs` builds subscriptions and live queries on them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_executor::block_on;
use tether_engine::events::EventHub;
use tether_engine::schedule::Schedule;
use tether_engine::subscription::{Held, Subscription};
use tether_engine::{
    Conflict, IndexSet, Millis, Preview, Query, QueryPage, Record, Remote, Result, Run,
    ScopeHandle, ScopeId, ScopeStatus, Stats, Store, SyncOptions, SyncReport, Syncer, VerifyReport,
};

use crate::SqliteStore;

/// Rows indexed per transaction while an index is built on open: each step is short, so
/// readers and a background sync are never held up for long.
pub const BUILD_BATCH: usize = 1_000;

/// A local replica in one SQLite file, holding any number of independent scopes.
///
/// ```
/// use tether_native::Replica;
/// let dir = tempfile::tempdir().unwrap();
/// let replica = Replica::open(dir.path().join("replica.db")).unwrap();
/// let scope = replica.scope("org-1").unwrap();
/// scope.put("objects", "obj_1", serde_json::json!({"name": "orders"})).unwrap();
/// assert_eq!(scope.count(None).unwrap(), 1);
/// assert_eq!(scope.status().unwrap().pending_edits, 1);
/// assert!(replica.scope("").is_err());
/// ```
pub struct Replica {
    pub(crate) shared: Arc<Shared>,
}

/// What a replica's handles share, live queries' threads included.
pub(crate) struct Shared {
    pub(crate) store: SqliteStore,
    /// Where every write through the replica publishes its change event.
    pub(crate) events: Arc<EventHub>,
    /// Identifies the file in the process-wide table of sync locks.
    lock_key: PathBuf,
}

/// One scope of a [`Replica`]: local reads, queries and edits, sync, status, history and
/// change events.
pub struct ScopeRef<'r> {
    pub(crate) replica: &'r Replica,
    pub(crate) handle: ScopeHandle<'r, SqliteStore>,
}

/// How [`ReplicaBuilder`] opens a replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaOptions {
    /// The indexes to declare (see [`ReplicaBuilder::indexes`]); `None` keeps those the file
    /// declares.
    pub indexes: Option<IndexSet>,
}

/// Opens a [`Replica`] with options: `Replica::builder().indexes(set).open(path)`.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `open` or `open_in_memory`"]
pub struct ReplicaBuilder {
    options: ReplicaOptions,
}

impl ReplicaBuilder {
    /// Declares the replica's indexes: opening drops indexes the file has that are not in
    /// `indexes` (with their entries), records new ones, and builds whatever is not built yet
    /// ([`BUILD_BATCH`] rows per transaction) before it returns. Declaring the set the file
    /// already has costs nothing.
    ///
    /// ```
    /// use tether_engine::IndexSet;
    /// use tether_native::Replica;
    /// let indexes = IndexSet::builder()
    ///     .index("columns", ["object_id", "position"])
    ///     .index("objects", ["name"])
    ///     .build()
    ///     .unwrap();
    /// let replica = Replica::builder().indexes(indexes.clone()).open_in_memory().unwrap();
    /// assert_eq!(replica.indexes(), indexes);
    /// ```
    pub fn indexes(mut self, indexes: IndexSet) -> Self {
        self.options.indexes = Some(indexes);
        self
    }

    /// Opens (creating if needed) the replica file at `path`; see [`Replica::open`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<Replica> {
        let path = path.as_ref();
        let store = SqliteStore::open(path)?;
        // The file exists now; its canonical path makes two `Replica`s of one file share locks.
        let lock_key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Replica::with_store(store, lock_key, self.options)
    }

    /// A replica in memory, gone when dropped; see [`Replica::open_in_memory`].
    pub fn open_in_memory(self) -> Result<Replica> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let lock_key = PathBuf::from(format!(":memory:{n}"));
        Replica::with_store(SqliteStore::open_in_memory()?, lock_key, self.options)
    }
}

impl Replica {
    /// Opens (creating if needed) the replica file at `path`. A file that is not a Tether
    /// replica, or one written by a newer Tether, is an [`Error::InvalidInput`]. The indexes
    /// the file declares are kept (and their builds finished); to declare indexes, open with
    /// [`Replica::builder`].
    ///
    /// [`Error::InvalidInput`]: tether_engine::Error::InvalidInput
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Replica::builder().open(path)
    }

    /// A replica in memory, gone when dropped (tests, throwaway caches).
    pub fn open_in_memory() -> Result<Self> {
        Replica::builder().open_in_memory()
    }

    /// A builder, to open a replica with options (its indexes).
    pub fn builder() -> ReplicaBuilder {
        ReplicaBuilder::default()
    }

    /// Opens with `options`: declares the indexes, if given, then builds to completion.
    pub fn open_with(path: impl AsRef<Path>, options: ReplicaOptions) -> Result<Self> {
        ReplicaBuilder { options }.open(path)
    }

    fn with_store(store: SqliteStore, lock_key: PathBuf, options: ReplicaOptions) -> Result<Self> {
        if let Some(set) = &options.indexes {
            block_on(store.declare_indexes(set))?;
        }
        while !block_on(store.build_indexes(BUILD_BATCH))? {}
        Ok(Replica {
            shared: Arc::new(Shared {
                store,
                events: Arc::default(),
                lock_key,
            }),
        })
    }

    /// The indexes declared, which queries can use.
    pub fn indexes(&self) -> IndexSet {
        self.shared.store.indexes()
    }

    /// The hub every change event of this replica (all scopes) is published on, after each
    /// committed write; [`ScopeRef::subscribe`] and [`ScopeRef::changes`] filter one scope.
    pub fn events(&self) -> &Arc<EventHub> {
        &self.shared.events
    }

    /// Whether this replica lives in memory ([`Replica::open_in_memory`]).
    pub fn is_in_memory(&self) -> bool {
        self.shared
            .lock_key
            .to_string_lossy()
            .starts_with(":memory:")
    }

    /// The replica file's path (canonical), or a `:memory:N` name.
    pub fn path(&self) -> &Path {
        &self.shared.lock_key
    }

    /// A scope by name. The name must be non-empty, at most 256 bytes, without control
    /// characters ([`Error::InvalidInput`](tether_engine::Error::InvalidInput) otherwise).
    pub fn scope(&self, name: &str) -> Result<ScopeRef<'_>> {
        let id = ScopeId::new(name)?;
        Ok(ScopeRef {
            replica: self,
            handle: ScopeHandle::new(&self.shared.store, id).events(&self.shared.events),
        })
    }

    /// Every scope with stored state.
    pub fn scopes(&self) -> Result<Vec<ScopeId>> {
        block_on(self.shared.store.scopes())
    }

    /// The underlying store, for direct use with the engine. Writes made directly through it
    /// publish no change events unless the writer is given [`Replica::events`]
    /// (`Syncer::new(replica.store(), ..).events(replica.events())`).
    pub fn store(&self) -> &SqliteStore {
        &self.shared.store
    }

    fn sync_lock(&self, scope: &ScopeId) -> Arc<Mutex<()>> {
        type Locks = Mutex<HashMap<(PathBuf, ScopeId), Arc<Mutex<()>>>>;
        static LOCKS: OnceLock<Locks> = OnceLock::new();
        let mut locks = LOCKS
            .get_or_init(Default::default)
            .lock()
            // The map is only inserted into; a panic elsewhere cannot leave it half-updated.
            .unwrap_or_else(|p| p.into_inner());
        locks
            .entry((self.shared.lock_key.clone(), scope.clone()))
            .or_default()
            .clone()
    }
}

impl ScopeRef<'_> {
    /// The scope's id.
    pub fn id(&self) -> &ScopeId {
        self.handle.id()
    }

    /// Syncs the scope with `remote`: pushes local edits, pulls pages from the stored checkpoint
    /// (each applied with its checkpoint in one transaction), verifies count and digest, and
    /// records the run. Blocks until done. A second sync of the same scope in this process
    /// waits for the first to finish.
    ///
    /// ```
    /// use tether_engine::{cloud::Cloud, ScopeId};
    /// use tether_native::{Replica, SyncOptions};
    /// let cloud = Cloud::new();
    /// cloud.put(&ScopeId::new("org-1").unwrap(), "objects", "a", serde_json::json!({"n": 1}), 0);
    /// let replica = Replica::open_in_memory().unwrap();
    /// let report = replica.scope("org-1").unwrap().sync(&cloud, SyncOptions::default()).unwrap();
    /// assert_eq!(report.run.counts.inserted, 1);
    /// ```
    pub fn sync<R: Remote>(&self, remote: &R, options: SyncOptions<'_>) -> Result<SyncReport> {
        let lock = self.replica.sync_lock(self.id());
        // Poisoned only if a previous sync panicked; its transaction rolled back, so go on.
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let syncer = Syncer::new(&self.replica.shared.store, remote, &now)
            .events(&self.replica.shared.events);
        let options = SyncOptions {
            offload: options.offload.or(Some(&Threads)),
            client_entropy: options.client_entropy.or_else(client_entropy),
            ..options
        };
        block_on(syncer.sync(self.id(), options))
    }

    /// What a sync would do now, found without writing anything (see [`Syncer::preview`]).
    ///
    /// ```
    /// use tether_engine::{cloud::Cloud, ScopeId};
    /// use tether_native::{Replica, SyncOptions};
    /// let cloud = Cloud::new();
    /// cloud.put(&ScopeId::new("org-1").unwrap(), "objects", "a", serde_json::json!({}), 0);
    /// let replica = Replica::open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// let preview = scope.preview(&cloud, SyncOptions::default()).unwrap();
    /// assert_eq!((preview.counts.inserted, preview.full), (1, true));
    /// assert_eq!(scope.count(None).unwrap(), 0, "nothing written");
    /// ```
    pub fn preview<R: Remote>(&self, remote: &R, options: SyncOptions<'_>) -> Result<Preview> {
        let syncer = Syncer::new(&self.replica.shared.store, remote, &now)
            .events(&self.replica.shared.events);
        block_on(syncer.preview(self.id(), options))
    }

    /// The subscriptions this replica holds of the scope (docs/partial-sync.md), in the order
    /// they were declared; empty when it holds the whole scope.
    pub fn subscriptions(&self) -> Result<Vec<Held>> {
        block_on(self.handle.subscriptions())
    }

    /// Replaces the scope's subscriptions (each with its priority, 0 the highest) and evicts
    /// the records no subscription selects any more (not those with a pending edit); returns
    /// how many left. An empty list makes the replica whole again. Waits for a sync of the
    /// scope in this process to end first. See [`ScopeHandle::set_subscriptions`].
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_engine::{cloud::Cloud, subscription::Subscription, ScopeId};
    /// use tether_native::{Replica, SyncOptions};
    /// let cloud = Cloud::new();
    /// let org = ScopeId::new("org-1").unwrap();
    /// cloud.put(&org, "files", "f1", json!({"repository": "r1"}), 0);
    /// cloud.put(&org, "files", "f2", json!({"repository": "r2"}), 0);
    /// let replica = Replica::open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// let r1 = Subscription::new("files").with_filter("repository", [json!("r1")]);
    /// scope.set_subscriptions(vec![(r1, 0)]).unwrap();
    /// scope.sync(&cloud, SyncOptions::default()).unwrap();
    /// assert!(scope.get("files", "f1").unwrap().is_some());
    /// assert!(scope.get("files", "f2").unwrap().is_none());
    /// assert!(scope.is_ready(0).unwrap());
    /// ```
    ///
    /// [`ScopeHandle::set_subscriptions`]: tether_engine::ScopeHandle::set_subscriptions
    pub fn set_subscriptions(&self, wanted: Vec<(Subscription, u8)>) -> Result<u64> {
        let lock = self.replica.sync_lock(self.id());
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        block_on(self.handle.set_subscriptions(wanted))
    }

    /// Adds a subscription (or changes its priority), keeping the others.
    pub fn add_subscription(&self, sub: Subscription, priority: u8) -> Result<()> {
        let lock = self.replica.sync_lock(self.id());
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        block_on(self.handle.add_subscription(sub, priority))
    }

    /// Removes a subscription, evicting what no other selects; returns how many records left.
    /// Removing the last one makes the replica whole again.
    pub fn remove_subscription(&self, sub: &Subscription) -> Result<u64> {
        let lock = self.replica.sync_lock(self.id());
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        block_on(self.handle.remove_subscription(sub))
    }

    /// Whether every subscription of priority `priority` or higher has been downloaded to the
    /// end once (a whole scope: whether it was synced). Progress events of phase `Ready` say
    /// when, during a sync.
    pub fn is_ready(&self, priority: u8) -> Result<bool> {
        block_on(self.handle.is_ready(priority))
    }

    /// Compares the replica's rows (every record's data hashed again) with the cloud's digest;
    /// with `repair`, fixes differing key ranges in place (cloud wins).
    pub fn verify<R: Remote>(&self, remote: &R, repair: bool) -> Result<VerifyReport> {
        let lock = self.replica.sync_lock(self.id());
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let syncer = Syncer::new(&self.replica.shared.store, remote, &now)
            .events(&self.replica.shared.events);
        block_on(syncer.verify(self.id(), repair))
    }

    /// A visible record (with any pending local edit applied).
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        block_on(self.handle.get(collection, id))
    }

    /// Visible records of a collection, ordered by id (as UTF-8 bytes), after `after`, at most
    /// `limit`. Pass the last id of a page as `after` to get the next one.
    ///
    /// ```
    /// # let replica = tether_native::Replica::open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// for id in ["a", "b", "c"] {
    ///     scope.put("objects", id, serde_json::json!({})).unwrap();
    /// }
    /// let first = scope.list("objects", None, 2).unwrap();
    /// let rest = scope.list("objects", Some(&first[1].id), 2).unwrap();
    /// assert_eq!(rest.len(), 1);
    /// assert_eq!(rest[0].id, "c");
    /// ```
    pub fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Vec<Record>> {
        block_on(self.handle.list(collection, after, limit))
    }

    /// Number of visible records, of one collection or of the whole scope.
    pub fn count(&self, collection: Option<&str>) -> Result<u64> {
        block_on(self.handle.count(collection))
    }

    /// The visible records a query selects on a declared index, in index order, a page at a
    /// time: pass the page's `cursor` as the query's `after` for the next one. A query on an
    /// index not declared (or still building) is an
    /// [`Error::InvalidInput`](tether_engine::Error::InvalidInput) naming it.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_engine::{IndexSet, Query};
    /// use tether_native::Replica;
    /// let indexes = IndexSet::builder().index("columns", ["object_id", "position"]).build().unwrap();
    /// let replica = Replica::builder().indexes(indexes).open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// for (id, pos) in [("c3", 3), ("c1", 1), ("c2", 2)] {
    ///     scope.put("columns", id, json!({"object_id": "obj_1", "position": pos})).unwrap();
    /// }
    /// let q = Query::on("columns", ["object_id", "position"]).eq([json!("obj_1")]).limit(2);
    /// let page = scope.query(&q).unwrap();
    /// let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    /// assert_eq!(ids, ["c1", "c2"]);
    /// let rest = scope.query(&q.clone().after(page.cursor.unwrap())).unwrap();
    /// assert_eq!(rest.records[0].id, "c3");
    /// assert_eq!(scope.query_count(&q).unwrap(), 3);
    /// ```
    pub fn query(&self, query: &Query) -> Result<QueryPage> {
        block_on(self.handle.query(query))
    }

    /// The number of visible records a query selects (its `limit` and `after` ignored).
    pub fn query_count(&self, query: &Query) -> Result<u64> {
        block_on(self.handle.query_count(query))
    }

    /// Creates or replaces a record locally (readers see it at once); the next sync pushes it.
    /// `data` must be a JSON object.
    pub fn put(&self, collection: &str, id: &str, data: serde_json::Value) -> Result<()> {
        block_on(self.handle.put(collection, id, data))
    }

    /// Deletes a record locally; the next sync pushes the delete.
    pub fn delete(&self, collection: &str, id: &str) -> Result<()> {
        block_on(self.handle.delete(collection, id))
    }

    /// Checkpoint, counts, digest, pending edits, open conflicts, last error, and whether a
    /// sync is recommended (never synced, last run failed, edits pending, or last sync older
    /// than the default background interval of 15 minutes).
    pub fn status(&self) -> Result<ScopeStatus> {
        let max_age = i64::try_from(Schedule::default().interval_ms).unwrap_or(i64::MAX);
        block_on(self.handle.status(now(), max_age))
    }

    /// The latest sync runs, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<Run>> {
        block_on(self.handle.history(limit))
    }

    /// Success rate, mean duration and row totals of the runs of the last `days` days.
    pub fn stats(&self, days: u32) -> Result<Stats> {
        block_on(self.handle.stats(now(), days))
    }

    /// Local edits the cloud overwrote, oldest first (dismissed ones left out).
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        block_on(self.handle.conflicts())
    }

    /// Dismisses a conflict; an unknown id is an
    /// [`Error::InvalidInput`](tether_engine::Error::InvalidInput).
    pub fn dismiss_conflict(&self, id: u64) -> Result<()> {
        block_on(self.handle.dismiss_conflict(id))
    }
}

/// 16 bytes from the operating system's CSPRNG for a new client id
/// ([`SyncOptions::client_entropy`]); `None` only if the OS cannot give any, and then the
/// engine derives the id (a warning says so).
pub fn client_entropy() -> Option<[u8; 16]> {
    let mut bytes = [0; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "no random bytes for a client id; deriving one");
            None
        }
    }
}

/// Wall-clock time in milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
    })
}

/// The native [`Offload`](tether_engine::sync::Offload): each job (validating and hashing the
/// next page while this one is written) on a thread of its own, inline if none can be started.
/// [`ScopeRef::sync`] uses it by itself; pass it when driving a `Syncer` directly.
///
/// ```
/// use tether_engine::{cloud::Cloud, ScopeId, SyncOptions, Syncer};
/// use tether_native::{SqliteStore, Threads};
/// let store = SqliteStore::open_in_memory().unwrap();
/// let (cloud, scope) = (Cloud::new(), ScopeId::new("org-1").unwrap());
/// cloud.put(&scope, "objects", "a", serde_json::json!({"n": 1}), 0);
/// let opts = SyncOptions { offload: Some(&Threads), ..SyncOptions::default() };
/// let clock = || 1_700_000_000_000;
/// let report = futures_executor::block_on(Syncer::new(&store, &cloud, &clock).sync(&scope, opts));
/// assert_eq!(report.unwrap().snapshot.count, 1);
/// ```
pub struct Threads;

impl tether_engine::sync::Offload for Threads {
    fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
        // A job is one page's validation (milliseconds), so a thread per job costs little
        // beside it and leaves nothing running between syncs.
        type Job = Box<dyn FnOnce() + Send>;
        let job: Arc<Mutex<Option<Job>>> = Arc::new(Mutex::new(Some(job)));
        let take = |j: &Mutex<Option<Job>>| j.lock().unwrap_or_else(|e| e.into_inner()).take();
        let theirs = job.clone();
        let spawned = std::thread::Builder::new()
            .name("tether-validate".into())
            .spawn(move || {
                if let Some(job) = take(&theirs) {
                    job()
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("no thread for page validation ({e}); validating inline");
            if let Some(job) = take(&job) {
                job()
            }
        }
    }
}
