//! The protocol's case table end to end: the real ureq `HttpRemote` against a loopback server
//! that answers each case's canned replies in turn.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tether_engine::protocol::cases::{self, Call, Case, Reply};
use tether_engine::{Detail, Error};

use super::*;

/// A server on 127.0.0.1 that answers `replies` in order (an extra request gets a 599), one
/// connection per request, until told to stop or 10 s have passed.
struct Loopback {
    base: String,
    stop: Arc<AtomicBool>,
    /// Requests answered so far.
    served: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<Seen>>,
}

/// A request as the server saw it.
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Loopback {
    fn start(replies: &'static [Reply]) -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        seen.push(read_request(&mut stream));
                        answer(&mut stream, replies.get(seen.len() - 1));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            seen
        });
        Loopback {
            base,
            stop,
            served,
            thread,
        }
    }

    /// Waits up to 5 s until `n` requests have been answered; whether they were.
    fn wait_served(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.served.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.served.load(Ordering::SeqCst) >= n
    }

    fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn read_request(stream: &mut TcpStream) -> Seen {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed inside the request head");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..end].to_vec()).unwrap();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap());
    let mut body = data[end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed inside the request body");
        body.extend_from_slice(&buf[..n]);
    }
    Seen { head, body }
}

fn answer(stream: &mut TcpStream, reply: Option<&Reply>) {
    let (status, retry_after, body) = match reply {
        Some(Reply::Answer {
            status,
            retry_after,
            body,
        }) => (*status, *retry_after, *body),
        Some(Reply::Fail(f)) => panic!("a loopback server cannot fake {f:?}"),
        None => (599, None, "no more canned answers"),
    };
    let mut head = format!(
        "HTTP/1.1 {status} Canned\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(v) = retry_after {
        head.push_str(&format!("retry-after: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
}

fn options() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        retry: cases::policy(),
        // Every request is the call's own: the case table counts them.
        pull_ahead: false,
        ..HttpOptions::default()
    }
}

fn page(checkpoint: &str, has_more: bool) -> Reply {
    let body = format!(r#"{{"changes":[],"checkpoint":"{checkpoint}","has_more":{has_more}}}"#);
    Reply::Answer {
        status: 200,
        retry_after: None,
        body: Box::leak(body.into_boxed_str()),
    }
}

/// A loopback server answering `replies` in turn.
fn serve(replies: Vec<Reply>) -> Loopback {
    Loopback::start(Box::leak(replies.into_boxed_slice()))
}

/// An answer with `status`, a `Retry-After` and an error body.
const fn error_reply(status: u16, retry_after: Option<&'static str>, body: &'static str) -> Reply {
    Reply::Answer {
        status,
        retry_after,
        body,
    }
}

/// A remote of `server` that pulls the next page ahead.
fn remote_pulling_ahead(server: &Loopback) -> HttpRemote {
    HttpRemote::with_options(
        &server.base,
        "t",
        HttpOptions {
            pull_ahead: true,
            ..options()
        },
    )
}

/// The checkpoint of the page that a pull of scope `s` from `cp` answers.
fn pull_page(remote: &HttpRemote, cp: Option<&str>, limit: u32) -> String {
    let scope = ScopeId::new("s").unwrap();
    let cp = cp.map(|c| Checkpoint(c.into()));
    match futures_executor::block_on(remote.pull(&scope, cp.as_ref(), limit)).unwrap() {
        Pulled::Page { page, .. } => page.checkpoint.unwrap().0,
        Pulled::Reset => panic!("reset"),
    }
}

/// A page with more after it starts the pull of the next one before the engine asks; the
/// engine's pull of it takes that answer, and the last page starts nothing.
#[test]
fn a_page_with_more_pulls_the_next_one_ahead() {
    let replies =
        Box::leak(vec![page("1", true), page("2", true), page("3", false)].into_boxed_slice());
    let server = Loopback::start(replies);
    let remote = remote_pulling_ahead(&server);
    let pull = |cp: Option<&str>| pull_page(&remote, cp, 7);
    assert_eq!(pull(None), "1");
    assert!(server.wait_served(2), "the next page was not pulled ahead");
    assert_eq!(pull(Some("1")), "2");
    assert!(server.wait_served(3), "the page after was not pulled ahead");
    assert_eq!(pull(Some("2")), "3");
    std::thread::sleep(Duration::from_millis(50));
    let seen = server.finish();
    let targets: Vec<&str> = seen
        .iter()
        .map(|s| s.head.lines().next().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "GET /v1/scopes/s/changes?limit=7 HTTP/1.1",
            "GET /v1/scopes/s/changes?limit=7&checkpoint=1 HTTP/1.1",
            "GET /v1/scopes/s/changes?limit=7&checkpoint=2 HTTP/1.1",
        ]
    );
}

/// The page pulled ahead answers only the same request: a pull from another checkpoint, or
/// another call in between, asks the server again.
#[test]
fn the_page_ahead_answers_only_the_same_pull() {
    let server = serve(vec![
        page("1", true),
        page("2", false),
        page("9", false),
        page("1", true),
        page("2", false),
        page("5", false),
    ]);
    let remote = remote_pulling_ahead(&server);
    let pull = |cp: Option<&str>, limit: u32| pull_page(&remote, cp, limit);
    assert_eq!(pull(None, 7), "1");
    assert!(server.wait_served(2));
    // Another limit: not the request pulled ahead.
    assert_eq!(pull(Some("1"), 8), "9");
    assert_eq!(pull(None, 7), "1");
    assert!(server.wait_served(5));
    // A new run drops the page ahead.
    remote.begin_run();
    assert_eq!(pull(Some("1"), 7), "5");
    let seen = server.finish();
    assert_eq!(seen.len(), 6);
}

/// A pull ahead dropped while it waits to retry (here by a new run) retries no more, and its
/// retrying costs the new run nothing: the server sees no request from it after the drop, so
/// the answer meant for the engine's own pull is the engine's.
#[test]
fn a_dropped_pull_ahead_stops_retrying() {
    let server = serve(vec![
        page("1", true),
        error_reply(503, Some("1"), r#"{"code":"unavailable","message":"busy"}"#),
        page("7", false),
    ]);
    let remote = remote_pulling_ahead(&server);
    let pull = |cp: Option<&str>| pull_page(&remote, cp, 7);
    assert_eq!(pull(None), "1");
    assert!(server.wait_served(2), "the next page was not pulled ahead");
    remote.begin_run();
    // Past the 1 s the 503 asked for: a pull ahead still retrying would have asked by now.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        server.served.load(Ordering::SeqCst),
        2,
        "the dropped pull ahead retried"
    );
    assert_eq!(remote.inner.budget.spent_ms(), 0);
    assert_eq!(pull(Some("1")), "7");
    assert_eq!(server.finish().len(), 3);
}

/// A pull ahead refused for its token does not answer the engine's pull: that pull asks the
/// server again, with the token of its own moment.
#[test]
fn a_pull_ahead_refused_for_its_token_is_asked_again() {
    let server = serve(vec![
        page("1", true),
        error_reply(401, None, r#"{"code":"unauthorized","message":"expired"}"#),
        page("2", false),
    ]);
    let remote = remote_pulling_ahead(&server);
    let pull = |cp: Option<&str>| pull_page(&remote, cp, 7);
    assert_eq!(pull(None), "1");
    assert!(server.wait_served(2), "the next page was not pulled ahead");
    assert_eq!(pull(Some("1")), "2");
    assert_eq!(server.finish().len(), 3);
}

/// Any other failure of a pull ahead, after its retries, is the engine's pull's answer: asking
/// again would double the time a sync takes to report an outage.
#[test]
fn a_pull_ahead_that_failed_otherwise_answers_with_its_error() {
    let server = serve(vec![
        page("1", true),
        error_reply(
            404,
            None,
            r#"{"code":"not_found","message":"no such route"}"#,
        ),
    ]);
    let remote = remote_pulling_ahead(&server);
    assert_eq!(pull_page(&remote, None, 7), "1");
    assert!(server.wait_served(2), "the next page was not pulled ahead");
    let scope = ScopeId::new("s").unwrap();
    let cp = Checkpoint("1".into());
    let err = futures_executor::block_on(remote.pull(&scope, Some(&cp), 7)).unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    assert_eq!(server.finish().len(), 2);
}

/// A pull left running by a sync that was cancelled (its thread waits out a 503) spends
/// nothing of the next sync's retry budget and starts no pull ahead for it.
#[test]
fn a_pull_outliving_its_sync_costs_the_next_one_nothing() {
    let server = serve(vec![
        error_reply(503, Some("1"), r#"{"code":"unavailable","message":"busy"}"#),
        page("1", true),
    ]);
    let remote = remote_pulling_ahead(&server);
    let inner = remote.inner.clone();
    let stale = std::thread::spawn(move || {
        let scope = ScopeId::new("s").unwrap();
        inner.pull(&scope, None, 7).map(|_| ())
    });
    assert!(server.wait_served(1));
    remote.begin_run();
    stale.join().unwrap().unwrap();
    assert_eq!(remote.inner.budget.spent_ms(), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.finish().len(),
        2,
        "a pull ahead was started for the next sync"
    );
}

fn run_case(case: &'static Case) -> Vec<String> {
    let server = Loopback::start(case.answers);
    let remote = HttpRemote::with_options(&server.base, cases::TOKEN, options());
    let result = futures_executor::block_on(cases::check(&remote, case));
    let seen = server.finish();
    let mut failures: Vec<String> = result.err().into_iter().collect();
    if seen.len() != case.answers.len() {
        failures.push(format!(
            "{}: {} requests, expected {}",
            case.name,
            seen.len(),
            case.answers.len()
        ));
    }
    let line = format!("{} {} HTTP/1.1", case.method, case.target);
    let auth = format!("authorization: Bearer {}", cases::TOKEN);
    for s in &seen {
        let lower = s.head.to_ascii_lowercase();
        if !s.head.starts_with(&line) || !lower.contains(&auth.to_ascii_lowercase()) {
            failures.push(format!("{}: sent {:?}", case.name, s.head));
        }
        if case.method == "POST" {
            let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
            let sent = body["mutations"].as_array().map_or(0, Vec::len);
            let (Call::Push(n) | Call::PushIdentified(n)) = case.call else {
                panic!("{}: a POST that is not a push", case.name)
            };
            if sent != n || !lower.contains("content-type: application/json") {
                failures.push(format!(
                    "{}: pushed {sent} of {n} in {:?}",
                    case.name, s.head
                ));
            }
        }
    }
    failures
}

#[test]
fn every_protocol_case_over_loopback() {
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in cases::cases().iter().filter(|c| !c.has_failures()) {
        failures.extend(run_case(case));
        ran += 1;
    }
    assert!(ran >= 30, "only {ran} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unreachable_server_is_unreachable_after_retries() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let r = HttpRemote::with_options("http://127.0.0.1:1", "t", options());
    let scope = ScopeId::new("s").unwrap();
    let err = futures_executor::block_on(r.pull(&scope, None, 10)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Network {
                status: None,
                detail: Some(Detail::Unreachable),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[test]
fn the_retry_budget_is_shared_by_the_calls_of_one_sync() {
    let policy = RetryPolicy {
        retries: 50,
        backoff_base_ms: 40,
        backoff_cap_ms: 40,
        max_wait_ms: 40,
        budget_ms: 10_000,
        run_budget_ms: 200,
    };
    let r = HttpRemote::with_options(
        "http://127.0.0.1:1",
        "t",
        HttpOptions {
            retry: policy,
            ..options()
        },
    );
    let scope = ScopeId::new("s").unwrap();
    let attempts = || {
        let err = futures_executor::block_on(r.pull(&scope, None, 10)).unwrap_err();
        let text = err.to_string();
        match text.split_once("(after ") {
            Some((_, rest)) => rest.split(' ').next().unwrap().parse::<u32>().unwrap(),
            None => 1,
        }
    };
    r.begin_run();
    let first = attempts();
    // Waits of 20-40 ms (longer on a busy machine) within 200 ms: at most 11 attempts, far
    // from the 51 the call alone allows.
    assert!((2..=11).contains(&first), "{first}");
    // The next calls use what is left (a wait of 20-40 ms may still fit): within a few calls
    // the budget is spent and a call is made once, and the sync's retries add up to at most
    // the 200 ms' worth.
    let mut later = Vec::new();
    while later.last() != Some(&1) {
        later.push(attempts());
        assert!(later.len() <= 3, "the budget is never spent: {later:?}");
    }
    let retries: u32 = later.iter().map(|a| a - 1).sum::<u32>() + first - 1;
    assert!(retries <= 11, "{first} then {later:?}");
    r.begin_run();
    assert!(attempts() >= 2, "a new sync retries again");
}

#[test]
fn a_token_function_is_asked_again_once_after_a_401() {
    const EXPIRED: Reply = error_reply(
        401,
        None,
        r#"{"code":"unauthorized","message":"the token has expired"}"#,
    );
    const NO_STATUS: Reply = Reply::Answer {
        status: 404,
        retry_after: None,
        body: "{}",
    };
    let scope = ScopeId::new("s").unwrap();
    for (replies, refreshed) in [
        (&[EXPIRED, NO_STATUS][..], true),
        (&[EXPIRED, EXPIRED][..], false),
    ] {
        // Loopback takes 'static replies.
        let replies: &'static [Reply] = Box::leak(replies.to_vec().into_boxed_slice());
        let server = Loopback::start(replies);
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        let remote = HttpRemote::with_token_fn(
            &server.base,
            Arc::new(move || Ok(format!("t{}", counter.fetch_add(1, Ordering::SeqCst) + 1))),
            options(),
        );
        let result = futures_executor::block_on(remote.status(&scope));
        let seen = server.finish();
        assert_eq!(seen.len(), 2, "one more attempt, not more");
        assert!(seen[0].head.contains("Bearer t1") && seen[1].head.contains("Bearer t2"));
        match result {
            Ok(None) => assert!(refreshed),
            Err(e) => {
                assert!(!refreshed);
                assert_eq!(e.kind(), tether_engine::ErrorKind::Auth);
                assert!(e.to_string().contains("expired"), "{e}");
            }
            Ok(Some(s)) => panic!("{s:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

#[test]
fn a_slow_answer_is_a_timeout() {
    // Accepts and reads the request, then says nothing until the client gives up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        std::thread::sleep(Duration::from_millis(500));
    });
    let options = HttpOptions {
        timeout: Duration::from_millis(100),
        ..options()
    };
    let r = HttpRemote::with_options(&base, "t", options);
    let scope = ScopeId::new("s").unwrap();
    let err = futures_executor::block_on(r.push(&scope, &cases::mutations(1))).unwrap_err();
    assert_eq!(err.detail(), Some(Detail::Timeout), "{err:?}");
    server.join().unwrap();
}

#[test]
fn jitter_spreads_in_the_unit_interval() {
    let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
    assert!(samples.iter().all(|s| (0.0..1.0).contains(s)));
    assert!(samples.iter().any(|s| *s < 0.5) && samples.iter().any(|s| *s >= 0.5));
}

/// What the hostile servers below send when they do answer.
const PAGE: &str = r#"{"changes":[],"checkpoint":"1","has_more":true}"#;

fn page_answer() -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{PAGE}",
        PAGE.len()
    )
}

/// The head at once, then one byte of the body every 20 ms: no gap between reads is long, the
/// answer as a whole never ends. The server gives up by itself after 3 s.
#[test]
fn a_trickling_answer_is_timed_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) && stream.write_all(b" ").is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let options = HttpOptions {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy::none(),
        ..options()
    };
    let r = HttpRemote::with_options(&base, "t", options);
    let scope = ScopeId::new("s").unwrap();
    let start = Instant::now();
    let err = futures_executor::block_on(r.pull(&scope, None, 10)).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.detail(), Some(Detail::Timeout), "{err:?}");
    assert!(took < Duration::from_millis(1000), "stopped after {took:?}");
    eprintln!("trickling answer stopped after {took:?}");
    server.join().unwrap();
}

/// Two answers on one keep-alive connection, then every request stalls (each connection is
/// held open, silent, for 3 s at most). The third call is timed out on the reused connection
/// and its retries end within the budget: 2 x timeout + budget.
#[test]
fn a_stall_on_a_reused_connection_is_timed_out_and_its_retries_are_bounded() {
    use std::sync::atomic::AtomicUsize;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (req, conns) = (requests.clone(), connections.clone());
    let server = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(3);
        let mut handlers = Vec::new();
        while Instant::now() < until {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    conns.fetch_add(1, Ordering::SeqCst);
                    let req = req.clone();
                    handlers.push(std::thread::spawn(move || {
                        while Instant::now() < until {
                            read_request(&mut stream);
                            if req.fetch_add(1, Ordering::SeqCst) >= 2 {
                                // Silent until the test's bound; the client must not wait it out.
                                let rest = until.saturating_duration_since(Instant::now());
                                std::thread::sleep(rest);
                                return;
                            }
                            stream.write_all(page_answer().as_bytes()).unwrap();
                        }
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        handlers.into_iter().for_each(|h| h.join().unwrap());
    });
    let policy = RetryPolicy {
        retries: 10,
        backoff_base_ms: 10,
        backoff_cap_ms: 20,
        max_wait_ms: 20,
        budget_ms: 400,
        run_budget_ms: 10_000,
    };
    let timeout = Duration::from_millis(200);
    let options = HttpOptions {
        timeout,
        retry: policy,
        ..options()
    };
    let r = HttpRemote::with_options(&base, "t", options);
    let scope = ScopeId::new("s").unwrap();
    for _ in 0..2 {
        futures_executor::block_on(r.pull(&scope, None, 10)).unwrap();
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one keep-alive connection"
    );
    let start = Instant::now();
    let err = futures_executor::block_on(r.pull(&scope, None, 10)).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.detail(), Some(Detail::Timeout), "{err:?}");
    assert!(err.to_string().contains("attempts"), "retried: {err}");
    let bound = timeout * 2 + Duration::from_millis(policy.budget_ms);
    assert!(took >= timeout, "{took:?}");
    assert!(
        took < bound + Duration::from_millis(300),
        "stopped after {took:?}, bound {bound:?}"
    );
    eprintln!(
        "stalled keep-alive call stopped after {took:?} ({})",
        err.to_string().rsplit('(').next().unwrap_or_default()
    );
    server.join().unwrap();
}

/// A page at version 2^63 from a real HTTP remote into SQLite: the remote's fault (`Protocol`
/// `Malformed`), where it used to surface as a `Storage` error from the INSERT.
#[test]
fn a_version_above_i64_max_from_the_remote_is_a_protocol_error() {
    let data = serde_json::json!({"name": "orders"});
    let hash = tether_engine::digest::record_hash(data.as_object().unwrap());
    let body = serde_json::json!({
        "changes": [{"collection": "objects", "id": "o1", "version": 1u64 << 63,
                     "updated_at": "2026-01-15T12:00:00.000Z", "deleted": false,
                     "data": data, "hash": hash.to_string()}],
        "checkpoint": "1", "has_more": false,
        "snapshot": {"count": 1, "digest": tether_engine::Digest::default().to_string()},
    })
    .to_string();
    let reply: &'static [Reply] = Box::leak(Box::new([Reply::Answer {
        status: 200,
        retry_after: None,
        body: Box::leak(body.into_boxed_str()),
    }]));
    let server = Loopback::start(reply);
    let remote = HttpRemote::with_options(&server.base, "t", options());
    let store = crate::SqliteStore::open_in_memory().unwrap();
    let scope = ScopeId::new("s").unwrap();
    let clock = || 1_000;
    let err = futures_executor::block_on(
        tether_engine::Syncer::new(&store, &remote, &clock)
            .sync(&scope, tether_engine::SyncOptions::default()),
    )
    .unwrap_err();
    server.finish();
    assert_eq!(
        (err.kind(), err.detail()),
        (tether_engine::ErrorKind::Protocol, Some(Detail::Malformed)),
        "{err}"
    );
}

#[test]
fn a_ca_certificate_that_cannot_be_used_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("key.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let failures = [
        HttpOptions::default().ca_cert_file(&missing).unwrap_err(),
        HttpOptions::default().ca_cert_file(&not_pem).unwrap_err(),
        HttpOptions::default()
            .ca_cert(broken.as_bytes())
            .unwrap_err(),
    ];
    for (e, says) in failures
        .iter()
        .zip(["cannot read", "no PEM certificate", "not a usable"])
    {
        assert_eq!(e.kind(), tether_engine::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn a_url_that_cannot_be_used_fails_once_as_invalid_input() {
    let started = Instant::now();
    let remote = HttpRemote::with_options("ftp://127.0.0.1:1", "t", HttpOptions::default());
    let scope = tether_engine::ScopeId::new("s").unwrap();
    let e = futures_executor::block_on(remote.status(&scope)).unwrap_err();
    assert_eq!(e.kind(), tether_engine::ErrorKind::InvalidInput, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "not retried: {e}"
    );
}
