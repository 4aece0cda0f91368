//! [`SqlStore`]: the engine's [`Store`] over one SQLite database, on any [`Connection`].
//!
//! Every [`Store`] method is one SQLite transaction on a connection behind a mutex. The trait's
//! futures never await anything: the SQLite work runs synchronously inside them, which is what
//! lets the native blocking `Replica` drive the engine with `block_on` on the caller's thread,
//! and what keeps the wasm build's futures free of JS promises. The schema is described in the
//! `schema` module.

use std::sync::{Mutex, MutexGuard};

use tether_engine::digest::{leaf, Snapshot};
use tether_engine::events::Source;
use tether_engine::query::{Hit, Scan};
use tether_engine::rules::{Changeset, RowWrite};
use tether_engine::store::{Applied, MaybeSend, Planner};
use tether_engine::{
    Conflict, Doc, IndexSet, Key, KeyRange, Millis, Result, Row, Run, ScopeId, ScopeState, Store,
};

use crate::conn::{Connection, SqlError, SqlResult, Statement, Value};
use crate::index::{self, EntryWriter};
use crate::schema;
use crate::sql::{self, Declared};

/// How long a writer waits for another connection's write lock before failing with a
/// `Storage` error (another process syncing the same file), in milliseconds.
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// A replica store in one SQLite database, reached through the connection `C`.
///
/// A binding opens the connection (a file, or memory) and hands it to [`SqlStore::over`];
/// the [`native`](crate::native) binding (feature `rusqlite`, `tether-native`'s `SqliteStore`)
/// does so with rusqlite, `tether-wasm` with `node:sqlite`.
pub struct SqlStore<C> {
    conn: Mutex<C>,
    /// The indexes declared in the file, as last read by a transaction (for
    /// [`Store::indexes`], which plans queries outside any transaction).
    declared: Mutex<IndexSet>,
    /// Runs whose [`Store::finish_run`] failed (the disk was full, say), recorded by the next
    /// [`Store::start_run`] before anything else: their history keeps the true outcome.
    unrecorded: Mutex<Vec<Run>>,
    /// Called after each committed write transaction ([`SqlStore::on_commit`]).
    on_commit: Option<CommitHook>,
}

/// What [`SqlStore::on_commit`] takes.
pub type CommitHook = Box<dyn Fn() + Send + Sync>;

impl<C: Connection> SqlStore<C> {
    /// Takes an open connection: checks it is a Tether replica (or empty), migrates its
    /// schema, and turns on WAL with `synchronous = NORMAL` (a committed transaction survives
    /// a process crash; a power loss may lose the last ones, never corrupt the file).
    /// `what` names the database in error messages ("replica file /path/replica.db").
    ///
    /// A database that is not SQLite, a SQLite database of another application, or a replica
    /// written by a newer Tether (higher schema version) is an [`Error::InvalidInput`].
    pub fn over(conn: C, what: &str) -> Result<Self> {
        Ok(Self::setup(conn, what)?)
    }

    fn setup(conn: C, what: &str) -> SqlResult<Self> {
        conn.execute_batch(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))?;
        schema::prepare(&conn, what)?;
        use_wal(&conn)?;
        // Larger than the 2 MB default cache so the inner B-tree pages of a million-record
        // replica stay cached between pages; the bound keeps peak memory flat whatever the size.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16000; PRAGMA foreign_keys = OFF;",
        )?;
        let declared = index::set_of(&sql::declared(&conn)?)?;
        Ok(SqlStore {
            conn: Mutex::new(conn),
            declared: Mutex::new(declared),
            unrecorded: Mutex::new(Vec::new()),
            on_commit: None,
        })
    }

    /// Calls `hook` after each committed write transaction, on the writing thread, outside the
    /// connection's lock: for a binding's work that must follow writes without being part of
    /// them (the rusqlite binding nudges its WAL checkpointer). It should be quick.
    pub fn on_commit(mut self, hook: CommitHook) -> Self {
        self.on_commit = Some(hook);
        self
    }

    /// Runs `f` on the connection, outside any transaction the store opens (for a binding's
    /// own statements: closing, checkpointing, inspecting).
    pub fn with_connection<T>(&self, f: impl FnOnce(&C) -> T) -> T {
        f(&self.lock())
    }

    /// Records the identity of the file the connection opened (a binding reads it from the
    /// file system: device and inode) in `tether_meta`, and says whether the file is a copy:
    /// a copied replica file, or a backup restored as a new file, carries the identity of the
    /// file it was copied from. A copy forgets every scope's client id (its next push takes a
    /// new one, so the two copies do not share the cloud's memory of mutations) and every
    /// unanswered-push mark (`Row::sent`: it names mutations of the old id). Its pending edits
    /// are then judged on their base: at worst a false conflict, journaled, never a loss.
    /// A file opened for the first time since this existed just records its identity.
    pub fn note_file_identity(&self, identity: &str) -> Result<bool> {
        self.write(|tx| {
            let known: Option<String> = tx.query_row(
                "SELECT value FROM tether_meta WHERE key = 'file_identity'",
                &[],
                |r| r.get(0),
            )?;
            let copied = known.as_deref().is_some_and(|k| k != identity);
            if copied {
                // Marks sit only beside pending edits: the outbox finds them without a scan.
                tx.execute_batch(
                    "UPDATE scopes SET client = NULL; \
                     UPDATE records SET sent = NULL WHERE sent IS NOT NULL AND \
                     (scope_id, collection, id) IN (SELECT scope_id, collection, id FROM outbox);",
                )?;
            }
            if known.as_deref() != Some(identity) {
                tx.execute(
                    "INSERT INTO tether_meta (key, value) VALUES ('file_identity', ?1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    crate::params![identity],
                )?;
            }
            Ok(copied)
        })
    }

    /// Reads the declared indexes inside the caller's transaction (another connection to the
    /// file may have changed them) and keeps a copy for [`Store::indexes`].
    fn declared(&self, tx: &C) -> SqlResult<Vec<Declared>> {
        let declared = sql::declared(tx)?;
        self.remember(&declared)?;
        Ok(declared)
    }

    fn remember(&self, declared: &[Declared]) -> SqlResult<()> {
        let mut cache = self.declared.lock().unwrap_or_else(|p| p.into_inner());
        if !cache.iter().eq(declared.iter().map(|d| &d.spec)) {
            *cache = index::set_of(declared)?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, C> {
        // A panic while the lock is held unwinds through `Tx`, whose drop rolls back: the
        // connection is never left mid-transaction, so a poisoned lock is safe.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` succeeds and rolled back
    /// otherwise. Immediate, so that a concurrent writer (another process) is waited for at the
    /// start rather than failing the commit.
    ///
    /// This and [`SqlStore::read`] are the store's error boundary: everything below returns
    /// [`SqlResult`], converted here, once, into the engine's [`Error`].
    fn write<T>(&self, f: impl FnOnce(&C) -> SqlResult<T>) -> Result<T> {
        let out = Tx::run(&*self.lock(), "BEGIN IMMEDIATE", f)?;
        if let Some(hook) = &self.on_commit {
            hook();
        }
        Ok(out)
    }

    /// Runs `f` in a read transaction, so multi-statement reads see one state.
    fn read<T>(&self, f: impl FnOnce(&C) -> SqlResult<T>) -> Result<T> {
        Ok(Tx::run(&*self.lock(), "BEGIN", f)?)
    }

    fn update_now(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.write(|tx| {
            let declared = self.declared(tx)?;
            let (scope_id, state) = sql::scope_state(tx, scope)?;
            let rows = match scope_id {
                Some(id) if !keys.is_empty() && sql::row_total(tx, id)? > 0 => {
                    sql::read_rows(tx, id, keys, |_| with_data)?
                }
                // Fast path: a scope without rows (the first page of an initial sync) has
                // nothing to read.
                _ => vec![None; keys.len()],
            };
            let changes = planner(&state, &rows)?;
            write_changes(tx, scope, scope_id, &changes, &declared)?;
            if changes.source == Source::Pull {
                // With the page, in its transaction: whatever ends the run (a full disk that
                // also fails finish_run, a killed process), history has its pages.
                sql::count_page(tx, scope, &changes.counts)?;
            }
            Ok(Applied::of(&changes))
        })
    }

    fn update_stale_now(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.write(|tx| {
            let declared = self.declared(tx)?;
            let (scope_id, state) = sql::scope_state(tx, scope)?;
            let rows = match scope_id {
                Some(id) if sql::rows_older_than(tx, id, generation)? > 0 => {
                    sql::stale_rows(tx, id, generation)?
                }
                _ => Vec::new(),
            };
            let changes = planner(&state, &rows)?;
            write_changes(tx, scope, scope_id, &changes, &declared)?;
            Ok(Applied::of(&changes))
        })
    }

    fn range_snapshot_now(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> Result<Snapshot> {
        self.read(|conn| {
            let Some(id) = sql::scope_id(conn, scope)? else {
                return Ok(Snapshot::default());
            };
            let (clause, args) = sql::range_clause(id, range);
            let q = format!(
                "SELECT collection, id, hash, cloud_hash, pending, data FROM records \
                 WHERE {clause} ORDER BY collection, id"
            );
            let mut snap = Snapshot::default();
            let mut buf = Vec::with_capacity(512);
            // Streams the rows: a verify of a large scope never holds them all in memory.
            conn.prepare(&q)?.query(&args, &mut |r| {
                let collection: String = r.get(0)?;
                let id: String = r.get(1)?;
                let pending: Option<i64> = r.get(4)?;
                let data: Option<String> = r.get(5)?;
                let hash = match (data, pending) {
                    // Corrupt data hashes to nothing, so the range differs and is repaired.
                    (Some(text), None) if rehash => Doc::from_stored(text).hash_with(&mut buf).ok(),
                    _ => {
                        let own = sql::opt_hash(r.value(2)?)?;
                        sql::cloud_hash_of(own, r.value(3)?)?
                    }
                };
                if let Some(h) = hash {
                    snap.insert(&leaf(&collection, &id, &h));
                }
                Ok(())
            })?;
            Ok(snap)
        })
    }
}

/// Writes a changeset: the scope state, the row writes (keeping `outbox`, `generation_rows`
/// and the entries of the `declared` indexes in step, from what each write says it replaces),
/// and the conflicts.
fn write_changes<C: Connection>(
    tx: &C,
    scope: &ScopeId,
    scope_id: Option<i64>,
    changes: &Changeset,
    declared: &[Declared],
) -> SqlResult<()> {
    let scope_id = sql::write_scope_state(tx, scope, scope_id, &changes.scope)?;
    if !changes.rows.is_empty() {
        let mut records = RecordWrites::default();
        let mut entries = EntryWriter::new();
        for w in &changes.rows {
            if !declared.is_empty() {
                entries.reindex(tx, declared, scope_id, w)?;
            }
            match w {
                RowWrite::Put { row, .. } => {
                    // The canonical text the engine hashed: stored as it is.
                    let data = row.data.as_ref().map(Doc::as_str);
                    records.push(tx, sql::PUT_ROW, &sql::put_params(scope_id, row, data)?)?;
                }
                RowWrite::Touch {
                    key,
                    version,
                    updated_at,
                    cloud_hash,
                    generation,
                    pending,
                    sent,
                    ..
                } => {
                    let params = sql::touch_params(
                        scope_id,
                        key,
                        *version,
                        updated_at,
                        cloud_hash.as_ref(),
                        *generation,
                        *pending,
                        *sent,
                    )?;
                    records.push(tx, sql::TOUCH_ROW, &params)?;
                }
                RowWrite::Remove { key, .. } => {
                    records.push(tx, sql::REMOVE_ROW, &sql::remove_params(scope_id, key))?;
                }
            }
            let old = w.prior().and_then(|p| p.pending);
            sync_outbox(tx, scope_id, w.key(), old, w.pending())?;
        }
        records.flush(tx)?;
        for (generation, delta) in changes.generation_deltas() {
            sql::add_generation_rows(tx, scope_id, generation, delta)?;
        }
    }
    for c in &changes.conflicts {
        sql::insert_conflict(tx, c)?;
    }
    Ok(())
}

/// The `records` writes of a changeset, gathered while the same statement repeats and run
/// together ([`Statement::execute_rows`]), in the changeset's order. Only `records` is
/// written this way: the index entries and the outbox, written in between, are other tables,
/// so the order across them does not change what the transaction leaves.
#[derive(Default)]
struct RecordWrites<'a> {
    sql: &'static str,
    width: usize,
    params: Vec<Value<'a>>,
}

impl<'a> RecordWrites<'a> {
    /// Values gathered at most before they run: a page of 1,000 puts (11,000 values) runs at
    /// once, and a sweep of a million rows does not copy them all first.
    const MAX_VALUES: usize = 16_384;

    /// Adds one run of `sql`, first running what was gathered if that was another statement.
    fn push<C: Connection>(
        &mut self,
        tx: &C,
        sql: &'static str,
        params: &[Value<'a>],
    ) -> SqlResult<()> {
        if sql != self.sql || self.params.len() >= RecordWrites::MAX_VALUES {
            self.flush(tx)?;
            self.sql = sql;
            self.width = params.len();
        }
        self.params.extend_from_slice(params);
        Ok(())
    }

    /// Runs what was gathered.
    fn flush<C: Connection>(&mut self, tx: &C) -> SqlResult<()> {
        if !self.params.is_empty() {
            tx.prepare(self.sql)?
                .execute_rows(self.width, &self.params)?;
            self.params.clear();
        }
        Ok(())
    }
}

fn sync_outbox(
    tx: &impl Connection,
    scope_id: i64,
    key: &Key,
    old: Option<u64>,
    new: Option<u64>,
) -> SqlResult<()> {
    if old == new {
        return Ok(());
    }
    if let Some(seq) = old {
        sql::outbox_remove(tx, scope_id, seq)?;
    }
    if let Some(seq) = new {
        sql::outbox_insert(tx, scope_id, seq, key)?;
    }
    Ok(())
}

impl<C: Connection + MaybeSend> Store for SqlStore<C> {
    async fn scope_state(&self, scope: &ScopeId) -> Result<ScopeState> {
        self.read(|c| sql::scope_state(c, scope).map(|(_, s)| s))
    }

    async fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.update_now(scope, keys, with_data, planner)
    }

    async fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        self.update_stale_now(scope, generation, planner)
    }

    async fn row(&self, scope: &ScopeId, key: &Key) -> Result<Option<Row>> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => Ok(sql::read_rows(c, id, std::slice::from_ref(key), |_| true)?
                .pop()
                .flatten()),
            None => Ok(None),
        })
    }

    async fn list(
        &self,
        scope: &ScopeId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => sql::list(c, id, collection, after, limit),
            None => Ok(Vec::new()),
        })
    }

    async fn count(&self, scope: &ScopeId, collection: Option<&str>) -> Result<u64> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => sql::count(c, id, collection),
            None => Ok(0),
        })
    }

    async fn pending(
        &self,
        scope: &ScopeId,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => sql::pending(c, id, after_seq, limit),
            None => Ok(Vec::new()),
        })
    }

    async fn pending_count(&self, scope: &ScopeId) -> Result<u64> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => sql::pending_count(c, id),
            None => Ok(0),
        })
    }

    async fn conflicts(&self, scope: &ScopeId) -> Result<Vec<Conflict>> {
        self.read(|c| sql::conflicts(c, scope))
    }

    async fn dismiss_conflict(&self, scope: &ScopeId, id: u64) -> Result<bool> {
        self.write(|tx| sql::dismiss_conflict(tx, scope, id))
    }

    async fn start_run(&self, run: &Run) -> Result<u64> {
        let unrecorded =
            std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()));
        self.write(|tx| {
            for earlier in &unrecorded {
                sql::finish_unrecorded_run(tx, earlier)?;
            }
            sql::start_run(tx, run)
        })
        .inspect_err(|_| {
            self.unrecorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(unrecorded.iter().cloned())
        })
    }

    async fn finish_run(&self, run: &Run) -> Result<()> {
        self.write(|tx| sql::finish_run(tx, run)).inspect_err(|_| {
            self.unrecorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(run.clone())
        })
    }

    async fn runs(&self, scope: &ScopeId, limit: usize) -> Result<Vec<Run>> {
        self.read(|c| sql::runs(c, scope, None, limit))
    }

    async fn runs_since(&self, scope: &ScopeId, since: Millis) -> Result<Vec<Run>> {
        self.read(|c| sql::runs(c, scope, Some(since), usize::MAX))
    }

    async fn range_snapshot(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> Result<Snapshot> {
        self.range_snapshot_now(scope, range, rehash)
    }

    async fn range_keys(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Key>> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => sql::range_keys(c, id, range, limit, 0),
            None => Ok(Vec::new()),
        })
    }

    async fn nth_key(&self, scope: &ScopeId, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        self.read(|c| match sql::scope_id(c, scope)? {
            Some(id) => Ok(sql::range_keys(c, id, range, 1, offset)?.pop()),
            None => Ok(None),
        })
    }

    async fn scopes(&self) -> Result<Vec<ScopeId>> {
        self.read(sql::scopes)
    }

    fn indexes(&self) -> IndexSet {
        self.declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn declare_indexes(&self, indexes: &IndexSet) -> Result<()> {
        self.write(|tx| {
            let declared = index::declare(tx, indexes)?;
            self.remember(&declared)
        })
    }

    async fn build_indexes(&self, batch: usize) -> Result<bool> {
        self.write(|tx| {
            let declared = index::build(tx, batch)?;
            self.remember(&declared)?;
            Ok(!declared.iter().any(|d| d.building))
        })
    }

    async fn scan(&self, scope: &ScopeId, scan: &Scan) -> Result<Vec<Hit>> {
        self.read(|c| index::scan(c, scope, scan))
    }

    async fn scan_count(&self, scope: &ScopeId, scan: &Scan) -> Result<u64> {
        self.read(|c| index::scan_count(c, scope, scan))
    }
}

/// An open transaction, rolled back on drop unless committed: an error or a panic inside the
/// store never leaves the connection mid-transaction.
struct Tx<'c, C: Connection> {
    conn: &'c C,
    open: bool,
}

impl<'c, C: Connection> Tx<'c, C> {
    fn run<T>(conn: &'c C, begin: &str, f: impl FnOnce(&C) -> SqlResult<T>) -> SqlResult<T> {
        conn.execute_batch(begin)?;
        let mut tx = Tx { conn, open: true };
        let out = f(conn)?;
        // A failed COMMIT (a full disk) leaves the transaction open: the drop rolls it back.
        conn.execute_batch("COMMIT")?;
        tx.open = false;
        Ok(out)
    }
}

impl<C: Connection> Drop for Tx<'_, C> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to: the error that got us here is already on its way up, and a
            // rollback only fails when there is no transaction left to roll back.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Times [`use_wal`] waits for another connection's write lock before giving up.
const WAL_SWITCH_TRIES: u32 = 20;

/// Turns on WAL (the pragma answers with the mode it set; an in-memory database stays
/// "memory"). The switch takes the write lock from inside a read, where SQLite answers busy at
/// once instead of calling the busy handler (waiting there could deadlock two readers). Another
/// connection opening the same new file at that moment (migrating it, or switching it too)
/// holds that lock for a moment, so on busy this waits for it as any writer does (`BEGIN
/// IMMEDIATE` from outside a transaction waits up to the busy timeout) and asks again; once
/// the other connection has switched the file, asking again changes nothing.
fn use_wal(conn: &impl Connection) -> SqlResult<()> {
    let mut tries = 0;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", &[], |_| Ok(())) {
            Err(SqlError::Db(e)) if e.is_busy() && tries < WAL_SWITCH_TRIES => {
                tries += 1;
                conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
            }
            done => return done.map(|_| ()),
        }
    }
}
