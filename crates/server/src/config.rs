//! Server configuration: where to listen, which storage, who may do what, and the limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::ServerError;

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
    /// Serve HTTPS with this certificate and key (`None`: plain HTTP, for loopback, a trusted
    /// network, or behind a TLS-terminating proxy).
    pub tls: Option<crate::tls::TlsConfig>,
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
            tls: None,
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

/// What one bearer token grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Grant {
    /// Scopes the token may read and push to; `"*"` grants every scope.
    pub scopes: Vec<String>,
    /// Whether the token may also use the admin API (the backend writing its own data,
    /// purging tombstones) on those scopes.
    #[serde(default)]
    pub admin: bool,
    /// Read-only: pulls, status, digest and records, but a push is `403` (default false:
    /// read-write).
    #[serde(default)]
    pub read_only: bool,
}

impl Grant {
    /// Whether the grant covers `scope`.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }
}

/// Bearer tokens and their grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Tokens(pub HashMap<String, Grant>);

impl Tokens {
    /// Parses the JSON form: `{"<token>": {"scopes": ["org-1"], "admin": false}, ...}`.
    pub fn from_json(json: &str) -> Result<Self, ServerError> {
        let tokens: Tokens = serde_json::from_str(json)
            .map_err(|e| ServerError::Config(format!("tokens are not valid JSON: {e}")))?;
        if tokens.0.keys().any(|t| t.is_empty()) {
            return Err(ServerError::Config("a token must not be empty".into()));
        }
        Ok(tokens)
    }

    /// Reads tokens from a JSON file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Config(format!("cannot read tokens file {}: {e}", path.display()))
        })?;
        Self::from_json(&text)
    }

    /// Reads tokens from the JSON in environment variable `var` (`None` if it is unset).
    pub fn from_env(var: &str) -> Result<Option<Self>, ServerError> {
        match std::env::var(var) {
            Ok(json) => Self::from_json(&json).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Adds a token.
    pub fn grant(mut self, token: &str, scopes: &[&str], admin: bool) -> Self {
        self.0.insert(
            token.to_string(),
            Grant {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                admin,
                read_only: false,
            },
        );
        self
    }

    /// The grant of a token.
    pub fn lookup(&self, token: &str) -> Option<&Grant> {
        self.0.get(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Tokens::from_json("[]").is_err());
    }
}
