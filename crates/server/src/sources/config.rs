//! The sources file (`tether serve --sources FILE`): which PostgreSQL tables replicas see, as
//! which collections, split into scopes by which column.
//!
//! ```toml
//! [[source]]
//! table = "metadata.objects"        # schema-qualified
//! collection = "objects"            # the collection replicas see
//! scope = "organization_id"         # the column whose value (as text) names the scope
//! # key = ["id"]                    # default: the table's primary key
//! # exclude = ["internal_notes"]    # columns never sent to any replica
//! # columns = ["name", "kind"]      # or: only these columns are sent (besides key and scope)
//! ```
//!
//! What can be checked without the database is checked here; the rest (the table and its
//! columns exist, a primary key) when the server starts ([`super::catalog`]). Every error names
//! the file and the line of the declaration it is about.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// The declared sources of a sources file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Where they came from (the file's path), for messages.
    pub origin: String,
    /// The declarations, in file order.
    pub sources: Vec<Source>,
}

/// One `[[source]]`: a table mirrored into a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The table's schema.
    pub schema: String,
    /// The table's name.
    pub table: String,
    /// The collection replicas see.
    pub collection: String,
    /// The column whose value, as text, names a row's scope (a NULL value: in no scope).
    pub scope: String,
    /// The key columns; `None`: the table's primary key.
    pub key: Option<Vec<String>>,
    /// Columns never sent.
    pub exclude: Vec<String>,
    /// When declared, the only columns sent besides the key and scope columns (which always
    /// are): a column added to the table later reaches no replica. Exclusive with `exclude`.
    pub columns: Option<Vec<String>>,
    /// The line of the declaration's `table`, for messages.
    pub line: usize,
}

impl Source {
    /// `schema.table`, as declared.
    pub fn relation(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// A sources file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {message}")]
pub struct SourcesError {
    /// The file.
    pub origin: String,
    /// The line (1-based; 0 when the file could not be read at all).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    table: Spanned<String>,
    collection: Spanned<String>,
    scope: Spanned<String>,
    #[serde(default)]
    key: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    exclude: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    columns: Option<Spanned<Vec<String>>>,
}

impl Sources {
    /// Reads and checks a sources file.
    pub fn from_file(path: &Path) -> Result<Sources, SourcesError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SourcesError {
            origin: origin.clone(),
            line: 0,
            message: format!("cannot read the sources file: {e}"),
        })?;
        Sources::parse(&text, &origin)
    }

    /// Parses and checks the text of a sources file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Sources, SourcesError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let fail = |offset: usize, message: String| SourcesError {
            origin: origin.to_string(),
            line: line_of(offset),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            fail(at, e.message().to_string())
        })?;
        if raw.source.is_empty() {
            return Err(fail(0, "no [[source]] is declared".into()));
        }
        let mut sources = Vec::with_capacity(raw.source.len());
        let (mut tables, mut collections) = (BTreeSet::new(), BTreeSet::new());
        for s in raw.source {
            let s = s.into_inner();
            let at = s.table.span().start;
            let (schema, table) = split_relation(s.table.get_ref()).ok_or_else(|| {
                fail(
                    at,
                    format!(
                    "table {:?} must be schema-qualified, as \"schema.table\" (plain identifiers)",
                    s.table.get_ref()
                ),
                )
            })?;
            let collection = s.collection.get_ref().clone();
            tether_engine::Key::new(collection.as_str(), "x")
                .validate()
                .map_err(|e| {
                    fail(
                        s.collection.span().start,
                        format!("collection {collection:?}: {e}"),
                    )
                })?;
            let scope = s.scope.get_ref().clone();
            let columns = |v: &Option<Spanned<Vec<String>>>, what: &str, allow_empty: bool| {
                let Some(v) = v else { return Ok(None) };
                if !allow_empty && v.get_ref().is_empty() {
                    return Err(fail(v.span().start, format!("{what} names no column")));
                }
                let mut seen = BTreeSet::new();
                for c in v.get_ref() {
                    if c.is_empty() || !seen.insert(c) {
                        return Err(fail(
                            v.span().start,
                            format!("{what}: column {c:?} is empty or repeated"),
                        ));
                    }
                }
                Ok(Some(v.get_ref().clone()))
            };
            let key = columns(&s.key, "key", false)?;
            let exclude = columns(&s.exclude, "exclude", true)?.unwrap_or_default();
            let allowed = columns(&s.columns, "columns", false)?;
            if let (Some(_), Some(c)) = (&s.exclude, &s.columns) {
                return Err(fail(
                    c.span().start,
                    "declare either the columns sent (columns) or those never sent (exclude), \
                     not both"
                        .into(),
                ));
            }
            if scope.is_empty() {
                return Err(fail(s.scope.span().start, "scope names no column".into()));
            }
            for c in &exclude {
                let kept = key.iter().flatten().any(|k| k == c) || *c == scope;
                if kept {
                    let at = s.exclude.as_ref().map_or(at, |e| e.span().start);
                    return Err(fail(
                        at,
                        format!("column {c:?} is the scope or a key column and cannot be excluded"),
                    ));
                }
            }
            if !tables.insert((schema.clone(), table.clone())) {
                return Err(fail(
                    at,
                    format!("table {schema}.{table} is declared twice"),
                ));
            }
            if !collections.insert(collection.clone()) {
                return Err(fail(
                    s.collection.span().start,
                    format!("collection {collection:?} is declared twice"),
                ));
            }
            sources.push(Source {
                schema,
                table,
                collection,
                scope,
                key,
                exclude,
                columns: allowed,
                line: line_of(at),
            });
        }
        Ok(Sources {
            origin: origin.to_string(),
            sources,
        })
    }

    /// The source of `collection`, if one is declared.
    pub fn of_collection(&self, collection: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.collection == collection)
    }

    /// An error about `source`, at its line.
    pub(crate) fn error(&self, source: &Source, message: String) -> SourcesError {
        SourcesError {
            origin: self.origin.clone(),
            line: source.line,
            message,
        }
    }
}

/// `schema.table` with two non-empty parts (names are taken as written, case included).
fn split_relation(s: &str) -> Option<(String, String)> {
    let (schema, table) = s.split_once('.')?;
    let plain = |p: &str| !p.is_empty() && !p.contains('.') && !p.contains('"');
    (plain(schema) && plain(table)).then(|| (schema.to_string(), table.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let text = r#"
[[source]]
table = "metadata.objects"
collection = "objects"
scope = "organization_id"
exclude = ["internal_notes"]

[[source]]
table = "metadata.lineage"
collection = "lineage"
scope = "organization_id"
key = ["source_id", "target_id"]
columns = ["kind"]
"#;
        let s = Sources::parse(text, "sources.toml").unwrap();
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.sources[0].relation(), "metadata.objects");
        assert_eq!(s.sources[0].exclude, ["internal_notes"]);
        assert_eq!(s.sources[0].key, None);
        assert_eq!(s.sources[0].line, 3);
        assert_eq!(
            s.sources[1].key.as_deref(),
            Some(&["source_id".to_string(), "target_id".to_string()][..])
        );
        assert_eq!(s.sources[1].line, 9);
        assert_eq!(s.sources[0].columns, None);
        assert_eq!(s.sources[1].columns, Some(vec!["kind".to_string()]));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[[source]]\ntable = \"objects\"\ncollection = \"o\"\nscope = \"s\"\n", 2, "schema-qualified"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\n", 1, "scope"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\ncolour = 1\n", 5, "colour"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\nexclude = [\"s\"]\n", 5, "cannot be excluded"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\n[[source]]\ntable = \"a.c\"\ncollection = \"o\"\nscope = \"s\"\n", 7, "declared twice"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"\"\nscope = \"s\"\n", 3, "collection"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\nkey = []\n", 5, "no column"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\ncolumns = []\n", 5, "no column"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\ncolumns = [\"x\", \"x\"]\n", 5, "repeated"),
            ("[[source]]\ntable = \"a.b\"\ncollection = \"o\"\nscope = \"s\"\nexclude = [\"y\"]\ncolumns = [\"x\"]\n", 6, "not both"),
            ("", 1, "no [[source]]"),
            ("[[source]\n", 1, ""),
        ];
        for (text, line, words) in cases {
            let e = Sources::parse(text, "f.toml").unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("f.toml:{line}: ")),
                "{e}"
            );
            assert!(e.message.contains(words), "{text:?}: {e}");
        }
    }
}
