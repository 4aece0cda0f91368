//! The HTTP endpoints (docs/protocol.md; the server's choices in docs/server.md).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tether_engine::digest::record_hash_with;
use tether_engine::mutation::MutationId;
use tether_engine::{
    limits, Detail, Key, KeyRange, MutationResult, Op, PushRequest, PushResponse, ScopeId,
};
use tracing::Instrument;

mod admin;
use admin::{admin_purge, admin_quarantine, admin_recheck, admin_records};

use crate::auth::bearer_token;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Position, PullAnswer, Write};

/// Most mutations accepted in one push or admin write.
const MAX_WRITES: usize = 10_000;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/scopes/{scope}/changes", get(changes))
        .route("/v1/scopes/{scope}/mutations", post(mutations))
        .route("/v1/scopes/{scope}/status", get(status))
        .route("/v1/scopes/{scope}/digest", get(digest))
        .route("/v1/scopes/{scope}/records", get(records))
        .route("/v1/admin/scopes/{scope}/records", post(admin_records))
        .route("/v1/admin/scopes/{scope}/purge", post(admin_purge))
        .route("/v1/admin/scopes/{scope}/quarantine", get(admin_quarantine))
        .route("/v1/admin/scopes/{scope}/recheck", post(admin_recheck))
        .route("/healthz", get(crate::probes::healthz))
        .route("/readyz", get(crate::probes::readyz))
        .route("/metrics", get(crate::probes::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            trace_requests,
        ))
        .with_state(state)
}

type Scope = Result<Path<String>, PathRejection>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn changes(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<ReadAccess>,
    params: Params,
) -> Result<Response, ApiError> {
    let params = params
        .map_err(|e| ApiError::bad("bad_query", e.body_text()))?
        .0;
    let from = match params.get("checkpoint").map(String::as_str) {
        None | Some("") => None,
        Some(c) => Some(Position::parse(c).ok_or_else(|| {
            ApiError::bad(
                "bad_checkpoint",
                format!("checkpoint {c:?} is not one this server issued"),
            )
        })?),
    };
    let limit = match params.get("limit") {
        None => st.default_page,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(st.max_page as i64) as u32,
            _ => {
                return Err(ApiError::bad(
                    "bad_limit",
                    format!(
                        "limit must be a whole number from 1 (capped at {}), got {l:?}",
                        st.max_page
                    ),
                ))
            }
        },
    };
    let wait = match params.get("wait") {
        None => 0,
        Some(w) => match w.parse::<u64>() {
            Ok(n) if n <= crate::live::MAX_WAIT_S => n,
            _ => {
                return Err(ApiError::bad(
                    "bad_wait",
                    format!(
                        "wait must be a whole number of seconds from 0 to {}, got {w:?}",
                        crate::live::MAX_WAIT_S
                    ),
                ))
            }
        },
    };
    tracing::Span::current().record("page_size", limit);
    st.stats.pulls.fetch_add(1, Ordering::Relaxed);
    if let Some(text) = params.get("sub") {
        let sub = crate::subsets::parse(&st, text)?;
        return crate::subsets::changes(st, scope, sub, from, limit, wait).await;
    }
    // Subscribed before the first pull: a change committed between that pull and the wait
    // still wakes it.
    let mut woken = (wait > 0).then(|| st.hub.subscribe(scope.as_str()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let (answer, _building) = loop {
        if let Some(waiter) = &mut woken {
            waiter.mark_seen();
        }
        // Held until the page is serialized; never while a live pull waits. The semaphore is
        // never closed.
        let building = st.pages.acquire().await.ok();
        let answer = st.storage.pull(scope.as_str(), from, limit).await?;
        let (Some(waiter), PullAnswer::Page(page)) = (&mut woken, &answer) else {
            break (answer, building);
        };
        if !page.changes.is_empty() || page.has_more || st.hub.is_closed() {
            break (answer, building);
        }
        drop(building);
        match tokio::time::timeout_at(deadline, waiter.changed()).await {
            Ok(Ok(())) => continue,
            // The time is up (or the hub is gone): the empty page, same checkpoint.
            _ => break (answer, None),
        }
    };
    match answer {
        PullAnswer::Reset => Ok((
            StatusCode::GONE,
            Json(serde_json::json!({ "reset": true, "code": "reset",
                "message": "the checkpoint is older than the tombstone horizon: resync in full" })),
        )
            .into_response()),
        PullAnswer::Page(page) => {
            st.stats
                .changes_sent
                .fetch_add(page.changes.len() as u64, Ordering::Relaxed);
            tracing::Span::current().record("changes", page.changes.len());
            Ok(Json(page).into_response())
        }
    }
}

async fn mutations(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<WriteAccess>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PushResponse>, ApiError> {
    let req: PushRequest = read_json(&st, &headers, body).await?;
    if req.mutations.len() > MAX_WRITES {
        return Err(ApiError::bad(
            "too_many_mutations",
            format!(
                "at most {MAX_WRITES} mutations per push, got {}",
                req.mutations.len()
            ),
        ));
    }
    let mut writes = Vec::with_capacity(req.mutations.len());
    // Per mutation: `Some` when it is refused on its own (over one of the engine's limits, so
    // no storage of ours holds it), `None` when it goes to storage. Both storages refuse alike,
    // with the check a replica makes at the edit, so a replica behaves the same against either.
    let mut refused = Vec::with_capacity(req.mutations.len());
    let mut canonical = Vec::new();
    for m in req.mutations {
        let key = valid_key(&m.collection, &m.id)?;
        let origin = match &m.mutation_id {
            Some(text) => Some(
                MutationId::parse(text)
                    // U+0000 cannot be stored as text by PostgreSQL.
                    .filter(|id| limits::check_text(&id.client).is_ok())
                    .ok_or_else(|| {
                        ApiError::bad(
                            "bad_mutation",
                            format!(
                                "{}/{}: mutation_id {text:?} is not \"client:seq\" (a client of \
                                 1-64 bytes without ':' or U+0000, a sequence number)",
                                key.collection, key.id
                            ),
                        )
                    })?,
            ),
            None => None,
        };
        let state = match (m.op, m.data) {
            (Op::Put, Some(d)) => {
                let hash = record_hash_with(&d, &mut canonical);
                Some((d, hash))
            }
            (Op::Put, None) => {
                return Err(ApiError::bad(
                    "bad_mutation",
                    format!("put of {}/{} without data", key.collection, key.id),
                ))
            }
            (Op::Delete, _) => None,
        };
        let data = state.as_ref().map(|_| canonical.as_slice());
        if let Some(table) = st.read_only.get(&key.collection) {
            let message = format!(
                "collection {:?} comes from the PostgreSQL table {table} and is read-only to \
                 replicas",
                key.collection
            );
            refused.push(Some(Refusal {
                key,
                reason: READ_ONLY,
                message,
                current: true,
            }));
            continue;
        }
        if let Err(e) = limits::check_record(&key, data) {
            refused.push(Some(Refusal {
                // A key over the limit names no stored record.
                current: e.detail() != Some(Detail::KeyTooLong),
                reason: limit_reason(&e),
                message: limit_message(&e),
                key,
            }));
            continue;
        }
        refused.push(None);
        writes.push(Write {
            key,
            state,
            check: Some(m.base_version),
            origin,
            replaces: m.replaces,
        });
    }
    tracing::Span::current().record("page_size", writes.len());
    let mut applied = if writes.is_empty() {
        Vec::new().into_iter()
    } else {
        let applied = st.storage.apply(scope.as_str(), writes).await?;
        // A push that wrote nothing (all rejected, or repeats) has nothing to show a waiter.
        if applied.written > 0 {
            st.hub.notify(scope.as_str());
        }
        applied.results.into_iter()
    };
    let mut results = Vec::with_capacity(refused.len());
    for r in refused {
        let result = match r {
            None => applied.next().ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "storage answered fewer results than writes",
                )
            })?,
            Some(Refusal {
                key,
                reason,
                message,
                current,
            }) => {
                // The record as it is, so the replica can put it back (as for a rejection).
                // Ids hold no control character (`Key::validate`), so `[id, id + U+0001)` is
                // this key alone (U+0000 itself cannot be sent to PostgreSQL as text).
                let current = if !current {
                    None
                } else {
                    let range = KeyRange {
                        from: Some(key.clone()),
                        to: Some(Key::new(&key.collection, format!("{}\u{1}", key.id))),
                    };
                    st.storage
                        .range_records(scope.as_str(), &range, 1)
                        .await?
                        .and_then(|v| v.into_iter().next())
                };
                MutationResult::Invalid {
                    reason: reason.into(),
                    message,
                    current,
                }
            }
        };
        results.push(result);
    }
    st.metrics.count_results(&results);
    Ok(Json(PushResponse { results }))
}

/// The reason of a mutation of a collection that comes from a declared source.
const READ_ONLY: &str = "read_only";

/// A mutation answered `invalid` without going to storage.
struct Refusal {
    key: Key,
    reason: &'static str,
    message: String,
    /// Whether a stored record can have this key (`current` is looked up).
    current: bool,
}

/// The stable reason of a record refused by [`limits::check_record`] (`too_large`, ...).
fn limit_reason(e: &tether_engine::Error) -> &'static str {
    e.detail()
        .and_then(limits::reason)
        .unwrap_or("invalid_data")
}

/// The message of a refused record, without the kind's prefix.
fn limit_message(e: &tether_engine::Error) -> String {
    match e {
        tether_engine::Error::InvalidInput { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

async fn status(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<ReadAccess>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let status = st.storage.status(scope.as_str()).await?;
    let etag = format!("\"{}-{}\"", status.version, status.digest);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let etag = HeaderValue::from_str(&etag)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok(([(header::ETAG, etag)], Json(status)).into_response())
}

async fn digest(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<ReadAccess>,
    params: Params,
) -> Result<Response, ApiError> {
    let (sub, params) = crate::subsets::take(&st, params)?;
    let range = key_range(params)?;
    if let Some(sub) = sub {
        return crate::subsets::digest(&st, &scope, &sub, &range).await;
    }
    let snap = st.storage.range_digest(scope.as_str(), &range).await?;
    Ok(Json(snap).into_response())
}

async fn records(
    State(st): State<Arc<AppState>>,
    Authorized(scope, _): Authorized<ReadAccess>,
    params: Params,
) -> Result<Response, ApiError> {
    let (sub, params) = crate::subsets::take(&st, params)?;
    let range = key_range(params)?;
    if let Some(sub) = sub {
        return crate::subsets::records(&st, &scope, &sub, &range).await;
    }
    match st
        .storage
        .range_records(scope.as_str(), &range, st.max_range_records)
        .await?
    {
        Some(records) => {
            tracing::Span::current().record("changes", records.len());
            Ok(Json(serde_json::json!({ "records": records })).into_response())
        }
        None => Err(ApiError::range_too_large(st.max_range_records)),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint {} {}", req.method(), req.uri().path()),
    )
}

/// What a request needs of its token's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Pull, status, digest, records.
    Read,
    /// Push.
    Write,
    /// The admin API's writes (records, purge, recheck).
    Admin,
    /// The admin API's reads (quarantine): admin, read-only or not.
    AdminRead,
}

/// The scope in the path, its bearer token checked for the grant `N` names: the first
/// extractor of every scope endpoint, so no handler runs for a request it must refuse.
struct Authorized<N>(ScopeId, PhantomData<N>);

/// The grant a handler needs, as a type: [`ReadAccess`], [`WriteAccess`], [`AdminAccess`] or
/// [`AdminReadAccess`].
trait Needs {
    const NEED: Need;
}

/// Pull, status, digest, records.
struct ReadAccess;
/// Push.
struct WriteAccess;
/// The admin API's writes.
struct AdminAccess;
/// The admin API's reads (the quarantine list): allowed to a read-only admin grant.
struct AdminReadAccess;

impl Needs for ReadAccess {
    const NEED: Need = Need::Read;
}
impl Needs for WriteAccess {
    const NEED: Need = Need::Write;
}
impl Needs for AdminAccess {
    const NEED: Need = Need::Admin;
}
impl Needs for AdminReadAccess {
    const NEED: Need = Need::AdminRead;
}

impl<N: Needs> FromRequestParts<Arc<AppState>> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let scope = Path::<String>::from_request_parts(parts, st).await;
        let scope = authorize(st, &parts.headers, scope, N::NEED)?;
        Ok(Authorized(scope, PhantomData))
    }
}

/// Checks the bearer token and its grant for the scope in the path.
fn authorize(
    st: &AppState,
    headers: &HeaderMap,
    scope: Scope,
    need: Need,
) -> Result<ScopeId, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let unauthorized = |why: String| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
    let Some(token) = token else {
        return Err(unauthorized(
            "an Authorization: Bearer <token> header is required".into(),
        ));
    };
    let jwt;
    let grant = match (st.tokens.lookup(token), &st.jwt) {
        (Some(grant), _) => grant,
        (None, Some(config)) if crate::auth::looks_like_jwt(token) => {
            jwt = config
                .grant(token)
                .map_err(|why| unauthorized(why.to_string()))?;
            &jwt
        }
        (None, _) => return Err(unauthorized("the bearer token is not valid".into())),
    };
    let Path(name) = scope.map_err(|e| ApiError::bad("bad_scope", e.body_text()))?;
    let scope = ScopeId::new(name).map_err(|e| ApiError::bad("bad_scope", e.to_string()))?;
    tracing::Span::current().record("scope", scope.as_str());
    let forbidden = |why: String| ApiError::new(StatusCode::FORBIDDEN, "forbidden", why);
    // The same answer for a scope that does not exist and one that is not granted, so a token
    // cannot probe which scopes exist.
    if !grant.allows(scope.as_str()) {
        return Err(forbidden(format!(
            "the token does not grant scope {:?}",
            scope.as_str()
        )));
    }
    match need {
        Need::Admin | Need::AdminRead if !grant.admin => Err(forbidden(format!(
            "the token does not grant admin writes to scope {:?}",
            scope.as_str()
        ))),
        // `read_only` wins over `admin`: a grant that says read-only never writes.
        Need::Admin if grant.read_only => Err(forbidden(format!(
            "the token grants read-only access to scope {:?}: admin requests are refused",
            scope.as_str()
        ))),
        Need::Write if grant.read_only => Err(forbidden(format!(
            "the token grants read-only access to scope {:?}: pushes are refused",
            scope.as_str()
        ))),
        _ => Ok(scope),
    }
}

/// `from_collection`/`from_id` and `to_collection`/`to_id`: both parts of a bound or neither.
fn key_range(params: Params) -> Result<KeyRange, ApiError> {
    let params = params
        .map_err(|e| ApiError::bad("bad_query", e.body_text()))?
        .0;
    let bound = |side: &str| -> Result<Option<Key>, ApiError> {
        let c = params.get(&format!("{side}_collection"));
        let i = params.get(&format!("{side}_id"));
        match (c, i) {
            (None, None) => Ok(None),
            (Some(c), Some(i)) => Ok(Some(Key::new(c.as_str(), i.as_str()))),
            _ => Err(ApiError::bad(
                "bad_key_range",
                format!("give both {side}_collection and {side}_id, or neither"),
            )),
        }
    };
    for name in params.keys() {
        if !["from_collection", "from_id", "to_collection", "to_id"].contains(&name.as_str()) {
            return Err(ApiError::bad(
                "bad_key_range",
                format!("unknown parameter {name:?}; a range is from_collection, from_id, to_collection, to_id"),
            ));
        }
    }
    Ok(KeyRange {
        from: bound("from")?,
        to: bound("to")?,
    })
}

fn valid_key(collection: &str, id: &str) -> Result<Key, ApiError> {
    let key = Key::new(collection, id);
    key.validate()
        .map_err(|e| ApiError::bad("bad_mutation", e.to_string()))?;
    Ok(key)
}

async fn read_body(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {} bytes", st.max_body_bytes),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > st.max_body_bytes as u64) {
        // Answering before the client has written its body makes its write fail with a broken
        // pipe, and it never sees the 413. So a body up to 4x the limit is read and thrown
        // away first; a larger one is refused at once (that much is not worth reading).
        if n <= 4 * st.max_body_bytes as u64 {
            use futures_util::StreamExt;
            let mut stream = body.into_data_stream();
            let mut read = 0u64;
            while let Some(Ok(chunk)) = stream.next().await {
                read += chunk.len() as u64;
                if read > n {
                    break;
                }
            }
        }
        return Err(too_large());
    }
    axum::body::to_bytes(body, st.max_body_bytes)
        .await
        .map_err(|e| {
            if e.to_string().contains("length limit") {
                too_large()
            } else if stalled(&e) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body stalled for longer than {} s",
                        st.body_read_timeout.as_secs_f64()
                    ),
                )
            } else {
                ApiError::bad("bad_body", format!("could not read the request body: {e}"))
            }
        })
}

/// Whether reading a body failed because it stalled (the connection's body read timeout).
fn stalled(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn read_json<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = read_body(st, headers, body).await?;
    parse_json(&bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad("bad_json", format!("malformed request body: {e}")))
}

/// Logs every request with its id, scope, page size, status and duration.
async fn trace_requests(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = st.next_request.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "request",
        request_id = id,
        method = %req.method(),
        path = %req.uri().path(),
        scope = tracing::field::Empty,
        page_size = tracing::field::Empty,
        changes = tracing::field::Empty,
    );
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().to_string();
    let mut resp = next.run(req).instrument(span.clone()).await;
    st.metrics
        .observe(route, method, resp.status(), start.elapsed());
    span.in_scope(|| {
        tracing::info!(
            status = resp.status().as_u16(),
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
    resp.headers_mut()
        .insert("x-request-id", HeaderValue::from(id));
    resp
}
