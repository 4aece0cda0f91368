//! The consumer: one per database (an advisory lock elects it among instances), it moves what
//! the capture triggers queued, and whole tables when they are first declared, changed or
//! truncated, into `records`.
//!
//! Each step reads in one `REPEATABLE READ` snapshot (the queued keys and the rows they name,
//! or a page of a table) and then writes, under the scopes' locks, in a second transaction
//! that also deletes the queue entries it handled or records how far a pass got. Steps run one
//! after another on one connection, so each reads a snapshot newer than everything already
//! written: a row is never written older than it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_engine::digest::record_hash_with;
use tether_engine::limits::{self, PAGE_BYTES};
use tether_engine::{Key, ScopeId};
use tokio_postgres::{Client, IsolationLevel, NoTls, Transaction};

use super::catalog::{self, Plan};

mod pass;
use super::config::Sources;
use super::{capture, SourceState, SourceStatus};
use crate::live::ChangeHub;
use crate::storage::postgres::{bulk_write, lock_scope, BulkWrite, PgStorage, Unchanged};
use crate::storage::StorageError;

/// Queue entries one step reads at most; it handles those whose rows it read before the data
/// passed [`PAGE_BYTES`] (read [`PORTAL_BATCH`] keys at a time at most).
const QUEUE_BATCH: i64 = 5_000;
/// Rows of a table one step of a pass reads at most (and at most about [`PAGE_BYTES`] of
/// data, read [`PORTAL_BATCH`] rows at a time).
const PASS_PAGE: usize = 5_000;
/// Most rows a pass reads from its portal at once.
const PORTAL_BATCH: i32 = 500;
/// Records one step of a sweep checks.
const SWEEP_PAGE: i64 = 5_000;
/// A pass logs its progress every this many rows.
const PROGRESS_EVERY: i64 = 100_000;
/// Pause when there was nothing to do: the longest a change waits in the queue when idle.
const POLL: Duration = Duration::from_millis(50);
/// How often a waiting instance tries to become the consumer, and a consumer checks the
/// tables' shapes and retries broken sources.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Key of the advisory lock that elects the consumer (with the hash of Tether's schema).
const CONSUMER_LOCK: i32 = 7411;

/// Runs for ever: connects, waits to be the consumer, consumes; reconnects after a failure.
pub(crate) async fn run(
    storage: PgStorage,
    sources: Arc<Sources>,
    status: Arc<SourceStatus>,
    hub: Arc<ChangeHub>,
) {
    let config = super::session_config(&storage);
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = async {
            let (mut client, connection) = config.connect(NoTls).await?;
            let conn = tokio::spawn(connection);
            let result = async {
                loop {
                    let locked: bool = client
                        .query_one(
                            "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                            &[&CONSUMER_LOCK],
                        )
                        .await?
                        .get(0);
                    if locked {
                        break;
                    }
                    tokio::time::sleep(CHECK_EVERY).await;
                }
                status.set_consumer(true);
                tracing::info!("this instance consumes the declared sources' changes");
                let mut consumer = Consumer {
                    schema: storage.schema().to_string(),
                    sources: sources.clone(),
                    status: status.clone(),
                    hub: hub.clone(),
                    plans: BTreeMap::new(),
                    broken: BTreeMap::new(),
                };
                consumer.consume(&mut client).await
            }
            .await;
            status.set_consumer(false);
            conn.abort();
            result
        }
        .await;
        match result {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = %e, "declared sources: the consumer stopped; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

struct Consumer {
    schema: String,
    sources: Arc<Sources>,
    status: Arc<SourceStatus>,
    hub: Arc<ChangeHub>,
    /// Sources being read, by collection.
    plans: BTreeMap<String, Plan>,
    /// Sources that cannot be read now, by collection, with why; retried every check.
    broken: BTreeMap<String, String>,
}

/// What a step wrote, per scope.
type Batches = BTreeMap<String, Vec<BulkWrite>>;

/// A key named by queue entries of one step: the scopes it was seen in, the entries' ids.
struct Touched {
    collection: String,
    key: String,
    scopes: BTreeSet<String>,
    ids: Vec<i64>,
}

impl Consumer {
    async fn consume(&mut self, client: &mut Client) -> Result<(), StorageError> {
        self.forget_undeclared(client).await?;
        for source in self.sources.sources.clone() {
            self.prepare(client, &source.collection).await?;
        }
        let mut checked = Instant::now();
        loop {
            let mut worked = self.queue_step(client).await?;
            worked |= self.pass_step(client).await?;
            if checked.elapsed() >= CHECK_EVERY {
                checked = Instant::now();
                self.check(client).await?;
            }
            if !worked {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Resolves a source and installs its capture; a new or changed source starts a pass.
    /// A source that cannot be read is marked broken (reported, retried), never fatal.
    async fn prepare(&mut self, client: &mut Client, collection: &str) -> Result<(), StorageError> {
        let Some(source) = self.sources.of_collection(collection).cloned() else {
            return Ok(());
        };
        let tx = client.transaction().await?;
        let plan = match catalog::resolve(&tx, &self.sources, &source).await {
            Ok(plan) => plan,
            Err(e) => {
                drop(tx);
                self.mark_broken(collection, e.message);
                return Ok(());
            }
        };
        if let Err(e) = capture::install(&tx, &self.schema, &plan).await {
            drop(tx);
            self.mark_broken(
                collection,
                format!("installing the capture triggers: {}", pg(&e)),
            );
            return Ok(());
        }
        let stored: Option<String> = tx
            .query_opt(
                "SELECT fingerprint FROM sources WHERE collection = $1",
                &[&collection],
            )
            .await?
            .map(|r| r.get(0));
        // A source seen broken may have been dropped and created again: send it again too.
        let was_broken = self.broken.contains_key(collection);
        if stored.as_deref() != Some(plan.fingerprint.as_str()) || was_broken {
            // Nothing to sweep after the pass if no live record of the collection exists yet
            // (a first declaration): every record it will hold comes from the table.
            let sweep: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM records WHERE collection = $1 AND NOT deleted)",
                    &[&collection],
                )
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO sources (collection, relation, fingerprint, pass, pass_after, sent,
                   sweep)
                 VALUES ($1, $2, $3, 'send', NULL, 0, $4)
                 ON CONFLICT (collection) DO UPDATE SET relation = EXCLUDED.relation,
                   fingerprint = EXCLUDED.fingerprint, pass = 'send', pass_after = NULL, sent = 0,
                   sweep = EXCLUDED.sweep",
                &[
                    &collection,
                    &plan.source.relation(),
                    &plan.fingerprint,
                    &sweep,
                ],
            )
            .await?;
            tracing::info!(
                collection,
                table = plan.source.relation().as_str(),
                "declared source: sending the table's rows (new, changed or recreated)"
            );
        }
        let passing = tx
            .query_one(
                "SELECT pass IS NOT NULL FROM sources WHERE collection = $1",
                &[&collection],
            )
            .await?
            .get(0);
        tx.commit().await?;
        self.broken.remove(collection);
        self.status.set(collection, SourceState::Live);
        self.status.set_passing(collection, passing);
        self.plans.insert(collection.to_string(), plan);
        Ok(())
    }

    fn mark_broken(&mut self, collection: &str, why: String) {
        if self.broken.get(collection) != Some(&why) {
            tracing::error!(
                collection,
                reason = why.as_str(),
                "declared source cannot be read"
            );
        }
        self.plans.remove(collection);
        self.status
            .set(collection, SourceState::Broken(why.clone()));
        self.broken.insert(collection.to_string(), why);
    }

    /// Sources of an earlier configuration: their capture stops, their queue is emptied. Their
    /// records stay (served, and writable through the admin API again).
    async fn forget_undeclared(&mut self, client: &mut Client) -> Result<(), StorageError> {
        let tx = client.transaction().await?;
        let rows = tx
            .query("SELECT collection, relation FROM sources", &[])
            .await?;
        for r in rows {
            let (collection, relation): (String, String) = (r.get(0), r.get(1));
            if self.sources.of_collection(&collection).is_some() {
                continue;
            }
            let drops = capture::disable(&tx, &self.schema, &collection, &relation).await?;
            tx.execute(
                "DELETE FROM source_changes WHERE collection = $1",
                &[&collection],
            )
            .await?;
            tx.execute("DELETE FROM sources WHERE collection = $1", &[&collection])
                .await?;
            tracing::warn!(
                collection = collection.as_str(),
                table = relation.as_str(),
                drop = drops.join(" ").as_str(),
                "source no longer declared: its capture is off, its records stay; the table's \
                 owner may drop the triggers"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks the tables' shapes (a changed one is sent again) and retries broken sources.
    async fn check(&mut self, client: &mut Client) -> Result<(), StorageError> {
        let collections: Vec<String> = self
            .plans
            .keys()
            .chain(self.broken.keys())
            .cloned()
            .collect();
        for collection in collections {
            let current = self.plans.get(&collection).map(|p| p.fingerprint.clone());
            let Some(source) = self.sources.of_collection(&collection).cloned() else {
                continue;
            };
            let fresh = catalog::resolve(&*client, &self.sources, &source).await;
            match (fresh, current) {
                (Ok(plan), Some(fp)) if plan.fingerprint == fp => {}
                (Ok(_), _) => self.prepare(client, &collection).await?,
                (Err(e), _) => self.mark_broken(&collection, e.message),
            }
        }
        // A broken source's table may still queue (a renamed table keeps its triggers): its
        // entries go, and a pass is stored instead, so that whenever it can be read again
        // (after a restart too) it is sent whole. The queue stays small and its scans cheap.
        let broken: Vec<String> = self.broken.keys().cloned().collect();
        if !broken.is_empty() {
            let tx = client.transaction().await?;
            tx.execute(
                "UPDATE sources SET pass = 'send', pass_after = NULL, sent = 0, sweep = true
                 WHERE collection = ANY($1) AND (pass IS DISTINCT FROM 'send' OR pass_after IS NOT NULL)",
                &[&broken],
            )
            .await?;
            tx.execute(
                "DELETE FROM source_changes WHERE collection = ANY($1)",
                &[&broken],
            )
            .await?;
            tx.commit().await?;
        }
        // An estimate from the ids' span (the primary key's two ends, no count of the rows).
        let backlog: i64 = client
            .query_one(
                "SELECT coalesce(max(id) - min(id) + 1, 0) FROM source_changes",
                &[],
            )
            .await?
            .get(0);
        self.status.set_backlog(backlog);
        Ok(())
    }

    /// A failure reading one source: its shape may have changed, or the table gone.
    async fn failed(
        &mut self,
        client: &mut Client,
        collection: &str,
        e: tokio_postgres::Error,
    ) -> Result<(), StorageError> {
        if e.as_db_error().is_none() {
            return Err(e.into());
        }
        tracing::warn!(collection, error = %pg(&e), "reading a declared source failed");
        let before = self.plans.get(collection).map(|p| p.fingerprint.clone());
        self.prepare(client, collection).await?;
        let after = self.plans.get(collection).map(|p| p.fingerprint.clone());
        if after.is_some() && after == before {
            // Same shape and still failing: report it rather than retry in a tight loop.
            self.mark_broken(collection, pg(&e));
        }
        Ok(())
    }

    /// Moves a batch of queued changes into `records`. True when there was any.
    async fn queue_step(&mut self, client: &mut Client) -> Result<bool, StorageError> {
        let active: Vec<String> = self.plans.keys().cloned().collect();
        if active.is_empty() {
            return Ok(false);
        }
        let tx = snapshot(client).await?;
        let entries = tx
            .query(
                "SELECT id, collection, key, scope FROM source_changes
                 WHERE collection = ANY($1) ORDER BY id LIMIT $2",
                &[&active, &QUEUE_BATCH],
            )
            .await?;
        if entries.is_empty() {
            tx.commit().await?;
            return Ok(false);
        }
        // The keys touched, in the order of their first entry, each with every scope it was
        // seen in and its queue ids; the ids of TRUNCATE entries.
        let mut order: Vec<Touched> = Vec::new();
        let mut at_key: HashMap<(String, String), usize> = HashMap::new();
        let mut truncated: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for e in &entries {
            let (id, collection, key, scope): (i64, String, Option<String>, Option<String>) =
                (e.get(0), e.get(1), e.get(2), e.get(3));
            let Some(key) = key else {
                truncated.entry(collection).or_default().push(id);
                continue;
            };
            let i = *at_key
                .entry((collection.clone(), key.clone()))
                .or_insert_with(|| {
                    order.push(Touched {
                        collection,
                        key,
                        scopes: BTreeSet::new(),
                        ids: Vec::new(),
                    });
                    order.len() - 1
                });
            order[i].scopes.extend(scope);
            order[i].ids.push(id);
        }
        let mut batches = Batches::new();
        let mut failed: Vec<(String, tokio_postgres::Error)> = Vec::new();
        // The queue ids handled, per collection. Keys are read oldest first and only while the
        // rows read are under PAGE_BYTES: a step handles the front of the queue, and the keys
        // left stay queued for the next step.
        let mut handled: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        // A few keys first; then as many as the mean size so far says fit the budget.
        let (mut at, mut want, mut bytes, mut rows) = (0, 8, 0usize, 0usize);
        while at < order.len() && bytes < PAGE_BYTES {
            let chunk = &order[at..(at + want).min(order.len())];
            at += chunk.len();
            let mut by_collection: BTreeMap<&str, Vec<&Touched>> = BTreeMap::new();
            for t in chunk {
                if !failed.iter().any(|(f, _)| *f == t.collection) {
                    by_collection.entry(&t.collection).or_default().push(t);
                }
            }
            for (collection, keys) in by_collection {
                let wanted: Vec<String> = keys.iter().map(|t| t.key.clone()).collect();
                let (mut now, unreadable) =
                    match read_rows(&tx, &self.plans[collection], &wanted).await? {
                        Ok(read) => read,
                        Err(e) => {
                            failed.push((collection.to_string(), e));
                            continue;
                        }
                    };
                for (id, why) in unreadable {
                    self.refuse(collection, &id, why);
                }
                for t in keys {
                    let placed = match now.remove(&t.key) {
                        Some((scope, data)) => {
                            bytes += data.len();
                            rows += 1;
                            self.place(&mut batches, collection, &t.key, scope.as_deref(), &data)
                        }
                        None => None,
                    };
                    for scope in &t.scopes {
                        if placed.as_deref() != Some(scope.as_str()) {
                            delete(&mut batches, scope, collection, &t.key);
                        }
                    }
                    handled
                        .entry(collection.to_string())
                        .or_default()
                        .extend(&t.ids);
                }
            }
            let mean = (bytes / rows.max(1)).max(1);
            want = (PAGE_BYTES.saturating_sub(bytes) / mean).clamp(1, PORTAL_BATCH as usize);
        }
        for (collection, ids) in &truncated {
            if !failed.iter().any(|(f, _)| f == collection) {
                handled.entry(collection.clone()).or_default().extend(ids);
            }
        }
        tx.commit().await?;
        let done: Vec<i64> = handled.values().flatten().copied().collect();
        let tx = client.transaction().await?;
        let written = write_batches(&tx, &self.schema, batches).await?;
        tx.execute("DELETE FROM source_changes WHERE id = ANY($1)", &[&done])
            .await?;
        for collection in truncated.keys() {
            if failed.iter().any(|(f, _)| f == collection) {
                continue;
            }
            tx.execute(
                "UPDATE sources SET pass = 'send', pass_after = NULL, sent = 0, sweep = true
                 WHERE collection = $1",
                &[collection],
            )
            .await?;
        }
        tx.commit().await?;
        for collection in truncated.keys() {
            if failed.iter().any(|(f, _)| f == collection) {
                continue;
            }
            self.status.set_passing(collection, true);
            tracing::info!(
                collection = collection.as_str(),
                "source table truncated: sending it again"
            );
        }
        self.notify(&written);
        for (collection, v) in &handled {
            self.status.count_changes(collection, v.len() as u64);
        }
        for (collection, e) in failed {
            self.failed(client, &collection, e).await?;
        }
        Ok(true)
    }

    fn refuse(&self, collection: &str, id: &str, why: String) {
        tracing::warn!(collection, id, reason = why.as_str(), "source row not sent");
        self.status.count_refused(collection);
    }

    /// Checks a row read from a source: the write that puts it in its scope, and that scope;
    /// `None` (and a warning) for a row that cannot be a record.
    fn place(
        &self,
        batches: &mut Batches,
        collection: &str,
        id: &str,
        scope: Option<&str>,
        data: &str,
    ) -> Option<String> {
        let refuse = |why: String| {
            self.refuse(collection, id, why);
            None
        };
        let Some(scope) = scope else {
            return None; // NULL scope: the row belongs to no scope, by definition.
        };
        if let Err(e) = ScopeId::new(scope) {
            return refuse(format!("scope {scope:?}: {e}"));
        }
        let key = Key::new(collection, id);
        if let Err(e) = key.validate() {
            return refuse(e.to_string());
        }
        let map: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(data) {
            Ok(m) => m,
            Err(e) => return refuse(format!("the row's JSON cannot be read: {e}")),
        };
        let mut canonical = Vec::new();
        let hash = record_hash_with(&map, &mut canonical);
        if let Err(e) = limits::check_record(&key, Some(&canonical)) {
            return refuse(e.to_string());
        }
        batches
            .entry(scope.to_string())
            .or_default()
            .push(BulkWrite {
                key,
                state: Some((data.to_string(), hash)),
            });
        Some(scope.to_string())
    }

    /// One step of a pass (sending a table again, then sweeping records of gone rows), for
    /// the first source that has one running. True when there was one.
    async fn pass_step(&mut self, client: &mut Client) -> Result<bool, StorageError> {
        let active: Vec<String> = self.plans.keys().cloned().collect();
        let Some(row) = client
            .query_opt(
                "SELECT collection, pass, pass_after FROM sources
                 WHERE pass IS NOT NULL AND collection = ANY($1) ORDER BY collection LIMIT 1",
                &[&active],
            )
            .await?
        else {
            return Ok(false);
        };
        let (collection, pass, after): (String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let after: Option<Vec<String>> = after
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("pass position of {collection}: {e}")))?;
        let result = match pass.as_str() {
            "send" => self.send_page(client, &collection, after).await?,
            _ => self.sweep_page(client, &collection, after).await?,
        };
        if let Err(e) = result {
            self.failed(client, &collection, e).await?;
        }
        Ok(true)
    }

    fn notify(&self, scopes: &[String]) {
        for scope in scopes {
            self.hub.notify(scope);
        }
    }
}

/// Rows read again by id, and the ids whose row cannot be read (a value that fails to
/// convert, e.g. a `json` string with `\u0000`), with why.
type ReadRows = (
    HashMap<String, (Option<String>, String)>,
    Vec<(String, String)>,
);

/// The current rows of the record ids `ids` (id → scope, data). A data exception in one row
/// fails the whole query; then each id is read alone and the failing ones are returned apart.
async fn read_rows(
    tx: &Transaction<'_>,
    plan: &Plan,
    ids: &[String],
) -> Result<Result<ReadRows, tokio_postgres::Error>, StorageError> {
    let sql = plan.rows_sql();
    let collect = |rows: &[tokio_postgres::Row], into: &mut HashMap<_, _>| {
        into.extend(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))));
    };
    let mut read = HashMap::new();
    tx.batch_execute("SAVEPOINT source").await?;
    match tx.query(&sql, &[&ids]).await {
        Ok(rows) => {
            collect(&rows, &mut read);
            return Ok(Ok((read, Vec::new())));
        }
        Err(e) if is_bad_value(&e) => tx.batch_execute("ROLLBACK TO SAVEPOINT source").await?,
        Err(e) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT source").await?;
            return Ok(Err(e));
        }
    }
    let mut unreadable = Vec::new();
    for id in ids {
        tx.batch_execute("SAVEPOINT source").await?;
        match tx.query(&sql, &[&vec![id.clone()]]).await {
            Ok(rows) => collect(&rows, &mut read),
            Err(e) if is_bad_value(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT source").await?;
                unreadable.push((id.clone(), pg(&e)));
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok((read, unreadable)))
}

/// A value that does not convert to the key's type (SQLSTATE class 22, data exception).
fn is_bad_value(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| d.code().code().starts_with("22"))
}

/// Queues the tombstone of `collection/id` in `scope`. A scope column's text that no scope can
/// have (empty, over 256 bytes) holds no record, and locking it would insert it into `scopes`,
/// which fails past what PostgreSQL can index and then stopped the consumer on every retry.
fn delete(batches: &mut Batches, scope: &str, collection: &str, id: &str) {
    if ScopeId::new(scope).is_err() {
        return;
    }
    batches
        .entry(scope.to_string())
        .or_default()
        .push(BulkWrite {
            key: Key::new(collection, id),
            state: None,
        });
}

/// Writes each scope's batch under its lock, scopes in order (so two consumers, or a
/// consumer and a push, never wait on each other in a cycle). Returns the scopes written.
async fn write_batches(
    tx: &Transaction<'_>,
    schema: &str,
    batches: Batches,
) -> Result<Vec<String>, StorageError> {
    let mut written = Vec::new();
    for (scope, batch) in batches {
        lock_scope(tx, &scope).await?;
        let done = bulk_write(tx, schema, &scope, batch, Unchanged::Skip).await?;
        if done.upserted + done.deleted > 0 {
            written.push(scope);
        }
    }
    Ok(written)
}

/// A read-only `REPEATABLE READ` transaction: one snapshot for a step's reads.
async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, StorageError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// A PostgreSQL error as its message, SQLSTATE and detail.
fn pg(e: &tokio_postgres::Error) -> String {
    crate::storage::postgres_text(e)
}
