//! [`IdbStore`]: the replica store over IndexedDB.
//!
//! Every [`tether_engine::Store`] operation is one IndexedDB transaction, and nothing but that
//! transaction's own requests is awaited inside it (any other await lets the browser commit the
//! transaction early). Reads are issued all at once and only the last is awaited: requests of
//! one transaction complete in order. See [`codec`] for the object-store layout.

mod codec;
mod indexes;
mod probe;
mod request;
mod store;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Reflect;
use tether_engine::{Error, IndexSet, Result};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    IdbDatabase, IdbFactory, IdbIndexParameters, IdbObjectStoreParameters, IdbOpenDbRequest,
    IdbTransaction, IdbTransactionMode,
};

pub use request::storage_error_named;

use codec::{
    CONFLICTS, ENTRIES_INDEX, INDEXES, META, PENDING_INDEX, ROWS, RUNNING_INDEX, RUNS, SCOPE_INDEX,
};
use request::{js_storage_error, str_array, wait};

/// Schema version of the database: 1 had no indexes; 2 adds the `indexes` store and the
/// `entries` index of `rows` (an upgrade from 1 keeps every row: rows of version 1 carry no
/// entries, and no index was declared then).
const VERSION: u32 = 2;

/// A replica store in one IndexedDB database.
///
/// Several tabs may open the same database; each operation is atomic. When another tab asks
/// for a schema upgrade or deletes the database (`versionchange`), this store closes its
/// connection so the other tab is not blocked, and reopens on its next operation.
///
/// Declared indexes ([`tether_engine::Store::declare_indexes`]) are kept inside the row values,
/// as the elements of one `multiEntry` IndexedDB index, so every write maintains them in the
/// same put; the set declared is stored too, and kept by every write from [`IdbStore::open`]
/// on, before the app declares it again.
pub struct IdbStore {
    name: String,
    conn: Rc<RefCell<Option<IdbDatabase>>>,
    /// Installed as `onversionchange` and `onclose` of every connection.
    on_lost: Closure<dyn FnMut()>,
    /// The declared indexes as last read or written by this store (what
    /// [`tether_engine::Store::indexes`] answers; writes and scans read the stored set in
    /// their own transaction).
    indexes: RefCell<IndexSet>,
    /// The declared set (with index numbers) the last scan or count read: the next one guesses
    /// its index's number from it and reads its entries together with the set, which decides.
    declared: RefCell<Option<Rc<indexes::Declared>>>,
}

impl IdbStore {
    /// Opens (creating if needed) the IndexedDB database `name`.
    pub async fn open(name: &str) -> Result<IdbStore> {
        if name.is_empty() {
            return Err(Error::invalid("replica name must not be empty"));
        }
        let conn: Rc<RefCell<Option<IdbDatabase>>> = Rc::new(RefCell::new(None));
        let slot = conn.clone();
        let on_lost = Closure::<dyn FnMut()>::new(move || {
            // Another connection wants to upgrade or delete the database, or the browser closed
            // this one: let go of it; the next operation reopens.
            if let Some(db) = slot.borrow_mut().take() {
                db.close();
            }
        });
        let store = IdbStore {
            name: name.to_owned(),
            conn,
            on_lost,
            indexes: RefCell::default(),
            declared: RefCell::default(),
        };
        // The indexes declared earlier are kept by every write from now on, so queries on them
        // work before the app declares its set again.
        let tx = store
            .transaction(&[INDEXES], IdbTransactionMode::Readonly)
            .await?;
        *store.indexes.borrow_mut() = indexes::load(&tx).await?.set()?;
        Ok(store)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the connection now (the next operation reopens it).
    pub fn close(&self) {
        if let Some(db) = self.conn.borrow_mut().take() {
            db.set_onversionchange(None);
            db.set_onclose(None);
            db.close();
        }
    }

    /// Deletes the database `name` (waits until no connection is open to it).
    pub async fn delete(name: &str) -> Result<()> {
        let req = factory()?
            .delete_database(name)
            .map_err(|e| js_storage_error("deleting the database", &e))?;
        wait(&req).await.map(|_| ())
    }

    /// The open connection, reopening it if it was closed.
    async fn connection(&self) -> Result<IdbDatabase> {
        if let Some(db) = self.conn.borrow().as_ref() {
            return Ok(db.clone());
        }
        let db = open_db(&self.name).await?;
        let handler = self.on_lost.as_ref().unchecked_ref();
        db.set_onversionchange(Some(handler));
        db.set_onclose(Some(handler));
        // Two operations may have reopened concurrently; keep the first, close the other.
        let mut slot = self.conn.borrow_mut();
        if let Some(existing) = slot.as_ref() {
            db.set_onversionchange(None);
            db.set_onclose(None);
            db.close();
            return Ok(existing.clone());
        }
        *slot = Some(db.clone());
        Ok(db)
    }

    /// A transaction over `stores`. A connection closed under us (another tab's
    /// `versionchange`) makes `transaction()` throw `InvalidStateError`: reopen once and retry.
    async fn transaction(
        &self,
        stores: &[&str],
        mode: IdbTransactionMode,
    ) -> Result<IdbTransaction> {
        let names = str_array(stores);
        let mut retried = false;
        loop {
            let db = self.connection().await?;
            match db.transaction_with_str_sequence_and_mode(&names, mode) {
                Ok(tx) => return Ok(tx),
                Err(e) if !retried && is_dom_error(&e, "InvalidStateError") => {
                    retried = true;
                    self.conn.borrow_mut().take();
                }
                Err(e) => return Err(js_storage_error("starting a transaction", &e)),
            }
        }
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        // The handler closure dies with the store: detach it from the connection first.
        self.close();
    }
}

fn is_dom_error(e: &JsValue, name: &str) -> bool {
    e.dyn_ref::<web_sys::DomException>()
        .is_some_and(|ex| ex.name() == name)
}

/// `indexedDB` of the global scope (window or worker).
fn factory() -> Result<IdbFactory> {
    Reflect::get(&js_sys::global(), &"indexedDB".into())
        .ok()
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or_else(|| {
            Error::storage(
                "IndexedDB is not available here (Node has none: use Replica.openInMemory)",
            )
        })
}

async fn open_db(name: &str) -> Result<IdbDatabase> {
    let req = factory()?
        .open_with_u32(name, VERSION)
        .map_err(|e| js_storage_error("opening the database", &e))?;
    let failure: Rc<RefCell<Option<Error>>> = Rc::default();
    let failed = failure.clone();
    let target = req.clone();
    let upgrade = Closure::<dyn FnMut()>::new(move || {
        if let Err(e) = create_schema(&target) {
            *failed.borrow_mut() = Some(e);
            if let Some(tx) = target.transaction() {
                request::abort(&tx);
            }
        }
    });
    req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let opened = wait(&req).await;
    req.set_onupgradeneeded(None);
    if let Some(e) = failure.borrow_mut().take() {
        return Err(e);
    }
    match opened {
        Ok(db) => Ok(db.unchecked_into()),
        // A newer version of the app upgraded the schema in another tab: open what is there
        // (upgrades only ever add stores and indexes).
        Err(_)
            if req
                .error()
                .ok()
                .flatten()
                .is_some_and(|e| e.name() == "VersionError") =>
        {
            let req = factory()?
                .open(name)
                .map_err(|e| js_storage_error("opening the database", &e))?;
            Ok(wait(&req).await?.unchecked_into())
        }
        Err(e) => Err(e),
    }
}

/// Creates the object stores and indexes described in [`codec`].
fn create_schema(req: &IdbOpenDbRequest) -> Result<()> {
    let db: IdbDatabase = req
        .result()
        .map_err(|e| js_storage_error("upgrading the schema", &e))?
        .unchecked_into();
    let err = |e: JsValue| js_storage_error("upgrading the schema", &e);
    let existing = db.object_store_names();
    let rows = if existing.contains(ROWS) {
        req.transaction()
            .ok_or_else(|| Error::storage("upgrading the schema without a transaction"))?
            .object_store(ROWS)
            .map_err(err)?
    } else {
        let rows = db.create_object_store(ROWS).map_err(err)?;
        // Sparse: only rows with a pending edit have `s` and `p`.
        rows.create_index_with_str_sequence(PENDING_INDEX, &str_array(&["s", "p"]))
            .map_err(err)?;
        rows
    };
    if !rows.index_names().contains(ENTRIES_INDEX) {
        // One entry per element of `x`; rows without `x` (no declared index) have none.
        let multi = IdbIndexParameters::new();
        multi.set_multi_entry(true);
        rows.create_index_with_str_and_optional_parameters(ENTRIES_INDEX, "x", &multi)
            .map_err(err)?;
    }
    if !existing.contains(INDEXES) {
        db.create_object_store(INDEXES).map_err(err)?;
    }
    if !existing.contains(META) {
        db.create_object_store(META).map_err(err)?;
    }
    let auto = IdbObjectStoreParameters::new();
    auto.set_auto_increment(true);
    if !existing.contains(CONFLICTS) {
        let conflicts = db
            .create_object_store_with_optional_parameters(CONFLICTS, &auto)
            .map_err(err)?;
        conflicts
            .create_index_with_str_and_optional_parameters(
                SCOPE_INDEX,
                "s",
                &IdbIndexParameters::new(),
            )
            .map_err(err)?;
    }
    if !existing.contains(RUNS) {
        let runs = db
            .create_object_store_with_optional_parameters(RUNS, &auto)
            .map_err(err)?;
        runs.create_index_with_str(SCOPE_INDEX, "s").map_err(err)?;
        runs.create_index_with_str(RUNNING_INDEX, "r")
            .map_err(err)?;
    }
    Ok(())
}
