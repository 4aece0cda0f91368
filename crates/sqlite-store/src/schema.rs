//! The replica file's schema and its migrations, keyed on `PRAGMA user_version`: the one place
//! that defines the file format, shared by every binding (rusqlite, node:sqlite).
//!
//! Layout (version 7; each table says when it appeared):
//!
//! - `tether_meta`: a marker row `format = tether-replica`, so that a SQLite file of another
//!   application is refused instead of being written into; `file_identity`, where the binding
//!   can read one (device and inode), so that a copied file is recognised when opened
//!   ([`SqlStore::note_file_identity`](crate::SqlStore::note_file_identity)).
//! - `scopes`: one row per scope with its [`ScopeState`](tether_engine::ScopeState): checkpoint,
//!   count and digest (32-byte little-endian BLOB), generation, full-sync flag, next outbox
//!   sequence number, last successful sync. `scope_id` is a small integer so that record keys
//!   do not repeat the scope name.
//! - `records`: one row per key, `WITHOUT ROWID` with primary key `(scope_id, collection, id)`,
//!   so a key lookup or upsert touches one B-tree and range scans come out in key order (the
//!   default `BINARY` collation compares TEXT as UTF-8 bytes, which is the protocol's order).
//!   `data` is the JSON text of the visible data (NULL while a local delete is pending); `hash`
//!   is a 32-byte BLOB; `cloud_hash` is NULL when equal to `hash` (every row without a pending
//!   edit), an empty BLOB when the cloud has no such record, else 32 bytes; `pending` is the
//!   outbox sequence number of an unpushed local edit; `sent` (since version 6) the number of
//!   the record's edit pushed without an answer (`Row::sent`), NULL otherwise.
//! - `outbox`: the pending-edit queue, `(scope_id, seq) -> key`. The edit itself (op and data)
//!   is the record row: the outbox orders it and finds it without scanning `records`. The store
//!   keeps `outbox` and `records.pending` equal inside every transaction.
//! - `generation_rows`: how many rows each full-sync generation holds, so the sweep at the end
//!   of a full download skips its scan when no row is older than the current generation (every
//!   initial sync), without an index on `records.generation` that every write would pay for.
//! - `conflicts`: the conflict journal. Dismissing marks an entry (`dismissed = 1`) rather than
//!   deleting it: overwritten edits are never lost, even after the user dismissed them.
//!   `reason` (since version 3) says why the cloud can never accept the edit, if so.
//! - `runs`: sync history (`error_detail` since version 2).
//! - `indexes` (since version 5): the declared indexes
//!   ([`IndexSpec`](tether_engine::IndexSpec)), one row each: a small number `index_no` that
//!   entries carry instead of the name, `collection`, `name`, `paths` (a JSON array of dotted
//!   paths), `building` (1 until every row that existed when it was declared is indexed) and
//!   the build cursor `(build_scope, build_id)`, the last row built (NULL: from the start).
//!   The declarations live in the file, so every connection to it (a background sync's, another
//!   process's) keeps the same indexes; each write transaction reads this small table.
//! - `index_entries` (since version 5): one row per (index, visible record), `WITHOUT ROWID`
//!   with primary key `(index_no, scope_id, key, id)` and nothing else. `key` is the engine's
//!   index key ([`tether_engine::query::key`]), a BLOB, which SQLite compares with `memcmp`
//!   (then by length); `id` is TEXT under the `BINARY` collation, compared as UTF-8 bytes: so
//!   the primary key order is exactly the engine's scan order `(key, id)`, a query page is one
//!   seek and a short walk of one B-tree (forwards or backwards), and `records` is joined by
//!   primary key for each hit. `index_no` comes first so that dropping an index deletes one
//!   contiguous range. A pending local delete has no entries.
//!
//!
//!   `index_entries_by_row` (since version 7) indexes the entries by `(index_no, scope_id,
//!   id)`: to replace a row's entries the store reads the row's old key there (one seek per
//!   index of the collection), never from the row's old data. A row whose stored data was
//!   corrupted behind the store's back (not JSON any more, or other JSON than its hash) still
//!   has its old entries found, replaced and deleted by its next write or repair; deriving them
//!   from the old data made such a row block every sync and repair of its scope for good
//!   (issue 18). Updates of indexed rows no longer read or parse the old data at all. The
//!   price is one more B-tree insert per entry: in the sync benchmark with an index
//!   (`TETHER_BENCH_INDEXED=1 cargo bench -p tether-native --bench sync`), see
//!   docs/native.md. The alternative, storing each row's keys in a `records` column, would
//!   cost every row of every collection bytes on disk and a rewrite whenever the declared set
//!   changes. An index build gives a row whose data does not parse no entries: verify
//!   (which hashes the data again) finds such a row and its repair writes its entries.

use tether_engine::Error;

use crate::conn::{Connection, SqlError, SqlResult};

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 8;

/// The value of the `format` marker in `tether_meta`.
const FORMAT: &str = "tether-replica";

/// Migrations: `MIGRATIONS[i]` brings a file from version `i` to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tether_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO tether_meta (key, value) VALUES ('format', 'tether-replica');

CREATE TABLE scopes (
    scope_id   INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    checkpoint TEXT,
    count      INTEGER NOT NULL,
    digest     BLOB NOT NULL,
    generation INTEGER NOT NULL,
    full_sync  INTEGER NOT NULL,
    next_seq   INTEGER NOT NULL,
    synced_at  INTEGER
);

CREATE TABLE records (
    scope_id   INTEGER NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    data       TEXT,
    hash       BLOB,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    cloud_hash BLOB,
    generation INTEGER NOT NULL,
    pending    INTEGER,
    PRIMARY KEY (scope_id, collection, id)
) WITHOUT ROWID;

CREATE TABLE outbox (
    scope_id   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    PRIMARY KEY (scope_id, seq)
) WITHOUT ROWID;

CREATE TABLE generation_rows (
    scope_id   INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    rows       INTEGER NOT NULL,
    PRIMARY KEY (scope_id, generation)
) WITHOUT ROWID;

CREATE TABLE conflicts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    scope         TEXT NOT NULL,
    collection    TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    local_op      TEXT NOT NULL,
    local_data    TEXT,
    base_version  INTEGER,
    cloud_version INTEGER NOT NULL,
    cloud_hash    BLOB,
    at            INTEGER NOT NULL,
    dismissed     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conflicts_by_scope ON conflicts (scope, dismissed, id);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    scope          TEXT NOT NULL,
    kind           TEXT NOT NULL,
    trigger        TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    status         TEXT NOT NULL,
    pages          INTEGER NOT NULL,
    inserted       INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    unchanged      INTEGER NOT NULL,
    conflicts      INTEGER NOT NULL,
    repaired       INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    error_kind     TEXT,
    error_message  TEXT
);
CREATE INDEX runs_by_scope ON runs (scope, id);
"#,
    // Version 2: the error detail of a run (tether_engine::Detail), NULL before it existed.
    r#"
ALTER TABLE runs ADD COLUMN error_detail TEXT;
"#,
    // Version 3: why the cloud can never accept a journaled edit (`Conflict::reason`), NULL for
    // an edit that lost to another writer and for every entry written before.
    r#"
ALTER TABLE conflicts ADD COLUMN reason TEXT;
"#,
    // Version 4: the replica's client id in the scope, which names its mutations
    // (`ScopeState::client`); NULL until its first push.
    r#"
ALTER TABLE scopes ADD COLUMN client TEXT;
"#,
    // Version 5: declared indexes and their entries (see the module docs).
    r#"
CREATE TABLE indexes (
    index_no    INTEGER PRIMARY KEY,
    collection  TEXT NOT NULL,
    name        TEXT NOT NULL,
    paths       TEXT NOT NULL,
    building    INTEGER NOT NULL,
    build_scope INTEGER,
    build_id    TEXT,
    UNIQUE (collection, name)
);

CREATE TABLE index_entries (
    index_no INTEGER NOT NULL,
    scope_id INTEGER NOT NULL,
    key      BLOB NOT NULL,
    id       TEXT NOT NULL,
    PRIMARY KEY (index_no, scope_id, key, id)
) WITHOUT ROWID;
"#,
    // Version 6: the outbox number of a record's edit pushed without an answer (`Row::sent`),
    // which the next push names as the mutation it replaces; NULL for every row before.
    r#"
ALTER TABLE records ADD COLUMN sent INTEGER;
"#,
    // Version 7: a row's entries found by its id, not computed from its old data (see the
    // module docs).
    r#"
CREATE INDEX index_entries_by_row ON index_entries (index_no, scope_id, id);
"#,
    // Version 8: a partial replica's subscriptions (`ScopeState::subscriptions`) as the JSON
    // of their list, NULL for a replica of the whole scope; and whether a narrowing's eviction
    // is unfinished (`ScopeState::evicting`).
    r#"
ALTER TABLE scopes ADD COLUMN subscriptions TEXT;
ALTER TABLE scopes ADD COLUMN evicting INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Checks that `conn` is a Tether replica (or an empty file) and brings its schema to
/// [`SCHEMA_VERSION`]. `what` names the file in error messages.
pub(crate) fn prepare(conn: &impl Connection, what: &str) -> SqlResult<()> {
    // The first read of the header is where SQLite notices a file that is not a database.
    let version = user_version(conn).map_err(|e| not_a_database(e, what))?;
    if version > SCHEMA_VERSION {
        return Err(Error::invalid(format!(
            "{what} has replica schema version {version}, newer than the {SCHEMA_VERSION} this \
             build of Tether understands; upgrade Tether to open it"
        ))
        .into());
    }
    if version == SCHEMA_VERSION {
        return check_format(conn, what);
    }
    // Re-read the version under a write lock: another process may be migrating the same file.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| not_a_database(e, what))?;
    let migrated = migrate(conn, what);
    let end = if migrated.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = conn.execute_batch(end);
    migrated.and(ended)
}

/// [`prepare`]'s migration, inside its transaction.
fn migrate(conn: &impl Connection, what: &str) -> SqlResult<()> {
    let version = user_version(conn)?;
    if version == 0 {
        let tables: Option<i64> =
            conn.query_row("SELECT COUNT(*) FROM sqlite_master", &[], |r| r.get(0))?;
        if tables.unwrap_or(0) > 0 {
            return Err(Error::invalid(format!(
                "{what} is a SQLite database of another application (it has tables but no \
                 Tether schema version); refusing to write into it"
            ))
            .into());
        }
    } else if version == SCHEMA_VERSION {
        return check_format(conn, what);
    } else {
        check_format(conn, what)?;
    }
    let from = usize::try_from(version).map_err(|_| Error::invalid("negative schema version"))?;
    for sql in &MIGRATIONS[from..] {
        conn.execute_batch(sql)?;
    }
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
}

fn user_version(conn: &impl Connection) -> SqlResult<i64> {
    let v: Option<i64> = conn.query_row("PRAGMA user_version", &[], |r| r.get(0))?;
    Ok(v.unwrap_or(0))
}

/// A file with a Tether schema version must also carry the Tether marker: another application
/// may use `user_version` for its own numbering.
fn check_format(conn: &impl Connection, what: &str) -> SqlResult<()> {
    let format: Option<String> = conn
        .query_row(
            "SELECT value FROM tether_meta WHERE key = 'format'",
            &[],
            |r| r.get(0),
        )
        .unwrap_or(None);
    if format.as_deref() == Some(FORMAT) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} is a SQLite database but not a Tether replica (no {FORMAT:?} marker)"
        ))
        .into())
    }
}

fn not_a_database(e: SqlError, what: &str) -> SqlError {
    match e {
        SqlError::Db(f) if f.is_not_a_database() => Error::invalid(format!(
            "{what} is not a SQLite database (and so not a Tether replica)"
        ))
        .into(),
        e => e,
    }
}
