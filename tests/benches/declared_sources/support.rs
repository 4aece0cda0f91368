//! The declared sources benchmark's PostgreSQL helpers and its server child process.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tether_server::sources::Sources;
use tether_server::{Config, StorageConfig, Tokens};
use tokio_postgres::{Client, NoTls};

pub(crate) const TOKEN: &str = "bench-token";
/// Organizations the rows are spread over (each is a scope).
pub(crate) const ORGS: u64 = 10;
/// The collection the source table becomes.
pub(crate) const COLLECTION: &str = "objects";

/// Bytes of WAL written so far and checkpoints done so far.
pub(crate) async fn wal(db: &Client) -> (i64, i64) {
    let row = db
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8,
                    (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)",
            &[],
        )
        .await
        .expect("wal position");
    (row.get(0), row.get(1))
}

/// Starts a writer phase from clean buffers, so that phases pay the same full-page writes
/// (needs a superuser or `pg_checkpoint`; without it, phases start where they are).
pub(crate) async fn checkpoint(db: &Client) {
    if let Err(e) = db.batch_execute("CHECKPOINT").await {
        eprintln!("CHECKPOINT refused ({e}): writer phases are not aligned on checkpoints");
    }
}

/// The table of the seeds' `metadata.objects`, without its foreign keys.
pub(crate) async fn create_table(db: &Client, table: &str) {
    db.batch_execute(&format!(
        "CREATE TABLE {table} (
             id uuid PRIMARY KEY,
             organization_id uuid NOT NULL,
             name text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(),
             tags text[] NOT NULL DEFAULT '{{}}',
             props jsonb NOT NULL DEFAULT '{{}}',
             row_count numeric,
             internal_notes text);
         CREATE INDEX ON {table} (organization_id)"
    ))
    .await
    .expect("create table");
}

/// `rows` rows spread over the organizations, in one statement.
pub(crate) async fn fill(db: &Client, table: &str, rows: u64) {
    db.execute(
        &format!(
            "INSERT INTO {table}
             SELECT gen_random_uuid(),
                    ('00000000-0000-4000-8000-' || lpad(to_hex(g % {ORGS}), 12, '0'))::uuid,
                    'object ' || g, now() - g * interval '1 second',
                    ARRAY['t' || (g % 7), 'bench'],
                    jsonb_build_object('n', g, 'kind', 'table', 'columns', g % 50),
                    (g * 1000)::numeric, 'secret ' || g
             FROM generate_series(1, $1::bigint) g"
        ),
        &[&(rows as i64)],
    )
    .await
    .expect("fill");
}

/// The uuid of organization `n`, as `fill` writes it.
pub(crate) fn org(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub(crate) async fn ids_of(db: &Client, table: &str) -> Vec<String> {
    db.query(&format!("SELECT id::text FROM {table}"), &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

pub(crate) fn write_sources(dir: &Path, name: &str, table: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[[source]]\ntable = \"{table}\"\ncollection = \"{COLLECTION}\"\n\
             scope = \"organization_id\"\nexclude = [\"internal_notes\"]\n"
        ),
    )
    .expect("sources file");
    path
}

/// Waits until the source's pass is over (it has a row in `sources` and no pass): how long.
pub(crate) fn wait_pass_done(
    rt: &tokio::runtime::Runtime,
    db: &Client,
    tether: &str,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let pass = rt
            .block_on(db.query_opt(
                &format!("SELECT pass FROM {tether}.sources WHERE collection = $1"),
                &[&COLLECTION],
            ))
            .ok()
            .flatten()
            .map(|r| r.get::<_, Option<String>>(0));
        if pass == Some(None) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "the source's pass did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the consumer has taken every queued change: how long.
pub(crate) async fn drain_queue(db: &Client, tether: &str) -> Duration {
    let start = Instant::now();
    loop {
        let queued: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {tether}.source_changes"),
                &[],
            )
            .await
            .expect("queue")
            .get(0);
        if queued == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "queue not drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to TETHER_TEST_PG");
    tokio::spawn(connection);
    client
}

pub(crate) async fn server_version(db: &Client) -> String {
    db.query_one("SHOW server_version", &[])
        .await
        .map_or("?".into(), |r| r.get(0))
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Resident memory of `pid` in KiB (0 once it is gone).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The server in a child process, with the declared sources of a file.
pub(crate) struct ServerChild {
    child: Child,
    pub(crate) url: String,
    pub(crate) pg_url: String,
}

impl ServerChild {
    pub(crate) fn spawn(pg_url: &str, schema: &str, sources: &Path) -> ServerChild {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .env("TETHER_BENCH_SERVE", schema)
            .env("TETHER_BENCH_SOURCES", sources)
            .env("TETHER_TEST_PG", pg_url)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server address");
        assert!(!line.trim().is_empty(), "the server did not start");
        ServerChild {
            child,
            url: format!("http://{}", line.trim()),
            pg_url: pg_url.to_string(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The child: serve with the declared sources until killed, printing the address on stdout.
pub(crate) fn serve_child(schema: &str) {
    let url = std::env::var("TETHER_TEST_PG").expect("TETHER_TEST_PG");
    let path = std::env::var("TETHER_BENCH_SOURCES").expect("TETHER_BENCH_SOURCES");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut config = Config::new(
            "127.0.0.1:0".parse().expect("addr"),
            StorageConfig::Postgres {
                url,
                schema: Some(schema.to_string()),
                pool_size: 4,
            },
            Tokens::default().grant(TOKEN, &["*"], true),
        );
        config.sources = Some(Sources::from_file(path.as_ref()).expect("sources file"));
        let server = tether_server::serve(config).await.expect("serve");
        println!("{}", server.addr());
        std::io::stdout().flush().expect("stdout");
        std::future::pending::<()>().await;
    });
}
