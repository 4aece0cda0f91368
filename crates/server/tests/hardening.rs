//! Issue 18's server items: a read-only admin grant writes nothing, a push that writes nothing
//! wakes no live pull, an initial download sends no old tombstones. Raw HTTP, both storages.

mod common;

use std::time::Duration;

use common::{Backend, Harness, READER};
use serde_json::{json, Value};

both!(
    a_read_only_admin_grant_cannot_write,
    a_push_that_writes_nothing_wakes_no_waiter,
    an_initial_download_sends_no_old_tombstones,
);

/// `admin: true, read_only: true`: the admin API's reads, none of its writes.
fn a_read_only_admin_grant_cannot_write(backend: Backend) {
    let h = Harness::start_with(backend, |config| {
        config.tokens = config.tokens.clone().grant("ro-admin", &["*"], true);
        config.tokens.0.get_mut("ro-admin").unwrap().read_only = true;
    });
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let before = h.status("s1");
    let write = json!({"upserts": [{"collection": "objects", "id": "b", "data": {}}],
        "deletes": [{"collection": "objects", "id": "a"}]})
    .to_string();
    let (status, body) = h.raw(
        "POST",
        "/v1/admin/scopes/s1/records",
        Some("ro-admin"),
        Some(&write),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
    for path in ["purge", "recheck"] {
        let (status, body) = h.raw(
            "POST",
            &format!("/v1/admin/scopes/s1/{path}"),
            Some("ro-admin"),
            Some("{}"),
        );
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = h.raw(
        "GET",
        "/v1/admin/scopes/s1/quarantine",
        Some("ro-admin"),
        None,
    );
    assert_eq!(status, 200, "reading the quarantine is not a write: {body}");
    let push = json!({"mutations": [
        {"collection": "objects", "id": "c", "op": "put", "data": {}, "base_version": null}
    ]})
    .to_string();
    let (status, _) = h.raw(
        "POST",
        "/v1/scopes/s1/mutations",
        Some("ro-admin"),
        Some(&push),
    );
    assert_eq!(status, 403);
    assert_eq!(h.status("s1"), before, "nothing was written");
}

/// A push whose every mutation is rejected, or a repeat of one already applied, commits
/// nothing: the live pulls of the scope sleep on (issue 18, item 8).
fn a_push_that_writes_nothing_wakes_no_waiter(backend: Backend) {
    let h = Harness::start(backend);
    let push = |m: Value| {
        let body = json!({ "mutations": [m] }).to_string();
        let (status, body) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&body));
        assert_eq!(status, 200, "{body}");
        body["results"][0]["status"].as_str().unwrap().to_string()
    };
    let first = json!({"collection": "objects", "id": "a", "op": "put", "data": {"n": 1},
        "base_version": null, "mutation_id": "c1:1"});
    assert_eq!(push(first.clone()), "accepted");
    // On PostgreSQL that write also comes back through LISTEN, a moment later: let it pass
    // before anyone waits, or it would (rightly) wake the waiter.
    std::thread::sleep(Duration::from_millis(500));
    let cp = h.head();
    let waiter = long_poll(&h, &cp, 3);
    for _ in 0..5 {
        let stale = json!({"collection": "objects", "id": "a", "op": "put", "data": {"n": 9},
            "base_version": null});
        assert_eq!(push(stale), "rejected");
        assert_eq!(
            push(first.clone()),
            "accepted",
            "a repeat is answered as before"
        );
    }
    assert_eq!(
        h.metric("tether_live_wakeups_total"),
        0.0,
        "nothing was written: the waiter was not woken"
    );
    let page = waiter.join().unwrap();
    assert_eq!(page["changes"], json!([]), "{page}");
    assert_eq!(page["checkpoint"].as_str(), Some(cp.as_str()));
    // A push that writes does wake it.
    let cp = h.head();
    let waiter = long_poll(&h, &cp, 10);
    let new =
        json!({"collection": "objects", "id": "b", "op": "put", "data": {}, "base_version": null});
    assert_eq!(push(new), "accepted");
    assert_eq!(waiter.join().unwrap()["changes"][0]["id"], "b");
    assert!(h.metric("tether_live_wakeups_total") >= 1.0);
}

/// An initial download (no checkpoint) is live records only, on its later pages too: the
/// tombstones of records deleted before it started concern nothing the client received. A
/// deletion after it started still arrives (issue 18, item 14).
fn an_initial_download_sends_no_old_tombstones(backend: Backend) {
    let h = Harness::start(backend);
    let records: Vec<_> = (0..10)
        .map(|i| ("objects", format!("r{i}"), json!({ "i": i })))
        .collect();
    let refs: Vec<_> = records
        .iter()
        .map(|(c, i, d)| (*c, i.as_str(), d.clone()))
        .collect();
    h.upsert("s1", &refs);
    h.delete(
        "s1",
        &[
            ("objects", "r1"),
            ("objects", "r3"),
            ("objects", "r5"),
            ("objects", "r7"),
        ],
    );
    let pull = |checkpoint: Option<&str>| {
        let query = checkpoint.map_or(String::new(), |c| format!("&checkpoint={c}"));
        let (status, page) = h.raw(
            "GET",
            &format!("/v1/scopes/s1/changes?limit=2{query}"),
            Some(READER),
            None,
        );
        assert_eq!(status, 200, "{page}");
        page
    };
    let mut page = pull(None);
    // Deleted after the download started: its tombstone is news to the client.
    h.delete("s1", &[("objects", "r8")]);
    let mut live = Vec::new();
    let mut tombstones = Vec::new();
    loop {
        for c in page["changes"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap().to_string();
            if c["deleted"] == json!(true) {
                tombstones.push(id);
            } else {
                live.push(id);
            }
        }
        if page["has_more"] != json!(true) {
            break;
        }
        page = pull(Some(page["checkpoint"].as_str().unwrap()));
    }
    live.sort();
    assert_eq!(tombstones, ["r8"], "only the deletion after the start");
    assert_eq!(live, ["r0", "r2", "r4", "r6", "r9"]);
}

/// A live pull from `cp` waiting up to `wait` seconds, on a thread; returns once the server
/// counts it as a waiter.
fn long_poll(h: &Harness, cp: &str, wait: u32) -> std::thread::JoinHandle<Value> {
    let url = format!(
        "{}/v1/scopes/s1/changes?checkpoint={cp}&wait={wait}",
        h.url()
    );
    let waiter = std::thread::spawn(move || {
        ureq::get(&url)
            .set("authorization", &format!("Bearer {READER}"))
            .call()
            .unwrap()
            .into_json::<Value>()
            .unwrap()
    });
    while h.metric("tether_live_waiters") < 1.0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter
}
