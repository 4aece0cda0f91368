//! `tether serve`: the reference server on SQLite (default) or PostgreSQL, until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use tether_server::{Config, ServerError, StorageConfig, Tokens};

use crate::error::{CliError, Result};

/// Options of `tether serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: std::net::SocketAddr,
    /// SQLite database file of the cloud (the default storage; not a replica file).
    #[arg(long = "db", default_value = "./tether-cloud.db")]
    cloud_db: PathBuf,
    /// PostgreSQL URL; when given, used instead of --db.
    #[arg(long)]
    database_url: Option<String>,
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
}

pub fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let tokens = match (&a.tokens, &a.dev_token) {
        (Some(path), _) => Tokens::from_file(path)?,
        (None, Some(t)) => Tokens::default().grant(t, &["*"], true),
        (None, None) => Tokens::from_env("TETHER_TOKENS")?.ok_or_else(|| {
            ServerError::Config(
                "no tokens: pass --tokens FILE, --dev-token T, or set TETHER_TOKENS".into(),
            )
        })?,
    };
    let storage = match &a.database_url {
        Some(url) => StorageConfig::Postgres {
            url: url.clone(),
            schema: None,
            pool_size: 8,
        },
        None => StorageConfig::Sqlite {
            path: a.cloud_db.clone(),
        },
    };
    let mut config = Config::new(a.bind, storage, tokens);
    config.demo_dir = a.demo_dir.clone();
    config.cors_origins = a.cors_origins.clone();
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
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(CliError::Runtime)
}
