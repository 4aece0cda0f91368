//! The CLI's error: the replica's and the engine's errors as they are, plus what only a
//! command-line tool meets (starting a runtime or a server, its own files, its arguments).

use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The replica, the sync or the remote failed; its kind is the engine's.
    #[error(transparent)]
    Sync(#[from] tether_engine::Error),
    /// The tokio runtime of `serve` or `demo` could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server of `serve` or `demo` could not start: bad configuration, storage that does
    /// not open, an address that cannot be bound.
    #[error("cannot start the server: {0}")]
    Server(#[from] tether_server::ServerError),
    /// The server's admin API refused a write or could not be reached.
    #[error("admin write to {url}: {message}")]
    Admin {
        /// The endpoint.
        url: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// A file of the CLI's own (not the replica) could not be created, removed or read.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Standard output could not take the command's JSON.
    #[error("cannot print JSON: {0}")]
    Output(#[source] serde_json::Error),
    /// An argument is invalid, or a file an inspection command needs is missing.
    #[error("{0}")]
    Usage(String),
}

/// The result of a command.
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// A short stable name for the message's prefix (`error [Auth]: ...`): the engine's kind
    /// for engine errors, the CLI's own otherwise.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CliError::Sync(e) => e.kind().as_str(),
            CliError::Runtime(_) => "Runtime",
            CliError::Server(_) => "Server",
            CliError::Admin {
                status: Some(401 | 403),
                ..
            } => "Auth",
            CliError::Admin { .. } => "Admin",
            CliError::File { .. } => "File",
            CliError::Output(_) => "Output",
            CliError::Usage(_) => "Usage",
        }
    }
}
