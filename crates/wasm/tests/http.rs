//! The protocol's case table end to end in headless Chromium: the fetch `HttpRemote` over a fake
//! `fetch` that answers each case's canned replies with real `Response` objects.
#![cfg(target_family = "wasm")]

use js_sys::{Function, Reflect};
use serde_json::{json, Value};
use tether_engine::protocol::cases::{self, Call, Reply};
use tether_engine::subscription::{PulledSubset, Subscription};
use tether_engine::{Detail, Error, ErrorKind, KeyRange, Remote, ScopeId};
use tether_wasm::any_remote::AnyRemote;
use tether_wasm::remote::{HttpRemote, Token};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function canned(replies, fail) {
  const seen = [];
  const fetch = async (url, init) => {
    const headers = {};
    new Headers(init.headers).forEach((v, k) => { headers[k] = v; });
    const body = init.body ? new TextDecoder().decode(init.body) : null;
    seen.push({ url, method: init.method, headers, body });
    if (fail === "abort") throw new DOMException("The user aborted a request.", "AbortError");
    if (fail) throw new TypeError("Failed to fetch");
    const r = replies[seen.length - 1] ?? { status: 599, body: "no more canned answers" };
    const h = { "content-type": "application/json" };
    if (r.retryAfter != null) h["retry-after"] = r.retryAfter;
    return new Response(r.body, { status: r.status, headers: h });
  };
  return { fetch, seen: () => JSON.stringify(seen) };
}
"#)]
extern "C" {
    fn canned(replies: JsValue, fail: JsValue) -> JsValue;
}

const BASE: &str = "https://sync.example";

/// A fake fetch over `replies`, and a function returning what it saw.
fn fake(replies: &[Reply], fail: Option<&str>) -> (Function, Function) {
    let replies: Vec<Value> = replies
        .iter()
        .map(|r| match r {
            Reply::Answer {
                status,
                retry_after,
                body,
            } => json!({"status": status, "retryAfter": retry_after, "body": body}),
            Reply::Fail(f) => panic!("a fake fetch cannot fake {f:?}"),
        })
        .collect();
    let replies = js_sys::JSON::parse(&Value::from(replies).to_string()).unwrap();
    let fake = canned(replies, fail.map_or(JsValue::UNDEFINED, JsValue::from));
    let get = |k: &str| Reflect::get(&fake, &k.into()).unwrap().dyn_into().unwrap();
    (get("fetch"), get("seen"))
}

fn seen(f: &Function) -> Vec<Value> {
    let text = f.call0(&JsValue::NULL).unwrap().as_string().unwrap();
    serde_json::from_str(&text).unwrap()
}

fn remote(fetch: Function) -> HttpRemote {
    HttpRemote::new(BASE, Token::Fixed(cases::TOKEN.into()))
        .unwrap()
        .with_fetch(Some(fetch))
        .with_policy(cases::policy())
}

#[wasm_bindgen_test]
async fn every_protocol_case_through_fetch() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases::cases().iter().filter(|c| !c.has_failures()) {
        ran += 1;
        let (fetch, seen_by) = fake(case.answers, None);
        if let Err(e) = cases::check(&remote(fetch), case).await {
            failures.push(e);
        }
        let seen = seen(&seen_by);
        if seen.len() != case.answers.len() {
            failures.push(format!(
                "{}: {} requests, expected {}",
                case.name,
                seen.len(),
                case.answers.len()
            ));
        }
        let url = format!("{BASE}{}", case.target);
        let auth = format!("Bearer {}", cases::TOKEN);
        for s in &seen {
            if s["url"] != url.as_str() || s["method"] != case.method {
                failures.push(format!("{}: sent {s}", case.name));
            }
            if s["headers"]["authorization"] != auth.as_str() {
                failures.push(format!("{}: headers {}", case.name, s["headers"]));
            }
            if let Call::Push(n) | Call::PushIdentified(n) = case.call {
                let body: Value = serde_json::from_str(s["body"].as_str().unwrap_or("")).unwrap();
                let sent = body["mutations"].as_array().map_or(0, Vec::len);
                if sent != n || s["headers"]["content-type"] != "application/json" {
                    failures.push(format!("{}: pushed {s}", case.name));
                }
            }
        }
    }
    assert!(ran >= 30, "only {ran} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[wasm_bindgen_test]
async fn a_rejected_fetch_retries_gets_but_not_pushes() {
    let scope = ScopeId::new("s").unwrap();
    let (fetch, seen_by) = fake(&[], Some("network"));
    let err = remote(fetch).pull(&scope, None, 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network, "{err:?}");
    assert_eq!(seen(&seen_by).len(), 3, "2 retries");
    assert!(err.to_string().contains("Failed to fetch"), "{err}");

    let (fetch, seen_by) = fake(&[], Some("network"));
    let err = remote(fetch)
        .push(&scope, &cases::mutations(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Network { detail: None, .. }),
        "{err:?}"
    );
    assert_eq!(
        seen(&seen_by).len(),
        1,
        "a push that may have left is not retried"
    );
}

#[wasm_bindgen_test]
async fn an_aborted_fetch_is_cancelled() {
    let scope = ScopeId::new("s").unwrap();
    let (fetch, seen_by) = fake(&[], Some("abort"));
    let err = remote(fetch).status(&scope).await.unwrap_err();
    assert_eq!(err, Error::Cancelled);
    assert_eq!(seen(&seen_by).len(), 1);
}

#[wasm_bindgen_test]
async fn js_options_url_token_fetch_retries_still_work() {
    let case = cases::cases()
        .iter()
        .find(|c| c.name == "pull: 503 is retried")
        .unwrap();
    let (fetch, seen_by) = fake(case.answers, None);
    let options = js_sys::Object::new();
    for (k, v) in [
        ("url", JsValue::from(BASE)),
        ("token", JsValue::from(cases::TOKEN)),
        ("fetch", fetch.into()),
        ("retries", JsValue::from(0)),
    ] {
        Reflect::set(&options, &k.into(), &v).unwrap();
    }
    let remote = AnyRemote::from_js(&options, None).unwrap();
    let scope = ScopeId::new(cases::SCOPE).unwrap();
    let err = remote.pull(&scope, None, cases::LIMIT).await.unwrap_err();
    assert_eq!(err.detail(), Some(Detail::ServerError), "{err:?}");
    let seen = seen(&seen_by);
    assert_eq!(seen.len(), 1, "retries: 0");
    assert_eq!(seen[0]["headers"]["authorization"], "Bearer t0ken");
}

#[wasm_bindgen(inline_js = r#"
export function hostile(kind, bytes) {
  let pulled = 0;
  const fetch = async (url, init) => {
    if (kind === "hang") return new Promise(() => {});
    const body = new ReadableStream({
      async pull(c) {
        if (kind === "trickle") {
          await new Promise((r) => setTimeout(r, 40));
          pulled += 1;
          c.enqueue(new Uint8Array([32]));
          return;
        }
        // "bomb": 64 KiB chunks without end.
        pulled += 65536;
        c.enqueue(new Uint8Array(65536));
        if (pulled >= bytes) c.close();
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  };
  return { fetch, pulled: () => pulled };
}
"#)]
extern "C" {
    fn hostile(kind: &str, bytes: f64) -> JsValue;
}

fn hostile_remote(kind: &str, bytes: f64) -> (HttpRemote, Function) {
    let h = hostile(kind, bytes);
    let get = |k: &str| {
        Reflect::get(&h, &k.into())
            .unwrap()
            .dyn_into::<Function>()
            .unwrap()
    };
    let mut policy = cases::policy();
    policy.retries = 1;
    let remote = HttpRemote::new(BASE, Token::None)
        .unwrap()
        .with_fetch(Some(get("fetch")))
        .with_policy(policy)
        .with_timeout(150);
    (remote, get("pulled"))
}

#[wasm_bindgen_test]
async fn a_fetch_that_never_answers_is_a_timeout() {
    let (remote, _) = hostile_remote("hang", 0.0);
    let started = js_sys::Date::now();
    let err = remote
        .status(&ScopeId::new("s").unwrap())
        .await
        .unwrap_err();
    let took = js_sys::Date::now() - started;
    assert_eq!(
        (err.kind(), err.detail()),
        (ErrorKind::Network, Some(Detail::Timeout)),
        "{err}"
    );
    assert!(took < 5_000.0, "two attempts of 150 ms took {took} ms");
}

#[wasm_bindgen_test]
async fn a_trickling_body_is_a_timeout() {
    let (remote, pulled) = hostile_remote("trickle", 0.0);
    let err = remote
        .status(&ScopeId::new("s").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.detail(), Some(Detail::Timeout), "{err}");
    let n = pulled.call0(&JsValue::NULL).unwrap().as_f64().unwrap();
    assert!(n >= 1.0, "the body did start to trickle ({n} bytes)");
}

#[wasm_bindgen_test]
async fn a_body_over_the_limit_is_refused_while_it_streams() {
    let (remote, pulled) = hostile_remote("bomb", 64.0 * 1024.0 * 1024.0);
    let remote = remote.with_max_body(1 << 20).with_timeout(30_000);
    let err = remote
        .status(&ScopeId::new("s").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.detail()),
        (ErrorKind::Protocol, Some(Detail::BodyTooLarge)),
        "{err}"
    );
    // The reader stopped at the limit: not the 64 MiB on offer (a chunk or two of read-ahead).
    let n = pulled.call0(&JsValue::NULL).unwrap().as_f64().unwrap();
    assert!(
        n < 4.0 * 1024.0 * 1024.0,
        "{n} bytes were pulled for a 1 MiB limit"
    );
}

/// The remote a JS `{url, token, fetch}` describes, over `fetch`.
fn js_http_remote(fetch: Function) -> AnyRemote {
    let options = js_sys::Object::new();
    for (k, v) in [
        ("url", JsValue::from(BASE)),
        ("token", JsValue::from(cases::TOKEN)),
        ("fetch", fetch.into()),
    ] {
        Reflect::set(&options, &k.into(), &v).unwrap();
    }
    AnyRemote::from_js(&options, None).unwrap()
}

#[wasm_bindgen_test]
async fn subsets_go_through_the_fetch_remote_and_not_through_functions() {
    let scope = ScopeId::new("s").unwrap();
    let sub = Subscription::new("files").with_filter("repository", [json!("r 1")]);
    let page = json!({"subscription": sub, "changes": [], "outside": [
        {"collection": "files", "id": "f1", "version": 9}], "checkpoint": "9", "has_more": false});
    let digest = json!({"count": 0, "digest": "0".repeat(64), "checkpoint": "9"});
    let replies: Vec<Reply> = [
        page.to_string(),
        digest.to_string(),
        r#"{"records":[]}"#.into(),
    ]
    .into_iter()
    .map(|body| Reply::Answer {
        status: 200,
        retry_after: None,
        body: String::leak(body),
    })
    .collect();
    let (fetch, seen_by) = fake(&replies, None);
    let remote = js_http_remote(fetch);
    let Ok(PulledSubset::Page { page, .. }) = remote.pull_subset(&scope, &sub, None, 10).await
    else {
        panic!("a page");
    };
    assert_eq!(page.outside[0].id, "f1");
    let snapshot = remote.subset_digest(&scope, &sub, &KeyRange::all()).await;
    assert_eq!(snapshot.unwrap().map(|s| s.count), Some(0));
    let records = remote.subset_records(&scope, &sub, &KeyRange::all()).await;
    assert_eq!(records.unwrap(), Some(vec![]));
    let encoded = "sub=%7B%22collection%22%3A%22files%22%2C%22where%22%3A%7B%22repository%22\
                   %3A%5B%22r%201%22%5D%7D%7D";
    let seen = seen(&seen_by);
    let paths: Vec<&str> = seen
        .iter()
        .map(|s| s["url"].as_str().unwrap().trim_start_matches(BASE))
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    for (path, endpoint) in paths.iter().zip(["changes", "digest", "records"]) {
        assert!(
            path.starts_with(&format!("/v1/scopes/s/{endpoint}?")),
            "{path}"
        );
        assert!(path.contains(encoded), "{path}");
    }

    // A remote of JS functions has no subset call: it says so, as a protocol it cannot speak.
    let options = js_sys::Object::new();
    let pull = Function::new_no_args("throw new Error('never called')");
    Reflect::set(&options, &"pull".into(), &pull).unwrap();
    let remote = AnyRemote::from_js(&options, None).unwrap();
    let err = remote
        .pull_subset(&scope, &sub, None, 10)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert_eq!(err.detail(), Some(Detail::NotSupported));
    assert!(err.to_string().contains("HTTP remote"), "{err}");
}
