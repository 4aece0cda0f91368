//! A preview of a sync: the pages pulled and planned as a sync would, nothing written.

use std::sync::Mutex;

use super::*;

/// What a sync would do now ([`Syncer::preview`]).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Preview {
    /// What applying the pages would count: records inserted, updated, deleted, unchanged,
    /// and local edits that would lose to the cloud (`conflicts`). In a full download,
    /// `deleted` includes the rows the sweep would remove (held here, absent from the cloud).
    pub counts: Counts,
    /// The keys of the local edits that would be journaled.
    pub conflicts: Vec<Key>,
    /// Local edits the sync would push first (their outcome is the cloud's to decide).
    pub pushes: u64,
    /// Pages pulled.
    pub pages: u64,
    /// Whether the sync would download the scope in full (first sync, a reset, or `full`).
    pub full: bool,
}

impl<S: Store, R: Remote> Syncer<'_, S, R> {
    /// Pulls the pages a sync would pull and plans them against the replica's rows, writing
    /// nothing (no row, no checkpoint, no run): what would be inserted, updated, deleted and
    /// which local edits would conflict. The pending pushes are counted, not sent. Each page
    /// is planned against the rows as they are, so a key the pages bring twice is counted
    /// twice; a cloud that changes between the preview and the sync makes the sync differ.
    pub async fn preview(&self, scope: &ScopeId, opts: SyncOptions<'_>) -> Result<Preview> {
        self.remote.begin_run();
        let state = self.store.scope_state(scope).await?;
        if !state.subscriptions.is_empty() {
            return Err(Error::invalid(
                "a preview of a partial replica is not supported yet: it would pull the whole scope",
            )
            .with_detail(Detail::NotSupported));
        }
        let mut out = Preview {
            pushes: self.store.pending_count(scope).await?,
            full: opts.full || state.checkpoint.is_none() || state.full_sync,
            ..Preview::default()
        };
        let mut checkpoint = if opts.full {
            None
        } else {
            state.checkpoint.clone()
        };
        let mut reset = false;
        let now = self.clock.now();
        loop {
            check_cancel(&opts)?;
            let page = match self
                .remote
                .pull(scope, checkpoint.as_ref(), opts.page_size.max(1))
                .await?
            {
                Pulled::Reset if checkpoint.is_some() && !reset => {
                    (reset, checkpoint, out.full) = (true, None, true);
                    continue;
                }
                Pulled::Reset => {
                    return Err(Error::protocol("the remote answered reset to a preview")
                        .with_detail(Detail::NoProgress))
                }
                Pulled::Page { page, .. } => page,
            };
            check_versions(&page.changes)?;
            let page = validate_page(page)?;
            let (next, has_more) = (page.checkpoint.clone(), page.has_more);
            if has_more && page.changes.is_empty() && Some(&next) == checkpoint.as_ref() {
                return Err(Error::protocol(
                    "the remote said has_more but sent no changes and the same checkpoint",
                )
                .with_detail(Detail::NoProgress));
            }
            let mode = if out.full {
                Mode::Full
            } else {
                Mode::Incremental
            };
            let keys = page.keys();
            let planned = Mutex::new(None);
            let scope_name = scope.as_str();
            // The planner's error aborts the transaction: nothing is written.
            let _ = self
                .store
                .update(
                    scope,
                    &keys,
                    false,
                    |st: &ScopeState, rows: &[Option<Row>]| {
                        let mut cs = plan_page(scope_name, st, page, rows, mode, &[], now)?;
                        // A pending edit the cloud changed would be refused by the sync's push
                        // (which comes first) and journaled there, counted as a conflict only;
                        // the page plan also counts the change it sees.
                        for c in &cs.conflicts {
                            let n = match (c.local_op, c.cloud_hash.is_some()) {
                                (crate::types::Op::Put, false) => &mut cs.counts.deleted,
                                (crate::types::Op::Delete, true) => &mut cs.counts.inserted,
                                _ => &mut cs.counts.updated,
                            };
                            *n = n.saturating_sub(1);
                        }
                        let lost = cs
                            .conflicts
                            .iter()
                            .map(|c| Key::new(c.collection.as_str(), c.record_id.as_str()));
                        *planned.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((cs.counts, lost.collect::<Vec<_>>()));
                        Err(Error::invalid("a preview writes nothing"))
                    },
                )
                .await;
            let (counts, lost) = planned
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .ok_or_else(|| Error::storage("the store did not plan the previewed page"))?;
            out.counts += counts;
            out.conflicts.extend(lost);
            out.pages += 1;
            checkpoint = Some(next);
            if !has_more {
                break;
            }
        }
        if out.full {
            // The sweep removes what the download did not bring: every row held now but for
            // those the pages touched (updated, unchanged, or deleted by a tombstone).
            let held = self.store.count(scope, None).await?;
            let c = out.counts;
            let touched = c
                .updated
                .saturating_add(c.unchanged)
                .saturating_add(c.deleted);
            out.counts.deleted += held.saturating_sub(touched);
        }
        Ok(out)
    }
}
