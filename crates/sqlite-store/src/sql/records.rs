//! Replica state: scope rows, record rows, and how many rows each generation holds.

use tether_engine::digest::{Digest, RecordHash, Snapshot};
use tether_engine::{Checkpoint, Error, Key, KeyRange, Row, ScopeId, ScopeState};

use super::*;
use crate::params;

pub(crate) fn scope_id(conn: &impl Connection, scope: &ScopeId) -> SqlResult<Option<i64>> {
    conn.query_row(
        "SELECT scope_id FROM scopes WHERE name = ?1",
        params![scope.as_str()],
        |r| r.get(0),
    )
}

/// The scope's id (if it has a row) and state (the default state if not).
pub(crate) fn scope_state(
    conn: &impl Connection,
    scope: &ScopeId,
) -> SqlResult<(Option<i64>, ScopeState)> {
    let found = conn.query_row(
        "SELECT scope_id, checkpoint, count, digest, generation, full_sync, next_seq, \
             synced_at, client, subscriptions, evicting FROM scopes WHERE name = ?1",
        params![scope.as_str()],
        |r| {
            let digest = match r.value(3)? {
                Value::Blob(b) => Digest(bytes32(b, "digest")?),
                _ => Digest::ZERO,
            };
            let state = ScopeState {
                checkpoint: r.get::<Option<String>>(1)?.map(Checkpoint),
                totals: Snapshot {
                    count: to_u64(r.get(2)?)?,
                    digest,
                },
                generation: to_u64(r.get(4)?)?,
                full_sync: r.get(5)?,
                next_seq: to_u64(r.get(6)?)?,
                synced_at: r.get(7)?,
                client: r.get(8)?,
                subscriptions: match r.get::<Option<String>>(9)? {
                    Some(json) => serde_json::from_str(&json).map_err(|e| {
                        Error::storage(format!("a scope's subscriptions are corrupt: {e}"))
                    })?,
                    None => Vec::new(),
                },
                evicting: r.get(10)?,
            };
            Ok((Some(r.get(0)?), state))
        },
    )?;
    Ok(found.unwrap_or((None, ScopeState::default())))
}

/// Writes the scope state, creating the scope's row if needed; returns its id.
pub(crate) fn write_scope_state(
    conn: &impl Connection,
    scope: &ScopeId,
    id: Option<i64>,
    st: &ScopeState,
) -> SqlResult<i64> {
    let checkpoint = st.checkpoint.as_ref().map(Checkpoint::as_str);
    let (count, generation, next_seq) = (
        int(st.totals.count)?,
        int(st.generation)?,
        int(st.next_seq)?,
    );
    let digest = &st.totals.digest.0[..];
    let subscriptions =
        match st.subscriptions.is_empty() {
            true => None,
            false => Some(serde_json::to_string(&st.subscriptions).map_err(|e| {
                Error::storage(format!("cannot encode a scope's subscriptions: {e}"))
            })?),
        };
    match id {
        Some(id) => {
            conn.execute(
                "UPDATE scopes SET checkpoint = ?2, count = ?3, digest = ?4, generation = ?5, \
                 full_sync = ?6, next_seq = ?7, synced_at = ?8, client = ?9, subscriptions = ?10, \
                 evicting = ?11 WHERE scope_id = ?1",
                params![
                    id,
                    checkpoint,
                    count,
                    digest,
                    generation,
                    st.full_sync,
                    next_seq,
                    st.synced_at,
                    st.client.as_deref(),
                    subscriptions.as_deref(),
                    st.evicting
                ],
            )?;
            Ok(id)
        }
        None => {
            // RETURNING rather than last_insert_rowid(): one statement on every binding.
            let id = conn.query_row(
                "INSERT INTO scopes (name, checkpoint, count, digest, generation, full_sync, \
                 next_seq, synced_at, client, subscriptions, evicting) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 RETURNING scope_id",
                params![
                    scope.as_str(),
                    checkpoint,
                    count,
                    digest,
                    generation,
                    st.full_sync,
                    next_seq,
                    st.synced_at,
                    st.client.as_deref(),
                    subscriptions.as_deref(),
                    st.evicting
                ],
                |r| r.get(0),
            )?;
            id.ok_or_else(|| Error::storage("INSERT … RETURNING gave no row").into())
        }
    }
}

pub(crate) fn scopes(conn: &impl Connection) -> SqlResult<Vec<ScopeId>> {
    let mut out = Vec::new();
    conn.prepare("SELECT name FROM scopes ORDER BY name")?
        .query(&[], &mut |r| {
            let n = r.get::<String>(0)?;
            out.push(
                ScopeId::new(n).map_err(|e| Error::storage(format!("stored scope name: {e}")))?,
            );
            Ok(())
        })?;
    Ok(out)
}

/// Rows in the scope (all generations), from the per-generation counts.
pub(crate) fn row_total(conn: &impl Connection, scope_id: i64) -> SqlResult<u64> {
    sum_generation_rows(conn, scope_id, i64::MAX)
}

/// Rows of generations older than `generation`.
pub(crate) fn rows_older_than(
    conn: &impl Connection,
    scope_id: i64,
    generation: u64,
) -> SqlResult<u64> {
    sum_generation_rows(conn, scope_id, int(generation)?)
}

fn sum_generation_rows(conn: &impl Connection, scope_id: i64, below: i64) -> SqlResult<u64> {
    let n: Option<i64> = conn.query_row(
        "SELECT COALESCE(SUM(rows), 0) FROM generation_rows \
             WHERE scope_id = ?1 AND generation < ?2",
        params![scope_id, below],
        |r| r.get(0),
    )?;
    Ok(to_u64(n.unwrap_or(0))?)
}

pub(crate) fn add_generation_rows(
    conn: &impl Connection,
    scope_id: i64,
    generation: u64,
    delta: i64,
) -> SqlResult<()> {
    let generation = int(generation)?;
    conn.execute(
        "INSERT INTO generation_rows (scope_id, generation, rows) VALUES (?1, ?2, ?3) \
         ON CONFLICT (scope_id, generation) DO UPDATE SET rows = rows + excluded.rows",
        params![scope_id, generation, delta],
    )?;
    conn.execute(
        "DELETE FROM generation_rows WHERE scope_id = ?1 AND generation = ?2 AND rows = 0",
        params![scope_id, generation],
    )?;
    Ok(())
}

/// The rows of `keys`, in order. Where `with_data(collection)` is false, the data of rows
/// without a pending edit is left out (never read from the file, never parsed): planners do
/// not look at it.
///
/// Runs of keys of one collection in ascending id order are first probed as a whole: when no
/// row lies between their first and last id, none of them exists and the point lookups are
/// skipped. That is the common case of an initial download from a cloud whose ids grow over
/// time; with random ids the probe finds rows and costs one extra seek per run.
pub(crate) fn read_rows(
    conn: &impl Connection,
    scope_id: i64,
    keys: &[Key],
    with_data: impl Fn(&str) -> bool,
) -> SqlResult<Vec<Option<Row>>> {
    /// Shorter runs are looked up directly: a probe would not save enough to pay for itself.
    const MIN_PROBED_RUN: usize = 8;
    let mut stmt = conn.prepare(
        "SELECT hash, version, updated_at, cloud_hash, generation, pending, \
             CASE WHEN ?4 OR pending IS NOT NULL THEN data END, sent \
             FROM records WHERE scope_id = ?1 AND collection = ?2 AND id = ?3",
    )?;
    let mut probe = conn.prepare(
        "SELECT 1 FROM records \
             WHERE scope_id = ?1 AND collection = ?2 AND id >= ?3 AND id <= ?4 LIMIT 1",
    )?;
    let mut out = vec![None; keys.len()];
    let mut i = 0;
    while i < keys.len() {
        let first = &keys[i];
        let mut j = i + 1;
        while j < keys.len()
            && keys[j].collection == first.collection
            && keys[j].id > keys[j - 1].id
        {
            j += 1;
        }
        if j - i >= MIN_PROBED_RUN {
            let last = &keys[j - 1];
            let params = params![scope_id, &first.collection, &first.id, &last.id];
            if probe.query_row(params, |_| Ok(()))?.is_none() {
                i = j;
                continue;
            }
        }
        for (key, slot) in keys[i..j].iter().zip(&mut out[i..j]) {
            let params = params![
                scope_id,
                &key.collection,
                &key.id,
                with_data(&key.collection)
            ];
            *slot = stmt.query_row(params, |r| row_from(key.clone(), r, 0))?;
        }
        i = j;
    }
    Ok(out)
}

/// Rows of generations older than `generation`, with their data, in key order.
pub(crate) fn stale_rows(
    conn: &impl Connection,
    scope_id: i64,
    generation: u64,
) -> SqlResult<Vec<Option<Row>>> {
    let q = format!(
        "SELECT collection, id, {ROW_COLUMNS} FROM records \
         WHERE scope_id = ?1 AND generation < ?2 ORDER BY collection, id"
    );
    let rows = collect_rows(&mut conn.prepare(&q)?, params![scope_id, int(generation)?])?;
    Ok(rows.into_iter().map(Some).collect())
}

/// Upserts a whole row (parameters as [`put_params`] lists them).
pub(crate) const PUT_ROW: &str =
    "INSERT INTO records (scope_id, collection, id, data, hash, version, updated_at, \
         cloud_hash, generation, pending, sent) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (scope_id, collection, id) DO UPDATE SET data = excluded.data, \
         hash = excluded.hash, version = excluded.version, updated_at = excluded.updated_at, \
         cloud_hash = excluded.cloud_hash, generation = excluded.generation, \
         pending = excluded.pending, sent = excluded.sent";

/// The parameters of [`PUT_ROW`] for a whole row. `data` is the row's data already
/// serialized as JSON text.
pub(crate) fn put_params<'a>(
    scope_id: i64,
    row: &'a Row,
    data: Option<&'a str>,
) -> SqlResult<[Value<'a>; 11]> {
    Ok([
        scope_id.into(),
        (&row.key.collection).into(),
        (&row.key.id).into(),
        data.into(),
        row.hash.as_ref().map(|h| &h.0[..]).into(),
        int(row.version)?.into(),
        (&row.updated_at).into(),
        stored_cloud_hash(row.hash.as_ref(), row.cloud_hash.as_ref()).into(),
        int(row.generation)?.into(),
        row.pending.map(int).transpose()?.into(),
        row.sent.map(int).transpose()?.into(),
    ])
}

/// Sets a row's cloud fields, keeping its data and hash.
/// `cloud_hash` is stored as in [`stored_cloud_hash`], comparing with the row's own hash.
pub(crate) const TOUCH_ROW: &str = "UPDATE records SET version = ?4, updated_at = ?5, \
     cloud_hash = CASE WHEN ?6 IS hash THEN NULL WHEN ?6 IS NULL THEN X'' ELSE ?6 END, \
     generation = ?7, pending = ?8, sent = ?9 WHERE scope_id = ?1 AND collection = ?2 AND id = ?3";

/// The parameters of [`TOUCH_ROW`] (on a row the planner was handed:
/// [`RowWrite::Touch`](tether_engine::rules::RowWrite::Touch) names it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn touch_params<'a>(
    scope_id: i64,
    key: &'a Key,
    version: u64,
    updated_at: &'a str,
    cloud_hash: Option<&'a RecordHash>,
    generation: u64,
    pending: Option<u64>,
    sent: Option<u64>,
) -> SqlResult<[Value<'a>; 9]> {
    Ok([
        scope_id.into(),
        (&key.collection).into(),
        (&key.id).into(),
        int(version)?.into(),
        updated_at.into(),
        cloud_hash.map(|h| &h.0[..]).into(),
        int(generation)?.into(),
        pending.map(int).transpose()?.into(),
        sent.map(int).transpose()?.into(),
    ])
}

/// Deletes a row.
pub(crate) const REMOVE_ROW: &str =
    "DELETE FROM records WHERE scope_id = ?1 AND collection = ?2 AND id = ?3";

/// The parameters of [`REMOVE_ROW`].
pub(crate) fn remove_params(scope_id: i64, key: &Key) -> [Value<'_>; 3] {
    [scope_id.into(), (&key.collection).into(), (&key.id).into()]
}

/// Visible rows of a collection after `after`, by id.
pub(crate) fn list(
    conn: &impl Connection,
    scope_id: i64,
    collection: &str,
    after: Option<&str>,
    limit: usize,
) -> SqlResult<Vec<Row>> {
    let q = format!(
        "SELECT collection, id, {ROW_COLUMNS} FROM records WHERE scope_id = ?1 \
         AND collection = ?2 AND id {} ?3 AND data IS NOT NULL ORDER BY id LIMIT ?4",
        if after.is_some() { ">" } else { ">=" }
    );
    collect_rows(
        &mut conn.prepare(&q)?,
        params![scope_id, collection, after.unwrap_or(""), limit_of(limit)],
    )
}

/// Visible rows of the scope or of one collection.
pub(crate) fn count(
    conn: &impl Connection,
    scope_id: i64,
    collection: Option<&str>,
) -> SqlResult<u64> {
    let n: i64 = match collection {
        Some(c) => conn
            .query_row(
                "SELECT COUNT(*) FROM records \
                 WHERE scope_id = ?1 AND collection = ?2 AND data IS NOT NULL",
                params![scope_id, c],
                |r| r.get(0),
            )?
            .unwrap_or(0),
        None => {
            // Every row is visible except a pending local delete, and pending rows are few:
            // no scan of a large scope.
            let hidden: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM outbox o JOIN records r ON r.scope_id = o.scope_id \
                     AND r.collection = o.collection AND r.id = o.id \
                     WHERE o.scope_id = ?1 AND r.data IS NULL",
                    params![scope_id],
                    |r| r.get(0),
                )?
                .unwrap_or(0);
            int(row_total(conn, scope_id)?)? - hidden
        }
    };
    Ok(to_u64(n)?)
}

/// Keys in a range, in order, skipping `offset`, at most `limit`.
pub(crate) fn range_keys(
    conn: &impl Connection,
    scope_id: i64,
    range: &KeyRange,
    limit: usize,
    offset: u64,
) -> SqlResult<Vec<Key>> {
    let (clause, mut args) = range_clause(scope_id, range);
    args.push(Value::Integer(limit_of(limit)));
    args.push(Value::Integer(int(offset)?));
    let n = args.len();
    let q = format!(
        "SELECT collection, id FROM records WHERE {clause} ORDER BY collection, id \
         LIMIT ?{} OFFSET ?{n}",
        n - 1
    );
    let mut keys = Vec::new();
    conn.prepare(&q)?.query(&args, &mut |r| {
        keys.push(Key::new(r.get::<String>(0)?, r.get::<String>(1)?));
        Ok(())
    })?;
    Ok(keys)
}

/// A `WHERE` clause (numbered parameters) selecting the rows of a key range. Row-value
/// comparisons on `(collection, id)` follow the primary key, so SQLite seeks instead of scans.
pub(crate) fn range_clause(scope_id: i64, range: &KeyRange) -> (String, Vec<Value<'_>>) {
    let mut clause = String::from("scope_id = ?1");
    let mut args = vec![Value::Integer(scope_id)];
    for (bound, op) in [(&range.from, ">="), (&range.to, "<")] {
        if let Some(k) = bound {
            let n = args.len();
            clause.push_str(&format!(
                " AND (collection, id) {op} (?{}, ?{})",
                n + 1,
                n + 2
            ));
            args.push(Value::Text(&k.collection));
            args.push(Value::Text(&k.id));
        }
    }
    (clause, args)
}
