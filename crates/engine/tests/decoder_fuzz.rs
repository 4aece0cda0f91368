//! Fuzzing of the page decoder and validator with proptest (cargo-fuzz needs a nightly
//! toolchain, which this project's machines cannot fetch). Inputs are valid pages mutated at the
//! byte level and at the JSON level; the property: decoding + validation never panics, and what
//! it accepts satisfies the validator's guarantees (hashes match data, one change per key, keys
//! sorted, a checkpoint present), while what it refuses is a Protocol error.

use proptest::prelude::*;
use serde_json::json;
use tether_engine::rules::validate_page;
use tether_engine::{digest, ErrorKind, Page};

fn valid_page_json() -> Vec<u8> {
    let changes: Vec<serde_json::Value> = (0..4)
        .map(|i| {
            let data = json!({ "name": format!("n{i}"), "n": i, "tags": ["x", 1.5] });
            let hash = digest::record_hash(data.as_object().unwrap()).to_string();
            json!({ "collection": "objects", "id": format!("o{i}"), "version": i + 1,
                    "updated_at": "2026-01-01T00:00:00.000Z", "deleted": false, "data": data, "hash": hash })
        })
        .chain(std::iter::once(json!({ "collection": "objects", "id": "gone", "version": 9,
            "updated_at": "2026-01-01T00:00:00.000Z", "deleted": true, "data": null, "hash": null })))
        .collect();
    serde_json::to_vec(
        &json!({ "changes": changes, "checkpoint": "9", "has_more": false,
        "remaining": 0, "snapshot": { "count": 4, "digest": "0".repeat(64) } }),
    )
    .unwrap()
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(page) = serde_json::from_slice::<Page>(bytes) else {
        return Ok(());
    };
    match validate_page(page) {
        Ok(v) => {
            prop_assert!(!v.checkpoint.0.is_empty());
            prop_assert!(
                v.changes.windows(2).all(|w| w[0].key < w[1].key),
                "sorted, unique"
            );
            for c in &v.changes {
                if let Some((data, hash)) = &c.state {
                    prop_assert_eq!(&digest::record_hash(&data.to_data().unwrap()), hash);
                }
            }
        }
        Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Protocol),
    }
    Ok(())
}

#[test]
fn the_unmutated_page_is_accepted() {
    let page: Page = serde_json::from_slice(&valid_page_json()).unwrap();
    assert_eq!(validate_page(page).unwrap().changes.len(), 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn byte_mutations(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)) {
        let mut bytes = valid_page_json();
        for (at, byte, how) in edits {
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        check(&bytes)?;
    }

    #[test]
    fn json_mutations(path in 0usize..5, field in 0usize..7, value in prop_oneof![
        Just(json!(null)), Just(json!(-1)), Just(json!(u64::MAX)), Just(json!(1.5)), Just(json!("")),
        Just(json!("x")), Just(json!([])), Just(json!({})), Just(json!(true)), ".*".prop_map(serde_json::Value::String)
    ]) {
        let mut v: serde_json::Value = serde_json::from_slice(&valid_page_json()).unwrap();
        let names = ["collection", "id", "version", "updated_at", "deleted", "data", "hash"];
        v["changes"][path][names[field]] = value;
        check(&serde_json::to_vec(&v).unwrap())?;
    }
}
