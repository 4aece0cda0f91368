//! The server's storage interface and its two implementations.
//!
//! Both keep the same model: a `scopes` table with each scope's commit sequence (`seq`), live
//! `count`, `digest` (32-byte little-endian sum of leaves, maintained on every write) and
//! tombstone `horizon`, and a `records` table with one row per key: its current `version`
//! (the scope's sequence number when the row was last written), `updated_at`, `deleted`,
//! `data` and `hash`. Versions are assigned while holding the scope's lock inside the writing
//! transaction, so versions increase in commit order and a cursor never skips a late commit.

use serde_json::value::RawValue;
use std::future::Future;
use std::pin::Pin;

use tether_engine::digest::{leaf, RecordHash, Snapshot};
use tether_engine::limits::PAGE_BYTES;
use tether_engine::mutation::{AppliedMutation, MutationId};
use tether_engine::subscription::{Subscription, SubsetSnapshot};
use tether_engine::{Change, Data, Key, KeyRange, MutationResult, Page, RemoteStatus};

use subset::{FilterIndex, SubsetAnswer};

pub mod postgres;
pub mod sqlite;
pub mod subset;

/// A boxed, sendable storage future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// A failure of the storage itself (not of the request).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed: the database's message and SQLSTATE when it answered with an error.
    #[error("postgres: {}", postgres_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// Stored data could not be read back (corrupt row, bad JSON, bad hash).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A blocking task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// A PostgreSQL error as text: `tokio_postgres::Error` displays a database's answer as
/// `db error` only, and the cause (message, SQLSTATE, detail) is what an operator needs.
pub(crate) fn postgres_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            text
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A position in a scope's feed, as encoded in the checkpoint string.
///
/// `cursor` is the last version the client has seen; `safe` is the version up to which the
/// client's knowledge is complete for tombstone purposes (see [`Position::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Changes with a version above this one come next.
    pub cursor: u64,
    /// A purge horizon above this version means the client may have missed a deletion.
    pub safe: u64,
}

impl Position {
    /// Parses a checkpoint: `"<cursor>"` or `"<cursor>:<safe>"` with `safe >= cursor`.
    ///
    /// Why two numbers: the first page of an initial sync only holds live records, read at
    /// scope sequence `S`, but its cursor is the version of its last record, often far below
    /// `S`. Tombstones at or below `S` cannot concern any record the client holds (those were
    /// live at `S`), so a purge up to `S` must not force a reset; the checkpoint carries `S`.
    pub fn parse(s: &str) -> Option<Position> {
        let num = |t: &str| -> Option<u64> {
            if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        match s.split_once(':') {
            None => num(s).map(|c| Position { cursor: c, safe: c }),
            Some((c, k)) => {
                let (cursor, safe) = (num(c)?, num(k)?);
                (safe >= cursor).then_some(Position { cursor, safe })
            }
        }
    }

    /// The checkpoint string.
    pub fn encode(&self) -> String {
        if self.safe == self.cursor {
            self.cursor.to_string()
        } else {
            format!("{}:{}", self.cursor, self.safe)
        }
    }
}

/// The answer to a pull.
#[derive(Debug, Clone, PartialEq)]
pub enum PullAnswer {
    /// A page.
    Page(Page),
    /// The checkpoint is behind the tombstone horizon (or ahead of the scope): `410`.
    Reset,
}

/// One write to apply: the shared shape of pushes and admin writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// Key.
    pub key: Key,
    /// New data and its hash; `None` deletes.
    pub state: Option<(Data, RecordHash)>,
    /// `Some(base)`: a push, applied only if the current live version equals `base` (or as
    /// [`tether_engine::mutation::judge`] says for an identified one).
    /// `None`: an admin write, applied unconditionally (a delete of an absent record is a no-op).
    pub check: Option<Option<u64>>,
    /// The pushed mutation's id: the storage remembers, per scope, client and record, the last
    /// one it applied, and answers a repeat with its original result.
    pub origin: Option<MutationId>,
    /// The sequence number of the earlier mutation of the same client and record that this one
    /// replaces ([`tether_engine::Mutation::replaces`]), passed to `judge`.
    pub replaces: Option<u64>,
}

/// What the storage remembers of a client's last mutation of a record, from its stored
/// columns (`hash` as hex).
pub(crate) fn applied_of(
    seq: i64,
    version: i64,
    updated_at: String,
    hash: Option<String>,
) -> Result<AppliedMutation, StorageError> {
    Ok(AppliedMutation {
        seq: seq as u64,
        version: version as u64,
        updated_at,
        hash: hash
            .map(|h| h.parse())
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("remembered mutation hash: {e}")))?,
    })
}

/// What a push did ([`Storage::apply`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// One result per write, in order.
    pub results: Vec<MutationResult>,
    /// Rows written. Zero when every mutation was rejected or a repeat: nothing committed, so
    /// live pulls are not woken.
    pub written: u64,
}

/// What the admin write API did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct WriteSummary {
    /// Records created or replaced.
    pub upserted: u64,
    /// Records deleted (tombstones written).
    pub deleted: u64,
    /// The scope's version after the write.
    pub version: u64,
}

/// A stored row the server cannot read back, kept out of what it serves and counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// The row's version (the quarantine itself wrote it).
    pub version: u64,
    /// Why the server cannot read it.
    pub reason: String,
}

/// What a re-check of stored rows found ([`Storage::recheck`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Recheck {
    /// Live hashed rows read and hashed again.
    pub checked: u64,
    /// Rows whose stored hash was wrong: hashed again under a new version.
    pub rehashed: u64,
    /// Rows the server cannot read: quarantined.
    pub quarantined: u64,
}

/// Which tombstones to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    /// Only this scope (`None`: every scope).
    pub scope: Option<String>,
    /// Only tombstones written before this RFC 3339 time (`None`: any age).
    pub before: Option<String>,
}

/// The server's storage. Every method is one transaction.
pub trait Storage: Send + Sync + 'static {
    /// The page after `from` (from the start when `None`), at most `limit` changes, with the
    /// snapshot on the last page read in the same transaction as the page.
    fn pull<'a>(
        &'a self,
        scope: &'a str,
        from: Option<Position>,
        limit: u32,
    ) -> BoxFuture<'a, PullAnswer>;

    /// Applies writes in order under the scope's lock; one result per write. Admin writes
    /// are always accepted.
    fn apply<'a>(&'a self, scope: &'a str, writes: Vec<Write>) -> BoxFuture<'a, Applied>;

    /// Admin bulk write: upserts, then deletes, unconditionally.
    fn admin_write<'a>(&'a self, scope: &'a str, writes: Vec<Write>)
        -> BoxFuture<'a, WriteSummary>;

    /// Count, digest, version and last change time of a scope.
    fn status<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, RemoteStatus>;

    /// Count and digest of the live records in a key range.
    fn range_digest<'a>(&'a self, scope: &'a str, range: &'a KeyRange) -> BoxFuture<'a, Snapshot>;

    /// The live records in a key range, in key order; `None` if there are more than `max`.
    fn range_records<'a>(
        &'a self,
        scope: &'a str,
        range: &'a KeyRange,
        max: usize,
    ) -> BoxFuture<'a, Option<Vec<Change>>>;

    /// Creates the index of each declared filter (`Config::filter_indexes`), at start.
    fn declare_filters<'a>(&'a self, filters: &'a [FilterIndex]) -> BoxFuture<'a, ()>;

    /// The page of the subscription `sub` after `from` (docs/partial-sync.md): its live
    /// records up to the checkpoint's `safe`, then the collection's feed, whose records outside
    /// `sub` are markers. The caller checked that every path of `sub` is declared.
    fn pull_subset<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        from: Option<Position>,
        limit: u32,
    ) -> BoxFuture<'a, SubsetAnswer>;

    /// Count and digest of the live records of `sub` in a key range, and the checkpoint of the
    /// state they describe.
    fn subset_digest<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        range: &'a KeyRange,
    ) -> BoxFuture<'a, SubsetSnapshot>;

    /// The live records of `sub` in a key range, in key order; `None` if there are more than
    /// `max` (or more than a page's bytes).
    fn subset_records<'a>(
        &'a self,
        scope: &'a str,
        sub: &'a Subscription,
        range: &'a KeyRange,
        max: usize,
    ) -> BoxFuture<'a, Option<Vec<Change>>>;

    /// The rows of a scope the server cannot read back (written behind its back), in key
    /// order. They are neither served nor counted.
    fn quarantine<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Vec<Quarantined>>;

    /// Reads every live row of the scope that carries a hash and hashes it again: a row whose
    /// hash is wrong is hashed again under a new version, one the server cannot read is
    /// quarantined. For rows written by plain SQL before the server checked such writes
    /// itself. `None`: the storage takes no writes but the server's (SQLite).
    fn recheck<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Option<Recheck>>;

    /// Starts passing commits that this instance does not see (other instances, plain SQL)
    /// to `hub`, for live pulls; `None` when every write goes through this instance (SQLite).
    fn listen(
        &self,
        hub: std::sync::Arc<crate::live::ChangeHub>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = hub;
        None
    }

    /// Purges tombstones; returns how many were removed. Raises each touched scope's horizon
    /// to the highest purged version.
    fn purge<'a>(&'a self, purge: &'a Purge) -> BoxFuture<'a, u64>;

    /// Runs a trivial query on the storage's tables (`GET /readyz`).
    fn ready(&self) -> BoxFuture<'_, ()>;

    /// How its pool of connections is used now (`GET /metrics`).
    fn pool_use(&self) -> PoolUse;
}

/// How a storage's pool of connections is used at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUse {
    /// Connections the pool may hold.
    pub max: u64,
    /// Connections in use by a request now.
    pub busy: u64,
    /// Requests waiting for a connection.
    pub waiting: u64,
}

/// Leaf of a stored row given its hex hash.
pub(crate) fn leaf_of(
    collection: &str,
    id: &str,
    hash_hex: &str,
) -> Result<tether_engine::Digest, StorageError> {
    let hash: RecordHash = hash_hex
        .parse()
        .map_err(|_| StorageError::Corrupt(format!("hash {hash_hex:?} of {collection}/{id}")))?;
    Ok(leaf(collection, id, &hash))
}

/// Parses stored JSON data into an object.
pub(crate) fn data_of(text: &str) -> Result<serde_json::Value, StorageError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| StorageError::Corrupt(format!("stored data is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(StorageError::Corrupt(
            "stored data is not a JSON object".into(),
        ));
    }
    Ok(v)
}

/// Stored JSON data as the raw text a page carries: its canonical form, written straight from
/// the stored text without building values. That reads every number (one beyond a double,
/// `1e400`, is corrupt, as it was when the data was parsed into values) and checks the data is
/// an object; the client canonicalizes and hashes the text itself again.
pub(crate) fn raw_data_of(text: &str) -> Result<Box<RawValue>, StorageError> {
    // What the server wrote is canonical already: checking that is one pass, and the rewrite
    // (a parse and a new text per row of every page) is left for a row some other writer stored.
    if text.starts_with('{')
        && tether_engine::canonical::is_canonical(text, tether_engine::limits::MAX_DEPTH)
    {
        return RawValue::from_string(text.to_owned())
            .map_err(|e| StorageError::Corrupt(format!("stored data is not JSON: {e}")));
    }
    let mut canonical = Vec::with_capacity(text.len());
    tether_engine::canonical::write_canonical_text(text, &mut canonical)
        .map_err(|e| StorageError::Corrupt(format!("stored data is not JSON: {e}")))?;
    if !canonical.starts_with(b"{") {
        return Err(StorageError::Corrupt(
            "stored data is not a JSON object".into(),
        ));
    }
    let canonical = String::from_utf8(canonical)
        .map_err(|e| StorageError::Corrupt(format!("stored data is not UTF-8: {e}")))?;
    RawValue::from_string(canonical)
        .map_err(|e| StorageError::Corrupt(format!("stored data is not JSON: {e}")))
}

/// The changes of a page as a storage reads them, in version order: at most `limit`, and none
/// after the one that takes their bytes to [`PAGE_BYTES`] (so a page of one change larger
/// than the budget still moves on). A storage stops reading once [`PageRows::full`], after
/// noting with [`PageRows::more`] whether another row was there.
#[derive(Debug)]
pub(crate) struct PageRows {
    changes: Vec<Change>,
    limit: usize,
    bytes: usize,
    more: bool,
}

impl PageRows {
    pub(crate) fn new(limit: u32) -> Self {
        let limit = (limit as usize).max(1);
        PageRows {
            // Pages of big records are cut early: no need to reserve the whole count.
            changes: Vec::with_capacity(limit.min(1024)),
            limit,
            bytes: 0,
            more: false,
        }
    }

    /// Whether the page holds all it may: one more row only says that more follow.
    pub(crate) fn full(&self) -> bool {
        self.changes.len() >= self.limit || self.bytes >= PAGE_BYTES
    }

    /// Notes that a row follows the full page.
    pub(crate) fn more(&mut self) {
        self.more = true;
    }

    /// Adds the next change (the page is not [`PageRows::full`]).
    pub(crate) fn push(&mut self, c: Change) {
        self.bytes += wire_bytes(&c);
        self.changes.push(c);
    }

    /// The changes read, once no more follow.
    pub(crate) fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    /// How many rows to fetch next (the row after a full page included) so that the page
    /// likely fills without reading far past its end, at the mean size of the rows so far; at
    /// least one, and `first` before any row.
    pub(crate) fn next_batch(&self, first: usize) -> usize {
        let left = self.limit + 1 - self.changes.len().min(self.limit);
        let Some(mean) = self.bytes.checked_div(self.changes.len()) else {
            return first.clamp(1, left);
        };
        (PAGE_BYTES.saturating_sub(self.bytes) / mean.max(1) + 1).clamp(1, left)
    }
}

/// About the bytes a change takes in a page: its data, key, time and hash, and the names and
/// punctuation around them.
fn wire_bytes(c: &Change) -> usize {
    const FIELDS: usize = 128;
    c.data.as_ref().map_or(0, |d| d.get().len())
        + c.collection.len()
        + c.id.len()
        + c.updated_at.len()
        + c.hash.as_ref().map_or(0, String::len)
        + FIELDS
}

/// Builds the page from the changes read and the scope row read in the same transaction.
pub(crate) fn finish_page(
    rows: PageRows,
    from: Option<Position>,
    seq: u64,
    totals: Snapshot,
) -> Page {
    let PageRows {
        changes,
        more: has_more,
        ..
    } = rows;
    let next = if has_more {
        // Non-empty: a page is full only once it holds a change.
        let cursor = changes.last().map_or(0, |c| c.version);
        let safe = match from {
            // First page of an initial sync: everything up to `seq` is accounted for.
            None => seq,
            Some(p) => p.safe.max(cursor),
        };
        Position { cursor, safe }
    } else {
        Position {
            cursor: seq,
            safe: seq,
        }
    };
    let remaining = if has_more {
        match from {
            None => totals.count.saturating_sub(changes.len() as u64),
            Some(_) => seq.saturating_sub(next.cursor).min(totals.count.max(1)),
        }
    } else {
        0
    };
    Page {
        changes,
        checkpoint: Some(tether_engine::Checkpoint(next.encode())),
        has_more,
        remaining: Some(remaining),
        snapshot: (!has_more).then_some(totals),
    }
}

/// Whether a pull from `from` must reset: behind the horizon, or ahead of the scope (a
/// checkpoint this database never issued, e.g. after it was restored from a backup).
pub(crate) fn must_reset(from: Option<Position>, seq: u64, horizon: u64) -> bool {
    from.is_some_and(|p| p.cursor > seq || p.safe > seq || p.safe < horizon)
}

/// The wire form of a stored row.
pub(crate) fn change(
    key: Key,
    version: u64,
    updated_at: String,
    data: Option<&str>,
    hash: Option<String>,
) -> Result<Change, StorageError> {
    let data = data.map(raw_data_of).transpose()?;
    Ok(Change {
        collection: key.collection,
        id: key.id,
        version,
        updated_at,
        deleted: data.is_none(),
        hash: if data.is_some() { hash } else { None },
        data,
    })
}

/// A scope's row as both storages read it: its commit sequence, totals, tombstone horizon and
/// when it last changed.
pub(crate) struct ScopeRow {
    pub(crate) seq: u64,
    pub(crate) totals: Snapshot,
    pub(crate) horizon: u64,
    pub(crate) updated_at: Option<String>,
}

/// `AND (collection, id) >= (P1, P2) AND (collection, id) < (P3, P4)` for the bounds `range`
/// has, each parameter spelled by `param` from its number (counted from `first`), and the
/// arguments in order.
pub(crate) fn range_sql(
    range: &KeyRange,
    first: usize,
    param: impl Fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    for (key, op) in [(&range.from, ">="), (&range.to, "<")] {
        if let Some(k) = key {
            let n = first + args.len();
            sql.push_str(&format!(
                " AND (collection, id) {op} ({}, {})",
                param(n),
                param(n + 1)
            ));
            args.push(k.collection.clone());
            args.push(k.id.clone());
        }
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_reject_garbage() {
        let p = Position { cursor: 5, safe: 9 };
        assert_eq!(Position::parse(&p.encode()), Some(p));
        assert_eq!(Position::parse("7"), Some(Position { cursor: 7, safe: 7 }));
        for bad in [
            "",
            "-1",
            "abc",
            "1:",
            ":1",
            "9:5",
            "1.5",
            " 1",
            "99999999999999999999999",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reset_rules() {
        let p = |c, s| Some(Position { cursor: c, safe: s });
        assert!(!must_reset(None, 10, 10));
        assert!(
            !must_reset(p(3, 10), 10, 10),
            "initial page read at 10 survives a purge to 10"
        );
        assert!(must_reset(p(3, 3), 10, 4));
        assert!(must_reset(p(11, 11), 10, 0), "a checkpoint from the future");
    }

    #[test]
    fn stored_data_goes_out_canonical_whoever_wrote_it() {
        let out = |t: &str| raw_data_of(t).map(|r| r.get().to_owned());
        // The server's own writes: sent as stored.
        let canonical = r#"{"a":[1,2.5,"x\n"],"b":{"c":null,"d":true}}"#;
        assert_eq!(out(canonical).unwrap(), canonical);
        // Another writer's text (plain SQL, a jsonb column's spacing): rewritten.
        for (stored, sent) in [
            (r#"{"b": 1, "a": 2}"#, r#"{"a":2,"b":1}"#),
            (r#"{"a":1.50}"#, r#"{"a":1.5}"#),
            (r#"{"a":1E2}"#, r#"{"a":100}"#),
        ] {
            assert_eq!(out(stored).unwrap(), sent, "{stored}");
        }
        for corrupt in [r#"{"x":1e400}"#, "[1]", "1", "{\"a\":"] {
            assert!(
                matches!(raw_data_of(corrupt), Err(StorageError::Corrupt(_))),
                "{corrupt}"
            );
        }
    }
}
