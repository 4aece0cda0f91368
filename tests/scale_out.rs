//! Several stateless server instances on one PostgreSQL: replicas whose requests go to a
//! different instance each time, editing and syncing while the backend writes, all converge
//! to the cloud's digest; a live replica on one instance sees a write made through another.

#[path = "../crates/server/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Backend, Harness, READER};
use serde_json::json;
use tether_engine::{
    Checkpoint, KeyRange, Mutation, Pulled, PushResponse, Remote, RemoteStatus, Result, ScopeId,
    Snapshot, SyncOptions,
};
use tether_native::http::HttpRemote;
use tether_native::Replica;

postgres_only!(replicas_switching_instances_converge);

/// A remote that sends each request to the next instance in turn.
struct RoundRobin {
    instances: Vec<HttpRemote>,
    next: AtomicUsize,
}

impl RoundRobin {
    fn pick(&self) -> &HttpRemote {
        &self.instances[self.next.fetch_add(1, Ordering::SeqCst) % self.instances.len()]
    }
}

impl Remote for RoundRobin {
    async fn pull(&self, s: &ScopeId, cp: Option<&Checkpoint>, limit: u32) -> Result<Pulled> {
        self.pick().pull(s, cp, limit).await
    }
    fn can_push(&self) -> bool {
        true
    }
    async fn push(&self, s: &ScopeId, m: &[Mutation]) -> Result<PushResponse> {
        self.pick().push(s, m).await
    }
    async fn status(&self, s: &ScopeId) -> Result<Option<RemoteStatus>> {
        self.pick().status(s).await
    }
    async fn range_digest(&self, s: &ScopeId, r: &KeyRange) -> Result<Option<Snapshot>> {
        self.pick().range_digest(s, r).await
    }
    async fn range_records(
        &self,
        s: &ScopeId,
        r: &KeyRange,
    ) -> Result<Option<Vec<tether_engine::Change>>> {
        self.pick().range_records(s, r).await
    }
}

fn replicas_switching_instances_converge(backend: Backend) {
    let h = Harness::start(backend);
    h.seed("s1", 0..300);
    let b = h.another_instance();
    let c = h.another_instance();
    let urls = [h.url(), b.url(), c.url()];
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::open(dir.path().join(format!("r{i}.db"))).unwrap())
        .collect();
    let remotes: Vec<RoundRobin> = (0..3)
        .map(|i| RoundRobin {
            instances: urls.iter().map(|u| support::remote(u, READER)).collect(),
            next: AtomicUsize::new(i),
        })
        .collect();
    let opts = || SyncOptions {
        page_size: 50,
        ..SyncOptions::default()
    };
    for round in 0..4 {
        for (i, (replica, remote)) in replicas.iter().zip(&remotes).enumerate() {
            let scope = replica.scope("s1").unwrap();
            scope.sync(remote, opts()).unwrap();
            // Each replica edits its own records and one shared record.
            scope
                .put(
                    "objects",
                    &format!("r{i}-{round}"),
                    json!({"by": i, "round": round}),
                )
                .unwrap();
            scope
                .put("objects", "shared", json!({"by": i, "round": round}))
                .unwrap();
        }
        // The backend writes through the first instance meanwhile.
        h.upsert(
            "s1",
            &[(
                "objects",
                &format!("backend-{round}"),
                json!({"round": round}),
            )],
        );
    }
    // Two quiet rounds: every edit is pushed, every change pulled.
    for _ in 0..2 {
        for (replica, remote) in replicas.iter().zip(&remotes) {
            replica.scope("s1").unwrap().sync(remote, opts()).unwrap();
        }
    }
    let cloud = h.status("s1");
    for replica in &replicas {
        let scope = replica.scope("s1").unwrap();
        let status = scope.status().unwrap();
        assert_eq!((status.count, status.digest), (cloud.count, cloud.digest));
        assert_eq!(status.pending_edits, 0);
        for i in 0..3 {
            for round in 0..4 {
                let id = format!("r{i}-{round}");
                assert!(scope.get("objects", &id).unwrap().is_some(), "{id}");
            }
        }
    }
    // Every shared edit is in the cloud or in its replica's journal: none vanished.
    let journaled: usize = replicas
        .iter()
        .map(|r| r.scope("s1").unwrap().conflicts().unwrap().len())
        .sum();
    assert!(
        journaled <= 11,
        "12 shared edits, at least the last accepted: {journaled}"
    );
    h.rt.block_on(b.shutdown());
    h.rt.block_on(c.shutdown());
}
