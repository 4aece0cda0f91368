//! Live pulls (`wait=S`): a pull with nothing new waits for a commit of its scope, through this
//! instance, another instance on the same PostgreSQL, or plain SQL; an idle wait ends with the
//! empty page at the same checkpoint; waiting costs no thread. Raw HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Harness, READER};
use serde_json::{json, Value};

both!(
    a_waiting_pull_answers_when_a_change_commits,
    an_idle_wait_ends_with_the_same_checkpoint,
    a_bad_wait_is_refused,
    shutdown_does_not_wait_for_waiting_pulls,
);

postgres_only!(another_instance_or_plain_sql_wakes_the_wait);

/// Pulls with `wait` from `url` on a thread; returns the page and how long it took.
fn wait_on(url: &str, checkpoint: &str, wait: u64) -> std::thread::JoinHandle<(Value, Duration)> {
    let target = format!("{url}/v1/scopes/s1/changes?checkpoint={checkpoint}&wait={wait}");
    std::thread::spawn(move || {
        let started = Instant::now();
        let page: Value = ureq::get(&target)
            .set("authorization", &format!("Bearer {READER}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        (page, started.elapsed())
    })
}

fn a_waiting_pull_answers_when_a_change_commits(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let cp = h.head();
    let waiting = wait_on(&h.url(), &cp, 30);
    std::thread::sleep(Duration::from_millis(300));
    h.upsert("s1", &[("objects", "b", json!({"n": 2}))]);
    let (page, took) = waiting.join().unwrap();
    assert_eq!(page["changes"][0]["id"], "b", "{page}");
    assert!(
        took < Duration::from_secs(30),
        "woken, not timed out: {took:?}"
    );
    // A push wakes it as well; a write to another scope does not.
    let cp = page["checkpoint"].as_str().unwrap().to_string();
    let waiting = wait_on(&h.url(), &cp, 30);
    std::thread::sleep(Duration::from_millis(200));
    h.upsert("s2", &[("objects", "elsewhere", json!({}))]);
    let push = json!({"mutations": [
        {"collection": "objects", "id": "c", "op": "put", "data": {"n": 3}, "base_version": null}
    ]})
    .to_string();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&push))
            .0,
        200
    );
    let (page, _) = waiting.join().unwrap();
    let ids: Vec<&Value> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&json!("c")], "{page}");
}

fn an_idle_wait_ends_with_the_same_checkpoint(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let cp = h.head();
    let (page, took) = wait_on(&h.url(), &cp, 1).join().unwrap();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(page["changes"], json!([]));
    assert_eq!(page["checkpoint"], json!(cp));
    assert_eq!(page["has_more"], json!(false));
    assert!(page["snapshot"]["count"].as_u64() == Some(1), "{page}");
    // wait=0 is an ordinary pull.
    let (page, _) = wait_on(&h.url(), &cp, 0).join().unwrap();
    assert_eq!(page["changes"], json!([]));
}

fn a_bad_wait_is_refused(backend: Backend) {
    let h = Harness::start(backend);
    for bad in ["61", "-1", "x", "1.5"] {
        let (status, body) = h.raw(
            "GET",
            &format!("/v1/scopes/s1/changes?wait={bad}"),
            Some(READER),
            None,
        );
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_wait")),
            "{bad}: {body}"
        );
    }
}

fn shutdown_does_not_wait_for_waiting_pulls(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let cp = h.head();
    let waiting = wait_on(&h.url(), &cp, 60);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    h.stop();
    let (page, _) = waiting.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(page["changes"], json!([]));
}

fn another_instance_or_plain_sql_wakes_the_wait(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let b = h.another_instance();
    let cp = h.head();
    // Waiting on instance A; the push goes through instance B.
    let waiting = wait_on(&h.url(), &cp, 30);
    std::thread::sleep(Duration::from_millis(300));
    let push = json!({"mutations": [
        {"collection": "objects", "id": "via-b", "op": "put", "data": {}, "base_version": null}
    ]})
    .to_string();
    let answer = ureq::post(&format!("{}/v1/scopes/s1/mutations", b.url()))
        .set("authorization", &format!("Bearer {READER}"))
        .set("content-type", "application/json")
        .send_string(&push)
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (page, took) = waiting.join().unwrap();
    assert_eq!(page["changes"][0]["id"], "via-b", "{page}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Plain SQL wakes it too (the row's hash is filled in when the pull reads it).
    let cp = page["checkpoint"].as_str().unwrap().to_string();
    let waiting = wait_on(&b.url(), &cp, 30);
    std::thread::sleep(Duration::from_millis(300));
    h.sql(
        "INSERT INTO records (scope, collection, id, data) VALUES ('s1', 'objects', 'sql', '{}');",
    );
    let (page, took) = waiting.join().unwrap();
    assert_eq!(page["changes"][0]["id"], "sql", "{page}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    h.rt.block_on(b.shutdown());
}
