//! Which keys of a write may already have a row, learnt without reading the rows: one
//! `getAllKeys` per collection span of the keys.

use std::collections::HashSet;

use js_sys::Array;
use tether_engine::{Key, Result};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbKeyRange, IdbObjectStore};

use super::codec::{decode_key, row_key};
use super::request::{call, js_storage_error, result_of, wait};

/// Which of `keys` may exist, found with one `getAllKeys` per collection over the span of that
/// collection's keys when the span holds few rows (at most twice as many as keys), so that a
/// download of new records does not pay a `get` per record even when its pages mix
/// collections. A key is [`Probe::may_exist`] if it was found, or if its collection was not
/// probed (few keys, or a wide span: then every key of it is read).
pub(super) async fn probe(
    rows: &IdbObjectStore,
    scope_js: &JsValue,
    keys: &[Key],
) -> Result<Probe> {
    const MIN_KEYS: usize = 16;
    let mut spans: Vec<(&str, &Key, &Key, usize)> = Vec::new();
    for k in keys {
        match spans.iter_mut().find(|s| s.0 == k.collection) {
            Some(s) => {
                s.1 = s.1.min(k);
                s.2 = s.2.max(k);
                s.3 += 1;
            }
            None => spans.push((&k.collection, k, k, 1)),
        }
    }
    let mut requests = Vec::new();
    for (collection, lo, hi, n) in spans {
        if n < MIN_KEYS {
            continue;
        }
        let limit = u32::try_from(n * 2).unwrap_or(u32::MAX);
        let range = IdbKeyRange::bound(&row_key(scope_js, lo), &row_key(scope_js, hi))
            .map_err(|e| js_storage_error("building a key range", &e))?;
        let req = call(rows.get_all_keys_with_key_and_limit(&range, limit))?;
        requests.push((collection, limit, req));
    }
    let mut probe = Probe::default();
    // Requests complete in order: once the last has, all have.
    if let Some((_, _, last)) = requests.last() {
        wait(last).await?;
        probe.awaited = true;
    }
    for (collection, limit, req) in requests {
        let found: Array = result_of(&req)?.unchecked_into();
        if found.length() >= limit {
            continue;
        }
        probe.probed.push(collection.to_owned());
        for k in found.iter() {
            probe.found.insert(decode_key(&k)?);
        }
    }
    Ok(probe)
}

/// What [`probe`] learnt.
#[derive(Default)]
pub(super) struct Probe {
    /// Collections whose span was read whole: few (one per collection of a page), so a list
    /// rather than a set (which would be one more hash table in the wasm).
    probed: Vec<String>,
    /// The keys found in those spans.
    found: HashSet<Key>,
    /// Whether a request was awaited (so every request issued before it is complete).
    pub(super) awaited: bool,
}

impl Probe {
    pub(super) fn may_exist(&self, key: &Key) -> bool {
        !self.probed.contains(&key.collection) || self.found.contains(key)
    }
}
