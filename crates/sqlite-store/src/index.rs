//! Indexes in SQLite: declaring, building, keeping the entries in step with each write, and
//! scanning (the engine's reference semantics, `MemoryStore`'s, over the `indexes` and
//! `index_entries` tables described in the `schema` module). Each function runs inside a
//! transaction its caller owns.

use tether_engine::query::IndexSpec;
use tether_engine::query::{Hit, Order, Scan};
use tether_engine::rules::RowWrite;
use tether_engine::{Data, Doc, Error, IndexSet, ScopeId};

use crate::conn::statement;
use crate::conn::{Connection, SqlResult};
use crate::sql::{self, Bound, Declared};

/// Past every index key: keys start with a type tag below 0xFF.
const PAST_EVERY_KEY: &[u8] = &[0xFF];

/// Declares `set`: drops the indexes not in it (or whose paths changed) with their entries and
/// records the new ones as building; an index declared as it was is left alone, build cursor
/// included. Returns the declarations now stored.
pub(crate) fn declare(tx: &impl Connection, set: &IndexSet) -> SqlResult<Vec<Declared>> {
    let current = sql::declared(tx)?;
    for d in &current {
        if set.get(&d.spec.collection, &d.spec.name) != Some(&d.spec) {
            sql::drop_index(tx, d.no)?;
        }
    }
    for spec in set.iter() {
        if !current.iter().any(|d| d.spec == *spec) {
            sql::insert_index(tx, spec)?;
        }
    }
    sql::declared(tx)
}

/// Indexes at most `batch` more rows for the first index still building (across scopes, in
/// `(scope_id, id)` order, from its stored cursor) and stores the new cursor. Returns the
/// declarations after the step.
pub(crate) fn build(tx: &impl Connection, batch: usize) -> SqlResult<Vec<Declared>> {
    let declared = sql::declared(tx)?;
    let Some(d) = declared.iter().find(|d| d.building) else {
        return Ok(declared);
    };
    if batch == 0 {
        return Ok(declared);
    }
    let (from_scope, from_id) = match &d.cursor {
        Some((s, id)) => (*s, Some(id.as_str())),
        None => (i64::MIN, None),
    };
    let mut insert = tx.prepare(sql::INSERT_ENTRY)?;
    let mut done = 0;
    let mut last = None;
    for scope_id in sql::scope_ids_from(tx, from_scope)? {
        if done == batch {
            break;
        }
        let after = from_id.filter(|_| scope_id == from_scope);
        let rows = sql::rows_to_build(tx, scope_id, &d.spec.collection, after, batch - done)?;
        for (id, data) in rows {
            if let Some(data) = data {
                sql::entry(&mut insert, d.no, scope_id, &d.spec.key_of(&data), &id)?;
            }
            done += 1;
            last = Some((scope_id, id));
        }
    }
    drop(insert);
    // A step that found fewer rows than it could take reached the end; one that filled its
    // batch may have stopped exactly at the end, and the next step finds nothing and finishes.
    let cursor = if done < batch { None } else { last };
    sql::set_build_cursor(tx, d.no, cursor.as_ref().map(|(s, id)| (*s, id.as_str())))?;
    sql::declared(tx)
}

/// The statements that read, add and delete entries, prepared once per transaction when a
/// write first needs them.
pub(crate) struct EntryWriter<'c, C: Connection + 'c> {
    old_key: Option<C::Statement<'c>>,
    insert: Option<C::Statement<'c>>,
    delete: Option<C::Statement<'c>>,
    delete_row: Option<C::Statement<'c>>,
}

impl<'c, C: Connection + 'c> EntryWriter<'c, C> {
    /// No statement prepared yet.
    pub(crate) fn new() -> Self {
        EntryWriter {
            old_key: None,
            insert: None,
            delete: None,
            delete_row: None,
        }
    }

    /// Replaces the entries of the row `w` writes with those of its new visible data, in every
    /// declared index of its collection (built or not). The old entries are found by the row's
    /// id, never computed from its old data: a row whose stored data is corrupt is rewritten
    /// like any other.
    pub(crate) fn reindex(
        &mut self,
        tx: &'c C,
        declared: &[Declared],
        scope_id: i64,
        w: &RowWrite,
    ) -> SqlResult<()> {
        let key = w.key();
        let mut specs = declared
            .iter()
            .filter(|d| d.spec.collection == key.collection)
            .peekable();
        if specs.peek().is_none() {
            return Ok(());
        }
        let new = match w {
            // A touch keeps the data, so it keeps the entries.
            RowWrite::Touch { .. } => return Ok(()),
            RowWrite::Put { row, .. } => match &row.data {
                Some(doc) => Some(indexed_members(doc, specs.clone().map(|d| &d.spec))?),
                None => None,
            },
            RowWrite::Remove { .. } => None,
        };
        // A new row has no entries yet; a pending local delete (no visible hash) has none.
        let had_entries = w.prior().is_some_and(|p| p.hash.is_some());
        for d in specs {
            let new_key = new.as_ref().map(|n| d.spec.key_of(n));
            if !had_entries {
                if let Some(k) = new_key {
                    let stmt = statement(tx, &mut self.insert, sql::INSERT_ENTRY)?;
                    sql::entry(stmt, d.no, scope_id, &k, &key.id)?;
                }
                continue;
            }
            let Some(new_key) = new_key else {
                let stmt = statement(tx, &mut self.delete_row, sql::DELETE_ROW_ENTRY)?;
                sql::row_entry(stmt, d.no, scope_id, &key.id)?;
                continue;
            };
            let stmt = statement(tx, &mut self.old_key, sql::ENTRY_KEY)?;
            let old_key = sql::entry_key(stmt, d.no, scope_id, &key.id)?;
            if old_key.as_ref() == Some(&new_key) {
                continue;
            }
            if let Some(k) = old_key {
                let stmt = statement(tx, &mut self.delete, sql::DELETE_ENTRY)?;
                sql::entry(stmt, d.no, scope_id, &k, &key.id)?;
            }
            let stmt = statement(tx, &mut self.insert, sql::INSERT_ENTRY)?;
            sql::entry(stmt, d.no, scope_id, &new_key, &key.id)?;
        }
        Ok(())
    }
}

/// The members of `doc`'s object that `specs` read (the first step of each of their paths),
/// parsed; every other member is skipped without being built. What `IndexSpec::key_of` reads of
/// it is the same as of the whole data. Parsing the whole record into a tree (`Doc::to_data`)
/// was 44 % of writing an indexed row, on the sync's writing thread; a record has a dozen
/// members and an index reads one or two.
fn indexed_members<'s>(doc: &Doc, specs: impl Iterator<Item = &'s IndexSpec>) -> SqlResult<Data> {
    let mut wanted: Vec<&str> = Vec::new();
    for spec in specs {
        for path in &spec.paths {
            let first = path.as_str().split('.').next().unwrap_or_default();
            if !wanted.contains(&first) {
                wanted.push(first);
            }
        }
    }
    let mut de = serde_json::Deserializer::from_str(doc.as_str());
    let data = serde::de::DeserializeSeed::deserialize(Members(&wanted), &mut de)
        .and_then(|data| de.end().map(|()| data))
        .map_err(|e| Error::storage(format!("stored record data is not a JSON object: {e}")))?;
    Ok(data)
}

/// Reads a JSON object, keeping only the members named.
struct Members<'w>(&'w [&'w str]);

impl<'de> serde::de::DeserializeSeed<'de> for Members<'_> {
    type Value = Data;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Members<'_> {
    type Value = Data;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut data = Data::new();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.contains(&&*name) {
                // As in a whole parse, the last of equal names wins.
                data.insert(name.into_owned(), map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(data)
    }
}

/// The entries a scan selects, with their rows, in its order.
pub(crate) fn scan(conn: &impl Connection, scope: &ScopeId, scan: &Scan) -> SqlResult<Vec<Hit>> {
    let d = ready(conn, scan)?;
    let Some(scope_id) = sql::scope_id(conn, scope)? else {
        return Ok(Vec::new());
    };
    let limit = scan.limit.unwrap_or(usize::MAX);
    let descending = scan.order == Order::Desc;
    let mut found = Vec::new();
    let ranges: Box<dyn Iterator<Item = _>> = if descending {
        Box::new(scan.ranges.iter().rev())
    } else {
        Box::new(scan.ranges.iter())
    };
    for r in ranges {
        if found.len() >= limit {
            break;
        }
        // `(key, id) >= (from, "")` is `key >= from`, and `(key, id) < (to, "")` is
        // `key < to`: the ranges as row values, so that a cursor can tighten one side.
        let mut lower = Bound {
            key: &r.from,
            id: "",
            inclusive: true,
        };
        let mut upper = Bound {
            key: r.to.as_deref().unwrap_or(PAST_EVERY_KEY),
            id: "",
            inclusive: false,
        };
        if let Some(c) = &scan.after {
            let at = (c.key.as_slice(), c.id.as_bytes());
            let cursor = Bound {
                key: &c.key,
                id: &c.id,
                inclusive: false,
            };
            if !descending && at >= (lower.key, lower.id.as_bytes()) {
                lower = cursor;
            } else if descending && at < (upper.key, upper.id.as_bytes()) {
                upper = cursor;
            }
        }
        let more = limit - found.len();
        sql::scan_entries(
            conn,
            d.no,
            scope_id,
            &scan.collection,
            lower,
            upper,
            descending,
            more,
            &mut found,
        )?;
    }
    Ok(found
        .into_iter()
        .map(|(key, row)| Hit { key, row })
        .collect())
}

/// The number of entries a scan selects, its cursor and limit ignored.
pub(crate) fn scan_count(conn: &impl Connection, scope: &ScopeId, scan: &Scan) -> SqlResult<u64> {
    let d = ready(conn, scan)?;
    let Some(scope_id) = sql::scope_id(conn, scope)? else {
        return Ok(0);
    };
    let mut n = 0;
    for r in &scan.ranges {
        let to = r.to.as_deref().unwrap_or(PAST_EVERY_KEY);
        n += sql::count_entries(conn, d.no, scope_id, &r.from, to)?;
    }
    Ok(n)
}

/// The declared, built index a scan names; an `InvalidInput` naming it otherwise.
fn ready(conn: &impl Connection, scan: &Scan) -> SqlResult<Declared> {
    let q = format!("{}.{}", scan.collection, scan.index);
    let d = sql::declared(conn)?
        .into_iter()
        .find(|d| d.spec.collection == scan.collection && d.spec.name == scan.index)
        .ok_or_else(|| Error::invalid(format!("no index {q} is declared")))?;
    if d.building {
        return Err(Error::invalid(format!("index {q} is still being built")).into());
    }
    Ok(d)
}

/// The set of declared indexes (validated as the engine validates a declaration).
pub(crate) fn set_of(declared: &[Declared]) -> SqlResult<IndexSet> {
    Ok(IndexSet::new(declared.iter().map(|d| d.spec.clone()))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_members_an_index_reads_give_the_key_the_whole_data_gives() {
        let doc = Doc::from_stored(
            r#"{"b":{"c":1,"d":"x"},"a":2,"z":[1,{"e":2}],"b":{"c":3},"n":null,"q":"\u00e9"}"#,
        );
        for paths in [
            vec!["b.c"],
            vec!["a", "b.c"],
            vec!["z"],
            vec!["n", "missing"],
            vec!["q", "b.d"],
        ] {
            let spec = IndexSpec::new("c", paths.clone()).unwrap();
            let some = indexed_members(&doc, std::iter::once(&spec)).unwrap();
            assert!(some.len() <= paths.len(), "{paths:?}: {some:?}");
            assert_eq!(
                spec.key_of(&some),
                spec.key_of(&doc.to_data().unwrap()),
                "{paths:?}"
            );
        }
    }

    #[test]
    fn data_that_is_not_an_object_is_a_storage_error() {
        let spec = IndexSpec::new("c", ["a"]).unwrap();
        for text in [r#"[1]"#, r#"{"a":1"#, r#"{"a":1} x"#, r#"{"b":[}"#] {
            let e = indexed_members(&Doc::from_stored(text), std::iter::once(&spec)).unwrap_err();
            assert_eq!(
                Error::from(e).kind(),
                tether_engine::ErrorKind::Storage,
                "{text}"
            );
        }
    }
}
