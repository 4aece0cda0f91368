//! The engine's store conformance suite against the `node:sqlite` store, in Node (no
//! `run_in_browser`: wasm-bindgen-test-runner runs this file with the `node` on `PATH`, which
//! must have `node:sqlite`: scripts/ci/browser.sh puts its pinned Node 24 first). Each case
//! gets a fresh file in a temporary directory, removed afterwards.
#![cfg(target_family = "wasm")]

use js_sys::Function;
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
