//! [`ScopeHandle`]: local reads, local edits, status and history of one scope over any
//! [`Store`]. The native and browser facades are thin wrappers around it.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result, RunError};
use crate::events::EventHub;
use crate::query::{Query, QueryPage};
pub use crate::rules::record_of;
use crate::rules::{plan_evict, plan_local_edit, Changeset, LocalEdit, Row, ScopeState};
use crate::store::Store;
use crate::subscription::{Held, Subscription};
use crate::types::{
    Checkpoint, Conflict, Data, Key, KeyRange, Millis, Record, Run, RunStatus, ScopeId,
};

/// One scope of a replica.
///
/// ```
/// # futures_executor::block_on(async {
/// use tether_engine::{memory::MemoryStore, ScopeHandle, ScopeId};
/// let store = MemoryStore::new();
/// let scope = ScopeHandle::new(&store, ScopeId::new("org-1").unwrap());
/// scope.put("objects", "obj_1", serde_json::json!({"name": "orders"})).await.unwrap();
/// let rec = scope.get("objects", "obj_1").await.unwrap().unwrap();
/// assert!(rec.pending);
/// assert_eq!(scope.count(Some("objects")).await.unwrap(), 1);
/// # });
/// ```
pub struct ScopeHandle<'a, S> {
    store: &'a S,
    scope: ScopeId,
    /// Where each local edit's visible changes are published, if anywhere.
    events: Option<&'a EventHub>,
}

/// Status of one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeStatus {
    /// Scope.
    pub scope: String,
    /// Stored checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// When the last run completed.
    pub last_synced_at: Option<Millis>,
    /// Live records of the cloud state held.
    pub count: u64,
    /// Digest of the cloud state held.
    pub digest: Digest,
    /// Records visible locally (cloud state plus local edits).
    pub visible: u64,
    /// Unpushed local edits.
    pub pending_edits: u64,
    /// Conflicts not yet dismissed.
    pub open_conflicts: u64,
    /// The error of the latest run, if it failed.
    pub last_error: Option<RunError>,
    /// A full download is under way (older rows are still readable).
    pub full_sync_in_progress: bool,
    /// Whether a sync is recommended now, and why.
    pub sync_recommended: bool,
    /// The subscriptions of a partial replica, with where each stands; empty: the replica
    /// holds the whole scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<Held>,
    /// Why a sync is recommended.
    pub reason: Option<String>,
}

/// Aggregates over the runs of the last days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Window, in days.
    pub days: u32,
    /// Runs started in the window.
    pub runs: u64,
    /// Completed runs.
    pub completed: u64,
    /// Failed runs.
    pub failed: u64,
    /// Cancelled runs.
    pub cancelled: u64,
    /// Completed / ended runs, in `[0, 1]`; `None` without ended runs.
    pub success_rate: Option<f64>,
    /// Mean duration of ended runs.
    pub mean_duration_ms: Option<f64>,
    /// Sum of inserted records.
    pub inserted: u64,
    /// Sum of updated records.
    pub updated: u64,
    /// Sum of deleted records.
    pub deleted: u64,
    /// Sum of conflicts.
    pub conflicts: u64,
    /// Sum of bytes received.
    pub bytes_received: u64,
}

/// Computes [`Stats`] from runs (pure).
pub fn stats_of(runs: &[Run], days: u32) -> Stats {
    let ended: Vec<&Run> = runs
        .iter()
        .filter(|r| r.status != RunStatus::Running)
        .collect();
    let count = |s| runs.iter().filter(|r| r.status == s).count() as u64;
    let completed = count(RunStatus::Completed);
    let durations: Vec<i64> = ended.iter().filter_map(|r| r.duration_ms()).collect();
    Stats {
        days,
        runs: runs.len() as u64,
        completed,
        failed: count(RunStatus::Failed),
        cancelled: count(RunStatus::Cancelled),
        success_rate: (!ended.is_empty()).then(|| completed as f64 / ended.len() as f64),
        mean_duration_ms: (!durations.is_empty())
            .then(|| durations.iter().sum::<i64>() as f64 / durations.len() as f64),
        inserted: runs.iter().map(|r| r.counts.inserted).sum(),
        updated: runs.iter().map(|r| r.counts.updated).sum(),
        deleted: runs.iter().map(|r| r.counts.deleted).sum(),
        conflicts: runs.iter().map(|r| r.counts.conflicts).sum(),
        bytes_received: runs.iter().map(|r| r.bytes_received).sum(),
    }
}

const DAY_MS: i64 = 86_400_000;

/// Rows read and evicted per transaction when subscriptions narrow.
const EVICT_BATCH: usize = 1000;

/// The subscriptions held but `sub`, with their priorities.
fn keep_others(held: &[Held], sub: &Subscription) -> Vec<(Subscription, u8)> {
    held.iter()
        .filter(|h| h.subscription != *sub)
        .map(|h| (h.subscription.clone(), h.priority))
        .collect()
}

/// Checks a list of subscriptions: each valid, none twice, at most [`MAX_SUBSCRIPTIONS`].
///
/// [`MAX_SUBSCRIPTIONS`]: crate::limits::MAX_SUBSCRIPTIONS
fn check_wanted(wanted: &[(Subscription, u8)]) -> Result<()> {
    if wanted.len() > crate::limits::MAX_SUBSCRIPTIONS {
        return Err(Error::invalid(format!(
            "a replica holds at most {} subscriptions of a scope, got {}",
            crate::limits::MAX_SUBSCRIPTIONS,
            wanted.len()
        ))
        .with_detail(crate::Detail::TooLarge));
    }
    for (i, (sub, _)) in wanted.iter().enumerate() {
        sub.validate()?;
        if wanted[..i].iter().any(|(s, _)| s == sub) {
            return Err(Error::invalid(format!(
                "the subscription {} is declared twice",
                sub.encode()
            )));
        }
    }
    Ok(())
}

/// The held state of `sub` when the subscriptions become a list holding it: its own if it was
/// held already; complete at a holder's checkpoint if a complete held subscription (or the
/// whole scope, synced) covers it; else not yet downloaded.
fn held_from(st: &ScopeState, sub: Subscription, priority: u8) -> Held {
    if let Some(old) = st.subscriptions.iter().find(|h| h.subscription == sub) {
        return Held {
            priority,
            ..old.clone()
        };
    }
    let holder = if st.subscriptions.is_empty() {
        st.checkpoint.clone().filter(|_| !st.full_sync)
    } else {
        st.subscriptions
            .iter()
            .find(|h| h.complete && h.subscription.covers(&sub))
            .and_then(|h| h.checkpoint.clone())
    };
    Held {
        complete: holder.is_some(),
        checkpoint: holder,
        ..Held::new(sub, priority)
    }
}

impl<'a, S: Store> ScopeHandle<'a, S> {
    /// A handle on `scope` of `store`.
    pub fn new(store: &'a S, scope: ScopeId) -> Self {
        ScopeHandle {
            store,
            scope,
            events: None,
        }
    }

    /// Publishes the visible changes of each local edit on `hub` (the
    /// [`events`](crate::events) module), right after the store committed it.
    pub fn events(mut self, hub: &'a EventHub) -> Self {
        self.events = Some(hub);
        self
    }

    /// The scope's id.
    pub fn id(&self) -> &ScopeId {
        &self.scope
    }

    /// A visible record (with any pending local edit applied).
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        Ok(self
            .row(collection, id)
            .await?
            .map(record_of)
            .transpose()?
            .flatten())
    }

    /// The row of a visible record, its data the text the store holds: [`ScopeHandle::get`]
    /// for a binding that hands the text on (the wasm API) rather than parse it here.
    pub async fn row(&self, collection: &str, id: &str) -> Result<Option<Row>> {
        let row = self
            .store
            .row(&self.scope, &Key::new(collection, id))
            .await?;
        Ok(row.filter(visible))
    }

    /// Visible records of a collection, ordered by id, after `after`, at most `limit`.
    pub async fn list(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let rows = self.list_rows(collection, after, limit).await?;
        let records = rows.into_iter().map(record_of);
        records.filter_map(Result::transpose).collect()
    }

    /// [`ScopeHandle::list`] as rows, their data the text the store holds.
    pub async fn list_rows(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let rows = self
            .store
            .list(&self.scope, collection, after, limit)
            .await?;
        Ok(rows.into_iter().filter(visible).collect())
    }

    /// Number of visible records, of one collection or all.
    pub async fn count(&self, collection: Option<&str>) -> Result<u64> {
        self.store.count(&self.scope, collection).await
    }

    /// The visible records a query selects on a declared index, in its order, a page at a
    /// time (see [`crate::query`]).
    ///
    /// ```
    /// # futures_executor::block_on(async {
    /// use serde_json::json;
    /// use tether_engine::{IndexSet, MemoryStore, Query, ScopeHandle, ScopeId, Store};
    /// let store = MemoryStore::new();
    /// let indexes = IndexSet::builder().index("columns", ["object_id", "position"]).build().unwrap();
    /// store.declare_indexes(&indexes).await.unwrap();
    /// while !store.build_indexes(1000).await.unwrap() {}
    /// let scope = ScopeHandle::new(&store, ScopeId::new("org-1").unwrap());
    /// for (id, pos) in [("c2", 2), ("c1", 1)] {
    ///     scope.put("columns", id, json!({"object_id": "obj_1", "position": pos})).await.unwrap();
    /// }
    /// let page = scope.query(&Query::on("columns", ["object_id", "position"]).eq([json!("obj_1")])).await.unwrap();
    /// let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    /// assert_eq!(ids, ["c1", "c2"]);
    /// # });
    /// ```
    pub async fn query(&self, query: &Query) -> Result<QueryPage> {
        let scan = query.plan(query.index_in(&self.store.indexes())?)?;
        let hits = self.store.scan(&self.scope, &scan).await?;
        QueryPage::of(&scan, hits)
    }

    /// [`ScopeHandle::query`]'s page as the rows of its visible records (their data the text
    /// the store holds) and the cursor.
    pub async fn query_rows(&self, query: &Query) -> Result<(Vec<Row>, Option<String>)> {
        let scan = query.plan(query.index_in(&self.store.indexes())?)?;
        let hits = self.store.scan(&self.scope, &scan).await?;
        let (mut rows, cursor) = crate::query::rows_of(&scan, hits);
        rows.retain(visible);
        Ok((rows, cursor))
    }

    /// The number of visible records a query selects (its `limit` and `after` ignored).
    pub async fn query_count(&self, query: &Query) -> Result<u64> {
        let scan = query.plan(query.index_in(&self.store.indexes())?)?;
        self.store.scan_count(&self.scope, &scan).await
    }

    /// Creates or replaces a record locally; the edit is pushed by the next sync. `data` must
    /// be a JSON object.
    pub async fn put(&self, collection: &str, id: &str, data: serde_json::Value) -> Result<()> {
        let data = match data {
            serde_json::Value::Object(m) => m,
            other => {
                return Err(Error::invalid(format!(
                    "record data must be a JSON object, got {}",
                    json_kind(&other)
                )))
            }
        };
        self.edit(Key::new(collection, id), Some(data)).await
    }

    /// Deletes a record locally; the edit is pushed by the next sync.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<()> {
        self.edit(Key::new(collection, id), None).await
    }

    async fn edit(&self, key: Key, data: Option<Data>) -> Result<()> {
        key.validate()?;
        let edit = LocalEdit { key, data };
        let applied = self
            .store
            .update(
                &self.scope,
                std::slice::from_ref(&edit.key),
                true,
                |st: &ScopeState, rows: &[Option<Row>]| {
                    plan_local_edit(st, rows.first().and_then(Option::as_ref), &edit)
                },
            )
            .await?;
        if let Some(hub) = self.events {
            hub.publish_applied(&self.scope, &applied, None);
        }
        Ok(())
    }

    /// Status at `now`; a sync is recommended when the scope was never synced, the last run
    /// failed, edits are pending, a full download is unfinished, or the last sync is older
    /// than `max_age_ms`.
    pub async fn status(&self, now: Millis, max_age_ms: i64) -> Result<ScopeStatus> {
        let st = self.store.scope_state(&self.scope).await?;
        let pending = self.store.pending_count(&self.scope).await?;
        let conflicts = self.store.conflicts(&self.scope).await?.len() as u64;
        let last = self.store.runs(&self.scope, 1).await?.into_iter().next();
        let last_error = last.as_ref().and_then(|r| r.error.clone());
        let reason = if st.synced_at.is_none() {
            Some("never synced")
        } else if last.as_ref().is_some_and(|r| r.status == RunStatus::Failed) {
            Some("the last sync failed")
        } else if st.full_sync || st.subscriptions.iter().any(|h| !h.complete) {
            Some("a full download is unfinished")
        } else if pending > 0 {
            Some("local edits are waiting to be pushed")
        } else if st.synced_at.is_some_and(|t| now - t > max_age_ms) {
            Some("the last sync is older than the sync interval")
        } else {
            None
        };
        Ok(ScopeStatus {
            scope: self.scope.to_string(),
            checkpoint: st.checkpoint,
            last_synced_at: st.synced_at,
            count: st.totals.count,
            digest: st.totals.digest,
            visible: self.store.count(&self.scope, None).await?,
            pending_edits: pending,
            open_conflicts: conflicts,
            last_error,
            full_sync_in_progress: st.full_sync,
            sync_recommended: reason.is_some(),
            reason: reason.map(str::to_owned),
            subscriptions: st.subscriptions,
        })
    }

    /// The subscriptions the replica holds of this scope (docs/partial-sync.md), in the order
    /// they were declared; empty when it holds the whole scope.
    pub async fn subscriptions(&self) -> Result<Vec<Held>> {
        Ok(self.store.scope_state(&self.scope).await?.subscriptions)
    }

    /// Whether every subscription of priority `priority` or higher (a lower number) has been
    /// downloaded to the end once, so what they select is in the replica. A whole scope is
    /// ready once synced.
    pub async fn is_ready(&self, priority: u8) -> Result<bool> {
        let st = self.store.scope_state(&self.scope).await?;
        if st.subscriptions.is_empty() {
            return Ok(st.synced_at.is_some() && !st.full_sync);
        }
        Ok(st
            .subscriptions
            .iter()
            .filter(|h| h.priority <= priority)
            .all(|h| h.complete))
    }

    /// Replaces the replica's subscriptions of this scope with `wanted` (subscription and
    /// priority, 0 the highest); an empty list makes it a whole-scope replica again (the next
    /// sync downloads what it lacks; what it holds comes as unchanged). Returns the number of
    /// records evicted.
    ///
    /// A subscription kept keeps its progress; a new one that a complete one (or the whole
    /// scope, synced) covers starts where that one stands and downloads nothing; any other
    /// starts from the beginning at the next sync. Held records that no subscription selects
    /// any more leave the replica now (change events mark them `evicted`), except records with
    /// a pending edit, which stay until the edit is answered. Each subscription is checked
    /// ([`Subscription::validate`]); at most [`MAX_SUBSCRIPTIONS`] of them, none twice.
    ///
    /// [`MAX_SUBSCRIPTIONS`]: crate::limits::MAX_SUBSCRIPTIONS
    ///
    /// ```
    /// # futures_executor::block_on(async {
    /// use serde_json::json;
    /// use tether_engine::{memory::MemoryStore, subscription::Subscription, ScopeHandle, ScopeId};
    /// let store = MemoryStore::new();
    /// let scope = ScopeHandle::new(&store, ScopeId::new("org-1").unwrap());
    /// let repos = Subscription::new("repositories");
    /// let files = Subscription::new("files").with_filter("repository", [json!("repo_1")]);
    /// scope.set_subscriptions(vec![(repos, 0), (files, 1)]).await.unwrap();
    /// assert_eq!(scope.subscriptions().await.unwrap().len(), 2);
    /// assert!(!scope.is_ready(0).await.unwrap(), "nothing downloaded yet");
    /// # });
    /// ```
    pub async fn set_subscriptions(&self, wanted: Vec<(Subscription, u8)>) -> Result<u64> {
        self.change_subscriptions(move |_| Ok(wanted)).await
    }

    /// Adds a subscription (or changes its priority), keeping the others.
    pub async fn add_subscription(&self, sub: Subscription, priority: u8) -> Result<()> {
        self.change_subscriptions(move |held| {
            let mut wanted = keep_others(held, &sub);
            wanted.push((sub, priority));
            Ok(wanted)
        })
        .await
        .map(|_| ())
    }

    /// Removes a subscription, evicting what no other selects; returns the number of records
    /// evicted. Removing the last one makes the replica whole again (no subscription selects
    /// the whole scope), as `set_subscriptions(vec![])` does.
    pub async fn remove_subscription(&self, sub: &Subscription) -> Result<u64> {
        let sub = sub.clone();
        self.change_subscriptions(move |held| Ok(keep_others(held, &sub)))
            .await
    }

    /// Replaces the subscriptions with what `change` makes of the held ones, read and written
    /// in one transaction (two changes at once never lose one), then evicts what the new set no
    /// longer selects. The eviction is marked in the same transaction
    /// ([`ScopeState::evicting`]), so one cut short by a crash is finished by the next sync.
    async fn change_subscriptions(
        &self,
        change: impl FnOnce(&[Held]) -> Result<Vec<(Subscription, u8)>> + crate::store::MaybeSend,
    ) -> Result<u64> {
        let narrowed = std::sync::atomic::AtomicBool::new(false);
        self.store
            .update(
                &self.scope,
                &[],
                false,
                |st: &ScopeState, _: &[Option<Row>]| {
                    let wanted = change(&st.subscriptions)?;
                    check_wanted(&wanted)?;
                    let mut scope = st.clone();
                    scope.subscriptions = wanted
                        .into_iter()
                        .map(|(sub, priority)| held_from(st, sub, priority))
                        .collect();
                    let kept_all = st.subscriptions.iter().all(|old| {
                        scope
                            .subscriptions
                            .iter()
                            .any(|new| new.subscription.covers(&old.subscription))
                    });
                    let narrows = !scope.subscriptions.is_empty()
                        && (st.subscriptions.is_empty() || !kept_all);
                    narrowed.store(narrows, std::sync::atomic::Ordering::Relaxed);
                    scope.evicting = narrows;
                    if scope.subscriptions.is_empty() != st.subscriptions.is_empty() {
                        // Whole to partial: the scope's checkpoint is unused from now on; partial
                        // to whole: the next sync downloads the scope in full.
                        scope.checkpoint = None;
                        scope.full_sync = false;
                    }
                    Ok(Changeset {
                        scope,
                        ..Changeset::default()
                    })
                },
            )
            .await?;
        if !narrowed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(0);
        }
        self.evict_unselected().await
    }

    /// Evicts every held row no subscription selects, in transactions of [`EVICT_BATCH`] rows,
    /// then clears [`ScopeState::evicting`]. A sync calls it first when a narrowing's eviction
    /// was cut short.
    pub(crate) async fn evict_unselected(&self) -> Result<u64> {
        let mut evicted = 0;
        let mut from: Option<Key> = None;
        loop {
            let range = KeyRange {
                from: from.clone(),
                to: None,
            };
            let mut keys = self
                .store
                .range_keys(&self.scope, &range, EVICT_BATCH + 1)
                .await?;
            if from.is_some() && keys.first() == from.as_ref() {
                keys.remove(0);
            }
            let Some(last) = keys.last().cloned() else {
                self.store
                    .update(
                        &self.scope,
                        &[],
                        false,
                        |st: &ScopeState, _: &[Option<Row>]| {
                            Ok(Changeset {
                                scope: ScopeState {
                                    evicting: false,
                                    ..st.clone()
                                },
                                ..Changeset::default()
                            })
                        },
                    )
                    .await?;
                return Ok(evicted);
            };
            let applied = self
                .store
                .update(
                    &self.scope,
                    &keys,
                    true,
                    |st: &ScopeState, rows: &[Option<Row>]| plan_evict(st, rows),
                )
                .await?;
            evicted += applied.counts.deleted;
            if let Some(hub) = self.events {
                hub.publish_applied(&self.scope, &applied, None);
            }
            from = Some(last);
        }
    }

    /// The latest runs, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<Run>> {
        self.store.runs(&self.scope, limit).await
    }

    /// Aggregates over the runs started in the last `days` days before `now`.
    pub async fn stats(&self, now: Millis, days: u32) -> Result<Stats> {
        let runs = self
            .store
            .runs_since(&self.scope, now - i64::from(days) * DAY_MS)
            .await?;
        Ok(stats_of(&runs, days))
    }

    /// Open conflicts, oldest first.
    pub async fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.store.conflicts(&self.scope).await
    }

    /// Dismisses a conflict; an unknown id is an [`Error::InvalidInput`].
    pub async fn dismiss_conflict(&self, id: u64) -> Result<()> {
        if self.store.dismiss_conflict(&self.scope, id).await? {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "no conflict with id {id} in scope {}",
                self.scope
            )))
        }
    }
}

/// Whether a row is a visible record (not a pending local delete): what [`record_of`] keeps.
fn visible(row: &Row) -> bool {
    row.data.is_some() && row.hash.is_some()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
