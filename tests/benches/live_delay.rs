//! Live sync delay: from a write on the server (an admin write of one record, timed from just
//! before the request, so the figure bounds the delay from its commit) to a live native
//! replica having applied it (the `Apply` progress event after the page's commit). p50 and p99
//! over `TETHER_BENCH_WRITES` writes (default 200), on SQLite storage and, with
//! `TETHER_TEST_PG`, on PostgreSQL storage (where the wake-up goes through `LISTEN/NOTIFY`).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_engine::{CancelFlag, Phase, Progress, SyncOptions, Trigger};
use tether_native::http::HttpRemote;
use tether_native::Replica;
use tether_server::{Config, StorageConfig, Tokens};

const TOKEN: &str = "bench-token";

fn main() {
    let writes: usize = std::env::var("TETHER_BENCH_WRITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut storages = vec![(
        "sqlite",
        StorageConfig::Sqlite {
            path: dir.path().join("cloud.db"),
        },
    )];
    let schema = format!("bench_live_{}", std::process::id());
    match std::env::var("TETHER_TEST_PG") {
        Ok(url) => storages.push((
            "postgres",
            StorageConfig::Postgres {
                url,
                schema: Some(schema.clone()),
                pool_size: 4,
            },
        )),
        Err(_) => eprintln!("TETHER_TEST_PG not set: PostgreSQL storage not measured"),
    }
    println!("live sync delay, write on the server -> applied by a live replica ({writes} writes)");
    println!(
        "{:<9} {:>9} {:>9} {:>9}",
        "storage", "p50 ms", "p99 ms", "max ms"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (name, storage) in storages {
        let tokens = Tokens::default().grant(TOKEN, &["*"], true);
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), storage, tokens);
        config.tombstone_retention = None;
        let server = rt.block_on(tether_server::serve(config)).expect("server");
        let url = server.url();
        let mut delays = measure(&url, writes);
        delays.sort();
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<9} {:>9.1} {:>9.1} {:>9.1}",
            name,
            ms(at(0.5)),
            ms(at(0.99)),
            ms(*delays.last().unwrap())
        );
        rt.block_on(server.shutdown());
    }
    if let Ok(url) = std::env::var("TETHER_TEST_PG") {
        rt.block_on(async {
            if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            }
        });
    }
}

fn measure(url: &str, writes: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let replica = Replica::open(dir.path().join("replica.db")).expect("replica");
    let remote = HttpRemote::new(url, TOKEN);
    let stop = CancelFlag::new();
    let (applied, at) = mpsc::channel::<Instant>();
    let admin = |id: usize| {
        ureq::post(&format!("{url}/v1/admin/scopes/bench/records"))
            .set("authorization", &format!("Bearer {TOKEN}"))
            .send_json(
                json!({"upserts": [{"collection": "objects", "id": format!("o{id}"),
                "data": {"i": id}}]}),
            )
            .expect("admin write");
    };
    admin(0);
    std::thread::scope(|s| {
        let live = s.spawn(|| {
            let sink = move |p: &Progress| {
                if p.phase == Phase::Apply && p.done > 0 {
                    let _ = applied.send(Instant::now());
                }
            };
            replica.scope("bench").unwrap().sync(
                &remote,
                SyncOptions {
                    trigger: Trigger::Live,
                    live_wait_s: 20,
                    progress: Some(&sink),
                    cancel: Some(&stop),
                    ..SyncOptions::default()
                },
            )
        });
        at.recv_timeout(Duration::from_secs(30)).expect("caught up");
        let mut delays = Vec::with_capacity(writes);
        for i in 1..=writes {
            let t0 = Instant::now();
            admin(i);
            let t1 = at.recv_timeout(Duration::from_secs(30)).expect("applied");
            delays.push(t1.duration_since(t0));
        }
        stop.cancel();
        // The last wait ends within its 20 s; one more write ends it at once.
        admin(writes + 1);
        live.join().unwrap().expect("live session");
        delays
    })
}
