//! Wire and domain types, exactly as in the protocol (docs/protocol.md, "Pull" and "Push").

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, RecordHash, Snapshot};
use crate::error::{Error, Result, RunError};

/// A JSON object: the data of a record.
pub type Data = serde_json::Map<String, serde_json::Value>;

/// Milliseconds since the Unix epoch. The engine never reads a clock; callers pass time in.
pub type Millis = i64;

/// An opaque position in a scope's change feed, issued by the remote and stored atomically with
/// the data it covers. The engine never interprets it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Checkpoint(pub String);

impl Checkpoint {
    /// The checkpoint as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated scope name: non-empty, at most 256 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeId(String);

impl ScopeId {
    /// Validates a scope name.
    ///
    /// ```
    /// use tether_engine::ScopeId;
    /// assert!(ScopeId::new("org-1").is_ok());
    /// assert!(ScopeId::new("").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::invalid("scope name must not be empty"));
        }
        if name.len() > 256 {
            return Err(Error::invalid(format!(
                "scope name must be at most 256 bytes, got {}",
                name.len()
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "scope name {name:?} contains a control character"
            )));
        }
        Ok(ScopeId(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ScopeId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ScopeId::new(s)
    }
}

impl From<ScopeId> for String {
    fn from(s: ScopeId) -> String {
        s.0
    }
}

impl std::fmt::Display for ScopeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record's key. Keys order by `(collection, id)`, each compared as UTF-8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Collection, e.g. `"objects"`.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
}

impl Key {
    /// Builds a key.
    pub fn new(collection: impl Into<String>, id: impl Into<String>) -> Self {
        Key {
            collection: collection.into(),
            id: id.into(),
        }
    }

    /// Checks the key is usable for a local edit: both parts non-empty, no control characters.
    pub fn validate(&self) -> Result<()> {
        for (what, s) in [("collection", &self.collection), ("id", &self.id)] {
            if s.is_empty() {
                return Err(Error::invalid(format!("{what} must not be empty")));
            }
            if s.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "{what} {s:?} contains a control character"
                )));
            }
        }
        Ok(())
    }
}

/// A half-open key range `[from, to)`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub from: Option<Key>,
    /// Exclusive upper bound.
    pub to: Option<Key>,
}

impl KeyRange {
    /// The range of all keys.
    pub fn all() -> Self {
        KeyRange::default()
    }

    /// Whether `key` is inside the range.
    pub fn contains(&self, key: &Key) -> bool {
        self.from.as_ref().is_none_or(|f| key >= f) && self.to.as_ref().is_none_or(|t| key < t)
    }
}

/// One change in a pull page, as sent on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// Collection.
    pub collection: String,
    /// Id within the collection.
    pub id: String,
    /// Cloud version of this state of the record.
    pub version: u64,
    /// When the cloud wrote it (RFC 3339), as the cloud said.
    pub updated_at: String,
    /// A tombstone: the record was deleted.
    #[serde(default)]
    pub deleted: bool,
    /// The record's data (a JSON object); `null` for tombstones. Kept as the JSON text the
    /// remote sent, so that a page is parsed into no tree of values: the engine canonicalizes
    /// the text once to check the hash and stores that. A page whose data is not an object is
    /// rejected with a clear protocol error.
    #[serde(default)]
    pub data: Option<Box<serde_json::value::RawValue>>,
    /// SHA-256 of the canonical data; `null` for tombstones.
    #[serde(default)]
    pub hash: Option<String>,
}

/// Equal when every field is, the data compared as JSON text.
impl PartialEq for Change {
    fn eq(&self, o: &Change) -> bool {
        let text = |c: &Change| c.data.as_ref().map(|d| d.get().to_owned());
        (&self.collection, &self.id, self.version, &self.updated_at)
            == (&o.collection, &o.id, o.version, &o.updated_at)
            && (self.deleted, &self.hash) == (o.deleted, &o.hash)
            && self.data.as_ref().map(|d| d.get()) == o.data.as_ref().map(|d| d.get())
            && text(self).is_some() == text(o).is_some()
    }
}

impl Change {
    /// A live record's change, with its data written as JSON and its hash computed.
    ///
    /// ```
    /// use tether_engine::Change;
    /// let data = serde_json::json!({"name": "orders"});
    /// let c = Change::live("objects", "obj_1", 3, "2026-01-01T00:00:00Z", data.as_object().unwrap());
    /// assert_eq!(c.data.unwrap().get(), r#"{"name":"orders"}"#);
    /// assert_eq!(c.hash.unwrap().len(), 64);
    /// ```
    pub fn live(
        collection: impl Into<String>,
        id: impl Into<String>,
        version: u64,
        updated_at: impl Into<String>,
        data: &Data,
    ) -> Change {
        let doc = crate::Doc::new(data);
        Change {
            collection: collection.into(),
            id: id.into(),
            version,
            updated_at: updated_at.into(),
            deleted: false,
            hash: Some(crate::digest::hash_canonical(doc.as_str().as_bytes()).to_string()),
            data: Some(raw_json(doc.into_string())),
        }
    }

    /// A tombstone.
    pub fn tombstone(
        collection: impl Into<String>,
        id: impl Into<String>,
        version: u64,
        updated_at: impl Into<String>,
    ) -> Change {
        Change {
            collection: collection.into(),
            id: id.into(),
            version,
            updated_at: updated_at.into(),
            deleted: true,
            data: None,
            hash: None,
        }
    }
}

/// Wraps JSON text the caller knows is valid (written by serde_json or the canonical writer) as
/// a raw value. Panics if it is not JSON.
pub(crate) fn raw_json(text: String) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text).expect("the engine writes valid JSON")
}

/// A pull response page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The changes, in any order; a key may appear more than once (its highest version counts).
    pub changes: Vec<Change>,
    /// Position after this page. Required.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// More pages follow.
    #[serde(default)]
    pub has_more: bool,
    /// Estimated changes still to come after this page (drives progress percentages).
    #[serde(default)]
    pub remaining: Option<u64>,
    /// Count and digest of the scope at `checkpoint`; sent with the last page.
    #[serde(default)]
    pub snapshot: Option<Snapshot>,
}

/// A live record as the replica holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// Data.
    pub data: Data,
    /// Cloud version the record is at (for a local edit, the version it was made on; 0 if new).
    pub version: u64,
    /// When the cloud wrote it (RFC 3339); empty for a record created locally.
    pub updated_at: String,
    /// Hash of `data`.
    pub hash: RecordHash,
    /// Whether an unpushed local edit is in this state.
    #[serde(default)]
    pub pending: bool,
}

/// What a local edit or mutation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Create or replace the record.
    Put,
    /// Delete the record.
    Delete,
}

/// One mutation pushed to the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// Put or delete.
    pub op: Op,
    /// New data for a put; `null` for a delete.
    #[serde(default)]
    pub data: Option<Data>,
    /// Cloud version the edit was made on; `null` when the record did not exist.
    #[serde(default)]
    pub base_version: Option<u64>,
    /// `"{client}:{seq}"`, stable across retries of the same edit (see
    /// [`mutation`](crate::mutation)); absent from older replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    /// The sequence number of the earlier mutation of this record, by the same client, that
    /// this one replaces: sent only when that one was pushed and its answer never came (it may
    /// have been applied). A cloud applies a stale-based mutation only over the write it
    /// names (see [`mutation`](crate::mutation)); older clouds ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<u64>,
}

/// The cloud's answer to one mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "status",
    rename_all = "lowercase",
    try_from = "WireMutationResult"
)]
pub enum MutationResult {
    /// Applied; the record is now at `version`.
    Accepted {
        /// New cloud version.
        version: u64,
        /// When the cloud wrote it.
        updated_at: String,
    },
    /// `base_version` was not the current cloud version; `current` is the cloud's record
    /// (a tombstone or absent when deleted).
    Rejected {
        /// The cloud's current state of the record; `None` when it never existed.
        current: Option<Change>,
    },
    /// The cloud can never accept this mutation as it is (too large, data its storage cannot
    /// hold): it is not retried. `current` is the cloud's record, as for a rejection.
    Invalid {
        /// Stable reason: `"too_large"`, `"key_too_long"`, `"too_deep"`, `"bad_text"` (see
        /// [`limits::reason`](crate::limits::reason)), or `"invalid_data"` from older servers.
        reason: String,
        /// What was wrong, for people.
        message: String,
        /// The cloud's current state of the record; `None` when it never existed.
        #[serde(default)]
        current: Option<Change>,
    },
}

/// A [`MutationResult`] as read: one struct with every variant's fields, so that reading it
/// does not buffer the `current` change (serde buffers an internally tagged enum's content,
/// and a buffered change cannot keep its data as raw JSON text).
#[derive(Deserialize)]
struct WireMutationResult {
    status: String,
    version: Option<u64>,
    updated_at: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    #[serde(default)]
    current: Option<Change>,
}

impl TryFrom<WireMutationResult> for MutationResult {
    type Error = String;
    fn try_from(w: WireMutationResult) -> std::result::Result<Self, String> {
        let missing = |field: &str| format!("a {:?} mutation result needs {field:?}", w.status);
        Ok(match w.status.as_str() {
            "accepted" => MutationResult::Accepted {
                version: w.version.ok_or_else(|| missing("version"))?,
                updated_at: w.updated_at.clone().ok_or_else(|| missing("updated_at"))?,
            },
            "rejected" => MutationResult::Rejected { current: w.current },
            "invalid" => MutationResult::Invalid {
                reason: w.reason.clone().ok_or_else(|| missing("reason"))?,
                message: w.message.clone().ok_or_else(|| missing("message"))?,
                current: w.current,
            },
            other => return Err(format!("unknown mutation result status {other:?}")),
        })
    }
}

/// The body of a push request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The mutations, applied in order.
    pub mutations: Vec<Mutation>,
}

/// The answer to a push: one result per mutation, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// Results aligned with the request's mutations.
    pub results: Vec<MutationResult>,
}

/// The cloud's status of a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// Live records.
    pub count: u64,
    /// Scope digest.
    pub digest: Digest,
    /// Latest version in the scope.
    pub version: u64,
    /// When the scope last changed (RFC 3339), if ever.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A local edit that the cloud overwrote, kept so it is never lost silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Id of the journal entry, unique within the replica.
    pub id: u64,
    /// Scope.
    pub scope: String,
    /// Collection.
    pub collection: String,
    /// Id of the record.
    pub record_id: String,
    /// The local edit's operation.
    pub local_op: Op,
    /// The local edit's data (for a put).
    pub local_data: Option<Data>,
    /// The cloud version the local edit was made on.
    pub base_version: Option<u64>,
    /// The cloud version that won (0 when the cloud has no such record).
    pub cloud_version: u64,
    /// The hash of the cloud state that won; `None` when the cloud deleted the record.
    pub cloud_hash: Option<RecordHash>,
    /// When the conflict was recorded.
    pub at: Millis,
    /// Why the edit was refused when the cloud can never accept it (`"too_large"`,
    /// `"key_too_long"`, `"too_deep"`, `"bad_text"`, `"invalid_data"`:
    /// [`MutationResult::Invalid`]); `None` for an edit that lost to another
    /// writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What kind of run a sync was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// First download of the scope.
    Initial,
    /// From a checkpoint.
    Incremental,
    /// From scratch under a new generation, after a reset or a failed verification.
    FullResync,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The user asked.
    #[default]
    Manual,
    /// The background scheduler.
    Background,
    /// Application start.
    Startup,
    /// A live sync: caught up, then waiting for the cloud's next change (`SyncOptions::live_wait_s`).
    Live,
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// In progress (or interrupted by a crash, until the next run marks it failed).
    Running,
    /// Finished and verified.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled by the caller.
    Cancelled,
}

/// Counters of one run or page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// New records.
    pub inserted: u64,
    /// Records whose data changed.
    pub updated: u64,
    /// Records removed.
    pub deleted: u64,
    /// Records that came unchanged (same hash).
    pub unchanged: u64,
    /// Local edits that the cloud overwrote.
    pub conflicts: u64,
    /// Records fixed by range repair or swept by a full resync.
    pub repaired: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.unchanged += o.unchanged;
        self.conflicts += o.conflicts;
        self.repaired += o.repaired;
    }
}

/// One sync run, as kept in the replica's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Id, unique within the replica.
    pub id: u64,
    /// Scope.
    pub scope: String,
    /// Initial, incremental or full resync.
    pub kind: RunKind,
    /// What started it.
    pub trigger: Trigger,
    /// Start time.
    pub started_at: Millis,
    /// End time, once ended.
    pub finished_at: Option<Millis>,
    /// Outcome.
    pub status: RunStatus,
    /// Pages applied.
    pub pages: u64,
    /// Record counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// Bytes received from the remote.
    pub bytes_received: u64,
    /// The error, for failed runs.
    pub error: Option<RunError>,
}

impl Run {
    /// A run of `scope` of `kind` started by hand at `now`, not yet recorded (id 0).
    pub fn manual(scope: &ScopeId, kind: RunKind, now: Millis) -> Run {
        Run {
            id: 0,
            scope: scope.to_string(),
            kind,
            trigger: Trigger::Manual,
            started_at: now,
            finished_at: None,
            status: RunStatus::Running,
            pages: 0,
            counts: Counts::default(),
            bytes_received: 0,
            error: None,
        }
    }

    /// Duration in milliseconds, once ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// The phase a sync is in, for progress events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Sending local edits.
    Push,
    /// Waiting for a page.
    Pull,
    /// Writing a page.
    Apply,
    /// Comparing with the cloud's digest (and repairing ranges).
    Verify,
    /// Removing rows of an older generation after a full resync.
    Sweep,
    /// Every subscription of [`Progress::priority`] is complete: what they select is in the
    /// replica (a partial replica; docs/partial-sync.md).
    Ready,
}

/// A progress event while syncing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Scope.
    pub scope: String,
    /// Phase.
    pub phase: Phase,
    /// Records done so far in this run.
    pub done: u64,
    /// Estimated total for this run, when the remote gave an estimate.
    pub total: Option<u64>,
    /// `done / total` as a percentage in `[0, 100]`, when known.
    pub percent: Option<f64>,
    /// The subscription (its encoding) the event is about, in a partial replica; then `done`
    /// and `total` count its records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Its priority, or the priority now complete ([`Phase::Ready`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}
