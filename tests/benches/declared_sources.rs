//! Declared PostgreSQL sources, the three figures of docs/server.md ("Declared sources",
//! "Measured"), in one run against the PostgreSQL of `TETHER_TEST_PG`:
//!
//! 1. the cost to the application's writes: single-row INSERTs/s and UPDATEs/s (each its own
//!    transaction) by 1 and by 4 writers into a table shaped like the seeds' `metadata.objects`,
//!    plain and declared as a source (capture triggers installed, the consumer consuming), in
//!    alternating phases of the same run on tables of the same size; then once more with the
//!    server stopped, which leaves the triggers' share alone, and the consumer's rate as it
//!    drains what they queued;
//! 2. the delay from the application's COMMIT to a live native replica having applied the row
//!    (its change event), at a steady rate;
//! 3. the backfill of a `TETHER_BENCH_SOURCE_ROWS`-row table declared at start: rows/s, the
//!    server's resident memory (sampled every 200 ms), and the application's update rate
//!    before, during and after it.
//!
//! The server runs in a child process (this binary, re-executed with `TETHER_BENCH_SERVE`) so
//! that its memory can be read from `/proc/<pid>/status`. Every table and Tether schema is
//! created fresh for the run and dropped after it. Sizes come from the environment:
//! `TETHER_BENCH_SOURCE_ROWS` (backfill rows, 1,000,000), `TETHER_BENCH_SOURCE_BASE` (rows of
//! the tables written to in 1 and 2, 100,000), `TETHER_BENCH_SOURCE_SECONDS` (one write phase,
//! 2.5), `TETHER_BENCH_SOURCE_ROUNDS` (alternations, 6), `TETHER_BENCH_SOURCE_WRITES` (commits
//! timed in 2, 200), `TETHER_BENCH_SOURCE_RATE` (their rate per second, 20) and
//! `TETHER_BENCH_SOURCE_LOAD_SECONDS` (each writer run of 3, 10).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_engine::{CancelFlag, SyncOptions, Trigger};
use tether_native::http::HttpRemote;
use tether_native::Replica;
use tokio_postgres::Client;

#[path = "declared_sources/support.rs"]
mod support;

use support::{
    checkpoint, connect, create_table, drain_queue, fill, ids_of, load_average, org, rss_kib,
    serve_child, server_version, wait_pass_done, wal, write_sources, ServerChild, COLLECTION, ORGS,
    TOKEN,
};

struct Sizes {
    rows: u64,
    base: u64,
    phase: Duration,
    rounds: usize,
    writes: usize,
    rate: f64,
    load: Duration,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(schema) = std::env::var("TETHER_BENCH_SERVE") {
        serve_child(&schema);
        return;
    }
    let Ok(url) = std::env::var("TETHER_TEST_PG") else {
        eprintln!("TETHER_TEST_PG not set: declared sources not measured");
        return;
    };
    let sizes = Sizes {
        rows: env("TETHER_BENCH_SOURCE_ROWS", 1_000_000),
        base: env("TETHER_BENCH_SOURCE_BASE", 100_000),
        phase: Duration::from_secs_f64(env("TETHER_BENCH_SOURCE_SECONDS", 2.5)),
        rounds: env("TETHER_BENCH_SOURCE_ROUNDS", 6),
        writes: env("TETHER_BENCH_SOURCE_WRITES", 200),
        rate: env("TETHER_BENCH_SOURCE_RATE", 20.0),
        load: Duration::from_secs_f64(env("TETHER_BENCH_SOURCE_LOAD_SECONDS", 10.0)),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = format!("bench_app_{}", std::process::id());
    let tether = [1, 2].map(|n| format!("bench_tether{n}_{}", std::process::id()));
    let db = rt.block_on(connect(&url));
    rt.block_on(async {
        db.batch_execute(&format!("CREATE SCHEMA {app}"))
            .await
            .expect("schema")
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        writes_and_delay(&rt, &db, &url, &app, &tether[0], dir.path(), &sizes);
        backfill(&rt, &db, &url, &app, &tether[1], dir.path(), &sizes);
    }));
    rt.block_on(async {
        for schema in tether.iter().chain([&app]) {
            let _ = db
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
        }
    });
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Measurements 1 and 2, on one server whose source is `{app}.objects_src`.
fn writes_and_delay(
    rt: &tokio::runtime::Runtime,
    db: &Client,
    url: &str,
    app: &str,
    tether: &str,
    dir: &std::path::Path,
    sizes: &Sizes,
) {
    let (plain, source) = (format!("{app}.objects_plain"), format!("{app}.objects_src"));
    rt.block_on(async {
        for table in [&plain, &source] {
            create_table(db, table).await;
            fill(db, table, sizes.base).await;
        }
    });
    let sources = write_sources(dir, "writes.toml", &source);
    let mut server = ServerChild::spawn(url, tether, &sources);
    let ready = wait_pass_done(rt, db, tether, Duration::from_secs(600));
    println!(
        "declared sources, PostgreSQL {}, {} cores, load average at start {}",
        rt.block_on(server_version(db)),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!(
        "tables of {} rows in {ORGS} organizations; the source's backfill took {:.1} s",
        sizes.base,
        ready.as_secs_f64()
    );
    let ids = rt.block_on(async {
        HashMap::from([
            (plain.clone(), ids_of(db, &plain).await),
            (source.clone(), ids_of(db, &source).await),
        ])
    });
    println!();
    println!(
        "1. single-row writes/s, each its own transaction ({} rounds of {:.1} s phases)",
        sizes.rounds,
        sizes.phase.as_secs_f64()
    );
    println!(
        "{:<8} {:<7} {:>7} {:>11} {:>11} {:>7} {:>11}",
        "op", "commit", "writers", "plain", "source", "ratio", "drain s"
    );
    for commit in [Commit::Sync, Commit::Async] {
        for writers in [1, 4] {
            for op in [Op::Insert, Op::Update] {
                let (p, s, drain) =
                    alternate(rt, db, url, tether, sizes, &ids, (op, commit), writers);
                println!(
                    "{:<8} {:<7} {:>7} {:>11.0} {:>11.0} {:>7.2} {:>11.2}",
                    op.name(),
                    commit.name(),
                    writers,
                    p,
                    s,
                    p / s,
                    drain
                );
            }
        }
    }
    println!();
    let delays = commit_to_replica(rt, db, &server, &source, sizes);
    let (p50, p99, max) = percentiles(delays);
    println!(
        "2. COMMIT -> applied by a live native replica, {} single-row writes at {}/s: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sizes.writes, sizes.rate, p50, p99, max
    );
    server.stop();
    // The triggers stay on the table: what they cost alone, without the consumer's work.
    println!();
    println!("1b. the same with the server stopped (triggers only, the queue grows), commit off");
    println!(
        "{:<8} {:>7} {:>11} {:>11} {:>7}",
        "op", "writers", "plain", "source", "ratio"
    );
    for writers in [1, 4] {
        for op in [Op::Insert, Op::Update] {
            let (p, s, _) = alternate(rt, db, url, "", sizes, &ids, (op, Commit::Async), writers);
            println!(
                "{:<8} {:>7} {:>11.0} {:>11.0} {:>7.2}",
                op.name(),
                writers,
                p,
                s,
                p / s
            );
        }
    }
    // What the triggers queued meanwhile: the consumer's own rate, with no writer beside it.
    let queued: i64 = rt.block_on(async {
        db.query_one(
            &format!("SELECT count(*) FROM {tether}.source_changes"),
            &[],
        )
        .await
        .expect("queue")
        .get(0)
    });
    let _server = ServerChild::spawn(url, tether, &sources);
    let drained = rt.block_on(drain_queue(db, tether)).as_secs_f64();
    println!(
        "1c. the server started again drains those {queued} queued changes in {drained:.1} s \
         ({:.0} changes/s)",
        queued as f64 / drained
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Insert,
    Update,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
        }
    }
}

/// Rounds of a plain phase and a source phase (in alternating order, so drift cancels), each
/// after the consumer's queue is empty (`tether` empty: no consumer, no wait). Returns the
/// plain and source rates (writes/s over all rounds) and the longest drain after a phase.
#[allow(clippy::too_many_arguments)]
fn alternate(
    rt: &tokio::runtime::Runtime,
    db: &Client,
    url: &str,
    tether: &str,
    sizes: &Sizes,
    ids: &HashMap<String, Vec<String>>,
    op: (Op, Commit),
    writers: usize,
) -> (f64, f64, f64) {
    let mut tables: Vec<&String> = ids.keys().collect();
    tables.sort(); // objects_plain, objects_src
    let (mut done, mut secs) = ([0u64; 2], [0f64; 2]);
    let mut drain = 0f64;
    for round in 0..sizes.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let table = tables[i];
            let (n, s) = rt.block_on(write_for(url, table, &ids[table], op, writers, sizes.phase));
            done[i] += n;
            secs[i] += s;
            if !tether.is_empty() {
                drain = drain.max(rt.block_on(drain_queue(db, tether)).as_secs_f64());
            }
        }
    }
    (done[0] as f64 / secs[0], done[1] as f64 / secs[1], drain)
}

/// How the application's transactions commit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// `synchronous_commit = on` (the default): each commit waits for its WAL flush, so the
    /// disk's flush latency, shared with everything else on the machine, is in every write.
    Sync,
    /// `synchronous_commit = off`: no flush wait; what is left is CPU, where the triggers'
    /// and the consumer's costs show undiluted.
    Async,
}

impl Commit {
    fn name(self) -> &'static str {
        match self {
            Commit::Sync => "on",
            Commit::Async => "off",
        }
    }
}

/// `writers` connections each writing single rows into `table` for `phase`: writes and seconds.
async fn write_for(
    url: &str,
    table: &str,
    ids: &[String],
    (op, commit): (Op, Commit),
    writers: usize,
    phase: Duration,
) -> (u64, f64) {
    let mut clients = Vec::new();
    for _ in 0..writers {
        let client = connect(url).await;
        if commit == Commit::Async {
            client
                .batch_execute("SET synchronous_commit = off")
                .await
                .expect("synchronous_commit");
        }
        clients.push(client);
    }
    let start = Instant::now();
    let deadline = start + phase;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            let (table, ids) = (table.to_string(), ids.to_vec());
            tokio::spawn(async move {
                let mut writer = Writer::new(&client, &table, w as u64).await;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    match op {
                        Op::Insert => {
                            writer.insert(&client).await;
                        }
                        Op::Update => {
                            let id = &ids[writer.next() as usize % ids.len()];
                            writer.update(&client, id).await;
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    (total, start.elapsed().as_secs_f64())
}

/// One application connection's prepared single-row statements.
struct Writer {
    insert: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    state: u64,
    count: u64,
}

impl Writer {
    async fn new(client: &Client, table: &str, seed: u64) -> Writer {
        let insert = client
            .prepare(&format!(
                "INSERT INTO {table} (id, organization_id, name, created_at, tags, props,
                   row_count, internal_notes)
                 VALUES (gen_random_uuid(), $1::text::uuid, $2, now(), ARRAY['bench', $2],
                   $3::text::jsonb, $4::text::numeric, 'not for replicas')
                 RETURNING id::text"
            ))
            .await
            .expect("prepare insert");
        let update = client
            .prepare(&format!(
                "UPDATE {table} SET name = $2, props = $3::text::jsonb,
                   row_count = row_count + 1 WHERE id = $1::text::uuid"
            ))
            .await
            .expect("prepare update");
        Writer {
            insert,
            update,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            count: 0,
        }
    }

    /// xorshift64: the rows an updater picks, spread over the table.
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Inserts a row into the next organization; its id.
    async fn insert(&mut self, client: &Client) -> String {
        self.insert_in(client, &org((self.count + 1) % ORGS)).await
    }

    async fn insert_in(&mut self, client: &Client, org: &str) -> String {
        self.count += 1;
        let n = self.count;
        let props = format!(r#"{{"n": {n}, "kind": "table", "columns": {}}}"#, n % 50);
        client
            .query_one(
                &self.insert,
                &[
                    &org,
                    &format!("object {n}"),
                    &props,
                    &(n * 1000).to_string(),
                ],
            )
            .await
            .expect("insert")
            .get(0)
    }

    async fn update(&mut self, client: &Client, id: &str) {
        self.count += 1;
        let n = self.count;
        let props = format!(r#"{{"n": {n}, "kind": "view", "columns": {}}}"#, n % 50);
        let changed = client
            .execute(&self.update, &[&id, &format!("renamed {n}"), &props])
            .await
            .expect("update");
        assert_eq!(changed, 1, "update of {id}");
    }
}

/// Measurement 2: one organization's live replica; the application commits inserts and
/// updates (alternately, each row touched once) at `sizes.rate`; for each, the time from
/// COMMIT returning to the replica's change event for its key.
fn commit_to_replica(
    rt: &tokio::runtime::Runtime,
    db: &Client,
    server: &ServerChild,
    table: &str,
    sizes: &Sizes,
) -> Vec<Duration> {
    let scope = org(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let replica = Replica::open(dir.path().join("replica.db")).expect("replica");
    let remote = HttpRemote::new(&server.url, TOKEN);
    let caught_up = replica
        .scope(&scope)
        .expect("scope")
        .sync(&remote, SyncOptions::default())
        .expect("initial sync");
    let rows: i64 = rt.block_on(async {
        db.query_one(
            &format!("SELECT count(*) FROM {table} WHERE organization_id = $1::text::uuid"),
            &[&scope],
        )
        .await
        .expect("count")
        .get(0)
    });
    assert_eq!(caught_up.snapshot.count, rows as u64, "initial sync");
    let updatable: Vec<String> = rt.block_on(async {
        db.query(
            &format!(
                "SELECT id::text FROM {table} WHERE organization_id = $1::text::uuid LIMIT $2"
            ),
            &[&scope, &(sizes.writes as i64)],
        )
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
    });
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sink = seen.clone();
    let _subscription = replica.events().subscribe(move |e| {
        let now = Instant::now();
        let mut seen = sink.lock().unwrap();
        for c in &e.changes {
            seen.entry(c.id.clone()).or_insert(now);
        }
    });
    let stop = CancelFlag::new();
    let client = rt.block_on(connect(&server.pg_url));
    let mut writer = rt.block_on(Writer::new(&client, table, 99));
    std::thread::scope(|s| {
        let live = s.spawn(|| {
            replica.scope(&scope).unwrap().sync(
                &remote,
                SyncOptions {
                    trigger: Trigger::Live,
                    live_wait_s: 20,
                    cancel: Some(&stop),
                    ..SyncOptions::default()
                },
            )
        });
        // Let the live session reach its first wait.
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        let mut committed = Vec::with_capacity(sizes.writes);
        for i in 0..sizes.writes {
            let due = start + Duration::from_secs_f64(i as f64 / sizes.rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let id = if i % 2 == 0 {
                rt.block_on(writer.insert_in(&client, &scope))
            } else {
                let id = updatable[i / 2 % updatable.len()].clone();
                rt.block_on(writer.update(&client, &id));
                id
            };
            committed.push((id, Instant::now()));
        }
        let waited = Instant::now();
        let delays = loop {
            let seen = seen.lock().unwrap();
            let delays: Option<Vec<Duration>> = committed
                .iter()
                .map(|(id, at)| seen.get(id).map(|t| t.saturating_duration_since(*at)))
                .collect();
            if let Some(d) = delays {
                break d;
            }
            drop(seen);
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "writes not applied by the replica within 60 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        stop.cancel();
        // The live wait ends within its 20 s; one more write ends it at once.
        rt.block_on(writer.insert_in(&client, &scope));
        live.join().unwrap().expect("live session");
        delays
    })
}

/// Measurement 3: a table of `sizes.rows` rows declared as the server starts.
fn backfill(
    rt: &tokio::runtime::Runtime,
    db: &Client,
    url: &str,
    app: &str,
    tether: &str,
    dir: &std::path::Path,
    sizes: &Sizes,
) {
    let table = format!("{app}.objects_big");
    let generated = Instant::now();
    rt.block_on(async {
        create_table(db, &table).await;
        fill(db, &table, sizes.rows).await;
        db.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .expect("vacuum");
    });
    let ids = rt.block_on(ids_of(db, &table));
    rt.block_on(checkpoint(db));
    let wal0 = rt.block_on(wal(db));
    println!();
    println!(
        "3. backfill of {} rows ({ORGS} organizations; generated in {:.1} s), load average {}",
        sizes.rows,
        generated.elapsed().as_secs_f64(),
        load_average()
    );
    let before = rt.block_on(write_for(
        url,
        &table,
        &ids,
        (Op::Update, Commit::Sync),
        1,
        sizes.load,
    ));
    let wal1 = rt.block_on(wal(db));
    rt.block_on(checkpoint(db));
    let wal2 = rt.block_on(wal(db));
    let sources = write_sources(dir, "backfill.toml", &table);
    let spawned = Instant::now();
    let mut server = ServerChild::spawn(url, tether, &sources);
    let started = spawned.elapsed();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pid, sampling) = (server.pid(), sampling.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                samples.push((Instant::now(), rss_kib(pid)));
                std::thread::sleep(Duration::from_millis(200));
            }
            samples
        })
    };
    let during = rt.spawn({
        let (url, table, ids, load) = (url.to_string(), table.clone(), ids.clone(), sizes.load);
        async move { write_for(&url, &table, &ids, (Op::Update, Commit::Sync), 1, load).await }
    });
    let mut swept_at = None;
    let done_at = loop {
        let row = rt
            .block_on(db.query_opt(
                &format!("SELECT pass FROM {tether}.sources WHERE collection = $1"),
                &[&COLLECTION],
            ))
            .ok()
            .flatten();
        match row.map(|r| r.get::<_, Option<String>>(0)) {
            Some(None) => break Instant::now(),
            Some(Some(p)) if p == "sweep" && swept_at.is_none() => swept_at = Some(Instant::now()),
            _ => {}
        }
        assert!(spawned.elapsed() < Duration::from_secs(3600), "backfill");
        std::thread::sleep(Duration::from_millis(50));
    };
    let during = rt.block_on(during).expect("writer");
    let wal3 = rt.block_on(wal(db));
    rt.block_on(checkpoint(db));
    let wal4 = rt.block_on(wal(db));
    let after = rt.block_on(write_for(
        url,
        &table,
        &ids,
        (Op::Update, Commit::Sync),
        1,
        sizes.load,
    ));
    let wal5 = rt.block_on(wal(db));
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    server.stop();
    let secs = done_at.duration_since(spawned).as_secs_f64();
    let send = swept_at.map_or(secs, |t| t.duration_since(spawned).as_secs_f64());
    println!(
        "   server up in {:.2} s; rows sent by {:.1} s ({:.0} rows/s), sweep done at {:.1} s \
         ({:.0} rows/s overall, from the server's start)",
        started.as_secs_f64(),
        send,
        sizes.rows as f64 / send,
        secs,
        sizes.rows as f64 / secs
    );
    let during_backfill: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t <= done_at)
        .map(|(_, k)| *k)
        .collect();
    println!(
        "   server RSS (every 200 ms): start {} MiB, peak {} MiB, end of backfill {} MiB, \
         after the last writer {} MiB ({} samples)",
        mib(during_backfill.first()),
        mib(during_backfill.iter().max()),
        mib(during_backfill.last()),
        mib(samples.last().map(|(_, k)| k)),
        samples.len()
    );
    let rate = |(n, s): (u64, f64)| n as f64 / s;
    println!(
        "   1 writer's single-row updates/s: before the source {:.0}, during the backfill {:.0} \
         ({:.0}% of the writer's {:.0} s overlapped it), after {:.0}",
        rate(before),
        rate(during),
        (secs.min(sizes.load.as_secs_f64()) / sizes.load.as_secs_f64() * 100.0).min(100.0),
        sizes.load.as_secs_f64(),
        rate(after)
    );
    let span = |a: (i64, i64), b: (i64, i64)| {
        format!(
            "{:.0} MB of WAL, {} checkpoints",
            (b.0 - a.0) as f64 / 1e6,
            b.1 - a.1
        )
    };
    println!(
        "   (each run after a CHECKPOINT) before: {}; backfill: {}; after: {}",
        span(wal0, wal1),
        span(wal2, wal3),
        span(wal4, wal5)
    );
}

fn mib(kib: Option<&u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0}", *k as f64 / 1024.0))
}

fn percentiles(mut delays: Vec<Duration>) -> (f64, f64, f64) {
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*delays.last().expect("delays")),
    )
}
