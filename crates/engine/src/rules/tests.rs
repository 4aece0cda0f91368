//! Unit and property tests of the pure apply rules.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::digest::{leaf, record_hash};
use crate::doc::Doc;
use crate::error::{Detail, Error, Result};
use crate::types::{Change, Checkpoint, MutationResult, Page};

/// Applies a changeset to an in-memory table, as a store would, checking that every write
/// names the row it replaces as it is in the table.
fn commit(rows: &mut BTreeMap<Key, Row>, state: &mut ScopeState, cs: Changeset) -> Vec<Conflict> {
    *state = cs.scope;
    for w in cs.rows {
        let prior = rows.get(w.key()).map(|r| Prior::of(0, r));
        let claimed = w.prior().map(|p| Prior { slot: 0, ..*p });
        assert_eq!(
            claimed,
            prior,
            "the prior of {:?} is the row replaced",
            w.key()
        );
        match w {
            RowWrite::Put { row: r, .. } => {
                rows.insert(r.key.clone(), r);
            }
            RowWrite::Touch {
                key,
                version,
                updated_at,
                cloud_hash,
                generation,
                pending,
                ..
            } => {
                let r = rows.get_mut(&key).expect("touch of an existing row");
                r.version = version;
                r.updated_at = updated_at;
                r.cloud_hash = cloud_hash;
                r.generation = generation;
                r.pending = pending;
            }
            RowWrite::Remove { key, .. } => {
                rows.remove(&key);
            }
        }
    }
    cs.conflicts
}

fn apply_page(
    rows: &mut BTreeMap<Key, Row>,
    state: &mut ScopeState,
    page: &ValidPage,
    mode: Mode,
) -> Result<(Counts, Vec<Conflict>)> {
    let local: Vec<Option<Row>> = page
        .changes
        .iter()
        .map(|c| rows.get(&c.key).cloned())
        .collect();
    let cs = plan_page("s", state, page.clone(), &local, mode, &[], 7)?;
    for w in &cs.rows {
        if let Some(p) = w.prior() {
            let read = local[p.slot].as_ref().map(|r| &r.key);
            assert_eq!(read, Some(w.key()), "a prior's slot is the row of its key");
        }
    }
    let counts = cs.counts;
    Ok((counts, commit(rows, state, cs)))
}

fn change(collection: &str, id: &str, version: u64, data: Option<serde_json::Value>) -> Change {
    let hash = data
        .as_ref()
        .map(|d| record_hash(d.as_object().unwrap()).to_string());
    Change {
        collection: collection.into(),
        id: id.into(),
        version,
        updated_at: format!("t{version}"),
        deleted: data.is_none(),
        data: data.map(raw),
        hash,
    }
}

fn raw(v: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&v).unwrap()
}

fn page(changes: Vec<Change>, cp: &str, has_more: bool) -> Page {
    Page {
        changes,
        checkpoint: Some(Checkpoint(cp.into())),
        has_more,
        remaining: None,
        snapshot: (!has_more).then(Snapshot::default),
    }
}

fn valid(changes: Vec<Change>) -> ValidPage {
    validate_page(page(changes, "1", true)).unwrap()
}

fn digest_of(rows: &BTreeMap<Key, Row>) -> Snapshot {
    super::snapshot_of(rows.values(), false)
}

#[test]
fn each_rule_of_the_table() {
    let mut rows = BTreeMap::new();
    let mut st = ScopeState::default();
    let p = valid(vec![
        change("c", "a", 1, Some(json!({"v": 1}))),
        change("c", "b", 2, Some(json!({"v": 2}))),
    ]);
    let (n, _) = apply_page(&mut rows, &mut st, &p, Mode::Incremental).unwrap();
    assert_eq!(
        (n.inserted, st.totals.count),
        (2, 2),
        "live + absent = insert"
    );
    let p = valid(vec![
        change("c", "a", 3, Some(json!({"v": 1}))),
        change("c", "b", 4, Some(json!({"v": 9}))),
    ]);
    let (n, _) = apply_page(&mut rows, &mut st, &p, Mode::Incremental).unwrap();
    assert_eq!(
        (n.unchanged, n.updated),
        (1, 1),
        "same hash = unchanged, other = update"
    );
    assert_eq!(
        rows[&Key::new("c", "a")].version,
        3,
        "version refreshed on unchanged"
    );
    assert_eq!(rows[&Key::new("c", "a")].updated_at, "t3");
    let p = valid(vec![change("c", "a", 5, None), change("c", "zz", 6, None)]);
    let (n, _) = apply_page(&mut rows, &mut st, &p, Mode::Incremental).unwrap();
    assert_eq!(
        (n.deleted, st.totals.count),
        (1, 1),
        "delete present = delete, absent = skip"
    );
    assert_eq!(st.totals, digest_of(&rows));
    assert_eq!(st.checkpoint, Some(Checkpoint("1".into())));
}

#[test]
fn pending_edit_equal_to_incoming_is_accepted_not_a_conflict() {
    let mut rows = BTreeMap::new();
    let mut st = ScopeState::default();
    apply_page(
        &mut rows,
        &mut st,
        &valid(vec![change("c", "a", 1, Some(json!({"v": 1})))]),
        Mode::Incremental,
    )
    .unwrap();
    let edit = LocalEdit {
        key: Key::new("c", "a"),
        data: Some(json!({"v": 2}).as_object().unwrap().clone()),
    };
    let cs = plan_local_edit(&st, rows.get(&edit.key), &edit).unwrap();
    commit(&mut rows, &mut st, cs);
    assert_eq!(rows[&edit.key].pending, Some(0));
    let (n, conflicts) = apply_page(
        &mut rows,
        &mut st,
        &valid(vec![change("c", "a", 2, Some(json!({"v": 2})))]),
        Mode::Incremental,
    )
    .unwrap();
    assert!(conflicts.is_empty());
    assert_eq!(n.unchanged, 1);
    assert_eq!(rows[&edit.key].pending, None);
    assert_eq!(rows[&edit.key].version, 2);
    // Both deletes: the pending delete is cleared by the tombstone.
    let del = LocalEdit {
        key: Key::new("c", "a"),
        data: None,
    };
    let cs = plan_local_edit(&st, rows.get(&del.key), &del).unwrap();
    commit(&mut rows, &mut st, cs);
    let (_, conflicts) = apply_page(
        &mut rows,
        &mut st,
        &valid(vec![change("c", "a", 3, None)]),
        Mode::Incremental,
    )
    .unwrap();
    assert!(conflicts.is_empty());
    assert!(rows.is_empty());
    assert_eq!(st.totals, Snapshot::default());
}

#[test]
fn local_edits_coalesce_and_stay_pending() {
    let mut rows = BTreeMap::new();
    let mut st = ScopeState::default();
    apply_page(
        &mut rows,
        &mut st,
        &valid(vec![change("c", "a", 1, Some(json!({"v": 1})))]),
        Mode::Incremental,
    )
    .unwrap();
    let put = |v| LocalEdit {
        key: Key::new("c", "a"),
        data: Some(json!({ "v": v }).as_object().unwrap().clone()),
    };
    for v in [2, 3] {
        let cs = plan_local_edit(&st, rows.get(&Key::new("c", "a")), &put(v)).unwrap();
        commit(&mut rows, &mut st, cs);
    }
    assert_eq!(
        rows[&Key::new("c", "a")].pending,
        Some(1),
        "the latest edit is the one pending"
    );
    assert_eq!(
        rows[&Key::new("c", "a")].version,
        1,
        "still based on the cloud version"
    );
    let cs = plan_local_edit(&st, rows.get(&Key::new("c", "a")), &put(1)).unwrap();
    commit(&mut rows, &mut st, cs);
    assert_eq!(
        rows[&Key::new("c", "a")].pending,
        Some(2),
        "back to the cloud state, still pending: the edit before may be in flight"
    );
    // A local create deleted again is a pending delete on no cloud state.
    let new = LocalEdit {
        key: Key::new("c", "n"),
        data: Some(json!({}).as_object().unwrap().clone()),
    };
    let cs = plan_local_edit(&st, None, &new).unwrap();
    commit(&mut rows, &mut st, cs);
    let del = LocalEdit {
        key: Key::new("c", "n"),
        data: None,
    };
    let cs = plan_local_edit(&st, rows.get(&del.key), &del).unwrap();
    commit(&mut rows, &mut st, cs);
    let gone = &rows[&del.key];
    assert_eq!(
        (gone.hash, gone.cloud_hash, gone.pending),
        (None, None, Some(4))
    );
    assert_eq!(gone.mutation(None).unwrap().unwrap().base_version, None);
    assert!(plan_local_edit(
        &st,
        None,
        &LocalEdit {
            key: Key::new("", "x"),
            data: None
        }
    )
    .is_err());
}

#[test]
fn bad_changes_are_protocol_errors() {
    let cases: Vec<(Change, &str)> = vec![
        (
            Change {
                hash: Some("0".repeat(64)),
                ..change("c", "a", 1, Some(json!({"v": 1})))
            },
            "hash mismatch",
        ),
        (
            Change {
                hash: Some("XYZ".into()),
                ..change("c", "a", 1, Some(json!({"v": 1})))
            },
            "hex",
        ),
        (
            Change {
                hash: None,
                ..change("c", "a", 1, Some(json!({"v": 1})))
            },
            "must carry its hash",
        ),
        (
            Change {
                data: Some(raw(json!([1, 2]))),
                ..change("c", "a", 1, Some(json!({})))
            },
            "got an array",
        ),
        (
            Change {
                data: Some(raw(json!("s"))),
                ..change("c", "a", 1, Some(json!({})))
            },
            "got a string",
        ),
        (
            Change {
                data: None,
                deleted: false,
                ..change("c", "a", 1, Some(json!({})))
            },
            "got null",
        ),
        (
            Change {
                data: Some(raw(json!({"x": 1}))),
                ..change("c", "a", 1, None)
            },
            "tombstone",
        ),
        (change("", "a", 1, Some(json!({}))), "empty collection"),
    ];
    for (c, want) in cases {
        let err = validate_page(page(
            vec![change("c", "ok", 1, Some(json!({}))), c],
            "1",
            true,
        ))
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Protocol);
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want:?}"
        );
    }
    let mut no_cp = page(vec![], "1", false);
    no_cp.checkpoint = None;
    assert!(validate_page(no_cp)
        .unwrap_err()
        .to_string()
        .contains("checkpoint"));
    let mut no_snap = page(vec![], "1", false);
    no_snap.snapshot = None;
    assert!(validate_page(no_snap)
        .unwrap_err()
        .to_string()
        .contains("snapshot"));
    let twins = vec![
        change("c", "a", 3, Some(json!({"v": 1}))),
        change("c", "a", 3, Some(json!({"v": 2}))),
    ];
    assert!(
        validate_page(page(twins, "1", true)).is_err(),
        "two states for one version"
    );
}

#[test]
fn version_going_backwards_is_rejected_incrementally_but_taken_in_full_mode() {
    let mut rows = BTreeMap::new();
    let mut st = ScopeState::default();
    apply_page(
        &mut rows,
        &mut st,
        &valid(vec![change("c", "a", 5, Some(json!({"v": 1})))]),
        Mode::Incremental,
    )
    .unwrap();
    let back = valid(vec![change("c", "a", 4, Some(json!({"v": 0})))]);
    let err = apply_page(&mut rows, &mut st, &back, Mode::Incremental).unwrap_err();
    assert!(err.to_string().contains("backwards"), "{err}");
    let same_version_other_state = valid(vec![change("c", "a", 5, Some(json!({"v": 2})))]);
    assert!(apply_page(
        &mut rows,
        &mut st,
        &same_version_other_state,
        Mode::Incremental
    )
    .is_err());
    apply_page(&mut rows, &mut st, &back, Mode::Full).unwrap();
    assert_eq!(rows[&Key::new("c", "a")].version, 4);
}

#[test]
fn highest_version_in_a_page_wins_whatever_the_order() {
    let p = valid(vec![
        change("c", "a", 9, None),
        change("c", "a", 3, Some(json!({"v": 3}))),
        change("c", "a", 7, Some(json!({"v": 7}))),
    ]);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].version, 9);
    assert!(p.changes[0].state.is_none());
}

#[test]
fn push_results_settle_rows() {
    let mut rows = BTreeMap::new();
    let mut st = ScopeState::default();
    apply_page(
        &mut rows,
        &mut st,
        &valid(vec![
            change("c", "a", 1, Some(json!({"v": 1}))),
            change("c", "b", 2, Some(json!({"v": 2}))),
        ]),
        Mode::Incremental,
    )
    .unwrap();
    for (id, v) in [("a", 10), ("b", 20)] {
        let e = LocalEdit {
            key: Key::new("c", id),
            data: Some(json!({ "v": v }).as_object().unwrap().clone()),
        };
        let cs = plan_local_edit(&st, rows.get(&e.key), &e).unwrap();
        commit(&mut rows, &mut st, cs);
    }
    let pushed: Vec<Row> = rows.values().cloned().collect();
    let results = vec![
        MutationResult::Accepted {
            version: 3,
            updated_at: "t3".into(),
        },
        MutationResult::Rejected {
            current: Some(change("c", "b", 4, Some(json!({"v": "cloud"})))),
        },
    ];
    let outcomes = validate_push(pushed, results).unwrap();
    let current: Vec<Option<Row>> = outcomes
        .iter()
        .map(|o| rows.get(&o.pushed.key).cloned())
        .collect();
    let cs = plan_push("s", &st, &outcomes, &current, 9).unwrap();
    let conflicts = commit(&mut rows, &mut st, cs);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].record_id, "b");
    assert_eq!(conflicts[0].local_data.as_ref().unwrap()["v"], 20);
    assert_eq!(conflicts[0].cloud_version, 4);
    let a = &rows[&Key::new("c", "a")];
    assert_eq!((a.version, a.pending, a.cloud_hash), (3, None, a.hash));
    assert_eq!(
        rows[&Key::new("c", "b")]
            .data
            .as_ref()
            .unwrap()
            .to_data()
            .unwrap()["v"],
        "cloud"
    );
    assert_eq!(
        st.totals,
        digest_of(&rows),
        "totals follow the cloud's new state"
    );
    assert!(validate_push(vec![], vec![MutationResult::Rejected { current: None }]).is_err());
}

#[test]
fn sweep_keeps_local_creates_and_journals_lost_edits() {
    let mut rows = BTreeMap::new();
    let mut st = ScopeState {
        generation: 1,
        ..ScopeState::default()
    };
    apply_page(
        &mut rows,
        &mut st,
        &valid(vec![
            change("c", "gone", 1, Some(json!({}))),
            change("c", "edited", 2, Some(json!({}))),
            change("c", "deleted", 3, Some(json!({}))),
        ]),
        Mode::Full,
    )
    .unwrap();
    for (id, data) in [
        ("edited", Some(json!({"mine": 1}))),
        ("created", Some(json!({"new": 1}))),
        ("deleted", None),
        // A local create, then its delete: the create may have reached the cloud (its push
        // answer lost), so the delete must stay to be pushed, not vanish in the sweep.
        ("undone", Some(json!({"brief": 1}))),
        ("undone", None),
    ] {
        let e = LocalEdit {
            key: Key::new("c", id),
            data: data.map(|d| d.as_object().unwrap().clone()),
        };
        let cs = plan_local_edit(&st, rows.get(&e.key), &e).unwrap();
        commit(&mut rows, &mut st, cs);
    }
    st.generation = 2;
    let stale: Vec<Option<Row>> = rows.values().cloned().map(Some).collect();
    let cs = plan_sweep("s", &st, &stale, 5).unwrap();
    let conflicts = commit(&mut rows, &mut st, cs);
    assert_eq!(
        rows.keys().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        ["created", "deleted", "undone"]
    );
    let undone = &rows[&Key::new("c", "undone")];
    assert!(undone.pending.is_some() && undone.hash.is_none() && undone.cloud_hash.is_none());
    assert_eq!(rows[&Key::new("c", "created")].generation, 2);
    let deleted = &rows[&Key::new("c", "deleted")];
    assert!(
        deleted.pending.is_some() && deleted.cloud_hash.is_none() && deleted.hash.is_none(),
        "a pending delete of a record the download did not bring stays pending on no cloud state"
    );
    assert_eq!(conflicts.len(), 1, "only the lost put is journaled");
    assert_eq!(conflicts[0].record_id, "edited");
    assert_eq!(st.totals, Snapshot::default());
    assert!(!st.full_sync);
}

/// One cloud write: key index, and data variant or delete.
fn ops() -> impl Strategy<Value = Vec<(u8, Option<u8>)>> {
    proptest::collection::vec((0u8..12, proptest::option::weighted(0.75, 0u8..4)), 1..60)
}

/// The feed a cloud would serve: every write in version order (a log, so keys repeat).
fn feed(ops: &[(u8, Option<u8>)]) -> Vec<Change> {
    ops.iter()
        .enumerate()
        .map(|(i, (k, d))| {
            change(
                "c",
                &format!("k{k}"),
                i as u64 + 1,
                d.map(|d| json!({ "d": d })),
            )
        })
        .collect()
}

/// The cloud's final live state: the last write of each key.
fn final_state(ops: &[(u8, Option<u8>)]) -> BTreeMap<Key, RecordHash> {
    let mut out = BTreeMap::new();
    for (k, d) in ops {
        let key = Key::new("c", format!("k{k}"));
        match d {
            Some(d) => out.insert(key, record_hash(json!({ "d": d }).as_object().unwrap())),
            None => out.remove(&key),
        };
    }
    out
}

fn sync_pages(
    rows: &mut BTreeMap<Key, Row>,
    st: &mut ScopeState,
    changes: &[Change],
    cuts: &[usize],
) -> Vec<Conflict> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (changes.len() + 1)).collect();
    bounds.push(0);
    bounds.push(changes.len());
    bounds.sort_unstable();
    bounds.dedup();
    let mut conflicts = Vec::new();
    for w in bounds.windows(2) {
        let p = validate_page(page(
            changes[w[0]..w[1]].to_vec(),
            &w[1].to_string(),
            w[1] < changes.len(),
        ))
        .unwrap();
        conflicts.extend(apply_page(rows, st, &p, Mode::Incremental).unwrap().1);
    }
    conflicts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the page boundaries, the replica ends equal to the cloud's last version of
    /// every key, and its maintained totals equal the digest of its rows.
    #[test]
    fn final_state_is_independent_of_page_boundaries(ops in ops(), cuts in proptest::collection::vec(0usize..100, 0..6)) {
        let changes = feed(&ops);
        let mut rows = BTreeMap::new();
        let mut st = ScopeState::default();
        sync_pages(&mut rows, &mut st, &changes, &cuts);
        let got: BTreeMap<Key, RecordHash> = rows.iter().map(|(k, r)| (k.clone(), r.hash.unwrap())).collect();
        prop_assert_eq!(&got, &final_state(&ops));
        prop_assert_eq!(st.totals, digest_of(&rows));
        let mut want = Snapshot::default();
        for (k, h) in final_state(&ops) { want.insert(&leaf(&k.collection, &k.id, &h)); }
        prop_assert_eq!(st.totals, want);
    }

    /// Applying a page twice equals applying it once.
    #[test]
    fn applying_a_page_twice_equals_once(ops in ops(), split in 0usize..60) {
        let changes = feed(&ops);
        let split = split % (changes.len() + 1);
        let mut rows = BTreeMap::new();
        let mut st = ScopeState::default();
        sync_pages(&mut rows, &mut st, &changes[..split], &[]);
        let p = validate_page(page(changes[split..].to_vec(), "z", false)).unwrap();
        apply_page(&mut rows, &mut st, &p, Mode::Incremental).unwrap();
        let (once_rows, once_st) = (rows.clone(), st.clone());
        let (counts, conflicts) = apply_page(&mut rows, &mut st, &p, Mode::Incremental).unwrap();
        prop_assert_eq!(rows, once_rows);
        prop_assert_eq!(st, once_st);
        prop_assert!(conflicts.is_empty());
        prop_assert_eq!(counts.inserted + counts.updated + counts.deleted, 0);
    }

    /// The cloud always wins over a pending local edit, and every overwritten edit lands in
    /// the conflict journal with its data.
    #[test]
    fn cloud_wins_and_every_lost_edit_is_journaled(
        before in ops(),
        edits in proptest::collection::vec((0u8..12, proptest::option::of(10u8..14)), 0..12),
        after in ops(),
    ) {
        let mut rows = BTreeMap::new();
        let mut st = ScopeState::default();
        sync_pages(&mut rows, &mut st, &feed(&before), &[]);
        for (k, d) in &edits {
            let e = LocalEdit { key: Key::new("c", format!("k{k}")), data: d.map(|d| json!({ "d": d }).as_object().unwrap().clone()) };
            let cs = plan_local_edit(&st, rows.get(&e.key), &e).unwrap();
            commit(&mut rows, &mut st, cs);
        }
        let pending: BTreeMap<Key, Row> = rows.iter().filter(|(_, r)| r.pending.is_some()).map(|(k, r)| (k.clone(), r.clone())).collect();
        let base = before.len() as u64;
        let later: Vec<Change> = feed(&after).into_iter().map(|c| Change { version: c.version + base, ..c }).collect();
        let conflicts = sync_pages(&mut rows, &mut st, &later, &[3]);
        let cloud = final_state(&before.iter().chain(after.iter()).copied().collect::<Vec<_>>());
        let touched: std::collections::BTreeSet<Key> = later.iter().map(|c| Key::new(&c.collection, &c.id)).collect();
        for (key, p) in &pending {
            if touched.contains(key) {
                // A create meeting only a tombstone rests on the state it was made on.
                let rests = p.cloud_hash.is_none() && !cloud.contains_key(key) && rows.get(key) == Some(p);
                if !rests {
                    // Cloud wins: the row is exactly the cloud's state now.
                    prop_assert_eq!(rows.get(key).and_then(|r| r.hash), cloud.get(key).copied());
                    prop_assert!(rows.get(key).is_none_or(|r| r.pending.is_none()));
                }
                let journaled = conflicts.iter().any(|c| c.record_id == key.id && c.local_data.clone().map(Doc::from) == p.data);
                // Accepted: some cloud state of this key that came in equalled the edit.
                let accepted = later.iter().any(|c| {
                    Key::new(&c.collection, &c.id) == *key && c.hash.as_ref().map(|h| h.parse().unwrap()) == p.hash
                });
                prop_assert!(journaled || accepted || rests, "edit of {:?} neither journaled, accepted nor pending", key);
            } else {
                prop_assert_eq!(rows.get(key), Some(p), "untouched edits stay pending");
            }
        }
        prop_assert_eq!(st.totals.count, cloud.len() as u64);
    }
}

/// What validating a record's data gave before the canonical check (the rewrite, then the
/// limits on its output, then the hash): the reference for the fast path.
fn by_rewrite(key: &Key, text: &str) -> Result<(String, RecordHash)> {
    let mut buf = Vec::new();
    crate::canonical::write_canonical_text(text, &mut buf).map_err(|e| {
        Error::protocol(format!(
            "{}/{}: data is not JSON: {e}",
            key.collection, key.id
        ))
        .with_detail(Detail::Malformed)
    })?;
    crate::limits::check_record(key, Some(&buf)).map_err(|e| {
        let detail = e.detail().unwrap_or(Detail::Malformed);
        Error::protocol(format!("the page holds a record over a limit: {e}")).with_detail(detail)
    })?;
    let hash = crate::digest::hash_canonical(&buf);
    Ok((String::from_utf8(buf).unwrap(), hash))
}

/// `validate_change` on one record decides exactly as the rewrite does: the same text kept, the
/// same hash, or the same error.
fn decides_as_the_rewrite(key: &Key, text: &str) -> std::result::Result<(), TestCaseError> {
    let reference = by_rewrite(key, text);
    let claimed = reference.as_ref().map_or(RecordHash([0; 32]), |r| r.1);
    let change = Change {
        collection: key.collection.clone(),
        id: key.id.clone(),
        version: 1,
        updated_at: "t".into(),
        deleted: false,
        data: Some(serde_json::value::RawValue::from_string(text.into()).unwrap()),
        hash: Some(claimed.to_string()),
    };
    let got = validate_change(change, &mut Vec::new()).map(|inc| {
        inc.state
            .map(|(doc, hash)| (doc.as_str().to_owned(), hash))
            .unwrap()
    });
    match (got, reference) {
        (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
        (Err(got), Err(want)) => prop_assert_eq!(
            (got.kind(), got.detail(), got.to_string()),
            (want.kind(), want.detail(), want.to_string())
        ),
        (got, want) => prop_assert!(false, "{text:?}: got {got:?}, the rewrite {want:?}"),
    }
    Ok(())
}

fn data_value() -> impl Strategy<Value = serde_json::Value> {
    let name =
        proptest::sample::select(vec!["a", "b", "é", "\u{E000}", "\u{1F602}", "\n", "\0", ""]);
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|n| json!(n)),
        (-1000i64..1000, 0i32..8).prop_map(|(m, e)| json!(m as f64 / 10f64.powi(e))),
        proptest::sample::select(vec!["x", "a\"b", "\u{1}", "\0", "😂"]).prop_map(|s| json!(s)),
    ];
    let tree = leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::vec((name.clone(), inner), 0..4).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    });
    proptest::collection::vec(
        (
            proptest::sample::select(vec!["a", "b", "\u{E000}", "\u{1F602}"]),
            tree,
        ),
        0..4,
    )
    .prop_map(|m| {
        json!(m
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<serde_json::Map<_, _>>())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_decides_as_the_rewrite(v in data_value(), spelling in 0u8..3, long_key in any::<bool>()) {
        let key = Key::new("c", if long_key { "i".repeat(crate::limits::MAX_KEY_BYTES) } else { "i".into() });
        let text = match spelling {
            0 => crate::canonical::canonical_string(&v),
            1 => serde_json::to_string(&v).unwrap(),
            _ => serde_json::to_string_pretty(&v).unwrap(),
        };
        decides_as_the_rewrite(&key, &text)?;
    }
}

#[test]
fn the_fast_path_decides_as_the_rewrite_at_each_limit() {
    use crate::limits::{MAX_DEPTH, MAX_RECORD_BYTES};
    let key = Key::new("c", "i");
    let nested = |levels: usize| {
        format!(
            r#"{{"a":{}{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let fill = |n: usize| format!(r#"{{"a":"{}"}}"#, "x".repeat(n - 8));
    for text in [
        nested(MAX_DEPTH),
        nested(MAX_DEPTH + 1),
        nested(126),
        fill(MAX_RECORD_BYTES),
        fill(MAX_RECORD_BYTES + 1),
        r#"{"a":"\u0000"}"#.into(),
        r#"{"\u0000":1}"#.into(),
        r#"{"a":1,"a":2}"#.into(),
        r#"{"a":1e400}"#.into(),
    ] {
        decides_as_the_rewrite(&key, &text).unwrap();
    }
    decides_as_the_rewrite(&Key::new("c", "\0"), "{}").unwrap();
}
