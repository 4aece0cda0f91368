//! Tether in the browser and in Node: the replica store over IndexedDB ([`IdbStore`]) or, with
//! the `node-sqlite` feature (the npm package's Node build), over Node's `node:sqlite`
//! (`node_sqlite::NodeSqliteStore`, the native replica's file format), remotes over `fetch`
//! ([`remote`]) and over user JavaScript functions ([`any_remote`]), and the `#[wasm_bindgen]`
//! API that the npm package in `js/` wraps ([`api`]).
//!
//! All sync logic lives in `tether-engine`; this crate only moves bytes between the engine and
//! the browser. Futures here are single-threaded (`!Send`), which the engine allows on wasm.
//!
//! JSON is read with `serde_json::from_slice`, never `from_str` or `from_value`: the engine reads
//! the protocol's answers from bytes, and each other reader would compile another copy of
//! serde_json's parser and of every decoded type's deserializer into the wasm (about 8 KB
//! gzipped together).
//!
//! The crate is empty on other targets (so `cargo clippy --workspace` on the host passes): its
//! types hold JS values, which are not `Send`, as native stores must be.
#![cfg(target_family = "wasm")]

pub mod any_remote;
pub mod any_store;
pub mod api;
pub mod idb;
pub mod js;
#[cfg(feature = "node-sqlite")]
pub mod node_sqlite;
pub mod remote;
pub mod shapes;

pub use idb::IdbStore;
