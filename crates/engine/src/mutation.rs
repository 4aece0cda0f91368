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
//! 1. the same id and the same data as the one remembered, and the record is still as that
//!    mutation left it or the mutation names itself as unanswered (`replaces` equal to its own
//!    sequence number): a **repeat** (its answer was lost); answered with the original result,
//!    nothing written;
//! 2. a later edit from the same client that **names** the remembered mutation as the one it
//!    replaces (`replaces`, see below), and the record is still as that mutation left it (same
//!    version): **applied**, whatever its `base_version` says;
//! 3. otherwise by `base_version`, as without an id: applied if it names the live version,
//!    rejected if not.
//!
//! A mutation without an id (an older replica) is judged by rule 3 alone.
//!
//! ## Why rule 2 needs `replaces`
//!
//! The replica's outbox keeps one edit per record: after a push whose answer was lost, the
//! next edit of the record coalesces over the lost one and still names the version the lost
//! one was made on. If the cloud did apply the lost one, the base rule would reject the next
//! edit although the only write since is the replica's own: a false conflict. Rule 2 exists
//! for that case alone. The replica records, on each row of a push whose answer never came,
//! the sequence number it sent (`Row::sent`, kept in the store) and sends it as the next
//! mutation's `replaces`. Only a replica that sent mutation `seq` of that record can name it.
//!
//! Before `replaces`, rule 2 applied any later `seq` of the same client over that client's
//! last write. Two replicas sharing a client id (a copied replica file, a restored backup, a VM
//! snapshot; or two derived ids that collided) share the sequence counter too, so one copy's
//! later edit replaced the other copy's write, which it had never seen, with no conflict on
//! either side. The cases, judged now (A and B share client id `c`; `r` is at v3):
//!
//! - *Copied file.* B is a copy of A. C writes `r` (v4); A pulls it and writes `r` on top
//!   (`c:7`, base v4, applied: v5, remembered `{seq 7, v5}`). B, still on v3, writes `r`
//!   (`c:8`, base v3, no `replaces`): rule 2 needs `replaces == 7`, rule 3 sees base 3 against
//!   live 5: **rejected**, B journals its edit and takes v5. Before: applied over v5, A's and
//!   C's edits gone.
//! - *Shared id, first edits.* P and Q create `settings` (base none). P's `c:1` is applied
//!   (v1); Q's `c:1` has other data (not a repeat) and Q's `c:2` has no `replaces`: both are
//!   judged on their base (none, against live v1): **rejected**.
//! - *Copied while a push was in flight.* A pushes `c:7` for `r` (base v3); the answer is lost,
//!   A marks `sent = 7`; then the file is copied to B, so both hold the mark. The cloud had
//!   applied it (v4, `{7, v4}`). A edits `r` again (`c:8`, base v3, `replaces: 7`): rule 2,
//!   applied (v5, `{8, v5}`). B edits `r` (`c:8`, other data, `replaces: 7`): not a repeat
//!   (other data), rule 2 needs `replaces == 8`, base 3 against 5: **rejected**. Whichever
//!   copy comes first wins; the other journals its edit.
//!
//! What remains: both copies must have pushed the *same* `seq` of the *same* record with
//! *different* data, the second one's answer lost as well (so it also marks `sent = seq`), and
//! its next edit of the record must come before any pull. Only then does its `replaces` name
//! the other copy's write. A copied file is detected natively and takes a new client id (see
//! docs/native.md), and client ids are random, so this needs a copy the replica cannot detect
//! (a restored VM snapshot) and three coincidences after it.
//!
//! ```
//! use tether_engine::mutation::{judge, AppliedMutation, Judgement, MutationId};
//! let id = MutationId::parse("c0ffee:7").unwrap();
//! assert_eq!(id.to_string(), "c0ffee:7");
//! // The cloud applied c0ffee:7 (version 4) but the answer was lost; the replica's next edit
//! // (sequence 8) still rests on version 3, and names 7 as the mutation it replaces.
//! let last = AppliedMutation { seq: 7, version: 4, updated_at: "t".into(), hash: None };
//! let next = MutationId { client: "c0ffee".into(), seq: 8 };
//! let judged = judge(Some(&next), Some(7), None, Some(3), Some(4), Some(4), Some(&last));
//! assert_eq!(judged, Judgement::Apply);
//! // A copy of the replica, which never sent 7, cannot replace it: a conflict.
//! let judged = judge(Some(&next), None, None, Some(3), Some(4), Some(4), Some(&last));
//! assert_eq!(judged, Judgement::Reject);
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
/// - `replaces`: the sequence number of the earlier mutation of the same client and record
///   that the mutation replaces, sent only when that one's answer never came;
/// - `hash`: the hash of its data (`None` for a delete);
/// - `base`: its `base_version`;
/// - `live`: the record's live version (`None` when absent or a tombstone);
/// - `current`: the record's version, live or tombstone (`None` when the cloud has no row);
/// - `last`: what the cloud remembers of the last mutation `id.client` applied to the record.
pub fn judge(
    id: Option<&MutationId>,
    replaces: Option<u64>,
    hash: Option<RecordHash>,
    base: Option<u64>,
    live: Option<u64>,
    current: Option<u64>,
    last: Option<&AppliedMutation>,
) -> Judgement {
    if let (Some(id), Some(last)) = (id, last) {
        // A copy that shares the id can make the same edit under the same number on its own
        // (deleting the same record, say) after another writer moved the record on: answered
        // as a repeat, it would skip that write unseen. Its origin's true retry either finds
        // the record unchanged or carries its unanswered mark.
        let unchanged = current == Some(last.version) || replaces == Some(id.seq);
        if id.seq == last.seq && hash == last.hash && unchanged {
            return Judgement::Repeat;
        }
        if id.seq > last.seq && current == Some(last.version) && replaces == Some(last.seq) {
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
        // The record has moved on since (another writer), and the replica marked 5 as
        // unanswered: still the original answer.
        assert_eq!(
            judge(
                Some(&id(5)),
                Some(5),
                Some(a),
                Some(3),
                Some(12),
                Some(12),
                Some(&mem)
            ),
            Judgement::Repeat
        );
        // The same without the mark (a copy that made the same edit under the same number,
        // or a retry whose mark was lost in a crash): judged on its base.
        assert_eq!(
            judge(
                Some(&id(5)),
                None,
                Some(a),
                Some(3),
                Some(12),
                Some(12),
                Some(&mem)
            ),
            Judgement::Reject
        );
        // Unmarked, on the record as it left it: a repeat.
        assert_eq!(
            judge(
                Some(&id(5)),
                None,
                Some(a),
                Some(3),
                Some(9),
                Some(9),
                Some(&mem)
            ),
            Judgement::Repeat
        );
        // Same id, other data (a copied replica, say): judged on its base.
        assert_eq!(
            judge(
                Some(&id(5)),
                None,
                Some(b),
                Some(3),
                Some(9),
                Some(9),
                Some(&mem)
            ),
            Judgement::Reject
        );
        // A delete repeated.
        let del = last(5, 9, None);
        assert_eq!(
            judge(Some(&id(5)), None, None, Some(3), None, Some(9), Some(&del)),
            Judgement::Repeat
        );
    }

    #[test]
    fn a_later_edit_applies_only_over_the_write_it_names() {
        let mem = last(5, 9, None);
        // Our delete (v9, seq 5) is still the record's state and its answer was lost: a
        // re-create on the old base that names it applies.
        assert_eq!(
            judge(
                Some(&id(6)),
                Some(5),
                None,
                Some(3),
                None,
                Some(9),
                Some(&mem)
            ),
            Judgement::Apply
        );
        // The same edit without `replaces` (a copy of the replica, which never sent 5): the
        // base rule, and the base is stale.
        assert_eq!(
            judge(Some(&id(6)), None, None, Some(3), None, Some(9), Some(&mem)),
            Judgement::Reject
        );
        // Naming another mutation than the remembered one (a copy that sent its own 4).
        assert_eq!(
            judge(
                Some(&id(6)),
                Some(4),
                None,
                Some(3),
                None,
                Some(9),
                Some(&mem)
            ),
            Judgement::Reject
        );
        // Someone wrote since (v10): judged on the base, which is stale.
        assert_eq!(
            judge(
                Some(&id(6)),
                Some(5),
                None,
                Some(3),
                Some(10),
                Some(10),
                Some(&mem)
            ),
            Judgement::Reject
        );
        // An older mutation of ours arriving late is judged on its base.
        assert_eq!(
            judge(
                Some(&id(4)),
                Some(5),
                None,
                Some(3),
                None,
                Some(9),
                Some(&mem)
            ),
            Judgement::Reject
        );
        // Another client's memory is not ours: no memory, base rule.
        assert_eq!(
            judge(Some(&id(6)), None, None, Some(9), Some(9), Some(9), None),
            Judgement::Apply
        );
        // A later edit on the live base applies by rule 3, whatever it names.
        assert_eq!(
            judge(
                Some(&id(6)),
                Some(2),
                None,
                Some(9),
                Some(9),
                Some(9),
                Some(&mem)
            ),
            Judgement::Apply
        );
    }
}
