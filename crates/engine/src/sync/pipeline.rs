//! Overlapping pages: while page N's transaction writes, page N+1 is pulled and validated
//! (hashed), on a second core when an [`Offload`] is given. Three small pieces make that work on
//! any executor without a runtime: [`join`] polls two futures together (the pull first, so it is
//! under way before the write), [`offload`] hands a job to the [`Offload`] and awaits its
//! result, and a [`Gate`] holds inline validation back until the write has been planned.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use super::{check_versions, SyncOptions, Syncer};
use crate::remote::{Pulled, Remote};
use crate::rules::{validate_page, ValidPage};
use crate::store::Store;
use crate::types::{Checkpoint, ScopeId};

/// Runs jobs off the sync's thread, so that validating and hashing the next page overlaps
/// writing this one. `tether-native` gives one that runs each job on a worker thread; without
/// one (`None`, as in the browser, where the IndexedDB transaction itself runs off the page's
/// thread) jobs run inline.
///
/// ```
/// use tether_engine::sync::Offload;
/// struct Threads;
/// impl Offload for Threads {
///     fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
///         std::thread::spawn(job);
///     }
/// }
/// let opts = tether_engine::SyncOptions { offload: Some(&Threads), ..Default::default() };
/// # let _ = opts;
/// ```
pub trait Offload: Sync {
    /// Runs `job` soon, on any thread. It must run: the sync awaits its result.
    fn spawn(&self, job: Box<dyn FnOnce() + Send>);
}

/// Runs `job` through `offload` (inline without one) and awaits its result. A job the offload
/// drops without running is an error, never a hang. For the engine's own jobs and for a
/// transport that wants its blocking I/O off the sync's thread (`tether-native`'s HTTP pull).
///
/// ```
/// # futures_executor::block_on(async {
/// let two = tether_engine::sync::run_on(None, || Ok(1 + 1)).await.unwrap();
/// assert_eq!(two, 2);
/// # });
/// ```
pub async fn run_on<T: Send + 'static>(
    offload: Option<&dyn Offload>,
    job: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> crate::error::Result<T> {
    let Some(o) = offload else { return job() };
    let slot = Arc::new(Mutex::new(Slot::<crate::error::Result<T>> {
        value: None,
        waker: None,
        dropped: false,
    }));
    let sender = Sender(slot.clone());
    o.spawn(Box::new(move || sender.send(job())));
    poll_fn(|cx| {
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = s.value.take() {
            Poll::Ready(v)
        } else if s.dropped {
            Poll::Ready(Err(crate::error::Error::storage(
                "a sync job was dropped before it ran",
            )))
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    dropped: bool,
}

/// The job's end of the slot: it sends the result, or says on drop that there will be none.
struct Sender<T>(Arc<Mutex<Slot<T>>>);

impl<T> Sender<T> {
    fn send(self, v: T) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).value = Some(v);
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.dropped = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// Polls `a` and `b` together, `a` first, until both are done.
pub(crate) async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}

/// Opened once page N has been planned, that is once its writes are issued and its store waits
/// for them to commit. Without an [`Offload`], validating page N+1 runs on the thread that
/// issues page N's reads and writes: before its gate opens, that work would delay page N's
/// writes while the storage engine idles; after, it fills the wait for the commit (in the
/// browser, IndexedDB commits off the page's thread).
#[derive(Default)]
pub(crate) struct Gate(Mutex<(bool, Option<Waker>)>);

impl Gate {
    /// Opens the gate (again is harmless) and wakes what waits on it.
    pub(crate) fn open(&self) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = true;
        if let Some(w) = g.1.take() {
            w.wake();
        }
    }

    /// Resolves once the gate is open.
    pub(crate) async fn opened(&self) {
        poll_fn(|cx| {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 {
                Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Polls `next` and `write` together (see [`join`]), `write` opening `gate` once planned; the
/// gate opens when `write` ends too, so that a write failing before its plan never leaves
/// `next` waiting.
pub(crate) async fn overlap<A: Future, B: Future>(
    next: A,
    write: B,
    gate: &Gate,
) -> (A::Output, B::Output) {
    let write = async {
        let done = write.await;
        gate.open();
        done
    };
    join(next, write).await
}

/// A pulled answer, its page validated.
pub(super) enum Fetched {
    Reset,
    Page(ValidPage, u64),
}

impl<S: Store, R: Remote> Syncer<'_, S, R> {
    /// Pulls one page (long-polling `wait` seconds when above 0) and validates it, through
    /// `opts.offload` when there is one, else once `after` opens (see [`Gate`]).
    pub(super) async fn fetch(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait: u32,
        opts: &SyncOptions<'_>,
        after: Option<&Gate>,
    ) -> crate::error::Result<Fetched> {
        let pulled = if wait > 0 {
            self.remote
                .pull_wait(scope, checkpoint, limit, wait)
                .await?
        } else {
            self.remote.pull(scope, checkpoint, limit).await?
        };
        match pulled {
            Pulled::Reset => Ok(Fetched::Reset),
            Pulled::Page { page, bytes } => {
                if let (None, Some(gate)) = (opts.offload, after) {
                    gate.opened().await;
                }
                let valid = run_on(opts.offload, move || {
                    check_versions(&page.changes)?;
                    validate_page(page)
                })
                .await?;
                Ok(Fetched::Page(valid, bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Threads;
    impl Offload for Threads {
        fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
            std::thread::spawn(job);
        }
    }

    struct Dropper;
    impl Offload for Dropper {
        fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
            drop(job);
        }
    }

    #[test]
    fn a_job_runs_on_the_offload_and_its_result_comes_back() {
        let here = std::thread::current().id();
        let there = futures_executor::block_on(run_on(Some(&Threads), move || {
            Ok(std::thread::current().id())
        }))
        .unwrap();
        assert_ne!(there, here);
        let inline = futures_executor::block_on(run_on(None, || Ok(std::thread::current().id())));
        assert_eq!(inline.unwrap(), here);
    }

    #[test]
    fn a_dropped_job_is_an_error_not_a_hang() {
        let r = futures_executor::block_on(run_on(Some(&Dropper), || Ok(1)));
        assert!(r.is_err());
    }

    #[test]
    fn a_gated_future_runs_once_the_other_opens_the_gate_and_before_it_ends() {
        use std::cell::RefCell;
        let gate = Gate::default();
        let log = RefCell::new(Vec::new());
        let gated = async {
            log.borrow_mut().push("pulled");
            gate.opened().await;
            log.borrow_mut().push("validated");
        };
        let writer = async {
            log.borrow_mut().push("read");
            gate.open();
            log.borrow_mut().push("written");
            // The commit: pending once, as a store's wait for its transaction.
            let mut once = false;
            poll_fn(|cx| {
                if once {
                    return Poll::Ready(());
                }
                once = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            log.borrow_mut().push("committed");
        };
        futures_executor::block_on(overlap(gated, writer, &gate));
        assert_eq!(
            log.into_inner(),
            ["pulled", "read", "written", "validated", "committed"]
        );
    }

    #[test]
    fn a_write_that_ends_before_planning_still_opens_the_gate() {
        let gate = Gate::default();
        let (next, write) = futures_executor::block_on(overlap(
            async {
                gate.opened().await;
                "validated"
            },
            async { Err::<(), _>("the store failed before planning") },
            &gate,
        ));
        assert_eq!(
            (next, write),
            ("validated", Err("the store failed before planning"))
        );
    }

    #[test]
    fn join_waits_for_both() {
        let (a, b) =
            futures_executor::block_on(join(run_on(Some(&Threads), || Ok(1)), async { 2 }));
        assert_eq!((a.unwrap(), b), (1, 2));
    }
}
