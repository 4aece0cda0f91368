//! The page after the one a pull returned, requested before the engine asks for it.
//!
//! The engine overlaps two pages: while page N is written, N+1 is pulled and then validated.
//! The pull of N+1 waits for the server to read, encode and compress it, and its validation can
//! only start when it is here, so per page the server's time and the client's validation add up.
//! A pull that answers a page with `has_more` therefore starts the request of the next one
//! (from that page's checkpoint, same scope and limit) on a thread of its own; the engine's next
//! pull of exactly that takes its answer, waiting for it if it is still on the way, and starts
//! the one after. So the server prepares page N+2 while the client validates N+1 and writes N.
//!
//! At most one page is fetched ahead, and only the next one: what a remote holds beyond the
//! engine's own pages is one answer (within [`super::HttpOptions::max_body`]). Any other call
//! of the remote, a pull from another checkpoint and the start of a run drop it: its thread
//! finishes the request under way, retries no more, and the answer is discarded. A page fetched
//! a moment early is still an answer to its checkpoint: one taken a moment later could only
//! hold more after it.
//!
//! A pull ahead refused for its token (`Auth`) is asked again by the engine's own pull, with
//! the token of that moment; any other answer, a failure after its retries included, is the
//! engine's (asking again would double the time a sync takes to report an outage). The time
//! the pull ahead spent retrying counts against the run's budget only when the engine takes
//! its answer, so a dropped one costs the next run nothing.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tether_engine::protocol;
use tether_engine::{Checkpoint, Error, ErrorKind, Pulled, Result, ScopeId};

use super::Inner;

/// A pull under way ahead of the engine.
struct Ahead {
    scope: ScopeId,
    checkpoint: Checkpoint,
    limit: u32,
    /// The answer and the time spent retrying for it.
    answer: JoinHandle<(Result<Pulled>, u64)>,
    /// Dropped with the pull ahead: its thread stops retrying.
    _wanted: mpsc::Sender<()>,
}

/// The remote's pull ahead, if any. A clone of a remote starts without one.
#[derive(Default)]
pub(super) struct PullAhead(Mutex<Option<Ahead>>);

impl Clone for PullAhead {
    fn clone(&self) -> Self {
        PullAhead::default()
    }
}

impl std::fmt::Debug for PullAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullAhead")
    }
}

impl PullAhead {
    /// Drops the pull ahead, if any.
    pub(super) fn forget(&self) {
        self.take();
    }

    fn take(&self) -> Option<Ahead> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set(&self, ahead: Ahead) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(ahead);
    }
}

impl Inner {
    /// A pull, answered by the pull ahead when it is the same request, and followed by the
    /// pull of the next page when [`super::HttpOptions::pull_ahead`] is on. Blocking.
    pub(super) fn pull(
        self: &Arc<Self>,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let run = self.budget.run();
        let ahead = match self.ahead.take() {
            Some(a)
                if &a.scope == scope && Some(&a.checkpoint) == checkpoint && a.limit == limit =>
            {
                let (answer, retry_ms) = a.answer.join().unwrap_or_else(|_| {
                    (Err(Error::storage("the pull of the next page panicked")), 0)
                });
                self.budget.spend_in(run, retry_ms);
                match answer {
                    // The token may have been renewed since the pull ahead was sent.
                    Err(e) if e.kind() == ErrorKind::Auth => None,
                    answer => Some(answer),
                }
            }
            _ => None,
        };
        let pulled = match ahead {
            Some(answer) => answer?,
            None => self.run(protocol::pull(scope, checkpoint, limit))?,
        };
        // A pull left running by a cancelled sync starts nothing for the next one.
        if let Pulled::Page { page, .. } = &pulled {
            if let (true, true, Some(next), true) = (
                self.options.pull_ahead,
                page.has_more,
                &page.checkpoint,
                self.budget.run() == run,
            ) {
                self.pull_ahead(scope, next, limit);
            }
        }
        Ok(pulled)
    }

    fn pull_ahead(self: &Arc<Self>, scope: &ScopeId, checkpoint: &Checkpoint, limit: u32) {
        let inner = self.clone();
        let (s, c) = (scope.clone(), checkpoint.clone());
        let (wanted, dropped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("tether-pull".into())
            .spawn(move || {
                // Nothing is ever sent: the wait ends early only when the pull ahead is dropped.
                let wait =
                    |pause| matches!(dropped.recv_timeout(pause), Err(RecvTimeoutError::Timeout));
                inner.attempt(protocol::pull(&s, Some(&c), limit), wait)
            });
        match spawned {
            Ok(answer) => self.ahead.set(Ahead {
                scope: scope.clone(),
                checkpoint: checkpoint.clone(),
                limit,
                answer,
                _wanted: wanted,
            }),
            // The engine's own pull will ask for it.
            Err(e) => tracing::debug!("no thread to pull the next page ahead ({e})"),
        }
    }
}
