//! The JSON form of column values (placeholder until the full type mapping lands).

use sha2::{Digest as _, Sha256};

/// A column's type as the catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnType {
    pub(crate) name: String,
}

/// A source table's column: its name and type, in the table's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
}

/// The columns of `schema.table`, in attnum order; empty if the table does not exist.
pub(crate) async fn columns(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
    table: &str,
) -> Result<Vec<Column>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            ty: ColumnType { name: r.get(1) },
        })
        .collect())
}

/// A quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SQL expression of type jsonb for `alias`.column.
pub(crate) fn value_json(alias: &str, col: &Column) -> String {
    format!("to_jsonb({alias}.{})", quote(&col.name))
}

/// SQL expression of type jsonb: the object of the given columns of `alias`.
pub(crate) fn object_json(alias: &str, cols: &[Column]) -> String {
    if cols.is_empty() {
        return "'{}'::jsonb".into();
    }
    cols.chunks(50)
        .map(|chunk| {
            let args: Vec<String> = chunk
                .iter()
                .map(|c| format!("'{}', {}", c.name.replace('\'', "''"), value_json(alias, c)))
                .collect();
            format!("jsonb_build_object({})", args.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

/// Session settings the reading connection must have for the forms to be stable.
pub(crate) const SESSION_OPTIONS: &str =
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=1";

/// A fingerprint of the columns' names and types.
pub(crate) fn shape_fingerprint(cols: &[Column]) -> String {
    let mut h = Sha256::new();
    for c in cols {
        h.update(c.name.as_bytes());
        h.update([0]);
        h.update(c.ty.name.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
