//! [`HttpRemote`]: the sync protocol over `fetch`. The protocol (requests, decoding, retry
//! policy) is [`tether_engine::protocol`]; this file only moves bytes, sleeps when told to, and
//! passes in the time and `Math.random()`.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use tether_engine::protocol::{
    self, Answer, Exchange, Failure, Method, Request, RetryPolicy, RunBudget, Step, TransportError,
};
use tether_engine::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use tether_engine::{
    Change, Checkpoint, Error, KeyRange, Mutation, Pulled, PushResponse, Remote, RemoteStatus,
    Result, ScopeId, Snapshot,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    AbortController, AbortSignal, Headers, ReadableStreamDefaultReader, RequestInit, Response,
};

use crate::js::{from_js_error, global_fetch, now, prop, resolve, sleep, Deadline, JsFailure};

/// The sync protocol (docs/protocol.md) over `fetch`, with the retry policy of
/// [`tether_engine::protocol`].
pub struct HttpRemote {
    base: String,
    token: Token,
    fetch: Option<Function>,
    signal: Option<AbortSignal>,
    policy: RetryPolicy,
    timeout_ms: u64,
    max_body: usize,
    budget: RunBudget,
}

/// Time allowed for one attempt, the whole answer included (as natively).
const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// Where the bearer token comes from.
pub enum Token {
    /// No `Authorization` header.
    None,
    /// A fixed token.
    Fixed(String),
    /// A JS function returning the token (or a promise of it), called before each request, so
    /// an expiring token can be refreshed.
    Provider(Function),
}

/// One attempt: an answer or a failure for the protocol to classify, or (outer `Err`) an end
/// of the call that is not the transport's: cancelled, the token function failed.
type Attempt = Result<std::result::Result<Answer, TransportError>>;

impl Token {
    fn is_none(&self) -> bool {
        matches!(self, Token::None)
    }
}

impl HttpRemote {
    /// A remote at `base_url` (e.g. `https://sync.example.com`).
    pub fn new(base_url: &str, token: Token) -> Result<HttpRemote> {
        let base = base_url.trim_end_matches('/').to_owned();
        if base.is_empty() {
            return Err(Error::invalid("remote url must not be empty"));
        }
        // A configuration error, not a network one: retrying can never fix it.
        if !is_absolute_http(&base) {
            return Err(Error::invalid(format!(
                "remote url must be an absolute http(s) URL such as https://sync.example.com, \
                 got {base_url:?}"
            )));
        }
        let (fetch, signal, policy) = (None, None, RetryPolicy::default());
        Ok(HttpRemote {
            base,
            token,
            fetch,
            signal,
            policy,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_body: protocol::MAX_BODY,
            budget: RunBudget::default(),
        })
    }

    /// Uses `fetch` instead of the global one (e.g. a webview's proxy).
    pub fn with_fetch(mut self, fetch: Option<Function>) -> Self {
        self.fetch = fetch;
        self
    }

    /// Aborts requests (and stops retrying) when `signal` fires.
    pub fn with_signal(mut self, signal: Option<AbortSignal>) -> Self {
        self.signal = signal;
        self
    }

    /// Retries per request after the first attempt.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.policy.retries = retries;
        self
    }

    /// Time allowed for one attempt, from sending to the last byte of the answer (default
    /// 60 s): a server that stalls or trickles is a `Network` [`Detail::Timeout`]
    /// (`tether_engine::Detail`), retried by the policy.
    pub fn with_timeout(mut self, ms: u64) -> Self {
        self.timeout_ms = ms.max(1);
        self
    }

    /// Largest answer read (default [`protocol::MAX_BODY`]); counted on the inflated bytes
    /// while they stream in, so memory stays under it whatever the server sends.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The whole retry policy (backoff, longest wait, budget).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    async fn run<T>(&self, exchange: Exchange<T>) -> Result<T> {
        let exchange = exchange
            .with_max_body(self.max_body)
            .with_run_spent(self.budget.spent_ms());
        let mut call = Call {
            exchange,
            answer: None,
        };
        self.drive(&mut call).await?;
        call.answer
            .ok_or_else(|| Error::protocol("the exchange ended without its answer"))
    }

    /// The retry loop of [`HttpRemote::run`], compiled once for every answer type: a copy per
    /// type (one per remote method) cost about 1.5 KB of the gzipped module each.
    async fn drive(&self, call: &mut dyn Attempts) -> Result<()> {
        let mut refreshed = false;
        loop {
            let outcome = self.send(call.request()).await?;
            let sample = js_sys::Math::random();
            match call.handle(&self.policy, outcome, now(), sample) {
                Step::Wait(ms) => {
                    sleep(ms).await;
                    if self.aborted() {
                        return Err(Error::Cancelled);
                    }
                }
                // A 401 with a token function: the token may have expired since it was
                // handed out. Ask the function once more (it runs before every request).
                Step::Done(Err(e))
                    if e.status() == Some(401)
                        && matches!(self.token, Token::Provider(_))
                        && !refreshed =>
                {
                    refreshed = true;
                }
                Step::Done(Err(Error::Auth { message, status })) if self.token.is_none() => {
                    self.budget.spend(call.retry_ms());
                    // Most often a configuration slip (`token: undefined`): say so.
                    return Err(Error::Auth {
                        message: format!(
                            "{message} (the remote has no token: remote.token is missing)"
                        ),
                        status,
                    });
                }
                Step::Done(result) => {
                    self.budget.spend(call.retry_ms());
                    return result;
                }
            }
        }
    }

    async fn send(&self, r: &Request) -> Attempt {
        let headers = Headers::new().map_err(|_| Error::network("cannot build request headers"))?;
        let set = |k: &str, v: &str| {
            headers
                .append(k, v)
                .map_err(|_| Error::invalid(format!("invalid {k} header value")))
        };
        for (name, value) in &r.headers {
            set(name, value)?;
        }
        if let Some(token) = self.token().await? {
            set("authorization", &protocol::bearer(&token))?;
        }
        let init = RequestInit::new();
        init.set_method(r.method.as_str());
        init.set_headers(&headers);
        if r.method == Method::Post {
            init.set_body(&Uint8Array::from(&r.body[..]));
        }
        // Our own controller aborts the request when the deadline passes; the caller's signal
        // aborts it too where the platform can combine signals (AbortSignal.any).
        let ours = AbortController::new().ok();
        init.set_signal(signal_of(self.signal.as_ref(), ours.as_ref()).as_ref());
        let deadline = Deadline::after(self.timeout_ms);
        let timed_out = || {
            if let Some(c) = &ours {
                c.abort();
            }
            let message = format!("no whole answer within {} ms", self.timeout_ms);
            Ok(Err(TransportError::new(Failure::TimedOut, message)))
        };
        let url = r.url(&self.base);
        let promise = match &self.fetch {
            Some(f) => match f.call2(&JsValue::NULL, &url.as_str().into(), &init) {
                Ok(v) => Promise::resolve(&v),
                Err(e) => return self.failed(&e),
            },
            None => global_fetch(&url, &init),
        };
        let response: Response = match deadline.race(promise).await {
            Ok(Some(v)) => v
                .dyn_into()
                .map_err(|_| Error::protocol("fetch did not return a Response"))?,
            Ok(None) => return timed_out(),
            Err(e) => return self.fetch_failed(&url, &e).await,
        };
        let retry_after = response.headers().get("retry-after").ok().flatten();
        // Read the (inflated) body chunk by chunk, at most max_body + 1 bytes: the protocol
        // refuses a longer one, and a gzip bomb never fills memory.
        let mut body = Vec::new();
        if let Some(stream) = response.body() {
            let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
            let room = self.max_body.saturating_add(1);
            while body.len() < room {
                let chunk = match deadline.race(reader.read()).await {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        let _ = reader.cancel();
                        return timed_out();
                    }
                    Err(e) => return self.failed(&e),
                };
                if prop(&chunk, "done").and_then(|d| d.as_bool()) == Some(true) {
                    break;
                }
                let Some(bytes) =
                    prop(&chunk, "value").and_then(|v| v.dyn_into::<Uint8Array>().ok())
                else {
                    break;
                };
                let take = (bytes.length() as usize).min(room - body.len());
                // Copied straight into the body: no intermediate Vec per chunk.
                let start = body.len();
                body.resize(start + take, 0);
                bytes.subarray(0, take as u32).copy_to(&mut body[start..]);
            }
            if body.len() >= room {
                let _ = reader.cancel();
            }
        }
        Ok(Ok(Answer {
            status: response.status(),
            retry_after,
            body,
        }))
    }

    /// A rejected `fetch` says nothing of whether the request left (an opaque `TypeError`),
    /// unless the browser knows it is offline.
    fn failed(&self, e: &JsValue) -> Attempt {
        let field = |k: &str| prop(e, k).and_then(|v| v.as_string());
        let name = field("name").unwrap_or_else(|| "Error".into());
        if self.aborted() || name == "AbortError" {
            return Err(Error::Cancelled);
        }
        if name == "TimeoutError" {
            let message = field("message").unwrap_or_else(|| "timed out".into());
            return Ok(Err(TransportError::new(Failure::TimedOut, message)));
        }
        let message = field("message").unwrap_or_else(|| "fetch failed".into());
        let online = prop(&js_sys::global(), "navigator").and_then(|n| prop(&n, "onLine"));
        let failure = match online.and_then(|v| v.as_bool()) {
            Some(false) => Failure::NotSent,
            _ => Failure::Other,
        };
        let source = JsFailure {
            name,
            message: message.clone(),
        };
        Ok(Err(
            TransportError::new(failure, message).with_source(source)
        ))
    }

    /// A rejected `fetch` from a page to another origin: the browser says the same for a server
    /// that is down and for one that does not allow this page's origin (CORS). A `no-cors`
    /// request to the same URL tells them apart: the browser completes it (with an opaque
    /// answer) only when the server answered. Then the failure is the server's CORS list, a
    /// configuration error retrying never fixes; otherwise it stays a network error whose
    /// message names both causes.
    async fn fetch_failed(&self, url: &str, e: &JsValue) -> Attempt {
        let mut attempt = self.failed(e);
        let other = matches!(&attempt, Ok(Err(t)) if t.failure == Failure::Other);
        // A caller's own fetch may go anywhere (a webview's proxy): no guess about it.
        let (true, None, Some(page), Some(server)) =
            (other, &self.fetch, page_origin(), origin_of(url))
        else {
            return attempt;
        };
        if page == server {
            return attempt;
        }
        let cause = format!(
            "this page's origin {page} may be missing from the CORS list of the server at \
             {server} (`tether serve --cors-origin {page}`)"
        );
        let init = RequestInit::new();
        let _ = Reflect::set(&init, &"mode".into(), &"no-cors".into());
        if let Some(signal) = &self.signal {
            init.set_signal(Some(signal));
        }
        let reached = Deadline::after(self.timeout_ms.min(10_000))
            .race(global_fetch(url, &init))
            .await;
        if matches!(reached, Ok(Some(_))) {
            return Err(Error::invalid(format!(
                "the server at {server} answered, but the browser withheld the answer from this \
                 page: {cause}"
            )));
        }
        if let Ok(Err(t)) = &mut attempt {
            t.message = format!("{}: the server is unreachable, or {cause}", t.message);
        }
        attempt
    }

    fn aborted(&self) -> bool {
        self.signal.as_ref().is_some_and(AbortSignal::aborted)
    }

    async fn token(&self) -> Result<Option<String>> {
        let auth_error = |e: &JsValue| Error::Auth {
            message: format!("the token function failed: {}", from_js_error(e)),
            status: None,
        };
        match &self.token {
            Token::None => Ok(None),
            Token::Fixed(t) => Ok(Some(t.clone())),
            Token::Provider(f) => {
                let v = f.call0(&JsValue::NULL).map_err(|e| auth_error(&e))?;
                let v = resolve(v).await.map_err(|e| auth_error(&e))?;
                v.as_string()
                    .map(Some)
                    .ok_or_else(|| Error::invalid("the token function must return a string"))
            }
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
        self.run(protocol::pull(scope, checkpoint, limit)).await
    }

    fn can_push(&self) -> bool {
        true
    }

    fn begin_run(&self) {
        self.budget.reset();
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
        let exchange = protocol::pull_wait(scope, checkpoint, limit, wait_s, self.timeout_ms);
        self.run(exchange).await
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        self.run(protocol::push(scope, mutations)?).await
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.run(protocol::status(scope)).await
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        self.run(protocol::range_digest(scope, range)).await
    }

    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.run(protocol::range_records(scope, range)).await
    }

    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        self.run(protocol::pull_subset(scope, sub, checkpoint, limit))
            .await
    }

    async fn pull_subset_wait(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> Result<PulledSubset> {
        let exchange =
            protocol::pull_subset_wait(scope, sub, checkpoint, limit, wait_s, self.timeout_ms);
        self.run(exchange).await
    }

    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        self.run(protocol::subset_digest(scope, sub, range)).await
    }

    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        self.run(protocol::subset_records(scope, sub, range)).await
    }
}

/// One call of [`HttpRemote::run`] with the type of its answer erased, for the one retry loop.
trait Attempts {
    fn request(&self) -> &Request;
    /// The exchange's decision on one attempt; a decoded answer is kept in the call.
    fn handle(
        &mut self,
        policy: &RetryPolicy,
        outcome: std::result::Result<Answer, TransportError>,
        now_ms: i64,
        sample: f64,
    ) -> Step<()>;
    fn retry_ms(&self) -> u64;
}

struct Call<T> {
    exchange: Exchange<T>,
    answer: Option<T>,
}

impl<T> Attempts for Call<T> {
    fn request(&self) -> &Request {
        self.exchange.request()
    }

    fn handle(
        &mut self,
        policy: &RetryPolicy,
        outcome: std::result::Result<Answer, TransportError>,
        now_ms: i64,
        sample: f64,
    ) -> Step<()> {
        match self.exchange.handle(policy, outcome, now_ms, sample) {
            Step::Wait(ms) => Step::Wait(ms),
            Step::Done(result) => Step::Done(result.map(|answer| self.answer = Some(answer))),
        }
    }

    fn retry_ms(&self) -> u64 {
        self.exchange.retry_ms()
    }
}

/// Whether `url` parses as an absolute `http:` or `https:` URL (the platform's `URL` decides;
/// without one, anything non-empty passes).
fn is_absolute_http(url: &str) -> bool {
    let Some(ctor) = url_constructor() else {
        return true;
    };
    match Reflect::construct(&ctor, &Array::of1(&url.into())) {
        Ok(u) => matches!(
            prop(&u, "protocol").and_then(|p| p.as_string()).as_deref(),
            Some("http:" | "https:")
        ),
        Err(_) => false,
    }
}

fn url_constructor() -> Option<Function> {
    prop(&js_sys::global(), "URL").and_then(|c| c.dyn_into().ok())
}

/// The origin of an absolute URL (`https://host:port`).
fn origin_of(url: &str) -> Option<String> {
    let u = Reflect::construct(&url_constructor()?, &Array::of1(&url.into())).ok()?;
    prop(&u, "origin").and_then(|o| o.as_string())
}

/// The origin of the page (or worker) this runs in; none in Node or an opaque origin.
fn page_origin() -> Option<String> {
    let location = prop(&js_sys::global(), "location")?;
    prop(&location, "origin")
        .and_then(|o| o.as_string())
        .filter(|o| o != "null")
}

/// The signal for one attempt: ours and the caller's combined with `AbortSignal.any` where the
/// platform has it (Chromium 116, Node 20.3), else the caller's alone (then a timed-out request
/// is abandoned rather than aborted; the deadline still ends the attempt).
fn signal_of(caller: Option<&AbortSignal>, ours: Option<&AbortController>) -> Option<AbortSignal> {
    let ours = ours.map(AbortController::signal);
    let (Some(caller), Some(mine)) = (caller, &ours) else {
        return ours.or_else(|| caller.cloned());
    };
    let any = prop(&js_sys::global(), "AbortSignal").and_then(|c| prop(&c, "any").map(|f| (c, f)));
    let combined = any.and_then(|(class, f)| {
        let f: Function = f.dyn_into().ok()?;
        f.call1(&class, &js_sys::Array::of2(caller, mine))
            .ok()?
            .dyn_into()
            .ok()
    });
    Some(combined.unwrap_or_else(|| caller.clone()))
}
