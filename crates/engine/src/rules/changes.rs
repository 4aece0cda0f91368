//! What a changeset changes for a reader: the visible changes a committed write makes, which
//! the change events publish. Pure, beside the planner whose output it reads.

use serde::{Deserialize, Serialize};

use super::{Changeset, RowWrite};

/// What made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A local edit (`put` or `delete`).
    #[default]
    Local,
    /// A page of a pull or of a full download.
    Pull,
    /// The answer to a push.
    Push,
    /// The sweep at the end of a full download (records the cloud no longer has).
    Sweep,
    /// A repair of rows that differed from the cloud.
    Repair,
    /// A change of a partial replica's subscriptions: records no subscription selects any
    /// more leave the replica (docs/partial-sync.md).
    Subscriptions,
}

/// How a key's visible record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// It became visible.
    Insert,
    /// Its visible data changed.
    Update,
    /// It is no longer visible (deleted, or a local delete is pending).
    Delete,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// Collection.
    pub collection: String,
    /// Record id.
    pub id: String,
    /// What happened to it.
    pub op: ChangeOp,
    /// A [`ChangeOp::Delete`] of a record that still exists in the cloud but left this partial
    /// replica (it moved out of its subscriptions, or they were removed): a UI may say "no
    /// longer synced" rather than "deleted".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evicted: bool,
}

/// The visible changes a changeset makes: a record that appears, disappears, changes its data,
/// or whose local edit is settled (the cloud accepted it: the record's `pending` flag clears,
/// which a UI showing "edited locally" must see). A write that keeps all of that (a version
/// refreshed by a page, a full download bringing the same data) is no change.
pub fn changes_of(cs: &Changeset) -> Vec<KeyChange> {
    let mut out = Vec::new();
    for w in &cs.rows {
        let prior = w.prior();
        let before = prior.and_then(|p| p.hash);
        let after = match w {
            RowWrite::Put { row, .. } => row.hash.filter(|_| row.data.is_some()),
            RowWrite::Touch { .. } => before,
            RowWrite::Remove { .. } => None,
        };
        let was_pending = prior.is_some_and(|p| p.pending.is_some());
        let settled = after.is_some() && was_pending != w.pending().is_some();
        let op = match (before, after) {
            (None, Some(_)) => ChangeOp::Insert,
            (Some(_), None) => ChangeOp::Delete,
            (Some(a), Some(b)) if a != b || settled => ChangeOp::Update,
            _ => continue,
        };
        let key = w.key();
        out.push(KeyChange {
            collection: key.collection.clone(),
            id: key.id.clone(),
            op,
            evicted: matches!(w, RowWrite::Remove { evict: true, .. }),
        });
    }
    out
}
