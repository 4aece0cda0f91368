//! The pull of a partial replica (docs/partial-sync.md): each held subscription pulled from its
//! own checkpoint in priority order, its move-outs evicted, then each verified against the
//! cloud's count and digest of the subset, and repaired by key ranges where they differ.

use crate::rules::{
    held_index, plan_evict, plan_evict_unless, plan_subset_page, selected, validate_subset_page,
    RowWrite, ValidSubsetPage,
};
use crate::subscription::{PulledSubset, Subscription};
use crate::types::Checkpoint;

use super::*;

/// Times a subset's verification pulls again to compare at one position before it leaves the
/// comparison to the next sync (the subscription's collection kept changing meanwhile).
const VERIFY_ATTEMPTS: u32 = 3;

/// What a partial replica holds of one subscription, in key order: each selected row's key
/// and the hash its leaf is made of.
struct LocalSubset {
    leaves: Vec<(Key, RecordHash)>,
}

impl LocalSubset {
    fn snapshot(&self, range: &KeyRange) -> Snapshot {
        let mut snap = Snapshot::default();
        for (key, hash) in self.in_range(range) {
            snap.insert(&crate::digest::leaf(&key.collection, &key.id, hash));
        }
        snap
    }

    fn in_range<'s>(
        &'s self,
        range: &'s KeyRange,
    ) -> impl Iterator<Item = &'s (Key, RecordHash)> + 's {
        self.leaves.iter().filter(|(k, _)| range.contains(k))
    }
}

/// A subset page pulled and validated.
enum FetchedSubset {
    /// HTTP 410: download the subscription again.
    Reset,
    /// The page and the bytes received for it.
    Page(ValidSubsetPage, u64),
}

/// What one subscription's pull did.
struct SubsetPull {
    /// Changes and markers it applied.
    applied: u64,
    /// Whether the cloud answered `410` and the subscription was downloaded again.
    restarted: bool,
}

/// One subscription's verification: what the cloud and the replica hold of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubsetCheck {
    /// The subscription, encoded.
    pub subscription: String,
    /// The cloud's count and digest of its records.
    pub cloud: Snapshot,
    /// The replica's, of the rows it holds that the subscription selects.
    pub local: Snapshot,
}

impl<S: Store, R: Remote> Syncer<'_, S, R> {
    /// Steps 3 and 4 for a partial replica: pulls every held subscription, highest priority
    /// first (a [`Phase::Ready`] event as each priority completes), then verifies each.
    /// Returns the totals of what the replica holds.
    ///
    /// In a live round (`opts.live_wait_s` above 0) of a replica whose subscriptions are all
    /// complete, the first pull of the highest-priority subscription long-polls: the round
    /// starts when it changes (or the wait ends), then pulls every subscription once; and only
    /// the subscriptions that completed in this round are verified (the others were when they
    /// completed, and a digest of a subset costs its size).
    pub(super) async fn pull_subsets(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<Snapshot> {
        if opts.full {
            self.restart_subsets(scope).await?;
        }
        let state = self.store.scope_state(scope).await?;
        let caught_up = state.subscriptions.iter().all(|h| h.complete);
        let live = opts.live_wait_s > 0;
        let mut wait = if live && caught_up {
            opts.live_wait_s
        } else {
            0
        };
        // Downloaded again after a `410` in this round: verified even in a live round, since
        // the download cannot delete what the cloud deleted meanwhile.
        let mut restarted = Vec::new();
        let mut priorities: Vec<u8> = state.subscriptions.iter().map(|h| h.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        for priority in priorities {
            for sub in self.held_of(scope, Some(priority)).await? {
                let pulled = self
                    .pull_subset(scope, &sub, priority, wait, opts, run)
                    .await?;
                if pulled.restarted {
                    restarted.push(sub);
                }
                wait = 0;
            }
            self.emit_subset(opts, scope, Phase::Ready, None, priority, 0, None);
        }
        self.emit_finished(opts, scope, Phase::Verify, run);
        for sub in self.held_of(scope, None).await? {
            let was_complete = state
                .subscriptions
                .iter()
                .any(|h| h.subscription == sub && h.complete);
            if !(live && was_complete) || restarted.contains(&sub) {
                self.check_subset(scope, &sub, opts, run).await?;
            }
        }
        Ok(self.store.scope_state(scope).await?.totals)
    }

    /// The held subscriptions (of one priority), in the order they were declared.
    async fn held_of(&self, scope: &ScopeId, priority: Option<u8>) -> Result<Vec<Subscription>> {
        let state = self.store.scope_state(scope).await?;
        Ok(state
            .subscriptions
            .into_iter()
            .filter(|h| priority.is_none_or(|p| h.priority == p))
            .map(|h| h.subscription)
            .collect())
    }

    /// Pulls one subscription from its checkpoint to the end, the first request long-polling
    /// `wait` seconds if above 0. A subscription removed meanwhile ends the pull.
    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        priority: u8,
        mut wait: u32,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<SubsetPull> {
        let encoded = sub.encode();
        let limit = opts.page_size.max(1);
        let (mut done, mut empty_pages, mut reset) = (0u64, 0u32, false);
        let mut total = None;
        let mut ahead: Option<(Option<Checkpoint>, Result<FetchedSubset>)> = None;
        loop {
            check_cancel(opts)?;
            let state = self.store.scope_state(scope).await?;
            let Some(i) = held_index(&state, &encoded) else {
                return Ok(SubsetPull {
                    applied: done,
                    restarted: reset,
                });
            };
            let checkpoint = state.subscriptions[i].checkpoint.clone();
            if checkpoint.is_none() && total.is_none() {
                // An initial download: its size, for progress (subset pages say nothing of
                // what remains while their first part lasts).
                total = self
                    .remote
                    .subset_digest(scope, sub, &KeyRange::all())
                    .await?
                    .map(|s| s.count);
            }
            self.emit_subset(
                opts,
                scope,
                Phase::Pull,
                Some(&encoded),
                priority,
                done,
                total,
            );
            let fetched = match ahead.take() {
                Some((from, fetched)) if from == checkpoint => fetched?,
                // The subscription moved meanwhile (reset, or removed and added again): the
                // page pulled ahead is from elsewhere.
                _ => {
                    self.fetch_subset(scope, sub, checkpoint.as_ref(), limit, wait, opts)
                        .await?
                }
            };
            wait = 0;
            let (page, bytes) = match fetched {
                FetchedSubset::Reset if checkpoint.is_none() || reset => {
                    return Err(Error::protocol(format!(
                        "the remote answered reset to a pull of {encoded} it could not restart"
                    ))
                    .with_detail(Detail::NoProgress));
                }
                FetchedSubset::Reset => {
                    // Older than the cloud's tombstone horizon: download the subset again;
                    // what it missed deleting is found by the verification after the pull.
                    reset = true;
                    self.set_held(scope, &encoded, None).await?;
                    continue;
                }
                FetchedSubset::Page(page, bytes) => (page, bytes),
            };
            run.bytes_received = run.bytes_received.saturating_add(bytes);
            let n = (page.changes.len() + page.outside.len()) as u64;
            check_progress(
                page.has_more,
                n as usize,
                &page.checkpoint,
                checkpoint.as_ref(),
                &mut empty_pages,
            )?;
            let has_more = page.has_more;
            let keys = page.keys();
            let now = self.clock.now();
            let scope_name = scope.as_str();
            let unanswered = self
                .unanswered
                .lock()
                .map(|u| u.clone())
                .unwrap_or_default();
            let encoded_ref = encoded.as_str();
            let next_from = Some(page.checkpoint.clone());
            let from = checkpoint.as_ref();
            let dropped = std::sync::atomic::AtomicBool::new(false);
            let dropped_ref = &dropped;
            let apply = self.update(
                scope,
                &keys,
                // With data: a marker's row is kept when another subscription selects it.
                true,
                move |st: &ScopeState, rows: &[Option<Row>]| {
                    let moved = held_index(st, encoded_ref)
                        .is_some_and(|i| st.subscriptions[i].checkpoint.as_ref() != from);
                    dropped_ref.store(moved, std::sync::atomic::Ordering::Relaxed);
                    plan_subset_page(
                        scope_name,
                        st,
                        encoded_ref,
                        from,
                        page,
                        rows,
                        &unanswered,
                        now,
                    )
                },
            );
            let applied = if has_more {
                // The next page is pulled and validated while this one is written.
                let next = self.fetch_subset(scope, sub, next_from.as_ref(), limit, 0, opts);
                let (next, applied) = pipeline::join(next, apply).await;
                ahead = Some((next_from, next));
                applied?
            } else {
                apply.await?
            };
            if dropped.load(std::sync::atomic::Ordering::Relaxed) {
                // The subscription was restarted while the page was in flight: pull again from
                // where it stands now (the page pulled ahead is dropped too, being from
                // elsewhere).
                continue;
            }
            run.pages += 1;
            run.counts += applied.counts;
            done = done.saturating_add(n);
            if !has_more {
                total = Some(done);
            }
            self.emit_subset(
                opts,
                scope,
                Phase::Apply,
                Some(&encoded),
                priority,
                done,
                total,
            );
            if !has_more {
                return Ok(SubsetPull {
                    applied: done,
                    restarted: reset,
                });
            }
        }
    }

    /// Pulls one page of `sub` (long-polling `wait` seconds when above 0) and validates it,
    /// through `opts.offload` when there is one.
    async fn fetch_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait: u32,
        opts: &SyncOptions<'_>,
    ) -> Result<FetchedSubset> {
        let pulled = match wait {
            0 => {
                self.remote
                    .pull_subset(scope, sub, checkpoint, limit)
                    .await?
            }
            w => {
                self.remote
                    .pull_subset_wait(scope, sub, checkpoint, limit, w)
                    .await?
            }
        };
        let (page, bytes) = match pulled {
            PulledSubset::Reset => return Ok(FetchedSubset::Reset),
            PulledSubset::Page { page, bytes } => (page, bytes),
        };
        let wanted = sub.clone();
        let page = pipeline::run_on(opts.offload, move || {
            check_versions(&page.changes)?;
            for o in &page.outside {
                check_version(format_args!("{}/{}", o.collection, o.id), o.version)?;
            }
            validate_subset_page(page, &wanted)
        })
        .await?;
        Ok(FetchedSubset::Page(page, bytes))
    }

    /// Sets a held subscription's checkpoint (`None`: download it again) in one transaction.
    async fn set_held(
        &self,
        scope: &ScopeId,
        encoded: &str,
        checkpoint: Option<crate::types::Checkpoint>,
    ) -> Result<()> {
        self.update(scope, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
            let mut scope = st.clone();
            if let Some(i) = held_index(&scope, encoded) {
                scope.subscriptions[i].checkpoint = checkpoint;
                scope.subscriptions[i].complete = false;
            }
            Ok(Changeset {
                scope,
                ..Changeset::default()
            })
        })
        .await?;
        Ok(())
    }

    /// A full resync of a partial replica: every subscription downloaded again (what is held
    /// comes as unchanged; what the cloud deleted meanwhile is found by the verification).
    async fn restart_subsets(&self, scope: &ScopeId) -> Result<()> {
        self.update(scope, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
            let mut scope = st.clone();
            for held in &mut scope.subscriptions {
                held.checkpoint = None;
                held.complete = false;
            }
            Ok(Changeset {
                scope,
                ..Changeset::default()
            })
        })
        .await?;
        Ok(())
    }

    /// Verifies one subscription after its pull: the cloud's count and digest of the subset
    /// against the replica's, read at one position (the cloud's answer names its checkpoint;
    /// if it is not the subscription's, the subscription is pulled again, and a pull that
    /// brings nothing shows the subset did not change in between). Differences are repaired
    /// by key ranges, then by downloading the subset again; a difference after that is an
    /// [`Error::Integrity`]. Left to the next sync: a remote that cannot answer the digest,
    /// local edits not yet pushed (the replica does not know their cloud state's fields), and
    /// a collection that kept changing through every attempt.
    async fn check_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<()> {
        let encoded = sub.encode();
        let (mut repaired, mut downloaded) = (false, false);
        let mut attempts = 0;
        loop {
            let state = self.store.scope_state(scope).await?;
            let Some(i) = held_index(&state, &encoded) else {
                return Ok(());
            };
            let held = state.subscriptions[i].clone();
            let Some(cloud) = self
                .remote
                .subset_digest(scope, sub, &KeyRange::all())
                .await?
            else {
                return Ok(());
            };
            if held.checkpoint.as_ref() != Some(&cloud.checkpoint) {
                attempts += 1;
                if attempts > VERIFY_ATTEMPTS {
                    return Ok(());
                }
                if self
                    .pull_subset(scope, sub, held.priority, 0, opts, run)
                    .await?
                    .applied
                    > 0
                {
                    continue;
                }
            }
            if self.store.pending_count(scope).await? > 0 {
                return Ok(());
            }
            let expected = Snapshot {
                count: cloud.count,
                digest: cloud.digest,
            };
            let local = self.local_subset(scope, sub, false).await?;
            let actual = local.snapshot(&KeyRange::all());
            if actual == expected {
                return Ok(());
            }
            if !repaired {
                repaired = true;
                if self.repair_subset(scope, sub, &local, run).await?.is_some() {
                    continue;
                }
            }
            if downloaded {
                return Err(Error::Integrity(Box::new(IntegrityMismatch {
                    scope: scope.to_string(),
                    expected,
                    actual,
                })));
            }
            downloaded = true;
            self.download_subset_again(scope, sub, &local).await?;
            self.pull_subset(scope, sub, held.priority, 0, opts, run)
                .await?;
        }
    }

    /// The rows the replica holds that `sub` selects, with their cloud hash (or, with
    /// `rehash`, the hash of their data again for rows without a pending edit). Reads the
    /// subscription's collection in pages; holds a key and a hash per selected row.
    async fn local_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        rehash: bool,
    ) -> Result<LocalSubset> {
        let mut leaves = Vec::new();
        let mut after: Option<String> = None;
        let mut buf = Vec::new();
        loop {
            let rows = self
                .store
                .list(scope, &sub.collection, after.as_deref(), 1000)
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.id.clone());
            for row in rows {
                if !selected(&[sub], &row)? {
                    continue;
                }
                let hash = match (&row.data, row.pending) {
                    (Some(data), None) if rehash => data.hash_with(&mut buf).ok(),
                    _ => row.cloud_hash,
                };
                if let Some(h) = hash {
                    leaves.push((row.key, h));
                }
            }
        }
        Ok(LocalSubset { leaves })
    }

    /// Bisects key ranges of `sub` against the cloud's subset digests and rewrites the
    /// differing small ranges from its subset records (cloud wins; a held row the cloud's
    /// subset does not have leaves as an eviction). Returns the rows repaired, or `None` if the
    /// remote answers no subset ranges or a range cannot be bisected.
    async fn repair_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        local: &LocalSubset,
        run: &mut Run,
    ) -> Result<Option<u64>> {
        let mut stack = vec![KeyRange::all()];
        let mut repaired = 0;
        while let Some(range) = stack.pop() {
            let Some(cloud) = self.remote.subset_digest(scope, sub, &range).await? else {
                return Ok(None);
            };
            let mine = local.snapshot(&range);
            if mine.count == cloud.count && mine.digest == cloud.digest {
                continue;
            }
            if cloud.count.max(mine.count) <= REPAIR_LEAF {
                match self.repair_subset_range(scope, sub, &range, local).await {
                    Ok(counts) => {
                        repaired += counts.repaired;
                        run.counts.conflicts += counts.conflicts;
                        continue;
                    }
                    Err(e) if e.detail() == Some(Detail::BodyTooLarge) && cloud.count > 1 => {}
                    Err(e) => return Err(e),
                }
            }
            let keys: Vec<&Key> = local.in_range(&range).map(|(k, _)| k).collect();
            if keys.len() < 2 {
                return Ok(None);
            }
            let mid = keys[keys.len() / 2].clone();
            stack.push(KeyRange {
                from: range.from.clone(),
                to: Some(mid.clone()),
            });
            stack.push(KeyRange {
                from: Some(mid),
                to: range.to,
            });
        }
        self.recount(scope).await?;
        run.counts.repaired += repaired;
        Ok(Some(repaired))
    }

    async fn repair_subset_range(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
        local: &LocalSubset,
    ) -> Result<Counts> {
        let records = self
            .remote
            .subset_records(scope, sub, range)
            .await?
            .ok_or_else(|| {
                Error::protocol("the remote answers subset digests but not records")
                    .with_detail(Detail::NotSupported)
            })?;
        check_versions(&records)?;
        let mut buf = Vec::new();
        let mut cloud = std::collections::HashMap::with_capacity(records.len());
        for change in records {
            let inc = validate_change(change, &mut buf)?;
            let fits = range.contains(&inc.key)
                && match &inc.state {
                    Some((doc, _)) => sub.matches(&inc.key.collection, &doc.to_data()?),
                    None => false,
                };
            if !fits {
                return Err(Error::protocol(format!(
                    "subset records answer holds {}/{}, outside the range or subscription asked for",
                    inc.key.collection, inc.key.id
                ))
                .with_detail(Detail::Malformed));
            }
            cloud.insert(inc.key.clone(), inc);
        }
        let mut keys: Vec<Key> = local.in_range(range).map(|(k, _)| k.clone()).collect();
        keys.extend(cloud.keys().cloned());
        crate::sort::sort_by(&mut keys, Ord::cmp);
        keys.dedup();
        let now = self.clock.now();
        let scope_name = scope.as_str();
        let encoded = sub.encode();
        let applied = self
            .update(
                scope,
                &keys,
                true,
                |st: &ScopeState, rows: &[Option<Row>]| {
                    if held_index(st, &encoded).is_none() {
                        // Removed meanwhile: what it selected was evicted and stays so.
                        return Ok(unchanged(st));
                    }
                    // A pending edit the cloud's subset does not hold may rest on a record the
                    // cloud still has elsewhere (or the edit moves it into the subset): the
                    // push settles it, as for a move-out marker; the cloud deleted nothing.
                    let rows: Vec<Option<Row>> = keys
                        .iter()
                        .zip(rows)
                        .map(|(key, row)| {
                            row.clone()
                                .filter(|r| r.pending.is_none() || cloud.contains_key(key))
                        })
                        .collect();
                    let mut out = plan_repair(scope_name, st, &keys, &rows, &cloud, now)?;
                    // Not in the cloud's subset is not deleted: it may be anywhere else.
                    for w in &mut out.rows {
                        if let RowWrite::Remove { evict, .. } = w {
                            *evict = true;
                        }
                    }
                    Ok(out)
                },
            )
            .await?;
        Ok(applied.counts)
    }

    /// Evicts what the replica holds of `sub` (rows another subscription selects and rows
    /// with a pending edit stay) and restarts its download.
    async fn download_subset_again(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        local: &LocalSubset,
    ) -> Result<()> {
        let encoded = sub.encode();
        let keys: Vec<Key> = local.leaves.iter().map(|(k, _)| k.clone()).collect();
        self.update(
            scope,
            &keys,
            true,
            |st: &ScopeState, rows: &[Option<Row>]| {
                if held_index(st, &encoded).is_none() {
                    return Ok(unchanged(st));
                }
                let others: Vec<&Subscription> = st
                    .subscriptions
                    .iter()
                    .map(|h| &h.subscription)
                    .filter(|s| *s != sub)
                    .collect();
                let mut out = plan_evict_unless(st, &others, rows)?;
                if let Some(i) = held_index(&out.scope, &encoded) {
                    out.scope.subscriptions[i].checkpoint = None;
                    out.scope.subscriptions[i].complete = false;
                }
                Ok(out)
            },
        )
        .await?;
        Ok(())
    }

    /// Recomputes the scope's totals from its rows (after a repair).
    pub(super) async fn recount(&self, scope: &ScopeId) -> Result<()> {
        let totals = self
            .store
            .range_snapshot(scope, &KeyRange::all(), false)
            .await?;
        self.update(scope, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
            Ok(Changeset {
                scope: ScopeState {
                    totals,
                    ..st.clone()
                },
                ..Changeset::default()
            })
        })
        .await?;
        Ok(())
    }

    /// Evicts, among `keys`, the rows no held subscription selects (pending edits stay), in
    /// one transaction: after a push answered edits of a partial replica.
    pub(super) async fn evict_unselected(&self, scope: &ScopeId, keys: &[Key]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.update(
            scope,
            keys,
            true,
            |st: &ScopeState, rows: &[Option<Row>]| plan_evict(st, rows),
        )
        .await?;
        Ok(())
    }

    /// Verifies a partial replica, subscription by subscription ([`Syncer::verify`]).
    pub(super) async fn verify_subsets(
        &self,
        scope: &ScopeId,
        repair: bool,
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            cloud: Snapshot::default(),
            local: Snapshot::default(),
            matched: true,
            repaired: 0,
            matches_now: true,
            subscriptions: Vec::new(),
        };
        let mut run = Run::manual(scope, RunKind::Incremental, self.clock.now());
        for sub in self.held_of(scope, None).await? {
            let cloud = self.subset_snapshot(scope, &sub).await?;
            let local = self.local_subset(scope, &sub, true).await?;
            let mut mine = local.snapshot(&KeyRange::all());
            add(&mut report.cloud, &cloud);
            add(&mut report.local, &mine);
            let matched = mine == cloud;
            report.matched &= matched;
            let mut now_cloud = cloud;
            if !matched && repair {
                report.repaired += self
                    .repair_subset(scope, &sub, &local, &mut run)
                    .await?
                    .ok_or_else(|| Error::invalid("this remote does not answer subset ranges"))?;
                mine = self
                    .local_subset(scope, &sub, true)
                    .await?
                    .snapshot(&KeyRange::all());
                now_cloud = self.subset_snapshot(scope, &sub).await?;
            }
            report.matches_now &= mine == now_cloud;
            report.subscriptions.push(SubsetCheck {
                subscription: sub.encode(),
                cloud,
                local: mine,
            });
        }
        Ok(report)
    }

    async fn subset_snapshot(&self, scope: &ScopeId, sub: &Subscription) -> Result<Snapshot> {
        let s = self
            .remote
            .subset_digest(scope, sub, &KeyRange::all())
            .await?
            .ok_or_else(|| Error::invalid("this remote cannot report a subset's digest"))?;
        Ok(Snapshot {
            count: s.count,
            digest: s.digest,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_subset(
        &self,
        opts: &SyncOptions<'_>,
        scope: &ScopeId,
        phase: Phase,
        subscription: Option<&str>,
        priority: u8,
        done: u64,
        total: Option<u64>,
    ) {
        if let Some(sink) = opts.progress {
            sink.progress(&Progress {
                scope: scope.to_string(),
                phase,
                done,
                total,
                percent: percent(done, total),
                subscription: subscription.map(str::to_owned),
                priority: Some(priority),
            });
        }
    }
}

fn add(sum: &mut Snapshot, part: &Snapshot) {
    sum.count += part.count;
    sum.digest.add(&part.digest);
}
