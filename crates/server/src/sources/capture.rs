//! Change capture: statement triggers on a source table that queue the keys each statement
//! touched in `source_changes`, for the consumer to read the rows again.
//!
//! Why triggers and dirty keys: a trigger needs only the `TRIGGER` privilege on the table
//! (every managed PostgreSQL grants it; logical decoding needs `wal_level = logical`, the
//! `REPLICATION` attribute and table ownership for a publication), and queueing a key is one
//! narrow insert per statement with no lock shared between writers (the sequence of
//! `source_changes` is not transactional), so the application's writers never wait on each
//! other because of Tether. Order and completeness come from the consumer, not the queue: it
//! deletes what it processed instead of keeping a cursor, so a transaction that commits late
//! is read whenever it becomes visible, and it reads the rows' current values, so the order of
//! queue entries does not matter. Versions are then assigned under the scope lock as for any
//! write (docs/server.md, "Declared sources").

use sha2::{Digest as _, Sha256};
use tokio_postgres::Transaction;

use super::catalog::{ident, literal, Plan};
use super::values;

/// Settings the capture functions run under: the key and scope texts they queue must be the
/// ones the consumer computes in its own session (a timestamptz key prints in the session's
/// time zone: [`values::SETTINGS`]), and a `SECURITY DEFINER` function must not resolve names
/// through the caller's search path.
fn function_settings() -> String {
    let mut s = String::from("SET search_path = pg_catalog, pg_temp");
    for (name, value) in values::SETTINGS {
        s.push_str(&format!(" SET {name} = {}", literal(value)));
    }
    s
}

/// How long creating a trigger waits for the table's lock. It waits for the table's open
/// write transactions, and every writer that comes after waits behind it, so the wait is a
/// stall of the application's writes: kept short, and the source (reported broken meanwhile)
/// tries again at the next check, every second. It was 10 s, which held an application's
/// inserts 10 s at each try while one of its transactions stayed open.
const TRIGGER_LOCK_TIMEOUT_MS: u32 = 200;

/// The four statement triggers of a source: (suffix, event, transition tables).
const TRIGGERS: [(&str, &str, &str); 4] = [
    ("ins", "INSERT", "REFERENCING NEW TABLE AS tether_new"),
    (
        "upd",
        "UPDATE",
        "REFERENCING OLD TABLE AS tether_old NEW TABLE AS tether_new",
    ),
    ("del", "DELETE", "REFERENCING OLD TABLE AS tether_old"),
    ("trunc", "TRUNCATE", ""),
];

/// The short name shared by a source's triggers and functions: unique per Tether schema and
/// collection, within PostgreSQL's 63-byte names.
pub(crate) fn tag(schema: &str, collection: &str) -> String {
    let h = Sha256::digest(format!("{schema}\0{collection}").as_bytes());
    let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("tether_{hex}")
}

/// Creates (or replaces) the capture functions of `plan` in Tether's `schema`, and its
/// triggers on the table if they are missing. Replacing a function takes no lock on the
/// application's table; creating a trigger does (briefly), so it is done once.
pub(crate) async fn install(
    tx: &Transaction<'_>,
    schema: &str,
    plan: &Plan,
) -> Result<(), tokio_postgres::Error> {
    let tag = tag(schema, &plan.source.collection);
    let queue = format!("{}.source_changes", ident(schema));
    let coll = literal(&plan.source.collection);
    let (key_new, scope_new) = (plan.key_text("n"), plan.scope_text("n"));
    let (key_old, scope_old) = (plan.key_text("o"), plan.scope_text("o"));
    let bodies = [
        format!(
            "INSERT INTO {queue} (collection, key, scope)
             SELECT {coll}, {key_new}, {scope_new} FROM tether_new n"
        ),
        // An update that moves a row (another scope, another key) queues both; one that does
        // not queues the key once.
        format!(
            "INSERT INTO {queue} (collection, key, scope)
             SELECT {coll}, k, s FROM (SELECT {key_new} AS k, {scope_new} AS s FROM tether_new n
               UNION SELECT {key_old}, {scope_old} FROM tether_old o) AS u"
        ),
        format!(
            "INSERT INTO {queue} (collection, key, scope)
             SELECT {coll}, {key_old}, {scope_old} FROM tether_old o"
        ),
        format!("INSERT INTO {queue} (collection, key, scope) VALUES ({coll}, NULL, NULL)"),
    ];
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{TRIGGER_LOCK_TIMEOUT_MS}ms'"
    ))
    .await?;
    let settings = function_settings();
    for ((suffix, _, _), body) in TRIGGERS.iter().zip(&bodies) {
        let function = format!("{}.{}", ident(schema), ident(&format!("{tag}_{suffix}")));
        tx.batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
             SECURITY DEFINER {settings} AS $tether_capture$
             BEGIN
                 {body};
                 RETURN NULL;
             END $tether_capture$"
        ))
        .await?;
    }
    let table = plan.table();
    let present: Vec<String> = tx
        .query(
            &format!(
                "SELECT tgname::text FROM pg_trigger WHERE tgrelid = {}::regclass",
                literal(&table)
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (suffix, event, transition) in TRIGGERS {
        let name = format!("{tag}_{suffix}");
        if present.contains(&name) {
            continue;
        }
        let function = format!("{}.{}", ident(schema), ident(&name));
        tx.batch_execute(&format!(
            "CREATE TRIGGER {} AFTER {event} ON {table} {transition}
             FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            ident(&name)
        ))
        .await?;
    }
    Ok(())
}

/// Makes the capture functions of a source that is no longer declared do nothing. Its
/// triggers stay on the table: dropping a trigger takes the table's owner, which the server's
/// role need not be; the returned statements are what an owner can run to remove them.
pub(crate) async fn disable(
    tx: &Transaction<'_>,
    schema: &str,
    collection: &str,
    relation: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let tag = tag(schema, collection);
    let mut drops = Vec::new();
    for (suffix, _, _) in TRIGGERS {
        let name = format!("{tag}_{suffix}");
        let function = format!("{}.{}", ident(schema), ident(&name));
        let exists: bool = tx
            .query_one(
                "SELECT to_regprocedure($1) IS NOT NULL",
                &[&format!("{function}()")],
            )
            .await?
            .get(0);
        if exists {
            tx.batch_execute(&format!(
                "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
                 AS $tether_capture$ BEGIN RETURN NULL; END $tether_capture$"
            ))
            .await?;
        }
        drops.push(format!(
            "DROP TRIGGER IF EXISTS {} ON {relation};",
            ident(&name)
        ));
    }
    Ok(drops)
}
