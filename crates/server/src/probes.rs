//! The operators' endpoints: `GET /metrics` (the registry of [`crate::metrics`] in the
//! Prometheus text format), `GET /healthz` (the process answers) and `GET /readyz` (its
//! storage answers).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::{bearer_token, same_secret};
use crate::error::ApiError;
use crate::sources::{SourceState, SourceStatus};
use crate::state::AppState;

/// How long `/readyz` waits for the storage before it answers `503`.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics`: the Prometheus text format (OpenMetrics 1.0 text, which Prometheus reads).
pub(crate) async fn metrics(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(wanted) = &st.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !same_secret(given, wanted) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "GET /metrics needs the metrics token as Authorization: Bearer <token>",
            ));
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &st.metrics.registry)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /healthz`: the process is up and answering.
pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: the storage answers a trivial query within [`READY_TIMEOUT`]; `503`
/// otherwise, so a load balancer sends no traffic to an instance whose database is gone.
pub(crate) async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, st.storage.ready()).await {
        Ok(Ok(())) => {
            let mut body = serde_json::json!({ "status": "ready" });
            if let Some(sources) = &st.sources {
                body["sources"] = sources_report(sources);
            }
            axum::Json(body).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            not_ready(e.to_string())
        }
        Err(_) => not_ready(format!(
            "the storage did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    }
}

/// The declared sources as `/readyz` shows them. A broken source does not make the instance
/// unready: the other collections serve, and the broken one serves what it had (its records
/// stay); it shows here, in the log and in `tether_source_up`.
fn sources_report(sources: &SourceStatus) -> serde_json::Value {
    let each: serde_json::Map<String, serde_json::Value> = sources
        .reports()
        .into_iter()
        .map(|r| {
            let (state, error) = match &r.state {
                SourceState::Waiting => ("waiting", None),
                SourceState::Live if r.passing => ("sending", None),
                SourceState::Live => ("live", None),
                SourceState::Broken(why) => ("broken", Some(why.clone())),
            };
            let mut v = serde_json::json!({ "table": r.table, "state": state, "sent": r.sent });
            if let Some(error) = error {
                v["error"] = error.into();
            }
            (r.collection, v)
        })
        .collect();
    serde_json::json!({
        "consumer": sources.is_consumer(),
        "backlog": sources.backlog(),
        "collections": each,
    })
}

fn not_ready(why: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(
            serde_json::json!({ "status": "unavailable", "code": "not_ready",
            "message": why }),
        ),
    )
        .into_response()
}
