//! Partial replicas in the simulation (docs/partial-sync.md): the fields subscriptions filter
//! on, the subscription changes a replica makes (set, add, remove, narrow, widen, back to
//! whole, with priorities), and the check that a quiet partial replica holds exactly the
//! cloud's subsets.

use std::collections::BTreeMap;

use futures_executor::block_on;
use serde_json::json;
use tether_engine::digest::{leaf, Snapshot};
use tether_engine::subscription::Subscription;
use tether_engine::*;

use super::world::Shared;

/// Values of `g`, which every record state carries.
const GROUPS: [&str; 3] = ["a", "b", "c"];
/// Values of `h`, which most record states carry (a state without it matches no filter on it).
const LEVELS: [u64; 2] = [0, 1];
/// Priorities subscriptions take (0 the highest).
const PRIORITIES: u64 = 3;

/// Adds the members subscriptions filter on to a new record state.
pub(super) fn tag(sh: &Shared<'_>, d: &mut Data) {
    d.insert("g".into(), json!(GROUPS[sh.rng.below(3) as usize]));
    if sh.rng.chance(70) {
        d.insert("h".into(), json!(LEVELS[sh.rng.below(2) as usize]));
    }
}

/// A non-empty random part of `all`.
fn some_of<T: Copy>(sh: &Shared<'_>, all: &[T]) -> Vec<T> {
    loop {
        let picked: Vec<T> = all.iter().copied().filter(|_| sh.rng.chance(50)).collect();
        if !picked.is_empty() {
            return picked;
        }
    }
}

/// A random subscription: mostly `c` by `g` (and `h`), sometimes all of `c`, sometimes `d`
/// (a collection nobody writes: it selects nothing).
fn random(sh: &Shared<'_>) -> Subscription {
    if sh.rng.chance(8) {
        return Subscription::new("d");
    }
    if sh.rng.chance(20) {
        return Subscription::new("c");
    }
    let sub =
        Subscription::new("c").with_filter("g", some_of(sh, &GROUPS).into_iter().map(|g| json!(g)));
    if sh.rng.chance(30) {
        return sub.with_filter("h", some_of(sh, &LEVELS).into_iter().map(|h| json!(h)));
    }
    sub
}

fn priority(sh: &Shared<'_>) -> u8 {
    sh.rng.below(PRIORITIES) as u8
}

/// `sub` selecting less: a value fewer, a filter more, or (all of `c`) a filtered one.
fn narrower(sh: &Shared<'_>, sub: &Subscription) -> Option<Subscription> {
    if sub.collection != "c" {
        return None;
    }
    if sub.filters.is_empty() {
        return Some(random(sh)).filter(|s| s.collection == "c" && !s.filters.is_empty());
    }
    let mut out = sub.clone();
    let has_h = out.filters.contains_key("h");
    let several = out
        .filters
        .iter()
        .find(|(_, v)| v.len() > 1)
        .map(|(p, _)| p.clone());
    match several {
        Some(path) if !has_h || sh.rng.chance(70) => {
            let mut values = out.filters[&path].clone();
            values.remove(sh.rng.below(values.len() as u64) as usize);
            out = out.with_filter(path, values);
        }
        _ if !has_h => out = out.with_filter("h", [json!(LEVELS[sh.rng.below(2) as usize])]),
        _ => return None,
    }
    Some(out)
}

/// `sub` selecting more: a value more, or a filter fewer.
fn wider(sh: &Shared<'_>, sub: &Subscription) -> Option<Subscription> {
    if sub.collection != "c" || sub.filters.is_empty() {
        return None;
    }
    let mut out = sub.clone();
    let paths: Vec<String> = out.filters.keys().cloned().collect();
    let path = &paths[sh.rng.below(paths.len() as u64) as usize];
    let all: Vec<serde_json::Value> = match path.as_str() {
        "g" => GROUPS.iter().map(|g| json!(g)).collect(),
        _ => LEVELS.iter().map(|h| json!(h)).collect(),
    };
    let missing: Vec<_> = all
        .into_iter()
        .filter(|v| !out.filters[path].contains(v))
        .collect();
    if missing.is_empty() || sh.rng.chance(30) {
        out.filters.remove(path);
    } else {
        let mut values = out.filters[path].clone();
        values.push(missing[sh.rng.below(missing.len() as u64) as usize].clone());
        out = out.with_filter(path.clone(), values);
    }
    Some(out)
}

/// One random change of replica `r`'s subscriptions, through a handle on its store (`who`
/// says which tab, for the log). Never fails: the store is in memory and the list is valid.
pub(super) async fn change(sh: &Shared<'_>, store: &MemoryStore, r: usize, who: &str) {
    let handle = ScopeHandle::new(store, sh.scope.clone());
    let held: Vec<(Subscription, u8)> = handle
        .subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.subscription, h.priority))
        .collect();
    let pick = |sh: &Shared<'_>| held[sh.rng.below(held.len() as u64) as usize].clone();
    let (what, wanted): (&'static str, Vec<(Subscription, u8)>) = match sh.rng.below(10) {
        _ if held.is_empty() => {
            let n = 1 + sh.rng.below(3);
            (
                "subscribe-set",
                (0..n).map(|_| (random(sh), priority(sh))).collect(),
            )
        }
        0..=1 => {
            let n = 1 + sh.rng.below(3);
            (
                "subscribe-set",
                (0..n).map(|_| (random(sh), priority(sh))).collect(),
            )
        }
        2..=3 => {
            // A new subscription, or a held one at another priority.
            let sub = if sh.rng.chance(70) {
                random(sh)
            } else {
                pick(sh).0
            };
            let mut w: Vec<_> = held.iter().filter(|(s, _)| *s != sub).cloned().collect();
            w.push((sub, priority(sh)));
            ("subscribe-add", w)
        }
        4..=5 => {
            let gone = pick(sh).0;
            let w = held.iter().filter(|(s, _)| *s != gone).cloned().collect();
            ("subscribe-remove", w)
        }
        6..=7 => {
            let (old, p) = pick(sh);
            let Some(new) = narrower(sh, &old) else {
                return;
            };
            ("subscribe-narrow", replace(&held, &old, new, p))
        }
        8 => {
            let (old, p) = pick(sh);
            let Some(new) = wider(sh, &old) else { return };
            ("subscribe-widen", replace(&held, &old, new, p))
        }
        _ => ("subscribe-whole", Vec::new()),
    };
    // A random set may name one subscription twice, which the engine refuses.
    let mut wanted = wanted;
    let mut i = 0;
    while i < wanted.len() {
        if wanted[..i].iter().any(|(s, _)| *s == wanted[i].0) {
            wanted.remove(i);
        } else {
            i += 1;
        }
    }
    let shown: Vec<String> = wanted
        .iter()
        .map(|(s, p)| format!("{}@{p}", s.encode()))
        .collect();
    let evicted = handle.set_subscriptions(wanted).await.unwrap();
    let mut b = sh.book();
    b.note(format!(
        "  r{r} {who} {what}: [{}], {evicted} evicted",
        shown.join(", ")
    ));
    b.saw(what);
}

/// `held` with `old` replaced by `new` (dropped if `new` is already held).
fn replace(
    held: &[(Subscription, u8)],
    old: &Subscription,
    new: Subscription,
    p: u8,
) -> Vec<(Subscription, u8)> {
    let mut w: Vec<_> = held
        .iter()
        .filter(|(s, _)| s != old && *s != new)
        .cloned()
        .collect();
    w.push((new, p));
    w
}

/// A quiet partial replica holds, for each subscription, exactly the cloud's subset (same
/// keys and data; the same count and digest), every subscription complete, and
/// nothing no subscription selects (the caller has checked that no edit is pending).
pub(super) fn holds_its_subsets(
    sh: &Shared<'_>,
    store: &MemoryStore,
    r: usize,
) -> Result<(), String> {
    let state = block_on(store.scope_state(&sh.scope)).unwrap();
    let all = KeyRange::all();
    let mut wanted: BTreeMap<Key, Change> = BTreeMap::new();
    let mut rows: BTreeMap<Key, Row> = BTreeMap::new();
    for key in block_on(store.range_keys(&sh.scope, &all, usize::MAX)).unwrap() {
        let row = block_on(store.row(&sh.scope, &key)).unwrap().unwrap();
        rows.insert(key, row);
    }
    for held in &state.subscriptions {
        let sub = &held.subscription;
        if !held.complete {
            return Err(format!("r{r}: {} is not complete", sub.encode()));
        }
        let mut mine = Snapshot::default();
        for (key, row) in &rows {
            let data = row.data.as_ref().map(|d| d.to_data().unwrap());
            if data.is_some_and(|d| sub.matches(&key.collection, &d)) {
                mine.insert(&leaf(&key.collection, &key.id, &row.cloud_hash.unwrap()));
            }
        }
        let cloud = sh.cloud.subset_digest_now(&sh.scope, sub, &all);
        if (mine.count, mine.digest) != (cloud.count, cloud.digest) {
            return Err(format!(
                "r{r}: holds {} rows of {}, the cloud's subset has {}",
                mine.count,
                sub.encode(),
                cloud.count
            ));
        }
        for c in sh.cloud.subset_records_now(&sh.scope, sub, &all) {
            wanted.insert(Key::new(&c.collection, &c.id), c);
        }
    }
    for (key, row) in &rows {
        let Some(c) = wanted.get(key) else {
            return Err(format!(
                "r{r} holds {}/{} (v{}), which no subscription selects",
                key.collection, key.id, row.version
            ));
        };
        let theirs: Data = serde_json::from_str(c.data.as_ref().unwrap().get()).unwrap();
        let mine = row.data.as_ref().map(|d| d.to_data().unwrap());
        // Versions are not compared: a state rewritten with the same data has the same leaf,
        // and a replica that missed that rewrite is as converged as a whole one would be.
        if mine.as_ref() != Some(&theirs) {
            return Err(format!(
                "r{r} {}/{}: v{} {mine:?}, the cloud's subset has v{} {theirs:?}",
                key.collection, key.id, row.version, c.version
            ));
        }
    }
    if let Some(key) = wanted.keys().find(|k| !rows.contains_key(*k)) {
        return Err(format!(
            "r{r} lacks {}/{}, which a subscription selects",
            key.collection, key.id
        ));
    }
    let rehashed = block_on(store.range_snapshot(&sh.scope, &all, true)).unwrap();
    if state.totals != rehashed {
        return Err(format!(
            "r{r}: totals {:?}, its rows rehashed {rehashed:?}",
            state.totals
        ));
    }
    Ok(())
}
