//! The push step of a run: the outbox in sequence order, in batches cut by count and bytes,
//! each batch's answer applied in one transaction.

use super::*;

impl<S: Store, R: Remote> Syncer<'_, S, R> {
    pub(super) async fn push(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<()> {
        let total = self.store.pending_count(scope).await?;
        let mut after = None;
        let mut done = 0;
        loop {
            check_cancel(opts)?;
            let rows = self
                .store
                .pending(scope, after, opts.push_batch.max(1))
                .await?;
            if rows.is_empty() {
                break;
            }
            self.emit_counts(opts, scope, Phase::Push, done, Some(total));
            // Cut the batch by bytes as well: it ends before the mutation that would take the
            // body over the limit (the rest is read again next round). An edit over the limit
            // on its own is refused here, never sent: the cloud would answer 413 every time.
            let limit = opts.push_bytes.max(1);
            let (mut sent, mut mutations, mut refused) = (Vec::new(), Vec::new(), Vec::new());
            let mut bytes = PUSH_ENVELOPE;
            for row in rows {
                let Some(m) = row.mutation() else { continue };
                let size = json_len(&m)?;
                if PUSH_ENVELOPE + size > limit {
                    after = row.pending;
                    refused.push(row);
                    continue;
                }
                // One byte for the comma after the previous mutation.
                if !mutations.is_empty() && bytes + 1 + size > limit {
                    break;
                }
                bytes += size + usize::from(!mutations.is_empty());
                after = row.pending;
                sent.push(row);
                mutations.push(m);
            }
            let mut outcomes = if mutations.is_empty() {
                Vec::new()
            } else {
                let response = self.remote.push(scope, &mutations).await?;
                for result in &response.results {
                    match result {
                        MutationResult::Accepted { version, .. } => {
                            check_version("an accepted mutation", *version)?
                        }
                        MutationResult::Rejected { current }
                        | MutationResult::Invalid { current, .. } => check_versions(current)?,
                    }
                }
                validate_push(sent, response.results)?
            };
            // The replica does not hold the cloud's data under a pending edit, so the row goes
            // (its leaf leaves the totals) and the verification at the end of this run repairs
            // it from the cloud; a local create simply goes.
            outcomes.extend(refused.into_iter().map(|pushed| PushOutcome {
                pushed,
                result: PushResult::Invalid {
                    reason: "too_large".into(),
                    current: None,
                },
            }));
            let keys: Vec<Key> = outcomes.iter().map(|o| o.pushed.key.clone()).collect();
            let now = self.clock.now();
            let scope_name = scope.as_str();
            let applied = self
                .store
                .update(
                    scope,
                    &keys,
                    // With data: an edit made during the push may have to be journaled.
                    true,
                    |st: &ScopeState, rows: &[Option<Row>]| {
                        plan_push(scope_name, st, &outcomes, rows, now)
                    },
                )
                .await?;
            run.counts.conflicts += applied.counts.conflicts;
            done += keys.len() as u64;
        }
        if total > 0 {
            self.emit_counts(opts, scope, Phase::Push, done, Some(total));
        }
        Ok(())
    }
}

/// Length of `value`'s JSON encoding, without building it.
fn json_len(value: &impl serde::Serialize) -> Result<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)
        .map_err(|e| Error::invalid(format!("cannot encode a mutation: {e}")))?;
    Ok(count.0)
}
