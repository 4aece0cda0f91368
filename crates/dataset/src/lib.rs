//! A deterministic, realistic metadata dataset: repositories, files, objects (tables and
//! views), columns, dependencies and lineage edges, as an organization's data catalog would hold
//! them. Record `i` depends only on the seed and `i`, so any record can be generated on its own
//! (a page source can stream a million records without holding them) and a cloud built twice
//! from one seed is identical.
//!
//! ```
//! use tether_dataset::Dataset;
//! let ds = Dataset::new(42, 1_000);
//! let r = ds.record(17);
//! assert_eq!(r, ds.record(17));
//! assert_eq!(ds.iter().count(), 1_000);
//! let bytes = serde_json::to_string(&r.data).unwrap().len();
//! assert!((150..=500).contains(&bytes), "{bytes}");
//! ```

use serde_json::{json, Value};
use tether_engine::cloud::Cloud;
use tether_engine::time::rfc3339;
use tether_engine::{Data, Millis, ScopeId};

/// Every collection the dataset writes, in the order they appear within a block.
pub const COLLECTIONS: [&str; 6] = [
    "repositories",
    "files",
    "objects",
    "columns",
    "dependencies",
    "lineage",
];

/// Records are laid out in blocks of 100: 1 repository, 15 files, 20 objects, 45 columns,
/// 9 dependencies and 10 lineage edges, each referring to records of its own block, so
/// references resolve whatever the dataset's size.
const BLOCK: u64 = 100;

/// 2025-06-01T00:00:00Z: timestamps in the data spread over the year before it.
const EPOCH: Millis = 1_748_736_000_000;

/// A generated dataset of `len` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    seed: u64,
    len: u64,
}

/// One generated record.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRecord {
    /// Collection, one of [`COLLECTIONS`].
    pub collection: &'static str,
    /// Id, unique within the collection (e.g. `col_00001234`).
    pub id: String,
    /// The record's data.
    pub data: Data,
}

impl Dataset {
    /// The dataset of `len` records from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Dataset { seed, len }
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the dataset has no records.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Record `i` (any `i`, also beyond `len`), as first written.
    pub fn record(&self, i: u64) -> GenRecord {
        self.version_of(i, 0)
    }

    /// Record `i` as changed in `round` (round 0 is the original): same key, a few fields
    /// different, as a catalog sees when a table is altered or re-described.
    pub fn version_of(&self, i: u64, round: u64) -> GenRecord {
        let mut rng = Rng::new(self.seed, i);
        let block = i / BLOCK;
        let slot = i % BLOCK;
        let base = block * BLOCK;
        let (collection, id, mut data) = match slot {
            0 => ("repositories", repo_id(block), repository(&mut rng, block)),
            1..=15 => ("files", file_id(i), file(&mut rng, block)),
            16..=35 => {
                let file = file_id(base + 1 + slot % 15);
                ("objects", obj_id(i), object(&mut rng, &file))
            }
            36..=80 => {
                let object = obj_id(base + 16 + slot % 20);
                ("columns", col_id(i), column(&mut rng, &object, slot - 35))
            }
            81..=89 => (
                "dependencies",
                format!("dep_{i:08}"),
                dependency(&mut rng, base),
            ),
            _ => ("lineage", format!("lin_{i:08}"), lineage(&mut rng, base)),
        };
        if round > 0 {
            let mut r = Rng::new(self.seed ^ round.wrapping_mul(0x9E37_79B9), i);
            data.insert("description".into(), Value::String(sentence(&mut r, 8)));
            data.insert("revision".into(), json!(round));
            data.insert("updated_at".into(), json!(timestamp(&mut r)));
        }
        GenRecord {
            collection,
            id,
            data,
        }
    }

    /// All records, in index order, generated one at a time.
    pub fn iter(&self) -> impl Iterator<Item = GenRecord> + '_ {
        (0..self.len).map(|i| self.record(i))
    }

    /// Writes every record into `cloud` under `scope`, stamped at `at`.
    pub fn load_into(&self, cloud: &Cloud, scope: &ScopeId, at: Millis) {
        for r in self.iter() {
            cloud.put(scope, r.collection, &r.id, Value::Object(r.data), at);
        }
    }
}

fn repo_id(block: u64) -> String {
    format!("repo_{block:06}")
}
fn file_id(i: u64) -> String {
    format!("file_{i:08}")
}
fn obj_id(i: u64) -> String {
    format!("obj_{i:08}")
}
fn col_id(i: u64) -> String {
    format!("col_{i:08}")
}

const TEAMS: &[&str] = &[
    "analytics",
    "payments",
    "growth",
    "platform",
    "finance",
    "marketing",
    "data-eng",
    "risk",
];
const DOMAINS: &[&str] = &[
    "orders",
    "customers",
    "invoices",
    "sessions",
    "products",
    "shipments",
    "refunds",
    "events",
    "accounts",
    "subscriptions",
    "payouts",
    "inventory",
];
const STAGES: &[&str] = &["stg", "int", "fct", "dim", "rpt", "raw"];
const COLUMN_NAMES: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "customer_id",
    "order_id",
    "amount",
    "currency",
    "status",
    "email",
    "country",
    "region",
    "quantity",
    "unit_price",
    "discount",
    "is_active",
    "source",
    "channel",
    "session_id",
    "product_id",
    "sku",
    "tax",
    "total",
    "deleted_at",
    "user_agent",
];
const TYPES: &[&str] = &[
    "bigint",
    "integer",
    "varchar",
    "text",
    "timestamp",
    "boolean",
    "numeric(12,2)",
    "date",
    "uuid",
    "jsonb",
];
const WORDS: &[&str] = &[
    "daily",
    "snapshot",
    "of",
    "the",
    "latest",
    "records",
    "joined",
    "with",
    "reference",
    "data",
    "cleaned",
    "deduplicated",
    "per",
    "customer",
    "aggregated",
    "by",
    "region",
    "and",
    "month",
    "used",
    "for",
    "reporting",
    "billing",
    "forecasting",
    "source",
    "system",
    "events",
];
const LANGUAGES: &[&str] = &["SQL", "Python", "Scala", "YAML", "Jinja"];

fn repository(rng: &mut Rng, block: u64) -> Data {
    let team = rng.pick(TEAMS);
    let domain = rng.pick(DOMAINS);
    obj(json!({
        "name": format!("{domain}-{team}-{block}"),
        "full_name": format!("acme/{domain}-{team}-{block}"),
        "description": sentence(rng, 10),
        "default_branch": rng.pick(&["main", "main", "master", "trunk"]),
        "visibility": rng.pick(&["private", "internal", "public"]),
        "language": rng.pick(LANGUAGES),
        "owner": format!("team-{team}"),
        "stars": rng.below(500),
        "topics": [rng.pick(DOMAINS), rng.pick(TEAMS), "dbt"],
        "created_at": timestamp(rng),
        "url": format!("https://git.acme.example/acme/{domain}-{team}-{block}"),
    }))
}

fn file(rng: &mut Rng, block: u64) -> Data {
    let domain = rng.pick(DOMAINS);
    let stage = rng.pick(STAGES);
    obj(json!({
        "path": format!("models/{domain}/{stage}_{domain}_{}.sql", rng.below(100)),
        "repository": repo_id(block),
        "language": rng.pick(LANGUAGES),
        "size_bytes": 200 + rng.below(40_000),
        "sha": hex(rng, 20),
        "last_modified": timestamp(rng),
        "owners": [format!("@{}", rng.pick(TEAMS)), format!("@{}", rng.pick(TEAMS))],
    }))
}

fn object(rng: &mut Rng, file: &str) -> Data {
    let domain = rng.pick(DOMAINS);
    let stage = rng.pick(STAGES);
    obj(json!({
        "name": format!("{stage}_{domain}"),
        "database": "analytics",
        "schema": rng.pick(&["public", "staging", "marts", "reporting", "raw"]),
        "kind": rng.pick(&["table", "table", "view", "materialized_view", "incremental"]),
        "file": file,
        "row_count": rng.below(50_000_000),
        "size_bytes": rng.below(20_000_000_000),
        "description": sentence(rng, 9),
        "owner": format!("team-{}", rng.pick(TEAMS)),
        "tags": [rng.pick(DOMAINS), rng.pick(&["pii", "finance", "core", "deprecated", "gold"])],
        "updated_at": timestamp(rng),
    }))
}

fn column(rng: &mut Rng, object: &str, position: u64) -> Data {
    obj(json!({
        "name": rng.pick(COLUMN_NAMES),
        "object": object,
        "position": position,
        "data_type": rng.pick(TYPES),
        "nullable": rng.below(3) > 0,
        "primary_key": position == 1,
        "pii": rng.below(10) == 0,
        "description": sentence(rng, 7),
        "tags": [rng.pick(&["metric", "dimension", "key", "timestamp", "attribute"])],
        "stats": {"distinct": rng.below(1_000_000), "null_fraction": rng.below(1000) as f64 / 1000.0},
    }))
}

fn dependency(rng: &mut Rng, base: u64) -> Data {
    let from = obj_id(base + 16 + rng.below(20));
    let to = obj_id(base + 16 + rng.below(20));
    obj(json!({
        "from_object": from,
        "to_object": to,
        "kind": rng.pick(&["ref", "source", "exposure", "macro"]),
        "file": file_id(base + 1 + rng.below(15)),
        "detected_by": rng.pick(&["dbt-manifest", "sql-parser", "query-log"]),
        "first_seen": timestamp(rng),
        "last_seen": timestamp(rng),
        "weight": rng.below(100),
    }))
}

fn lineage(rng: &mut Rng, base: u64) -> Data {
    let sources: Vec<String> = (0..1 + rng.below(3))
        .map(|_| col_id(base + 36 + rng.below(45)))
        .collect();
    obj(json!({
        "source_columns": sources,
        "target_column": col_id(base + 36 + rng.below(45)),
        "transformation": rng.pick(&["identity", "cast", "sum", "count_distinct", "coalesce", "case_when", "join_key"]),
        "job": format!("airflow.{}_{}_daily", rng.pick(DOMAINS), rng.pick(STAGES)),
        "confidence": (500 + rng.below(500)) as f64 / 1000.0,
        "observed_at": timestamp(rng),
        "sql_excerpt": format!("select {} from {}", rng.pick(COLUMN_NAMES), rng.pick(DOMAINS)),
    }))
}

fn obj(v: Value) -> Data {
    match v {
        Value::Object(m) => m,
        // Every generator above builds a `json!({...})` object literal.
        _ => Data::new(),
    }
}

fn sentence(rng: &mut Rng, words: u64) -> String {
    let n = words / 2 + rng.below(words);
    let mut s = String::new();
    for k in 0..n.max(2) {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s
}

fn timestamp(rng: &mut Rng) -> String {
    let year_ms = 365 * 86_400_000;
    rfc3339(EPOCH - i64::try_from(rng.below(year_ms)).unwrap_or(0))
}

fn hex(rng: &mut Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.below(256)))
        .collect()
}

/// SplitMix64, seeded per record: small, fast, and good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, i: u64) -> Self {
        let mut r = Rng(seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_collections_are_realistic() {
        let ds = Dataset::new(7, 10_000);
        let mut per = std::collections::BTreeMap::new();
        let mut bytes = 0;
        for r in ds.iter() {
            *per.entry(r.collection).or_insert(0) += 1;
            bytes += serde_json::to_string(&r.data).unwrap().len();
        }
        assert_eq!(per.len(), 6);
        assert_eq!(per["columns"], 4_500);
        let mean = bytes / 10_000;
        assert!((200..=400).contains(&mean), "mean record size {mean}");
    }

    #[test]
    fn records_are_deterministic_and_changes_differ() {
        let (a, b) = (Dataset::new(1, 100), Dataset::new(2, 100));
        assert_eq!(a.record(5), a.record(5));
        assert_ne!(a.record(5).data, b.record(5).data);
        let changed = a.version_of(5, 1);
        assert_eq!(changed.id, a.record(5).id);
        assert_ne!(changed.data, a.record(5).data);
    }
}
