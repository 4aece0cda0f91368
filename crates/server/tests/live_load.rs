//! Idle long-polls under load: many waiting pulls held open, the threads and memory they cost,
//! all answered by one write. Its own test binary, so that nothing else runs in the process
//! while threads are counted; the two storages run one after the other.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Backend, Harness, READER};
use serde_json::json;

both!(many_idle_waiters_cost_no_threads);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Threads of this process (the server runs in it).
fn threads() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The soft limit on open files of this process.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap_or(u64::MAX)
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

/// 1,000 idle long-polls held open on raw sockets (each side of a connection is a descriptor
/// in this process): all are answered by one write, and the server's threads do not grow with
/// them.
fn many_idle_waiters_cost_no_threads(backend: Backend) {
    const WAITERS: usize = 1000;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let limit = open_files_limit();
    assert!(
        limit >= 2 * WAITERS as u64 + 200,
        "{WAITERS} waiters need two descriptors each in this process; the soft limit is \
         {limit} (raise it with ulimit -n)"
    );
    let h = Harness::start(backend);
    h.upsert("s1", &[("objects", "a", json!({"n": 1}))]);
    let cp = h.head();
    let addr = h.url().trim_start_matches("http://").to_string();
    let (threads_before, rss_before) = (threads(), rss_kib());
    let pulls_before = h.stats().pulls;
    let mut sockets = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /v1/scopes/s1/changes?checkpoint={cp}&wait=60 HTTP/1.1\r\nhost: x\r\n\
             authorization: Bearer {READER}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        sockets.push(s);
    }
    // Until every request has been received (the server counts pulls as they arrive), then
    // until the blocking threads that served their first pulls (SQLite storage) have ended:
    // the harness's runtime keeps idle blocking threads 200 ms.
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.stats().pulls < pulls_before + WAITERS as u64 {
        assert!(
            Instant::now() < deadline,
            "the server never saw every waiter"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The waiters stay parked (60 s) while the blocking threads wind down: wait for that,
    // bounded, rather than guess how long a busy machine takes.
    let settle = Instant::now() + Duration::from_secs(15);
    while threads() > threads_before + 2 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (threads_waiting, rss_waiting) = (threads(), rss_kib());
    eprintln!(
        "{WAITERS} idle long-polls: threads {threads_before} -> {threads_waiting}, \
         RSS {rss_before} -> {rss_waiting} KiB ({:.1} KiB per waiter, client sockets included)",
        (rss_waiting.saturating_sub(rss_before)) as f64 / WAITERS as f64
    );
    assert!(
        threads_waiting <= threads_before + 2,
        "threads grew with waiters: {threads_before} -> {threads_waiting}"
    );
    let started = Instant::now();
    h.upsert("s1", &[("objects", "b", json!({"n": 2}))]);
    for mut s in sockets {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"id\":\"b\""), "{answer}");
    }
    eprintln!(
        "all {WAITERS} answered {:?} after the write",
        started.elapsed()
    );
}
