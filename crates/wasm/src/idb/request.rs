//! Futures over IndexedDB requests and transactions, the small helpers every operation issues
//! requests through, and the error mapping.
//!
//! A request is awaited through a `Promise` whose `resolve`/`reject` are installed directly as
//! the request's `onsuccess`/`onerror` handlers: no Rust closure is allocated per request and
//! none can leak. wasm-bindgen-futures resumes the awaiting task in a microtask of the success
//! event, while the transaction is still active, so further requests can be issued in it.

use js_sys::{Array, Promise};
use tether_engine::{Detail, Error, Result};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{DomException, IdbObjectStore, IdbRequest, IdbTransaction};

use crate::js::JsFailure;

/// Rows read per request when scanning a range (bounds memory on large scopes).
pub(super) const SCAN_BATCH: u32 = 2000;

/// Waits for a request to succeed and returns its result.
pub(crate) async fn wait(req: &IdbRequest) -> Result<JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    let outcome = JsFuture::from(promise).await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    match outcome {
        Ok(_) => req
            .result()
            .map_err(|e| js_storage_error("reading a request result", &e)),
        Err(_) => Err(dom_error("request", req.error().ok().flatten())),
    }
}

/// Commits a read-write transaction and waits for it. Every request must have been issued
/// before: the handlers are installed here, which is still before the browser can commit.
///
/// `commit()` sends the commit at once, without waiting for the success events of the requests
/// still in flight (a page's puts): IndexedDB writes and commits while this thread goes on with
/// other work (the next page's validation). Where it throws (a browser without it, a
/// transaction no longer active), the transaction commits by itself, as it always did.
pub(crate) async fn committed(tx: &IdbTransaction) -> Result<()> {
    // web-sys marks `commit` deprecated after an old WebIDL snapshot; it is IndexedDB 3.0, in
    // Chromium since 76, Firefox since 74 and Safari since 15.
    #[allow(deprecated)]
    let _ = tx.commit();
    let promise = Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    });
    let outcome = JsFuture::from(promise).await;
    tx.set_oncomplete(None);
    tx.set_onabort(None);
    match outcome {
        Ok(_) => Ok(()),
        Err(_) => Err(dom_error("transaction", tx.error())),
    }
}

/// Aborts a transaction whose writes must not land (planner error, bad row). Aborting a
/// transaction that already finished throws; there is nothing left to undo then.
pub(crate) fn abort(tx: &IdbTransaction) {
    let _ = tx.abort();
}

/// Maps an IndexedDB failure to a storage error. A `QuotaExceededError` says what to do: the
/// transaction was rolled back, so the last committed page and its checkpoint are intact and
/// the sync resumes from there once space is freed.
pub(crate) fn dom_error(what: &str, ex: Option<DomException>) -> Error {
    match ex {
        Some(ex) => storage_error_named(what, &ex.name(), &ex.message()),
        None => Error::storage(format!("IndexedDB {what} aborted")),
    }
}

/// The storage error for a DOMException name and message.
/// The exception's name and message are kept as the error's source, and a full quota is
/// [`Detail::Quota`].
pub fn storage_error_named(what: &str, name: &str, message: &str) -> Error {
    let source = JsFailure {
        name: name.to_owned(),
        message: message.to_owned(),
    };
    if name == "QuotaExceededError" {
        Error::storage(format!(
            "IndexedDB quota exceeded during {what} ({message}); nothing of this write was kept, \
             the last committed page and its checkpoint are intact: free space and sync again"
        ))
        .with_detail(Detail::Quota)
        .with_source(source)
    } else {
        Error::storage(format!("IndexedDB {what} failed: {name}: {message}")).with_source(source)
    }
}

/// Maps an exception thrown synchronously by an IndexedDB call.
pub(crate) fn js_storage_error(what: &str, err: &JsValue) -> Error {
    if let Some(ex) = err.dyn_ref::<DomException>() {
        return storage_error_named(what, &ex.name(), &ex.message());
    }
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        let name: String = e.name().into();
        let message: String = e.message().into();
        return storage_error_named(what, &name, &message);
    }
    Error::storage(format!("IndexedDB {what} failed: {err:?}"))
}

/// A JS array of strings (object store names, key paths).
pub(crate) fn str_array(items: &[&str]) -> Array {
    items.iter().map(|s| JsValue::from_str(s)).collect()
}

/// The object store `name` of a transaction.
pub(super) fn object_store(tx: &IdbTransaction, name: &str) -> Result<IdbObjectStore> {
    tx.object_store(name)
        .map_err(|e| js_storage_error("opening an object store", &e))
}

/// A request issued, or its synchronous failure as a storage error.
pub(super) fn call(req: std::result::Result<IdbRequest, JsValue>) -> Result<IdbRequest> {
    req.map_err(|e| js_storage_error("a request", &e))
}

/// The result of a request that succeeded.
pub(super) fn result_of(req: &IdbRequest) -> Result<JsValue> {
    req.result()
        .map_err(|e| js_storage_error("reading a request result", &e))
}

/// A cursor that failed to move, as a storage error.
pub(super) fn cursor_err(e: JsValue) -> Error {
    js_storage_error("moving a cursor", &e)
}

/// A count request's result.
pub(super) fn as_u64(v: &JsValue) -> Result<u64> {
    v.as_f64()
        .map(|f| f as u64)
        .ok_or_else(|| Error::storage("IndexedDB count is not a number"))
}
