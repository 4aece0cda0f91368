//! Partial replicas (docs/partial-sync.md): subscriptions added and removed, move-in,
//! move-out and deletes, eviction with a pending edit, priorities, and verify and repair of a
//! subset, each over a store and an in-process [`Cloud`].

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::cloud::Cloud;
use crate::events::{ChangeEvent, ChangeOp, EventHub};
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::subscription::Subscription;
use crate::sync::{SyncOptions, Syncer};
use crate::types::{Phase, Progress, ScopeId};

use super::*;

/// `files` spread over repositories `r0`..`r9` (10 each), and 20 `repositories`.
pub(super) fn catalog(cloud: &Cloud, s: &ScopeId) {
    for i in 0..100 {
        cloud.put(
            s,
            "files",
            &format!("f{i:03}"),
            json!({"repository": format!("r{}", i % 10), "path": format!("p{i}.sql")}),
            NOW,
        );
    }
    for i in 0..20 {
        cloud.put(s, "repositories", &format!("r{i}"), json!({"name": i}), NOW);
    }
}

pub(super) fn files_of(repos: &[&str]) -> Subscription {
    Subscription::new("files").with_filter("repository", repos.iter().map(|r| json!(r)))
}

/// The keys the cloud's subset holds and the replica's rows of the same collection.
pub(super) async fn held_ids<S: Store>(store: &S, s: &ScopeId, collection: &str) -> Vec<String> {
    let rows = store.list(s, collection, None, 10_000).await.unwrap();
    rows.into_iter().map(|r| r.key.id).collect()
}

pub(super) fn cloud_ids(cloud: &Cloud, s: &ScopeId, sub: &Subscription) -> Vec<String> {
    let mut ids: Vec<String> = cloud
        .subset_records_now(s, sub, &crate::KeyRange::all())
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

/// A subscription downloads its records and nothing else; a record that moves out leaves at
/// the next sync (its change event says `evicted`), one that moves in arrives, one deleted in
/// the cloud is deleted; the subset verifies against the cloud's subset digest.
pub async fn subscriptions_download_their_records_and_follow_moves<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let hub: Arc<EventHub> = Arc::default();
    let seen: Arc<Mutex<Vec<ChangeEvent>>> = Arc::default();
    let sink = seen.clone();
    let _listener = hub.subscribe(move |e| sink.lock().unwrap().push(e.clone()));
    let scope = ScopeHandle::new(store, s.clone()).events(&hub);
    let sub = files_of(&["r1", "r2"]);
    scope
        .set_subscriptions(vec![(sub.clone(), 0)])
        .await
        .unwrap();
    let syncer = Syncer::new(store, &cloud, &clock).events(&hub);
    let opts = SyncOptions {
        page_size: 7,
        ..SyncOptions::default()
    };
    let first = syncer.sync(&s, opts).await.unwrap();
    assert_eq!(first.run.counts.inserted, 20);
    assert_eq!(
        held_ids(store, &s, "files").await,
        cloud_ids(&cloud, &s, &sub)
    );
    assert_eq!(store.count(&s, None).await.unwrap(), 20, "no repositories");
    assert!(scope.is_ready(0).await.unwrap());

    // f001 (r1) moves out, f003 (r3) moves in, f011 (r1) is deleted, f002 (r2) changes.
    cloud.put(&s, "files", "f001", json!({"repository": "r5"}), NOW);
    cloud.put(&s, "files", "f003", json!({"repository": "r2"}), NOW);
    cloud.delete(&s, "files", "f011", NOW);
    cloud.put(
        &s,
        "files",
        "f002",
        json!({"repository": "r2", "path": "new"}),
        NOW,
    );
    cloud.put(&s, "repositories", "r0", json!({"name": "renamed"}), NOW);
    seen.lock().unwrap().clear();
    let second = syncer.sync(&s, opts).await.unwrap();
    assert_eq!(
        (
            second.run.counts.inserted,
            second.run.counts.updated,
            second.run.counts.deleted
        ),
        (1, 1, 2)
    );
    let ids = held_ids(store, &s, "files").await;
    assert_eq!(ids, cloud_ids(&cloud, &s, &sub));
    assert!(!ids.contains(&"f001".to_string()) && ids.contains(&"f003".to_string()));
    let events = seen.lock().unwrap().clone();
    let change = |id: &str| {
        events
            .iter()
            .flat_map(|e| e.changes.iter())
            .find(|c| c.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no event for {id}"))
    };
    assert!(change("f001").evicted && change("f001").op == ChangeOp::Delete);
    assert!(!change("f011").evicted && change("f011").op == ChangeOp::Delete);
    assert_eq!(change("f003").op, ChangeOp::Insert);

    let report = syncer.verify(&s, false).await.unwrap();
    assert!(report.matched && report.matches_now, "{report:?}");
    assert_eq!(report.subscriptions.len(), 1);
    assert_eq!(
        report.subscriptions[0].cloud.count, 19,
        "20, one out, one in, one deleted"
    );
    let third = syncer.sync(&s, opts).await.unwrap();
    assert_eq!(third.run.counts, crate::types::Counts::default());
}

/// Adding a subscription downloads only its records; one covered by a complete subscription
/// downloads nothing. Removing one evicts what no other selects, except a record with a
/// pending edit, which stays until its edit is pushed and then leaves.
pub async fn adding_downloads_only_the_new_part_and_removing_evicts<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let scope = ScopeHandle::new(store, s.clone());
    let syncer = Syncer::new(store, &cloud, &clock);
    let (r1, r2) = (files_of(&["r1"]), files_of(&["r2"]));
    scope
        .set_subscriptions(vec![(r1.clone(), 0)])
        .await
        .unwrap();
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    scope.add_subscription(r2.clone(), 0).await.unwrap();
    let added = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(
        (added.run.counts.inserted, added.run.counts.unchanged),
        (10, 0),
        "only r2's files came"
    );
    // Covered by r1 and r2 together is not covered by one: f001..f091 are r1 alone.
    let narrow = files_of(&["r1"]).with_filter("path", [json!("p1.sql"), json!("p11.sql")]);
    scope.add_subscription(narrow.clone(), 1).await.unwrap();
    let held = scope.subscriptions().await.unwrap();
    assert!(
        held.iter()
            .find(|h| h.subscription == narrow)
            .unwrap()
            .complete
    );
    let covered = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(covered.run.counts.inserted, 0);

    scope
        .put(
            "files",
            "f021",
            json!({"repository": "r1", "path": "edited"}),
        )
        .await
        .unwrap();
    let evicted = scope.remove_subscription(&r1).await.unwrap();
    assert_eq!(
        evicted, 7,
        "r1's files but f001 and f011 (narrow) and f021 (pending)"
    );
    let ids = held_ids(store, &s, "files").await;
    assert_eq!(ids.len(), 10 + 3);
    assert!(ids.contains(&"f021".to_string()));
    // The edit is pushed and accepted, then follows the rule: no subscription selects it.
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(
        cloud.record(&s, "files", "f021").unwrap().1["path"],
        "edited"
    );
    assert!(scope.get("files", "f021").await.unwrap().is_none());
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert!(store.conflicts(&s).await.unwrap().is_empty());
    let report = syncer.verify(&s, false).await.unwrap();
    assert!(report.matched, "{report:?}");
}

/// A whole replica that becomes partial keeps what its subscriptions select and downloads
/// nothing; made whole again, it downloads the rest and equals the cloud.
pub async fn whole_to_partial_and_back<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let scope = ScopeHandle::new(store, s.clone());
    let syncer = Syncer::new(store, &cloud, &clock);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    let sub = files_of(&["r4"]);
    let evicted = scope
        .set_subscriptions(vec![(sub.clone(), 0)])
        .await
        .unwrap();
    assert_eq!(evicted, 110, "90 other files and 20 repositories");
    let partial = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(partial.run.counts.inserted, 0);
    assert_eq!(
        held_ids(store, &s, "files").await,
        cloud_ids(&cloud, &s, &sub)
    );
    scope.set_subscriptions(Vec::new()).await.unwrap();
    let whole = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(whole.run.counts.inserted, 110);
    assert_eq!(whole.snapshot, cloud.snapshot(&s));
}

/// A sync completes higher priorities first: every page of priority 0 is applied before any
/// of priority 1, a `Ready` event follows each priority, and `is_ready` says so after.
pub async fn priorities_complete_in_order<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let scope = ScopeHandle::new(store, s.clone());
    let repos = Subscription::new("repositories");
    let files = files_of(&["r1", "r2", "r3"]);
    scope
        .set_subscriptions(vec![(files.clone(), 1), (repos.clone(), 0)])
        .await
        .unwrap();
    assert!(!scope.is_ready(0).await.unwrap());
    let events: Mutex<Vec<Progress>> = Mutex::default();
    let sink = |p: &Progress| events.lock().unwrap().push(p.clone());
    let opts = SyncOptions {
        page_size: 4,
        progress: Some(&sink),
        ..SyncOptions::default()
    };
    Syncer::new(store, &cloud, &clock)
        .sync(&s, opts)
        .await
        .unwrap();
    let events = events.into_inner().unwrap();
    let order: Vec<(Phase, Option<String>, Option<u8>)> = events
        .iter()
        .filter(|p| matches!(p.phase, Phase::Apply | Phase::Ready))
        .map(|p| (p.phase, p.subscription.clone(), p.priority))
        .collect();
    let ready0 = order
        .iter()
        .position(|e| *e == (Phase::Ready, None, Some(0)))
        .expect("priority 0 ready");
    let ready1 = order
        .iter()
        .position(|e| *e == (Phase::Ready, None, Some(1)))
        .expect("priority 1 ready");
    let applies = |sub: &Subscription| {
        let encoded = sub.encode();
        order
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.1.as_deref() == Some(encoded.as_str()))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    assert!(applies(&repos).iter().all(|&i| i < ready0));
    assert!(applies(&files).iter().all(|&i| ready0 < i && i < ready1));
    assert_eq!(applies(&files).len(), 8, "30 files in pages of 4");
    let last = events
        .iter()
        .rfind(|p| p.subscription.as_deref() == Some(files.encode().as_str()))
        .unwrap();
    assert_eq!((last.done, last.total), (30, Some(30)));
    assert!(scope.is_ready(1).await.unwrap());
}

/// A subset that differs from the cloud's is found and repaired: by the sync's verification
/// (a held row lost behind the engine's back) and by `verify` with repair (a row whose data
/// was changed behind its back).
pub async fn subset_divergence_is_repaired<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let scope = ScopeHandle::new(store, s.clone());
    let syncer = Syncer::new(store, &cloud, &clock);
    let sub = files_of(&["r1", "r2", "r3", "r4", "r5", "r6", "r7"]);
    scope
        .set_subscriptions(vec![(sub.clone(), 0)])
        .await
        .unwrap();
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    // Lose one row, keeping the totals (as a store bug or a restored backup might).
    let lost = Key::new("files", "f033");
    store
        .update(
            &s,
            std::slice::from_ref(&lost),
            false,
            |st: &ScopeState, rows: &[Option<Row>]| {
                let prior = Prior::of(0, rows[0].as_ref().expect("held"));
                Ok(Changeset {
                    scope: st.clone(),
                    rows: vec![RowWrite::Remove {
                        key: lost.clone(),
                        prior,
                        evict: false,
                    }],
                    ..Changeset::default()
                })
            },
        )
        .await
        .unwrap();
    let healed = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(healed.run.counts.repaired, 1);
    assert!(scope.get("files", "f033").await.unwrap().is_some());
    // Corrupt one row's data, keeping its hashes: only a rehash sees it.
    let bad = row(
        "files",
        "f044",
        json!({"repository": "r4", "path": "tampered"}),
        1,
        0,
    );
    let (_, data) = cloud.record(&s, "files", "f044").unwrap();
    let good_hash = crate::digest::record_hash(&data);
    let held = store.row(&s, &bad.key).await.unwrap().unwrap();
    put_rows(
        store,
        &s,
        vec![Row {
            hash: Some(good_hash),
            cloud_hash: Some(good_hash),
            version: held.version,
            generation: held.generation,
            ..bad
        }],
    )
    .await;
    let report = syncer.verify(&s, true).await.unwrap();
    assert!(!report.matched && report.matches_now, "{report:?}");
    assert_eq!(report.repaired, 1);
    assert_eq!(
        scope.get("files", "f044").await.unwrap().unwrap().data["path"],
        "p44.sql"
    );
}

/// A record with a pending edit that moves out in the cloud is not lost: the push meets the
/// cloud's newer state, the edit goes to the conflict journal, and the record leaves.
pub async fn a_pending_edit_that_moves_out_is_journaled_not_lost<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let scope = ScopeHandle::new(store, s.clone());
    let syncer = Syncer::new(store, &cloud, &clock);
    scope
        .set_subscriptions(vec![(files_of(&["r1"]), 0)])
        .await
        .unwrap();
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    scope
        .put("files", "f001", json!({"repository": "r1", "path": "mine"}))
        .await
        .unwrap();
    cloud.put(&s, "files", "f001", json!({"repository": "r9"}), NOW);
    // A local create outside every subscription is pushed, then leaves too.
    scope
        .put("files", "new", json!({"repository": "r8"}))
        .await
        .unwrap();
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    let conflicts = store.conflicts(&s).await.unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].record_id, "f001");
    assert_eq!(conflicts[0].local_data.as_ref().unwrap()["path"], "mine");
    assert!(scope.get("files", "f001").await.unwrap().is_none());
    assert!(cloud.record(&s, "files", "new").is_some());
    assert!(scope.get("files", "new").await.unwrap().is_none());
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    assert!(syncer.verify(&s, false).await.unwrap().matched);
}

/// A narrowing whose eviction a crash cut short (the subscriptions stored, the eviction marked
/// and not done) is finished by the next sync: nothing stays held that no subscription selects.
pub async fn an_eviction_cut_short_is_finished_by_the_next_sync<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let syncer = Syncer::new(store, &cloud, &clock);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    let sub = files_of(&["r2"]);
    // What `set_subscriptions` writes in its first transaction, and no more.
    let held = crate::subscription::Held {
        complete: true,
        checkpoint: store.scope_state(&s).await.unwrap().checkpoint,
        ..crate::subscription::Held::new(sub.clone(), 0)
    };
    store
        .update(&s, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
            Ok(Changeset {
                scope: ScopeState {
                    subscriptions: vec![held],
                    evicting: true,
                    checkpoint: None,
                    ..st.clone()
                },
                ..Changeset::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        store.count(&s, None).await.unwrap(),
        120,
        "nothing evicted yet"
    );
    let report = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(report.run.counts.deleted, 110);
    assert_eq!(
        held_ids(store, &s, "files").await,
        cloud_ids(&cloud, &s, &sub)
    );
    assert_eq!(store.count(&s, None).await.unwrap(), 10);
    assert!(!store.scope_state(&s).await.unwrap().evicting);
}
