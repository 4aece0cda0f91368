//! A page source that streams the generated dataset: page `k` is records `k*limit..`, built
//! when pulled, so memory does not grow with the record count. Time spent building pages (the
//! cloud's work: generating data, hashing it) is measured so it can be taken out of the
//! engine's time; the raw baseline gets the very same pages from [`Source::page`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tether_dataset::{Dataset, GenRecord};
use tether_engine::digest::{leaf, record_hash, Snapshot};
use tether_engine::{Change, Checkpoint, Error, Page, Pulled, Remote, Result, ScopeId};

/// 2026-01-01T00:00:00Z, the cloud's `updated_at` of every generated record.
const UPDATED_AT: &str = "2026-01-01T00:00:00.000Z";

pub(crate) struct Source {
    ds: Dataset,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Count and digest of the records served so far by the initial download.
    served: Snapshot,
    /// Time spent building pages.
    building: Duration,
    /// The batch of changes an incremental pull answers with: (round, record indices).
    changes: Option<(u64, Vec<u64>)>,
}

impl Source {
    pub(crate) fn new(ds: Dataset) -> Self {
        Source {
            ds,
            state: Mutex::new(State::default()),
        }
    }

    /// The changes of initial page `k` (pages of `limit`).
    pub(crate) fn page(&self, k: u64, limit: u64) -> Vec<Change> {
        let start = k * limit;
        let end = (start + limit).min(self.ds.len());
        (start..end)
            .map(|i| change(self.ds.record(i), i + 1))
            .collect()
    }

    /// Time spent building pages so far.
    pub(crate) fn building(&self) -> Duration {
        self.lock().building
    }

    /// Makes the next incremental pull answer with `indices` changed in `round`.
    pub(crate) fn set_changes(&self, round: u64, indices: Vec<u64>) {
        self.lock().changes = Some((round, indices));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pull_now(&self, checkpoint: Option<&Checkpoint>, limit: u32) -> Result<Page> {
        let started = Instant::now();
        let limit = u64::from(limit);
        let mut st = self.lock();
        let page = match checkpoint.map(|c| c.as_str()) {
            None => self.initial(&mut st, 0, limit),
            Some(c) if c.starts_with("i:") => {
                let k = c[2..]
                    .parse()
                    .map_err(|_| Error::protocol("bad checkpoint"))?;
                self.initial(&mut st, k, limit)
            }
            Some(_) => self.incremental(&mut st),
        };
        st.building += started.elapsed();
        Ok(page)
    }

    fn initial(&self, st: &mut State, k: u64, limit: u64) -> Page {
        let changes = self.page(k, limit);
        for c in &changes {
            let h = c.hash.as_deref().unwrap_or_default().parse().unwrap();
            st.served.insert(&leaf(&c.collection, &c.id, &h));
        }
        let has_more = (k + 1) * limit < self.ds.len();
        Page {
            changes,
            checkpoint: Some(Checkpoint(if has_more {
                format!("i:{}", k + 1)
            } else {
                "done:0".into()
            })),
            has_more,
            remaining: Some(self.ds.len().saturating_sub((k + 1) * limit)),
            snapshot: (!has_more).then_some(st.served),
        }
    }

    fn incremental(&self, st: &mut State) -> Page {
        let (round, indices) = st.changes.take().unwrap_or((0, Vec::new()));
        let mut changes = Vec::with_capacity(indices.len());
        for (n, &i) in indices.iter().enumerate() {
            let old = self.ds.record(i);
            let old_hash = record_hash(&old.data);
            st.served.remove(&leaf(old.collection, &old.id, &old_hash));
            let new = self.ds.version_of(i, round);
            let c = change(new, self.ds.len() * round + n as u64 + 1);
            let h = c.hash.as_deref().unwrap_or_default().parse().unwrap();
            st.served.insert(&leaf(&c.collection, &c.id, &h));
            changes.push(c);
        }
        Page {
            changes,
            checkpoint: Some(Checkpoint(format!("done:{round}"))),
            has_more: false,
            remaining: Some(0),
            snapshot: Some(st.served),
        }
    }
}

fn change(r: GenRecord, version: u64) -> Change {
    Change::live(r.collection, r.id, version, UPDATED_AT, &r.data)
}

impl Remote for Source {
    async fn pull(
        &self,
        _scope: &ScopeId,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<Pulled> {
        Ok(Pulled::Page {
            page: self.pull_now(checkpoint, limit)?,
            bytes: 0,
        })
    }
}
