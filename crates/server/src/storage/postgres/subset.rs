//! Subsets on PostgreSQL storage (docs/server.md, "Subsets"): expression indexes on
//! `data #> '{path}'` (`jsonb`, so strings, numbers and booleans never compare equal to one
//! another), one per declared `(collection, path)`, partial on the collection, and the queries
//! that use them. Declared sources write into `records` too, so their collections are indexed
//! the same way, whoever writes.

use serde_json::Value;
use tether_engine::digest::Snapshot;
use tether_engine::subscription::{Subscription, SubsetSnapshot};
use tether_engine::{Change, KeyRange};
use tokio_postgres::types::ToSql;
use tokio_postgres::IsolationLevel;

use super::{
    leaf_of, must_reset, range_sql, row_change, scope_row, PageRows, PgStorage, Position, COLUMNS,
    FIRST_BATCH,
};
use crate::storage::subset::{literal, FilterIndex, SubsetAnswer, SubsetRows};
use crate::storage::StorageError;

/// A live row the server serves: not a tombstone, hashed, not quarantined.
const SERVED: &str = "NOT deleted AND hash IS NOT NULL AND quarantine IS NULL";

/// Parameters of a statement, numbered as they are added.
#[derive(Default)]
struct Args(Vec<Box<dyn ToSql + Sync + Send>>);

impl Args {
    /// Adds a parameter; returns its placeholder.
    fn add(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
    }
}

/// Creates the index of every declared filter (an index declared before and no longer is left
/// for the operator to drop), and analyzes `records` when it created one: PostgreSQL keeps
/// statistics of an expression only from the next `ANALYZE`, and without them it preferred the
/// primary key to the new index for a subset's key range (a scan of the collection). On a
/// large table, create the index beforehand with `CREATE INDEX CONCURRENTLY` under
/// [`FilterIndex::index_name`]: it is then found and left as it is.
pub(super) async fn declare(pg: &PgStorage, filters: &[FilterIndex]) -> Result<(), StorageError> {
    let mut client = pg.client().await?;
    let tx = client.transaction().await?;
    // Two instances starting at once must not create one index twice (the schema's lock).
    tx.execute("SELECT pg_advisory_xact_lock(7410)", &[])
        .await?;
    let mut created = false;
    for f in filters {
        let exists = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&f.index_name()])
            .await?
            .get::<_, bool>(0);
        if exists {
            continue;
        }
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON records (scope, {}, version) WHERE collection \
                 = {}",
            f.index_name(),
            expr(&f.segments()),
            literal(&f.collection)
        ))
        .await?;
        created = true;
    }
    if created {
        tx.batch_execute("ANALYZE records").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The page of `sub` after `from`, in one `REPEATABLE READ` transaction.
pub(super) async fn pull(
    pg: &PgStorage,
    scope: &str,
    sub: &Subscription,
    from: Option<Position>,
    limit: u32,
) -> Result<SubsetAnswer, StorageError> {
    pg.fix_hashes(scope).await?;
    let mut client = pg.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let s = scope_row(&*tx, scope).await?;
    if must_reset(from, s.seq, s.horizon) {
        return Ok(SubsetAnswer::Reset);
    }
    let (cursor, safe) = from.map_or((0, s.seq), |p| (p.cursor, p.safe));
    let mut page = SubsetRows::new(limit);
    let collection = literal(&sub.collection);
    let n = limit as i64 + 1;
    if cursor < safe {
        let mut args = Args::default();
        let sql = initial_sql(sub, &collection, scope, cursor, safe, n, &mut args);
        read(&tx, &sql, &args, &mut page, false).await?;
    }
    if !page.full() {
        let mut args = Args::default();
        let inside = matching(sub, &mut args);
        let sql = format!(
            "SELECT {COLUMNS}, coalesce({inside}, false) FROM records WHERE scope = {}
             AND collection = {collection} AND version > {}
             AND (deleted OR hash IS NOT NULL OR quarantine IS NOT NULL)
             ORDER BY version LIMIT {}",
            args.add(scope.to_string()),
            args.add(cursor.max(safe) as i64),
            args.add(n),
        );
        read(&tx, &sql, &args, &mut page, true).await?;
    } else if !page.has_more() {
        // A page filled exactly by the initial part: more follow if the feed part has any.
        let more = tx
            .query_opt(
                &format!(
                    "SELECT 1 FROM records WHERE scope = $1 AND collection = {collection}
                     AND version > $2 LIMIT 1"
                ),
                &[&scope, &(safe as i64)],
            )
            .await?;
        if more.is_some() {
            page.more();
        }
    }
    tx.commit().await?;
    Ok(SubsetAnswer::Page(page.finish(
        sub,
        from,
        s.seq,
        s.totals.count,
    )))
}

/// Count and digest of the subscription's records in `range`, with the checkpoint they were
/// read at (one `REPEATABLE READ` snapshot). The cost is the subset's size.
pub(super) async fn digest(
    pg: &PgStorage,
    scope: &str,
    sub: &Subscription,
    range: &KeyRange,
) -> Result<SubsetSnapshot, StorageError> {
    pg.fix_hashes(scope).await?;
    let mut client = pg.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let s = scope_row(&*tx, scope).await?;
    let mut args = Args::default();
    let sql = records_sql(sub, scope, range, "collection, id, hash", None, &mut args);
    let rows = tx.query(&sql, &args.refs()).await?;
    let mut snap = Snapshot::default();
    for r in rows {
        let (c, i, h): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        snap.insert(&leaf_of(&c, &i, &h)?);
    }
    tx.commit().await?;
    Ok(SubsetSnapshot {
        count: snap.count,
        digest: snap.digest,
        checkpoint: tether_engine::Checkpoint(s.seq.to_string()),
    })
}

/// The subscription's records in `range`, in key order, read through a portal; `None` if more
/// than `max` or more than a page's bytes.
pub(super) async fn records(
    pg: &PgStorage,
    scope: &str,
    sub: &Subscription,
    range: &KeyRange,
    max: usize,
) -> Result<Option<Vec<Change>>, StorageError> {
    pg.fix_hashes(scope).await?;
    let mut client = pg.client().await?;
    let tx = client.build_transaction().read_only(true).start().await?;
    let mut args = Args::default();
    let sql = records_sql(sub, scope, range, COLUMNS, Some(max), &mut args);
    let stmt = tx.prepare(&sql).await?;
    let portal = tx.bind(&stmt, &args.refs()).await?;
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
}

/// Reads rows into the page through a portal, in batches sized to its byte budget; `inside`:
/// the statement's 7th column says whether a live row is in the subscription (else all are).
async fn read(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    args: &Args,
    page: &mut SubsetRows,
    inside: bool,
) -> Result<(), StorageError> {
    let stmt = tx.prepare(sql).await?;
    let portal = tx.bind(&stmt, &args.refs()).await?;
    loop {
        let batch = page.next_batch(FIRST_BATCH);
        let rows = tx.query_portal(&portal, batch as i32).await?;
        for r in &rows {
            if page.full() {
                page.more();
                return Ok(());
            }
            page.push(row_change(r)?, !inside || r.get::<_, bool>(6));
        }
        if rows.len() < batch {
            return Ok(());
        }
    }
}

/// The statement of the initial part: up to `n` matching live records in `(cursor, safe]`,
/// per value of the first path through its index, merged in version order.
fn initial_sql(
    sub: &Subscription,
    collection: &str,
    scope: &str,
    cursor: u64,
    safe: u64,
    n: i64,
    args: &mut Args,
) -> String {
    let scope = args.add(scope.to_string());
    let (cursor, safe, n) = (args.add(cursor as i64), args.add(safe as i64), args.add(n));
    let Some((first, values)) = sub.filters.iter().next() else {
        return format!(
            "SELECT {COLUMNS} FROM records WHERE scope = {scope} AND collection = {collection}
             AND version > {cursor} AND version <= {safe} AND {SERVED}
             ORDER BY version LIMIT {n}"
        );
    };
    let first = expr(&first.split('.').collect::<Vec<_>>());
    let rest = matching(sub, args);
    let picks: Vec<String> = values
        .iter()
        .map(|v| {
            let v = args.add(v.to_string());
            format!(
                "(SELECT version FROM records WHERE scope = {scope}
                  AND collection = {collection} AND {first} = {v}::text::jsonb AND {rest}
                  AND version > {cursor} AND version <= {safe} AND {SERVED}
                  ORDER BY version LIMIT {n})"
            )
        })
        .collect();
    format!(
        "SELECT {COLUMNS} FROM records WHERE scope = {scope} AND version IN (
           SELECT version FROM ({}) AS picked ORDER BY version LIMIT {n}) ORDER BY version",
        picks.join(" UNION ALL ")
    )
}

/// The statement reading the subscription's live records in `range` in key order.
fn records_sql(
    sub: &Subscription,
    scope: &str,
    range: &KeyRange,
    columns: &str,
    max: Option<usize>,
    args: &mut Args,
) -> String {
    let scope = args.add(scope.to_string());
    let inside = matching(sub, args);
    let (cond, bounds) = range_sql(range, args.0.len() + 1);
    for b in bounds {
        args.add(b);
    }
    let mut sql = format!(
        "SELECT {columns} FROM records WHERE scope = {scope} AND collection = {}
         AND {SERVED} AND {inside}{cond} ORDER BY collection, id",
        literal(&sub.collection)
    );
    if let Some(max) = max {
        sql.push_str(&format!(" LIMIT {}", max as u64 + 1));
    }
    sql
}

/// `(data #> '{a,b}')`: path segments are ASCII letters, digits and `_`
/// (`Subscription::validate`), so they need no quoting.
fn expr(segments: &[&str]) -> String {
    format!("(data #> '{{{}}}')", segments.join(","))
}

/// Whether a record is in the subscription, as SQL over `data` (`true` without filters; NULL
/// where a path is missing), its values bound as JSON text cast to `jsonb`: `jsonb` equality
/// keeps strings, numbers and booleans apart and compares numbers by value.
fn matching(sub: &Subscription, args: &mut Args) -> String {
    if sub.filters.is_empty() {
        return "true".into();
    }
    let terms: Vec<String> = sub
        .filters
        .iter()
        .map(|(path, values)| {
            let e = expr(&path.split('.').collect::<Vec<_>>());
            let marks: Vec<String> = values
                .iter()
                .map(|v: &Value| format!("{}::text::jsonb", args.add(v.to_string())))
                .collect();
            format!("{e} IN ({})", marks.join(", "))
        })
        .collect();
    format!("({})", terms.join(" AND "))
}
