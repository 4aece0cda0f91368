//! Overlapping pages: while page N's transaction writes, page N+1 is pulled and validated
//! (hashed), on a second core when an [`Offload`] is given. Two small pieces make that work on
//! any executor without a runtime: [`join`] polls two futures together (the pull first, so it is
//! under way before the write), and [`offload`] hands a job to the [`Offload`] and awaits its
//! result.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

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
    fn join_waits_for_both() {
        let (a, b) =
            futures_executor::block_on(join(run_on(Some(&Threads), || Ok(1)), async { 2 }));
        assert_eq!((a.unwrap(), b), (1, 2));
    }
}
