//! Tether's SQLite replica store, written once: [`SqlStore`] (the engine's
//! [`Store`](tether_engine::Store)), its SQL and the file's schema and migrations, over a small
//! synchronous [`Connection`] trait. Natively `tether-native` implements the trait with
//! rusqlite (`SqliteStore`); from WebAssembly `tether-wasm` implements it with Node's
//! `node:sqlite` (`DatabaseSync`). Both write the same file format, so one replica file opens
//! with the `tether` CLI and in a VS Code extension host.
//!
//! Without its `rusqlite` feature this crate has no SQLite of its own and no target-specific
//! code; the feature adds the rusqlite binding ([`native`], `tether-native`'s store).
//!
//! A binding is a [`Connection`] (prepare with a cache, run a batch), a [`Statement`]
//! (execute, query rows) and a [`SqlRow`] (columns by position):
//!
//! ```
//! use tether_sqlite::{Connection, SqlResult, SqlRow, Statement, Value};
//!
//! /// A pretend database that answers every query with one row holding 42.
//! struct Fake;
//! struct FakeStatement;
//! struct FakeRow;
//!
//! impl Connection for Fake {
//!     type Statement<'c> = FakeStatement;
//!     fn prepare(&self, _sql: &str) -> SqlResult<FakeStatement> {
//!         Ok(FakeStatement)
//!     }
//!     fn execute_batch(&self, _sql: &str) -> SqlResult<()> {
//!         Ok(())
//!     }
//! }
//! impl Statement for FakeStatement {
//!     fn execute(&mut self, _params: &[Value<'_>]) -> SqlResult<u64> {
//!         Ok(0)
//!     }
//!     fn query(
//!         &mut self,
//!         _params: &[Value<'_>],
//!         each: &mut dyn FnMut(&dyn SqlRow) -> SqlResult<()>,
//!     ) -> SqlResult<()> {
//!         each(&FakeRow)
//!     }
//! }
//! impl SqlRow for FakeRow {
//!     fn value(&self, _i: usize) -> SqlResult<Value<'_>> {
//!         Ok(Value::Integer(42))
//!     }
//! }
//!
//! let n: Option<i64> = Fake
//!     .query_row("SELECT ?1", tether_sqlite::params![1i64], |r| r.get(0))
//!     .unwrap();
//! assert_eq!(n, Some(42));
//! ```
//!
//! A real binding then opens the store with [`SqlStore::over`]: see the `native` module
//! (feature `rusqlite`), which `tether_native::SqliteStore` is.

#![forbid(unsafe_code)]

mod conn;
mod index;
#[cfg(feature = "rusqlite")]
pub mod native;
mod schema;
mod sql;
mod store;

pub use conn::{Connection, DbFailure, FromValue, SqlError, SqlResult, SqlRow, Statement, Value};
pub use schema::SCHEMA_VERSION;
pub use store::{CommitHook, SqlStore};
