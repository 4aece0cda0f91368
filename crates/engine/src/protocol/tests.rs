use std::sync::Mutex;

use super::cases::{self, Case, Reply};
use super::*;
use crate::{ErrorKind, Remote};

/// A sans-IO driver over a case's canned replies: the loop every transport runs, with a fake
/// clock that advances by each wait.
struct Canned {
    case: &'static Case,
    sent: Mutex<Vec<Request>>,
}

const NOW: i64 = 1_767_225_600_000; // 2026-01-01

impl Canned {
    fn run<T>(&self, mut x: Exchange<T>) -> Result<T> {
        let policy = cases::policy();
        let mut now = NOW;
        loop {
            let mut sent = self.sent.lock().unwrap();
            sent.push(x.request().clone());
            let outcome = match self.case.answers.get(sent.len() - 1) {
                Some(Reply::Answer {
                    status,
                    retry_after,
                    body,
                }) => Ok(Answer {
                    status: *status,
                    retry_after: retry_after.map(String::from),
                    body: body.as_bytes().to_vec(),
                }),
                Some(Reply::Fail(f)) => Err(TransportError::new(*f, "canned failure")),
                None => Ok(Answer::new(599, b"no more canned answers".to_vec())),
            };
            drop(sent);
            match x.handle(&policy, outcome, now, 0.5) {
                Step::Wait(ms) => now += ms as i64,
                Step::Done(r) => return r,
            }
        }
    }
}

impl Remote for Canned {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        self.run(pull(scope, checkpoint, limit))
    }
    fn can_push(&self) -> bool {
        true
    }
    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        self.run(push(scope, mutations)?)
    }
    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.run(status(scope))
    }
    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.run(range_digest(scope, range))
    }
    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.run(range_records(scope, range))
    }
}

#[test]
fn every_case_of_the_table() {
    let mut failures = Vec::new();
    for case in cases::cases() {
        let remote = Canned {
            case,
            sent: Mutex::new(Vec::new()),
        };
        if let Err(e) = futures_executor::block_on(cases::check(&remote, case)) {
            failures.push(e);
        }
        let sent = remote.sent.into_inner().unwrap();
        if sent.len() != case.answers.len() {
            failures.push(format!(
                "{}: {} attempts, expected {}",
                case.name,
                sent.len(),
                case.answers.len()
            ));
        }
        for r in &sent {
            if (r.method.as_str(), r.target().as_str()) != (case.method, case.target) {
                failures.push(format!("{}: sent {:?} {}", case.name, r.method, r.target()));
            }
            let json = ("accept", "application/json");
            let body = ("content-type", "application/json");
            let want = match r.method {
                Method::Get => vec![json],
                Method::Post => vec![json, body],
            };
            assert_eq!(r.headers, want, "{}", case.name);
            assert_eq!(r.body.is_empty(), r.method == Method::Get, "{}", case.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_covers_every_status_once_per_meaning() {
    let statuses: std::collections::BTreeSet<u16> = cases::cases()
        .iter()
        .flat_map(|c| c.answers)
        .filter_map(|r| match r {
            Reply::Answer { status, .. } => Some(*status),
            Reply::Fail(_) => None,
        })
        .collect();
    let want = [
        200, 400, 401, 403, 404, 405, 408, 410, 413, 429, 500, 501, 502, 503,
    ];
    assert_eq!(statuses, want.into_iter().collect());
}

#[test]
fn push_body_is_the_wire_format() {
    let scope = ScopeId::new("s").unwrap();
    let x = push(&scope, &cases::mutations(1)).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&x.request().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"mutations": [{"collection": "objects", "id": "m0", "op": "put",
            "data": {"n": 0}, "base_version": null}]})
    );
}

#[test]
fn urls_join_base_and_target() {
    let scope = ScopeId::new("s").unwrap();
    let x = range_records(&scope, &KeyRange::all());
    assert_eq!(
        x.request().url("http://h:1/"),
        "http://h:1/v1/scopes/s/records"
    );
    assert_eq!(
        x.request().url("http://h:1"),
        "http://h:1/v1/scopes/s/records"
    );
    assert_eq!(bearer("t"), "Bearer t");
}

#[test]
fn encoding_keeps_unreserved_only() {
    let all: String = (0x20u8..0x7f).map(char::from).collect();
    let encoded = encode(&all);
    let kept: String = encoded
        .split('%')
        .map(|p| p.get(2..).unwrap_or(p))
        .collect();
    let unreserved = kept
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    assert!(unreserved, "{encoded}");
    assert_eq!(encode("é"), "%C3%A9");
    assert_eq!(encode("\u{1F600}"), "%F0%9F%98%80");
    assert_eq!(encode(""), "");
}

#[test]
fn http_dates_parse_as_imf_fixdate_only() {
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777_000)
    );
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
        Some(1_835_481_599_000)
    );
    for bad in [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Mon, 29 Feb 2027 00:00:00 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:49:3x GMT",
        "Sun, 06 Nov 1994 08:49:37 GMTé",
        "",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
    assert_eq!(retry_after_ms("99999999999999999999999", 0), Some(u64::MAX));
    assert_eq!(retry_after_ms("-1", 0), None);
}

#[test]
fn backoff_is_the_schedule_and_bounded() {
    let p = RetryPolicy::default();
    let s = p.schedule();
    for failures in 1..=p.retries {
        for sample in [0.0, 0.3, 0.999] {
            let want = s.next_delay(failures, None, sample);
            assert_eq!(p.wait(failures, None, 0, sample), Some(want));
            assert!(want <= p.backoff_cap_ms && want <= p.max_wait_ms);
        }
    }
    assert_eq!(RetryPolicy::none().wait(1, None, 0, 0.5), None);
}

#[test]
fn the_budget_ends_retries_even_with_retries_left() {
    let policy = RetryPolicy {
        retries: 100,
        ..RetryPolicy::default()
    };
    let scope = ScopeId::new("s").unwrap();
    let mut x = pull(&scope, None, 10);
    let mut now = 0;
    let err = loop {
        // Each attempt takes 5 s before it fails.
        now += 5_000;
        let outcome = Err(TransportError::new(Failure::TimedOut, "read timed out"));
        match x.handle(&policy, outcome, now, 0.5) {
            Step::Wait(ms) => now += ms as i64,
            Step::Done(r) => break r.unwrap_err(),
        }
    };
    assert_eq!(err.detail(), Some(Detail::Timeout));
    assert!(now - 5_000 <= policy.budget_ms as i64 + 5_000, "{now}");
    assert!(x.attempts() < 10, "{}", x.attempts());
    assert!(err.to_string().contains("read timed out"), "{err}");
}

#[test]
fn the_sync_budget_ends_retries_the_call_budget_allows() {
    let policy = RetryPolicy::default();
    let scope = ScopeId::new("s").unwrap();
    let fail = || Err(TransportError::new(Failure::TimedOut, "read timed out"));
    // Most of the sync's budget already spent: the first wait (250-500 ms) does not fit.
    let mut x = pull(&scope, None, 10).with_run_spent(policy.run_budget_ms - 100);
    assert!(matches!(
        x.handle(&policy, fail(), 0, 0.5),
        Step::Done(Err(_))
    ));
    assert_eq!(x.retry_ms(), 0);
    // With room left, the call retries and reports the time it spent doing so.
    let mut x = status(&scope).with_run_spent(policy.run_budget_ms - 5_000);
    let Step::Wait(ms) = x.handle(&policy, fail(), 1_000, 0.5) else {
        panic!("no retry")
    };
    let end = 1_000 + ms as i64 + 2_000;
    // 404: the server has no status endpoint, a successful answer.
    let answer = Answer::new(404, b"{}".to_vec());
    assert!(matches!(
        x.handle(&policy, Ok(answer), end, 0.5),
        Step::Done(Ok(None))
    ));
    assert_eq!(x.retry_ms(), ms + 2_000);
}

#[test]
fn oversized_answers_are_rejected_without_decoding() {
    let scope = ScopeId::new("s").unwrap();
    let mut x = pull(&scope, None, 10);
    let big = Answer::new(200, vec![b' '; MAX_BODY + 1]);
    let Step::Done(Err(e)) = x.handle(&RetryPolicy::default(), Ok(big), 0, 0.5) else {
        panic!("expected an error");
    };
    assert_eq!(
        (e.kind(), e.detail()),
        (ErrorKind::Protocol, Some(Detail::BodyTooLarge))
    );
}

#[test]
fn the_body_limit_is_per_call() {
    let scope = ScopeId::new("s").unwrap();
    let page = br#"{"changes":[],"checkpoint":"1","has_more":false,"snapshot":{"count":0,"digest":"0000000000000000000000000000000000000000000000000000000000000000"}}"#;
    let mut x = pull(&scope, None, 10).with_max_body(page.len() - 1);
    assert_eq!(x.max_body(), page.len() - 1);
    let Step::Done(Err(e)) = x.handle(
        &RetryPolicy::none(),
        Ok(Answer::new(200, page.to_vec())),
        0,
        0.5,
    ) else {
        panic!("expected an error");
    };
    assert_eq!(e.detail(), Some(Detail::BodyTooLarge));
    assert!(
        e.to_string()
            .contains(&format!("larger than {} bytes", page.len() - 1)),
        "{e}"
    );
    let mut x = pull(&scope, None, 10).with_max_body(page.len());
    let step = x.handle(
        &RetryPolicy::none(),
        Ok(Answer::new(200, page.to_vec())),
        0,
        0.5,
    );
    assert!(
        matches!(step, Step::Done(Ok(Pulled::Page { .. }))),
        "{step:?}"
    );
}

#[test]
fn transport_sources_are_kept() {
    let scope = ScopeId::new("s").unwrap();
    let mut x = status(&scope);
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let t = TransportError::new(Failure::NotSent, "connect failed").with_source(io);
    let Step::Done(Err(e)) = x.handle(&RetryPolicy::none(), Err(t), 0, 0.5) else {
        panic!("expected an error");
    };
    assert_eq!(e.detail(), Some(Detail::Unreachable));
    assert_eq!(
        std::error::Error::source(&e).map(|s| s.to_string()),
        Some("refused".into())
    );
}
