//! The requests of partial sync (protocol v1.2, docs/protocol.md "Subsets"): a pull, range
//! digest and range records of one [`Subscription`], each the v1 request with `sub=<canonical
//! JSON>` added. A server without subsets ignores `sub` on a pull (and answers the whole scope)
//! or refuses it on the range endpoints (`400 bad_key_range`); the answers here tell both
//! apart from a subset answer, so a replica never takes a whole scope for its subset.

use super::{
    error_code, get, json, range_query, Answer, Detail, Endpoint, Error, Exchange, Request, Result,
    NOT_SUPPORTED,
};
use crate::subscription::{PulledSubset, Subscription, SubsetPage, SubsetSnapshot};
use crate::types::{Change, Checkpoint, KeyRange, ScopeId};

/// A pull of the page of `sub` after `checkpoint` (from the start when `None`): its live
/// records, the tombstones of its collection, and the changes that left it
/// ([`SubsetPage::outside`]). A server that ignored `sub` (one without subsets answers the
/// whole scope) is `Protocol` [`Detail::NotSupported`].
pub fn pull_subset(
    scope: &ScopeId,
    sub: &Subscription,
    checkpoint: Option<&Checkpoint>,
    limit: u32,
) -> Exchange<PulledSubset> {
    let limit = limit.to_string();
    let encoded = sub.encode();
    let mut query = vec![("limit", limit.as_str()), ("sub", encoded.as_str())];
    if let Some(c) = checkpoint {
        query.push(("checkpoint", c.as_str()));
    }
    get(Endpoint::Pull, scope, "changes", &query, decode_subset_pull)
}

/// A live pull of `sub`: like [`pull_subset`], and when nothing of the subscription follows
/// `checkpoint` the server waits up to `wait_s` seconds for a change of it (`wait=S`), cut to
/// end 5 s inside `deadline_ms` as [`super::pull_wait`] does.
pub fn pull_subset_wait(
    scope: &ScopeId,
    sub: &Subscription,
    checkpoint: Option<&Checkpoint>,
    limit: u32,
    wait_s: u32,
    deadline_ms: u64,
) -> Exchange<PulledSubset> {
    let room = u32::try_from((deadline_ms / 1000).saturating_sub(5)).unwrap_or(u32::MAX);
    let (limit, wait) = (limit.to_string(), wait_s.min(room).to_string());
    let encoded = sub.encode();
    let mut query = vec![
        ("limit", limit.as_str()),
        ("sub", encoded.as_str()),
        ("wait", wait.as_str()),
    ];
    if let Some(c) = checkpoint {
        query.push(("checkpoint", c.as_str()));
    }
    get(Endpoint::Pull, scope, "changes", &query, decode_subset_pull)
}

/// Count and digest of the records of `sub` in `range` (the whole collection with
/// [`KeyRange::default`]), and the checkpoint they were read at. `None`: the server has no
/// subsets (it refused `sub`, or lacks the digest endpoint).
pub fn subset_digest(
    scope: &ScopeId,
    sub: &Subscription,
    range: &KeyRange,
) -> Exchange<Option<SubsetSnapshot>> {
    let encoded = sub.encode();
    let mut query = range_query(range);
    query.push(("sub", encoded.as_str()));
    get(
        Endpoint::RangeDigest,
        scope,
        "digest",
        &query,
        decode_subset_optional,
    )
}

/// The records of `sub` in `range`, in key order. `None`: the server has no subsets.
pub fn subset_records(
    scope: &ScopeId,
    sub: &Subscription,
    range: &KeyRange,
) -> Exchange<Option<Vec<Change>>> {
    let encoded = sub.encode();
    let mut query = range_query(range);
    query.push(("sub", encoded.as_str()));
    get(
        Endpoint::RangeRecords,
        scope,
        "records",
        &query,
        decode_subset_records,
    )
}

fn decode_subset_pull(r: &Request, a: &Answer) -> Option<Result<PulledSubset>> {
    match a.status {
        410 => Some(Ok(PulledSubset::Reset)),
        200..=299 => Some(subset_page(r, a)),
        _ => None,
    }
}

fn subset_page(r: &Request, a: &Answer) -> Result<PulledSubset> {
    #[derive(serde::Deserialize)]
    struct Echo {
        subscription: Option<serde::de::IgnoredAny>,
    }
    let echoed = serde_json::from_slice::<Echo>(&a.body).is_ok_and(|e| e.subscription.is_some());
    if !echoed {
        return Err(Error::protocol(format!(
            "{} {}: the server answered without the subscription: it does not support \
             subsets (protocol v1.2) and sent the whole scope",
            r.method.as_str(),
            r.target()
        ))
        .with_detail(Detail::NotSupported));
    }
    let page: SubsetPage = json(r, a)?;
    let asked = format!("sub={}", super::encode(&page.subscription.encode()));
    if !r.query.split('&').any(|p| p == asked) {
        return Err(Error::protocol(format!(
            "{} {}: the page answers another subscription, {}",
            r.method.as_str(),
            r.target(),
            page.subscription.encode()
        ))
        .with_detail(Detail::Malformed));
    }
    Ok(PulledSubset::Page {
        page,
        bytes: a.body.len() as u64,
    })
}

/// `None` for a server without subsets: the not-supported statuses, or the `400
/// bad_key_range` by which a v1 server refuses the unknown `sub` parameter.
fn decode_subset_optional<T: serde::de::DeserializeOwned>(
    r: &Request,
    a: &Answer,
) -> Option<Result<Option<T>>> {
    match a.status {
        s if NOT_SUPPORTED.contains(&s) => Some(Ok(None)),
        400 if error_code(&a.body).as_deref() == Some("bad_key_range") => Some(Ok(None)),
        200..=299 => Some(json(r, a).map(Some)),
        _ => None,
    }
}

fn decode_subset_records(r: &Request, a: &Answer) -> Option<Result<Option<Vec<Change>>>> {
    if a.status == 400 && error_code(&a.body).as_deref() == Some("range_too_large") {
        return super::decode_records(r, a);
    }
    #[derive(serde::Deserialize)]
    struct Records {
        records: Vec<Change>,
    }
    decode_subset_optional::<Records>(r, a).map(|res| res.map(|o| o.map(|r| r.records)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RetryPolicy, Step};
    use serde_json::json;

    fn sub() -> Subscription {
        Subscription::new("files").with_filter("repository", [json!("r 1")])
    }

    fn done<T: std::fmt::Debug>(mut x: Exchange<T>, status: u16, body: &str) -> Result<T> {
        let answer = Answer::new(status, body.as_bytes().to_vec());
        match x.handle(&RetryPolicy::default(), Ok(answer), 0, 0.5) {
            Step::Done(r) => r,
            Step::Wait(ms) => panic!("waits {ms}"),
        }
    }

    #[test]
    fn requests_carry_the_canonical_subscription() {
        let scope = ScopeId::new("s").unwrap();
        let pull = pull_subset(&scope, &sub(), Some(&Checkpoint("7".into())), 100);
        assert_eq!(
            pull.request().target(),
            "/v1/scopes/s/changes?limit=100&sub=%7B%22collection%22%3A%22files%22%2C%22where\
             %22%3A%7B%22repository%22%3A%5B%22r%201%22%5D%7D%7D&checkpoint=7"
        );
        let range = KeyRange {
            from: Some(crate::Key::new("files", "a")),
            to: None,
        };
        let digest = subset_digest(&scope, &sub(), &range);
        assert!(digest
            .request()
            .target()
            .starts_with("/v1/scopes/s/digest?from_collection=files&from_id=a&sub=%7B"));
    }

    #[test]
    fn answers_are_decoded_and_a_server_without_subsets_is_told_apart() {
        let scope = ScopeId::new("s").unwrap();
        let page = json!({"subscription": sub(), "changes": [], "outside": [
            {"collection": "files", "id": "f1", "version": 9}],
            "checkpoint": "9", "has_more": false});
        let Ok(PulledSubset::Page { page, .. }) = done(
            pull_subset(&scope, &sub(), None, 10),
            200,
            &page.to_string(),
        ) else {
            panic!()
        };
        assert_eq!(page.outside[0].id, "f1");
        // A v1 server ignores `sub` and sends the whole scope: refused, not applied.
        let whole = r#"{"changes":[],"checkpoint":"9","has_more":false,
            "snapshot":{"count":0,"digest":"0000000000000000000000000000000000000000000000000000000000000000"}}"#;
        let err = done(pull_subset(&scope, &sub(), None, 10), 200, whole).unwrap_err();
        assert_eq!(err.detail(), Some(Detail::NotSupported), "{err}");
        // Another subscription echoed: malformed.
        let other = json!({"subscription": Subscription::new("files"), "changes": [],
            "checkpoint": "9"});
        let err = done(
            pull_subset(&scope, &sub(), None, 10),
            200,
            &other.to_string(),
        );
        assert_eq!(err.unwrap_err().detail(), Some(Detail::Malformed));
        assert_eq!(
            done(pull_subset(&scope, &sub(), None, 10), 410, "{}").unwrap(),
            PulledSubset::Reset
        );
        // The range endpoints of a v1 server refuse `sub` as an unknown range parameter.
        let refused = r#"{"code":"bad_key_range","message":"unknown parameter \"sub\""}"#;
        let range = KeyRange::default();
        assert_eq!(
            done(subset_digest(&scope, &sub(), &range), 400, refused).unwrap(),
            None
        );
        assert_eq!(
            done(subset_records(&scope, &sub(), &range), 400, refused).unwrap(),
            None
        );
        let snap = r#"{"count":1,"digest":"0100000000000000000000000000000000000000000000000000000000000000","checkpoint":"9"}"#;
        let got = done(subset_digest(&scope, &sub(), &range), 200, snap).unwrap();
        assert_eq!(
            got.map(|s| (s.count, s.checkpoint.0)),
            Some((1, "9".into()))
        );
        // A bad subscription is the server's 400, an error like any other.
        let bad = r#"{"code":"bad_subscription","message":"..."}"#;
        let err = done(pull_subset(&scope, &sub(), None, 10), 400, bad).unwrap_err();
        assert_eq!(err.detail(), Some(Detail::UnexpectedStatus));
    }
}
