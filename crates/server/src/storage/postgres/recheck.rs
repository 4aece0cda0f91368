//! The admin re-check: every stored row hashed again, wrong hashes recomputed, unreadable rows
//! quarantined (for rows that servers before the quarantine trusted).

use tether_engine::Key;

use super::{lock_scope, readable, settle, PgStorage};
use crate::storage::{Recheck, StorageError};

/// See [`Storage::recheck`](crate::storage::Storage::recheck).
pub(super) async fn recheck(storage: &PgStorage, scope: &str) -> Result<Recheck, StorageError> {
    let mut out = Recheck::default();
    let mut buf = Vec::new();
    // Keyset pages of the live hashed rows; each suspect is fixed in its own short
    // transaction under the scope lock, only if it was not written since it was read.
    let mut after = (String::new(), String::new());
    loop {
        let client = storage.client().await?;
        let rows = client
            .query(
                "SELECT collection, id, version, data::text, hash FROM records
                 WHERE scope = $1 AND NOT deleted AND quarantine IS NULL
                   AND hash IS NOT NULL AND (collection, id) > ($2, $3)
                 ORDER BY collection, id LIMIT 1000",
                &[&scope, &after.0, &after.1],
            )
            .await?;
        drop(client);
        let Some(last) = rows.last() else {
            return Ok(out);
        };
        after = (last.get(0), last.get(1));
        let mut suspects = Vec::new();
        for r in &rows {
            out.checked += 1;
            let (c, i, text, hash): (String, String, String, String) =
                (r.get(0), r.get(1), r.get(3), r.get(4));
            let fine = readable(&Key::new(c.as_str(), i.as_str()), &text, &mut buf)
                .is_ok_and(|h| h.to_string() == hash);
            if !fine {
                suspects.push((c, i, r.get::<_, i64>(2)));
            }
        }
        for (c, i, v) in suspects {
            let mut client = storage.client().await?;
            let tx = client.transaction().await?;
            lock_scope(&tx, scope).await?;
            // Without its hash the row is no longer counted; `settle` hashes it again
            // or quarantines it, each under a new version.
            let cleared = tx
                .execute(
                    "UPDATE records SET hash = NULL WHERE scope = $1 AND collection = $2
                       AND id = $3 AND version = $4 AND NOT deleted",
                    &[&scope, &c, &i, &v],
                )
                .await?;
            if cleared > 0 {
                let key = Key::new(c.as_str(), i.as_str());
                settle(&tx, scope, Some(&key)).await?;
                let quarantined = tx
                    .query_one(
                        "SELECT quarantine IS NOT NULL FROM records
                         WHERE scope = $1 AND collection = $2 AND id = $3",
                        &[&scope, &c, &i],
                    )
                    .await?
                    .get::<_, bool>(0);
                if quarantined {
                    out.quarantined += 1;
                } else {
                    out.rehashed += 1;
                }
            }
            tx.commit().await?;
        }
    }
}
