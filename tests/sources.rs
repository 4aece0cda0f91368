//! Declared sources end to end: the seeds' catalog schema in a real PostgreSQL, owned and
//! written by an application role with plain SQL, mirrored by a server whose role is not a
//! superuser (`Config::sources`, what `tether serve --sources` sets), synced into native and
//! Node replicas of two organizations that must converge with `verify` matching, hold no
//! excluded column and no row of the other organization.

#[path = "../crates/server/tests/common/mod.rs"]
mod common;
#[path = "sources/edges.rs"]
mod edges;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_engine::SyncOptions;
use tether_native::Replica;
use tether_server::sources::Sources;
use tether_server::{Config, Server, StorageConfig, Tokens};
use tokio_postgres::{Client, NoTls};

const TOKEN: &str = "catalog-reader";
/// Advisory lock key under which tests create and drop their roles (see `setup`).
const ROLES_LOCK: i64 = 7_412_001;

/// The seeds' catalog, as an application would create it (uuid keys, `organization_id`,
/// timestamptz, text[], jsonb, numeric, an enum, a composite key on `lineage`).
const SCHEMA: &str = r#"
CREATE TYPE object_kind AS ENUM ('table', 'view', 'model');
CREATE TABLE repositories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE objects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    repository_id uuid,
    name text NOT NULL,
    kind object_kind NOT NULL DEFAULT 'table',
    tags text[] NOT NULL DEFAULT '{}',
    props jsonb,
    row_count numeric,
    size_bytes bigint,
    internal_notes text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE columns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    object_id uuid NOT NULL,
    name text NOT NULL,
    position int NOT NULL,
    data_type text
);
CREATE TABLE lineage (
    source_id uuid NOT NULL,
    target_id uuid NOT NULL,
    organization_id uuid NOT NULL,
    kind text,
    confidence float8,
    PRIMARY KEY (source_id, target_id)
);
"#;

fn sources_toml(app: &str) -> String {
    format!(
        r#"
[[source]]
table = "{app}.repositories"
collection = "repositories"
scope = "organization_id"

[[source]]
table = "{app}.objects"
collection = "objects"
scope = "organization_id"
exclude = ["internal_notes"]

[[source]]
table = "{app}.columns"
collection = "columns"
scope = "organization_id"

[[source]]
table = "{app}.lineage"
collection = "lineage"
scope = "organization_id"
"#
    )
}

/// Roles, schemas and the URLs of both roles, removed on drop.
struct Setup {
    admin: Client,
    app: Client,
    app_schema: String,
    tether_schema: String,
    tether_url: String,
    roles: [String; 2],
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// `url` with another user and password.
fn url_as(url: &str, user: &str, password: &str) -> String {
    let c: tokio_postgres::Config = url.parse().unwrap();
    let host = match &c.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("a TCP host is expected, not {other:?}"),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}:{password}@{host}:{port}/{db}")
}

async fn setup(url: &str) -> Setup {
    let admin = connect(url).await;
    let suffix = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (app_role, tether_role) = (format!("app_{suffix}"), format!("tether_{suffix}"));
    let (app_schema, tether_schema) = (format!("meta_{suffix}"), format!("tether_{suffix}"));
    let db: String = admin
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    // Two ordinary roles, as on a managed PostgreSQL: the application owns its tables; the
    // server's role may only read them, add triggers, and create its own schema. The grant on
    // the database updates its catalog row, which two tests at once fail on ("tuple
    // concurrently updated"): a lock makes them take turns.
    admin
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({ROLES_LOCK});
             CREATE ROLE {app_role} LOGIN PASSWORD 'app' NOSUPERUSER NOBYPASSRLS;
             CREATE ROLE {tether_role} LOGIN PASSWORD 'tether' NOSUPERUSER NOBYPASSRLS
                 NOREPLICATION NOCREATEROLE NOCREATEDB;
             GRANT CREATE, CONNECT ON DATABASE {db} TO {tether_role};
             CREATE SCHEMA {app_schema} AUTHORIZATION {app_role}; COMMIT;"
        ))
        .await
        .unwrap();
    let app = connect(&url_as(url, &app_role, "app")).await;
    app.batch_execute(&format!(
        "SET search_path = {app_schema}; {SCHEMA}
         GRANT USAGE ON SCHEMA {app_schema} TO {tether_role};
         GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA {app_schema} TO {tether_role};"
    ))
    .await
    .unwrap();
    let is_super: bool = admin
        .query_one(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&tether_role],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!is_super, "the server's role must be an ordinary one");
    Setup {
        admin,
        app,
        tether_url: url_as(url, &tether_role, "tether"),
        app_schema,
        tether_schema,
        roles: [app_role, tether_role],
    }
}

impl Setup {
    async fn teardown(self) {
        let [app_role, tether_role] = &self.roles;
        self.admin
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({ROLES_LOCK});
                 DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE;
                 DROP OWNED BY {app_role}, {tether_role}; DROP ROLE {app_role}; DROP ROLE {tether_role};
                 COMMIT;",
                self.app_schema, self.tether_schema
            ))
            .await
            .unwrap();
    }

    /// Waits until the consumer has handled every committed change and no pass runs.
    async fn settled(&self) {
        self.settled_n(4).await
    }

    /// [`Setup::settled`] with `sources` declared.
    async fn settled_n(&self, want: i64) {
        assert!(
            edges::drained(self, want, 90).await,
            "the consumer did not catch up"
        );
    }
}

/// The record ids each collection should hold for `org`, from the application's tables.
async fn expected(app: &Client, schema: &str, org: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    for (collection, id) in [
        ("repositories", "id::text"),
        ("objects", "id::text"),
        ("columns", "id::text"),
        (
            "lineage",
            "jsonb_build_array(source_id::text, target_id::text)::text",
        ),
    ] {
        let rows = app
            .query(
                &format!(
                    "SELECT {id} FROM {schema}.{collection} WHERE organization_id = $1::text::uuid"
                ),
                &[&org],
            )
            .await
            .unwrap();
        out.push((
            collection.to_string(),
            rows.iter().map(|r| r.get(0)).collect(),
        ));
    }
    out
}

/// The replica of `org` holds exactly the application's rows of `org`, without the excluded
/// column, and nothing of another organization.
fn check(replica: &Replica, org: &str, want: &[(String, BTreeSet<String>)], what: &str) {
    let scope = replica.scope(org).unwrap();
    for (collection, ids) in want {
        let records = scope.list(collection, None, 100_000).unwrap();
        let got: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
        assert_eq!(&got, ids, "{what}: {collection} of {org}");
        for r in &records {
            assert_eq!(
                r.data.get("organization_id"),
                Some(&json!(org)),
                "{what}: {collection}/{} of another organization",
                r.id
            );
            assert!(
                !r.data.contains_key("internal_notes"),
                "{what}: the excluded column reached a replica: {collection}/{}",
                r.id
            );
        }
    }
}

fn sync_and_verify(replica: &Replica, url: &str, org: &str, what: &str) {
    let remote = support::remote(url, TOKEN);
    let scope = replica.scope(org).unwrap();
    scope.sync(&remote, SyncOptions::default()).unwrap();
    let v = scope.verify(&remote, false).unwrap();
    assert!(v.matched, "{what}: verify of {org}: {v:?}");
}

async fn start_server(s: &Setup, orgs: &[&str]) -> Server {
    start_server_with(s, orgs, "").await
}

/// A server with the catalog's sources and the declarations of `more`.
async fn start_server_with(s: &Setup, orgs: &[&str], more: &str) -> Server {
    let text = sources_toml(&s.app_schema) + more;
    let sources = Sources::parse(&text, "sources.toml").unwrap();
    let mut config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        StorageConfig::Postgres {
            url: s.tether_url.clone(),
            schema: Some(s.tether_schema.clone()),
            pool_size: 4,
        },
        Tokens::default().grant(TOKEN, orgs, false),
    );
    config.sources = Some(sources);
    tether_server::serve(config).await.unwrap()
}

#[test]
fn the_catalog_syncs_to_native_and_node_replicas_of_two_organizations() {
    if !common::postgres("sources::the_catalog_syncs_to_native_and_node_replicas") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let app_schema = s.app_schema.clone();
    let (a, b) = (
        "0a0a0a0a-0000-4000-8000-00000000000a",
        "0b0b0b0b-0000-4000-8000-00000000000b",
    );
    // Rows that exist before the source is declared: backfilled.
    rt.block_on(s.app.batch_execute(&format!(
        "SET search_path = {app_schema};
         INSERT INTO repositories (organization_id, name)
           SELECT o::uuid, 'repo-' || g FROM generate_series(1, 3) g,
             unnest(ARRAY['{a}', '{b}']) o;
         INSERT INTO objects (organization_id, repository_id, name, kind, tags, props, row_count,
             size_bytes, internal_notes)
           SELECT r.organization_id, r.id, r.name || '.obj' || g,
             (ARRAY['table', 'view', 'model'])[1 + g % 3]::object_kind, ARRAY['t' || g % 4, 'pii'],
             jsonb_build_object('owner', 'team-' || g % 5, 'nested', jsonb_build_object('g', g)),
             12345678901234567890.125 + g, 9007199254740993 + g, 'secret ' || g
           FROM repositories r, generate_series(1, 40) g;
         INSERT INTO columns (organization_id, object_id, name, position, data_type)
           SELECT o.organization_id, o.id, 'col' || p, p, 'text' FROM objects o,
             generate_series(1, 3) p;
         INSERT INTO lineage (source_id, target_id, organization_id, kind, confidence)
           SELECT x.id, y.id, x.organization_id, 'derives', 0.5 FROM objects x JOIN objects y
             ON x.organization_id = y.organization_id AND x.repository_id = y.repository_id
             AND y.name = replace(x.name, '.obj1', '.obj2') AND x.name LIKE '%.obj1_';"
    )))
    .unwrap();
    let server = rt.block_on(start_server(&s, &[a, b]));
    let base = server.url();
    rt.block_on(s.settled());

    let dir = tempfile::tempdir().unwrap();
    let ra = Replica::open(dir.path().join("a.db")).unwrap();
    let rb = Replica::open(dir.path().join("b.db")).unwrap();
    for (r, org) in [(&ra, a), (&rb, b)] {
        sync_and_verify(r, &base, org, "after the backfill");
        let want = rt.block_on(expected(&s.app, &app_schema, org));
        assert!(want.iter().all(|(_, ids)| !ids.is_empty()));
        check(r, org, &want, "after the backfill");
    }
    let o = ra
        .scope(a)
        .unwrap()
        .list("objects", None, 1)
        .unwrap()
        .remove(0);
    assert!(o.data["tags"].as_array().is_some_and(|t| t.len() == 2));
    assert!(o.data["props"]["nested"]["g"].is_number(), "{:?}", o.data);

    // The application writes: single rows, a multi-row transaction, concurrent writers, moves
    // between organizations, deletes, a key change; and one transaction held open meanwhile.
    let held = rt.block_on(connect(&url_as(&url, &s.roles[0], "app")));
    rt.block_on(held.batch_execute(&format!(
        "BEGIN; INSERT INTO {app_schema}.objects (organization_id, name) VALUES ('{a}', 'late')"
    )))
    .unwrap();
    rt.block_on(async {
        let app = &s.app;
        for i in 0..10 {
            app.execute(
                &format!(
                    "INSERT INTO {app_schema}.objects (organization_id, name, size_bytes)
                     VALUES ($1::text::uuid, $2, $3)"
                ),
                &[&if i % 2 == 0 { a } else { b }, &format!("single{i}"), &(i as i64)],
            )
            .await
            .unwrap();
        }
        app.batch_execute(&format!(
            "SET search_path = {app_schema};
             BEGIN;
             WITH o AS (INSERT INTO objects (organization_id, name) VALUES ('{b}', 'multi')
                        RETURNING id)
             INSERT INTO columns (organization_id, object_id, name, position)
               SELECT '{b}', o.id, 'c' || p, p FROM o, generate_series(1, 5) p;
             UPDATE objects SET tags = tags || ARRAY['renamed'], name = name || '!'
               WHERE name LIKE 'repo-1.obj1%';
             COMMIT;
             UPDATE objects SET organization_id = '{b}' WHERE name LIKE 'repo-2.obj2_' AND organization_id = '{a}';
             UPDATE columns c SET organization_id = o.organization_id FROM objects o
               WHERE c.object_id = o.id AND c.organization_id <> o.organization_id;
             DELETE FROM columns WHERE position = 3 AND name = 'col3' AND organization_id = '{a}'
               AND object_id IN (SELECT id FROM objects WHERE name LIKE 'repo-3.%');
             UPDATE lineage SET confidence = 0.9 WHERE organization_id = '{a}';
             UPDATE lineage SET target_id = source_id
               WHERE (source_id, target_id) IN (SELECT source_id, target_id FROM lineage LIMIT 1);"
        ))
        .await
        .unwrap();
        // Four concurrent writers, each on its own connection.
        let writers: Vec<_> = (0..4i32)
            .map(|w| {
                let url = url_as(&url, &s.roles[0], "app");
                let schema = app_schema.clone();
                let org = if w % 2 == 0 { a } else { b };
                tokio::spawn(async move {
                    let c = connect(&url).await;
                    for i in 0..25 {
                        c.execute(
                            &format!(
                                "INSERT INTO {schema}.objects (organization_id, name, props)
                                 VALUES ($1::text::uuid, $2, jsonb_build_object('w', $3::int))"
                            ),
                            &[&org, &format!("w{w}-{i}"), &w],
                        )
                        .await
                        .unwrap();
                        c.execute(
                            &format!(
                                "UPDATE {schema}.objects SET size_bytes = coalesce(size_bytes, 0) + 1
                                 WHERE name = $1"
                            ),
                            &[&format!("w{w}-{}", i / 2)],
                        )
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        s.settled().await;
    });
    // The held transaction has not committed: its row is nowhere, and the replicas match.
    for (r, org) in [(&ra, a), (&rb, b)] {
        sync_and_verify(r, &base, org, "with a transaction held open");
        let want = rt.block_on(expected(&s.app, &app_schema, org));
        check(r, org, &want, "with a transaction held open");
    }
    assert!(ra
        .scope(a)
        .unwrap()
        .list("objects", None, 100_000)
        .unwrap()
        .iter()
        .all(|o| o.data["name"] != json!("late")));
    // It commits after later transactions did: the replicas' cursors are past those, and it
    // still arrives.
    rt.block_on(async {
        held.batch_execute("COMMIT").await.unwrap();
        s.settled().await;
    });
    sync_and_verify(&ra, &base, a, "after the late commit");
    assert!(
        ra.scope(a)
            .unwrap()
            .list("objects", None, 100_000)
            .unwrap()
            .iter()
            .any(|o| o.data["name"] == json!("late")),
        "a late commit was skipped"
    );

    // A replica's edit of a source collection is refused (journaled, read_only); its own
    // annotations, in a collection of Tether's, sync up.
    let scope_a = ra.scope(a).unwrap();
    let victim = scope_a.list("objects", None, 1).unwrap().remove(0);
    let mut edited = victim.data.clone();
    edited.insert("name".into(), json!("edited locally"));
    scope_a
        .put("objects", &victim.id, serde_json::Value::Object(edited))
        .unwrap();
    scope_a
        .put(
            "annotations",
            &victim.id,
            json!({"note": "looks stale", "object": victim.id}),
        )
        .unwrap();
    sync_and_verify(&ra, &base, a, "after local edits");
    let conflicts = scope_a.conflicts().unwrap();
    assert!(
        conflicts.iter().any(|c| c.record_id == victim.id
            && c.collection == "objects"
            && c.reason.as_deref() == Some("read_only")),
        "{conflicts:?}"
    );
    assert_eq!(
        scope_a.get("objects", &victim.id).unwrap().unwrap().data,
        victim.data,
        "the cloud's record is back"
    );
    assert!(scope_a.get("annotations", &victim.id).unwrap().is_some());

    // TRUNCATE, rows again, and a new column: every object is sent again with it.
    rt.block_on(async {
        s.app
            .batch_execute(&format!(
                "SET search_path = {app_schema};
                 TRUNCATE lineage;
                 INSERT INTO lineage (source_id, target_id, organization_id, kind)
                   SELECT x.id, x.id, x.organization_id, 'self' FROM objects x
                   WHERE x.name LIKE 'single%';
                 ALTER TABLE objects ADD COLUMN owner text NOT NULL DEFAULT 'data-team';
                 UPDATE objects SET owner = 'platform' WHERE name = 'multi';
                 ALTER TABLE columns DROP COLUMN data_type;
                 ALTER TABLE repositories ALTER COLUMN name TYPE varchar(200);
                 ALTER TABLE lineage ALTER COLUMN confidence TYPE numeric;
                 UPDATE lineage SET confidence = 0.25;"
            ))
            .await
            .unwrap();
        // The new shape is seen within a second; then the table is sent again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.settled().await;
    });
    for (r, org) in [(&ra, a), (&rb, b)] {
        sync_and_verify(r, &base, org, "after TRUNCATE and ADD COLUMN");
        let want = rt.block_on(expected(&s.app, &app_schema, org));
        check(r, org, &want, "after TRUNCATE and ADD COLUMN");
        let objects = r
            .scope(org)
            .unwrap()
            .list("objects", None, 100_000)
            .unwrap();
        assert!(
            objects.iter().all(|o| o.data.contains_key("owner")),
            "an object without the new column: a stale shape"
        );
        let scope = r.scope(org).unwrap();
        assert!(
            scope
                .list("columns", None, 100_000)
                .unwrap()
                .iter()
                .all(|c| !c.data.contains_key("data_type")),
            "a column record still has the dropped column"
        );
        // numeric is a string (exact), where float8 was a number.
        assert!(scope
            .list("lineage", None, 100_000)
            .unwrap()
            .iter()
            .all(|l| l.data["confidence"] == json!("0.25")));
    }
    assert!(rb
        .scope(b)
        .unwrap()
        .list("objects", None, 100_000)
        .unwrap()
        .iter()
        .any(|o| o.data["name"] == json!("multi") && o.data["owner"] == json!("platform")));

    node_replica(
        &base,
        a,
        dir.path(),
        &rt.block_on(expected(&s.app, &app_schema, a)),
    );

    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// The Node package's replica (node:sqlite) of `org` converges too: synced and verified by
/// Node 24, then read back through the native replica (the same file format).
fn node_replica(url: &str, org: &str, dir: &Path, want: &[(String, BTreeSet<String>)]) {
    let node = std::env::var("TETHER_NODE24")
        .ok()
        .filter(|n| !n.is_empty());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = root.join("js/pkg/tether_wasm_node_bg.wasm").exists();
    let Some(node) = node.filter(|_| built) else {
        let why =
            "the Node replica part needs TETHER_NODE24 (scripts/ci/setup.sh's ensure_node24) \
                   and the npm package built (js/build.sh)";
        if std::env::var("CI").is_ok_and(|v| v == "1" || v == "true")
            || std::env::var("TETHER_REQUIRE_NODE24").is_ok_and(|v| v == "1")
        {
            panic!("{why}");
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED the Node replica: {why}");
        return;
    };
    let file = dir.join("node.db");
    let out = std::process::Command::new(node)
        .arg(root.join("tests/support/node-sync.mjs"))
        .args([file.to_str().unwrap(), url, TOKEN, org])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["matched"], json!(true), "{report}");
    let replica = Replica::open(&file).unwrap();
    check(&replica, org, want, "the Node replica");
}

/// A server's `/readyz` body.
fn readyz(url: &str) -> serde_json::Value {
    let body = ureq::get(&format!("{url}/readyz"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Waits until `f` holds, for at most `secs` seconds.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(secs), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_instance_consumes_and_another_takes_over_when_it_stops() {
    if !common::postgres("sources::one_instance_consumes_and_another_takes_over") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let insert = |name: &str| {
        rt.block_on(s.app.execute(
            &format!(
                "INSERT INTO {}.objects (organization_id, name) VALUES ($1::text::uuid, $2)",
                s.app_schema
            ),
            &[&org, &name],
        ))
        .unwrap();
    };
    insert("before");
    let first = rt.block_on(start_server(&s, &[org]));
    let second = rt.block_on(start_server(&s, &[org]));
    let (u1, u2) = (first.url(), second.url());
    eventually(10, "one consumer", || {
        readyz(&u1)["sources"]["consumer"] == json!(true)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        readyz(&u2)["sources"]["consumer"],
        json!(false),
        "two consumers at once"
    );
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    insert("while the first consumes");
    rt.block_on(s.settled());
    sync_and_verify(
        &replica,
        &u2,
        org,
        "through the instance that does not consume",
    );
    let names = |r: &Replica| -> BTreeSet<String> {
        r.scope(org)
            .unwrap()
            .list("objects", None, 1000)
            .unwrap()
            .iter()
            .map(|o| o.data["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(&replica).contains("while the first consumes"));
    // The consumer stops (its connection closes, as when its process dies): the other takes
    // over, and changes keep flowing.
    rt.block_on(first.shutdown());
    eventually(10, "the second instance takes over", || {
        readyz(&u2)["sources"]["consumer"] == json!(true)
    });
    insert("after the takeover");
    rt.block_on(s.settled());
    sync_and_verify(&replica, &u2, org, "after the takeover");
    assert!(names(&replica).contains("after the takeover"));
    rt.block_on(async {
        second.shutdown().await;
        s.teardown().await;
    });
}

#[test]
fn a_table_renamed_is_reported_and_resumes_when_it_is_back() {
    if !common::postgres("sources::a_table_renamed_is_reported") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let server = rt.block_on(start_server(&s, &[org]));
    let base = server.url();
    let state = |c: &str| readyz(&base)["sources"]["collections"][c]["state"].clone();
    eventually(10, "live", || {
        ["repositories", "objects", "columns", "lineage"]
            .iter()
            .all(|c| state(c) == json!("live"))
    });
    let app = &s.app_schema;
    rt.block_on(
        s.app
            .batch_execute(&format!("ALTER TABLE {app}.columns RENAME TO columns_old")),
    )
    .unwrap();
    eventually(10, "the renamed table is reported", || {
        state("columns") == json!("broken")
    });
    let body = readyz(&base);
    assert_eq!(
        body["status"],
        json!("ready"),
        "the other collections serve: {body}"
    );
    assert!(
        body["sources"]["collections"]["columns"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist")),
        "{body}"
    );
    assert_eq!(
        body["sources"]["collections"]["objects"]["state"],
        json!("live")
    );
    // Back under its name, with a row written meanwhile: it resumes and the row arrives.
    rt.block_on(s.app.batch_execute(&format!(
        "INSERT INTO {app}.columns_old (organization_id, object_id, name, position)
           VALUES ('{org}', gen_random_uuid(), 'written while renamed', 1);
         ALTER TABLE {app}.columns_old RENAME TO columns;"
    )))
    .unwrap();
    eventually(10, "live again", || state("columns") == json!("live"));
    rt.block_on(s.settled());
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    sync_and_verify(&replica, &base, org, "after the rename back");
    let cols = replica
        .scope(org)
        .unwrap()
        .list("columns", None, 10)
        .unwrap();
    assert!(cols
        .iter()
        .any(|c| c.data["name"] == json!("written while renamed")));
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}
