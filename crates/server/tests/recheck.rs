//! The admin re-check of stored rows: rows that plain SQL wrote with a hash the server trusted
//! (as servers before the quarantine did), some unreadable, some with a wrong hash.

mod common;

use common::{Backend, Harness, ADMIN, READER};
use serde_json::json;
use tether_engine::digest::record_hash;

both!(recheck_is_for_admins_on_postgres_storage);

postgres_only!(trusted_rows_written_by_sql_are_rechecked);

fn recheck_is_for_admins_on_postgres_storage(backend: Backend) {
    let h = Harness::start(backend);
    let (status, body) = h.raw(
        "POST",
        "/v1/admin/scopes/s1/recheck",
        Some(READER),
        Some(""),
    );
    assert_eq!(status, 403, "admin only: {body}");
    let (status, body) = h.raw("POST", "/v1/admin/scopes/s1/recheck", Some(ADMIN), Some(""));
    match backend {
        Backend::Sqlite => assert_eq!(
            (status, body["code"].as_str()),
            (501, Some("not_supported")),
            "{body}"
        ),
        Backend::Postgres => {
            assert_eq!(body, json!({"checked": 0, "rehashed": 0, "quarantined": 0}))
        }
    }
}

fn trusted_rows_written_by_sql_are_rechecked(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "fine", json!({"n": 1}))]);
    let claimed = record_hash(json!({"n": 4}).as_object().unwrap()).to_string();
    // What a server before the quarantine let through: the hash a SQL writer supplied.
    h.sql(&format!(
        "BEGIN;
         SET LOCAL tether.writer = 'server';
         INSERT INTO records (scope, collection, id, data, hash) VALUES
           ('s1', 'objects', 'huge', '{{\"n\": 1e400}}', '{claimed}'),
           ('s1', 'objects', 'wrong', '{{\"n\": 3}}', '{claimed}');
         COMMIT;"
    ));
    let (status, _) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    assert_eq!(
        status, 500,
        "the unreadable row breaks the scope until re-checked"
    );

    let (status, found) = h.raw("POST", "/v1/admin/scopes/s1/recheck", Some(ADMIN), Some(""));
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found,
        json!({"checked": 3, "rehashed": 1, "quarantined": 1})
    );
    let (status, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    assert_eq!(status, 200, "{page}");
    let wrong = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "wrong")
        .unwrap();
    let actual = record_hash(json!({"n": 3}).as_object().unwrap()).to_string();
    assert_eq!(wrong["hash"].as_str(), Some(actual.as_str()), "{page}");
    let (_, q) = h.raw("GET", "/v1/admin/scopes/s1/quarantine", Some(ADMIN), None);
    assert_eq!(q["quarantine"][0]["id"], "huge", "{q}");
    assert_eq!(h.status("s1").count, 2);
    // A second run finds nothing more.
    let (_, again) = h.raw("POST", "/v1/admin/scopes/s1/recheck", Some(ADMIN), Some(""));
    assert_eq!(
        again,
        json!({"checked": 2, "rehashed": 0, "quarantined": 0})
    );
}
