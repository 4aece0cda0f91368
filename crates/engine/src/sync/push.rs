//! The push step of a run: the outbox in sequence order, in batches cut by count and bytes,
//! each batch's answer applied in one transaction.

use sha2::{Digest as _, Sha256};

use super::*;

impl<S: Store, R: Remote> Syncer<'_, S, R> {
    pub(super) async fn push(
        &self,
        scope: &ScopeId,
        opts: &SyncOptions<'_>,
        run: &mut Run,
    ) -> Result<()> {
        let total = self.store.pending_count(scope).await?;
        if total == 0 {
            return Ok(());
        }
        let client = self.client_id(scope, opts).await?;
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
                let Some(m) = row.mutation(Some(&client))? else {
                    continue;
                };
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
                // An answer that does not hold together is treated like a lost one: the cloud
                // may have applied the push all the same.
                let answered = self
                    .remote
                    .push(scope, &mutations)
                    .await
                    .and_then(|response| {
                        for result in &response.results {
                            match result {
                                MutationResult::Accepted { version, .. } => {
                                    check_version("an accepted mutation", *version)?
                                }
                                MutationResult::Rejected { current }
                                | MutationResult::Invalid { current, .. } => {
                                    check_versions(current)?
                                }
                            }
                        }
                        validate_push(sent.clone(), response.results)
                    });
                match answered {
                    Ok(outcomes) => outcomes,
                    Err(e) => {
                        // It may have been applied: the pull of this run must know what was
                        // sent, to take the cloud's copy of it for the replica's own write.
                        if let Ok(mut unanswered) = self.unanswered.lock() {
                            unanswered.extend(sent.iter().map(|r| (r.key.clone(), r.hash)));
                        }
                        // And the next push must be able to name it as the mutation it
                        // replaces, after a restart too. If this write fails (or the process
                        // dies before it), the next push is judged on its base: at worst a
                        // false conflict, journaled. The push's error is the one to report.
                        let _ = self.mark_unanswered(scope, &sent).await;
                        return Err(e);
                    }
                }
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
            // A partial replica drops what was answered if no subscription selects it. Read
            // after the answer is written: subscriptions declared before this read are seen
            // here, and the eviction of a later declaration finds the edits answered.
            if !self
                .store
                .scope_state(scope)
                .await?
                .subscriptions
                .is_empty()
            {
                self.evict_unselected(scope, &keys).await?;
            }
            done += keys.len() as u64;
        }
        self.emit_counts(opts, scope, Phase::Push, done, Some(total));
        Ok(())
    }

    /// Records on each row of `sent` that still has a pending edit the sequence number pushed
    /// for it ([`Row::sent`]), in one transaction.
    async fn mark_unanswered(&self, scope: &ScopeId, sent: &[Row]) -> Result<()> {
        let pushed: Vec<(Key, u64)> = sent
            .iter()
            .filter_map(|r| Some((r.key.clone(), r.pending?)))
            .collect();
        let keys: Vec<Key> = pushed.iter().map(|(k, _)| k.clone()).collect();
        self.update(
            scope,
            &keys,
            false,
            |st: &ScopeState, rows: &[Option<Row>]| plan_unanswered(st, &pushed, rows),
        )
        .await?;
        Ok(())
    }

    /// The scope's client id, made and stored at the first push from the 16 random bytes the
    /// driver passed ([`SyncOptions::client_entropy`]), as 32 hex digits. Another tab that
    /// stored one first wins.
    ///
    /// Without them (tests, simulations: the engine has no randomness of its own) the id is
    /// derived: a hash of the scope, the time and the first pending edits, so two replicas
    /// share one if they push the same first edits of the same scope in the same millisecond
    /// (seen: two fresh replicas saving the same default settings). Sharing an id loses no
    /// edit (see [`crate::mutation`]), but the cloud's repeat detection then serves two
    /// replicas.
    async fn client_id(&self, scope: &ScopeId, opts: &SyncOptions<'_>) -> Result<String> {
        if let Some(client) = self.store.scope_state(scope).await?.client {
            return Ok(client);
        }
        let made = match opts.client_entropy {
            Some(bytes) => hex(&bytes),
            None => self.derived_client_id(scope).await?,
        };
        self.update(scope, &[], false, |st: &ScopeState, _: &[Option<Row>]| {
            let mut scope = st.clone();
            scope.client.get_or_insert(made);
            Ok(Changeset {
                scope,
                ..Changeset::default()
            })
        })
        .await?;
        self.store
            .scope_state(scope)
            .await?
            .client
            .ok_or_else(|| Error::storage("the store did not keep the scope's client id"))
    }

    async fn derived_client_id(&self, scope: &ScopeId) -> Result<String> {
        let mut h = Sha256::new();
        h.update(b"tether-client\0");
        h.update(scope.as_str().as_bytes());
        h.update(self.clock.now().to_le_bytes());
        for row in self.store.pending(scope, None, 16).await? {
            h.update(row.key.collection.as_bytes());
            h.update([0]);
            h.update(row.key.id.as_bytes());
            h.update([0]);
            h.update(row.hash.map_or([0; 32], |h| h.0));
            h.update(row.pending.unwrap_or(0).to_le_bytes());
        }
        Ok(hex(&h.finalize()[..12]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
