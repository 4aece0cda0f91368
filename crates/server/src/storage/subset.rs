//! What both storages share to serve subscriptions (docs/partial-sync.md, docs/server.md
//! "Subsets"): the declared filter indexes, and the page of a subset as it is read.
//!
//! A subset page is read in two parts, in version order. Up to the checkpoint's `safe` (an
//! initial download, or its later pages) only the subscription's live records, found through
//! the declared index of its first path (one index range per value) or, without filters,
//! through the `(scope, collection, version)` index. Above `safe`, the collection's feed
//! through that same index: every change of the collection, a live record in the subscription
//! as itself, a delete as a tombstone, and a live record outside it as an [`Outside`] marker,
//! since the server cannot know whether the replica held the record before (it keeps no
//! history). That costs the changes of the collection since the checkpoint.

use tether_engine::subscription::{Outside, Subscription, SubsetPage};
use tether_engine::{Change, Page};

use super::{finish_page, PageRows, Position};
use tether_engine::digest::Snapshot;

/// A `(collection, path)` whose values subscriptions may filter on: the storage keeps an
/// index of `(scope, value at path, version)` over that collection's records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilterIndex {
    /// The collection.
    pub collection: String,
    /// The dotted path in its records' data (`repository`, `owner.team`).
    pub path: String,
}

impl FilterIndex {
    /// Reads `COLLECTION:PATH` (`files:repository`), the form of `tether serve --filter-index`.
    pub fn parse(spec: &str) -> Result<FilterIndex, String> {
        let (collection, path) = spec
            .split_once(':')
            .ok_or_else(|| format!("filter index {spec:?}: write COLLECTION:PATH"))?;
        let index = FilterIndex {
            collection: collection.to_string(),
            path: path.to_string(),
        };
        index.validate()?;
        Ok(index)
    }

    /// Checks the collection and path by the rules of subscriptions (the path is written into
    /// SQL, so the server refuses at start a declaration built by hand that breaks them).
    pub fn validate(&self) -> Result<(), String> {
        Subscription::new(self.collection.as_str())
            .with_filter(self.path.as_str(), [serde_json::json!("")])
            .validate()
            .map_err(|e| format!("filter index {}:{}: {e}", self.collection, self.path))
    }

    /// The index's name: the same for the same declaration, on every start and instance, so
    /// an operator can create it beforehand (PostgreSQL: `CREATE INDEX CONCURRENTLY`).
    pub fn index_name(&self) -> String {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(format!("{}\0{}", self.collection, self.path));
        let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("records_sub_{hex}")
    }

    /// The path's member names.
    pub(crate) fn segments(&self) -> Vec<&str> {
        self.path.split('.').collect()
    }
}

/// The answer to a subset pull.
#[derive(Debug, Clone, PartialEq)]
pub enum SubsetAnswer {
    /// A page.
    Page(SubsetPage),
    /// The checkpoint is behind the tombstone horizon (or ahead of the scope): `410`.
    Reset,
}

/// A SQL string literal (`'it''s'`): collections and paths are written into the statements of
/// subsets, since an expression index is used only by a query that spells its expression and
/// predicate alike (parameters cannot).
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The changes and outside markers of a subset page as a storage reads them, bounded like a
/// page ([`PageRows`]): a marker counts as a tombstone's bytes.
pub(crate) struct SubsetRows {
    rows: PageRows,
    outside: Vec<bool>,
    more: bool,
}

impl SubsetRows {
    pub(crate) fn new(limit: u32) -> Self {
        SubsetRows {
            rows: PageRows::new(limit),
            outside: Vec::new(),
            more: false,
        }
    }

    /// Whether a row was seen after the full page.
    pub(crate) fn has_more(&self) -> bool {
        self.more
    }

    pub(crate) fn full(&self) -> bool {
        self.rows.full()
    }

    pub(crate) fn more(&mut self) {
        self.more = true;
        self.rows.more();
    }

    pub(crate) fn next_batch(&self, first: usize) -> usize {
        self.rows.next_batch(first)
    }

    /// Adds a row of the feed: `inside` says whether its live state is in the subscription.
    /// A tombstone (no data) goes as it is; a live record outside as a marker.
    pub(crate) fn push(&mut self, c: Change, inside: bool) {
        let marker = !c.deleted && !inside;
        let c = if marker {
            Change {
                deleted: true,
                data: None,
                hash: None,
                ..c
            }
        } else {
            c
        };
        self.rows.push(c);
        self.outside.push(marker);
    }

    /// The page: checkpoint and `has_more` as for a whole-scope page (positions in the scope's
    /// feed). `remaining` is only estimated in the feed part: counting what is left of an
    /// initial download would cost the subset's size on every page.
    pub(crate) fn finish(
        self,
        sub: &Subscription,
        from: Option<Position>,
        seq: u64,
        count: u64,
    ) -> SubsetPage {
        let totals = Snapshot {
            count,
            ..Snapshot::default()
        };
        let Page {
            changes,
            checkpoint,
            has_more,
            remaining,
            ..
        } = finish_page(self.rows, from, seq, totals);
        let initial = from.is_none_or(|p| p.cursor < p.safe);
        let mut page = SubsetPage {
            subscription: sub.clone(),
            changes: Vec::with_capacity(changes.len()),
            outside: Vec::new(),
            // `finish_page` always writes one.
            checkpoint: checkpoint.unwrap_or_else(|| tether_engine::Checkpoint(seq.to_string())),
            has_more,
            remaining: if has_more && initial { None } else { remaining },
        };
        for (c, marker) in changes.into_iter().zip(self.outside) {
            if marker {
                page.outside.push(Outside {
                    collection: c.collection,
                    id: c.id,
                    version: c.version,
                });
            } else {
                page.changes.push(c);
            }
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_index_specs() {
        let f = FilterIndex::parse("files:repository").unwrap();
        assert_eq!(
            (f.collection.as_str(), f.path.as_str()),
            ("files", "repository")
        );
        assert_eq!(
            f.index_name(),
            FilterIndex::parse("files:repository").unwrap().index_name()
        );
        assert_ne!(
            f.index_name(),
            FilterIndex::parse("files:owner").unwrap().index_name()
        );
        for bad in [
            "files",
            ":x",
            "files:",
            "files:a-b",
            "files:a..b",
            "files:1a",
        ] {
            assert!(FilterIndex::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(literal("it's"), "'it''s'");
    }
}
