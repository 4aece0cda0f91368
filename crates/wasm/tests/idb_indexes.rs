//! IdbStore's indexes in headless Chromium, beyond the engine's conformance cases: the upgrade
//! of a version-1 database, a build interrupted and resumed by another store on the same
//! database, a changed index set on reopen, paged scans across ties, each compared with the
//! reference `MemoryStore`, and a scan after another tab declared a new set.
#![cfg(target_family = "wasm")]

use js_sys::{Array, Uint8Array};
use serde_json::{json, Value};
use tether_engine::cloud::Cloud;
use tether_engine::digest::{leaf, record_hash};
use tether_engine::{
    ErrorKind, IndexSet, Key, MemoryStore, Query, ScopeHandle, ScopeId, ScopeState, Snapshot,
    Store, SyncOptions, Syncer,
};
use tether_wasm::IdbStore;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

wasm_bindgen_test_configure!(run_in_browser);

fn db_name(test: &str) -> String {
    format!("tether-test-indexes-{test}-{}", js_sys::Math::random())
}

fn scope(name: &str) -> ScopeId {
    ScopeId::new(name).unwrap()
}

/// Every page of `query` (pages of `page` results) on both stores, and its count: equal.
async fn same_pages<A: Store, B: Store>(a: &A, b: &B, scope: &ScopeId, query: &Query, page: usize) {
    let (ha, hb) = (
        ScopeHandle::new(a, scope.clone()),
        ScopeHandle::new(b, scope.clone()),
    );
    let mut q = query.clone().limit(page);
    let mut seen = 0;
    loop {
        let pa = ha.query(&q).await.unwrap();
        let pb = hb.query(&q).await.unwrap();
        assert_eq!(pa, pb, "page of {q:?}");
        seen += pa.records.len();
        match pa.cursor {
            Some(c) => q = q.after(c),
            None => break,
        }
    }
    let all = ha.query(query).await.unwrap();
    assert_eq!(all, hb.query(query).await.unwrap(), "{query:?}");
    assert_eq!(
        all.records.len(),
        seen,
        "pages of {query:?} add up to the whole"
    );
    assert_eq!(
        ha.query_count(query).await.unwrap(),
        hb.query_count(query).await.unwrap()
    );
    assert_eq!(ha.query_count(query).await.unwrap(), seen as u64);
}

async fn build_all<S: Store>(store: &S) {
    for _ in 0..1000 {
        if store.build_indexes(100).await.unwrap() {
            return;
        }
    }
    panic!("the build never finished");
}

fn ids(page: &tether_engine::QueryPage) -> Vec<&str> {
    page.records.iter().map(|r| r.id.as_str()).collect()
}

#[wasm_bindgen_test]
async fn a_version_1_database_upgrades_with_its_rows() {
    let name = db_name("upgrade");
    let s = scope("org");
    let rows = [
        ("objects", "b", json!({"name": "beta"})),
        ("objects", "a", json!({"name": "alpha"})),
        ("objects", "c", json!({"name": "alpha", "n": 2})),
        ("columns", "x", json!({"pos": 1})),
    ];
    create_version_1(&name, &s, &rows).await;

    let idb = IdbStore::open(&name).await.unwrap();
    let h = ScopeHandle::new(&idb, s.clone());
    assert_eq!(h.count(None).await.unwrap(), 4, "every row kept");
    assert_eq!(
        h.get("objects", "b").await.unwrap().unwrap().data["name"],
        "beta"
    );
    assert!(idb.indexes().is_empty());
    let db = open_current(&name).await;
    assert_eq!(db.version(), 2.0);
    assert!(db.object_store_names().contains("indexes"));
    let tx = db.transaction_with_str("rows").unwrap();
    let entries = tx.object_store("rows").unwrap().index("entries").unwrap();
    assert!(entries.multi_entry(), "the entries index is multiEntry");
    db.close();

    let set = IndexSet::builder()
        .index("objects", ["name"])
        .build()
        .unwrap();
    idb.declare_indexes(&set).await.unwrap();
    let q = Query::on("objects", ["name"]).eq([json!("alpha")]);
    let err = h.query(&q).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("objects.name"), "{err}");
    build_all(&idb).await;
    assert_eq!(ids(&h.query(&q).await.unwrap()), ["a", "c"]);
    assert_eq!(ids(&h.query(&q.clone().desc()).await.unwrap()), ["c", "a"]);
    // The rows of the collection without indexes got no entries; their digest is intact.
    let snap = idb
        .range_snapshot(&s, &tether_engine::KeyRange::all(), true)
        .await
        .unwrap();
    assert_eq!(snap, idb.scope_state(&s).await.unwrap().totals);
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn an_interrupted_build_resumes_in_a_new_store() {
    let name = db_name("resume");
    let mem = MemoryStore::new();
    let (s1, s2) = (scope("one"), scope("two"));
    let first = IdbStore::open(&name).await.unwrap();
    for (s, n) in [(&s1, 3), (&s2, 2)] {
        for i in 0..n {
            let data = json!({"name": format!("n{}", i % 2), "i": i});
            put_both(&first, &mem, s, "objects", &format!("o{i}"), Some(data)).await;
        }
    }
    let set = IndexSet::builder()
        .index("objects", ["name"])
        .build()
        .unwrap();
    first.declare_indexes(&set).await.unwrap();
    mem.declare_indexes(&set).await.unwrap();
    build_all(&mem).await;
    assert!(!first.build_indexes(2).await.unwrap(), "2 of 5 rows done");
    drop(first);

    let second = IdbStore::open(&name).await.unwrap();
    assert_eq!(second.indexes(), set, "the declared set is kept");
    let q = Query::on("objects", ["name"]);
    let err = ScopeHandle::new(&second, s1.clone())
        .query(&q)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still being built"), "{err}");
    // A write while building is indexed at once, and counted by the build like any row.
    let changed = json!({"name": "changed"});
    put_both(&second, &mem, &s2, "objects", "o0", Some(changed)).await;
    // Had the build restarted, 5 rows would take three steps of 2; it resumes after the
    // first two rows, so two steps finish it.
    assert!(!second.build_indexes(2).await.unwrap());
    assert!(second.build_indexes(2).await.unwrap());
    for s in [&s1, &s2] {
        same_pages(&second, &mem, s, &q, 2).await;
        same_pages(&second, &mem, s, &q.clone().desc(), 2).await;
    }
    drop(second);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_changed_index_set_on_reopen_keeps_every_row() {
    let name = db_name("redeclare");
    let s = scope("org");
    let first = IdbStore::open(&name).await.unwrap();
    let old = IndexSet::builder()
        .index("objects", ["name"])
        .named("by", "objects", ["name"])
        .index("columns", ["pos"])
        .build()
        .unwrap();
    first.declare_indexes(&old).await.unwrap();
    build_all(&first).await;
    let h = ScopeHandle::new(&first, s.clone());
    for i in 0..6 {
        h.put(
            "objects",
            &format!("o{i}"),
            json!({"name": format!("n{}", 5 - i), "n": i % 3}),
        )
        .await
        .unwrap();
        h.put("columns", &format!("c{i}"), json!({"pos": i}))
            .await
            .unwrap();
    }
    h.delete("objects", "o5").await.unwrap();
    let state = first.scope_state(&s).await.unwrap();
    drop(first);

    let second = IdbStore::open(&name).await.unwrap();
    assert_eq!(second.indexes(), old);
    // Same `objects.name`, `by` on other paths, `columns.pos` dropped, `objects.n` new.
    let new = IndexSet::builder()
        .index("objects", ["name"])
        .named("by", "objects", ["n"])
        .index("objects", ["n"])
        .build()
        .unwrap();
    second.declare_indexes(&new).await.unwrap();
    assert_eq!(second.indexes(), new);
    let h = ScopeHandle::new(&second, s.clone());
    assert_eq!(second.scope_state(&s).await.unwrap(), state);
    assert_eq!(h.count(Some("objects")).await.unwrap(), 5);
    assert_eq!(h.count(Some("columns")).await.unwrap(), 6);
    // The index kept is ready at once; the changed and the new one are building; the dropped
    // one is gone.
    let by_name = Query::on("objects", ["name"]);
    let page = h.query(&by_name).await.unwrap();
    assert_eq!(ids(&page), ["o4", "o3", "o2", "o1", "o0"]);
    for q in [Query::named("objects", "by"), Query::on("objects", ["n"])] {
        let err = h.query(&q).await.unwrap_err();
        assert!(err.to_string().contains("still being built"), "{err}");
    }
    let err = h.query(&Query::on("columns", ["pos"])).await.unwrap_err();
    assert!(err.to_string().contains("no index columns.pos"), "{err}");
    build_all(&second).await;

    // The same answers as a memory store given the same rows and the new set.
    let mem = MemoryStore::new();
    mem.declare_indexes(&new).await.unwrap();
    build_all(&mem).await;
    let hm = ScopeHandle::new(&mem, s.clone());
    for c in ["objects", "columns"] {
        for r in second.list(&s, c, None, 100).await.unwrap() {
            hm.put(
                c,
                &r.key.id,
                Value::Object(r.data.unwrap().to_data().unwrap()),
            )
            .await
            .unwrap();
        }
    }
    for q in [
        by_name.clone(),
        Query::named("objects", "by").desc(),
        Query::on("objects", ["n"]).eq([json!(1)]),
        Query::on("objects", ["n"])
            .any_of([json!(2), json!(0)])
            .desc(),
    ] {
        same_pages(&second, &mem, &s, &q, 2).await;
    }
    // Declaring the dropped index again indexes the rows afresh (its entries of before are
    // not reused), and the same set again changes nothing.
    let again = IndexSet::builder()
        .index("columns", ["pos"])
        .build()
        .unwrap();
    second.declare_indexes(&again).await.unwrap();
    build_all(&second).await;
    second.declare_indexes(&again).await.unwrap();
    assert!(second.build_indexes(1).await.unwrap(), "nothing to build");
    let page = h
        .query(&Query::on("columns", ["pos"]).gte(4))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["c4", "c5"]);
    drop(second);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn descending_pages_across_ties_match_the_memory_store() {
    let name = db_name("ties");
    let idb = IdbStore::open(&name).await.unwrap();
    let mem = MemoryStore::new();
    let s = scope("org");
    let set = IndexSet::builder()
        .index("columns", ["object_id", "position"])
        .index("columns", ["object_id"])
        .build()
        .unwrap();
    idb.declare_indexes(&set).await.unwrap();
    mem.declare_indexes(&set).await.unwrap();
    build_all(&idb).await;
    build_all(&mem).await;
    // Ids that sort differently by UTF-16 and by UTF-8, many ties on `object_id`, some on
    // both paths, a missing path (sorts as null) and numbers of both signs.
    let cloud = Cloud::new();
    let tricky = ["a", "\u{FF5E}t", "\u{1F600}s", "z", "m"];
    for (i, id) in tricky.iter().enumerate() {
        for obj in ["obj_1", "obj_2"] {
            cloud.put(
                &s,
                "columns",
                &format!("{obj}/{id}"),
                json!({"object_id": obj, "position": (i as i64 % 3) - 1}),
                1,
            );
        }
    }
    cloud.put(&s, "columns", "loose", json!({"position": 0}), 1);
    cloud.put(&s, "objects", "obj_1", json!({"name": "one"}), 1);
    for_both(&idb, &mem, &cloud, &s).await;
    let touched = Key::new("columns", "obj_1/a");
    let before = idb.row(&s, &touched).await.unwrap().unwrap();
    // A new version with the same data is a metadata-only write: its entries stay.
    cloud.put(
        &s,
        "columns",
        "obj_1/a",
        json!({"object_id": "obj_1", "position": -1}),
        2,
    );
    for_both(&idb, &mem, &cloud, &s).await;
    let after = idb.row(&s, &touched).await.unwrap().unwrap();
    assert!(after.version > before.version);
    assert_eq!(after.data, before.data);
    // A local edit moves a record; a local delete hides one.
    let moved = json!({"object_id": "obj_1", "position": 9});
    put_both(&idb, &mem, &s, "columns", "obj_2/z", Some(moved)).await;
    put_both(&idb, &mem, &s, "columns", "obj_2/m", None).await;

    let pair = || Query::on("columns", ["object_id", "position"]);
    let one = || Query::on("columns", ["object_id"]);
    let queries = [
        one().desc(),
        one().eq([json!("obj_1")]).desc(),
        one().eq([json!("obj_1")]),
        one()
            .any_of([json!("obj_2"), json!(null), json!("obj_1")])
            .desc(),
        pair().eq([json!("obj_1")]).desc(),
        pair().eq([json!("obj_1")]).gte(0).desc(),
        pair().eq([json!("obj_2")]).lt(1),
        pair().eq([json!("obj_1"), json!(-1)]).desc(),
        pair().prefix("obj_").desc(),
        pair().gt("obj_1").desc(),
    ];
    for q in &queries {
        for page in [1, 2, 3, 50] {
            same_pages(&idb, &mem, &s, q, page).await;
        }
    }
    let h = ScopeHandle::new(&idb, s.clone());
    let page = h.query(&one().eq([json!("obj_1")]).desc()).await.unwrap();
    // Ties on the key come by id in UTF-8 byte order, reversed.
    assert_eq!(
        ids(&page),
        [
            "obj_2/z",
            "obj_1/\u{1F600}s",
            "obj_1/\u{FF5E}t",
            "obj_1/z",
            "obj_1/m",
            "obj_1/a"
        ]
    );
    assert!(!ids(&h.query(&one()).await.unwrap()).contains(&"obj_2/m"));
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn scans_longer_than_a_read_batch_match_the_memory_store() {
    let name = db_name("long");
    let idb = IdbStore::open(&name).await.unwrap();
    let mem = MemoryStore::new();
    let s = scope("org");
    let set = IndexSet::builder().index("objects", ["g"]).build().unwrap();
    idb.declare_indexes(&set).await.unwrap();
    mem.declare_indexes(&set).await.unwrap();
    build_all(&idb).await;
    build_all(&mem).await;
    // More entries than one `getAll` batch (2000), in a few big groups of ties.
    let cloud = Cloud::new();
    for i in 0..4100 {
        cloud.put(&s, "objects", &format!("o{i:05}"), json!({"g": i % 3}), 1);
    }
    for_both(&idb, &mem, &cloud, &s).await;
    let (hi, hm) = (
        ScopeHandle::new(&idb, s.clone()),
        ScopeHandle::new(&mem, s.clone()),
    );
    let all = Query::on("objects", ["g"]);
    for q in [
        all.clone(),
        all.clone().desc(),
        all.clone().desc().limit(2500),
        all.clone().gte(1).limit(2100),
        all.clone().any_of([json!(0), json!(2)]).desc(),
    ] {
        let page = hi.query(&q).await.unwrap();
        assert_eq!(page, hm.query(&q).await.unwrap(), "{q:?}");
        assert_eq!(
            hi.query_count(&q).await.unwrap(),
            hm.query_count(&q).await.unwrap()
        );
        if let Some(c) = page.cursor {
            let next = q.clone().after(c);
            assert_eq!(
                hi.query(&next).await.unwrap(),
                hm.query(&next).await.unwrap()
            );
        }
    }
    assert_eq!(hi.query(&all).await.unwrap().records.len(), 4100);
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_write_from_another_tab_follows_the_set_it_declared() {
    let name = db_name("tabs");
    let s = scope("org");
    // Two stores on one database, as two tabs: the second opened before the first declared.
    let first = IdbStore::open(&name).await.unwrap();
    let second = IdbStore::open(&name).await.unwrap();
    let set = IndexSet::builder()
        .index("objects", ["name"])
        .build()
        .unwrap();
    first.declare_indexes(&set).await.unwrap();
    build_all(&first).await;
    assert!(
        second.indexes().is_empty(),
        "the second has not read the new set yet"
    );
    let h2 = ScopeHandle::new(&second, s.clone());
    h2.put("objects", "b", json!({"name": "bee"}))
        .await
        .unwrap();
    h2.put("objects", "a", json!({"name": "ant"}))
        .await
        .unwrap();
    h2.put("plain", "p", json!({"name": "ant"})).await.unwrap();
    let h1 = ScopeHandle::new(&first, s.clone());
    let q = Query::on("objects", ["name"]);
    assert_eq!(ids(&h1.query(&q).await.unwrap()), ["a", "b"]);
    h2.delete("objects", "a").await.unwrap();
    assert_eq!(ids(&h1.query(&q).await.unwrap()), ["b"]);
    assert_eq!(
        h1.query_count(&q.clone().eq([json!("ant")])).await.unwrap(),
        0
    );
    drop((first, second));
    IdbStore::delete(&name).await.unwrap();
}

/// A scan reads its index's entries together with the declared set, guessing the index's
/// number from the set its store read last; another tab's declaration since (the same name
/// over other paths: a new number, built anew) must win over the guess.
#[wasm_bindgen_test]
async fn a_scan_follows_a_set_declared_since_the_last_scan() {
    let name = db_name("guess");
    let s = scope("org");
    let first = IdbStore::open(&name).await.unwrap();
    let second = IdbStore::open(&name).await.unwrap();
    let on = |path: &str| {
        IndexSet::builder()
            .named("by", "objects", [path])
            .build()
            .unwrap()
    };
    first.declare_indexes(&on("name")).await.unwrap();
    build_all(&first).await;
    let h1 = ScopeHandle::new(&first, s.clone());
    h1.put("objects", "a", json!({"name": "ant", "kind": "x"}))
        .await
        .unwrap();
    h1.put("objects", "b", json!({"name": "bee", "kind": "ant"}))
        .await
        .unwrap();
    let q = Query::named("objects", "by").eq([json!("ant")]);
    assert_eq!(ids(&h1.query(&q).await.unwrap()), ["a"]);
    assert_eq!(h1.query_count(&q).await.unwrap(), 1);

    second.declare_indexes(&on("kind")).await.unwrap();
    let building = h1.query(&q).await.unwrap_err();
    assert_eq!(building.kind(), ErrorKind::InvalidInput, "{building}");
    assert!(building.to_string().contains("being built"), "{building}");
    let building = h1.query_count(&q).await.unwrap_err();
    assert!(building.to_string().contains("being built"), "{building}");

    build_all(&second).await;
    assert_eq!(ids(&h1.query(&q).await.unwrap()), ["b"]);
    assert_eq!(h1.query_count(&q).await.unwrap(), 1);
    drop((first, second));
    IdbStore::delete(&name).await.unwrap();
}

/// Puts (`Some`) or deletes a record locally in both stores.
async fn put_both(
    idb: &IdbStore,
    mem: &MemoryStore,
    s: &ScopeId,
    collection: &str,
    id: &str,
    data: Option<Value>,
) {
    let (hi, hm) = (
        ScopeHandle::new(idb, s.clone()),
        ScopeHandle::new(mem, s.clone()),
    );
    match data {
        Some(d) => {
            hi.put(collection, id, d.clone()).await.unwrap();
            hm.put(collection, id, d).await.unwrap();
        }
        None => {
            hi.delete(collection, id).await.unwrap();
            hm.delete(collection, id).await.unwrap();
        }
    }
}

/// Syncs both stores from `cloud`: the same report.
async fn for_both(idb: &IdbStore, mem: &MemoryStore, cloud: &Cloud, s: &ScopeId) {
    let clock = || 5_i64;
    let opts = SyncOptions::default();
    let a = Syncer::new(idb, cloud, &clock).sync(s, opts).await.unwrap();
    let b = Syncer::new(mem, cloud, &clock).sync(s, opts).await.unwrap();
    assert_eq!(a, b);
}

/// Creates a database as the version-1 store did (its schema, its row and scope encodings),
/// holding `rows` in `scope`.
async fn create_version_1(name: &str, scope: &ScopeId, rows: &[(&str, &str, Value)]) {
    let req = factory().open_with_u32(name, 1).unwrap();
    let target = req.clone();
    let upgrade = Closure::<dyn FnMut()>::new(move || {
        let db: IdbDatabase = target.result().unwrap().unchecked_into();
        let strs = |s: &[&str]| s.iter().map(|s| JsValue::from_str(s)).collect::<Array>();
        let rows = db.create_object_store("rows").unwrap();
        rows.create_index_with_str_sequence("pending", &strs(&["s", "p"]))
            .unwrap();
        db.create_object_store("meta").unwrap();
        let auto = web_sys::IdbObjectStoreParameters::new();
        auto.set_auto_increment(true);
        for store in ["conflicts", "runs"] {
            let os = db
                .create_object_store_with_optional_parameters(store, &auto)
                .unwrap();
            os.create_index_with_str("scope", "s").unwrap();
            if store == "runs" {
                os.create_index_with_str("running", "r").unwrap();
            }
        }
    });
    req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db: IdbDatabase = done(&req).await.unchecked_into();
    let tx = db
        .transaction_with_str_sequence_and_mode(
            &Array::of2(&"rows".into(), &"meta".into()),
            IdbTransactionMode::Readwrite,
        )
        .unwrap();
    let os = tx.object_store("rows").unwrap();
    let mut totals = Snapshot::default();
    for (collection, id, data) in rows {
        let data = data.as_object().unwrap();
        let hash = record_hash(data);
        totals.insert(&leaf(collection, id, &hash));
        let meta = json!({"v": 1, "u": "2026-01-01T00:00:00.000Z", "c": hash, "g": 0});
        let value = js_sys::Object::new();
        js_sys::Reflect::set(&value, &"m".into(), &meta.to_string().into()).unwrap();
        js_sys::Reflect::set(
            &value,
            &"d".into(),
            &Value::Object(data.clone()).to_string().into(),
        )
        .unwrap();
        let key = Array::of3(
            &scope.as_str().into(),
            &Uint8Array::from(collection.as_bytes()),
            &Uint8Array::from(id.as_bytes()),
        );
        os.put_with_key(&value, &key).unwrap();
    }
    let state = ScopeState {
        totals,
        ..ScopeState::default()
    };
    let meta = json!({"state": state, "generations": {"0": rows.len()}});
    let put = tx
        .object_store("meta")
        .unwrap()
        .put_with_key(&meta.to_string().into(), &scope.as_str().into())
        .unwrap();
    done(&put).await;
    db.close();
    drop(upgrade);
}

/// The database as it is now, at whatever version.
async fn open_current(name: &str) -> IdbDatabase {
    let req: IdbOpenDbRequest = factory().open(name).unwrap();
    done(&req).await.unchecked_into()
}

fn factory() -> IdbFactory {
    js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .unwrap()
        .unchecked_into()
}

async fn done(req: &IdbRequest) -> JsValue {
    let p = js_sys::Promise::new(&mut |res, rej| {
        req.set_onsuccess(Some(&res));
        req.set_onerror(Some(&rej));
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
    req.result().unwrap()
}
