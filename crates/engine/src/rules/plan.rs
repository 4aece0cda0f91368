//! Planning: from the rows a store read and a validated page (or push answer, local edit,
//! stale rows, repair records), the [`Changeset`] it writes. Pure: the result depends only on
//! the arguments.

use std::collections::HashMap;

use crate::digest::{leaf, RecordHash};
use crate::doc::Doc;
use crate::error::{Detail, Error, Result};
use crate::types::{Conflict, Data, Key, Millis, Op};

use super::{
    Changeset, Incoming, Prior, PushOutcome, PushResult, Row, RowWrite, ScopeState, Source,
    ValidPage,
};

/// How strictly versions are checked while applying a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From a checkpoint: a version going backwards is a protocol error.
    Incremental,
    /// A full download under `generation`: the cloud's state is taken as it comes (after a reset
    /// the cloud may legitimately have gone back, e.g. restored from a backup).
    Full,
}

/// Plans the application of a validated page to the rows of its keys (`rows[i]` belongs to
/// `page.changes[i]`). Pure: the result depends only on the arguments.
///
/// `unanswered` lists what a push of the same run sent and got no answer for (key and pushed
/// hash, `None` for a delete): a change carrying exactly that state is the replica's own
/// write, and an edit made since stays pending on it instead of being journaled.
pub fn plan_page(
    scope_name: &str,
    state: &ScopeState,
    page: ValidPage,
    rows: &[Option<Row>],
    mode: Mode,
    unanswered: &[(Key, Option<RecordHash>)],
    now: Millis,
) -> Result<Changeset> {
    if rows.len() != page.changes.len() {
        return Err(Error::storage(format!(
            "store returned {} rows for {} keys",
            rows.len(),
            page.changes.len()
        )));
    }
    let mut out = Changeset::starting_from(state, Source::Pull);
    out.rows.reserve(page.changes.len());
    let generation = state.generation;
    if mode == Mode::Incremental {
        for (inc, row) in page.changes.iter().zip(rows) {
            if let Some(row) = row.as_ref().filter(|r| r.cloud_hash.is_some()) {
                check_version(row, inc)?;
            }
        }
    }
    for (slot, (inc, row)) in page.changes.into_iter().zip(rows).enumerate() {
        let row = row.as_ref().map(|r| (Prior::of(slot, r), r));
        let ours = row.is_some_and(|(_, r)| r.pending.is_some())
            && unanswered
                .iter()
                .any(|(k, h)| *k == inc.key && *h == inc.hash());
        apply_one(scope_name, &mut out, inc, row, ours, generation, now)?;
    }
    out.scope.checkpoint = Some(page.checkpoint);
    Ok(out)
}

pub(super) fn check_version(row: &Row, inc: &Incoming) -> Result<()> {
    if inc.version < row.version {
        return Err(Error::protocol(format!(
            "{}/{}: version went backwards from {} to {}",
            inc.key.collection, inc.key.id, row.version, inc.version
        ))
        .with_detail(Detail::VersionBackwards));
    }
    if inc.version == row.version && inc.hash() != row.cloud_hash {
        return Err(Error::protocol(format!(
            "{}/{}: version {} came with a different state than the replica holds",
            inc.key.collection, inc.key.id, inc.version
        ))
        .with_detail(Detail::VersionBackwards));
    }
    Ok(())
}

/// Applies one incoming cloud state to a key, updating totals, counters and conflicts.
pub(super) fn apply_one(
    scope_name: &str,
    out: &mut Changeset,
    inc: Incoming,
    row: Option<(Prior, &Row)>,
    ours: bool,
    generation: u64,
    now: Millis,
) -> Result<()> {
    let new_hash = inc.hash();
    let old_leaf = row.and_then(|(_, r)| r.leaf());
    let cloud_unchanged = row.is_some_and(|(_, r)| r.cloud_hash == new_hash);
    if !cloud_unchanged {
        if let Some(l) = &old_leaf {
            out.scope.totals.remove(l);
        }
        if let Some(h) = &new_hash {
            out.scope
                .totals
                .insert(&leaf(&inc.key.collection, &inc.key.id, h));
        }
    }
    let Incoming {
        key,
        version,
        updated_at,
        state,
    } = inc;
    let touch = |key, prior, updated_at, pending, sent| RowWrite::Touch {
        key,
        prior,
        version,
        updated_at,
        cloud_hash: new_hash,
        generation,
        pending,
        sent,
    };
    let cloud_row = |key, updated_at, data, hash| Row {
        key,
        data: Some(data),
        hash: Some(hash),
        version,
        updated_at,
        cloud_hash: Some(hash),
        generation,
        pending: None,
        sent: None,
    };
    let replace = |key, prior, updated_at, state: Option<(Doc, RecordHash)>| match state {
        Some((data, hash)) => RowWrite::Put {
            row: cloud_row(key, updated_at, data, hash),
            prior: Some(prior),
        },
        None => RowWrite::Remove {
            key,
            prior,
            evict: false,
        },
    };
    match row {
        Some((prior, r)) if r.pending.is_some() => {
            if r.hash == new_hash {
                // The cloud holds exactly our edit: it was accepted.
                out.counts.unchanged += 1;
                out.rows.push(match new_hash {
                    Some(_) => touch(key, prior, updated_at, None, None),
                    None => RowWrite::Remove {
                        key,
                        prior,
                        evict: false,
                    },
                });
            } else if ours {
                // The cloud holds what an unanswered push of this run sent: our own write,
                // whose answer was lost. The edit made since rests on it and stays pending, judged
                // by its base from now on: it replaces nothing unanswered any more.
                out.counts.unchanged += 1;
                out.rows
                    .push(touch(key, prior, updated_at, r.pending, None));
            } else if rests_on(r, version, new_hash) {
                // The cloud still holds the state the edit was made on: the change of a push
                // already applied, a page delivered again, a full download, or the tombstone
                // of a record the edit creates. Nothing to decide: the edit stays pending (and
                // an unanswered push of it may still be applied: `sent` stays).
                if new_hash.is_some() {
                    out.counts.unchanged += 1;
                    out.rows
                        .push(touch(key, prior, updated_at, r.pending, r.sent));
                }
            } else {
                out.conflicts
                    .push(conflict_of(scope_name, r, version, new_hash, now)?);
                out.counts.conflicts += 1;
                match (r.hash.is_some(), new_hash.is_some()) {
                    (_, false) if r.hash.is_some() => out.counts.deleted += 1,
                    (false, true) => out.counts.inserted += 1,
                    _ => out.counts.updated += 1,
                }
                out.rows.push(replace(key, prior, updated_at, state));
            }
        }
        None => {
            if let Some((data, hash)) = state {
                out.counts.inserted += 1;
                out.rows.push(RowWrite::Put {
                    row: cloud_row(key, updated_at, data, hash),
                    prior: None,
                });
            } // else a tombstone for a record we never had
        }
        Some((prior, r)) => match new_hash {
            Some(h) if r.hash == Some(h) => {
                out.counts.unchanged += 1;
                out.rows.push(touch(key, prior, updated_at, None, None));
            }
            Some(_) => {
                out.counts.updated += 1;
                out.rows.push(replace(key, prior, updated_at, state));
            }
            None => {
                out.counts.deleted += 1;
                out.rows.push(RowWrite::Remove {
                    key,
                    prior,
                    evict: false,
                });
            }
        },
    }
    Ok(())
}

/// Whether the cloud state `(version, hash)` is the one `row`'s pending edit was made on, so
/// that pushing the edit overwrites nothing the user has not seen. "Absent" is one state
/// whatever the tombstone's version: a create made on it is accepted by the cloud.
fn rests_on(row: &Row, version: u64, hash: Option<RecordHash>) -> bool {
    match (row.cloud_hash, hash) {
        (None, None) => true,
        (Some(base), Some(h)) => base == h && row.version == version,
        _ => false,
    }
}

fn conflict_of(
    scope_name: &str,
    row: &Row,
    cloud_version: u64,
    cloud_hash: Option<RecordHash>,
    now: Millis,
) -> Result<Conflict> {
    Ok(Conflict {
        id: 0,
        scope: scope_name.to_owned(),
        collection: row.key.collection.clone(),
        record_id: row.key.id.clone(),
        local_op: if row.data.is_some() {
            Op::Put
        } else {
            Op::Delete
        },
        local_data: row.data.as_ref().map(Doc::to_data).transpose()?,
        base_version: row.cloud_hash.map(|_| row.version),
        cloud_version,
        cloud_hash,
        at: now,
        reason: None,
    })
}

/// A local edit: put data (already validated as an object) or delete.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEdit {
    /// Key.
    pub key: Key,
    /// `Some` to put, `None` to delete.
    pub data: Option<Data>,
}

/// Plans a local edit on a key's row. Returns an empty changeset when the edit changes nothing
/// visible (a delete of an absent record, or a put of the data already there). A record over
/// one of the [`limits`](crate::limits) is an `InvalidInput` naming it, and nothing is written.
///
/// Every other edit is pending, even one that brings the row back to its cloud state, or that
/// deletes a record created only locally: the edit before it may be in flight (or its answer
/// lost), and if the cloud applies it, only a pending entry can still say what the user wants
/// in the end. The price is one redundant mutation when nothing was in flight. `row` is the
/// only row handed to the planner (`rows[0]`).
pub fn plan_local_edit(
    state: &ScopeState,
    row: Option<&Row>,
    edit: &LocalEdit,
) -> Result<Changeset> {
    edit.key.validate()?;
    let mut out = Changeset::starting_from(state, Source::Local);
    let doc = edit.data.as_ref().map(Doc::new);
    // What the cloud could never hold is refused here, not journaled at the next push.
    crate::limits::check_record(&edit.key, doc.as_ref().map(|d| d.as_str().as_bytes()))?;
    // `Doc::new` writes the canonical text, so its hash is that of the text.
    let hash = doc
        .as_ref()
        .map(|d| crate::digest::hash_canonical(d.as_str().as_bytes()));
    let visible = row.and_then(|r| r.hash);
    if visible == hash {
        return Ok(out);
    }
    let prior = row.map(|r| Prior::of(0, r));
    let (version, updated_at, cloud_hash, generation) = match row {
        Some(r) => (r.version, r.updated_at.clone(), r.cloud_hash, r.generation),
        None => (0, String::new(), None, state.generation),
    };
    out.rows.push(RowWrite::Put {
        row: Row {
            key: edit.key.clone(),
            data: doc,
            hash,
            version,
            updated_at,
            cloud_hash,
            generation,
            pending: Some(out.scope.take_seq()),
            // The edit coalesces over one whose push may have been applied: the next push
            // still replaces that one.
            sent: row.and_then(|r| r.sent),
        },
        prior,
    });
    Ok(out)
}

/// Plans the effect of push results on the current rows (`rows[i]` is the current row of
/// `outcomes[i]`'s key with its data, re-read inside the transaction: the user may have edited
/// again while the push was in flight).
///
/// The pushed edit is accepted (the row takes the cloud's new state), or rejected (journaled;
/// the row takes the cloud's current state). An edit made while the push was in flight is
/// judged on the same answer: after an accepted push it stays pending on the cloud's new
/// version (the user's own write), unless it equals it; after a rejection it was made on the
/// version the other writer replaced as well, so it loses too and is journaled, unless it
/// equals the cloud's state. An invalid edit (the cloud can never accept it) is journaled with
/// its reason like a rejected one; an edit made during its push stays pending if the cloud
/// still holds the state both rest on.
pub fn plan_push(
    scope_name: &str,
    state: &ScopeState,
    outcomes: &[PushOutcome],
    rows: &[Option<Row>],
    now: Millis,
) -> Result<Changeset> {
    let mut out = Changeset::starting_from(state, Source::Push);
    for (slot, (o, current)) in outcomes.iter().zip(rows).enumerate() {
        let key = &o.pushed.key;
        let prior = current.as_ref().map(|c| Prior::of(slot, c));
        // The row as the user left it, if it is not the row pushed. No row, or a row without
        // pending entry, is an edit too (a delete of a local create, a revert, as replicas
        // wrote them before every edit stayed pending).
        let newer = match current {
            Some(c) if c.pending == o.pushed.pending => None,
            Some(c) => Some(c.clone()),
            None => Some(Row {
                key: key.clone(),
                data: None,
                hash: None,
                version: 0,
                updated_at: String::new(),
                cloud_hash: None,
                generation: state.generation,
                pending: None,
                sent: None,
            }),
        };
        let (version, updated_at, cloud_state, ours) = match &o.result {
            PushResult::Accepted {
                version,
                updated_at,
            } => (
                *version,
                updated_at.clone(),
                o.pushed.data.clone().zip(o.pushed.hash),
                true,
            ),
            // The cloud already holds exactly our edit: an earlier push of it went through but
            // its answer was lost. Not a conflict.
            // An invalid mutation is journaled like a rejected one, with its reason.
            PushResult::Rejected(inc) | PushResult::Invalid { current: inc, .. } => {
                let ours = inc.as_ref().and_then(Incoming::hash) == o.pushed.hash;
                if !ours {
                    out.conflicts.push(Conflict {
                        reason: match &o.result {
                            PushResult::Invalid { reason, .. } => Some(reason.clone()),
                            _ => None,
                        },
                        ..conflict_of(
                            scope_name,
                            &o.pushed,
                            inc.as_ref().map_or(0, |i| i.version),
                            inc.as_ref().and_then(Incoming::hash),
                            now,
                        )?
                    });
                    out.counts.conflicts += 1;
                }
                match inc {
                    Some(i) => (i.version, i.updated_at.clone(), i.state.clone(), ours),
                    None => (0, String::new(), None, ours),
                }
            }
        };
        let cloud_hash = cloud_state.as_ref().map(|(_, h)| *h);
        // An edit made during the push of an invalid one lost to nobody if the cloud still
        // holds the state both were made on: it replaces the invalid edit and stays pending.
        let keep_newer = ours
            || matches!(o.result, PushResult::Invalid { .. })
                && rests_on(&o.pushed, version, cloud_hash);
        if let Some(l) = current.as_ref().and_then(Row::leaf) {
            out.scope.totals.remove(&l);
        }
        if let Some(h) = &cloud_hash {
            out.scope.totals.insert(&leaf(&key.collection, &key.id, h));
        }
        let generation = current.as_ref().map_or(state.generation, |c| c.generation);
        let newer = newer.filter(|n| n.hash != cloud_hash);
        let write = match (newer, prior) {
            // Keep the newer edit pending, now resting on our own accepted write.
            (Some(n), Some(prior)) if keep_newer => Some(RowWrite::Touch {
                key: key.clone(),
                prior,
                version,
                updated_at,
                cloud_hash,
                generation,
                pending: Some(n.pending.unwrap_or_else(|| out.scope.take_seq())),
                // Answered: the edit rests on the cloud's state now, judged by its base.
                sent: None,
            }),
            // A local create deleted during its push: delete it again from the cloud.
            (Some(_), None) if ours => Some(RowWrite::Put {
                row: Row {
                    key: key.clone(),
                    data: None,
                    hash: None,
                    version,
                    updated_at,
                    cloud_hash,
                    generation,
                    pending: Some(out.scope.take_seq()),
                    sent: None,
                },
                prior: None,
            }),
            (newer, prior) => {
                if let Some(n) = newer {
                    out.conflicts
                        .push(conflict_of(scope_name, &n, version, cloud_hash, now)?);
                    out.counts.conflicts += 1;
                }
                match (cloud_state, prior) {
                    (Some((data, hash)), prior) => Some(RowWrite::Put {
                        row: Row {
                            key: key.clone(),
                            data: Some(data),
                            hash: Some(hash),
                            version,
                            updated_at,
                            cloud_hash: Some(hash),
                            generation,
                            pending: None,
                            sent: None,
                        },
                        prior,
                    }),
                    (None, Some(prior)) => Some(RowWrite::Remove {
                        key: key.clone(),
                        prior,
                        evict: false,
                    }),
                    (None, None) => None,
                }
            }
        };
        out.rows.extend(write);
    }
    Ok(out)
}

/// Plans the marks a push leaves when its request failed after it may have been sent:
/// `pushed` lists each key and the outbox sequence number pushed for it. Each of those rows
/// that still has a pending edit (the pushed one, or one made since) records the pushed number
/// as [`Row::sent`], which the next push names as the mutation it replaces. Nothing else
/// changes. `rows[i]` is the current row of `pushed[i]`'s key.
pub fn plan_unanswered(
    state: &ScopeState,
    pushed: &[(Key, u64)],
    rows: &[Option<Row>],
) -> Result<Changeset> {
    let mut out = Changeset::starting_from(state, Source::Push);
    for (slot, ((key, seq), row)) in pushed.iter().zip(rows).enumerate() {
        let Some(r) = row.as_ref().filter(|r| r.pending.is_some()) else {
            continue;
        };
        if r.sent == Some(*seq) {
            continue;
        }
        out.rows.push(RowWrite::Touch {
            key: key.clone(),
            prior: Prior::of(slot, r),
            version: r.version,
            updated_at: r.updated_at.clone(),
            cloud_hash: r.cloud_hash,
            generation: r.generation,
            pending: r.pending,
            sent: Some(*seq),
        });
    }
    Ok(out)
}

/// Plans the end of a full download: rows of generations older than the current one are gone
/// from the cloud. A local create (no cloud state) is kept; a pending delete is settled (the
/// cloud agrees); a pending put on a record the cloud no longer has goes to the conflict
/// journal.
pub fn plan_sweep(
    scope_name: &str,
    state: &ScopeState,
    stale: &[Option<Row>],
    now: Millis,
) -> Result<Changeset> {
    let mut out = Changeset::starting_from(state, Source::Sweep);
    for (slot, row) in stale.iter().enumerate() {
        let Some(row) = row else { continue };
        let prior = Prior::of(slot, row);
        if row.cloud_hash.is_none() && row.hash.is_some() && row.pending.is_some() {
            out.rows.push(RowWrite::Touch {
                key: row.key.clone(),
                prior,
                version: row.version,
                updated_at: row.updated_at.clone(),
                cloud_hash: None,
                generation: state.generation,
                pending: row.pending,
                sent: row.sent,
            });
            continue;
        }
        if let Some(l) = row.leaf() {
            out.scope.totals.remove(&l);
        }
        if row.pending.is_some() && row.hash.is_none() {
            // A pending delete of a record the download did not bring. The cloud most likely
            // deleted it too, but a download can miss a record (a truncated page, found only
            // by the digest afterwards), and settling the delete here would lose it to the
            // repair. It stays pending on no cloud state until the cloud answers for it: a
            // delete of a record it does not have is accepted, one of a record it still has
            // is journaled. The same holds for a deleted local create: its create may have
            // reached the cloud with its answer lost, so the delete must still be pushed.
            out.rows.push(RowWrite::Touch {
                key: row.key.clone(),
                prior,
                version: 0,
                updated_at: String::new(),
                cloud_hash: None,
                generation: state.generation,
                pending: row.pending,
                sent: row.sent,
            });
            if row.cloud_hash.is_some() {
                out.counts.deleted += 1;
            }
            continue;
        }
        if row.pending.is_some() && row.hash.is_some() {
            out.conflicts
                .push(conflict_of(scope_name, row, 0, None, now)?);
            out.counts.conflicts += 1;
        }
        if row.cloud_hash.is_some() {
            out.counts.deleted += 1;
        }
        out.rows.push(RowWrite::Remove {
            key: row.key.clone(),
            prior,
            evict: false,
        });
    }
    out.scope.full_sync = false;
    Ok(out)
}

/// Plans a range repair: `cloud` holds the cloud's live records of a key range (validated),
/// `rows[i]` the replica's row of `keys[i]` *with its data*, where `keys` is the union of both
/// sides' keys. Cloud wins: every row whose cloud state or data differs from the cloud's is
/// rewritten, and a row the cloud does not have is removed (a local create is kept).
///
/// A pending edit never moves to another base: it was made on its row's cloud state, and
/// pushing it on a newer one would overwrite a change the user never saw (or resurrect a
/// delete). If the cloud still holds that state the edit stays as it is; if the cloud holds
/// the edit itself it is settled; otherwise it loses like on a pull, into the conflict
/// journal. Totals are not touched: the caller recomputes them from the rows afterwards, since
/// a corrupted row's stored hash cannot be trusted for an incremental update.
pub fn plan_repair(
    scope_name: &str,
    state: &ScopeState,
    keys: &[Key],
    rows: &[Option<Row>],
    cloud: &HashMap<Key, Incoming>,
    now: Millis,
) -> Result<Changeset> {
    let mut out = Changeset::starting_from(state, Source::Repair);
    let mut buf = Vec::new();
    for (slot, (key, row)) in keys.iter().zip(rows).enumerate() {
        let inc = cloud.get(key).filter(|i| i.state.is_some());
        let cloud_row = |i: &Incoming, prior| {
            let (data, hash) = i.state.clone()?;
            Some(RowWrite::Put {
                row: Row {
                    key: key.clone(),
                    data: Some(data),
                    hash: Some(hash),
                    version: i.version,
                    updated_at: i.updated_at.clone(),
                    cloud_hash: Some(hash),
                    generation: state.generation,
                    pending: None,
                    sent: None,
                },
                prior,
            })
        };
        let write = match (row, inc) {
            (None, None) => None,
            (None, Some(i)) => cloud_row(i, None),
            (Some(r), inc) if r.pending.is_some() => {
                let prior = Prior::of(slot, r);
                let cloud_hash = inc.and_then(Incoming::hash);
                let version = inc.map_or(0, |i| i.version);
                if r.hash == cloud_hash {
                    // The cloud holds the edit itself.
                    match inc {
                        Some(i) => cloud_row(i, Some(prior)),
                        None => Some(RowWrite::Remove {
                            key: key.clone(),
                            prior,
                            evict: false,
                        }),
                    }
                } else if rests_on(r, version, cloud_hash) {
                    None
                } else {
                    out.conflicts
                        .push(conflict_of(scope_name, r, version, cloud_hash, now)?);
                    out.counts.conflicts += 1;
                    match inc {
                        Some(i) => cloud_row(i, Some(prior)),
                        None => Some(RowWrite::Remove {
                            key: key.clone(),
                            prior,
                            evict: false,
                        }),
                    }
                }
            }
            (Some(r), None) if r.cloud_hash.is_none() => None,
            (Some(r), None) => Some(RowWrite::Remove {
                key: key.clone(),
                prior: Prior::of(slot, r),
                evict: false,
            }),
            (Some(r), Some(i)) => {
                let hash = i.hash();
                let intact = r.cloud_hash == hash
                    && r.hash == hash
                    && r.version == i.version
                    && r.data.as_ref().and_then(|d| d.hash_with(&mut buf).ok()) == hash;
                if intact {
                    None
                } else {
                    cloud_row(i, Some(Prior::of(slot, r)))
                }
            }
        };
        if let Some(w) = write {
            out.counts.repaired += 1;
            out.rows.push(w);
        }
    }
    Ok(out)
}
