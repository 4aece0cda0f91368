//! The engine's store conformance suite against the `node:sqlite` store, in Node (no
//! `run_in_browser`: wasm-bindgen-test-runner runs this file with the `node` on `PATH`, which
//! must have `node:sqlite`: scripts/ci/browser.sh puts its pinned Node 24 first). Each case
//! gets a fresh file in a temporary directory, removed afterwards.
#![cfg(target_family = "wasm")]

use js_sys::Function;
use tether_sqlite::{Connection, Statement, Value};
use tether_wasm::node_sqlite::{DatabaseSync, NodeSqlite};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

/// A fresh temporary directory (Node's `fs.mkdtempSync`).
fn temp_dir() -> String {
    Function::new_no_args(
        "const fs = process.getBuiltinModule('node:fs'); \
         const os = process.getBuiltinModule('node:os'); \
         const path = process.getBuiltinModule('node:path'); \
         return fs.mkdtempSync(path.join(os.tmpdir(), 'tether-node-sqlite-'));",
    )
    .call0(&JsValue::NULL)
    .expect("mkdtemp")
    .as_string()
    .expect("a path")
}

fn remove_dir(dir: &str) {
    Function::new_with_args(
        "dir",
        "process.getBuiltinModule('node:fs').rmSync(dir, { recursive: true, force: true });",
    )
    .call1(&JsValue::NULL, &dir.into())
    .expect("rm -r");
}

fn open_db(path: &str) -> DatabaseSync {
    Function::new_with_args(
        "path",
        "const sqlite = process.getBuiltinModule('node:sqlite'); \
         if (!sqlite) throw new Error(`node:sqlite is missing from Node ${process.version}`); \
         return new sqlite.DatabaseSync(path);",
    )
    .call1(&JsValue::NULL, &path.into())
    .expect("a Node with node:sqlite (Node >= 22.13)")
    .unchecked_into()
}

macro_rules! case {
    ($name:ident) => {
        #[wasm_bindgen_test]
        async fn $name() {
            let dir = temp_dir();
            let path = format!("{dir}/replica.db");
            let store = NodeSqlite::open_store(open_db(&path), &path).expect("open the store");
            tether_engine::testing::$name(&store).await;
            store.with_connection(NodeSqlite::close);
            remove_dir(&dir);
        }
    };
}

tether_engine::for_each_conformance_case!(case);

#[wasm_bindgen_test]
fn a_file_of_another_application_is_refused_and_left_alone() {
    let dir = temp_dir();
    let path = format!("{dir}/other.db");
    let db = open_db(&path);
    Function::new_with_args("db", "db.exec('CREATE TABLE notes (body TEXT)');")
        .call1(&JsValue::NULL, &db)
        .expect("create a table");
    Function::new_with_args("db", "db.close();")
        .call1(&JsValue::NULL, &db)
        .expect("close");
    let e = NodeSqlite::open_store(open_db(&path), &path)
        .err()
        .expect("refused");
    assert_eq!(e.kind(), tether_engine::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("another application"), "{e}");
    remove_dir(&dir);
}

/// Every value a row's columns read back, in order.
fn table(conn: &NodeSqlite) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    conn.prepare("SELECT n, a, b FROM t ORDER BY n")
        .expect("prepare")
        .query(&[], &mut |r| {
            out.push(
                (0..3)
                    .map(|i| format!("{:?}", r.value(i).unwrap()))
                    .collect(),
            );
            Ok(())
        })
        .expect("query");
    out
}

#[wasm_bindgen_test]
fn rows_run_together_bind_each_value_as_a_run_of_its_own_does() {
    let dir = temp_dir();
    let conn = NodeSqlite::new(open_db(&format!("{dir}/rows.db")));
    conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, a, b)")
        .expect("create");
    // Text past ASCII (a surrogate pair, a byte-order mark), empty text and BLOBs, NULL,
    // integers JS numbers cannot hold, a real.
    let rows = [
        [
            Value::Integer(1),
            Value::Text("é, 😀 and \u{feff}!"),
            Value::Blob(&[0, 1, 255]),
        ],
        [Value::Integer(2), Value::Null, Value::Blob(&[])],
        [Value::Integer(3), Value::Real(1.5), Value::Text("")],
        [
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Text("plain"),
        ],
    ];
    let mut one_by_one = conn
        .prepare("INSERT INTO t (n, a, b) VALUES (?1, ?2, ?3)")
        .unwrap();
    for row in &rows {
        one_by_one.execute(row).expect("a row");
    }
    let expected = table(&conn);
    assert_eq!(expected[0][1], r#"Text("é, 😀 and \u{feff}!")"#);
    conn.execute_batch("DELETE FROM t").expect("delete");

    conn.prepare("INSERT INTO t (n, a, b) VALUES (?1, ?2, ?3)")
        .unwrap()
        .execute_rows(3, rows.as_flattened())
        .expect("the rows");
    assert_eq!(table(&conn), expected);
    NodeSqlite::close(&conn);
    remove_dir(&dir);
}

#[wasm_bindgen_test]
fn rows_run_together_stop_at_the_first_failure() {
    let dir = temp_dir();
    let conn = NodeSqlite::new(open_db(&format!("{dir}/rows.db")));
    conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, a, b)")
        .expect("create");
    let rows = [1, 1, 2].map(|n| [Value::Integer(n), Value::Null, Value::Null]);
    let e = conn
        .prepare("INSERT INTO t (n, a, b) VALUES (?1, ?2, ?3)")
        .unwrap()
        .execute_rows(3, rows.as_flattened())
        .expect_err("the second row breaks the key");
    let e = tether_engine::Error::from(e);
    assert_eq!(e.kind(), tether_engine::ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("UNIQUE"), "{e}");
    assert_eq!(
        table(&conn).len(),
        1,
        "the row after the failure is not run"
    );
    NodeSqlite::close(&conn);
    remove_dir(&dir);
}
