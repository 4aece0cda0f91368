//! What operators watch: the metrics registry behind `GET /metrics` (the endpoints themselves,
//! with the health probes, are in `probes`).
//!
//! Labels are bounded: a route is its template (`/v1/scopes/{scope}/changes`), never the raw
//! path, so no scope name ever becomes a label (scopes are unbounded, and naming them would
//! tell a scraper which exist). Encoded by `prometheus-client`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tether_engine::MutationResult;

use crate::live::ChangeHub;
use crate::sources::{SourceReport, SourceState, SourceStatus};
use crate::storage::Storage;

/// Counters the tests and the benchmark read.
#[derive(Default)]
pub(crate) struct Counters {
    pub pulls: AtomicU64,
    pub changes_sent: AtomicU64,
}

/// The server's metrics, registered once and updated where things happen.
pub(crate) struct Metrics {
    pub registry: Registry,
    /// Requests answered, by route template, method and status code.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to answer, by route template (a live pull's wait included).
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Mutations of pushes, by the result each got.
    pub mutations: Family<ResultLabels, Counter>,
    /// Bytes of answer bodies written to sockets (after gzip; headers not counted).
    pub bytes_sent: Counter,
    /// Connections accepted since the start.
    pub connections_accepted: Counter,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections closed by the server, by why (`idle`, `shed`, `refused`).
    pub connections_closed: Family<ReasonLabels, Counter>,
    /// `accept` failures (out of file descriptors, ...).
    pub accept_errors: Counter,
}

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The route template, or `unmatched`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The status code.
    pub status: u16,
}

/// Labels of a latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    /// The route template.
    pub route: String,
}

/// Labels of a mutation's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    /// `accepted`, `rejected` or `invalid`.
    pub result: &'static str,
}

/// Why the server closed a connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    /// `idle`, `shed` or `refused`.
    pub reason: &'static str,
}

impl Metrics {
    /// The metrics; live waiters, the storage pool and the pull counters are read from
    /// `hub`, `storage` and `stats` at scrape time.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        hub: Arc<ChangeHub>,
        stats: Arc<Counters>,
        sources: Option<Arc<SourceStatus>>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("tether");
        registry.register_collector(Box::new(Sampled {
            storage,
            hub,
            stats,
            sources,
        }));
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            // 1 ms to 65 s: a live pull may wait 60 s.
            || Histogram::new(exponential_buckets(0.001, 2.0, 17)),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route template (live pulls include their wait)",
            latency.clone(),
        );
        let mutations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "push_mutations",
            "Pushed mutations, by result (accepted, rejected, invalid)",
            mutations.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "http_response_body_bytes",
            "Bytes of answer bodies sent (after gzip)",
            bytes_sent.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Connections accepted",
            connections_accepted.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Connections open (long polls included)",
            connections_open.clone(),
        );
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections the server closed: idle (timeout), shed (idle, to make room at the \
             cap), refused (no room at the cap)",
            connections_closed.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accepts (e.g. out of file descriptors)",
            accept_errors.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            mutations,
            bytes_sent,
            connections_accepted,
            connections_open,
            connections_closed,
            accept_errors,
        }
    }

    /// Counts an answered request and its time.
    pub(crate) fn observe(
        &self,
        route: String,
        method: String,
        status: StatusCode,
        took: Duration,
    ) {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Counts the results of a push.
    pub(crate) fn count_results(&self, results: &[MutationResult]) {
        for r in results {
            let result = match r {
                MutationResult::Accepted { .. } => "accepted",
                MutationResult::Rejected { .. } => "rejected",
                _ => "invalid",
            };
            self.mutations.get_or_create(&ResultLabels { result }).inc();
        }
    }
}

/// Values the server keeps elsewhere, read on each scrape.
struct Sampled {
    storage: Arc<dyn Storage>,
    hub: Arc<ChangeHub>,
    stats: Arc<Counters>,
    sources: Option<Arc<SourceStatus>>,
}

impl std::fmt::Debug for Sampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sampled")
    }
}

impl Collector for Sampled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = self;
        let counter = |encoder: &mut DescriptorEncoder, name, help, n: u64| {
            let c = ConstCounter::new(n);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
        };
        let gauge = |encoder: &mut DescriptorEncoder, name, help, n: u64| {
            let g = ConstGauge::new(n as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        counter(
            &mut encoder,
            "pull_pages",
            "Pull answers (pages and resets)",
            st.stats.pulls.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "pull_changes",
            "Changes sent in pull pages",
            st.stats.changes_sent.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "live_waiters",
            "Live pulls waiting for a change",
            st.hub.waiters(),
        )?;
        counter(
            &mut encoder,
            "live_wakeups",
            "Times a waiting live pull was woken and pulled again",
            st.hub.wakeups(),
        )?;
        let pool = st.storage.pool_use();
        gauge(
            &mut encoder,
            "storage_pool_max",
            "Connections the storage pool may hold",
            pool.max,
        )?;
        gauge(
            &mut encoder,
            "storage_pool_busy",
            "Storage connections in use",
            pool.busy,
        )?;
        gauge(
            &mut encoder,
            "storage_pool_waiting",
            "Requests waiting for a storage connection",
            pool.waiting,
        )?;
        if let Some(sources) = &st.sources {
            encode_sources(&mut encoder, sources)?;
        }
        Ok(())
    }
}

/// The declared sources' metrics: one series per collection (collections are few and named
/// by the operator's sources file, so they are bounded labels).
fn encode_sources(
    encoder: &mut DescriptorEncoder,
    sources: &SourceStatus,
) -> Result<(), std::fmt::Error> {
    let reports = sources.reports();
    let per_source = |encoder: &mut DescriptorEncoder,
                      name: &str,
                      help: &str,
                      counter: bool,
                      value: &dyn Fn(&SourceReport) -> u64|
     -> Result<(), std::fmt::Error> {
        let kind = if counter {
            prometheus_client::metrics::MetricType::Counter
        } else {
            prometheus_client::metrics::MetricType::Gauge
        };
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for r in &reports {
            let labels = [("collection", r.collection.as_str())];
            let m = family.encode_family(&labels)?;
            if counter {
                ConstCounter::new(value(r)).encode(m)?;
            } else {
                ConstGauge::new(value(r) as i64).encode(m)?;
            }
        }
        Ok(())
    };
    per_source(
        encoder,
        "source_up",
        "1 while the source's table can be read (0: dropped, renamed, a privilege gone)",
        false,
        &|r| u64::from(!matches!(r.state, SourceState::Broken(_))),
    )?;
    per_source(
        encoder,
        "source_pass_running",
        "1 while the source's rows are being sent (backfill, after a schema change or TRUNCATE)",
        false,
        &|r| u64::from(r.passing),
    )?;
    per_source(
        encoder,
        "source_rows_sent",
        "Rows sent by passes over the source's table (backfill progress)",
        true,
        &|r| r.sent,
    )?;
    per_source(
        encoder,
        "source_changes",
        "Captured changes of the source handled",
        true,
        &|r| r.changes,
    )?;
    per_source(
        encoder,
        "source_rows_refused",
        "Source rows that cannot be records (over a limit, a refused key or scope)",
        true,
        &|r| r.refused,
    )?;
    let g = ConstGauge::new(i64::from(sources.is_consumer()));
    g.encode(encoder.encode_descriptor(
        "source_consumer",
        "1 when this instance is the one consuming the sources' changes",
        None,
        g.metric_type(),
    )?)?;
    let g = ConstGauge::new(sources.backlog());
    g.encode(encoder.encode_descriptor(
        "source_backlog",
        "Captured changes waiting for the consumer (as it last counted them)",
        None,
        g.metric_type(),
    )?)?;
    Ok(())
}
