//! Declared indexes in IndexedDB: the declared set, the entries each row carries, the build,
//! and scans. The layout is described in [`super::codec`] ("Index entries").

use std::collections::BTreeMap;

use js_sys::{Array, Uint8Array};
use serde::{Deserialize, Serialize};
use tether_engine::query::{Hit, IndexSet, IndexSpec, Order, Scan};
use tether_engine::{Data, Error, Key, Result, ScopeId};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbCursorDirection, IdbCursorWithValue, IdbIndex, IdbKeyRange, IdbTransaction};

use super::codec::{
    collection_lower, collection_upper, decode_key, decode_row, field, json, parse_data, row_key,
    set, ENTRIES_INDEX, FIELD_X, INDEXES, META, ROWS,
};
use super::request::{
    as_u64, call, committed, cursor_err, js_storage_error, object_store, result_of, wait,
    SCAN_BATCH,
};

/// The key of the one record of the `indexes` store.
const DECLARED: &str = "declared";

/// The declared indexes as stored (JSON in the `indexes` store under `"declared"`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Declared {
    /// The number the next new index gets. Numbers are never reused, so entries a dropped
    /// index left in rows can never be mistaken for entries of a later index.
    next: u32,
    /// Every declared index, ready or building.
    indexes: Vec<Declaration>,
    /// Collections whose rows are being given their entries, each with the last row done
    /// (scope, id): scopes in UTF-8 order, then ids in key order.
    builds: BTreeMap<String, Option<(String, String)>>,
}

/// One declared index.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Declaration {
    /// Its number in entry keys.
    no: u32,
    spec: IndexSpec,
    /// False while its collection's build has not covered every row.
    ready: bool,
}

impl Declared {
    /// The declared record as read (undefined: nothing declared yet).
    pub(super) fn decode(value: &JsValue) -> Result<Declared> {
        if value.is_undefined() {
            return Ok(Declared::default());
        }
        let text = value
            .as_string()
            .ok_or_else(|| Error::storage("declared indexes in IndexedDB are not a string"))?;
        serde_json::from_slice(text.as_bytes())
            .map_err(|e| Error::storage(format!("declared indexes in IndexedDB are corrupt: {e}")))
    }

    fn encode(&self) -> Result<JsValue> {
        json(self).map(|s| JsValue::from_str(&s))
    }

    /// The declared indexes, ready or building.
    pub(super) fn set(&self) -> Result<IndexSet> {
        IndexSet::new(self.indexes.iter().map(|d| d.spec.clone()))
    }

    /// The `x` value of a row of `key` with visible `data`: one entry per declared index of the
    /// collection; undefined when there is none (a collection without indexes, a pending
    /// local delete), so such rows carry nothing.
    pub(super) fn entries(&self, scope_js: &JsValue, key: &Key, data: Option<&Data>) -> JsValue {
        let Some(data) = data else {
            return JsValue::UNDEFINED;
        };
        let out = Array::new();
        for d in self.of(&key.collection) {
            out.push(&entry_key(
                scope_js,
                d.no,
                &d.spec.key_of(data),
                Some(&key.id),
            ));
        }
        if out.length() == 0 {
            JsValue::UNDEFINED
        } else {
            out.into()
        }
    }

    /// The stored entries of a row whose data is unchanged (a metadata-only write), without
    /// those of dropped indexes.
    pub(super) fn kept_entries(&self, collection: &str, stored: &JsValue) -> JsValue {
        let Some(stored) = stored.dyn_ref::<Array>() else {
            return JsValue::UNDEFINED;
        };
        let numbers: Vec<f64> = self.of(collection).map(|d| f64::from(d.no)).collect();
        let kept: Array = stored
            .iter()
            .filter(|e| {
                e.dyn_ref::<Array>()
                    .and_then(|e| e.get(1).as_f64())
                    .is_some_and(|no| numbers.contains(&no))
            })
            .collect();
        if kept.length() == 0 {
            JsValue::UNDEFINED
        } else {
            kept.into()
        }
    }

    /// Whether an index is declared on `collection`.
    pub(super) fn covers(&self, collection: &str) -> bool {
        self.of(collection).next().is_some()
    }

    fn of<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a Declaration> + 'a {
        self.indexes
            .iter()
            .filter(move |d| d.spec.collection == collection)
    }

    /// Replaces the declared set with `set`: an index declared before with the same paths
    /// keeps its number and state; a new one (or one whose paths changed) gets a new number
    /// and restarts its collection's build.
    fn declare(&mut self, set: &IndexSet) {
        let mut indexes = Vec::with_capacity(set.len());
        for spec in set.iter() {
            match self.indexes.iter().find(|d| d.spec == *spec) {
                Some(d) => indexes.push(d.clone()),
                None => {
                    indexes.push(Declaration {
                        no: self.next,
                        spec: spec.clone(),
                        ready: false,
                    });
                    self.next += 1;
                    self.builds.insert(spec.collection.clone(), None);
                }
            }
        }
        self.indexes = indexes;
        let indexes = &self.indexes;
        self.builds
            .retain(|c, _| indexes.iter().any(|d| d.spec.collection == *c && !d.ready));
    }

    /// The declaration a scan uses, if declared and ready.
    fn ready(&self, scan: &Scan) -> Result<&Declaration> {
        let d = self
            .indexes
            .iter()
            .find(|d| d.spec.collection == scan.collection && d.spec.name == scan.index)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "no index {}.{} is declared",
                    scan.collection, scan.index
                ))
            })?;
        if !d.ready {
            return Err(Error::invalid(format!(
                "index {} is still being built",
                d.spec.qualified()
            )));
        }
        Ok(d)
    }
}

/// Reads the declared record in `tx` (issued now; the caller awaits it or a later request).
pub(crate) fn read_declared(tx: &IdbTransaction) -> Result<web_sys::IdbRequest> {
    call(object_store(tx, INDEXES)?.get(&DECLARED.into()))
}

/// The declared indexes, read in `tx`.
pub(crate) async fn load(tx: &IdbTransaction) -> Result<Declared> {
    Declared::decode(&wait(&read_declared(tx)?).await?)
}

/// [`tether_engine::Store::declare_indexes`] in `tx` (read-write over `indexes`).
pub(crate) async fn declare_in(tx: &IdbTransaction, set: &IndexSet) -> Result<Declared> {
    let mut declared = load(tx).await?;
    let before = declared.encode()?;
    declared.declare(set);
    let after = declared.encode()?;
    if after != before {
        call(object_store(tx, INDEXES)?.put_with_key(&after, &DECLARED.into()))?;
    }
    committed(tx).await?;
    Ok(declared)
}

/// [`tether_engine::Store::build_indexes`] in `tx` (read-write over `rows`, `meta` and
/// `indexes`): rewrites the entries of at most `batch` more rows of the first collection still
/// building, and saves where it stopped. Returns whether nothing is building any more.
pub(crate) async fn build_in(tx: &IdbTransaction, batch: usize) -> Result<(bool, Declared)> {
    let declared_req = read_declared(tx)?;
    // Every scope with rows has its state in `meta`, under its name.
    let scopes_req = call(object_store(tx, META)?.get_all_keys())?;
    let scopes: Array = wait(&scopes_req).await?.unchecked_into();
    let mut declared = Declared::decode(&result_of(&declared_req)?)?;
    let Some((collection, from)) = declared
        .builds
        .iter()
        .next()
        .map(|(c, f)| (c.clone(), f.clone()))
    else {
        committed(tx).await?;
        return Ok((true, declared));
    };
    if batch == 0 {
        committed(tx).await?;
        return Ok((false, declared));
    }
    let mut scopes: Vec<String> = scopes.iter().filter_map(|s| s.as_string()).collect();
    scopes.sort();
    let rows = object_store(tx, ROWS)?;
    let factory = super::factory()?;
    let mut done = 0;
    let mut last = None;
    for scope in scopes {
        let scope_js = JsValue::from_str(&scope);
        let (lower, open) = match &from {
            Some((s, _)) if *s > scope => continue,
            Some((s, id)) if *s == scope => (row_key(&scope_js, &Key::new(&*collection, id)), true),
            _ => (collection_lower(&scope_js, &collection), false),
        };
        let range = IdbKeyRange::bound_with_lower_open_and_upper_open(
            &lower,
            &collection_upper(&scope_js, &collection),
            open,
            true,
        )
        .map_err(|e| js_storage_error("building a key range", &e))?;
        let want = u32::try_from(batch - done).unwrap_or(u32::MAX);
        let values = call(rows.get_all_with_key_and_limit(&range, want))?;
        let keys = call(rows.get_all_keys_with_key_and_limit(&range, want))?;
        let keys: Array = wait(&keys).await?.unchecked_into();
        let values: Array = result_of(&values)?.unchecked_into();
        for i in 0..keys.length() {
            let (key_js, value) = (keys.get(i), values.get(i));
            let key = decode_key(&key_js)?;
            let data = match js_sys::Reflect::get(&value, &"d".into())
                .ok()
                .and_then(|d| d.as_string())
            {
                Some(text) => Some(parse_data(&text)?),
                None => None,
            };
            // The stored value is kept but for `x`, recomputed from the data for every index
            // of the collection (which also drops entries of indexes no longer declared). A
            // row written since the declaration already has it right and is not written again.
            let entries = declared.entries(&scope_js, &key, data.as_ref());
            let stored = js_sys::Reflect::get(&value, &"x".into()).unwrap_or(JsValue::UNDEFINED);
            if same_entries(&factory, &stored, &entries) {
                last = Some((scope.clone(), key.id));
                done += 1;
                continue;
            }
            let obj: &js_sys::Object = value.unchecked_ref();
            if entries.is_undefined() {
                js_sys::Reflect::delete_property(obj, &"x".into())
                    .map_err(|_| Error::storage("cannot build an IndexedDB value"))?;
            } else {
                set(obj, "x", &entries)?;
            }
            call(rows.put_with_key(&value, &key_js))?;
            last = Some((scope.clone(), key.id));
            done += 1;
        }
        if done == batch {
            break;
        }
    }
    if done < batch {
        declared.builds.remove(&collection);
        for d in declared.indexes.iter_mut() {
            if d.spec.collection == collection {
                d.ready = true;
            }
        }
    } else {
        declared.builds.insert(collection, last);
    }
    call(object_store(tx, INDEXES)?.put_with_key(&declared.encode()?, &DECLARED.into()))?;
    committed(tx).await?;
    Ok((declared.builds.is_empty(), declared))
}

/// Whether two `x` values hold the same entries in the same order (undefined: none).
fn same_entries(factory: &web_sys::IdbFactory, a: &JsValue, b: &JsValue) -> bool {
    match (a.is_undefined(), b.is_undefined()) {
        (true, true) => true,
        (false, false) => factory.cmp(a, b).is_ok_and(|o| o == 0),
        _ => false,
    }
}

/// [`tether_engine::Store::scan`] in `tx` (read-only over `rows` and `indexes`), with the
/// declared set this store read last (`known`), if any. Returns the hits and the declared set
/// read in `tx`.
///
/// With `known`, the scan's first batch is issued together with the read of the declared set
/// rather than after it: a query then costs one round trip instead of two. The set read in the
/// same transaction decides: when its index is the one guessed (same number, ready; numbers
/// are never reused, so the entries are that index's), the hits stand; otherwise (another tab
/// declared another set) the scan runs again on what was read, or fails as it would have.
pub(crate) async fn scan_in(
    tx: &IdbTransaction,
    scope: &ScopeId,
    scan: &Scan,
    known: Option<&Declared>,
) -> Result<(Vec<Hit>, Declared)> {
    let declared_req = read_declared(tx)?;
    let guess = known.and_then(|k| k.ready(scan).ok());
    let guessed = match guess {
        Some(d) => Some(scan_with(tx, scope, scan, d).await?),
        None => None,
    };
    let declared = Declared::decode(&settled(&declared_req).await?)?;
    let d = declared.ready(scan)?;
    let hits = match guessed {
        Some(hits) if guess.is_some_and(|g| g.no == d.no) => hits,
        _ => scan_with(tx, scope, scan, d).await?,
    };
    Ok((hits, declared))
}

/// The result of a request that may have completed already (a later request of its
/// transaction was awaited: requests complete in order).
async fn settled(req: &web_sys::IdbRequest) -> Result<JsValue> {
    if req.ready_state() == web_sys::IdbRequestReadyState::Done {
        result_of(req)
    } else {
        wait(req).await
    }
}

/// The hits of `scan` over the entries of index `d`.
async fn scan_with(
    tx: &IdbTransaction,
    scope: &ScopeId,
    scan: &Scan,
    d: &Declaration,
) -> Result<Vec<Hit>> {
    let index = entries_index(tx)?;
    let scope_js = JsValue::from_str(scope.as_str());
    let limit = scan.limit.unwrap_or(usize::MAX);
    let mut hits = Vec::new();
    let ranges: Box<dyn Iterator<Item = _>> = match scan.order {
        Order::Asc => Box::new(scan.ranges.iter()),
        Order::Desc => Box::new(scan.ranges.iter().rev()),
    };
    for r in ranges {
        if hits.len() >= limit {
            break;
        }
        let Some(bounds) = Bounds::of(&r.from, r.to.as_deref(), scan) else {
            continue;
        };
        match scan.order {
            Order::Asc => ascending(&index, &scope_js, scan, d, &bounds, limit, &mut hits).await?,
            // All of the range is wanted: batches read forwards and reversed beat a request
            // per entry.
            Order::Desc if scan.limit.is_none() => {
                let start = hits.len();
                ascending(&index, &scope_js, scan, d, &bounds, limit, &mut hits).await?;
                hits[start..].reverse();
            }
            Order::Desc => {
                let range = key_range(
                    &bounds.lower(&scope_js, d.no),
                    &bounds.upper(&scope_js, d.no),
                    bounds.lower_open(),
                )?;
                let req = call(
                    index.open_cursor_with_range_and_direction(&range, IdbCursorDirection::Prev),
                )?;
                while hits.len() < limit {
                    let cursor = wait(&req).await?;
                    let Some(cursor) = cursor.dyn_ref::<IdbCursorWithValue>() else {
                        break;
                    };
                    hits.push(hit_of(scan, d, &cursor.value().map_err(cursor_err)?)?);
                    if hits.len() < limit {
                        cursor.continue_().map_err(cursor_err)?;
                    }
                }
            }
        }
    }
    Ok(hits)
}

/// Appends the entries of one range to `hits` in ascending order, until `hits` holds `limit`,
/// reading batches of `getAll` (the values alone: each carries its entry, key and id).
async fn ascending(
    index: &IdbIndex,
    scope_js: &JsValue,
    scan: &Scan,
    d: &Declaration,
    bounds: &Bounds<'_>,
    limit: usize,
    hits: &mut Vec<Hit>,
) -> Result<()> {
    let mut lower = bounds.lower(scope_js, d.no);
    let mut open = bounds.lower_open();
    let upper = bounds.upper(scope_js, d.no);
    while hits.len() < limit {
        let want = (limit - hits.len()).min(SCAN_BATCH as usize) as u32;
        let range = key_range(&lower, &upper, open)?;
        let values = call(index.get_all_with_key_and_limit(&range, want))?;
        let values: Array = wait(&values).await?.unchecked_into();
        let n = values.length();
        for i in 0..n {
            hits.push(hit_of(scan, d, &values.get(i))?);
        }
        if n < want {
            break;
        }
        // Entry keys hold the id, so the next batch starts strictly after the last entry.
        let Some(last) = hits.last() else { break };
        lower = entry_key(scope_js, d.no, &last.key, Some(&last.row.key.id));
        open = true;
    }
    Ok(())
}

/// The hit of a row value found through index `d`: its row (with data), and its index key and
/// id as its entry of `d` holds them (the entry it was found by), so the data is not parsed.
fn hit_of(scan: &Scan, d: &Declaration, value: &JsValue) -> Result<Hit> {
    let corrupt = || {
        Error::storage(format!(
            "a row found through index {} does not carry its entry",
            d.spec.qualified()
        ))
    };
    let entry = field(value, &FIELD_X)
        .dyn_ref::<Array>()
        .and_then(|x| {
            x.iter()
                .filter_map(|e| e.dyn_into::<Array>().ok())
                .find(|e| e.get(1).as_f64() == Some(f64::from(d.no)))
        })
        .ok_or_else(corrupt)?;
    let bytes = |v: JsValue| {
        v.dyn_into::<Uint8Array>()
            .map(|a| a.to_vec())
            .map_err(|_| corrupt())
    };
    let key = bytes(entry.get(2))?;
    let id = String::from_utf8(bytes(entry.get(3))?).map_err(|_| corrupt())?;
    let row = decode_row(Key::new(scan.collection.as_str(), id), value, true)?.row;
    if row.data.is_none() {
        return Err(Error::storage(format!(
            "index {} has an entry for {} which has no data",
            d.spec.qualified(),
            row.key.id
        )));
    }
    Ok(Hit { key, row })
}

/// [`tether_engine::Store::scan_count`] in `tx` (read-only over `rows` and `indexes`), with the
/// declared set this store read last, guessed as [`scan_in`] does.
pub(crate) async fn count_in(
    tx: &IdbTransaction,
    scope: &ScopeId,
    scan: &Scan,
    known: Option<&Declared>,
) -> Result<(u64, Declared)> {
    let declared_req = read_declared(tx)?;
    let guess = known.and_then(|k| k.ready(scan).ok());
    let guessed = match guess {
        Some(d) => Some(count_with(tx, scope, scan, d).await?),
        None => None,
    };
    let declared = Declared::decode(&settled(&declared_req).await?)?;
    let d = declared.ready(scan)?;
    let n = match guessed {
        Some(n) if guess.is_some_and(|g| g.no == d.no) => n,
        _ => count_with(tx, scope, scan, d).await?,
    };
    Ok((n, declared))
}

/// The number of entries of index `d` that `scan` covers, its limit and cursor ignored.
async fn count_with(
    tx: &IdbTransaction,
    scope: &ScopeId,
    scan: &Scan,
    d: &Declaration,
) -> Result<u64> {
    let index = entries_index(tx)?;
    let scope_js = JsValue::from_str(scope.as_str());
    let all = Scan {
        after: None,
        limit: None,
        ..scan.clone()
    };
    // Issue every count at once; they complete in order.
    let reqs = all
        .ranges
        .iter()
        .filter_map(|r| Bounds::of(&r.from, r.to.as_deref(), &all))
        .map(|b| {
            let range = key_range(
                &b.lower(&scope_js, d.no),
                &b.upper(&scope_js, d.no),
                b.lower_open(),
            )?;
            call(index.count_with_key(&range))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(last) = reqs.last() {
        wait(last).await?;
    }
    reqs.iter()
        .map(|r| as_u64(&result_of(r)?))
        .sum::<Result<u64>>()
}

/// The IndexedDB key of an entry (`id: None`: the bound before every id of `key`).
fn entry_key(scope_js: &JsValue, no: u32, key: &[u8], id: Option<&str>) -> JsValue {
    let k = Array::of3(scope_js, &JsValue::from(no), &Uint8Array::from(key));
    if let Some(id) = id {
        k.push(&Uint8Array::from(id.as_bytes()));
    }
    k.into()
}

fn entries_index(tx: &IdbTransaction) -> Result<IdbIndex> {
    object_store(tx, ROWS)?
        .index(ENTRIES_INDEX)
        .map_err(|e| js_storage_error("opening an index", &e))
}

fn key_range(lower: &JsValue, upper: &JsValue, lower_open: bool) -> Result<IdbKeyRange> {
    IdbKeyRange::bound_with_lower_open_and_upper_open(lower, upper, lower_open, true)
        .map_err(|e| js_storage_error("building a key range", &e))
}

/// The entry keys one byte range of a scan covers once its cursor is applied: from `lower`
/// (an index key, or an entry after the cursor, exclusive) to `upper` (exclusive). `None`
/// when the cursor leaves nothing of the range.
struct Bounds<'a> {
    lower: (&'a [u8], Option<&'a str>),
    upper: (&'a [u8], Option<&'a str>),
}

/// Past every index key: index keys never start with 0xFF.
const PAST_ALL: &[u8] = &[0xFF];

impl<'a> Bounds<'a> {
    fn of(from: &'a [u8], to: Option<&'a [u8]>, scan: &'a Scan) -> Option<Bounds<'a>> {
        let to = to.unwrap_or(PAST_ALL);
        if from >= to {
            return None;
        }
        let mut b = Bounds {
            lower: (from, None),
            upper: (to, None),
        };
        if let Some(c) = &scan.after {
            let at = (c.key.as_slice(), Some(c.id.as_str()));
            // An entry `[k, id]` sorts after the bound `[k]`: the cursor is inside the range
            // exactly when from <= its key < to.
            match scan.order {
                Order::Asc if c.key.as_slice() >= to => return None,
                Order::Asc if c.key.as_slice() >= from => b.lower = at,
                Order::Desc if c.key.as_slice() < from => return None,
                Order::Desc if c.key.as_slice() < to => b.upper = at,
                _ => {}
            }
        }
        Some(b)
    }

    fn lower(&self, scope_js: &JsValue, no: u32) -> JsValue {
        entry_key(scope_js, no, self.lower.0, self.lower.1)
    }

    /// A lower bound at a cursor excludes the cursor's own entry.
    fn lower_open(&self) -> bool {
        self.lower.1.is_some()
    }

    fn upper(&self, scope_js: &JsValue, no: u32) -> JsValue {
        entry_key(scope_js, no, self.upper.0, self.upper.1)
    }
}
