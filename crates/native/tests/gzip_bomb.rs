//! A gzip bomb (1 MB on the wire, 1 GiB inflated) is refused at the body limit while it
//! streams in, and memory stays near the limit. Alone in its binary, so that the process's
//! peak resident size (`VmHWM`) is this test's.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use flate2::{write::GzEncoder, Compression};
use tether_engine::{Detail, ErrorKind, Remote, ScopeId};
use tether_native::http::{HttpOptions, HttpRemote, RetryPolicy};

const MIB: usize = 1 << 20;

#[test]
fn a_gzip_bomb_is_refused_at_the_limit_with_bounded_memory() {
    // One gzip member of 1 MiB of zeros; 1,024 of them in a row are one valid gzip body
    // (RFC 1952 allows members to follow each other; ureq reads them all) of 1 GiB.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&vec![0u8; MIB]).unwrap();
    let member = gz.finish().unwrap();
    let members = 1024;
    let bomb = member.len() * members;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
            member.len() * members
        );
        stream.write_all(head.as_bytes()).unwrap();
        // Until the client hangs up; at most the whole bomb.
        let mut sent = 0;
        for _ in 0..members {
            if stream.write_all(&member).is_err() {
                break;
            }
            sent += member.len();
        }
        sent
    });
    let remote = HttpRemote::with_options(
        &base,
        "t",
        HttpOptions {
            retry: RetryPolicy::none(),
            ..HttpOptions::default()
        },
    );
    let scope = ScopeId::new("s").unwrap();
    let start = Instant::now();
    let err = futures_executor::block_on(remote.pull(&scope, None, 10)).unwrap_err();
    let took = start.elapsed();
    drop(remote);
    let sent = server.join().unwrap();
    assert_eq!(
        (err.kind(), err.detail()),
        (ErrorKind::Protocol, Some(Detail::BodyTooLarge)),
        "{err}"
    );
    let peak = peak_resident_bytes();
    eprintln!(
        "gzip bomb refused after {took:?}, {} KiB of {} KiB sent, peak resident {} MiB",
        sent >> 10,
        bomb >> 10,
        peak.map_or(0, |p| p / MIB)
    );
    // The limit (64 MiB) plus the test binary and the growth of one Vec; 521 MB before.
    if let Some(peak) = peak {
        assert!(peak < 160 * MIB, "peak resident {} MiB", peak / MIB);
    }
}

/// `VmHWM` of /proc/self/status (Linux), in bytes.
fn peak_resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
