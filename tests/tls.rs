//! HTTPS end to end: the server with a certificate signed by a CA made here (rcgen), on SQLite
//! and PostgreSQL storage, and native replicas that trust that CA (records pushed by one arrive
//! at the other and verify), or do not (one attempt, an `InvalidInput` that says what to do).

#[path = "../crates/server/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::{Backend, Harness, ADMIN, READER};
use serde_json::json;
use tether_engine::{ErrorKind, SyncOptions};
use tether_native::http::{HttpOptions, HttpRemote};
use tether_native::Replica;
use tether_server::tls::TlsConfig;

both!(
    a_replica_that_trusts_the_ca_syncs_over_https,
    an_untrusted_certificate_fails_at_once_saying_what_to_do,
    a_certificate_for_another_host_name_fails_the_same_way,
    a_stalled_handshake_is_closed_within_the_header_bound,
);

/// A CA, a server certificate it signed for 127.0.0.1 (and no host name), and a second CA that
/// signed nothing the server has.
struct Pki {
    ca: String,
    other_ca: String,
    cert: String,
    key: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = |name: &str| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap()
        };
        let (issuer, other) = (ca("Tether test CA"), ca("Another CA"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Pki {
            ca: issuer.pem(),
            other_ca: other.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    })
}

fn https(backend: Backend) -> Harness {
    Harness::start_with(backend, |config| {
        let pki = pki();
        config.tls = Some(TlsConfig::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap());
    })
}

/// A client that opens a TLS connection and stalls in its handshake (a first few bytes of a
/// ClientHello, then nothing) is closed once the header bound (1 s here) has passed, like one
/// that stalls in its request head: it cannot hold a connection for ever.
fn a_stalled_handshake_is_closed_within_the_header_bound(backend: Backend) {
    let h = Harness::start_with(backend, |config| {
        let pki = pki();
        config.tls = Some(TlsConfig::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap());
        config.header_read_timeout = std::time::Duration::from_secs(1);
    });
    let addr = h.url().trim_start_matches("https://").to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let took = start.elapsed();
    eprintln!("a stalled TLS handshake was closed after {took:?}");
    assert!(
        closed,
        "the server kept a stalled handshake open ({took:?})"
    );
    assert!(took >= std::time::Duration::from_millis(800), "{took:?}");
}

/// A remote with the default retry policy (4 retries: a retried failure would take 5 attempts
/// and seconds), trusting `ca` when given.
fn remote(url: &str, token: &str, ca: Option<&str>) -> HttpRemote {
    let mut options = HttpOptions::default();
    if let Some(pem) = ca {
        options = options.ca_cert(pem.as_bytes()).unwrap();
    }
    HttpRemote::with_options(url, token, options)
}

fn a_replica_that_trusts_the_ca_syncs_over_https(backend: Backend) {
    let h = https(backend);
    assert!(h.url().starts_with("https://127.0.0.1:"), "{}", h.url());
    let dir = tempfile::tempdir().unwrap();
    let ca = Some(pki().ca.as_str());

    let writer = Replica::open(dir.path().join("writer.db")).unwrap();
    let scope = writer.scope("s1").unwrap();
    for i in 0..3 {
        scope
            .put("objects", &format!("o{i}"), json!({ "n": i }))
            .unwrap();
    }
    let pushed = scope
        .sync(&remote(&h.url(), ADMIN, ca), SyncOptions::default())
        .unwrap();
    assert_eq!(pushed.snapshot.count, 3);

    let reader = Replica::open(dir.path().join("reader.db")).unwrap();
    let scope = reader.scope("s1").unwrap();
    let remote = remote(&h.url(), READER, ca);
    let pulled = scope.sync(&remote, SyncOptions::default()).unwrap();
    assert_eq!(pulled.snapshot, pushed.snapshot);
    assert_eq!(
        serde_json::Value::Object(scope.get("objects", "o2").unwrap().unwrap().data),
        json!({"n": 2})
    );
    assert!(scope.verify(&remote, false).unwrap().matches_now);
}

fn an_untrusted_certificate_fails_at_once_saying_what_to_do(backend: Backend) {
    let h = https(backend);
    let relay = Relay::to(&h.url());
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let scope = replica.scope("s1").unwrap();
    for (ca, what) in [
        (None, "the public roots"),
        (Some(&pki().other_ca), "another CA"),
    ] {
        let before = relay.connections();
        let started = std::time::Instant::now();
        let err = scope
            .sync(
                &remote(&relay.url(), READER, ca.map(String::as_str)),
                SyncOptions::default(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        assert!(!err.is_retryable(), "{what}: {err}");
        let message = err.to_string();
        assert!(message.contains("not trusted"), "{what}: {message}");
        assert!(message.contains("--ca-cert"), "{what}: {message}");
        assert_eq!(
            relay.connections() - before,
            1,
            "{what}: one attempt, no retry"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}"
        );
    }
    assert_eq!(h.stats().pulls, 0, "no request reached the server");
}

fn a_certificate_for_another_host_name_fails_the_same_way(backend: Backend) {
    let h = https(backend);
    let relay = Relay::to(&h.url());
    // The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    let url = relay.url().replace("127.0.0.1", "localhost");
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    let err = replica
        .scope("s1")
        .unwrap()
        .sync(
            &remote(&url, READER, Some(&pki().ca)),
            SyncOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("not valid for this host name"),
        "{err}"
    );
    assert_eq!(relay.connections(), 1, "one attempt, no retry");
}

/// A TCP relay to a server that counts the connections made through it: each attempt of the
/// client opens one, since a connection whose handshake failed is not reused.
struct Relay {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
}

impl Relay {
    fn to(url: &str) -> Relay {
        let target: SocketAddr = url.trim_start_matches("https://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Relay { addr, count }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.flush();
        let _ = to.shutdown(Shutdown::Write);
    });
}
