//! The pure apply rules: plain functions from the replica's rows and an incoming page (or push
//! result, local edit, sweep) to a [`Changeset`] that a store writes in one transaction.
//!
//! Rules for one incoming change (DESIGN.md, "Applying a page"), first match wins:
//!
//! | incoming | local | result |
//! |---|---|---|
//! | live or delete | pending, incoming equals the pending edit | clear pending, take cloud version |
//! | live or delete | pending, otherwise | cloud wins; local edit to the conflict journal |
//! | live | absent | insert |
//! | live | same hash | version and updated_at refreshed (unchanged) |
//! | live | other hash | update |
//! | delete | present | delete |
//! | delete | absent | skip |
//!
//! The digest is kept over the *cloud* state of every key (a row's `cloud_hash`), so pending
//! local edits never make the replica's digest differ from the cloud's.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::digest::{leaf, record_hash_with, RecordHash, Snapshot};
use crate::error::{Detail, Error, Result};
use crate::types::{
    Change, Checkpoint, Conflict, Counts, Data, Key, Millis, Mutation, MutationResult, Op, Page,
};

/// One key's row in the replica: the visible state plus the cloud state it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Key.
    pub key: Key,
    /// Visible data; `None` while a local delete is pending. Stores may leave it out of the rows
    /// they hand to a planner when `pending` is `None` (planners never read it then).
    pub data: Option<Data>,
    /// Hash of the visible data; `None` while a local delete is pending.
    pub hash: Option<RecordHash>,
    /// Cloud version of the cloud state (0 when the cloud does not have the record).
    pub version: u64,
    /// When the cloud wrote that state (RFC 3339); empty when it has none.
    pub updated_at: String,
    /// Hash of the cloud state; `None` when the cloud does not have the record (a local create).
    pub cloud_hash: Option<RecordHash>,
    /// Full-sync generation that last confirmed this row.
    pub generation: u64,
    /// Outbox sequence number of the unpushed local edit, if any.
    pub pending: Option<u64>,
}

impl Row {
    fn leaf(&self) -> Option<crate::digest::Digest> {
        self.cloud_hash
            .map(|h| leaf(&self.key.collection, &self.key.id, &h))
    }

    /// The pending local edit as a mutation, if there is one.
    pub fn mutation(&self) -> Option<Mutation> {
        self.pending?;
        Some(Mutation {
            collection: self.key.collection.clone(),
            id: self.key.id.clone(),
            op: if self.data.is_some() {
                Op::Put
            } else {
                Op::Delete
            },
            data: self.data.clone(),
            base_version: self.cloud_hash.map(|_| self.version),
        })
    }
}

/// Per-scope state, written atomically with the rows it describes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScopeState {
    /// Position in the remote's change feed; `None` before the first page.
    pub checkpoint: Option<Checkpoint>,
    /// Count and digest of the cloud state held.
    pub totals: Snapshot,
    /// Current full-sync generation (0 before the first one).
    pub generation: u64,
    /// A full download at `generation` is under way (rows of older generations are swept when
    /// its last page lands).
    pub full_sync: bool,
    /// Next outbox sequence number.
    pub next_seq: u64,
    /// When the last run completed.
    pub synced_at: Option<Millis>,
}

/// What a write replaces: the row of its key as the store handed it to the planner.
///
/// A planner copies it from the row it was given ([`Prior::of`]), so a store learns from the
/// changeset alone what each write moves: the old generation (for per-generation row counts),
/// the old outbox sequence number (for an outbox kept beside the rows) and the visible hash a
/// [`RowWrite::Touch`] keeps. Stores never look a row up again to find out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    /// Position of the row among the rows handed to the planner (`rows[slot]`), so a store can
    /// find whatever it kept of the row it read (IndexedDB: the stored key and data string).
    pub slot: usize,
    /// Its full-sync generation.
    pub generation: u64,
    /// Its outbox sequence number.
    pub pending: Option<u64>,
    /// Its visible hash (`None` while a local delete is pending).
    pub hash: Option<RecordHash>,
}

impl Prior {
    /// The prior of `row`, handed to the planner as `rows[slot]`.
    pub fn of(slot: usize, row: &Row) -> Self {
        Prior {
            slot,
            generation: row.generation,
            pending: row.pending,
            hash: row.hash,
        }
    }
}

/// A write to one row. Only a [`RowWrite::Put`] may write a key that has no row: a touch or a
/// remove names the row it changes, so "touch of a missing row" cannot be expressed.
#[derive(Debug, Clone, PartialEq)]
pub enum RowWrite {
    /// Replace the whole row.
    Put {
        /// The new row.
        row: Row,
        /// The row it replaces; `None` when the key has none.
        prior: Option<Prior>,
    },
    /// Keep the row's data and hash; set the other fields.
    Touch {
        /// Key.
        key: Key,
        /// The row touched.
        prior: Prior,
        /// New cloud version.
        version: u64,
        /// New cloud timestamp.
        updated_at: String,
        /// New cloud hash.
        cloud_hash: Option<RecordHash>,
        /// New generation.
        generation: u64,
        /// New outbox sequence number.
        pending: Option<u64>,
    },
    /// Delete the row.
    Remove {
        /// Key.
        key: Key,
        /// The row deleted.
        prior: Prior,
    },
}

impl RowWrite {
    /// The key written.
    pub fn key(&self) -> &Key {
        match self {
            RowWrite::Put { row, .. } => &row.key,
            RowWrite::Touch { key, .. } | RowWrite::Remove { key, .. } => key,
        }
    }

    /// The row replaced, if the key had one.
    pub fn prior(&self) -> Option<&Prior> {
        match self {
            RowWrite::Put { prior, .. } => prior.as_ref(),
            RowWrite::Touch { prior, .. } | RowWrite::Remove { prior, .. } => Some(prior),
        }
    }

    /// The generation of the row after the write (`None`: no row).
    pub fn generation(&self) -> Option<u64> {
        match self {
            RowWrite::Put { row, .. } => Some(row.generation),
            RowWrite::Touch { generation, .. } => Some(*generation),
            RowWrite::Remove { .. } => None,
        }
    }

    /// The outbox sequence number of the row after the write.
    pub fn pending(&self) -> Option<u64> {
        match self {
            RowWrite::Put { row, .. } => row.pending,
            RowWrite::Touch { pending, .. } => *pending,
            RowWrite::Remove { .. } => None,
        }
    }
}

/// Everything one store transaction writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changeset {
    /// The scope's new state.
    pub scope: ScopeState,
    /// Row writes, at most one per key.
    pub rows: Vec<RowWrite>,
    /// New conflict journal entries (ids are assigned by the store).
    pub conflicts: Vec<Conflict>,
    /// What happened, for the run's counters.
    pub counts: Counts,
}

impl Changeset {
    /// Net change of the number of rows of each generation, nonzero entries only, for stores
    /// that count rows per generation (so the sweep at the end of a full download knows
    /// without a scan whether any row is stale).
    pub fn generation_deltas(&self) -> Vec<(u64, i64)> {
        let mut out: Vec<(u64, i64)> = Vec::new();
        let mut add =
            |generation: u64, delta: i64| match out.iter_mut().find(|(g, _)| *g == generation) {
                Some((_, d)) => *d += delta,
                None => out.push((generation, delta)),
            };
        for w in &self.rows {
            let (from, to) = (w.prior().map(|p| p.generation), w.generation());
            if from == to {
                continue;
            }
            if let Some(g) = from {
                add(g, -1);
            }
            if let Some(g) = to {
                add(g, 1);
            }
        }
        out.retain(|&(_, d)| d != 0);
        out
    }
}

/// A validated incoming change: hash checked, data an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// Key.
    pub key: Key,
    /// Cloud version.
    pub version: u64,
    /// Cloud timestamp.
    pub updated_at: String,
    /// Data and hash; `None` for a tombstone.
    pub state: Option<(Data, RecordHash)>,
}

impl Incoming {
    fn hash(&self) -> Option<RecordHash> {
        self.state.as_ref().map(|(_, h)| *h)
    }
}

/// A validated page: changes deduplicated to the highest version per key and sorted by key.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPage {
    /// The changes, one per key, in key order.
    pub changes: Vec<Incoming>,
    /// Position after this page.
    pub checkpoint: Checkpoint,
    /// More pages follow.
    pub has_more: bool,
    /// Estimated changes still to come.
    pub remaining: Option<u64>,
    /// The cloud's count and digest, on the last page.
    pub snapshot: Option<Snapshot>,
}

impl ValidPage {
    /// The page's keys, in order.
    pub fn keys(&self) -> Vec<Key> {
        self.changes.iter().map(|c| c.key.clone()).collect()
    }
}

/// Validates one wire change: data is an object for live records, null for tombstones, and the
/// hash matches the canonical data.
pub fn validate_change(change: Change, buf: &mut Vec<u8>) -> Result<Incoming> {
    let Change {
        collection,
        id,
        version,
        updated_at,
        deleted,
        data,
        hash,
    } = change;
    let key = Key { collection, id };
    if key.collection.is_empty() || key.id.is_empty() {
        return Err(Error::protocol(format!(
            "change has an empty collection or id: {:?}/{:?}",
            key.collection, key.id
        ))
        .with_detail(Detail::Malformed));
    }
    let state = if deleted {
        if data.as_ref().is_some_and(|d| !d.is_null()) {
            return Err(Error::protocol(format!(
                "{}/{}: a tombstone must have null data",
                key.collection, key.id
            ))
            .with_detail(Detail::Malformed));
        }
        None
    } else {
        let data = match data {
            Some(serde_json::Value::Object(map)) => map,
            other => {
                let got = match other {
                    None | Some(serde_json::Value::Null) => "null",
                    Some(serde_json::Value::Array(_)) => "an array",
                    Some(serde_json::Value::String(_)) => "a string",
                    Some(serde_json::Value::Number(_)) => "a number",
                    Some(serde_json::Value::Bool(_)) => "a boolean",
                    Some(serde_json::Value::Object(_)) => "an object",
                };
                return Err(Error::protocol(format!(
                    "{}/{}: data must be a JSON object, got {got}",
                    key.collection, key.id
                ))
                .with_detail(Detail::Malformed));
            }
        };
        let claimed: RecordHash = match hash {
            Some(h) => h.parse().map_err(|e: Error| {
                Error::protocol(format!("{}/{}: {e}", key.collection, key.id))
                    .with_detail(Detail::Malformed)
            })?,
            None => {
                return Err(Error::protocol(format!(
                    "{}/{}: a live record must carry its hash",
                    key.collection, key.id
                ))
                .with_detail(Detail::Malformed))
            }
        };
        let actual = record_hash_with(&data, buf);
        if actual != claimed {
            return Err(Error::protocol(format!(
                "{}/{} version {version}: hash mismatch, page says {claimed}, data hashes to {actual}",
                key.collection, key.id
            )).with_detail(Detail::HashMismatch));
        }
        Some((data, actual))
    };
    Ok(Incoming {
        key,
        version,
        updated_at,
        state,
    })
}

/// Validates a page: every change (see [`validate_change`]), a checkpoint present, and within the
/// page only the highest version of each key kept. Nothing is applied if anything is wrong.
pub fn validate_page(page: Page) -> Result<ValidPage> {
    let checkpoint = match page.checkpoint {
        Some(c) if !c.0.is_empty() => c,
        _ => {
            return Err(
                Error::protocol("page has no checkpoint").with_detail(Detail::CheckpointMissing)
            )
        }
    };
    if !page.has_more && page.snapshot.is_none() {
        return Err(
            Error::protocol("the last page (has_more: false) carries no snapshot")
                .with_detail(Detail::SnapshotMissing),
        );
    }
    let mut buf = Vec::with_capacity(512);
    let mut changes = page
        .changes
        .into_iter()
        .map(|c| validate_change(c, &mut buf))
        .collect::<Result<Vec<_>>>()?;
    // Key order, highest version first within a key; then keep the first of each key.
    changes.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(b.version.cmp(&a.version)));
    for w in changes.windows(2) {
        if w[0].key == w[1].key && w[0].version == w[1].version && w[0].hash() != w[1].hash() {
            return Err(Error::protocol(format!(
                "{}/{}: two different states with version {} in one page",
                w[0].key.collection, w[0].key.id, w[0].version
            ))
            .with_detail(Detail::VersionBackwards));
        }
    }
    changes.dedup_by(|later, first| later.key == first.key);
    Ok(ValidPage {
        changes,
        checkpoint,
        has_more: page.has_more,
        remaining: page.remaining,
        snapshot: page.snapshot,
    })
}

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
pub fn plan_page(
    scope_name: &str,
    state: &ScopeState,
    page: ValidPage,
    rows: &[Option<Row>],
    mode: Mode,
    now: Millis,
) -> Result<Changeset> {
    if rows.len() != page.changes.len() {
        return Err(Error::storage(format!(
            "store returned {} rows for {} keys",
            rows.len(),
            page.changes.len()
        )));
    }
    let mut out = Changeset {
        scope: state.clone(),
        ..Changeset::default()
    };
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
        apply_one(scope_name, &mut out, inc, row, generation, now);
    }
    out.scope.checkpoint = Some(page.checkpoint);
    Ok(out)
}

fn check_version(row: &Row, inc: &Incoming) -> Result<()> {
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
fn apply_one(
    scope_name: &str,
    out: &mut Changeset,
    inc: Incoming,
    row: Option<(Prior, &Row)>,
    generation: u64,
    now: Millis,
) {
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
    let touch = |key, prior, updated_at, pending| RowWrite::Touch {
        key,
        prior,
        version,
        updated_at,
        cloud_hash: new_hash,
        generation,
        pending,
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
    };
    let replace = |key, prior, updated_at, state: Option<(Data, RecordHash)>| match state {
        Some((data, hash)) => RowWrite::Put {
            row: cloud_row(key, updated_at, data, hash),
            prior: Some(prior),
        },
        None => RowWrite::Remove { key, prior },
    };
    match row {
        Some((prior, r)) if r.pending.is_some() => {
            if r.hash == new_hash {
                // The cloud holds exactly our edit: it was accepted.
                out.counts.unchanged += 1;
                out.rows.push(match new_hash {
                    Some(_) => touch(key, prior, updated_at, None),
                    None => RowWrite::Remove { key, prior },
                });
            } else {
                out.conflicts
                    .push(conflict_of(scope_name, r, version, new_hash, now));
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
                out.rows.push(touch(key, prior, updated_at, None));
            }
            Some(_) => {
                out.counts.updated += 1;
                out.rows.push(replace(key, prior, updated_at, state));
            }
            None => {
                out.counts.deleted += 1;
                out.rows.push(RowWrite::Remove { key, prior });
            }
        },
    }
}

fn conflict_of(
    scope_name: &str,
    row: &Row,
    cloud_version: u64,
    cloud_hash: Option<RecordHash>,
    now: Millis,
) -> Conflict {
    Conflict {
        id: 0,
        scope: scope_name.to_owned(),
        collection: row.key.collection.clone(),
        record_id: row.key.id.clone(),
        local_op: if row.data.is_some() {
            Op::Put
        } else {
            Op::Delete
        },
        local_data: row.data.clone(),
        base_version: row.cloud_hash.map(|_| row.version),
        cloud_version,
        cloud_hash,
        at: now,
    }
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
/// (a delete of an absent record, or a put of the data already there).
///
/// An edit that brings the row back to its cloud state drops the pending entry: there is
/// nothing to push any more. `row` is the only row handed to the planner (`rows[0]`).
pub fn plan_local_edit(
    state: &ScopeState,
    row: Option<&Row>,
    edit: &LocalEdit,
) -> Result<Changeset> {
    edit.key.validate()?;
    let mut out = Changeset {
        scope: state.clone(),
        ..Changeset::default()
    };
    let hash = edit.data.as_ref().map(crate::digest::record_hash);
    let visible = row.and_then(|r| r.hash);
    if visible == hash {
        return Ok(out);
    }
    let prior = row.map(|r| Prior::of(0, r));
    let (version, updated_at, cloud_hash, generation) = match row {
        Some(r) => (r.version, r.updated_at.clone(), r.cloud_hash, r.generation),
        None => (0, String::new(), None, state.generation),
    };
    let pending = if hash == cloud_hash {
        // Back to the cloud's state. For a delete of a local create, the row goes entirely.
        if let (None, Some(prior)) = (hash, prior) {
            out.rows.push(RowWrite::Remove {
                key: edit.key.clone(),
                prior,
            });
            return Ok(out);
        }
        None
    } else {
        let seq = state.next_seq;
        out.scope.next_seq = seq + 1;
        Some(seq)
    };
    out.rows.push(RowWrite::Put {
        row: Row {
            key: edit.key.clone(),
            data: edit.data.clone(),
            hash,
            version,
            updated_at,
            cloud_hash,
            generation,
            pending,
        },
        prior,
    });
    Ok(out)
}

/// One pushed edit and the cloud's answer to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    /// The row as it was when pushed (its `pending` is the pushed sequence number).
    pub pushed: Row,
    /// The cloud's answer; a rejected mutation's `current` is already validated.
    pub result: PushResult,
}

/// A validated [`MutationResult`].
#[derive(Debug, Clone, PartialEq)]
pub enum PushResult {
    /// The cloud applied the edit at this version.
    Accepted {
        /// New cloud version.
        version: u64,
        /// Cloud timestamp.
        updated_at: String,
    },
    /// The cloud refused it; this is its current state.
    Rejected(Option<Incoming>),
}

/// Validates a push answer against the mutations sent.
pub fn validate_push(pushed: Vec<Row>, results: Vec<MutationResult>) -> Result<Vec<PushOutcome>> {
    if pushed.len() != results.len() {
        return Err(Error::protocol(format!(
            "pushed {} mutations, got {} results",
            pushed.len(),
            results.len()
        ))
        .with_detail(Detail::Malformed));
    }
    let mut buf = Vec::new();
    pushed
        .into_iter()
        .zip(results)
        .map(|(row, res)| {
            let result = match res {
                MutationResult::Accepted {
                    version,
                    updated_at,
                } => PushResult::Accepted {
                    version,
                    updated_at,
                },
                MutationResult::Rejected { current: None } => PushResult::Rejected(None),
                MutationResult::Rejected { current: Some(c) } => {
                    if (c.collection.as_str(), c.id.as_str())
                        != (row.key.collection.as_str(), row.key.id.as_str())
                    {
                        return Err(Error::protocol(format!(
                            "push result for {}/{} names {}/{}",
                            row.key.collection, row.key.id, c.collection, c.id
                        ))
                        .with_detail(Detail::Malformed));
                    }
                    PushResult::Rejected(Some(validate_change(c, &mut buf)?))
                }
            };
            Ok(PushOutcome {
                pushed: row,
                result,
            })
        })
        .collect()
}

/// Plans the effect of push results on the current rows (`rows[i]` is the current row of
/// `outcomes[i]`'s key, re-read inside the transaction: the user may have edited again since).
pub fn plan_push(
    scope_name: &str,
    state: &ScopeState,
    outcomes: &[PushOutcome],
    rows: &[Option<Row>],
    now: Millis,
) -> Result<Changeset> {
    let mut out = Changeset {
        scope: state.clone(),
        ..Changeset::default()
    };
    for (slot, (o, current)) in outcomes.iter().zip(rows).enumerate() {
        let key = &o.pushed.key;
        let Some(current) = current else {
            // The row vanished (a local create deleted again); nothing left to reconcile.
            continue;
        };
        let prior = Prior::of(slot, current);
        let edited_again = current.pending != o.pushed.pending;
        let (version, updated_at, cloud_state) = match &o.result {
            PushResult::Accepted {
                version,
                updated_at,
            } => (
                *version,
                updated_at.clone(),
                o.pushed.data.clone().zip(o.pushed.hash),
            ),
            PushResult::Rejected(inc) if inc.as_ref().and_then(Incoming::hash) == o.pushed.hash => {
                // The cloud already holds exactly our edit: an earlier push of it went through
                // but its answer was lost. Not a conflict.
                match inc {
                    Some(i) => (i.version, i.updated_at.clone(), i.state.clone()),
                    None => (0, String::new(), None),
                }
            }
            PushResult::Rejected(inc) => {
                out.conflicts.push(conflict_of(
                    scope_name,
                    &o.pushed,
                    inc.as_ref().map_or(0, |i| i.version),
                    inc.as_ref().and_then(Incoming::hash),
                    now,
                ));
                out.counts.conflicts += 1;
                match inc {
                    Some(i) => (i.version, i.updated_at.clone(), i.state.clone()),
                    None => (0, String::new(), None),
                }
            }
        };
        let cloud_hash = cloud_state.as_ref().map(|(_, h)| *h);
        if let Some(l) = current.leaf() {
            out.scope.totals.remove(&l);
        }
        if let Some(h) = &cloud_hash {
            out.scope.totals.insert(&leaf(&key.collection, &key.id, h));
        }
        let write = if edited_again {
            // Keep the newer edit pending, now resting on the cloud's latest state.
            RowWrite::Touch {
                key: key.clone(),
                prior,
                version,
                updated_at,
                cloud_hash,
                generation: current.generation,
                pending: current.pending,
            }
        } else {
            match cloud_state {
                Some((data, hash)) => RowWrite::Put {
                    row: Row {
                        key: key.clone(),
                        data: Some(data),
                        hash: Some(hash),
                        version,
                        updated_at,
                        cloud_hash: Some(hash),
                        generation: current.generation,
                        pending: None,
                    },
                    prior: Some(prior),
                },
                None => RowWrite::Remove {
                    key: key.clone(),
                    prior,
                },
            }
        };
        out.rows.push(write);
    }
    Ok(out)
}

/// Plans the end of a full download: rows of generations older than the current one are gone
/// from the cloud. A local create (no cloud state) is kept; a pending edit on a record the cloud
/// no longer has goes to the conflict journal.
pub fn plan_sweep(
    scope_name: &str,
    state: &ScopeState,
    stale: &[Option<Row>],
    now: Millis,
) -> Changeset {
    let mut out = Changeset {
        scope: state.clone(),
        ..Changeset::default()
    };
    for (slot, row) in stale.iter().enumerate() {
        let Some(row) = row else { continue };
        let prior = Prior::of(slot, row);
        if row.cloud_hash.is_none() && row.pending.is_some() {
            out.rows.push(RowWrite::Touch {
                key: row.key.clone(),
                prior,
                version: row.version,
                updated_at: row.updated_at.clone(),
                cloud_hash: None,
                generation: state.generation,
                pending: row.pending,
            });
            continue;
        }
        if let Some(l) = row.leaf() {
            out.scope.totals.remove(&l);
        }
        if row.pending.is_some() {
            out.conflicts
                .push(conflict_of(scope_name, row, 0, None, now));
            out.counts.conflicts += 1;
        }
        out.counts.deleted += 1;
        out.rows.push(RowWrite::Remove {
            key: row.key.clone(),
            prior,
        });
    }
    out.scope.full_sync = false;
    out
}

/// Plans a range repair: `cloud` holds the cloud's live records of a key range (validated),
/// `rows[i]` the replica's row of `keys[i]` *with its data*, where `keys` is the union of both
/// sides' keys. Cloud wins: every row whose cloud state or data differs from the cloud's is
/// rewritten, a row the cloud does not have is removed (a local create is kept), and a pending
/// edit is left pending on the cloud's state. Totals are not touched: the caller recomputes them
/// from the rows afterwards, since a corrupted row's stored hash cannot be trusted for an
/// incremental update.
pub fn plan_repair(
    state: &ScopeState,
    keys: &[Key],
    rows: &[Option<Row>],
    cloud: &HashMap<Key, Incoming>,
) -> Changeset {
    let mut out = Changeset {
        scope: state.clone(),
        ..Changeset::default()
    };
    let mut buf = Vec::new();
    for (slot, (key, row)) in keys.iter().zip(rows).enumerate() {
        let inc = cloud.get(key).filter(|i| i.state.is_some());
        let row = row.as_ref().map(|r| (Prior::of(slot, r), r));
        let write = match (row, inc) {
            (None, None) => None,
            (Some((_, r)), None) if r.cloud_hash.is_none() => None,
            (Some((prior, r)), None) if r.pending.is_some() => Some(RowWrite::Touch {
                key: key.clone(),
                prior,
                version: r.version,
                updated_at: r.updated_at.clone(),
                cloud_hash: None,
                generation: state.generation,
                pending: r.pending,
            }),
            (Some((prior, _)), None) => Some(RowWrite::Remove {
                key: key.clone(),
                prior,
            }),
            (row, Some(i)) => {
                let Some((data, hash)) = i.state.as_ref().map(|(d, h)| (d.clone(), *h)) else {
                    continue;
                };
                match row {
                    Some((prior, r)) if r.pending.is_some() => Some(RowWrite::Touch {
                        key: key.clone(),
                        prior,
                        version: i.version,
                        updated_at: i.updated_at.clone(),
                        cloud_hash: Some(hash),
                        generation: state.generation,
                        pending: r.pending,
                    }),
                    Some((_, r))
                        if r.cloud_hash == Some(hash)
                            && r.hash == Some(hash)
                            && r.version == i.version
                            && r.data.as_ref().map(|d| record_hash_with(d, &mut buf))
                                == Some(hash) =>
                    {
                        None
                    }
                    _ => Some(RowWrite::Put {
                        row: Row {
                            key: key.clone(),
                            data: Some(data),
                            hash: Some(hash),
                            version: i.version,
                            updated_at: i.updated_at.clone(),
                            cloud_hash: Some(hash),
                            generation: state.generation,
                            pending: None,
                        },
                        prior: row.map(|(prior, _)| prior),
                    }),
                }
            }
        };
        if let Some(w) = write {
            out.counts.repaired += 1;
            out.rows.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests;
