//! What crosses into JavaScript, as typed structs: one per object of `js/types/index.d.ts`
//! whose names differ from the engine's (`#[serde(rename_all = "camelCase")]`), borrowing from
//! the engine's values. The engine types whose serialized names already are the JS ones
//! (`Snapshot`, `RunError`, `Progress`, `Preview`, `ChangeEvent`) cross as they are.
//!
//! Each value crosses as one JSON text, parsed once by `JSON.parse`. A record's data is the
//! text its store holds, written into that text verbatim ([`records_text`]): it is never
//! parsed into a tree, renamed or serialized again in the wasm.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tether_engine::schedule::Schedule;
use tether_engine::subscription::{Held, Subscription};
use tether_engine::sync::SubsetCheck;
use tether_engine::{
    Conflict, Digest, Error, Millis, Op, RecordHash, Result, Row, Run, RunError, RunKind,
    RunStatus, ScopeStatus, Snapshot, Stats, SyncReport, Trigger, VerifyReport,
};

/// A record (`TetherRecord`), its `data` the stored text.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    collection: &'a str,
    id: &'a str,
    data: &'a RawValue,
    version: u64,
    updated_at: &'a str,
    hash: &'a RecordHash,
    pending: bool,
}

impl<'a> Record<'a> {
    /// The record of a visible row; a row whose stored data is not a JSON object is a storage
    /// error (its text is written verbatim into JSON the app parses, so it is checked first).
    fn of(row: &'a Row) -> Result<Option<Record<'a>>> {
        let (Some(doc), Some(hash)) = (&row.data, &row.hash) else {
            return Ok(None);
        };
        let corrupt = |why: &str| {
            Error::storage(format!(
                "stored data of {}/{} is not a JSON object: {why}",
                row.key.collection, row.key.id
            ))
        };
        // A syntax check without building a tree (no allocation).
        let data: &RawValue =
            serde_json::from_slice(doc.as_str().as_bytes()).map_err(|e| corrupt(&e.to_string()))?;
        if !data.get().starts_with('{') {
            return Err(corrupt("not an object"));
        }
        Ok(Some(Record {
            collection: &row.key.collection,
            id: &row.key.id,
            data,
            version: row.version,
            updated_at: &row.updated_at,
            hash,
            pending: row.pending.is_some(),
        }))
    }
}

/// A page of query results (`QueryResult`).
#[derive(Serialize)]
struct QueryResult<'a> {
    records: Vec<Record<'a>>,
    cursor: Option<&'a str>,
}

/// The JSON text of the record of `row` (`null` for none), for `JSON.parse` in JS.
pub fn record_text(row: Option<&Row>) -> Result<String> {
    text(&row.map(Record::of).transpose()?.flatten())
}

/// The JSON text of the records of `rows` (a list).
pub fn records_text(rows: &[Row]) -> Result<String> {
    text(&records(rows)?)
}

/// The JSON text of a query's page, `{records, cursor}`.
pub fn query_text(rows: &[Row], cursor: Option<&str>) -> Result<String> {
    text(&QueryResult {
        records: records(rows)?,
        cursor,
    })
}

fn records(rows: &[Row]) -> Result<Vec<Record<'_>>> {
    rows.iter()
        .filter_map(|r| Record::of(r).transpose())
        .collect()
}

/// JSON text of a value: the one way values cross (`js::to_js` parses it).
pub fn text<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::invalid(format!("cannot convert to JavaScript: {e}")))
}

/// A sync run (`Run`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsRun<'a> {
    id: u64,
    scope: &'a str,
    kind: RunKind,
    trigger: Trigger,
    started_at: Millis,
    finished_at: Option<Millis>,
    status: RunStatus,
    pages: u64,
    inserted: u64,
    updated: u64,
    deleted: u64,
    unchanged: u64,
    conflicts: u64,
    repaired: u64,
    bytes_received: u64,
    error: Option<&'a RunError>,
}

impl<'a> From<&'a Run> for JsRun<'a> {
    fn from(r: &'a Run) -> Self {
        JsRun {
            id: r.id,
            scope: &r.scope,
            kind: r.kind,
            trigger: r.trigger,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status,
            pages: r.pages,
            inserted: r.counts.inserted,
            updated: r.counts.updated,
            deleted: r.counts.deleted,
            unchanged: r.counts.unchanged,
            conflicts: r.counts.conflicts,
            repaired: r.counts.repaired,
            bytes_received: r.bytes_received,
            error: r.error.as_ref(),
        }
    }
}

/// The runs of `history()`.
pub fn runs(runs: &[Run]) -> Vec<JsRun<'_>> {
    runs.iter().map(JsRun::from).collect()
}

/// A completed sync (`SyncReport`).
#[derive(Serialize)]
pub struct JsSyncReport<'a> {
    run: JsRun<'a>,
    snapshot: &'a Snapshot,
}

impl<'a> From<&'a SyncReport> for JsSyncReport<'a> {
    fn from(r: &'a SyncReport) -> Self {
        JsSyncReport {
            run: JsRun::from(&r.run),
            snapshot: &r.snapshot,
        }
    }
}

/// A verification (`VerifyReport`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsVerifyReport<'a> {
    cloud: &'a Snapshot,
    local: &'a Snapshot,
    matched: bool,
    repaired: u64,
    matches_now: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    subscriptions: &'a [SubsetCheck],
}

impl<'a> From<&'a VerifyReport> for JsVerifyReport<'a> {
    fn from(r: &'a VerifyReport) -> Self {
        JsVerifyReport {
            cloud: &r.cloud,
            local: &r.local,
            matched: r.matched,
            repaired: r.repaired,
            matches_now: r.matches_now,
            subscriptions: &r.subscriptions,
        }
    }
}

/// A scope's status (`ScopeStatus`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsStatus<'a> {
    scope: &'a str,
    checkpoint: Option<&'a str>,
    last_synced_at: Option<Millis>,
    count: u64,
    digest: &'a Digest,
    visible: u64,
    pending_edits: u64,
    open_conflicts: u64,
    last_error: Option<&'a RunError>,
    full_sync_in_progress: bool,
    sync_recommended: bool,
    reason: Option<&'a str>,
}

impl<'a> From<&'a ScopeStatus> for JsStatus<'a> {
    fn from(s: &'a ScopeStatus) -> Self {
        JsStatus {
            scope: &s.scope,
            checkpoint: s.checkpoint.as_ref().map(|c| c.0.as_str()),
            last_synced_at: s.last_synced_at,
            count: s.count,
            digest: &s.digest,
            visible: s.visible,
            pending_edits: s.pending_edits,
            open_conflicts: s.open_conflicts,
            last_error: s.last_error.as_ref(),
            full_sync_in_progress: s.full_sync_in_progress,
            sync_recommended: s.sync_recommended,
            reason: s.reason.as_deref(),
        }
    }
}

/// Aggregates over recent runs (`Stats`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsStats {
    days: u32,
    runs: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    success_rate: Option<f64>,
    mean_duration_ms: Option<f64>,
    inserted: u64,
    updated: u64,
    deleted: u64,
    conflicts: u64,
    bytes_received: u64,
}

impl From<&Stats> for JsStats {
    fn from(s: &Stats) -> Self {
        JsStats {
            days: s.days,
            runs: s.runs,
            completed: s.completed,
            failed: s.failed,
            cancelled: s.cancelled,
            success_rate: s.success_rate,
            mean_duration_ms: s.mean_duration_ms,
            inserted: s.inserted,
            updated: s.updated,
            deleted: s.deleted,
            conflicts: s.conflicts,
            bytes_received: s.bytes_received,
        }
    }
}

/// A journaled conflict (`Conflict`). Its local data is the engine's parsed copy (conflicts
/// are few and the journal keeps them parsed).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsConflict<'a> {
    id: u64,
    scope: &'a str,
    collection: &'a str,
    record_id: &'a str,
    local_op: Op,
    local_data: Option<&'a tether_engine::Data>,
    base_version: Option<u64>,
    cloud_version: u64,
    cloud_hash: Option<&'a RecordHash>,
    at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// The conflicts of `conflicts()`.
pub fn conflicts(conflicts: &[Conflict]) -> Vec<JsConflict<'_>> {
    conflicts
        .iter()
        .map(|c| JsConflict {
            id: c.id,
            scope: &c.scope,
            collection: &c.collection,
            record_id: &c.record_id,
            local_op: c.local_op,
            local_data: c.local_data.as_ref(),
            base_version: c.base_version,
            cloud_version: c.cloud_version,
            cloud_hash: c.cloud_hash.as_ref(),
            at: c.at,
            reason: c.reason.as_deref(),
        })
        .collect()
}

/// What a background sync does next ([`Schedule::after`]): `stop`, or wait `waitMs` with
/// `failures` consecutive retryable failures so far.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsNext {
    /// Stop for good.
    pub stop: bool,
    /// The delay before the next sync (0 when stopping).
    pub wait_ms: u64,
    /// Consecutive retryable failures.
    pub failures: u32,
}

/// The engine's background-sync defaults, for the JS driver.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsSchedule {
    interval_ms: u64,
    jitter: f64,
}

impl From<&Schedule> for JsSchedule {
    fn from(s: &Schedule) -> Self {
        JsSchedule {
            interval_ms: s.interval_ms,
            jitter: s.jitter,
        }
    }
}

/// A held subscription as `scope.subscriptions()` lists it: `{collection, where, priority,
/// complete}`, `where` empty for a whole collection, so that an entry can be passed back to
/// `removeSubscription` as it is.
#[derive(Serialize)]
pub struct JsHeld<'a> {
    collection: &'a str,
    #[serde(rename = "where")]
    filters: &'a BTreeMap<String, Vec<Value>>,
    priority: u8,
    complete: bool,
}

/// The list of `scope.subscriptions()`.
pub fn held(list: &[Held]) -> Vec<JsHeld<'_>> {
    list.iter()
        .map(|h| JsHeld {
            collection: &h.subscription.collection,
            filters: &h.subscription.filters,
            priority: h.priority,
            complete: h.complete,
        })
        .collect()
}

/// A subscription and its priority from its JS form `{collection, where?: {path: [values]},
/// priority?}` (priority 0, the highest, when left out), checked by [`Subscription::parse`]:
/// `InvalidInput` naming what is wrong.
pub fn subscription_of(value: Value) -> Result<(Subscription, u8)> {
    let Value::Object(mut fields) = value else {
        return Err(Error::invalid(format!(
            "a subscription is {{collection, where?: {{path: [values]}}, priority?}}, got {value}"
        )));
    };
    // `where: null` is no filter, as `where: undefined` (which JSON.stringify leaves out) is.
    if fields.get("where").is_some_and(Value::is_null) {
        fields.remove("where");
    }
    let priority = match fields.remove("priority") {
        None | Some(Value::Null) => 0,
        Some(p) => p
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "a subscription's priority is a whole number from 0 (the highest) to {}, \
                     got {p}",
                    u8::MAX
                ))
            })?,
    };
    let sub = Subscription::parse(&Value::Object(fields).to_string())?;
    Ok((sub, priority))
}
