//! Queries over declared indexes: the replica as an application's database.
//!
//! A replica declares its indexes when it is opened ([`IndexSet`]); every store keeps them in
//! the same transaction as each write that changes a record, over the *visible* data (pending
//! local edits included, pending local deletes left out). A [`Query`] names one index of one
//! collection and filters on its paths: equality on leading paths, then one condition on the
//! next path (a range, a prefix or a set of values); results come in index order (ties by id),
//! ascending or descending, a page at a time with a cursor.
//!
//! The engine does the planning and every store only scans byte ranges: a query becomes a
//! [`Scan`] of sorted, disjoint ranges of index keys ([`key`] defines the encoding and so the
//! one ordering of JSON values), and a store returns the entries in those ranges in order. So
//! the semantics are defined here once and are the same on memory, SQLite and IndexedDB.
//!
//! A query must name a declared index: filtering on an undeclared path is an `InvalidInput`
//! naming the index, never a silent full scan (a scan of 100,000 records costs what the query
//! was meant to avoid; `list` is there for reading a whole collection).
//!
//! ```
//! use tether_engine::query::Query;
//! use serde_json::json;
//! // The columns of one object, in position order:
//! let q = Query::on("columns", ["object_id", "position"]).eq([json!("obj_1")]);
//! // Objects whose name starts with "ord", 20 at a time:
//! let q2 = Query::on("objects", ["name"]).prefix("ord").limit(20);
//! // The same as JSON, as JS passes it:
//! let q3: Query = serde_json::from_value(json!({
//!     "collection": "objects", "index": "name", "prefix": "ord", "limit": 20
//! })).unwrap();
//! assert_eq!(q2, q3);
//! # let _ = q;
//! ```

pub mod index;
pub mod key;

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::rules::Row;
use crate::types::Record;

pub use index::{IndexSet, IndexSetBuilder, IndexSpec, Path};
use key::{encode_value, string_prefix};

/// Index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Smallest key first (the default).
    #[default]
    Asc,
    /// Largest key first.
    Desc,
}

/// Which index a query uses: its name, or its paths (the name of an index declared by paths
/// is the paths joined by `+`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IndexRef {
    /// By name (or the one path of a single-path index).
    Name(String),
    /// By paths.
    Paths(Vec<String>),
}

impl IndexRef {
    /// The index name this refers to.
    pub fn name(&self) -> String {
        match self {
            IndexRef::Name(n) => n.clone(),
            IndexRef::Paths(p) => p.join("+"),
        }
    }
}

/// One or several values: `eq: "x"` or `eq: ["x", 3]` (arrays are never index values, so a
/// list always means one value per leading path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Values {
    /// Several values.
    Many(Vec<Value>),
    /// One value.
    One(Value),
}

impl Values {
    fn as_slice(&self) -> &[Value] {
        match self {
            Values::Many(v) => v,
            Values::One(v) => std::slice::from_ref(v),
        }
    }
}

/// A query on one index of one collection. Build one with [`Query::on`] or deserialize the
/// JSON form (`{collection, index, eq?, gt?, gte?, lt?, lte?, prefix?, in?, order?, limit?,
/// after?}`). Values are `null`, booleans, numbers or strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// The collection.
    pub collection: String,
    /// The index.
    pub index: IndexRef,
    /// Equality on the index's first paths, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<Values>,
    /// Greater than, on the path after those of `eq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<Value>,
    /// Greater than or equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<Value>,
    /// Less than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<Value>,
    /// Less than or equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<Value>,
    /// Strings starting with this (case-sensitive), on the path after those of `eq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Any of these values, on the path after those of `eq`.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub any_of: Option<Vec<Value>>,
    /// Order of the results.
    #[serde(default)]
    pub order: Order,
    /// At most this many results (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Continue after this cursor (a [`QueryPage::cursor`] of the same query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Query {
    /// A query on the index of `collection` declared on `paths` (or named `paths[0]`).
    pub fn on<P: Into<String>>(
        collection: impl Into<String>,
        paths: impl IntoIterator<Item = P>,
    ) -> Query {
        let paths: Vec<String> = paths.into_iter().map(Into::into).collect();
        let index = match <[String; 1]>::try_from(paths) {
            Ok([one]) => IndexRef::Name(one),
            Err(many) => IndexRef::Paths(many),
        };
        Query {
            collection: collection.into(),
            index,
            eq: None,
            gt: None,
            gte: None,
            lt: None,
            lte: None,
            prefix: None,
            any_of: None,
            order: Order::Asc,
            limit: None,
            after: None,
        }
    }

    /// A query on the index named `name` of `collection`.
    pub fn named(collection: impl Into<String>, name: impl Into<String>) -> Query {
        let mut q = Query::on(collection, [name.into()]);
        q.index = IndexRef::Name(q.index.name());
        q
    }

    /// Equality on the first paths.
    pub fn eq(mut self, values: impl IntoIterator<Item = Value>) -> Query {
        self.eq = Some(Values::Many(values.into_iter().collect()));
        self
    }
    /// Greater than.
    pub fn gt(mut self, v: impl Into<Value>) -> Query {
        self.gt = Some(v.into());
        self
    }
    /// Greater than or equal.
    pub fn gte(mut self, v: impl Into<Value>) -> Query {
        self.gte = Some(v.into());
        self
    }
    /// Less than.
    pub fn lt(mut self, v: impl Into<Value>) -> Query {
        self.lt = Some(v.into());
        self
    }
    /// Less than or equal.
    pub fn lte(mut self, v: impl Into<Value>) -> Query {
        self.lte = Some(v.into());
        self
    }
    /// `lo <= value < hi`.
    pub fn between(self, lo: impl Into<Value>, hi: impl Into<Value>) -> Query {
        self.gte(lo).lt(hi)
    }
    /// Strings starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Query {
        self.prefix = Some(prefix.into());
        self
    }
    /// Any of `values`.
    pub fn any_of(mut self, values: impl IntoIterator<Item = Value>) -> Query {
        self.any_of = Some(values.into_iter().collect());
        self
    }
    /// Descending order.
    pub fn desc(mut self) -> Query {
        self.order = Order::Desc;
        self
    }
    /// At most `n` results.
    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }
    /// After a cursor.
    pub fn after(mut self, cursor: impl Into<String>) -> Query {
        self.after = Some(cursor.into());
        self
    }

    /// The name of the index this query uses.
    pub fn index_name(&self) -> String {
        self.index.name()
    }

    /// Finds the query's index in `set`: an `InvalidInput` naming it when it is not declared.
    pub fn index_in<'a>(&self, set: &'a IndexSet) -> Result<&'a IndexSpec> {
        let name = self.index_name();
        set.get(&self.collection, &name).ok_or_else(|| {
            let declared: Vec<String> = set.of(&self.collection).map(|s| s.name.clone()).collect();
            Error::invalid(format!(
                "no index {}.{name} is declared (declared on {:?}: {}); declare it when opening the replica",
                self.collection,
                self.collection,
                if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
            ))
        })
    }

    /// Plans the query on `spec` (its index): checks the values and turns the filter into byte
    /// ranges of index keys.
    pub fn plan(&self, spec: &IndexSpec) -> Result<Scan> {
        let name = spec.qualified();
        let eq = self.eq.as_ref().map(Values::as_slice).unwrap_or(&[]);
        let has_range =
            self.gt.is_some() || self.gte.is_some() || self.lt.is_some() || self.lte.is_some();
        let conds = usize::from(has_range)
            + usize::from(self.prefix.is_some())
            + usize::from(self.any_of.is_some());
        if conds > 1 {
            return Err(Error::invalid(format!(
                "a query on {name} takes one of a range (gt/gte/lt/lte), prefix or in, not several"
            )));
        }
        if self.gt.is_some() && self.gte.is_some() || self.lt.is_some() && self.lte.is_some() {
            return Err(Error::invalid(format!(
                "a query on {name} takes at most one lower bound (gt or gte) and one upper bound (lt or lte)"
            )));
        }
        let width = eq.len() + conds;
        if width > spec.paths.len() {
            return Err(Error::invalid(format!(
                "a query on {name} filters {width} paths; the index has {} ({})",
                spec.paths.len(),
                spec.paths
                    .iter()
                    .map(Path::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut base = Vec::new();
        for v in eq {
            scalar(&name, v)?;
            encode_value(Some(v), &mut base);
        }
        let enc = |v: &Value| -> Result<Vec<u8>> {
            scalar(&name, v)?;
            let mut out = base.clone();
            encode_value(Some(v), &mut out);
            Ok(out)
        };
        let after_all = |mut k: Vec<u8>| {
            k.push(0xFF);
            k
        };
        let ranges = if let Some(p) = &self.prefix {
            let mut from = base.clone();
            string_prefix(p, &mut from);
            vec![ByteRange {
                to: Some(after_all(from.clone())),
                from,
            }]
        } else if let Some(values) = &self.any_of {
            let mut keys = values.iter().map(enc).collect::<Result<Vec<_>>>()?;
            crate::sort::sort_by(&mut keys, Ord::cmp);
            keys.dedup();
            keys.into_iter()
                .map(|k| ByteRange {
                    to: Some(after_all(k.clone())),
                    from: k,
                })
                .collect()
        } else {
            let from = match (&self.gt, &self.gte) {
                (Some(v), _) => after_all(enc(v)?),
                (_, Some(v)) => enc(v)?,
                _ => base.clone(),
            };
            let to = match (&self.lt, &self.lte) {
                (Some(v), _) => Some(enc(v)?),
                (_, Some(v)) => Some(after_all(enc(v)?)),
                _ if base.is_empty() => None,
                _ => Some(after_all(base.clone())),
            };
            if to.as_ref().is_some_and(|t| *t <= from) {
                Vec::new()
            } else {
                vec![ByteRange { from, to }]
            }
        };
        if self.limit == Some(0) {
            return Err(Error::invalid(format!(
                "a query on {name} has limit 0; leave it out for all results"
            )));
        }
        Ok(Scan {
            collection: spec.collection.clone(),
            index: spec.name.clone(),
            ranges,
            order: self.order,
            after: self.after.as_deref().map(Cursor::parse).transpose()?,
            limit: self.limit,
        })
    }
}

fn scalar(index: &str, v: &Value) -> Result<()> {
    match v {
        Value::Array(_) | Value::Object(_) => Err(Error::invalid(format!(
            "a query on {index} compares with {v}: query values are null, booleans, numbers or strings"
        ))),
        _ => Ok(()),
    }
}

/// A half-open range of index keys: `from <= key < to` (`to: None`: no upper bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteRange {
    /// Inclusive lower bound.
    pub from: Vec<u8>,
    /// Exclusive upper bound.
    pub to: Option<Vec<u8>>,
}

impl ByteRange {
    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.from.as_slice() && self.to.as_deref().is_none_or(|t| key < t)
    }
}

/// Where a page of results ended: the last entry's index key and record id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Index key.
    pub key: Vec<u8>,
    /// Record id.
    pub id: String,
}

impl Cursor {
    /// The cursor's text: the key in hex, a dot, the id.
    pub fn to_text(&self) -> String {
        let mut s: String = self.key.iter().map(|b| format!("{b:02x}")).collect();
        s.push('.');
        s.push_str(&self.id);
        s
    }

    /// Parses [`Cursor::to_text`]; anything else is an `InvalidInput`.
    pub fn parse(text: &str) -> Result<Cursor> {
        let bad = || Error::invalid(format!("{text:?} is not a query cursor"));
        let (hex, id) = text.split_once('.').ok_or_else(bad)?;
        if hex.len() % 2 != 0 {
            return Err(bad());
        }
        let key = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        Ok(Cursor {
            key,
            id: id.to_owned(),
        })
    }

    /// Whether the entry `(key, id)` comes after this cursor in `order`.
    pub fn precedes(&self, key: &[u8], id: &str, order: Order) -> bool {
        let o = (key, id.as_bytes()).cmp(&(self.key.as_slice(), self.id.as_bytes()));
        match order {
            Order::Asc => o == Ordering::Greater,
            Order::Desc => o == Ordering::Less,
        }
    }
}

/// What a store scans for a query: the entries of one index whose keys fall in `ranges`
/// (sorted, disjoint), in `(key, id)` order (ids compared as UTF-8 bytes) or its reverse,
/// strictly after `after`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The collection.
    pub collection: String,
    /// The index's name.
    pub index: String,
    /// Key ranges.
    pub ranges: Vec<ByteRange>,
    /// Order.
    pub order: Order,
    /// Continue after this entry.
    pub after: Option<Cursor>,
    /// At most this many entries.
    pub limit: Option<usize>,
}

impl Scan {
    /// Whether an entry matches the ranges and comes after the cursor (for stores that filter).
    pub fn admits(&self, key: &[u8], id: &str) -> bool {
        self.ranges.iter().any(|r| r.contains(key))
            && self
                .after
                .as_ref()
                .is_none_or(|c| c.precedes(key, id, self.order))
    }
}

/// One entry a store found: the record's index key and its row (with its visible data).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The index key.
    pub key: Vec<u8>,
    /// The row.
    pub row: Row,
}

/// A page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryPage {
    /// The records, in index order.
    pub records: Vec<Record>,
    /// Pass as `after` for the next page; `None` when this page holds the last result (a page
    /// that filled its `limit` always has one, even if no more results follow).
    pub cursor: Option<String>,
}

impl QueryPage {
    /// The page from a store's hits for `scan`. Fails (a storage error) only if a hit's stored
    /// data is corrupt.
    pub fn of(scan: &Scan, hits: Vec<Hit>) -> crate::error::Result<QueryPage> {
        let (rows, cursor) = rows_of(scan, hits);
        let records = rows.into_iter().map(crate::rules::record_of);
        Ok(QueryPage {
            records: records
                .filter_map(Result::transpose)
                .collect::<crate::error::Result<_>>()?,
            cursor,
        })
    }
}

/// The rows of a store's hits for `scan` and the page's cursor: [`QueryPage::of`] with the
/// records left as rows (their data the text the store holds, pending deletes included).
pub fn rows_of(scan: &Scan, hits: Vec<Hit>) -> (Vec<Row>, Option<String>) {
    let full = scan.limit.is_some_and(|l| hits.len() >= l);
    let cursor = if full {
        hits.last().map(|h| {
            Cursor {
                key: h.key.clone(),
                id: h.row.key.id.clone(),
            }
            .to_text()
        })
    } else {
        None
    };
    (hits.into_iter().map(|h| h.row).collect(), cursor)
}

/// The naive reference: the records of `records` a query matches, in its order, by comparing
/// JSON values directly ([`key::compare_values`]), never through index keys. Ignores `after`
/// and `limit`. The differential tests check every store against it.
pub fn filter_naive(
    query: &Query,
    spec: &IndexSpec,
    records: impl IntoIterator<Item = Record>,
) -> Vec<Record> {
    use key::compare_values as cmp;
    let eq = query.eq.as_ref().map(Values::as_slice).unwrap_or(&[]);
    let n = eq.len();
    let mut out: Vec<Record> = records
        .into_iter()
        .filter(|r| r.collection == query.collection)
        .filter(|r| {
            let at = |i: usize| spec.paths.get(i).and_then(|p| p.get(&r.data));
            if !eq
                .iter()
                .enumerate()
                .all(|(i, v)| cmp(at(i), Some(v)) == Ordering::Equal)
            {
                return false;
            }
            let x = at(n);
            let ok = |bound: &Option<Value>, want: &[Ordering]| {
                bound
                    .as_ref()
                    .is_none_or(|b| want.contains(&cmp(x, Some(b))))
            };
            ok(&query.gt, &[Ordering::Greater])
                && ok(&query.gte, &[Ordering::Greater, Ordering::Equal])
                && ok(&query.lt, &[Ordering::Less])
                && ok(&query.lte, &[Ordering::Less, Ordering::Equal])
                && query.prefix.as_ref().is_none_or(
                    |p| matches!(x, Some(Value::String(s)) if s.starts_with(p.as_str())),
                )
                && query
                    .any_of
                    .as_ref()
                    .is_none_or(|vs| vs.iter().any(|v| cmp(x, Some(v)) == Ordering::Equal))
        })
        .collect();
    crate::sort::sort_by(&mut out, |a, b| {
        spec.paths
            .iter()
            .map(|p| cmp(p.get(&a.data), p.get(&b.data)))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
    });
    if query.order == Order::Desc {
        out.reverse();
    }
    out
}

#[cfg(test)]
mod tests;
