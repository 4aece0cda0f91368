//! Mutation ids (protocol v1.1): a repeat gets its original answer, a later edit from the same
//! client applies over that client's own write when it names it (`replaces`), anyone else's
//! write in between still rejects it, a copy sharing the client id cannot replace what it never
//! saw, and the memory lasts as long as tombstones do. Raw HTTP, on both storages.

mod common;

use common::{Backend, Harness, READER};
use serde_json::{json, Value};

both!(
    identified_pushes_are_idempotent,
    a_later_edit_rests_only_on_the_clients_own_write,
    replicas_sharing_a_client_id_do_not_overwrite_each_other,
    a_copied_replica_does_not_overwrite_what_it_never_saw,
    a_bad_mutation_id_is_refused_whole,
);

/// Pushes one mutation and returns its result.
fn push(h: &Harness, id: Option<&str>, record: &str, data: Option<Value>, base: Value) -> Value {
    push_replacing(h, id, None, record, data, base)
}

/// Pushes one mutation naming the earlier one it replaces, and returns its result.
fn push_replacing(
    h: &Harness,
    id: Option<&str>,
    replaces: Option<u64>,
    record: &str,
    data: Option<Value>,
    base: Value,
) -> Value {
    let mut m = json!({
        "collection": "objects",
        "id": record,
        "op": if data.is_some() { "put" } else { "delete" },
        "data": data,
        "base_version": base,
    });
    if let Some(id) = id {
        m["mutation_id"] = json!(id);
    }
    if let Some(seq) = replaces {
        m["replaces"] = json!(seq);
    }
    let body = json!({ "mutations": [m] }).to_string();
    let (status, answer) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&body));
    assert_eq!(status, 200, "{answer}");
    answer["results"][0].clone()
}

fn version_of(h: &Harness, record: &str) -> u64 {
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == record)
        .unwrap_or_else(|| panic!("{record} in {page}"))["version"]
        .as_u64()
        .unwrap()
}

fn identified_pushes_are_idempotent(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let v1 = version_of(&h, "a");
    let first = push(&h, Some("c1:5"), "a", Some(json!({"n": 2})), json!(v1));
    assert_eq!(first["status"], "accepted", "{first}");
    let scope_version = h.status("s1").version;
    // The answer was lost; the retry gets the very same answer and writes nothing.
    let again = push(&h, Some("c1:5"), "a", Some(json!({"n": 2})), json!(v1));
    assert_eq!(again, first);
    assert_eq!(h.status("s1").version, scope_version, "nothing written");
    // Another writer since: a repeat that names itself as unanswered is still answered with
    // the original result.
    h.upsert("s1", &[("objects", "a", json!({"n": "other"}))]);
    assert_eq!(
        push_replacing(
            &h,
            Some("c1:5"),
            Some(5),
            "a",
            Some(json!({"n": 2})),
            json!(v1)
        ),
        first
    );
    // Without the mark (a copy that made the same edit): judged on its base, rejected.
    let copy = push(&h, Some("c1:5"), "a", Some(json!({"n": 2})), json!(v1));
    assert_eq!(copy["status"], "rejected", "{copy}");
    // Without an id the same push is judged on its base: rejected.
    let plain = push(&h, None, "a", Some(json!({"n": 2})), json!(v1));
    assert_eq!(plain["status"], "rejected", "{plain}");
    // The same id with other data is no repeat (a copied replica): judged on its base.
    let other = push(&h, Some("c1:5"), "a", Some(json!({"n": 3})), json!(v1));
    assert_eq!(other["status"], "rejected", "{other}");
    // A delete repeated.
    h.upsert("s1", &[("objects", "d", json!({"n": 1}))]);
    let vd = version_of(&h, "d");
    let gone = push(&h, Some("c1:9"), "d", None, json!(vd));
    assert_eq!(gone["status"], "accepted", "{gone}");
    assert_eq!(push(&h, Some("c1:9"), "d", None, json!(vd)), gone);
    assert_eq!(h.status("s1").count, 1);
}

fn a_later_edit_rests_only_on_the_clients_own_write(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert(
        "s1",
        &[
            ("objects", "a", json!({"n": 1})),
            ("objects", "b", json!({"n": 1})),
        ],
    );
    let (va, vb) = (version_of(&h, "a"), version_of(&h, "b"));
    // c1's edit of a is applied, its answer lost; c1's next edit still rests on va, and names
    // the lost one.
    assert_eq!(
        push(&h, Some("c1:1"), "a", Some(json!({"n": 2})), json!(va))["status"],
        "accepted"
    );
    let unnamed = push(&h, Some("c1:2"), "a", Some(json!({"n": 3})), json!(va));
    assert_eq!(unnamed["status"], "rejected", "without replaces: {unnamed}");
    let named = push_replacing(
        &h,
        Some("c1:1"),
        Some(0),
        "a",
        Some(json!({"n": 3})),
        json!(va),
    );
    assert_eq!(named["status"], "rejected", "an older number: {named}");
    let next = push_replacing(
        &h,
        Some("c1:2"),
        Some(1),
        "a",
        Some(json!({"n": 3})),
        json!(va),
    );
    assert_eq!(next["status"], "accepted", "{next}");
    // Another client on the same stale base loses.
    let c2 = push(&h, Some("c2:1"), "a", Some(json!({"n": 9})), json!(va));
    assert_eq!(c2["status"], "rejected", "{c2}");
    assert_eq!(c2["current"]["data"], json!({"n": 3}), "{c2}");
    // Someone wrote after c1: c1's next edit on the old base loses too.
    h.upsert("s1", &[("objects", "a", json!({"n": "theirs"}))]);
    let late = push_replacing(
        &h,
        Some("c1:3"),
        Some(2),
        "a",
        Some(json!({"n": 4})),
        json!(va),
    );
    assert_eq!(late["status"], "rejected", "{late}");
    assert_eq!(late["current"]["data"], json!({"n": "theirs"}), "{late}");
    // A re-create over c1's own delete, on the base the delete was made on.
    assert_eq!(
        push(&h, Some("c1:4"), "b", None, json!(vb))["status"],
        "accepted"
    );
    let again = push_replacing(
        &h,
        Some("c1:5"),
        Some(4),
        "b",
        Some(json!({"n": "back"})),
        json!(vb),
    );
    assert_eq!(again["status"], "accepted", "{again}");
    // The memory goes with the tombstones: after a purge a later edit is judged on its base.
    h.upsert("s1", &[("objects", "c", json!({"n": 1}))]);
    let vc = version_of(&h, "c");
    assert_eq!(
        push(&h, Some("c1:6"), "c", Some(json!({"n": 2})), json!(vc))["status"],
        "accepted"
    );
    h.purge("s1");
    let forgotten = push_replacing(
        &h,
        Some("c1:7"),
        Some(6),
        "c",
        Some(json!({"n": 3})),
        json!(vc),
    );
    assert_eq!(forgotten["status"], "rejected", "{forgotten}");
}

/// Issue 18, first case: P and Q got the same client id. P saves `settings`; Q, which never
/// saw P's edit, saves it under a later number: Q's edit is rejected, P's stays.
fn replicas_sharing_a_client_id_do_not_overwrite_each_other(backend: Backend) {
    let h = Harness::start(backend);
    let first = json!({"theme": "default"});
    let created = push(
        &h,
        Some("c:0"),
        "settings",
        Some(first.clone()),
        Value::Null,
    );
    assert_eq!(created["status"], "accepted", "{created}");
    // Q's identical first edit is a repeat: the same answer.
    assert_eq!(
        push(&h, Some("c:0"), "settings", Some(first), Value::Null),
        created
    );
    let v1 = version_of(&h, "settings");
    let p = push(
        &h,
        Some("c:1"),
        "settings",
        Some(json!({"theme": "dark"})),
        json!(v1),
    );
    assert_eq!(p["status"], "accepted", "{p}");
    let q = push(
        &h,
        Some("c:2"),
        "settings",
        Some(json!({"theme": "light"})),
        json!(v1),
    );
    assert_eq!(q["status"], "rejected", "{q}");
    assert_eq!(q["current"]["data"], json!({"theme": "dark"}), "{q}");
}

/// Issue 18, second case: B is a copy of A. C edits `r`; A edits `r` on top; B edits `r` on
/// its stale base under a later number: rejected, A's and C's edits stay.
fn a_copied_replica_does_not_overwrite_what_it_never_saw(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "r", json!({"by": "init"}))]);
    let v0 = version_of(&h, "r");
    let c = push(&h, Some("c:1"), "r", Some(json!({"by": "C"})), json!(v0));
    assert_eq!(c["status"], "accepted", "{c}");
    let vc = version_of(&h, "r");
    let a = push(&h, Some("a:4"), "r", Some(json!({"by": "A"})), json!(vc));
    assert_eq!(a["status"], "accepted", "{a}");
    let b = push(&h, Some("a:5"), "r", Some(json!({"by": "B"})), json!(v0));
    assert_eq!(b["status"], "rejected", "{b}");
    assert_eq!(b["current"]["data"], json!({"by": "A"}), "{b}");
}

fn a_bad_mutation_id_is_refused_whole(backend: Backend) {
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let v1 = version_of(&h, "a");
    for bad in ["no-seq", "c1:", ":1", "a:b:1", "c1:-1"] {
        let body = json!({"mutations": [
            {"collection": "objects", "id": "b", "op": "put", "data": {}, "base_version": null,
             "mutation_id": "c1:1"},
            {"collection": "objects", "id": "a", "op": "put", "data": {"n": 2}, "base_version": v1,
             "mutation_id": bad},
        ]})
        .to_string();
        let (status, answer) = h.raw("POST", "/v1/scopes/s1/mutations", Some(READER), Some(&body));
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("bad_mutation")),
            "{bad}: {answer}"
        );
    }
    assert_eq!(h.status("s1").count, 1, "nothing of the batch applied");
}
