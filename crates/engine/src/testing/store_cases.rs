//! Store contract cases: each operation of [`Store`] on hand-written changesets, checked
//! against what it must read, write and return.

use serde_json::json;

use crate::digest::{record_hash, Snapshot};
use crate::error::{Detail, Error, ErrorKind, RunError};
use crate::rules::{Changeset, Prior, Row, RowWrite, ScopeState};
use crate::store::{snapshot_of, Store};
use crate::types::{Conflict, Counts, Key, KeyRange, Op, Run, RunKind, RunStatus};

use super::*;

/// A scope never written reads as the default state, with no rows, runs or conflicts.
pub async fn unknown_scope_has_default_state<S: Store>(store: &S) {
    let s = sid("nowhere");
    assert_eq!(store.scope_state(&s).await.unwrap(), ScopeState::default());
    assert_eq!(store.row(&s, &Key::new("a", "b")).await.unwrap(), None);
    assert_eq!(store.count(&s, None).await.unwrap(), 0);
    assert!(store.list(&s, "a", None, 10).await.unwrap().is_empty());
    assert!(store.pending(&s, None, 10).await.unwrap().is_empty());
    assert!(store.conflicts(&s).await.unwrap().is_empty());
    assert!(store.runs(&s, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), true)
            .await
            .unwrap(),
        Snapshot::default()
    );
    assert!(store.scopes().await.unwrap().is_empty());
}

/// `update` hands the planner the state and rows, and writes state, rows and conflicts (with
/// fresh ids) in one go.
pub async fn update_writes_rows_state_and_conflicts<S: Store>(store: &S) {
    let s = sid("s1");
    put_rows(store, &s, vec![row("t", "a", json!({"x": 1}), 1, 1)]).await;
    let keys = [Key::new("t", "a"), Key::new("t", "b")];
    let seen = std::sync::Mutex::new(None);
    let conflict = Conflict {
        id: 0,
        scope: "s1".into(),
        collection: "t".into(),
        record_id: "a".into(),
        local_op: Op::Put,
        local_data: Some(obj(json!({"mine": true}))),
        base_version: Some(1),
        cloud_version: 2,
        cloud_hash: None,
        at: NOW,
        reason: None,
    };
    let applied = store
        .update(&s, &keys, false, |st: &ScopeState, rows: &[Option<Row>]| {
            *seen.lock().unwrap() = Some((
                st.clone(),
                rows.iter()
                    .map(|r| r.as_ref().map(|r| (r.key.clone(), r.version, r.cloud_hash)))
                    .collect::<Vec<_>>(),
            ));
            let mut scope = st.clone();
            scope.checkpoint = Some(crate::Checkpoint("cp-7".into()));
            scope.next_seq = 9;
            Ok(Changeset {
                scope,
                rows: vec![RowWrite::Put {
                    row: row("t", "b", json!({"y": "é"}), 2, 1),
                    prior: None,
                }],
                conflicts: vec![
                    conflict.clone(),
                    Conflict {
                        record_id: "b".into(),
                        reason: Some("too_large".into()),
                        ..conflict.clone()
                    },
                ],
                counts: Counts {
                    inserted: 1,
                    ..Counts::default()
                },
                source: crate::events::Source::Pull,
            })
        })
        .await
        .unwrap();
    assert_eq!(applied.counts.inserted, 1);
    let (st, rows) = seen.lock().unwrap().take().unwrap();
    assert_eq!(st.totals.count, 1, "the planner sees the committed totals");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].as_ref().map(|r| (&r.0, r.1)),
        Some((&Key::new("t", "a"), 1))
    );
    assert!(rows[1].is_none(), "absent keys are None, in order");
    let state = store.scope_state(&s).await.unwrap();
    assert_eq!(state.checkpoint.as_ref().map(|c| c.as_str()), Some("cp-7"));
    assert_eq!(state.next_seq, 9);
    assert_eq!(
        store.row(&s, &Key::new("t", "b")).await.unwrap(),
        Some(row("t", "b", json!({"y": "é"}), 2, 1))
    );
    let conflicts = store.conflicts(&s).await.unwrap();
    assert_eq!(conflicts.len(), 2);
    assert_ne!(
        conflicts[0].id, conflicts[1].id,
        "the store assigns distinct ids"
    );
    assert_eq!(conflicts[0].record_id, "a", "oldest first");
    assert_eq!(conflicts[0].local_data, conflict.local_data);
    assert_eq!(
        conflicts
            .iter()
            .map(|c| Conflict { id: 0, ..c.clone() })
            .collect::<Vec<_>>(),
        [
            conflict.clone(),
            Conflict {
                record_id: "b".into(),
                reason: Some("too_large".into()),
                ..conflict.clone()
            }
        ],
        "every field round-trips, the reason too"
    );
    assert!(store.dismiss_conflict(&s, conflicts[0].id).await.unwrap());
    assert!(
        !store.dismiss_conflict(&s, conflicts[0].id).await.unwrap(),
        "dismissed once"
    );
    assert!(
        !store
            .dismiss_conflict(&sid("other"), conflicts[1].id)
            .await
            .unwrap(),
        "scoped"
    );
    assert_eq!(store.conflicts(&s).await.unwrap().len(), 1);
}

/// A planner error aborts the transaction: nothing of the changeset is written.
pub async fn failed_plan_writes_nothing<S: Store>(store: &S) {
    let s = sid("s");
    put_rows(store, &s, vec![row("t", "a", json!({"v": 1}), 1, 1)]).await;
    let before = store.scope_state(&s).await.unwrap();
    let err = store
        .update(
            &s,
            &[Key::new("t", "a")],
            false,
            |_: &ScopeState, _: &[Option<Row>]| Err(Error::protocol("planner says no")),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Protocol,
        "the planner's error comes back as is"
    );
    assert_eq!(store.scope_state(&s).await.unwrap(), before);
    assert_eq!(store.count(&s, None).await.unwrap(), 1);
}

/// The store calls the planner exactly once per transaction, so a planner may move what it
/// owns (here the rows to write) into its changeset.
pub async fn planner_is_called_once<S: Store>(store: &S) {
    let s = sid("s");
    let owned = vec![row("t", "a", json!({"v": 1}), 1, 1)];
    let calls = std::sync::atomic::AtomicUsize::new(0);
    store
        .update(
            &s,
            &[Key::new("t", "a")],
            false,
            |st: &ScopeState, read: &[Option<Row>]| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut scope = st.clone();
                for r in &owned {
                    if let Some(h) = &r.cloud_hash {
                        scope
                            .totals
                            .insert(&crate::digest::leaf(&r.key.collection, &r.key.id, h));
                    }
                }
                Ok(Changeset {
                    scope,
                    rows: puts(owned, read),
                    ..Changeset::default()
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(calls.into_inner(), 1, "one call per transaction");
    assert_eq!(
        store.row(&s, &Key::new("t", "a")).await.unwrap(),
        Some(row("t", "a", json!({"v": 1}), 1, 1))
    );
}

/// `Touch` changes the cloud fields and keeps data and hash; `Remove` deletes the row.
pub async fn touch_keeps_data_and_remove_deletes<S: Store>(store: &S) {
    let s = sid("s");
    put_rows(
        store,
        &s,
        vec![
            row("t", "a", json!({"v": 1}), 1, 1),
            row("t", "b", json!({"v": 2}), 2, 1),
        ],
    )
    .await;
    let other = record_hash(&obj(json!({"v": 99})));
    store
        .update(
            &s,
            &[Key::new("t", "a"), Key::new("t", "b")],
            false,
            |st: &ScopeState, read: &[Option<Row>]| {
                let prior = |slot: usize| read[slot].as_ref().map(|r| Prior::of(slot, r));
                let (Some(a), Some(b)) = (prior(0), prior(1)) else {
                    return Err(Error::storage("the rows put are not handed to the planner"));
                };
                Ok(Changeset {
                    scope: st.clone(),
                    rows: vec![
                        RowWrite::Touch {
                            key: Key::new("t", "a"),
                            prior: a,
                            version: 5,
                            updated_at: "later".into(),
                            cloud_hash: Some(other),
                            generation: 3,
                            pending: Some(4),
                            sent: Some(3),
                        },
                        RowWrite::Remove {
                            key: Key::new("t", "b"),
                            prior: b,
                            evict: false,
                        },
                    ],
                    ..Changeset::default()
                })
            },
        )
        .await
        .unwrap();
    let a = store.row(&s, &Key::new("t", "a")).await.unwrap().unwrap();
    let orig = row("t", "a", json!({"v": 1}), 1, 1);
    assert_eq!(a.data, orig.data);
    assert_eq!(a.hash, orig.hash);
    assert_eq!(
        (
            a.version,
            a.updated_at.as_str(),
            a.cloud_hash,
            a.generation,
            a.pending,
            a.sent
        ),
        (5, "later", Some(other), 3, Some(4), Some(3))
    );
    assert_eq!(store.row(&s, &Key::new("t", "b")).await.unwrap(), None);
}

/// Pending deletes are invisible to `list` and `count` but listed by `pending`, in sequence
/// order; `list` pages by id within one collection.
pub async fn list_count_and_pending_follow_visibility<S: Store>(store: &S) {
    let s = sid("s");
    let mut rows = Vec::new();
    for i in 0..7 {
        rows.push(row("files", &format!("f{i}"), json!({"i": i}), i + 1, 1));
    }
    rows.push(row("dirs", "d0", json!({}), 10, 1));
    rows.push(row("zzz", "z0", json!({}), 11, 1));
    let mut gone = row("files", "f3", json!({"i": 3}), 4, 1);
    gone.data = None;
    gone.hash = None;
    gone.pending = Some(2);
    rows[3] = gone;
    let mut edited = row("files", "f5", json!({"i": "edited"}), 6, 1);
    edited.cloud_hash = Some(record_hash(&obj(json!({"i": 5}))));
    edited.pending = Some(1);
    edited.sent = Some(0);
    rows[5] = edited;
    put_rows(store, &s, rows).await;
    assert_eq!(store.count(&s, Some("files")).await.unwrap(), 6);
    assert_eq!(store.count(&s, None).await.unwrap(), 8);
    let first: Vec<String> = store
        .list(&s, "files", None, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.id)
        .collect();
    assert_eq!(first, ["f0", "f1", "f2"]);
    let next: Vec<String> = store
        .list(&s, "files", Some("f2"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.id)
        .collect();
    assert_eq!(
        next,
        ["f4", "f5", "f6"],
        "after is exclusive and pending deletes are hidden"
    );
    let f5 = store.list(&s, "files", Some("f4"), 1).await.unwrap();
    assert_eq!(
        f5[0].data.as_ref().unwrap().to_data().unwrap()["i"],
        "edited",
        "list shows the local edit"
    );
    let pending: Vec<(String, Option<u64>, Option<u64>)> = store
        .pending(&s, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key.id, r.pending, r.sent))
        .collect();
    assert_eq!(
        pending,
        [
            ("f5".to_string(), Some(1), Some(0)),
            ("f3".to_string(), Some(2), None)
        ],
        "with the number of an edit pushed without answer"
    );
    assert_eq!(
        store.pending(&s, Some(1), 10).await.unwrap().len(),
        1,
        "after_seq is exclusive"
    );
    assert_eq!(store.pending(&s, None, 1).await.unwrap().len(), 1, "limit");
    assert_eq!(store.pending_count(&s).await.unwrap(), 2);
    assert_eq!(
        store
            .row(&s, &Key::new("files", "f3"))
            .await
            .unwrap()
            .unwrap()
            .data,
        None
    );
}

/// Keys order by collection then id, each as UTF-8 bytes (so "B" < "a" < "é" < "😀").
pub async fn keys_order_as_utf8_bytes<S: Store>(store: &S) {
    let s = sid("s");
    let ids = ["😀", "a", "B", "é", "a b", "ab", "\u{ff}"];
    put_rows(
        store,
        &s,
        ids.iter().map(|id| row("c", id, json!({}), 1, 1)).collect(),
    )
    .await;
    put_rows(
        store,
        &s,
        vec![
            row("b", "z", json!({}), 1, 1),
            row("cc", "0", json!({}), 1, 1),
        ],
    )
    .await;
    let mut want: Vec<&str> = ids.to_vec();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let listed: Vec<String> = store
        .list(&s, "c", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.id)
        .collect();
    assert_eq!(listed, want);
    let keys = store.range_keys(&s, &KeyRange::all(), 100).await.unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "range_keys are in key order");
    assert_eq!(keys.first().unwrap(), &Key::new("b", "z"));
    assert_eq!(keys.last().unwrap(), &Key::new("cc", "0"));
}

/// Range snapshots, keys and `nth_key` honour `[from, to)`; with `rehash`, data is hashed again.
pub async fn range_queries_cover_half_open_ranges<S: Store>(store: &S) {
    let s = sid("s");
    let rows: Vec<Row> = (0..20)
        .map(|i| row("c", &format!("k{i:02}"), json!({"i": i}), i + 1, 1))
        .collect();
    put_rows(store, &s, rows.clone()).await;
    let range = KeyRange {
        from: Some(Key::new("c", "k05")),
        to: Some(Key::new("c", "k10")),
    };
    let want = snapshot_of(rows[5..10].iter(), false);
    assert_eq!(store.range_snapshot(&s, &range, false).await.unwrap(), want);
    assert_eq!(store.range_snapshot(&s, &range, true).await.unwrap(), want);
    assert_eq!(
        store
            .range_snapshot(&s, &KeyRange::all(), false)
            .await
            .unwrap(),
        snapshot_of(rows.iter(), false)
    );
    let keys = store.range_keys(&s, &range, 100).await.unwrap();
    assert_eq!(
        keys,
        rows[5..10]
            .iter()
            .map(|r| r.key.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(store.range_keys(&s, &range, 2).await.unwrap().len(), 2);
    assert_eq!(
        store.nth_key(&s, &range, 0).await.unwrap(),
        Some(Key::new("c", "k05"))
    );
    assert_eq!(
        store.nth_key(&s, &range, 4).await.unwrap(),
        Some(Key::new("c", "k09"))
    );
    assert_eq!(store.nth_key(&s, &range, 5).await.unwrap(), None);
    let open_end = KeyRange {
        from: Some(Key::new("c", "k18")),
        to: None,
    };
    assert_eq!(store.range_keys(&s, &open_end, 100).await.unwrap().len(), 2);
    let empty = KeyRange {
        from: Some(Key::new("c", "k10")),
        to: Some(Key::new("c", "k05")),
    };
    assert_eq!(
        store.range_snapshot(&s, &empty, true).await.unwrap(),
        Snapshot::default()
    );
    // A row whose stored hashes disagree with its data: rehash sees the data.
    let mut liar = row("c", "k07", json!({"i": 7}), 8, 1);
    liar.data = Some(obj(json!({"i": "tampered"})).into());
    put_rows(store, &s, vec![liar]).await;
    assert_eq!(store.range_snapshot(&s, &range, false).await.unwrap(), want);
    assert_ne!(store.range_snapshot(&s, &range, true).await.unwrap(), want);
}

/// Every write of a changeset lands, whatever a store batches: puts, a remove, a touch and
/// a put again (each a statement of its own in the SQLite store, which runs a page's record
/// writes of one statement together, 16,384 values at most per run), after more puts than
/// one such run holds. One write per key, as the engine plans them (a page holds a key once).
pub async fn a_changeset_of_every_kind_of_write_lands_whole<S: Store>(store: &S) {
    let s = sid("s");
    let (a, e) = (
        row("c", "a", json!({"v": "é"}), 3, 1),
        row("c", "e", json!({"v": "😀"}), 4, 1),
    );
    let (b, d) = (
        row("c", "b", json!({}), 1, 1),
        row("c", "d", json!({}), 2, 1),
    );
    put_rows(store, &s, vec![b.clone(), d.clone()]).await;
    let many: Vec<Row> = (0..2_000)
        .map(|i| row("c", &format!("m{i:04}"), json!({"i": i}), 5, 1))
        .collect();
    let put = |row: &Row| RowWrite::Put {
        row: row.clone(),
        prior: None,
    };
    // The priors are of the rows put above, which the planner is handed (checked there).
    let mut writes: Vec<RowWrite> = many.iter().map(put).collect();
    writes.extend([
        put(&a),
        RowWrite::Remove {
            key: d.key.clone(),
            prior: Prior::of(1, &d),
            evict: false,
        },
        RowWrite::Touch {
            key: b.key.clone(),
            prior: Prior::of(0, &b),
            version: 6,
            updated_at: "later".into(),
            cloud_hash: b.hash,
            generation: 1,
            pending: None,
            sent: None,
        },
        put(&e),
    ]);
    let stored = [Some(Prior::of(0, &b)), Some(Prior::of(1, &d))];
    store
        .update(
            &s,
            &[b.key.clone(), d.key.clone()],
            false,
            move |st: &ScopeState, read: &[Option<Row>]| {
                let read: Vec<Option<Prior>> = (read.iter().enumerate())
                    .map(|(slot, r)| r.as_ref().map(|r| Prior::of(slot, r)))
                    .collect();
                assert_eq!(read, stored);
                Ok(Changeset {
                    scope: st.clone(),
                    rows: writes,
                    ..Changeset::default()
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(store.row(&s, &a.key).await.unwrap(), Some(a));
    assert_eq!(store.row(&s, &e.key).await.unwrap(), Some(e));
    assert_eq!(store.row(&s, &d.key).await.unwrap(), None);
    let touched = store.row(&s, &b.key).await.unwrap().expect("b is stored");
    assert_eq!((touched.version, touched.updated_at.as_str()), (6, "later"));
    assert_eq!(touched.data, b.data);
    assert_eq!(store.count(&s, None).await.unwrap(), 2_003);
    let last = many.last().unwrap();
    assert_eq!(store.row(&s, &last.key).await.unwrap().as_ref(), Some(last));
}

/// `update_stale` hands the planner exactly the rows of older generations, with data.
pub async fn update_stale_sees_older_generations<S: Store>(store: &S) {
    let s = sid("s");
    put_rows(
        store,
        &s,
        vec![
            row("c", "old1", json!({"a": 1}), 1, 1),
            row("c", "new", json!({}), 2, 2),
            row("c", "old2", json!({"b": 2}), 3, 1),
        ],
    )
    .await;
    let seen = std::sync::Mutex::new(Vec::new());
    store
        .update_stale(&s, 2, |st: &ScopeState, rows: &[Option<Row>]| {
            let mut out = Changeset {
                scope: st.clone(),
                ..Changeset::default()
            };
            for (slot, r) in rows.iter().enumerate() {
                let Some(r) = r else { continue };
                seen.lock()
                    .unwrap()
                    .push((r.key.id.clone(), r.data.clone()));
                out.rows.push(RowWrite::Remove {
                    key: r.key.clone(),
                    prior: Prior::of(slot, r),
                    evict: false,
                });
            }
            Ok(out)
        })
        .await
        .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "old1");
    assert_eq!(
        seen[0].1,
        Some(obj(json!({"a": 1})).into()),
        "stale rows come with their data"
    );
    assert_eq!(
        store.range_keys(&s, &KeyRange::all(), 10).await.unwrap(),
        vec![Key::new("c", "new")]
    );
}

/// Scopes share nothing: rows, state, conflicts, runs.
pub async fn scopes_are_independent<S: Store>(store: &S) {
    let (a, b) = (sid("org-a"), sid("org-b"));
    put_rows(store, &a, vec![row("c", "x", json!({"v": "a"}), 1, 1)]).await;
    put_rows(store, &b, vec![row("c", "x", json!({"v": "b"}), 7, 1)]).await;
    assert_eq!(
        store
            .row(&a, &Key::new("c", "x"))
            .await
            .unwrap()
            .unwrap()
            .data
            .unwrap()
            .to_data()
            .unwrap()["v"],
        "a"
    );
    assert_eq!(
        store
            .row(&b, &Key::new("c", "x"))
            .await
            .unwrap()
            .unwrap()
            .version,
        7
    );
    assert_eq!(store.count(&a, None).await.unwrap(), 1);
    let mut scopes = store.scopes().await.unwrap();
    scopes.sort();
    assert_eq!(scopes, vec![a.clone(), b.clone()]);
    let run = new_run("org-a");
    store.start_run(&run).await.unwrap();
    assert!(store.runs(&b, 10).await.unwrap().is_empty());
}

fn new_run(scope: &str) -> Run {
    Run::manual(&sid(scope), RunKind::Initial, NOW)
}

/// Runs get increasing ids, come back newest first, and a run left running is marked failed
/// when the next one of its scope starts.
pub async fn runs_are_recorded_newest_first<S: Store>(store: &S) {
    let s = sid("s");
    let first = store.start_run(&new_run("s")).await.unwrap();
    let other = store.start_run(&new_run("t")).await.unwrap();
    let second = store
        .start_run(&Run {
            started_at: NOW + 10,
            ..new_run("s")
        })
        .await
        .unwrap();
    assert!(second > first && other != second);
    let runs = store.runs(&s, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second, first]
    );
    assert_eq!(
        runs[1].status,
        RunStatus::Failed,
        "an overlapped run was interrupted"
    );
    assert!(runs[1].error.is_some());
    assert_eq!(
        store.runs(&sid("t"), 10).await.unwrap()[0].status,
        RunStatus::Running,
        "other scopes untouched"
    );
    let done = Run {
        id: second,
        started_at: NOW + 10,
        finished_at: Some(NOW + 50),
        status: RunStatus::Completed,
        pages: 3,
        counts: Counts {
            inserted: 5,
            updated: 1,
            deleted: 2,
            unchanged: 7,
            conflicts: 1,
            repaired: 0,
        },
        bytes_received: 1234,
        ..new_run("s")
    };
    store.finish_run(&done).await.unwrap();
    assert_eq!(
        store.runs(&s, 1).await.unwrap(),
        vec![done.clone()],
        "finish_run stores every field"
    );
    assert_eq!(store.runs_since(&s, NOW + 5).await.unwrap(), vec![done]);
    assert_eq!(store.runs_since(&s, NOW).await.unwrap().len(), 2);

    // A failed run keeps its error's kind, detail and message.
    let failed = store.start_run(&new_run("t")).await.unwrap();
    let error = Error::protocol("bad page").with_detail(Detail::HashMismatch);
    let failed = Run {
        id: failed,
        finished_at: Some(NOW + 1),
        status: RunStatus::Failed,
        error: Some(RunError::from(&error)),
        ..new_run("t")
    };
    store.finish_run(&failed).await.unwrap();
    assert_eq!(store.runs(&sid("t"), 1).await.unwrap(), vec![failed]);
}

/// Data comes back exactly: unicode, nesting, numbers, empty objects.
pub async fn data_round_trips_exactly<S: Store>(store: &S) {
    let s = sid("s");
    let data = json!({"name": "Zürich 😀 \"q\" \\ \n", "n": [1, -2.5, 1e21, 0.000001], "deep": {"a": {"b": [null, true, {}]}}, "": ""});
    put_rows(store, &s, vec![row("c", "x", data.clone(), 1, 1)]).await;
    let got = store.row(&s, &Key::new("c", "x")).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(got.data.as_ref().unwrap().to_data().unwrap()),
        data
    );
    assert_eq!(
        got.data
            .as_ref()
            .unwrap()
            .hash_with(&mut Vec::new())
            .unwrap(),
        got.hash.unwrap(),
        "hash still matches"
    );
}

/// Versions round-trip exactly up to [`MAX_VERSION`](crate::sync::MAX_VERSION) (`i64::MAX`),
/// far beyond the 2^53 a JS number holds: in rows and in the conflict journal.
pub async fn versions_round_trip_up_to_the_maximum<S: Store>(store: &S) {
    let s = sid("s");
    let max = crate::sync::MAX_VERSION;
    let odd = (1u64 << 53) + 1; // the first integer a double cannot hold
    put_rows(
        store,
        &s,
        vec![
            row("c", "max", json!({"n": 1}), max, 1),
            row("c", "odd", json!({"n": 2}), odd, 1),
        ],
    )
    .await;
    for (id, version) in [("max", max), ("odd", odd)] {
        let got = store.row(&s, &Key::new("c", id)).await.unwrap().unwrap();
        assert_eq!(got.version, version, "{id}");
    }
    let conflict = Conflict {
        id: 0,
        scope: "s".into(),
        collection: "c".into(),
        record_id: "odd".into(),
        local_op: Op::Delete,
        local_data: None,
        base_version: Some(odd),
        cloud_version: max,
        cloud_hash: None,
        at: NOW,
        reason: None,
    };
    let written = conflict.clone();
    store
        .update(&s, &[], false, move |st: &ScopeState, _: &[Option<Row>]| {
            Ok(Changeset {
                scope: st.clone(),
                conflicts: vec![written],
                ..Changeset::default()
            })
        })
        .await
        .unwrap();
    let got = store.conflicts(&s).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        Conflict {
            id: 0,
            ..got[0].clone()
        },
        conflict
    );
}
