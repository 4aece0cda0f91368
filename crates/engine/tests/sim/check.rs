//! The promise, checked: every local edit ever made is accepted by the cloud, pending in its
//! replica's outbox, in its replica's conflict journal with its data, or superseded.
//!
//! - **Accepted**: the cloud took the edit's state for its key after the edit was made (a
//!   write in the recorded history at or after `h0`); or the cloud already held that state
//!   when the edit was made and the next write of the key (if any) is not this replica pushing
//!   a state none of its later edits asked for (an older, superseded edit landing after it).
//! - **Pending**: it is the replica's latest edit of the key, and the row has an outbox entry
//!   whose data equals the edit's state.
//! - **Journaled**: the replica's journal has an entry for the key, newer than the edit, with
//!   the edit's op and data.
//! - **Superseded**: a later edit of the same key on the same replica was made while this one
//!   was neither accepted nor journaled (coalescing in the outbox; the later edit carries the
//!   user's intent, and is itself checked).
//!
//! Anything else is a lost edit.

use futures_executor::block_on;
use tether_engine::*;

use super::world::{Book, Edit, Shared, KEYS};

pub(super) fn accepted(b: &Book, e: &Edit) -> bool {
    let mut later = b.history[e.h0..].iter().filter(|w| w.key == e.key);
    if later.clone().any(|w| w.state == e.state) {
        return true;
    }
    if e.cloud_at != e.state {
        return false;
    }
    match later.next() {
        None => true,
        Some(w) if w.by != Some(e.replica) => true,
        Some(w) => b
            .edits
            .iter()
            .any(|x| x.replica == e.replica && x.key == e.key && x.id > e.id && x.state == w.state),
    }
}

pub(super) fn journaled(e: &Edit, conflicts: &[Conflict]) -> bool {
    conflicts.iter().any(|c| {
        c.record_id == e.key
            && c.id > e.floor
            && (c.local_op == Op::Delete) == e.state.is_none()
            && c.local_data == e.state
    })
}

/// Checks every edit; with `settled`, none may be pending any more.
pub(super) fn every_edit(
    sh: &Shared<'_>,
    stores: &[MemoryStore],
    settled: bool,
) -> Result<(), String> {
    for (r, store) in stores.iter().enumerate() {
        let conflicts = block_on(store.conflicts(&sh.scope)).unwrap();
        let rows: Vec<(String, Option<Row>)> = (0..KEYS)
            .map(|i| {
                let id = format!("k{i}");
                let row = block_on(store.row(&sh.scope, &Key::new("c", &id))).unwrap();
                (id, row)
            })
            .collect();
        let mut b = sh.book();
        let mut checked = 0;
        for e in b.edits.iter().filter(|e| e.replica == r) {
            checked += 1;
            if e.superseded || accepted(&b, e) || journaled(e, &conflicts) {
                continue;
            }
            let latest = !b
                .edits
                .iter()
                .any(|x| x.replica == r && x.key == e.key && x.id > e.id);
            let row = rows
                .iter()
                .find(|(k, _)| *k == e.key)
                .and_then(|(_, x)| x.as_ref());
            let pending = latest
                && row.is_some_and(|x| {
                    x.pending.is_some() && x.data.as_ref().map(|d| d.to_data().unwrap()) == e.state
                });
            if pending && !settled {
                continue;
            }
            return Err(format!(
                "edit #{} of r{r} ({} := {:?}) is lost: not accepted, {}, not journaled; row {row:?}",
                e.id,
                e.key,
                e.state,
                if pending { "still pending after quiescence" } else { "not pending" },
            ));
        }
        b.checks += checked;
    }
    Ok(())
}
