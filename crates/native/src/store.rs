//! [`SqliteStore`]: the engine's [`Store`](tether_engine::Store) over one SQLite file, through
//! rusqlite.
//!
//! It is `tether_sqlite::SqlStore` over the rusqlite binding (`tether_sqlite::native`, with
//! its constructors [`SqliteStore::open`] and [`SqliteStore::open_in_memory`]): the store the
//! Node package uses too, with no forwarding layer of its own.

use tether_sqlite::native::Rusqlite;
use tether_sqlite::SqlStore;

/// A replica store in one SQLite file.
///
/// ```
/// # futures_executor::block_on(async {
/// use tether_engine::{cloud::Cloud, ScopeId, Store, SyncOptions, Syncer};
/// use tether_native::SqliteStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("replica.db")).unwrap();
/// let scope = ScopeId::new("org-1").unwrap();
/// let cloud = Cloud::new();
/// cloud.put(&scope, "objects", "obj_1", serde_json::json!({"name": "orders"}), 0);
/// let clock = || 1_700_000_000_000;
/// Syncer::new(&store, &cloud, &clock).sync(&scope, SyncOptions::default()).await.unwrap();
/// assert_eq!(store.scope_state(&scope).await.unwrap().totals, cloud.snapshot(&scope));
/// # });
/// ```
pub type SqliteStore = SqlStore<Rusqlite>;
