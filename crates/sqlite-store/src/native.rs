//! The rusqlite binding (feature `rusqlite`): [`Connection`](crate::Connection) on a
//! `rusqlite::Connection` with rusqlite's prepared-statement cache, and the constructors of
//! `SqlStore<Rusqlite>`, which `tether-native` names `SqliteStore`. The store itself (every
//! operation one transaction, the SQL, the schema and its migrations) is [`SqlStore`], shared
//! with the Node store of the npm package: this module only opens files, and moves WAL
//! checkpoints off the writer through the store's commit hook.

use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;
use tether_engine::{Error, Result};

use crate::{DbFailure, SqlError, SqlResult, SqlRow, SqlStore, Value};

/// Prepared statements kept per connection: the store uses about 40 distinct ones.
const STATEMENT_CACHE: usize = 64;

/// Moves WAL checkpoints off the writing thread: after a write transaction that leaves
/// [`CHECKPOINT_PAGES`] or more in the WAL, the store nudges a thread with its own connection to
/// the file, which runs a `PASSIVE` checkpoint (it never blocks the writer or a reader). The
/// writer checkpoints by itself at [`WRITER_AUTOCHECKPOINT`] pages, so the WAL stays bounded
/// even if this thread fell behind.
struct Checkpointer {
    nudge: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// WAL pages after which the writer checkpoints by itself: a safety net only, the checkpointer
/// thread runs long before.
const WRITER_AUTOCHECKPOINT: i32 = 8_000;

/// WAL pages from which a commit nudges the checkpointer thread: SQLite's own automatic
/// checkpoint threshold. A checkpoint after every commit copied the pages an initial sync
/// touches again and again (each page of 1,000 records rewrites the same few hundred B-tree
/// pages) and fsynced the file once per page, on the core that validates the next page;
/// waiting for 1,000 pages (4 MB) copies each of them once per several pages of records.
const CHECKPOINT_PAGES: i32 = 1_000;

impl Checkpointer {
    /// Starts the thread on its own connection to `path`; `None` (checkpoints stay on the
    /// writer) if that connection cannot be opened or the thread not started.
    fn start(path: &Path) -> Option<Checkpointer> {
        let conn = rusqlite::Connection::open(path).ok()?;
        conn.busy_timeout(std::time::Duration::from_millis(50))
            .ok()?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("tether-checkpoint".into())
            .spawn(move || {
                // Ends when the store drops its sender.
                while nudged.recv().is_ok() {
                    // PASSIVE copies what no reader still needs and never waits on a lock; a
                    // busy answer just means the next nudge does the rest.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!("background checkpoint: {e}");
                    }
                }
            })
            .ok()?;
        Some(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint; at most one is ever queued.
    fn nudge(&self) {
        if let Some(n) = &self.nudge {
            let _ = n.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SqlStore<Rusqlite> {
    /// Opens (creating if needed) a replica file: checks it is a Tether replica, migrates its
    /// schema, and turns on WAL with `synchronous = NORMAL` (a committed page survives a process
    /// crash; a power loss may lose the last pages, never corrupt the file).
    ///
    /// A file that is not a SQLite database, a SQLite database of another application, or a
    /// replica written by a newer Tether (higher schema version) is an
    /// [`Error::InvalidInput`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let what = format!("replica file {}", path.display());
        if path.is_dir() {
            return Err(Error::invalid(format!("{what} is a directory")));
        }
        let mut conn = rusqlite::Connection::open(path)
            .map_err(|e| Error::storage(format!("cannot open {what}: {e}")))?;
        let wal_full = watch_wal(&mut conn)
            .map_err(|e| Error::storage(format!("cannot set up {what}: {e}")))?;
        let store = Self::with_rusqlite(conn, &what)?;
        if let Some(identity) = file_identity(path) {
            if store.note_file_identity(&identity)? {
                tracing::warn!(
                    file = %path.display(),
                    "the replica file is a copy (or a restored backup): its scopes take new \
                     client ids at their next push"
                );
            }
        }
        Ok(match Checkpointer::start(path) {
            // The hook owns the checkpointer: dropping the store stops its thread.
            Some(c) => store.on_commit(Box::new(move || {
                if wal_full.swap(false, Ordering::Relaxed) {
                    c.nudge();
                }
            })),
            None => store,
        })
    }

    /// A store in memory (nothing persisted), for tests and throwaway replicas.
    pub fn open_in_memory() -> Result<Self> {
        let conn = rusqlite::Connection::open_in_memory().map_err(|e| Error::from(failure(e)))?;
        Self::with_rusqlite(conn, "in-memory replica")
    }

    /// Caps the file at `pages` database pages (SQLite's `max_page_count`, for this
    /// connection; never below the pages in use): a write that would grow it past them fails
    /// as on a full disk (`SQLITE_FULL`, a `Storage` error with [`Detail::Quota`]). Returns
    /// the cap now in force. For bounding a replica's size, and for testing a full disk.
    ///
    /// [`Detail::Quota`]: tether_engine::Detail::Quota
    pub fn set_max_pages(&self, pages: u64) -> Result<u64> {
        self.with_connection(|c| {
            c.0.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| Error::from(failure(e)))
        })
    }

    /// The number of database pages the file holds now (`PRAGMA page_count`).
    pub fn pages(&self) -> Result<u64> {
        self.with_connection(|c| {
            c.0.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(|e| Error::from(failure(e)))
        })
    }

    fn with_rusqlite(conn: rusqlite::Connection, what: &str) -> Result<Self> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        SqlStore::over(Rusqlite(conn), what)
    }
}

/// Replaces SQLite's automatic checkpoint (a WAL hook, which `wal_autocheckpoint` would
/// overwrite) with one that raises the returned flag when a commit leaves [`CHECKPOINT_PAGES`]
/// in the WAL, for the commit hook to nudge the checkpointer, and checkpoints on the writer
/// itself from [`WRITER_AUTOCHECKPOINT`] pages. The flag, not a channel: the connection keeps
/// the hook until it closes, and must not keep the checkpointer's thread alive.
fn watch_wal(conn: &mut rusqlite::Connection) -> rusqlite::Result<Arc<AtomicBool>> {
    let full = Arc::new(AtomicBool::new(false));
    let flag = full.clone();
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: c_int| {
        if pages >= WRITER_AUTOCHECKPOINT {
            // As SQLite's own automatic checkpoint: a failure (another connection's checkpoint
            // under way) is not the commit's, which has happened.
            if let Err(e) = wal.checkpoint() {
                tracing::debug!("writer checkpoint: {e}");
            }
        }
        if pages >= CHECKPOINT_PAGES {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(())
    }))?;
    Ok(full)
}

/// The file's device and inode, which a copy (or a backup restored as a new file) does not
/// keep and a rename does. `None` where the platform has no inode numbers: there a copy is not
/// detected, and the cloud's rule for mutations keeps two copies from overwriting each other
/// (docs/native.md).
fn file_identity(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(format!("{}:{}", m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// [`Connection`](crate::Connection) on rusqlite.
pub struct Rusqlite(rusqlite::Connection);

/// A statement from rusqlite's cache.
pub struct RusqliteStatement<'c>(rusqlite::CachedStatement<'c>);

struct RusqliteRow<'r, 's>(&'r rusqlite::Row<'s>);

/// One parameter, bound without copying.
struct Param<'a>(&'a Value<'a>);

impl crate::Connection for Rusqlite {
    type Statement<'c> = RusqliteStatement<'c>;

    fn prepare(&self, sql: &str) -> SqlResult<RusqliteStatement<'_>> {
        Ok(RusqliteStatement(
            self.0.prepare_cached(sql).map_err(failure)?,
        ))
    }

    fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        self.0.execute_batch(sql).map_err(failure)
    }
}

impl RusqliteStatement<'_> {
    fn params<'a>(params: &'a [Value<'a>]) -> impl Iterator<Item = Param<'a>> {
        params.iter().map(Param)
    }
}

impl crate::Statement for RusqliteStatement<'_> {
    fn execute(&mut self, params: &[Value<'_>]) -> SqlResult<u64> {
        let n = self
            .0
            .execute(rusqlite::params_from_iter(Self::params(params)))
            .map_err(failure)?;
        Ok(n as u64)
    }

    fn query(
        &mut self,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> SqlResult<()>,
    ) -> SqlResult<()> {
        let mut rows = self
            .0
            .query(rusqlite::params_from_iter(Self::params(params)))
            .map_err(failure)?;
        while let Some(r) = rows.next().map_err(failure)? {
            each(&RusqliteRow(r))?;
        }
        Ok(())
    }
}

impl SqlRow for RusqliteRow<'_, '_> {
    fn value(&self, i: usize) -> SqlResult<Value<'_>> {
        Ok(match self.0.get_ref(i).map_err(failure)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).map_err(|e| {
                SqlError::from(Error::storage(format!(
                    "column {i}: TEXT is not UTF-8: {e}"
                )))
            })?),
            ValueRef::Blob(b) => Value::Blob(b),
        })
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(n),
            Value::Real(f) => ValueRef::Real(f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A rusqlite error as the store's [`SqlError`], keeping SQLite's result code and the error.
fn failure(e: rusqlite::Error) -> SqlError {
    let code = e.sqlite_error().map(|f| f.extended_code);
    DbFailure::new(code, e.to_string()).with_source(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tether_engine::digest::RecordHash;
    use tether_engine::rules::{Changeset, Row, RowWrite, ScopeState};
    use tether_engine::{Detail, ErrorKind, ScopeId, Store};

    #[test]
    fn the_commit_hook_runs_after_each_committed_write_and_not_after_a_rollback() {
        let commits = Arc::new(AtomicUsize::new(0));
        let seen = commits.clone();
        let store = SqlStore::open_in_memory()
            .unwrap()
            .on_commit(Box::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            }));
        let scope = ScopeId::new("s").unwrap();
        let write = |fail: bool| {
            futures_executor::block_on(store.update(
                &scope,
                &[],
                false,
                move |st: &ScopeState, _: &[Option<Row>]| {
                    if fail {
                        return Err(Error::invalid("refused"));
                    }
                    Ok(Changeset {
                        scope: st.clone(),
                        ..Changeset::default()
                    })
                },
            ))
        };
        write(false).unwrap();
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        assert!(write(true).is_err());
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "a rolled-back write is no commit"
        );
        write(false).unwrap();
        assert_eq!(commits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn small_commits_stay_in_the_wal_until_it_holds_checkpoint_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.db");
        let store = SqlStore::open(&path).unwrap();
        let scope = ScopeId::new("s").unwrap();
        // Rows of 2 KB, so that a few thousand fill more than CHECKPOINT_PAGES pages of 4 KB.
        let put = |from: usize, n: usize| {
            let rows: Vec<RowWrite> = (from..from + n)
                .map(|i| RowWrite::Put {
                    row: Row {
                        key: tether_engine::Key::new("c", format!("r{i:06}")),
                        data: Some(tether_engine::Doc::from_stored(format!(
                            r#"{{"a":"{}"}}"#,
                            "x".repeat(2_000)
                        ))),
                        hash: Some(RecordHash([1; 32])),
                        version: 1,
                        updated_at: String::new(),
                        cloud_hash: Some(RecordHash([1; 32])),
                        generation: 0,
                        pending: None,
                        sent: None,
                    },
                    prior: None,
                })
                .collect();
            futures_executor::block_on(store.update(
                &scope,
                &[],
                false,
                move |st: &ScopeState, _: &[Option<Row>]| {
                    Ok(Changeset {
                        scope: st.clone(),
                        rows,
                        ..Changeset::default()
                    })
                },
            ))
            .unwrap();
        };
        let modified = || std::fs::metadata(&path).unwrap().modified().unwrap();
        put(0, 10);
        let untouched = modified();
        for round in 1..4 {
            std::thread::sleep(std::time::Duration::from_millis(200));
            put(round * 10, 10);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            modified(),
            untouched,
            "commits of a few pages stay in the WAL: no checkpoint copies them into the file"
        );
        put(100, 2_500);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while modified() == untouched {
            assert!(
                std::time::Instant::now() < deadline,
                "a WAL of more than {CHECKPOINT_PAGES} pages is checkpointed into the file"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn sqlite(code: std::ffi::c_int) -> SqlError {
        failure(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn sqlite_failures_become_storage_errors_with_detail_and_source() {
        for (code, detail) in [
            (rusqlite::ffi::SQLITE_FULL, Some(Detail::Quota)),
            (rusqlite::ffi::SQLITE_BUSY, Some(Detail::Busy)),
            (rusqlite::ffi::SQLITE_CORRUPT, Some(Detail::Corrupt)),
            (rusqlite::ffi::SQLITE_CONSTRAINT, None),
        ] {
            let e = Error::from(sqlite(code));
            assert_eq!(e.kind(), ErrorKind::Storage);
            assert_eq!(e.detail(), detail, "{e}");
            let source = std::error::Error::source(&e).map(ToString::to_string);
            assert!(source.is_some_and(|s| e.to_string().contains(&s)), "{e}");
        }
    }
}
