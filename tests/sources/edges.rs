//! Declared sources at their edges: writes that must neither stop the consumer nor be lost
//! (found in the review of issue 20).

use super::*;

/// The declaration of table `app.table` as collection `table`, scoped by `organization_id`,
/// with `extra` lines.
fn declared(app: &str, table: &str, extra: &str) -> String {
    format!(
        "\n[[source]]\ntable = \"{app}.{table}\"\ncollection = \"{table}\"\n\
         scope = \"organization_id\"\n{extra}"
    )
}

/// A replica file in a temporary directory (kept while the first value lives), synced with
/// `url` for `org` and verified.
fn synced_replica(url: &str, org: &str, what: &str) -> (tempfile::TempDir, Replica) {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    sync_and_verify(&replica, url, org, what);
    (dir, replica)
}

/// Waits until the queue is empty and no pass runs, for at most `secs` seconds: false when
/// the consumer did not get there.
pub(crate) async fn drained(s: &Setup, want: i64, secs: u64) -> bool {
    let t = &s.tether_schema;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let row = s
            .admin
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {t}.source_changes),
                            (SELECT count(*) FROM {t}.sources WHERE pass IS NOT NULL),
                            (SELECT count(*) FROM {t}.sources)"
                ),
                &[],
            )
            .await;
        if let Ok(row) = row {
            let (queued, passes, sources): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if queued == 0 && passes == 0 && sources == want {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A scope column may hold any text; a value no scope can have (over the protocol's 256
/// bytes, here past what PostgreSQL can index) is refused for its row, and the consumer goes
/// on with every other change. It used to lock that "scope" to tombstone the row there, and
/// the failing insert of its `scopes` row stopped the consumer on every retry.
#[test]
fn a_row_whose_scope_no_scope_can_have_does_not_stop_the_consumer() {
    if !common::postgres("sources::a_row_whose_scope_no_scope_can_have") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let app = s.app_schema.clone();
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.tags (id int PRIMARY KEY, organization_id text, name text);
         GRANT SELECT, TRIGGER ON {app}.tags TO {}",
        s.roles[1]
    )))
    .unwrap();
    let more = declared(&app, "tags", "");
    let server = rt.block_on(start_server_with(&s, &[org], &more));
    let base = server.url();
    assert!(
        rt.block_on(drained(&s, 5, 30)),
        "the first pass did not end"
    );
    rt.block_on(s.app.batch_execute(&format!(
        "INSERT INTO {app}.tags VALUES (1, '{org}', 'before');
         INSERT INTO {app}.tags
           SELECT 2, string_agg(md5(g::text || random()::text), ''), 'huge scope'
           FROM generate_series(1, 250) g;
         INSERT INTO {app}.tags VALUES (3, '{org}', 'after');
         INSERT INTO {app}.objects (organization_id, name) VALUES ('{org}', 'another source');"
    )))
    .unwrap();
    assert!(
        rt.block_on(drained(&s, 5, 20)),
        "the consumer is stuck on a row whose scope no scope can have"
    );
    let (_dir, replica) = synced_replica(&base, org, "after a row with a huge scope");
    let ids: BTreeSet<String> = replica
        .scope(org)
        .unwrap()
        .list("tags", None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, BTreeSet::from(["1", "3"].map(String::from)));
    let scopes: i64 = rt
        .block_on(s.admin.query_one(
            &format!(
                "SELECT count(*) FROM {}.scopes WHERE length(scope) > 256",
                s.tether_schema
            ),
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(scopes, 0, "a scope row for a value no scope can have");
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// A migration that drops a source table and creates it again in one transaction (or swaps
/// in a rewritten copy) leaves a table of the same shape without the capture triggers, between
/// two of the consumer's checks. It must get them again and be sent whole: otherwise its
/// changes never reach a replica and records of its gone rows stay.
#[test]
fn a_table_dropped_and_created_again_in_one_transaction_is_captured_again() {
    if !common::postgres("sources::a_table_dropped_and_created_again") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let app = s.app_schema.clone();
    let server = rt.block_on(start_server(&s, &[org]));
    let base = server.url();
    let column = |name: &str| {
        format!(
            "INSERT INTO {app}.columns (organization_id, object_id, name, position)
               VALUES ('{org}', gen_random_uuid(), '{name}', 1);"
        )
    };
    rt.block_on(s.app.batch_execute(&column("old"))).unwrap();
    rt.block_on(s.settled());
    // The same DDL as SCHEMA's, in one transaction: the checks see the same shape.
    rt.block_on(s.app.batch_execute(&format!(
        "BEGIN;
         DROP TABLE {app}.columns;
         CREATE TABLE {app}.columns (
             id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
             organization_id uuid NOT NULL,
             object_id uuid NOT NULL,
             name text NOT NULL,
             position int NOT NULL,
             data_type text
         );
         GRANT SELECT, TRIGGER ON {app}.columns TO {};
         {}
         COMMIT;",
        s.roles[1],
        column("recreated")
    )))
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    rt.block_on(s.app.batch_execute(&column("written later")))
        .unwrap();
    // Given the consumer a check to notice, then the queue and any pass to drain.
    std::thread::sleep(Duration::from_millis(1500));
    rt.block_on(s.settled());
    let (_dir, replica) = synced_replica(&base, org, "after the table was created again");
    let names: BTreeSet<String> = replica
        .scope(org)
        .unwrap()
        .list("columns", None, 10)
        .unwrap()
        .iter()
        .map(|c| c.data["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["recreated", "written later"].map(String::from)),
        "the replica holds the table's rows"
    );
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// Installing the capture triggers takes a lock that waits for the table's open write
/// transactions, and every later writer queues behind it: with an application transaction
/// held open on a newly declared table, the application's other writes must not wait for
/// it (they waited up to the 10 s lock timeout, again at every retry).
#[test]
fn installing_the_triggers_does_not_stall_the_applications_writes() {
    if !common::postgres("sources::installing_the_triggers_does_not_stall") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let app = s.app_schema.clone();
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.events (id int PRIMARY KEY, organization_id uuid, name text);
         GRANT SELECT, TRIGGER ON {app}.events TO {}",
        s.roles[1]
    )))
    .unwrap();
    let held = rt.block_on(connect(&url_as(&url, &s.roles[0], "app")));
    rt.block_on(held.batch_execute(&format!(
        "BEGIN; INSERT INTO {app}.events VALUES (1, '{org}', 'held open')"
    )))
    .unwrap();
    let more = declared(&app, "events", "");
    let server = rt.block_on(start_server_with(&s, &[org], &more));
    let base = server.url();
    // The consumer is waiting for the table's lock.
    let waiting = || -> i64 {
        rt.block_on(s.admin.query_one(
            &format!(
                "SELECT count(*) FROM pg_locks WHERE relation = '{app}.events'::regclass \
                 AND NOT granted"
            ),
            &[],
        ))
        .unwrap()
        .get(0)
    };
    let start = Instant::now();
    while waiting() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    rt.block_on(s.app.batch_execute(&format!(
        "INSERT INTO {app}.events VALUES (2, '{org}', 'meanwhile')"
    )))
    .unwrap();
    let waited = started.elapsed();
    std::thread::sleep(Duration::from_millis(3000));
    rt.block_on(held.batch_execute("COMMIT")).unwrap();
    assert!(
        waited < Duration::from_millis(1000),
        "an application's insert waited {waited:?} behind the capture triggers' installation"
    );
    rt.block_on(s.settled_n(5));
    let (_dir, replica) = synced_replica(&base, org, "after the triggers were installed");
    let ids: BTreeSet<String> = replica
        .scope(org)
        .unwrap()
        .list("events", None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, BTreeSet::from(["1", "2"].map(String::from)));
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// An instance that starts applies Tether's schema, whose DDL locks `records` more strongly
/// as it goes (an index's share lock, then the exclusive lock of `ALTER TABLE` and of the
/// triggers), while the consumer of another instance reads `records` and then writes it in
/// one transaction. PostgreSQL found the cycle ("deadlock detected") and failed one of them:
/// the start or the step (the takeover test met both). The start now takes the strongest lock
/// first, so the two wait for each other in turn.
#[test]
fn an_instance_starts_while_another_reads_then_writes_records() {
    if !common::postgres("sources::an_instance_starts_while_another") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let first = rt.block_on(start_server(&s, &[org]));
    rt.block_on(s.settled());
    // A step of the first instance's consumer, held between its read and its write.
    let step = rt.block_on(connect(&s.tether_url));
    let t = &s.tether_schema;
    rt.block_on(step.batch_execute(&format!("BEGIN; SELECT count(*) FROM {t}.records")))
        .unwrap();
    let starting =
        rt.spawn({
            let (url, schema) = (s.tether_url.clone(), s.tether_schema.clone());
            async move {
                tether_server::storage::postgres::PgStorage::connect(&url, Some(&schema), 1).await
            }
        });
    let blocked = || -> i64 {
        rt.block_on(s.admin.query_one(
            &format!("SELECT count(*) FROM pg_locks WHERE relation = '{t}.records'::regclass AND NOT granted"),
            &[],
        ))
        .unwrap()
        .get(0)
    };
    let start = Instant::now();
    while blocked() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.block_on(step.batch_execute(&format!(
        "LOCK TABLE {t}.records IN ROW EXCLUSIVE MODE; COMMIT"
    )))
    .unwrap();
    let started = rt.block_on(starting).unwrap();
    assert!(
        started.is_ok(),
        "the second instance did not start: {:?}",
        started.err()
    );
    rt.block_on(async {
        first.shutdown().await;
        s.teardown().await;
    });
}

#[test]
fn a_bad_declaration_stops_the_server_naming_its_line() {
    if !common::postgres("sources::a_bad_declaration_stops_the_server") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let app = s.app_schema.clone();
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.parts (id uuid, organization_id uuid, PRIMARY KEY (id, organization_id))
           PARTITION BY LIST (organization_id);
         GRANT SELECT, TRIGGER ON {app}.parts TO {};
         CREATE TABLE {app}.nokey (organization_id uuid, name text);
         GRANT SELECT, TRIGGER ON {app}.nokey TO {}",
        s.roles[1], s.roles[1]
    )))
    .unwrap();
    let cases = [
        (format!("table = \"{app}.missing\"\ncollection = \"m\"\nscope = \"organization_id\""), "does not exist"),
        (format!("table = \"{app}.objects\"\ncollection = \"o\"\nscope = \"org\""), "scope column \"org\""),
        (format!("table = \"{app}.objects\"\ncollection = \"o\"\nscope = \"organization_id\"\nexclude = [\"nope\"]"), "excluded column \"nope\""),
        (format!("table = \"{app}.nokey\"\ncollection = \"n\"\nscope = \"organization_id\""), "no primary key"),
        (format!("table = \"{app}.parts\"\ncollection = \"p\"\nscope = \"organization_id\""), "partitioned"),
        (format!("table = \"{app}.objects\"\ncollection = \"o\"\nscope = \"organization_id\"\nkey = [\"name\"]"), "unique index"),
        (format!("table = \"{app}.objects\"\ncollection = \"o\"\nscope = \"organization_id\"\nexclude = [\"id\"]"), "key column of"),
    ];
    for (decl, words) in cases {
        let text = format!("# sources\n\n[[source]]\n{decl}\n");
        let mut config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            StorageConfig::Postgres {
                url: s.tether_url.clone(),
                schema: Some(s.tether_schema.clone()),
                pool_size: 2,
            },
            Tokens::default(),
        );
        config.sources = Some(Sources::parse(&text, "sources.toml").unwrap());
        let e = match rt.block_on(tether_server::serve(config)) {
            Ok(_) => panic!("{decl}: the server started"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("sources.toml:4: ") && e.contains(words),
            "{decl}: {e}"
        );
    }
    // And on SQLite storage, sources are refused.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        StorageConfig::Sqlite {
            path: dir.path().join("c.db"),
        },
        Tokens::default(),
    );
    config.sources = Some(Sources::parse(&sources_toml(&app), "s.toml").unwrap());
    let e = rt.block_on(tether_server::serve(config)).err().unwrap();
    assert!(e.to_string().contains("need PostgreSQL"), "{e}");
    rt.block_on(s.teardown());
}

#[test]
fn a_row_whose_value_cannot_convert_is_reported_and_the_others_sent() {
    if !common::postgres("sources::a_row_whose_value_cannot_convert") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let app = s.app_schema.clone();
    // `json` keeps text that `jsonb` refuses (`\u0000`): reading such a row as JSON fails.
    let insert = |id: i32, body: &str| {
        rt.block_on(s.app.execute(
            &format!("INSERT INTO {app}.notes VALUES ($1, $2::text::uuid, $3::text::json)"),
            &[&id, &org, &body],
        ))
        .unwrap();
    };
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.notes (id int PRIMARY KEY, organization_id uuid, body json);
         GRANT SELECT, TRIGGER ON {app}.notes TO {}",
        s.roles[1]
    )))
    .unwrap();
    insert(1, r#"{"text": "fine"}"#);
    insert(2, r#"{"text": "nul \u0000 here"}"#);
    insert(3, r#"{"text": "fine too"}"#);
    let more = declared(&app, "notes", "");
    let server = rt.block_on(start_server_with(&s, &[org], &more));
    let base = server.url();
    rt.block_on(async {
        s.settled_n(5).await;
    });
    insert(4, r#"{"text": "nul \u0000 again"}"#);
    insert(5, r#"{"text": "after"}"#);
    rt.block_on(s.settled_n(5));
    let (_dir, replica) = synced_replica(&base, org, "with unreadable rows");
    let ids: BTreeSet<String> = replica
        .scope(org)
        .unwrap()
        .list("notes", None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, BTreeSet::from(["1", "3", "5"].map(String::from)));
    let body = readyz(&base);
    assert_eq!(
        body["sources"]["collections"]["notes"]["state"],
        json!("live"),
        "{body}"
    );
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("tether_source_rows_refused_total{collection=\"notes\"} 2"),
        "{metrics}"
    );
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// A pass reads a table of big rows by bytes, not 5,000 rows at a time: 40 rows of 300 KB
/// (12 MB, three pages of about 4 MiB) all arrive.
#[test]
fn a_table_of_big_rows_is_sent_in_pages_bounded_by_bytes() {
    if !common::postgres("sources::a_table_of_big_rows_is_sent_in_pages") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000a";
    let app = s.app_schema.clone();
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.blobs (id int PRIMARY KEY, organization_id uuid, body text);
         GRANT SELECT, TRIGGER ON {app}.blobs TO {};
         INSERT INTO {app}.blobs SELECT g, '{org}', repeat(md5(g::text), 300000 / 32)
           FROM generate_series(1, 40) g;",
        s.roles[1]
    )))
    .unwrap();
    let more = declared(&app, "blobs", "");
    let server = rt.block_on(start_server_with(&s, &[org], &more));
    assert!(rt.block_on(drained(&s, 5, 60)), "the pass did not end");
    let (_dir, replica) = synced_replica(&server.url(), org, "big rows");
    assert_eq!(
        replica.scope(org).unwrap().count(Some("blobs")).unwrap(),
        40
    );
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// The consumer's queue step reads rows by bytes too: 40 rows of 300 KB inserted in one
/// transaction (12 MB, queued together, far under the step's 5,000 entries) are written in
/// steps of about 4 MiB, so in at least three transactions, oldest queued first (inserted from
/// 40 down to 1, whose keys sort "1", "10", ... as text), and all arrive.
#[test]
fn big_rows_queued_together_are_written_in_steps_bounded_by_bytes() {
    if !common::postgres("sources::big_rows_queued_together_are_written_in_steps") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000b";
    let (app, t) = (s.app_schema.clone(), s.tether_schema.clone());
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.blobs (id int PRIMARY KEY, organization_id uuid, body text);
         GRANT SELECT, TRIGGER ON {app}.blobs TO {};",
        s.roles[1]
    )))
    .unwrap();
    let more = declared(&app, "blobs", "");
    let server = rt.block_on(start_server_with(&s, &[org], &more));
    assert!(
        rt.block_on(drained(&s, 5, 60)),
        "the first pass did not end"
    );
    let inserts: String = (1..=40)
        .rev()
        .map(|g| {
            format!(
                "INSERT INTO {app}.blobs VALUES ({g}, '{org}', repeat(md5('{g}'), 300000 / 32));"
            )
        })
        .collect();
    rt.block_on(s.app.batch_execute(&format!("BEGIN; {inserts} COMMIT;")))
        .unwrap();
    assert!(rt.block_on(drained(&s, 5, 60)), "the queue was not drained");
    // Each step's transaction id, in the order the rows were inserted: never going back.
    let steps: Vec<(String, i64)> = rt
        .block_on(s.admin.query(
            &format!(
                "SELECT id, xmin::text::bigint FROM {t}.records WHERE collection = 'blobs'
                 ORDER BY id::int DESC"
            ),
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0].1 <= w[1].1),
        "rows written out of their queue order: {steps:?}"
    );
    let transactions: i64 = rt
        .block_on(s.admin.query_one(
            &format!(
                "SELECT count(DISTINCT xmin::text) FROM {t}.records WHERE collection = 'blobs'"
            ),
            &[],
        ))
        .unwrap()
        .get(0);
    assert!(
        transactions >= 3,
        "12 MB of queued rows written in {transactions} transaction(s)"
    );
    let (_dir, replica) = synced_replica(&server.url(), org, "big queued rows");
    assert_eq!(
        replica.scope(org).unwrap().count(Some("blobs")).unwrap(),
        40
    );
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}

/// An allow-list (`columns`) sends only its columns besides the key and the scope: a column
/// added to the table later reaches no replica, and a change to an unlisted column takes no
/// version (the row's record is unchanged).
#[test]
fn an_allow_list_sends_only_its_columns_not_one_added_later() {
    if !common::postgres("sources::an_allow_list_sends_only_its_columns") {
        return;
    }
    let url = common::pg_url().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup(&url));
    let org = "0a0a0a0a-0000-4000-8000-00000000000c";
    let (app, t) = (s.app_schema.clone(), s.tether_schema.clone());
    rt.block_on(s.app.batch_execute(&format!(
        "CREATE TABLE {app}.people (id int PRIMARY KEY, organization_id uuid, name text,
           salary int);
         GRANT SELECT, TRIGGER ON {app}.people TO {};
         INSERT INTO {app}.people VALUES (1, '{org}', 'ada', 10), (2, '{org}', 'bob', 20);",
        s.roles[1]
    )))
    .unwrap();
    let more = declared(&app, "people", "columns = [\"name\"]\n");
    let server = rt.block_on(start_server_with(&s, &[org], &more));
    assert!(rt.block_on(drained(&s, 5, 60)), "the pass did not end");
    let version_of_1 = || -> i64 {
        rt.block_on(s.admin.query_one(
            &format!("SELECT version FROM {t}.records WHERE collection = 'people' AND id = '1'"),
            &[],
        ))
        .unwrap()
        .get(0)
    };
    let before = version_of_1();
    rt.block_on(s.app.batch_execute(&format!(
        "ALTER TABLE {app}.people ADD COLUMN ssn text;
         UPDATE {app}.people SET ssn = 'secret', salary = salary + 1;
         UPDATE {app}.people SET name = 'bo' WHERE id = 2;"
    )))
    .unwrap();
    assert!(rt.block_on(drained(&s, 5, 60)), "the queue was not drained");
    assert_eq!(
        version_of_1(),
        before,
        "an unlisted column's change took a version"
    );
    let (_dir, replica) = synced_replica(&server.url(), org, "allow-list");
    let records = replica
        .scope(org)
        .unwrap()
        .list("people", None, 10)
        .unwrap();
    let got: Vec<(String, serde_json::Value)> = records
        .iter()
        .map(|r| (r.id.clone(), serde_json::Value::Object(r.data.clone())))
        .collect();
    assert_eq!(
        got,
        [
            (
                "1".to_string(),
                json!({"id": 1, "organization_id": org, "name": "ada"})
            ),
            (
                "2".to_string(),
                json!({"id": 2, "organization_id": org, "name": "bo"})
            ),
        ]
    );
    rt.block_on(async {
        server.shutdown().await;
        s.teardown().await;
    });
}
