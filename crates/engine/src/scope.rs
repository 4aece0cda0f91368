//! [`ScopeHandle`]: local reads, local edits, status and history of one scope over any
//! [`Store`]. The native and browser facades are thin wrappers around it.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result, RunError};
use crate::events::EventHub;
use crate::query::{Query, QueryPage};
pub use crate::rules::record_of;
use crate::rules::{plan_local_edit, LocalEdit, Row, ScopeState};
use crate::store::Store;
use crate::types::{Checkpoint, Conflict, Data, Key, Millis, Record, Run, RunStatus, ScopeId};

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
        } else if st.full_sync {
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
        })
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
