//! The JSON form of a source table's column values: one SQL expression per column, built from
//! the catalog's view of its type, that every path reading a source row uses (backfill, change
//! capture, re-send after a schema change), so equal rows give equal `jsonb` and hash equal
//! whichever path wrote them. The forms are documented in docs/server.md, "Declared sources".
//!
//! The expressions are plain built-in SQL (no helper function to install): the value itself
//! where the conversion `to_jsonb` and `jsonb_build_object` do is the rule, its text where the
//! rule is the text form, and an element-wise subquery only for arrays whose elements need a
//! rule that conversion does not follow (`int8`, `bytea`). Some forms depend on session settings (the time zone, the
//! interval style, float digits): every connection or function that evaluates them must run
//! with [`SETTINGS`].

use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

/// A column's type as the catalog says, resolved through domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnType {
    /// The declared type with its modifier, as `format_type` prints it (`numeric(10,2)`,
    /// `character varying(20)`, a domain's name, `bigint[]`).
    pub(crate) declared: String,
    /// The type under the domains, if any.
    pub(crate) base: BaseType,
    /// For an array (or a domain over one): its element's type, resolved through domains.
    pub(crate) element: Option<BaseType>,
}

/// A type that is not a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseType {
    /// Its oid; built-in oids are fixed across PostgreSQL versions and installations.
    pub(crate) oid: u32,
    /// Its name, as `format_type` prints it without a modifier.
    pub(crate) name: String,
}

/// A source table's column: its name and type, in the table's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// The column's name, unquoted.
    pub(crate) name: String,
    /// Its type.
    pub(crate) ty: ColumnType,
    /// Its `attnum`: a column dropped and added again under the same name gets a new one.
    pub(crate) number: i16,
}

/// The session settings under which the forms are stable, as (name, value) pairs: for
/// `SET LOCAL` in a transaction, or the `SET` clauses of a capturing function, which runs in
/// the writer's session whatever that session's settings are.
pub(crate) const SETTINGS: &[(&str, &str)] = &[
    // timestamptz prints its offset in the session's zone.
    ("TimeZone", "UTC"),
    // interval prints as ISO 8601 (`P1DT2H`).
    ("IntervalStyle", "iso_8601"),
    // Text forms of dates inside ranges and composites.
    ("DateStyle", "ISO"),
    // 1 (the default since PostgreSQL 12) prints floats in their shortest exact form; 0 or
    // less would round them.
    ("extra_float_digits", "1"),
    // Text forms of bytea inside composites.
    ("bytea_output", "hex"),
    // Text form of money.
    ("lc_monetary", "C"),
    // Column names are quoted as standard literals (a backslash is itself).
    ("standard_conforming_strings", "on"),
    // Not a form: the element-wise array subqueries raise a page query's estimated cost past
    // the JIT threshold, and compiling the expression took longer (1.5 s) than reading 100,000
    // rows without it.
    ("jit", "off"),
];

/// [`SETTINGS`] as a string for `tokio_postgres::Config::options`.
pub(crate) const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c IntervalStyle=iso_8601 \
     -c DateStyle=ISO -c extra_float_digits=1 -c bytea_output=hex -c lc_monetary=C \
     -c standard_conforming_strings=on -c jit=off";

/// The largest integer a double holds exactly (2^53 − 1): an `int8` beyond it is a string, or
/// a JavaScript client parsing the JSON would change its digits.
pub(crate) const MAX_EXACT_INT: i64 = (1 << 53) - 1;

/// Array dimensions PostgreSQL allows (its `MAXDIM`); element-wise forms are built for each.
const MAX_DIMS: usize = 6;

/// The columns of `schema.table` (not dropped, not system), in attnum order; empty if the
/// table does not exist. The names are matched as the catalog holds them (case-sensitive, not
/// quoted).
pub(crate) async fn columns(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Vec<Column>, tokio_postgres::Error> {
    let rows = client.query(COLUMNS_SQL, &[&schema, &table]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let element = row.get::<_, Option<u32>>("elem_oid").map(|oid| BaseType {
                oid,
                name: row.get("elem_name"),
            });
            Column {
                name: row.get("name"),
                number: row.get("number"),
                ty: ColumnType {
                    declared: row.get("declared"),
                    base: BaseType {
                        oid: row.get("base_oid"),
                        name: row.get("base_name"),
                    },
                    element,
                },
            }
        })
        .collect())
}

/// SQL expression of type jsonb for `alias`.column (the column's name quoted as an
/// identifier); SQL NULL for NULL. `alias` is written as given: a table alias of the query,
/// an unquoted lowercase name. (The server reads whole rows with [`object_json`]; this one
/// column's form is what the tests check each member against.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn value_json(alias: &str, col: &Column) -> String {
    match arg(alias, col) {
        Arg::Value(v) => format!("to_jsonb({v})"),
        Arg::Jsonb(j) => j,
    }
}

/// SQL expression of type jsonb: the object of the given columns of `alias`, every column a
/// member (NULL as JSON null). `jsonb_build_object` takes at most 100 arguments, so the
/// members are built in chunks of [`OBJECT_CHUNK`] joined with `||`.
pub(crate) fn object_json(alias: &str, cols: &[Column]) -> String {
    if cols.is_empty() {
        return "'{}'::jsonb".to_owned();
    }
    let chunks: Vec<String> = cols
        .chunks(OBJECT_CHUNK)
        .map(|chunk| {
            let members: Vec<String> = chunk
                .iter()
                .map(|c| {
                    let value = match arg(alias, c) {
                        Arg::Value(v) | Arg::Jsonb(v) => v,
                    };
                    format!("{}, {value}", quote_literal(&c.name))
                })
                .collect();
            format!("jsonb_build_object({})", members.join(", "))
        })
        .collect();
    if chunks.len() == 1 {
        chunks.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", chunks.join(" || "))
    }
}

/// The version of the forms, part of every [`shape_fingerprint`]: a release that changes how
/// any value is written bumps it, so every source table is sent again in the new forms.
pub(crate) const FORMS: u32 = 1;

/// Columns per `jsonb_build_object` call: two arguments each, under PostgreSQL's 100.
pub(crate) const OBJECT_CHUNK: usize = 50;

/// A fingerprint of the columns' names, positions and types: hex SHA-256 of a canonical JSON
/// text of them. It changes when a column is added, dropped (or dropped and added again),
/// renamed, or changes type or type modifier (`numeric(10,2)` to `numeric(10,3)` changes every
/// value's text), and with nothing else; and for every table when [`FORMS`] changes.
pub(crate) fn shape_fingerprint(cols: &[Column]) -> String {
    let columns: Vec<serde_json::Value> = cols
        .iter()
        .map(|c| {
            serde_json::json!([
                c.name,
                c.number,
                c.ty.declared,
                c.ty.base.oid,
                c.ty.base.name,
                c.ty.element.as_ref().map(|e| (e.oid, &e.name)),
            ])
        })
        .collect();
    let text = serde_json::json!([FORMS, columns]).to_string();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a value of one (non-array, non-domain) type becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `to_jsonb` already gives the documented form (under [`SETTINGS`]); `json` nests
    /// through `jsonb`, its duplicate keys collapsed to the last.
    ToJsonb,
    /// `int8`: a number within ±[`MAX_EXACT_INT`], a string of its digits beyond.
    Int8,
    /// `oid`: a number (`to_jsonb` would print it as a string).
    Oid,
    /// `bytea`: base64 without line breaks.
    Bytea,
    /// Everything else, `numeric` included: the value's text form as a string.
    Text,
}

impl Rule {
    fn of(oid: u32) -> Rule {
        match oid {
            BOOL | INT2 | INT4 | FLOAT4 | FLOAT8 | TEXT | VARCHAR | BPCHAR | NAME | CHAR | UUID
            | DATE | TIME | TIMETZ | TIMESTAMP | TIMESTAMPTZ | INTERVAL | JSON | JSONB => {
                Rule::ToJsonb
            }
            INT8 => Rule::Int8,
            OID => Rule::Oid,
            BYTEA => Rule::Bytea,
            _ => Rule::Text,
        }
    }
}

// Built-in type oids (pg_type.dat); fixed, so no catalog lookup by name is needed.
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const CHAR: u32 = 18;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const TIMETZ: u32 = 1266;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;

/// What a column gives `to_jsonb` or `jsonb_build_object`, which convert a value the same
/// way: handing them the value (or its text) rather than a `jsonb` made of it saves building
/// one `jsonb` per member, which took about a third of an object's time.
enum Arg {
    /// A value whose conversion is the form.
    Value(String),
    /// A jsonb that is the form.
    Jsonb(String),
}

/// The [`Arg`] of `alias`.column.
fn arg(alias: &str, col: &Column) -> Arg {
    debug_assert!(
        !alias.is_empty()
            && alias
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "alias {alias:?} must be a plain lowercase identifier"
    );
    let v = format!("{alias}.{}", quote_ident(&col.name));
    match &col.ty.element {
        None => scalar_arg(&v, Rule::of(col.ty.base.oid)),
        Some(element) => array_arg(&v, Rule::of(element.oid)),
    }
}

/// The [`Arg`] of the scalar `v` under `rule`. NULL converts to JSON null (as a member or an
/// element of an aggregate).
fn scalar_arg(v: &str, rule: Rule) -> Arg {
    match rule {
        Rule::ToJsonb => Arg::Value(v.to_owned()),
        Rule::Int8 => Arg::Jsonb(format!(
            "CASE WHEN {v} BETWEEN -{MAX_EXACT_INT} AND {MAX_EXACT_INT} THEN to_jsonb({v}) \
             ELSE to_jsonb({v}::text) END"
        )),
        Rule::Oid => Arg::Value(format!("{v}::int8")),
        // encode() breaks base64 lines every 76 characters.
        Rule::Bytea => Arg::Value(format!("translate(encode({v}, 'base64'), E'\\n', '')")),
        Rule::Text => Arg::Value(format!("{v}::text")),
    }
}

/// The [`Arg`] of the array `v` whose elements follow `rule`: nested arrays for several
/// dimensions (lower bounds are not kept, as `to_jsonb` does not keep them).
fn array_arg(v: &str, rule: Rule) -> Arg {
    match rule {
        Rule::ToJsonb => Arg::Value(v.to_owned()),
        Rule::Oid => Arg::Value(format!("{v}::int8[]")),
        // The cast maps every element and keeps the dimensions.
        Rule::Text => Arg::Value(format!("{v}::text[]")),
        // Elements short of 16 digits are all within 2^53: to_jsonb is exact for them and
        // several times cheaper than the element-wise subquery.
        Rule::Int8 => Arg::Jsonb(format!(
            "CASE WHEN {v}::text !~ '[0-9]{{16}}' THEN to_jsonb({v}) ELSE {} END",
            elementwise(v, rule)
        )),
        Rule::Bytea => Arg::Jsonb(elementwise(v, rule)),
    }
}

/// The array `v` mapped element by element, for any number of dimensions: the elements are
/// unnested in storage order (row-major) with their ordinal, then grouped into rows of the
/// last dimension's length, those into rows of the one before, and so on.
fn elementwise(v: &str, rule: Rule) -> String {
    let mut branches = String::new();
    for ndims in 1..=MAX_DIMS {
        let mut rows = format!(
            "SELECT _e.n - 1 AS g, {} AS j FROM unnest({v}) WITH ORDINALITY AS _e(x, n)",
            match scalar_arg("_e.x", rule) {
                Arg::Value(x) => format!("to_jsonb({x})"),
                Arg::Jsonb(j) => j,
            }
        );
        for dim in (2..=ndims).rev() {
            rows = format!(
                "SELECT _s.g / array_length({v}, {dim}) AS g, jsonb_agg(_s.j ORDER BY _s.g) AS j \
                 FROM ({rows}) AS _s GROUP BY 1"
            );
        }
        branches.push_str(&format!(
            " WHEN {ndims} THEN (SELECT jsonb_agg(_s.j ORDER BY _s.g) FROM ({rows}) AS _s)"
        ));
    }
    // array_ndims is NULL for an empty array and for NULL.
    format!(
        "CASE WHEN {v} IS NULL THEN NULL ELSE CASE array_ndims({v}){branches} \
         ELSE '[]'::jsonb END END"
    )
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a standard SQL string literal (`standard_conforming_strings` on, see
/// [`SETTINGS`]).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The columns of a table with their types resolved through domains (a domain may be over a
/// domain, and an array's element may be a domain).
const COLUMNS_SQL: &str = "
WITH RECURSIVE cols AS (
    SELECT a.attname::text AS name, a.attnum AS number,
           format_type(a.atttypid, a.atttypmod) AS declared, a.atttypid AS ty
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
),
-- (start, a type under it): through domains, and from an array (under any domains) to its
-- element, which starts its own walk.
down(start, oid) AS (
    SELECT ty, ty FROM cols
    UNION
    SELECT x.start, x.oid FROM down d
    JOIN pg_type t ON t.oid = d.oid
    CROSS JOIN LATERAL (VALUES
        (d.start, CASE WHEN t.typtype = 'd' THEN t.typbasetype END),
        (t.typelem, CASE WHEN t.typtype <> 'd' AND t.typcategory = 'A' THEN t.typelem END)
    ) AS x(start, oid)
    WHERE x.oid IS NOT NULL AND x.oid <> 0
),
base AS (
    SELECT d.start, t.oid, t.typcategory, t.typelem FROM down d JOIN pg_type t ON t.oid = d.oid
    WHERE t.typtype <> 'd'
)
SELECT cols.name, cols.number, cols.declared,
       b.oid AS base_oid, format_type(b.oid, NULL) AS base_name,
       e.oid AS elem_oid, format_type(e.oid, NULL) AS elem_name
FROM cols
JOIN base b ON b.start = cols.ty
LEFT JOIN base e ON b.typcategory = 'A' AND b.typelem <> 0 AND e.start = b.typelem
ORDER BY cols.number";

#[cfg(test)]
mod tests;
