//! The replica store over Node's `node:sqlite` ([`NodeSqliteStore`]): the shared SQLite store
//! of `tether-sqlite` (the same SQL, schema and file format as the native replica) on a
//! `DatabaseSync` handed in from JavaScript.
//!
//! `node:sqlite` is synchronous, so each store operation stays one SQLite transaction that
//! runs to completion inside one call, with no JS promise awaited in the middle. The JS side
//! opens the database (`new DatabaseSync(path)`, Node >= 22.5), so this crate never imports
//! `node:sqlite` itself and its browser build stays free of it.
//!
//! Values cross as `node:sqlite` binds and returns them: integers are bound and read as
//! `BigInt` (bound so that SQLite stores and compares them as INTEGER, never REAL; read so that
//! versions up to `i64::MAX`, which the engine accepts, come back exact: a JS number holds
//! integers only up to 2^53, and `node:sqlite` refuses to read a larger one as a number), text
//! as strings, BLOBs as `Uint8Array`s. Rows are read through `iterate()`, so a scan of a large
//! scope (verify) never holds all its rows at once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use js_sys::{Array, Object, Reflect, Uint8Array};
use tether_engine::Error;
use tether_sqlite::{DbFailure, SqlError, SqlResult, SqlRow, SqlStore, Value};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The engine's store over a `node:sqlite` database.
pub type NodeSqliteStore = SqlStore<NodeSqlite>;

#[wasm_bindgen]
extern "C" {
    /// `node:sqlite`'s `DatabaseSync`.
    #[derive(Clone)]
    pub type DatabaseSync;

    #[wasm_bindgen(method, catch)]
    fn prepare(this: &DatabaseSync, sql: &str) -> Result<StatementSync, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn exec(this: &DatabaseSync, sql: &str) -> Result<(), JsValue>;

    #[wasm_bindgen(method, catch)]
    fn close(this: &DatabaseSync) -> Result<(), JsValue>;

    /// `node:sqlite`'s `StatementSync`.
    #[derive(Clone)]
    pub type StatementSync;

    #[wasm_bindgen(method, catch, variadic)]
    fn run(this: &StatementSync, params: &[JsValue]) -> Result<JsValue, JsValue>;

    // `run` with each number of parameters the store's statements bind: arguments cross one
    // by one, where a variadic call builds its array in JS, reading each value out of
    // wasm-bindgen's table (a tenth of a write's time, measured by the Node benchmark).
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run1(this: &StatementSync, a: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run2(this: &StatementSync, a: &JsValue, b: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run3(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run4(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run5(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run6(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run7(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
        g: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run8(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
        g: &JsValue,
        h: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run9(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
        g: &JsValue,
        h: &JsValue,
        i: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run10(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
        g: &JsValue,
        h: &JsValue,
        i: &JsValue,
        j: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run11(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
        g: &JsValue,
        h: &JsValue,
        i: &JsValue,
        j: &JsValue,
        k: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = run)]
    fn run12(
        this: &StatementSync,
        a: &JsValue,
        b: &JsValue,
        c: &JsValue,
        d: &JsValue,
        e: &JsValue,
        f: &JsValue,
        g: &JsValue,
        h: &JsValue,
        i: &JsValue,
        j: &JsValue,
        k: &JsValue,
        l: &JsValue,
    ) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(method, catch, variadic)]
    fn iterate(this: &StatementSync, params: &[JsValue]) -> Result<js_sys::Iterator, JsValue>;

    #[wasm_bindgen(method, js_name = setReturnArrays)]
    fn set_return_arrays(this: &StatementSync, enabled: bool);

    #[wasm_bindgen(method, js_name = setReadBigInts)]
    fn set_read_big_ints(this: &StatementSync, enabled: bool);
}

// Many runs of one statement in one call from wasm: the rows' parameters come as views of the
// wasm memory (what each is, integers, reals, UTF-16 lengths, all text as one string, all
// BLOB bytes), so a row costs a `run` from JS, as for a JS caller, instead of a crossing per
// value, a crossing per call and a text decode per string. node:sqlite copies each bound BLOB
// (SQLITE_TRANSIENT), so views of the wasm memory can be bound: nothing runs wasm meanwhile.
#[wasm_bindgen(inline_js = r#"
export function runRows(stmt, width, kinds, lens, ints, reals, text, blobs) {
  const args = new Array(width);
  let n = 0, r = 0, t = 0, b = 0;
  for (let i = 0; i < kinds.length; ) {
    for (let k = 0; k < width; k++, i++) {
      switch (kinds[i]) {
        case 0: args[k] = null; break;
        case 1: args[k] = ints[n++]; break;
        case 2: args[k] = reals[r++]; break;
        case 3: args[k] = text.slice(t, (t += lens[i])); break;
        default: args[k] = blobs.subarray(b, (b += lens[i]));
      }
    }
    stmt.run(...args);
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(catch, js_name = runRows)]
    #[allow(clippy::too_many_arguments)]
    fn run_rows(
        stmt: &StatementSync,
        width: u32,
        kinds: &[u8],
        lens: &[u32],
        ints: &[i64],
        reals: &[f64],
        text: &str,
        blobs: &[u8],
    ) -> Result<(), JsValue>;
}

/// [`tether_sqlite::Connection`] on a `node:sqlite` `DatabaseSync`, with a statement cache.
pub struct NodeSqlite {
    db: DatabaseSync,
    statements: RefCell<HashMap<String, StatementSync>>,
    /// Whether statements return rows as arrays (`setReturnArrays`, Node >= 24 and 22.16);
    /// older versions return objects keyed by column name, read in column order.
    arrays: Cell<Option<bool>>,
}

impl NodeSqlite {
    /// Wraps an open `DatabaseSync`.
    pub fn new(db: DatabaseSync) -> Self {
        NodeSqlite {
            db,
            statements: RefCell::new(HashMap::new()),
            arrays: Cell::new(None),
        }
    }

    /// Opens the store on `db`: checks, migrates and sets up the file (see
    /// [`SqlStore::over`]). On failure the database is closed again.
    pub fn open_store(db: DatabaseSync, what: &str) -> tether_engine::Result<NodeSqliteStore> {
        SqlStore::over(NodeSqlite::new(db.clone()), what).inspect_err(|_| {
            let _ = db.close();
        })
    }

    /// Closes the database; later operations fail with a `Storage` error.
    pub fn close(&self) {
        self.statements.borrow_mut().clear();
        // Closing a database that is already closed throws; there is nothing left to do then.
        let _ = self.db.close();
    }
}

/// `console.warn(message)`, where there is a console.
pub fn warn(message: &str) {
    let console = js_sys::Reflect::get(&js_sys::global(), &"console".into());
    let warn = console
        .as_ref()
        .ok()
        .and_then(|c| js_sys::Reflect::get(c, &"warn".into()).ok())
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    if let (Ok(console), Some(warn)) = (console, warn) {
        let _ = warn.call1(&console, &message.into());
    }
}

thread_local! {
    /// `"changes"` as a JS string, made once: each `JsValue::from_str` is a call into JS (a
    /// `TextDecoder`), and every row written reads it.
    static CHANGES: JsValue = JsValue::from_str("changes");
}

/// A cached `StatementSync`.
pub struct NodeStatement {
    stmt: StatementSync,
    arrays: bool,
}

/// One row, its values copied out of JS.
struct NodeRow(Vec<Owned>);

enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl tether_sqlite::Connection for NodeSqlite {
    type Statement<'c> = NodeStatement;

    fn prepare(&self, sql: &str) -> SqlResult<NodeStatement> {
        let cached = self.statements.borrow().get(sql).cloned();
        let stmt = match cached {
            Some(s) => s,
            None => {
                let s = self.db.prepare(sql).map_err(failure)?;
                s.set_read_big_ints(true);
                if self.arrays_supported(&s) {
                    s.set_return_arrays(true);
                }
                self.statements
                    .borrow_mut()
                    .insert(sql.to_owned(), s.clone());
                s
            }
        };
        Ok(NodeStatement {
            stmt,
            arrays: self.arrays.get().unwrap_or(false),
        })
    }

    fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        self.db.exec(sql).map_err(failure)
    }
}

impl NodeSqlite {
    /// Whether this Node has `setReturnArrays`, asked of the first statement prepared.
    fn arrays_supported(&self, stmt: &StatementSync) -> bool {
        self.arrays.get().unwrap_or_else(|| {
            let has = Reflect::get(stmt, &"setReturnArrays".into()).is_ok_and(|f| f.is_function());
            self.arrays.set(Some(has));
            has
        })
    }
}

impl tether_sqlite::Statement for NodeStatement {
    fn execute(&mut self, params: &[Value<'_>]) -> SqlResult<u64> {
        let done = run(&self.stmt, &bind(params)).map_err(failure)?;
        let changes = CHANGES
            .with(|key| Reflect::get(&done, key))
            .map_err(failure)?;
        Ok(integer(&changes).unwrap_or(0).max(0) as u64)
    }

    fn execute_rows(&mut self, width: usize, params: &[Value<'_>]) -> SqlResult<()> {
        if width == 0 || params.is_empty() {
            return Ok(());
        }
        let width = u32::try_from(width)
            .map_err(|_| SqlError::from(Error::storage("too many parameters in one statement")))?;
        let rows = Rows::of(params)?;
        run_rows(
            &self.stmt,
            width,
            &rows.kinds,
            &rows.lens,
            &rows.ints,
            &rows.reals,
            &rows.text,
            &rows.blobs,
        )
        .map_err(failure)
    }

    fn query(
        &mut self,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn SqlRow) -> SqlResult<()>,
    ) -> SqlResult<()> {
        let rows = self.stmt.iterate(&bind(params)).map_err(failure)?;
        loop {
            let next = rows.next().map_err(failure)?;
            if next.done() {
                return Ok(());
            }
            let value = next.value();
            let cells = if self.arrays {
                value.unchecked_into::<Array>()
            } else {
                // Objects keep their (non-numeric) keys in insertion order: column order.
                Object::values(value.unchecked_ref::<Object>())
            };
            let row = NodeRow(cells.iter().map(|c| owned(&c)).collect::<SqlResult<_>>()?);
            if let Err(e) = each(&row) {
                // Ends the iteration early, releasing the statement for its next use.
                let _ = Reflect::get(&rows, &"return".into())
                    .and_then(|f| f.unchecked_into::<js_sys::Function>().call0(&rows));
                return Err(e);
            }
        }
    }
}

impl SqlRow for NodeRow {
    fn value(&self, i: usize) -> SqlResult<Value<'_>> {
        let v = self.0.get(i).ok_or_else(|| {
            SqlError::from(Error::storage(format!(
                "column {i} asked of a row of {}",
                self.0.len()
            )))
        })?;
        Ok(match v {
            Owned::Null => Value::Null,
            Owned::Integer(n) => Value::Integer(*n),
            Owned::Real(f) => Value::Real(*f),
            Owned::Text(s) => Value::Text(s),
            Owned::Blob(b) => Value::Blob(b),
        })
    }
}

/// Parameters of many rows as `runRows` reads them: per value its kind (0 NULL, 1 integer,
/// 2 real, 3 text, 4 BLOB) and, for text and BLOBs, its length (UTF-16 code units, bytes);
/// the values of each kind in order, the texts and BLOBs each concatenated.
#[derive(Default)]
struct Rows {
    kinds: Vec<u8>,
    lens: Vec<u32>,
    ints: Vec<i64>,
    reals: Vec<f64>,
    text: String,
    blobs: Vec<u8>,
}

impl Rows {
    fn of(params: &[Value<'_>]) -> SqlResult<Rows> {
        let mut rows = Rows {
            kinds: Vec::with_capacity(params.len()),
            lens: Vec::with_capacity(params.len()),
            ..Rows::default()
        };
        for p in params {
            let (kind, len) = match *p {
                Value::Null => (0, 0),
                Value::Integer(n) => {
                    rows.ints.push(n);
                    (1, 0)
                }
                Value::Real(f) => {
                    rows.reals.push(f);
                    (2, 0)
                }
                Value::Text(s) => {
                    rows.text.push_str(s);
                    // JS slices strings by UTF-16 code units; ASCII has one per byte.
                    let units = match s.is_ascii() {
                        true => s.len(),
                        false => s.encode_utf16().count(),
                    };
                    (3, units)
                }
                Value::Blob(b) => {
                    rows.blobs.extend_from_slice(b);
                    (4, b.len())
                }
            };
            rows.kinds.push(kind);
            rows.lens.push(u32::try_from(len).map_err(|_| {
                SqlError::from(Error::storage(format!(
                    "a value of {len} bytes is too long"
                )))
            })?);
        }
        Ok(rows)
    }
}

/// `stmt.run(...params)`.
fn run(stmt: &StatementSync, params: &[JsValue]) -> Result<JsValue, JsValue> {
    match params {
        [a] => stmt.run1(a),
        [a, b] => stmt.run2(a, b),
        [a, b, c] => stmt.run3(a, b, c),
        [a, b, c, d] => stmt.run4(a, b, c, d),
        [a, b, c, d, e] => stmt.run5(a, b, c, d, e),
        [a, b, c, d, e, f] => stmt.run6(a, b, c, d, e, f),
        [a, b, c, d, e, f, g] => stmt.run7(a, b, c, d, e, f, g),
        [a, b, c, d, e, f, g, h] => stmt.run8(a, b, c, d, e, f, g, h),
        [a, b, c, d, e, f, g, h, i] => stmt.run9(a, b, c, d, e, f, g, h, i),
        [a, b, c, d, e, f, g, h, i, j] => stmt.run10(a, b, c, d, e, f, g, h, i, j),
        [a, b, c, d, e, f, g, h, i, j, k] => stmt.run11(a, b, c, d, e, f, g, h, i, j, k),
        [a, b, c, d, e, f, g, h, i, j, k, l] => stmt.run12(a, b, c, d, e, f, g, h, i, j, k, l),
        _ => stmt.run(params),
    }
}

/// Parameters as `node:sqlite` binds them: integers as `BigInt` (bound as SQLite INTEGER; a
/// JS number would be bound as REAL).
fn bind(params: &[Value<'_>]) -> Vec<JsValue> {
    params
        .iter()
        .map(|p| match *p {
            Value::Null => JsValue::NULL,
            Value::Integer(n) => js_sys::BigInt::from(n).into(),
            Value::Real(f) => JsValue::from_f64(f),
            Value::Text(s) => JsValue::from_str(s),
            Value::Blob(b) => Uint8Array::from(b).into(),
        })
        .collect()
}

fn owned(v: &JsValue) -> SqlResult<Owned> {
    if v.is_null() || v.is_undefined() {
        return Ok(Owned::Null);
    }
    if let Some(s) = v.as_string() {
        return Ok(Owned::Text(s));
    }
    // Every statement reads INTEGER columns as BigInt (`setReadBigInts`), so a number is a
    // REAL.
    if let Some(n) = <i64 as TryFromJsValue>::try_from_js_value_ref(v) {
        return Ok(Owned::Integer(n));
    }
    if let Some(f) = v.as_f64() {
        return Ok(Owned::Real(f));
    }
    if let Some(b) = v.dyn_ref::<Uint8Array>() {
        return Ok(Owned::Blob(b.to_vec()));
    }
    Err(Error::storage(format!("node:sqlite returned an unexpected value {v:?}")).into())
}

/// A JS number or `BigInt` as an i64.
fn integer(v: &JsValue) -> Option<i64> {
    if let Some(f) = v.as_f64() {
        return Some(f as i64);
    }
    if v.is_bigint() {
        return i64::try_from(v.clone()).ok();
    }
    None
}

/// A `node:sqlite` exception as the store's [`SqlError`]: its `errcode` is SQLite's extended
/// result code (`SQLITE_BUSY`, `SQLITE_FULL`, …), kept for the error's `Detail`.
fn failure(e: JsValue) -> SqlError {
    let code = Reflect::get(&e, &"errcode".into())
        .ok()
        .and_then(|c| c.as_f64())
        .map(|c| c as i32);
    let message = Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    DbFailure::new(code, message).into()
}
