//! Live pulls: a pull with `wait=S` that finds nothing new waits until a change of its scope
//! commits, or `S` seconds pass.
//!
//! A [`ChangeHub`] holds one `tokio::sync::watch` channel per scope that someone waits on; a
//! waiting pull is a task parked on its receiver (no thread, no polling), and a commit wakes
//! every waiter of its scope. Commits come in two ways: writes through this instance's API
//! (pushes, admin writes, re-checks) notify the hub directly; with PostgreSQL, the triggers
//! also `pg_notify` every committed write, plain SQL and other instances included, and a
//! listener task on its own connection passes those on (see `storage::postgres`). A wake-up
//! is only a hint: the waiter pulls again and waits on if the page is still empty.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Longest `wait` a pull may ask for, in seconds.
pub const MAX_WAIT_S: u64 = 60;

/// Wakes the live pulls of a scope when a change of it commits.
#[derive(Default)]
pub struct ChangeHub {
    scopes: Mutex<HashMap<String, watch::Sender<u64>>>,
    closed: AtomicBool,
    waiters: AtomicU64,
    wakeups: AtomicU64,
}

/// One live pull's subscription to its scope. Dropping the last one of a scope removes the
/// scope's channel, so the hub holds only scopes somebody waits on, whether or not the scope
/// is ever written again.
pub struct Waiter {
    hub: Arc<ChangeHub>,
    scope: String,
    rx: watch::Receiver<u64>,
}

impl ChangeHub {
    /// A waiter that sees every [`ChangeHub::notify`] of `scope` from now on.
    pub fn subscribe(self: &Arc<Self>, scope: &str) -> Waiter {
        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        let rx = match scopes.get(scope) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                scopes.insert(scope.to_string(), tx);
                rx
            }
        };
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Waiter {
            hub: self.clone(),
            scope: scope.to_string(),
            rx,
        }
    }

    /// A change of `scope` committed: wakes its waiters.
    pub fn notify(&self, scope: &str) {
        let scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = scopes.get(scope) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every waiter of every scope (after a lost connection to PostgreSQL, commits may
    /// have gone unseen: each waiter pulls again).
    pub fn notify_all(&self) {
        let scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        for tx in scopes.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The server is stopping: wakes every waiter, and later pulls no longer wait.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify_all();
    }

    /// Whether [`ChangeHub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Scopes with a channel, that is with at least one waiter.
    pub fn scopes_watched(&self) -> usize {
        self.scopes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Live pulls waiting now.
    pub fn waiters(&self) -> u64 {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Times a waiter was woken and pulled again, since the start.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

impl Waiter {
    /// Marks the current change count as seen, so [`Waiter::changed`] waits for a later one.
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits for a change of the scope after the last [`Waiter::mark_seen`]; an error when
    /// the hub is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx.changed().await?;
        self.hub.wakeups.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.hub.waiters.fetch_sub(1, Ordering::Relaxed);
        let mut scopes = self.hub.scopes.lock().unwrap_or_else(|p| p.into_inner());
        // Our receiver is still alive here: one receiver left is this waiter's own. Under the
        // lock, so no waiter can subscribe to the channel being removed.
        if scopes
            .get(&self.scope)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            scopes.remove(&self.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_forgotten_when_its_last_waiter_leaves() {
        let hub = Arc::new(ChangeHub::default());
        let a = hub.subscribe("s1");
        let b = hub.subscribe("s1");
        let c = hub.subscribe("s2");
        assert_eq!((hub.scopes_watched(), hub.waiters()), (2, 3));
        drop(a);
        assert_eq!((hub.scopes_watched(), hub.waiters()), (2, 2));
        drop(b);
        drop(c);
        // No write to either scope happened: the map is pruned by the waiters themselves.
        assert_eq!((hub.scopes_watched(), hub.waiters()), (0, 0));
        let mut d = hub.subscribe("s1");
        d.mark_seen();
        hub.notify("s1");
        futures_util::FutureExt::now_or_never(d.changed())
            .expect("the notify is seen")
            .unwrap();
        assert_eq!(hub.wakeups(), 1);
    }
}
