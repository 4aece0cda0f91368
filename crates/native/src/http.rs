//! [`HttpRemote`]: the engine's [`Remote`] over HTTP or HTTPS with blocking `ureq`. The
//! protocol (requests, decoding, retry policy) is [`tether_engine::protocol`]; this file only
//! moves bytes, sleeps when told to, and passes in the time and a jitter sample.
//!
//! Its async methods do the blocking call and return a ready future; the [`crate::Replica`]
//! facade drives them on the caller's thread.
//!
//! HTTPS is rustls (ring) with Mozilla's roots (`webpki-roots`); a private cloud's CA is given
//! with [`HttpOptions::ca_cert`] or [`HttpOptions::ca_cert_file`] (docs/native.md, "TLS").
//!
//! ```no_run
//! use tether_native::http::{HttpOptions, HttpRemote};
//! let remote = HttpRemote::new("https://cloud.example.com", "secret");
//! let private = HttpRemote::with_options(
//!     "https://tether.internal:8443",
//!     "secret",
//!     HttpOptions::default().ca_cert_file("ca.pem")?,
//! );
//! # Ok::<(), tether_engine::Error>(())
//! ```

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::CertificateError;
use tether_engine::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use ureq3 as ureq;

pub use tether_engine::protocol::RetryPolicy;
use tether_engine::protocol::{
    self, Answer, Exchange, Failure, Method, Request, RunBudget, Step, TransportError, MAX_BODY,
};
use tether_engine::{
    Change, Checkpoint, Error, KeyRange, Mutation, Pulled, PushResponse, Remote, RemoteStatus,
    Result, ScopeId, Snapshot,
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
    /// The certificate authorities an `https` server's certificate must chain to, instead of
    /// Mozilla's (`None`, the default): a private cloud's CA. Set with [`HttpOptions::ca_cert`]
    /// or [`HttpOptions::ca_cert_file`].
    pub ca_certs: Option<CaCerts>,
    /// When a pull answers a page with more after it, request the next page at once, so that
    /// the server prepares it while this client validates and writes (default on; one answer
    /// held at most, docs/native.md "Two cores during a sync"). Off, every request is the engine's.
    pub pull_ahead: bool,
}

impl HttpOptions {
    /// The same options, trusting the CA certificates of `pem` (one or more `CERTIFICATE`
    /// blocks) instead of Mozilla's roots: a remote is one server, so its CA is all it needs.
    /// Text that holds no certificate, or one that does not parse, is `InvalidInput`.
    pub fn ca_cert(mut self, pem: &[u8]) -> Result<Self> {
        self.ca_certs = Some(CaCerts::from_pem(pem)?);
        Ok(self)
    }

    /// [`HttpOptions::ca_cert`] with the PEM of a file; a file that cannot be read is
    /// `InvalidInput` too.
    pub fn ca_cert_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        self.ca_certs = Some(CaCerts::from_pem_file(path.as_ref())?);
        Ok(self)
    }
}

/// Parsed CA certificates, each one a TLS client can use as a root (see
/// [`HttpOptions::ca_certs`]).
#[derive(Clone)]
pub struct CaCerts(Arc<Vec<ureq::tls::Certificate<'static>>>);

impl CaCerts {
    /// Every `CERTIFICATE` block of `pem`. Text without one, a block that is not valid PEM or a
    /// certificate that does not parse is `InvalidInput`.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        Self::parse(pem, "the CA certificate")
    }

    /// [`CaCerts::from_pem`] of a file's contents; a file that cannot be read is `InvalidInput`
    /// too.
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(|e| {
            Error::invalid(format!(
                "cannot read the CA certificate file {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&pem, &format!("the CA certificate file {}", path.display()))
    }

    /// The certificates, DER-encoded (for another client that should trust the same CAs).
    pub fn der(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|c| c.der())
    }

    /// Each certificate is checked here because ureq skips one that does not parse, and would
    /// then refuse every server for want of a root.
    fn parse(pem: &[u8], what: &str) -> Result<Self> {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => return Err(Error::invalid(format!("{what}: not valid PEM: {e}"))),
            }
        }
        if certs.is_empty() {
            return Err(Error::invalid(format!(
                "{what}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in &certs {
            roots
                .add(c.der().to_vec().into())
                .map_err(|e| Error::invalid(format!("{what}: not a usable certificate: {e}")))?;
        }
        Ok(CaCerts(Arc::new(certs)))
    }
}

impl std::fmt::Debug for CaCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaCerts({} certificates)", self.0.len())
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_body: MAX_BODY,
            gzip: true,
            retry: RetryPolicy::default(),
            ca_certs: None,
            pull_ahead: true,
        }
    }
}

/// A remote reached over HTTP: base URL plus bearer token.
///
/// A pull runs on a thread of its own, so that the next page downloads while the sync writes
/// the current one (the engine asks for it before the write), and a page with more after it
/// starts the pull of the next one ahead ([`HttpOptions::pull_ahead`]); every other call runs
/// on the caller's thread.
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
    ahead: ahead::PullAhead,
}

/// A clone is a remote of its own: same server and options, its own retry budget.
impl Clone for HttpRemote {
    fn clone(&self) -> Self {
        HttpRemote {
            inner: Arc::new(Inner::clone(&self.inner)),
        }
    }
}

/// A pull ahead under way retries no more once its remote is gone (its thread holds the
/// remote's state, so dropping that alone would not end it).
impl Drop for HttpRemote {
    fn drop(&mut self) {
        self.inner.ahead.forget();
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
        // ureq's global timeout is a deadline for the whole call, from connecting to the last
        // byte of the body, on pooled connections too; a per-read timeout would bound the gap
        // between reads, not the answer, and is not used. Statuses are answers: the protocol
        // decodes every one.
        let roots = match &options.ca_certs {
            Some(CaCerts(certs)) => ureq::tls::RootCerts::Specific(certs.clone()),
            None => ureq::tls::RootCerts::WebPki,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build()
            .new_agent();
        Inner {
            base: base_url.trim_end_matches('/').to_string(),
            token: Token::Fixed(token.to_string()),
            agent,
            options,
            budget: RunBudget::default(),
            ahead: ahead::PullAhead::default(),
        }
    }

    fn run<T>(&self, exchange: Exchange<T>) -> Result<T> {
        // A call left running by a cancelled sync spends nothing of the next one's budget.
        let run = self.budget.run();
        let (result, retry_ms) = self.attempt(exchange, |pause| {
            std::thread::sleep(pause);
            true
        });
        self.budget.spend_in(run, retry_ms);
        result
    }

    /// Runs an exchange to its end as [`Self::run`] does, but `wait` takes each pause between
    /// attempts and says whether the answer is still wanted (`false` ends it with an error);
    /// the time spent retrying is returned rather than spent from the run's budget.
    fn attempt<T>(
        &self,
        exchange: Exchange<T>,
        wait: impl Fn(Duration) -> bool,
    ) -> (Result<T>, u64) {
        let mut exchange = exchange
            .with_max_body(self.options.max_body)
            .with_run_spent(self.budget.spent_ms());
        let mut refreshed = false;
        loop {
            let token = match &self.token {
                Token::Fixed(t) => t.clone(),
                Token::Fn(f) => match f() {
                    Ok(t) => t,
                    Err(e) => return (Err(e), exchange.retry_ms()),
                },
            };
            let outcome = self.send(exchange.request(), &token, exchange.max_body());
            match exchange.handle(&self.options.retry, outcome, crate::now(), jitter()) {
                Step::Wait(ms) => {
                    tracing::debug!(attempts = exchange.attempts(), wait_ms = ms, "retrying");
                    if !wait(Duration::from_millis(ms)) {
                        return (
                            Err(Error::network("the request was dropped while it retried")),
                            exchange.retry_ms(),
                        );
                    }
                }
                // A 401 with a token function: the token may have expired since it was
                // handed out; ask the function once more.
                Step::Done(Err(e))
                    if e.status() == Some(401)
                        && matches!(self.token, Token::Fn(_))
                        && !refreshed =>
                {
                    if !wait(Duration::ZERO) {
                        return (Err(e), exchange.retry_ms());
                    }
                    refreshed = true;
                }
                Step::Done(result) => return (result, exchange.retry_ms()),
            }
        }
    }

    fn send(
        &self,
        r: &Request,
        token: &str,
        max_body: usize,
    ) -> std::result::Result<Answer, TransportError> {
        let url = r.url(&self.base);
        let bearer = protocol::bearer(token);
        let sent = match r.method {
            Method::Get => self.headers(self.agent.get(&url), r, &bearer).call(),
            Method::Post => self
                .headers(self.agent.post(&url), r, &bearer)
                .send(&r.body[..]),
        };
        let resp = sent.map_err(|e| transport_error(e, "sending the request failed"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The reader inflates as it goes: taking one byte past the limit bounds the memory of a
        // gzip bomb by the limit, whatever it would inflate to.
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(max_body as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| transport_error(e.into(), "reading the answer failed"))?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    fn headers<B>(
        &self,
        mut req: ureq::RequestBuilder<B>,
        r: &Request,
        bearer: &str,
    ) -> ureq::RequestBuilder<B> {
        req = req.header("authorization", bearer);
        for (name, value) in &r.headers {
            req = req.header(*name, *value);
        }
        if !self.options.gzip {
            req = req.header("accept-encoding", "identity");
        }
        req
    }
}

impl Remote for HttpRemote {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let (inner, scope, checkpoint) = (self.inner.clone(), scope.clone(), checkpoint.cloned());
        tether_engine::sync::run_on(Some(&crate::replica::Threads), move || {
            inner.pull(&scope, checkpoint.as_ref(), limit)
        })
        .await
    }

    fn can_push(&self) -> bool {
        true
    }

    fn begin_run(&self) {
        self.inner.budget.reset();
        self.inner.ahead.forget();
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
        self.inner.ahead.forget();
        let deadline = u64::try_from(self.inner.options.timeout.as_millis()).unwrap_or(u64::MAX);
        self.inner.run(protocol::pull_wait(
            scope, checkpoint, limit, wait_s, deadline,
        ))
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        self.inner.ahead.forget();
        let answer = self.inner.run(protocol::push(scope, mutations)?);
        // Another replica sharing this remote may have started a pull ahead while the push was
        // on its way: that page predates the push, so it is not this replica's next answer.
        self.inner.ahead.forget();
        answer
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.inner.ahead.forget();
        self.inner.run(protocol::status(scope))
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.inner.ahead.forget();
        self.inner.run(protocol::range_digest(scope, range))
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.inner.ahead.forget();
        self.inner.run(protocol::range_records(scope, range))
    }

    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        self.inner.ahead.forget();
        self.inner
            .run(protocol::pull_subset(scope, sub, checkpoint, limit))
    }

    async fn pull_subset_wait(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> Result<PulledSubset> {
        self.inner.ahead.forget();
        let deadline = u64::try_from(self.inner.options.timeout.as_millis()).unwrap_or(u64::MAX);
        self.inner.run(protocol::pull_subset_wait(
            scope, sub, checkpoint, limit, wait_s, deadline,
        ))
    }

    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        self.inner.ahead.forget();
        self.inner.run(protocol::subset_digest(scope, sub, range))
    }

    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.inner.ahead.forget();
        self.inner.run(protocol::subset_records(scope, sub, range))
    }
}

/// What kind of failure a ureq error is, for the protocol to decide on. Refused connections,
/// DNS failures and connect timeouts never reached a server. A URL ureq cannot use and a
/// certificate rustls refuses are configuration: the message says what to change.
fn transport_error(e: ureq::Error, doing: &str) -> TransportError {
    use ureq::Timeout;
    let (failure, message) = match &e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => (Failure::NotSent, None),
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => (Failure::NotSent, None),
        ureq::Error::Timeout(_) => (Failure::TimedOut, None),
        ureq::Error::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => match untrusted(tls) {
                Some(hint) => (Failure::Config, Some(hint)),
                None => (Failure::Other, None),
            },
            None => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => (Failure::NotSent, None),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    (Failure::TimedOut, None)
                }
                _ => (Failure::Other, None),
            },
        },
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => (
            Failure::Config,
            Some("the remote's URL cannot be used: give an http:// or https:// URL".into()),
        ),
        ureq::Error::Tls(_) | ureq::Error::TlsRequired | ureq::Error::Rustls(_) => (
            Failure::Config,
            Some("no TLS connection can be made to this URL: check its host name".into()),
        ),
        _ => (Failure::Other, None),
    };
    let message = match message {
        Some(hint) => format!("{doing}: {e}: {hint}"),
        None => format!("{doing}: {e}"),
    };
    TransportError::new(failure, message).with_source(e)
}

/// What to do about a TLS failure that only a change of configuration fixes: a server
/// certificate this client does not trust. Other TLS failures (a corrupted record, an alert)
/// may pass.
fn untrusted(e: &rustls::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(cert) = e else {
        return match e {
            rustls::Error::NoCertificatesPresented | rustls::Error::PeerIncompatible(_) => {
                Some("the server's TLS setup is not one this client accepts".into())
            }
            _ => None,
        };
    };
    Some(
        match cert {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for this host name: use a URL with a name \
             the certificate is issued for"
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is expired or not yet valid: renew it on the server \
             (or check this machine's clock)"
            }
            _ => {
                "the server's certificate is not trusted: pass the certificate of the CA that \
             signed it (--ca-cert FILE on the command line, HttpOptions::ca_cert in Rust)"
            }
        }
        .into(),
    )
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

mod ahead;
#[cfg(test)]
mod tests;
