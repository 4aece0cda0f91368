//! Typed errors with stable kinds.

use crate::digest::Snapshot;

/// The result type of every fallible Tether operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure, with a stable [`ErrorKind`] callers can branch on.
///
/// Messages say what was expected and what came. Large payloads are boxed so that `Result`
/// stays small on the hot path.
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
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The replica does not equal the cloud after a full resync.
    #[error("integrity error: {0}")]
    Integrity(Box<IntegrityMismatch>),
    /// The local store failed (SQLite, IndexedDB, quota exceeded).
    #[error("storage error: {0}")]
    Storage(String),
    /// The run was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// The caller passed a bad argument.
    #[error("invalid input: {0}")]
    InvalidInput(String),
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
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::Integrity(_) => ErrorKind::Integrity,
            Error::Storage(_) => ErrorKind::Storage,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
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
        }
    }

    /// A protocol error.
    pub fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol(message.into())
    }

    /// A storage error.
    pub fn storage(message: impl std::fmt::Display) -> Self {
        Error::Storage(message.to_string())
    }

    /// An invalid-input error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
}

/// An error as recorded in a run's history: kind and message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunError {
    /// Stable kind.
    pub kind: ErrorKind,
    /// Human-readable message.
    pub message: String,
}

impl From<&Error> for RunError {
    fn from(e: &Error) -> Self {
        RunError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}
