//! PostgreSQL storage: the production choice.
//!
//! The version, `updated_at`, and the scope's count and digest are maintained by triggers on
//! the `records` table (see `schema.sql`), so the server's own writes and plain SQL writes from
//! the backend that owns the data take the same path: the trigger bumps the scope's sequence
//! with an `UPDATE` of the scope row, whose row lock is the per-scope lock, held until commit.
//! SQL writers may leave `hash` out; the server computes missing hashes (RFC 8785 + SHA-256 in
//! Rust) before it answers any request for the scope, see [`PgStorage::fix_hashes`].

use std::collections::BTreeMap;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tether_engine::digest::{record_hash_with, RecordHash, Snapshot};
use tether_engine::limits;
use tether_engine::mutation::{judge, AppliedMutation, Judgement};
use tether_engine::{Change, Digest, Key, KeyRange, MutationResult, RemoteStatus};
use tokio_postgres::{IsolationLevel, NoTls, Row};

use crate::live::ChangeHub;
pub(crate) use bulk::{bulk_write, BulkWrite, Unchanged};

mod bulk;
mod listen;
mod recheck;
mod subset;

use super::subset::{FilterIndex, SubsetAnswer};
use tether_engine::subscription::{Subscription, SubsetSnapshot};

use super::{
    applied_of, change, finish_page, leaf_of, must_reset, Applied, BoxFuture, PageRows, PoolUse,
    Position, PullAnswer, Purge, Quarantined, Recheck, ScopeRow, Storage, StorageError, Write,
    WriteSummary,
};

const SCHEMA: &str = include_str!("../schema.sql");

/// Rows read first for a page, before their sizes say how many more fit its byte budget.
const FIRST_BATCH: usize = 8;

/// PostgreSQL storage over a small connection pool.
#[derive(Clone)]
pub struct PgStorage {
    pool: Pool,
    /// For the change listener's own connection.
    config: tokio_postgres::Config,
    /// The schema the tables live in.
    schema: String,
}

impl PgStorage {
    /// Connects, creates `schema` if given (and uses it), and applies the schema.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        pool_size: usize,
    ) -> Result<Self, StorageError> {
        let mut config: tokio_postgres::Config = url.parse()?;
        if let Some(schema) = schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(StorageError::Pool(format!(
                    "schema name {schema:?} must be ASCII letters, digits and underscores"
                )));
            }
            config.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| StorageError::Pool(e.to_string()))?;
        let mut storage = PgStorage {
            pool,
            config,
            schema: String::new(),
        };
        let mut client = storage.client().await?;
        let tx = client.transaction().await?;
        // Two servers starting on one database must not interleave their DDL.
        tx.execute("SELECT pg_advisory_xact_lock(7410)", &[])
            .await?;
        if let Some(schema) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
        // The DDL below locks `records` more strongly as it goes (an index's share lock, then
        // the exclusive lock of ALTER TABLE and of the triggers): against another instance's
        // transaction that reads `records` and then writes it (a push, the sources' consumer),
        // that upgrade was a deadlock. Taking the strongest lock first makes it a wait.
        tx.batch_execute(
            "DO $$ BEGIN
                 IF to_regclass('records') IS NOT NULL THEN
                     LOCK TABLE records IN ACCESS EXCLUSIVE MODE;
                 END IF;
                 IF to_regclass('applied') IS NOT NULL THEN
                     LOCK TABLE applied IN ACCESS EXCLUSIVE MODE;
                 END IF;
             END $$",
        )
        .await?;
        tx.batch_execute(SCHEMA).await?;
        let schema: String = tx.query_one("SELECT current_schema()", &[]).await?.get(0);
        tx.commit().await?;
        drop(client);
        storage.schema = schema;
        Ok(storage)
    }

    /// The connection settings (for connections of its own, like the sources' consumer).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The schema Tether's tables live in.
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<Object, StorageError> {
        self.pool
            .get()
            .await
            .map_err(|e| StorageError::Pool(e.to_string()))
    }

    /// Settles the rows a SQL writer left without a hash, in batches, each in its own
    /// transaction under the scope lock (see [`settle`]). Every read path calls it before it
    /// answers; the push path settles the rows it reads inside its own transaction instead.
    pub async fn fix_hashes(&self, scope: &str) -> Result<u64, StorageError> {
        let mut fixed = 0;
        loop {
            let mut client = self.client().await?;
            // The common case, nothing pending, costs one indexed lookup and no lock.
            let pending = client
                .query_opt(
                    "SELECT 1 FROM records WHERE scope = $1 AND hash IS NULL AND NOT deleted
                     AND quarantine IS NULL LIMIT 1",
                    &[&scope],
                )
                .await?;
            if pending.is_none() {
                return Ok(fixed);
            }
            let tx = client.transaction().await?;
            lock_scope(&tx, scope).await?;
            let n = settle(&tx, scope, None).await?;
            tx.commit().await?;
            fixed += n;
            if n < SETTLE_BATCH {
                return Ok(fixed);
            }
        }
    }
}

/// Most rows one [`settle`] call handles.
const SETTLE_BATCH: u64 = 500;

/// The one place where the server fills in the hash of live rows a SQL writer left without one
/// (RFC 8785 + SHA-256 in Rust): those of `key` only, or up to [`SETTLE_BATCH`] of the scope.
/// The caller holds the scope lock in `tx`. The update gives each row a new version (so a
/// cursor already past the SQL write still sees it) and the trigger counts it in the digest.
/// Returns how many rows it handled.
async fn settle(
    tx: &deadpool_postgres::Transaction<'_>,
    scope: &str,
    key: Option<&Key>,
) -> Result<u64, StorageError> {
    let rows = match key {
        Some(k) => {
            let select = tx
                .prepare_cached(
                    "SELECT collection, id, version, data::text FROM records
                     WHERE scope = $1 AND collection = $2 AND id = $3
                     AND hash IS NULL AND NOT deleted AND quarantine IS NULL",
                )
                .await?;
            tx.query(&select, &[&scope, &k.collection, &k.id]).await?
        }
        None => {
            let select = tx
                .prepare_cached(
                    "SELECT collection, id, version, data::text FROM records
                     WHERE scope = $1 AND hash IS NULL AND NOT deleted AND quarantine IS NULL
                     LIMIT $2",
                )
                .await?;
            tx.query(&select, &[&scope, &(SETTLE_BATCH as i64)]).await?
        }
    };
    if rows.is_empty() {
        return Ok(0);
    }
    let update = tx
        .prepare_cached(
            "UPDATE records SET hash = $5 WHERE scope = $1 AND collection = $2
             AND id = $3 AND version = $4 AND hash IS NULL AND NOT deleted
             AND quarantine IS NULL",
        )
        .await?;
    let quarantine = tx
        .prepare_cached(
            "UPDATE records SET quarantine = $5 WHERE scope = $1 AND collection = $2
             AND id = $3 AND version = $4 AND hash IS NULL AND NOT deleted
             AND quarantine IS NULL RETURNING version",
        )
        .await?;
    let mut buf = Vec::new();
    let mut handled = 0;
    for r in &rows {
        let (c, i, v, text): (String, String, i64, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        match readable(&Key::new(c.as_str(), i.as_str()), &text, &mut buf) {
            Ok(hash) => {
                let hash = hash.to_string();
                handled += tx.execute(&update, &[&scope, &c, &i, &v, &hash]).await?;
            }
            Err(reason) => {
                // Not served and not counted; replicas see a tombstone at the new version.
                if let Some(q) = tx
                    .query_opt(&quarantine, &[&scope, &c, &i, &v, &reason])
                    .await?
                {
                    tracing::warn!(
                        scope,
                        collection = c.as_str(),
                        id = i.as_str(),
                        version = q.get::<_, i64>(0),
                        reason = reason.as_str(),
                        "quarantined a row written by plain SQL that the server cannot read"
                    );
                    handled += 1;
                }
            }
        }
    }
    Ok(handled)
}

/// The hash of a row written by plain SQL, or why the server cannot serve it: a key it
/// refuses, data it cannot read, or a record over one of the engine's limits (the same check as
/// a replica's edit and a push: such a row is quarantined, not refused by the database, so the
/// SQL writer's transaction stands and the operator sees why in the quarantine list).
pub(super) fn readable(key: &Key, text: &str, buf: &mut Vec<u8>) -> Result<RecordHash, String> {
    key.validate().map_err(|e| e.to_string())?;
    let data = super::data_of(text).map_err(|e| e.to_string())?;
    let map = data.as_object().ok_or("stored data is not a JSON object")?;
    let hash = record_hash_with(map, buf);
    limits::check_record(key, Some(buf)).map_err(|e| e.to_string())?;
    Ok(hash)
}

/// Takes the scope's lock (creating its row if new) and marks the transaction as the server's.
pub(crate) async fn lock_scope(
    tx: &tokio_postgres::Transaction<'_>,
    scope: &str,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO scopes (scope) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&scope],
    )
    .await?;
    tx.execute(
        "SELECT 1 FROM scopes WHERE scope = $1 FOR UPDATE",
        &[&scope],
    )
    .await?;
    // The trigger trusts the hash of this transaction's writes (see schema.sql).
    tx.execute("SELECT set_config('tether.writer', 'server', true)", &[])
        .await?;
    Ok(())
}

async fn scope_row(
    client: &impl tokio_postgres::GenericClient,
    scope: &str,
) -> Result<ScopeRow, StorageError> {
    let row = client
        .query_opt(
            "SELECT seq, count, digest, horizon, updated_at FROM scopes WHERE scope = $1",
            &[&scope],
        )
        .await?;
    let Some(row) = row else {
        return Ok(ScopeRow {
            seq: 0,
            totals: Snapshot::default(),
            horizon: 0,
            updated_at: None,
        });
    };
    let digest: Vec<u8> = row.get(2);
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("digest of scope {scope:?} is not 32 bytes")))?;
    Ok(ScopeRow {
        seq: row.get::<_, i64>(0) as u64,
        totals: Snapshot {
            count: row.get::<_, i64>(1) as u64,
            digest: Digest(digest),
        },
        horizon: row.get::<_, i64>(3) as u64,
        updated_at: row.get(4),
    })
}

/// A stored row as a change; a quarantined row reads as a tombstone (no data, no hash).
const COLUMNS: &str = "collection, id, version, updated_at,
    CASE WHEN quarantine IS NULL THEN data::text END, hash";

fn row_change(r: &Row) -> Result<Change, StorageError> {
    let data: Option<String> = r.get(4);
    change(
        Key::new(r.get::<_, String>(0), r.get::<_, String>(1)),
        r.get::<_, i64>(2) as u64,
        r.get(3),
        data.as_deref(),
        r.get(5),
    )
}

/// The key-range condition, with `COLLATE "C"` so that parameters compare as bytes too.
fn range_sql(range: &KeyRange, first: usize) -> (String, Vec<String>) {
    super::range_sql(range, first, |n| format!("${n}::text COLLATE \"C\""))
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

fn params<'a>(scope: &'a &'a str, args: &'a [String]) -> Vec<Param<'a>> {
    let mut p: Vec<Param<'a>> = vec![scope];
    p.extend(args.iter().map(|a| a as Param<'a>));
    p
}

impl Storage for PgStorage {
    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .query_one("SELECT count(*) FROM scopes WHERE scope = ''", &[])
                .await?;
            Ok(())
        })
    }

    fn pool_use(&self) -> PoolUse {
        let status = self.pool.status();
        PoolUse {
            max: status.max_size as u64,
            busy: status.size.saturating_sub(status.available) as u64,
            waiting: status.waiting as u64,
        }
    }

    fn listen(&self, hub: Arc<ChangeHub>) -> Option<tokio::task::JoinHandle<()>> {
        Some(tokio::spawn(listen::listen_loop(
            self.config.clone(),
            self.schema.clone(),
            hub,
        )))
    }

    fn pull<'a>(
        &'a self,
        scope: &'a str,
        from: Option<Position>,
        limit: u32,
    ) -> BoxFuture<'a, PullAnswer> {
        Box::pin(async move {
            self.fix_hashes(scope).await?;
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let s = scope_row(&*tx, scope).await?;
            if must_reset(from, s.seq, s.horizon) {
                return Ok(PullAnswer::Reset);
            }
            // Up to `safe` (everything on an initial sync, which has no checkpoint or one
            // that carries the sequence it started at) only live records: a tombstone there
            // deletes a record the client never received, and a quarantined row is not
            // served. Above it, the feed: tombstones and quarantined rows as tombstones.
            let sql = format!(
                "SELECT {COLUMNS} FROM records WHERE scope = $1 AND version > $2
                 AND (deleted OR hash IS NOT NULL OR quarantine IS NOT NULL)
                 AND (version > $4 OR (NOT deleted AND hash IS NOT NULL))
                 ORDER BY version LIMIT $3"
            );
            let (after, safe) = from.map_or((0, i64::MAX), |p| (p.cursor as i64, p.safe as i64));
            // Read through a portal in batches sized to the page's byte budget, so a page of
            // big records neither reads nor holds rows far past where it is cut.
            let stmt = tx.prepare_cached(&sql).await?;
            let portal = tx
                .bind(&stmt, &[&scope, &after, &(limit as i64 + 1), &safe])
                .await?;
            let mut page = PageRows::new(limit);
            'read: loop {
                let batch = page.next_batch(FIRST_BATCH);
                let rows = tx.query_portal(&portal, batch as i32).await?;
                for r in &rows {
                    if page.full() {
                        page.more();
                        break 'read;
                    }
                    page.push(row_change(r)?);
                }
                if rows.len() < batch {
                    break;
                }
            }
            tx.commit().await?;
            Ok(PullAnswer::Page(finish_page(page, from, s.seq, s.totals)))
        })
    }

    fn apply<'a>(&'a self, scope: &'a str, writes: Vec<Write>) -> BoxFuture<'a, Applied> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_scope(&tx, scope).await?;
            let get = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS}, deleted OR quarantine IS NOT NULL FROM records
                     WHERE scope = $1 AND collection = $2 AND id = $3"
                ))
                .await?;
            let put = tx
                .prepare_cached(
                    "INSERT INTO records (scope, collection, id, data, hash, deleted)
                     VALUES ($1, $2, $3, $4::text::jsonb, $5, $6)
                     ON CONFLICT (scope, collection, id) DO UPDATE SET data = EXCLUDED.data,
                       hash = EXCLUDED.hash, deleted = EXCLUDED.deleted
                     RETURNING version, updated_at",
                )
                .await?;
            let recall = tx
                .prepare_cached(
                    "SELECT seq, version, updated_at, hash FROM applied
                     WHERE scope = $1 AND client = $2 AND collection = $3 AND id = $4",
                )
                .await?;
            let remember = tx
                .prepare_cached(
                    "INSERT INTO applied (scope, client, collection, id, seq, version,
                       updated_at, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (scope, client, collection, id) DO UPDATE SET
                       seq = EXCLUDED.seq, version = EXCLUDED.version,
                       updated_at = EXCLUDED.updated_at, hash = EXCLUDED.hash",
                )
                .await?;
            let mut results = Vec::with_capacity(writes.len());
            let mut written = 0;
            for w in writes {
                let (c, i) = (&w.key.collection, &w.key.id);
                let mut current = tx.query_opt(&get, &[&scope, c, i]).await?;
                // A live row a SQL writer left without a hash gets it now: the answer to a
                // push (`current` of a rejection) must carry the hash of a live record.
                if current.as_ref().is_some_and(|r| {
                    !r.get::<_, bool>(6) && r.get::<_, Option<String>>(5).is_none()
                }) && settle(&tx, scope, Some(&w.key)).await? > 0
                {
                    current = tx.query_opt(&get, &[&scope, c, i]).await?;
                }
                let live = current
                    .as_ref()
                    .filter(|r| !r.get::<_, bool>(6))
                    .map(|r| r.get::<_, i64>(2) as u64);
                let last = match &w.origin {
                    Some(id) => tx
                        .query_opt(&recall, &[&scope, &id.client, c, i])
                        .await?
                        .map(|r| applied_of(r.get(0), r.get(1), r.get(2), r.get(3)))
                        .transpose()?,
                    None => None,
                };
                let judged = match w.check {
                    Some(base) => judge(
                        w.origin.as_ref(),
                        w.replaces,
                        w.state.as_ref().map(|(_, h)| *h),
                        base,
                        live,
                        current.as_ref().map(|r| r.get::<_, i64>(2) as u64),
                        last.as_ref(),
                    ),
                    None => Judgement::Apply,
                };
                match judged {
                    Judgement::Reject => {
                        let current = current.as_ref().map(row_change).transpose()?;
                        results.push(MutationResult::Rejected { current });
                        continue;
                    }
                    Judgement::Repeat => {
                        results.extend(last.as_ref().map(AppliedMutation::result));
                        continue;
                    }
                    Judgement::Apply => {}
                }
                if w.state.is_none() && live.is_none() && w.check.is_none() {
                    let version = current.as_ref().map_or(0, |r| r.get::<_, i64>(2) as u64);
                    results.push(MutationResult::Accepted {
                        version,
                        updated_at: current.map_or_else(String::new, |r| r.get(3)),
                    });
                    continue;
                }
                let (data, hash) = match &w.state {
                    Some((d, h)) => (
                        Some(
                            serde_json::to_string(d)
                                .map_err(|e| StorageError::Corrupt(e.to_string()))?,
                        ),
                        Some(h.to_string()),
                    ),
                    None => (None, None),
                };
                let row = tx
                    .query_one(&put, &[&scope, c, i, &data, &hash, &w.state.is_none()])
                    .await?;
                let (version, updated_at): (i64, String) = (row.get(0), row.get(1));
                written += 1;
                if let Some(id) = &w.origin {
                    tx.execute(
                        &remember,
                        &[
                            &scope,
                            &id.client,
                            c,
                            i,
                            &(id.seq as i64),
                            &version,
                            &updated_at,
                            &hash,
                        ],
                    )
                    .await?;
                }
                results.push(MutationResult::Accepted {
                    version: version as u64,
                    updated_at,
                });
            }
            tx.commit().await?;
            Ok(Applied { results, written })
        })
    }

    fn admin_write<'a>(
        &'a self,
        scope: &'a str,
        writes: Vec<Write>,
    ) -> BoxFuture<'a, WriteSummary> {
        Box::pin(async move {
            // Last write of a key wins; upserts go first, then deletes.
            let mut upserts: BTreeMap<Key, (String, RecordHash)> = BTreeMap::new();
            let mut deletes: BTreeMap<Key, ()> = BTreeMap::new();
            for w in writes {
                match w.state {
                    Some((d, h)) => {
                        deletes.remove(&w.key);
                        let text = serde_json::to_string(&d)
                            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                        upserts.insert(w.key, (text, h));
                    }
                    None => {
                        upserts.remove(&w.key);
                        deletes.insert(w.key, ());
                    }
                }
            }
            let batch = upserts
                .into_iter()
                .map(|(key, state)| BulkWrite {
                    key,
                    state: Some(state),
                })
                .chain(
                    deletes
                        .into_keys()
                        .map(|key| BulkWrite { key, state: None }),
                )
                .collect();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_scope(&tx, scope).await?;
            let done = bulk_write(&tx, &self.schema, scope, batch, Unchanged::Write).await?;
            tx.commit().await?;
            Ok(WriteSummary {
                upserted: done.upserted,
                deleted: done.deleted,
                version: done.seq,
            })
        })
    }

    fn status<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, RemoteStatus> {
        Box::pin(async move {
            self.fix_hashes(scope).await?;
            let client = self.client().await?;
            let s = scope_row(&**client, scope).await?;
            Ok(RemoteStatus {
                count: s.totals.count,
                digest: s.totals.digest,
                version: s.seq,
                updated_at: s.updated_at,
            })
        })
    }

    fn range_digest<'a>(&'a self, scope: &'a str, range: &'a KeyRange) -> BoxFuture<'a, Snapshot> {
        Box::pin(async move {
            self.fix_hashes(scope).await?;
            let client = self.client().await?;
            if range.from.is_none() && range.to.is_none() {
                return Ok(scope_row(&**client, scope).await?.totals);
            }
            let (cond, args) = range_sql(range, 2);
            let sql = format!(
                "SELECT collection, id, hash FROM records
                 WHERE scope = $1 AND NOT deleted AND hash IS NOT NULL{cond}"
            );
            let rows = client.query(&sql, &params(&scope, &args)).await?;
            let mut snap = Snapshot::default();
            for r in rows {
                let (c, i, h): (String, String, String) = (r.get(0), r.get(1), r.get(2));
                snap.insert(&leaf_of(&c, &i, &h)?);
            }
            Ok(snap)
        })
    }

    fn range_records<'a>(
        &'a self,
        scope: &'a str,
        range: &'a KeyRange,
        max: usize,
    ) -> BoxFuture<'a, Option<Vec<Change>>> {
        Box::pin(async move {
            self.fix_hashes(scope).await?;
            let mut client = self.client().await?;
            let (cond, args) = range_sql(range, 2);
            let sql = format!(
                "SELECT {COLUMNS} FROM records WHERE scope = $1 AND NOT deleted
                 AND hash IS NOT NULL{cond} ORDER BY collection, id LIMIT {}",
                max as u64 + 1
            );
            // Bounded like a page, by count and by bytes (a range over either is refused),
            // and read through a portal, so big records are not all read to find that out.
            let tx = client.build_transaction().read_only(true).start().await?;
            let stmt = tx.prepare_cached(&sql).await?;
            let portal = tx.bind(&stmt, &params(&scope, &args)).await?;
            let mut out = PageRows::new(max.min(u32::MAX as usize) as u32);
            loop {
                let batch = out.next_batch(FIRST_BATCH);
                let rows = tx.query_portal(&portal, batch as i32).await?;
                for r in &rows {
                    if out.full() {
                        return Ok(None);
                    }
                    out.push(row_change(r)?);
                }
                if rows.len() < batch {
                    break;
                }
            }
            tx.commit().await?;
            Ok(Some(out.into_changes()))
        })
    }

    fn declare_filters<'a>(&'a self, filters: &'a [FilterIndex]) -> BoxFuture<'a, ()> {
        Box::pin(subset::declare(self, filters))
    }

    fn pull_subset<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        from: Option<Position>,
        limit: u32,
    ) -> BoxFuture<'a, SubsetAnswer> {
        Box::pin(subset::pull(self, scope, sub, from, limit))
    }

    fn subset_digest<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        range: &'a KeyRange,
    ) -> BoxFuture<'a, SubsetSnapshot> {
        Box::pin(subset::digest(self, scope, sub, range))
    }

    fn subset_records<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        range: &'a KeyRange,
        max: usize,
    ) -> BoxFuture<'a, Option<Vec<Change>>> {
        Box::pin(subset::records(self, scope, sub, range, max))
    }

    fn quarantine<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Vec<Quarantined>> {
        Box::pin(async move {
            self.fix_hashes(scope).await?;
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT collection, id, version, quarantine FROM records
                     WHERE scope = $1 AND quarantine IS NOT NULL ORDER BY collection, id",
                    &[&scope],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Quarantined {
                    collection: r.get(0),
                    id: r.get(1),
                    version: r.get::<_, i64>(2) as u64,
                    reason: r.get(3),
                })
                .collect())
        })
    }

    fn recheck<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Option<Recheck>> {
        Box::pin(async move { recheck::recheck(self, scope).await.map(Some) })
    }

    fn purge<'a>(&'a self, purge: &'a Purge) -> BoxFuture<'a, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            let scopes: Vec<String> = match &purge.scope {
                Some(s) => vec![s.clone()],
                None => client
                    .query("SELECT scope FROM scopes", &[])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            };
            drop(client);
            let before = purge.before.clone().unwrap_or_else(|| "\u{10FFFF}".into());
            let mut purged = 0;
            for scope in scopes {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                lock_scope(&tx, &scope).await?;
                // What clients' mutations did is remembered as long as tombstones are.
                tx.execute(
                    "DELETE FROM applied WHERE scope = $1 AND updated_at < $2",
                    &[&scope, &before],
                )
                .await?;
                let row = tx
                    .query_one(
                        "WITH gone AS (DELETE FROM records WHERE scope = $1 AND deleted
                           AND updated_at < $2 RETURNING version)
                         SELECT count(*), max(version) FROM gone",
                        &[&scope, &before],
                    )
                    .await?;
                let (n, top): (i64, Option<i64>) = (row.get(0), row.get(1));
                if let Some(top) = top {
                    tx.execute(
                        "UPDATE scopes SET horizon = greatest(horizon, $2) WHERE scope = $1",
                        &[&scope, &top],
                    )
                    .await?;
                }
                tx.commit().await?;
                purged += n as u64;
            }
            Ok(purged)
        })
    }
}
