//! Which keys of a write may already have a row, learnt without reading the rows: one
//! `getAllKeys` per collection span of the keys; and where a span turns out dense with the
//! write's rows, their values read with one `getAll` over it rather than a `get` per key.

use std::collections::HashMap;

use js_sys::Array;
use tether_engine::{Key, Result};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbKeyRange, IdbObjectStore, IdbRequest};

use super::codec::{decode_key, row_key};
use super::request::{call, js_storage_error, result_of, wait};

/// Which of `keys` may exist, found with one `getAllKeys` per collection over the span of that
/// collection's keys when the span holds few rows (at most twice as many as keys), so that a
/// download of new records does not pay a `get` per record even when its pages mix
/// collections. A key is [`Probe::may_exist`] if it was found, or if its collection was not
/// probed (few keys, a sample of its span full of rows, or a wide span: then every key of it is
/// read).
pub(super) async fn probe(
    rows: &IdbObjectStore,
    scope_js: &JsValue,
    keys: &[Key],
) -> Result<Probe> {
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
    // A sample first: the span of a collection's first MIN_KEYS keys. Where it alone holds
    // more than twice as many rows, the keys are spread over stored rows (a delta on a large
    // replica) and the whole span's probe would come back full and be wasted, after a round
    // trip that holds back every read: those collections are read with a `get` per key.
    let mut samples = Vec::new();
    for &(collection, _, _, n) in &spans {
        if n < MIN_KEYS {
            continue;
        }
        let mut first = keys
            .iter()
            .filter(|k| k.collection == collection)
            .take(MIN_KEYS);
        let Some(k0) = first.next() else { continue };
        let (from, to) = first.fold((k0, k0), |(a, b), k| (a.min(k), b.max(k)));
        let range = IdbKeyRange::bound(&row_key(scope_js, from), &row_key(scope_js, to))
            .map_err(|e| js_storage_error("building a key range", &e))?;
        let limit = 2 * MIN_KEYS as u32;
        samples.push((
            collection,
            call(rows.get_all_keys_with_key_and_limit(&range, limit))?,
        ));
    }
    let mut probe = Probe::default();
    if let Some((_, last)) = samples.last() {
        wait(last).await?;
        probe.awaited = true;
    }
    let mut spread = Vec::new();
    for (collection, req) in samples {
        let found: Array = result_of(&req)?.unchecked_into();
        if found.length() >= 2 * MIN_KEYS as u32 {
            spread.push(collection);
        }
    }
    let mut requests = Vec::new();
    for (collection, lo, hi, n) in spans {
        if n < MIN_KEYS || spread.contains(&collection) {
            continue;
        }
        let limit = u32::try_from(n * 2).unwrap_or(u32::MAX);
        let range = IdbKeyRange::bound(&row_key(scope_js, lo), &row_key(scope_js, hi))
            .map_err(|e| js_storage_error("building a key range", &e))?;
        let req = call(rows.get_all_keys_with_key_and_limit(&range, limit))?;
        requests.push((collection, range, limit, req));
    }
    // Requests complete in order: once the last has, all have.
    if let Some((_, _, _, last)) = requests.last() {
        wait(last).await?;
        probe.awaited = true;
    }
    for (collection, range, limit, req) in requests {
        let found: Array = result_of(&req)?.unchecked_into();
        if found.length() >= limit {
            continue;
        }
        let span = probe.spans.len();
        for (at, k) in found.iter().enumerate() {
            probe.found.insert(decode_key(&k)?, (span, at as u32));
        }
        probe.spans.push(Span {
            collection: collection.to_owned(),
            range,
            rows: found.length() as usize,
            wanted: 0,
            values: None,
            array: None,
        });
    }
    for key in keys {
        if let Some(&(span, _)) = probe.found.get(key) {
            probe.spans[span].wanted += 1;
        }
    }
    Ok(probe)
}

/// A collection with at least this many keys in a write is probed (below it, its `get`s cost
/// about as much as the probe would).
const MIN_KEYS: usize = 16;

/// What [`probe`] learnt.
#[derive(Default)]
pub(super) struct Probe {
    /// Collections whose span was read whole: few (one per collection of a write), so a list
    /// rather than a map (which would be one more hash table in the wasm).
    spans: Vec<Span>,
    /// The keys found in those spans, with their span and their position in it.
    found: HashMap<Key, (usize, u32)>,
    /// Whether a request was awaited (so every request issued before it is complete).
    pub(super) awaited: bool,
}

/// One collection's span that was probed.
struct Span {
    collection: String,
    range: IdbKeyRange,
    /// Rows in the span, and how many of them are rows of the write.
    rows: usize,
    wanted: usize,
    /// The span's values (one `getAll`) once issued, then their array once read.
    values: Option<IdbRequest>,
    array: Option<Array>,
}

impl Span {
    /// Whether at least half of the span's rows are rows of the write: then their values are
    /// read with one `getAll` over the span (reading at most twice the rows needed) instead of
    /// a `get` each.
    fn dense(&self) -> bool {
        self.wanted > 0 && self.wanted * 2 >= self.rows
    }
}

/// How the stored row of one key of a write is read.
pub(super) enum Read {
    /// Known absent: nothing to read.
    Absent,
    /// Read by its own `get`.
    Get(IdbRequest),
    /// At this position of this span's `getAll`.
    InSpan(usize, u32),
}

impl Probe {
    pub(super) fn may_exist(&self, key: &Key) -> bool {
        !self.spans.iter().any(|s| s.collection == key.collection) || self.found.contains_key(key)
    }

    /// Issues the reads of `keys` (`key_js` their IndexedDB keys): one `getAll` per dense span
    /// first, then a `get` per key that may exist outside them. Values and keys of a span agree
    /// position by position: both requests cover the same range in one transaction, before it
    /// writes anything. Returns the reads and the last request issued, if any (requests
    /// complete in order).
    pub(super) fn issue(
        &mut self,
        rows: &IdbObjectStore,
        keys: &[Key],
        key_js: &[JsValue],
    ) -> Result<(Vec<Read>, Option<IdbRequest>)> {
        let mut last = None;
        for span in self.spans.iter_mut().filter(|s| s.dense()) {
            let req = call(rows.get_all_with_key(&span.range))?;
            last = Some(req.clone());
            span.values = Some(req);
        }
        let mut reads = Vec::with_capacity(keys.len());
        for (key, k) in keys.iter().zip(key_js) {
            reads.push(match self.found.get(key) {
                Some(&(span, at)) if self.spans[span].dense() => Read::InSpan(span, at),
                _ if !self.may_exist(key) => Read::Absent,
                _ => {
                    let req = call(rows.get(k))?;
                    last = Some(req.clone());
                    Read::Get(req)
                }
            });
        }
        Ok((reads, last))
    }

    /// Takes the results of the spans' `getAll`s, once the reads have completed.
    pub(super) fn read(&mut self) -> Result<()> {
        for span in &mut self.spans {
            if let Some(req) = &span.values {
                span.array = Some(result_of(req)?.unchecked_into());
            }
        }
        Ok(())
    }

    /// The stored value a [`Read`] found (undefined when none), after [`Probe::read`].
    pub(super) fn value(&self, read: &Read) -> Result<JsValue> {
        match read {
            Read::Absent => Ok(JsValue::UNDEFINED),
            Read::Get(req) => result_of(req),
            Read::InSpan(span, at) => Ok(self.spans[*span]
                .array
                .as_ref()
                .map_or(JsValue::UNDEFINED, |a| a.get(*at))),
        }
    }
}
