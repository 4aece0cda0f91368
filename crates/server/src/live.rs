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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

/// Longest `wait` a pull may ask for, in seconds.
pub const MAX_WAIT_S: u64 = 60;

/// Wakes the live pulls of a scope when a change of it commits.
#[derive(Default)]
pub struct ChangeHub {
    scopes: Mutex<HashMap<String, watch::Sender<u64>>>,
    closed: AtomicBool,
}

impl ChangeHub {
    /// A receiver that sees every [`ChangeHub::notify`] of `scope` from now on.
    pub fn subscribe(&self, scope: &str) -> watch::Receiver<u64> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        match scopes.get(scope) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                scopes.insert(scope.to_string(), tx);
                rx
            }
        }
    }

    /// A change of `scope` committed: wakes its waiters. Channels nobody waits on any more
    /// are dropped here, so the map holds only scopes with waiters.
    pub fn notify(&self, scope: &str) {
        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = scopes.get(scope) {
            if tx.receiver_count() == 0 {
                scopes.remove(scope);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
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

    /// Scopes with a channel (for the load test's accounting).
    pub fn scopes_watched(&self) -> usize {
        self.scopes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
