//! Declared sources: tables an application already has in PostgreSQL, mirrored into
//! collections that replicas sync like any other (docs/server.md, "Declared sources").
//!
//! - [`config`]: the sources file (`tether serve --sources FILE`);
//! - `catalog`: a declaration checked against the database, and the SQL that reads the table;
//! - `values`: the JSON form of each column type;
//! - `capture`: the statement triggers that queue the keys each write touched;
//! - `consumer`: the one task (per database) that moves queued changes and whole tables into
//!   `records`, where versions, hashes and digests are kept as for every other write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

pub mod config;

mod capture;
mod catalog;
mod consumer;
pub(crate) mod values;

pub use config::{Source, Sources, SourcesError};

use crate::live::ChangeHub;
use crate::storage::postgres::PgStorage;

/// Checks every declared source against the database (a missing table or column, a table
/// without a primary key, missing privileges: an error naming the line), so a bad file stops
/// the server at start.
pub(crate) async fn check(storage: &PgStorage, sources: &Sources) -> Result<(), SourcesError> {
    let (client, connection) = session_config(storage)
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| SourcesError {
            origin: sources.origin.clone(),
            line: 0,
            message: format!("cannot connect to check the sources: {e}"),
        })?;
    let conn = tokio::spawn(connection);
    let mut result = Ok(());
    for source in &sources.sources {
        if let Err(e) = catalog::resolve(&client, sources, source).await {
            result = Err(e);
            break;
        }
    }
    conn.abort();
    result
}

/// The storage's connection settings plus the session settings under which the JSON forms of
/// values are stable ([`values::SESSION_OPTIONS`]): every connection that reads source tables.
fn session_config(storage: &PgStorage) -> tokio_postgres::Config {
    let mut config = storage.config().clone();
    let options = format!(
        "{} {}",
        config.get_options().unwrap_or_default(),
        values::SESSION_OPTIONS
    );
    config.options(options.trim());
    config
}

/// Starts the consumer task: every instance runs one, and the one holding the database's
/// consumer lock does the work.
pub(crate) fn start(
    storage: PgStorage,
    sources: Arc<Sources>,
    status: Arc<SourceStatus>,
    hub: Arc<ChangeHub>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(consumer::run(storage, sources, status, hub))
}

/// Where a source is, as this instance last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Not yet looked at by this instance (it is not the consumer, or has just started).
    Waiting,
    /// Captured changes flow; a pass may be running (see [`SourceReport::sent`]).
    Live,
    /// The table cannot be read (dropped, renamed, a privilege revoked): why. Its records stay
    /// as they were; the consumer retries every second.
    Broken(String),
}

/// One source's state and counters, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// The collection.
    pub collection: String,
    /// `schema.table`.
    pub table: String,
    /// Its state.
    pub state: SourceState,
    /// Rows sent by passes (backfill, re-sends) since this instance started.
    pub sent: u64,
    /// A pass is running (rows are being sent or swept).
    pub passing: bool,
    /// Queued changes handled since this instance started.
    pub changes: u64,
    /// Rows that could not be records (over a limit, a key or scope the protocol refuses,
    /// unreadable JSON) since this instance started.
    pub refused: u64,
}

/// The sources' state shared by the consumer, `/readyz` and `/metrics`.
#[derive(Debug)]
pub struct SourceStatus {
    reports: Mutex<BTreeMap<String, SourceReport>>,
    consumer: AtomicBool,
    backlog: AtomicI64,
}

impl SourceStatus {
    /// The status of the declared `sources`, all waiting.
    pub fn new(sources: &Sources) -> Self {
        let reports = sources
            .sources
            .iter()
            .map(|s| {
                let report = SourceReport {
                    collection: s.collection.clone(),
                    table: s.relation(),
                    state: SourceState::Waiting,
                    sent: 0,
                    passing: false,
                    changes: 0,
                    refused: 0,
                };
                (s.collection.clone(), report)
            })
            .collect();
        SourceStatus {
            reports: Mutex::new(reports),
            consumer: AtomicBool::new(false),
            backlog: AtomicI64::new(0),
        }
    }

    /// Every source's report, by collection.
    pub fn reports(&self) -> Vec<SourceReport> {
        self.lock().values().cloned().collect()
    }

    /// Whether this instance is the consumer.
    pub fn is_consumer(&self) -> bool {
        self.consumer.load(Ordering::Relaxed)
    }

    /// Queued changes not yet handled, as last counted by the consumer.
    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SourceReport>> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, collection: &str, f: impl FnOnce(&mut SourceReport)) {
        if let Some(r) = self.lock().get_mut(collection) {
            f(r);
        }
    }

    fn set(&self, collection: &str, state: SourceState) {
        self.update(collection, |r| r.state = state);
    }

    fn set_consumer(&self, on: bool) {
        self.consumer.store(on, Ordering::Relaxed);
    }

    fn set_backlog(&self, n: i64) {
        self.backlog.store(n, Ordering::Relaxed);
    }

    fn count_changes(&self, collection: &str, n: u64) {
        self.update(collection, |r| r.changes += n);
    }

    fn count_sent(&self, collection: &str, n: u64) {
        self.update(collection, |r| {
            r.sent += n;
            r.passing = true;
        });
    }

    fn count_refused(&self, collection: &str) {
        self.update(collection, |r| r.refused += 1);
    }

    fn pass_done(&self, collection: &str) {
        self.set_passing(collection, false);
    }

    fn set_passing(&self, collection: &str, on: bool) {
        self.update(collection, |r| r.passing = on);
    }
}
