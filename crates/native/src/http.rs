//! [`HttpRemote`]: the engine's [`Remote`] over HTTP with blocking `ureq`. The protocol
//! (requests, decoding, retry policy) is [`tether_engine::protocol`]; this file only moves
//! bytes, sleeps when told to, and passes in the time and a jitter sample.
//!
//! Its async methods do the blocking call and return a ready future; the [`crate::Replica`]
//! facade drives them on the caller's thread.
//!
//! ```no_run
//! use tether_native::http::HttpRemote;
//! let remote = HttpRemote::new("http://127.0.0.1:8080", "secret");
//! ```

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

pub use tether_engine::protocol::RetryPolicy;
use tether_engine::protocol::{
    self, Answer, Exchange, Failure, Method, Request, RunBudget, Step, TransportError, MAX_BODY,
};
use tether_engine::{
    Change, Checkpoint, KeyRange, Mutation, Pulled, PushResponse, Remote, RemoteStatus, Result,
    ScopeId, Snapshot,
};

/// Timeouts, limits, compression and retry policy of an [`HttpRemote`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time allowed to open a connection (within [`HttpOptions::timeout`]).
    pub connect_timeout: Duration,
    /// Deadline of one attempt, from sending the request to the last byte of the answer,
    /// on a new or a reused connection: an answer that stalls or trickles is a timeout when
    /// it passes (default 60 s). One call, with its retries, ends within twice this plus
    /// [`RetryPolicy::budget_ms`].
    pub timeout: Duration,
    /// Largest answer accepted, counted in inflated bytes while they stream in (default
    /// [`protocol::MAX_BODY`], 64 MiB); memory per answer stays under it.
    pub max_body: usize,
    /// Ask for gzip-compressed answers.
    pub gzip: bool,
    /// Retries, backoff, longest wait and budget (the protocol's one policy).
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_body: MAX_BODY,
            gzip: true,
            retry: RetryPolicy::default(),
        }
    }
}

/// A remote reached over HTTP: base URL plus bearer token.
///
/// A pull runs on a thread of its own, so that the next page downloads while the sync writes
/// the current one (the engine asks for it before the write); every other call runs on the
/// caller's thread.
pub struct HttpRemote {
    inner: Arc<Inner>,
}

/// The remote's state, shared with the thread of a pull in flight.
#[derive(Debug, Clone)]
struct Inner {
    base: String,
    token: Token,
    agent: ureq::Agent,
    options: HttpOptions,
    budget: RunBudget,
}

/// A clone is a remote of its own: same server and options, its own retry budget.
impl Clone for HttpRemote {
    fn clone(&self) -> Self {
        HttpRemote {
            inner: Arc::new(Inner::clone(&self.inner)),
        }
    }
}

impl std::fmt::Debug for HttpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// A function that returns the current bearer token (e.g. from an OAuth refresh).
pub type TokenFn = Arc<dyn Fn() -> Result<String> + Send + Sync>;

/// Where the bearer token comes from.
#[derive(Clone)]
enum Token {
    Fixed(String),
    Fn(TokenFn),
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Token::Fixed(_) => "Fixed(..)",
            Token::Fn(_) => "Fn(..)",
        })
    }
}

impl HttpRemote {
    /// A remote whose bearer token comes from `token`, called before every request; after a
    /// `401` it is called once more and the request sent again (a token that expired since it
    /// was handed out), then the `Auth` error stands. An error of the function is returned as
    /// is (make it `Error::Auth` to stop background sync).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tether_native::http::{HttpOptions, HttpRemote};
    /// let remote = HttpRemote::with_token_fn(
    ///     "http://127.0.0.1:8080",
    ///     Arc::new(|| Ok(std::env::var("TETHER_TOKEN").unwrap_or_default())),
    ///     HttpOptions::default(),
    /// );
    /// # let _ = remote;
    /// ```
    pub fn with_token_fn(base_url: &str, token: TokenFn, options: HttpOptions) -> Self {
        let mut inner = Inner::new(base_url, "", options);
        inner.token = Token::Fn(token);
        HttpRemote {
            inner: Arc::new(inner),
        }
    }

    /// A remote at `base_url` (e.g. `http://127.0.0.1:8080`) using `token`, default options.
    pub fn new(base_url: &str, token: &str) -> Self {
        Self::with_options(base_url, token, HttpOptions::default())
    }

    /// A remote with explicit options.
    pub fn with_options(base_url: &str, token: &str, options: HttpOptions) -> Self {
        HttpRemote {
            inner: Arc::new(Inner::new(base_url, token, options)),
        }
    }
}

impl Inner {
    fn new(base_url: &str, token: &str, options: HttpOptions) -> Self {
        // ureq 2's `timeout` is a deadline for the whole request, checked before every read
        // of the head and of the body, on pooled connections too. Its `timeout_read` is set only
        // on a freshly opened socket, so a reused keep-alive connection would wait forever, and
        // it bounds the gap between reads, not the answer: neither is used.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(options.connect_timeout)
            .timeout(options.timeout)
            .build();
        Inner {
            base: base_url.trim_end_matches('/').to_string(),
            token: Token::Fixed(token.to_string()),
            agent,
            options,
            budget: RunBudget::default(),
        }
    }

    fn run<T>(&self, exchange: Exchange<T>) -> Result<T> {
        let mut exchange = exchange
            .with_max_body(self.options.max_body)
            .with_run_spent(self.budget.spent_ms());
        let mut refreshed = false;
        loop {
            let token = match &self.token {
                Token::Fixed(t) => t.clone(),
                Token::Fn(f) => f()?,
            };
            let outcome = self.send(exchange.request(), &token, exchange.max_body());
            match exchange.handle(&self.options.retry, outcome, crate::now(), jitter()) {
                Step::Wait(ms) => {
                    tracing::debug!(attempts = exchange.attempts(), wait_ms = ms, "retrying");
                    std::thread::sleep(Duration::from_millis(ms));
                }
                // A 401 with a token function: the token may have expired since it was
                // handed out; ask the function once more.
                Step::Done(Err(e))
                    if e.status() == Some(401)
                        && matches!(self.token, Token::Fn(_))
                        && !refreshed =>
                {
                    refreshed = true;
                }
                Step::Done(result) => {
                    self.budget.spend(exchange.retry_ms());
                    return result;
                }
            }
        }
    }

    fn send(
        &self,
        r: &Request,
        token: &str,
        max_body: usize,
    ) -> std::result::Result<Answer, TransportError> {
        let mut req = self
            .agent
            .request(r.method.as_str(), &r.url(&self.base))
            .set("authorization", &protocol::bearer(token));
        for (name, value) in &r.headers {
            req = req.set(name, value);
        }
        if !self.options.gzip {
            req = req.set("accept-encoding", "identity");
        }
        let sent = match r.method {
            Method::Get => req.call(),
            Method::Post => req.send_bytes(&r.body),
        };
        let resp = match sent {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => return Err(transport_error(t)),
        };
        let status = resp.status();
        let retry_after = resp.header("retry-after").map(str::to_owned);
        // The reader inflates as it goes: taking one byte past the limit bounds the memory of a
        // gzip bomb by the limit, whatever it would inflate to.
        let mut body = Vec::new();
        resp.into_reader()
            .take(max_body as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| {
                let failure = match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        Failure::TimedOut
                    }
                    _ => Failure::Other,
                };
                TransportError::new(failure, format!("reading the answer failed: {e}"))
                    .with_source(e)
            })?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

impl Remote for HttpRemote {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let (inner, exchange) = (self.inner.clone(), protocol::pull(scope, checkpoint, limit));
        tether_engine::sync::run_on(Some(&crate::replica::Threads), move || inner.run(exchange))
            .await
    }

    fn can_push(&self) -> bool {
        true
    }

    fn begin_run(&self) {
        self.inner.budget.reset();
    }

    fn can_wait(&self) -> bool {
        true
    }

    async fn pull_wait(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> Result<Pulled> {
        let deadline = u64::try_from(self.inner.options.timeout.as_millis()).unwrap_or(u64::MAX);
        self.inner.run(protocol::pull_wait(
            scope, checkpoint, limit, wait_s, deadline,
        ))
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        self.inner.run(protocol::push(scope, mutations)?)
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.inner.run(protocol::status(scope))
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.inner.run(protocol::range_digest(scope, range))
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.inner.run(protocol::range_records(scope, range))
    }
}

/// Connection refused and DNS failures never reached a server; a timeout is told by the
/// `io::Error` below ureq's error.
fn transport_error(t: ureq::Transport) -> TransportError {
    let timed_out = std::error::Error::source(&t)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
    let failure = match t.kind() {
        ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed => Failure::NotSent,
        _ if timed_out => Failure::TimedOut,
        _ => Failure::Other,
    };
    TransportError::new(failure, t.to_string()).with_source(t)
}

/// A number in `[0, 1)` that differs between calls and processes. Jitter needs no quality,
/// only spread, so the standard library's randomly keyed hasher is enough.
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
