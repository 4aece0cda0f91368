//! The in-process cloud's subsets (protocol v1.2, docs/partial-sync.md): the same answers as
//! the reference server's, over the cloud's feed, so that engine tests and the simulation can
//! drive partial replicas without a server.

use super::{change_of, Cloud, Cursor, Stored};
use crate::error::Result;
use crate::subscription::{Outside, PulledSubset, Subscription, SubsetPage, SubsetSnapshot};
use crate::types::{Checkpoint, Key, KeyRange, ScopeId};

impl Cloud {
    /// Answers a subset pull synchronously (what [`Remote::pull_subset`](crate::Remote) does):
    /// during an initial download the live records of `sub`; after it, every change of its
    /// collection, as the record when its live state is in `sub`, as a tombstone when deleted,
    /// and as an [`Outside`] entry otherwise. Checkpoints are those of [`Cloud::pull_now`].
    pub fn pull_subset_now(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        checkpoint: Option<&Checkpoint>,
        limit: u32,
    ) -> Result<PulledSubset> {
        let mut inner = self.lock();
        inner.pulls += 1;
        let s = inner.scope(scope);
        let cursor = match checkpoint {
            None => Cursor::Initial {
                head: s.seq,
                after: 0,
            },
            Some(c) => Cursor::parse(&c.0)?,
        };
        let stale = match cursor {
            Cursor::Initial { head, .. } => head < s.horizon,
            Cursor::Feed(after) => after < s.horizon,
        };
        if stale {
            return Ok(PulledSubset::Reset);
        }
        let limit = limit.clamp(1, 10_000) as usize;
        let inside = |key: &Key, r: &Stored| {
            r.state
                .as_ref()
                .is_some_and(|(data, _)| sub.matches(&key.collection, data))
        };
        let (mut changes, mut outside) = (Vec::new(), Vec::new());
        let (mut next, mut has_more) = (cursor, false);
        if let Cursor::Initial { head, after } = cursor {
            let mut last = after;
            for (v, key) in s.feed.range(after + 1..=head) {
                let r = &s.records[key];
                if !inside(key, r) {
                    continue;
                }
                if changes.len() == limit {
                    has_more = true;
                    break;
                }
                last = *v;
                changes.push(change_of(key, r));
            }
            next = if has_more {
                Cursor::Initial { head, after: last }
            } else {
                Cursor::Feed(head)
            };
        }
        if let (Cursor::Feed(after), false) = (next, has_more) {
            for (v, key) in s.feed.range(after + 1..) {
                if key.collection != sub.collection {
                    continue;
                }
                if changes.len() + outside.len() == limit {
                    has_more = true;
                    break;
                }
                next = Cursor::Feed(*v);
                let r = &s.records[key];
                if r.state.is_none() || inside(key, r) {
                    changes.push(change_of(key, r));
                } else {
                    outside.push(Outside {
                        collection: key.collection.clone(),
                        id: key.id.clone(),
                        version: r.version,
                    });
                }
            }
            if !has_more {
                next = Cursor::Feed(s.seq);
            }
        }
        let position = match next {
            Cursor::Initial { after, .. } | Cursor::Feed(after) => after,
        };
        Ok(PulledSubset::Page {
            page: SubsetPage {
                subscription: sub.clone(),
                changes,
                outside,
                checkpoint: Checkpoint(next.to_string()),
                has_more,
                remaining: Some(if has_more {
                    s.seq.saturating_sub(position)
                } else {
                    0
                }),
            },
            bytes: 0,
        })
    }

    /// Count and digest of the live records of `sub` in `range`, at the scope's head.
    pub fn subset_digest_now(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> SubsetSnapshot {
        let head = self.lock().scopes.get(scope).map_or(0, |s| s.seq);
        let snap = self.range_live(scope, range, |it| {
            let mut snap = crate::digest::Snapshot::default();
            for (k, r) in it {
                if let Some((data, h)) = &r.state {
                    if sub.matches(&k.collection, data) {
                        snap.insert(&crate::digest::leaf(&k.collection, &k.id, h));
                    }
                }
            }
            snap
        });
        SubsetSnapshot {
            count: snap.count,
            digest: snap.digest,
            checkpoint: Checkpoint(head.to_string()),
        }
    }

    /// The live records of `sub` in `range`, in key order.
    pub fn subset_records_now(
        &self,
        scope: &ScopeId,
        sub: &Subscription,
        range: &KeyRange,
    ) -> Vec<crate::types::Change> {
        self.range_live(scope, range, |it| {
            it.filter(|(k, r)| {
                r.state
                    .as_ref()
                    .is_some_and(|(d, _)| sub.matches(&k.collection, d))
            })
            .map(|(k, r)| change_of(k, r))
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use crate::cloud::Cloud;
    use crate::digest::{leaf, Snapshot};
    use crate::subscription::{PulledSubset, Subscription};
    use crate::types::{Checkpoint, KeyRange, ScopeId};
    use crate::Remote;

    /// Pulls `sub` to the end through the `Remote` trait; returns what a replica of it holds
    /// (id -> repository) after applying the pages to `held`, and the last checkpoint.
    fn sync(
        cloud: &Cloud,
        sub: &Subscription,
        held: &mut BTreeMap<String, String>,
        mut from: Option<Checkpoint>,
    ) -> Checkpoint {
        loop {
            let pulled = futures_executor::block_on(cloud.pull_subset(
                &ScopeId::new("s").unwrap(),
                sub,
                from.as_ref(),
                3,
            ))
            .unwrap();
            let PulledSubset::Page { page, .. } = pulled else {
                panic!("reset")
            };
            for c in &page.changes {
                assert_eq!(c.collection, "files");
                match &c.data {
                    Some(d) => {
                        let d: serde_json::Value = serde_json::from_str(d.get()).unwrap();
                        held.insert(c.id.clone(), d["repository"].as_str().unwrap().into());
                    }
                    None => {
                        held.remove(&c.id);
                    }
                }
            }
            for o in &page.outside {
                held.remove(&o.id);
            }
            from = Some(page.checkpoint.clone());
            if !page.has_more {
                return page.checkpoint;
            }
        }
    }

    #[test]
    fn a_partial_replica_follows_moves_and_deletes_and_verifies() {
        let cloud = Cloud::new();
        let s = ScopeId::new("s").unwrap();
        for i in 0..20 {
            let repo = format!("r{}", i % 4);
            cloud.put(
                &s,
                "files",
                &format!("f{i:02}"),
                json!({"repository": repo}),
                1,
            );
            cloud.put(
                &s,
                "objects",
                &format!("o{i:02}"),
                json!({"repository": "r1"}),
                1,
            );
        }
        let sub = Subscription::new("files").with_filter("repository", [json!("r1")]);
        let mut held = BTreeMap::new();
        let at = sync(&cloud, &sub, &mut held, None);
        let want = |cloud: &Cloud| -> BTreeMap<String, String> {
            cloud
                .subset_records_now(&s, &sub, &KeyRange::default())
                .into_iter()
                .map(|c| {
                    let d: serde_json::Value = serde_json::from_str(c.data.unwrap().get()).unwrap();
                    (c.id, d["repository"].as_str().unwrap().to_string())
                })
                .collect()
        };
        assert_eq!(held, want(&cloud));
        assert_eq!(held.len(), 5);

        cloud.put(&s, "files", "f01", json!({"repository": "r2"}), 2); // out
        cloud.put(&s, "files", "f02", json!({"repository": "r1"}), 2); // in
        cloud.delete(&s, "files", "f05", 2); // deleted inside
        cloud.put(&s, "objects", "o01", json!({"repository": "r3"}), 2); // not files
        sync(&cloud, &sub, &mut held, Some(at));
        assert_eq!(held, want(&cloud));
        assert!(held.contains_key("f02") && !held.contains_key("f01"));

        // The subset's digest is that of the records the replica holds.
        let d = cloud.subset_digest_now(&s, &sub, &KeyRange::default());
        let mut mine = Snapshot::default();
        for c in cloud.subset_records_now(&s, &sub, &KeyRange::default()) {
            assert!(held.contains_key(&c.id));
            mine.insert(&leaf(
                &c.collection,
                &c.id,
                &c.hash.unwrap().parse().unwrap(),
            ));
        }
        assert_eq!((d.count, d.digest), (mine.count, mine.digest));
        assert_eq!(d.count as usize, held.len());
    }
}
