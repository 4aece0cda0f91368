//! The JavaScript edge: errors as JS `Error` objects with a stable `name` and `code`, JSON
//! bridging (the shapes that cross are typed: [`crate::shapes`]), timers and `fetch` of the
//! global scope (window, worker or Node).

use js_sys::{Function, Object, Promise, Reflect};
#[cfg(feature = "node-sqlite")]
use js_sys::{JsString, Uint8Array};
use serde::Serialize;
use tether_engine::{Detail, Error, ErrorKind};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `setTimeout` of the global scope.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;
    /// `clearTimeout` of the global scope.
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    /// `fetch` of the global scope.
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn global_fetch(url: &str, init: &web_sys::RequestInit) -> Promise;

    /// `TextEncoder` of the global scope.
    #[cfg(feature = "node-sqlite")]
    type TextEncoder;
    #[cfg(feature = "node-sqlite")]
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    #[cfg(feature = "node-sqlite")]
    #[wasm_bindgen(method)]
    fn encode(this: &TextEncoder, text: &JsString) -> Uint8Array;
}

/// A JS exception (a `DOMException`, an `Error` thrown by user code) reduced to its name and
/// message, so it can be kept as the [`std::error::Error::source`] of an engine error, which
/// must be `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsFailure {
    /// The exception's `name`, e.g. `"QuotaExceededError"`.
    pub name: String,
    /// The exception's `message`.
    pub message: String,
}

impl std::fmt::Display for JsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for JsFailure {}

/// The JS `name` of an error kind, e.g. `"NetworkError"`.
pub fn error_name(kind: ErrorKind) -> String {
    format!("{}Error", kind.as_str())
}

/// Converts an engine error into a JS `Error` with `name` (e.g. `"IntegrityError"`), `code`
/// (the stable kind, e.g. `"Integrity"`), `detail` (the stable finer reason, e.g. `"Quota"`,
/// or `undefined`) and, where they exist, `status`, `retryAfterMs`, `expected` and `actual`.
pub fn to_js_error(e: &Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(&error_name(e.kind()));
    let set = |k: &str, v: &JsValue| {
        // Setting a property on a fresh Error object cannot fail.
        let _ = Reflect::set(&err, &k.into(), v);
    };
    set("code", &e.kind().as_str().into());
    if let Some(d) = e.detail() {
        set("detail", &d.as_str().into());
    }
    match e {
        Error::Network {
            status,
            retry_after_ms,
            ..
        } => {
            set("retryable", &JsValue::TRUE);
            if let Some(s) = status {
                set("status", &JsValue::from(*s));
            }
            if let Some(ms) = retry_after_ms {
                set("retryAfterMs", &JsValue::from_f64(*ms as f64));
            }
        }
        Error::Auth {
            status: Some(s), ..
        } => set("status", &JsValue::from(*s)),
        Error::Integrity(m) => {
            if let (Ok(exp), Ok(act)) = (to_js(&m.expected), to_js(&m.actual)) {
                set("expected", &exp);
                set("actual", &act);
            }
        }
        _ => {}
    }
    err.into()
}

/// Reads an error thrown by user JavaScript (a remote function). A `code` that names an error
/// kind is kept (so a transport can report `"Auth"`); an `AbortError` is a cancellation;
/// anything else is a retryable network error, since the function is the transport.
pub fn from_js_error(v: &JsValue) -> Error {
    let field = |k: &str| Reflect::get(v, &k.into()).ok().and_then(|x| x.as_string());
    let message = field("message").unwrap_or_else(|| {
        v.as_string()
            .unwrap_or_else(|| "the remote function failed".into())
    });
    let status = Reflect::get(v, &"status".into())
        .ok()
        .and_then(|s| s.as_f64())
        .map(|s| s as u16);
    if field("name").as_deref() == Some("AbortError") {
        return Error::Cancelled;
    }
    let err = match field("code").as_deref() {
        Some("Auth") => return Error::Auth { message, status },
        Some("Cancelled") => return Error::Cancelled,
        Some("InvalidInput") => return Error::invalid(message),
        Some("Protocol") => Error::protocol(message),
        Some("Storage") => Error::storage(message),
        _ => Error::Network {
            message,
            status,
            retry_after_ms: Reflect::get(v, &"retryAfterMs".into())
                .ok()
                .and_then(|s| s.as_f64())
                .map(|s| s as u64),
            detail: None,
            source: None,
        },
    };
    // A `detail` naming one of ours is kept too, so a JS transport can say "Timeout".
    let detail = field("detail")
        .and_then(|d| serde_json::from_value::<Detail>(serde_json::Value::String(d)).ok());
    let err = match detail {
        Some(d) => err.with_detail(d),
        None => err,
    };
    err.with_source(JsFailure {
        name: field("name").unwrap_or_else(|| "Error".into()),
        message: field("message").unwrap_or_default(),
    })
}

/// Serializes to a plain JS value through its JSON text, parsed by `JSON.parse`: one string
/// crosses the boundary instead of one call per field. The names are those `T` serializes
/// with: the typed shapes of [`crate::shapes`], camelCase as `js/types/index.d.ts` declares.
pub fn to_js<T: Serialize>(v: &T) -> Result<JsValue, Error> {
    // Only the serialization is generic: the rest is one function for every type.
    parse(crate::shapes::text(v)?)
}

#[inline(never)]
fn parse(text: String) -> Result<JsValue, Error> {
    js_sys::JSON::parse(&text).map_err(|_| Error::invalid("cannot convert to JavaScript"))
}

/// A string, or any other JS value as JSON text (`undefined` and functions are rejected), as
/// UTF-8 encoded by `TextEncoder` and copied once: passing a long string as a `String` goes
/// through wasm-bindgen's character loop in JS, several times slower (a page of a function
/// remote: 6 % of a sync's time in Node).
#[cfg(feature = "node-sqlite")]
pub fn utf8_of(v: &JsValue, what: &str) -> Result<Vec<u8>, Error> {
    let text = match v.dyn_ref::<JsString>() {
        Some(s) => s.clone(),
        None => js_sys::JSON::stringify(v)
            .ok()
            .filter(|s| s.is_string())
            .ok_or_else(|| Error::invalid(format!("{what} must be JSON-serializable")))?,
    };
    Ok(TextEncoder::new().encode(&text).to_vec())
}

/// A JS value as JSON text (`undefined` and functions are rejected).
pub fn json_of(v: &JsValue, what: &str) -> Result<String, Error> {
    js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| Error::invalid(format!("{what} must be JSON-serializable")))
}

/// A property of a JS object, `None` when undefined or null.
pub fn prop(obj: &JsValue, name: &str) -> Option<JsValue> {
    if !obj.is_object() {
        return None;
    }
    Reflect::get(obj, &name.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// A new empty object with `entries` set.
pub fn object(entries: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in entries {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&obj, &(*k).into(), v);
    }
    obj.into()
}

/// Awaits a value that may be a promise.
pub async fn resolve(v: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::resolve(&v)).await
}

/// Sleeps `ms` milliseconds on the event loop.
pub async fn sleep(ms: u64) {
    // `setTimeout` keeps its delay as an i32 and fires at once above it: sleep in steps.
    const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;
    let mut left = ms;
    loop {
        let step = left.min(MAX_TIMEOUT_MS);
        let promise = Promise::new(&mut |resolve, _| {
            set_timeout(&resolve, step as f64);
        });
        // The promise only ever resolves.
        let _ = JsFuture::from(promise).await;
        left -= step;
        if left == 0 {
            break;
        }
    }
}

/// A promise that resolves to `undefined` after `ms` (clamped to what `setTimeout` keeps), to
/// race against other awaits; the timer is cleared when the `Deadline` is dropped, so no timer
/// outlives the attempt it bounds (a pending timer keeps Node's event loop alive).
pub struct Deadline {
    promise: Promise,
    timer: JsValue,
}

impl Deadline {
    /// Starts the timer.
    pub fn after(ms: u64) -> Deadline {
        let mut timer = JsValue::UNDEFINED;
        let promise = Promise::new(&mut |resolve, _| {
            timer = set_timeout(&resolve, ms.min(i32::MAX as u64) as f64);
        });
        Deadline { promise, timer }
    }

    /// Awaits `p` unless the deadline passes first: `Ok(None)` then. Only for promises that
    /// never resolve to `undefined` (a `Response`, a stream read's `{done, value}`).
    pub async fn race(&self, p: Promise) -> Result<Option<JsValue>, JsValue> {
        let both = js_sys::Array::of2(&p, &self.promise);
        let v = JsFuture::from(Promise::race(&both)).await?;
        Ok((!v.is_undefined()).then_some(v))
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        clear_timeout(&self.timer);
    }
}

/// Milliseconds since the epoch.
pub fn now() -> i64 {
    js_sys::Date::now() as i64
}

/// 16 bytes from `crypto.getRandomValues` (browsers, workers and Node all have
/// `globalThis.crypto`) for a new client id
/// ([`SyncOptions::client_entropy`](tether_engine::SyncOptions::client_entropy)); `None`
/// where there is none, and then the engine derives the id.
pub fn client_entropy() -> Option<[u8; 16]> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    let fill = Reflect::get(&crypto, &"getRandomValues".into())
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    let buf = js_sys::Uint8Array::new_with_length(16);
    fill.call1(&crypto, &buf).ok()?;
    let mut bytes = [0; 16];
    buf.copy_to(&mut bytes);
    Some(bytes)
}
