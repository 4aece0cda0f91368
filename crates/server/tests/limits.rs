//! Issue 18 (items 4, 5, 6, 11, 12): one set of record limits (`tether_engine::limits`),
//! enforced the same on the push path, the admin API, plain SQL and the pages served, on both
//! storages.

mod common;

use common::{Backend, Harness, ADMIN, READER};
use serde_json::{json, Value};
use tether_engine::limits::{MAX_DEPTH, MAX_KEY_BYTES, MAX_RECORD_BYTES, PAGE_BYTES};

both!(
    a_push_refuses_each_record_over_a_limit_alone,
    the_admin_api_refuses_a_batch_with_a_record_over_a_limit,
    a_mutation_id_holding_u0000_is_a_bad_request,
    pages_are_cut_by_bytes,
);

postgres_only!(
    rows_over_a_limit_written_by_plain_sql_are_quarantined,
    a_database_error_keeps_its_message_and_code,
);

/// Data nested `levels` deep (the object is level 1).
fn nested(levels: usize) -> Value {
    let inner = levels - 1;
    serde_json::from_str(&format!(
        r#"{{"a":{}1{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    ))
    .unwrap()
}

fn put(id: &str, data: Value) -> Value {
    json!({"collection": "objects", "id": id, "op": "put", "data": data, "base_version": null})
}

/// Each record over a limit gets `invalid` with its reason, and the edit beside it lands: a
/// key of 3 KB used to fail the whole push with 500 on PostgreSQL (a btree entry over 2,704
/// bytes), data 125 levels deep was refused only by PostgreSQL's parser, U+0000 by jsonb.
fn a_push_refuses_each_record_over_a_limit_alone(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "deep", json!({"n": 0}))]);
    let deep_version = h.status("s1").version;
    let long = "k".repeat(3000);
    let mut deep = put("deep", nested(MAX_DEPTH + 1));
    deep["base_version"] = json!(deep_version);
    let push = json!({"mutations": [
        put("big", json!({"t": "x".repeat(MAX_RECORD_BYTES)})),
        put(&long, json!({"n": 1})),
        deep,
        put("nested", nested(120)),
        put("nul", json!({"t": "a\u{0}b"})),
        {"collection": "objects", "id": long, "op": "delete", "data": null, "base_version": 1},
        put("fine", json!({"n": 2})),
    ]});
    let (status, body) = h.raw(
        "POST",
        "/v1/scopes/s1/mutations",
        Some(READER),
        Some(&push.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let reasons: Vec<_> = results.iter().map(|r| r["reason"].clone()).collect();
    assert_eq!(
        reasons,
        [
            json!("too_large"),
            json!("key_too_long"),
            json!("too_deep"),
            json!("too_deep"),
            json!("bad_text"),
            json!("key_too_long"),
            Value::Null
        ],
        "{body}"
    );
    for r in &results[..6] {
        assert_eq!(r["status"], "invalid", "{body}");
        assert!(!r["message"].as_str().unwrap().is_empty(), "{body}");
    }
    // The current record comes with a refusal, so the replica can put it back.
    assert_eq!(results[2]["current"]["data"], json!({"n": 0}), "{body}");
    assert!(results[0]["current"].is_null(), "{body}");
    assert_eq!(results[6]["status"], "accepted", "{body}");
    let status = h.status("s1");
    assert_eq!(status.count, 2, "deep (unchanged) and fine");
}

/// The admin API refuses a batch holding a record over a limit with a 400 naming it, and
/// writes nothing of it (U+0000 used to be stored on SQLite and a 500 on PostgreSQL).
fn the_admin_api_refuses_a_batch_with_a_record_over_a_limit(backend: Backend) {
    let h = Harness::start(backend);
    let fine = json!({"collection": "objects", "id": "fine", "data": {"n": 1}});
    let cases = [
        (
            json!({"upserts": [fine, {"collection": "objects", "id": "x", "data": {"t": "a\u{0}"}}]}),
            "bad_text",
            "upserts[1]",
        ),
        (
            json!({"upserts": [fine, {"collection": "objects", "id": "x",
                "data": {"t": "x".repeat(MAX_RECORD_BYTES)}}]}),
            "too_large",
            "upserts[1]",
        ),
        (
            json!({"upserts": [{"collection": "objects", "id": "x", "data": nested(MAX_DEPTH + 1)}, fine]}),
            "too_deep",
            "upserts[0]",
        ),
        (
            json!({"upserts": [fine], "deletes": [{"collection": "objects",
                "id": "k".repeat(MAX_KEY_BYTES)}]}),
            "key_too_long",
            "deletes[0]",
        ),
    ];
    for (body, code, item) in cases {
        let (status, answer) = h.raw(
            "POST",
            "/v1/admin/scopes/s1/records",
            Some(ADMIN),
            Some(&body.to_string()),
        );
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().starts_with(item),
            "{answer}"
        );
    }
    assert_eq!(h.status("s1").version, 0, "nothing was written");
    // At the limits: accepted.
    let at = json!({"upserts": [
        {"collection": "objects", "id": "k".repeat(MAX_KEY_BYTES - "objects".len()), "data": {}},
        {"collection": "objects", "id": "deep", "data": nested(MAX_DEPTH)},
    ]});
    h.admin("s1", at);
    assert_eq!(h.status("s1").count, 2);
}

/// A mutation id whose client part holds U+0000 is a 400 on both storages (PostgreSQL used to
/// answer 500: its text cannot hold U+0000).
fn a_mutation_id_holding_u0000_is_a_bad_request(backend: Backend) {
    let h = Harness::start(backend);
    let mut m = put("a", json!({"n": 1}));
    m["mutation_id"] = json!("cli\u{0}ent:1");
    let push = json!({ "mutations": [m] }).to_string();
    let (status, body) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&push));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_mutation")),
        "{body}"
    );
    assert_eq!(h.status("s1").version, 0);
}

/// Pages are cut at `PAGE_BYTES` (at least one change), not only by count: 20 records of
/// 1 MiB used to be one page of 20 MiB at the default size. Every page fits the budget plus
/// one record, and following the checkpoints yields every record once.
fn pages_are_cut_by_bytes(backend: Backend) {
    let h = Harness::start(backend);
    let filler = "x".repeat(1 << 20);
    for batch in 0..5 {
        let records: Vec<_> = (0..4)
            .map(|i| {
                let id = format!("r{:02}", batch * 4 + i);
                ("objects", id, json!({ "filler": filler }))
            })
            .collect();
        let records: Vec<_> = records
            .iter()
            .map(|(c, i, d)| (*c, i.as_str(), d.clone()))
            .collect();
        h.upsert("s1", &records);
    }
    let mut checkpoint = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let path = if checkpoint.is_empty() {
            "/v1/scopes/s1/changes?limit=1000".to_string()
        } else {
            format!("/v1/scopes/s1/changes?limit=1000&checkpoint={checkpoint}")
        };
        let (status, page) = h.raw("GET", &path, Some(READER), None);
        assert_eq!(status, 200);
        pages += 1;
        let changes = page["changes"].as_array().unwrap();
        let bytes = page.to_string().len();
        assert!(
            bytes <= PAGE_BYTES + MAX_RECORD_BYTES,
            "page {pages}: {bytes} bytes"
        );
        if page["has_more"] == true {
            assert!(!changes.is_empty());
            assert!(bytes >= PAGE_BYTES, "page {pages} cut early: {bytes} bytes");
        }
        seen.extend(
            changes
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        checkpoint = page["checkpoint"].as_str().unwrap().to_string();
        if page["has_more"] == false {
            assert_eq!(page["snapshot"]["count"], 20);
            break;
        }
        assert!(pages < 20, "no progress");
    }
    seen.sort();
    let want: Vec<_> = (0..20).map(|i| format!("r{i:02}")).collect();
    assert_eq!(seen, want);
    assert!(pages >= 5, "{pages} pages");
}

/// Plain SQL is held to the same limits: a row over one is quarantined (neither served nor
/// counted, listed with its reason), as rows the server cannot read are.
fn rows_over_a_limit_written_by_plain_sql_are_quarantined(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let deep = nested(MAX_DEPTH + 1).to_string();
    h.sql(&format!(
        "INSERT INTO records (scope, collection, id, data) VALUES
           ('s1', 'objects', '{}', '{{}}'),
           ('s1', 'objects', 'big', jsonb_build_object('t', repeat('x', {}))),
           ('s1', 'objects', 'deep', '{deep}');",
        "k".repeat(MAX_KEY_BYTES),
        MAX_RECORD_BYTES
    ));
    let (status, body) = h.raw("GET", "/v1/admin/scopes/s1/quarantine", Some(ADMIN), None);
    assert_eq!(status, 200, "{body}");
    let reasons: Vec<(String, String)> = body["quarantine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap();
            (
                id[..id.len().min(4)].to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{body}");
    let reason = |id: &str| &reasons.iter().find(|r| r.0 == id).unwrap().1;
    assert!(reason("big").contains("at most"), "{reasons:?}");
    assert!(reason("deep").contains("nested at most"), "{reasons:?}");
    assert!(reason("kkkk").contains("at most"), "{reasons:?}");
    assert_eq!(h.status("s1").count, 1);
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    assert_eq!(page["changes"].as_array().unwrap().len(), 1, "{page}");
}

/// A failure PostgreSQL reports keeps its message and SQLSTATE in the answer (and the log),
/// not only `db error`.
fn a_database_error_keeps_its_message_and_code(backend: Backend) {
    let h = Harness::start(backend);
    h.sql("ALTER TABLE records ADD CONSTRAINT no_x CHECK (id <> 'x');");
    let (status, body) = h.raw(
        "POST",
        "/v1/admin/scopes/s1/records",
        Some(ADMIN),
        Some(&json!({"upserts": [{"collection": "c", "id": "x", "data": {}}]}).to_string()),
    );
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("no_x"), "{message}");
    assert!(message.contains("SQLSTATE 23514"), "{message}");
}

/// Issue 18 item 4: the server's peak memory with 8 slow readers of the largest pages (readers
/// that ask for a page at the default size and read none of it). Measures; run it alone:
/// `cargo test -p tether-server --test limits slow_readers -- --ignored --nocapture`
/// (`TETHER_SLOW_RECORDS`, `TETHER_SLOW_RECORD_BYTES` change the records; the default is 40
/// records of the largest size). Linux only: it reads the peak from /proc.
#[test]
#[ignore = "a measurement: run alone, with --ignored --nocapture"]
fn slow_readers_of_the_largest_pages() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && common::pg_url().is_none() {
            continue;
        }
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let (count, size) = (
            env("TETHER_SLOW_RECORDS", 40),
            env("TETHER_SLOW_RECORD_BYTES", MAX_RECORD_BYTES - 64),
        );
        let h = Harness::start(backend);
        let filler = "x".repeat(size - 16);
        // Admin writes under the server's 8 MiB body limit.
        let per_write = ((6 << 20) / size).max(1);
        for first in (0..count).step_by(per_write) {
            let ids: Vec<String> = (first..count.min(first + per_write))
                .map(|i| format!("r{i:03}"))
                .collect();
            let records: Vec<_> = ids
                .iter()
                .map(|id| ("objects", id.as_str(), json!({ "f": filler })))
                .collect();
            h.upsert("s1", &records);
        }
        drop(filler);
        let kib = |field: &str| -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with(field)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        // Resets the peak (VmHWM) to the current resident size.
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = kib("VmRSS:");
        let addr = h.url().trim_start_matches("http://").to_string();
        let readers: Vec<std::net::TcpStream> = (0..8)
            .map(|_| {
                use std::io::Write;
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                write!(
                    s,
                    "GET /v1/scopes/s1/changes HTTP/1.1\r\nHost: x\r\n\
                     Authorization: Bearer {READER}\r\n\r\n"
                )
                .unwrap();
                s
            })
            .collect();
        // Each reader reads the start of its answer (so its page is built), then nothing.
        for mut r in &readers {
            use std::io::Read;
            let mut start = [0u8; 1024];
            let n = r.read(&mut start).unwrap();
            let head = String::from_utf8_lossy(&start[..n]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let (held, peak) = (kib("VmRSS:"), kib("VmHWM:"));
        drop(readers);
        eprintln!(
            "{backend:?}: {count} records of {size} bytes, 8 slow readers: resident {} MiB \
             before, {} MiB held, peak {} MiB",
            before / 1024,
            held / 1024,
            peak / 1024
        );
    }
}
