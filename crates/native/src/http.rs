//! [`HttpRemote`]: the engine's [`Remote`] over the HTTP sync protocol (DESIGN.md, "Sync
//! protocol (v1)"), with blocking `ureq`.
//!
//! Its async methods do the blocking call and return a ready future; the [`crate::Replica`]
//! facade drives them on the caller's thread. Retryable failures (connection errors, timeouts,
//! 5xx, 429) are retried with exponential backoff and jitter, honouring `Retry-After`; 4xx
//! answers never are. Every failure maps to the engine's typed errors: `Network` (with status
//! and `Retry-After`), `Auth` for 401/403, `Protocol` for malformed answers and other 4xx, and
//! `410` to [`Pulled::Reset`].
//!
//! ```no_run
//! use tether_native::http::HttpRemote;
//! let remote = HttpRemote::new("http://127.0.0.1:8080", "secret");
//! ```

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tether_engine::{
    Change, Checkpoint, Detail, Error, KeyRange, Mutation, Page, Pulled, PushRequest, PushResponse,
    Remote, RemoteStatus, Result, ScopeId, Snapshot,
};

/// Largest response body read (a page of 5,000 large records fits many times over).
const MAX_BODY: u64 = 512 << 20;

/// Timeouts, retries and compression of an [`HttpRemote`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed between bytes of an answer.
    pub read_timeout: Duration,
    /// Retries after the first attempt of a retryable failure.
    pub retries: u32,
    /// First backoff delay; doubles on each retry.
    pub backoff: Duration,
    /// Longest backoff delay, and the longest `Retry-After` honoured by waiting (a longer one
    /// is returned to the caller in [`Error::Network`]'s `retry_after_ms`).
    pub max_backoff: Duration,
    /// Ask for gzip-compressed answers.
    pub gzip: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            gzip: true,
        }
    }
}

/// A remote reached over HTTP: base URL plus bearer token.
#[derive(Debug, Clone)]
pub struct HttpRemote {
    base: String,
    token: String,
    agent: ureq::Agent,
    options: HttpOptions,
}

/// A raw answer: status, `Retry-After`, and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl HttpRemote {
    /// A remote at `base_url` (e.g. `http://127.0.0.1:8080`) using `token`, default options.
    pub fn new(base_url: &str, token: &str) -> Self {
        Self::with_options(base_url, token, HttpOptions::default())
    }

    /// A remote with explicit options.
    pub fn with_options(base_url: &str, token: &str, options: HttpOptions) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(options.connect_timeout)
            .timeout_read(options.read_timeout)
            .build();
        HttpRemote {
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
            options,
        }
    }

    fn url(&self, scope: &ScopeId, endpoint: &str) -> String {
        format!(
            "{}/v1/scopes/{}/{endpoint}",
            self.base,
            encode_segment(scope.as_str())
        )
    }

    /// One request with retries. `idempotent` requests are retried on any retryable failure;
    /// others only when the request cannot have reached the server (connection refused, DNS)
    /// or the server said so (429, 503).
    fn call(
        &self,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        idempotent: bool,
    ) -> Result<Answer> {
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .agent
                .request(method, url)
                .set("authorization", &format!("Bearer {}", self.token));
            if !self.options.gzip {
                req = req.set("accept-encoding", "identity");
            }
            for (k, v) in query {
                req = req.query(k, v);
            }
            let sent = match body {
                Some(b) => req.set("content-type", "application/json").send_bytes(b),
                None => req.call(),
            };
            let (err, retry_after) = match sent {
                Ok(resp) => return read_answer(resp),
                Err(ureq::Error::Status(status, resp)) => {
                    let retry_after = retry_after_ms(&resp);
                    let answer = read_answer(resp)?;
                    let retryable = status == 429 || status == 503 || (status >= 500 && idempotent);
                    if !retryable {
                        return Ok(answer);
                    }
                    (
                        Error::Network {
                            message: format!(
                                "{method} {url}: HTTP {status}: {}",
                                error_text(&answer.body)
                            ),
                            status: Some(status),
                            retry_after_ms: retry_after,
                            detail: Some(if status == 429 {
                                Detail::RateLimited
                            } else {
                                Detail::ServerError
                            }),
                            source: None,
                        },
                        retry_after,
                    )
                }
                Err(ureq::Error::Transport(t)) => {
                    let unsent = matches!(
                        t.kind(),
                        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns
                    );
                    let e = Error::network(format!("{method} {url}: {t}"));
                    if !idempotent && !unsent {
                        return Err(e);
                    }
                    (e, None)
                }
            };
            if attempt >= self.options.retries {
                return Err(err);
            }
            let backoff = self.backoff(attempt);
            let wait = match retry_after {
                Some(ms) if Duration::from_millis(ms) > self.options.max_backoff => {
                    return Err(err)
                }
                Some(ms) => Duration::from_millis(ms).max(backoff),
                None => backoff,
            };
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// `backoff * 2^attempt`, capped, with "equal jitter": half fixed, half random, so that
    /// many clients failing together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .options
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.options.max_backoff);
        let half = full / 2;
        half + half.mul_f64(jitter())
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        scope: &ScopeId,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<(Option<T>, u16, u64)> {
        let url = self.url(scope, endpoint);
        let answer = self.call("GET", &url, query, None, true)?;
        let n = answer.body.len() as u64;
        match answer.status {
            200..=299 => Ok((Some(parse(&url, &answer.body)?), answer.status, n)),
            404 | 410 => Ok((None, answer.status, n)),
            s => Err(status_error(s, &url, &answer.body)),
        }
    }
}

impl Remote for HttpRemote {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(c) = checkpoint {
            query.push(("checkpoint", c.as_str()));
        }
        match self.get_json::<Page>(scope, "changes", &query)? {
            (Some(page), _, bytes) => Ok(Pulled::Page { page, bytes }),
            (None, 410, _) => Ok(Pulled::Reset),
            (None, status, _) => Err(Error::protocol(format!(
                "pull of scope {scope}: HTTP {status}, the server has no changes endpoint"
            ))),
        }
    }

    fn can_push(&self) -> bool {
        true
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        let url = self.url(scope, "mutations");
        let body = serde_json::to_vec(&PushRequest {
            mutations: mutations.to_vec(),
        })
        .map_err(|e| Error::invalid(format!("cannot encode mutations: {e}")))?;
        let answer = self.call("POST", &url, &[], Some(&body), false)?;
        if !(200..300).contains(&answer.status) {
            return Err(status_error(answer.status, &url, &answer.body));
        }
        let response: PushResponse = parse(&url, &answer.body)?;
        if response.results.len() != mutations.len() {
            return Err(Error::protocol(format!(
                "{url}: {} results for {} mutations",
                response.results.len(),
                mutations.len()
            )));
        }
        Ok(response)
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        Ok(self.get_json(scope, "status", &[])?.0)
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        Ok(self.get_json(scope, "digest", &range_query(range))?.0)
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        #[derive(serde::Deserialize)]
        struct Records {
            records: Vec<Change>,
        }
        Ok(self
            .get_json::<Records>(scope, "records", &range_query(range))?
            .0
            .map(|r| r.records))
    }
}

/// A key range as query parameters: `from_collection`, `from_id`, `to_collection`, `to_id`.
fn range_query(range: &KeyRange) -> Vec<(&str, &str)> {
    let mut q = Vec::new();
    if let Some(k) = &range.from {
        q.push(("from_collection", k.collection.as_str()));
        q.push(("from_id", k.id.as_str()));
    }
    if let Some(k) = &range.to {
        q.push(("to_collection", k.collection.as_str()));
        q.push(("to_id", k.id.as_str()));
    }
    q
}

fn read_answer(resp: ureq::Response) -> Result<Answer> {
    let status = resp.status();
    let url = resp.get_url().to_string();
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::network(format!("{url}: reading the answer failed: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(Error::protocol(format!(
            "{url}: answer larger than {MAX_BODY} bytes"
        )));
    }
    Ok(Answer { status, body })
}

fn retry_after_ms(resp: &ureq::Response) -> Option<u64> {
    resp.header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

fn parse<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::protocol(format!("{url}: malformed answer: {e}")))
}

/// The error for a non-retryable, non-success status.
fn status_error(status: u16, url: &str, body: &[u8]) -> Error {
    let message = format!("{url}: HTTP {status}: {}", error_text(body));
    match status {
        401 | 403 => Error::Auth {
            message,
            status: Some(status),
        },
        429 | 500..=599 => Error::Network {
            message,
            status: Some(status),
            retry_after_ms: None,
            detail: Some(if status == 429 {
                Detail::RateLimited
            } else {
                Detail::ServerError
            }),
            source: None,
        },
        _ => Error::protocol(message),
    }
}

/// `code: message` from a JSON error body, or the start of the body as text.
fn error_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        code: String,
        message: String,
    }
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => format!("{}: {}", e.code, e.message),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A number in `[0, 1)` that differs between calls and processes. Jitter needs no quality,
/// only spread, so the standard library's randomly keyed hasher is enough.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("org-1"), "org-1");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let r = HttpRemote::new("http://127.0.0.1:1", "t");
        for attempt in 0..10 {
            let full = Duration::from_millis(200 * (1 << attempt)).min(Duration::from_secs(10));
            let b = r.backoff(attempt);
            assert!(
                b >= full / 2 && b <= full,
                "attempt {attempt}: {b:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        let body = br#"{"code":"forbidden","message":"no"}"#;
        assert!(matches!(
            status_error(403, "u", body),
            Error::Auth {
                status: Some(403),
                ..
            }
        ));
        assert!(matches!(
            status_error(400, "u", body),
            Error::Protocol { .. }
        ));
        assert!(matches!(
            status_error(502, "u", b"x"),
            Error::Network {
                status: Some(502),
                ..
            }
        ));
        assert!(status_error(401, "u", body)
            .to_string()
            .contains("forbidden: no"));
    }

    #[test]
    fn unreachable_server_is_a_network_error_after_retries() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let r = HttpRemote::with_options(
            "http://127.0.0.1:1",
            "t",
            HttpOptions {
                retries: 2,
                backoff: Duration::from_millis(1),
                ..HttpOptions::default()
            },
        );
        let scope = ScopeId::new("s").unwrap();
        let err = futures_executor::block_on(r.pull(&scope, None, 10)).unwrap_err();
        assert!(
            matches!(err, Error::Network { status: None, .. }),
            "{err:?}"
        );
    }
}
