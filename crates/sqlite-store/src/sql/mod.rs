//! The SQL of [`SqlStore`](crate::SqlStore): one function per statement, each on a
//! cached prepared statement, each run inside a transaction its caller owns. `records` holds
//! the replica state (scopes, rows, per-generation counts); `journal` the outbox, the conflict
//! journal and the run history; `indexes` the declared indexes and their entries. Value codecs
//! shared by them are here.

mod indexes;
mod journal;
mod records;

pub(crate) use indexes::*;
pub(crate) use journal::*;
pub(crate) use records::*;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tether_engine::digest::RecordHash;
use tether_engine::{Data, Doc, Error, Key, Result, Row};

pub(crate) use crate::conn::{Connection, SqlResult, SqlRow, Statement, Value};

/// The row columns every row query selects after its key columns, in this order.
const ROW_COLUMNS: &str = "hash, version, updated_at, cloud_hash, generation, pending, data, sent";

/// Runs a query whose columns are `collection, id`, then the [`ROW_COLUMNS`].
fn collect_rows(stmt: &mut impl Statement, params: &[Value<'_>]) -> SqlResult<Vec<Row>> {
    let mut out = Vec::new();
    stmt.query(params, &mut |r| {
        let key = Key::new(r.get::<String>(0)?, r.get::<String>(1)?);
        out.push(row_from(key, r, 2)?);
        Ok(())
    })?;
    Ok(out)
}

/// Decodes the [`ROW_COLUMNS`] starting at column `at`.
fn row_from(key: Key, r: &dyn SqlRow, at: usize) -> SqlResult<Row> {
    let data: Option<String> = r.get(at + 6)?;
    let hash = opt_hash(r.value(at)?)?;
    Ok(Row {
        key,
        data: data.map(Doc::from_stored),
        hash,
        version: to_u64(r.get(at + 1)?)?,
        updated_at: r.get(at + 2)?,
        cloud_hash: cloud_hash_of(hash, r.value(at + 3)?)?,
        generation: to_u64(r.get(at + 4)?)?,
        pending: r.get::<Option<i64>>(at + 5)?.map(to_u64).transpose()?,
        sent: r.get::<Option<i64>>(at + 7)?.map(to_u64).transpose()?,
    })
}

/// Serializes record data as JSON text into `out` (cleared first by the caller if reused).
pub(crate) fn write_data(data: &Data, out: &mut String) -> Result<()> {
    // serde_json writes only valid UTF-8; a String-backed writer avoids the utf8 re-check.
    let mut bytes = std::mem::take(out).into_bytes();
    serde_json::to_writer(&mut bytes, data).map_err(|e| Error::storage(format!("json: {e}")))?;
    *out = String::from_utf8(bytes).map_err(|e| Error::storage(format!("json: {e}")))?;
    Ok(())
}

pub(crate) fn parse_data(text: &str) -> Result<Data> {
    serde_json::from_str(text)
        .map_err(|e| Error::storage(format!("stored record data is not a JSON object: {e}")))
}

pub(crate) fn opt_hash(v: Value<'_>) -> Result<Option<RecordHash>> {
    match v {
        Value::Null => Ok(None),
        Value::Blob(b) => Ok(Some(RecordHash(bytes32(b, "hash")?))),
        _ => Err(Error::storage("stored hash is not a BLOB")),
    }
}

/// How `records.cloud_hash` is stored: NULL when it equals the row's `hash` (every row
/// without a pending edit, so nearly all of them: 33 bytes saved per row), an empty BLOB when
/// the cloud has no such record, else the 32 bytes.
pub(crate) fn stored_cloud_hash<'a>(
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
pub(crate) fn cloud_hash_of(
    hash: Option<RecordHash>,
    stored: Value<'_>,
) -> Result<Option<RecordHash>> {
    match stored {
        Value::Null => Ok(hash),
        Value::Blob([]) => Ok(None),
        other => opt_hash(other),
    }
}

pub(crate) fn bytes32(b: &[u8], what: &str) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| Error::storage(format!("stored {what} has {} bytes, expected 32", b.len())))
}

pub(crate) fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::storage(format!("stored value {v} is negative")))
}

/// The engine's u64 values as SQLite INTEGERs (i64).
pub(crate) fn int(v: u64) -> Result<i64> {
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
