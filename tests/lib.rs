//! Cross-crate scenarios of Tether, kept out of the crates they exercise so that no library
//! depends on another only for its tests:
//!
//! - `sync_http.rs`: tether-native's `Replica` and `HttpRemote` against tether-server on
//!   loopback, on SQLite and on PostgreSQL storage (`TETHER_TEST_PG`; `CI=1` or
//!   `TETHER_REQUIRE_POSTGRES=1` make a missing database a failure). The server harness is
//!   the server's own test harness, `crates/server/tests/common`, included by path.
//! - `lost_answers.rs`: push answers dropped by a loopback proxy after the server applied the
//!   push; mutation ids make the retry and the next edit no conflict (both storages).
//! - `live_http.rs`: a live replica long-polling the server (both storages).
//! - `scale_out.rs`: three server instances on one PostgreSQL, replicas switching instance
//!   on every request; all converge.
//! - `benches/http_sync.rs`: an initial sync over HTTP, records/s, server CPU and bytes on
//!   the wire (`cargo bench -p tether-tests --bench http_sync`).
//!
//! The browser and Node scenarios against the server live with the npm package, in
//! `js/test` (they drive the `tether` binary of tether-cli). This library itself is empty.
