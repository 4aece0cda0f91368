//! `tether serve`: the reference server on SQLite (default) or PostgreSQL, until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use tether_server::auth::{Access, JwtConfig};
use tether_server::tls::TlsConfig;
use tether_server::{Config, ServerError, StorageConfig, Tokens};

use crate::error::{CliError, Result};

/// Options of `tether serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: std::net::SocketAddr,
    /// SQLite database file of the cloud (the default storage; not a replica file).
    #[arg(long = "db", default_value = "./tether-cloud.db")]
    cloud_db: PathBuf,
    /// PostgreSQL URL; when given, used instead of --db.
    #[arg(long)]
    database_url: Option<String>,
    /// PostgreSQL schema for Tether's own tables (created if missing; default: the
    /// connection's, usually `public`).
    #[arg(long, value_name = "NAME", requires = "database_url")]
    database_schema: Option<String>,
    /// TOML file of declared sources: PostgreSQL tables mirrored into read-only collections
    /// (docs/server.md, "Declared sources"); needs --database-url.
    #[arg(long, value_name = "FILE", requires = "database_url")]
    sources: Option<PathBuf>,
    /// Let subscriptions filter on this path of this collection's records, served from an
    /// index the server creates at start (docs/server.md, "Subsets"); repeatable.
    #[arg(long = "filter-index", value_name = "COLLECTION:PATH", value_parser = parse_filter_index)]
    filter_indexes: Vec<tether_server::FilterIndex>,
    /// JSON file of tokens: {"<token>": {"scopes": ["org-1"], "admin": false}}. Without it,
    /// the JSON in $TETHER_TOKENS, else --dev-token.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// A single token granting every scope, admin included (for local use only).
    #[arg(long)]
    dev_token: Option<String>,
    /// Serve this directory's files at /demo.
    #[arg(long)]
    demo_dir: Option<PathBuf>,
    /// Allow browser pages of this origin to call the API (CORS); repeatable; `*` for any.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Accept HS256 JWT bearer tokens signed with the secret in this environment variable
    /// (never on the command line, where other users can read it).
    #[arg(long, value_name = "VAR", conflicts_with = "jwks")]
    jwt_secret_env: Option<String>,
    /// Accept RS256/ES256 JWT bearer tokens signed by the keys of this JWKS file.
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Required `iss` of JWTs.
    #[arg(long)]
    jwt_issuer: Option<String>,
    /// Required `aud` of JWTs.
    #[arg(long)]
    jwt_audience: Option<String>,
    /// The JWT claim naming the scopes (a string or a list).
    #[arg(long, default_value = "scopes")]
    jwt_scopes_claim: String,
    /// The JWT claim naming the access, "read" or "write".
    #[arg(long, default_value = "access")]
    jwt_access_claim: String,
    /// The access of a JWT without that claim.
    #[arg(long, default_value = "read", value_parser = ["read", "write"])]
    jwt_default_access: String,
    /// Most connections open at once, long polls included (idle ones are closed to make
    /// room); keep it below `ulimit -n`.
    #[arg(long, default_value_t = tether_server::config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a client has to send a request's head.
    #[arg(long, value_name = "SECONDS",
          default_value_t = tether_server::config::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout: u64,
    /// Longest pause, in seconds, between two pieces of a request body.
    #[arg(long, value_name = "SECONDS",
          default_value_t = tether_server::config::DEFAULT_BODY_READ_TIMEOUT.as_secs())]
    body_read_timeout: u64,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, value_name = "SECONDS",
          default_value_t = tether_server::config::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// Require the token in this environment variable on GET /metrics (default: open).
    #[arg(long, value_name = "VAR")]
    metrics_token_env: Option<String>,
    /// Serve HTTPS with the certificate chain of this PEM file (the server's certificate first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The JWT configuration the options ask for, if any.
fn jwt(a: &ServeArgs) -> Result<Option<JwtConfig>> {
    let base = match (&a.jwt_secret_env, &a.jwks) {
        (Some(var), _) => {
            let secret = std::env::var(var).map_err(|_| {
                ServerError::Config(format!("--jwt-secret-env {var}: the variable is not set"))
            })?;
            if secret.len() < 32 {
                return Err(ServerError::Config(format!(
                    "--jwt-secret-env {var}: an HS256 secret needs at least 32 bytes"
                ))
                .into());
            }
            JwtConfig::hs256(secret.as_bytes())
        }
        (None, Some(path)) => JwtConfig::jwks_file(path)?,
        (None, None) => return Ok(None),
    };
    Ok(Some(JwtConfig {
        issuer: a.jwt_issuer.clone(),
        audience: a.jwt_audience.clone(),
        scopes_claim: a.jwt_scopes_claim.clone(),
        access_claim: a.jwt_access_claim.clone(),
        default_access: if a.jwt_default_access == "write" {
            Access::Write
        } else {
            Access::Read
        },
        ..base
    }))
}

pub(crate) fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let jwt = jwt(a)?;
    let tokens = match (&a.tokens, &a.dev_token) {
        (Some(path), _) => Tokens::from_file(path)?,
        (None, Some(t)) => Tokens::default().grant(t, &["*"], true),
        (None, None) => match Tokens::from_env("TETHER_TOKENS")? {
            Some(tokens) => tokens,
            None if jwt.is_some() => Tokens::default(),
            None => {
                return Err(ServerError::Config(
                    "no tokens: pass --tokens FILE, --dev-token T, --jwks FILE or \
                     --jwt-secret-env VAR, or set TETHER_TOKENS"
                        .into(),
                )
                .into())
            }
        },
    };
    let storage = match &a.database_url {
        Some(url) => StorageConfig::Postgres {
            url: url.clone(),
            schema: a.database_schema.clone(),
            pool_size: 8,
        },
        None => StorageConfig::Sqlite {
            path: a.cloud_db.clone(),
        },
    };
    let mut config = Config::new(a.bind, storage, tokens);
    config.demo_dir = a.demo_dir.clone();
    config.cors_origins = a.cors_origins.clone();
    config.filter_indexes = a.filter_indexes.clone();
    config.jwt = jwt;
    if let Some(path) = &a.sources {
        config.sources =
            Some(tether_server::sources::Sources::from_file(path).map_err(ServerError::from)?);
    }
    let secs = |s: u64| std::time::Duration::from_secs(s.max(1));
    config.max_connections = a.max_connections.max(1);
    config.header_read_timeout = secs(a.header_read_timeout);
    config.body_read_timeout = secs(a.body_read_timeout);
    config.idle_timeout = secs(a.idle_timeout);
    config.metrics_token = match &a.metrics_token_env {
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ServerError::Config(format!(
                        "--metrics-token-env {var}: the variable is not set"
                    ))
                })?,
        ),
        None => None,
    };
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        config.tls = Some(TlsConfig::from_pem_files(cert, key)?);
    }
    let rt = runtime()?;
    rt.block_on(async {
        let server = tether_server::serve(config).await?;
        eprintln!(
            "tether server listening on {} (Ctrl-C to stop)",
            server.url()
        );
        // An error here means no signal handler could be installed; stopping at once is
        // then the only safe reading of it.
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The multi-threaded tokio runtime the server runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(CliError::Runtime)
}

/// `COLLECTION:PATH` of `--filter-index`.
fn parse_filter_index(spec: &str) -> Result<tether_server::FilterIndex, String> {
    tether_server::FilterIndex::parse(spec)
}
