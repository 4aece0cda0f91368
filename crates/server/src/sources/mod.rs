//! Declared sources: rows of an application's own PostgreSQL tables mirrored into `records`
//! (docs/server.md, "Declared sources").

// Used by the capture and backfill paths, which land separately.
#[allow(dead_code)]
pub(crate) mod values;
