//! [`HttpRemote`]: the sync protocol over `fetch`. The protocol (requests, decoding, retry
//! policy) is [`tether_engine::protocol`]; this file only moves bytes, sleeps when told to, and
//! passes in the time and `Math.random()`.

use js_sys::{Function, Promise, Uint8Array};
use tether_engine::protocol::{
    self, Answer, Exchange, Failure, Method, Request, RetryPolicy, Step, TransportError,
};
use tether_engine::{
    Change, Checkpoint, Error, KeyRange, Mutation, Pulled, PushResponse, Remote, RemoteStatus,
    Result, ScopeId, Snapshot,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

use crate::js::{from_js_error, global_fetch, now, prop, resolve, sleep, JsFailure};

/// The sync protocol (DESIGN.md, v1) over `fetch`, with the retry policy of
/// [`tether_engine::protocol`].
pub struct HttpRemote {
    base: String,
    token: Token,
    fetch: Option<Function>,
    signal: Option<AbortSignal>,
    policy: RetryPolicy,
}

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

impl HttpRemote {
    /// A remote at `base_url` (e.g. `https://sync.example.com`).
    pub fn new(base_url: &str, token: Token) -> Result<HttpRemote> {
        let base = base_url.trim_end_matches('/').to_owned();
        if base.is_empty() {
            return Err(Error::invalid("remote url must not be empty"));
        }
        let (fetch, signal, policy) = (None, None, RetryPolicy::default());
        Ok(HttpRemote {
            base,
            token,
            fetch,
            signal,
            policy,
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

    /// The whole retry policy (backoff, longest wait, budget).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    async fn run<T>(&self, mut exchange: Exchange<T>) -> Result<T> {
        loop {
            let outcome = self.send(exchange.request()).await?;
            let sample = js_sys::Math::random();
            match exchange.handle(&self.policy, outcome, now(), sample) {
                Step::Wait(ms) => {
                    sleep(ms).await;
                    if self.aborted() {
                        return Err(Error::Cancelled);
                    }
                }
                Step::Done(result) => return result,
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
        init.set_signal(self.signal.as_ref());
        let url = r.url(&self.base);
        let promise = match &self.fetch {
            Some(f) => match f.call2(&JsValue::NULL, &url.as_str().into(), &init) {
                Ok(v) => Promise::resolve(&v),
                Err(e) => return self.failed(&e),
            },
            None => global_fetch(&url, &init),
        };
        let response: Response = match JsFuture::from(promise).await {
            Ok(v) => v
                .dyn_into()
                .map_err(|_| Error::protocol("fetch did not return a Response"))?,
            Err(e) => return self.failed(&e),
        };
        let retry_after = response.headers().get("retry-after").ok().flatten();
        let body = match response.array_buffer() {
            Ok(p) => JsFuture::from(p).await,
            Err(e) => Err(e),
        };
        match body {
            Ok(b) => Ok(Ok(Answer {
                status: response.status(),
                retry_after,
                body: Uint8Array::new(&b).to_vec(),
            })),
            Err(e) => self.failed(&e),
        }
    }

    /// A rejected `fetch` says nothing of whether the request left (an opaque `TypeError`),
    /// unless the browser knows it is offline.
    fn failed(&self, e: &JsValue) -> Attempt {
        let field = |k: &str| prop(e, k).and_then(|v| v.as_string());
        let name = field("name").unwrap_or_else(|| "Error".into());
        if self.aborted() || name == "AbortError" {
            return Err(Error::Cancelled);
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
}
