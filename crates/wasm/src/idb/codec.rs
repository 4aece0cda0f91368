//! How rows, scope state, runs and conflicts are laid out in IndexedDB.
//!
//! Layout, chosen for the speed of a bulk download:
//!
//! - **Row keys** are arrays `[scope, collection, id]` with `collection` and `id` as *binary*
//!   keys (their UTF-8 bytes). IndexedDB compares strings by UTF-16 code units, which orders
//!   characters above U+FFFF before U+E000..U+FFFF; the engine and the server order keys by
//!   UTF-8 bytes. Binary keys compare bytewise, so IndexedDB's order is exactly the engine's and
//!   key-range digests mean the same thing on both sides. The array prefix `[scope]` makes a
//!   scope (and `[scope, collection]` a collection) one contiguous key range.
//! - **Row values** are small objects `{m, d, s, p, x}`: `m` the row's metadata as a JSON string,
//!   `d` the record's data as a JSON string (absent for a pending local delete). Structured
//!   clone of two flat strings is far cheaper than of a nested object, the engine needs JSON
//!   text anyway (for hashing it is parsed once), and a read that does not need the data
//!   (`with_data: false`) never copies `d` into wasm memory. `s` (scope) and `p` (outbox
//!   sequence) are set only while a local edit is pending: the `pending` index on `[s, p]` is
//!   sparse, so a bulk download writes no index entries at all. `x` holds the row's entries in
//!   the declared indexes, if its collection has any (see "Index entries" below).
//! - **Scope state** (`meta` store, keyed by scope name) is one JSON string with the engine's
//!   [`ScopeState`] and the number of rows per generation, so the sweep at the end of a full
//!   download knows without a scan whether any row is stale (after an initial sync none is).
//! - **Runs** and **conflicts** use auto-increment keys (which are their ids, so ids grow with
//!   time and "oldest first" is key order) and an index on the scope name; running runs also
//!   carry `r` for a sparse `running` index. A dismissed conflict is kept, its scope moved
//!   from `s` to `d` so that the scope index (which lists open conflicts) no longer holds it,
//!   as the SQLite store keeps a dismissed entry with `dismissed = 1`.
//!
//! **Index entries** (schema version 2). A row of a collection with declared indexes carries
//! `x`, an array with one entry key `[scope, no, keyBytes, idBytes]` per declared index of its
//! collection: `no` the index's number, `keyBytes` the binary key of
//! [`IndexSpec::key_of`](tether_engine::query::IndexSpec::key_of) of the visible data, `idBytes`
//! the id's UTF-8 bytes. The `entries` index on `x` is `multiEntry`, so IndexedDB keeps one
//! entry per element in the same put as the row, and orders them by `[scope, no]`, then index
//! key bytes, then id bytes: exactly the engine's scan order within one scope and index. The id
//! is in the entry key (not only in the primary key IndexedDB breaks ties with) so that a page
//! after a cursor `(key, id)` is a plain key range opened at `[scope, no, key, id]`: ascending
//! scans read `getAll` batches, descending ones a `prev` cursor when they have a limit (and
//! forward batches, reversed, when they take the whole range), counts are `count(range)`.
//! Rows of collections without indexes and pending local deletes have no `x` and cost
//! nothing. A put of new data recomputes `x`; a metadata-only write keeps the stored `x` (the
//! data is unchanged), minus entries of indexes no longer declared.
//!
//! The declared set is one JSON record in the `indexes` store (not in `meta`, whose keys are
//! scope names that `scopes()` lists): each index with its number and whether it is ready, the
//! next number, and per collection being built the last row done. Numbers are never reused:
//! a dropped index's entries may stay in rows that were not rewritten since, but no scan ever
//! reads them (every scan range starts with `[scope, no]` of a declared index), and a row
//! rewritten for any reason loses them. Declaring a new index (or new paths under an old
//! name) restarts its collection's build, which rewrites `x` of the collection's rows, scope
//! by scope, a batch per transaction with its cursor saved in the same transaction.
//!
//! Every write and scan reads the declared set in its own transaction, so the entries always
//! follow the stored set, even when another tab declared a different one (the last declaration
//! wins); [`Store::indexes`](tether_engine::Store::indexes) answers the set this store last
//! read or declared.
//!
//! A tab still running the version-1 code (which opens a newer database as it is) writes rows
//! without `x`: such rows drop out of the indexes until they are written again.

use std::collections::BTreeMap;
use std::thread::LocalKey;

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use tether_engine::{Data, Doc, Error, Key, RecordHash, Result, Row, ScopeState};
use wasm_bindgen::{JsCast, JsValue};

use super::request::js_storage_error;

/// Object store names.
pub(crate) const ROWS: &str = "rows";
pub(crate) const META: &str = "meta";
pub(crate) const CONFLICTS: &str = "conflicts";
pub(crate) const RUNS: &str = "runs";
pub(crate) const INDEXES: &str = "indexes";
/// Index names.
pub(crate) const PENDING_INDEX: &str = "pending";
pub(crate) const SCOPE_INDEX: &str = "scope";
pub(crate) const RUNNING_INDEX: &str = "running";
pub(crate) const ENTRIES_INDEX: &str = "entries";

/// A row's metadata, stored as JSON in `m`. `h` is kept only when the visible hash differs
/// from the cloud hash (a pending edit); otherwise it equals `c`. `n` is [`Row::sent`], absent
/// when unset (so rows written before it existed read as unset).
#[derive(Serialize, Deserialize)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<RecordHash>,
    v: u64,
    u: String,
    #[serde(default)]
    c: Option<RecordHash>,
    g: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
}

/// A row as read: the decoded row, and the stored data string and index entries (so a
/// metadata-only write can keep them without decoding the data).
pub(crate) struct Stored {
    pub row: Row,
    pub data: JsValue,
    /// The `x` property: the row's index entries, or undefined.
    pub entries: JsValue,
}

/// Per-scope state as stored in `meta`.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct ScopeMeta {
    pub state: ScopeState,
    /// Rows per generation. Maintained with every write in the same transaction.
    #[serde(default)]
    pub generations: BTreeMap<u64, u64>,
    /// False in a database where a write once touched a row whose generation was not known
    /// (stores before every write named the row it replaces); the sweep then scans instead of
    /// trusting `generations`. Never set false any more, still honoured when read.
    #[serde(default = "yes")]
    pub exact: bool,
}

fn yes() -> bool {
    true
}

impl ScopeMeta {
    pub(super) fn decode(value: &JsValue) -> Result<Self> {
        if value.is_undefined() {
            return Ok(ScopeMeta {
                exact: true,
                ..ScopeMeta::default()
            });
        }
        let text = value
            .as_string()
            .ok_or_else(|| Error::storage("scope state in IndexedDB is not a string"))?;
        serde_json::from_slice(text.as_bytes())
            .map_err(|e| Error::storage(format!("scope state in IndexedDB is corrupt: {e}")))
    }

    pub(super) fn encode(&self) -> Result<JsValue> {
        json(self).map(|s| JsValue::from_str(&s))
    }

    /// Applies a changeset's net row counts per generation
    /// ([`Changeset::generation_deltas`](tether_engine::rules::Changeset::generation_deltas)).
    pub(super) fn add_rows(&mut self, deltas: &[(u64, i64)]) {
        for &(g, delta) in deltas {
            let n = self.generations.entry(g).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.generations.remove(&g);
            }
        }
    }

    /// Whether some row may have a generation older than `g`.
    pub(super) fn may_have_older(&self, g: u64) -> bool {
        !self.exact || self.generations.range(..g).next().is_some()
    }
}

/// The IndexedDB key of a row.
pub(crate) fn row_key(scope: &JsValue, key: &Key) -> JsValue {
    row_key_in(scope, &Uint8Array::from(key.collection.as_bytes()), &key.id)
}

/// [`row_key`] with the collection part already built (IndexedDB copies a key when it stores
/// it, so one collection part serves every key of the collection).
pub(crate) fn row_key_in(scope: &JsValue, collection: &Uint8Array, id: &str) -> JsValue {
    Array::of3(scope, collection, &Uint8Array::from(id.as_bytes())).into()
}

/// Lower bound of a whole scope (`[scope]` sorts before every `[scope, ..]`).
pub(crate) fn scope_lower(scope: &JsValue) -> JsValue {
    Array::of1(scope).into()
}

/// Exclusive upper bound of a scope: arrays sort after binary keys.
pub(crate) fn scope_upper(scope: &JsValue) -> JsValue {
    Array::of2(scope, &Array::new()).into()
}

/// Inclusive lower bound of a collection.
pub(crate) fn collection_lower(scope: &JsValue, collection: &str) -> JsValue {
    Array::of2(scope, &Uint8Array::from(collection.as_bytes())).into()
}

/// Exclusive upper bound of a collection.
pub(crate) fn collection_upper(scope: &JsValue, collection: &str) -> JsValue {
    Array::of3(
        scope,
        &Uint8Array::from(collection.as_bytes()),
        &Array::new(),
    )
    .into()
}

/// Decodes a row key `[scope, collection, id]`.
pub(crate) fn decode_key(key: &JsValue) -> Result<Key> {
    let arr = key
        .dyn_ref::<Array>()
        .filter(|a| a.length() == 3)
        .ok_or_else(|| Error::storage("row key in IndexedDB is not [scope, collection, id]"))?;
    Ok(Key {
        collection: utf8(&arr.get(1))?,
        id: utf8(&arr.get(2))?,
    })
}

fn utf8(v: &JsValue) -> Result<String> {
    let bytes = if let Some(buf) = v.dyn_ref::<js_sys::ArrayBuffer>() {
        Uint8Array::new(buf).to_vec()
    } else if let Some(arr) = v.dyn_ref::<Uint8Array>() {
        arr.to_vec()
    } else {
        return Err(Error::storage("row key part in IndexedDB is not binary"));
    };
    String::from_utf8(bytes).map_err(|_| Error::storage("row key part in IndexedDB is not UTF-8"))
}

thread_local! {
    /// The names of a row value's fields as JS strings, made once: each `JsValue::from_str` is
    /// a call into JS (a `TextDecoder`), and a scan reads three fields per row.
    pub(crate) static FIELD_M: JsValue = JsValue::from_str("m");
    pub(crate) static FIELD_D: JsValue = JsValue::from_str("d");
    pub(crate) static FIELD_X: JsValue = JsValue::from_str("x");
}

/// A field of a row value (one of the `FIELD_*` names), undefined when absent.
pub(crate) fn field(value: &JsValue, name: &'static LocalKey<JsValue>) -> JsValue {
    name.with(|name| Reflect::get(value, name).unwrap_or(JsValue::UNDEFINED))
}

/// Decodes a stored row value. The data is parsed only if asked for or if an edit is pending.
pub(crate) fn decode_row(key: Key, value: &JsValue, with_data: bool) -> Result<Stored> {
    let m = field(value, &FIELD_M)
        .as_string()
        .ok_or_else(|| Error::storage("row in IndexedDB has no metadata"))?;
    let meta: Meta = serde_json::from_slice(m.as_bytes())
        .map_err(|e| Error::storage(format!("row metadata in IndexedDB is corrupt: {e}")))?;
    let data_js = field(value, &FIELD_D);
    let present = !data_js.is_undefined();
    let data = if present && (with_data || meta.p.is_some()) {
        let text = data_js
            .as_string()
            .ok_or_else(|| Error::storage("row data in IndexedDB is not a string"))?;
        Some(Doc::from_stored(text))
    } else {
        None
    };
    Ok(Stored {
        row: Row {
            key,
            data,
            hash: if present { meta.h.or(meta.c) } else { None },
            version: meta.v,
            updated_at: meta.u,
            cloud_hash: meta.c,
            generation: meta.g,
            pending: meta.p,
            sent: meta.n,
        },
        data: data_js,
        entries: field(value, &FIELD_X),
    })
}

/// Parses stored record data.
pub(crate) fn parse_data(text: &str) -> Result<Data> {
    serde_json::from_slice(text.as_bytes())
        .map_err(|e| Error::storage(format!("record data in IndexedDB is corrupt: {e}")))
}

/// The metadata text of a row value.
pub(crate) fn row_meta(row: &Row) -> Result<String> {
    json(&Meta {
        h: if row.hash != row.cloud_hash {
            row.hash
        } else {
            None
        },
        v: row.version,
        u: row.updated_at.clone(),
        c: row.cloud_hash,
        g: row.generation,
        p: row.pending,
        n: row.sent,
    })
}

/// Encodes a row value: `meta` is its [`row_meta`] as a JS string, `data` the stored data
/// string, or undefined, `entries` the row's index entries ([`super::indexes`]), or
/// undefined, and `pending` its outbox sequence number.
pub(crate) fn encode_row(
    scope: &JsValue,
    pending: Option<u64>,
    meta: &JsValue,
    data: &JsValue,
    entries: &JsValue,
) -> Result<JsValue> {
    let obj = Object::new();
    set(&obj, "m", meta)?;
    if !data.is_undefined() {
        set(&obj, "d", data)?;
    }
    if let Some(p) = pending {
        set(&obj, "s", scope)?;
        set(&obj, "p", &JsValue::from_f64(p as f64))?;
    }
    if !entries.is_undefined() {
        set(&obj, "x", entries)?;
    }
    Ok(obj.into())
}

/// Many texts made JS strings in one conversion: one `TextDecoder` call for a whole page
/// instead of two per row, then `String.prototype.split` in the engine of the browser. The
/// texts are JSON, which never holds a raw NUL, so NUL separates them.
#[derive(Default)]
pub(crate) struct Texts(String);

impl Texts {
    /// Adds one text.
    pub(crate) fn push(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\0');
    }

    /// The texts as JS strings, in the order pushed.
    pub(crate) fn into_js(self) -> TextsJs {
        let all = js_sys::JsString::from(self.0.as_str()).split("\0");
        TextsJs { all, next: 0 }
    }
}

/// The JS strings of [`Texts`], taken in order.
pub(crate) struct TextsJs {
    all: Array,
    next: u32,
}

impl TextsJs {
    /// The next text.
    pub(crate) fn next(&mut self) -> JsValue {
        let v = self.all.get(self.next);
        self.next += 1;
        v
    }
}

/// A `{s, j}` value (runs, conflicts), with `r` set when given (the sparse running index).
pub(crate) fn encode_tagged<T: Serialize>(scope: &str, item: &T, running: bool) -> Result<JsValue> {
    let obj = Object::new();
    set(&obj, "s", &JsValue::from_str(scope))?;
    set(&obj, "j", &JsValue::from_str(&json(item)?))?;
    if running {
        set(&obj, "r", &JsValue::from_str(scope))?;
    }
    Ok(obj.into())
}

/// Decodes a `{s, j}` value; returns the scope and the item.
pub(crate) fn decode_tagged<T: for<'de> Deserialize<'de>>(value: &JsValue) -> Result<(String, T)> {
    let field = |name: &str| {
        Reflect::get(value, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .ok_or_else(|| Error::storage(format!("IndexedDB entry has no {name:?} string")))
    };
    let scope = field("s")?;
    let item = serde_json::from_slice(field("j")?.as_bytes())
        .map_err(|e| Error::storage(format!("IndexedDB entry is corrupt: {e}")))?;
    Ok((scope, item))
}

/// Whether a conflict entry still has its scope in `s`, the key of the scope index that lists
/// it.
pub(crate) fn has_scope(value: &JsValue) -> bool {
    Reflect::get(value, &"s".into()).is_ok_and(|s| s.is_string())
}

/// A dismissed conflict entry: kept, as the SQLite store keeps it (`dismissed = 1`), so an
/// overwritten edit is never lost, but with its scope moved from `s` to `d`, out of the scope
/// index that lists open conflicts.
pub(crate) fn dismissed_entry(value: &JsValue) -> Result<JsValue> {
    let out = Object::new();
    for (from, to) in [("s", "d"), ("j", "j")] {
        let v = Reflect::get(value, &from.into())
            .map_err(|e| js_storage_error("reading a conflict", &e))?;
        set(&out, to, &v)?;
    }
    Ok(out.into())
}

/// An auto-increment key as an id.
pub(crate) fn id_of(key: &JsValue) -> Result<u64> {
    key.as_f64()
        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
        .map(|f| f as u64)
        .ok_or_else(|| Error::storage("IndexedDB id is not a non-negative integer"))
}

pub(crate) fn set(obj: &Object, name: &str, value: &JsValue) -> Result<()> {
    Reflect::set(obj, &name.into(), value)
        .map(|_| ())
        .map_err(|_| Error::storage("cannot build an IndexedDB value"))
}

pub(crate) fn json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::storage(format!("cannot encode for IndexedDB: {e}")))
}
