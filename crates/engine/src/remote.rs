//! The remote interface: anything that answers pulls, and optionally pushes, status and range
//! queries. The HTTP remotes (native and browser), a JavaScript function, and the in-process
//! [`crate::cloud::Cloud`] implement it.

use std::future::Future;

use crate::digest::Snapshot;
use crate::error::{Error, Result};
use crate::store::{MaybeSend, MaybeSync};
use crate::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use crate::types::{
    Change, Checkpoint, KeyRange, Mutation, Page, PushResponse, RemoteStatus, ScopeId,
};

/// The answer to a pull.
#[derive(Debug, Clone, PartialEq)]
pub enum Pulled {
    /// A page of changes.
    Page {
        /// The page.
        page: Page,
        /// Bytes received for it (0 when not measured).
        bytes: u64,
    },
    /// The checkpoint is older than the cloud's tombstone horizon (HTTP 410): resync in full.
    Reset,
}

/// A cloud that a replica syncs from.
pub trait Remote: MaybeSend + MaybeSync {
    /// Pulls the page after `checkpoint` (from the start when `None`), at most `limit` changes.
    fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> impl Future<Output = Result<Pulled>> + MaybeSend;

    /// Whether [`Remote::pull_wait`] waits (a long-poll); live syncs need it.
    fn can_wait(&self) -> bool {
        false
    }

    /// Like [`Remote::pull`], but when nothing follows `checkpoint` the cloud waits up to
    /// `wait_s` seconds for a change before answering the empty page (protocol v1.1, `wait=S`).
    /// Without [`Remote::can_wait`] it is a plain pull.
    fn pull_wait(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> impl Future<Output = Result<Pulled>> + MaybeSend {
        let _ = wait_s;
        self.pull(scope, checkpoint, limit)
    }

    /// Whether [`Remote::push`] is supported.
    fn can_push(&self) -> bool {
        false
    }

    /// Pushes mutations; one result per mutation, in order.
    fn push(
        &self,
        scope: &ScopeId,
        mutations: &[Mutation],
    ) -> impl Future<Output = Result<PushResponse>> + MaybeSend {
        let _ = (scope, mutations);
        async { Err(Error::invalid("this remote does not accept pushes")) }
    }

    /// The cloud's status of the scope; `None` if not supported.
    fn status(
        &self,
        scope: &ScopeId,
    ) -> impl Future<Output = Result<Option<RemoteStatus>>> + MaybeSend {
        let _ = scope;
        async { Ok(None) }
    }

    /// Count and digest of the live records in a key range; `None` if not supported.
    fn range_digest(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> impl Future<Output = Result<Option<Snapshot>>> + MaybeSend {
        let _ = (scope, range);
        async { Ok(None) }
    }

    /// The live records in a key range; `None` if not supported.
    fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> impl Future<Output = Result<Option<Vec<Change>>>> + MaybeSend {
        let _ = (scope, range);
        async { Ok(None) }
    }

    /// Pulls the page of the subscription `sub` after `checkpoint` (protocol v1.2,
    /// docs/partial-sync.md). A remote without subsets answers `Protocol`
    /// [`Detail::NotSupported`](crate::Detail::NotSupported).
    fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> impl Future<Output = Result<PulledSubset>> + MaybeSend {
        let _ = (scope, sub, checkpoint, limit);
        async {
            Err(Error::protocol("this remote does not serve subscriptions")
                .with_detail(crate::Detail::NotSupported))
        }
    }

    /// Like [`Remote::pull_subset`], but when nothing of `sub` follows `checkpoint` the cloud
    /// waits up to `wait_s` seconds for a change of it before answering the empty page. Without
    /// [`Remote::can_wait`] it is a plain subset pull.
    fn pull_subset_wait(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> impl Future<Output = Result<PulledSubset>> + MaybeSend {
        let _ = wait_s;
        self.pull_subset(scope, sub, checkpoint, limit)
    }

    /// Count and digest of the records of `sub` in a key range, and the checkpoint they
    /// describe; `None` if not supported.
    fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> impl Future<Output = Result<Option<SubsetSnapshot>>> + MaybeSend {
        let _ = (scope, sub, range);
        async { Ok(None) }
    }

    /// The records of `sub` in a key range, in key order; `None` if not supported.
    fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> impl Future<Output = Result<Option<Vec<Change>>>> + MaybeSend {
        let _ = (scope, sub, range);
        async { Ok(None) }
    }

    /// A sync (or verify) begins: the [`Syncer`](crate::Syncer) calls this first. HTTP
    /// transports reset their per-sync retry budget here
    /// ([`RetryPolicy::run_budget_ms`](crate::protocol::RetryPolicy::run_budget_ms)); a remote
    /// that wraps another must pass it on.
    fn begin_run(&self) {}
}

/// A remote behind a pointer is the remote: `&R` (a borrow for one sync) and `Arc<R>` (a
/// background sync owns one, the app keeps another handle).
macro_rules! forward_remote {
    ($($ptr:ty),*) => {$(
        impl<R: Remote> Remote for $ptr {
            fn pull(
                &self,
                scope: &ScopeId,
                checkpoint: Option<&Checkpoint>,
                limit: u32,
            ) -> impl Future<Output = Result<Pulled>> + MaybeSend {
                (**self).pull(scope, checkpoint, limit)
            }
            fn can_push(&self) -> bool {
                (**self).can_push()
            }
            fn can_wait(&self) -> bool {
                (**self).can_wait()
            }
            fn pull_wait(
                &self,
                scope: &ScopeId,
                checkpoint: Option<&Checkpoint>,
                limit: u32,
                wait_s: u32,
            ) -> impl Future<Output = Result<Pulled>> + MaybeSend {
                (**self).pull_wait(scope, checkpoint, limit, wait_s)
            }
            fn begin_run(&self) {
                (**self).begin_run()
            }
            fn push(
                &self,
                scope: &ScopeId,
                mutations: &[Mutation],
            ) -> impl Future<Output = Result<PushResponse>> + MaybeSend {
                (**self).push(scope, mutations)
            }
            fn status(
                &self,
                scope: &ScopeId,
            ) -> impl Future<Output = Result<Option<RemoteStatus>>> + MaybeSend {
                (**self).status(scope)
            }
            fn range_digest(
                &self,
                scope: &ScopeId,
                range: &KeyRange,
            ) -> impl Future<Output = Result<Option<Snapshot>>> + MaybeSend {
                (**self).range_digest(scope, range)
            }
            fn range_records(
                &self,
                scope: &ScopeId,
                range: &KeyRange,
            ) -> impl Future<Output = Result<Option<Vec<Change>>>> + MaybeSend {
                (**self).range_records(scope, range)
            }
            fn pull_subset(
                &self,
                scope: &ScopeId,
                sub: &Subscription,
                checkpoint: Option<&Checkpoint>,
                limit: u32,
            ) -> impl Future<Output = Result<PulledSubset>> + MaybeSend {
                (**self).pull_subset(scope, sub, checkpoint, limit)
            }
            fn pull_subset_wait(
                &self,
                scope: &ScopeId,
                sub: &Subscription,
                checkpoint: Option<&Checkpoint>,
                limit: u32,
                wait_s: u32,
            ) -> impl Future<Output = Result<PulledSubset>> + MaybeSend {
                (**self).pull_subset_wait(scope, sub, checkpoint, limit, wait_s)
            }
            fn subset_digest(
                &self,
                scope: &ScopeId,
                sub: &Subscription,
                range: &KeyRange,
            ) -> impl Future<Output = Result<Option<SubsetSnapshot>>> + MaybeSend {
                (**self).subset_digest(scope, sub, range)
            }
            fn subset_records(
                &self,
                scope: &ScopeId,
                sub: &Subscription,
                range: &KeyRange,
            ) -> impl Future<Output = Result<Option<Vec<Change>>>> + MaybeSend {
                (**self).subset_records(scope, sub, range)
            }
        }
    )*};
}

forward_remote!(&R, std::sync::Arc<R>);
