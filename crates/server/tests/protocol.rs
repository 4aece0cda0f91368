//! The HTTP surface: auth, bad requests, ETag, gzip, CORS. Raw HTTP only: how a client
//! replica sees these answers is tested with tether-native in the workspace's `tests/`.

mod common;

use std::io::Read;

use common::{Backend, Harness, READER, S1_ONLY};
use serde_json::{json, Value};

both!(
    auth_and_scope_isolation,
    the_bearer_scheme_is_case_insensitive,
    bad_requests_change_nothing,
    etag_and_gzip,
    cors,
    the_quarantine_endpoint_is_admin_only,
);

postgres_only!(
    a_rejected_push_carries_the_hash_of_a_sql_update,
    rows_the_server_cannot_read_are_quarantined,
);

fn auth_and_scope_isolation(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "one", json!({"n": 1}))]);
    h.upsert("s2", &[("objects", "secret", json!({"n": 2}))]);

    let (status, body) = h.raw("GET", "/v1/scopes/s1/changes", None, None);
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _) = h.raw("GET", "/v1/scopes/s1/status", Some("wrong"), None);
    assert_eq!(status, 401);
    let (status, body) = h.raw("GET", "/v1/scopes/s2/changes", Some(S1_ONLY), None);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    for path in ["status", "digest", "records"] {
        let (status, _) = h.raw("GET", &format!("/v1/scopes/s2/{path}"), Some(S1_ONLY), None);
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = h.raw(
        "POST",
        "/v1/scopes/s2/mutations",
        Some(S1_ONLY),
        Some(r#"{"mutations":[]}"#),
    );
    assert_eq!(status, 403);
    // Reading tokens cannot use the admin API.
    let (status, _) = h.raw(
        "POST",
        "/v1/admin/scopes/s1/records",
        Some(READER),
        Some("{}"),
    );
    assert_eq!(status, 403);

    // A granted scope shows only its own data.
    let (status, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(S1_ONLY), None);
    assert_eq!(status, 200, "{page}");
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{page}");
    assert_eq!(changes[0]["id"], "one", "{page}");
    assert!(!page.to_string().contains("secret"));
}

/// RFC 7235 §2.1: the auth scheme is case-insensitive, and one or more spaces separate it from
/// the credentials. Other schemes, and no token, stay 401.
fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let h = Harness::start(backend);
    let url = format!("{}/v1/scopes/s1/status", h.url());
    let status = |value: &str| match ureq::get(&url).set("authorization", value).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert_eq!(status(&format!("{scheme} {READER}")), 200, "{scheme}");
    }
    assert_eq!(status(&format!("Bearer   {READER}")), 200, "several spaces");
    for bad in [
        format!("Basic {READER}"),
        format!("Bearer{READER}"),
        format!("Bearers {READER}"),
        "Bearer ".to_string(),
        READER.to_string(),
    ] {
        assert_eq!(status(&bad), 401, "{bad:?}");
    }
}

fn bad_requests_change_nothing(backend: Backend) {
    let h = Harness::start_with(backend, |c| {
        c.max_page = 50;
        c.max_body_bytes = 64 * 1024;
    });
    let records: Vec<_> = (0..60)
        .map(|i| ("objects", format!("o{i:03}"), json!({"i": i})))
        .collect();
    let records: Vec<_> = records
        .iter()
        .map(|(c, i, d)| (*c, i.as_str(), d.clone()))
        .collect();
    h.upsert("s1", &records);
    let before = h.status("s1");

    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "GET",
            "/v1/scopes/s1/changes?checkpoint=abc",
            None,
            400,
            "bad_checkpoint",
        ),
        (
            "GET",
            "/v1/scopes/s1/changes?checkpoint=-5",
            None,
            400,
            "bad_checkpoint",
        ),
        (
            "GET",
            "/v1/scopes/s1/changes?checkpoint=9:3",
            None,
            400,
            "bad_checkpoint",
        ),
        (
            "GET",
            "/v1/scopes/s1/changes?limit=-1",
            None,
            400,
            "bad_limit",
        ),
        (
            "GET",
            "/v1/scopes/s1/changes?limit=0",
            None,
            400,
            "bad_limit",
        ),
        (
            "GET",
            "/v1/scopes/s1/changes?limit=ten",
            None,
            400,
            "bad_limit",
        ),
        (
            "GET",
            "/v1/scopes/s1/changes?limit=99999999999999999999999",
            None,
            400,
            "bad_limit",
        ),
        (
            "GET",
            "/v1/scopes/s1/digest?from_collection=objects",
            None,
            400,
            "bad_key_range",
        ),
        (
            "GET",
            "/v1/scopes/s1/records?from=x",
            None,
            400,
            "bad_key_range",
        ),
        (
            "POST",
            "/v1/scopes/s1/mutations",
            Some("{not json"),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/v1/scopes/s1/mutations",
            Some(r#"{"mutations":[{"collection":"","id":"x","op":"put","data":{}}]}"#),
            400,
            "bad_mutation",
        ),
        (
            "POST",
            "/v1/scopes/s1/mutations",
            Some(r#"{"mutations":[{"collection":"c","id":"x","op":"put"}]}"#),
            400,
            "bad_mutation",
        ),
        (
            "POST",
            "/v1/scopes/s1/mutations",
            Some(r#"{"mutations":[{"collection":"c","id":"x","op":"put","data":[1]}]}"#),
            400,
            "bad_json",
        ),
        ("GET", "/v1/scopes/%01bad/changes", None, 400, "bad_scope"),
        (
            "GET",
            "/v1/scopes/unknown/changes",
            Some(S1_ONLY),
            403,
            "forbidden",
        ),
        ("GET", "/v1/nothing", None, 404, "not_found"),
    ];
    for (method, path, body, want, code) in cases {
        let token = if *code == "forbidden" {
            S1_ONLY
        } else {
            READER
        };
        let (status, answer) = h.raw(method, path, Some(token), *body);
        assert_eq!(status, *want, "{method} {path}: {answer}");
        assert_eq!(
            answer["code"].as_str(),
            Some(*code),
            "{method} {path}: {answer}"
        );
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }

    // Oversized body: 413.
    let big = format!(
        r#"{{"mutations":[{{"collection":"c","id":"x","op":"put","data":{{"s":"{}"}}}}]}}"#,
        "x".repeat(100 * 1024)
    );
    let (status, answer) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&big));
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("body_too_large")),
        "{answer}"
    );

    // A huge but numeric limit is clamped to the maximum page.
    let (status, page) = h.raw(
        "GET",
        "/v1/scopes/s1/changes?limit=1000000",
        Some(READER),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(page["changes"].as_array().unwrap().len(), 50);
    assert_eq!(page["has_more"], json!(true));

    let after = h.status("s1");
    assert_eq!(after, before, "bad requests changed nothing");
}

fn etag_and_gzip(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..500);
    let url = format!("{}/v1/scopes/s1/status", h.url());
    let resp = ureq::get(&url)
        .set("authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap();
    let etag = resp.header("etag").unwrap().to_string();
    let status: Value = resp.into_json().unwrap();
    assert_eq!(status["count"], 500);
    let resp = ureq::get(&url)
        .set("authorization", &format!("Bearer {READER}"))
        .set("if-none-match", &etag)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 304);
    h.upsert("s1", &[("objects", "new", json!({}))]);
    let resp = ureq::get(&url)
        .set("authorization", &format!("Bearer {READER}"))
        .set("if-none-match", &etag)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200, "changed scope, new ETag");
    assert_ne!(resp.header("etag").unwrap(), etag);

    // gzip when asked: read the raw stream through a plain TCP socket so nothing decompresses.
    use std::io::Write;
    let mut sock = std::net::TcpStream::connect(h.url().trim_start_matches("http://")).unwrap();
    write!(
        sock,
        "GET /v1/scopes/s1/changes?limit=500 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READER}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(400)]).to_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
}

/// Browser pages of a configured origin (a web app, a VS Code webview) may call the API; other
/// origins get no CORS headers, and without configured origins none are sent at all.
fn cors(backend: Backend) {
    let h = Harness::start_with(backend, |c| {
        c.cors_origins = vec!["https://app.example".into(), "vscode-webview://abc".into()];
    });
    let url = format!("{}/v1/scopes/s1/changes", h.url());
    let preflight = ureq::request("OPTIONS", &url)
        .set("origin", "vscode-webview://abc")
        .set("access-control-request-method", "GET")
        .set("access-control-request-headers", "authorization")
        .call()
        .unwrap();
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("vscode-webview://abc")
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let get = ureq::get(&url)
        .set("origin", "https://app.example")
        .set("authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap();
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let foreign = ureq::get(&url)
        .set("origin", "https://evil.example")
        .set("authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap();
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    let plain = Harness::start(backend);
    let resp = ureq::get(&format!("{}/v1/scopes/s1/changes", plain.url()))
        .set("origin", "https://app.example")
        .set("authorization", &format!("Bearer {READER}"))
        .call()
        .unwrap();
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

/// A documented plain-SQL `UPDATE` without `hash` leaves the row pending (hash NULL). A push
/// on the version before it is rejected, and the rejection's `current` must carry the hash of
/// the live record, filled in on the push path itself: no other request comes first here.
fn a_rejected_push_carries_the_hash_of_a_sql_update(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    let v1 = page["changes"][0]["version"].as_u64().unwrap();
    h.sql(
        "UPDATE records SET data = '{\"n\": 2, \"by\": \"sql\"}'
           WHERE scope = 's1' AND collection = 'objects' AND id = 'a';",
    );
    let push = json!({"mutations": [
        {"collection": "objects", "id": "a", "op": "put", "data": {"n": 3}, "base_version": v1},
        {"collection": "objects", "id": "a", "op": "put", "data": {"n": 4}, "base_version": null},
    ]})
    .to_string();
    let (status, body) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&push));
    assert_eq!(status, 200, "{body}");
    let expected = json!({"n": 2, "by": "sql"});
    let hash = tether_engine::digest::record_hash(expected.as_object().unwrap()).to_string();
    for result in body["results"].as_array().unwrap() {
        assert_eq!(result["status"], "rejected", "{body}");
        let current = &result["current"];
        assert_eq!(current["data"], expected, "{body}");
        assert_eq!(current["hash"].as_str(), Some(hash.as_str()), "{body}");
        assert!(current["version"].as_u64().unwrap() > v1, "{body}");
    }
    // The filled-in row is counted and served like any other.
    let status = h.status("s1");
    assert_eq!(status.count, 1);
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    assert_eq!(
        page["changes"][0]["hash"].as_str(),
        Some(hash.as_str()),
        "{page}"
    );
    assert_eq!(page["snapshot"]["digest"], json!(status.digest), "{page}");
}

fn the_quarantine_endpoint_is_admin_only(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let path = "/v1/admin/scopes/s1/quarantine";
    let (status, body) = h.raw("GET", path, Some(common::ADMIN), None);
    assert_eq!((status, &body), (200, &json!({"quarantine": []})));
    assert_eq!(h.raw("GET", path, Some(READER), None).0, 403);
    assert_eq!(h.raw("GET", path, None, None).0, 401);
}

/// Issue 8 item 6: rows written by plain SQL that the server cannot read back (a number beyond
/// f64, nesting deeper than its JSON parser allows; with or without a supplied hash; a new row
/// or a good row rewritten) no longer make the scope answer 500. They are quarantined: not
/// served, not counted (count and digest stay those of what is served), listed by the admin
/// endpoint, and carried as tombstones by incremental feeds. New data lifts the quarantine.
fn rows_the_server_cannot_read_are_quarantined(backend: Backend) {
    use tether_engine::digest::{leaf, record_hash, Snapshot};
    let h = Harness::start(backend);
    h.upsert(
        "s1",
        &[
            ("objects", "a", json!({"n": 1})),
            ("objects", "b", json!({"n": 2})),
        ],
    );
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    let checkpoint = page["checkpoint"].as_str().unwrap().to_string();
    let b_version = page["changes"][1]["version"].as_u64().unwrap();
    let deep = format!("{{\"d\": {}{}}}", "[".repeat(300), "]".repeat(300));
    h.sql(&format!(
        "INSERT INTO records (scope, collection, id, data)
           VALUES ('s1', 'objects', 'huge', '{{\"x\": 1e400}}');
         INSERT INTO records (scope, collection, id, data, hash)
           VALUES ('s1', 'objects', 'hashed', '{{\"x\": 1e400}}', '{}');
         INSERT INTO records (scope, collection, id, data) VALUES ('s1', 'objects', 'deep', '{deep}');
         UPDATE records SET data = '{{\"x\": -1e400}}'
           WHERE scope = 's1' AND collection = 'objects' AND id = 'b';",
        "a".repeat(64)
    ));

    // Only `a` is served and counted, by every read endpoint.
    let a = json!({"n": 1});
    let mut only_a = Snapshot::default();
    only_a.insert(&leaf("objects", "a", &record_hash(a.as_object().unwrap())));
    let (status, body) = h.raw("GET", "/v1/scopes/s1/status", Some(READER), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["digest"], json!(only_a.digest), "{body}");
    let (status, body) = h.raw("GET", "/v1/scopes/s1/digest", Some(READER), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["count"].clone(), body["digest"].clone()),
        (json!(1), json!(only_a.digest))
    );
    let (status, body) = h.raw(
        "GET",
        "/v1/scopes/s1/digest?from_collection=objects&from_id=a&to_collection=objects&to_id=z",
        Some(READER),
        None,
    );
    assert_eq!((status, body["count"].clone()), (200, json!(1)), "{body}");
    let (status, body) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    assert_eq!(status, 200, "{body}");
    let ids: Vec<_> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a")], "{body}");
    let (status, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    assert_eq!(status, 200, "{page}");
    let ids: Vec<_> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a")], "{page}");
    assert_eq!(page["snapshot"]["digest"], json!(only_a.digest), "{page}");
    // Incremental: the rewritten `b` (and the new rows) arrive as tombstones, without data.
    let (status, page) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/changes?checkpoint={checkpoint}"),
        Some(READER),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let changes = page["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .all(|c| c["deleted"] == true && c["data"].is_null()),
        "{page}"
    );
    assert!(changes.iter().any(|c| c["id"] == "b"), "{page}");
    assert_eq!(page["snapshot"]["count"], 1, "{page}");

    // The admin endpoint lists them, with a reason.
    let (status, body) = h.raw(
        "GET",
        "/v1/admin/scopes/s1/quarantine",
        Some(common::ADMIN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let rows = body["quarantine"].as_array().unwrap();
    let ids: Vec<_> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b", "deep", "hashed", "huge"], "{body}");
    for r in rows {
        assert_eq!(r["collection"], "objects", "{body}");
        assert!(r["version"].as_u64().unwrap() > b_version, "{body}");
        assert!(!r["reason"].as_str().unwrap().is_empty(), "{body}");
    }

    // A push on the old version of `b` is rejected: to clients it is gone.
    let push = json!({"mutations": [
        {"collection": "objects", "id": "b", "op": "put", "data": {"n": 3}, "base_version": b_version},
        {"collection": "objects", "id": "huge", "op": "put", "data": {"n": 4}, "base_version": null},
    ]})
    .to_string();
    let (status, body) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&push));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "rejected", "{body}");
    assert_eq!(body["results"][0]["current"]["deleted"], true, "{body}");
    // A create over a quarantined row replaces it, as new SQL data does.
    assert_eq!(body["results"][1]["status"], "accepted", "{body}");
    h.sql("UPDATE records SET data = '{\"fixed\": true}' WHERE scope = 's1' AND id = 'deep';");
    let (_, body) = h.raw(
        "GET",
        "/v1/admin/scopes/s1/quarantine",
        Some(common::ADMIN),
        None,
    );
    let ids: Vec<_> = body["quarantine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [json!("b"), json!("hashed")], "{body}");
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    let ids: Vec<_> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids.len(), 3, "{page}");
    assert_eq!(page["snapshot"]["count"], 3, "{page}");
    assert_eq!(h.status("s1").count, 3);
}
