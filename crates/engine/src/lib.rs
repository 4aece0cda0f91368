//! Tether's sync core.
//!
//! A replica keeps a local copy of cloud data, per scope, in sync with the cloud: an initial
//! download in resumable pages, then incremental pulls from an opaque checkpoint. Every record's
//! SHA-256 is checked, the whole scope is proven equal to the cloud by a digest, and when a local
//! edit and the cloud disagree the cloud wins and the edit goes to a conflict journal.
//!
//! This crate is deterministic: no I/O, no clock reads, no randomness. Storage comes in through
//! the [`Store`] trait (SQLite in `tether-native`, IndexedDB in `tether-wasm`, [`MemoryStore`]
//! here), the cloud through the [`Remote`] trait, and time through a [`Clock`]. A driver calls
//! [`Syncer::sync`] for one run; see the [`sync`] module for the order of its steps.
//!
//! ```
//! # futures_executor::block_on(async {
//! use tether_engine::{cloud::Cloud, MemoryStore, ScopeHandle, ScopeId, SyncOptions, Syncer};
//! let scope = ScopeId::new("org-1").unwrap();
//! let cloud = Cloud::new();
//! cloud.put(&scope, "objects", "obj_1", serde_json::json!({"name": "orders"}), 0);
//!
//! let store = MemoryStore::new();
//! let clock = || 1_700_000_000_000;
//! let report = Syncer::new(&store, &cloud, &clock).sync(&scope, SyncOptions::default()).await.unwrap();
//! assert_eq!(report.run.counts.inserted, 1);
//! assert_eq!(report.snapshot, cloud.snapshot(&scope));
//!
//! let local = ScopeHandle::new(&store, scope);
//! assert_eq!(local.get("objects", "obj_1").await.unwrap().unwrap().data["name"], "orders");
//! # });
//! ```

#![forbid(unsafe_code)]

pub mod canonical;
pub mod cloud;
pub mod digest;
pub mod doc;
pub mod error;
pub mod events;
pub mod limits;
pub mod memory;
pub mod mutation;
pub mod protocol;
pub mod query;
pub mod remote;
pub mod rules;
pub mod schedule;
pub mod scope;
mod sort;
pub mod store;
pub mod subscription;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod types;

pub use digest::{Digest, RecordHash, Snapshot};
pub use doc::Doc;
pub use error::{Detail, Error, ErrorKind, Result, RunError};
pub use events::{ChangeEvent, ChangeOp, EventHub};
pub use memory::MemoryStore;
pub use query::{IndexSet, Query, QueryPage};
pub use remote::{Pulled, Remote};
pub use rules::{Row, ScopeState};
pub use scope::{ScopeHandle, ScopeStatus, Stats};
pub use store::{MaybeSend, MaybeSync, Store};
pub use sync::{
    CancelFlag, Clock, Preview, ProgressSink, SyncOptions, SyncReport, Syncer, VerifyReport,
};
pub use types::*;
