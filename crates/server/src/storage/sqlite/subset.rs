//! Subsets on SQLite storage (docs/server.md, "Subsets"): expression indexes on
//! `json_extract(data, path)`, one per declared `(collection, path)`, partial on the
//! collection, and the queries that use them.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};
use serde_json::Value;
use tether_engine::digest::Snapshot;
use tether_engine::subscription::{Subscription, SubsetSnapshot};
use tether_engine::{Change, KeyRange};

use super::{leaf_of, must_reset, range_sql, row_change, scope_row, PageRows, Position};
use crate::storage::subset::{literal, FilterIndex, SubsetAnswer, SubsetRows};
use crate::storage::StorageError;

/// The columns a change is read from (as `row_change` reads them).
const COLUMNS: &str = "collection, id, version, updated_at, data, hash";

/// Creates the index of every declared filter (and nothing else: an index declared before and
/// no longer is left in place, for the operator to drop).
pub(super) fn declare(conn: &Connection, filters: &[FilterIndex]) -> Result<(), StorageError> {
    for f in filters {
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON records (scope, {}, version) WHERE collection = {}",
            f.index_name(),
            expr(&f.segments()),
            literal(&f.collection)
        ))?;
    }
    Ok(())
}

/// The page of `sub` after `from`, in one read transaction.
pub(super) fn pull(
    conn: &mut Connection,
    scope: &str,
    sub: &Subscription,
    from: Option<Position>,
    limit: u32,
) -> Result<SubsetAnswer, StorageError> {
    let tx = conn.transaction()?;
    let s = scope_row(&tx, scope)?;
    if must_reset(from, s.seq, s.horizon) {
        return Ok(SubsetAnswer::Reset);
    }
    let (cursor, safe) = from.map_or((0, s.seq), |p| (p.cursor, p.safe));
    let mut page = SubsetRows::new(limit);
    let collection = literal(&sub.collection);
    if cursor < safe {
        // The initial part: live records of the subscription, through its first path's index.
        let mut args: Vec<SqlValue> = Vec::new();
        let sql = initial_sql(sub, &collection, scope, cursor, safe, limit, &mut args);
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            if page.full() {
                page.more();
                break;
            }
            page.push(row_change(r)?, true);
        }
    }
    if !page.full() {
        // The feed part: every change of the collection after `safe`.
        let mut args: Vec<SqlValue> = Vec::new();
        let inside = matching(sub, &mut args);
        args.push(scope.to_string().into());
        args.push((cursor.max(safe) as i64).into());
        args.push((limit as i64 + 1).into());
        let sql = format!(
            "SELECT {COLUMNS}, coalesce({inside}, 0) FROM records WHERE scope = ? AND collection = {collection}
             AND version > ? ORDER BY version LIMIT ?"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            if page.full() {
                page.more();
                break;
            }
            let inside: bool = r.get(6)?;
            page.push(row_change(r)?, inside);
        }
    } else if !page.has_more() {
        // A page filled exactly by the initial part: more follow if the feed part has any.
        let more: bool = tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM records WHERE scope = ?1
                 AND collection = {collection} AND version > ?2)"
            ),
            rusqlite::params![scope, safe as i64],
            |r| r.get(0),
        )?;
        if more {
            page.more();
        }
    }
    Ok(SubsetAnswer::Page(page.finish(
        sub,
        from,
        s.seq,
        s.totals.count,
    )))
}

/// Count and digest of the subscription's records in `range`, with the checkpoint they were
/// read at. Reads every matching record's key and hash (through the index of the first path):
/// the cost is the subset's size.
pub(super) fn digest(
    conn: &mut Connection,
    scope: &str,
    sub: &Subscription,
    range: &KeyRange,
) -> Result<SubsetSnapshot, StorageError> {
    let tx = conn.transaction()?;
    let s = scope_row(&tx, scope)?;
    let (sql, args) = records_sql(sub, scope, range, "collection, id, hash", None);
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut snap = Snapshot::default();
    while let Some(r) = rows.next()? {
        let (c, i, h): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        snap.insert(&leaf_of(&c, &i, &h)?);
    }
    Ok(SubsetSnapshot {
        count: snap.count,
        digest: snap.digest,
        checkpoint: tether_engine::Checkpoint(s.seq.to_string()),
    })
}

/// The subscription's records in `range`, in key order; `None` if more than `max` or more than
/// a page's bytes.
pub(super) fn records(
    conn: &Connection,
    scope: &str,
    sub: &Subscription,
    range: &KeyRange,
    max: usize,
) -> Result<Option<Vec<Change>>, StorageError> {
    let (sql, args) = records_sql(sub, scope, range, COLUMNS, Some(max));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = PageRows::new(max.min(u32::MAX as usize) as u32);
    while let Some(r) = rows.next()? {
        if out.full() {
            return Ok(None);
        }
        out.push(row_change(r)?);
    }
    Ok(Some(out.into_changes()))
}

/// The statement of the initial part: the versions of up to `limit + 1` matching live records
/// in `(cursor, safe]`, per value of the first path through its index, merged in version order.
fn initial_sql(
    sub: &Subscription,
    collection: &str,
    scope: &str,
    cursor: u64,
    safe: u64,
    limit: u32,
    args: &mut Vec<SqlValue>,
) -> String {
    let n = limit as i64 + 1;
    let Some((first, values)) = sub.filters.iter().next() else {
        args.extend([
            scope.to_string().into(),
            (cursor as i64).into(),
            (safe as i64).into(),
            n.into(),
        ]);
        return format!(
            "SELECT {COLUMNS} FROM records WHERE scope = ? AND collection = {collection}
             AND version > ? AND version <= ? AND NOT deleted ORDER BY version LIMIT ?"
        );
    };
    let first = expr(&first.split('.').collect::<Vec<_>>());
    let indexed = indexed_by(sub);
    args.push(scope.to_string().into());
    let mut picks = Vec::new();
    for v in values {
        args.push(scope.to_string().into());
        args.push(value(v));
        let rest = matching(sub, args);
        args.extend([(cursor as i64).into(), (safe as i64).into(), n.into()]);
        picks.push(format!(
            "SELECT * FROM (SELECT version FROM records{indexed} WHERE scope = ?
             AND collection = {collection} AND {first} = ? AND {rest}
             AND version > ? AND version <= ? AND NOT deleted ORDER BY version LIMIT ?)"
        ));
    }
    args.push(n.into());
    format!(
        "SELECT {COLUMNS} FROM records WHERE scope = ? AND version IN (
           SELECT version FROM ({}) ORDER BY version LIMIT ?) ORDER BY version",
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
) -> (String, Vec<SqlValue>) {
    let mut args: Vec<SqlValue> = vec![scope.to_string().into()];
    let inside = matching(sub, &mut args);
    // `range_sql` numbers its parameters after these: SQLite numbers each `?` one above the
    // largest number before it.
    let (cond, bounds) = range_sql(range, args.len() + 1);
    let mut sql = format!(
        "SELECT {columns} FROM records{} WHERE scope = ? AND collection = {} AND NOT deleted
         AND {inside}{cond}",
        indexed_by(sub),
        literal(&sub.collection)
    );
    sql.push_str(" ORDER BY collection, id");
    if let Some(max) = max {
        sql.push_str(&format!(" LIMIT {}", max as u64 + 1));
    }
    args.extend(bounds.into_iter().map(SqlValue::from));
    (sql, args)
}

/// ` INDEXED BY <the first path's index>`: without statistics SQLite may prefer the
/// collection's feed, which costs the whole collection (a key range makes it likely).
fn indexed_by(sub: &Subscription) -> String {
    sub.filters.keys().next().map_or(String::new(), |path| {
        let index = FilterIndex {
            collection: sub.collection.clone(),
            path: path.clone(),
        };
        format!(" INDEXED BY {}", index.index_name())
    })
}

/// `json_extract(data, '$."a"."b"')`: path segments are ASCII letters, digits and `_`
/// (`Subscription::validate`), so they need no escaping.
fn expr(segments: &[&str]) -> String {
    let path: Vec<String> = segments.iter().map(|s| format!("\"{s}\"")).collect();
    format!("json_extract(data, '$.{}')", path.join("."))
}

/// Whether a record is in the subscription, as SQL over `data` (`1` without filters), its
/// values appended to `args`. A value is bound as TEXT or REAL: SQLite compares an expression
/// without affinity to TEXT only as text and to REAL only as a number, so `"1"` never equals
/// `1`; `json_type` keeps out what `json_extract` turns into the same SQL values (`true` is 1,
/// an array is its JSON text).
fn matching(sub: &Subscription, args: &mut Vec<SqlValue>) -> String {
    if sub.filters.is_empty() {
        return "1".into();
    }
    let mut terms = Vec::new();
    for (path, values) in &sub.filters {
        let segments: Vec<&str> = path.split('.').collect();
        let e = expr(&segments);
        let t = e.replacen("json_extract", "json_type", 1);
        let marks = vec!["?"; values.len()].join(", ");
        args.extend(values.iter().map(value));
        terms.push(format!(
            "({e} IN ({marks}) AND {t} IN ('text', 'integer', 'real'))"
        ));
    }
    format!("({})", terms.join(" AND "))
}

fn value(v: &Value) -> SqlValue {
    match v {
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Real(other.as_f64().unwrap_or(f64::NAN)),
    }
}
