//! Test harness: a tether server on loopback over SQLite or PostgreSQL storage, plus admin and
//! raw HTTP helpers. Every test runs against both storages (see `both!`); a test of what only
//! PostgreSQL has runs on it alone (see `postgres_only!`).
//!
//! Shared, as a file, by the server's own tests and the cross-crate tests of the workspace's
//! `tests/` package (`#[path]`): the server cannot depend on tether-native, so everything here
//! speaks HTTP with ureq; a client replica is the other package's business.

#![allow(dead_code)]

use std::io::Write;
use std::sync::Mutex;

use serde_json::{json, Value};
use tether_dataset::Dataset;
use tether_engine::{RemoteStatus, ScopeId};
use tether_server::{Config, Server, StorageConfig, Tokens};

/// Token with admin rights on every scope.
pub(crate) const ADMIN: &str = "admin-token";
/// Token that reads every scope.
pub(crate) const READER: &str = "reader-token";
/// Token that reads scope `s1` only.
pub(crate) const S1_ONLY: &str = "s1-token";

/// Which storage the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite file in a temp dir.
    Sqlite,
    /// A fresh schema in the database of `TETHER_TEST_PG`.
    Postgres,
}

/// Runs a test body against each storage. The PostgreSQL variant needs `TETHER_TEST_PG`; see
/// [`postgres`] for what happens without it.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                if $crate::common::postgres(concat!(module_path!(), "::postgres")) {
                    super::$name($crate::common::Backend::Postgres)
                }
            }
        })*
    };
}

/// Runs a test body on PostgreSQL storage only, for what SQLite storage does not have (plain
/// SQL writes through triggers); no SQLite variant is generated, so none reports ok.
#[macro_export]
macro_rules! postgres_only {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn postgres() {
                if $crate::common::postgres(concat!(module_path!(), "::postgres")) {
                    super::$name($crate::common::Backend::Postgres)
                }
            }
        })*
    };
}

/// Whether the PostgreSQL variant `test` can run. Without `TETHER_TEST_PG` it panics when
/// PostgreSQL is required (`CI=true`/`CI=1` or `TETHER_REQUIRE_POSTGRES=1`); otherwise it says
/// on stderr, past the test harness's capture, that the test was skipped and why, and returns
/// false: the test then reports ok, but not silently.
pub(crate) fn postgres(test: &str) -> bool {
    if pg_url().is_some() {
        return true;
    }
    if postgres_required() {
        panic!(
            "{test}: TETHER_TEST_PG is not set, and PostgreSQL is required here (CI or \
             TETHER_REQUIRE_POSTGRES=1); `source scripts/ci/setup.sh && ensure_postgres` sets it"
        );
    }
    // Straight to the process's stderr: `eprintln!` would be captured and shown only for a
    // failing test, and a skip must not look like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: TETHER_TEST_PG is not set (`source scripts/ci/setup.sh && \
         ensure_postgres` sets it; CI=1 or TETHER_REQUIRE_POSTGRES=1 make this a failure)"
    );
    false
}

/// The URL of the PostgreSQL test database, from `TETHER_TEST_PG`.
pub(crate) fn pg_url() -> Option<String> {
    std::env::var("TETHER_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether a missing PostgreSQL is a failure: in CI (`CI` is `true` or `1`, as CI services
/// set it) or when asked with `TETHER_REQUIRE_POSTGRES=1`.
fn postgres_required() -> bool {
    let on =
        |var: &str| std::env::var(var).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    on("CI") || on("TETHER_REQUIRE_POSTGRES")
}

/// A server on loopback plus what it needs to be restarted on the same storage.
pub(crate) struct Harness {
    /// The runtime the server runs on; tests may run their own futures on it.
    pub rt: tokio::runtime::Runtime,
    /// The storage of the server.
    pub backend: Backend,
    server: Mutex<Option<Server>>,
    url: Mutex<String>,
    storage: StorageConfig,
    tune: fn(&mut Config),
    _dir: tempfile::TempDir,
    schema: Option<String>,
}

impl Harness {
    /// A server with default limits.
    pub(crate) fn start(backend: Backend) -> Harness {
        Self::start_with(backend, |_| {})
    }

    /// A server whose config `tune` adjusts.
    pub(crate) fn start_with(backend: Backend, tune: fn(&mut Config)) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            // Blocking-pool threads (SQLite storage runs there) end soon after their work, so
            // a test counting threads sees the steady state.
            .thread_keep_alive(std::time::Duration::from_millis(200))
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (storage, schema) = match backend {
            Backend::Sqlite => (
                StorageConfig::Sqlite {
                    path: dir.path().join("cloud.db"),
                },
                None,
            ),
            Backend::Postgres => {
                let schema = unique_schema();
                (
                    StorageConfig::Postgres {
                        url: pg_url().expect("checked by both!"),
                        schema: Some(schema.clone()),
                        pool_size: 4,
                    },
                    Some(schema),
                )
            }
        };
        let h = Harness {
            rt,
            backend,
            server: Mutex::new(None),
            url: Mutex::new(String::new()),
            storage,
            tune,
            _dir: dir,
            schema,
        };
        h.restart();
        h
    }

    /// The configuration of this harness's servers: its storage, tokens, `tune`.
    fn config(&self) -> Config {
        let mut config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            self.storage.clone(),
            tokens(),
        );
        config.tombstone_retention = None;
        (self.tune)(&mut config);
        config
    }

    /// Starts a server (again) on the same storage, on a new port.
    pub(crate) fn restart(&self) {
        let server = self
            .rt
            .block_on(tether_server::serve(self.config()))
            .unwrap();
        *self.url.lock().unwrap() = server.url();
        *self.server.lock().unwrap() = Some(server);
    }

    /// Starts the server again on the port it had (after [`Harness::stop`]), so that clients
    /// holding its URL reconnect to it.
    pub(crate) fn restart_on_same_port(&self) {
        let mut config = self.config();
        config.bind = self
            .url()
            .trim_start_matches("http://")
            .parse()
            .expect("the harness URL is http://ip:port");
        let server = self.rt.block_on(tether_server::serve(config)).unwrap();
        *self.server.lock().unwrap() = Some(server);
    }

    /// Another server instance on the same storage (several stateless instances on one
    /// PostgreSQL), on its own port; the caller shuts it down.
    pub(crate) fn another_instance(&self) -> Server {
        self.rt
            .block_on(tether_server::serve(self.config()))
            .unwrap()
    }

    /// The checkpoint after everything scope `s1` holds.
    pub(crate) fn head(&self) -> String {
        let (_, page) = self.raw(
            "GET",
            "/v1/scopes/s1/changes?limit=5000",
            Some(READER),
            None,
        );
        page["checkpoint"].as_str().unwrap().to_string()
    }

    /// Stops the server; returns its counters.
    pub(crate) fn stop(&self) -> tether_server::Stats {
        let server = self.server.lock().unwrap().take().expect("server running");
        let stats = server.stats();
        self.rt.block_on(server.shutdown());
        stats
    }

    /// The SQLite database file of this test (`None` on PostgreSQL).
    pub(crate) fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.storage {
            StorageConfig::Sqlite { path } => Some(path.clone()),
            StorageConfig::Postgres { .. } => None,
        }
    }

    /// Scrapes `GET /metrics` and returns the value of one series, written as in the text
    /// format (`tether_push_mutations_total{result="accepted"}`); 0 when it is absent (a
    /// labelled counter appears with its first increment).
    pub(crate) fn metric(&self, series: &str) -> f64 {
        let text = ureq::get(&format!("{}/metrics", self.url()))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        text.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == series)
            .map_or(0.0, |(_, v)| v.parse().unwrap())
    }

    /// The PostgreSQL schema of this test.
    pub(crate) fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Counters of the running server.
    pub(crate) fn stats(&self) -> tether_server::Stats {
        self.server.lock().unwrap().as_ref().unwrap().stats()
    }

    /// Base URL of the running server.
    pub(crate) fn url(&self) -> String {
        self.url.lock().unwrap().clone()
    }

    /// POST to the admin write endpoint.
    pub(crate) fn admin(&self, scope: &str, body: Value) -> Value {
        let resp = ureq::post(&format!("{}/v1/admin/scopes/{scope}/records", self.url()))
            .set("authorization", &format!("Bearer {ADMIN}"))
            .send_json(body)
            .unwrap_or_else(|e| panic!("admin write failed: {e:?}"));
        resp.into_json().unwrap()
    }

    /// Upserts records.
    pub(crate) fn upsert(&self, scope: &str, records: &[(&str, &str, Value)]) {
        let upserts: Vec<Value> = records
            .iter()
            .map(|(c, i, d)| json!({"collection": c, "id": i, "data": d}))
            .collect();
        self.admin(scope, json!({ "upserts": upserts }));
    }

    /// Deletes records.
    pub(crate) fn delete(&self, scope: &str, keys: &[(&str, &str)]) {
        let deletes: Vec<Value> = keys
            .iter()
            .map(|(c, i)| json!({"collection": c, "id": i}))
            .collect();
        self.admin(scope, json!({ "deletes": deletes }));
    }

    /// Loads records `range` of the generated dataset (seed 7) into `scope`.
    pub(crate) fn seed(&self, scope: &str, range: std::ops::Range<u64>) {
        let ds = Dataset::new(7, range.end);
        let mut batch = Vec::new();
        for i in range {
            let r = ds.record(i);
            batch.push(json!({"collection": r.collection, "id": r.id, "data": r.data}));
            if batch.len() == 2000 {
                self.admin(scope, json!({ "upserts": std::mem::take(&mut batch) }));
            }
        }
        if !batch.is_empty() {
            self.admin(scope, json!({ "upserts": batch }));
        }
    }

    /// Purges every tombstone of the scope.
    pub(crate) fn purge(&self, scope: &str) -> u64 {
        let resp = ureq::post(&format!("{}/v1/admin/scopes/{scope}/purge", self.url()))
            .set("authorization", &format!("Bearer {ADMIN}"))
            .send_string("")
            .unwrap();
        resp.into_json::<Value>().unwrap()["purged"]
            .as_u64()
            .unwrap()
    }

    /// The cloud's status of a scope.
    pub(crate) fn status(&self, scope: &str) -> RemoteStatus {
        ureq::get(&format!("{}/v1/scopes/{scope}/status", self.url()))
            .set("authorization", &format!("Bearer {READER}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    /// Runs plain SQL statements in this test's PostgreSQL schema, as a backend writing its
    /// own database would.
    pub(crate) fn sql(&self, statements: &str) {
        let schema = self.schema().expect("a PostgreSQL test").to_string();
        let statements = format!("SET search_path = {schema};\n{statements}");
        self.rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&pg_url().unwrap(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&statements)
                .await
                .unwrap_or_else(|e| panic!("{statements}: {e}"));
        });
    }

    /// A raw request; returns status and JSON body (`Null` when empty).
    pub(crate) fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = ureq::request(method, &format!("{}{path}", self.url()));
        if let Some(t) = token {
            req = req.set("authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => req.set("content-type", "application/json").send_string(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            self.rt.block_on(server.shutdown());
        }
        if let (Some(schema), Some(url)) = (&self.schema, pg_url()) {
            let schema = schema.clone();
            self.rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        }
    }
}

fn tokens() -> Tokens {
    Tokens::default()
        .grant(ADMIN, &["*"], true)
        .grant(READER, &["*"], false)
        .grant(S1_ONLY, &["s1"], false)
}

fn unique_schema() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The scope id.
pub(crate) fn sid(name: &str) -> ScopeId {
    ScopeId::new(name).unwrap()
}
