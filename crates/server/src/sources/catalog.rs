//! A declared source checked against the database, and the SQL that reads it.
//!
//! Every statement that reads a source table is generated here from one [`Plan`], so the key
//! text, the scope text and the JSON of a row are the same on every path (backfill, captured
//! changes, the sweep), and equal rows hash equal whichever path wrote them.

use sha2::{Digest as _, Sha256};
use tokio_postgres::GenericClient;

use super::config::{Source, Sources, SourcesError};
use super::values::{self, Column};

/// A quoted SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A key column and its type as SQL spells it (for casts of key text back to values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyColumn {
    pub(crate) name: String,
    pub(crate) ty: String,
}

/// A source as the database has it now: what to read and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The declaration.
    pub(crate) source: Source,
    /// The columns sent (all but the excluded ones, or the declared ones with the key and the
    /// scope), in table order.
    pub(crate) columns: Vec<Column>,
    /// The key columns, in key order.
    pub(crate) key: Vec<KeyColumn>,
    /// Changes when the table's shape, the declaration or the table itself (its oid) changes:
    /// the table is sent again.
    pub(crate) fingerprint: String,
}

/// Why a source cannot be read (at start: an error naming its line; later: reported).
pub(crate) async fn resolve(
    client: &impl GenericClient,
    sources: &Sources,
    source: &Source,
) -> Result<Plan, SourcesError> {
    let fail = |message: String| sources.error(source, message);
    let db = |e: tokio_postgres::Error| fail(format!("reading the catalog: {e}"));
    let rel = source.relation();
    let row = client
        .query_opt(
            "SELECT c.oid, c.relkind = 'p', c.relrowsecurity AND (c.relforcerowsecurity OR c.relowner <> r.oid)
                      AND NOT (r.rolbypassrls OR r.rolsuper),
                    has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'TRIGGER'),
                    current_user::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_roles r ON r.rolname = current_user
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&source.schema, &source.table],
        )
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Err(fail(format!(
            "table {rel} does not exist (or this role cannot see it)"
        )));
    };
    let (oid, partitioned, policies, select, trigger, role): (u32, bool, bool, bool, bool, String) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    // Statement triggers on a partitioned table see the statements that name it, not those
    // that write a partition directly: such writes would be lost.
    if partitioned {
        return Err(fail(format!(
            "{rel} is partitioned: writes into its partitions would not be captured; declare \
             a plain table (partitioned tables are not supported yet)"
        )));
    }
    if !select || !trigger {
        return Err(fail(format!(
            "role {role} needs SELECT and TRIGGER on {rel}: GRANT SELECT, TRIGGER ON {rel} TO {role}"
        )));
    }
    if policies {
        return Err(fail(format!(
            "{rel} has row level security and role {role} is subject to it, so the server would \
             see only the rows its policies show: use a role that owns the table or has BYPASSRLS"
        )));
    }
    let all = values::columns(client, &source.schema, &source.table)
        .await
        .map_err(db)?;
    let known = |c: &str| all.iter().any(|col| col.name == c);
    if !known(&source.scope) {
        return Err(fail(format!(
            "scope column {:?} is not a column of {rel}",
            source.scope
        )));
    }
    for c in &source.exclude {
        if !known(c) {
            return Err(fail(format!(
                "excluded column {c:?} is not a column of {rel}"
            )));
        }
    }
    for c in source.columns.iter().flatten() {
        if !known(c) {
            return Err(fail(format!("column {c:?} is not a column of {rel}")));
        }
    }
    let key_names = match &source.key {
        Some(key) => {
            for c in key {
                if !known(c) {
                    return Err(fail(format!("key column {c:?} is not a column of {rel}")));
                }
            }
            key.clone()
        }
        None => {
            let pk: Vec<String> = client
                .query(
                    "SELECT a.attname::text FROM pg_index i
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                     WHERE i.indrelid = $1 AND i.indisprimary
                     ORDER BY array_position(i.indkey::int2[], a.attnum)",
                    &[&oid],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if pk.is_empty() {
                return Err(fail(format!(
                    "{rel} has no primary key: declare its key columns (key = [\"...\"]), which \
                     must be NOT NULL and unique"
                )));
            }
            pk
        }
    };
    // The file's check sees only a declared key; the primary key's columns are known here.
    if let Some(c) = source.exclude.iter().find(|c| key_names.contains(c)) {
        return Err(fail(format!(
            "column {c:?} is a key column of {rel} and cannot be excluded"
        )));
    }
    // A declared key must name rows one to one: NOT NULL columns under a unique index.
    let unique: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique
                 AND i.indpred IS NULL AND i.indexprs IS NULL
                 AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                      WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))
                     = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) k))
               AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $1
                 AND a.attname = ANY($2) AND NOT a.attnotnull)",
            &[&oid, &key_names],
        )
        .await
        .map_err(db)?
        .get(0);
    if !unique {
        return Err(fail(format!(
            "key {key_names:?} of {rel} must be NOT NULL columns with a unique index on exactly them"
        )));
    }
    let types: Vec<(String, String)> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&oid],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let key = key_names
        .iter()
        .map(|k| KeyColumn {
            name: k.clone(),
            ty: types
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.clone())
                .unwrap_or_default(),
        })
        .collect();
    let sent = |name: &String| match &source.columns {
        Some(list) => list.contains(name) || key_names.contains(name) || *name == source.scope,
        None => !source.exclude.contains(name),
    };
    let columns: Vec<Column> = all.into_iter().filter(|c| sent(&c.name)).collect();
    let mut h = Sha256::new();
    h.update(values::shape_fingerprint(&columns));
    for part in [&source.collection, &source.scope, &rel] {
        h.update([0]);
        h.update(part.as_bytes());
    }
    for k in &key_names {
        h.update([1]);
        h.update(k.as_bytes());
    }
    // The table's identity too: one dropped and created again (or swapped for a rewritten
    // copy) between two checks has the same shape but none of the capture triggers, and rows
    // the records may not hold; a new oid reinstalls them and sends the table again.
    h.update([2]);
    h.update(oid.to_be_bytes());
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Plan {
        source: source.clone(),
        columns,
        key,
        fingerprint,
    })
}

impl Plan {
    /// The table, quoted.
    pub(crate) fn table(&self) -> String {
        format!(
            "{}.{}",
            ident(&self.source.schema),
            ident(&self.source.table)
        )
    }

    /// The record id of a row of `alias`: the key's text, or a JSON array of the texts of a
    /// composite key. The capture triggers compute the same text in the writer's session,
    /// under the same settings (see `capture`).
    pub(crate) fn key_text(&self, alias: &str) -> String {
        if let [k] = self.key.as_slice() {
            return format!("({alias}.{})::text", ident(&k.name));
        }
        let parts: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("({alias}.{})::text", ident(&k.name)))
            .collect();
        format!("jsonb_build_array({})::text", parts.join(", "))
    }

    /// The scope of a row of `alias`, as text.
    pub(crate) fn scope_text(&self, alias: &str) -> String {
        format!("({alias}.{})::text", ident(&self.source.scope))
    }

    /// Rows whose record ids are in `$1` (a text array): id, scope, data.
    pub(crate) fn rows_sql(&self) -> String {
        format!(
            "SELECT {}, {}, ({})::text FROM {} t WHERE {}",
            self.key_text("t"),
            self.scope_text("t"),
            values::object_json("t", &self.columns),
            self.table(),
            self.match_ids("t"),
        )
    }

    /// Which rows of `$1` (record ids) exist, and in which scope: id, scope.
    pub(crate) fn exists_sql(&self) -> String {
        format!(
            "SELECT {}, {} FROM {} t WHERE {}",
            self.key_text("t"),
            self.scope_text("t"),
            self.table(),
            self.match_ids("t"),
        )
    }

    /// A page of the table in key order, after the key whose column texts are `$1..$n`
    /// (`after` false: the first page): the key's column texts, id, scope, data.
    pub(crate) fn page_sql(&self, after: bool, limit: usize) -> String {
        self.page(after, limit, true)
    }

    /// [`Plan::page_sql`] with NULL for the data: the keys of a page whose data cannot be read
    /// as a whole (one row's value fails to convert), to read its rows one by one.
    pub(crate) fn page_keys_sql(&self, after: bool, limit: usize) -> String {
        self.page(after, limit, false)
    }

    fn page(&self, after: bool, limit: usize, data: bool) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("t.{}", ident(&k.name)))
            .collect();
        let texts: Vec<String> = cols.iter().map(|c| format!("({c})::text")).collect();
        let cond = if after {
            let params: Vec<String> = self
                .key
                .iter()
                .enumerate()
                .map(|(n, k)| format!("${}::text::{}", n + 1, k.ty))
                .collect();
            format!("WHERE ({}) > ({})", cols.join(", "), params.join(", "))
        } else {
            String::new()
        };
        let data = if data {
            format!("({})::text", values::object_json("t", &self.columns))
        } else {
            "NULL::text".into()
        };
        format!(
            "SELECT {}, {}, {}, {data} FROM {} t {cond} ORDER BY {} LIMIT {limit}",
            texts.join(", "),
            self.key_text("t"),
            self.scope_text("t"),
            self.table(),
            cols.join(", "),
        )
    }

    /// The condition "the row's key is one of the record ids in `$1`", written so that the
    /// table's key index serves it.
    fn match_ids(&self, alias: &str) -> String {
        if let [k] = self.key.as_slice() {
            return format!("{alias}.{} = ANY($1::text[]::{}[])", ident(&k.name), k.ty);
        }
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{alias}.{}", ident(&k.name)))
            .collect();
        let parts: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(n, k)| format!("(x.j->>{n})::{}", k.ty))
            .collect();
        format!(
            "({}) IN (SELECT {} FROM (SELECT k::jsonb AS j FROM unnest($1::text[]) AS k) x)",
            cols.join(", "),
            parts.join(", ")
        )
    }
}
