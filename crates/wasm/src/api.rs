//! The `#[wasm_bindgen]` classes behind the npm package (`js/` wraps them in idiomatic
//! TypeScript). Every method takes `&self` and returns a `Promise` from a future that owns an
//! `Rc` of the shared state, so overlapping calls from JS never hold a wasm-bindgen borrow
//! across an await (no "recursive use of an object" panic) and freeing an object while one of
//! its calls runs is safe.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Function, Promise};
use tether_engine::events::{EventHub, Subscription};
use tether_engine::query::{IndexRef, Order, Values};
use tether_engine::schedule::{Next, Outcome, Schedule, DEFAULT_INTERVAL_MS};
use tether_engine::subscription::Subscription as Wanted;
use tether_engine::sync::ProgressSink;
use tether_engine::{
    CancelFlag, Error, ErrorKind, IndexSet, MemoryStore, Progress, Query, Result, ScopeHandle,
    ScopeId, Store, SyncOptions, Syncer, Trigger,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::AbortSignal;

use crate::any_remote::AnyRemote;
use crate::any_store::AnyStore;
use crate::js::{client_entropy, json_of, now, prop, to_js, to_js_error};
#[cfg(feature = "node-sqlite")]
use crate::node_sqlite::{DatabaseSync, NodeSqlite};
use crate::shapes::{self, JsNext, JsSchedule, JsStatus, JsSyncReport, JsVerifyReport};
use crate::IdbStore;

/// Records indexed per transaction while opening builds new indexes: small enough that one
/// IndexedDB transaction stays short, large enough that a build takes few of them.
const INDEX_BUILD_BATCH: usize = 1000;

struct ReplicaState {
    name: String,
    store: AnyStore,
    /// Every writer made here (scope handles, syncers) publishes on it, so local edits, syncs,
    /// sweeps and repairs all publish change events after they commit.
    events: Arc<EventHub>,
}

/// A replica: one local database holding any number of scopes.
#[wasm_bindgen(js_name = WasmReplica)]
pub struct WasmReplica {
    state: Rc<ReplicaState>,
}

/// One scope of a replica.
#[wasm_bindgen(js_name = WasmScope)]
pub struct WasmScope {
    state: Rc<ReplicaState>,
    scope: ScopeId,
}

impl WasmReplica {
    fn with_store(name: String, store: AnyStore) -> WasmReplica {
        WasmReplica {
            state: Rc::new(ReplicaState {
                name,
                store,
                events: Arc::default(),
            }),
        }
    }
}

#[wasm_bindgen(js_class = WasmReplica)]
impl WasmReplica {
    /// Opens (creating if needed) the IndexedDB replica `name`.
    pub async fn open(name: String) -> std::result::Result<WasmReplica, JsValue> {
        let store = IdbStore::open(&name).await.map_err(|e| to_js_error(&e))?;
        Ok(WasmReplica::with_store(name, AnyStore::Idb(store)))
    }

    /// Opens the replica file `db` (a `node:sqlite` `DatabaseSync` the caller opened), checking
    /// and migrating it as the native replica does; `name` is its path, for messages. The
    /// database is closed again if it is not a usable replica. `identity` is the file's
    /// device and inode (`"dev:ino"`, from `fs.statSync`), which tells a copied file from the
    /// original (see `SqlStore::note_file_identity`); `undefined` skips the check. Only in the
    /// `node-sqlite` build.
    #[cfg(feature = "node-sqlite")]
    #[wasm_bindgen(js_name = openSqlite)]
    pub fn open_sqlite(
        name: String,
        db: JsValue,
        identity: Option<String>,
    ) -> std::result::Result<WasmReplica, JsValue> {
        let what = format!("replica file {name}");
        let store = NodeSqlite::open_store(db.unchecked_into::<DatabaseSync>(), &what)
            .map_err(|e| to_js_error(&e))?;
        if let Some(identity) = identity {
            let copied = store
                .note_file_identity(&identity)
                .map_err(|e| to_js_error(&e))?;
            if copied {
                crate::node_sqlite::warn(&format!(
                    "tether: {what} is a copy (or a restored backup): its scopes take new \
                     client ids at their next push"
                ));
            }
        }
        Ok(WasmReplica::with_store(name, AnyStore::Sqlite(store)))
    }

    /// An in-memory replica, optionally restored from `exportSnapshot()`'s JSON.
    #[wasm_bindgen(js_name = openInMemory)]
    pub fn open_in_memory(
        name: String,
        snapshot: Option<String>,
    ) -> std::result::Result<WasmReplica, JsValue> {
        let store = match snapshot {
            Some(json) => MemoryStore::import(&json).map_err(|e| to_js_error(&e))?,
            None => MemoryStore::new(),
        };
        Ok(WasmReplica::with_store(name, AnyStore::Memory(store)))
    }

    /// Declares the replica's indexes (the JS declaration form, `{collection: [path | [paths]
    /// | {name, paths}]}`) and builds the new ones, a batch per transaction, before resolving.
    /// Indexes no longer declared are dropped; `undefined` or `null` keeps the declared set
    /// (and finishes a build left unfinished).
    #[wasm_bindgen(js_name = declareIndexes)]
    pub fn declare_indexes(&self, declaration: JsValue) -> Promise {
        let indexes = index_set_of(&declaration);
        let state = self.state.clone();
        promise(async move {
            if let Some(indexes) = indexes? {
                state.store.declare_indexes(&indexes).await?;
            }
            // Also finishes a build an earlier open left unfinished.
            while !state.store.build_indexes(INDEX_BUILD_BATCH).await? {}
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Calls `listener` with each change event (`{scope, source, run, changes: [{collection,
    /// id, op}]}`, a plain object) after the transaction that made it commits, until the
    /// returned subscription is cancelled. The call happens inside the committing operation:
    /// the listener should only queue the event (the JS layer dispatches it on a microtask).
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, listener: Function) -> WasmSubscription {
        let sub = self.state.events.subscribe(move |event| {
            // Its keys (scope, source, run, changes, collection, id, op) are one word each.
            if let Ok(v) = to_js(event) {
                // A throwing listener must not fail the write that has committed already.
                let _ = listener.call1(&JsValue::NULL, &v);
            }
        });
        WasmSubscription {
            inner: RefCell::new(Some(sub)),
        }
    }

    /// The replica's name (the IndexedDB database name).
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.state.name.clone()
    }

    /// `"indexeddb"`, `"sqlite"` or `"memory"`.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        match &self.state.store {
            AnyStore::Idb(_) => "indexeddb".into(),
            #[cfg(feature = "node-sqlite")]
            AnyStore::Sqlite(_) => "sqlite".into(),
            AnyStore::Memory(_) => "memory".into(),
        }
    }

    /// The whole in-memory replica as JSON (for a host to persist).
    #[wasm_bindgen(js_name = exportSnapshot)]
    pub fn export_snapshot(&self) -> std::result::Result<String, JsValue> {
        match &self.state.store {
            AnyStore::Memory(m) => Ok(m.export()),
            #[cfg(feature = "node-sqlite")]
            AnyStore::Sqlite(_) => Err(persisting()),
            AnyStore::Idb(_) => Err(persisting()),
        }
    }

    /// A handle on one scope.
    pub fn scope(&self, id: String) -> std::result::Result<WasmScope, JsValue> {
        Ok(WasmScope {
            state: self.state.clone(),
            scope: ScopeId::new(id).map_err(|e| to_js_error(&e))?,
        })
    }

    /// Names of the scopes with stored state.
    pub fn scopes(&self) -> Promise {
        let state = self.state.clone();
        promise(async move {
            let names: Vec<String> = state
                .store
                .scopes()
                .await?
                .into_iter()
                .map(String::from)
                .collect();
            to_js(&names)
        })
    }

    /// Closes the database connection. IndexedDB: the next call reopens it; SQLite: the file
    /// is closed for good, later calls fail with a `StorageError`.
    pub fn close(&self) {
        match &self.state.store {
            AnyStore::Idb(s) => s.close(),
            #[cfg(feature = "node-sqlite")]
            AnyStore::Sqlite(s) => s.with_connection(NodeSqlite::close),
            AnyStore::Memory(_) => {}
        }
    }
}

/// A subscription to a replica's change events ([`WasmReplica::on_change`]).
#[wasm_bindgen(js_name = WasmSubscription)]
pub struct WasmSubscription {
    inner: RefCell<Option<Subscription>>,
}

#[wasm_bindgen(js_class = WasmSubscription)]
impl WasmSubscription {
    /// Stops the events; calling it again does nothing.
    pub fn cancel(&self) {
        self.inner.borrow_mut().take();
    }
}

/// A promise of `$body`, run with `$h` a [`ScopeHandle`] on a clone of the shared state.
macro_rules! scoped {
    ($self:ident, |$h:ident| $body:expr) => {{
        let state = $self.state.clone();
        let scope = $self.scope.clone();
        promise(async move {
            let $h = ScopeHandle::new(&state.store, scope).events(&state.events);
            $body
        })
    }};
}

#[wasm_bindgen(js_class = WasmScope)]
impl WasmScope {
    /// The scope's id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.scope.to_string()
    }

    /// A record, or `null`, as JSON text for `JSON.parse` (its data the stored text).
    pub fn get(&self, collection: String, id: String) -> Promise {
        scoped!(self, |h| {
            let row = h.row(&collection, &id).await?;
            Ok(shapes::record_text(row.as_ref())?.into())
        })
    }

    /// Records of a collection ordered by id: `{after, limit}` (limit defaults to 1000), as
    /// the JSON text of a list for `JSON.parse`.
    pub fn list(&self, collection: String, options: JsValue) -> Promise {
        let after = prop(&options, "after").and_then(|a| a.as_string());
        let limit = number(&options, "limit").map_or(1000, |n| n as usize);
        scoped!(self, |h| {
            let rows = h.list_rows(&collection, after.as_deref(), limit).await?;
            Ok(shapes::records_text(&rows)?.into())
        })
    }

    /// Visible records of one collection, or of the scope when `collection` is omitted.
    pub fn count(&self, collection: Option<String>) -> Promise {
        scoped!(self, |h| to_js(&h.count(collection.as_deref()).await?))
    }

    /// One page of the records a query selects, as the JSON text of `{records, cursor}` for
    /// `JSON.parse`: `query` is the engine's JSON form (`{index, eq, gt, gte, lt, lte, prefix,
    /// in, order, limit, after}`) without its collection, which comes first.
    pub fn query(&self, collection: String, query: JsValue) -> Promise {
        let query = query_of(collection, &query);
        scoped!(self, |h| {
            let (rows, cursor) = h.query_rows(&query?).await?;
            Ok(shapes::query_text(&rows, cursor.as_deref())?.into())
        })
    }

    /// The number of records a query selects, its `limit` and `after` ignored.
    #[wasm_bindgen(js_name = queryCount)]
    pub fn query_count(&self, collection: String, query: JsValue) -> Promise {
        let query = query_of(collection, &query);
        scoped!(self, |h| to_js(&h.query_count(&query?).await?))
    }

    /// Creates or replaces a record locally (pushed by the next sync).
    pub fn put(&self, collection: String, id: String, data: JsValue) -> Promise {
        let data = json_of(&data, "record data").and_then(|t| {
            serde_json::from_slice::<serde_json::Value>(t.as_bytes())
                .map_err(|e| Error::invalid(format!("record data: {e}")))
        });
        scoped!(self, |h| {
            h.put(&collection, &id, data?).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes a record locally (pushed by the next sync).
    pub fn delete(&self, collection: String, id: String) -> Promise {
        scoped!(self, |h| {
            h.delete(&collection, &id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Status: `{maxAgeMs}` is the age after which a sync is recommended.
    pub fn status(&self, options: JsValue) -> Promise {
        let max_age = number(&options, "maxAgeMs").map_or(DEFAULT_INTERVAL_MS as i64, |n| n as i64);
        scoped!(self, |h| to_js(&JsStatus::from(
            &h.status(now(), max_age).await?
        )))
    }

    /// Latest runs, newest first: `{limit}` (default 20).
    pub fn history(&self, options: JsValue) -> Promise {
        let limit = number(&options, "limit").map_or(20, |n| n as usize);
        scoped!(self, |h| to_js(&shapes::runs(&h.history(limit).await?)))
    }

    /// Aggregates over the runs of the last `{days}` (default 7).
    pub fn stats(&self, options: JsValue) -> Promise {
        let days = number(&options, "days").map_or(7, |n| n as u32);
        scoped!(self, |h| to_js(&shapes::JsStats::from(
            &h.stats(now(), days).await?
        )))
    }

    /// Open conflicts, oldest first.
    pub fn conflicts(&self) -> Promise {
        scoped!(self, |h| to_js(&shapes::conflicts(&h.conflicts().await?)))
    }

    /// Dismisses a conflict by id.
    #[wasm_bindgen(js_name = dismissConflict)]
    pub fn dismiss_conflict(&self, id: f64) -> Promise {
        scoped!(self, |h| {
            if !(id >= 0.0 && id.fract() == 0.0) {
                return Err(Error::invalid(format!(
                    "conflict id must be a whole number, got {id}"
                )));
            }
            h.dismiss_conflict(id as u64).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Replaces the scope's subscriptions (docs/partial-sync.md) with `list`, an array of
    /// `{collection, where?, priority?}` (an empty one makes the replica whole); resolves to the
    /// number of records evicted. The caller (the JS layer) holds the scope's lock.
    #[wasm_bindgen(js_name = setSubscriptions)]
    pub fn set_subscriptions(&self, list: JsValue) -> Promise {
        let wanted = subscription_list(&list);
        scoped!(self, |h| to_js(&h.set_subscriptions(wanted?).await?))
    }

    /// Adds a subscription `{collection, where?, priority?}`, or changes its priority.
    #[wasm_bindgen(js_name = addSubscription)]
    pub fn add_subscription(&self, sub: JsValue) -> Promise {
        let sub = subscription_arg(&sub);
        scoped!(self, |h| {
            let (sub, priority) = sub?;
            h.add_subscription(sub, priority).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Removes a subscription (its priority, if given, is ignored); resolves to the number of
    /// records evicted.
    #[wasm_bindgen(js_name = removeSubscription)]
    pub fn remove_subscription(&self, sub: JsValue) -> Promise {
        let sub = subscription_arg(&sub);
        scoped!(self, |h| to_js(&h.remove_subscription(&sub?.0).await?))
    }

    /// The held subscriptions, `[{collection, where, priority, complete}]`, in declared order.
    pub fn subscriptions(&self) -> Promise {
        scoped!(self, |h| to_js(&shapes::held(&h.subscriptions().await?)))
    }

    /// Whether every subscription of `priority` or higher (a lower number) is complete; a whole
    /// scope, whether it has been synced.
    #[wasm_bindgen(js_name = isReady)]
    pub fn is_ready(&self, priority: JsValue) -> Promise {
        let priority = priority_of(&priority);
        scoped!(self, |h| to_js(&h.is_ready(priority?).await?))
    }

    /// One sync run: `{remote, onProgress, signal, trigger, pageSize, pushBatch, full, live}`.
    /// The caller (the JS layer) holds the scope's Web Lock.
    pub fn sync(&self, options: JsValue) -> Promise {
        let state = self.state.clone();
        let scope = self.scope.clone();
        promise(async move { sync(&state, &scope, &options).await })
    }

    /// What a sync would do (`{remote, full, pageSize}`), nothing written.
    pub fn preview(&self, options: JsValue) -> Promise {
        let state = self.state.clone();
        let scope = self.scope.clone();
        promise(async move {
            let signal = signal_of(&options);
            let remote =
                prop(&options, "remote").ok_or_else(|| Error::invalid("preview needs a remote"))?;
            let remote = AnyRemote::from_js(&remote, signal)?;
            let defaults = SyncOptions::default();
            let opts = SyncOptions {
                page_size: number(&options, "pageSize").map_or(defaults.page_size, |n| n as u32),
                full: prop(&options, "full").is_some_and(|f| f.is_truthy()),
                ..defaults
            };
            let preview = Syncer::new(&state.store, &remote, &now)
                .preview(&scope, opts)
                .await?;
            to_js(&preview)
        })
    }

    /// Compares the replica with the cloud (`{remote, repair}`), repairing ranges on request.
    pub fn verify(&self, options: JsValue) -> Promise {
        let state = self.state.clone();
        let scope = self.scope.clone();
        promise(async move {
            let repair = prop(&options, "repair").is_some_and(|r| r.is_truthy());
            let signal = signal_of(&options);
            let remote =
                prop(&options, "remote").ok_or_else(|| Error::invalid("verify needs a remote"))?;
            let remote = AnyRemote::from_js(&remote, signal)?;
            let report = Syncer::new(&state.store, &remote, &now)
                .events(&state.events)
                .verify(&scope, repair)
                .await?;
            to_js(&JsVerifyReport::from(&report))
        })
    }
}

/// The engine's decision after one background sync ([`Schedule::after`]), so that the JS
/// driver stops, backs off and waits as the native one does: `code` is the error code of the
/// sync's failure, `null` or `undefined` after a success (a code that names no error kind is
/// an app callback's error after a successful sync); `failures` what the previous decision
/// said (0 at first); `retryAfterMs` the error's; `sample` a random number in `[0, 1)`.
/// Returns `{stop, waitMs, failures}`.
#[wasm_bindgen(js_name = backgroundNext)]
pub fn background_next(
    interval_ms: f64,
    jitter: f64,
    failures: u32,
    code: Option<String>,
    retry_after_ms: Option<f64>,
    sample: f64,
) -> std::result::Result<JsValue, JsValue> {
    let schedule = Schedule {
        interval_ms: interval_ms.max(0.0) as u64,
        jitter,
        ..Schedule::default()
    };
    let kind = code
        .as_deref()
        .and_then(|c| ErrorKind::ALL.into_iter().find(|k| k.as_str() == c));
    let outcome = match kind {
        Some(kind) => Outcome::Failed {
            kind,
            retry_after_ms: retry_after_ms.map(|m| m.max(0.0) as u64),
        },
        None => Outcome::Synced,
    };
    let next = match schedule.after(outcome, failures, sample) {
        Next::Stop(_) => JsNext {
            stop: true,
            wait_ms: 0,
            failures: 0,
        },
        Next::Wait { ms, failures } => JsNext {
            stop: false,
            wait_ms: ms,
            failures,
        },
    };
    to_js(&next).map_err(|e| to_js_error(&e))
}

/// The engine's background-sync defaults, `{intervalMs, jitter}` (every 15 minutes, ±10 %):
/// the JS driver's, and the age after which `status()` recommends a sync.
#[wasm_bindgen(js_name = defaultSchedule)]
pub fn default_schedule() -> std::result::Result<JsValue, JsValue> {
    to_js(&JsSchedule::from(&Schedule::default())).map_err(|e| to_js_error(&e))
}

/// Backoff delay before a live session reconnects (engine's [`Schedule`]): `failures`
/// consecutive retryable failures, the server's `Retry-After`, a random `sample`.
#[wasm_bindgen(js_name = nextSyncDelay)]
pub fn next_sync_delay(
    interval_ms: f64,
    jitter: f64,
    failures: u32,
    retry_after_ms: Option<f64>,
    sample: f64,
) -> f64 {
    let schedule = Schedule {
        interval_ms: interval_ms.max(0.0) as u64,
        jitter,
        ..Schedule::default()
    };
    schedule.next_delay(failures, retry_after_ms.map(|m| m.max(0.0) as u64), sample) as f64
}

/// Progress events to a JS callback.
struct JsProgress(Function);

impl ProgressSink for JsProgress {
    fn progress(&self, event: &Progress) {
        if let Ok(v) = to_js(event) {
            // A throwing progress callback must not break the sync.
            let _ = self.0.call1(&JsValue::NULL, &v);
        }
    }
}

async fn sync(state: &ReplicaState, scope: &ScopeId, options: &JsValue) -> Result<JsValue> {
    let remote = prop(options, "remote").ok_or_else(|| Error::invalid("sync needs a remote"))?;
    let signal = signal_of(options);
    let cancel = CancelFlag::new();
    if signal.as_ref().is_some_and(AbortSignal::aborted) {
        return Err(Error::Cancelled);
    }
    let flag = cancel.clone();
    let on_abort = Closure::<dyn FnMut()>::new(move || flag.cancel());
    if let Some(s) = &signal {
        let _ = s.add_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    }
    let trigger = match prop(options, "trigger")
        .and_then(|t| t.as_string())
        .as_deref()
    {
        None | Some("manual") => Trigger::Manual,
        Some("background") => Trigger::Background,
        Some("startup") => Trigger::Startup,
        Some("live") => Trigger::Live,
        Some(t) => return Err(Error::invalid(format!("unknown trigger {t:?}"))),
    };
    // `live: true` waits 25 s per long-poll; a number of seconds sets it.
    let live_wait_s = match prop(options, "live") {
        Some(v) if v.as_bool() == Some(true) => 25,
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map_or(0, |n| n.min(60.0) as u32),
        None => 0,
    };
    let trigger = if live_wait_s > 0 && trigger == Trigger::Manual {
        Trigger::Live
    } else {
        trigger
    };
    let progress = prop(options, "onProgress")
        .and_then(|f| f.dyn_into::<Function>().ok())
        .map(JsProgress);
    let defaults = SyncOptions::default();
    let opts = SyncOptions {
        trigger,
        page_size: number(options, "pageSize").map_or(defaults.page_size, |n| n as u32),
        push_batch: number(options, "pushBatch").map_or(defaults.push_batch, |n| n as usize),
        push_bytes: number(options, "pushBytes").map_or(defaults.push_bytes, |n| n as usize),
        full: prop(options, "full").is_some_and(|f| f.is_truthy()),
        live_wait_s,
        progress: progress.as_ref().map(|p| p as &dyn ProgressSink),
        cancel: Some(&cancel),
        // No threads here: the next page is fetched and validated while IndexedDB (which runs
        // off this thread) writes the current one.
        offload: None,
        client_entropy: client_entropy(),
    };
    let report = match AnyRemote::from_js(&remote, signal.clone()) {
        Ok(r) => {
            Syncer::new(&state.store, &r, &now)
                .events(&state.events)
                .sync(scope, opts)
                .await
        }
        Err(e) => Err(e),
    };
    if let Some(s) = &signal {
        let _ = s.remove_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    }
    to_js(&JsSyncReport::from(&report?))
}

/// The index set of a JS declaration; none for `undefined` or `null`.
/// The declared set, or `None` when the app declares nothing (the replica keeps its set).
fn index_set_of(declaration: &JsValue) -> Result<Option<IndexSet>> {
    if declaration.is_undefined() || declaration.is_null() {
        return Ok(None);
    }
    let text = json_of(declaration, "indexes")?;
    let value = serde_json::from_slice(text.as_bytes())
        .map_err(|e| Error::invalid(format!("indexes: {e}")))?;
    IndexSet::from_declaration(&value).map(Some)
}

/// The engine's query from the JS collection and query object (the fields of the engine's
/// JSON form but `collection`). Read by hand rather than through `Query`'s serde derive:
/// its untagged enums cost several kilobytes of wasm, and the messages here name the field.
fn query_of(collection: String, query: &JsValue) -> Result<Query> {
    const FIELDS: &str = "index, eq, gt, gte, lt, lte, prefix, in, order, limit, after";
    let shape = || Error::invalid(format!("a query is an object of {{{FIELDS}}}"));
    if !query.is_object() {
        return Err(shape());
    }
    let text = json_of(query, "the query")?;
    let serde_json::Value::Object(fields) =
        serde_json::from_slice(text.as_bytes()).map_err(|_| shape())?
    else {
        return Err(shape());
    };
    let bad = |field: &str, want: &str, got: &serde_json::Value| {
        Error::invalid(format!(
            "the query on {collection:?}: {field} must be {want}, got {got}"
        ))
    };
    let mut q = Query::named(collection.clone(), "");
    let mut index = None;
    for (field, value) in fields {
        // JSON.stringify writes `null` for NaN and Infinity; a null option is no option.
        if value.is_null() && !matches!(field.as_str(), "eq" | "gt" | "gte" | "lt" | "lte") {
            continue;
        }
        match field.as_str() {
            "index" => {
                index = Some(match &value {
                    serde_json::Value::String(s) => IndexRef::Name(s.clone()),
                    serde_json::Value::Array(paths) => IndexRef::Paths(
                        paths
                            .iter()
                            .map(|p| p.as_str().map(str::to_owned))
                            .collect::<Option<_>>()
                            .ok_or_else(|| bad("index", "a name or a list of paths", &value))?,
                    ),
                    _ => return Err(bad("index", "a name or a list of paths", &value)),
                })
            }
            "eq" => {
                q.eq = Some(match value {
                    serde_json::Value::Array(v) => Values::Many(v),
                    v => Values::One(v),
                })
            }
            "gt" => q.gt = Some(value),
            "gte" => q.gte = Some(value),
            "lt" => q.lt = Some(value),
            "lte" => q.lte = Some(value),
            "prefix" => match value {
                serde_json::Value::String(p) => q.prefix = Some(p),
                v => return Err(bad("prefix", "a string", &v)),
            },
            "in" => match value {
                serde_json::Value::Array(v) => q.any_of = Some(v),
                v => return Err(bad("in", "a list of values", &v)),
            },
            "order" => {
                q.order = match value.as_str() {
                    Some("asc") => Order::Asc,
                    Some("desc") => Order::Desc,
                    _ => return Err(bad("order", "\"asc\" or \"desc\"", &value)),
                }
            }
            "limit" => {
                q.limit = Some(
                    value
                        .as_u64()
                        .map(|n| n as usize)
                        .ok_or_else(|| bad("limit", "a whole number", &value))?,
                )
            }
            "after" => match value {
                serde_json::Value::String(c) => q.after = Some(c),
                v => return Err(bad("after", "a cursor string", &v)),
            },
            // The collection is the first argument; the same one in the query is harmless.
            "collection" if value.as_str() == Some(collection.as_str()) => {}
            "collection" => {
                return Err(bad(
                    "collection",
                    "left out (it is the first argument)",
                    &value,
                ))
            }
            other => {
                return Err(Error::invalid(format!(
                "the query on {collection:?} has an unknown field {other:?}; a query has {FIELDS}"
            )))
            }
        }
    }
    q.index = index.ok_or_else(|| {
        Error::invalid(format!(
            "the query on {collection:?} names no index: add index: 'name' (or its paths)"
        ))
    })?;
    Ok(q)
}

/// The subscriptions of `setSubscriptions`: an array of `{collection, where?, priority?}`.
fn subscription_list(list: &JsValue) -> Result<Vec<(Wanted, u8)>> {
    const SHAPE: &str = "setSubscriptions takes an array of {collection, where?, priority?}";
    if !js_sys::Array::is_array(list) {
        return Err(Error::invalid(SHAPE));
    }
    let text = json_of(list, "the subscriptions")?;
    let values: Vec<serde_json::Value> = serde_json::from_slice(text.as_bytes())
        .map_err(|e| Error::invalid(format!("{SHAPE}: {e}")))?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| shapes::subscription_of(v).map_err(|e| at_index(e, i)))
        .collect()
}

/// `e`, an `InvalidInput` about the `i`th subscription, saying which one it is.
fn at_index(mut e: Error, i: usize) -> Error {
    if let Error::InvalidInput { message, .. } = &mut e {
        *message = format!("subscriptions[{i}]: {message}");
    }
    e
}

/// One subscription `{collection, where?, priority?}` and its priority.
fn subscription_arg(sub: &JsValue) -> Result<(Wanted, u8)> {
    let text = json_of(sub, "a subscription")?;
    let value = serde_json::from_slice(text.as_bytes())
        .map_err(|e| Error::invalid(format!("a subscription: {e}")))?;
    shapes::subscription_of(value)
}

/// A priority argument: a whole number from 0 (the highest) to 255; left out, 0.
fn priority_of(priority: &JsValue) -> Result<u8> {
    if priority.is_undefined() || priority.is_null() {
        return Ok(0);
    }
    priority
        .as_f64()
        .filter(|p| p.fract() == 0.0 && (0.0..=f64::from(u8::MAX)).contains(p))
        .map(|p| p as u8)
        .ok_or_else(|| {
            Error::invalid(format!(
                "a priority is a whole number from 0 (the highest) to {}, got {priority:?}",
                u8::MAX
            ))
        })
}

fn signal_of(options: &JsValue) -> Option<AbortSignal> {
    prop(options, "signal").and_then(|s| s.dyn_into::<AbortSignal>().ok())
}

fn number(options: &JsValue, name: &str) -> Option<f64> {
    prop(options, name)
        .and_then(|n| n.as_f64())
        .filter(|n| n.is_finite() && *n >= 0.0)
}

fn promise<F>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    boxed_promise(Box::pin(f))
}

/// [`promise`] on a boxed future: `future_to_promise` and its task are compiled once for every
/// method rather than once per method's future, which keeps kilobytes out of the wasm.
fn boxed_promise(f: Pin<Box<dyn Future<Output = Result<JsValue>>>>) -> Promise {
    future_to_promise(async move { f.await.map_err(|e| to_js_error(&e)) })
}

/// `exportSnapshot`'s error on a replica that persists by itself.
fn persisting() -> JsValue {
    to_js_error(&Error::invalid(
        "exportSnapshot is for in-memory replicas; IndexedDB and SQLite replicas persist by \
         themselves",
    ))
}
