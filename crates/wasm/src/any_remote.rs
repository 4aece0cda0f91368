//! Remotes built from a JavaScript description: [`FnRemote`] calls the user's JavaScript
//! functions (their own transport and auth), [`AnyRemote`] is either it or the fetch transport
//! ([`HttpRemote`]).

use js_sys::{Function, Reflect};
use serde::de::DeserializeOwned;
use tether_engine::subscription::{PulledSubset, Subscription, SubsetSnapshot};
use tether_engine::{
    Change, Checkpoint, Detail, Error, KeyRange, Mutation, Page, Pulled, PushResponse, Remote,
    RemoteStatus, Result, ScopeId, Snapshot,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::AbortSignal;

#[cfg(feature = "node-sqlite")]
use crate::js::utf8_of;
use crate::js::{from_js_error, json_of, object, prop, resolve};
use crate::remote::{HttpRemote, Token};

/// A remote made of the user's JavaScript functions:
/// `pull({scope, checkpoint, limit, signal}) => page | {reset: true}` and optionally
/// `push({scope, mutations, signal}) => {results}` and `status({scope, signal}) => status`.
/// Pages and results use the wire format of docs/protocol.md; a thrown error with a `code` naming an
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

    /// Calls `f` and returns its answer as JSON text (a string answer is taken as the text).
    async fn call_text(&self, f: &Function, arg: JsValue, what: &str) -> Result<String> {
        let v = f
            .call1(&JsValue::NULL, &arg)
            .map_err(|e| from_js_error(&e))?;
        let v = resolve(v).await.map_err(|e| from_js_error(&e))?;
        match v.as_string() {
            Some(text) => Ok(text),
            None => json_of(&v, what),
        }
    }

    /// The pull's answer as JSON text (UTF-8), and whether it may be `{"reset": true}`.
    ///
    /// The Node build encodes the text with `TextEncoder` ([`utf8_of`]) and skips the look for
    /// a reset in a plain page object, a pass over the page's text (4 % of a sync of pages
    /// from a function remote). The browser build keeps `call_text`: this would cost it about
    /// 350 bytes gzipped, against its size budget.
    #[cfg(feature = "node-sqlite")]
    async fn pull_text(&self, arg: JsValue) -> Result<(Vec<u8>, bool)> {
        let v = self
            .pull
            .call1(&JsValue::NULL, &arg)
            .map_err(|e| from_js_error(&e))?;
        let v = resolve(v).await.map_err(|e| from_js_error(&e))?;
        // Anything but a plain object without a `reset` member may be one: a string is the
        // text to look into, `toJSON` may add the member, and serde reads a struct from an
        // array too.
        let may_reset =
            !v.is_object() || js_sys::Array::is_array(&v) || has(&v, "reset") || has(&v, "toJSON");
        Ok((utf8_of(&v, "pull")?, may_reset))
    }

    async fn call<T: DeserializeOwned>(&self, f: &Function, arg: JsValue, what: &str) -> Result<T> {
        let text = self.call_text(f, arg, what).await?;
        // From bytes, as the engine reads pages: one decoder in the wasm, not two.
        serde_json::from_slice(text.as_bytes())
            .map_err(|e| Error::protocol(format!("{what}: malformed answer: {e}")))
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
        #[cfg(feature = "node-sqlite")]
        let (text, may_reset) = self.pull_text(arg).await?;
        #[cfg(not(feature = "node-sqlite"))]
        let (text, may_reset) = (self.call_text(&self.pull, arg, "pull").await?, true);
        /// `{"reset": true}`; any other member is skipped without being kept.
        #[derive(serde::Deserialize)]
        struct Reset {
            #[serde(default)]
            reset: bool,
        }
        if may_reset {
            let probe: Reset = serde_json::from_slice(text.as_ref())
                .map_err(|e| Error::protocol(format!("pull: malformed answer: {e}")))?;
            if probe.reset {
                return Ok(Pulled::Reset);
            }
        }
        // Parsed from the text: the records' data stays raw JSON text (see `Change::data`).
        let page: Page = serde_json::from_slice(text.as_ref())
            .map_err(|e| Error::protocol(format!("pull: malformed page: {e}")))?;
        Ok(Pulled::Page {
            page,
            bytes: text.len() as u64,
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
        self.call(push, arg, "push").await
    }

    async fn status(&self, scope: &ScopeId) -> Result<Option<RemoteStatus>> {
        let Some(status) = &self.status else {
            return Ok(None);
        };
        let arg = object(&[
            ("scope", scope.as_str().into()),
            ("signal", self.signal.clone()),
        ]);
        Ok(Some(self.call(status, arg, "status").await?))
    }

    // The function remote's contract (`pull`, `push`, `status`) has no subsets; a partial
    // replica syncs with `{url}`. Said here rather than by the trait's default so the message
    // names the way out. `subset_digest` and `subset_records` keep answering "not supported"
    // (`None`), which a sync never reaches: the pull fails first.
    async fn pull_subset(
        &self,
        _scope: &ScopeId,
        sub: &Subscription,
        _checkpoint: Option<&Checkpoint>,
        _limit: u32,
    ) -> Result<PulledSubset> {
        Err(Error::protocol(format!(
            "a function remote ({{pull, push, status}}) does not serve subscriptions, so it \
             cannot sync {}: give the scope an HTTP remote ({{url, token}}) or no subscriptions",
            sub.encode()
        ))
        .with_detail(Detail::NotSupported))
    }
}

/// Whether `v` has a property (used to tell remote kinds apart).
pub(crate) fn has(v: &JsValue, name: &str) -> bool {
    Reflect::has(v, &name.into()).unwrap_or(false)
}

/// Either remote, built from the JS description of one.
pub enum AnyRemote {
    /// `{url, token, fetch, retries, timeoutMs}`.
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
            if let Some(ms) = prop(v, "timeoutMs").and_then(|n| n.as_f64()) {
                // NaN and negatives clamp to the shortest; setTimeout keeps an i32.
                remote = remote.with_timeout(ms.clamp(1.0, i32::MAX as f64) as u64);
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
    fn begin_run(&self) {
        match self {
            AnyRemote::Http(r) => r.begin_run(),
            AnyRemote::Fn(r) => r.begin_run(),
        }
    }
    fn can_wait(&self) -> bool {
        match self {
            AnyRemote::Http(r) => r.can_wait(),
            AnyRemote::Fn(r) => r.can_wait(),
        }
    }
    async fn pull_wait(
        &self,
        scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> Result<Pulled> {
        delegate!(self.pull_wait(scope, checkpoint, limit, wait_s))
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
    async fn pull_subset(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        delegate!(self.pull_subset(scope, sub, checkpoint, limit))
    }
    async fn pull_subset_wait(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
        wait_s: u32,
    ) -> Result<PulledSubset> {
        delegate!(self.pull_subset_wait(scope, sub, checkpoint, limit, wait_s))
    }
    async fn subset_digest(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<SubsetSnapshot>> {
        delegate!(self.subset_digest(scope, sub, range))
    }
    async fn subset_records(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Result<Option<Vec<Change>>> {
        delegate!(self.subset_records(scope, sub, range))
    }
}
