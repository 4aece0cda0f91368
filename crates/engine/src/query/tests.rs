use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::digest::record_hash;

fn record(id: &str, data: Value) -> Record {
    let data = data.as_object().cloned().expect("object");
    Record {
        collection: "c".into(),
        id: id.into(),
        hash: record_hash(&data),
        data,
        version: 1,
        updated_at: String::new(),
        pending: false,
    }
}

/// The planner's answer computed the way a store computes it: index keys, ranges, cursor.
fn by_scan(q: &Query, spec: &IndexSpec, records: &[Record]) -> Vec<String> {
    let scan = q.plan(spec).expect("plan");
    let mut hits: Vec<(Vec<u8>, &Record)> = records
        .iter()
        .map(|r| (spec.key_of(&r.data), r))
        .filter(|(k, r)| scan.admits(k, &r.id))
        .collect();
    hits.sort_by(|a, b| (&a.0, a.1.id.as_bytes()).cmp(&(&b.0, b.1.id.as_bytes())));
    if scan.order == Order::Desc {
        hits.reverse();
    }
    hits.into_iter().map(|(_, r)| r.id.clone()).collect()
}

fn ids(records: Vec<Record>) -> Vec<String> {
    records.into_iter().map(|r| r.id).collect()
}

#[test]
fn compound_equality_orders_by_the_next_path() {
    let spec = IndexSpec::new("c", ["o", "pos"]).unwrap();
    let recs = vec![
        record("a", json!({"o": "x", "pos": 2})),
        record("b", json!({"o": "x", "pos": 1})),
        record("c", json!({"o": "y", "pos": 0})),
        record("d", json!({"o": "x"})),
    ];
    let q = Query::on("c", ["o", "pos"]).eq([json!("x")]);
    assert_eq!(by_scan(&q, &spec, &recs), ["d", "b", "a"]);
    assert_eq!(ids(filter_naive(&q, &spec, recs.clone())), ["d", "b", "a"]);
    let q = q.gte(1).desc();
    assert_eq!(by_scan(&q, &spec, &recs), ["a", "b"]);
}

#[test]
fn bad_queries_are_invalid_input_naming_the_index() {
    let spec = IndexSpec::new("c", ["name"]).unwrap();
    let set = IndexSet::new([spec.clone()]).unwrap();
    let err = |q: Query| q.plan(&spec).unwrap_err().to_string();
    assert!(err(Query::on("c", ["name"]).eq([json!({"a": 1})])).contains("c.name"));
    assert!(err(Query::on("c", ["name"]).eq([json!(1), json!(2)])).contains("2 paths"));
    assert!(err(Query::on("c", ["name"]).prefix("a").gt(1)).contains("one of"));
    assert!(err(Query::on("c", ["name"]).limit(0)).contains("limit 0"));
    assert!(err(Query::on("c", ["name"]).after("zz")).contains("cursor"));
    let missing = Query::on("c", ["other"]).index_in(&set).unwrap_err();
    assert_eq!(missing.kind(), crate::ErrorKind::InvalidInput);
    assert!(missing.to_string().contains("c.other"), "{missing}");
    assert!(Path::new("a..b").is_err() && Path::new("").is_err());
    let twice = IndexSet::builder()
        .named("n", "c", ["a"])
        .named("n", "c", ["b"])
        .build();
    assert!(twice.unwrap_err().to_string().contains("c.n"));
}

#[test]
fn cursors_round_trip_and_continue() {
    let spec = IndexSpec::new("c", ["n"]).unwrap();
    let recs: Vec<Record> = (0..10)
        .map(|i| record(&format!("r{i}"), json!({"n": i % 3})))
        .collect();
    let q = Query::on("c", ["n"]).limit(4);
    let all = by_scan(&Query::on("c", ["n"]), &spec, &recs);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut page_q = q.clone();
        page_q.after = after.clone();
        let scan = page_q.plan(&spec).unwrap();
        let mut hits: Vec<Hit> = recs
            .iter()
            .map(|r| Hit {
                key: spec.key_of(&r.data),
                row: row_of(r),
            })
            .filter(|h| scan.admits(&h.key, &h.row.key.id))
            .collect();
        hits.sort_by(|a, b| {
            (&a.key, a.row.key.id.as_bytes()).cmp(&(&b.key, b.row.key.id.as_bytes()))
        });
        hits.truncate(4);
        let page = QueryPage::of(&scan, hits).unwrap();
        seen.extend(page.records.into_iter().map(|r| r.id));
        match page.cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, all);
}

fn row_of(r: &Record) -> Row {
    Row {
        key: crate::types::Key::new(&r.collection, &r.id),
        data: Some(r.data.clone().into()),
        hash: Some(r.hash),
        version: r.version,
        updated_at: r.updated_at.clone(),
        cloud_hash: Some(r.hash),
        generation: 0,
        pending: None,
        sent: None,
    }
}

fn small() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|i| json!(i)),
        Just(json!(1.5)),
        prop::sample::select(vec!["", "a", "ab", "abc", "b", "B", "é", "a\u{0}"])
            .prop_map(|s| json!(s)),
    ]
}

fn query_strategy() -> impl Strategy<Value = Query> {
    let cond = prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(4), Just(5)];
    (
        prop::option::of(small()),
        cond,
        small(),
        small(),
        any::<bool>(),
    )
        .prop_map(|(eq, cond, v, w, desc)| {
            let mut q = Query::on("c", ["a", "b"]);
            if let Some(e) = eq {
                q = q.eq([e]);
            }
            q = match cond {
                1 => q.gt(v).lte(w),
                2 => q.gte(v),
                3 => q.lt(v),
                4 => match v {
                    Value::String(s) => q.prefix(s),
                    _ => q.prefix("a"),
                },
                5 => q.any_of([v, w]),
                _ => q,
            };
            if desc {
                q.desc()
            } else {
                q
            }
        })
}

proptest! {
    #[test]
    fn the_plan_matches_the_naive_filter(
        data in prop::collection::vec((prop::option::of(small()), prop::option::of(small())), 0..25),
        q in query_strategy(),
    ) {
        let spec = IndexSpec::new("c", ["a", "b"]).unwrap();
        let recs: Vec<Record> = data.into_iter().enumerate().map(|(i, (a, b))| {
            let mut m = serde_json::Map::new();
            if let Some(a) = a { m.insert("a".into(), a); }
            if let Some(b) = b { m.insert("b".into(), b); }
            record(&format!("id{i:02}"), Value::Object(m))
        }).collect();
        prop_assert_eq!(by_scan(&q, &spec, &recs), ids(filter_naive(&q, &spec, recs.clone())));
    }
}
