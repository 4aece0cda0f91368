//! Tether's native replica: [`SqliteStore`] (the engine's store over one SQLite file: the
//! rusqlite binding of `tether_sqlite::SqlStore`), the blocking [`Replica`] facade, and the
//! HTTP remote ([`http::HttpRemote`]).
//!
//! ```
//! use tether_engine::cloud::Cloud;
//! use tether_engine::ScopeId;
//! use tether_native::{Replica, SyncOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cloud = Cloud::new();
//! cloud.put(&ScopeId::new("org-1").unwrap(), "objects", "obj_1", serde_json::json!({"name": "orders"}), 0);
//!
//! let replica = Replica::open(dir.path().join("replica.db")).unwrap();
//! let scope = replica.scope("org-1").unwrap();
//! let report = scope.sync(&cloud, SyncOptions::default()).unwrap();
//! assert_eq!(report.snapshot.count, 1);
//! assert_eq!(scope.get("objects", "obj_1").unwrap().unwrap().data["name"], "orders");
//! ```

#![forbid(unsafe_code)]

mod background;
pub mod http;
mod live;
mod replica;
mod store;

pub use background::{BackgroundOptions, BackgroundStatus, BackgroundSync};
pub use live::{Changes, Watch};
pub use replica::{
    client_entropy, now, Replica, ReplicaBuilder, ReplicaOptions, ScopeRef, Threads, BUILD_BATCH,
};
pub use store::SqliteStore;
pub use tether_engine::events::{ChangeEvent, ChangeOp, KeyChange, Source, Subscription};
pub use tether_engine::query::{IndexSet, Query, QueryPage};
// What the replica's methods take and return, so an application needs no direct dependency on
// tether-engine to name them.
pub use tether_engine::schedule::Schedule;
pub use tether_engine::{
    CancelFlag, Conflict, Digest, Error, ErrorKind, Millis, Preview, Record, RecordHash, Result,
    Run, RunKind, RunStatus, ScopeId, ScopeStatus, Snapshot, Stats, SyncOptions, SyncReport,
    Trigger, VerifyReport,
};
pub use tether_sqlite::SCHEMA_VERSION;

/// The README's Rust snippet, compiled as a doctest so that it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// docs/native.md's Rust snippets, compiled as doctests for the same reason.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/native.md")]
pub struct NativeDocDoctests;
