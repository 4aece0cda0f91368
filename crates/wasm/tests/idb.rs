//! IdbStore in headless Chromium: a differential test against the engine's reference
//! `MemoryStore` (same operations, same answers to every read), plus the IndexedDB-specific
//! behaviours: key order by UTF-8 bytes, `versionchange`, aborted writes, quota mapping.
#![cfg(target_family = "wasm")]

use serde_json::json;
use tether_engine::cloud::{Cloud, Faults};
use tether_engine::{
    ErrorKind, Key, KeyRange, MemoryStore, ScopeHandle, ScopeId, Store, SyncOptions, Syncer,
};
use tether_wasm::IdbStore;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn db_name(test: &str) -> String {
    format!("tether-test-{test}-{}", js_sys::Math::random())
}

/// The number of entries of an object store of database `name`, read with plain IndexedDB.
async fn entries_in(name: &str, store: &str) -> u32 {
    let count = js_sys::Function::new_with_args(
        "name, store",
        "return new Promise((resolve, reject) => { \
           const open = indexedDB.open(name); \
           open.onerror = () => reject(open.error); \
           open.onsuccess = () => { \
             const db = open.result; \
             const q = db.transaction(store).objectStore(store).count(); \
             q.onerror = () => reject(q.error); \
             q.onsuccess = () => { db.close(); resolve(q.result); }; \
           }; \
         });",
    )
    .call2(&wasm_bindgen::JsValue::NULL, &name.into(), &store.into())
    .expect("count");
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(count))
        .await
        .expect("count")
        .as_f64()
        .expect("a number") as u32
}

/// Ids that sort differently by UTF-16 code units and by UTF-8 bytes.
const TRICKY: [&str; 4] = ["a", "\u{FF5E}tilde", "\u{1F600}smile", "z"];

fn seed(cloud: &Cloud, scope: &ScopeId) {
    for i in 0..150 {
        cloud.put(
            scope,
            "objects",
            &format!("obj_{i:04}"),
            json!({"name": format!("o{i}"), "n": i}),
            1,
        );
    }
    for (i, id) in TRICKY.iter().enumerate() {
        cloud.put(scope, "columns", id, json!({"i": i}), 1);
    }
}

async fn compare<S: Store, T: Store>(a: &S, b: &T, scope: &ScopeId) {
    assert_eq!(
        a.scope_state(scope).await.unwrap(),
        b.scope_state(scope).await.unwrap()
    );
    for c in ["objects", "columns", "nope"] {
        assert_eq!(
            a.list(scope, c, None, 1000).await.unwrap(),
            b.list(scope, c, None, 1000).await.unwrap(),
            "list {c}"
        );
        assert_eq!(
            a.list(scope, c, Some("obj_0100"), 7).await.unwrap(),
            b.list(scope, c, Some("obj_0100"), 7).await.unwrap()
        );
        assert_eq!(
            a.count(scope, Some(c)).await.unwrap(),
            b.count(scope, Some(c)).await.unwrap(),
            "count {c}"
        );
    }
    assert_eq!(
        a.count(scope, None).await.unwrap(),
        b.count(scope, None).await.unwrap()
    );
    assert_eq!(
        a.pending(scope, None, 100).await.unwrap(),
        b.pending(scope, None, 100).await.unwrap()
    );
    assert_eq!(
        a.pending(scope, Some(1), 1).await.unwrap(),
        b.pending(scope, Some(1), 1).await.unwrap()
    );
    assert_eq!(
        a.pending_count(scope).await.unwrap(),
        b.pending_count(scope).await.unwrap()
    );
    assert_eq!(
        a.conflicts(scope).await.unwrap(),
        b.conflicts(scope).await.unwrap()
    );
    assert_eq!(
        a.runs(scope, 100).await.unwrap(),
        b.runs(scope, 100).await.unwrap()
    );
    assert_eq!(
        a.runs(scope, 2).await.unwrap(),
        b.runs(scope, 2).await.unwrap()
    );
    assert_eq!(
        a.runs_since(scope, 3).await.unwrap(),
        b.runs_since(scope, 3).await.unwrap()
    );
    assert_eq!(a.scopes().await.unwrap(), b.scopes().await.unwrap());
    let ranges = [
        KeyRange::all(),
        KeyRange {
            from: Some(Key::new("objects", "obj_0010")),
            to: Some(Key::new("objects", "obj_0020")),
        },
        KeyRange {
            from: Some(Key::new("columns", "\u{FF5E}")),
            to: None,
        },
        KeyRange {
            from: Some(Key::new("z", "")),
            to: Some(Key::new("a", "")),
        },
    ];
    for r in &ranges {
        for rehash in [false, true] {
            assert_eq!(
                a.range_snapshot(scope, r, rehash).await.unwrap(),
                b.range_snapshot(scope, r, rehash).await.unwrap()
            );
        }
        assert_eq!(
            a.range_keys(scope, r, 1000).await.unwrap(),
            b.range_keys(scope, r, 1000).await.unwrap()
        );
        assert_eq!(
            a.range_keys(scope, r, 3).await.unwrap(),
            b.range_keys(scope, r, 3).await.unwrap()
        );
        for n in [0, 1, 2, 77, 1000] {
            assert_eq!(
                a.nth_key(scope, r, n).await.unwrap(),
                b.nth_key(scope, r, n).await.unwrap(),
                "nth {n}"
            );
        }
    }
    for c in ["objects", "columns"] {
        for id in ["obj_0003", "a", "\u{1F600}smile", "missing", "new_1"] {
            let k = Key::new(c, id);
            assert_eq!(
                a.row(scope, &k).await.unwrap(),
                b.row(scope, &k).await.unwrap()
            );
        }
    }
}

#[wasm_bindgen_test]
async fn behaves_like_the_memory_store() {
    let name = db_name("diff");
    let idb = IdbStore::open(&name).await.unwrap();
    let mem = MemoryStore::new();
    let scope = ScopeId::new("org-1").unwrap();
    let cloud = Cloud::new();
    seed(&cloud, &scope);
    let clock = || 5_i64;
    let opts = SyncOptions {
        page_size: 40,
        ..SyncOptions::default()
    };

    let ri = Syncer::new(&idb, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap();
    let rm = Syncer::new(&mem, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap();
    assert_eq!(ri, rm);
    assert_eq!(ri.snapshot, cloud.snapshot(&scope));
    // Keys come back in UTF-8 byte order: U+FF5E (EF BD 9E) before U+1F600 (F0 9F 98 80).
    let ids: Vec<String> = idb
        .list(&scope, "columns", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.id)
        .collect();
    assert_eq!(ids, ["a", "z", "\u{FF5E}tilde", "\u{1F600}smile"]);
    compare(&idb, &mem, &scope).await;

    // Local edits: a put, a create, a delete; then the cloud overwrites one of them.
    for store_is_idb in [true, false] {
        macro_rules! edits {
            ($s:expr) => {{
                let h = ScopeHandle::new($s, scope.clone());
                h.put("objects", "obj_0003", json!({"name": "mine"})).await.unwrap();
                h.put("objects", "new_1", json!({"name": "new"})).await.unwrap();
                h.delete("objects", "obj_0004").await.unwrap();
                h.delete("columns", "a").await.unwrap();
            }};
        }
        if store_is_idb {
            edits!(&idb)
        } else {
            edits!(&mem)
        }
    }
    compare(&idb, &mem, &scope).await;
    cloud.put(&scope, "objects", "obj_0003", json!({"name": "theirs"}), 2);
    cloud.delete(&scope, "objects", "obj_0007", 2);
    let clock = || 9_i64;
    // A pull-only remote: the edits stay pending, obj_0003 goes to the conflict journal.
    let ri = Syncer::new(&idb, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap();
    let rm = Syncer::new(&mem, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap();
    assert_eq!(ri, rm);
    assert_eq!(ri.run.counts.conflicts, 1);
    compare(&idb, &mem, &scope).await;
    let c = idb.conflicts(&scope).await.unwrap();
    assert!(idb.dismiss_conflict(&scope, c[0].id).await.unwrap());
    assert!(!idb.dismiss_conflict(&scope, c[0].id).await.unwrap());
    assert!(mem.dismiss_conflict(&scope, c[0].id).await.unwrap());
    assert!(idb.conflicts(&scope).await.unwrap().is_empty());
    // Kept in the journal, as the SQLite store keeps it: an overwritten edit is never lost.
    assert_eq!(entries_in(&name, "conflicts").await, 1);

    // Reset: tombstones purged, the next pull answers 410, a full resync sweeps stale rows.
    let v = cloud.delete(&scope, "objects", "obj_0008", 3);
    cloud.purge_tombstones(&scope, v);
    let ri = Syncer::new(&idb, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap();
    assert_eq!(ri.run.kind, tether_engine::RunKind::FullResync);
    let rm = Syncer::new(&mem, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap();
    assert_eq!(ri, rm);
    assert_eq!(ri.snapshot, cloud.snapshot(&scope));
    assert!(idb
        .row(&scope, &Key::new("objects", "obj_0008"))
        .await
        .unwrap()
        .is_none());
    compare(&idb, &mem, &scope).await;

    // A corrupted page is rejected whole: the checkpoint does not move.
    cloud.put(&scope, "objects", "obj_0009", json!({"name": "v2"}), 4);
    let before = idb.scope_state(&scope).await.unwrap();
    cloud.inject(Faults {
        corrupt_next: true,
        ..Faults::default()
    });
    let err = Syncer::new(&idb, &cloud, &clock)
        .sync(&scope, opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(idb.scope_state(&scope).await.unwrap(), before);
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

/// A write whose keys fill at least half of their span (a re-download, a dense update) reads
/// the span's rows with one `getAll`: every key must still get its own row, the rows of the
/// span that the write does not name skipped, keys absent from the span none.
#[wasm_bindgen_test]
async fn a_dense_span_read_whole_gives_each_key_its_own_row() {
    // Every other object of obj_0000..=obj_0100 (51 of the span's 101 rows), in reverse, an
    // absent key inside the span, and two columns (too few to probe: read one by one).
    let mut keys: Vec<Key> = (0..=100)
        .rev()
        .step_by(2)
        .map(|i| Key::new("objects", format!("obj_{i:04}")))
        .collect();
    keys.insert(10, Key::new("objects", "obj_0050x"));
    keys.push(Key::new("columns", "a"));
    keys.push(Key::new("columns", "missing"));
    assert_update_reads_each_key_alone("dense", &keys, 52).await;
}

/// A write whose keys are spread over many stored rows (a delta on a large replica): the
/// sample of its first keys' span comes back full, so the whole span is not probed and each
/// key is read with its own `get`. Every key must still get its own row, absent keys none.
#[wasm_bindgen_test]
async fn keys_spread_over_stored_rows_are_read_one_by_one() {
    // Every fifth object (the first sixteen keys span 71 stored rows), out of order, absent
    // keys among them.
    let mut keys: Vec<Key> = (0..150)
        .step_by(5)
        .rev()
        .map(|i| Key::new("objects", format!("obj_{i:04}")))
        .collect();
    keys.insert(3, Key::new("objects", "obj_0120x"));
    keys.push(Key::new("objects", "obj_9999"));
    assert_update_reads_each_key_alone("spread", &keys, 30).await;
}

/// Syncs the seeded scope into a new store, then checks that the rows an `update` of `keys`
/// hands its planner are those read one `row` at a time (`present` of them stored).
async fn assert_update_reads_each_key_alone(tag: &str, keys: &[Key], present: usize) {
    let name = db_name(tag);
    let idb = IdbStore::open(&name).await.unwrap();
    let scope = ScopeId::new("org-1").unwrap();
    let cloud = Cloud::new();
    seed(&cloud, &scope);
    let opts = SyncOptions {
        page_size: 1000,
        ..SyncOptions::default()
    };
    Syncer::new(&idb, &cloud, &|| 5_i64)
        .sync(&scope, opts)
        .await
        .unwrap();
    let mut expected = Vec::new();
    for k in keys {
        expected.push(idb.row(&scope, k).await.unwrap());
    }
    assert_eq!(expected.iter().filter(|r| r.is_some()).count(), present);
    let seen = std::cell::RefCell::new(Vec::new());
    idb.update(&scope, keys, true, &|st: &tether_engine::ScopeState,
                                     rows: &[Option<
        tether_engine::Row,
    >]| {
        *seen.borrow_mut() = rows.to_vec();
        Ok(tether_engine::rules::Changeset::starting_from(
            st,
            tether_engine::rules::Source::Pull,
        ))
    })
    .await
    .unwrap();
    assert_eq!(seen.into_inner(), expected);
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn planner_error_writes_nothing() {
    let name = db_name("abort");
    let idb = IdbStore::open(&name).await.unwrap();
    let scope = ScopeId::new("s").unwrap();
    let h = ScopeHandle::new(&idb, scope.clone());
    h.put("c", "1", json!({"a": 1})).await.unwrap();
    let before = idb.scope_state(&scope).await.unwrap();
    let err = idb
        .update(
            &scope,
            &[Key::new("c", "1")],
            true,
            &|_: &tether_engine::ScopeState, _: &[Option<tether_engine::Row>]| {
                Err(tether_engine::Error::invalid("no"))
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(idb.scope_state(&scope).await.unwrap(), before);
    assert_eq!(h.get("c", "1").await.unwrap().unwrap().data["a"], 1);
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn versionchange_closes_and_reopens() {
    let name = db_name("vc");
    let idb = IdbStore::open(&name).await.unwrap();
    let scope = ScopeId::new("s").unwrap();
    let h = ScopeHandle::new(&idb, scope.clone());
    h.put("c", "1", json!({"a": 1})).await.unwrap();
    // Another tab upgrades the schema: it is not blocked, because this store lets go.
    let upgraded = open_raw(&name, 3).await;
    upgraded.close();
    // The store reopens (at the newer version) and sees its data.
    assert_eq!(h.get("c", "1").await.unwrap().unwrap().data["a"], 1);
    h.put("c", "2", json!({"a": 2})).await.unwrap();
    assert_eq!(h.count(None).await.unwrap(), 2);
    // Another tab deletes the database: the delete is not blocked either.
    IdbStore::delete(&name).await.unwrap();
    assert_eq!(h.count(None).await.unwrap(), 0);
    drop(idb);
    IdbStore::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
fn quota_exceeded_is_a_storage_error() {
    let e = tether_wasm::idb::storage_error_named("transaction", "QuotaExceededError", "full");
    assert_eq!(e.kind(), ErrorKind::Storage);
    assert_eq!(e.detail(), Some(tether_engine::Detail::Quota));
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("QuotaExceededError: full"));
    assert!(e.to_string().contains("quota exceeded"), "{e}");
    assert!(e.to_string().contains("checkpoint"), "{e}");
}

async fn open_raw(name: &str, version: u32) -> web_sys::IdbDatabase {
    use wasm_bindgen::JsCast;
    let factory: web_sys::IdbFactory = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .unwrap()
        .unchecked_into();
    let req = factory.open_with_u32(name, version).unwrap();
    let p = js_sys::Promise::new(&mut |res, rej| {
        req.set_onsuccess(Some(&res));
        req.set_onerror(Some(&rej));
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
    req.result().unwrap().unchecked_into()
}
