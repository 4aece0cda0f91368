//! The [`Store`] implementation of [`IdbStore`].

use js_sys::{Array, Uint8Array};
use tether_engine::query::{Hit, IndexSet, Scan};
use tether_engine::rules::RowWrite;
use tether_engine::store::{snapshot_of, Applied, Planner};
use tether_engine::{
    Conflict, Error, Key, KeyRange, Millis, Result, Row, Run, RunError, RunStatus, ScopeId,
    ScopeState, Snapshot, Store,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    IdbCursor, IdbCursorDirection, IdbCursorWithValue, IdbKeyRange, IdbObjectStore, IdbTransaction,
    IdbTransactionMode,
};

use super::codec::{
    collection_lower, collection_upper, decode_key, decode_row, decode_tagged, dismissed_entry,
    encode_row, encode_tagged, has_scope, id_of, row_key, row_key_in, row_meta, scope_lower,
    scope_upper, ScopeMeta, Texts, CONFLICTS, INDEXES, META, PENDING_INDEX, ROWS, RUNNING_INDEX,
    RUNS, SCOPE_INDEX,
};
use super::indexes::{build_in, count_in, declare_in, read_declared, scan_in, Declared};
use super::probe::probe;
use super::request::{
    abort, as_u64, call, committed, cursor_err, js_storage_error, object_store, result_of, wait,
    SCAN_BATCH,
};
use super::IdbStore;

const RO: IdbTransactionMode = IdbTransactionMode::Readonly;
const RW: IdbTransactionMode = IdbTransactionMode::Readwrite;

/// Rows read for a write, in the order of the keys asked for. A write finds what was read of
/// its row at its prior's slot.
struct ReadRows {
    key_js: Vec<JsValue>,
    rows: Vec<Option<Row>>,
    /// The stored data string of each row (undefined when absent), kept for metadata-only
    /// writes so the data is never decoded and encoded again.
    data: Vec<JsValue>,
    /// The stored index entries of each row (undefined when none), kept by metadata-only
    /// writes as well.
    entries: Vec<JsValue>,
}

impl Store for IdbStore {
    async fn scope_state(&self, scope: &ScopeId) -> Result<ScopeState> {
        let tx = self.transaction(&[META], RO).await?;
        let req = call(object_store(&tx, META)?.get(&scope.as_str().into()))?;
        Ok(ScopeMeta::decode(&wait(&req).await?)?.state)
    }

    async fn update(
        &self,
        scope: &ScopeId,
        keys: &[Key],
        with_data: bool,
        planner: impl Planner,
    ) -> Result<Applied> {
        let tx = self
            .transaction(&[ROWS, META, CONFLICTS, INDEXES], RW)
            .await?;
        let result = update_in(&tx, scope, keys, with_data, planner).await;
        if result.is_err() {
            abort(&tx);
        }
        result
    }

    async fn update_stale(
        &self,
        scope: &ScopeId,
        generation: u64,
        planner: impl Planner,
    ) -> Result<Applied> {
        let tx = self
            .transaction(&[ROWS, META, CONFLICTS, INDEXES], RW)
            .await?;
        let result = update_stale_in(&tx, scope, generation, planner).await;
        if result.is_err() {
            abort(&tx);
        }
        result
    }

    async fn row(&self, scope: &ScopeId, key: &Key) -> Result<Option<Row>> {
        let tx = self.transaction(&[ROWS], RO).await?;
        let scope_js = JsValue::from_str(scope.as_str());
        let req = call(object_store(&tx, ROWS)?.get(&row_key(&scope_js, key)))?;
        let value = wait(&req).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        Ok(Some(decode_row(key.clone(), &value, true)?.row))
    }

    async fn list(
        &self,
        scope: &ScopeId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let tx = self.transaction(&[ROWS], RO).await?;
        let rows = object_store(&tx, ROWS)?;
        let scope_js = JsValue::from_str(scope.as_str());
        let (mut lower, mut open) = match after {
            Some(a) => (row_key(&scope_js, &Key::new(collection, a)), true),
            None => (collection_lower(&scope_js, collection), false),
        };
        let upper = collection_upper(&scope_js, collection);
        loop {
            let want = (limit - out.len()).min(SCAN_BATCH as usize) as u32;
            let range = bound(&lower, &upper, open)?;
            let (keys, values) = get_all(&rows, &range, want).await?;
            let n = keys.length();
            for i in 0..n {
                let row = decode_row(decode_key(&keys.get(i))?, &values.get(i), true)?.row;
                // Pending local deletes stay stored (they must be pushed) but are not visible.
                if row.data.is_some() {
                    out.push(row);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if n < want {
                return Ok(out);
            }
            lower = keys.get(n - 1);
            open = true;
        }
    }

    async fn count(&self, scope: &ScopeId, collection: Option<&str>) -> Result<u64> {
        let tx = self.transaction(&[ROWS], RO).await?;
        let rows = object_store(&tx, ROWS)?;
        let scope_js = JsValue::from_str(scope.as_str());
        let range = match collection {
            Some(c) => bound(
                &collection_lower(&scope_js, c),
                &collection_upper(&scope_js, c),
                false,
            )?,
            None => bound(&scope_lower(&scope_js), &scope_upper(&scope_js), false)?,
        };
        let total = call(rows.count_with_key(&range))?;
        // Stored rows minus pending local deletes, found through the (small, sparse) pending
        // index rather than by reading every row.
        let index = rows
            .index(PENDING_INDEX)
            .map_err(|e| js_storage_error("opening an index", &e))?;
        let pending_range = bound(&scope_lower(&scope_js), &scope_upper(&scope_js), false)?;
        let values = call(index.get_all_with_key(&pending_range))?;
        let keys = call(index.get_all_keys_with_key(&pending_range))?;
        let keys: Array = wait(&keys).await?.unchecked_into();
        let values: Array = values
            .result()
            .map_err(|e| js_storage_error("count", &e))?
            .unchecked_into();
        let total = as_u64(&total.result().map_err(|e| js_storage_error("count", &e))?)?;
        let mut hidden = 0;
        for i in 0..keys.length() {
            let key = decode_key(&keys.get(i))?;
            if collection.is_some_and(|c| key.collection != c) {
                continue;
            }
            if decode_row(key, &values.get(i), false)?.row.hash.is_none() {
                hidden += 1;
            }
        }
        Ok(total.saturating_sub(hidden))
    }

    async fn pending(
        &self,
        scope: &ScopeId,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.transaction(&[ROWS], RO).await?;
        let index = object_store(&tx, ROWS)?
            .index(PENDING_INDEX)
            .map_err(|e| js_storage_error("opening an index", &e))?;
        let scope_js = JsValue::from_str(scope.as_str());
        let (lower, open) = match after_seq {
            Some(s) => (
                Array::of2(&scope_js, &JsValue::from_f64(s as f64)).into(),
                true,
            ),
            None => (scope_lower(&scope_js), false),
        };
        let range = bound(&lower, &scope_upper(&scope_js), open)?;
        let want = u32::try_from(limit).unwrap_or(u32::MAX);
        let values = call(index.get_all_with_key_and_limit(&range, want))?;
        let keys = call(index.get_all_keys_with_key_and_limit(&range, want))?;
        let keys: Array = wait(&keys).await?.unchecked_into();
        let values: Array = values
            .result()
            .map_err(|e| js_storage_error("pending", &e))?
            .unchecked_into();
        (0..keys.length())
            .map(|i| Ok(decode_row(decode_key(&keys.get(i))?, &values.get(i), true)?.row))
            .collect()
    }

    async fn pending_count(&self, scope: &ScopeId) -> Result<u64> {
        let tx = self.transaction(&[ROWS], RO).await?;
        let index = object_store(&tx, ROWS)?
            .index(PENDING_INDEX)
            .map_err(|e| js_storage_error("opening an index", &e))?;
        let scope_js = JsValue::from_str(scope.as_str());
        let range = bound(&scope_lower(&scope_js), &scope_upper(&scope_js), false)?;
        as_u64(&wait(&call(index.count_with_key(&range))?).await?)
    }

    async fn conflicts(&self, scope: &ScopeId) -> Result<Vec<Conflict>> {
        let tx = self.transaction(&[CONFLICTS], RO).await?;
        let index = object_store(&tx, CONFLICTS)?
            .index(SCOPE_INDEX)
            .map_err(|e| js_storage_error("opening an index", &e))?;
        let only = JsValue::from_str(scope.as_str());
        let values = call(index.get_all_with_key(&only))?;
        let keys = call(index.get_all_keys_with_key(&only))?;
        let keys: Array = wait(&keys).await?.unchecked_into();
        let values: Array = values
            .result()
            .map_err(|e| js_storage_error("conflicts", &e))?
            .unchecked_into();
        (0..keys.length())
            .map(|i| {
                let (_, c): (String, Conflict) = decode_tagged(&values.get(i))?;
                Ok(Conflict {
                    id: id_of(&keys.get(i))?,
                    ..c
                })
            })
            .collect()
    }

    async fn dismiss_conflict(&self, scope: &ScopeId, id: u64) -> Result<bool> {
        let tx = self.transaction(&[CONFLICTS], RW).await?;
        let conflicts = object_store(&tx, CONFLICTS)?;
        let key = JsValue::from_f64(id as f64);
        let value = wait(&call(conflicts.get(&key))?).await?;
        // A dismissed entry has no `s` (see `dismissed_entry`): it is not listed, and not dismissed
        // twice.
        if value.is_undefined() || !has_scope(&value) {
            return Ok(false);
        }
        let (owner, _): (String, Conflict) = decode_tagged(&value)?;
        if owner != scope.as_str() {
            return Ok(false);
        }
        call(conflicts.put_with_key(&dismissed_entry(&value)?, &key))?;
        committed(&tx).await?;
        Ok(true)
    }

    async fn start_run(&self, run: &Run) -> Result<u64> {
        let tx = self.transaction(&[RUNS], RW).await?;
        let result = start_run_in(&tx, run).await;
        if result.is_err() {
            abort(&tx);
        }
        result
    }

    async fn finish_run(&self, run: &Run) -> Result<()> {
        let tx = self.transaction(&[RUNS], RW).await?;
        let runs = object_store(&tx, RUNS)?;
        let key = JsValue::from_f64(run.id as f64);
        if wait(&call(runs.get(&key))?).await?.is_undefined() {
            abort(&tx);
            return Err(Error::storage(format!("no run with id {}", run.id)));
        }
        let running = run.status == RunStatus::Running;
        call(runs.put_with_key(&encode_tagged(&run.scope, run, running)?, &key))?;
        committed(&tx).await
    }

    async fn runs(&self, scope: &ScopeId, limit: usize) -> Result<Vec<Run>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let tx = self.transaction(&[RUNS], RO).await?;
        let index = object_store(&tx, RUNS)?
            .index(SCOPE_INDEX)
            .map_err(|e| js_storage_error("opening an index", &e))?;
        // Newest first: walk the scope's entries backwards, stopping after `limit`.
        let req = call(index.open_cursor_with_range_and_direction(
            &scope.as_str().into(),
            IdbCursorDirection::Prev,
        ))?;
        loop {
            let cursor = wait(&req).await?;
            let Some(cursor) = cursor.dyn_ref::<IdbCursorWithValue>() else {
                return Ok(out);
            };
            out.push(run_of(
                &cursor.primary_key().map_err(cursor_err)?,
                &cursor.value().map_err(cursor_err)?,
            )?);
            if out.len() == limit {
                return Ok(out);
            }
            cursor.continue_().map_err(cursor_err)?;
        }
    }

    async fn runs_since(&self, scope: &ScopeId, since: Millis) -> Result<Vec<Run>> {
        let tx = self.transaction(&[RUNS], RO).await?;
        let index = object_store(&tx, RUNS)?
            .index(SCOPE_INDEX)
            .map_err(|e| js_storage_error("opening an index", &e))?;
        let only = JsValue::from_str(scope.as_str());
        let values = call(index.get_all_with_key(&only))?;
        let keys = call(index.get_all_keys_with_key(&only))?;
        let keys: Array = wait(&keys).await?.unchecked_into();
        let values: Array = values
            .result()
            .map_err(|e| js_storage_error("runs", &e))?
            .unchecked_into();
        let mut out = Vec::new();
        for i in (0..keys.length()).rev() {
            let run = run_of(&keys.get(i), &values.get(i))?;
            if run.started_at >= since {
                out.push(run);
            }
        }
        Ok(out)
    }

    async fn range_snapshot(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        rehash: bool,
    ) -> Result<Snapshot> {
        let mut total = Snapshot::default();
        let tx = self.transaction(&[ROWS], RO).await?;
        let rows = object_store(&tx, ROWS)?;
        let scope_js = JsValue::from_str(scope.as_str());
        let Some((mut lower, upper)) = idb_bounds(&scope_js, range) else {
            return Ok(total);
        };
        let mut open = false;
        loop {
            let (keys, values) = get_all(&rows, &bound(&lower, &upper, open)?, SCAN_BATCH).await?;
            let n = keys.length();
            let batch: Vec<Row> = (0..n)
                .map(|i| Ok(decode_row(decode_key(&keys.get(i))?, &values.get(i), rehash)?.row))
                .collect::<Result<_>>()?;
            let part = snapshot_of(&batch, rehash);
            total.count += part.count;
            total.digest.add(&part.digest);
            if n < SCAN_BATCH {
                return Ok(total);
            }
            lower = keys.get(n - 1);
            open = true;
        }
    }

    async fn range_keys(
        &self,
        scope: &ScopeId,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Key>> {
        let scope_js = JsValue::from_str(scope.as_str());
        let Some((lower, upper)) = idb_bounds(&scope_js, range) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.transaction(&[ROWS], RO).await?;
        let rows = object_store(&tx, ROWS)?;
        let want = u32::try_from(limit).unwrap_or(u32::MAX);
        let range = bound(&lower, &upper, false)?;
        let req = call(rows.get_all_keys_with_key_and_limit(&range, want))?;
        let keys: Array = wait(&req).await?.unchecked_into();
        keys.iter().map(|k| decode_key(&k)).collect()
    }

    async fn nth_key(&self, scope: &ScopeId, range: &KeyRange, offset: u64) -> Result<Option<Key>> {
        let scope_js = JsValue::from_str(scope.as_str());
        let Some((lower, upper)) = idb_bounds(&scope_js, range) else {
            return Ok(None);
        };
        let tx = self.transaction(&[ROWS], RO).await?;
        let rows = object_store(&tx, ROWS)?;
        let range = bound(&lower, &upper, false)?;
        let req = call(rows.open_key_cursor_with_range(&range))?;
        let mut left = offset;
        loop {
            let cursor = wait(&req).await?;
            let Some(cursor) = cursor.dyn_ref::<IdbCursor>() else {
                return Ok(None);
            };
            if left == 0 {
                return decode_key(&cursor.primary_key().map_err(cursor_err)?).map(Some);
            }
            let step = u32::try_from(left).unwrap_or(u32::MAX);
            left -= u64::from(step);
            cursor.advance(step).map_err(cursor_err)?;
        }
    }

    async fn scopes(&self) -> Result<Vec<ScopeId>> {
        let tx = self.transaction(&[META], RO).await?;
        let req = call(object_store(&tx, META)?.get_all_keys())?;
        let keys: Array = wait(&req).await?.unchecked_into();
        keys.iter()
            .map(|k| {
                let name = k
                    .as_string()
                    .ok_or_else(|| Error::storage("scope key in IndexedDB is not a string"))?;
                ScopeId::new(name)
            })
            .collect()
    }

    fn indexes(&self) -> IndexSet {
        self.indexes.borrow().clone()
    }

    async fn declare_indexes(&self, indexes: &IndexSet) -> Result<()> {
        let tx = self.transaction(&[INDEXES], RW).await?;
        let declared = declare_in(&tx, indexes).await;
        if declared.is_err() {
            abort(&tx);
        }
        *self.indexes.borrow_mut() = declared?.set()?;
        Ok(())
    }

    async fn build_indexes(&self, batch: usize) -> Result<bool> {
        let tx = self.transaction(&[ROWS, META, INDEXES], RW).await?;
        let built = build_in(&tx, batch).await;
        if built.is_err() {
            abort(&tx);
        }
        let (done, declared) = built?;
        *self.indexes.borrow_mut() = declared.set()?;
        Ok(done)
    }

    async fn scan(&self, scope: &ScopeId, scan: &Scan) -> Result<Vec<Hit>> {
        let tx = self.transaction(&[ROWS, INDEXES], RO).await?;
        let known = self.declared.borrow().clone();
        let (hits, declared) = scan_in(&tx, scope, scan, known.as_deref()).await?;
        *self.declared.borrow_mut() = Some(std::rc::Rc::new(declared));
        Ok(hits)
    }

    async fn scan_count(&self, scope: &ScopeId, scan: &Scan) -> Result<u64> {
        let tx = self.transaction(&[ROWS, INDEXES], RO).await?;
        let known = self.declared.borrow().clone();
        let (n, declared) = count_in(&tx, scope, scan, known.as_deref()).await?;
        *self.declared.borrow_mut() = Some(std::rc::Rc::new(declared));
        Ok(n)
    }
}

async fn update_in(
    tx: &IdbTransaction,
    scope: &ScopeId,
    keys: &[Key],
    with_data: bool,
    planner: impl Planner,
) -> Result<Applied> {
    let scope_js = JsValue::from_str(scope.as_str());
    let rows_os = object_store(tx, ROWS)?;
    let meta_req = call(object_store(tx, META)?.get(&scope_js))?;
    let declared_req = read_declared(tx)?;
    let key_js: Vec<JsValue> = keys.iter().map(|k| row_key(&scope_js, k)).collect();
    let mut present = probe(&rows_os, &scope_js, keys).await?;
    let (reads, last) = present.issue(&rows_os, keys, &key_js)?;
    // The meta and declared requests were issued first, so they completed before any later
    // one. A request already complete must not be awaited again (its event has fired).
    match last {
        Some(last) => drop(wait(&last).await?),
        None if !present.awaited => drop(wait(&declared_req).await?),
        None => {}
    }
    present.read()?;
    let meta = ScopeMeta::decode(&result_of(&meta_req)?)?;
    let declared = Declared::decode(&result_of(&declared_req)?)?;
    let mut read = ReadRows {
        key_js,
        rows: Vec::with_capacity(keys.len()),
        data: Vec::with_capacity(keys.len()),
        entries: Vec::with_capacity(keys.len()),
    };
    for (r, key) in reads.iter().zip(keys) {
        let value = present.value(r)?;
        if value.is_undefined() {
            read.rows.push(None);
            read.data.push(JsValue::UNDEFINED);
            read.entries.push(JsValue::UNDEFINED);
        } else {
            let stored = decode_row(key.clone(), &value, with_data)?;
            read.rows.push(Some(stored.row));
            read.data.push(stored.data);
            read.entries.push(stored.entries);
        }
    }
    write(tx, scope, &scope_js, (meta, declared), read, planner).await
}

async fn update_stale_in(
    tx: &IdbTransaction,
    scope: &ScopeId,
    generation: u64,
    planner: impl Planner,
) -> Result<Applied> {
    let scope_js = JsValue::from_str(scope.as_str());
    let rows_os = object_store(tx, ROWS)?;
    let meta_req = call(object_store(tx, META)?.get(&scope_js))?;
    let declared_req = read_declared(tx)?;
    let declared = Declared::decode(&wait(&declared_req).await?)?;
    let meta = ScopeMeta::decode(&result_of(&meta_req)?)?;
    let mut read = ReadRows {
        key_js: Vec::new(),
        rows: Vec::new(),
        data: Vec::new(),
        entries: Vec::new(),
    };
    // The per-generation counts say whether anything is stale; after an initial download
    // nothing is, and the scan of every row is skipped.
    if meta.may_have_older(generation) {
        let upper = scope_upper(&scope_js);
        let mut lower = scope_lower(&scope_js);
        let mut open = false;
        loop {
            let (keys, values) =
                get_all(&rows_os, &bound(&lower, &upper, open)?, SCAN_BATCH).await?;
            let n = keys.length();
            for i in 0..n {
                let key_js = keys.get(i);
                let value = values.get(i);
                let key = decode_key(&key_js)?;
                if decode_row(key.clone(), &value, false)?.row.generation < generation {
                    let stored = decode_row(key, &value, true)?;
                    read.key_js.push(key_js);
                    read.rows.push(Some(stored.row));
                    read.data.push(stored.data);
                    read.entries.push(stored.entries);
                }
            }
            if n < SCAN_BATCH {
                break;
            }
            lower = keys.get(n - 1);
            open = true;
        }
    }
    write(tx, scope, &scope_js, (meta, declared), read, planner).await
}

/// Plans and writes one changeset, then waits for the commit. Every row written gets its index
/// entries in the same put: recomputed from the new data, or kept when the data is.
async fn write(
    tx: &IdbTransaction,
    scope: &ScopeId,
    scope_js: &JsValue,
    (mut meta, declared): (ScopeMeta, Declared),
    read: ReadRows,
    planner: impl Planner,
) -> Result<Applied> {
    let changes = planner(&meta.state, &read.rows)?;
    let rows_os = object_store(tx, ROWS)?;
    // The stored key of a row that was read is reused; a new key is built, its collection part
    // made once per collection.
    let mut parts: Vec<(String, Uint8Array)> = Vec::new();
    let mut key_of = |w: &RowWrite| match w.prior().and_then(|p| read.key_js.get(p.slot)) {
        Some(k) => k.clone(),
        None => {
            let c = w.key().collection.as_str();
            let part = match parts.iter().position(|(p, _)| *p == c) {
                Some(i) => &parts[i].1,
                None => {
                    parts.push((c.to_owned(), Uint8Array::from(c.as_bytes())));
                    &parts[parts.len() - 1].1
                }
            };
            row_key_in(scope_js, part, &w.key().id)
        }
    };
    // Every text of the values written (metadata, then data for a put), one conversion.
    let mut texts = Texts::default();
    for w in &changes.rows {
        match w {
            RowWrite::Put { row, .. } => {
                texts.push(&row_meta(row)?);
                if let Some(d) = &row.data {
                    texts.push(d.as_str());
                }
            }
            RowWrite::Touch {
                key,
                prior,
                version,
                updated_at,
                cloud_hash,
                generation,
                pending,
                sent,
            } => texts.push(&row_meta(&Row {
                key: key.clone(),
                data: None,
                hash: prior.hash,
                version: *version,
                updated_at: updated_at.clone(),
                cloud_hash: *cloud_hash,
                generation: *generation,
                pending: *pending,
                sent: *sent,
            })?),
            RowWrite::Remove { .. } => {}
        }
    }
    let mut texts = texts.into_js();
    for w in &changes.rows {
        match w {
            RowWrite::Put { row, .. } => {
                let meta = texts.next();
                let data = match &row.data {
                    Some(_) => texts.next(),
                    None => JsValue::UNDEFINED,
                };
                // Parsed only when an index of its collection needs its fields.
                let parsed = match &row.data {
                    Some(d) if declared.covers(&row.key.collection) => Some(d.to_data()?),
                    _ => None,
                };
                let entries = declared.entries(scope_js, &row.key, parsed.as_ref());
                let value = encode_row(scope_js, row.pending, &meta, &data, &entries)?;
                call(rows_os.put_with_key(&value, &key_of(w)))?;
            }
            RowWrite::Touch {
                key,
                prior,
                pending,
                ..
            } => {
                let meta = texts.next();
                // The stored data string is kept as it is: never decoded, never encoded again.
                let data = read
                    .data
                    .get(prior.slot)
                    .ok_or_else(|| Error::storage("a touch names a row that was not read"))?;
                let entries = read
                    .entries
                    .get(prior.slot)
                    .map(|x| declared.kept_entries(&key.collection, x))
                    .unwrap_or(JsValue::UNDEFINED);
                let value = encode_row(scope_js, *pending, &meta, data, &entries)?;
                call(rows_os.put_with_key(&value, &key_of(w)))?;
            }
            RowWrite::Remove { .. } => {
                call(rows_os.delete(&key_of(w)))?;
            }
        }
    }
    meta.add_rows(&changes.generation_deltas());
    meta.state = changes.scope.clone();
    call(object_store(tx, META)?.put_with_key(&meta.encode()?, scope_js))?;
    if !changes.conflicts.is_empty() {
        let conflicts = object_store(tx, CONFLICTS)?;
        for c in &changes.conflicts {
            call(conflicts.add(&encode_tagged(scope.as_str(), c, false)?))?;
        }
    }
    committed(tx).await?;
    Ok(Applied::of(&changes))
}

async fn start_run_in(tx: &IdbTransaction, run: &Run) -> Result<u64> {
    let runs = object_store(tx, RUNS)?;
    let index = runs
        .index(RUNNING_INDEX)
        .map_err(|e| js_storage_error("opening an index", &e))?;
    let only = JsValue::from_str(&run.scope);
    let values = call(index.get_all_with_key(&only))?;
    let keys = call(index.get_all_keys_with_key(&only))?;
    let keys: Array = wait(&keys).await?.unchecked_into();
    let values: Array = result_of(&values)?.unchecked_into();
    // A run of this scope still marked running was interrupted (runs never overlap).
    for i in 0..keys.length() {
        let mut stale = run_of(&keys.get(i), &values.get(i))?;
        stale.status = RunStatus::Failed;
        stale.error = Some(RunError::interrupted());
        call(runs.put_with_key(&encode_tagged(&stale.scope, &stale, false)?, &keys.get(i)))?;
    }
    let running = run.status == RunStatus::Running;
    let added = call(runs.add(&encode_tagged(&run.scope, run, running)?))?;
    let id = id_of(&wait(&added).await?)?;
    committed(tx).await?;
    Ok(id)
}

fn run_of(key: &JsValue, value: &JsValue) -> Result<Run> {
    let (_, run): (String, Run) = decode_tagged(value)?;
    Ok(Run {
        id: id_of(key)?,
        ..run
    })
}

/// Issues `getAll` and `getAllKeys` over the same range (consistent within the transaction).
async fn get_all(os: &IdbObjectStore, range: &IdbKeyRange, limit: u32) -> Result<(Array, Array)> {
    let values = call(os.get_all_with_key_and_limit(range, limit))?;
    let keys = call(os.get_all_keys_with_key_and_limit(range, limit))?;
    let keys: Array = wait(&keys).await?.unchecked_into();
    Ok((keys, result_of(&values)?.unchecked_into()))
}

/// IndexedDB bounds of a key range within a scope; `None` if the range is empty.
fn idb_bounds(scope_js: &JsValue, range: &KeyRange) -> Option<(JsValue, JsValue)> {
    if let (Some(from), Some(to)) = (&range.from, &range.to) {
        if from >= to {
            return None;
        }
    }
    let lower = match &range.from {
        Some(k) => row_key(scope_js, k),
        None => scope_lower(scope_js),
    };
    let upper = match &range.to {
        Some(k) => row_key(scope_js, k),
        None => scope_upper(scope_js),
    };
    Some((lower, upper))
}

/// `[lower, upper)`, or `(lower, upper)` when `lower_open`.
fn bound(lower: &JsValue, upper: &JsValue, lower_open: bool) -> Result<IdbKeyRange> {
    IdbKeyRange::bound_with_lower_open_and_upper_open(lower, upper, lower_open, true)
        .map_err(|e| js_storage_error("building a key range", &e))
}
