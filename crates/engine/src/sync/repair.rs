//! Verification and repair: the replica's rows compared with the cloud's count and digest,
//! differing key ranges bisected and fixed in place (cloud wins).

use std::collections::HashMap;

use super::*;

impl<S: Store, R: Remote> Syncer<'_, S, R> {
    /// Compares the replica's rows (data hashed again) with the cloud's status, and with
    /// `repair` fixes differing key ranges in place (cloud wins).
    pub async fn verify(&self, scope: &ScopeId, repair: bool) -> Result<VerifyReport> {
        self.remote.begin_run();
        if !self
            .store
            .scope_state(scope)
            .await?
            .subscriptions
            .is_empty()
        {
            return self.verify_subsets(scope, repair).await;
        }
        let cloud = match self.remote.range_digest(scope, &KeyRange::all()).await? {
            Some(s) => s,
            None => match self.remote.status(scope).await? {
                Some(st) => Snapshot {
                    count: st.count,
                    digest: st.digest,
                },
                None => return Err(Error::invalid("this remote cannot report its digest")),
            },
        };
        let local = self
            .store
            .range_snapshot(scope, &KeyRange::all(), true)
            .await?;
        let matched = local == cloud;
        let mut repaired = 0;
        let mut now_local = local;
        let mut now_cloud = cloud;
        if !matched && repair {
            let mut run = Run::manual(scope, RunKind::Incremental, self.clock.now());
            repaired = self
                .repair(scope, &mut run)
                .await?
                .ok_or_else(|| Error::invalid("this remote does not answer range queries"))?;
            now_local = self
                .store
                .range_snapshot(scope, &KeyRange::all(), true)
                .await?;
            // Compared with what the cloud says after the repair, not before it.
            if let Some(fresh) = self.cloud_snapshot(scope).await? {
                now_cloud = fresh;
            }
        }
        Ok(VerifyReport {
            cloud,
            local,
            matched,
            repaired,
            matches_now: now_local == now_cloud,
            subscriptions: Vec::new(),
        })
    }

    /// Bisects key ranges against the remote's range digests, rewrites the differing small
    /// ranges from the remote's records, then recomputes the totals from the rows. Returns the
    /// number of rows repaired, or `None` if the remote does not answer range queries or a
    /// range is too lopsided to bisect (the caller then downloads in full).
    pub(super) async fn repair(&self, scope: &ScopeId, run: &mut Run) -> Result<Option<u64>> {
        let mut stack = vec![KeyRange::all()];
        let mut repaired = 0;
        while let Some(range) = stack.pop() {
            let Some(cloud) = self.remote.range_digest(scope, &range).await? else {
                return Ok(None);
            };
            let local = self.store.range_snapshot(scope, &range, true).await?;
            if local == cloud {
                continue;
            }
            if cloud.count.max(local.count) <= REPAIR_LEAF {
                match self.repair_range(scope, &range).await {
                    Ok(counts) => {
                        repaired += counts.repaired;
                        run.counts.conflicts += counts.conflicts;
                        continue;
                    }
                    // The range's records do not fit one answer (big records: the server
                    // refuses a range over its page budget, or the answer is over what this
                    // replica reads): bisect further, down to single records.
                    Err(e) if e.detail() == Some(Detail::BodyTooLarge) && cloud.count > 1 => {}
                    Err(e) => return Err(e),
                }
            }
            if local.count < 2 {
                return Ok(None);
            }
            let Some(mid) = self.store.nth_key(scope, &range, local.count / 2).await? else {
                return Ok(None);
            };
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

    async fn repair_range(&self, scope: &ScopeId, range: &KeyRange) -> Result<Counts> {
        let records = self
            .remote
            .range_records(scope, range)
            .await?
            .ok_or_else(|| {
                Error::protocol("the remote answers range digests but not records")
                    .with_detail(Detail::NotSupported)
            })?;
        check_versions(&records)?;
        let mut buf = Vec::new();
        let mut cloud = HashMap::with_capacity(records.len());
        for change in records {
            let inc = validate_change(change, &mut buf)?;
            if !range.contains(&inc.key) {
                return Err(Error::protocol(format!(
                    "range records answer holds {}/{}, outside the range asked for",
                    inc.key.collection, inc.key.id
                ))
                .with_detail(Detail::Malformed));
            }
            cloud.insert(inc.key.clone(), inc);
        }
        let mut keys = self.store.range_keys(scope, range, usize::MAX).await?;
        keys.extend(cloud.keys().cloned());
        crate::sort::sort_by(&mut keys, Ord::cmp);
        keys.dedup();
        let now = self.clock.now();
        let scope_name = scope.as_str();
        let applied = self
            .update(
                scope,
                &keys,
                true,
                |st: &ScopeState, rows: &[Option<Row>]| {
                    if !st.subscriptions.is_empty() {
                        // Subscriptions declared meanwhile: the whole scope's records would
                        // fill a partial replica with what they do not select.
                        return Ok(unchanged(st));
                    }
                    plan_repair(scope_name, st, &keys, rows, &cloud, now)
                },
            )
            .await?;
        Ok(applied.counts)
    }

    /// The cloud's count and digest now: its status, or the digest of the whole key range.
    pub(super) async fn cloud_snapshot(&self, scope: &ScopeId) -> Result<Option<Snapshot>> {
        if let Some(st) = self.remote.status(scope).await? {
            return Ok(Some(Snapshot {
                count: st.count,
                digest: st.digest,
            }));
        }
        self.remote.range_digest(scope, &KeyRange::all()).await
    }
}
