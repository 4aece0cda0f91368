//! Versions advance by exactly one per write, whatever the path: admin upserts, pushes, and
//! (PostgreSQL) a backend's plain SQL `INSERT`, `UPDATE` and `INSERT … ON CONFLICT DO UPDATE`,
//! which fires the BEFORE INSERT and then the BEFORE UPDATE trigger. Pages' `remaining`
//! counts from those versions.

mod common;

use common::{Backend, Harness, READER};
use serde_json::{json, Value};

both!(repeated_upserts_advance_the_version_by_one);

postgres_only!(sql_upserts_advance_the_version_by_one);

/// Every change of the scope after `checkpoint` (from the start: `None`), by key.
fn changes(h: &Harness, checkpoint: Option<&str>, limit: u32) -> Value {
    let path = match checkpoint {
        Some(c) => format!("/v1/scopes/s1/changes?checkpoint={c}&limit={limit}"),
        None => format!("/v1/scopes/s1/changes?limit={limit}"),
    };
    let (status, page) = h.raw("GET", &path, Some(READER), None);
    assert_eq!(status, 200, "{page}");
    page
}

fn version_of(page: &Value, id: &str) -> u64 {
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {page}"))["version"]
        .as_u64()
        .unwrap()
}

fn repeated_upserts_advance_the_version_by_one(backend: Backend) {
    let h = Harness::start(backend);
    for n in 1..=3 {
        h.upsert("s1", &[("objects", "a", json!({"n": n}))]);
        let page = changes(&h, None, 100);
        assert_eq!(version_of(&page, "a"), n, "upsert {n}: {page}");
    }
    h.upsert(
        "s1",
        &[
            ("objects", "b", json!({"n": 1})),
            ("objects", "c", json!({"n": 1})),
        ],
    );
    let page = changes(&h, None, 100);
    let checkpoint = page["checkpoint"].as_str().unwrap().to_string();
    assert_eq!(
        (version_of(&page, "b"), version_of(&page, "c")),
        (4, 5),
        "{page}"
    );
    assert_eq!(h.status("s1").count, 3);

    // A push of an existing record: one version more.
    let push = json!({"mutations": [
        {"collection": "objects", "id": "a", "op": "put", "data": {"n": 4}, "base_version": 3},
    ]})
    .to_string();
    let (status, body) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&push));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["version"], 6, "{body}");

    // Two more upserts of existing records; a page of one from the checkpoint leaves exactly
    // one change to go.
    h.upsert("s1", &[("objects", "b", json!({"n": 2}))]);
    h.upsert("s1", &[("objects", "c", json!({"n": 2}))]);
    let page = changes(&h, Some(&checkpoint), 1);
    assert_eq!(page["changes"][0]["id"], "a", "{page}");
    assert_eq!(version_of(&page, "a"), 6, "{page}");
    assert_eq!(page["remaining"], 2, "b and c are left: {page}");
    let page = changes(&h, Some(&checkpoint), 100);
    assert_eq!(
        (version_of(&page, "b"), version_of(&page, "c")),
        (7, 8),
        "{page}"
    );
}

/// A backend's plain SQL write is one version, and the server's filling in of its hash one
/// more (`settle`): an upsert of an existing row costs what an `UPDATE` does, and an upsert that
/// does nothing costs no version.
fn sql_upserts_advance_the_version_by_one(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let a = || version_of(&changes(&h, None, 100), "a");
    assert_eq!(a(), 1);
    h.sql("UPDATE records SET data = '{\"n\": 2}' WHERE scope = 's1' AND id = 'a';");
    let by_update = a() - 1;
    for n in 3..=4 {
        let before = a();
        h.sql(&format!(
            "INSERT INTO records (scope, collection, id, data)
               VALUES ('s1', 'objects', 'a', '{{\"n\": {n}}}')
             ON CONFLICT (scope, collection, id) DO UPDATE SET data = EXCLUDED.data;"
        ));
        assert_eq!(
            a() - before,
            by_update,
            "an upsert of an existing row is one write"
        );
    }
    // An upsert that inserts costs what an INSERT does.
    h.sql("INSERT INTO records (scope, collection, id, data) VALUES ('s1', 'objects', 'b', '{}');");
    let page = changes(&h, None, 100);
    let by_insert = version_of(&page, "b") - version_of(&page, "a");
    h.sql(
        "INSERT INTO records (scope, collection, id, data) VALUES ('s1', 'objects', 'c', '{}')
           ON CONFLICT (scope, collection, id) DO UPDATE SET data = EXCLUDED.data;",
    );
    let page = changes(&h, None, 100);
    assert_eq!(version_of(&page, "c") - version_of(&page, "b"), by_insert);
    // One that does nothing takes no version: the next write is the next one.
    h.sql(
        "INSERT INTO records (scope, collection, id, data) VALUES ('s1', 'objects', 'a', '{}')
           ON CONFLICT DO NOTHING;",
    );
    h.upsert("s1", &[("objects", "d", json!({"n": 1}))]);
    let page = changes(&h, None, 100);
    assert_eq!(version_of(&page, "d"), version_of(&page, "c") + 1, "{page}");
    assert_eq!(h.status("s1").count, 4);
}
