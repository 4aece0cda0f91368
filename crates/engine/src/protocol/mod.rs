//! The HTTP sync protocol (docs/protocol.md) once, sans-IO: requests as plain
//! values, the decoding of answers into typed results and errors, and one retry policy. The
//! transports (ureq in `tether-native`, `fetch` in `tether-wasm`) only move bytes.
//!
//! Nothing here does I/O, reads a clock or draws a random number: a driver passes the time and a
//! random sample into [`Exchange::handle`], as a quinn-proto `Connection` is driven. For each
//! call of the [`crate::Remote`] trait the driver:
//!
//! 1. builds an [`Exchange`] with [`pull`], [`push`], [`status`], [`range_digest`] or
//!    [`range_records`];
//! 2. sends [`Exchange::request`]: its method, [`Request::url`], its headers plus its own
//!    `authorization: Bearer <token>` ([`bearer`]), and its body, under one deadline for the
//!    whole answer; at most [`Exchange::max_body`] + 1 bytes of the (inflated) answer are read,
//!    as they stream in, never more;
//! 3. hands what came back (an [`Answer`], or a [`TransportError`] when no answer came) to
//!    [`Exchange::handle`] with the current time in ms and a random number in `[0, 1)`;
//! 4. on [`Step::Wait`] sleeps that long and goes back to 2; on [`Step::Done`] returns it.
//!
//! ```
//! use tether_engine::protocol::{self, Answer, RetryPolicy, Step};
//! use tether_engine::{ErrorKind, Pulled, ScopeId};
//!
//! let scope = ScopeId::new("org 1").unwrap();
//! let policy = RetryPolicy::default();
//! let mut pull = protocol::pull(&scope, None, 100);
//! assert_eq!(pull.request().url("http://h/"), "http://h/v1/scopes/org%201/changes?limit=100");
//!
//! let busy = Answer::new(503, br#"{"code":"busy","message":"later"}"#.to_vec()).retry_after("1");
//! assert_eq!(pull.handle(&policy, Ok(busy), 0, 0.5), Step::Wait(1000), "Retry-After: 1");
//! let gone = Answer::new(410, br#"{"reset":true}"#.to_vec());
//! assert_eq!(pull.handle(&policy, Ok(gone), 1000, 0.5), Step::Done(Ok(Pulled::Reset)));
//!
//! let mut status = protocol::status(&scope);
//! let denied = Answer::new(403, br#"{"code":"forbidden","message":"not granted"}"#.to_vec());
//! let Step::Done(Err(e)) = status.handle(&policy, Ok(denied), 0, 0.5) else { panic!() };
//! assert_eq!((e.kind(), e.status()), (ErrorKind::Auth, Some(403)));
//! assert!(e.to_string().contains("forbidden: not granted"));
//! ```
//!
//! # Decisions
//!
//! - **Encoding.** Every path segment and query value is percent-encoded the same way ([`encode`]):
//!   RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) are kept, every other UTF-8 byte is
//!   `%XX`. (The browser used `encodeURIComponent`, which keeps `! ' ( ) *`; the server decodes
//!   both alike, but the bytes on the wire now match.)
//! - **Statuses.** 2xx is decoded (malformed JSON: `Protocol` [`Detail::Malformed`]; a push
//!   answered with another number of results than mutations sent is malformed too); 401/403
//!   `Auth`; 410 on a pull is [`Pulled::Reset`]; 408 `Network` [`Detail::Timeout`]; 413
//!   `Protocol` [`Detail::BodyTooLarge`]; 429 `Network` [`Detail::RateLimited`]; 5xx `Network`
//!   [`Detail::ServerError`]; anything else `Protocol` [`Detail::UnexpectedStatus`]. Messages
//!   name the request and carry the server's `{code, message}` (or the start of the body).
//! - **Optional endpoints.** Status, range digest and range records answered with one of
//!   [`NOT_SUPPORTED`] (404, 405, 501) are `Ok(None)`: the server lacks them. The same statuses
//!   on a pull or a push are `Protocol` [`Detail::NotSupported`]. (Native took 404/410, the
//!   browser 404/405/501; 410 only means "reset", and only on a pull.)
//! - **What is retried** ([`is_retried`]). GETs are idempotent: every transport failure, 408,
//!   429 and every 5xx but 501 (and 505) are retried. A push whose mutations all carry ids
//!   (protocol v1.1, [`crate::mutation`]) is idempotent too: the cloud answers a repeat with
//!   its original result, and a cloud that ignores ids rejects the repeat with the pushed state
//!   as `current`, which the replica takes as its own write. A push with a mutation without id
//!   is retried only when it cannot have been applied: the connection was never established
//!   ([`Failure::NotSent`]), 408 (the server did not receive the whole request), 429 and 503
//!   (refused before processing); timed out or answered 500/502/504 it fails at once (a
//!   `Network` error; the outbox keeps the mutations, so the next sync pushes them again).
//! - **Backoff** ([`RetryPolicy`]): the engine's [`Schedule`] with "equal jitter", 500 ms
//!   doubling to 8 s, 4 retries. (Native had its own 200 ms / 10 s formula, the browser
//!   `Schedule` with 500 ms / 15 s.) The random sample is the driver's.
//! - **`Retry-After`** is delay-seconds or an IMF-fixdate, parsed here against the driver's
//!   `now_ms` ([`retry_after_ms`]; the obsolete RFC 850 and asctime forms are not, and such a
//!   header is ignored). It is a floor under the backoff. (Native took seconds only.)
//! - **Longest wait** inside one call: [`RetryPolicy::max_wait_ms`], 10 s. A `Retry-After`
//!   above it is not waited out: the error goes back at once with `retry_after_ms`, and
//!   background sync waits instead. (Native 10 s, the browser 30 s.)
//! - **Budgets**: [`RetryPolicy::budget_ms`], 30 s from the end of the first attempt of one
//!   call; a retry that would end its wait later is not made. And per sync,
//!   [`RetryPolicy::run_budget_ms`], 120 s: the retry time of all the sync's calls, summed in
//!   the transport's [`RunBudget`] (reset by [`Remote::begin_run`](crate::Remote::begin_run),
//!   which the `Syncer` calls when a sync or verify starts). Once it is spent, each further
//!   call of that sync is made once, without retries: a sync whose calls keep failing and
//!   recovering ends instead of retrying page after page. Time spent getting answers is not
//!   counted: a long sync that makes progress is not failed by a clock. With the transport's
//!   deadline per attempt (natively `HttpOptions::timeout`, the whole answer) one call ends
//!   within 2 × deadline + budget, and a sync's retrying within `run_budget_ms` plus one
//!   deadline per call.
//! - **Transport failures** come in as a [`TransportError`]: not sent → `Network`
//!   [`Detail::Unreachable`], timed out → `Network` [`Detail::Timeout`], other (reset mid-way,
//!   a browser's opaque `TypeError`) → `Network` without detail; a request the transport cannot
//!   make as configured ([`Failure::Config`]: natively a URL it cannot use, a server
//!   certificate it does not trust) → `InvalidInput`, never retried (background sync stops on
//!   it, as on a bad token), with the transport's message saying what to change.
//! - **Body size**: answers above [`Exchange::max_body`] (default [`MAX_BODY`], 64 MiB) are
//!   `Protocol` [`Detail::BodyTooLarge`]. The limit counts inflated bytes and the transport
//!   stops reading one byte past it, so a gzip bomb costs at most the limit in memory. The
//!   largest answer a server sends is a page of 5,000 records (the reference server's page
//!   cap); at a few KB each that is about 20 MB of JSON, a third of the limit. (It was 512 MiB,
//!   read whole before it was compared: half a gigabyte of memory per hostile answer.)

use serde::de::DeserializeOwned;

use crate::digest::Snapshot;
use crate::error::{Detail, Error, Result, Source};
use crate::remote::Pulled;
use crate::types::{Change, Checkpoint, KeyRange, Mutation, PushResponse, RemoteStatus, ScopeId};

#[cfg(any(test, feature = "testing"))]
pub mod cases;
mod retry;
mod subset;

pub use retry::{is_retried, parse_http_date, retry_after_ms, RetryPolicy, RunBudget};
pub use subset::{pull_subset, pull_subset_wait, subset_digest, subset_records};

#[doc(no_inline)]
pub use crate::schedule::Schedule;

/// Statuses by which a server says it does not implement an optional endpoint.
pub const NOT_SUPPORTED: [u16; 3] = [404, 405, 501];

/// Default largest answer body, inflated: 64 MiB, about three times a page of 5,000 records of
/// 4 KB. Transports read at most one byte more, so the excess is seen without reading it all;
/// [`Exchange::with_max_body`] changes it per call.
pub const MAX_BODY: usize = 64 << 20;

// The largest page (the budget reached just before its largest change) fits what clients read.
const _: () = {
    use crate::limits::{MAX_KEY_BYTES, MAX_RECORD_BYTES, PAGE_BYTES};
    assert!(PAGE_BYTES + MAX_RECORD_BYTES + MAX_KEY_BYTES < MAX_BODY);
};

/// The endpoints of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/scopes/{scope}/changes`: required.
    Pull,
    /// `POST /v1/scopes/{scope}/mutations`: required of a remote that accepts pushes.
    Push {
        /// Mutations sent, hence results expected.
        mutations: usize,
        /// Every mutation carries an id: the cloud answers a repeat with its original result,
        /// so the push is idempotent.
        identified: bool,
    },
    /// `GET /v1/scopes/{scope}/status`: optional.
    Status,
    /// `GET /v1/scopes/{scope}/digest`: optional.
    RangeDigest,
    /// `GET /v1/scopes/{scope}/records`: optional.
    RangeRecords,
}

impl Endpoint {
    /// Whether sending the request twice has the effect of sending it once.
    pub fn is_idempotent(self) -> bool {
        match self {
            Endpoint::Push { identified, .. } => identified,
            _ => true,
        }
    }

    /// Whether a server may lack the endpoint ([`NOT_SUPPORTED`] then means `Ok(None)`).
    pub fn is_optional(self) -> bool {
        matches!(
            self,
            Endpoint::Status | Endpoint::RangeDigest | Endpoint::RangeRecords
        )
    }
}

/// An HTTP method of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// `"GET"` or `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One request to send, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The method.
    pub method: Method,
    /// The path, each segment percent-encoded, e.g. `/v1/scopes/org%201/changes`.
    pub path: String,
    /// The query without `?`, each value percent-encoded; empty when there is none.
    pub query: String,
    /// Headers to send besides `authorization`, lowercase names.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body (empty for GETs).
    pub body: Vec<u8>,
}

impl Request {
    /// Path and query, e.g. `/v1/scopes/s/changes?limit=100`.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The full URL under `base` (e.g. `https://sync.example.com`; a trailing `/` is dropped).
    pub fn url(&self, base: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.target())
    }
}

/// The value of the `authorization` header for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// What came back: the status, the headers that matter, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The body, decompressed (at most [`Exchange::max_body`] + 1 bytes need be read).
    pub body: Vec<u8>,
}

impl Answer {
    /// An answer without `Retry-After`.
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Answer {
            status,
            retry_after: None,
            body,
        }
    }

    /// The same answer with a `Retry-After` header.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }
}

/// How a request failed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was established (refused, DNS, offline): the server saw nothing.
    NotSent,
    /// The request was sent, or may have been, and the answer took too long.
    TimedOut,
    /// Anything else (connection reset, a browser's opaque network `TypeError`): the request
    /// may have reached the server.
    Other,
    /// The transport cannot make this request as configured: a URL it cannot use, or a TLS
    /// connection it refuses (a server certificate it does not trust: unknown issuer, another
    /// host name, expired). No request reached the server, and no retry can succeed until the
    /// configuration changes; the transport's message says what to change.
    Config,
}

/// A failure of the transport, for the protocol to classify.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportError {
    /// What kind of failure.
    pub failure: Failure,
    /// What the transport said.
    pub message: String,
    /// The transport's own error.
    pub source: Option<Source>,
}

impl TransportError {
    /// A failure without source.
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        TransportError {
            failure,
            message: message.into(),
            source: None,
        }
    }

    /// The same failure with the transport's error as its source.
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Source::new(e));
        self
    }
}

/// What the driver does next.
#[derive(Debug, PartialEq)]
pub enum Step<T> {
    /// Sleep this many milliseconds, then send the request again.
    Wait(u64),
    /// The call is over.
    Done(Result<T>),
}

/// One call: its request, the decoding of its answer, and its retry state.
#[derive(Debug, Clone)]
pub struct Exchange<T> {
    request: Request,
    decode: fn(&Request, &Answer) -> Option<Result<T>>,
    attempts: u32,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    /// Retry time the sync had spent before this call.
    run_spent_ms: u64,
    max_body: usize,
}

impl<T> Exchange<T> {
    /// The request to send (the same on every attempt).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Largest answer body accepted, inflated ([`MAX_BODY`] unless changed). A transport reads
    /// at most one byte more and hands that over: the excess is refused without reading it all.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The same call, made when the sync has already spent `spent_ms` retrying (a transport
    /// passes [`RunBudget::spent_ms`]): its retries stop where the sync's budget,
    /// [`RetryPolicy::run_budget_ms`], ends.
    pub fn with_run_spent(mut self, spent_ms: u64) -> Self {
        self.run_spent_ms = spent_ms;
        self
    }

    /// Time this call has spent retrying: from the end of its first attempt to the end of its
    /// last (0 without a retry). A transport adds it to its [`RunBudget`] when the call ends.
    pub fn retry_ms(&self) -> u64 {
        match (self.first_ms, self.last_ms) {
            (Some(first), Some(last)) => u64::try_from(last.saturating_sub(first)).unwrap_or(0),
            _ => 0,
        }
    }

    /// The same call with another body limit.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Attempts handled so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Takes the outcome of one attempt: decodes it, or says how long to wait before the next.
    /// `now_ms` is the current time (ms since the epoch; `Retry-After` dates and the budget are
    /// measured against it), `sample` a random number in `[0, 1)` for the jitter.
    pub fn handle(
        &mut self,
        policy: &RetryPolicy,
        outcome: std::result::Result<Answer, TransportError>,
        now_ms: i64,
        sample: f64,
    ) -> Step<T> {
        self.attempts += 1;
        let first_ms = *self.first_ms.get_or_insert(now_ms);
        self.last_ms = Some(now_ms);
        let endpoint = self.request.endpoint;
        let err = match outcome {
            Ok(a) if a.body.len() > self.max_body => {
                return Step::Done(Err(Error::protocol(format!(
                    "{}: answer larger than {} bytes",
                    self.what(),
                    self.max_body
                ))
                .with_detail(Detail::BodyTooLarge)))
            }
            Ok(a) => {
                let retry_after = a
                    .retry_after
                    .as_deref()
                    .and_then(|v| retry_after_ms(v, now_ms));
                if !is_retried(endpoint, Ok(a.status)) {
                    let decoded = (self.decode)(&self.request, &a);
                    return Step::Done(
                        decoded
                            .unwrap_or_else(|| Err(status_error(&self.request, &a, retry_after))),
                    );
                }
                status_error(&self.request, &a, retry_after)
            }
            Err(t) => {
                let retried = is_retried(endpoint, Err(t.failure));
                let err = transport_error(&self.request, t);
                if !retried {
                    return Step::Done(Err(err));
                }
                err
            }
        };
        let elapsed = u64::try_from(now_ms.saturating_sub(first_ms)).unwrap_or(0);
        match policy.wait(
            self.attempts,
            err.retry_after_ms(),
            now_ms - first_ms,
            sample,
        ) {
            Some(ms)
                if self.run_spent_ms.saturating_add(elapsed).saturating_add(ms)
                    <= policy.run_budget_ms =>
            {
                Step::Wait(ms)
            }
            _ => Step::Done(Err(after_attempts(err, self.attempts))),
        }
    }

    fn what(&self) -> String {
        format!("{} {}", self.request.method.as_str(), self.request.target())
    }
}

/// A pull of the page after `checkpoint` (from the start when `None`), at most `limit` changes.
pub fn pull(scope: &ScopeId, checkpoint: Option<&Checkpoint>, limit: u32) -> Exchange<Pulled> {
    let limit = limit.to_string();
    let mut query = vec![("limit", limit.as_str())];
    if let Some(c) = checkpoint {
        query.push(("checkpoint", c.as_str()));
    }
    get(Endpoint::Pull, scope, "changes", &query, decode_pull)
}

/// A live pull: like [`pull`], and when nothing follows `checkpoint` the server waits up to
/// `wait_s` seconds for a change (`wait=S`, protocol v1.1; the reference server allows 60).
/// The wait is cut to end 5 s inside `deadline_ms`, the transport's deadline of one attempt,
/// so that an idle wait is never a timeout.
pub fn pull_wait(
    scope: &ScopeId,
    checkpoint: Option<&Checkpoint>,
    limit: u32,
    wait_s: u32,
    deadline_ms: u64,
) -> Exchange<Pulled> {
    let room = u32::try_from((deadline_ms / 1000).saturating_sub(5)).unwrap_or(u32::MAX);
    let limit = limit.to_string();
    let wait = wait_s.min(room).to_string();
    let mut query = vec![("limit", limit.as_str()), ("wait", wait.as_str())];
    if let Some(c) = checkpoint {
        query.push(("checkpoint", c.as_str()));
    }
    get(Endpoint::Pull, scope, "changes", &query, decode_pull)
}

/// A push of `mutations`; the answer must hold one result per mutation.
pub fn push(scope: &ScopeId, mutations: &[Mutation]) -> Result<Exchange<PushResponse>> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        mutations: &'a [Mutation],
    }
    let body = serde_json::to_vec(&Body { mutations })
        .map_err(|e| Error::invalid(format!("cannot encode mutations: {e}")))?;
    Ok(exchange(
        Request {
            endpoint: Endpoint::Push {
                mutations: mutations.len(),
                identified: mutations.iter().all(|m| m.mutation_id.is_some()),
            },
            method: Method::Post,
            path: scope_path(scope, "mutations"),
            query: String::new(),
            headers: vec![
                ("accept", "application/json"),
                ("content-type", "application/json"),
            ],
            body,
        },
        decode_push,
    ))
}

/// The cloud's status of a scope (`None`: the server has no status endpoint).
pub fn status(scope: &ScopeId) -> Exchange<Option<RemoteStatus>> {
    get(Endpoint::Status, scope, "status", &[], decode_optional)
}

/// Count and digest of the live records in `range` (`None`: not supported).
pub fn range_digest(scope: &ScopeId, range: &KeyRange) -> Exchange<Option<Snapshot>> {
    let query = range_query(range);
    get(
        Endpoint::RangeDigest,
        scope,
        "digest",
        &query,
        decode_optional,
    )
}

/// The live records in `range` (`None`: not supported).
pub fn range_records(scope: &ScopeId, range: &KeyRange) -> Exchange<Option<Vec<Change>>> {
    let query = range_query(range);
    get(
        Endpoint::RangeRecords,
        scope,
        "records",
        &query,
        decode_records,
    )
}

/// Percent-encodes a path segment or query value: RFC 3986 unreserved characters are kept,
/// every other UTF-8 byte becomes `%XX` (uppercase hex).
///
/// ```
/// assert_eq!(tether_engine::protocol::encode("a/b c!é~"), "a%2Fb%20c%21%C3%A9~");
/// ```
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

fn exchange<T>(
    request: Request,
    decode: fn(&Request, &Answer) -> Option<Result<T>>,
) -> Exchange<T> {
    Exchange {
        request,
        decode,
        attempts: 0,
        first_ms: None,
        last_ms: None,
        run_spent_ms: 0,
        max_body: MAX_BODY,
    }
}

fn get<T>(
    endpoint: Endpoint,
    scope: &ScopeId,
    tail: &str,
    query: &[(&str, &str)],
    decode: fn(&Request, &Answer) -> Option<Result<T>>,
) -> Exchange<T> {
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    exchange(
        Request {
            endpoint,
            method: Method::Get,
            path: scope_path(scope, tail),
            query,
            headers: vec![("accept", "application/json")],
            body: Vec::new(),
        },
        decode,
    )
}

fn scope_path(scope: &ScopeId, tail: &str) -> String {
    format!("/v1/scopes/{}/{tail}", encode(scope.as_str()))
}

/// A key range as `from_collection`, `from_id`, `to_collection`, `to_id` (docs/server.md).
fn range_query(range: &KeyRange) -> Vec<(&'static str, &str)> {
    let mut q = Vec::new();
    if let Some(k) = &range.from {
        q.extend([
            ("from_collection", k.collection.as_str()),
            ("from_id", k.id.as_str()),
        ]);
    }
    if let Some(k) = &range.to {
        q.extend([
            ("to_collection", k.collection.as_str()),
            ("to_id", k.id.as_str()),
        ]);
    }
    q
}

// The decoders answer the statuses with a meaning of their own (2xx, and 410 on a pull, and
// the not-supported statuses of optional endpoints); `None` leaves the status to
// `status_error`.

fn decode_pull(r: &Request, a: &Answer) -> Option<Result<Pulled>> {
    match a.status {
        410 => Some(Ok(Pulled::Reset)),
        200..=299 => Some(json(r, a).map(|page| Pulled::Page {
            page,
            bytes: a.body.len() as u64,
        })),
        _ => None,
    }
}

fn decode_push(r: &Request, a: &Answer) -> Option<Result<PushResponse>> {
    if !(200..=299).contains(&a.status) {
        return None;
    }
    let sent = match r.endpoint {
        Endpoint::Push { mutations, .. } => mutations,
        _ => 0,
    };
    Some(json::<PushResponse>(r, a).and_then(|p| {
        if p.results.len() == sent {
            Ok(p)
        } else {
            Err(Error::protocol(format!(
                "{} {}: {} results for {sent} mutations",
                r.method.as_str(),
                r.target(),
                p.results.len()
            ))
            .with_detail(Detail::Malformed))
        }
    }))
}

fn decode_optional<T: DeserializeOwned>(r: &Request, a: &Answer) -> Option<Result<Option<T>>> {
    match a.status {
        s if NOT_SUPPORTED.contains(&s) => Some(Ok(None)),
        200..=299 => Some(json(r, a).map(Some)),
        _ => None,
    }
}

fn decode_records(r: &Request, a: &Answer) -> Option<Result<Option<Vec<Change>>>> {
    #[derive(serde::Deserialize)]
    struct Records {
        records: Vec<Change>,
    }
    // The range's records are more than one answer may carry (by count or by bytes): the
    // same as an answer over the size a client reads, and the repair asks for smaller ranges.
    if a.status == 400 && error_code(&a.body).as_deref() == Some("range_too_large") {
        return Some(Err(Error::protocol(format!(
            "{} {}: HTTP 400: {}",
            r.method.as_str(),
            r.target(),
            error_text(&a.body)
        ))
        .with_detail(Detail::BodyTooLarge)));
    }
    decode_optional::<Records>(r, a).map(|res| res.map(|o| o.map(|r| r.records)))
}

/// The `code` of an error body, if it is one.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Coded {
        code: String,
    }
    serde_json::from_slice::<Coded>(body).ok().map(|c| c.code)
}

fn json<T: DeserializeOwned>(r: &Request, a: &Answer) -> Result<T> {
    serde_json::from_slice(&a.body).map_err(|e| {
        Error::protocol(format!(
            "{} {}: malformed answer: {e}",
            r.method.as_str(),
            r.target()
        ))
        .with_detail(Detail::Malformed)
        .with_source(e)
    })
}

/// The error of a status that the endpoint's decoder left alone.
fn status_error(r: &Request, a: &Answer, retry_after_ms: Option<u64>) -> Error {
    let status = a.status;
    let mut message = format!(
        "{} {}: HTTP {status}: {}",
        r.method.as_str(),
        r.target(),
        error_text(&a.body)
    );
    let network = |message: String, detail| Error::Network {
        message,
        status: Some(status),
        retry_after_ms,
        detail: Some(detail),
        source: None,
    };
    let protocol = |message: String, detail| Error::protocol(message).with_detail(detail);
    match status {
        401 | 403 => Error::Auth {
            message,
            status: Some(status),
        },
        408 => network(message, Detail::Timeout),
        429 => network(message, Detail::RateLimited),
        s if NOT_SUPPORTED.contains(&s) => {
            message.push_str(" (the server does not implement this endpoint)");
            protocol(message, Detail::NotSupported)
        }
        413 => protocol(message, Detail::BodyTooLarge),
        500..=599 => network(message, Detail::ServerError),
        _ => protocol(message, Detail::UnexpectedStatus),
    }
}

fn transport_error(r: &Request, t: TransportError) -> Error {
    let message = format!("{} {}: {}", r.method.as_str(), r.target(), t.message);
    if t.failure == Failure::Config {
        return Error::invalid(message);
    }
    Error::Network {
        message,
        status: None,
        retry_after_ms: None,
        detail: match t.failure {
            Failure::NotSent => Some(Detail::Unreachable),
            Failure::TimedOut => Some(Detail::Timeout),
            Failure::Other | Failure::Config => None,
        },
        source: t.source,
    }
}

fn after_attempts(mut err: Error, attempts: u32) -> Error {
    if let (Error::Network { message, .. }, 2..) = (&mut err, attempts) {
        message.push_str(&format!(" (after {attempts} attempts)"));
    }
    err
}

/// `code: message` from a JSON error body, or the start of the body as text.
fn error_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        code: String,
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<ApiError>(body) {
        return format!("{}: {}", e.code, e.message);
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests;
