//! The state the handlers share: storage, tokens, limits, the live hub and the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::config::Tokens;
use crate::metrics::{Counters, Metrics};
use crate::sources::SourceStatus;
use crate::storage::Storage;

/// Most pages read from storage and serialized at once. A page in the making holds its rows,
/// its changes and its serialized body (up to about three times
/// [`PAGE_BYTES`](tether_engine::limits::PAGE_BYTES)); a page being sent holds only its body.
/// So many slow readers cost a body each, and the peak of building stays bounded.
const PAGE_BUILDERS: usize = 4;

/// Shared state of the handlers.
pub(crate) struct AppState {
    pub storage: Arc<dyn Storage>,
    pub tokens: Tokens,
    pub jwt: Option<crate::auth::JwtConfig>,
    pub hub: Arc<crate::live::ChangeHub>,
    pub max_page: u32,
    pub default_page: u32,
    pub max_body_bytes: usize,
    pub max_range_records: usize,
    pub body_read_timeout: std::time::Duration,
    pub stats: Arc<Counters>,
    pub metrics: Arc<Metrics>,
    pub metrics_token: Option<String>,
    /// [`PAGE_BUILDERS`] permits: pages being built.
    pub pages: tokio::sync::Semaphore,
    /// The id of the next request, for its trace span.
    pub next_request: AtomicU64,
    /// Collections that come from declared sources: read-only to pushes and the admin API.
    pub read_only: BTreeMap<String, String>,
    /// The declared sources' state (`None`: none declared).
    pub sources: Option<Arc<SourceStatus>>,
    /// `(collection, path)` of each declared filter index: the filters subscriptions may use.
    pub filters: std::collections::BTreeSet<(String, String)>,
}

impl AppState {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        hub: Arc<crate::live::ChangeHub>,
        config: &crate::Config,
        sources: Option<Arc<SourceStatus>>,
    ) -> Self {
        let stats = Arc::new(Counters::default());
        let metrics = Arc::new(Metrics::new(
            storage.clone(),
            hub.clone(),
            stats.clone(),
            sources.clone(),
        ));
        let read_only = config
            .sources
            .iter()
            .flat_map(|s| &s.sources)
            .map(|s| (s.collection.clone(), s.relation()))
            .collect();
        AppState {
            storage,
            tokens: config.tokens.clone(),
            jwt: config.jwt.clone(),
            hub,
            max_page: config.max_page.max(1),
            default_page: config.default_page.clamp(1, config.max_page.max(1)),
            max_body_bytes: config.max_body_bytes,
            max_range_records: config.max_range_records,
            body_read_timeout: config.body_read_timeout,
            stats,
            metrics,
            metrics_token: config.metrics_token.clone(),
            pages: tokio::sync::Semaphore::new(PAGE_BUILDERS),
            next_request: AtomicU64::new(1),
            read_only,
            sources,
            filters: config
                .filter_indexes
                .iter()
                .map(|f| (f.collection.clone(), f.path.clone()))
                .collect(),
        }
    }
}
