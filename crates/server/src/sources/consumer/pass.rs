//! A pass of the consumer: a table sent again in pages (keyset order, bounded by rows and
//! bytes), then its collection's records swept of rows that are gone or moved.

use std::collections::HashMap;

use tether_engine::limits::PAGE_BYTES;
use tokio_postgres::{Client, Transaction};

use super::{
    delete, is_bad_value, read_rows, snapshot, write_batches, Batches, Consumer, PASS_PAGE,
    PORTAL_BATCH, PROGRESS_EVERY, SWEEP_PAGE,
};
use crate::sources::catalog::Plan;
use crate::storage::StorageError;

impl Consumer {
    /// Sends the next page of a table; at its end the pass turns to the sweep.
    pub(super) async fn send_page(
        &mut self,
        client: &mut Client,
        collection: &str,
        after: Option<Vec<String>>,
    ) -> Result<Result<(), tokio_postgres::Error>, StorageError> {
        let plan = self.plans[collection].clone();
        let tx = snapshot(client).await?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = after
            .iter()
            .flatten()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        tx.batch_execute("SAVEPOINT page").await?;
        let n = plan.key.len();
        let whole = read_page(
            &tx,
            &plan.page_sql(after.is_some(), PASS_PAGE),
            &params,
            n + 2,
        )
        .await;
        // A value that fails to convert fails the page's query: then the page's keys, and
        // its rows one by one, so one bad row is reported and the others are sent.
        let (rows, mut data, finished) = match whole {
            Ok((rows, ended)) => (rows, HashMap::new(), ended),
            Err(e) if is_bad_value(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT page").await?;
                let keys = match tx
                    .query(&plan.page_keys_sql(after.is_some(), PASS_PAGE), &params)
                    .await
                {
                    Ok(rows) => rows,
                    Err(e) => return Ok(Err(e)),
                };
                let ids: Vec<String> = keys.iter().map(|r| r.get(n)).collect();
                let (read, unreadable) = match read_rows(&tx, &plan, &ids).await? {
                    Ok(read) => read,
                    Err(e) => return Ok(Err(e)),
                };
                for (id, why) in unreadable {
                    self.refuse(collection, &id, why);
                }
                let ended = keys.len() < PASS_PAGE;
                (keys, read, ended)
            }
            Err(e) => return Ok(Err(e)),
        };
        tx.commit().await?;
        let mut batches = Batches::new();
        let mut last = None;
        for r in &rows {
            let (id, scope): (String, Option<String>) = (r.get(n), r.get(n + 1));
            let row_data: Option<String> = match r.get::<_, Option<String>>(n + 2) {
                Some(d) => Some(d),
                None => data.remove(&id).map(|(_, d)| d),
            };
            let placed = match &row_data {
                Some(d) => self.place(&mut batches, collection, &id, scope.as_deref(), d),
                None => None,
            };
            if placed.is_none() {
                // Not sendable now: if an earlier pass sent it, it must go.
                if let Some(scope) = scope {
                    delete(&mut batches, &scope, collection, &id);
                }
            }
            last = Some((0..n).map(|i| r.get::<_, String>(i)).collect::<Vec<_>>());
        }
        let tx = client.transaction().await?;
        let written = write_batches(&tx, &self.schema, batches).await?;
        let position = last
            .map(|l| serde_json::to_string(&l))
            .transpose()
            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let row = if finished {
            tx.query_one(
                "UPDATE sources SET pass = CASE WHEN sweep THEN 'sweep' END, pass_after = NULL,
                   sent = sent + $2
                 WHERE collection = $1 RETURNING sent, pass IS NULL",
                &[&collection, &(rows.len() as i64)],
            )
            .await?
        } else {
            tx.query_one(
                "UPDATE sources SET pass_after = $2, sent = sent + $3 WHERE collection = $1
                 RETURNING sent, pass IS NULL",
                &[&collection, &position, &(rows.len() as i64)],
            )
            .await?
        };
        let (sent, done): (i64, bool) = (row.get(0), row.get(1));
        tx.commit().await?;
        self.notify(&written);
        self.status.count_sent(collection, rows.len() as u64);
        if done {
            tracing::info!(
                collection,
                "declared source: pass done, the table is in sync"
            );
            self.status.pass_done(collection);
        }
        // Progress in the log: every PROGRESS_EVERY rows of a pass, and at its end.
        let before = sent - rows.len() as i64;
        if finished || before / PROGRESS_EVERY != sent / PROGRESS_EVERY {
            tracing::info!(
                collection,
                table = plan.source.relation().as_str(),
                sent,
                finished,
                "declared source: rows sent by the pass"
            );
        }
        Ok(Ok(()))
    }

    /// Checks the next page of the collection's records against the table: a record whose row
    /// is gone, or is now in another scope, is deleted there. At the end the pass is done.
    pub(super) async fn sweep_page(
        &mut self,
        client: &mut Client,
        collection: &str,
        after: Option<Vec<String>>,
    ) -> Result<Result<(), tokio_postgres::Error>, StorageError> {
        let plan = self.plans[collection].clone();
        let tx = snapshot(client).await?;
        let (scope0, id0) = match after.as_deref() {
            Some([s, i]) => (s.clone(), i.clone()),
            _ => (String::new(), String::new()),
        };
        let records = tx
            .query(
                "SELECT scope, id FROM records WHERE collection = $1 AND NOT deleted
                 AND (scope, collection, id) > ($2, $1, $3)
                 ORDER BY scope, collection, id LIMIT $4",
                &[&collection, &scope0, &id0, &SWEEP_PAGE],
            )
            .await?;
        let ids: Vec<String> = records.iter().map(|r| r.get(1)).collect();
        let present = match present_rows(&tx, &plan, &ids).await? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        tx.commit().await?;
        let mut batches = Batches::new();
        for r in &records {
            let (scope, id): (String, String) = (r.get(0), r.get(1));
            if present.get(&id).and_then(|s| s.as_deref()) != Some(scope.as_str()) {
                delete(&mut batches, &scope, collection, &id);
            }
        }
        let last = records
            .last()
            .map(|r| serde_json::to_string(&[r.get::<_, String>(0), r.get::<_, String>(1)]))
            .transpose()
            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let finished = (records.len() as i64) < SWEEP_PAGE;
        let tx = client.transaction().await?;
        let written = write_batches(&tx, &self.schema, batches).await?;
        if finished {
            tx.execute(
                "UPDATE sources SET pass = NULL, pass_after = NULL WHERE collection = $1",
                &[&collection],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE sources SET pass_after = $2 WHERE collection = $1",
                &[&collection, &last],
            )
            .await?;
        }
        tx.commit().await?;
        self.notify(&written);
        if finished {
            tracing::info!(
                collection,
                "declared source: pass done, the table is in sync"
            );
            self.status.pass_done(collection);
        }
        Ok(Ok(()))
    }
}

/// Reads a page of a pass through a portal, at most [`PORTAL_BATCH`] rows at a time, and stops once
/// the data read (column `data`) passes [`PAGE_BYTES`]: a table of big rows is not held 5,000
/// rows at a time. Says whether the table ended (fewer rows than the page's `LIMIT`).
async fn read_page(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    data: usize,
) -> Result<(Vec<tokio_postgres::Row>, bool), tokio_postgres::Error> {
    let statement = tx.prepare(sql).await?;
    let portal = tx.bind(&statement, params).await?;
    let (mut rows, mut bytes) = (Vec::new(), 0usize);
    // A few rows first; then as many as the mean size so far says fit the rest of the budget.
    let mut want = 8;
    loop {
        let batch = tx.query_portal(&portal, want).await?;
        let got = batch.len();
        for r in batch {
            bytes += r.get::<_, Option<&str>>(data).map_or(0, str::len);
            rows.push(r);
        }
        if got < want as usize {
            let ended = rows.len() < PASS_PAGE;
            return Ok((rows, ended));
        }
        if bytes >= PAGE_BYTES {
            return Ok((rows, false));
        }
        let mean = (bytes / rows.len()).max(1);
        want = ((PAGE_BYTES - bytes) / mean).clamp(1, PORTAL_BATCH as usize) as i32;
    }
}

/// Which of the record ids `ids` name a row of the table now, and its scope. An id that does
/// not even parse as the table's key (a record from before the source) names no row.
async fn present_rows(
    tx: &Transaction<'_>,
    plan: &Plan,
    ids: &[String],
) -> Result<Result<HashMap<String, Option<String>>, tokio_postgres::Error>, StorageError> {
    let mut present = HashMap::new();
    if ids.is_empty() {
        return Ok(Ok(present));
    }
    let sql = plan.exists_sql();
    tx.batch_execute("SAVEPOINT sweep").await?;
    match tx.query(&sql, &[&ids]).await {
        Ok(rows) => {
            present.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
            return Ok(Ok(present));
        }
        Err(e) if is_bad_value(&e) => tx.batch_execute("ROLLBACK TO SAVEPOINT sweep").await?,
        Err(e) => return Ok(Err(e)),
    }
    // Some id does not parse: check them one by one.
    for id in ids {
        tx.batch_execute("SAVEPOINT sweep").await?;
        match tx.query(&sql, &[&vec![id.clone()]]).await {
            Ok(rows) => present.extend(rows.iter().map(|r| (r.get(0), r.get(1)))),
            Err(e) if is_bad_value(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT sweep").await?;
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(present))
}
