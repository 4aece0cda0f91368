//! Tether in the browser: the replica store over IndexedDB ([`IdbStore`]), remotes over `fetch`
//! and over user JavaScript functions, and the `#[wasm_bindgen]` API that the npm package wraps.
//!
//! All sync logic lives in `tether-engine`; this crate only moves bytes between the engine and
//! the browser. Futures here are single-threaded (`!Send`), which the engine allows on wasm.

pub mod idb;

pub use idb::IdbStore;
