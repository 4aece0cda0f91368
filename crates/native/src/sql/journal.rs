//! The journals beside the rows: the outbox of pending edits, the conflict journal, the run
//! history.

use rusqlite::types::Value;
use rusqlite::{params, Connection};
use tether_engine::{
    Conflict, Counts, Detail, Error, ErrorKind, Key, Row, Run, RunError, RunStatus, ScopeId,
};

use super::*;

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
         base_version, cloud_version, cloud_hash, at, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
        c.reason,
    ])?;
    Ok(())
}

pub fn conflicts(conn: &Connection, scope: &ScopeId) -> SqlResult<Vec<Conflict>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, scope, collection, record_id, local_op, local_data, base_version, \
             cloud_version, cloud_hash, at, reason FROM conflicts \
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
            reason: r.get(10)?,
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
