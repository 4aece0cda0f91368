//! The protocol's behaviour as one table (feature `testing`): every status and header case
//! once, with the answers a server gives, attempt by attempt, and what the call must return.
//!
//! The engine's unit test runs it against [`super::Exchange`]; each transport runs it end to end
//! ([`check`] over its `HttpRemote`): tether-native against a loopback HTTP server answering
//! [`Case::answers`] in turn, tether-wasm through a fake `fetch`. A transport must send
//! [`Case::method`] and [`Case::target`] on every attempt, with `authorization: Bearer`
//! [`TOKEN`], make exactly `answers.len()` attempts, and return [`Case::expect`]. Transports
//! run the cases with [`policy`], whose waits are a few milliseconds.

use super::{Failure, RetryPolicy};
use crate::error::{Detail, ErrorKind};
use crate::remote::{Pulled, Remote};
use crate::types::{Checkpoint, Key, KeyRange, Mutation, Op, ScopeId};
use crate::Error;
use ErrorKind::{Auth, InvalidInput, Network, Protocol};

/// The scope of every case: a space, a slash, `!*'()` (kept by `encodeURIComponent`) and
/// non-ASCII, so that path encoding is checked end to end.
pub const SCOPE: &str = "org 1/é!*'()";
/// The token transports are built with.
pub const TOKEN: &str = "t0ken";
/// The pull limit of every case.
pub const LIMIT: u32 = 100;

/// The retry policy transports run the cases with: 2 retries, waits of 1-2 ms, and at most
/// 1 s waited for a `Retry-After`.
pub fn policy() -> RetryPolicy {
    RetryPolicy {
        retries: 2,
        backoff_base_ms: 2,
        backoff_cap_ms: 4,
        max_wait_ms: 1_000,
        budget_ms: 10_000,
        run_budget_ms: 10_000,
    }
}

/// One case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// What it checks.
    pub name: &'static str,
    /// The remote call.
    pub call: Call,
    /// The method sent.
    pub method: &'static str,
    /// Path and query sent.
    pub target: &'static str,
    /// What comes back, attempt by attempt; exactly these many attempts are made.
    pub answers: &'static [Reply],
    /// What the call returns.
    pub expect: Expect,
}

impl Case {
    /// Whether a reply is a transport failure (only the engine's unit test can fake those).
    pub fn has_failures(&self) -> bool {
        self.answers.iter().any(|r| matches!(r, Reply::Fail(_)))
    }
}

/// A call of the [`Remote`] trait, with the case's [`SCOPE`].
#[derive(Debug, Clone, Copy)]
pub enum Call {
    /// `pull(scope, checkpoint, LIMIT)`.
    Pull(Option<&'static str>),
    /// `push` of this many mutations without ids (an older replica; see [`mutations`]).
    Push(usize),
    /// `push` of this many mutations with ids (see [`identified_mutations`]).
    PushIdentified(usize),
    /// `status`.
    Status,
    /// `range_digest` of [`range`].
    RangeDigest,
    /// `range_records` of the whole scope.
    RangeRecords,
}

/// One attempt's outcome.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// An HTTP answer.
    Answer {
        /// Status.
        status: u16,
        /// `Retry-After` header.
        retry_after: Option<&'static str>,
        /// Body.
        body: &'static str,
    },
    /// No answer.
    Fail(Failure),
}

/// What the call returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// A page of one change.
    Page,
    /// [`Pulled::Reset`].
    Reset,
    /// One result per mutation.
    Pushed,
    /// `Ok(Some(_))` of an optional endpoint.
    Found,
    /// `Ok(None)`: the endpoint is not supported.
    Unsupported,
    /// An error.
    Fails {
        /// Its kind.
        kind: ErrorKind,
        /// Its detail.
        detail: Option<Detail>,
        /// Its status.
        status: Option<u16>,
        /// Bounds of its `retry_after_ms`, or `None` for none.
        retry_after_ms: Option<(u64, u64)>,
        /// A part of its message.
        message: &'static str,
    },
}

/// The mutations of [`Call::Push`].
pub fn mutations(n: usize) -> Vec<Mutation> {
    (0..n)
        .map(|i| Mutation {
            collection: "objects".into(),
            id: format!("m{i}"),
            op: Op::Put,
            data: Some(serde_json::Map::from_iter([("n".into(), i.into())])),
            base_version: None,
            mutation_id: None,
            replaces: None,
        })
        .collect()
}

/// The mutations of [`Call::PushIdentified`]: [`mutations`] named `c0ffee:{i}`.
pub fn identified_mutations(n: usize) -> Vec<Mutation> {
    let mut all = mutations(n);
    for (i, m) in all.iter_mut().enumerate() {
        m.mutation_id = Some(format!("c0ffee:{i}"));
    }
    all
}

/// The range of [`Call::RangeDigest`]: `[("objects", "a b"), ("objects", "z&y"))`.
pub fn range() -> KeyRange {
    KeyRange {
        from: Some(Key::new("objects", "a b")),
        to: Some(Key::new("objects", "z&y")),
    }
}

/// Runs `case`'s call on `remote` (which answers with `case.answers`) and compares the result
/// with `case.expect`; `Err` says how it differs.
pub async fn check<R: Remote>(remote: &R, case: &Case) -> Result<(), String> {
    let scope = ScopeId::new(SCOPE).map_err(|e| e.to_string())?;
    let got: Result<Expect, Error> = match case.call {
        Call::Pull(checkpoint) => {
            let checkpoint = checkpoint.map(|c| Checkpoint(c.into()));
            match remote.pull(&scope, checkpoint.as_ref(), LIMIT).await {
                Ok(Pulled::Page { page, bytes }) if page.changes.len() == 1 && bytes > 0 => {
                    Ok(Expect::Page)
                }
                Ok(Pulled::Page { page, bytes }) => {
                    return Err(format!("{}: odd page {page:?} of {bytes} bytes", case.name))
                }
                Ok(Pulled::Reset) => Ok(Expect::Reset),
                Err(e) => Err(e),
            }
        }
        Call::Push(n) | Call::PushIdentified(n) => {
            let mutations = match case.call {
                Call::PushIdentified(_) => identified_mutations(n),
                _ => mutations(n),
            };
            match remote.push(&scope, &mutations).await {
                Ok(r) if r.results.len() == n => Ok(Expect::Pushed),
                Ok(r) => {
                    return Err(format!(
                        "{}: {} results for {n}",
                        case.name,
                        r.results.len()
                    ))
                }
                Err(e) => Err(e),
            }
        }
        Call::Status => remote.status(&scope).await.map(found),
        Call::RangeDigest => remote.range_digest(&scope, &range()).await.map(found),
        Call::RangeRecords => remote
            .range_records(&scope, &KeyRange::all())
            .await
            .map(found),
    };
    let ok = match (&got, case.expect) {
        (Ok(g), e) => *g == e,
        (
            Err(err),
            Expect::Fails {
                kind,
                detail,
                status,
                retry_after_ms,
                message,
            },
        ) => {
            err.kind() == kind
                && err.detail() == detail
                && err.status() == status
                && match (err.retry_after_ms(), retry_after_ms) {
                    (None, None) => true,
                    (Some(ms), Some((lo, hi))) => lo <= ms && ms <= hi,
                    _ => false,
                }
                && err.to_string().contains(message)
        }
        (Err(_), _) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}: expected {:?}, got {got:?}",
            case.name, case.expect
        ))
    }
}

fn found<T>(v: Option<T>) -> Expect {
    match v {
        Some(_) => Expect::Found,
        None => Expect::Unsupported,
    }
}

/// The table.
pub fn cases() -> &'static [Case] {
    CASES
}

const fn answer(status: u16, body: &'static str) -> Reply {
    Reply::Answer {
        status,
        retry_after: None,
        body,
    }
}

const fn answer_after(status: u16, retry_after: &'static str, body: &'static str) -> Reply {
    Reply::Answer {
        status,
        retry_after: Some(retry_after),
        body,
    }
}

const fn fails(kind: ErrorKind, detail: Option<Detail>, status: Option<u16>) -> Expect {
    Expect::Fails {
        kind,
        detail,
        status,
        retry_after_ms: None,
        message: "",
    }
}

const fn fails_with(
    kind: ErrorKind,
    detail: Option<Detail>,
    status: Option<u16>,
    message: &'static str,
) -> Expect {
    Expect::Fails {
        kind,
        detail,
        status,
        retry_after_ms: None,
        message,
    }
}

const PAGE: &str = r#"{"changes":[{"collection":"objects","id":"o1","version":1,"updated_at":"2026-01-01T00:00:00.000Z","deleted":false,"data":{"n":1},"hash":"00"}],"checkpoint":"1","has_more":false,"remaining":0,"snapshot":{"count":1,"digest":"0000000000000000000000000000000000000000000000000000000000000000"}}"#;
const PUSHED: &str =
    r#"{"results":[{"status":"accepted","version":7,"updated_at":"2026-01-01T00:00:00.000Z"}]}"#;
const STATUS: &str = r#"{"count":1,"digest":"0000000000000000000000000000000000000000000000000000000000000000","version":1,"updated_at":null}"#;
const DIGEST: &str =
    r#"{"count":1,"digest":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
const RECORDS: &str = r#"{"records":[]}"#;
const BUSY: &str = r#"{"code":"busy","message":"try later"}"#;

const PULL: &str = "/v1/scopes/org%201%2F%C3%A9%21%2A%27%28%29/changes?limit=100";
const PULL_FROM: &str =
    "/v1/scopes/org%201%2F%C3%A9%21%2A%27%28%29/changes?limit=100&checkpoint=7%3A9%20%2B%2F";
const PUSH: &str = "/v1/scopes/org%201%2F%C3%A9%21%2A%27%28%29/mutations";
const STATUS_AT: &str = "/v1/scopes/org%201%2F%C3%A9%21%2A%27%28%29/status";
const DIGEST_AT: &str = "/v1/scopes/org%201%2F%C3%A9%21%2A%27%28%29/digest?from_collection=objects&from_id=a%20b&to_collection=objects&to_id=z%26y";
const RECORDS_AT: &str = "/v1/scopes/org%201%2F%C3%A9%21%2A%27%28%29/records";

/// 2100-01-01 00:00:00 GMT seen from any time between 2020 and 2060, in ms.
const FAR_FUTURE: (u64, u64) = (1_262_304_000_000, 2_524_608_000_000);

const CASES: &[Case] = &[
    Case {
        name: "pull: a page, scope encoded",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: the checkpoint is encoded like a path segment",
        call: Call::Pull(Some("7:9 +/")),
        method: "GET",
        target: PULL_FROM,
        answers: &[answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: 410 is a reset",
        call: Call::Pull(Some("7:9 +/")),
        method: "GET",
        target: PULL_FROM,
        answers: &[answer(
            410,
            r#"{"code":"reset","message":"resync","reset":true}"#,
        )],
        expect: Expect::Reset,
    },
    Case {
        name: "pull: malformed JSON",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(200, r#"{"changes": 5}"#)],
        expect: fails_with(Protocol, Some(Detail::Malformed), None, "malformed answer"),
    },
    Case {
        name: "pull: 401 is Auth, with the server's code and message",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(
            401,
            r#"{"code":"unauthorized","message":"bad token"}"#,
        )],
        expect: fails_with(Auth, None, Some(401), "unauthorized: bad token"),
    },
    Case {
        name: "status: 403 is Auth",
        call: Call::Status,
        method: "GET",
        target: STATUS_AT,
        answers: &[answer(403, r#"{"code":"forbidden","message":"no"}"#)],
        expect: fails_with(Auth, None, Some(403), "forbidden: no"),
    },
    Case {
        name: "pull: 404 means the required endpoint is missing",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(404, "no such route")],
        expect: fails_with(Protocol, Some(Detail::NotSupported), None, "no such route"),
    },
    Case {
        name: "pull: 400 is an unexpected status, never retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(400, r#"{"code":"bad_limit","message":"limit"}"#)],
        expect: fails_with(Protocol, Some(Detail::UnexpectedStatus), None, "bad_limit"),
    },
    Case {
        name: "pull: 503 is retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(503, BUSY), answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: 502 until the retries are used up",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(502, "bad gateway"), answer(502, ""), answer(502, "")],
        expect: fails_with(
            Network,
            Some(Detail::ServerError),
            Some(502),
            "after 3 attempts",
        ),
    },
    Case {
        name: "pull: 501 is not retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(501, "")],
        expect: fails(Protocol, Some(Detail::NotSupported), None),
    },
    Case {
        name: "pull: 408 is retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(408, ""), answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: 429 until the retries are used up",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer(429, BUSY), answer(429, BUSY), answer(429, BUSY)],
        expect: fails_with(
            Network,
            Some(Detail::RateLimited),
            Some(429),
            "busy: try later",
        ),
    },
    Case {
        name: "pull: Retry-After in seconds, short enough to wait",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer_after(500, "0", BUSY), answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: Retry-After longer than the longest wait is returned, not waited",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer_after(503, "120", BUSY)],
        expect: Expect::Fails {
            kind: Network,
            detail: Some(Detail::ServerError),
            status: Some(503),
            retry_after_ms: Some((120_000, 120_000)),
            message: "busy",
        },
    },
    Case {
        name: "pull: Retry-After as a past HTTP date is waited (0 ms)",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[
            answer_after(429, "Sun, 06 Nov 1994 08:49:37 GMT", BUSY),
            answer(200, PAGE),
        ],
        expect: Expect::Page,
    },
    Case {
        name: "status: Retry-After as a far HTTP date is returned",
        call: Call::Status,
        method: "GET",
        target: STATUS_AT,
        answers: &[answer_after(429, "Fri, 01 Jan 2100 00:00:00 GMT", BUSY)],
        expect: Expect::Fails {
            kind: Network,
            detail: Some(Detail::RateLimited),
            status: Some(429),
            retry_after_ms: Some(FAR_FUTURE),
            message: "busy",
        },
    },
    Case {
        name: "pull: a Retry-After that is neither is ignored (backoff)",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[answer_after(503, "soon", BUSY), answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "push: accepted",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(200, PUSHED)],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: results must match the mutations",
        call: Call::Push(2),
        method: "POST",
        target: PUSH,
        answers: &[answer(200, PUSHED)],
        expect: fails_with(Protocol, Some(Detail::Malformed), None, "1 results for 2"),
    },
    Case {
        name: "push: 413 is BodyTooLarge",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(
            413,
            r#"{"code":"body_too_large","message":"8 MiB"}"#,
        )],
        expect: fails_with(Protocol, Some(Detail::BodyTooLarge), None, "body_too_large"),
    },
    Case {
        name: "push: 500 may have been applied, not retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(500, r#"{"code":"storage_error","message":"disk"}"#)],
        expect: fails_with(
            Network,
            Some(Detail::ServerError),
            Some(500),
            "storage_error: disk",
        ),
    },
    Case {
        name: "push with ids: 500 is retried",
        call: Call::PushIdentified(1),
        method: "POST",
        target: PUSH,
        answers: &[
            answer(500, r#"{"code":"storage_error","message":"disk"}"#),
            answer(200, PUSHED),
        ],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: 503 was not applied, retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(503, BUSY), answer(200, PUSHED)],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: 429 was not applied, retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(429, BUSY), answer(200, PUSHED)],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: 408 was not received whole, retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(408, ""), answer(200, PUSHED)],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: 405 means pushes are not supported",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[answer(405, "")],
        expect: fails(Protocol, Some(Detail::NotSupported), None),
    },
    Case {
        name: "status: found",
        call: Call::Status,
        method: "GET",
        target: STATUS_AT,
        answers: &[answer(200, STATUS)],
        expect: Expect::Found,
    },
    Case {
        name: "status: 404 is not supported",
        call: Call::Status,
        method: "GET",
        target: STATUS_AT,
        answers: &[answer(404, "")],
        expect: Expect::Unsupported,
    },
    Case {
        name: "status: 410 is unexpected",
        call: Call::Status,
        method: "GET",
        target: STATUS_AT,
        answers: &[answer(410, "")],
        expect: fails(Protocol, Some(Detail::UnexpectedStatus), None),
    },
    Case {
        name: "range digest: found, range encoded",
        call: Call::RangeDigest,
        method: "GET",
        target: DIGEST_AT,
        answers: &[answer(200, DIGEST)],
        expect: Expect::Found,
    },
    Case {
        name: "range digest: 405 is not supported",
        call: Call::RangeDigest,
        method: "GET",
        target: DIGEST_AT,
        answers: &[answer(405, "")],
        expect: Expect::Unsupported,
    },
    Case {
        name: "range digest: malformed",
        call: Call::RangeDigest,
        method: "GET",
        target: DIGEST_AT,
        answers: &[answer(200, r#"{"count":"x"}"#)],
        expect: fails(Protocol, Some(Detail::Malformed), None),
    },
    Case {
        name: "range records: found",
        call: Call::RangeRecords,
        method: "GET",
        target: RECORDS_AT,
        answers: &[answer(200, RECORDS)],
        expect: Expect::Found,
    },
    Case {
        name: "range records: 501 is not supported",
        call: Call::RangeRecords,
        method: "GET",
        target: RECORDS_AT,
        answers: &[answer(501, "")],
        expect: Expect::Unsupported,
    },
    Case {
        name: "range records: a range too large to answer is BodyTooLarge, not retried",
        call: Call::RangeRecords,
        method: "GET",
        target: RECORDS_AT,
        answers: &[answer(
            400,
            r#"{"code":"range_too_large","message":"over 4194304 bytes"}"#,
        )],
        expect: fails_with(
            Protocol,
            Some(Detail::BodyTooLarge),
            None,
            "range_too_large",
        ),
    },
    Case {
        name: "range records: 500 is retried",
        call: Call::RangeRecords,
        method: "GET",
        target: RECORDS_AT,
        answers: &[answer(500, ""), answer(200, RECORDS)],
        expect: Expect::Found,
    },
    // Transport failures: the engine's unit test only.
    Case {
        name: "pull: not sent until the retries are used up",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[
            Reply::Fail(Failure::NotSent),
            Reply::Fail(Failure::NotSent),
            Reply::Fail(Failure::NotSent),
        ],
        expect: fails(Network, Some(Detail::Unreachable), None),
    },
    Case {
        name: "pull: a timeout is retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[Reply::Fail(Failure::TimedOut), answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: another failure is retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[Reply::Fail(Failure::Other), answer(200, PAGE)],
        expect: Expect::Page,
    },
    Case {
        name: "pull: a configuration failure (an untrusted certificate) is not retried",
        call: Call::Pull(None),
        method: "GET",
        target: PULL,
        answers: &[Reply::Fail(Failure::Config)],
        expect: fails(InvalidInput, None, None),
    },
    Case {
        name: "push with ids: a configuration failure is not retried",
        call: Call::PushIdentified(1),
        method: "POST",
        target: PUSH,
        answers: &[Reply::Fail(Failure::Config)],
        expect: fails(InvalidInput, None, None),
    },
    Case {
        name: "push: not sent is retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[Reply::Fail(Failure::NotSent), answer(200, PUSHED)],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: a timeout may have been applied, not retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[Reply::Fail(Failure::TimedOut)],
        expect: fails(Network, Some(Detail::Timeout), None),
    },
    Case {
        name: "push with ids: a timeout is retried (a repeat gets the original answer)",
        call: Call::PushIdentified(1),
        method: "POST",
        target: PUSH,
        answers: &[Reply::Fail(Failure::TimedOut), answer(200, PUSHED)],
        expect: Expect::Pushed,
    },
    Case {
        name: "push: another failure is not retried",
        call: Call::Push(1),
        method: "POST",
        target: PUSH,
        answers: &[Reply::Fail(Failure::Other)],
        expect: fails(Network, None, None),
    },
];
