//! Conformance cases for indexes, queries and change events: the same results on every store,
//! and the same as the naive filter over the reference store.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::{clock, put_rows, row, sid, sync, NOW};
use crate::cloud::Cloud;
use crate::error::ErrorKind;
use crate::events::{ChangeEvent, ChangeOp, EventHub, Source};
use crate::memory::MemoryStore;
use crate::query::{filter_naive, IndexSet, Query};
use crate::rules::Row;
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::types::{Record, ScopeId};

fn catalog_indexes() -> IndexSet {
    IndexSet::builder()
        .index("columns", ["object_id"])
        .index("columns", ["object_id", "position"])
        .index("objects", ["name"])
        .index("objects", ["owner.team"])
        .build()
        .expect("valid indexes")
}

async fn declare_and_build<S: Store>(store: &S, set: &IndexSet) {
    store.declare_indexes(set).await.expect("declare");
    let mut steps = 0;
    while !store.build_indexes(1000).await.expect("build") {
        steps += 1;
        assert!(steps < 10_000, "the build never finishes");
    }
}

fn ids(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn query_ids<S: Store>(h: &ScopeHandle<'_, S>, q: Query) -> Vec<String> {
    let page = h.query(&q).await.expect("query");
    page.records.into_iter().map(|r| r.id).collect()
}

/// Indexes see every write that changes visible data, in its transaction: cloud rows, a local
/// put over them, a pending local delete (left out), a touch (unchanged), a remove.
pub async fn indexes_follow_every_write<S: Store>(store: &S) {
    declare_and_build(store, &catalog_indexes()).await;
    let s = sid("s");
    let h = ScopeHandle::new(store, s.clone());
    put_rows(
        store,
        &s,
        vec![
            column("c1", "o1", 2),
            column("c2", "o1", 1),
            column("c3", "o2", 1),
        ],
    )
    .await;
    let by_object = |o: &str| Query::on("columns", ["object_id", "position"]).eq([json!(o)]);
    assert_eq!(query_ids(&h, by_object("o1")).await, ["c2", "c1"]);

    // A local edit moves c3 to o1 at position 0: visible at once, before any push.
    h.put("columns", "c3", json!({"object_id": "o1", "position": 0}))
        .await
        .unwrap();
    assert_eq!(query_ids(&h, by_object("o1")).await, ["c3", "c2", "c1"]);
    assert!(query_ids(&h, by_object("o2")).await.is_empty());
    let page = h.query(&by_object("o1")).await.unwrap();
    assert!(
        page.records[0].pending,
        "results carry the record shape of get"
    );
    assert_eq!(
        Some(&page.records[0]),
        h.get("columns", "c3").await.unwrap().as_ref()
    );

    // A pending local delete leaves the index; counting agrees.
    h.delete("columns", "c1").await.unwrap();
    assert_eq!(query_ids(&h, by_object("o1")).await, ["c3", "c2"]);
    let count = h
        .query_count(&Query::on("columns", ["object_id"]).eq([json!("o1")]))
        .await
        .unwrap();
    assert_eq!(count, 2);

    // A new record in another collection does not touch the columns' indexes.
    h.put(
        "objects",
        "x",
        json!({"name": "orders", "owner": {"team": "data"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        query_ids(&h, Query::on("objects", ["owner.team"]).eq([json!("data")])).await,
        ["x"]
    );
    assert_eq!(query_ids(&h, by_object("o1")).await, ["c3", "c2"]);

    // The planner's other writes: a touch keeps the entry, a remove drops it.
    let keys = [
        crate::types::Key::new("columns", "c2"),
        crate::types::Key::new("objects", "x"),
    ];
    store
        .update(
            &s,
            &keys,
            false,
            |st: &crate::rules::ScopeState, read: &[Option<crate::rules::Row>]| {
                let (c2, x) = (read[0].as_ref().unwrap(), read[1].as_ref().unwrap());
                Ok(crate::rules::Changeset {
                    scope: st.clone(),
                    rows: vec![
                        crate::rules::RowWrite::Touch {
                            key: c2.key.clone(),
                            prior: crate::rules::Prior::of(0, c2),
                            version: 5,
                            updated_at: c2.updated_at.clone(),
                            cloud_hash: c2.cloud_hash,
                            generation: c2.generation,
                            pending: None,
                            sent: None,
                        },
                        crate::rules::RowWrite::Remove {
                            key: x.key.clone(),
                            prior: crate::rules::Prior::of(1, x),
                            evict: false,
                        },
                    ],
                    ..crate::rules::Changeset::default()
                })
            },
        )
        .await
        .unwrap();
    let page = h.query(&by_object("o1")).await.unwrap();
    assert_eq!(ids(&page.records), ["c3", "c2"]);
    assert_eq!(page.records[1].version, 5, "the touched row is read fresh");
    assert!(query_ids(&h, Query::on("objects", ["name"]))
        .await
        .is_empty());
}

/// Equality, ranges, prefix, `in`, order, nested and compound paths, limits with cursors, and
/// counts, over values of every type.
pub async fn queries_filter_order_and_page<S: Store>(store: &S) {
    declare_and_build(store, &catalog_indexes()).await;
    let s = sid("s");
    let h = ScopeHandle::new(store, s.clone());
    let names = [
        ("o1", json!("orders")),
        ("o2", json!("order_items")),
        ("o3", json!("Orders")),
        ("o4", json!("ordinal")),
        ("o5", json!(7)),
        ("o6", json!(null)),
        ("o7", json!(true)),
        ("o8", json!("zeta")),
        ("o9", json!(2.5)),
    ];
    let mut rows = Vec::new();
    for (id, name) in &names {
        rows.push(row("objects", id, json!({"name": name}), 1, 0));
    }
    rows.push(row("objects", "o0", json!({"other": 1}), 1, 0)); // no name: sorts as null
    put_rows(store, &s, rows).await;
    let by_name = || Query::on("objects", ["name"]);

    assert_eq!(
        query_ids(&h, by_name()).await,
        ["o0", "o6", "o7", "o9", "o5", "o3", "o2", "o1", "o4", "o8"],
        "null < true < numbers < strings (by bytes: upper case first)"
    );
    assert_eq!(
        query_ids(&h, by_name().prefix("ord")).await,
        ["o2", "o1", "o4"]
    );
    assert_eq!(
        query_ids(&h, by_name().prefix("ord").desc()).await,
        ["o4", "o1", "o2"]
    );
    assert_eq!(query_ids(&h, by_name().eq([json!("orders")])).await, ["o1"]);
    assert_eq!(
        query_ids(&h, by_name().eq([json!(null)])).await,
        ["o0", "o6"]
    );
    assert_eq!(query_ids(&h, by_name().gte(2.5).lt(8)).await, ["o9", "o5"]);
    assert_eq!(
        query_ids(&h, by_name().gt("order_items").lte("orders")).await,
        ["o1"]
    );
    assert_eq!(query_ids(&h, by_name().lt(false)).await, ["o0", "o6"]);
    assert_eq!(
        query_ids(
            &h,
            by_name().any_of([json!("zeta"), json!(7), json!("nope"), json!(7)])
        )
        .await,
        ["o5", "o8"]
    );
    assert!(query_ids(&h, by_name().gt("z").lt("a")).await.is_empty());
    assert_eq!(h.query_count(&by_name().prefix("ord")).await.unwrap(), 3);
    assert_eq!(
        h.query_count(&by_name().prefix("ord").limit(1))
            .await
            .unwrap(),
        3
    );

    // Pages of 3 with cursors, both ways, give the whole order exactly once.
    for desc in [false, true] {
        let mut q = by_name().limit(3);
        if desc {
            q = q.desc();
        }
        let mut all = query_ids(&h, by_name()).await;
        if desc {
            all.reverse();
        }
        let mut seen = Vec::new();
        let mut page = h.query(&q).await.unwrap();
        loop {
            seen.extend(page.records.iter().map(|r| r.id.clone()));
            let Some(c) = page.cursor.clone() else { break };
            page = h.query(&q.clone().after(c)).await.unwrap();
        }
        assert_eq!(seen, all, "desc: {desc}");
    }

    // Compound: equality on the first path, ranges on the second, ties broken by id.
    put_rows(
        store,
        &s,
        vec![
            column("a", "o1", 3),
            column("b", "o1", 1),
            column("c", "o1", 1),
            column("d", "o2", 0),
        ],
    )
    .await;
    let cols = || Query::on("columns", ["object_id", "position"]);
    assert_eq!(
        query_ids(&h, cols().eq([json!("o1")])).await,
        ["b", "c", "a"]
    );
    assert_eq!(
        query_ids(&h, cols().eq([json!("o1")]).desc()).await,
        ["a", "c", "b"]
    );
    assert_eq!(query_ids(&h, cols().eq([json!("o1")]).gt(1)).await, ["a"]);
    assert_eq!(
        query_ids(&h, cols().eq([json!("o1"), json!(1)])).await,
        ["b", "c"]
    );
    assert_eq!(
        query_ids(&h, cols().any_of([json!("o2"), json!("o1")]).limit(2)).await,
        ["b", "c"]
    );
    // Other scopes are not seen.
    let other = ScopeHandle::new(store, sid("other"));
    assert!(query_ids(&other, cols()).await.is_empty());
}

/// An index declared over existing rows is built in batches; a build interrupted between
/// batches resumes (declaring the same set again changes nothing); a changed set drops and adds
/// indexes in place, with no data lost; queries on an index not ready are `InvalidInput`.
pub async fn index_builds_resume_and_sets_change_in_place<S: Store>(store: &S) {
    let s = sid("s");
    let h = ScopeHandle::new(store, s.clone());
    let rows: Vec<_> = (0..7)
        .map(|i| {
            row(
                "objects",
                &format!("o{i}"),
                json!({"name": format!("n{}", 6 - i), "size": i % 3}),
                1,
                0,
            )
        })
        .collect();
    put_rows(store, &s, rows).await;
    put_rows(
        store,
        &sid("t"),
        vec![row("objects", "t1", json!({"name": "n9"}), 1, 0)],
    )
    .await;
    let first = IndexSet::builder()
        .index("objects", ["name"])
        .build()
        .unwrap();
    store.declare_indexes(&first).await.unwrap();
    assert_eq!(store.indexes(), first);
    assert!(
        !store.build_indexes(3).await.unwrap(),
        "7 rows are more than one batch of 3"
    );
    let early = h.query(&Query::on("objects", ["name"])).await.unwrap_err();
    assert_eq!(early.kind(), ErrorKind::InvalidInput);
    assert!(early.to_string().contains("objects.name"), "{early}");
    // A write during the build is indexed by the write itself.
    h.put("objects", "o9", json!({"name": "n0.5"}))
        .await
        .unwrap();
    // "Reopen": the same set declared again keeps the build where it was.
    store.declare_indexes(&first).await.unwrap();
    let mut steps = 1;
    while !store.build_indexes(3).await.unwrap() {
        steps += 1;
        assert!(steps < 20);
    }
    assert!(
        steps >= 3,
        "the build went on from where it stopped, in batches ({steps} steps)"
    );
    assert_eq!(
        query_ids(&h, Query::on("objects", ["name"]).limit(3)).await,
        ["o6", "o9", "o5"]
    );
    assert_eq!(
        h.query_count(&Query::on("objects", ["name"]))
            .await
            .unwrap(),
        8
    );

    // A changed set: `name` dropped, `size` added; the data stays, nothing resyncs.
    let second = IndexSet::builder()
        .index("objects", ["size"])
        .build()
        .unwrap();
    declare_and_build(store, &second).await;
    let gone = h.query(&Query::on("objects", ["name"])).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        query_ids(&h, Query::on("objects", ["size"]).eq([json!(0)])).await,
        ["o0", "o3", "o6"]
    );
    assert_eq!(
        query_ids(&h, Query::on("objects", ["size"]).eq([json!(null)])).await,
        ["o9"]
    );
    assert_eq!(h.count(Some("objects")).await.unwrap(), 8);
    // And back: the dropped index is rebuilt from scratch and right.
    declare_and_build(store, &first).await;
    assert_eq!(
        h.query_count(&Query::on("objects", ["name"]).prefix("n"))
            .await
            .unwrap(),
        8
    );
    let t = ScopeHandle::new(store, sid("t"));
    assert_eq!(query_ids(&t, Query::on("objects", ["name"])).await, ["t1"]);
}

/// Every committed transaction that changes visible records publishes one event after commit,
/// with its source and run, from the store's report of it ([`crate::store::Applied`]); a
/// refused edit publishes nothing.
pub async fn change_events_follow_commits<S: Store>(store: &S) {
    let hub: Arc<EventHub> = Arc::default();
    let events: Arc<Mutex<Vec<ChangeEvent>>> = Arc::default();
    let sink = events.clone();
    let _sub = hub.subscribe(move |e| sink.lock().unwrap().push(e.clone()));

    let take = || std::mem::take(&mut *events.lock().unwrap());
    let s = sid("s");
    let cloud = Cloud::new();
    for i in 0..3 {
        cloud.put(&s, "objects", &format!("o{i}"), json!({"name": i}), NOW);
    }
    let report = sync_publishing(store, &hub, &cloud, &s, 2).await.unwrap();
    let got = take();
    assert_eq!(got.len(), 2, "one event per page: {got:?}");
    assert!(got
        .iter()
        .all(|e| e.source == Source::Pull && e.run == Some(report.run.id) && e.scope == "s"));
    let inserted: Vec<&str> = got
        .iter()
        .flat_map(|e| &e.changes)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(inserted, ["o0", "o1", "o2"]);
    assert!(got
        .iter()
        .flat_map(|e| &e.changes)
        .all(|c| c.op == ChangeOp::Insert && c.collection == "objects"));

    let h = ScopeHandle::new(store, s.clone()).events(&hub);
    h.put("objects", "o0", json!({"name": "renamed"}))
        .await
        .unwrap();
    h.put("objects", "o0", json!({"name": "renamed"}))
        .await
        .unwrap(); // no change: no event
    h.delete("objects", "o1").await.unwrap();
    let got = take();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].source, got[0].run, got[0].changes[0].op),
        (Source::Local, None, ChangeOp::Update)
    );
    assert_eq!(
        (got[1].changes[0].id.as_str(), got[1].changes[0].op),
        ("o1", ChangeOp::Delete)
    );

    // The cloud changes o2 and deletes o0, whose pending edit loses (journaled): the pull says so.
    cloud.put(&s, "objects", "o2", json!({"name": "cloud"}), NOW);
    let report = sync_publishing(store, &hub, &cloud, &s, 100).await.unwrap();
    let got = take();
    let ops: Vec<(String, ChangeOp, Source)> = got
        .iter()
        .flat_map(|e| {
            e.changes
                .iter()
                .map(move |c| (c.id.clone(), c.op, e.source))
        })
        .collect();
    assert!(got.iter().all(|e| e.run == Some(report.run.id)), "{got:?}");
    assert!(
        ops.contains(&("o2".into(), ChangeOp::Update, Source::Pull)),
        "{ops:?}"
    );
    // The pushed edits were accepted: o0's pending flag clears (an update, from the push); the
    // accepted delete of o1, invisible already, is no event.
    assert!(
        ops.contains(&("o0".into(), ChangeOp::Update, Source::Push)),
        "{ops:?}"
    );
    assert!(!ops.iter().any(|(id, _, _)| id == "o1"), "{ops:?}");
    assert_eq!(ops.len(), 2, "{ops:?}");

    // A refused edit publishes nothing.
    assert!(h.put("objects", "", json!({"name": "x"})).await.is_err());
    assert!(take().is_empty());
}

async fn sync_publishing<S: Store>(
    store: &S,
    hub: &EventHub,
    cloud: &Cloud,
    scope: &ScopeId,
    page_size: u32,
) -> crate::Result<crate::SyncReport> {
    let opts = crate::SyncOptions {
        page_size,
        ..crate::SyncOptions::default()
    };
    crate::Syncer::new(store, cloud, &clock)
        .events(hub)
        .sync(scope, opts)
        .await
}

/// The differential test: random records, random cloud pages and local edits, random queries;
/// every query's pages (through cursors) equal the naive filter over the reference store that
/// saw the same operations.
pub async fn queries_match_the_naive_filter_on_random_data<S: Store>(store: &S) {
    let set = IndexSet::builder()
        .index("t", ["a"])
        .index("t", ["a", "b"])
        .index("t", ["n.x"])
        .build()
        .unwrap();
    let reference = MemoryStore::new();
    declare_and_build(store, &set).await;
    let mut rng = Rng(0x7e7e_2026);
    let s: ScopeId = sid("s");
    let cloud = Cloud::new();
    let (h, r) = (
        ScopeHandle::new(store, s.clone()),
        ScopeHandle::new(&reference, s.clone()),
    );
    let value = |rng: &mut Rng| -> Value {
        match rng.below(9) {
            0 => json!(null),
            1 => json!(rng.below(2) == 0),
            2 | 3 => json!(rng.below(5) as i64 - 2),
            4 => json!(0.5 + rng.below(3) as f64),
            _ => json!(["", "a", "ab", "abc", "b", "B", "é", "a\u{1}b"][rng.below(8) as usize]),
        }
    };
    let record = |rng: &mut Rng| -> Value {
        let mut m = serde_json::Map::new();
        if rng.below(6) > 0 {
            m.insert("a".into(), value(rng));
        }
        if rng.below(6) > 0 {
            m.insert("b".into(), value(rng));
        }
        if rng.below(3) > 0 {
            m.insert("n".into(), json!({ "x": value(rng) }));
        }
        Value::Object(m)
    };
    let mut checked = 0;
    for round in 0..12 {
        for _ in 0..8 {
            let id = format!("r{:02}", rng.below(30));
            match rng.below(4) {
                0 => {
                    cloud.delete(&s, "t", &id, NOW);
                }
                _ => {
                    cloud.put(&s, "t", &id, record(&mut rng), NOW);
                }
            }
        }
        let page = 1 + rng.below(7) as u32;
        sync(store, &cloud, &s, page).await.unwrap();
        sync(&reference, &cloud, &s, page).await.unwrap();
        for _ in 0..4 {
            let id = format!("r{:02}", rng.below(30));
            if rng.below(3) == 0 {
                h.delete("t", &id).await.unwrap();
                r.delete("t", &id).await.unwrap();
            } else {
                let data = record(&mut rng);
                h.put("t", &id, data.clone()).await.unwrap();
                r.put("t", &id, data).await.unwrap();
            }
        }
        let visible: Vec<Record> = r.list("t", None, 1000).await.unwrap();
        for _ in 0..10 {
            let index: Vec<&str> = match rng.below(3) {
                0 => vec!["a"],
                1 => vec!["a", "b"],
                _ => vec!["n.x"],
            };
            let mut q = Query::on("t", index.clone());
            if index.len() == 2 && rng.below(2) == 0 {
                q = q.eq([value(&mut rng)]);
            }
            q = match rng.below(6) {
                0 => q.gt(value(&mut rng)).lte(value(&mut rng)),
                1 => q.gte(value(&mut rng)),
                2 => q.lt(value(&mut rng)),
                3 => q.prefix(["", "a", "ab", "B"][rng.below(4) as usize]),
                4 => q.any_of([value(&mut rng), value(&mut rng), value(&mut rng)]),
                _ => q,
            };
            if rng.below(2) == 0 {
                q = q.desc();
            }
            let spec = q.index_in(&set).unwrap().clone();
            let expected: Vec<String> = filter_naive(&q, &spec, visible.clone())
                .into_iter()
                .map(|r| format!("{}:{}", r.id, r.hash))
                .collect();
            let limit = 1 + rng.below(5) as usize;
            let mut got = Vec::new();
            let mut paged = q.clone().limit(limit);
            loop {
                let page = h.query(&paged).await.unwrap();
                assert!(page.records.len() <= limit);
                got.extend(page.records.iter().map(|r| format!("{}:{}", r.id, r.hash)));
                match page.cursor {
                    Some(c) => paged = paged.after(c),
                    None => break,
                }
            }
            assert_eq!(got, expected, "round {round}, query {q:?}");
            assert_eq!(
                h.query_count(&q).await.unwrap(),
                expected.len() as u64,
                "{q:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 120);
    assert_eq!(
        h.list("t", None, 1000).await.unwrap(),
        r.list("t", None, 1000).await.unwrap(),
        "the store and the reference hold the same records"
    );
}

/// A small deterministic generator (xorshift64*), so the case runs the same on every store.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
    }
}

/// A `columns` row of `object` at `position`, version 1 of generation 0.
fn column(id: &str, object: &str, position: i64) -> Row {
    row(
        "columns",
        id,
        json!({"object_id": object, "position": position}),
        1,
        0,
    )
}
