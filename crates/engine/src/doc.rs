//! [`Doc`]: a record's data as the engine carries it from a page to a store, the JSON text of
//! an object, parsed only when something needs its fields (an index, a read, a conflict).
//!
//! A page's data is canonicalized once to check its hash ([`crate::rules::validate_change`]);
//! that canonical text is what a store writes, so no record is parsed into a tree, serialized
//! again, or dropped as a tree on the way. A store hands back the text it kept with
//! [`Doc::from_stored`].
//!
//! ```
//! use tether_engine::Doc;
//! let data = serde_json::json!({"name": "orders", "columns": 3});
//! let doc = Doc::new(data.as_object().unwrap());
//! assert_eq!(doc.as_str(), r#"{"columns":3,"name":"orders"}"#);
//! assert_eq!(doc.to_data().unwrap()["name"], "orders");
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{hash_canonical, RecordHash};
use crate::error::{Error, Result};
use crate::types::Data;

/// The JSON text of a record's data (an object). Made by the engine it is the RFC 8785
/// canonical text, the text the record's hash is of; read back from a store it is whatever JSON
/// text of the same object the store kept (a replica written by an older version may have
/// stored another spelling). Two docs are equal when they hold the same object.
#[derive(Clone)]
pub struct Doc(Box<str>);

impl Doc {
    /// The canonical text of `data`.
    pub fn new(data: &Data) -> Doc {
        let mut buf = Vec::with_capacity(256);
        crate::canonical::write_canonical_map(data, &mut buf);
        Doc::from_canonical(buf)
    }

    /// A doc over canonical text the engine wrote.
    pub(crate) fn from_canonical(text: Vec<u8>) -> Doc {
        // The canonical writers copy whole `&str`s and ASCII only, so this cannot fail.
        Doc(String::from_utf8(text)
            .expect("canonical JSON is built from valid UTF-8")
            .into_boxed_str())
    }

    /// A doc over text found canonical already ([`is_canonical`](crate::canonical::is_canonical)),
    /// kept without a copy.
    pub(crate) fn from_canonical_text(text: Box<str>) -> Doc {
        Doc(text)
    }

    /// A doc over the text a store kept for it. Not checked here: a store only keeps text it
    /// was given as a `Doc`, and a corrupt one is reported by [`Doc::to_data`] when read.
    pub fn from_stored(text: impl Into<Box<str>>) -> Doc {
        Doc(text.into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JSON text, owned.
    pub fn into_string(self) -> String {
        self.0.into_string()
    }

    /// The record hash of the data: SHA-256 of its canonical text, computed again from the
    /// text (which a store may have kept in another spelling), reusing `buf`. Fails (a storage
    /// error) for corrupt text.
    pub fn hash_with(&self, buf: &mut Vec<u8>) -> Result<RecordHash> {
        buf.clear();
        crate::canonical::write_canonical_text(&self.0, buf)
            .map_err(|e| Error::storage(format!("stored record data is not JSON: {e}")))?;
        Ok(hash_canonical(buf))
    }

    /// Parses the data. Fails (a storage error) only for text a store corrupted.
    pub fn to_data(&self) -> Result<Data> {
        serde_json::from_slice(self.0.as_bytes())
            .map_err(|e| Error::storage(format!("stored record data is not a JSON object: {e}")))
    }
}

impl From<Data> for Doc {
    fn from(data: Data) -> Doc {
        Doc::new(&data)
    }
}

impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        self.0 == other.0 || matches!((self.to_data(), other.to_data()), (Ok(a), Ok(b)) if a == b)
    }
}

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_data()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Doc, D::Error> {
        Data::deserialize(d).map(Doc::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_when_the_objects_are_equal_whatever_the_spelling() {
        let canonical = Doc::new(json!({"b": 1, "a": [true]}).as_object().unwrap());
        assert_eq!(canonical.as_str(), r#"{"a":[true],"b":1}"#);
        assert_eq!(canonical, Doc::from_stored(r#"{ "b": 1, "a": [true] }"#));
        assert_ne!(canonical, Doc::from_stored(r#"{"a":[true],"b":2}"#));
        assert_ne!(canonical, Doc::from_stored("not json"));
    }

    #[test]
    fn corrupt_text_is_a_storage_error_when_read() {
        let err = Doc::from_stored("[1]").to_data().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Storage);
    }

    #[test]
    fn serializes_as_the_object() {
        let doc = Doc::from_stored(r#"{"a":1}"#);
        assert_eq!(serde_json::to_value(&doc).unwrap(), json!({"a": 1}));
        let back: Doc = serde_json::from_value(json!({"b": 2, "a": 1})).unwrap();
        assert_eq!(back.as_str(), r#"{"a":1,"b":2}"#);
    }
}
