//! Push answers lost on the way back (a proxy that forwards the request and then drops the
//! connection): the native replica's `HttpRemote` against the server, on both storages. With
//! mutation ids a lost answer is retried and answered with the original result, and an edit
//! made after it is no conflict.

#[path = "../crates/server/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use common::{Backend, Harness, READER};
use serde_json::{json, Value};
use tether_engine::{ErrorKind, SyncOptions};
use tether_native::http::HttpRemote;
use tether_native::Replica;

both!(
    a_lost_push_answer_is_retried_and_answered_once,
    an_edit_after_a_lost_answer_is_no_conflict,
);

/// A loopback proxy in front of the server that can drop answers after the server has them.
struct Proxy {
    url: String,
    /// Drop the answer of this many next pushes.
    drop_pushes: Arc<AtomicU32>,
    /// Drop every answer (the network is gone after the request left).
    drop_all: Arc<AtomicBool>,
    pushes: Arc<AtomicU32>,
    /// The bodies of the answers dropped, as JSON.
    dropped: Arc<Mutex<Vec<Value>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let drop_pushes = Arc::new(AtomicU32::new(0));
        let drop_all = Arc::new(AtomicBool::new(false));
        let pushes = Arc::new(AtomicU32::new(0));
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let relay = Relay {
            upstream,
            drop_pushes: drop_pushes.clone(),
            drop_all: drop_all.clone(),
            pushes: pushes.clone(),
            dropped: dropped.clone(),
        };
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let relay = relay.clone();
                std::thread::spawn(move || {
                    let _ = relay.one(client);
                });
            }
        });
        Proxy {
            url,
            drop_pushes,
            drop_all,
            pushes,
            dropped,
        }
    }

    fn remote(&self) -> HttpRemote {
        support::remote(&self.url, READER)
    }
}

#[derive(Clone)]
struct Relay {
    upstream: String,
    drop_pushes: Arc<AtomicU32>,
    drop_all: Arc<AtomicBool>,
    pushes: Arc<AtomicU32>,
    dropped: Arc<Mutex<Vec<Value>>>,
}

impl Relay {
    /// One request per connection: read it, send it upstream uncompressed with `connection:
    /// close`, read the whole answer, and pass it on or drop it.
    fn one(&self, client: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(client.try_clone()?);
        let mut head = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if !lower.starts_with("connection:") && !lower.starts_with("accept-encoding:") {
                head.push(line);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let is_push = head[0].starts_with("POST") && head[0].contains("/mutations");
        let mut server = TcpStream::connect(&self.upstream)?;
        for line in &head {
            server.write_all(line.as_bytes())?;
        }
        server.write_all(b"connection: close\r\n\r\n")?;
        server.write_all(&body)?;
        let mut answer = Vec::new();
        server.read_to_end(&mut answer)?;
        if is_push {
            self.pushes.fetch_add(1, Ordering::SeqCst);
        }
        let drop_this = self.drop_all.load(Ordering::SeqCst)
            || is_push
                && self
                    .drop_pushes
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
        if drop_this {
            // The server applied it; the answer never arrives.
            let text = String::from_utf8_lossy(&answer);
            if let Some((_, json)) = text.split_once("\r\n\r\n") {
                if let Ok(v) = serde_json::from_str(json) {
                    self.dropped.lock().unwrap().push(v);
                }
            }
            return client.shutdown(Shutdown::Both);
        }
        (&client).write_all(&answer)?;
        client.shutdown(Shutdown::Both)
    }
}

fn opts() -> SyncOptions<'static> {
    SyncOptions {
        page_size: 100,
        ..SyncOptions::default()
    }
}

/// A server holding `records` in scope `s1`, a proxy in front of it, and a replica synced
/// through the proxy.
fn synced_behind_a_proxy(
    backend: Backend,
    records: &[(&str, &str, serde_json::Value)],
) -> (Harness, Proxy, tempfile::TempDir, Replica) {
    let h = Harness::start(backend);
    h.upsert("s1", records);
    let proxy = Proxy::start(&h.url());
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    replica
        .scope("s1")
        .unwrap()
        .sync(&proxy.remote(), opts())
        .unwrap();
    (h, proxy, dir, replica)
}

fn cloud_data(h: &Harness, id: &str) -> Option<serde_json::Value> {
    let (_, body) = h.raw("GET", "/v1/scopes/s1/records", Some(READER), None);
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["data"].clone())
}

/// The push is applied, its answer lost: the transport sends it again (same mutation ids), the
/// server answers with the original result and writes nothing more.
fn a_lost_push_answer_is_retried_and_answered_once(backend: Backend) {
    let (h, proxy, _dir, replica) =
        synced_behind_a_proxy(backend, &[("objects", "a", json!({"v": 0}))]);
    let scope = replica.scope("s1").unwrap();

    scope.put("objects", "a", json!({"v": 1})).unwrap();
    scope.put("objects", "b", json!({"v": "new"})).unwrap();
    let version = h.status("s1").version;
    proxy.drop_pushes.store(1, Ordering::SeqCst);
    let report = scope.sync(&proxy.remote(), opts()).unwrap();
    assert_eq!(proxy.pushes.load(Ordering::SeqCst), 2, "sent twice");
    assert_eq!(report.run.counts.conflicts, 0);
    // The retry wrote nothing: the records are at the versions of the lost original answer.
    let lost = proxy
        .dropped
        .lock()
        .unwrap()
        .pop()
        .expect("an answer was dropped");
    let (_, page) = h.raw("GET", "/v1/scopes/s1/changes", Some(READER), None);
    for (result, change) in lost["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(page["changes"].as_array().unwrap())
    {
        assert_eq!(result["status"], "accepted", "{lost}");
        assert_eq!(result["version"], change["version"], "{lost} {page}");
    }
    assert!(h.status("s1").version > version);
    assert_eq!(cloud_data(&h, "a"), Some(json!({"v": 1})));
    assert_eq!(cloud_data(&h, "b"), Some(json!({"v": "new"})));
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    assert_eq!(report.snapshot.digest, h.status("s1").digest);
}

/// The case: the push is applied, every answer is lost (the run fails), the user edits
/// the record again, and the next sync pushes the newer edit on the old base. The server knows
/// the version is the client's own write: accepted, no conflict. Someone else's write in
/// between still makes one.
fn an_edit_after_a_lost_answer_is_no_conflict(backend: Backend) {
    let (h, proxy, _dir, replica) = synced_behind_a_proxy(
        backend,
        &[
            ("objects", "a", json!({"v": 0})),
            ("objects", "b", json!({"v": 0})),
        ],
    );
    let scope = replica.scope("s1").unwrap();

    scope.put("objects", "a", json!({"v": 1})).unwrap();
    scope.put("objects", "b", json!({"v": 1})).unwrap();
    proxy.drop_all.store(true, Ordering::SeqCst);
    let err = scope.sync(&proxy.remote(), opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    assert_eq!(cloud_data(&h, "a"), Some(json!({"v": 1})), "applied");
    proxy.drop_all.store(false, Ordering::SeqCst);

    scope.put("objects", "a", json!({"v": 2})).unwrap();
    h.upsert("s1", &[("objects", "b", json!({"v": "theirs"}))]);
    scope.put("objects", "b", json!({"v": 2})).unwrap();
    let report = scope.sync(&proxy.remote(), opts()).unwrap();
    assert_eq!(report.run.counts.conflicts, 1, "only b's");
    assert_eq!(cloud_data(&h, "a"), Some(json!({"v": 2})));
    assert_eq!(scope.get("objects", "a").unwrap().unwrap().data["v"], 2);
    assert_eq!(cloud_data(&h, "b"), Some(json!({"v": "theirs"})));
    let journal = scope.conflicts().unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].record_id, "b");
    assert_eq!(journal[0].local_data.as_ref().unwrap()["v"], 2);
    assert_eq!(scope.status().unwrap().pending_edits, 0);
    assert_eq!(report.snapshot.digest, h.status("s1").digest);
}
