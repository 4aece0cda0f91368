//! Declared indexes: which JSON paths of a collection's records a store keeps in key order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::types::Data;

use super::key::encode_value;

/// A path into a record's data: one or more object keys, written with dots (`"owner.name"`).
/// A key that contains a dot cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Path(String);

impl Path {
    /// Parses a dotted path; an empty path or an empty segment is an `InvalidInput`.
    pub fn new(path: impl Into<String>) -> Result<Path> {
        let path = path.into();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(Error::invalid(format!(
                "index path {path:?} is malformed: it must be object keys separated by dots, none empty"
            )));
        }
        Ok(Path(path))
    }

    /// The dotted text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value at this path in `data`; `None` when a step is missing or not an object.
    pub fn get<'a>(&self, data: &'a Data) -> Option<&'a Value> {
        let mut segments = self.0.split('.');
        let mut value = data.get(segments.next()?)?;
        for s in segments {
            value = value.as_object()?.get(s)?;
        }
        Some(value)
    }
}

impl TryFrom<String> for Path {
    type Error = Error;
    fn try_from(s: String) -> Result<Path> {
        Path::new(s)
    }
}

impl From<Path> for String {
    fn from(p: Path) -> String {
        p.0
    }
}

/// One index: a name, the collection, and the paths whose values, in order, make its key.
///
/// ```
/// use tether_engine::query::IndexSpec;
/// let by_position = IndexSpec::new("columns", ["object_id", "position"]).unwrap();
/// assert_eq!(by_position.name, "object_id+position");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// The index's name, unique in its collection; by default the paths joined by `+`.
    pub name: String,
    /// The collection indexed.
    pub collection: String,
    /// The paths, at least one.
    pub paths: Vec<Path>,
}

impl IndexSpec {
    /// An index on `paths` of `collection`, named after its paths.
    pub fn new<P: Into<String>>(
        collection: impl Into<String>,
        paths: impl IntoIterator<Item = P>,
    ) -> Result<IndexSpec> {
        let paths = paths
            .into_iter()
            .map(|p| Path::new(p))
            .collect::<Result<Vec<_>>>()?;
        let name = default_name(&paths);
        IndexSpec::named(name, collection, paths)
    }

    /// An index with an explicit name.
    pub fn named(
        name: impl Into<String>,
        collection: impl Into<String>,
        paths: Vec<Path>,
    ) -> Result<IndexSpec> {
        let (name, collection) = (name.into(), collection.into());
        if collection.is_empty() {
            return Err(Error::invalid(format!(
                "index {name:?} names no collection"
            )));
        }
        if name.is_empty() {
            return Err(Error::invalid(format!(
                "an index of {collection:?} has an empty name"
            )));
        }
        if paths.is_empty() {
            return Err(Error::invalid(format!(
                "index {collection}.{name} has no paths"
            )));
        }
        Ok(IndexSpec {
            name,
            collection,
            paths,
        })
    }

    /// The index key of a record's data: the encoded values of the paths, one after another.
    pub fn key_of(&self, data: &Data) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * self.paths.len());
        for p in &self.paths {
            encode_value(p.get(data), &mut out);
        }
        out
    }

    /// `collection.name`, for messages.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.collection, self.name)
    }
}

/// The name an index on `paths` gets by default: the paths joined by `+`.
pub fn default_name(paths: &[Path]) -> String {
    paths.iter().map(Path::as_str).collect::<Vec<_>>().join("+")
}

/// The indexes a replica declares when it is opened: validated (no name twice in a collection
/// with different paths), in a stable order (by collection, then name).
///
/// ```
/// use tether_engine::query::IndexSet;
/// let set = IndexSet::builder()
///     .index("columns", ["object_id"])
///     .index("columns", ["object_id", "position"])
///     .index("objects", ["name"])
///     .build()
///     .unwrap();
/// assert_eq!(set.len(), 3);
/// assert!(set.get("columns", "object_id+position").is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexSet {
    specs: Vec<IndexSpec>,
}

impl IndexSet {
    /// No indexes.
    pub fn none() -> IndexSet {
        IndexSet::default()
    }

    /// A builder.
    pub fn builder() -> IndexSetBuilder {
        IndexSetBuilder::default()
    }

    /// A set of specs; the same spec twice is kept once, one name with two shapes is an
    /// `InvalidInput` naming the index.
    pub fn new(specs: impl IntoIterator<Item = IndexSpec>) -> Result<IndexSet> {
        let mut out: Vec<IndexSpec> = Vec::new();
        for spec in specs {
            match out
                .iter()
                .find(|s| s.collection == spec.collection && s.name == spec.name)
            {
                Some(s) if s.paths == spec.paths => {}
                Some(s) => {
                    return Err(Error::invalid(format!(
                        "index {} is declared twice with different paths: [{}] and [{}]",
                        spec.qualified(),
                        join(&s.paths),
                        join(&spec.paths)
                    )))
                }
                None => out.push(spec),
            }
        }
        crate::sort::sort_by(&mut out, |a, b| {
            (&a.collection, &a.name).cmp(&(&b.collection, &b.name))
        });
        Ok(IndexSet { specs: out })
    }

    /// The index `name` of `collection`.
    pub fn get(&self, collection: &str, name: &str) -> Option<&IndexSpec> {
        self.specs
            .iter()
            .find(|s| s.collection == collection && s.name == name)
    }

    /// The indexes of one collection.
    pub fn of<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a IndexSpec> + 'a {
        self.specs
            .iter()
            .filter(move |s| s.collection == collection)
    }

    /// Whether any index is on `collection`.
    pub fn covers(&self, collection: &str) -> bool {
        self.of(collection).next().is_some()
    }

    /// Every index.
    pub fn iter(&self) -> impl Iterator<Item = &IndexSpec> {
        self.specs.iter()
    }

    /// Number of indexes.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// No indexes.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

fn join(paths: &[Path]) -> String {
    paths
        .iter()
        .map(Path::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds an [`IndexSet`]; errors surface at [`IndexSetBuilder::build`].
#[derive(Debug, Default)]
pub struct IndexSetBuilder {
    specs: Vec<Result<IndexSpec>>,
}

impl IndexSetBuilder {
    /// An index on `paths` of `collection` (one path, or several for a compound index).
    pub fn index<P: Into<String>>(
        mut self,
        collection: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> Self {
        self.specs.push(IndexSpec::new(collection, paths));
        self
    }

    /// A named index.
    pub fn named<P: Into<String>>(
        mut self,
        name: &str,
        collection: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> Self {
        let spec = paths
            .into_iter()
            .map(|p| Path::new(p))
            .collect::<Result<Vec<_>>>()
            .and_then(|paths| IndexSpec::named(name, collection, paths));
        self.specs.push(spec);
        self
    }

    /// The set.
    pub fn build(self) -> Result<IndexSet> {
        IndexSet::new(self.specs.into_iter().collect::<Result<Vec<_>>>()?)
    }
}

/// The JS declaration form, `{ collection: [path | [path, ...] | {name, paths}] }`, as JSON.
///
/// ```
/// use tether_engine::query::IndexSet;
/// let set = IndexSet::from_declaration(&serde_json::json!({
///     "columns": ["object_id", ["object_id", "position"]],
///     "objects": [{"name": "by_name", "paths": ["name"]}],
/// })).unwrap();
/// assert!(set.get("objects", "by_name").is_some());
/// ```
impl IndexSet {
    /// Parses the declaration form; anything else is an `InvalidInput` naming what is wrong.
    pub fn from_declaration(decl: &Value) -> Result<IndexSet> {
        let Some(map) = decl.as_object() else {
            return Err(Error::invalid(
                "indexes must be an object of collection names to lists of index paths",
            ));
        };
        let mut specs = Vec::new();
        for (collection, list) in map {
            let Some(list) = list.as_array() else {
                return Err(Error::invalid(format!(
                    "the indexes of {collection:?} must be a list"
                )));
            };
            for entry in list {
                let bad = || {
                    Error::invalid(format!(
                        "index {entry} of {collection:?} must be a path, a list of paths, or {{name, paths}}"
                    ))
                };
                let strings = |v: &Value| -> Result<Vec<String>> {
                    match v {
                        Value::String(s) => Ok(vec![s.clone()]),
                        Value::Array(a) => a
                            .iter()
                            .map(|p| p.as_str().map(str::to_owned).ok_or_else(bad))
                            .collect(),
                        _ => Err(bad()),
                    }
                };
                let spec = match entry {
                    Value::Object(o) => {
                        let name = o.get("name").and_then(Value::as_str).ok_or_else(bad)?;
                        let paths = strings(o.get("paths").ok_or_else(bad)?)?
                            .into_iter()
                            .map(Path::new)
                            .collect::<Result<Vec<_>>>()?;
                        IndexSpec::named(name, collection.as_str(), paths)?
                    }
                    other => IndexSpec::new(collection.as_str(), strings(other)?)?,
                };
                specs.push(spec);
            }
        }
        IndexSet::new(specs)
    }
}
