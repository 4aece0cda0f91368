//! Declared indexes and their entries: the `indexes` and `index_entries` tables.

use tether_engine::query::{IndexSpec, Path};
use tether_engine::{Error, Key, Row};

use super::*;
use crate::params;

/// One row of `indexes`: a declared index, its number, and how far its build has come.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Declared {
    /// `index_no`, what its entries carry.
    pub no: i64,
    /// The index.
    pub spec: IndexSpec,
    /// Whether rows that existed when it was declared may still lack entries.
    pub building: bool,
    /// The last row built, `(scope_id, id)`; `None`: from the start.
    pub cursor: Option<(i64, String)>,
}

/// Every declared index, by collection then name.
pub(crate) fn declared(conn: &impl Connection) -> SqlResult<Vec<Declared>> {
    let mut out = Vec::new();
    conn.prepare(
        "SELECT index_no, collection, name, paths, building, build_scope, build_id \
         FROM indexes ORDER BY collection, name",
    )?
    .query(&[], &mut |r| {
        let name: String = r.get(2)?;
        let collection: String = r.get(1)?;
        let paths: Vec<Path> = serde_json::from_str(&r.get::<String>(3)?).map_err(|e| {
            Error::storage(format!("stored paths of index {collection}.{name}: {e}"))
        })?;
        let cursor = match (r.get::<Option<i64>>(5)?, r.get::<Option<String>>(6)?) {
            (Some(s), Some(id)) => Some((s, id)),
            _ => None,
        };
        out.push(Declared {
            no: r.get(0)?,
            spec: IndexSpec::named(name, collection, paths)?,
            building: r.get(4)?,
            cursor,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Records a new index as building; returns its number.
pub(crate) fn insert_index(conn: &impl Connection, spec: &IndexSpec) -> SqlResult<i64> {
    let paths = serde_json::to_string(&spec.paths)
        .map_err(|e| Error::storage(format!("index paths: {e}")))?;
    let no = conn.query_row(
        "INSERT INTO indexes (collection, name, paths, building) VALUES (?1, ?2, ?3, 1) \
         RETURNING index_no",
        params![&spec.collection, &spec.name, &paths],
        |r| r.get(0),
    )?;
    no.ok_or_else(|| Error::storage("INSERT … RETURNING gave no row").into())
}

/// Drops an index and its entries.
pub(crate) fn drop_index(conn: &impl Connection, no: i64) -> SqlResult<()> {
    conn.execute("DELETE FROM index_entries WHERE index_no = ?1", params![no])?;
    conn.execute("DELETE FROM indexes WHERE index_no = ?1", params![no])?;
    Ok(())
}

/// Stores a build's progress: the last row built, or (`None`) that the build is complete.
pub(crate) fn set_build_cursor(
    conn: &impl Connection,
    no: i64,
    cursor: Option<(i64, &str)>,
) -> SqlResult<()> {
    conn.execute(
        "UPDATE indexes SET building = ?2, build_scope = ?3, build_id = ?4 WHERE index_no = ?1",
        params![
            no,
            cursor.is_some(),
            cursor.map(|c| c.0),
            cursor.map(|c| c.1)
        ],
    )?;
    Ok(())
}

/// Adds an entry (kept if it is there already: a write may have added it before the build
/// reached its row).
pub(crate) const INSERT_ENTRY: &str =
    "INSERT OR IGNORE INTO index_entries (index_no, scope_id, key, id) VALUES (?1, ?2, ?3, ?4)";

/// Deletes an entry.
pub(crate) const DELETE_ENTRY: &str =
    "DELETE FROM index_entries WHERE index_no = ?1 AND scope_id = ?2 AND key = ?3 AND id = ?4";

/// The key of a row's entry in one index, found through `index_entries_by_row`.
pub(crate) const ENTRY_KEY: &str =
    "SELECT key FROM index_entries WHERE index_no = ?1 AND scope_id = ?2 AND id = ?3";

/// Deletes a row's entry in one index, whatever its key.
pub(crate) const DELETE_ROW_ENTRY: &str =
    "DELETE FROM index_entries WHERE index_no = ?1 AND scope_id = ?2 AND id = ?3";

/// Runs [`ENTRY_KEY`]: the row's key in index `no` (`None`: it has no entry).
pub(crate) fn entry_key(
    stmt: &mut impl Statement,
    no: i64,
    scope_id: i64,
    id: &str,
) -> SqlResult<Option<Vec<u8>>> {
    stmt.query_row(params![no, scope_id, id], |r| match r.value(0)? {
        Value::Blob(b) => Ok(b.to_vec()),
        other => Err(Error::storage(format!("stored index key is {other:?}")).into()),
    })
}

/// Runs [`DELETE_ROW_ENTRY`].
pub(crate) fn row_entry(
    stmt: &mut impl Statement,
    no: i64,
    scope_id: i64,
    id: &str,
) -> SqlResult<()> {
    stmt.execute(params![no, scope_id, id])?;
    Ok(())
}

/// Runs [`INSERT_ENTRY`] or [`DELETE_ENTRY`].
pub(crate) fn entry(
    stmt: &mut impl Statement,
    no: i64,
    scope_id: i64,
    key: &[u8],
    id: &str,
) -> SqlResult<()> {
    stmt.execute(params![no, scope_id, key, id])?;
    Ok(())
}

/// Scopes with an id at or after `from`, in id order.
pub(crate) fn scope_ids_from(conn: &impl Connection, from: i64) -> SqlResult<Vec<i64>> {
    let mut out = Vec::new();
    conn.prepare("SELECT scope_id FROM scopes WHERE scope_id >= ?1 ORDER BY scope_id")?
        .query(params![from], &mut |r| {
            out.push(r.get(0)?);
            Ok(())
        })?;
    Ok(out)
}

/// Up to `limit` rows of a collection of one scope after id `after` (`None`: from the
/// first), by id: their ids and visible data (`None` for a pending delete, and for data that
/// does not parse: such a row gets no entries, and verify's repair, which finds it, writes
/// them).
pub(crate) fn rows_to_build(
    conn: &impl Connection,
    scope_id: i64,
    collection: &str,
    after: Option<&str>,
    limit: usize,
) -> SqlResult<Vec<(String, Option<Data>)>> {
    let q = format!(
        "SELECT id, data FROM records WHERE scope_id = ?1 AND collection = ?2 AND id {} ?3 \
         ORDER BY id LIMIT ?4",
        if after.is_some() { ">" } else { ">=" }
    );
    let mut out = Vec::new();
    conn.prepare(&q)?.query(
        params![scope_id, collection, after.unwrap_or(""), limit_of(limit)],
        &mut |r| {
            let data: Option<String> = r.get(1)?;
            out.push((r.get(0)?, data.as_deref().and_then(|t| parse_data(t).ok())));
            Ok(())
        },
    )?;
    Ok(out)
}

/// One bound of a scan of `index_entries`, on `(key, id)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound<'a> {
    /// Index key.
    pub key: &'a [u8],
    /// Record id.
    pub id: &'a str,
    /// Whether `(key, id)` itself is in.
    pub inclusive: bool,
}

/// The entries of index `no` in one scope with `lower <= (key, id) < upper` (`upper` is
/// exclusive), in `(key, id)` order or its reverse, at most `limit`, each with its row. Both
/// bounds compare the primary key's last two columns as a row value, so SQLite seeks to the
/// first entry (or the last, descending) and walks from there, whatever the cursor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan_entries(
    conn: &impl Connection,
    no: i64,
    scope_id: i64,
    collection: &str,
    lower: Bound<'_>,
    upper: Bound<'_>,
    descending: bool,
    limit: usize,
    out: &mut Vec<(Vec<u8>, Row)>,
) -> SqlResult<()> {
    let q = format!(
        "SELECT e.key, e.id, r.id, r.{} FROM index_entries e LEFT JOIN records r \
         ON r.scope_id = e.scope_id AND r.collection = ?3 AND r.id = e.id \
         WHERE e.index_no = ?1 AND e.scope_id = ?2 AND (e.key, e.id) {} (?4, ?5) \
         AND (e.key, e.id) {} (?6, ?7) ORDER BY e.key {dir}, e.id {dir} LIMIT ?8",
        ROW_COLUMNS.replace(", ", ", r."),
        if lower.inclusive { ">=" } else { ">" },
        if upper.inclusive { "<=" } else { "<" },
        dir = if descending { "DESC" } else { "ASC" },
    );
    conn.prepare(&q)?.query(
        params![
            no,
            scope_id,
            collection,
            lower.key,
            lower.id,
            upper.key,
            upper.id,
            limit_of(limit)
        ],
        &mut |r| {
            let key = match r.value(0)? {
                Value::Blob(b) => b.to_vec(),
                other => {
                    return Err(Error::storage(format!("stored index key is {other:?}")).into())
                }
            };
            let id: String = r.get(1)?;
            if r.get::<Option<String>>(2)?.is_none() {
                return Err(Error::storage(format!(
                    "index entry of {collection}/{id} names a missing row"
                ))
                .into());
            }
            out.push((key, row_from(Key::new(collection, id), r, 3)?));
            Ok(())
        },
    )
}

/// The number of entries of index `no` in one scope with `from <= key < to`.
pub(crate) fn count_entries(
    conn: &impl Connection,
    no: i64,
    scope_id: i64,
    from: &[u8],
    to: &[u8],
) -> SqlResult<u64> {
    let n: Option<i64> = conn.query_row(
        "SELECT COUNT(*) FROM index_entries \
         WHERE index_no = ?1 AND scope_id = ?2 AND key >= ?3 AND key < ?4",
        params![no, scope_id, from, to],
        |r| r.get(0),
    )?;
    Ok(to_u64(n.unwrap_or(0))?)
}
