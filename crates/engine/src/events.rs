//! Change events: after every committed transaction that changes visible records, one event
//! naming the scope, what made the change, the run (if a sync made it) and each changed key
//! with its operation.
//!
//! A store reports each write's visible changes in the [`Applied`] it returns (computed from
//! the committed [`Changeset`](crate::rules::Changeset) by [`changes_of`]); the writers beside
//! the store publish them on an [`EventHub`]: the sync driver ([`Syncer::events`]) and the
//! scope handle ([`ScopeHandle::events`]), each right after the store committed, so a listener
//! never sees a change that was rolled back, and a listener that reads the store sees the
//! committed state. The stores know nothing of listeners.
//!
//! [`Syncer::events`]: crate::Syncer::events
//! [`ScopeHandle::events`]: crate::ScopeHandle::events
//!
//! ```
//! # futures_executor::block_on(async {
//! use std::sync::{Arc, Mutex};
//! use tether_engine::{events::{ChangeOp, EventHub}, MemoryStore, ScopeHandle, ScopeId};
//! let store = MemoryStore::new();
//! let hub = Arc::new(EventHub::default());
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! let _sub = hub.subscribe(move |e| sink.lock().unwrap().push(e.clone()));
//! let scope = ScopeHandle::new(&store, ScopeId::new("org-1").unwrap()).events(&hub);
//! scope.put("objects", "obj_1", serde_json::json!({"name": "orders"})).await.unwrap();
//! let events = seen.lock().unwrap();
//! assert_eq!(events[0].changes[0].op, ChangeOp::Insert);
//! # });
//! ```

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};

pub use crate::rules::{changes_of, ChangeOp, KeyChange, Source};
use crate::store::{Applied, MaybeSend, MaybeSync};
use crate::types::ScopeId;

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

    /// Publishes the visible changes of a committed write, if it made any; `run` is the id of
    /// the sync run that wrote it (ignored for a local edit).
    pub fn publish_applied(&self, scope: &ScopeId, applied: &Applied, run: Option<u64>) {
        // Nobody to tell: the changes are not copied into an event.
        if applied.changes.is_empty() || self.lock().list.is_empty() {
            return;
        }
        self.publish(&ChangeEvent {
            scope: scope.to_string(),
            source: applied.source,
            run: run.filter(|_| applied.source != Source::Local),
            changes: applied.changes.clone(),
        });
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
