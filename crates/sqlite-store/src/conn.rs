//! The connection trait the store's SQL runs on: prepare (cached), execute, query rows, run a
//! batch. Small on purpose, so that a binding is a page of code: rusqlite natively
//! (`tether-native`), `node:sqlite`'s `DatabaseSync` from WebAssembly (`tether-wasm`).

use tether_engine::{Detail, Error};

/// A synchronous SQLite connection.
///
/// [`Connection::prepare`] should return a cached statement: the store prepares the same few
/// statements over and over, and preparing is the costly part of a small statement.
/// Transactions are plain SQL (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK` through
/// [`Connection::execute_batch`]); the store opens and closes them.
pub trait Connection {
    /// A prepared statement, borrowing the connection.
    type Statement<'c>: Statement
    where
        Self: 'c;

    /// The prepared statement for `sql` (one statement), from a cache when it was prepared
    /// before.
    fn prepare(&self, sql: &str) -> SqlResult<Self::Statement<'_>>;

    /// Runs one or more statements without parameters and without results.
    fn execute_batch(&self, sql: &str) -> SqlResult<()>;

    /// Prepares (cached) and runs one statement; returns the number of rows changed.
    fn execute(&self, sql: &str, params: &[Value<'_>]) -> SqlResult<u64> {
        self.prepare(sql)?.execute(params)
    }

    /// Prepares (cached) and runs one query, decoding its first row with `f`.
    fn query_row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        f: impl FnOnce(&dyn SqlRow) -> SqlResult<T>,
    ) -> SqlResult<Option<T>> {
        self.prepare(sql)?.query_row(params, f)
    }
}

/// The statement in `slot`, prepared on first use: for statements run once per row of a
/// transaction.
pub(crate) fn statement<'c, 's, C: Connection>(
    tx: &'c C,
    slot: &'s mut Option<C::Statement<'c>>,
    sql: &str,
) -> SqlResult<&'s mut C::Statement<'c>> {
    match slot {
        Some(s) => Ok(s),
        None => Ok(slot.insert(tx.prepare(sql)?)),
    }
}

/// A prepared statement.
pub trait Statement {
    /// Runs the statement with `params` bound to `?1`, `?2`, …; returns the rows changed.
    fn execute(&mut self, params: &[Value<'_>]) -> SqlResult<u64>;

    /// Runs the statement once per row of `params`, in order: the rows lie one after another,
    /// `width` values each (a `width` of 0 runs nothing). Stops at the first failure, which
    /// the caller's transaction rolls back.
    ///
    /// The default calls [`Statement::execute`] per row; a binding that pays for each call
    /// across a language boundary (`node:sqlite` from WebAssembly) hands over all rows at once.
    fn execute_rows(&mut self, width: usize, params: &[Value<'_>]) -> SqlResult<()> {
        if width == 0 {
            return Ok(());
        }
        for row in params.chunks(width) {
            self.execute(row)?;
        }
        Ok(())
    }

    /// Runs the query with `params`, calling `each` on every row in order.
    fn query(
        &mut self,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> SqlResult<()>,
    ) -> SqlResult<()>;

    /// The first row of the query, decoded with `f`.
    fn query_row<T>(
        &mut self,
        params: &[Value<'_>],
        f: impl FnOnce(&dyn SqlRow) -> SqlResult<T>,
    ) -> SqlResult<Option<T>>
    where
        Self: Sized,
    {
        let mut f = Some(f);
        let mut out = None;
        self.query(params, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// One result row: its columns by position.
pub trait SqlRow {
    /// The value of column `i` (from 0).
    fn value(&self, i: usize) -> SqlResult<Value<'_>>;
}

impl dyn SqlRow + '_ {
    /// Column `i` decoded as `T`.
    pub fn get<'a, T: FromValue<'a>>(&'a self, i: usize) -> SqlResult<T> {
        let v = self.value(i)?;
        T::from_value(v).map_err(|what| {
            Error::storage(format!("column {i}: expected {what}, found {v:?}")).into()
        })
    }
}

/// An SQLite value, bound to a parameter or read from a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `NULL`.
    Null,
    /// An `INTEGER`.
    Integer(i64),
    /// A `REAL` (the replica schema has none; here for completeness).
    Real(f64),
    /// `TEXT`.
    Text(&'a str),
    /// A `BLOB`.
    Blob(&'a [u8]),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A column type [`SqlRow`] values decode to; the error names what was expected.
pub trait FromValue<'a>: Sized {
    /// Decodes `v`, or says what type was expected.
    fn from_value(v: Value<'a>) -> Result<Self, &'static str>;
}

impl<'a> FromValue<'a> for Value<'a> {
    fn from_value(v: Value<'a>) -> Result<Self, &'static str> {
        Ok(v)
    }
}

impl FromValue<'_> for i64 {
    fn from_value(v: Value<'_>) -> Result<Self, &'static str> {
        match v {
            Value::Integer(n) => Ok(n),
            _ => Err("an INTEGER"),
        }
    }
}

impl FromValue<'_> for bool {
    fn from_value(v: Value<'_>) -> Result<Self, &'static str> {
        match v {
            Value::Integer(n) => Ok(n != 0),
            _ => Err("an INTEGER (boolean)"),
        }
    }
}

impl FromValue<'_> for String {
    fn from_value(v: Value<'_>) -> Result<Self, &'static str> {
        match v {
            Value::Text(s) => Ok(s.to_owned()),
            _ => Err("TEXT"),
        }
    }
}

impl<'a, T: FromValue<'a>> FromValue<'a> for Option<T> {
    fn from_value(v: Value<'a>) -> Result<Self, &'static str> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// `&[Value]` of the arguments, for [`Statement::execute`] and [`Statement::query`].
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::Value::from($v)),*] as &[$crate::Value<'_>]
    };
}

/// A failure inside the SQLite store: SQLite's own error, or an engine error (a stored value
/// that does not decode, a planner's error). Functions that run SQL return it, so `?` works on
/// both; it becomes the engine's [`Error`] once, where a [`Store`](tether_engine::Store)
/// method (or [`SqlStore::over`](crate::SqlStore::over)) returns.
#[derive(Debug)]
pub enum SqlError {
    /// SQLite (or the binding to it) failed.
    Db(DbFailure),
    /// The engine's error, passed through as it is.
    Engine(Error),
}

/// The result of a function that runs SQL.
pub type SqlResult<T> = std::result::Result<T, SqlError>;

/// A failure reported by SQLite through a binding: its (extended) result code if it has one,
/// its message, and the binding's own error as the source where that can cross threads.
#[derive(Debug)]
pub struct DbFailure {
    code: Option<i32>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// SQLite's primary result codes the store tells apart (`sqlite3.h`).
mod code {
    pub(super) const BUSY: i32 = 5;
    pub(super) const LOCKED: i32 = 6;
    pub(super) const CORRUPT: i32 = 11;
    pub(super) const FULL: i32 = 13;
    pub(super) const NOTADB: i32 = 26;
}

impl DbFailure {
    /// A failure with SQLite's result code (primary or extended), if known, and a message.
    pub fn new(code: Option<i32>, message: impl Into<String>) -> Self {
        DbFailure {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps the binding's error as the source.
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// SQLite's primary result code (`SQLITE_BUSY`, `SQLITE_FULL`, …), if known.
    pub fn primary_code(&self) -> Option<i32> {
        self.code.map(|c| c & 0xff)
    }

    /// Whether SQLite said the file is not a database.
    pub fn is_not_a_database(&self) -> bool {
        self.primary_code() == Some(code::NOTADB)
    }

    /// Whether SQLite said another connection holds a lock this statement needed.
    pub fn is_busy(&self) -> bool {
        matches!(self.primary_code(), Some(code::BUSY | code::LOCKED))
    }
}

impl std::fmt::Display for DbFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<DbFailure> for SqlError {
    fn from(e: DbFailure) -> Self {
        SqlError::Db(e)
    }
}

impl From<Error> for SqlError {
    fn from(e: Error) -> Self {
        SqlError::Engine(e)
    }
}

impl From<SqlError> for Error {
    /// A SQLite failure is an [`Error::Storage`] keeping the [`DbFailure`] as its source and
    /// naming a full disk, a lock held too long and a damaged file in its detail.
    fn from(e: SqlError) -> Self {
        let e = match e {
            SqlError::Engine(e) => return e,
            SqlError::Db(e) => e,
        };
        let detail = match e.primary_code() {
            Some(code::FULL) => Some(Detail::Quota),
            Some(code::BUSY | code::LOCKED) => Some(Detail::Busy),
            Some(code::CORRUPT | code::NOTADB) => Some(Detail::Corrupt),
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

#[cfg(test)]
mod tests {
    use super::*;
    use tether_engine::ErrorKind;

    #[test]
    fn sqlite_failures_become_storage_errors_with_detail_and_source() {
        for (code, detail) in [
            (13, Some(Detail::Quota)),
            (5, Some(Detail::Busy)),
            (517, Some(Detail::Busy)), // SQLITE_BUSY_SNAPSHOT, an extended code
            (11, Some(Detail::Corrupt)),
            (19, None),
        ] {
            let e = Error::from(SqlError::from(DbFailure::new(Some(code), "it failed")));
            assert_eq!(e.kind(), ErrorKind::Storage);
            assert_eq!(e.detail(), detail, "{e}");
            let source = std::error::Error::source(&e).map(ToString::to_string);
            assert!(source.is_some_and(|s| e.to_string().contains(&s)), "{e}");
        }
    }

    #[test]
    fn engine_errors_pass_through_unchanged() {
        let e = Error::protocol("planner says no").with_detail(Detail::Malformed);
        let back = Error::from(SqlError::from(e.clone()));
        assert_eq!(back.kind(), ErrorKind::Protocol);
        assert_eq!(back.detail(), Some(Detail::Malformed));
        assert_eq!(back.to_string(), e.to_string());
    }

    #[test]
    fn options_and_primitives_convert_to_values() {
        let s = String::from("x");
        let none: Option<i64> = None;
        assert_eq!(
            params![1i64, true, "a", &s, none, Some(&[1u8][..])],
            &[
                Value::Integer(1),
                Value::Integer(1),
                Value::Text("a"),
                Value::Text("x"),
                Value::Null,
                Value::Blob(&[1])
            ]
        );
        assert_eq!(<Option<i64>>::from_value(Value::Null), Ok(None));
        assert_eq!(String::from_value(Value::Integer(1)), Err("TEXT"));
    }
}
