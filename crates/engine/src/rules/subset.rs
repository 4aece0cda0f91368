//! Planning for a partial replica (docs/partial-sync.md): a subset page with its move-out
//! markers, and the eviction of what no subscription selects. Pure, like the rest of the rules.

use crate::digest::RecordHash;
use crate::error::{Detail, Error, Result};
use crate::subscription::{Held, Subscription, SubsetPage};
use crate::types::{Checkpoint, Key, Millis};

use super::plan::{apply_one, check_version};
use super::validate::valid_changes;
use super::{Changeset, Incoming, Prior, Row, RowWrite, ScopeState, Source};

/// A subset page, validated: the changes as for any page, the markers as keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSubsetPage {
    /// Live records of the subscription and tombstones of its collection, in key order.
    pub changes: Vec<Incoming>,
    /// Keys whose state at the version given is outside the subscription, in key order, none
    /// of them in `changes`.
    pub outside: Vec<(Key, u64)>,
    /// Position after this page.
    pub checkpoint: Checkpoint,
    /// More pages follow.
    pub has_more: bool,
    /// Estimated changes still to come.
    pub remaining: Option<u64>,
}

impl ValidSubsetPage {
    /// The keys a store reads for the page: its changes', then its markers'.
    pub fn keys(&self) -> Vec<Key> {
        let changes = self.changes.iter().map(|c| c.key.clone());
        changes
            .chain(self.outside.iter().map(|(k, _)| k.clone()))
            .collect()
    }
}

/// Validates a page pulled for `sub`: it answers `sub` (a server that does not know
/// subscriptions answers the whole scope, which must not be stored as a subset), has a
/// checkpoint, and every change and marker is of `sub`'s collection, every live record in
/// `sub` (a server that filtered wrongly would fill the replica with what it did not ask
/// for); each record's hash is checked as on any page. The caller checks that every version
/// fits a store, markers' too (`sync::check_versions`).
pub fn validate_subset_page(page: SubsetPage, sub: &Subscription) -> Result<ValidSubsetPage> {
    let malformed = |m: String| Error::protocol(m).with_detail(Detail::Malformed);
    if page.subscription != *sub {
        return Err(malformed(format!(
            "asked for the subscription {} and got a page of {}",
            sub.encode(),
            page.subscription.encode()
        )));
    }
    if page.checkpoint.0.is_empty() {
        return Err(
            Error::protocol("page has no checkpoint").with_detail(Detail::CheckpointMissing)
        );
    }
    let changes = valid_changes(page.changes)?;
    for c in &changes {
        if c.key.collection != sub.collection {
            return Err(malformed(format!(
                "a page of {} holds {}/{}, of another collection",
                sub.encode(),
                c.key.collection,
                c.key.id
            )));
        }
        if let Some((doc, _)) = &c.state {
            if !sub.matches(&sub.collection, &doc.to_data()?) {
                return Err(malformed(format!(
                    "a page of {} holds {}/{}, which it does not select",
                    sub.encode(),
                    c.key.collection,
                    c.key.id
                )));
            }
        }
    }
    let mut outside = Vec::with_capacity(page.outside.len());
    for o in page.outside {
        let key = Key::new(o.collection, o.id);
        key.validate()
            .map_err(|e| malformed(format!("a move-out marker has a bad key: {e}")))?;
        if key.collection != sub.collection {
            return Err(malformed(format!(
                "a page of {} has a marker for {}/{}, of another collection",
                sub.encode(),
                key.collection,
                key.id
            )));
        }
        outside.push((key, o.version));
    }
    // Highest version first within a key; a key sent as a change and a marker keeps the later.
    crate::sort::sort_by(&mut outside, |a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    outside.dedup_by(|later, first| later.0 == first.0);
    outside.retain(
        |(key, version)| match changes.binary_search_by(|c| c.key.cmp(key)) {
            Ok(i) => changes[i].version < *version,
            Err(_) => true,
        },
    );
    let changes = match outside.is_empty() {
        true => changes,
        false => changes
            .into_iter()
            .filter(|c| outside.binary_search_by(|(k, _)| k.cmp(&c.key)).is_err())
            .collect(),
    };
    Ok(ValidSubsetPage {
        changes,
        outside,
        checkpoint: page.checkpoint,
        has_more: page.has_more,
        remaining: page.remaining,
    })
}

/// Whether a held row's data is selected by any of `subscriptions` (a pending delete, which
/// has no data, by none).
pub fn selected(subscriptions: &[&Subscription], row: &Row) -> Result<bool> {
    let Some(doc) = &row.data else {
        return Ok(false);
    };
    let wanted: Vec<&&Subscription> = subscriptions
        .iter()
        .filter(|s| s.collection == row.key.collection)
        .collect();
    if wanted.is_empty() {
        return Ok(false);
    }
    let data = doc.to_data()?;
    Ok(wanted.iter().any(|s| s.matches(&row.key.collection, &data)))
}

/// Plans a page of the held subscription `encoded` (its [`Subscription::encode`]):
///
/// - each change is applied as on any page (pending edits follow the same rules), except that
///   a state older than the one held is old news (another subscription delivered a newer one);
/// - each marker `(key, v)` of a held row evicts it, unless the row has a pending edit (it
///   stays until the edit is answered), holds a newer version than `v`, or holds version `v`
///   and another subscription selects it (then the state at `v` is in that subscription);
/// - the subscription's checkpoint moves to the page's, and it is complete on its last page.
///
/// A subscription no longer held (removed while the page was in flight), or no longer at
/// `from`, the checkpoint the page was pulled from (removed and declared again, or restarted,
/// meanwhile), changes nothing: the page does not continue where the subscription stands.
#[allow(clippy::too_many_arguments)]
pub fn plan_subset_page(
    scope_name: &str,
    state: &ScopeState,
    encoded: &str,
    from: Option<&Checkpoint>,
    page: ValidSubsetPage,
    rows: &[Option<Row>],
    unanswered: &[(Key, Option<RecordHash>)],
    now: Millis,
) -> Result<Changeset> {
    let mut out = Changeset::starting_from(state, Source::Pull);
    let Some(index) =
        held_index(state, encoded).filter(|&i| state.subscriptions[i].checkpoint.as_ref() == from)
    else {
        return Ok(out);
    };
    if rows.len() != page.changes.len() + page.outside.len() {
        return Err(Error::storage(format!(
            "store returned {} rows for {} keys",
            rows.len(),
            page.changes.len() + page.outside.len()
        )));
    }
    let (change_rows, marker_rows) = rows.split_at(page.changes.len());
    let generation = state.generation;
    for (slot, (inc, row)) in page.changes.into_iter().zip(change_rows).enumerate() {
        if let Some(r) = row.as_ref().filter(|r| r.cloud_hash.is_some()) {
            if inc.version < r.version {
                continue;
            }
            check_version(r, &inc)?;
        }
        let row = row.as_ref().map(|r| (Prior::of(slot, r), r));
        let ours = row.is_some_and(|(_, r)| r.pending.is_some())
            && unanswered
                .iter()
                .any(|(k, h)| *k == inc.key && *h == inc.hash());
        apply_one(scope_name, &mut out, inc, row, ours, generation, now)?;
    }
    let others: Vec<&Subscription> = state
        .subscriptions
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != index)
        .map(|(_, h)| &h.subscription)
        .collect();
    let first = change_rows.len();
    for (i, ((key, version), row)) in page.outside.into_iter().zip(marker_rows).enumerate() {
        let Some(r) = row else { continue };
        if r.pending.is_some() || r.version > version {
            continue;
        }
        if r.version == version && selected(&others, r)? {
            continue;
        }
        evict(&mut out, key, first + i, r);
    }
    let held = &mut out.scope.subscriptions[index];
    held.checkpoint = Some(page.checkpoint);
    held.complete |= !page.has_more;
    Ok(out)
}

/// Plans the eviction of the given rows that no held subscription selects (`rows[i]` is the
/// row of the i-th key read); rows with a pending edit stay. With no subscription (a whole
/// scope) nothing is evicted.
pub fn plan_evict(state: &ScopeState, rows: &[Option<Row>]) -> Result<Changeset> {
    if state.subscriptions.is_empty() {
        return Ok(Changeset::starting_from(state, Source::Subscriptions));
    }
    let subs: Vec<&Subscription> = state
        .subscriptions
        .iter()
        .map(|h| &h.subscription)
        .collect();
    plan_evict_unless(state, &subs, rows)
}

/// Plans the eviction of the given rows that none of `keep` selects (all of them if `keep`
/// is empty); rows with a pending edit stay.
pub fn plan_evict_unless(
    state: &ScopeState,
    keep: &[&Subscription],
    rows: &[Option<Row>],
) -> Result<Changeset> {
    let mut out = Changeset::starting_from(state, Source::Subscriptions);
    for (slot, row) in rows.iter().enumerate() {
        let Some(r) = row else { continue };
        if r.pending.is_some() || selected(keep, r)? {
            continue;
        }
        evict(&mut out, r.key.clone(), slot, r);
    }
    Ok(out)
}

/// The position of the held subscription encoded as `encoded`.
pub fn held_index(state: &ScopeState, encoded: &str) -> Option<usize> {
    state
        .subscriptions
        .iter()
        .position(|h: &Held| h.subscription.encode() == encoded)
}

fn evict(out: &mut Changeset, key: Key, slot: usize, row: &Row) {
    if let Some(l) = row.leaf() {
        out.scope.totals.remove(&l);
    }
    out.counts.deleted += 1;
    out.rows.push(RowWrite::Remove {
        key,
        prior: Prior::of(slot, row),
        evict: true,
    });
}
