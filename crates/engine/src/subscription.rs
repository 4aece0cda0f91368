//! Subscriptions: the part of a scope a replica wants (docs/partial-sync.md).
//!
//! A subscription names one collection and, optionally, filters on fields of the records'
//! data: each filter is a dotted path (`owner.team`) and a list of values, and a record
//! matches when, for every filter, the value at its path equals one of the filter's values.
//! Values are JSON strings or numbers (numbers compared as doubles, as canonical JSON reads
//! them); a missing member, `null`, a boolean, an array or an object at the path matches no
//! filter. Ranges and prefixes are not in (docs/partial-sync.md says why).
//!
//! On the wire a subscription is its canonical JSON ([`Subscription::encode`]), e.g.
//! `{"collection":"files","where":{"repository":["repo_000001","repo_000002"]}}`, sent as the
//! `sub` query parameter of a pull, a range digest or range records (protocol v1.2).
//!
//! ```
//! use serde_json::json;
//! use tether_engine::subscription::Subscription;
//!
//! let sub = Subscription::new("files").with_filter("repository", [json!("r1"), json!("r2")]);
//! let text = sub.encode();
//! assert_eq!(text, r#"{"collection":"files","where":{"repository":["r1","r2"]}}"#);
//! assert_eq!(Subscription::parse(&text).unwrap(), sub);
//! let data = json!({"repository": "r2", "path": "a.sql"});
//! assert!(sub.matches("files", data.as_object().unwrap()));
//! assert!(!sub.matches("objects", data.as_object().unwrap()));
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Detail, Error, Result};
use crate::limits::{
    check_text, MAX_FILTER_PATHS, MAX_FILTER_VALUES, MAX_PATH_SEGMENTS, MAX_SUBSCRIPTION_BYTES,
};
use crate::types::Change;

/// The part of a scope a replica wants: one collection, optionally filtered on its data.
///
/// Build one with [`Subscription::new`] and [`Subscription::with_filter`], or read one with
/// [`Subscription::parse`] (which checks the limits of [`crate::limits`]); two subscriptions
/// that select the same records by the same filters encode alike (paths sorted, values sorted
/// and deduplicated), so the encoding names a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The collection.
    pub collection: String,
    /// Per dotted path, the values one of which the record's value there must equal. Empty:
    /// the whole collection.
    #[serde(default, rename = "where", skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Vec<Value>>,
}

impl Subscription {
    /// The whole collection.
    pub fn new(collection: impl Into<String>) -> Self {
        Subscription {
            collection: collection.into(),
            filters: BTreeMap::new(),
        }
    }

    /// The same subscription, also requiring the value at `path` to be one of `values` (which
    /// replace any given before for that path). Checked by [`Subscription::validate`].
    pub fn with_filter(
        mut self,
        path: impl Into<String>,
        values: impl IntoIterator<Item = Value>,
    ) -> Self {
        let mut values: Vec<Value> = values.into_iter().collect();
        normalize(&mut values);
        self.filters.insert(path.into(), values);
        self
    }

    /// Reads the wire form, normalizes it and checks it ([`Subscription::validate`]).
    pub fn parse(text: &str) -> Result<Subscription> {
        if text.len() > MAX_SUBSCRIPTION_BYTES {
            return Err(too_large(format!(
                "a subscription is at most {MAX_SUBSCRIPTION_BYTES} bytes, got {}",
                text.len()
            )));
        }
        // From the bytes, as the engine's other readers: one JSON reader in the browser's wasm.
        let mut sub: Subscription = serde_json::from_slice(text.as_bytes()).map_err(|e| {
            Error::invalid(format!(
                "a subscription is {{\"collection\": C, \"where\": {{PATH: [VALUE, ...]}}}}: {e}"
            ))
            .with_detail(Detail::Malformed)
        })?;
        for values in sub.filters.values_mut() {
            normalize(values);
        }
        sub.validate()?;
        Ok(sub)
    }

    /// Checks the collection, every path and value, and the limits: at most
    /// [`MAX_FILTER_PATHS`] paths, [`MAX_FILTER_VALUES`] values in all, [`MAX_PATH_SEGMENTS`]
    /// segments a path, [`MAX_SUBSCRIPTION_BYTES`] bytes encoded. `InvalidInput`, with
    /// [`Detail::TooLarge`] for a limit and [`Detail::Malformed`] otherwise.
    pub fn validate(&self) -> Result<()> {
        let malformed = |m: String| Error::invalid(m).with_detail(Detail::Malformed);
        if self.collection.is_empty() || self.collection.chars().any(char::is_control) {
            return Err(malformed(format!(
                "a subscription's collection must be non-empty without control characters, \
                 got {:?}",
                self.collection
            )));
        }
        check_text(&self.collection)?;
        if self.filters.len() > MAX_FILTER_PATHS {
            return Err(too_large(format!(
                "a subscription filters on at most {MAX_FILTER_PATHS} paths, got {}",
                self.filters.len()
            )));
        }
        let total: usize = self.filters.values().map(Vec::len).sum();
        if total > MAX_FILTER_VALUES {
            return Err(too_large(format!(
                "a subscription lists at most {MAX_FILTER_VALUES} values in all, got {total}"
            )));
        }
        for (path, values) in &self.filters {
            let segments = path_segments(path).ok_or_else(|| {
                malformed(format!(
                    "filter path {path:?}: dotted names of ASCII letters, digits and '_', each \
                     starting with a letter or '_'"
                ))
            })?;
            if segments.len() > MAX_PATH_SEGMENTS {
                return Err(too_large(format!(
                    "filter path {path:?}: at most {MAX_PATH_SEGMENTS} segments, got {}",
                    segments.len()
                )));
            }
            if values.is_empty() {
                return Err(malformed(format!(
                    "filter path {path:?}: give at least one value"
                )));
            }
            for v in values {
                match v {
                    Value::String(s) => check_text(s)?,
                    Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {}
                    other => {
                        return Err(malformed(format!(
                            "filter path {path:?}: values are strings or numbers, got {other}"
                        )))
                    }
                }
            }
        }
        let bytes = self.encode().len();
        if bytes > MAX_SUBSCRIPTION_BYTES {
            return Err(too_large(format!(
                "a subscription is at most {MAX_SUBSCRIPTION_BYTES} bytes encoded, got {bytes}"
            )));
        }
        Ok(())
    }

    /// The canonical wire form: compact JSON, paths sorted, values sorted and deduplicated.
    pub fn encode(&self) -> String {
        // A map of strings to lists of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether a record of `collection` with `data` is in the subscription.
    pub fn matches(&self, collection: &str, data: &Map<String, Value>) -> bool {
        collection == self.collection
            && self.filters.iter().all(|(path, values)| {
                let found = path
                    .split('.')
                    .try_fold(None::<&Value>, |at, name| match at {
                        None => data.get(name).map(Some),
                        Some(Value::Object(m)) => m.get(name).map(Some),
                        Some(_) => None,
                    })
                    .flatten();
                found.is_some_and(|v| values.iter().any(|w| same(v, w)))
            })
    }

    /// The paths filtered on, sorted, each split into its member names.
    pub fn paths(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.filters
            .keys()
            .map(|p| (p.as_str(), p.split('.').collect()))
    }
}

/// A subscription as a replica holds it: with its priority, and where its download stands.
/// Stored in the scope's state ([`crate::rules::ScopeState::subscriptions`]) and written in the
/// same transaction as the pages that move it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// What it selects.
    pub subscription: Subscription,
    /// 0 is the highest: a sync completes every subscription of a priority before the next.
    #[serde(default)]
    pub priority: u8,
    /// Where its pull stands in the scope's feed; `None` before its first page.
    #[serde(default)]
    pub checkpoint: Option<crate::types::Checkpoint>,
    /// Its pull reached the end at `checkpoint` once: the replica holds every record it
    /// selected then. A new subscription is not complete until its download ends.
    #[serde(default)]
    pub complete: bool,
}

impl Held {
    /// A subscription not yet downloaded.
    pub fn new(subscription: Subscription, priority: u8) -> Self {
        Held {
            subscription,
            priority,
            checkpoint: None,
            complete: false,
        }
    }
}

impl Subscription {
    /// Whether every record `other` selects is one this selects too: same collection, and each
    /// of this one's filters is in `other` with a subset of its values. A replica that holds
    /// this one completely holds `other` and starts `other` at this one's checkpoint.
    pub fn covers(&self, other: &Subscription) -> bool {
        self.collection == other.collection
            && self.filters.iter().all(|(path, values)| {
                other
                    .filters
                    .get(path)
                    .is_some_and(|theirs| theirs.iter().all(|v| values.iter().any(|w| same(v, w))))
            })
    }
}

/// A change of a subscription's collection whose new state is outside the subscription, in a
/// [`SubsetPage`]: the record moved out, or changed while outside (a replica that does not
/// hold it ignores it). Deletes are tombstones in `changes`, as in any page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outside {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// The version of the state that is outside.
    pub version: u64,
}

/// A page of a subset pull (`GET .../changes?sub=...`): a [`crate::Page`] of the
/// subscription's records, plus the changes that left it, and no snapshot (the subset's count
/// and digest come from `GET .../digest?sub=...`, whose cost is the subset's size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetPage {
    /// The subscription the page answers, as the server read it: a server that does not know
    /// subscriptions answers without it, and the client refuses such a page.
    pub subscription: Subscription,
    /// Live records in the subscription, and tombstones of the collection.
    pub changes: Vec<Change>,
    /// Changes of the collection whose new state is outside the subscription.
    #[serde(default)]
    pub outside: Vec<Outside>,
    /// The position after this page: a position in the scope's feed.
    pub checkpoint: crate::types::Checkpoint,
    /// More changes follow now.
    #[serde(default)]
    pub has_more: bool,
    /// An estimate of the changes still to come.
    #[serde(default)]
    pub remaining: Option<u64>,
}

/// The answer to a subset pull.
#[derive(Debug, Clone, PartialEq)]
pub enum PulledSubset {
    /// A page of the subscription.
    Page {
        /// The page.
        page: SubsetPage,
        /// Bytes received for it.
        bytes: u64,
    },
    /// The checkpoint is older than the cloud's tombstone horizon (HTTP 410): download the
    /// subscription again from the start.
    Reset,
}

/// The count and digest of a subscription's records (`GET .../digest?sub=...`), and the
/// position in the scope's feed they were read at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubsetSnapshot {
    /// Live records in the subscription (and the key range, if one was given).
    pub count: u64,
    /// Their digest, as the scope digest is defined.
    pub digest: crate::digest::Digest,
    /// The checkpoint of the scope's state they describe (the last page's checkpoint of a pull
    /// that reached the end then).
    pub checkpoint: crate::types::Checkpoint,
}

/// The member names of a path, if it is well formed.
fn path_segments(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.split('.').collect();
    segments
        .iter()
        .all(|s| {
            let mut bytes = s.bytes();
            bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .then_some(segments)
}

/// Sorts values (strings before numbers, each in its order) and drops repeats.
fn normalize(values: &mut Vec<Value>) {
    values.sort_by(|a, b| match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::String(_), _) => std::cmp::Ordering::Less,
        (_, Value::String(_)) => std::cmp::Ordering::Greater,
        (x, y) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
    });
    values.dedup_by(|a, b| same(a, b));
}

/// JSON scalar equality as subscriptions compare: strings exactly, numbers as doubles.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => false,
    }
}

fn too_large(message: String) -> Error {
    Error::invalid(message).with_detail(Detail::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encoding_is_canonical() {
        let a = Subscription::new("c")
            .with_filter("b", [json!(2), json!("x"), json!(2.0), json!(1)])
            .with_filter("a.z", [json!("y")]);
        assert_eq!(
            a.encode(),
            r#"{"collection":"c","where":{"a.z":["y"],"b":["x",1,2]}}"#
        );
        let b =
            Subscription::parse(r#"{"where":{"b":[1,"x",2],"a.z":["y","y"]},"collection":"c"}"#)
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            Subscription::parse(r#"{"collection":"c"}"#)
                .unwrap()
                .encode(),
            r#"{"collection":"c"}"#
        );
    }

    #[test]
    fn matching() {
        let sub = Subscription::new("o")
            .with_filter("owner.team", [json!("sales"), json!("ops")])
            .with_filter("n", [json!(3)]);
        let yes = json!({"owner": {"team": "ops"}, "n": 3.0});
        assert!(sub.matches("o", yes.as_object().unwrap()));
        for no in [
            json!({"owner": {"team": "hr"}, "n": 3}),
            json!({"owner": {"team": "ops"}, "n": "3"}),
            json!({"owner": {"team": "ops"}}),
            json!({"owner": "ops", "n": 3}),
            json!({"owner": {"team": ["ops"]}, "n": 3}),
            json!({"owner": {"team": null}, "n": 3}),
        ] {
            assert!(!sub.matches("o", no.as_object().unwrap()), "{no}");
        }
    }

    #[test]
    fn covering() {
        let all = Subscription::new("files");
        let two = Subscription::new("files").with_filter("repository", [json!("a"), json!("b")]);
        let one = Subscription::new("files").with_filter("repository", [json!("a")]);
        let narrower = one.clone().with_filter("kind", [json!("sql")]);
        assert!(all.covers(&two) && two.covers(&one) && one.covers(&narrower));
        assert!(two.covers(&two));
        assert!(!one.covers(&two) && !two.covers(&all) && !narrower.covers(&one));
        assert!(!all.covers(&Subscription::new("objects")));
    }

    #[test]
    fn bad_subscriptions_are_refused_with_their_detail() {
        let detail = |text: &str| Subscription::parse(text).unwrap_err().detail();
        for bad in [
            "",
            "[]",
            r#"{"collection":""}"#,
            r#"{"collection":"c","extra":1}"#,
            r#"{"collection":"c","where":{"a":[]}}"#,
            r#"{"collection":"c","where":{"a":[true]}}"#,
            r#"{"collection":"c","where":{"a":[null]}}"#,
            r#"{"collection":"c","where":{"a":[{"x":1}]}}"#,
            r#"{"collection":"c","where":{"a..b":["x"]}}"#,
            r#"{"collection":"c","where":{"0a":["x"]}}"#,
            r#"{"collection":"c","where":{"a-b":["x"]}}"#,
            r#"{"collection":"c","where":{"a":"x"}}"#,
        ] {
            assert_eq!(detail(bad), Some(Detail::Malformed), "{bad}");
        }
        let paths: BTreeMap<String, Vec<Value>> = (0..=MAX_FILTER_PATHS)
            .map(|i| (format!("p{i}"), vec![json!("v")]))
            .collect();
        let many_paths = json!({"collection": "c", "where": paths}).to_string();
        assert_eq!(detail(&many_paths), Some(Detail::TooLarge));
        let values: Vec<Value> = (0..=MAX_FILTER_VALUES).map(|i| json!(i)).collect();
        let many_values = json!({"collection": "c", "where": {"a": values}}).to_string();
        assert_eq!(detail(&many_values), Some(Detail::TooLarge));
        let deep = ["a"; MAX_PATH_SEGMENTS + 1].join(".");
        let deep = json!({"collection": "c", "where": {deep: ["v"]}}).to_string();
        assert_eq!(detail(&deep), Some(Detail::TooLarge));
        let long = json!({"collection": "c", "where": {"a": ["x".repeat(MAX_SUBSCRIPTION_BYTES)]}})
            .to_string();
        assert_eq!(detail(&long), Some(Detail::TooLarge));
        // At the limits exactly, accepted.
        let values: Vec<Value> = (0..MAX_FILTER_VALUES).map(|i| json!(i)).collect();
        let ok = json!({"collection": "c", "where": {"a": values}}).to_string();
        assert!(Subscription::parse(&ok).is_ok());
    }
}
