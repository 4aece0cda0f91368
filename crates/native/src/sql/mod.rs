//! The SQL of [`SqliteStore`](crate::SqliteStore): one function per statement, each on a
//! cached prepared statement, each run inside a transaction its caller owns. `records` holds
//! the replica state (scopes, rows, per-generation counts); `journal` the outbox, the conflict
//! journal and the run history. Value codecs shared by both are here, with [`SqlError`].

mod journal;
mod records;

pub use journal::*;
pub use records::*;

use rusqlite::types::ValueRef;
use rusqlite::Row as SqlRow;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tether_engine::digest::RecordHash;
use tether_engine::{Data, Detail, Error, Key, Result, Row};

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

#[cfg(test)]
mod tests {
    use super::*;
    use tether_engine::ErrorKind;

    fn sqlite(code: std::ffi::c_int) -> SqlError {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None).into()
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

    #[test]
    fn engine_errors_pass_through_unchanged() {
        let e = Error::protocol("planner says no").with_detail(Detail::Malformed);
        let back = Error::from(SqlError::from(e.clone()));
        assert_eq!(back.kind(), ErrorKind::Protocol);
        assert_eq!(back.detail(), Some(Detail::Malformed));
        assert_eq!(back.to_string(), e.to_string());
    }
}
