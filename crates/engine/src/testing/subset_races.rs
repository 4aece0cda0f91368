//! Partial replicas whose subscriptions change in the middle of a sync (docs/partial-sync.md):
//! set while a whole-scope download is under way, while a push is in flight, or removed and
//! added again while a page of the subscription is in flight; and a live round that downloads
//! a subscription again after a `410`. After each, once a quiet sync has run, the replica holds
//! exactly what its subscriptions select in the cloud.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use serde_json::json;

use crate::cloud::Cloud;
use crate::error::{Error, Result};
use crate::remote::{Pulled, Remote};
use crate::scope::ScopeHandle;
use crate::store::Store;
use crate::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use crate::sync::{SyncOptions, Syncer};
use crate::types::{Change, Checkpoint, KeyRange, Mutation, PushResponse, RemoteStatus, ScopeId};
use crate::Snapshot;

use super::subsets::{catalog, cloud_ids, files_of, held_ids};
use super::*;

/// A list of subscriptions to declare, with their priorities.
type Wanted = Vec<(Subscription, u8)>;

/// The in-process cloud with a user who changes the replica's subscriptions in the middle of
/// a sync (through [`ScopeHandle::set_subscriptions`], as an application would).
struct Resubscriber<'a, S> {
    cloud: &'a Cloud,
    store: &'a S,
    /// Lists declared, one after the other, before the whole-scope pull with this index
    /// (0-based, counted over the remote's life) is answered.
    before_pull: Mutex<Vec<(u32, Vec<Wanted>)>>,
    /// The same before a subset pull.
    before_subset_pull: Mutex<Vec<(u32, Vec<Wanted>)>>,
    /// The same before a subset digest.
    before_subset_digest: Mutex<Vec<(u32, Vec<Wanted>)>>,
    /// The same before a whole scope's range digest.
    before_range_digest: Mutex<Vec<(u32, Vec<Wanted>)>>,
    /// Lists declared once the cloud has applied the next push, before its answer is applied.
    after_push: Mutex<Vec<Wanted>>,
    pulls: AtomicU32,
    subset_pulls: AtomicU32,
    subset_digests: AtomicU32,
    range_digests: AtomicU32,
    /// Whether it long-polls (answering at once); the second long-poll stops the live sync.
    live: bool,
    waits: AtomicU32,
}

impl<'a, S: Store> Resubscriber<'a, S> {
    fn new(cloud: &'a Cloud, store: &'a S) -> Self {
        Resubscriber {
            cloud,
            store,
            before_pull: Mutex::default(),
            before_subset_pull: Mutex::default(),
            before_subset_digest: Mutex::default(),
            before_range_digest: Mutex::default(),
            after_push: Mutex::default(),
            pulls: AtomicU32::new(0),
            subset_pulls: AtomicU32::new(0),
            subset_digests: AtomicU32::new(0),
            range_digests: AtomicU32::new(0),
            live: false,
            waits: AtomicU32::new(0),
        }
    }

    async fn declare(&self, scope: &ScopeId, lists: Vec<Wanted>) {
        let local = ScopeHandle::new(self.store, scope.clone());
        for wanted in lists {
            local.set_subscriptions(wanted).await.unwrap();
        }
    }

    async fn due(&self, scope: &ScopeId, hooks: &Mutex<Vec<(u32, Vec<Wanted>)>>, n: u32) {
        let due: Vec<Wanted> = {
            let mut hooks = hooks.lock().unwrap();
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut *hooks)
                .into_iter()
                .partition(|(at, _)| *at == n);
            *hooks = later;
            due.into_iter().flat_map(|(_, lists)| lists).collect()
        };
        self.declare(scope, due).await;
    }
}

impl<S: Store> Remote for Resubscriber<'_, S> {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        let n = self.pulls.fetch_add(1, Ordering::SeqCst);
        self.due(scope, &self.before_pull, n).await;
        self.cloud.pull_now(scope, cp, limit)
    }

    fn can_push(&self) -> bool {
        true
    }

    fn can_wait(&self) -> bool {
        self.live
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        let answer = self.cloud.push(scope, mutations).await;
        let lists = std::mem::take(&mut *self.after_push.lock().unwrap());
        self.declare(scope, lists).await;
        answer
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.cloud.status(scope).await
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        let n = self.range_digests.fetch_add(1, Ordering::SeqCst);
        self.due(scope, &self.before_range_digest, n).await;
        self.cloud.range_digest(scope, range).await
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.cloud.range_records(scope, range).await
    }

    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        cp: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        let n = self.subset_pulls.fetch_add(1, Ordering::SeqCst);
        self.due(scope, &self.before_subset_pull, n).await;
        self.cloud.pull_subset_now(scope, sub, cp, limit)
    }

    async fn pull_subset_wait(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        cp: Option<&Checkpoint>,
        limit: u32,
        _wait_s: u32,
    ) -> Result<PulledSubset> {
        if self.waits.fetch_add(1, Ordering::SeqCst) > 0 {
            // The user stops the live sync while it waits for its second round.
            return Err(Error::Cancelled);
        }
        self.pull_subset(scope, sub, cp, limit).await
    }

    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        let n = self.subset_digests.fetch_add(1, Ordering::SeqCst);
        self.due(scope, &self.before_subset_digest, n).await;
        self.cloud.subset_digest(scope, sub, range).await
    }

    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.cloud.subset_records(scope, sub, range).await
    }
}

/// Asserts that the replica holds exactly the cloud's records of `sub` and nothing else.
async fn holds_exactly<S: Store>(store: &S, cloud: &Cloud, s: &ScopeId, sub: &Subscription) {
    assert_eq!(held_ids(store, s, "files").await, cloud_ids(cloud, s, sub));
    assert_eq!(
        held_ids(store, s, "repositories").await,
        Vec::<String>::new(),
        "no subscription selects a repository"
    );
}

/// Subscriptions declared while a whole-scope download is under way take over: the pages of
/// the whole scope still in flight do not fill the now partial replica with what no
/// subscription selects.
pub async fn subscriptions_set_during_a_whole_download_take_over<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let sub = files_of(&["r1"]);
    let remote = Resubscriber::new(&cloud, store);
    remote
        .before_pull
        .lock()
        .unwrap()
        .push((2, vec![vec![(sub.clone(), 0)]]));
    let syncer = Syncer::new(store, &remote, &clock);
    let opts = SyncOptions {
        page_size: 7,
        ..SyncOptions::default()
    };
    syncer.sync(&s, opts).await.unwrap();
    syncer.sync(&s, opts).await.unwrap();
    holds_exactly(store, &cloud, &s, &sub).await;
    let state = store.scope_state(&s).await.unwrap();
    assert_eq!(
        state.checkpoint, None,
        "a partial replica has no scope checkpoint"
    );
}

/// Subscriptions declared while a whole scope is being repaired (its last page missed a
/// change) take over: the repair does not write back what their declaration evicted, and the
/// replica is not left in a full download.
pub async fn subscriptions_set_during_a_whole_repair_take_over<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let remote = Resubscriber::new(&cloud, store);
    let syncer = Syncer::new(store, &remote, &clock);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    for i in 0..5 {
        cloud.put(
            &s,
            "repositories",
            &format!("r{i}"),
            json!({"name": "x"}),
            NOW,
        );
    }
    cloud.inject(crate::cloud::Faults {
        truncate_next: true,
        ..crate::cloud::Faults::default()
    });
    let sub = files_of(&["r1"]);
    remote
        .before_range_digest
        .lock()
        .unwrap()
        .push((0, vec![vec![(sub.clone(), 0)]]));
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert!(remote.range_digests.load(Ordering::SeqCst) > 0, "repaired");
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    holds_exactly(store, &cloud, &s, &sub).await;
    assert!(!store.scope_state(&s).await.unwrap().full_sync);
}

/// A record a push answers after the replica became partial meanwhile leaves it if no
/// subscription selects it, as it does when the replica was partial from the start.
pub async fn subscriptions_set_during_a_push_evict_what_it_answers<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let remote = Resubscriber::new(&cloud, store);
    let syncer = Syncer::new(store, &remote, &clock);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    let scope = ScopeHandle::new(store, s.clone());
    scope
        .put("repositories", "new", json!({"name": "new"}))
        .await
        .unwrap();
    let sub = files_of(&["r1"]);
    *remote.after_push.lock().unwrap() = vec![vec![(sub.clone(), 0)]];
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert!(cloud.record(&s, "repositories", "new").is_some());
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(store.pending_count(&s).await.unwrap(), 0);
    holds_exactly(store, &cloud, &s, &sub).await;
}

/// A page pulled from a subscription's checkpoint is not applied once the subscription was
/// removed and declared again meanwhile (it starts from the beginning then): the download
/// starts over rather than resting on records the removal evicted.
pub async fn a_page_pulled_before_a_subscription_restarted_is_dropped<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let (r1, r2) = (files_of(&["r1"]), files_of(&["r2"]));
    let remote = Resubscriber::new(&cloud, store);
    let syncer = Syncer::new(store, &remote, &clock);
    ScopeHandle::new(store, s.clone())
        .set_subscriptions(vec![(r1.clone(), 0)])
        .await
        .unwrap();
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert_eq!(remote.subset_pulls.load(Ordering::SeqCst), 1);
    cloud.put(&s, "files", "f003", json!({"repository": "r1"}), NOW);
    // Before the next subset pull (from r1's checkpoint) is answered, r1 is removed (its files
    // are evicted) and declared again (from the beginning).
    remote
        .before_subset_pull
        .lock()
        .unwrap()
        .push((1, vec![vec![(r2, 0)], vec![(r1.clone(), 0)]]));
    let report = syncer.sync(&s, SyncOptions::default()).await.unwrap();
    holds_exactly(store, &cloud, &s, &r1).await;
    assert_eq!(
        report.run.counts.repaired, 0,
        "downloaded again, not repaired by the verification"
    );
}

/// A live round that downloads a subscription again after a `410` verifies it: what the cloud
/// deleted meanwhile (its tombstone purged) leaves the replica.
pub async fn a_live_round_verifies_a_subscription_it_downloaded_again<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let sub = files_of(&["r1"]);
    let mut remote = Resubscriber::new(&cloud, store);
    remote.live = true;
    let syncer = Syncer::new(store, &remote, &clock);
    ScopeHandle::new(store, s.clone())
        .set_subscriptions(vec![(sub.clone(), 0)])
        .await
        .unwrap();
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    let gone = cloud.delete(&s, "files", "f011", NOW);
    cloud.purge_tombstones(&s, gone);
    let live = SyncOptions {
        live_wait_s: 30,
        ..SyncOptions::default()
    };
    syncer.sync(&s, live).await.unwrap();
    assert_eq!(remote.waits.load(Ordering::SeqCst), 2, "stopped in round 2");
    holds_exactly(store, &cloud, &s, &sub).await;
}

/// A subscription removed while the sync verifies it is not repaired: the repair would bring
/// back the records its removal evicted, which no subscription selects.
pub async fn a_subscription_removed_during_its_verification_is_not_repaired<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let (r1, r2) = (files_of(&["r1"]), files_of(&["r2"]));
    let remote = Resubscriber::new(&cloud, store);
    // Digests: r1's and r2's sizes before their downloads, then r1's and r2's verifications.
    remote
        .before_subset_digest
        .lock()
        .unwrap()
        .push((3, vec![vec![(r1.clone(), 0)]]));
    ScopeHandle::new(store, s.clone())
        .set_subscriptions(vec![(r1.clone(), 0), (r2, 0)])
        .await
        .unwrap();
    let syncer = Syncer::new(store, &remote, &clock);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    holds_exactly(store, &cloud, &s, &r1).await;
}

/// `verify --repair` leaves alone a pending edit that moves a held record into another
/// subscription: the cloud's subset does not hold it yet, but the cloud did not change it, so
/// the edit is pushed and accepted, not journaled.
pub async fn verify_repair_keeps_a_pending_edit_that_moves_a_record_in<S: Store>(store: &S) {
    let s = sid("org-1");
    let cloud = Cloud::new();
    catalog(&cloud, &s);
    let (r1, r2) = (files_of(&["r1"]), files_of(&["r2"]));
    let scope = ScopeHandle::new(store, s.clone());
    scope
        .set_subscriptions(vec![(r1.clone(), 0), (r2.clone(), 0)])
        .await
        .unwrap();
    let syncer = Syncer::new(store, &cloud, &clock);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    scope
        .put(
            "files",
            "f002",
            json!({"repository": "r1", "path": "moved"}),
        )
        .await
        .unwrap();
    syncer.verify(&s, true).await.unwrap();
    assert!(store.conflicts(&s).await.unwrap().is_empty());
    assert_eq!(store.pending_count(&s).await.unwrap(), 1);
    syncer.sync(&s, SyncOptions::default()).await.unwrap();
    assert!(store.conflicts(&s).await.unwrap().is_empty());
    assert_eq!(
        cloud.record(&s, "files", "f002").unwrap().1["path"],
        "moved"
    );
    let both = files_of(&["r1", "r2"]);
    holds_exactly(store, &cloud, &s, &both).await;
}
