//! Remotes in the browser: [`HttpRemote`] speaks the sync protocol over `fetch`, [`FnRemote`]
//! calls the user's JavaScript functions (their own transport and auth).

use js_sys::{Function, Reflect};
use serde::de::DeserializeOwned;
use tether_engine::schedule::Schedule;
use tether_engine::{
    Change, Checkpoint, Detail, Error, Key, KeyRange, Mutation, Page, Pulled, PushResponse, Remote,
    RemoteStatus, Result, ScopeId, Snapshot,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

use crate::js::{from_js_error, global_fetch, json_of, object, prop, resolve, sleep};

/// Retry delays longer than this are not waited out inside one sync: the error goes back to
/// the caller (with `retryAfterMs`), and background sync waits instead.
const MAX_INLINE_WAIT_MS: u64 = 30_000;

/// The sync protocol (DESIGN.md, v1) over `fetch`.
///
/// Network errors, 5xx and 429 are retried with exponential backoff and jitter (honouring
/// `Retry-After`); other 4xx never are. 401/403 are [`Error::Auth`], 410 on a pull is
/// [`Pulled::Reset`].
pub struct HttpRemote {
    base: String,
    token: Token,
    fetch: Option<Function>,
    signal: Option<AbortSignal>,
    retries: u32,
    backoff: Schedule,
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

struct Answer {
    status: u16,
    body: String,
    retry_after_ms: Option<u64>,
}

impl HttpRemote {
    /// A remote at `base_url` (e.g. `https://sync.example.com`).
    pub fn new(base_url: &str, token: Token) -> Result<HttpRemote> {
        let base = base_url.trim_end_matches('/').to_owned();
        if base.is_empty() {
            return Err(Error::invalid("remote url must not be empty"));
        }
        Ok(HttpRemote {
            base,
            token,
            fetch: None,
            signal: None,
            retries: 4,
            backoff: Schedule {
                backoff_base_ms: 500,
                backoff_cap_ms: 15_000,
                ..Schedule::default()
            },
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
        self.retries = retries;
        self
    }

    fn scope_url(&self, scope: &ScopeId, tail: &str) -> String {
        format!("{}/v1/scopes/{}/{tail}", self.base, encode(scope.as_str()))
    }

    async fn request(&self, method: &str, url: &str, body: Option<&str>) -> Result<Answer> {
        let mut failures = 0;
        loop {
            let err = match self.once(method, url, body).await {
                Ok(a) if a.status == 429 || a.status >= 500 => Error::Network {
                    message: format!("{method} {url}: HTTP {}: {}", a.status, excerpt(&a.body)),
                    status: Some(a.status),
                    retry_after_ms: a.retry_after_ms,
                    detail: Some(if a.status == 429 {
                        Detail::RateLimited
                    } else {
                        Detail::ServerError
                    }),
                    source: None,
                },
                Ok(a) => return Ok(a),
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            failures += 1;
            let retry_after = match &err {
                Error::Network { retry_after_ms, .. } => *retry_after_ms,
                _ => None,
            };
            if failures > self.retries || retry_after.is_some_and(|ms| ms > MAX_INLINE_WAIT_MS) {
                return Err(err);
            }
            sleep(
                self.backoff
                    .next_delay(failures, retry_after, js_sys::Math::random()),
            )
            .await;
            if self.signal.as_ref().is_some_and(AbortSignal::aborted) {
                return Err(Error::Cancelled);
            }
        }
    }

    async fn once(&self, method: &str, url: &str, body: Option<&str>) -> Result<Answer> {
        let headers = Headers::new().map_err(|_| Error::network("cannot build request headers"))?;
        let header = |k: &str, v: &str| {
            headers
                .append(k, v)
                .map_err(|_| Error::invalid(format!("invalid {k} header value")))
        };
        header("Accept", "application/json")?;
        if body.is_some() {
            header("Content-Type", "application/json")?;
        }
        if let Some(token) = self.token().await? {
            header("Authorization", &format!("Bearer {token}"))?;
        }
        let init = RequestInit::new();
        init.set_method(method);
        init.set_headers(&headers);
        if let Some(b) = body {
            init.set_body(&JsValue::from_str(b));
        }
        if let Some(s) = &self.signal {
            init.set_signal(Some(s));
        }
        let promise = match &self.fetch {
            Some(f) => f
                .call2(&JsValue::NULL, &url.into(), &init)
                .map(|v| js_sys::Promise::resolve(&v))
                .map_err(|e| self.fetch_error(url, &e))?,
            None => global_fetch(url, &init),
        };
        let response: Response = JsFuture::from(promise)
            .await
            .map_err(|e| self.fetch_error(url, &e))?
            .dyn_into()
            .map_err(|_| Error::protocol("fetch did not return a Response"))?;
        let status = response.status();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v));
        let text = response.text().map_err(|e| self.fetch_error(url, &e))?;
        let body = JsFuture::from(text)
            .await
            .map_err(|e| self.fetch_error(url, &e))?
            .as_string()
            .unwrap_or_default();
        Ok(Answer {
            status,
            body,
            retry_after_ms,
        })
    }

    async fn token(&self) -> Result<Option<String>> {
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

    fn fetch_error(&self, url: &str, e: &JsValue) -> Error {
        let aborted = self.signal.as_ref().is_some_and(AbortSignal::aborted)
            || prop(e, "name").and_then(|n| n.as_string()).as_deref() == Some("AbortError");
        if aborted {
            return Error::Cancelled;
        }
        let message = prop(e, "message")
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| "request failed".into());
        Error::network(format!("{url}: {message}"))
    }

    /// Decodes a 2xx JSON answer, or maps the status to an error.
    fn decode<T: DeserializeOwned>(&self, what: &str, a: &Answer) -> Result<T> {
        if !(200..300).contains(&a.status) {
            return Err(status_error(what, a));
        }
        serde_json::from_str(&a.body)
            .map_err(|e| Error::protocol(format!("{what}: malformed answer: {e}")))
    }
}

impl Remote for HttpRemote {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let mut url = format!("{}?limit={limit}", self.scope_url(scope, "changes"));
        if let Some(c) = checkpoint {
            url.push_str("&checkpoint=");
            url.push_str(&encode(c.as_str()));
        }
        let a = self.request("GET", &url, None).await?;
        if a.status == 410 {
            return Ok(Pulled::Reset);
        }
        let page: Page = self.decode("pull", &a)?;
        Ok(Pulled::Page {
            page,
            bytes: a.body.len() as u64,
        })
    }

    fn can_push(&self) -> bool {
        true
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        let body = serde_json::to_string(&serde_json::json!({ "mutations": mutations }))
            .map_err(|e| Error::invalid(format!("cannot encode mutations: {e}")))?;
        let a = self
            .request("POST", &self.scope_url(scope, "mutations"), Some(&body))
            .await?;
        self.decode("push", &a)
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        let a = self
            .request("GET", &self.scope_url(scope, "status"), None)
            .await?;
        if unsupported(a.status) {
            return Ok(None);
        }
        self.decode("status", &a).map(Some)
    }

    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        let url = format!("{}{}", self.scope_url(scope, "digest"), range_query(range));
        let a = self.request("GET", &url, None).await?;
        if unsupported(a.status) {
            return Ok(None);
        }
        self.decode("range digest", &a).map(Some)
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
        let url = format!("{}{}", self.scope_url(scope, "records"), range_query(range));
        let a = self.request("GET", &url, None).await?;
        if unsupported(a.status) {
            return Ok(None);
        }
        self.decode::<Records>("range records", &a)
            .map(|r| Some(r.records))
    }
}

/// A remote made of the user's JavaScript functions:
/// `pull({scope, checkpoint, limit, signal}) => page | {reset: true}` and optionally
/// `push({scope, mutations, signal}) => {results}` and `status({scope, signal}) => status`.
/// Pages and results use the wire format of DESIGN.md; a thrown error with a `code` naming an
/// error kind keeps that kind, anything else counts as a (retryable) network error.
pub struct FnRemote {
    pull: Function,
    push: Option<Function>,
    status: Option<Function>,
    signal: JsValue,
}

impl FnRemote {
    /// A remote over the functions of `obj` (`pull` required).
    pub fn from_object(obj: &JsValue, signal: JsValue) -> Result<FnRemote> {
        let func = |name: &str| prop(obj, name).and_then(|f| f.dyn_into::<Function>().ok());
        Ok(FnRemote {
            pull: func("pull")
                .ok_or_else(|| Error::invalid("a remote needs a url or a pull function"))?,
            push: func("push"),
            status: func("status"),
            signal,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        f: &Function,
        arg: JsValue,
        what: &str,
    ) -> Result<(T, usize)> {
        let v = f
            .call1(&JsValue::NULL, &arg)
            .map_err(|e| from_js_error(&e))?;
        let v = resolve(v).await.map_err(|e| from_js_error(&e))?;
        let text = json_of(&v, what)?;
        let parsed = serde_json::from_str(&text)
            .map_err(|e| Error::protocol(format!("{what}: malformed answer: {e}")))?;
        Ok((parsed, text.len()))
    }
}

impl Remote for FnRemote {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        let arg = object(&[
            ("scope", scope.as_str().into()),
            (
                "checkpoint",
                checkpoint.map_or(JsValue::NULL, |c| c.as_str().into()),
            ),
            ("limit", limit.into()),
            ("signal", self.signal.clone()),
        ]);
        let (value, bytes) = self
            .call::<serde_json::Value>(&self.pull, arg, "pull")
            .await?;
        if value.get("reset") == Some(&serde_json::Value::Bool(true)) {
            return Ok(Pulled::Reset);
        }
        let page: Page = serde_json::from_value(value)
            .map_err(|e| Error::protocol(format!("pull: malformed page: {e}")))?;
        Ok(Pulled::Page {
            page,
            bytes: bytes as u64,
        })
    }

    fn can_push(&self) -> bool {
        self.push.is_some()
    }

    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        let Some(push) = &self.push else {
            return Err(Error::invalid("this remote does not accept pushes"));
        };
        let text = serde_json::to_string(mutations)
            .map_err(|e| Error::invalid(format!("cannot encode mutations: {e}")))?;
        let mutations =
            js_sys::JSON::parse(&text).map_err(|_| Error::invalid("cannot encode mutations"))?;
        let arg = object(&[
            ("scope", scope.as_str().into()),
            ("mutations", mutations),
            ("signal", self.signal.clone()),
        ]);
        Ok(self.call(push, arg, "push").await?.0)
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        let Some(status) = &self.status else {
            return Ok(None);
        };
        let arg = object(&[
            ("scope", scope.as_str().into()),
            ("signal", self.signal.clone()),
        ]);
        Ok(Some(self.call(status, arg, "status").await?.0))
    }
}

fn status_error(what: &str, a: &Answer) -> Error {
    let detail = excerpt(&a.body);
    match a.status {
        401 | 403 => Error::Auth {
            message: format!("{what}: HTTP {}: {detail}", a.status),
            status: Some(a.status),
        },
        s => Error::protocol(format!("{what}: unexpected HTTP {s}: {detail}")),
    }
}

/// Statuses by which a server says it does not implement an optional endpoint.
fn unsupported(status: u16) -> bool {
    matches!(status, 404 | 405 | 501)
}

fn auth_error(e: &JsValue) -> Error {
    Error::Auth {
        message: format!("the token function failed: {}", from_js_error(e)),
        status: None,
    }
}

/// Query string of a key range: `from_collection`, `from_id`, `to_collection`, `to_id`
/// (docs/server.md), each part percent-encoded UTF-8.
fn range_query(range: &KeyRange) -> String {
    let mut parts = Vec::new();
    let mut bound = |side: &str, key: &Option<Key>| {
        if let Some(k) = key {
            parts.push(format!("{side}_collection={}", encode(&k.collection)));
            parts.push(format!("{side}_id={}", encode(&k.id)));
        }
    };
    bound("from", &range.from);
    bound("to", &range.to);
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn encode(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = js_sys::Date::parse(v);
    (!at.is_nan()).then(|| (at - js_sys::Date::now()).max(0.0) as u64)
}

fn excerpt(body: &str) -> String {
    let mut end = body.len().min(300);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].trim().to_owned()
}

/// Whether `v` has a property (used to tell remote kinds apart).
pub(crate) fn has(v: &JsValue, name: &str) -> bool {
    Reflect::has(v, &name.into()).unwrap_or(false)
}

/// Either remote, built from the JS description of one.
pub enum AnyRemote {
    /// `{url, token, fetch, retries}`.
    Http(HttpRemote),
    /// `{pull, push, status}`.
    Fn(FnRemote),
}

impl AnyRemote {
    /// Builds the remote described by `v`: an object with a `url` (HTTP) or a `pull` function.
    pub fn from_js(v: &JsValue, signal: Option<AbortSignal>) -> Result<AnyRemote> {
        if let Some(url) = prop(v, "url") {
            let url = url
                .as_string()
                .ok_or_else(|| Error::invalid("remote url must be a string"))?;
            let token = match prop(v, "token") {
                None => Token::None,
                Some(t) => match t.as_string() {
                    Some(s) => Token::Fixed(s),
                    None => Token::Provider(t.dyn_into::<Function>().map_err(|_| {
                        Error::invalid("remote token must be a string or a function")
                    })?),
                },
            };
            let mut remote = HttpRemote::new(&url, token)?
                .with_fetch(prop(v, "fetch").and_then(|f| f.dyn_into::<Function>().ok()))
                .with_signal(signal);
            if let Some(n) = prop(v, "retries").and_then(|n| n.as_f64()) {
                remote = remote.with_retries(n.clamp(0.0, 20.0) as u32);
            }
            return Ok(AnyRemote::Http(remote));
        }
        if !has(v, "pull") {
            return Err(Error::invalid(
                "a remote is {url, token} or {pull, push?, status?}",
            ));
        }
        let signal = signal.map_or(JsValue::UNDEFINED, JsValue::from);
        Ok(AnyRemote::Fn(FnRemote::from_object(v, signal)?))
    }
}

macro_rules! delegate {
    ($self:ident . $m:ident ( $($a:expr),* )) => {
        match $self {
            AnyRemote::Http(r) => r.$m($($a),*).await,
            AnyRemote::Fn(r) => r.$m($($a),*).await,
        }
    };
}

impl Remote for AnyRemote {
    async fn pull(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        delegate!(self.pull(scope, checkpoint, limit))
    }
    fn can_push(&self) -> bool {
        match self {
            AnyRemote::Http(r) => r.can_push(),
            AnyRemote::Fn(r) => r.can_push(),
        }
    }
    async fn push(&self, scope: &ScopeId, mutations: &[Mutation]) -> Result<PushResponse> {
        delegate!(self.push(scope, mutations))
    }
    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        delegate!(self.status(scope))
    }
    async fn range_digest(&self, scope: &ScopeId, range: &KeyRange) -> Result<Option<Snapshot>> {
        delegate!(self.range_digest(scope, range))
    }
    async fn range_records(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        delegate!(self.range_records(scope, range))
    }
}
