//! The store conformance suite (feature `testing`), written once and run against every store:
//! [`MemoryStore`](crate::MemoryStore) here, `SqliteStore` in tether-native and `IdbStore` in
//! tether-wasm (headless Chromium).
//!
//! Each case is an `async fn(&S)` taking a fresh, empty store. A store crate instantiates all of
//! them with [`for_each_conformance_case!`](crate::for_each_conformance_case), passing a macro
//! of its own that turns one case name into a test of its harness:
//!
//! ```ignore
//! macro_rules! case {
//!     ($name:ident) => {
//!         #[test]
//!         fn $name() {
//!             let store = tether_engine::MemoryStore::new();
//!             futures_executor::block_on(tether_engine::testing::$name(&store));
//!         }
//!     };
//! }
//! tether_engine::for_each_conformance_case!(case);
//! ```
//!
//! The cases come in two sets, both re-exported here: the store contract cases
//! (`store_cases`, from [`unknown_scope_has_default_state`] to [`data_round_trips_exactly`])
//! check one [`Store`] operation at a time on hand-written changesets; the sync scenarios
//! (`scenarios`, from [`sync_initial_incremental_and_deletes`] to
//! [`divergence_is_repaired_in_place`]) drive whole runs of the [`Syncer`] against an
//! in-process [`Cloud`] with faults; the edit scenarios (`edits`, from
//! [`edits_during_a_push_end_in_one_place`] to [`repair_is_checked_against_a_fresh_cloud_answer`])
//! check that every local edit ends in one place while the user and other writers act in the
//! middle of a sync; the subset scenarios (`subsets`, from
//! [`subscriptions_download_their_records_and_follow_moves`] to
//! [`a_pending_edit_that_moves_out_is_journaled_not_lost`]) drive partial replicas, and the
//! subset races (`subset_races`, from [`subscriptions_set_during_a_whole_download_take_over`]
//! to [`verify_repair_keeps_a_pending_edit_that_moves_a_record_in`]) change their
//! subscriptions in the middle of a sync.

mod edits;
mod push;
mod queries;
mod scenarios;
mod store_cases;
mod subset_races;
mod subsets;

pub use edits::*;
pub use push::*;
pub use queries::*;
pub use scenarios::*;
pub use store_cases::*;
pub use subset_races::*;
pub use subsets::*;

use serde_json::json;

use crate::cloud::Cloud;
use crate::digest::record_hash;
use crate::rules::{Changeset, Prior, Row, RowWrite, ScopeState};
use crate::store::Store;
use crate::sync::{SyncOptions, Syncer};
use crate::types::{Data, Key, ScopeId};

/// Calls `$m!(case)` for every conformance case.
#[macro_export]
macro_rules! for_each_conformance_case {
    ($m:ident) => {
        $m!(unknown_scope_has_default_state);
        $m!(update_writes_rows_state_and_conflicts);
        $m!(failed_plan_writes_nothing);
        $m!(planner_is_called_once);
        $m!(touch_keeps_data_and_remove_deletes);
        $m!(a_changeset_of_every_kind_of_write_lands_whole);
        $m!(list_count_and_pending_follow_visibility);
        $m!(keys_order_as_utf8_bytes);
        $m!(range_queries_cover_half_open_ranges);
        $m!(update_stale_sees_older_generations);
        $m!(scopes_are_independent);
        $m!(runs_are_recorded_newest_first);
        $m!(data_round_trips_exactly);
        $m!(versions_round_trip_up_to_the_maximum);
        $m!(sync_initial_incremental_and_deletes);
        $m!(bad_page_is_rejected_whole);
        $m!(interrupted_sync_resumes_from_checkpoint);
        $m!(local_edits_push_and_conflicts);
        $m!(reset_resyncs_and_sweeps);
        $m!(divergence_is_repaired_in_place);
        $m!(preview_tells_what_a_sync_would_do_and_writes_nothing);
        $m!(edits_during_a_push_end_in_one_place);
        $m!(a_lost_push_answer_then_a_newer_edit_is_no_conflict);
        $m!(repair_never_moves_a_pending_base);
        $m!(sweep_takes_a_pending_delete_the_cloud_agrees_with);
        $m!(sweep_keeps_a_pending_delete_a_truncated_download_missed);
        $m!(old_tombstones_keep_a_create_made_during_the_download);
        $m!(repair_is_checked_against_a_fresh_cloud_answer);
        $m!(failed_push_does_not_block_the_pull);
        $m!(push_batches_are_cut_by_bytes);
        $m!(an_edit_over_the_push_limit_is_journaled_as_too_large);
        $m!(indexes_follow_every_write);
        $m!(queries_filter_order_and_page);
        $m!(index_builds_resume_and_sets_change_in_place);
        $m!(change_events_follow_commits);
        $m!(queries_match_the_naive_filter_on_random_data);
        $m!(subscriptions_download_their_records_and_follow_moves);
        $m!(adding_downloads_only_the_new_part_and_removing_evicts);
        $m!(whole_to_partial_and_back);
        $m!(priorities_complete_in_order);
        $m!(subset_divergence_is_repaired);
        $m!(a_pending_edit_that_moves_out_is_journaled_not_lost);
        $m!(an_eviction_cut_short_is_finished_by_the_next_sync);
        $m!(subscriptions_set_during_a_whole_download_take_over);
        $m!(subscriptions_set_during_a_push_evict_what_it_answers);
        $m!(subscriptions_set_during_a_whole_repair_take_over);
        $m!(a_page_pulled_before_a_subscription_restarted_is_dropped);
        $m!(a_live_round_verifies_a_subscription_it_downloaded_again);
        $m!(a_subscription_removed_during_its_verification_is_not_repaired);
        $m!(verify_repair_keeps_a_pending_edit_that_moves_a_record_in);
    };
}

const NOW: i64 = 1_767_225_600_000;

fn clock() -> i64 {
    NOW
}

fn sid(name: &str) -> ScopeId {
    ScopeId::new(name).expect("valid scope name")
}

fn obj(v: serde_json::Value) -> Data {
    v.as_object().cloned().expect("an object")
}

/// A cloud-confirmed row.
fn row(collection: &str, id: &str, data: serde_json::Value, version: u64, generation: u64) -> Row {
    let data = obj(data);
    let hash = record_hash(&data);
    Row {
        key: Key::new(collection, id),
        data: Some(data.into()),
        hash: Some(hash),
        version,
        updated_at: "2026-01-01T00:00:00.000Z".into(),
        cloud_hash: Some(hash),
        generation,
        pending: None,
        sent: None,
    }
}

/// Puts of `rows` over `read`, the rows the store handed the planner for the same keys.
fn puts(rows: impl IntoIterator<Item = Row>, read: &[Option<Row>]) -> Vec<RowWrite> {
    rows.into_iter()
        .zip(read)
        .enumerate()
        .map(|(slot, (row, old))| RowWrite::Put {
            row,
            prior: old.as_ref().map(|o| Prior::of(slot, o)),
        })
        .collect()
}

/// Writes rows through `update`, adding their leaves to the totals.
async fn put_rows<S: Store>(store: &S, scope: &ScopeId, rows: Vec<Row>) {
    let keys: Vec<Key> = rows.iter().map(|r| r.key.clone()).collect();
    store
        .update(
            scope,
            &keys,
            false,
            |st: &ScopeState, read: &[Option<Row>]| {
                let mut scope_state = st.clone();
                for r in &rows {
                    if let Some(h) = &r.cloud_hash {
                        scope_state.totals.insert(&crate::digest::leaf(
                            &r.key.collection,
                            &r.key.id,
                            h,
                        ));
                    }
                }
                Ok(Changeset {
                    scope: scope_state,
                    rows: puts(rows.iter().cloned(), read),
                    ..Changeset::default()
                })
            },
        )
        .await
        .expect("update");
}

async fn sync<S: Store>(
    store: &S,
    cloud: &Cloud,
    scope: &ScopeId,
    page: u32,
) -> crate::Result<crate::SyncReport> {
    let opts = SyncOptions {
        page_size: page,
        ..SyncOptions::default()
    };
    Syncer::new(store, cloud, &clock).sync(scope, opts).await
}

/// A fresh cloud whose scope `s` holds `n` seeded records, synced into `store`.
async fn synced<S: Store>(store: &S, n: usize) -> (ScopeId, Cloud) {
    let s = sid("s");
    let cloud = Cloud::new();
    seed(&cloud, &s, n);
    sync(store, &cloud, &s, 1000).await.unwrap();
    (s, cloud)
}

/// Changes five records of a seeded scope in the cloud and truncates the next page, so the
/// replica's next pull silently misses one of them (found only by the digest).
fn miss_a_change(cloud: &Cloud, s: &ScopeId) {
    for i in 0..5 {
        cloud.put(
            s,
            "columns",
            &format!("id-{:05}", i * 3 + 1),
            json!({"v": i}),
            NOW,
        );
    }
    cloud.inject(crate::cloud::Faults {
        truncate_next: true,
        ..crate::cloud::Faults::default()
    });
}

fn seed(cloud: &Cloud, scope: &ScopeId, n: usize) {
    for i in 0..n {
        cloud.put(
            scope,
            if i % 3 == 0 { "tables" } else { "columns" },
            &format!("id-{i:05}"),
            json!({ "name": format!("n{i}"), "i": i, "tags": ["a", i % 7], "nested": { "ok": i % 2 == 0 } }),
            NOW,
        );
    }
}
