//! The HTTP side of subscriptions (protocol v1.2, docs/protocol.md "Subsets"): the `sub`
//! parameter of a pull, a range digest and range records, checked against the declared filter
//! indexes so that every subset is served from an index.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tether_engine::subscription::Subscription;
use tether_engine::{Detail, KeyRange, ScopeId};

use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::subset::SubsetAnswer;
use crate::storage::Position;

/// The query parameters of a request, as the handlers read them.
pub(crate) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Reads `sub`: `400 bad_subscription` for one that does not parse or break the rules,
/// `400 subscription_too_large` over a limit, `400 unindexed_filter` for a path this server
/// has no index of (`tether serve --filter-index COLLECTION:PATH`).
pub(crate) fn parse(st: &AppState, text: &str) -> Result<Subscription, ApiError> {
    let sub = Subscription::parse(text).map_err(|e| {
        let code = match e.detail() {
            Some(Detail::TooLarge) => "subscription_too_large",
            _ => "bad_subscription",
        };
        let message = match e {
            tether_engine::Error::InvalidInput { message, .. } => message,
            other => other.to_string(),
        };
        ApiError::bad(code, message)
    })?;
    for path in sub.filters.keys() {
        if !st.filters.contains(&(sub.collection.clone(), path.clone())) {
            return Err(ApiError::bad(
                "unindexed_filter",
                format!(
                    "this server has no index of {path:?} in collection {:?}, so it cannot \
                     serve that filter without reading the whole collection (declare it: \
                     --filter-index {}:{path})",
                    sub.collection, sub.collection
                ),
            ));
        }
    }
    Ok(sub)
}

/// Takes `sub` out of the query parameters of the range endpoints, which refuse any other
/// parameter than the range's.
pub(crate) fn take(
    st: &AppState,
    params: Params,
) -> Result<(Option<Subscription>, Params), ApiError> {
    let Ok(Query(mut map)) = params else {
        return Ok((None, params));
    };
    let sub = map.remove("sub").map(|t| parse(st, &t)).transpose()?;
    Ok((sub, Ok(Query::<HashMap<String, String>>(map))))
}

/// A subset pull, live (`wait`) like any pull.
pub(crate) async fn changes(
    st: Arc<AppState>,
    scope: ScopeId,
    sub: Subscription,
    from: Option<Position>,
    limit: u32,
    wait: u64,
) -> Result<Response, ApiError> {
    let mut woken = (wait > 0).then(|| st.hub.subscribe(scope.as_str()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let (answer, _building) = loop {
        if let Some(waiter) = &mut woken {
            waiter.mark_seen();
        }
        let building = st.pages.acquire().await.ok();
        let answer = st
            .storage
            .pull_subset(scope.as_str(), &sub, from, limit)
            .await?;
        let (Some(waiter), SubsetAnswer::Page(page)) = (&mut woken, &answer) else {
            break (answer, building);
        };
        let empty = page.changes.is_empty() && page.outside.is_empty();
        if !empty || page.has_more || st.hub.is_closed() {
            break (answer, building);
        }
        drop(building);
        match tokio::time::timeout_at(deadline, waiter.changed()).await {
            Ok(Ok(())) => continue,
            _ => break (answer, None),
        }
    };
    match answer {
        SubsetAnswer::Reset => Ok((
            StatusCode::GONE,
            Json(serde_json::json!({ "reset": true, "code": "reset",
                "message": "the checkpoint is older than the tombstone horizon: download the \
                            subscription again" })),
        )
            .into_response()),
        SubsetAnswer::Page(page) => {
            let sent = (page.changes.len() + page.outside.len()) as u64;
            st.stats.changes_sent.fetch_add(sent, Ordering::Relaxed);
            tracing::Span::current().record("changes", sent);
            Ok(Json(page).into_response())
        }
    }
}

/// Count and digest of a subscription's records in a range.
pub(crate) async fn digest(
    st: &AppState,
    scope: &ScopeId,
    sub: &Subscription,
    range: &KeyRange,
) -> Result<Response, ApiError> {
    let snap = st.storage.subset_digest(scope.as_str(), sub, range).await?;
    Ok(Json(snap).into_response())
}

/// A subscription's records in a range, bounded as the range records endpoint is.
pub(crate) async fn records(
    st: &AppState,
    scope: &ScopeId,
    sub: &Subscription,
    range: &KeyRange,
) -> Result<Response, ApiError> {
    match st
        .storage
        .subset_records(scope.as_str(), sub, range, st.max_range_records)
        .await?
    {
        Some(records) => {
            tracing::Span::current().record("changes", records.len());
            Ok(Json(serde_json::json!({ "records": records })).into_response())
        }
        None => Err(ApiError::range_too_large(st.max_range_records)),
    }
}
