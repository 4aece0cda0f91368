//! Server configuration: where to listen, which storage, who may do what, and the limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::auth::{Grant, Tokens};

/// Most connections held at once, long polls included ([`Config::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time a client has to send a request's head ([`Config::header_read_timeout`]).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between two pieces of a request body ([`Config::body_read_timeout`]).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a connection may sit with no request in flight ([`Config::idle_timeout`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything [`crate::serve`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one (tests use `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// Where records live.
    pub storage: StorageConfig,
    /// Bearer tokens and what they grant.
    pub tokens: Tokens,
    /// JWT bearer tokens, checked when a token is not one of `tokens` (`None`: static tokens
    /// only).
    pub jwt: Option<crate::auth::JwtConfig>,
    /// Largest page a pull may ask for; larger `limit`s are clamped to it.
    pub max_page: u32,
    /// Page size when a pull gives no `limit`.
    pub default_page: u32,
    /// Largest request body accepted (bytes); larger bodies get `413`.
    pub max_body_bytes: usize,
    /// Largest answer of the range records endpoint; larger ranges get `400 range_too_large`.
    pub max_range_records: usize,
    /// Tombstones older than this are purged by a background task (`None`: never purged
    /// automatically, only through the admin purge endpoint).
    pub tombstone_retention: Option<Duration>,
    /// Serve the files of this directory at `/demo` (the browser example).
    pub demo_dir: Option<PathBuf>,
    /// Origins allowed to call the API from a browser page (CORS), e.g.
    /// `https://app.example.com`; `"*"` allows any origin. Empty: no CORS headers, so only
    /// same-origin pages (like `/demo`) can call it. Tokens travel in the `Authorization`
    /// header, never in cookies, so no credentials mode is needed.
    pub cors_origins: Vec<String>,
    /// Most connections held at once, long polls included. At the cap, connections with no
    /// request in flight are closed to make room; a new connection that still finds no room
    /// within a second is closed unanswered.
    pub max_connections: usize,
    /// A request's head (request line and headers) must arrive within this time, counted
    /// from the moment the connection is ready for it (accepted, or its previous answer
    /// sent), else the connection is closed. This also bounds an idle HTTP/1 keep-alive.
    pub header_read_timeout: Duration,
    /// Longest pause between two pieces of a request body; a body that stalls longer is
    /// refused (`408`) and the connection closed. The same bound holds the other way: a
    /// client that reads none of an answer for this long (the socket takes no more of it) is
    /// closed, so a slow reader cannot hold an answer's bytes for ever.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight and no answer being sent for this long is
    /// closed, whatever it did before. A connection that sends nothing is closed after
    /// `min(header_read_timeout, idle_timeout)` (30 s by default): the header timer runs from
    /// the accept.
    pub idle_timeout: Duration,
    /// A bearer token `GET /metrics` requires (`None`: open to whoever reaches the server's
    /// address; the metrics carry no scope names nor data).
    pub metrics_token: Option<String>,
    /// Serve HTTPS with this certificate and key (`None`: plain HTTP, for loopback, a trusted
    /// network, or behind a TLS-terminating proxy).
    pub tls: Option<crate::tls::TlsConfig>,
    /// Tables of the application's PostgreSQL mirrored into read-only collections
    /// (docs/server.md, "Declared sources"); needs [`StorageConfig::Postgres`].
    pub sources: Option<crate::sources::Sources>,
    /// The `(collection, path)`s subscriptions may filter on: the storage keeps an index of
    /// each, created at start (docs/server.md, "Subsets"; `tether serve --filter-index`).
    pub filter_indexes: Vec<crate::FilterIndex>,
}

impl Config {
    /// A configuration with default limits.
    pub fn new(bind: SocketAddr, storage: StorageConfig, tokens: Tokens) -> Self {
        Config {
            bind,
            storage,
            tokens,
            jwt: None,
            max_page: 5000,
            default_page: 1000,
            max_body_bytes: 8 << 20,
            max_range_records: 10_000,
            tombstone_retention: Some(Duration::from_secs(30 * 24 * 3600)),
            demo_dir: None,
            cors_origins: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            metrics_token: None,
            tls: None,
            sources: None,
            filter_indexes: Vec::new(),
        }
    }
}

/// The storage behind the server.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// An SQLite database file (created if missing): the embedded default.
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// A `postgres://` URL.
        url: String,
        /// Schema to create and use (`None`: the connection's default, usually `public`).
        /// Tests use a fresh schema each.
        schema: Option<String>,
        /// Connections in the pool.
        pool_size: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented defaults: a connection that sends nothing is closed within 60 s (30 s).
    #[test]
    fn connection_bounds_default_to_the_documented_values() {
        let c = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            StorageConfig::Sqlite {
                path: "unused.db".into(),
            },
            Tokens::default(),
        );
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.header_read_timeout, Duration::from_secs(30));
        assert_eq!(c.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert!(c.header_read_timeout.min(c.idle_timeout) <= Duration::from_secs(60));
        assert_eq!(
            c.metrics_token, None,
            "/metrics is open unless a token is set"
        );
    }

    #[test]
    fn parses_grants_and_rejects_empty_tokens() {
        let t = Tokens::from_json(
            r#"{"t1": {"scopes": ["a"]}, "t2": {"scopes": ["*"], "admin": true}}"#,
        )
        .unwrap();
        assert!(t.lookup("t1").unwrap().allows("a"));
        assert!(!t.lookup("t1").unwrap().allows("b"));
        assert!(t.lookup("t2").unwrap().allows("b") && t.lookup("t2").unwrap().admin);
        assert!(Tokens::from_json(r#"{"": {"scopes": []}}"#).is_err());
        for near in ["t", "t11", "T1", "t2 ", ""] {
            assert_eq!(t.lookup(near), None, "{near:?}");
        }
        assert!(Tokens::from_json("[]").is_err());
    }
}
