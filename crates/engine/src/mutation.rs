//! Mutation ids and idempotent pushes: the rule a cloud follows to judge a pushed mutation,
//! written once for every cloud ([`Cloud`](crate::cloud::Cloud) and both storages of the
//! reference server).
//!
//! A replica names each mutation it pushes `"{client}:{seq}"` ([`MutationId`]): its client id
//! (one per scope, made at its first push and kept in the scope state) and the outbox sequence
//! number of the edit. A retry of the same edit carries the same id; a later edit of the same
//! record carries a higher sequence number. The cloud remembers, per scope, client and record,
//! the last mutation it applied ([`AppliedMutation`]) and judges each mutation with [`judge`]:
//!
//! 1. the same id and the same data as the one remembered: a **repeat** (its answer was lost);
//!    answered with the original result, nothing written;
//! 2. a later edit from the same client, and the record is still as that client's last
//!    mutation left it (same version): **applied**, whatever its `base_version` says. The
//!    replica's outbox keeps one edit per record, so after a lost answer the next edit still
//!    names the version the lost one was made on; but the record holds only this client's own
//!    write since, so nobody's change is overwritten;
//! 3. otherwise by `base_version`, as without an id: applied if it names the live version,
//!    rejected if not.
//!
//! A mutation without an id (an older replica) is judged by rule 3 alone.
//!
//! ```
//! use tether_engine::mutation::{judge, AppliedMutation, Judgement, MutationId};
//! let id = MutationId::parse("c0ffee:7").unwrap();
//! assert_eq!(id.to_string(), "c0ffee:7");
//! // The cloud applied c0ffee:7 (version 4) but the answer was lost; the replica's next edit
//! // (sequence 8) still rests on version 3.
//! let last = AppliedMutation { seq: 7, version: 4, updated_at: "t".into(), hash: None };
//! let next = MutationId { client: "c0ffee".into(), seq: 8 };
//! assert_eq!(judge(Some(&next), None, Some(3), Some(4), Some(4), Some(&last)), Judgement::Apply);
//! // Without the id the same push is a (false) conflict.
//! assert_eq!(judge(None, None, Some(3), Some(4), Some(4), None), Judgement::Reject);
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::RecordHash;
use crate::types::MutationResult;

/// The id of a pushed mutation: the pushing replica's client id and the edit's outbox
/// sequence number, written `"{client}:{seq}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MutationId {
    /// The replica's client id in this scope (no `:`).
    pub client: String,
    /// The edit's outbox sequence number; later edits have higher ones.
    pub seq: u64,
}

impl MutationId {
    /// Parses `"{client}:{seq}"`; `None` if it is not of that form, the client is empty or
    /// longer than 64 bytes, or the sequence number is not a `u64`.
    pub fn parse(text: &str) -> Option<Self> {
        let (client, seq) = text.rsplit_once(':')?;
        if client.is_empty() || client.len() > 64 || client.contains(':') {
            return None;
        }
        if !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(MutationId {
            client: client.to_string(),
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for MutationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.client, self.seq)
    }
}

/// What a cloud remembers of the last mutation one client applied to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMutation {
    /// Its sequence number.
    pub seq: u64,
    /// The version it wrote.
    pub version: u64,
    /// When it was written (the original answer's `updated_at`).
    pub updated_at: String,
    /// The hash of the data it wrote; `None` for a delete.
    pub hash: Option<RecordHash>,
}

impl AppliedMutation {
    /// The original answer, for a repeat.
    pub fn result(&self) -> MutationResult {
        MutationResult::Accepted {
            version: self.version,
            updated_at: self.updated_at.clone(),
        }
    }
}

/// What a cloud does with a pushed mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Write it.
    Apply,
    /// Refuse it: its base is not the live version.
    Reject,
    /// It was applied before: answer [`AppliedMutation::result`] and write nothing.
    Repeat,
}

/// Judges a mutation (see the module docs).
///
/// - `id`: the mutation's id, if it has one;
/// - `hash`: the hash of its data (`None` for a delete);
/// - `base`: its `base_version`;
/// - `live`: the record's live version (`None` when absent or a tombstone);
/// - `current`: the record's version, live or tombstone (`None` when the cloud has no row);
/// - `last`: what the cloud remembers of the last mutation `id.client` applied to the record.
pub fn judge(
    id: Option<&MutationId>,
    hash: Option<RecordHash>,
    base: Option<u64>,
    live: Option<u64>,
    current: Option<u64>,
    last: Option<&AppliedMutation>,
) -> Judgement {
    if let (Some(id), Some(last)) = (id, last) {
        if id.seq == last.seq && hash == last.hash {
            return Judgement::Repeat;
        }
        if id.seq > last.seq && current == Some(last.version) {
            return Judgement::Apply;
        }
    }
    if live == base {
        Judgement::Apply
    } else {
        Judgement::Reject
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::record_hash;

    fn last(seq: u64, version: u64, hash: Option<RecordHash>) -> AppliedMutation {
        AppliedMutation {
            seq,
            version,
            updated_at: "t".into(),
            hash,
        }
    }

    fn id(seq: u64) -> MutationId {
        MutationId {
            client: "c".into(),
            seq,
        }
    }

    #[test]
    fn ids_round_trip_and_garbage_is_refused() {
        let id = MutationId::parse("abcd:12").unwrap();
        assert_eq!((id.client.as_str(), id.seq), ("abcd", 12));
        assert_eq!(id.to_string(), "abcd:12");
        for bad in [
            "",
            ":1",
            "a:b:1",
            "c",
            "c:",
            "c:-1",
            "c:+1",
            "c:1x",
            "c:99999999999999999999",
        ] {
            assert_eq!(MutationId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(MutationId::parse(&format!("{}:1", "x".repeat(65))), None);
    }

    #[test]
    fn a_repeat_needs_the_same_id_and_the_same_data() {
        let a = record_hash(&serde_json::from_str(r#"{"v":1}"#).unwrap());
        let b = record_hash(&serde_json::from_str(r#"{"v":2}"#).unwrap());
        let mem = last(5, 9, Some(a));
        // The record has moved on since (another writer): still the original answer.
        assert_eq!(
            judge(
                Some(&id(5)),
                Some(a),
                Some(3),
                Some(12),
                Some(12),
                Some(&mem)
            ),
            Judgement::Repeat
        );
        // Same id, other data (a copied replica, say): judged on its base.
        assert_eq!(
            judge(Some(&id(5)), Some(b), Some(3), Some(9), Some(9), Some(&mem)),
            Judgement::Reject
        );
        // A delete repeated.
        let del = last(5, 9, None);
        assert_eq!(
            judge(Some(&id(5)), None, Some(3), None, Some(9), Some(&del)),
            Judgement::Repeat
        );
    }

    #[test]
    fn a_later_edit_applies_only_over_the_clients_own_write() {
        let mem = last(5, 9, None);
        // Our delete (v9) is still the record's state: a re-create on the old base applies.
        assert_eq!(
            judge(Some(&id(6)), None, Some(3), None, Some(9), Some(&mem)),
            Judgement::Apply
        );
        // Someone wrote since (v10): judged on the base, which is stale.
        assert_eq!(
            judge(Some(&id(6)), None, Some(3), Some(10), Some(10), Some(&mem)),
            Judgement::Reject
        );
        // An older mutation of ours arriving late is judged on its base.
        assert_eq!(
            judge(Some(&id(4)), None, Some(3), None, Some(9), Some(&mem)),
            Judgement::Reject
        );
        // Another client's memory is not ours: no memory, base rule.
        assert_eq!(
            judge(Some(&id(6)), None, Some(9), Some(9), Some(9), None),
            Judgement::Apply
        );
    }
}
