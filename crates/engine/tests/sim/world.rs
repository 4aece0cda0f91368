//! The world of one seed: a cloud, several replicas, the book of every edit and every cloud
//! write, and the steps that drive them.

use std::sync::{Mutex, MutexGuard};

use futures_executor::block_on;
use serde_json::{json, Value};
use tether_engine::cloud::Cloud;
use tether_engine::*;

use super::check;
use super::net::{Net, Recorder};
use super::subs;
use crate::Rng;

/// Replicas (MemoryStores); each is also edited by a second "tab" (another handle on it).
pub(super) const REPLICAS: usize = 3;
/// Keys `k0`..: few, so that edits, pushes and cloud writes collide.
pub(super) const KEYS: u64 = 6;
/// Keys the other writer touches (`k4`, `k5` are created by replicas only).
const CLOUD_KEYS: u64 = 4;
/// Steps per seed.
pub(super) const STEPS: usize = 24;
/// Most replicas a seed may add by cloning one (the "cloned replica" step).
const CLONES: usize = 2;

/// One local edit, as the user made it.
pub(super) struct Edit {
    pub id: usize,
    pub replica: usize,
    pub key: String,
    /// The visible state the user asked for (`None`: delete).
    pub state: Option<Data>,
    /// Cloud writes before the edit (an index into `Book::history`).
    pub h0: usize,
    /// The cloud's state of the key when the edit was made.
    pub cloud_at: Option<Data>,
    /// Highest conflict id of the replica's journal when the edit was made.
    pub floor: u64,
    /// Overwritten by a later edit of the same key on the same replica while still pending.
    pub superseded: bool,
}

/// One state the cloud took for a key.
pub(super) struct Write {
    pub key: String,
    pub state: Option<Data>,
    pub version: u64,
    /// The replica whose push wrote it; `None` for the other writer.
    pub by: Option<usize>,
}

/// Everything a seed did, for the checks and the step log.
#[derive(Default)]
pub(super) struct Book {
    pub edits: Vec<Edit>,
    pub history: Vec<Write>,
    /// (replica, key, version) of every base a replica's edit rested on when it was made.
    pub bases: Vec<(usize, String, u64)>,
    pub log: Vec<String>,
    pub seen: Vec<&'static str>,
    pub violations: Vec<String>,
    pub checks: u64,
    /// (copy, origin, edits made before the copy): a copied replica holds its origin's edits.
    pub copies: Vec<(usize, usize, usize)>,
    next_value: u64,
}

impl Book {
    pub(super) fn saw(&mut self, what: &'static str) {
        self.seen.push(what);
    }
    pub(super) fn note(&mut self, line: String) {
        self.log.push(line);
    }
    /// Whether replica `me` holds edit `e`: its own, or one its origin made before the copy.
    pub(super) fn holds(&self, me: usize, e: &Edit) -> bool {
        e.replica == me
            || self
                .copies
                .iter()
                .any(|&(copy, origin, before)| copy == me && e.id < before && self.holds(origin, e))
    }
}

pub(super) struct Shared<'a> {
    pub cloud: Cloud,
    pub rng: Rng,
    pub scope: ScopeId,
    book: &'a Mutex<Book>,
}

impl Shared<'_> {
    pub(super) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The other writer (the backend itself) writes `n` keys.
    pub(super) fn cloud_writes(&self, n: u64, why: &str) {
        for _ in 0..n {
            let id = format!("k{}", self.rng.below(CLOUD_KEYS));
            self.cloud_write(&id, why);
        }
    }

    pub(super) fn cloud_write(&self, id: &str, why: &str) {
        let mut b = self.book();
        if self.rng.chance(25) {
            if self.cloud.record(&self.scope, "c", id).is_none() {
                return;
            }
            let version = self.cloud.delete(&self.scope, "c", id, 0);
            b.note(format!("  cloud ({why}): delete {id} -> v{version}"));
            b.history.push(Write {
                key: id.into(),
                state: None,
                version,
                by: None,
            });
        } else {
            b.next_value += 1;
            let mut state = Data::new();
            state.insert("w".into(), json!(b.next_value));
            subs::tag(self, &mut state);
            let data = Value::Object(state);
            let version = self.cloud.put(&self.scope, "c", id, data.clone(), 0);
            b.note(format!("  cloud ({why}): put {id}={data} -> v{version}"));
            let Value::Object(state) = data else {
                unreachable!()
            };
            b.history.push(Write {
                key: id.into(),
                state: Some(state),
                version,
                by: None,
            });
        }
        b.saw("cloud-write");
    }
}

pub(super) fn clock() -> i64 {
    5
}

/// A random local edit (put, delete, revert to an earlier value, create then delete) of
/// replica `r` through a handle on its store.
pub(super) async fn local_edit(sh: &Shared<'_>, store: &MemoryStore, r: usize, tab: &str) {
    let id = format!("k{}", sh.rng.below(KEYS));
    let kind = sh.rng.below(10);
    let fresh = |sh: &Shared<'_>| {
        let mut b = sh.book();
        b.next_value += 1;
        let mut d = Data::new();
        d.insert("r".into(), json!(r));
        d.insert("n".into(), json!(b.next_value));
        drop(b);
        subs::tag(sh, &mut d);
        Some(d)
    };
    let states = match kind {
        0..=4 => vec![("put", fresh(sh))],
        5..=6 => vec![("delete", None)],
        7..=8 => {
            // Back to an earlier value of this replica, or to the cloud's current one.
            let mut earlier: Vec<Data> = sh
                .book()
                .edits
                .iter()
                .filter(|e| e.replica == r && e.key == id)
                .filter_map(|e| e.state.clone())
                .collect();
            earlier.extend(sh.cloud.record(&sh.scope, "c", &id).map(|(_, d)| d));
            if earlier.is_empty() {
                vec![("put", fresh(sh))]
            } else {
                let i = sh.rng.below(earlier.len() as u64) as usize;
                vec![("revert", Some(earlier.swap_remove(i)))]
            }
        }
        _ => vec![("create", fresh(sh)), ("then delete", None)],
    };
    for (what, state) in states {
        apply_edit(sh, store, r, &id, state, &format!("{tab} {what}")).await;
    }
}

async fn apply_edit(
    sh: &Shared<'_>,
    store: &MemoryStore,
    r: usize,
    id: &str,
    state: Option<Data>,
    what: &str,
) {
    let key = Key::new("c", id);
    let row = store.row(&sh.scope, &key).await.unwrap();
    let visible = row
        .as_ref()
        .and_then(|x| x.data.as_ref().map(|d| d.to_data().unwrap()));
    let shown = state
        .as_ref()
        .map_or("deleted".to_string(), |d| json!(d).to_string());
    if visible == state {
        // Nothing changes: the engine writes nothing, and the invariant covers the edit or
        // cloud state that made the visible one.
        sh.book().note(format!(
            "  r{r} {what} {id}={shown}: no-op (visible already)"
        ));
        return;
    }
    let conflicts = store.conflicts(&sh.scope).await.unwrap();
    let floor = conflicts.iter().map(|c| c.id).max().unwrap_or(0);
    {
        let mut b = sh.book();
        let superseded: Vec<usize> = b
            .edits
            .iter()
            .filter(|e| e.replica == r && e.key == id && !e.superseded)
            .filter(|e| !check::accepted(&b, e) && !check::journaled(e, &conflicts))
            .map(|e| e.id)
            .collect();
        for i in superseded {
            b.edits[i].superseded = true;
        }
    }
    let cloud_at = sh.cloud.record(&sh.scope, "c", id).map(|(_, d)| d);
    let base = row.as_ref().and_then(|x| x.cloud_hash.map(|_| x.version));
    let handle = ScopeHandle::new(store, sh.scope.clone());
    match &state {
        Some(d) => handle.put("c", id, Value::Object(d.clone())).await.unwrap(),
        None => handle.delete("c", id).await.unwrap(),
    }
    let mut b = sh.book();
    let n = b.edits.len();
    let h0 = b.history.len();
    b.note(format!(
        "  r{r} {what} {id}={shown}: edit #{n} (base {base:?}, cloud {})",
        cloud_at
            .as_ref()
            .map_or("none".into(), |d| json!(d).to_string())
    ));
    if let Some(v) = base {
        b.bases.push((r, id.to_string(), v));
    }
    b.edits.push(Edit {
        id: n,
        replica: r,
        key: id.to_string(),
        state,
        h0,
        cloud_at,
        floor,
        superseded: false,
    });
    b.saw("edit");
}

/// What one seed did.
#[derive(Default, Clone, Copy)]
pub(super) struct Figures {
    pub steps: u64,
    pub edits: u64,
    pub checks: u64,
    pub converged: u64,
    /// Replicas that were partial when the cloud quiesced.
    pub partial: u64,
}

/// Runs one seed; `Err` names the first broken promise (the step log is in `book`).
pub(super) fn run_seed(seed: u64, book: &Mutex<Book>) -> Result<Figures, String> {
    let sh = Shared {
        cloud: Cloud::new(),
        rng: Rng(std::sync::atomic::AtomicU64::new(
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        )),
        scope: ScopeId::new("sim").unwrap(),
        book,
    };
    sh.cloud_writes(sh.rng.below(6), "initial");
    let mut stores: Vec<MemoryStore> = (0..REPLICAS).map(|_| MemoryStore::new()).collect();
    for step in 0..STEPS {
        let r = sh.rng.below(stores.len() as u64) as usize;
        let roll = sh.rng.below(100);
        sh.book()
            .note(format!("step {step} (roll {roll}, replica r{r}):"));
        match roll {
            0..=24 => {
                for _ in 0..1 + sh.rng.below(3) {
                    let tab = if sh.rng.chance(50) { "tab1" } else { "tab2" };
                    block_on(local_edit(&sh, &stores[r], r, tab));
                }
            }
            25..=29 => block_on(subs::change(&sh, &stores[r], r, "tab1")),
            30..=59 => sync(&sh, &stores, r, true, None)?,
            60..=69 => sh.cloud_writes(1 + sh.rng.below(4), "other writer"),
            70..=75 => {
                stores[r] = MemoryStore::import(&stores[r].export()).unwrap();
                let mut b = sh.book();
                b.note(format!("  r{r} restarts from its snapshot"));
                b.saw("replica-restart");
            }
            76..=80 => reset(&sh),
            81..=87 => verify(&sh, &stores, r)?,
            88..=91 if stores.len() < REPLICAS + CLONES => {
                // A copied replica file (a restored backup, a VM snapshot): a new replica with
                // r's rows, outbox, unanswered marks and client id, editing on its own from
                // now on. Neither copy may overwrite what the other, or anyone, wrote.
                let clone = MemoryStore::import(&stores[r].export()).unwrap();
                stores.push(clone);
                let copy = stores.len() - 1;
                let mut b = sh.book();
                // The copy's pending edits rest on the bases r's edits rested on.
                let inherited: Vec<_> = b
                    .bases
                    .iter()
                    .filter(|(x, _, _)| *x == r)
                    .map(|(_, key, v)| (copy, key.clone(), *v))
                    .collect();
                b.bases.extend(inherited);
                let before = b.edits.len();
                b.copies.push((copy, r, before));
                b.note(format!("  r{r} is copied: r{copy}"));
                b.saw("cloned-replica");
            }
            _ => {
                // The server restarts mid-sync: every call after the first few fails; the
                // cloud keeps its state, the replica restarts from what it persisted.
                let calls = sh.rng.below(6) as i64;
                sync(&sh, &stores, r, true, Some(calls))?;
                stores[r] = MemoryStore::import(&stores[r].export()).unwrap();
                sh.book().saw("server-restart");
            }
        }
        if let Some(v) = sh.book().violations.first() {
            return Err(format!("step {step}: {v}"));
        }
        check::every_edit(&sh, &stores, false).map_err(|e| format!("step {step}: {e}"))?;
    }
    // The cloud quiesces: no faults, no edits, no other writer. Two rounds: the first pushes
    // every replica's outbox, the second brings each replica the others' pushes.
    sh.book().note("quiesce:".into());
    for round in 0..2 {
        for (r, store) in stores.iter().enumerate() {
            let rec = Recorder { sh: &sh, me: r };
            block_on(Syncer::new(store, &rec, &clock).sync(&sh.scope, SyncOptions::default()))
                .map_err(|e| format!("final sync {round} of r{r} failed: {e}"))?;
        }
    }
    let mut partial = 0;
    for (r, store) in stores.iter().enumerate() {
        let pending = block_on(store.pending_count(&sh.scope)).unwrap();
        if pending != 0 {
            return Err(format!("r{r}: {pending} edits pending after quiescence"));
        }
        let rec = Recorder { sh: &sh, me: r };
        let verified = block_on(Syncer::new(store, &rec, &clock).verify(&sh.scope, false))
            .map_err(|e| format!("final verify of r{r}: {e}"))?;
        if !verified.matched {
            return Err(format!(
                "r{r}: the final verify found a mismatch: {verified:?}"
            ));
        }
        let handle = ScopeHandle::new(store, sh.scope.clone());
        if block_on(handle.subscriptions()).unwrap().is_empty() {
            is_whole(&sh, store, r)?;
            continue;
        }
        partial += 1;
        subs::holds_its_subsets(&sh, store, r)?;
        // Back to whole: the next sync brings what the subscriptions left out.
        block_on(handle.set_subscriptions(Vec::new())).unwrap();
        block_on(Syncer::new(store, &rec, &clock).sync(&sh.scope, SyncOptions::default()))
            .map_err(|e| format!("r{r}'s sync back to whole failed: {e}"))?;
        is_whole(&sh, store, r).map_err(|e| format!("back to whole: {e}"))?;
    }
    if let Some(v) = sh.book().violations.first() {
        return Err(format!("quiesce: {v}"));
    }
    check::every_edit(&sh, &stores, true).map_err(|e| format!("after quiesce: {e}"))?;
    let b = sh.book();
    Ok(Figures {
        steps: STEPS as u64,
        edits: b.edits.len() as u64,
        checks: b.checks,
        converged: stores.len() as u64,
        partial,
    })
}

/// A quiet whole replica equals the cloud: totals, rows rehashed and every record.
fn is_whole(sh: &Shared<'_>, store: &MemoryStore, r: usize) -> Result<(), String> {
    let cloud_snap = sh.cloud.snapshot(&sh.scope);
    let state = block_on(store.scope_state(&sh.scope)).unwrap();
    let rows = block_on(store.range_snapshot(&sh.scope, &KeyRange::all(), true)).unwrap();
    if state.totals != cloud_snap || rows != cloud_snap {
        return Err(format!(
            "r{r} did not converge: totals {:?}, rows {:?}, cloud {:?}",
            state.totals, rows, cloud_snap
        ));
    }
    let handle = ScopeHandle::new(store, sh.scope.clone());
    for i in 0..KEYS {
        let id = format!("k{i}");
        let mine = block_on(handle.get("c", &id)).unwrap().map(|x| x.data);
        let theirs = sh.cloud.record(&sh.scope, "c", &id).map(|(_, d)| d);
        if mine != theirs {
            return Err(format!("r{r} {id}: {mine:?} but the cloud has {theirs:?}"));
        }
    }
    Ok(())
}

fn sync(
    sh: &Shared<'_>,
    stores: &[MemoryStore],
    r: usize,
    faults: bool,
    calls: Option<i64>,
) -> Result<(), String> {
    let net = Net::new(sh, stores, r, faults, calls);
    let opts = SyncOptions {
        page_size: 1 + sh.rng.below(8) as u32,
        full: sh.rng.chance(5),
        ..SyncOptions::default()
    };
    sh.book().note(format!(
        "  r{r} syncs (page {}, full {}, calls {calls:?})",
        opts.page_size, opts.full
    ));
    let result = block_on(Syncer::new(&stores[r], &net, &clock).sync(&sh.scope, opts));
    let totals = block_on(stores[r].scope_state(&sh.scope)).unwrap().totals;
    let mut b = sh.book();
    match result {
        Ok(rep) => {
            b.note(format!("  r{r} sync ok: {:?}", rep.run.counts));
            if rep.snapshot != totals {
                return Err(format!(
                    "r{r}: sync reported {:?}, totals {totals:?}",
                    rep.snapshot
                ));
            }
            if rep.run.counts.repaired > 0 {
                b.saw("repaired");
            }
            if rep.run.kind == RunKind::FullResync {
                b.saw("full-resync");
            }
            if rep.run.counts.conflicts > 0 {
                b.saw("conflict");
            }
            Ok(())
        }
        Err(e) if matches!(e.kind(), ErrorKind::Network) => {
            b.note(format!("  r{r} sync failed: {e}"));
            Ok(())
        }
        Err(e) => Err(format!(
            "r{r}: only injected network faults may fail a sync, got {e}"
        )),
    }
}

fn reset(sh: &Shared<'_>) {
    // Checkpoints behind the horizon get a 410 (the cloud's own reset; an injected
    // `reset_next` would also hit a replica's very first pull, which is a protocol error).
    let head = sh.cloud.put(&sh.scope, "c", "marker", json!({ "m": 1 }), 0);
    let horizon = head.saturating_sub(sh.rng.below(3));
    sh.cloud.purge_tombstones(&sh.scope, horizon);
    let mut b = sh.book();
    b.note(format!("  tombstones purged up to v{horizon}"));
    b.saw("reset");
}

fn verify(sh: &Shared<'_>, stores: &[MemoryStore], r: usize) -> Result<(), String> {
    let repair = sh.rng.chance(70);
    let partial = !block_on(stores[r].scope_state(&sh.scope))
        .unwrap()
        .subscriptions
        .is_empty();
    let pending = block_on(stores[r].pending_count(&sh.scope)).unwrap();
    let net = Net::new(sh, stores, r, false, None);
    let rep = block_on(Syncer::new(&stores[r], &net, &clock).verify(&sh.scope, repair))
        .map_err(|e| format!("r{r}: verify({repair}) failed: {e}"))?;
    let mut b = sh.book();
    b.note(format!(
        "  r{r} verify(repair {repair}): matched {}, repaired {}, matches now {}",
        rep.matched, rep.repaired, rep.matches_now
    ));
    b.saw(if repair { "verify-repair" } else { "verify" });
    if rep.repaired > 0 {
        b.saw("repaired");
    }
    if repair && !rep.matches_now {
        // A partial replica selects a row with a pending edit by its visible data, which its
        // cloud state need not match, and its repair leaves pending edits to the push
        // (docs/partial-sync.md): with edits pending its comparison is not conclusive.
        if partial && pending > 0 {
            b.saw("verify-partial-pending");
            return Ok(());
        }
        return Err(format!("r{r}: verify(repair) left a mismatch"));
    }
    Ok(())
}
