//! Tether's reference cloud: the HTTP sync protocol of docs/protocol.md over SQLite (the embedded
//! default) or PostgreSQL (production).
//!
//! [`serve`] starts a server on the given address and returns a [`Server`] handle; tests and
//! the CLI bind `127.0.0.1:0` and read the chosen port from [`Server::addr`].
//!
//! ```no_run
//! # async fn run() -> Result<(), tether_server::ServerError> {
//! use tether_server::{serve, Config, StorageConfig, Tokens};
//! let tokens = Tokens::default().grant("secret", &["org-1"], false);
//! let storage = StorageConfig::Sqlite { path: "cloud.db".into() };
//! let server = serve(Config::new("127.0.0.1:0".parse().unwrap(), storage, tokens)).await?;
//! println!("listening on http://{}", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Endpoints, key encoding in query strings, auth configuration and the SQL write path are
//! documented in docs/server.md.

#![forbid(unsafe_code)]

mod api;
pub mod auth;
pub mod config;
mod conn;
mod error;
pub mod live;
mod metrics;
mod probes;
pub mod sources;
mod state;
pub mod storage;
mod subsets;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;

pub use config::{Config, Grant, StorageConfig, Tokens};
pub use error::{ApiError, ServerError};
pub use storage::subset::FilterIndex;
pub use storage::{Storage, StorageError};

/// A running server.
pub struct Server {
    addr: SocketAddr,
    https: bool,
    state: Arc<state::AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    purger: Option<JoinHandle<()>>,
    /// PostgreSQL's change listener (live pulls), if the storage has one.
    listener: Option<JoinHandle<()>>,
    /// The declared sources' consumer, if sources are declared.
    consumer: Option<JoinHandle<()>>,
}

/// Counters since the server started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Pull requests answered (pages and resets).
    pub pulls: u64,
    /// Changes sent in pull pages.
    pub changes_sent: u64,
}

impl Server {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, or `https://<addr>` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Counters since the server started.
    pub fn stats(&self) -> Stats {
        Stats {
            pulls: self.state.stats.pulls.load(Ordering::Relaxed),
            changes_sent: self.state.stats.changes_sent.load(Ordering::Relaxed),
        }
    }

    /// The storage (for tests and tools that write to the cloud directly).
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.state.storage.clone()
    }

    /// Stops accepting connections, lets requests in flight finish, and returns once the
    /// listening socket is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Waiting live pulls answer at once, so the graceful shutdown does not wait for them.
        self.state.hub.close();
        if let Some(p) = self.purger.take() {
            p.abort();
        }
        if let Some(l) = self.listener.take() {
            l.abort();
        }
        if let Some(c) = self.consumer.take() {
            c.abort();
        }
        let _ = (&mut self.task).await;
    }
}

/// Opens the storage, binds the address and serves until [`Server::shutdown`].
pub async fn serve(config: Config) -> Result<Server, ServerError> {
    let Some(sources) = config.sources.clone() else {
        let storage = open_storage(&config.storage).await?;
        return serve_with(config, storage).await;
    };
    let StorageConfig::Postgres {
        url,
        schema,
        pool_size,
    } = &config.storage
    else {
        return Err(ServerError::Config(
            "declared sources (--sources) need PostgreSQL storage (--database-url)".into(),
        ));
    };
    let pg = storage::postgres::PgStorage::connect(url, schema.as_deref(), *pool_size).await?;
    sources::check(&pg, &sources).await?;
    let status = Arc::new(sources::SourceStatus::new(&sources));
    let mut server = serve_parts(config, Arc::new(pg.clone()), Some(status.clone())).await?;
    server.consumer = Some(sources::start(
        pg,
        Arc::new(sources),
        status,
        server.state.hub.clone(),
    ));
    Ok(server)
}

/// Like [`serve`], over storage the caller opened.
pub async fn serve_with(config: Config, storage: Arc<dyn Storage>) -> Result<Server, ServerError> {
    if config.sources.is_some() {
        return Err(ServerError::Config(
            "declared sources are started by serve(), which opens the PostgreSQL storage".into(),
        ));
    }
    serve_parts(config, storage, None).await
}

async fn serve_parts(
    config: Config,
    storage: Arc<dyn Storage>,
    sources: Option<Arc<sources::SourceStatus>>,
) -> Result<Server, ServerError> {
    for f in &config.filter_indexes {
        f.validate().map_err(ServerError::Config)?;
    }
    storage.declare_filters(&config.filter_indexes).await?;
    let hub = Arc::new(live::ChangeHub::default());
    let listener_task = storage.listen(hub.clone());
    let state = Arc::new(state::AppState::new(
        storage.clone(),
        hub.clone(),
        &config,
        sources,
    ));
    let mut app = api::router(state.clone());
    if let Some(dir) = &config.demo_dir {
        app = app.nest_service("/demo", tower_http::services::ServeDir::new(dir));
    }
    if let Some(cors) = cors_layer(&config.cors_origins)? {
        app = app.layer(cors);
    }
    // Fastest gzip: pages are JSON with much repetition, so level 1 already shrinks them ~4x,
    // at a third of the CPU of the default level (see docs/server.md, benchmark).
    let app = app.layer(CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest));
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let limits = conn::Limits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
        body_read_timeout: config.body_read_timeout,
        idle_timeout: config.idle_timeout,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(conn::accept_loop(
        listener,
        app,
        limits,
        config.tls.clone(),
        state.metrics.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let purger = config
        .tombstone_retention
        .map(|keep| tokio::spawn(purge_loop(storage, keep)));
    tracing::info!(%addr, "tether server listening");
    Ok(Server {
        addr,
        https: config.tls.is_some(),
        state,
        stop: Some(stop),
        task,
        purger,
        listener: listener_task,
        consumer: None,
    })
}

/// The CORS layer for the configured origins; `None` when there are none.
fn cors_layer(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, ServerError> {
    use axum::http::{header, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| ServerError::Config(format!("bad CORS origin {o:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// Opens the configured storage.
pub async fn open_storage(config: &StorageConfig) -> Result<Arc<dyn Storage>, ServerError> {
    Ok(match config {
        StorageConfig::Sqlite { path } => {
            let path = path.clone();
            let s =
                tokio::task::spawn_blocking(move || storage::sqlite::SqliteStorage::open(&path, 4))
                    .await
                    .map_err(|e| StorageError::Task(e.to_string()))??;
            Arc::new(s)
        }
        StorageConfig::Postgres {
            url,
            schema,
            pool_size,
        } => Arc::new(
            storage::postgres::PgStorage::connect(url, schema.as_deref(), *pool_size).await?,
        ),
    })
}

/// Purges tombstones older than `keep`, every `keep / 10` (at least a minute apart).
async fn purge_loop(storage: Arc<dyn Storage>, keep: Duration) {
    let every = (keep / 10).max(Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let before = tether_engine::time::rfc3339(now_ms() - keep.as_millis() as i64);
        let purge = storage::Purge {
            scope: None,
            before: Some(before),
        };
        match storage.purge(&purge).await {
            Ok(n) => tracing::info!(purged = n, "purged tombstones"),
            Err(e) => tracing::warn!(error = %e, "purging tombstones failed"),
        }
    }
}

/// Milliseconds since the Unix epoch (the server, unlike the engine, reads the clock).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
