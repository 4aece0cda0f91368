//! [`Cloud`], an in-process cloud that implements [`Remote`]: versioned changes per scope,
//! tombstones with a purge horizon, pushes checked against `base_version`, range digests. Use it
//! in your own application's tests, or as the data source of a demo. With the `testing` feature
//! it also injects faults on demand (failed pulls, truncated or corrupted pages, resets).
//!
//! ```
//! use tether_engine::{cloud::Cloud, ScopeId};
//! let cloud = Cloud::new();
//! let scope = ScopeId::new("org-1").unwrap();
//! let v1 = cloud.put(&scope, "objects", "a", serde_json::json!({"n": 1}), 0);
//! let v2 = cloud.delete(&scope, "objects", "a", 0);
//! assert!(v2 > v1);
//! assert_eq!(cloud.snapshot(&scope).count, 0);
//! ```

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::digest::{leaf, record_hash, RecordHash, Snapshot};
use crate::error::{Error, Result};
use crate::mutation::{judge, AppliedMutation, Judgement, MutationId};
use crate::remote::{Pulled, Remote};
use crate::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use crate::types::{
    Change, Checkpoint, Data, Key, KeyRange, Millis, Mutation, MutationResult, Op, Page,
    PushResponse, RemoteStatus, ScopeId,
};

use crate::time::rfc3339;

mod subset;

/// An in-process cloud. All methods take `&self`; state is behind a mutex.
#[derive(Default)]
pub struct Cloud {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    scopes: BTreeMap<ScopeId, CloudScope>,
    pulls: u64,
    /// Cloud time for pushes (the engine never reads a clock).
    now: Millis,
    #[cfg(feature = "testing")]
    faults: Faults,
}

#[derive(Default)]
struct CloudScope {
    /// Last version assigned in this scope.
    seq: u64,
    records: BTreeMap<Key, Stored>,
    /// Current version of each key (live or tombstone) -> key: the change feed.
    feed: BTreeMap<u64, Key>,
    totals: Snapshot,
    /// Tombstones at or below this version were purged; older checkpoints must reset.
    horizon: u64,
    updated_at: Option<String>,
    /// The last mutation each client applied to each record (see [`crate::mutation`]).
    applied: BTreeMap<(String, Key), AppliedMutation>,
}

#[derive(Clone)]
struct Stored {
    version: u64,
    updated_at: String,
    state: Option<(Data, RecordHash)>,
}

/// Faults to inject into the next pulls (feature `testing`).
#[cfg(feature = "testing")]
#[derive(Default, Debug, Clone)]
pub struct Faults {
    /// Fail this many next pulls with a network error.
    pub fail_pulls: u32,
    /// Drop the last change of the next page (the checkpoint still covers it).
    pub truncate_next: bool,
    /// Change the data of a record in the next page without fixing its hash.
    pub corrupt_next: bool,
    /// Answer the next pull with a reset.
    pub reset_next: bool,
    /// Fail the next push with a network error after applying it (the answer is lost).
    pub lose_push_answer: bool,
    /// Fail this many next pushes with a network error before applying anything.
    pub fail_pushes: u32,
    /// Refuse every push whose body is larger, as the reference server does (413, a
    /// `Protocol` error `BodyTooLarge`), until the faults are replaced.
    pub max_push_bytes: Option<usize>,
}

impl Cloud {
    /// An empty cloud.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes before it can panic; a poisoned lock holds whole state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates or replaces a record (the backend writing its own data); returns its version.
    /// `data` that is not a JSON object is stored as `{"value": data}`.
    pub fn put(
        &self,
        scope: &ScopeId,
        collection: &str,
        id: &str,
        data: serde_json::Value,
        at: Millis,
    ) -> u64 {
        let data = match data {
            serde_json::Value::Object(m) => m,
            other => {
                let mut m = Data::new();
                m.insert("value".into(), other);
                m
            }
        };
        self.lock()
            .scope(scope)
            .write(Key::new(collection, id), Some(data), at)
    }

    /// Deletes a record, leaving a tombstone; returns the tombstone's version (the current
    /// version if there was nothing to delete).
    pub fn delete(&self, scope: &ScopeId, collection: &str, id: &str, at: Millis) -> u64 {
        let mut inner = self.lock();
        let s = inner.scope(scope);
        let key = Key::new(collection, id);
        match s.records.get(&key) {
            Some(r) if r.state.is_some() => s.write(key, None, at),
            Some(r) => r.version,
            None => s.seq,
        }
    }

    /// Purges tombstones at or below `version`; checkpoints older than that get a reset.
    pub fn purge_tombstones(&self, scope: &ScopeId, version: u64) {
        let mut inner = self.lock();
        let s = inner.scope(scope);
        let dead: Vec<(u64, Key)> = s
            .feed
            .range(..=version)
            .filter(|(_, k)| s.records.get(*k).is_some_and(|r| r.state.is_none()))
            .map(|(v, k)| (*v, k.clone()))
            .collect();
        for (v, k) in dead {
            s.feed.remove(&v);
            s.records.remove(&k);
        }
        s.horizon = s.horizon.max(version);
    }

    /// Count and digest of the scope's live records.
    pub fn snapshot(&self, scope: &ScopeId) -> Snapshot {
        self.lock()
            .scopes
            .get(scope)
            .map(|s| s.totals)
            .unwrap_or_default()
    }

    /// A live record's data.
    pub fn record(&self, scope: &ScopeId, collection: &str, id: &str) -> Option<(u64, Data)> {
        let inner = self.lock();
        let r = inner
            .scopes
            .get(scope)?
            .records
            .get(&Key::new(collection, id))?;
        r.state.as_ref().map(|(d, _)| (r.version, d.clone()))
    }

    /// Sets the time stamped on records written by pushes.
    pub fn set_now(&self, now: Millis) {
        self.lock().now = now;
    }

    /// Pulls answered so far (resets and injected failures included).
    pub fn pulls(&self) -> u64 {
        self.lock().pulls
    }

    /// Sets the faults to inject (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn inject(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Answers a pull synchronously (what [`Remote::pull`] does).
    pub fn pull_now(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let mut inner = self.lock();
        inner.pulls += 1;
        #[cfg(feature = "testing")]
        {
            if inner.faults.fail_pulls > 0 {
                inner.faults.fail_pulls -= 1;
                return Err(Error::network("injected fault: pull failed"));
            }
            if std::mem::take(&mut inner.faults.reset_next) {
                return Ok(Pulled::Reset);
            }
        }
        let s = inner.scope(scope);
        let cursor = match checkpoint {
            None => Cursor::Initial {
                head: s.seq,
                after: 0,
            },
            Some(c) => Cursor::parse(&c.0)?,
        };
        let stale = match cursor {
            Cursor::Initial { head, .. } => head < s.horizon,
            Cursor::Feed(after) => after < s.horizon,
        };
        if stale {
            return Ok(Pulled::Reset);
        }
        let limit = limit.clamp(1, 10_000) as usize;
        let mut changes = Vec::with_capacity(limit.min(s.feed.len()));
        let (mut next, mut has_more) = (cursor, false);
        if let Cursor::Initial { head, after } = cursor {
            // The initial download streams the live records of the snapshot at `head`. Like
            // the reference server, only its first page leaves tombstones out: later pages
            // carry the tombstones of records deleted before the download started, which a
            // replica must take as the no-ops they are.
            let mut last = after;
            for (v, key) in s.feed.range(after + 1..=head) {
                let r = &s.records[key];
                if r.state.is_none() && after == 0 {
                    continue;
                }
                if changes.len() == limit {
                    has_more = true;
                    break;
                }
                last = *v;
                changes.push(change_of(key, r));
            }
            next = if has_more {
                Cursor::Initial { head, after: last }
            } else {
                Cursor::Feed(head)
            };
        }
        if let Cursor::Feed(after) = next {
            if !has_more {
                for (v, key) in s.feed.range(after + 1..) {
                    if changes.len() == limit {
                        has_more = true;
                        break;
                    }
                    next = Cursor::Feed(*v);
                    changes.push(change_of(key, &s.records[key]));
                }
                if !has_more {
                    next = Cursor::Feed(s.seq);
                }
            }
        }
        let snapshot = (!has_more).then_some(s.totals);
        let position = match next {
            Cursor::Initial { after, .. } | Cursor::Feed(after) => after,
        };
        let remaining = if has_more {
            s.seq.saturating_sub(position)
        } else {
            0
        };
        #[allow(unused_mut)]
        let mut page = Page {
            changes,
            checkpoint: Some(Checkpoint(next.to_string())),
            has_more,
            remaining: Some(remaining),
            snapshot,
        };
        #[cfg(feature = "testing")]
        {
            if std::mem::take(&mut inner.faults.truncate_next) {
                page.changes.pop();
            }
            if std::mem::take(&mut inner.faults.corrupt_next) {
                if let Some(c) = page.changes.iter_mut().find(|c| !c.deleted) {
                    if let Some(raw) = &mut c.data {
                        let mut m: Data = serde_json::from_str(raw.get()).expect("stored JSON");
                        m.insert("corrupted".into(), serde_json::Value::Bool(true));
                        *raw = serde_json::value::to_raw_value(&m).expect("JSON");
                    }
                }
            }
        }
        Ok(Pulled::Page { page, bytes: 0 })
    }

    /// Applies mutations synchronously (what [`Remote::push`] does).
    pub fn push_now(
        &self,
        scope: &ScopeId,
        mutations: &[Mutation],
        at: Millis,
    ) -> Result<PushResponse> {
        let mut inner = self.lock();
        #[cfg(feature = "testing")]
        if inner.faults.fail_pushes > 0 {
            inner.faults.fail_pushes -= 1;
            return Err(Error::network("injected fault: push failed"));
        }
        #[cfg(feature = "testing")]
        if let Some(max) = inner.faults.max_push_bytes {
            let body = serde_json::to_vec(&crate::types::PushRequest {
                mutations: mutations.to_vec(),
            })
            .map_err(|e| Error::invalid(e.to_string()))?;
            if body.len() > max {
                return Err(Error::protocol(format!(
                    "injected limit: a push body of {} bytes is over {max}",
                    body.len()
                ))
                .with_detail(crate::error::Detail::BodyTooLarge));
            }
        }
        let mut ids = Vec::with_capacity(mutations.len());
        for m in mutations {
            Key::new(&m.collection, &m.id).validate()?;
            if m.op == Op::Put && m.data.is_none() {
                return Err(Error::invalid(format!(
                    "put of {}/{} without data",
                    m.collection, m.id
                )));
            }
            ids.push(match &m.mutation_id {
                Some(text) => Some(MutationId::parse(text).ok_or_else(|| {
                    Error::invalid(format!("{text:?} is not a mutation id (client:seq)"))
                })?),
                None => None,
            });
        }
        let s = inner.scope(scope);
        let mut results = Vec::with_capacity(mutations.len());
        for (m, id) in mutations.iter().zip(ids) {
            let key = Key::new(&m.collection, &m.id);
            let hash = match m.op {
                Op::Put => m.data.as_ref().map(record_hash),
                Op::Delete => None,
            };
            let current = s.records.get(&key);
            let live = current.filter(|r| r.state.is_some()).map(|r| r.version);
            let memory = id
                .as_ref()
                .and_then(|id| s.applied.get(&(id.client.clone(), key.clone())));
            match judge(
                id.as_ref(),
                m.replaces,
                hash,
                m.base_version,
                live,
                current.map(|r| r.version),
                memory,
            ) {
                Judgement::Reject => {
                    results.push(MutationResult::Rejected {
                        current: current.map(|r| change_of(&key, r)),
                    });
                    continue;
                }
                Judgement::Repeat => {
                    results.extend(memory.map(AppliedMutation::result));
                    continue;
                }
                Judgement::Apply => {}
            }
            let version = match m.op {
                Op::Put => s.write(key.clone(), m.data.clone(), at),
                Op::Delete => s.write(key.clone(), None, at),
            };
            if let Some(id) = id {
                s.applied.insert(
                    (id.client, key),
                    AppliedMutation {
                        seq: id.seq,
                        version,
                        updated_at: rfc3339(at),
                        hash,
                    },
                );
            }
            results.push(MutationResult::Accepted {
                version,
                updated_at: rfc3339(at),
            });
        }
        #[cfg(feature = "testing")]
        if std::mem::take(&mut inner.faults.lose_push_answer) {
            return Err(Error::network("injected fault: push answer lost"));
        }
        Ok(PushResponse { results })
    }

    fn range_live<R>(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        f: impl FnOnce(&mut dyn Iterator<Item = (&Key, &Stored)>) -> R,
    ) -> R {
        let inner = self.lock();
        let empty = BTreeMap::new();
        let records = inner.scopes.get(scope).map_or(&empty, |s| &s.records);
        let mut it = records
            .iter()
            .filter(|(k, r)| r.state.is_some() && range.contains(k));
        f(&mut it)
    }
}

/// A position in a scope's feed, as written in a checkpoint.
///
/// `"N"`: every change up to version N has been seen. `"H:L"`: an initial download of the
/// snapshot at head H, done up to version L. An initial download cannot use plain `"L"`: its
/// pages go through old records first, and such a checkpoint would fall behind the tombstone
/// horizon (and get a reset) although the download started after every purge that matters.
/// What matters for the initial download is that H stays above the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Initial { head: u64, after: u64 },
    Feed(u64),
}

impl Cursor {
    fn parse(s: &str) -> Result<Cursor> {
        let bad = || Error::invalid(format!("checkpoint {s:?} is not one this cloud issued"));
        match s.split_once(':') {
            Some((h, l)) => {
                let head = h.parse().map_err(|_| bad())?;
                let after = l.parse().map_err(|_| bad())?;
                if after > head {
                    return Err(bad());
                }
                Ok(Cursor::Initial { head, after })
            }
            None => s.parse().map(Cursor::Feed).map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Initial { head, after } => write!(f, "{head}:{after}"),
            Cursor::Feed(after) => write!(f, "{after}"),
        }
    }
}

fn change_of(key: &Key, r: &Stored) -> Change {
    match &r.state {
        Some((data, _)) => Change::live(
            key.collection.clone(),
            key.id.clone(),
            r.version,
            r.updated_at.clone(),
            data,
        ),
        None => Change::tombstone(
            key.collection.clone(),
            key.id.clone(),
            r.version,
            r.updated_at.clone(),
        ),
    }
}

impl Inner {
    fn scope(&mut self, scope: &ScopeId) -> &mut CloudScope {
        self.scopes.entry(scope.clone()).or_default()
    }
}

impl CloudScope {
    fn write(&mut self, key: Key, data: Option<Data>, at: Millis) -> u64 {
        self.seq += 1;
        let version = self.seq;
        let state = data.map(|d| {
            let h = record_hash(&d);
            (d, h)
        });
        if let Some(old) = self.records.get(&key) {
            self.feed.remove(&old.version);
            if let Some((_, h)) = &old.state {
                self.totals.remove(&leaf(&key.collection, &key.id, h));
            }
        }
        if let Some((_, h)) = &state {
            self.totals.insert(&leaf(&key.collection, &key.id, h));
        }
        let updated_at = rfc3339(at);
        self.updated_at = Some(updated_at.clone());
        self.feed.insert(version, key.clone());
        self.records.insert(
            key,
            Stored {
                version,
                updated_at,
                state,
            },
        );
        version
    }
}

impl Remote for Cloud {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        self.pull_now(scope, checkpoint, limit)
    }

    fn can_push(&self) -> bool {
        true
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        let now = self.lock().now;
        self.push_now(scope, mutations, now)
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        let inner = self.lock();
        Ok(Some(match inner.scopes.get(scope) {
            Some(s) => RemoteStatus {
                count: s.totals.count,
                digest: s.totals.digest,
                version: s.seq,
                updated_at: s.updated_at.clone(),
            },
            None => RemoteStatus {
                count: 0,
                digest: Default::default(),
                version: 0,
                updated_at: None,
            },
        }))
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        Ok(Some(self.range_live(scope, range, |it| {
            let mut snap = Snapshot::default();
            for (k, r) in it {
                if let Some((_, h)) = &r.state {
                    snap.insert(&leaf(&k.collection, &k.id, h));
                }
            }
            snap
        })))
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        Ok(Some(self.range_live(scope, range, |it| {
            it.map(|(k, r)| change_of(k, r)).collect()
        })))
    }

    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        self.pull_subset_now(scope, sub, checkpoint, limit)
    }

    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        Ok(Some(self.subset_digest_now(scope, sub, range)))
    }

    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        Ok(Some(self.subset_records_now(scope, sub, range)))
    }
}
