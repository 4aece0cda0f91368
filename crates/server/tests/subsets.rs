//! Subscriptions (protocol v1.2, docs/partial-sync.md): subset pulls, initial and
//! incremental, with move-in, move-out and deletes; the count and digest of a subset; bad
//! subscriptions and the limits. Raw HTTP, both storages.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backend, Harness, READER};
use serde_json::{json, Value};
use tether_engine::digest::{leaf, record_hash, Snapshot};
use tether_engine::limits::{MAX_FILTER_PATHS, MAX_FILTER_VALUES, MAX_SUBSCRIPTION_BYTES};
use tether_engine::protocol::encode;
use tether_engine::subscription::Subscription;

both!(
    an_initial_pull_returns_exactly_the_subset_across_pages,
    an_incremental_pull_carries_moves_in_and_out_and_deletes,
    changes_during_an_initial_download_reach_it,
    values_compare_as_json_scalars,
    the_digest_and_records_of_a_subset_are_those_of_its_records,
    bad_subscriptions_are_refused_and_limits_enforced_alike,
    a_subset_pull_behind_the_horizon_resets,
    the_engine_reads_the_servers_answers,
    a_live_subset_pull_waits_for_its_collection,
);

postgres_only!(rows_written_by_plain_sql_are_in_subsets_like_any_other);

/// Declared filters of these tests.
fn declare(c: &mut tether_server::Config) {
    c.filter_indexes = [
        "files:repository",
        "files:size",
        "files:owner.team",
        "things:n",
    ]
    .iter()
    .map(|s| tether_server::FilterIndex::parse(s).unwrap())
    .collect();
}

fn start(backend: Backend) -> Harness {
    Harness::start_with(backend, declare)
}

/// 120 files over 6 repositories (`r0`..`r5`, by `i % 6`), sizes `i % 4`, teams by `i % 3`;
/// and 60 objects that name a repository too (another collection: never in a files subset).
fn seed(h: &Harness) {
    let files: Vec<(&str, String, Value)> = (0..120)
        .map(|i| {
            let data = json!({"repository": format!("r{}", i % 6), "size": i % 4,
                "owner": {"team": format!("t{}", i % 3)}, "path": format!("p/{i}.sql")});
            ("files", format!("f{i:03}"), data)
        })
        .chain((0..60).map(|i| {
            (
                "objects",
                format!("o{i:03}"),
                json!({"repository": format!("r{}", i % 6)}),
            )
        }))
        .collect();
    let files: Vec<(&str, &str, Value)> = files
        .iter()
        .map(|(c, i, d)| (*c, i.as_str(), d.clone()))
        .collect();
    h.upsert("s1", &files);
}

/// One page of `sub` after `checkpoint`.
fn page(h: &Harness, sub: &Subscription, checkpoint: Option<&str>, limit: u32) -> Value {
    let mut path = format!(
        "/v1/scopes/s1/changes?limit={limit}&sub={}",
        encode(&sub.encode())
    );
    if let Some(c) = checkpoint {
        path.push_str(&format!("&checkpoint={}", encode(c)));
    }
    let (status, body) = h.raw("GET", &path, Some(READER), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["subscription"],
        json!(sub),
        "the page names its subscription"
    );
    assert!(body.get("snapshot").is_none(), "{body}");
    body
}

/// What a replica of `sub` learns by pulling to the end: live records by id (data), the
/// tombstones' and the outside markers' ids, the pages, and the last checkpoint.
struct Pulled {
    live: BTreeMap<String, Value>,
    deleted: BTreeSet<String>,
    outside: BTreeSet<String>,
    pages: usize,
    checkpoint: String,
}

fn pull_all(h: &Harness, sub: &Subscription, from: Option<&str>, limit: u32) -> Pulled {
    let mut p = Pulled {
        live: BTreeMap::new(),
        deleted: BTreeSet::new(),
        outside: BTreeSet::new(),
        pages: 0,
        checkpoint: from.unwrap_or_default().to_string(),
    };
    let mut seen = BTreeSet::new();
    loop {
        let from = (!p.checkpoint.is_empty()).then_some(p.checkpoint.clone());
        let body = page(h, sub, from.as_deref(), limit);
        p.pages += 1;
        let changes = body["changes"].as_array().unwrap();
        let outside = body["outside"].as_array().unwrap();
        assert!(changes.len() + outside.len() <= limit as usize, "{body}");
        for c in changes {
            let id = c["id"].as_str().unwrap().to_string();
            assert_eq!(c["collection"], sub.collection.as_str(), "{c}");
            assert!(seen.insert(id.clone()), "{id} sent twice");
            if c["deleted"] == true {
                p.live.remove(&id);
                p.deleted.insert(id);
            } else {
                p.live.insert(id, c["data"].clone());
            }
        }
        for o in outside {
            let id = o["id"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "{id} sent twice");
            p.live.remove(&id);
            p.outside.insert(id);
        }
        p.checkpoint = body["checkpoint"].as_str().unwrap().to_string();
        if body["has_more"] != true {
            return p;
        }
        assert!(p.pages < 1000, "no progress");
    }
}

fn ids(range: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
    range.into_iter().map(|i| format!("f{i:03}")).collect()
}

fn repos(values: &[&str]) -> Subscription {
    Subscription::new("files").with_filter("repository", values.iter().map(|v| json!(v)))
}

fn an_initial_pull_returns_exactly_the_subset_across_pages(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let head = h.head();
    let sub = repos(&["r1", "r3"]);
    let got = pull_all(&h, &sub, None, 7);
    let want = ids((0..120).filter(|i| i % 6 == 1 || i % 6 == 3));
    assert_eq!(got.live.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(got.pages, 40usize.div_ceil(7) + usize::from(40 % 7 == 0));
    assert!(got.outside.is_empty() && got.deleted.is_empty());
    assert_eq!(
        got.checkpoint, head,
        "the last page ends at the scope's head"
    );
    assert_eq!(got.live["f001"]["path"], "p/1.sql");

    // Two paths (one nested), and numbers: both must hold.
    let sub = Subscription::new("files")
        .with_filter("repository", [json!("r0"), json!("r2")])
        .with_filter("owner.team", [json!("t0")])
        .with_filter("size", [json!(0), json!(2.0)]);
    let got = pull_all(&h, &sub, None, 5);
    let want = ids((0..120).filter(|i| [0, 2].contains(&(i % 6)) && i % 3 == 0 && i % 2 == 0));
    assert_eq!(got.live.keys().cloned().collect::<BTreeSet<_>>(), want);

    // The whole collection, and nothing of the others.
    let got = pull_all(&h, &Subscription::new("files"), None, 50);
    assert_eq!(got.live.len(), 120);
    assert_eq!(got.pages, 3);

    // Started again on the same storage, the indexes are found, not made twice.
    h.restart();
    assert_eq!(pull_all(&h, &repos(&["r1"]), None, 100).live.len(), 20);
}

fn an_incremental_pull_carries_moves_in_and_out_and_deletes(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let sub = repos(&["r1"]);
    let first = pull_all(&h, &sub, None, 100);
    assert_eq!(first.live.len(), 20);

    let file = |i: usize, repo: &str| json!({"repository": repo, "size": i % 4, "owner": {"team": "t9"}, "path": "moved"});
    h.upsert(
        "s1",
        &[
            ("files", "f001", file(1, "r5")),                 // moves out
            ("files", "f005", file(5, "r1")),                 // moves in
            ("files", "f007", file(7, "r1")),                 // changes, stays in
            ("files", "f011", file(11, "r4")),                // changes, stays out
            ("objects", "o001", json!({"repository": "r2"})), // another collection
        ],
    );
    h.delete("s1", &[("files", "f013"), ("files", "f017")]); // in r1; in r5
    let next = pull_all(&h, &sub, Some(&first.checkpoint), 100);
    assert_eq!(
        next.live.keys().cloned().collect::<Vec<_>>(),
        ["f005", "f007"],
        "move-in and an edit inside"
    );
    assert_eq!(next.live["f007"]["path"], "moved");
    assert_eq!(
        next.outside,
        ids([1, 5, 11].into_iter().filter(|&i| i != 5)),
        "move-out, and a change outside"
    );
    assert_eq!(
        next.deleted,
        ids([13, 17]),
        "every delete of the collection"
    );
    assert_eq!(next.checkpoint, h.head());

    // Nothing new: an empty page at the same checkpoint.
    let again = page(&h, &sub, Some(&next.checkpoint), 100);
    assert_eq!(again["changes"], json!([]));
    assert_eq!(again["outside"], json!([]));
    assert_eq!(again["checkpoint"], next.checkpoint.as_str());

    // A replica that applies both pulls holds exactly the cloud's subset.
    let mut held = first.live.clone();
    for id in next.outside.iter().chain(&next.deleted) {
        held.remove(id);
    }
    held.extend(next.live.clone());
    let cloud = pull_all(&h, &sub, None, 100).live;
    assert_eq!(held, cloud);
}

fn changes_during_an_initial_download_reach_it(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let sub = repos(&["r2"]);
    let p1 = page(&h, &sub, None, 5);
    assert_eq!(p1["has_more"], true);
    let sent: Vec<&str> = p1["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(sent, ["f002", "f008", "f014", "f020", "f026"]);
    let moved = json!({"repository": "r0"});
    let kept = json!({"repository": "r2", "path": "edited"});
    // A record already sent moves out; one not sent yet is edited; one arrives.
    h.upsert(
        "s1",
        &[
            ("files", "f008", moved),
            ("files", "f116", kept.clone()),
            ("files", "f999", kept),
        ],
    );
    let rest = pull_all(&h, &sub, p1["checkpoint"].as_str(), 5);
    assert_eq!(rest.outside, ids([8]));
    assert_eq!(rest.live["f116"]["path"], "edited");
    assert!(rest.live.contains_key("f999"));
    let mut held: BTreeSet<String> = sent.iter().map(|s| s.to_string()).collect();
    held.extend(rest.live.keys().cloned());
    for id in &rest.outside {
        held.remove(id);
    }
    let cloud: BTreeSet<String> = pull_all(&h, &sub, None, 100).live.into_keys().collect();
    assert_eq!(held, cloud);
}

fn values_compare_as_json_scalars(backend: Backend) {
    let h = start(backend);
    let things = [
        ("int", json!({"n": 1})),
        ("float", json!({"n": 1.0})),
        ("text", json!({"n": "1"})),
        ("true", json!({"n": true})),
        ("list", json!({"n": [1]})),
        ("object", json!({"n": {"a": 1}})),
        ("null", json!({"n": null})),
        ("missing", json!({"m": 1})),
        ("listtext", json!({"n": "[1]"})),
    ];
    let records: Vec<(&str, &str, Value)> = things
        .iter()
        .map(|(i, d)| ("things", *i, d.clone()))
        .collect();
    h.upsert("s1", &records);
    let ids = |v: Value| -> Vec<String> {
        let sub = Subscription::new("things").with_filter("n", [v]);
        pull_all(&h, &sub, None, 100).live.into_keys().collect()
    };
    assert_eq!(ids(json!(1)), ["float", "int"]);
    assert_eq!(ids(json!("1")), ["text"]);
    assert_eq!(ids(json!("[1]")), ["listtext"]);
    assert_eq!(ids(json!(0)), Vec::<String>::new());
    // The engine's own test of a record agrees with the cloud's on each of them.
    for v in [json!(1), json!("1"), json!("[1]")] {
        let sub = Subscription::new("things").with_filter("n", [v.clone()]);
        let local: Vec<String> = things
            .iter()
            .filter(|(_, d)| sub.matches("things", d.as_object().unwrap()))
            .map(|(i, _)| i.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(local, ids(v));
    }
}

fn the_digest_and_records_of_a_subset_are_those_of_its_records(backend: Backend) {
    let h = start(backend);
    seed(&h);
    h.delete("s1", &[("files", "f003")]);
    let sub = repos(&["r3", "r4"]);
    // Computed here from the data: what a replica of the subset must hold.
    let mut want = Snapshot::default();
    let mut keys = Vec::new();
    for i in 0..120usize {
        if ![3, 4].contains(&(i % 6)) || i == 3 {
            continue;
        }
        let data = json!({"repository": format!("r{}", i % 6), "size": i % 4,
            "owner": {"team": format!("t{}", i % 3)}, "path": format!("p/{i}.sql")});
        let id = format!("f{i:03}");
        want.insert(&leaf("files", &id, &record_hash(data.as_object().unwrap())));
        keys.push(id);
    }
    let q = format!("sub={}", encode(&sub.encode()));
    let (status, got) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/digest?{q}"),
        Some(READER),
        None,
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["count"], want.count);
    assert_eq!(got["digest"], want.digest.to_string());
    assert_eq!(got["checkpoint"], h.head().as_str());

    let (status, got) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/records?{q}"),
        Some(READER),
        None,
    );
    assert_eq!(status, 200, "{got}");
    let listed: Vec<&str> = got["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, keys, "in key order");

    // A range of the subset: the records from f010 (included) to f040 (excluded).
    let range = "from_collection=files&from_id=f010&to_collection=files&to_id=f040";
    let mut part = Snapshot::default();
    for r in got["records"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        if ("f010".."f040").contains(&id) {
            part.insert(&leaf(
                "files",
                id,
                &r["hash"].as_str().unwrap().parse().unwrap(),
            ));
        }
    }
    let (_, got) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/digest?{q}&{range}"),
        Some(READER),
        None,
    );
    assert_eq!(
        (got["count"].as_u64(), got["digest"].as_str()),
        (Some(part.count), Some(part.digest.to_string().as_str()))
    );
    let (_, got) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/records?{q}&{range}"),
        Some(READER),
        None,
    );
    assert_eq!(got["records"].as_array().unwrap().len() as u64, part.count);
}

fn bad_subscriptions_are_refused_and_limits_enforced_alike(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let before = h.status("s1");
    let many_paths: BTreeMap<String, Value> = (0..=MAX_FILTER_PATHS)
        .map(|i| (format!("p{i}"), json!(["v"])))
        .collect();
    let values = |n: usize| -> Vec<Value> { (0..n).map(|i| json!(format!("r{i}"))).collect() };
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad_subscription"),
        (r#"{"collection":""}"#.into(), "bad_subscription"),
        (r#"{"collection":"files","where":{"repository":[]}}"#.into(), "bad_subscription"),
        (r#"{"collection":"files","where":{"repository":[true]}}"#.into(), "bad_subscription"),
        (r#"{"collection":"files","where":{"a-b":["x"]}}"#.into(), "bad_subscription"),
        (r#"{"collection":"files","where":{"repository":"r1"}}"#.into(), "bad_subscription"),
        (r#"{"collection":"files","filter":{}}"#.into(), "bad_subscription"),
        (json!({"collection": "files", "where": many_paths}).to_string(), "subscription_too_large"),
        (
            json!({"collection": "files", "where": {"repository": values(MAX_FILTER_VALUES + 1)}})
                .to_string(),
            "subscription_too_large",
        ),
        (
            json!({"collection": "files", "where": {"repository": ["x".repeat(MAX_SUBSCRIPTION_BYTES)]}})
                .to_string(),
            "subscription_too_large",
        ),
        (r#"{"collection":"files","where":{"path":["p/1.sql"]}}"#.into(), "unindexed_filter"),
        (r#"{"collection":"objects","where":{"repository":["r1"]}}"#.into(), "unindexed_filter"),
    ];
    for (sub, code) in &cases {
        for endpoint in ["changes?limit=10&", "digest?", "records?"] {
            let path = format!("/v1/scopes/s1/{endpoint}sub={}", encode(sub));
            let (status, body) = h.raw("GET", &path, Some(READER), None);
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some(*code)),
                "{path}: {body}"
            );
            assert!(!body["message"].as_str().unwrap().is_empty());
        }
    }
    // At the limits exactly: served.
    let full = json!({"collection": "files", "where": {"repository": values(MAX_FILTER_VALUES)}});
    let sub = Subscription::parse(&full.to_string()).unwrap();
    assert_eq!(pull_all(&h, &sub, None, 1000).live.len(), 120);
    // A range parameter still has to be whole, with a subscription too.
    let path = format!(
        "/v1/scopes/s1/digest?sub={}&from_id=x",
        encode(&repos(&["r1"]).encode())
    );
    let (status, body) = h.raw("GET", &path, Some(READER), None);
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_key_range"))
    );
    assert_eq!(h.status("s1"), before, "nothing changed");
}

fn a_subset_pull_behind_the_horizon_resets(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let sub = repos(&["r1"]);
    let first = pull_all(&h, &sub, None, 100);
    h.delete("s1", &[("files", "f001")]);
    h.upsert("s1", &[("files", "f007", json!({"repository": "r1"}))]);
    h.purge("s1");
    let path = format!(
        "/v1/scopes/s1/changes?sub={}&checkpoint={}",
        encode(&sub.encode()),
        first.checkpoint
    );
    let (status, body) = h.raw("GET", &path, Some(READER), None);
    assert_eq!(
        (status, body["reset"].as_bool()),
        (410, Some(true)),
        "{body}"
    );
}

/// The engine's requests (`protocol::pull_subset`, `subset_digest`) against this server, their
/// answers decoded by the engine as a transport would hand them over.
fn the_engine_reads_the_servers_answers(backend: Backend) {
    use tether_engine::protocol::{self, Answer, Exchange, RetryPolicy, Step};
    use tether_engine::subscription::PulledSubset;
    let h = start(backend);
    seed(&h);
    fn call<T>(h: &Harness, mut x: Exchange<T>) -> tether_engine::Result<T> {
        let resp = ureq::get(&x.request().url(&h.url()))
            .set("authorization", &format!("Bearer {READER}"))
            .call();
        let resp = match resp {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        match x.handle(
            &RetryPolicy::default(),
            Ok(Answer::new(status, body)),
            0,
            0.5,
        ) {
            Step::Done(r) => r,
            Step::Wait(ms) => panic!("waits {ms}"),
        }
    }
    let scope = common::sid("s1");
    // Values given out of order and repeated: the request and the echo are canonical.
    let sub = Subscription::new("files")
        .with_filter("repository", [json!("r3"), json!("r1"), json!("r3")]);
    let PulledSubset::Page { page, .. } =
        call(&h, protocol::pull_subset(&scope, &sub, None, 100)).unwrap()
    else {
        panic!("reset")
    };
    assert_eq!(page.changes.len(), 40);
    assert!(!page.has_more);
    let digest = call(
        &h,
        protocol::subset_digest(&scope, &sub, &Default::default()),
    )
    .unwrap()
    .expect("the server has subsets");
    assert_eq!((digest.count, &digest.checkpoint), (40, &page.checkpoint));
    let records = call(
        &h,
        protocol::subset_records(&scope, &sub, &Default::default()),
    )
    .unwrap()
    .expect("the server has subsets");
    assert_eq!(records.len(), 40);
    // An undeclared path is the server's 400, an error the engine reports with its code.
    let undeclared = Subscription::new("files").with_filter("path", [json!("p/1.sql")]);
    let err = call(&h, protocol::pull_subset(&scope, &undeclared, None, 100)).unwrap_err();
    assert!(err.to_string().contains("unindexed_filter"), "{err}");
}

/// `wait` on a subset: a change of another collection does not answer it, one of its own
/// collection does (an `outside` entry counts as a change).
fn a_live_subset_pull_waits_for_its_collection(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let sub = repos(&["r1"]);
    let head = pull_all(&h, &sub, None, 100).checkpoint;
    let url = format!(
        "{}/v1/scopes/s1/changes?wait=5&sub={}&checkpoint={head}",
        h.url(),
        encode(&sub.encode())
    );
    let waiting = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let page: Value = ureq::get(&url)
            .set("authorization", &format!("Bearer {READER}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        (page, started.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    h.upsert("s1", &[("objects", "o001", json!({"repository": "r1"}))]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    h.upsert("s1", &[("files", "f002", json!({"repository": "r3"}))]);
    let (page, took) = waiting.join().unwrap();
    assert_eq!(page["changes"], json!([]), "{page}");
    assert_eq!(page["outside"][0]["id"], "f002", "{page}");
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
    assert!(took >= std::time::Duration::from_millis(500), "{took:?}");
}

/// A declaration built by hand (not through `FilterIndex::parse`) whose path is no path stops
/// the server at start: paths are written into SQL.
#[test]
fn a_bad_filter_declaration_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let storage = tether_server::StorageConfig::Sqlite {
        path: dir.path().join("cloud.db"),
    };
    let mut config = tether_server::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        storage,
        tether_server::Tokens::default(),
    );
    config.filter_indexes = vec![tether_server::FilterIndex {
        collection: "files".into(),
        path: "a'); DROP TABLE records; --".into(),
    }];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(tether_server::serve(config))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("filter index files:a'"), "{err}");
}

/// Plain SQL writers (and declared sources, whose consumer writes `records` in batches) go
/// through no code of the server's, and the expression index follows them all the same.
fn rows_written_by_plain_sql_are_in_subsets_like_any_other(backend: Backend) {
    let h = start(backend);
    seed(&h);
    let sub = repos(&["r1"]);
    let first = pull_all(&h, &sub, None, 100);
    h.sql(
        "INSERT INTO records (scope, collection, id, data) VALUES
           ('s1', 'files', 'sql1', '{\"repository\": \"r1\"}');
         UPDATE records SET data = data || '{\"repository\": \"r0\"}'
           WHERE scope = 's1' AND collection = 'files' AND id = 'f001';",
    );
    let next = pull_all(&h, &sub, Some(&first.checkpoint), 100);
    assert_eq!(next.live.keys().collect::<Vec<_>>(), ["sql1"]);
    assert_eq!(next.outside, ids([1]));
    let fresh = pull_all(&h, &sub, None, 100).live;
    assert!(fresh.contains_key("sql1") && !fresh.contains_key("f001"));
    let q = format!("sub={}", encode(&sub.encode()));
    let (_, digest) = h.raw(
        "GET",
        &format!("/v1/scopes/s1/digest?{q}"),
        Some(READER),
        None,
    );
    assert_eq!(digest["count"], 20);
}
