//! Change events and live queries of one scope: [`ScopeRef::subscribe`] (a callback),
//! [`ScopeRef::changes`] (a channel) and [`ScopeRef::watch`] (a query kept up to date on its own
//! thread).
//!
//! Events come from the replica's [`EventHub`](tether_engine::events::EventHub), on which its
//! syncers and scope handles publish after each commit, so neither a listener nor a live query
//! ever sees a transaction half applied or rolled back. A live query re-runs when an event
//! touches its collection and calls back only when the result changed: other ids, other data
//! (hash) or another pending state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};

use futures_executor::block_on;
use tether_engine::digest::RecordHash;
use tether_engine::events::{ChangeEvent, Subscription};
use tether_engine::{Error, Query, QueryPage, Result, ScopeHandle, ScopeId};

use crate::replica::{ScopeRef, Shared};

/// The change events of one scope, as a channel; dropping it unsubscribes. It dereferences to
/// the [`Receiver`], so `recv`, `try_recv`, `recv_timeout` and `iter` work on it.
pub struct Changes {
    rx: Receiver<ChangeEvent>,
    _subscription: Subscription,
}

impl std::ops::Deref for Changes {
    type Target = Receiver<ChangeEvent>;
    fn deref(&self) -> &Receiver<ChangeEvent> {
        &self.rx
    }
}

/// A live query ([`ScopeRef::watch`]); dropping it, or [`Watch::stop`], stops it.
#[must_use = "dropping a Watch stops it"]
pub struct Watch {
    subscription: Option<Subscription>,
    stopped: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<Error>>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Watch {
    /// Stops: no callback runs after this returns (one in progress is waited for, unless
    /// `stop` is called from the callback itself).
    pub fn stop(mut self) {
        self.halt();
    }

    /// The error of the last re-query, if it failed (the watch goes on, and tries again on
    /// the next change).
    pub fn last_error(&self) -> Option<Error> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn halt(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Dropping the subscription drops the sender: the thread's wait ends.
        self.subscription.take();
        if let Some(t) = self.thread.take() {
            if std::thread::current().id() != self.thread_id {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.halt();
    }
}

impl ScopeRef<'_> {
    /// Calls `listener` after each committed write that changes visible records of this scope
    /// (local edits, sync pages, push answers, sweeps, repairs; background syncs included), on
    /// the committing thread: keep it quick. Dropping the [`Subscription`] unsubscribes.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tether_engine::events::{ChangeOp, Source};
    /// use tether_native::Replica;
    /// let replica = Replica::open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// let _sub = scope.subscribe(move |e| sink.lock().unwrap().push(e.clone()));
    /// scope.put("objects", "obj_1", serde_json::json!({"name": "orders"})).unwrap();
    /// replica.scope("org-2").unwrap().put("objects", "x", serde_json::json!({})).unwrap();
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen.len(), 1, "only this scope's events");
    /// assert_eq!((seen[0].source, seen[0].changes[0].op), (Source::Local, ChangeOp::Insert));
    /// ```
    pub fn subscribe(
        &self,
        listener: impl Fn(&ChangeEvent) + Send + Sync + 'static,
    ) -> Subscription {
        let scope = self.id().to_string();
        self.replica.events().subscribe(move |e| {
            if e.scope == scope {
                listener(e);
            }
        })
    }

    /// This scope's change events as a channel (see [`ScopeRef::subscribe`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tether_native::Replica;
    /// let replica = Replica::open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// let changes = scope.changes();
    /// scope.put("objects", "obj_1", serde_json::json!({})).unwrap();
    /// let event = changes.recv_timeout(Duration::from_secs(5)).unwrap();
    /// assert_eq!(event.changes[0].id, "obj_1");
    /// ```
    pub fn changes(&self) -> Changes {
        let (tx, rx) = mpsc::channel();
        let subscription = self.subscribe(move |e| {
            // A receiver dropped first only means nobody listens any more.
            let _ = tx.send(e.clone());
        });
        Changes {
            rx,
            _subscription: subscription,
        }
    }

    /// A live query: calls `callback` on its own thread with the query's first page, then
    /// again each time a committed change to the query's collection in this scope changes the
    /// page (its ids, their data, or their pending state). Changes that arrive while the query
    /// runs are coalesced into one re-query. Stopped by dropping the [`Watch`] or
    /// [`Watch::stop`]. A query the replica cannot run (no such index) is refused here.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use serde_json::json;
    /// use tether_engine::{IndexSet, Query};
    /// use tether_native::Replica;
    /// let indexes = IndexSet::builder().index("objects", ["name"]).build().unwrap();
    /// let replica = Replica::builder().indexes(indexes).open_in_memory().unwrap();
    /// let scope = replica.scope("org-1").unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// let watch = scope
    ///     .watch(Query::on("objects", ["name"]).prefix("ord"), move |page| {
    ///         let _ = tx.send(page.records.len());
    ///     })
    ///     .unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 0);
    /// scope.put("objects", "o1", json!({"name": "orders"})).unwrap();
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    /// watch.stop();
    /// ```
    pub fn watch(
        &self,
        query: Query,
        callback: impl FnMut(&QueryPage) + Send + 'static,
    ) -> Result<Watch> {
        // Refuse a query that cannot run now rather than on the thread.
        query.plan(query.index_in(&self.replica.indexes())?)?;
        let (tx, rx) = mpsc::channel::<()>();
        let collection = query.collection.clone();
        let subscription = self.subscribe(move |e| {
            if e.touches(&collection) {
                let _ = tx.send(());
            }
        });
        let stopped = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let live = Live {
            shared: self.replica.shared.clone(),
            scope: self.id().clone(),
            query,
            stopped: stopped.clone(),
            last_error: last_error.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("tether-watch-{}", self.id()))
            .spawn(move || live.run(&rx, callback))
            .map_err(|e| Error::storage(format!("cannot start the watch thread: {e}")))?;
        Ok(Watch {
            subscription: Some(subscription),
            stopped,
            last_error,
            thread_id: thread.thread().id(),
            thread: Some(thread),
        })
    }
}

/// The state of a live query's thread.
struct Live {
    shared: Arc<Shared>,
    scope: ScopeId,
    query: Query,
    stopped: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<Error>>>,
}

/// What makes two pages the same result: ids, data hashes and pending states.
type Fingerprint = Vec<(String, RecordHash, bool)>;

impl Live {
    fn run(self, wake: &Receiver<()>, mut callback: impl FnMut(&QueryPage)) {
        let mut last: Option<Fingerprint> = None;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let handle = ScopeHandle::new(&self.shared.store, self.scope.clone());
            match block_on(handle.query(&self.query)) {
                Ok(page) => {
                    *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    let print: Fingerprint = page
                        .records
                        .iter()
                        .map(|r| (r.id.clone(), r.hash, r.pending))
                        .collect();
                    if last.as_ref() != Some(&print) && !self.stopped.load(Ordering::SeqCst) {
                        callback(&page);
                        last = Some(print);
                    }
                }
                Err(e) => {
                    *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            }
            // Wait for a change; then take every change already queued, for one re-query.
            if wake.recv().is_err() {
                return; // unsubscribed: the watch was stopped
            }
            while wake.try_recv().is_ok() {}
        }
    }
}
