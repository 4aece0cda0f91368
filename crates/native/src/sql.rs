//! The SQL of [`SqliteStore`](crate::SqliteStore): one function per statement, each on a
//! cached prepared statement, each run inside a transaction its caller owns.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow, Statement};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tether_engine::digest::{Digest, RecordHash, Snapshot};
use tether_engine::{
    Checkpoint, Conflict, Counts, Data, Detail, Error, ErrorKind, Key, KeyRange, Result, Row, Run,
    RunError, RunStatus, ScopeId, ScopeState,
};

/// A failure inside the SQLite store: SQLite's own error, or an engine error (a stored value
/// that does not decode, a planner's error). Functions that run SQL return it, so `?` works on
/// both; it becomes the engine's [`Error`] once, where a [`Store`](tether_engine::Store)
/// method (or [`SqliteStore::open`](crate::SqliteStore::open)) returns.
#[derive(Debug)]
pub(crate) enum SqlError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The engine's error, passed through as it is.
    Engine(Error),
}

/// The result of a function that runs SQL.
pub(crate) type SqlResult<T> = std::result::Result<T, SqlError>;

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        SqlError::Sqlite(e)
    }
}

impl From<Error> for SqlError {
    fn from(e: Error) -> Self {
        SqlError::Engine(e)
    }
}

impl From<SqlError> for Error {
    /// A SQLite failure is an [`Error::Storage`] keeping the `rusqlite::Error` as its source and
    /// naming a full disk, a lock held too long and a damaged file in its detail.
    fn from(e: SqlError) -> Self {
        use rusqlite::ErrorCode as C;
        let e = match e {
            SqlError::Engine(e) => return e,
            SqlError::Sqlite(e) => e,
        };
        let detail = match e.sqlite_error_code() {
            Some(C::DiskFull) => Some(Detail::Quota),
            Some(C::DatabaseBusy | C::DatabaseLocked) => Some(Detail::Busy),
            Some(C::DatabaseCorrupt | C::NotADatabase) => Some(Detail::Corrupt),
            _ => None,
        };
        let err = Error::storage(format!("sqlite: {e}"));
        let err = match detail {
            Some(d) => err.with_detail(d),
            None => err,
        };
        err.with_source(e)
    }
}

/// The row columns every row query selects after its key columns, in this order.
const ROW_COLUMNS: &str = "hash, version, updated_at, cloud_hash, generation, pending, data";

pub fn scope_id(conn: &Connection, scope: &ScopeId) -> SqlResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT scope_id FROM scopes WHERE name = ?1")?
        .query_row([scope.as_str()], |r| r.get(0))
        .optional()?)
}

/// The scope's id (if it has a row) and state (the default state if not).
pub fn scope_state(conn: &Connection, scope: &ScopeId) -> SqlResult<(Option<i64>, ScopeState)> {
    let mut stmt = conn.prepare_cached(
        "SELECT scope_id, checkpoint, count, digest, generation, full_sync, next_seq, \
             synced_at FROM scopes WHERE name = ?1",
    )?;
    let mut rows = stmt.query([scope.as_str()])?;
    let Some(r) = rows.next()? else {
        return Ok((None, ScopeState::default()));
    };
    let digest = match r.get_ref(3)? {
        ValueRef::Blob(b) => Digest(bytes32(b, "digest")?),
        _ => Digest::ZERO,
    };
    let state = ScopeState {
        checkpoint: r.get::<_, Option<String>>(1)?.map(Checkpoint),
        totals: Snapshot {
            count: to_u64(r.get(2)?)?,
            digest,
        },
        generation: to_u64(r.get(4)?)?,
        full_sync: r.get(5)?,
        next_seq: to_u64(r.get(6)?)?,
        synced_at: r.get(7)?,
    };
    Ok((Some(r.get(0)?), state))
}

/// Writes the scope state, creating the scope's row if needed; returns its id.
pub fn write_scope_state(
    conn: &Connection,
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
    match id {
        Some(id) => {
            conn.prepare_cached(
                "UPDATE scopes SET checkpoint = ?2, count = ?3, digest = ?4, generation = ?5, \
                 full_sync = ?6, next_seq = ?7, synced_at = ?8 WHERE scope_id = ?1",
            )?
            .execute(params![
                id,
                checkpoint,
                count,
                digest,
                generation,
                st.full_sync,
                next_seq,
                st.synced_at
            ])?;
            Ok(id)
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO scopes (name, checkpoint, count, digest, generation, full_sync, \
                 next_seq, synced_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                scope.as_str(),
                checkpoint,
                count,
                digest,
                generation,
                st.full_sync,
                next_seq,
                st.synced_at
            ])?;
            Ok(conn.last_insert_rowid())
        }
    }
}

pub fn scopes(conn: &Connection) -> SqlResult<Vec<ScopeId>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM scopes ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names
        .map(|n| {
            let n = n?;
            ScopeId::new(n).map_err(|e| Error::storage(format!("stored scope name: {e}")).into())
        })
        .collect()
}

/// Rows in the scope (all generations), from the per-generation counts.
pub fn row_total(conn: &Connection, scope_id: i64) -> SqlResult<u64> {
    sum_generation_rows(conn, scope_id, i64::MAX)
}

/// Rows of generations older than `generation`.
pub fn rows_older_than(conn: &Connection, scope_id: i64, generation: u64) -> SqlResult<u64> {
    sum_generation_rows(conn, scope_id, int(generation)?)
}

fn sum_generation_rows(conn: &Connection, scope_id: i64, below: i64) -> SqlResult<u64> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(rows), 0) FROM generation_rows \
             WHERE scope_id = ?1 AND generation < ?2",
        )?
        .query_row(params![scope_id, below], |r| r.get(0))?;
    Ok(to_u64(n)?)
}

pub fn add_generation_rows(
    conn: &Connection,
    scope_id: i64,
    generation: u64,
    delta: i64,
) -> SqlResult<()> {
    let generation = int(generation)?;
    conn.prepare_cached(
        "INSERT INTO generation_rows (scope_id, generation, rows) VALUES (?1, ?2, ?3) \
         ON CONFLICT (scope_id, generation) DO UPDATE SET rows = rows + excluded.rows",
    )?
    .execute(params![scope_id, generation, delta])?;
    conn.prepare_cached(
        "DELETE FROM generation_rows WHERE scope_id = ?1 AND generation = ?2 AND rows = 0",
    )?
    .execute(params![scope_id, generation])?;
    Ok(())
}

/// The rows of `keys`, in order. Without `with_data`, the data of rows without a pending edit
/// is left out (never read from the file, never parsed): planners do not look at it.
///
/// Runs of keys of one collection in ascending id order are first probed as a whole: when no
/// row lies between their first and last id, none of them exists and the point lookups are
/// skipped. That is the common case of an initial download from a cloud whose ids grow over
/// time; with random ids the probe finds rows and costs one extra seek per run.
pub fn read_rows(
    conn: &Connection,
    scope_id: i64,
    keys: &[Key],
    with_data: bool,
) -> SqlResult<Vec<Option<Row>>> {
    /// Shorter runs are looked up directly: a probe would not save enough to pay for itself.
    const MIN_PROBED_RUN: usize = 8;
    let mut stmt = conn.prepare_cached(
        "SELECT hash, version, updated_at, cloud_hash, generation, pending, \
             CASE WHEN ?4 OR pending IS NOT NULL THEN data END \
             FROM records WHERE scope_id = ?1 AND collection = ?2 AND id = ?3",
    )?;
    let mut probe = conn.prepare_cached(
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
            let any = probe.exists(params![scope_id, first.collection, first.id, last.id])?;
            if !any {
                i = j;
                continue;
            }
        }
        for (key, slot) in keys[i..j].iter().zip(&mut out[i..j]) {
            let mut rows = stmt.query(params![scope_id, key.collection, key.id, with_data])?;
            if let Some(r) = rows.next()? {
                *slot = Some(row_from(key.clone(), r, 0)?);
            }
        }
        i = j;
    }
    Ok(out)
}

/// Rows of generations older than `generation`, with their data, in key order.
pub fn stale_rows(
    conn: &Connection,
    scope_id: i64,
    generation: u64,
) -> SqlResult<Vec<Option<Row>>> {
    let q = format!(
        "SELECT collection, id, {ROW_COLUMNS} FROM records \
         WHERE scope_id = ?1 AND generation < ?2 ORDER BY collection, id"
    );
    let mut stmt = conn.prepare_cached(&q)?;
    let mut rows = stmt.query(params![scope_id, int(generation)?])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let key = Key::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?);
        out.push(Some(row_from(key, r, 2)?));
    }
    Ok(out)
}

/// Upserts a whole row (parameters as [`put_row`] binds them).
pub const PUT_ROW: &str =
    "INSERT INTO records (scope_id, collection, id, data, hash, version, updated_at, \
         cloud_hash, generation, pending) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (scope_id, collection, id) DO UPDATE SET data = excluded.data, \
         hash = excluded.hash, version = excluded.version, updated_at = excluded.updated_at, \
         cloud_hash = excluded.cloud_hash, generation = excluded.generation, \
         pending = excluded.pending";

/// Writes a whole row with the [`PUT_ROW`] statement. `data` is the row's data already
/// serialized as JSON text.
pub fn put_row(
    stmt: &mut Statement<'_>,
    scope_id: i64,
    row: &Row,
    data: Option<&str>,
) -> SqlResult<()> {
    stmt.execute(params![
        scope_id,
        row.key.collection,
        row.key.id,
        data,
        row.hash.as_ref().map(|h| &h.0[..]),
        int(row.version)?,
        row.updated_at,
        stored_cloud_hash(row.hash.as_ref(), row.cloud_hash.as_ref()),
        int(row.generation)?,
        row.pending.map(int).transpose()?,
    ])?;
    Ok(())
}

/// Sets a row's cloud fields, keeping its data and hash.
/// `cloud_hash` is stored as in [`stored_cloud_hash`], comparing with the row's own hash.
pub const TOUCH_ROW: &str = "UPDATE records SET version = ?4, updated_at = ?5, \
     cloud_hash = CASE WHEN ?6 IS hash THEN NULL WHEN ?6 IS NULL THEN X'' ELSE ?6 END, \
     generation = ?7, pending = ?8 WHERE scope_id = ?1 AND collection = ?2 AND id = ?3";

/// Runs [`TOUCH_ROW`] (on a row the planner was handed: [`RowWrite::Touch`] names it).
#[allow(clippy::too_many_arguments)]
pub fn touch_row(
    stmt: &mut Statement<'_>,
    scope_id: i64,
    key: &Key,
    version: u64,
    updated_at: &str,
    cloud_hash: Option<&RecordHash>,
    generation: u64,
    pending: Option<u64>,
) -> SqlResult<()> {
    stmt.execute(params![
        scope_id,
        key.collection,
        key.id,
        int(version)?,
        updated_at,
        cloud_hash.map(|h| &h.0[..]),
        int(generation)?,
        pending.map(int).transpose()?,
    ])?;
    Ok(())
}

/// Deletes a row.
pub const REMOVE_ROW: &str =
    "DELETE FROM records WHERE scope_id = ?1 AND collection = ?2 AND id = ?3";

/// Runs [`REMOVE_ROW`].
pub fn remove_row(stmt: &mut Statement<'_>, scope_id: i64, key: &Key) -> SqlResult<()> {
    stmt.execute(params![scope_id, key.collection, key.id])?;
    Ok(())
}

pub fn outbox_insert(conn: &Connection, scope_id: i64, seq: u64, key: &Key) -> SqlResult<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (scope_id, seq, collection, id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![scope_id, int(seq)?, key.collection, key.id])?;
    Ok(())
}

pub fn outbox_remove(conn: &Connection, scope_id: i64, seq: u64) -> SqlResult<()> {
    conn.prepare_cached("DELETE FROM outbox WHERE scope_id = ?1 AND seq = ?2")?
        .execute(params![scope_id, int(seq)?])?;
    Ok(())
}

/// Visible rows of a collection after `after`, by id.
pub fn list(
    conn: &Connection,
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
    let mut stmt = conn.prepare_cached(&q)?;
    let rows = stmt.query(params![
        scope_id,
        collection,
        after.unwrap_or(""),
        limit_of(limit)
    ])?;
    collect_rows(rows)
}

/// Visible rows of the scope or of one collection.
pub fn count(conn: &Connection, scope_id: i64, collection: Option<&str>) -> SqlResult<u64> {
    let n: i64 = match collection {
        Some(c) => conn
            .prepare_cached(
                "SELECT COUNT(*) FROM records \
                 WHERE scope_id = ?1 AND collection = ?2 AND data IS NOT NULL",
            )?
            .query_row(params![scope_id, c], |r| r.get(0))?,
        None => {
            // Every row is visible except a pending local delete, and pending rows are few:
            // no scan of a large scope.
            let hidden: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM outbox o JOIN records r ON r.scope_id = o.scope_id \
                     AND r.collection = o.collection AND r.id = o.id \
                     WHERE o.scope_id = ?1 AND r.data IS NULL",
                )?
                .query_row([scope_id], |r| r.get(0))?;
            int(row_total(conn, scope_id)?)? - hidden
        }
    };
    Ok(to_u64(n)?)
}

/// Rows with a pending edit, by sequence number.
pub fn pending(
    conn: &Connection,
    scope_id: i64,
    after_seq: Option<u64>,
    limit: usize,
) -> SqlResult<Vec<Row>> {
    let q = "SELECT r.collection, r.id, r.hash, r.version, r.updated_at, r.cloud_hash, \
             r.generation, r.pending, r.data FROM outbox o JOIN records r \
             ON r.scope_id = o.scope_id AND r.collection = o.collection AND r.id = o.id \
             WHERE o.scope_id = ?1 AND o.seq > ?2 ORDER BY o.seq LIMIT ?3";
    let mut stmt = conn.prepare_cached(q)?;
    let after = match after_seq {
        Some(s) => int(s)?,
        None => -1,
    };
    let rows = stmt.query(params![scope_id, after, limit_of(limit)])?;
    collect_rows(rows)
}

pub fn pending_count(conn: &Connection, scope_id: i64) -> SqlResult<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM outbox WHERE scope_id = ?1")?
        .query_row([scope_id], |r| r.get(0))?;
    Ok(to_u64(n)?)
}

/// Keys in a range, in order, skipping `offset`, at most `limit`.
pub fn range_keys(
    conn: &Connection,
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
    let mut stmt = conn.prepare_cached(&q)?;
    let keys = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok(Key::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    Ok(keys.collect::<rusqlite::Result<_>>()?)
}

/// A `WHERE` clause (numbered parameters) selecting the rows of a key range. Row-value
/// comparisons on `(collection, id)` follow the primary key, so SQLite seeks instead of scans.
pub fn range_clause(scope_id: i64, range: &KeyRange) -> (String, Vec<Value>) {
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
            args.push(Value::Text(k.collection.clone()));
            args.push(Value::Text(k.id.clone()));
        }
    }
    (clause, args)
}

pub fn insert_conflict(conn: &Connection, c: &Conflict) -> SqlResult<()> {
    let data = match &c.local_data {
        Some(d) => {
            let mut s = String::new();
            write_data(d, &mut s)?;
            Some(s)
        }
        None => None,
    };
    conn.prepare_cached(
        "INSERT INTO conflicts (scope, collection, record_id, local_op, local_data, \
         base_version, cloud_version, cloud_hash, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        c.scope,
        c.collection,
        c.record_id,
        name_of(&c.local_op)?,
        data,
        c.base_version.map(int).transpose()?,
        int(c.cloud_version)?,
        c.cloud_hash.as_ref().map(|h| &h.0[..]),
        c.at,
    ])?;
    Ok(())
}

pub fn conflicts(conn: &Connection, scope: &ScopeId) -> SqlResult<Vec<Conflict>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, scope, collection, record_id, local_op, local_data, base_version, \
             cloud_version, cloud_hash, at FROM conflicts \
             WHERE scope = ?1 AND dismissed = 0 ORDER BY id",
    )?;
    let mut rows = stmt.query([scope.as_str()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let data: Option<String> = r.get(5)?;
        out.push(Conflict {
            id: to_u64(r.get(0)?)?,
            scope: r.get(1)?,
            collection: r.get(2)?,
            record_id: r.get(3)?,
            local_op: parse_name(r.get(4)?)?,
            local_data: data.as_deref().map(parse_data).transpose()?,
            base_version: r.get::<_, Option<i64>>(6)?.map(to_u64).transpose()?,
            cloud_version: to_u64(r.get(7)?)?,
            cloud_hash: opt_hash(r.get_ref(8)?)?,
            at: r.get(9)?,
        });
    }
    Ok(out)
}

pub fn dismiss_conflict(conn: &Connection, scope: &ScopeId, id: u64) -> SqlResult<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE conflicts SET dismissed = 1 WHERE scope = ?1 AND id = ?2 AND dismissed = 0",
        )?
        .execute(params![scope.as_str(), int(id)?])?;
    Ok(n > 0)
}

/// Marks runs of the scope still running as interrupted, then inserts the new one.
pub fn start_run(conn: &Connection, run: &Run) -> SqlResult<u64> {
    let gone = RunError::interrupted();
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, error_kind = ?3, error_message = ?4, \
         error_detail = NULL WHERE scope = ?1 AND status = ?5",
    )?
    .execute(params![
        run.scope,
        name_of(&RunStatus::Failed)?,
        name_of(&gone.kind)?,
        gone.message,
        name_of(&RunStatus::Running)?,
    ])?;
    conn.prepare_cached(
        "INSERT INTO runs (scope, kind, trigger, started_at, finished_at, status, pages, \
         inserted, updated, deleted, unchanged, conflicts, repaired, bytes_received, \
         error_kind, error_message, error_detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(rusqlite::params_from_iter(run_values(run)?))?;
    Ok(to_u64(conn.last_insert_rowid())?)
}

pub fn finish_run(conn: &Connection, run: &Run) -> SqlResult<()> {
    let mut values = run_values(run)?;
    values.push(Value::Integer(int(run.id)?));
    let n = conn
        .prepare_cached(
            "UPDATE runs SET scope = ?1, kind = ?2, trigger = ?3, started_at = ?4, \
             finished_at = ?5, status = ?6, pages = ?7, inserted = ?8, updated = ?9, \
             deleted = ?10, unchanged = ?11, conflicts = ?12, repaired = ?13, \
             bytes_received = ?14, error_kind = ?15, error_message = ?16, \
             error_detail = ?17 WHERE id = ?18",
        )?
        .execute(rusqlite::params_from_iter(values))?;
    if n == 0 {
        return Err(Error::storage(format!("no run with id {}", run.id)).into());
    }
    Ok(())
}

/// Runs of a scope, newest first, optionally only those started at or after `since`.
pub fn runs(
    conn: &Connection,
    scope: &ScopeId,
    since: Option<i64>,
    limit: usize,
) -> SqlResult<Vec<Run>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, scope, kind, trigger, started_at, finished_at, status, pages, \
             inserted, updated, deleted, unchanged, conflicts, repaired, bytes_received, \
             error_kind, error_message, error_detail FROM runs \
             WHERE scope = ?1 AND started_at >= ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![
        scope.as_str(),
        since.unwrap_or(i64::MIN),
        limit_of(limit)
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let n = |i: usize| -> SqlResult<u64> { Ok(to_u64(r.get(i)?)?) };
        let error_kind: Option<String> = r.get(15)?;
        let error = match error_kind {
            Some(kind) => Some(RunError {
                kind: parse_name::<ErrorKind>(kind)?,
                detail: r
                    .get::<_, Option<String>>(17)?
                    .map(parse_name::<Detail>)
                    .transpose()?,
                message: r.get::<_, Option<String>>(16)?.unwrap_or_default(),
            }),
            None => None,
        };
        out.push(Run {
            id: n(0)?,
            scope: r.get(1)?,
            kind: parse_name(r.get(2)?)?,
            trigger: parse_name(r.get(3)?)?,
            started_at: r.get(4)?,
            finished_at: r.get(5)?,
            status: parse_name(r.get(6)?)?,
            pages: n(7)?,
            counts: Counts {
                inserted: n(8)?,
                updated: n(9)?,
                deleted: n(10)?,
                unchanged: n(11)?,
                conflicts: n(12)?,
                repaired: n(13)?,
            },
            bytes_received: n(14)?,
            error,
        });
    }
    Ok(out)
}

fn run_values(run: &Run) -> SqlResult<Vec<Value>> {
    let c = &run.counts;
    let text = |s: String| Value::Text(s);
    Ok(vec![
        text(run.scope.clone()),
        text(name_of(&run.kind)?),
        text(name_of(&run.trigger)?),
        Value::Integer(run.started_at),
        run.finished_at.map_or(Value::Null, Value::Integer),
        text(name_of(&run.status)?),
        Value::Integer(int(run.pages)?),
        Value::Integer(int(c.inserted)?),
        Value::Integer(int(c.updated)?),
        Value::Integer(int(c.deleted)?),
        Value::Integer(int(c.unchanged)?),
        Value::Integer(int(c.conflicts)?),
        Value::Integer(int(c.repaired)?),
        Value::Integer(int(run.bytes_received)?),
        match &run.error {
            Some(e) => text(name_of(&e.kind)?),
            None => Value::Null,
        },
        run.error
            .as_ref()
            .map_or(Value::Null, |e| text(e.message.clone())),
        match run.error.as_ref().and_then(|e| e.detail) {
            Some(d) => text(name_of(&d)?),
            None => Value::Null,
        },
    ])
}

fn collect_rows(mut rows: rusqlite::Rows<'_>) -> SqlResult<Vec<Row>> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let key = Key::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?);
        out.push(row_from(key, r, 2)?);
    }
    Ok(out)
}

/// Decodes the [`ROW_COLUMNS`] starting at column `at`.
fn row_from(key: Key, r: &SqlRow<'_>, at: usize) -> SqlResult<Row> {
    let data: Option<String> = r.get(at + 6)?;
    let hash = opt_hash(r.get_ref(at)?)?;
    Ok(Row {
        key,
        data: data.as_deref().map(parse_data).transpose()?,
        hash,
        version: to_u64(r.get(at + 1)?)?,
        updated_at: r.get(at + 2)?,
        cloud_hash: cloud_hash_of(hash, r.get_ref(at + 3)?)?,
        generation: to_u64(r.get(at + 4)?)?,
        pending: r.get::<_, Option<i64>>(at + 5)?.map(to_u64).transpose()?,
    })
}

/// Serializes record data as JSON text into `out` (cleared first by the caller if reused).
pub fn write_data(data: &Data, out: &mut String) -> Result<()> {
    // serde_json writes only valid UTF-8; a String-backed writer avoids the utf8 re-check.
    let mut bytes = std::mem::take(out).into_bytes();
    serde_json::to_writer(&mut bytes, data).map_err(|e| Error::storage(format!("json: {e}")))?;
    *out = String::from_utf8(bytes).map_err(|e| Error::storage(format!("json: {e}")))?;
    Ok(())
}

pub fn parse_data(text: &str) -> Result<Data> {
    serde_json::from_str(text)
        .map_err(|e| Error::storage(format!("stored record data is not a JSON object: {e}")))
}

pub fn opt_hash(v: ValueRef<'_>) -> Result<Option<RecordHash>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => Ok(Some(RecordHash(bytes32(b, "hash")?))),
        _ => Err(Error::storage("stored hash is not a BLOB")),
    }
}

/// How `records.cloud_hash` is stored: NULL when it equals the row's `hash` (every row
/// without a pending edit, so nearly all of them: 33 bytes saved per row), an empty BLOB when
/// the cloud has no such record, else the 32 bytes.
pub fn stored_cloud_hash<'a>(
    hash: Option<&RecordHash>,
    cloud: Option<&'a RecordHash>,
) -> Option<&'a [u8]> {
    match cloud {
        _ if cloud == hash => None,
        None => Some(&[]),
        Some(h) => Some(&h.0[..]),
    }
}

/// Decodes [`stored_cloud_hash`].
pub fn cloud_hash_of(hash: Option<RecordHash>, stored: ValueRef<'_>) -> Result<Option<RecordHash>> {
    match stored {
        ValueRef::Null => Ok(hash),
        ValueRef::Blob([]) => Ok(None),
        other => opt_hash(other),
    }
}

pub fn bytes32(b: &[u8], what: &str) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| Error::storage(format!("stored {what} has {} bytes, expected 32", b.len())))
}

pub fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::storage(format!("stored value {v} is negative")))
}

/// The engine's u64 values as SQLite INTEGERs (i64).
pub fn int(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::storage(format!("{v} does not fit SQLite's INTEGER")))
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The wire name of a serde enum (`"initial"`, `"put"`, `"Network"`).
fn name_of<T: Serialize>(v: &T) -> Result<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::storage("enum without a string name")),
    }
}

fn parse_name<T: DeserializeOwned>(s: String) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s))
        .map_err(|e| Error::storage(format!("stored name: {e}")))
}
