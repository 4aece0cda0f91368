//! `GET /healthz`, `GET /readyz` and `GET /metrics` (Prometheus text), scraped after traffic.
//! Both storages.

mod common;

use common::{Backend, Harness, READER};
use serde_json::json;

both!(
    metrics_count_the_traffic,
    readiness_follows_the_storage,
    the_metrics_token_guards_metrics_only,
);

fn push(h: &Harness, id: &str, data: serde_json::Value, base: Option<u64>) -> String {
    let body = json!({"mutations": [
        {"collection": "objects", "id": id, "op": "put", "data": data, "base_version": base}
    ]})
    .to_string();
    let (status, answer) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&body));
    assert_eq!(status, 200, "{answer}");
    answer["results"][0]["status"].as_str().unwrap().to_string()
}

fn metrics_count_the_traffic(backend: Backend) {
    let h = Harness::start(backend);
    let accepted = "tether_push_mutations_total{result=\"accepted\"}";
    let pulls = "tether_http_requests_total{route=\"/v1/scopes/{scope}/changes\",method=\"GET\",status=\"200\"}";
    let before = (
        h.metric(accepted),
        h.metric(pulls),
        h.metric("tether_pull_changes_total"),
    );
    for i in 0..5 {
        assert_eq!(
            push(&h, &format!("o{i}"), json!({"i": i}), None),
            "accepted"
        );
    }
    assert_eq!(push(&h, "o0", json!({"stale": true}), None), "rejected");
    assert_eq!(push(&h, "nul", json!({"s": "a\u{0}b"}), None), "invalid");
    for _ in 0..3 {
        assert_eq!(
            h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None).0,
            200
        );
    }
    assert_eq!(h.raw("GET", "/v1/scopes/s1/status", None, None).0, 401);
    assert_eq!(h.metric(accepted) - before.0, 5.0);
    assert_eq!(
        h.metric("tether_push_mutations_total{result=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        h.metric("tether_push_mutations_total{result=\"invalid\"}"),
        1.0
    );
    assert_eq!(h.metric(pulls) - before.1, 3.0);
    assert_eq!(h.metric("tether_pull_changes_total") - before.2, 15.0);
    assert_eq!(
        h.metric("tether_http_requests_total{route=\"/v1/scopes/{scope}/status\",method=\"GET\",status=\"401\"}"),
        1.0
    );
    assert_eq!(
        h.metric(
            "tether_http_request_duration_seconds_count{route=\"/v1/scopes/{scope}/mutations\"}"
        ),
        7.0
    );
    assert!(h.metric("tether_http_response_body_bytes_total") > 0.0);
    assert!(h.metric("tether_connections_accepted_total") >= 1.0);
    assert!(
        h.metric("tether_connections_open") >= 1.0,
        "the scrape's own"
    );
    assert_eq!(h.metric("tether_live_waiters"), 0.0);
    assert!(h.metric("tether_storage_pool_max") >= 1.0);
    // No scope, record or raw path in any label.
    let text = ureq::get(&format!("{}/metrics", h.url()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!text.contains("s1") && !text.contains("o0"), "{text}");
    assert!(text.contains("# TYPE tether_http_request_duration_seconds histogram"));
    assert!(text.ends_with("# EOF\n"));
}

fn readiness_follows_the_storage(backend: Backend) {
    let h = Harness::start(backend);
    assert_eq!(h.raw("GET", "/healthz", None, None).0, 200);
    let (status, body) = h.raw("GET", "/readyz", None, None);
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    // The storage loses its tables: not ready, and it says why; the process is still alive.
    match h.sqlite_path() {
        Some(path) => {
            let db = rusqlite::Connection::open(path).unwrap();
            db.execute_batch("DROP TABLE scopes").unwrap();
        }
        None => h.sql("DROP TABLE scopes CASCADE"),
    }
    let (status, body) = h.raw("GET", "/readyz", None, None);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not_ready")),
        "{body}"
    );
    assert_eq!(h.raw("GET", "/healthz", None, None).0, 200);
}

fn the_metrics_token_guards_metrics_only(backend: Backend) {
    let h = Harness::start_with(backend, |config| {
        config.metrics_token = Some("scraper".into());
    });
    let url = format!("{}/metrics", h.url());
    let status = |token: Option<&str>| {
        let mut req = ureq::get(&url);
        if let Some(t) = token {
            req = req.set("authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(status(None), 401);
    assert_eq!(
        status(Some(READER)),
        401,
        "an API token is not the metrics token"
    );
    assert_eq!(status(Some("scraper")), 200);
    assert_eq!(
        h.raw("GET", "/healthz", None, None).0,
        200,
        "probes stay open"
    );
}
