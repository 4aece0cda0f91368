//! [`MemoryStore`], the reference store: every [`Store`] operation over ordered maps behind one
//! mutex. It is what the other stores are measured against in the conformance suite, and with
//! [`MemoryStore::export`] / [`MemoryStore::import`] it serves hosts with no database (a Node
//! extension host can persist the snapshot wherever it likes).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::digest::Snapshot;
use crate::doc::Doc;
use crate::error::{Error, Result, RunError};
use crate::query::{ByteRange, Hit, IndexSet, IndexSpec, Order, Scan};
use crate::rules::{Prior, Row, RowWrite, ScopeState};
use crate::store::{snapshot_of, Applied, Planner, Store};
use crate::types::{Conflict, Data, Key, KeyRange, Millis, Run, RunStatus, ScopeId};

/// An in-memory replica store.
///
/// ```
/// use tether_engine::memory::MemoryStore;
/// let store = MemoryStore::new();
/// let copy = MemoryStore::import(&store.export()).unwrap();
/// assert_eq!(copy.export(), store.export());
/// ```
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Inner {
    scopes: BTreeMap<ScopeId, ScopeData>,
    runs: BTreeMap<u64, Run>,
    next_conflict: u64,
    next_run: u64,
    /// Declared indexes and their entries; not exported (a replica declares its indexes when
    /// it is opened, and an imported store builds them again).
    #[serde(skip)]
    indexes: Indexes,
}

/// The reference index: ordered entries `(index, scope, key, id)`, ids compared as UTF-8 bytes
/// (`String`'s order), so a range of the set is a range of the index in scan order.
#[derive(Default, Clone)]
struct Indexes {
    declared: IndexSet,
    /// Indexes still building, by qualified name, with the last `(scope, key)` built.
    building: BTreeMap<String, Option<(ScopeId, Key)>>,
    entries: BTreeSet<(String, ScopeId, Vec<u8>, String)>,
}

impl Indexes {
    /// Replaces the entries of `key` from `old` data to `new` data.
    fn reindex(&mut self, scope: &ScopeId, key: &Key, old: Option<&Data>, new: Option<&Data>) {
        for spec in self.declared.of(&key.collection) {
            let q = spec.qualified();
            if let Some(d) = old {
                self.entries
                    .remove(&(q.clone(), scope.clone(), spec.key_of(d), key.id.clone()));
            }
            if let Some(d) = new {
                self.entries
                    .insert((q, scope.clone(), spec.key_of(d), key.id.clone()));
            }
        }
    }

    fn ready(&self, scan: &Scan) -> Result<(&IndexSpec, String)> {
        let spec = self
            .declared
            .get(&scan.collection, &scan.index)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "no index {}.{} is declared",
                    scan.collection, scan.index
                ))
            })?;
        let q = spec.qualified();
        if self.building.contains_key(&q) {
            return Err(Error::invalid(format!("index {q} is still being built")));
        }
        Ok((spec, q))
    }

    /// The entries a scan selects, in its order.
    fn select<'a>(
        &'a self,
        scope: &'a ScopeId,
        q: &'a str,
        scan: &'a Scan,
    ) -> Box<dyn Iterator<Item = &'a (String, ScopeId, Vec<u8>, String)> + 'a> {
        let range = move |r: &'a ByteRange| {
            let lo = (q.to_owned(), scope.clone(), r.from.clone(), String::new());
            // Index keys start with a type tag below 0xFF, so `[0xFF]` is past every key.
            let to = r.to.clone().unwrap_or_else(|| vec![0xFF]);
            let hi = Bound::Excluded((q.to_owned(), scope.clone(), to, String::new()));
            self.entries.range((Bound::Included(lo), hi))
        };
        let admitted = move |e: &&(String, ScopeId, Vec<u8>, String)| scan.admits(&e.2, &e.3);
        match scan.order {
            Order::Asc => Box::new(scan.ranges.iter().flat_map(range).filter(admitted)),
            Order::Desc => Box::new(
                scan.ranges
                    .iter()
                    .rev()
                    .flat_map(move |r| range(r).rev())
                    .filter(admitted),
            ),
        }
    }
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct ScopeData {
    state: ScopeState,
    #[serde(with = "rows_as_vec")]
    rows: BTreeMap<Key, Row>,
    conflicts: BTreeMap<u64, Conflict>,
}

mod rows_as_vec {
    use super::*;
    pub(super) fn serialize<S: serde::Serializer>(
        m: &BTreeMap<Key, Row>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.values())
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Key, Row>, D::Error> {
        let rows = Vec::<Row>::deserialize(d)?;
        // Inserted one by one rather than collected: `collect` sorts the pairs first, one more
        // standard-library sort in the wasm. The last row of a key wins either way.
        let mut map = BTreeMap::new();
        for r in rows {
            map.insert(r.key.clone(), r);
        }
        Ok(map)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole store as JSON.
    pub fn export(&self) -> String {
        // Serializing plain maps of strings and numbers cannot fail.
        serde_json::to_string(&*self.lock()).unwrap_or_default()
    }

    /// A store from [`MemoryStore::export`]'s JSON.
    pub fn import(json: &str) -> Result<Self> {
        // From bytes, as the protocol's answers are read: one serde_json reader in the wasm.
        let inner: Inner = serde_json::from_slice(json.as_bytes())
            .map_err(|e| Error::invalid(format!("not a memory store snapshot: {e}")))?;
        Ok(MemoryStore {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written transaction: writes happen
        // on a copy that replaces the original only when complete. So a poisoned lock is safe.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn range_iter<'a>(rows: &'a BTreeMap<Key, Row>, range: &KeyRange) -> impl Iterator<Item = &'a Row> {
    let lo = match &range.from {
        Some(k) => Bound::Included(k.clone()),
        None => Bound::Unbounded,
    };
    let hi = match &range.to {
        Some(k) => Bound::Excluded(k.clone()),
        None => Bound::Unbounded,
    };
    let empty = matches!((&lo, &hi), (Bound::Included(a), Bound::Excluded(b)) if a >= b);
    let it = if empty {
        None
    } else {
        Some(rows.range((lo, hi)).map(|(_, r)| r))
    };
    it.into_iter().flatten()
}

impl Inner {
    /// Plans and writes one transaction. The plan is pure and the writes that follow cannot
    /// fail, so a failure leaves the store as it was.
    fn commit(&mut self, scope: &ScopeId, keys: &[Key], planner: impl Planner) -> Result<Applied> {
        let existing = self.scopes.get(scope);
        let state = existing.map(|d| d.state.clone()).unwrap_or_default();
        let rows: Vec<Option<Row>> = keys
            .iter()
            .map(|k| existing.and_then(|d| d.rows.get(k).cloned()))
            .collect();
        let changes = planner(&state, &rows)?;
        // The reference store checks the planner's side of the contract (in debug builds):
        // every write names the row it replaces, as it was handed to the planner.
        debug_assert!(
            changes.rows.iter().all(|w| match w.prior() {
                Some(p) => rows
                    .get(p.slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|r| &r.key == w.key() && Prior::of(p.slot, r) == *p),
                None => !existing.is_some_and(|d| d.rows.contains_key(w.key())),
            }),
            "a write's prior is not the row it replaces"
        );
        // The data each write moves in the indexes, parsed before anything is written.
        let parse = |d: Option<&Doc>| d.map(Doc::to_data).transpose();
        let reindex = changes
            .rows
            .iter()
            .map(|w| {
                if matches!(w, RowWrite::Touch { .. })
                    || !self.indexes.declared.covers(&w.key().collection)
                {
                    return Ok(None);
                }
                let old = existing.and_then(|d| d.rows.get(w.key()));
                let new = match w {
                    RowWrite::Put { row, .. } => row.data.as_ref(),
                    _ => None,
                };
                Ok(Some((
                    parse(old.and_then(|r| r.data.as_ref()))?,
                    parse(new)?,
                )))
            })
            .collect::<Result<Vec<_>>>()?;
        let data = self.scopes.entry(scope.clone()).or_default();
        data.state = changes.scope.clone();
        for (w, moved) in changes.rows.iter().zip(reindex) {
            if let Some((old, new)) = moved {
                self.indexes
                    .reindex(scope, w.key(), old.as_ref(), new.as_ref());
            }
            match w {
                RowWrite::Put { row, .. } => {
                    data.rows.insert(row.key.clone(), row.clone());
                }
                RowWrite::Touch {
                    key,
                    version,
                    updated_at,
                    cloud_hash,
                    generation,
                    pending,
                    sent,
                    ..
                } => {
                    if let Some(row) = data.rows.get_mut(key) {
                        row.version = *version;
                        row.updated_at.clone_from(updated_at);
                        row.cloud_hash = *cloud_hash;
                        row.generation = *generation;
                        row.pending = *pending;
                        row.sent = *sent;
                    }
                }
                RowWrite::Remove { key, .. } => {
                    data.rows.remove(key);
                }
            }
        }
        for c in &changes.conflicts {
            self.next_conflict += 1;
            let id = self.next_conflict;
            data.conflicts.insert(id, Conflict { id, ..c.clone() });
        }
        Ok(Applied::of(&changes))
    }
}

impl Store for MemoryStore {
    async fn scope_state(&self, scope: &ScopeId) -> Result<ScopeState> {
        Ok(self
            .lock()
            .scopes
            .get(scope)
            .map(|d| d.state.clone())
            .unwrap_or_default())
    }

    async fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        _with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.lock().commit(scope, keys, planner)
    }

    async fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        let keys: Vec<Key> = {
            let guard = self.lock();
            guard
                .scopes
                .get(scope)
                .map(|d| {
                    d.rows
                        .values()
                        .filter(|r| r.generation < generation)
                        .map(|r| r.key.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        self.update(scope, &keys, true, planner).await
    }

    async fn row(&self, scope: &ScopeId, key: &Key) -> Result<Option<Row>> {
        Ok(self
            .lock()
            .scopes
            .get(scope)
            .and_then(|d| d.rows.get(key).cloned()))
    }

    async fn list(
        &self,
        scope: &ScopeId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let guard = self.lock();
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        let from = Key::new(collection, after.unwrap_or(""));
        Ok(d.rows
            .range(from..)
            .map(|(_, r)| r)
            .take_while(|r| r.key.collection == collection)
            .filter(|r| after.is_none_or(|a| r.key.id.as_str() > a) && r.data.is_some())
            .take(limit)
            .cloned()
            .collect())
    }

    async fn count(&self, scope: &ScopeId, collection: Option<&str>) -> Result<u64> {
        let guard = self.lock();
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(0);
        };
        Ok(d.rows
            .values()
            .filter(|r| r.data.is_some() && collection.is_none_or(|c| r.key.collection == c))
            .count() as u64)
    }

    async fn pending(
        &self,
        scope: &ScopeId,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let guard = self.lock();
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<Row> = d
            .rows
            .values()
            .filter(|r| r.pending.is_some_and(|s| after_seq.is_none_or(|a| s > a)))
            .cloned()
            .collect();
        crate::sort::sort_by(&mut rows, |a, b| a.pending.cmp(&b.pending));
        rows.truncate(limit);
        Ok(rows)
    }

    async fn pending_count(&self, scope: &ScopeId) -> Result<u64> {
        let guard = self.lock();
        Ok(guard.scopes.get(scope).map_or(0, |d| {
            d.rows.values().filter(|r| r.pending.is_some()).count() as u64
        }))
    }

    async fn conflicts(&self, scope: &ScopeId) -> Result<Vec<Conflict>> {
        let guard = self.lock();
        Ok(guard
            .scopes
            .get(scope)
            .map(|d| d.conflicts.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn dismiss_conflict(&self, scope: &ScopeId, id: u64) -> Result<bool> {
        let mut guard = self.lock();
        Ok(guard
            .scopes
            .get_mut(scope)
            .is_some_and(|d| d.conflicts.remove(&id).is_some()))
    }

    async fn start_run(&self, run: &Run) -> Result<u64> {
        let mut guard = self.lock();
        for r in guard.runs.values_mut() {
            if r.scope == run.scope && r.status == RunStatus::Running {
                r.status = RunStatus::Failed;
                r.error = Some(RunError::interrupted());
            }
        }
        guard.next_run += 1;
        let id = guard.next_run;
        guard.runs.insert(id, Run { id, ..run.clone() });
        Ok(id)
    }

    async fn finish_run(&self, run: &Run) -> Result<()> {
        let mut guard = self.lock();
        match guard.runs.get_mut(&run.id) {
            Some(r) => {
                *r = run.clone();
                Ok(())
            }
            None => Err(Error::storage(format!("no run with id {}", run.id))),
        }
    }

    async fn runs(&self, scope: &ScopeId, limit: usize) -> Result<Vec<Run>> {
        let guard = self.lock();
        Ok(guard
            .runs
            .values()
            .rev()
            .filter(|r| r.scope == scope.as_str())
            .take(limit)
            .cloned()
            .collect())
    }

    async fn runs_since(&self, scope: &ScopeId, since: Millis) -> Result<Vec<Run>> {
        let guard = self.lock();
        Ok(guard
            .runs
            .values()
            .rev()
            .filter(|r| r.scope == scope.as_str() && r.started_at >= since)
            .cloned()
            .collect())
    }

    async fn range_snapshot(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> Result<Snapshot> {
        let guard = self.lock();
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(Snapshot::default());
        };
        Ok(snapshot_of(range_iter(&d.rows, range), rehash))
    }

    async fn range_keys(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Key>> {
        let guard = self.lock();
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        Ok(range_iter(&d.rows, range)
            .take(limit)
            .map(|r| r.key.clone())
            .collect())
    }

    async fn nth_key(&self, scope: &ScopeId, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let guard = self.lock();
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(None);
        };
        let key = range_iter(&d.rows, range)
            .nth(offset as usize)
            .map(|r| r.key.clone());
        Ok(key)
    }

    async fn scopes(&self) -> Result<Vec<ScopeId>> {
        Ok(self.lock().scopes.keys().cloned().collect())
    }

    fn indexes(&self) -> IndexSet {
        self.lock().indexes.declared.clone()
    }

    async fn declare_indexes(&self, indexes: &IndexSet) -> Result<()> {
        let mut guard = self.lock();
        let ix = &mut guard.indexes;
        let keep: BTreeSet<String> = indexes.iter().map(IndexSpec::qualified).collect();
        let new: Vec<String> = indexes
            .iter()
            .filter(|s| ix.declared.get(&s.collection, &s.name) != Some(s))
            .map(IndexSpec::qualified)
            .collect();
        // Dropped indexes, and indexes whose paths changed, lose their entries.
        ix.entries
            .retain(|e| keep.contains(&e.0) && !new.contains(&e.0));
        ix.building.retain(|q, _| keep.contains(q));
        for q in new {
            ix.building.insert(q, None);
        }
        ix.declared = indexes.clone();
        Ok(())
    }

    async fn build_indexes(&self, batch: usize) -> Result<bool> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some((q, from)) = inner
            .indexes
            .building
            .iter()
            .next()
            .map(|(q, c)| (q.clone(), c.clone()))
        else {
            return Ok(true);
        };
        let Some(spec) = inner
            .indexes
            .declared
            .iter()
            .find(|s| s.qualified() == q)
            .cloned()
        else {
            return Err(Error::storage(format!(
                "index {q} is building but not declared"
            )));
        };
        let mut done = 0;
        let mut last = None;
        'scopes: for (scope, d) in &inner.scopes {
            if from.as_ref().is_some_and(|(s, _)| s > scope) {
                continue;
            }
            for (key, row) in d.rows.range(Key::new(spec.collection.as_str(), "")..) {
                if key.collection != spec.collection {
                    break;
                }
                if from.as_ref().is_some_and(|(s, k)| s == scope && k >= key) {
                    continue;
                }
                if done == batch {
                    break 'scopes;
                }
                if let Some(data) = row.data.as_ref().map(Doc::to_data).transpose()? {
                    inner.indexes.entries.insert((
                        q.clone(),
                        scope.clone(),
                        spec.key_of(&data),
                        key.id.clone(),
                    ));
                }
                last = Some((scope.clone(), key.clone()));
                done += 1;
            }
        }
        if done < batch {
            inner.indexes.building.remove(&q);
        } else {
            inner.indexes.building.insert(q, last);
        }
        Ok(inner.indexes.building.is_empty())
    }

    async fn scan(&self, scope: &ScopeId, scan: &Scan) -> Result<Vec<Hit>> {
        let guard = self.lock();
        let (_, q) = guard.indexes.ready(scan)?;
        let Some(d) = guard.scopes.get(scope) else {
            return Ok(Vec::new());
        };
        let hits = guard
            .indexes
            .select(scope, &q, scan)
            .take(scan.limit.unwrap_or(usize::MAX))
            .map(|e| {
                let key = Key::new(scan.collection.as_str(), e.3.as_str());
                d.rows
                    .get(&key)
                    .map(|row| Hit {
                        key: e.2.clone(),
                        row: row.clone(),
                    })
                    .ok_or_else(|| Error::storage(format!("index {q} names a missing row {}", e.3)))
            })
            .collect();
        hits
    }

    async fn scan_count(&self, scope: &ScopeId, scan: &Scan) -> Result<u64> {
        let guard = self.lock();
        let (_, q) = guard.indexes.ready(scan)?;
        let all = Scan {
            after: None,
            limit: None,
            ..scan.clone()
        };
        Ok(guard.indexes.select(scope, &q, &all).count() as u64)
    }
}
