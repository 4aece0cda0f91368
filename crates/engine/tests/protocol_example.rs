//! The worked example of docs/protocol.md ("Worked example"), recomputed with the engine.
//!
//! The test reads the numbers from the page itself, so the document cannot drift from the code:
//! the canonical text, record hash, leaf preimage and leaf of each record, the scope digest of
//! both, and the example pull page, which must pass the engine's own page validation and whose
//! snapshot must be that digest.

use std::path::Path;

use sha2::{Digest as _, Sha256};
use tether_engine::canonical::{canonical_string, write_canonical_text};
use tether_engine::digest::{hash_canonical, leaf, record_hash, Digest};
use tether_engine::rules::validate_page;
use tether_engine::Page;

/// One record of the example: its fields as the page writes them.
#[derive(Debug, Default)]
struct Example {
    collection: String,
    id: String,
    data: String,
    canonical: String,
    hash: String,
    leaf_input: String,
    leaf: String,
}

fn protocol_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first fenced block after the HTML comment `marker`.
fn block_after<'a>(doc: &'a str, marker: &str) -> &'a str {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("docs/protocol.md has no {marker}"));
    let rest = &doc[at..];
    let open = rest.find("```").expect("a fenced block after the marker");
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("a line after the fence") + 1..];
    &body[..body.find("```").expect("the block is closed")]
}

/// The records (blank-line separated `name: value` lines) and the final `digest:` line.
fn parse_example(block: &str) -> (Vec<Example>, String) {
    let mut records = vec![Example::default()];
    let mut digest = String::new();
    for line in block.lines() {
        if line.trim().is_empty() {
            if !records.last().expect("non-empty").collection.is_empty() {
                records.push(Example::default());
            }
            continue;
        }
        let (name, value) = line.split_once(':').expect("`name: value` lines");
        let value = value.trim().to_string();
        let r = records.last_mut().expect("non-empty");
        match name.trim() {
            "collection" => r.collection = value,
            "id" => r.id = value,
            "data" => r.data = value,
            "canonical" => r.canonical = value,
            "hash" => r.hash = value,
            "leaf input" => r.leaf_input = value.replace(' ', ""),
            "leaf" => r.leaf = value,
            "digest" => digest = value,
            other => panic!("unknown line {other:?} in the worked example"),
        }
    }
    records.retain(|r| !r.collection.is_empty());
    (records, digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The example block as the engine computes it from each record's collection, id and data:
/// a failure prints it, ready to paste into the page.
fn render(records: &[Example]) -> String {
    let mut out = String::new();
    let mut sum = Digest::ZERO;
    for r in records {
        let value: serde_json::Value = serde_json::from_str(&r.data).expect("data is JSON");
        let canonical = canonical_string(&value);
        let hash = hash_canonical(canonical.as_bytes());
        let l = leaf(&r.collection, &r.id, &hash);
        sum.add(&l);
        let input = [
            hex(&(r.collection.len() as u32).to_le_bytes()),
            hex(r.collection.as_bytes()),
            hex(&(r.id.len() as u32).to_le_bytes()),
            hex(r.id.as_bytes()),
            hash.to_string(),
        ]
        .join(" ");
        for (name, value) in [
            ("collection", r.collection.as_str()),
            ("id", &r.id),
            ("data", &r.data),
            ("canonical", &canonical),
            ("hash", &hash.to_string()),
            ("leaf input", &input),
            ("leaf", &l.to_string()),
        ] {
            out.push_str(&format!("{:<12}{value}\n", format!("{name}:")));
        }
        out.push('\n');
    }
    out.push_str(&format!("{:<12}{sum}\n", "digest:"));
    out
}

#[test]
fn the_worked_example_is_what_the_engine_computes() {
    let doc = protocol_md();
    let block = block_after(&doc, "<!-- worked-example -->");
    let (records, digest) = parse_example(block);
    assert_eq!(records.len(), 2, "two records: {records:?}");
    assert_eq!(
        block,
        render(&records),
        "the worked example of docs/protocol.md differs from what the engine computes"
    );
    let mut sum = Digest::ZERO;
    for r in &records {
        let what = format!("{}/{}", r.collection, r.id);
        // Both canonical writers: from a parsed value, and straight from the text (the pages' path).
        let value: serde_json::Value = serde_json::from_str(&r.data).expect("data is JSON");
        assert_eq!(canonical_string(&value), r.canonical, "{what}: canonical");
        let mut text = Vec::new();
        write_canonical_text(&r.data, &mut text).expect("data is JSON");
        assert_eq!(String::from_utf8(text).unwrap(), r.canonical, "{what}");

        let hash = hash_canonical(r.canonical.as_bytes());
        assert_eq!(hash.to_string(), r.hash, "{what}: hash");
        assert_eq!(
            record_hash(value.as_object().expect("an object")),
            hash,
            "{what}"
        );

        let mut input = Vec::new();
        input.extend((r.collection.len() as u32).to_le_bytes());
        input.extend(r.collection.as_bytes());
        input.extend((r.id.len() as u32).to_le_bytes());
        input.extend(r.id.as_bytes());
        input.extend(hash.0);
        assert_eq!(hex(&input), r.leaf_input, "{what}: leaf input");
        let l = leaf(&r.collection, &r.id, &hash);
        assert_eq!(l.0, <[u8; 32]>::from(Sha256::digest(&input)), "{what}");
        assert_eq!(l.to_string(), r.leaf, "{what}: leaf");
        sum.add(&l);
    }
    assert_eq!(sum.to_string(), digest, "digest of both records");
    // The same sum done as the page says: 256-bit little-endian integers, modulo 2^256.
    let as_int = |h: &str| -> Vec<u8> {
        (0..32)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let (a, b) = (as_int(&records[0].leaf), as_int(&records[1].leaf));
    let mut carry = 0u16;
    let by_hand: Vec<u8> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| {
            let s = u16::from(*x) + u16::from(*y) + carry;
            carry = s >> 8;
            s as u8
        })
        .collect();
    assert_eq!(hex(&by_hand), digest);

    // The example page holds these records, and is a valid last page of that scope.
    let page: Page = serde_json::from_str(block_after(&doc, "<!-- example-page -->"))
        .expect("the example page is a page");
    let valid = validate_page(page).expect("the example page passes validation");
    let snapshot = valid.snapshot.expect("a last page");
    assert_eq!(
        (snapshot.count, snapshot.digest.to_string()),
        (2, digest.clone())
    );
    for r in &records {
        let change = valid
            .changes
            .iter()
            .find(|c| (c.key.collection.as_str(), c.key.id.as_str()) == (&r.collection, &r.id))
            .unwrap_or_else(|| panic!("the page holds {}/{}", r.collection, r.id));
        let (doc, hash) = change.state.as_ref().expect("live");
        assert_eq!(
            (doc.as_str(), hash.to_string()),
            (r.canonical.as_str(), r.hash.clone())
        );
    }
}
