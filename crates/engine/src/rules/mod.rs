//! The pure apply rules: plain functions from the replica's rows and an incoming page (or push
//! result, local edit, sweep) to a [`Changeset`] that a store writes in one transaction.
//!
//! Rules for one incoming change (docs/protocol.md, "Applying a page"), first match wins:
//!
//! | incoming | local | result |
//! |---|---|---|
//! | live or delete | pending, incoming equals the pending edit | clear pending, take cloud version |
//! | live or delete | pending, incoming is the edit's base (same version and hash; or a tombstone and the edit is a create) | edit stays pending |
//! | live or delete | pending, otherwise | cloud wins; local edit to the conflict journal |
//! | live | absent | insert |
//! | live | same hash | version and updated_at refreshed (unchanged) |
//! | live | other hash | update |
//! | delete | present | delete |
//! | delete | absent | skip |
//!
//! The digest is kept over the *cloud* state of every key (a row's `cloud_hash`), so pending
//! local edits never make the replica's digest differ from the cloud's.
//!
//! Two halves: `validate` checks what the remote sent (hashes, shape, one state per key and
//! version) and turns it into [`Incoming`] changes ([`validate_page`], [`validate_push`]);
//! `plan` decides from those and the rows read what to write ([`plan_page`], [`plan_push`],
//! [`plan_local_edit`], [`plan_sweep`], [`plan_repair`]). The types a store sees live here.

mod changes;
mod plan;
mod subset;
mod validate;

pub use changes::*;
pub use plan::*;
pub use subset::*;
pub use validate::*;

use serde::{Deserialize, Serialize};

use crate::digest::{leaf, RecordHash, Snapshot};
use crate::doc::Doc;
use crate::error::Result;
use crate::types::{Checkpoint, Conflict, Counts, Key, Millis, Mutation, Op, Record};

/// One key's row in the replica: the visible state plus the cloud state it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Key.
    pub key: Key,
    /// Visible data; `None` while a local delete is pending. Stores may leave it out of the rows
    /// they hand to a planner when `pending` is `None` (planners never read it then).
    pub data: Option<Doc>,
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
    /// Outbox sequence number of this record's edit that was pushed and whose answer never came
    /// (it may have been applied): the next push names it as the mutation it replaces
    /// ([`Mutation::replaces`]). Set only beside a pending edit; cleared by any answer for the
    /// row and by a page that settles it.
    #[serde(default)]
    pub sent: Option<u64>,
}

impl Row {
    fn leaf(&self) -> Option<crate::digest::Digest> {
        self.cloud_hash
            .map(|h| leaf(&self.key.collection, &self.key.id, &h))
    }

    /// The pending local edit as a mutation, if there is one, named `"{client}:{seq}"` when
    /// the scope has a client id (see [`crate::mutation`]). Fails (a storage error) only if the
    /// stored data is corrupt.
    pub fn mutation(&self, client: Option<&str>) -> crate::error::Result<Option<Mutation>> {
        let Some(seq) = self.pending else {
            return Ok(None);
        };
        Ok(Some(Mutation {
            collection: self.key.collection.clone(),
            id: self.key.id.clone(),
            op: if self.data.is_some() {
                Op::Put
            } else {
                Op::Delete
            },
            data: self.data.as_ref().map(Doc::to_data).transpose()?,
            base_version: self.cloud_hash.map(|_| self.version),
            mutation_id: client.map(|c| format!("{c}:{seq}")),
            replaces: client.and(self.sent),
        }))
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
    /// This replica's client id in the scope, made at its first push; its mutations are named
    /// `"{client}:{seq}"` (see [`crate::mutation`]).
    #[serde(default)]
    pub client: Option<String>,
    /// The parts of the scope this replica holds, in the order they were declared; empty: the
    /// whole scope (docs/partial-sync.md). With subscriptions, `checkpoint` is unused (each
    /// subscription has its own) and stays `None`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<crate::subscription::Held>,
    /// The subscriptions narrowed and the rows they no longer select are still being evicted
    /// (set in the narrowing's transaction, cleared when the eviction ends): the next sync
    /// finishes an eviction a crash cut short.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evicting: bool,
}

impl ScopeState {
    /// Takes the next outbox sequence number.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
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
        /// New [`Row::sent`].
        sent: Option<u64>,
    },
    /// Delete the row.
    Remove {
        /// Key.
        key: Key,
        /// The row deleted.
        prior: Prior,
        /// The record still exists in the cloud but left this partial replica (a move-out or
        /// a subscription removed): change events say so ([`KeyChange::evicted`]).
        evict: bool,
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
    /// What made the change (for the change event after commit).
    pub source: Source,
}

impl Changeset {
    /// A changeset that writes `state` as it is and nothing else yet, made by `source`: where
    /// a planner starts.
    pub fn starting_from(state: &ScopeState, source: Source) -> Self {
        Changeset {
            scope: state.clone(),
            source,
            ..Changeset::default()
        }
    }

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

/// The visible record of a row; `None` for a pending local delete. Fails (a storage error)
/// only if the stored data is corrupt.
pub fn record_of(row: Row) -> Result<Option<Record>> {
    let (Some(data), Some(hash)) = (row.data, row.hash) else {
        return Ok(None);
    };
    Ok(Some(Record {
        collection: row.key.collection,
        id: row.key.id,
        data: data.to_data()?,
        version: row.version,
        updated_at: row.updated_at,
        hash,
        pending: row.pending.is_some(),
    }))
}

/// Computes a snapshot from rows (for store implementations of
/// [`Store::range_snapshot`](crate::Store::range_snapshot)).
pub fn snapshot_of<'a>(rows: impl IntoIterator<Item = &'a Row>, rehash: bool) -> Snapshot {
    let mut snap = Snapshot::default();
    let mut buf = Vec::new();
    for row in rows {
        let hash = match (&row.data, row.pending) {
            // Corrupt data hashes to nothing, so the range differs and is repaired.
            (Some(data), None) if rehash => data.hash_with(&mut buf).ok(),
            _ => row.cloud_hash,
        };
        if let Some(h) = hash {
            snap.insert(&leaf(&row.key.collection, &row.key.id, &h));
        }
    }
    snap
}

#[cfg(test)]
mod tests;
