//! Typed errors: a stable [`ErrorKind`] to branch on, a finer [`Detail`] where one is known, a
//! message that says what was expected and what came, and the underlying error as the
//! [`std::error::Error::source`].
//!
//! ```
//! use tether_engine::{Detail, Error, ErrorKind};
//! let e = Error::storage("disk full").with_detail(Detail::Quota);
//! assert_eq!(e.kind(), ErrorKind::Storage);
//! assert_eq!(e.detail(), Some(Detail::Quota));
//! assert_eq!(e.detail().map(Detail::as_str), Some("Quota"));
//! ```

use std::sync::Arc;

use crate::digest::Snapshot;

/// The result type of every fallible Tether operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure, with a stable [`ErrorKind`] callers can branch on.
///
/// Messages say what was expected and what came. Large payloads are boxed so that `Result`
/// stays small on the hot path. Equality compares everything but the source (sources are
/// compared by their text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote could not be reached or answered with a retryable failure (connection error,
    /// timeout, 5xx, 429). Retrying later may succeed.
    #[error("network error: {message}")]
    Network {
        /// What went wrong.
        message: String,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// How long the remote asked us to wait (`Retry-After`), in milliseconds.
        retry_after_ms: Option<u64>,
        /// Finer reason: [`Detail::Timeout`], [`Detail::Unreachable`], [`Detail::RateLimited`],
        /// [`Detail::ServerError`].
        detail: Option<Detail>,
        /// The transport's own error.
        source: Option<Source>,
    },
    /// The remote refused the credentials (401) or the scope (403).
    #[error("auth error: {message}")]
    Auth {
        /// What went wrong.
        message: String,
        /// HTTP status, when there was a response.
        status: Option<u16>,
    },
    /// The remote broke the protocol: malformed page, wrong hash, version going backwards,
    /// checkpoint missing. The page was rejected whole.
    #[error("protocol error: {message}")]
    Protocol {
        /// What went wrong.
        message: String,
        /// Finer reason, e.g. [`Detail::HashMismatch`] or [`Detail::Malformed`].
        detail: Option<Detail>,
        /// The decoder's own error, when there is one.
        source: Option<Source>,
    },
    /// The replica does not equal the cloud after a full resync.
    #[error("integrity error: {0}")]
    Integrity(Box<IntegrityMismatch>),
    /// The local store failed (SQLite, IndexedDB, quota exceeded).
    #[error("storage error: {message}")]
    Storage {
        /// What went wrong.
        message: String,
        /// Finer reason, e.g. [`Detail::Quota`], [`Detail::Busy`] or [`Detail::Corrupt`].
        detail: Option<Detail>,
        /// The database's own error (`rusqlite::Error`, a `DOMException`'s name and message).
        source: Option<Source>,
    },
    /// The run was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// The caller passed a bad argument, or a record over one of the
    /// [`limits`](crate::limits).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was expected and what came.
        message: String,
        /// Finer reason: the limit a record broke ([`Detail::TooLarge`],
        /// [`Detail::KeyTooLong`], [`Detail::TooDeep`], [`Detail::BadText`]).
        detail: Option<Detail>,
    },
}

/// What went wrong, one level below the [`ErrorKind`]: stable names for the cases a caller may
/// want to handle on their own (a full disk, a timeout, an endpoint the server lacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Detail {
    /// Network: the request or the answer took longer than allowed.
    Timeout,
    /// Network: no connection could be opened (refused, DNS, offline).
    Unreachable,
    /// Network: the remote answered 429 Too Many Requests.
    RateLimited,
    /// Network: the remote answered with a 5xx status.
    ServerError,
    /// Protocol: an answer that is not valid JSON of the expected shape.
    Malformed,
    /// Protocol: a record whose data does not hash to the hash it came with.
    HashMismatch,
    /// Protocol: a record's version went backwards, or one version came with two states.
    VersionBackwards,
    /// Protocol: a page without a checkpoint.
    CheckpointMissing,
    /// Protocol: the last page without the scope's snapshot.
    SnapshotMissing,
    /// Protocol: the remote said there was more but did not move on.
    NoProgress,
    /// Protocol: an answer larger than the client reads (or a request larger than the server
    /// takes, HTTP 413).
    BodyTooLarge,
    /// Protocol: a status the protocol does not define for this request.
    UnexpectedStatus,
    /// Protocol: the remote does not implement a required endpoint.
    NotSupported,
    /// Storage: the disk or the browser's storage quota is full.
    Quota,
    /// Storage: the database is locked by another connection for too long.
    Busy,
    /// Storage: the stored data is not what this version of Tether wrote.
    Corrupt,
    /// InvalidInput (a local edit) or Protocol (a page): a record's data over
    /// [`MAX_RECORD_BYTES`](crate::limits::MAX_RECORD_BYTES).
    TooLarge,
    /// InvalidInput or Protocol: a key over [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES).
    KeyTooLong,
    /// InvalidInput or Protocol: data nested deeper than
    /// [`MAX_DEPTH`](crate::limits::MAX_DEPTH).
    TooDeep,
    /// InvalidInput or Protocol: U+0000 in a key, a string or a member name.
    BadText,
}

impl Detail {
    /// The stable name, e.g. `"Quota"` (also `error.detail` in JS).
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Timeout => "Timeout",
            Detail::Unreachable => "Unreachable",
            Detail::RateLimited => "RateLimited",
            Detail::ServerError => "ServerError",
            Detail::Malformed => "Malformed",
            Detail::HashMismatch => "HashMismatch",
            Detail::VersionBackwards => "VersionBackwards",
            Detail::CheckpointMissing => "CheckpointMissing",
            Detail::SnapshotMissing => "SnapshotMissing",
            Detail::NoProgress => "NoProgress",
            Detail::BodyTooLarge => "BodyTooLarge",
            Detail::UnexpectedStatus => "UnexpectedStatus",
            Detail::NotSupported => "NotSupported",
            Detail::Quota => "Quota",
            Detail::Busy => "Busy",
            Detail::Corrupt => "Corrupt",
            Detail::TooLarge => "TooLarge",
            Detail::KeyTooLong => "KeyTooLong",
            Detail::TooDeep => "TooDeep",
            Detail::BadText => "BadText",
        }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error below a Tether error, shared so that [`Error`] stays `Clone`.
#[derive(Clone)]
pub struct Source(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Source {
    /// Wraps an error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Source(Arc::new(e))
    }

    /// The wrapped error, e.g. to `downcast_ref::<rusqlite::Error>()`.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

// Displays as the wrapped error and continues the chain with its source, so a report of the
// chain names each error once.
impl std::error::Error for Source {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl From<crate::digest::MalformedHex> for Error {
    fn from(e: crate::digest::MalformedHex) -> Self {
        Error::protocol(e.to_string()).with_detail(Detail::Malformed)
    }
}

/// The two sides of a failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityMismatch {
    /// Scope that failed to verify.
    pub scope: String,
    /// What the cloud reported.
    pub expected: Snapshot,
    /// What the replica holds.
    pub actual: Snapshot,
}

impl std::fmt::Display for IntegrityMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scope {:?}: cloud has {} records with digest {}, replica has {} records with digest {}",
            self.scope, self.expected.count, self.expected.digest, self.actual.count, self.actual.digest
        )
    }
}

/// The stable kind of an [`Error`], as a string in JSON, JS and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::Network`].
    Network,
    /// See [`Error::Auth`].
    Auth,
    /// See [`Error::Protocol`].
    Protocol,
    /// See [`Error::Integrity`].
    Integrity,
    /// See [`Error::Storage`].
    Storage,
    /// See [`Error::Cancelled`].
    Cancelled,
    /// See [`Error::InvalidInput`].
    InvalidInput,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Network,
        ErrorKind::Auth,
        ErrorKind::Protocol,
        ErrorKind::Integrity,
        ErrorKind::Storage,
        ErrorKind::Cancelled,
        ErrorKind::InvalidInput,
    ];

    /// The stable name, e.g. `"Network"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Network => "Network",
            ErrorKind::Auth => "Auth",
            ErrorKind::Protocol => "Protocol",
            ErrorKind::Integrity => "Integrity",
            ErrorKind::Storage => "Storage",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::InvalidInput => "InvalidInput",
        }
    }
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Network { .. } => ErrorKind::Network,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Integrity(_) => ErrorKind::Integrity,
            Error::Storage { .. } => ErrorKind::Storage,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
        }
    }

    /// The finer reason below the kind, when one is known.
    pub fn detail(&self) -> Option<Detail> {
        match self {
            Error::Network { detail, .. }
            | Error::Protocol { detail, .. }
            | Error::Storage { detail, .. }
            | Error::InvalidInput { detail, .. } => *detail,
            _ => None,
        }
    }

    /// The HTTP status of the answer that caused this error, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Network { status, .. } | Error::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// How long the remote asked to wait before retrying, in milliseconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Error::Network { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed (network failures only).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Network { .. })
    }

    /// A network error without status.
    pub fn network(message: impl Into<String>) -> Self {
        Error::Network {
            message: message.into(),
            status: None,
            retry_after_ms: None,
            detail: None,
            source: None,
        }
    }

    /// A protocol error.
    pub fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol {
            message: message.into(),
            detail: None,
            source: None,
        }
    }

    /// A storage error.
    pub fn storage(message: impl std::fmt::Display) -> Self {
        Error::Storage {
            message: message.to_string(),
            detail: None,
            source: None,
        }
    }

    /// An invalid-input error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
            detail: None,
        }
    }

    /// The same error with `detail` (kinds without details are returned unchanged).
    pub fn with_detail(mut self, d: Detail) -> Self {
        if let Error::Network { detail, .. }
        | Error::Protocol { detail, .. }
        | Error::Storage { detail, .. }
        | Error::InvalidInput { detail, .. } = &mut self
        {
            *detail = Some(d);
        }
        self
    }

    /// The same error with `e` as its source (kinds without sources are returned unchanged).
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Error::Network { source, .. }
        | Error::Protocol { source, .. }
        | Error::Storage { source, .. } = &mut self
        {
            *source = Some(Source::new(e));
        }
        self
    }
}

/// An error as recorded in a run's history: kind, detail and message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunError {
    /// Stable kind.
    pub kind: ErrorKind,
    /// Finer reason, when one is known (absent in runs recorded before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
    /// Human-readable message.
    pub message: String,
}

impl RunError {
    /// The error recorded on a run found still running when the next run of its scope starts:
    /// the process stopped before the run ended (runs of one scope never overlap).
    pub fn interrupted() -> Self {
        RunError {
            kind: ErrorKind::Cancelled,
            detail: None,
            message: "interrupted: the process stopped before the run ended".into(),
        }
    }
}

impl From<&Error> for RunError {
    fn from(e: &Error) -> Self {
        RunError {
            kind: e.kind(),
            detail: e.detail(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn detail_and_source_survive_clone() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let e = Error::storage("cannot write page")
            .with_detail(Detail::Quota)
            .with_source(io);
        let c = e.clone();
        assert_eq!(c, e);
        assert_eq!(c.detail(), Some(Detail::Quota));
        assert_eq!(c.source().unwrap().to_string(), "no space left");
        assert_eq!(c.to_string(), "storage error: cannot write page");
    }

    #[test]
    fn kinds_without_details_ignore_them() {
        let e = Error::Cancelled.with_detail(Detail::Quota);
        assert_eq!(e.detail(), None);
        assert_eq!(
            Error::Cancelled
                .with_source(std::fmt::Error)
                .source()
                .map(|_| ()),
            None
        );
    }

    #[test]
    fn run_error_keeps_detail_and_reads_old_json() {
        let r = RunError::from(&Error::protocol("bad").with_detail(Detail::HashMismatch));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""detail":"HashMismatch""#), "{json}");
        let old: RunError = serde_json::from_str(r#"{"kind":"Network","message":"m"}"#).unwrap();
        assert_eq!(old.detail, None);
    }

    #[test]
    fn detail_names_are_their_serde_names() {
        for d in [
            Detail::Quota,
            Detail::NotSupported,
            Detail::Timeout,
            Detail::TooLarge,
            Detail::KeyTooLong,
            Detail::TooDeep,
            Detail::BadText,
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }
}
