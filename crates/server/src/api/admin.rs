//! The admin endpoints: writes by the backend that owns the data, the tombstone purge, the
//! quarantine list and the re-check of stored rows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tether_engine::digest::record_hash_with;
use tether_engine::{limits, Data, Key};

use super::{
    limit_message, limit_reason, parse_json, read_body, read_json, valid_key, AdminAccess,
    AdminReadAccess, Authorized, MAX_WRITES, READ_ONLY,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Purge, Write};

/// Body of the admin write endpoint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminWrites {
    #[serde(default)]
    upserts: Vec<AdminUpsert>,
    #[serde(default)]
    deletes: Vec<Key>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminUpsert {
    collection: String,
    id: String,
    data: Data,
}

pub(super) async fn admin_records(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<AdminAccess>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: AdminWrites = read_json(&st, &headers, body).await?;
    if req.upserts.len() + req.deletes.len() > MAX_WRITES {
        return Err(ApiError::bad(
            "too_many_mutations",
            format!("at most {MAX_WRITES} writes per request"),
        ));
    }
    let mut writes = Vec::with_capacity(req.upserts.len() + req.deletes.len());
    // A record over a limit refuses the whole batch (nothing is written), naming it: the same
    // check as a replica's edit and the push path.
    let refuse = |what: String, e: tether_engine::Error| {
        ApiError::bad(limit_reason(&e), format!("{what}: {}", limit_message(&e)))
    };
    let mut canonical = Vec::new();
    for (n, u) in req.upserts.into_iter().enumerate() {
        let key = valid_key(&u.collection, &u.id)?;
        let hash = record_hash_with(&u.data, &mut canonical);
        limits::check_record(&key, Some(&canonical))
            .map_err(|e| refuse(format!("upserts[{n}]"), e))?;
        writes.push(Write {
            key,
            state: Some((u.data, hash)),
            check: None,
            origin: None,
            replaces: None,
        });
    }
    for (n, k) in req.deletes.into_iter().enumerate() {
        let key = valid_key(&k.collection, &k.id)?;
        limits::check_key(&key).map_err(|e| refuse(format!("deletes[{n}]"), e))?;
        writes.push(Write {
            key,
            state: None,
            check: None,
            origin: None,
            replaces: None,
        });
    }
    // The consumer of declared sources owns their collections: another writer's records
    // would be overwritten or swept by it, so they are refused here as pushes are.
    if let Some((w, table)) = writes
        .iter()
        .find_map(|w| st.read_only.get(&w.key.collection).map(|t| (w, t)))
    {
        return Err(ApiError::bad(
            READ_ONLY,
            format!(
                "{}/{}: collection {:?} comes from the PostgreSQL table {table}; write to the \
                 table instead",
                w.key.collection, w.key.id, w.key.collection
            ),
        ));
    }
    tracing::Span::current().record("page_size", writes.len());
    let summary = st.storage.admin_write(scope.as_str(), writes).await?;
    st.hub.notify(scope.as_str());
    Ok(Json(summary).into_response())
}

/// Body of the admin purge endpoint.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    /// Purge only tombstones older than this many milliseconds (default: all of them).
    #[serde(default)]
    older_than_ms: Option<u64>,
}

pub(super) async fn admin_purge(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<AdminAccess>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&st, &headers, body).await?;
    let req: PurgeRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        PurgeRequest::default()
    } else {
        parse_json(&bytes)?
    };
    let before = req
        .older_than_ms
        .map(|ms| tether_engine::time::rfc3339(crate::now_ms() - ms.min(i64::MAX as u64) as i64));
    let purged = st
        .storage
        .purge(&Purge {
            scope: Some(scope.to_string()),
            before,
        })
        .await?;
    Ok(Json(serde_json::json!({ "purged": purged })).into_response())
}

/// The rows of the scope the server cannot read back (written by plain SQL), which it neither
/// serves nor counts: `{"quarantine": [{collection, id, version, reason}]}`.
pub(super) async fn admin_quarantine(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<AdminReadAccess>,
) -> Result<Response, ApiError> {
    let rows = st.storage.quarantine(scope.as_str()).await?;
    tracing::Span::current().record("changes", rows.len());
    Ok(Json(serde_json::json!({ "quarantine": rows })).into_response())
}

pub(super) async fn admin_recheck(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<AdminAccess>,
) -> Result<Response, ApiError> {
    match st.storage.recheck(scope.as_str()).await? {
        Some(found) => {
            st.hub.notify(scope.as_str());
            tracing::info!(
                scope = scope.as_str(),
                checked = found.checked,
                rehashed = found.rehashed,
                quarantined = found.quarantined,
                "rechecked stored rows"
            );
            Ok(Json(found).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "only PostgreSQL storage takes writes from plain SQL; SQLite storage has nothing \
             to re-check",
        )),
    }
}
