//! Initial sync of 100,000 records over HTTP, from the server on SQLite and on PostgreSQL
//! storage, into a tether-native SQLite replica: records/s end to end, the server's CPU time,
//! and bytes on the wire with and without gzip. Before that, the admin write rate: the records
//! written through `POST /v1/admin/scopes/{scope}/records` in batches of `ADMIN_BATCH`, once as
//! new records and once more over them (every upsert is a write, so the second pass replaces
//! each row).
//!
//! The server runs in a child process (this binary, re-executed with `TETHER_BENCH_SERVE`) so
//! that its CPU time can be read from `/proc/<pid>/stat`; a counting TCP relay between client
//! and server measures the bytes on the wire. PostgreSQL is measured when `TETHER_TEST_PG` is
//! set. The client's CPU time is this process's (the relay's copying included).
//! `TETHER_BENCH_RECORDS` overrides the record count, `TETHER_BENCH_RUNS` (default 1) repeats
//! each sync case.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_dataset::Dataset;
use tether_engine::SyncOptions;
use tether_native::http::{HttpOptions, HttpRemote};
use tether_native::Replica;
use tether_server::{Config, StorageConfig, Tokens};

const TOKEN: &str = "bench-token";

/// Records per admin request: the server's most (`MAX_WRITES`).
const ADMIN_BATCH: u64 = 10_000;

fn main() {
    if let Ok(storage) = std::env::var("TETHER_BENCH_SERVE") {
        serve_child(&storage);
        return;
    }
    let records: u64 = std::env::var("TETHER_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut storages = vec![(
        "sqlite",
        format!("sqlite:{}", dir.path().join("cloud.db").display()),
    )];
    match std::env::var("TETHER_TEST_PG") {
        Ok(url) => storages.push(("postgres", format!("pg:bench_{}:{url}", std::process::id()))),
        Err(_) => eprintln!("TETHER_TEST_PG not set: PostgreSQL storage not measured"),
    }
    let mut servers = Vec::new();
    println!("admin writes of {records} records in batches of {ADMIN_BATCH}");
    println!(
        "{:<9} {:<9} {:>9} {:>11} {:>13}",
        "storage", "pass", "seconds", "records/s", "server cpu s"
    );
    for (name, spec) in storages {
        let mut child = spawn_server(&spec);
        let (addr, pid) = read_addr(&mut child);
        for pass in ["insert", "overwrite"] {
            let cpu0 = cpu_seconds(pid);
            let secs = seed(&addr, records);
            println!(
                "{:<9} {:<9} {:>9.2} {:>11.0} {:>13.2}",
                name,
                pass,
                secs,
                records as f64 / secs,
                cpu_seconds(pid) - cpu0
            );
        }
        servers.push((name, spec, child, addr, pid));
    }
    println!("initial sync of {records} records over HTTP into a SQLite replica");
    println!(
        "{:<9} {:>5} {:<5} {:>9} {:>11} {:>13} {:>13} {:>14} {:>11}",
        "storage",
        "page",
        "gzip",
        "seconds",
        "records/s",
        "server cpu s",
        "client cpu s",
        "wire bytes",
        "bytes/rec"
    );
    // The default page size (what an application gets without asking) and the server's most.
    let pages = [SyncOptions::default().page_size, 5000];
    let runs: usize = std::env::var("TETHER_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for (name, spec, mut child, addr, pid) in servers {
        let cases = pages.into_iter().flat_map(|p| [(p, true), (p, false)]);
        for (page_size, gzip) in cases.flat_map(|c| std::iter::repeat_n(c, runs)) {
            let relay = Relay::start(&addr);
            let (cpu0, client0) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
            let replica_dir = tempfile::tempdir().expect("temp dir");
            let replica = Replica::open(replica_dir.path().join("replica.db")).expect("replica");
            let remote = HttpRemote::with_options(
                &format!("http://{}", relay.addr),
                TOKEN,
                HttpOptions {
                    gzip,
                    ..HttpOptions::default()
                },
            );
            let start = Instant::now();
            let report = replica
                .scope("bench")
                .expect("scope")
                .sync(
                    &remote,
                    SyncOptions {
                        page_size,
                        ..SyncOptions::default()
                    },
                )
                .expect("sync");
            let secs = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds(pid) - cpu0;
            let client = cpu_seconds(std::process::id()) - client0;
            assert_eq!(report.snapshot.count, records);
            let bytes = relay.bytes.load(Ordering::Relaxed);
            println!(
                "{:<9} {:>5} {:<5} {:>9.2} {:>11.0} {:>13.2} {:>13.2} {:>14} {:>11.0}",
                name,
                page_size,
                gzip,
                secs,
                records as f64 / secs,
                cpu,
                client,
                bytes,
                bytes as f64 / records as f64
            );
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(rest) = spec.strip_prefix("pg:") {
            if let Some((schema, url)) = rest.split_once(':') {
                drop_schema(url, schema);
            }
        }
    }
}

/// The child: serve until killed, printing the address on stdout.
fn serve_child(spec: &str) {
    let storage = if let Some(path) = spec.strip_prefix("sqlite:") {
        StorageConfig::Sqlite { path: path.into() }
    } else if let Some((schema, url)) = spec.strip_prefix("pg:").and_then(|r| r.split_once(':')) {
        StorageConfig::Postgres {
            url: url.to_string(),
            schema: Some(schema.to_string()),
            pool_size: 4,
        }
    } else {
        panic!("bad TETHER_BENCH_SERVE {spec:?}");
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut config = Config::new(
            "127.0.0.1:0".parse().expect("addr"),
            storage,
            Tokens::default().grant(TOKEN, &["*"], true),
        );
        config.max_body_bytes = 64 << 20;
        let server = tether_server::serve(config).await.expect("serve");
        println!("{}", server.addr());
        std::io::stdout().flush().expect("stdout");
        std::future::pending::<()>().await;
    });
}

fn spawn_server(spec: &str) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .env("TETHER_BENCH_SERVE", spec)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server")
}

fn read_addr(child: &mut Child) -> (String, u32) {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("server address");
    (line.trim().to_string(), child.id())
}

/// Writes the generated records through the admin API; the seconds the requests took (the
/// bodies are built before the clock starts, so the client's JSON encoding is not counted).
fn seed(addr: &str, records: u64) -> f64 {
    let ds = Dataset::new(7, records);
    let bodies: Vec<Vec<u8>> = (0..records)
        .step_by(ADMIN_BATCH as usize)
        .map(|first| {
            let upserts: Vec<_> = (first..records.min(first + ADMIN_BATCH))
                .map(|i| {
                    let r = ds.record(i);
                    json!({"collection": r.collection, "id": r.id, "data": r.data})
                })
                .collect();
            serde_json::to_vec(&json!({ "upserts": upserts })).expect("body")
        })
        .collect();
    let url = format!("http://{addr}/v1/admin/scopes/bench/records");
    let start = Instant::now();
    for body in bodies {
        ureq::post(&url)
            .set("authorization", &format!("Bearer {TOKEN}"))
            .set("content-type", "application/json")
            .send_bytes(&body)
            .expect("seed");
    }
    start.elapsed().as_secs_f64()
}

/// utime + stime of a process, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ") state".
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// A TCP relay that counts the bytes flowing from the server to the client.
struct Relay {
    addr: String,
    bytes: Arc<AtomicU64>,
}

impl Relay {
    fn start(server: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay addr").to_string();
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = bytes.clone();
        let server = server.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(&server) else {
                    continue;
                };
                // As the server and client sockets do: a relay must not add Nagle stalls.
                let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                let (c2, u2) = (
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                std::thread::spawn(move || pipe(c2, u2, None));
                let counter = counter.clone();
                std::thread::spawn(move || pipe(upstream, client, Some(counter)));
            }
        });
        Relay { addr, bytes }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let _ = from.set_read_timeout(Some(Duration::from_secs(300)));
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = &count {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn drop_schema(url: &str, schema: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
        }
    });
}
