//! Validation of what the remote sent: every change's hash and shape, a page's checkpoint and
//! snapshot, one state per key and version, and push answers matched to the mutations sent.
//! Nothing is applied if anything is wrong.

use serde_json::value::RawValue;

use crate::canonical::{is_canonical, write_canonical_text};
use crate::digest::{hash_canonical, RecordHash, Snapshot};
use crate::doc::Doc;
use crate::error::{Detail, Error, Result};
use crate::limits::{MAX_DEPTH, MAX_RECORD_BYTES};
use crate::types::{Change, Checkpoint, Key, MutationResult, Page};

use super::Row;

/// A validated incoming change: hash checked, data an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// Key.
    pub key: Key,
    /// Cloud version.
    pub version: u64,
    /// Cloud timestamp.
    pub updated_at: String,
    /// Data (its canonical text) and hash; `None` for a tombstone.
    pub state: Option<(Doc, RecordHash)>,
}

impl Incoming {
    pub(crate) fn hash(&self) -> Option<RecordHash> {
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
        if data.is_some() {
            return Err(Error::protocol(format!(
                "{}/{}: a tombstone must have null data",
                key.collection, key.id
            ))
            .with_detail(Detail::Malformed));
        }
        None
    } else {
        let data = match data {
            Some(raw) if raw.get().starts_with('{') => raw,
            other => {
                let got = match other.as_ref().and_then(|r| r.get().bytes().next()) {
                    None | Some(b'n') => "null",
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b't' | b'f') => "a boolean",
                    Some(_) => "a number",
                };
                return Err(Error::protocol(format!(
                    "{}/{}: data must be a JSON object, got {got}",
                    key.collection, key.id
                ))
                .with_detail(Detail::Malformed));
            }
        };
        let claimed: RecordHash = match hash {
            Some(h) => h.parse().map_err(|e: crate::digest::MalformedHex| {
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
        let (doc, actual) = canonical_data(&key, data, buf)?;
        if actual != claimed {
            return Err(Error::protocol(format!(
                "{}/{} version {version}: hash mismatch, page says {claimed}, data hashes to {actual}",
                key.collection, key.id
            )).with_detail(Detail::HashMismatch));
        }
        Some((doc, actual))
    };
    Ok(Incoming {
        key,
        version,
        updated_at,
        state,
    })
}

/// A record's data as canonical text, checked against the limits, and its hash.
///
/// The server sends the canonical text it stores, so the data is usually canonical already:
/// then one pass over the text checks that and the limits, and the text is kept and hashed as
/// it came. Anything else (another spelling, a record the check does not follow, one over a
/// limit) is rewritten and checked as the rewrite's output, which decides alike
/// (`the_fast_path_decides_as_the_rewrite`).
fn canonical_data(key: &Key, data: Box<RawValue>, buf: &mut Vec<u8>) -> Result<(Doc, RecordHash)> {
    // The cloud holds every record to the same limits as a local edit; one over them
    // is a record no replica could push back.
    let over_limit = |e: Error| {
        let detail = e.detail().unwrap_or(Detail::Malformed);
        Error::protocol(format!("the page holds a record over a limit: {e}")).with_detail(detail)
    };
    let text = data.get();
    if text.len() <= MAX_RECORD_BYTES && is_canonical(text, MAX_DEPTH) {
        // Canonical, no deeper than the limit and no U+0000: of the limits only the key's is
        // left to check.
        crate::limits::check_record(key, None).map_err(over_limit)?;
        let hash = hash_canonical(text.as_bytes());
        return Ok((Doc::from_canonical_text(data.into()), hash));
    }
    buf.clear();
    write_canonical_text(text, buf).map_err(|e| {
        Error::protocol(format!(
            "{}/{}: data is not JSON: {e}",
            key.collection, key.id
        ))
        .with_detail(Detail::Malformed)
    })?;
    crate::limits::check_record(key, Some(buf)).map_err(over_limit)?;
    Ok((Doc::from_canonical(buf.clone()), hash_canonical(buf)))
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
    Ok(ValidPage {
        changes: valid_changes(page.changes)?,
        checkpoint,
        has_more: page.has_more,
        remaining: page.remaining,
        snapshot: page.snapshot,
    })
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
    /// The cloud can never accept it (`reason`, e.g. `"too_large"`); this is its current state.
    Invalid {
        /// Stable reason, kept in the conflict journal.
        reason: String,
        /// The cloud's current state.
        current: Option<Incoming>,
    },
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
                MutationResult::Rejected { current } => {
                    PushResult::Rejected(current_of(&row, current, &mut buf)?)
                }
                MutationResult::Invalid {
                    reason, current, ..
                } => PushResult::Invalid {
                    reason,
                    current: current_of(&row, current, &mut buf)?,
                },
            };
            Ok(PushOutcome {
                pushed: row,
                result,
            })
        })
        .collect()
}

/// The cloud's current state in a push result, which must name the pushed key.
fn current_of(row: &Row, current: Option<Change>, buf: &mut Vec<u8>) -> Result<Option<Incoming>> {
    let Some(c) = current else { return Ok(None) };
    if (c.collection.as_str(), c.id.as_str()) != (row.key.collection.as_str(), row.key.id.as_str())
    {
        return Err(Error::protocol(format!(
            "push result for {}/{} names {}/{}",
            row.key.collection, row.key.id, c.collection, c.id
        ))
        .with_detail(Detail::Malformed));
    }
    Ok(Some(validate_change(c, buf)?))
}

/// Validates a page's changes ([`validate_change`]) and puts them in key order, one per key
/// (the highest version of each; two different states of one version are a protocol error).
pub(super) fn valid_changes(changes: Vec<Change>) -> Result<Vec<Incoming>> {
    let mut buf = Vec::with_capacity(512);
    let mut changes = changes
        .into_iter()
        .map(|c| validate_change(c, &mut buf))
        .collect::<Result<Vec<_>>>()?;
    // Key order, highest version first within a key; then keep the first of each key.
    crate::sort::sort_by(&mut changes, |a, b| {
        a.key.cmp(&b.key).then(b.version.cmp(&a.version))
    });
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
    Ok(changes)
}
