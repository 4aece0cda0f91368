//! Queries, change events and live queries of the native `Replica`, on a real SQLite file,
//! synced from the in-process cloud.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use serde_json::json;
use tether_engine::cloud::Cloud;
use tether_engine::schedule::Schedule;
use tether_engine::{ErrorKind, ScopeId};
use tether_native::{
    BackgroundOptions, ChangeEvent, ChangeOp, IndexSet, Query, QueryPage, Replica, Source,
    SyncOptions,
};

const WAIT: Duration = Duration::from_secs(10);

fn sid(s: &str) -> ScopeId {
    ScopeId::new(s).unwrap()
}

fn indexes() -> IndexSet {
    IndexSet::builder()
        .index("columns", ["object_id", "position"])
        .index("objects", ["name"])
        .build()
        .unwrap()
}

/// A cloud with 3 objects of 4 columns each, positions given in reverse of the ids.
fn cloud() -> Cloud {
    let cloud = Cloud::new();
    let s = sid("org-1");
    for o in 0..3 {
        cloud.put(
            &s,
            "objects",
            &format!("obj_{o}"),
            json!({"name": format!("table_{o}")}),
            0,
        );
        for c in 0..4 {
            cloud.put(
                &s,
                "columns",
                &format!("col_{o}_{c}"),
                json!({"object_id": format!("obj_{o}"), "position": 3 - c}),
                0,
            );
        }
    }
    cloud
}

fn ids(page: &QueryPage) -> Vec<&str> {
    page.records.iter().map(|r| r.id.as_str()).collect()
}

fn small_pages() -> SyncOptions<'static> {
    SyncOptions {
        page_size: 5,
        ..SyncOptions::default()
    }
}

#[test]
fn queries_answer_after_a_sync_and_after_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = cloud();
    {
        let replica = Replica::builder().indexes(indexes()).open(&path).unwrap();
        let scope = replica.scope("org-1").unwrap();
        scope.sync(&cloud, small_pages()).unwrap();
        let q = Query::on("columns", ["object_id", "position"]).eq([json!("obj_1")]);
        let page = scope.query(&q).unwrap();
        assert_eq!(ids(&page), ["col_1_3", "col_1_2", "col_1_1", "col_1_0"]);
        assert_eq!(page.cursor, None);
        assert_eq!(scope.query_count(&q).unwrap(), 4);
        // Pages of two, descending, with a range on the second path.
        let q = q.gte(1).desc().limit(2);
        let first = scope.query(&q).unwrap();
        assert_eq!(ids(&first), ["col_1_0", "col_1_1"]);
        let second = scope
            .query(&q.clone().after(first.cursor.unwrap()))
            .unwrap();
        assert_eq!(ids(&second), ["col_1_2"]);
        assert_eq!(second.cursor, None);
        // A query on an index that is not declared names it.
        let err = scope.query(&Query::on("columns", ["name"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("columns.name"), "{err}");
    }
    // Opened without options: the file's indexes are kept, and kept up to date.
    let replica = Replica::open(&path).unwrap();
    assert_eq!(replica.indexes(), indexes());
    let scope = replica.scope("org-1").unwrap();
    cloud.put(
        &sid("org-1"),
        "objects",
        "obj_9",
        json!({"name": "table_0b"}),
        0,
    );
    cloud.delete(&sid("org-1"), "objects", "obj_0", 0);
    scope.sync(&cloud, SyncOptions::default()).unwrap();
    let page = scope
        .query(&Query::on("objects", ["name"]).prefix("table_0"))
        .unwrap();
    assert_eq!(ids(&page), ["obj_9"]);
}

#[test]
fn events_of_local_edits_pulls_and_pushes_name_their_source_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("replica.db")).unwrap();
    let scope = replica.scope("org-1").unwrap();
    let changes = scope.changes();
    let cloud = cloud();

    let report = scope.sync(&cloud, small_pages()).unwrap();
    let pulled: Vec<ChangeEvent> = changes.try_iter().collect();
    assert_eq!(
        pulled.len(),
        3,
        "15 records in pages of 5: one event per page"
    );
    for e in &pulled {
        assert_eq!(
            (e.source, e.run, e.scope.as_str()),
            (Source::Pull, Some(report.run.id), "org-1")
        );
        assert!(e.changes.iter().all(|c| c.op == ChangeOp::Insert));
    }
    assert_eq!(pulled.iter().map(|e| e.changes.len()).sum::<usize>(), 15);

    scope
        .put("objects", "obj_1", json!({"name": "renamed"}))
        .unwrap();
    scope.delete("objects", "obj_2").unwrap();
    // Another scope's edit is not this scope's event.
    replica
        .scope("org-2")
        .unwrap()
        .put("objects", "x", json!({}))
        .unwrap();
    let local: Vec<ChangeEvent> = changes.try_iter().collect();
    assert_eq!(local.len(), 2);
    assert!(local
        .iter()
        .all(|e| e.source == Source::Local && e.run.is_none()));
    assert_eq!(
        (local[0].changes[0].id.as_str(), local[0].changes[0].op),
        ("obj_1", ChangeOp::Update)
    );
    assert_eq!(
        (local[1].changes[0].id.as_str(), local[1].changes[0].op),
        ("obj_2", ChangeOp::Delete)
    );

    // The push is accepted (its records' pending flags clear: push events of the run); a
    // change made in the cloud meanwhile comes with the pull of the same run.
    cloud.put(
        &sid("org-1"),
        "columns",
        "col_0_0",
        json!({"object_id": "obj_0", "position": 9}),
        0,
    );
    let report = scope.sync(&cloud, SyncOptions::default()).unwrap();
    let synced: Vec<ChangeEvent> = changes.try_iter().collect();
    assert!(!synced.is_empty());
    assert!(
        synced.iter().all(|e| e.run == Some(report.run.id)),
        "{synced:?}"
    );
    let pull = synced
        .iter()
        .find(|e| e.source == Source::Pull)
        .expect("a pull event");
    assert!(pull
        .changes
        .iter()
        .any(|c| c.id == "col_0_0" && c.op == ChangeOp::Update));

    // A push the cloud rejects (someone else changed the record) replaces the visible data:
    // a push event of the run.
    scope
        .put("objects", "obj_1", json!({"name": "mine"}))
        .unwrap();
    cloud.put(
        &sid("org-1"),
        "objects",
        "obj_1",
        json!({"name": "theirs"}),
        0,
    );
    let _ = changes.try_iter().count();
    let report = scope.sync(&cloud, SyncOptions::default()).unwrap();
    assert_eq!(report.run.counts.conflicts, 1);
    let synced: Vec<ChangeEvent> = changes.try_iter().collect();
    let push = synced
        .iter()
        .find(|e| e.source == Source::Push)
        .expect("a push event");
    assert_eq!(push.run, Some(report.run.id));
    assert_eq!(
        (push.changes[0].id.as_str(), push.changes[0].op),
        ("obj_1", ChangeOp::Update)
    );
    assert_eq!(
        scope.get("objects", "obj_1").unwrap().unwrap().data["name"],
        "theirs"
    );

    drop(changes);
    assert_eq!(
        replica.events().listeners(),
        0,
        "dropping the channel unsubscribes"
    );
}

#[test]
fn a_watch_sees_a_sync_and_a_local_edit_ignores_what_leaves_it_unchanged_and_stops_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::builder()
        .indexes(indexes())
        .open(dir.path().join("replica.db"))
        .unwrap();
    let scope = replica.scope("org-1").unwrap();
    let (tx, rx) = mpsc::channel::<Vec<(String, bool)>>();
    let q = Query::on("columns", ["object_id", "position"]).eq([json!("obj_2")]);
    let watch = scope
        .watch(q, move |page| {
            let rows = page
                .records
                .iter()
                .map(|r| (r.id.clone(), r.pending))
                .collect();
            let _ = tx.send(rows);
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        vec![],
        "the first result, empty"
    );

    scope.sync(&cloud(), SyncOptions::default()).unwrap();
    let after_sync = rx.recv_timeout(WAIT).unwrap();
    let got: Vec<&str> = after_sync.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got, ["col_2_3", "col_2_2", "col_2_1", "col_2_0"]);

    // Changes that leave the result as it was call nothing back: another collection, a
    // column of another object.
    scope.put("objects", "obj_2", json!({"name": "x"})).unwrap();
    scope
        .put(
            "columns",
            "col_0_0",
            json!({"object_id": "obj_0", "position": 7}),
        )
        .unwrap();
    // A local edit of a column in the result does.
    scope
        .put(
            "columns",
            "col_2_0",
            json!({"object_id": "obj_2", "position": -1}),
        )
        .unwrap();
    let edited = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(
        edited[0],
        ("col_2_0".to_owned(), true),
        "first now, pending: {edited:?}"
    );
    assert_eq!(edited.len(), 4);
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing else changed it"
    );
    assert!(watch.last_error().is_none());

    drop(watch);
    assert_eq!(replica.events().listeners(), 0);
    scope
        .put(
            "columns",
            "col_2_9",
            json!({"object_id": "obj_2", "position": 5}),
        )
        .unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no callback after the watch is dropped"
    );
}

#[test]
fn a_burst_of_changes_is_coalesced_into_few_requeries() {
    let replica = Replica::builder()
        .indexes(indexes())
        .open_in_memory()
        .unwrap();
    let scope = replica.scope("org-1").unwrap();
    let calls = Arc::new(Mutex::new(Vec::<usize>::new()));
    let gate = Arc::new(Barrier::new(2));
    let (sink, gate_in) = (calls.clone(), gate.clone());
    let watch = scope
        .watch(Query::on("objects", ["name"]), move |page| {
            let first = sink.lock().unwrap().is_empty();
            sink.lock().unwrap().push(page.records.len());
            if first {
                gate_in.wait(); // hold the thread while the burst comes in
            }
        })
        .unwrap();
    while calls.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..50 {
        scope
            .put(
                "objects",
                &format!("o{i:02}"),
                json!({"name": format!("n{i}")}),
            )
            .unwrap();
    }
    gate.wait();
    let deadline = std::time::Instant::now() + WAIT;
    while calls.lock().unwrap().last() != Some(&50) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            calls.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    watch.stop();
    assert_eq!(*calls.lock().unwrap(), [0, 50], "50 events, one re-query");
}

#[test]
fn a_query_that_cannot_run_is_refused_by_watch() {
    let replica = Replica::open_in_memory().unwrap();
    let scope = replica.scope("org-1").unwrap();
    let err = scope
        .watch(Query::on("objects", ["name"]), |_| {})
        .err()
        .expect("no such index");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(replica.events().listeners(), 0);
}

#[test]
fn background_syncs_publish_on_the_replica_and_wake_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::builder()
        .indexes(indexes())
        .open(dir.path().join("replica.db"))
        .unwrap();
    let scope = replica.scope("org-1").unwrap();
    let changes = scope.changes();
    let (tx, rx) = mpsc::channel();
    let _watch = scope
        .watch(Query::on("objects", ["name"]), move |page| {
            let _ = tx.send(page.records.len());
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 0);
    let options = BackgroundOptions {
        schedule: Schedule {
            interval_ms: 60_000,
            ..Schedule::default()
        },
        ..BackgroundOptions::default()
    };
    let background = replica
        .background("org-1", Arc::new(cloud()), options)
        .unwrap();
    let event = changes.recv_timeout(WAIT).unwrap();
    assert_eq!(event.source, Source::Pull);
    assert!(event.run.is_some());
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        3,
        "the watch saw the background sync"
    );
    let deadline = std::time::Instant::now() + WAIT;
    while background.status().last_report.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            background.status()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = background.stop();
    assert_eq!(status.last_report.map(|r| r.run.id), event.run);
}

#[test]
fn opening_with_a_new_index_builds_it_over_existing_records_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let cloud = Cloud::new();
    let s = sid("org-1");
    // More rows than one build step takes, so the build spans several transactions.
    let n = tether_native::BUILD_BATCH * 2 + 500;
    for i in 0..n {
        cloud.put(
            &s,
            "objects",
            &format!("obj_{i:05}"),
            json!({"name": format!("t{}", i % 10)}),
            0,
        );
    }
    {
        let replica = Replica::open(&path).unwrap();
        let scope = replica.scope("org-1").unwrap();
        scope.sync(&cloud, SyncOptions::default()).unwrap();
        assert!(
            scope.query(&Query::on("objects", ["name"])).is_err(),
            "no index yet"
        );
    }
    let replica = Replica::builder().indexes(indexes()).open(&path).unwrap();
    let scope = replica.scope("org-1").unwrap();
    let q = Query::on("objects", ["name"]).eq([json!("t3")]);
    assert_eq!(scope.query_count(&q).unwrap(), (n / 10) as u64);
    let page = scope.query(&q.clone().limit(3)).unwrap();
    assert_eq!(ids(&page), ["obj_00003", "obj_00013", "obj_00023"]);
    assert_eq!(scope.count(None).unwrap(), n as u64, "no record lost");
}
