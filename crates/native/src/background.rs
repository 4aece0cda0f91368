//! Background sync for native apps: what the JS package's `BackgroundSync` does, on a thread.
//!
//! [`Replica::background`] starts a thread with its own connection to the replica file that
//! syncs one scope every [`Schedule::interval_ms`] (15 minutes by default, with jitter), backs
//! off exponentially after retryable failures (honouring `Retry-After`), and stops for good on
//! an error retrying cannot fix (`Auth`, `InvalidInput`): after each sync it does what the
//! engine's [`Schedule::after`] decides, as the JS package's background sync does. It never
//! overlaps another sync of the scope in the process (the replica's sync lock).
//! [`BackgroundSync::sync_now`] wakes it early; [`BackgroundSync::stop`], or dropping the
//! handle, ends it: a sync in flight is cancelled at its next page boundary and the thread is
//! joined. With [`BackgroundOptions::live_wait_s`] it stays live instead: long-polls, and
//! reconnects with backoff when the server goes away. Its writes publish their change events on
//! the hub of the replica that started it, like the replica's own.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tether_engine::events::EventHub;
use tether_engine::schedule::{Next, Outcome, Schedule};
use tether_engine::{CancelFlag, Error, Remote, Result, SyncOptions, Trigger};

use crate::{Replica, SyncReport};

/// Options of [`Replica::background`].
#[derive(Debug, Clone)]
pub struct BackgroundOptions {
    /// Interval, jitter and backoff (default: every 15 minutes, ±10 %, backoff doubling from
    /// 5 s to 10 minutes).
    pub schedule: Schedule,
    /// Changes asked for per page.
    pub page_size: u32,
    /// Sync at once when started (default true); otherwise the first sync waits a full interval.
    pub sync_at_start: bool,
    /// Stay live: each sync is a live session (trigger `Live`) that long-polls the server with
    /// waits of this many seconds and applies each change as it commits; a session that fails
    /// (the server went away) is started again after the schedule's backoff, so the replica
    /// reconnects by itself. `None` (the default): a sync per interval. Stopping takes up to
    /// one wait (the long-poll in flight is not interrupted).
    pub live_wait_s: Option<u32>,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        BackgroundOptions {
            schedule: Schedule::default(),
            page_size: SyncOptions::default().page_size,
            sync_at_start: true,
            live_wait_s: None,
        }
    }
}

/// What the background thread has done so far.
#[derive(Debug, Clone, Default)]
pub struct BackgroundStatus {
    /// Whether it still runs (false after `stop`, or after an error it cannot retry).
    pub running: bool,
    /// Syncs attempted.
    pub attempts: u64,
    /// Consecutive retryable failures (0 after a success).
    pub failures: u32,
    /// The last completed sync.
    pub last_report: Option<SyncReport>,
    /// The last error.
    pub last_error: Option<Error>,
}

struct Shared {
    status: Mutex<BackgroundStatus>,
    /// Set by `sync_now` and `stop`; the thread waits on it between syncs.
    wake: Mutex<bool>,
    woken: Condvar,
    cancel: CancelFlag,
}

/// A running background sync of one scope; stops when dropped.
pub struct BackgroundSync {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundSync {
    /// Syncs now instead of at the end of the current wait (no effect while a sync runs).
    pub fn sync_now(&self) {
        *self.shared.wake.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.woken.notify_all();
    }

    /// What it has done so far.
    pub fn status(&self) -> BackgroundStatus {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops: cancels a sync in flight at its next page boundary and waits for the thread.
    pub fn stop(mut self) -> BackgroundStatus {
        self.halt();
        self.status()
    }

    fn halt(&mut self) {
        self.shared.cancel.cancel();
        self.sync_now();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = false;
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Replica {
    /// Starts syncing `scope` with `remote` in the background (see the module docs). The
    /// replica must be a file: the thread opens its own connection to it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tether_engine::{cloud::Cloud, schedule::Schedule, ScopeId};
    /// use tether_native::{BackgroundOptions, Replica};
    /// let cloud = Arc::new(Cloud::new());
    /// cloud.put(&ScopeId::new("org-1").unwrap(), "objects", "a", serde_json::json!({}), 0);
    /// let dir = tempfile::tempdir().unwrap();
    /// let replica = Replica::open(dir.path().join("replica.db")).unwrap();
    /// let options = BackgroundOptions {
    ///     schedule: Schedule { interval_ms: 50, ..Schedule::default() },
    ///     ..BackgroundOptions::default()
    /// };
    /// let background = replica.background("org-1", cloud, options).unwrap();
    /// while background.status().last_report.is_none() {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    /// }
    /// assert_eq!(replica.scope("org-1").unwrap().count(None).unwrap(), 1);
    /// let status = background.stop();
    /// assert!(!status.running);
    /// ```
    pub fn background<R>(
        &self,
        scope: &str,
        remote: R,
        options: BackgroundOptions,
    ) -> Result<BackgroundSync>
    where
        R: Remote + Send + 'static,
    {
        self.scope(scope)?;
        if self.is_in_memory() {
            return Err(Error::invalid(
                "background sync needs a replica file (it opens its own connection to it)",
            ));
        }
        let path = self.path().to_path_buf();
        let events = self.events().clone();
        let shared = Arc::new(Shared {
            status: Mutex::new(BackgroundStatus {
                running: true,
                ..BackgroundStatus::default()
            }),
            wake: Mutex::new(options.sync_at_start),
            woken: Condvar::new(),
            cancel: CancelFlag::new(),
        });
        let inner = shared.clone();
        let scope = scope.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("tether-background-{scope}"))
            .spawn(move || run(path, events, scope, remote, options, &inner))
            .map_err(|e| Error::storage(format!("cannot start the background thread: {e}")))?;
        Ok(BackgroundSync {
            shared,
            thread: Some(thread),
        })
    }
}

fn run<R: Remote>(
    path: PathBuf,
    events: Arc<EventHub>,
    scope: String,
    remote: R,
    options: BackgroundOptions,
    shared: &Shared,
) {
    let set = |f: &dyn Fn(&mut BackgroundStatus)| {
        f(&mut shared.status.lock().unwrap_or_else(|p| p.into_inner()))
    };
    let replica = match Replica::open(&path) {
        Ok(r) => r,
        Err(e) => {
            set(&|s| {
                s.running = false;
                s.last_error = Some(e.clone());
            });
            return;
        }
    };
    // Its writes are the replica's: their events go to the hub of the replica that started it.
    let _forward = replica.events().subscribe(move |e| events.publish(e));
    let mut delay = options.schedule.interval_ms;
    loop {
        // Wait for the delay, `sync_now` or `stop`, whichever comes first.
        {
            let mut wake = shared.wake.lock().unwrap_or_else(|p| p.into_inner());
            if !*wake {
                wake = shared
                    .woken
                    .wait_timeout_while(wake, Duration::from_millis(delay), |w| !*w)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            *wake = false;
        }
        if shared.cancel.is_cancelled() {
            return;
        }
        let result = replica.scope(&scope).and_then(|s| {
            s.sync(
                &remote,
                SyncOptions {
                    trigger: if options.live_wait_s.is_some() {
                        Trigger::Live
                    } else {
                        Trigger::Background
                    },
                    live_wait_s: options.live_wait_s.unwrap_or(0),
                    page_size: options.page_size,
                    cancel: Some(&shared.cancel),
                    ..SyncOptions::default()
                },
            )
        });
        set(&|s| s.attempts += 1);
        if matches!(result, Err(Error::Cancelled)) && shared.cancel.is_cancelled() {
            return;
        }
        // The decision is the engine's, the same as the JS package's background sync.
        let failures = shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failures;
        let next = options
            .schedule
            .after(Outcome::of(&result), failures, crate::http::jitter());
        set(&|s| {
            match &result {
                Ok(report) => s.last_report = Some(report.clone()),
                Err(e) => s.last_error = Some(e.clone()),
            }
            match next {
                Next::Stop(_) => {
                    s.failures = 0;
                    s.running = false;
                }
                Next::Wait { failures, .. } => s.failures = failures,
            }
        });
        if let Err(e) = &result {
            tracing::warn!(scope, error = %e, "background sync failed");
        }
        match next {
            Next::Stop(_) => return,
            Next::Wait { ms, .. } => delay = ms,
        }
    }
}
