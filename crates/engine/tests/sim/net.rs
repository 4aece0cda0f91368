//! The network between a replica and the cloud: [`Net`] with faults and races (edits of the
//! same store during a push or a pull, another writer, another replica syncing meanwhile, lost
//! and duplicated push answers, a server going away), and [`Recorder`], the clean wire. Both
//! record every state a push makes the cloud take, and check each pushed base.

use std::sync::atomic::{AtomicI64, Ordering};

use tether_engine::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use tether_engine::*;

use super::subs;
use super::world::{clock, local_edit, Shared};

/// Applies `m` to the cloud and records each accepted mutation as a write by replica `me`.
/// An accepted mutation must have been made on the live state, or on a state only `me` (or
/// the replica it is a copy of, for the edits it copied) wrote since: anything else overwrote
/// a write its replica never saw, silently.
fn push_recorded(sh: &Shared<'_>, me: usize, m: &[Mutation]) -> Result<PushResponse> {
    let before: Vec<_> = {
        let b = sh.book();
        m.iter()
            .map(|m| {
                let w = b.history.iter().rev().find(|w| w.key == m.id)?;
                Some((w.version, w.state.clone(), w.by))
            })
            .collect()
    };
    let answer = sh.cloud.push_now(&sh.scope, m, 0)?;
    let mut b = sh.book();
    for ((m, res), before) in m.iter().zip(&answer.results).zip(before) {
        match res {
            MutationResult::Accepted { version, .. } => {
                b.note(format!(
                    "  cloud: r{me} {:?} {} (base {:?}) accepted at v{version}",
                    m.op, m.id, m.base_version
                ));
                // A repeat is answered with the original write (a copied replica repeats its
                // origin's mutations): the cloud wrote nothing now.
                if b.history
                    .iter()
                    .any(|w| w.key == m.id && w.version == *version)
                {
                    continue;
                }
                if let Some((v, state, by)) = before {
                    let live = state.is_some().then_some(v);
                    let own = by == Some(me)
                        || b.edits
                            .iter()
                            .any(|e| b.holds(me, e) && e.key == m.id && e.state == state);
                    if live != m.base_version && !own {
                        let msg = format!(
                            "r{me}'s {:?} {} on base {:?} was applied over v{v} (by {by:?}), \
                             which it never saw",
                            m.op, m.id, m.base_version
                        );
                        b.violations.push(msg);
                    }
                }
                b.history.push(super::world::Write {
                    key: m.id.clone(),
                    state: if m.op == Op::Put {
                        m.data.clone()
                    } else {
                        None
                    },
                    version: *version,
                    by: Some(me),
                });
            }
            MutationResult::Rejected { current } => b.note(format!(
                "  cloud: r{me} {:?} {} (base {:?}) rejected, current v{:?}",
                m.op,
                m.id,
                m.base_version,
                current.as_ref().map(|c| c.version)
            )),
            MutationResult::Invalid { reason, .. } => b.note(format!(
                "  cloud: r{me} {:?} {} refused as {reason}",
                m.op, m.id
            )),
        }
    }
    Ok(answer)
}

/// A pushed mutation may rest only on a version its replica saw when an edit of the key was
/// made, or on a version whose state is the replica's own (its push wrote it, or the cloud
/// holds the data of one of its edits of the key): anything else is an edit moved onto a
/// cloud version the user never saw.
fn check_bases(sh: &Shared<'_>, me: usize, m: &[Mutation]) {
    let mut b = sh.book();
    for m in m {
        let Some(v) = m.base_version else { continue };
        let seen = b
            .bases
            .iter()
            .any(|(r, k, x)| *r == me && *k == m.id && *x == v)
            || b.history.iter().any(|w| {
                w.key == m.id
                    && w.version == v
                    && (w.by == Some(me)
                        || b.edits
                            .iter()
                            .any(|e| b.holds(me, e) && e.key == m.id && e.state == w.state))
            });
        if !seen {
            let msg = format!(
                "r{me} pushes {:?} {} on base v{v}, a version none of its edits rested on",
                m.op, m.id
            );
            b.violations.push(msg);
        }
    }
}

/// The clean wire: no faults, no races.
pub(super) struct Recorder<'a> {
    pub sh: &'a Shared<'a>,
    pub me: usize,
}

impl Remote for Recorder<'_> {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        self.sh.cloud.pull_now(scope, cp, limit)
    }
    fn can_push(&self) -> bool {
        true
    }
    async fn push(&self, _: &ScopeId, m: &[Mutation]) -> Result<PushResponse> {
        check_bases(self.sh, self.me, m);
        push_recorded(self.sh, self.me, m)
    }
    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.sh.cloud.range_digest(scope, range).await
    }
    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.sh.cloud.range_records(scope, range).await
    }
    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        cp: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        self.sh.cloud.pull_subset_now(scope, sub, cp, limit)
    }
    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        Ok(Some(self.sh.cloud.subset_digest_now(scope, sub, range)))
    }
    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        Ok(Some(self.sh.cloud.subset_records_now(scope, sub, range)))
    }
}

/// The faulty wire of replica `me` (one of `stores`).
pub(super) struct Net<'a> {
    sh: &'a Shared<'a>,
    stores: &'a [MemoryStore],
    me: usize,
    faults: bool,
    /// Calls the server answers before it goes away; negative: no limit.
    calls_left: AtomicI64,
}

impl<'a> Net<'a> {
    pub(super) fn new(
        sh: &'a Shared<'a>,
        stores: &'a [MemoryStore],
        me: usize,
        faults: bool,
        calls: Option<i64>,
    ) -> Self {
        Net {
            sh,
            stores,
            me,
            faults,
            calls_left: AtomicI64::new(calls.unwrap_or(-1)),
        }
    }

    fn gate(&self) -> Result<()> {
        if self.calls_left.load(Ordering::Relaxed) < 0 {
            return Ok(());
        }
        if self.calls_left.fetch_sub(1, Ordering::Relaxed) <= 0 {
            self.calls_left.store(0, Ordering::Relaxed);
            self.sh.book().note("  server gone".into());
            return Err(Error::network("server restarting"));
        }
        Ok(())
    }

    fn fault(&self, percent: u64, what: &'static str) -> bool {
        let hit = self.faults && self.sh.rng.chance(percent);
        if hit {
            let mut b = self.sh.book();
            b.saw(what);
            b.note(format!("  fault: {what}"));
        }
        hit
    }

    fn store(&self) -> &MemoryStore {
        &self.stores[self.me]
    }

    /// Another replica runs a whole clean sync while this one's push is in flight.
    async fn other_replica_syncs(&self) {
        let other = (self.me + 1 + self.sh.rng.below(self.stores.len() as u64 - 1) as usize)
            % self.stores.len();
        let rec = Recorder {
            sh: self.sh,
            me: other,
        };
        self.sh.book().note(format!("  r{other} syncs meanwhile"));
        let opts = SyncOptions {
            page_size: 1 + self.sh.rng.below(8) as u32,
            ..SyncOptions::default()
        };
        let done = Syncer::new(&self.stores[other], &rec, &clock)
            .sync(&self.sh.scope, opts)
            .await;
        if let Err(e) = done {
            let msg = format!("clean concurrent sync of r{other} failed: {e}");
            self.sh.book().violations.push(msg);
        }
    }
}

impl Remote for Net<'_> {
    async fn pull(&self, scope: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        self.gate()?;
        let sh = self.sh;
        if self.fault(8, "drop") {
            return Err(Error::network("dropped"));
        }
        let mut pulled = sh.cloud.pull_now(scope, cp, limit)?;
        if let Pulled::Page { page, .. } = &mut pulled {
            if !page.changes.is_empty() && self.fault(10, "duplicate") {
                let i = sh.rng.below(page.changes.len() as u64) as usize;
                page.changes.push(page.changes[i].clone());
            }
            if self.fault(20, "reorder") {
                let n = page.changes.len();
                for i in (1..n).rev() {
                    page.changes.swap(i, sh.rng.below(i as u64 + 1) as usize);
                }
            }
            if !page.changes.is_empty() && self.fault(5, "truncate") {
                page.changes.pop();
            }
            if self.fault(8, "edit-during-pull") {
                local_edit(sh, self.store(), self.me, "tab2 during pull").await;
            }
            if self.fault(3, "subscribe-during-pull") {
                subs::change(sh, self.store(), self.me, "tab2 during pull").await;
            }
            if self.fault(6, "crash") {
                return Err(Error::network("crashed before apply"));
            }
        } else {
            sh.book().saw("410");
        }
        Ok(pulled)
    }
    fn can_push(&self) -> bool {
        true
    }
    async fn push(&self, scope: &ScopeId, m: &[Mutation]) -> Result<PushResponse> {
        self.gate()?;
        let sh = self.sh;
        check_bases(sh, self.me, m);
        if self.fault(6, "push-dropped") {
            return Err(Error::network("push dropped"));
        }
        if self.fault(12, "edit-before-push") {
            local_edit(sh, self.store(), self.me, "tab2 before push").await;
        }
        if self.fault(5, "cloud-write-before-push") {
            let i = sh.rng.below(m.len() as u64) as usize;
            sh.cloud_write(&m[i].id, "racing the push");
        }
        let mut answer = push_recorded(sh, self.me, m)?;
        let _ = scope;
        if self.fault(8, "push-duplicated") {
            let second = push_recorded(sh, self.me, m)?;
            if sh.rng.chance(50) {
                answer = second;
                sh.book()
                    .note("  the replica gets the second answer".into());
            }
        }
        if self.fault(12, "edit-after-push") {
            local_edit(sh, self.store(), self.me, "tab2 after push").await;
        }
        if self.fault(5, "subscribe-during-push") {
            subs::change(sh, self.store(), self.me, "tab2 during push").await;
        }
        if self.fault(6, "concurrent-sync") {
            self.other_replica_syncs().await;
        }
        if self.fault(4, "cloud-write-after-push") {
            let i = sh.rng.below(m.len() as u64) as usize;
            sh.cloud_write(&m[i].id, "after the push");
        }
        if self.fault(8, "push-answer-lost") {
            return Err(Error::network("push answer lost"));
        }
        Ok(answer)
    }
    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.gate()?;
        self.sh.cloud.range_digest(scope, range).await
    }
    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.gate()?;
        self.sh.cloud.range_records(scope, range).await
    }
    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        cp: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        self.gate()?;
        let sh = self.sh;
        if self.fault(8, "drop") {
            return Err(Error::network("dropped"));
        }
        let mut pulled = sh.cloud.pull_subset_now(scope, sub, cp, limit)?;
        let PulledSubset::Page { page, .. } = &mut pulled else {
            sh.book().saw("410");
            return Ok(pulled);
        };
        if !page.changes.is_empty() && self.fault(10, "duplicate") {
            let i = sh.rng.below(page.changes.len() as u64) as usize;
            page.changes.push(page.changes[i].clone());
        }
        if !page.outside.is_empty() && self.fault(10, "duplicate") {
            let i = sh.rng.below(page.outside.len() as u64) as usize;
            page.outside.push(page.outside[i].clone());
        }
        if self.fault(20, "reorder") {
            for i in (1..page.changes.len()).rev() {
                page.changes.swap(i, sh.rng.below(i as u64 + 1) as usize);
            }
            for i in (1..page.outside.len()).rev() {
                page.outside.swap(i, sh.rng.below(i as u64 + 1) as usize);
            }
        }
        if !page.changes.is_empty() && self.fault(5, "truncate") {
            page.changes.pop();
        }
        if !page.outside.is_empty() && self.fault(5, "subset-marker-lost") {
            page.outside.pop();
        }
        if self.fault(8, "edit-during-pull") {
            local_edit(sh, self.store(), self.me, "tab2 during pull").await;
        }
        if self.fault(5, "subscribe-during-pull") {
            subs::change(sh, self.store(), self.me, "tab2 during pull").await;
        }
        if self.fault(6, "crash") {
            return Err(Error::network("crashed before apply"));
        }
        Ok(pulled)
    }
    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        self.gate()?;
        Ok(Some(self.sh.cloud.subset_digest_now(scope, sub, range)))
    }
    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.gate()?;
        Ok(Some(self.sh.cloud.subset_records_now(scope, sub, range)))
    }
}
