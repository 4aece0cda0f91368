//! The journals beside the rows: the outbox of pending edits, the conflict journal, the run
//! history.

use tether_engine::{
    Conflict, Counts, Detail, Error, ErrorKind, Key, Row, Run, RunError, RunStatus, ScopeId,
};

use super::*;
use crate::params;

pub(crate) fn outbox_insert(
    conn: &impl Connection,
    scope_id: i64,
    seq: u64,
    key: &Key,
) -> SqlResult<()> {
    conn.execute(
        "INSERT INTO outbox (scope_id, seq, collection, id) VALUES (?1, ?2, ?3, ?4)",
        params![scope_id, int(seq)?, &key.collection, &key.id],
    )?;
    Ok(())
}

pub(crate) fn outbox_remove(conn: &impl Connection, scope_id: i64, seq: u64) -> SqlResult<()> {
    conn.execute(
        "DELETE FROM outbox WHERE scope_id = ?1 AND seq = ?2",
        params![scope_id, int(seq)?],
    )?;
    Ok(())
}

/// Rows with a pending edit, by sequence number.
pub(crate) fn pending(
    conn: &impl Connection,
    scope_id: i64,
    after_seq: Option<u64>,
    limit: usize,
) -> SqlResult<Vec<Row>> {
    let q = "SELECT r.collection, r.id, r.hash, r.version, r.updated_at, r.cloud_hash, \
             r.generation, r.pending, r.data, r.sent FROM outbox o JOIN records r \
             ON r.scope_id = o.scope_id AND r.collection = o.collection AND r.id = o.id \
             WHERE o.scope_id = ?1 AND o.seq > ?2 ORDER BY o.seq LIMIT ?3";
    let after = match after_seq {
        Some(s) => int(s)?,
        None => -1,
    };
    collect_rows(
        &mut conn.prepare(q)?,
        params![scope_id, after, limit_of(limit)],
    )
}

pub(crate) fn pending_count(conn: &impl Connection, scope_id: i64) -> SqlResult<u64> {
    let n: Option<i64> = conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE scope_id = ?1",
        params![scope_id],
        |r| r.get(0),
    )?;
    Ok(to_u64(n.unwrap_or(0))?)
}

pub(crate) fn insert_conflict(conn: &impl Connection, c: &Conflict) -> SqlResult<()> {
    let data = match &c.local_data {
        Some(d) => {
            let mut s = String::new();
            write_data(d, &mut s)?;
            Some(s)
        }
        None => None,
    };
    let op = name_of(&c.local_op)?;
    conn.execute(
        "INSERT INTO conflicts (scope, collection, record_id, local_op, local_data, \
         base_version, cloud_version, cloud_hash, at, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            &c.scope,
            &c.collection,
            &c.record_id,
            &op,
            data.as_deref(),
            c.base_version.map(int).transpose()?,
            int(c.cloud_version)?,
            c.cloud_hash.as_ref().map(|h| &h.0[..]),
            c.at,
            c.reason.as_deref(),
        ],
    )?;
    Ok(())
}

pub(crate) fn conflicts(conn: &impl Connection, scope: &ScopeId) -> SqlResult<Vec<Conflict>> {
    let mut stmt = conn.prepare(
        "SELECT id, scope, collection, record_id, local_op, local_data, base_version, \
             cloud_version, cloud_hash, at, reason FROM conflicts \
             WHERE scope = ?1 AND dismissed = 0 ORDER BY id",
    )?;
    let mut out = Vec::new();
    stmt.query(params![scope.as_str()], &mut |r| {
        let data: Option<String> = r.get(5)?;
        out.push(Conflict {
            id: to_u64(r.get(0)?)?,
            scope: r.get(1)?,
            collection: r.get(2)?,
            record_id: r.get(3)?,
            local_op: parse_name(r.get(4)?)?,
            local_data: data.as_deref().map(parse_data).transpose()?,
            base_version: r.get::<Option<i64>>(6)?.map(to_u64).transpose()?,
            cloud_version: to_u64(r.get(7)?)?,
            cloud_hash: opt_hash(r.value(8)?)?,
            at: r.get(9)?,
            reason: r.get(10)?,
        });
        Ok(())
    })?;
    Ok(out)
}

pub(crate) fn dismiss_conflict(
    conn: &impl Connection,
    scope: &ScopeId,
    id: u64,
) -> SqlResult<bool> {
    let n = conn.execute(
        "UPDATE conflicts SET dismissed = 1 WHERE scope = ?1 AND id = ?2 AND dismissed = 0",
        params![scope.as_str(), int(id)?],
    )?;
    Ok(n > 0)
}

/// Marks runs of the scope still running as interrupted, then inserts the new one.
pub(crate) fn start_run(conn: &impl Connection, run: &Run) -> SqlResult<u64> {
    let gone = RunError::interrupted();
    let (failed, kind, running) = (
        name_of(&RunStatus::Failed)?,
        name_of(&gone.kind)?,
        name_of(&RunStatus::Running)?,
    );
    conn.execute(
        "UPDATE runs SET status = ?2, error_kind = ?3, error_message = ?4, \
         error_detail = NULL WHERE scope = ?1 AND status = ?5",
        params![&run.scope, &failed, &kind, &gone.message, &running],
    )?;
    let names = RunNames::of(run)?;
    let id: Option<i64> = conn.query_row(
        "INSERT INTO runs (scope, kind, trigger, started_at, finished_at, status, pages, \
         inserted, updated, deleted, unchanged, conflicts, repaired, bytes_received, \
         error_kind, error_message, error_detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
         RETURNING id",
        &run_values(run, &names)?,
        |r| r.get(0),
    )?;
    let id = id.ok_or_else(|| Error::storage("INSERT … RETURNING gave no row"))?;
    Ok(to_u64(id)?)
}

pub(crate) fn finish_run(conn: &impl Connection, run: &Run) -> SqlResult<()> {
    if update_run(conn, run)? == 0 {
        return Err(Error::storage(format!("no run with id {}", run.id)).into());
    }
    Ok(())
}

/// Writes every column of the run with `run.id`; returns the rows changed (0 or 1).
fn update_run(conn: &impl Connection, run: &Run) -> SqlResult<u64> {
    let names = RunNames::of(run)?;
    let mut values = run_values(run, &names)?;
    values.push(Value::Integer(int(run.id)?));
    conn.execute(
        "UPDATE runs SET scope = ?1, kind = ?2, trigger = ?3, started_at = ?4, \
             finished_at = ?5, status = ?6, pages = ?7, inserted = ?8, updated = ?9, \
             deleted = ?10, unchanged = ?11, conflicts = ?12, repaired = ?13, \
             bytes_received = ?14, error_kind = ?15, error_message = ?16, \
             error_detail = ?17 WHERE id = ?18",
        &values,
    )
}

/// Records a run [`finish_run`] could not record when it ended (its write failed): kept as
/// the run's outcome even if a later start marked it interrupted meanwhile.
pub(crate) fn finish_unrecorded_run(conn: &impl Connection, run: &Run) -> SqlResult<()> {
    // A run gone from history since has nothing left to record.
    update_run(conn, run).map(drop)
}

/// Adds one applied page and its counts to the scope's run in progress, in the page's own
/// transaction: the run's history holds the pages applied however the run ends.
pub(crate) fn count_page(
    conn: &impl Connection,
    scope: &ScopeId,
    counts: &Counts,
) -> SqlResult<()> {
    let running = name_of(&RunStatus::Running)?;
    conn.execute(
        "UPDATE runs SET pages = pages + 1, inserted = inserted + ?3, updated = updated + ?4, \
         deleted = deleted + ?5, unchanged = unchanged + ?6, conflicts = conflicts + ?7 \
         WHERE id = (SELECT max(id) FROM runs WHERE scope = ?1) AND status = ?2",
        params![
            scope.as_str(),
            &running,
            int(counts.inserted)?,
            int(counts.updated)?,
            int(counts.deleted)?,
            int(counts.unchanged)?,
            int(counts.conflicts)?
        ],
    )?;
    Ok(())
}

/// Runs of a scope, newest first, optionally only those started at or after `since`.
pub(crate) fn runs(
    conn: &impl Connection,
    scope: &ScopeId,
    since: Option<i64>,
    limit: usize,
) -> SqlResult<Vec<Run>> {
    let mut stmt = conn.prepare(
        "SELECT id, scope, kind, trigger, started_at, finished_at, status, pages, \
             inserted, updated, deleted, unchanged, conflicts, repaired, bytes_received, \
             error_kind, error_message, error_detail FROM runs \
             WHERE scope = ?1 AND started_at >= ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let params = params![scope.as_str(), since.unwrap_or(i64::MIN), limit_of(limit)];
    let mut out = Vec::new();
    stmt.query(params, &mut |r| {
        let n = |i: usize| -> SqlResult<u64> { Ok(to_u64(r.get(i)?)?) };
        let error_kind: Option<String> = r.get(15)?;
        let error = match error_kind {
            Some(kind) => Some(RunError {
                kind: parse_name::<ErrorKind>(kind)?,
                detail: r
                    .get::<Option<String>>(17)?
                    .map(parse_name::<Detail>)
                    .transpose()?,
                message: r.get::<Option<String>>(16)?.unwrap_or_default(),
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
        Ok(())
    })?;
    Ok(out)
}

/// The enum names of a run, as text to bind.
struct RunNames {
    kind: String,
    trigger: String,
    status: String,
    error_kind: Option<String>,
    error_detail: Option<String>,
}

impl RunNames {
    fn of(run: &Run) -> SqlResult<Self> {
        Ok(RunNames {
            kind: name_of(&run.kind)?,
            trigger: name_of(&run.trigger)?,
            status: name_of(&run.status)?,
            error_kind: run.error.as_ref().map(|e| name_of(&e.kind)).transpose()?,
            error_detail: match run.error.as_ref().and_then(|e| e.detail) {
                Some(d) => Some(name_of(&d)?),
                None => None,
            },
        })
    }
}

/// The 17 values of a run's columns, in the order `start_run` and `finish_run` bind them.
fn run_values<'a>(run: &'a Run, names: &'a RunNames) -> SqlResult<Vec<Value<'a>>> {
    let c = &run.counts;
    Ok(vec![
        Value::Text(&run.scope),
        Value::Text(&names.kind),
        Value::Text(&names.trigger),
        Value::Integer(run.started_at),
        run.finished_at.into(),
        Value::Text(&names.status),
        Value::Integer(int(run.pages)?),
        Value::Integer(int(c.inserted)?),
        Value::Integer(int(c.updated)?),
        Value::Integer(int(c.deleted)?),
        Value::Integer(int(c.unchanged)?),
        Value::Integer(int(c.conflicts)?),
        Value::Integer(int(c.repaired)?),
        Value::Integer(int(run.bytes_received)?),
        names.error_kind.as_deref().into(),
        run.error.as_ref().map(|e| e.message.as_str()).into(),
        names.error_detail.as_deref().into(),
    ])
}
