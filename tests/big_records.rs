//! Records near the size limit over real HTTP, on SQLite and PostgreSQL storage: pages are cut
//! by bytes, a key range whose records exceed the page budget is refused by the server rather
//! than built whole, and a replica's repair bisects such a range down to answers that fit.

#[path = "../crates/server/tests/common/mod.rs"]
mod common;
mod support;

use common::{Backend, Harness, READER};
use serde_json::json;
use tether_engine::{Detail, KeyRange, Remote, ScopeId, SyncOptions};
use tether_native::Replica;

both!(a_repair_of_big_records_bisects_to_answers_that_fit);

/// Eight records of 1.2 MB: about 10 MB, more than one page (4 MiB) or one records answer.
const RECORDS: usize = 8;
const RECORD_BYTES: usize = 1_200_000;

fn a_repair_of_big_records_bisects_to_answers_that_fit(backend: Backend) {
    let h = Harness::start(backend);
    for half in 0..2 {
        let records: Vec<(String, serde_json::Value)> = (0..RECORDS / 2)
            .map(|i| {
                let n = half * RECORDS / 2 + i;
                (
                    format!("b{n}"),
                    json!({ "n": n, "blob": "x".repeat(RECORD_BYTES) }),
                )
            })
            .collect();
        let refs: Vec<(&str, &str, serde_json::Value)> = records
            .iter()
            .map(|(id, v)| ("big", id.as_str(), v.clone()))
            .collect();
        h.upsert("s1", &refs);
    }
    let remote = support::remote(&h.url(), READER);
    let scope_id = ScopeId::new("s1").unwrap();

    // The server refuses to build the whole range's answer: it is over the page budget.
    let whole = futures_executor::block_on(remote.range_records(&scope_id, &KeyRange::all()));
    let err = whole.expect_err("a range of ~10 MB of records is refused");
    assert_eq!(err.detail(), Some(Detail::BodyTooLarge), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let replica = Replica::open(&path).unwrap();
    let scope = replica.scope("s1").unwrap();
    let report = scope.sync(&remote, SyncOptions::default()).unwrap();
    assert_eq!(report.snapshot.count, RECORDS as u64);
    assert!(
        report.run.pages >= 2,
        "pages cut by bytes: {:?}",
        report.run
    );

    // Behind the engine's back, every big record changed.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n = conn
        .execute(
            "UPDATE records SET data = '{\"tampered\":true}' WHERE collection = 'big'",
            [],
        )
        .unwrap();
    assert_eq!(n, RECORDS);
    let before = h.stats();
    let fixed = scope.verify(&remote, true).unwrap();
    assert!(fixed.matches_now, "{fixed:?}");
    assert_eq!(fixed.repaired, RECORDS as u64, "{fixed:?}");
    assert_eq!(
        h.stats().pulls,
        before.pulls,
        "repaired in place, no resync"
    );
    let b3 = scope.get("big", "b3").unwrap().unwrap();
    assert_eq!(b3.data["n"], 3);
    assert_eq!(b3.data["blob"].as_str().map(str::len), Some(RECORD_BYTES));
}
