//! SQLite storage: the embedded default.
//!
//! A small pool of connections to one database file in WAL mode. Reads run in a deferred
//! transaction (one consistent snapshot per request); writes take `BEGIN IMMEDIATE`, SQLite's
//! database-wide write lock, which is a stronger form of the per-scope lock the protocol asks
//! for. Everything runs on tokio's blocking pool, never on the async workers.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use tether_engine::digest::Snapshot;
use tether_engine::time::rfc3339;
use tether_engine::{Change, Digest, Key, KeyRange, MutationResult, RemoteStatus};

use tether_engine::mutation::{judge, AppliedMutation, Judgement};

mod subset;

use tether_engine::subscription::{Subscription, SubsetSnapshot};

use super::subset::{FilterIndex, SubsetAnswer};
use super::{
    applied_of, change, finish_page, leaf_of, must_reset, Applied, BoxFuture, PageRows, PoolUse,
    Position, PullAnswer, Purge, Quarantined, Recheck, ScopeRow, Storage, StorageError, Write,
    WriteSummary,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS scopes (
    scope      TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL DEFAULT 0,
    count      INTEGER NOT NULL DEFAULT 0,
    digest     BLOB NOT NULL DEFAULT (zeroblob(32)),
    horizon    INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS records (
    scope      TEXT NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    deleted    INTEGER NOT NULL,
    data       TEXT,
    hash       TEXT,
    PRIMARY KEY (scope, collection, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS records_feed ON records (scope, version);
CREATE INDEX IF NOT EXISTS records_tombstones ON records (scope, updated_at) WHERE deleted;
CREATE INDEX IF NOT EXISTS records_collection_feed ON records (scope, collection, version);
CREATE TABLE IF NOT EXISTS applied (
    scope      TEXT NOT NULL,
    client     TEXT NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    hash       TEXT,
    PRIMARY KEY (scope, client, collection, id)
);
CREATE INDEX IF NOT EXISTS applied_age ON applied (scope, updated_at);
";

/// SQLite storage over one database file.
#[derive(Clone)]
pub struct SqliteStorage {
    pool: Arc<Pool>,
}

struct Pool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Calls holding a connection, and calls waiting for theirs (for `/metrics`).
    busy: AtomicUsize,
    waiting: AtomicUsize,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` with `connections` pooled connections.
    pub fn open(path: &Path, connections: usize) -> Result<Self, StorageError> {
        let mut conns = Vec::new();
        for i in 0..connections.max(1) {
            let conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            if i == 0 {
                conn.execute_batch(SCHEMA)?;
            }
            conns.push(Mutex::new(conn));
        }
        Ok(SqliteStorage {
            pool: Arc::new(Pool {
                conns,
                next: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
            }),
        })
    }

    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> BoxFuture<'a, T> {
        let pool = self.pool.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let i = pool.next.fetch_add(1, Ordering::Relaxed) % pool.conns.len();
                // A panic while holding the connection leaves no open transaction behind
                // (rusqlite rolls back on drop), so a poisoned connection is still usable.
                pool.waiting.fetch_add(1, Ordering::Relaxed);
                let mut conn = pool.conns[i].lock().unwrap_or_else(|p| p.into_inner());
                pool.waiting.fetch_sub(1, Ordering::Relaxed);
                pool.busy.fetch_add(1, Ordering::Relaxed);
                let result = f(&mut conn);
                pool.busy.fetch_sub(1, Ordering::Relaxed);
                result
            })
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
        })
    }
}

impl Storage for SqliteStorage {
    fn ready(&self) -> BoxFuture<'_, ()> {
        self.run(|conn| {
            conn.query_row("SELECT count(*) FROM scopes WHERE scope = ''", [], |_| {
                Ok(())
            })?;
            Ok(())
        })
    }

    fn pool_use(&self) -> PoolUse {
        PoolUse {
            max: self.pool.conns.len() as u64,
            busy: self.pool.busy.load(Ordering::Relaxed) as u64,
            waiting: self.pool.waiting.load(Ordering::Relaxed) as u64,
        }
    }

    fn pull<'a>(
        &'a self,
        scope: &'a str,
        from: Option<Position>,
        limit: u32,
    ) -> BoxFuture<'a, PullAnswer> {
        let scope = scope.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let s = scope_row(&tx, &scope)?;
            if must_reset(from, s.seq, s.horizon) {
                return Ok(PullAnswer::Reset);
            }
            // Tombstones at or below `safe` are left out: on an initial sync (no checkpoint,
            // or a later page of one, whose checkpoint carries the sequence it started at)
            // they are deletions of records the client never received.
            let sql = "SELECT collection, id, version, updated_at, data, hash FROM records
                 WHERE scope = ?1 AND version > ?2 AND (NOT deleted OR version > ?4)
                 ORDER BY version LIMIT ?3";
            let (after, safe) = from.map_or((0, i64::MAX), |p| (p.cursor as i64, p.safe as i64));
            let mut stmt = tx.prepare_cached(sql)?;
            let mut rows = stmt.query(params![scope, after, limit as i64 + 1, safe])?;
            let mut page = PageRows::new(limit);
            while let Some(r) = rows.next()? {
                if page.full() {
                    page.more();
                    break;
                }
                page.push(row_change(r)?);
            }
            Ok(PullAnswer::Page(finish_page(page, from, s.seq, s.totals)))
        })
    }

    fn apply<'a>(&'a self, scope: &'a str, writes: Vec<Write>) -> BoxFuture<'a, Applied> {
        let scope = scope.to_string();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (results, summary) = apply_writes(&tx, &scope, writes)?;
            tx.commit()?;
            Ok(Applied {
                results,
                written: summary.upserted + summary.deleted,
            })
        })
    }

    fn admin_write<'a>(
        &'a self,
        scope: &'a str,
        writes: Vec<Write>,
    ) -> BoxFuture<'a, WriteSummary> {
        let scope = scope.to_string();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (_, summary) = apply_writes(&tx, &scope, writes)?;
            tx.commit()?;
            Ok(summary)
        })
    }

    fn status<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, RemoteStatus> {
        let scope = scope.to_string();
        self.run(move |conn| {
            let s = scope_row(conn, &scope)?;
            Ok(RemoteStatus {
                count: s.totals.count,
                digest: s.totals.digest,
                version: s.seq,
                updated_at: s.updated_at,
            })
        })
    }

    fn range_digest<'a>(&'a self, scope: &'a str, range: &'a KeyRange) -> BoxFuture<'a, Snapshot> {
        let scope = scope.to_string();
        let range = range.clone();
        self.run(move |conn| {
            if range.from.is_none() && range.to.is_none() {
                // The whole scope: the maintained totals, no scan.
                return Ok(scope_row(conn, &scope)?.totals);
            }
            let (cond, args) = range_sql(&range, 2);
            let sql = format!(
                "SELECT collection, id, hash FROM records WHERE scope = ?1 AND NOT deleted{cond}"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(
                std::iter::once(scope.as_str()).chain(args.iter().map(String::as_str)),
            ))?;
            let mut snap = Snapshot::default();
            while let Some(r) = rows.next()? {
                let (c, i, h): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
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
        let scope = scope.to_string();
        let range = range.clone();
        self.run(move |conn| {
            let (cond, args) = range_sql(&range, 2);
            let sql = format!(
                "SELECT collection, id, version, updated_at, data, hash FROM records
                 WHERE scope = ?1 AND NOT deleted{cond} ORDER BY collection, id LIMIT {}",
                max as u64 + 1
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(
                std::iter::once(scope.as_str()).chain(args.iter().map(String::as_str)),
            ))?;
            // Bounded like a page, by count and by bytes: a range over either is refused.
            let mut out = PageRows::new(max.min(u32::MAX as usize) as u32);
            while let Some(r) = rows.next()? {
                if out.full() {
                    return Ok(None);
                }
                out.push(row_change(r)?);
            }
            Ok(Some(out.into_changes()))
        })
    }

    fn declare_filters<'a>(&'a self, filters: &'a [FilterIndex]) -> BoxFuture<'a, ()> {
        let filters = filters.to_vec();
        self.run(move |conn| subset::declare(conn, &filters))
    }

    fn pull_subset<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        from: Option<Position>,
        limit: u32,
    ) -> BoxFuture<'a, SubsetAnswer> {
        let (scope, sub) = (scope.to_string(), sub.clone());
        self.run(move |conn| subset::pull(conn, &scope, &sub, from, limit))
    }

    fn subset_digest<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        range: &'a KeyRange,
    ) -> BoxFuture<'a, SubsetSnapshot> {
        let (scope, sub, range) = (scope.to_string(), sub.clone(), range.clone());
        self.run(move |conn| subset::digest(conn, &scope, &sub, &range))
    }

    fn subset_records<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        range: &'a KeyRange,
        max: usize,
    ) -> BoxFuture<'a, Option<Vec<Change>>> {
        let (scope, sub, range) = (scope.to_string(), sub.clone(), range.clone());
        self.run(move |conn| subset::records(conn, &scope, &sub, &range, max))
    }

    /// Nothing to quarantine: only the server writes this database (there is no documented
    /// plain-SQL path), and what it writes is JSON it produced itself, so it reads back.
    fn quarantine<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Vec<Quarantined>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn recheck<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Option<Recheck>> {
        Box::pin(async { Ok(None) })
    }

    fn purge<'a>(&'a self, purge: &'a Purge) -> BoxFuture<'a, u64> {
        let purge = purge.clone();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let scopes: Vec<String> = match &purge.scope {
                Some(s) => vec![s.clone()],
                None => {
                    let mut stmt = tx.prepare("SELECT scope FROM scopes")?;
                    let v = stmt
                        .query_map([], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    v
                }
            };
            let before = purge.before.clone().unwrap_or_else(|| "\u{10FFFF}".into());
            let mut purged = 0;
            for scope in scopes {
                // What clients' mutations did is remembered as long as tombstones are.
                tx.execute(
                    "DELETE FROM applied WHERE scope = ?1 AND updated_at < ?2",
                    params![scope, before],
                )?;
                let top: Option<i64> = tx.query_row(
                    "SELECT max(version) FROM records
                     WHERE scope = ?1 AND deleted AND updated_at < ?2",
                    params![scope, before],
                    |r| r.get(0),
                )?;
                let Some(top) = top else { continue };
                purged += tx.execute(
                    "DELETE FROM records WHERE scope = ?1 AND deleted AND updated_at < ?2",
                    params![scope, before],
                )? as u64;
                tx.execute(
                    "UPDATE scopes SET horizon = max(horizon, ?2) WHERE scope = ?1",
                    params![scope, top],
                )?;
            }
            tx.commit()?;
            Ok(purged)
        })
    }
}

fn scope_row(conn: &Connection, scope: &str) -> Result<ScopeRow, StorageError> {
    let row = conn
        .query_row(
            "SELECT seq, count, digest, horizon, updated_at FROM scopes WHERE scope = ?1",
            [scope],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((seq, count, digest, horizon, updated_at)) = row else {
        return Ok(ScopeRow {
            seq: 0,
            totals: Snapshot::default(),
            horizon: 0,
            updated_at: None,
        });
    };
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("digest of scope {scope:?} is not 32 bytes")))?;
    Ok(ScopeRow {
        seq: seq as u64,
        totals: Snapshot {
            count: count as u64,
            digest: Digest(digest),
        },
        horizon: horizon as u64,
        updated_at,
    })
}

fn row_change(r: &rusqlite::Row<'_>) -> Result<Change, StorageError> {
    let key = Key::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?);
    let data: Option<String> = r.get(4)?;
    change(
        key,
        r.get::<_, i64>(2)? as u64,
        r.get(3)?,
        data.as_deref(),
        r.get(5)?,
    )
}

/// The key-range condition and its arguments, parameters from `?first`. SQLite's default
/// BINARY collation compares UTF-8 bytes, the protocol's key order.
pub(crate) fn range_sql(range: &KeyRange, first: usize) -> (String, Vec<String>) {
    super::range_sql(range, first, |n| format!("?{n}"))
}

type Current = (u64, bool, Option<String>, String, Option<String>);

fn apply_writes(
    tx: &rusqlite::Transaction<'_>,
    scope: &str,
    writes: Vec<Write>,
) -> Result<(Vec<MutationResult>, WriteSummary), StorageError> {
    tx.execute(
        "INSERT INTO scopes (scope) VALUES (?1) ON CONFLICT DO NOTHING",
        [scope],
    )?;
    let mut s = scope_row(tx, scope)?;
    let now = rfc3339(crate::now_ms());
    let mut results = Vec::with_capacity(writes.len());
    let mut summary = WriteSummary::default();
    let mut get = tx.prepare_cached(
        "SELECT version, deleted, hash, updated_at, data FROM records
         WHERE scope = ?1 AND collection = ?2 AND id = ?3",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT INTO records (scope, collection, id, version, updated_at, deleted, data, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (scope, collection, id) DO UPDATE SET version = excluded.version,
           updated_at = excluded.updated_at, deleted = excluded.deleted, data = excluded.data,
           hash = excluded.hash",
    )?;
    let mut recall = tx.prepare_cached(
        "SELECT seq, version, updated_at, hash FROM applied
         WHERE scope = ?1 AND client = ?2 AND collection = ?3 AND id = ?4",
    )?;
    let mut remember = tx.prepare_cached(
        "INSERT INTO applied (scope, client, collection, id, seq, version, updated_at, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (scope, client, collection, id) DO UPDATE SET seq = excluded.seq,
           version = excluded.version, updated_at = excluded.updated_at, hash = excluded.hash",
    )?;
    for w in writes {
        let key = &w.key;
        let current: Option<Current> = get
            .query_row(params![scope, key.collection, key.id], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, bool>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })
            .optional()?;
        let live = current.as_ref().filter(|c| !c.1);
        let last = match &w.origin {
            Some(id) => recall
                .query_row(params![scope, id.client, key.collection, key.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?
                .map(|(seq, version, at, hash)| applied_of(seq, version, at, hash))
                .transpose()?,
            None => None,
        };
        let judged = w.check.map(|base| {
            judge(
                w.origin.as_ref(),
                w.replaces,
                w.state.as_ref().map(|(_, h)| *h),
                base,
                live.map(|c| c.0),
                current.as_ref().map(|c| c.0),
                last.as_ref(),
            )
        });
        match (judged, w.check) {
            (Some(Judgement::Reject), _) => {
                let current = current
                    .map(|(v, _, h, at, d)| change(key.clone(), v, at, d.as_deref(), h))
                    .transpose()?;
                results.push(MutationResult::Rejected { current });
                continue;
            }
            (Some(Judgement::Repeat), _) => {
                results.extend(last.as_ref().map(AppliedMutation::result));
                continue;
            }
            (None, None) if w.state.is_none() && live.is_none() => {
                // An admin delete of an absent record changes nothing.
                results.push(MutationResult::Accepted {
                    version: current.map_or(s.seq, |c| c.0),
                    updated_at: now.clone(),
                });
                continue;
            }
            _ => {}
        }
        if let Some((_, _, Some(h), _, _)) = live {
            s.totals.remove(&leaf_of(&key.collection, &key.id, h)?);
        }
        s.seq += 1;
        let (data, hash) = match &w.state {
            Some((d, h)) => {
                s.totals
                    .insert(&tether_engine::digest::leaf(&key.collection, &key.id, h));
                summary.upserted += 1;
                (
                    Some(
                        serde_json::to_string(d)
                            .map_err(|e| StorageError::Corrupt(e.to_string()))?,
                    ),
                    Some(h.to_string()),
                )
            }
            None => {
                summary.deleted += 1;
                (None, None)
            }
        };
        put.execute(params![
            scope,
            key.collection,
            key.id,
            s.seq as i64,
            now,
            w.state.is_none(),
            data,
            hash
        ])?;
        if let Some(id) = &w.origin {
            remember.execute(params![
                scope,
                id.client,
                key.collection,
                key.id,
                id.seq as i64,
                s.seq as i64,
                now,
                hash
            ])?;
        }
        results.push(MutationResult::Accepted {
            version: s.seq,
            updated_at: now.clone(),
        });
    }
    tx.execute(
        "UPDATE scopes SET seq = ?2, count = ?3, digest = ?4, updated_at = ?5 WHERE scope = ?1",
        params![
            scope,
            s.seq as i64,
            s.totals.count as i64,
            &s.totals.digest.0[..],
            now
        ],
    )?;
    summary.version = s.seq;
    Ok((results, summary))
}
