//! RFC 8785 conformance: the reference vectors from `cyberphone/json-canonicalization`
//! (`testdata/input` and `testdata/output`), the number samples of RFC 8785 Appendix B, and
//! property tests for round-tripping and idempotence.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use tether_engine::canonical::{canonical_string, write_canonical, write_canonical_text};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jcs")
}

#[test]
fn reference_vectors() {
    let dir = data_dir();
    let mut names: Vec<_> = fs::read_dir(dir.join("input"))
        .expect("read input dir")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .collect();
    names.sort();
    let expected_names = [
        "arrays",
        "french",
        "structures",
        "unicode",
        "values",
        "weird",
    ]
    .map(|n| format!("{n}.json"));
    assert_eq!(names, expected_names, "vector files missing or unexpected");

    for name in &names {
        let input = fs::read(dir.join("input").join(name)).expect("read input");
        // The reference output files are the exact canonical bytes, without a trailing newline.
        let expected = fs::read(dir.join("output").join(name)).expect("read output");
        let value: Value = serde_json::from_slice(&input).expect("parse input");

        assert_eq!(
            canonical_string(&value).as_bytes(),
            &expected[..],
            "vector {name:?}: got {}, want {}",
            canonical_string(&value),
            String::from_utf8_lossy(&expected),
        );

        let mut out = Vec::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, expected, "vector {name:?} via write_canonical");

        // Straight from the text, as pages are canonicalized.
        let mut out = Vec::new();
        write_canonical_text(std::str::from_utf8(&input).expect("utf-8"), &mut out)
            .expect("valid JSON");
        assert_eq!(out, expected, "vector {name:?} via write_canonical_text");

        // Canonical output is itself valid input with the same canonical form.
        let reparsed: Value = serde_json::from_slice(&expected).expect("parse output");
        assert_eq!(
            canonical_string(&reparsed).as_bytes(),
            &expected[..],
            "{name:?} reparsed"
        );
    }
}

#[test]
fn appendix_b_numbers() {
    let text = fs::read_to_string(data_dir().join("numbers.json")).expect("read numbers.json");
    let rows: Vec<Value> = serde_json::from_str(&text).expect("parse numbers.json");
    let mut checked = 0;
    let mut skipped = 0;
    for row in &rows {
        let hex = row["ieee"].as_str().expect("ieee hex");
        let bits = u64::from_str_radix(hex, 16).expect("hex bits");
        let f = f64::from_bits(bits);
        let Some(expected) = row["expected"].as_str() else {
            // NaN and Infinity have no JSON representation (RFC 8785 section 3.2.2.3 makes them
            // an error) and `serde_json::Value` cannot hold them, so there is nothing to check.
            assert!(!f.is_finite(), "{hex} has no expected text but is finite");
            skipped += 1;
            continue;
        };
        let number = serde_json::Number::from_f64(f).expect("finite number");
        assert_eq!(
            canonical_string(&Value::Number(number)),
            expected,
            "IEEE-754 {hex}"
        );
        checked += 1;
    }
    assert_eq!((checked, skipped), (26, 2));
}

fn leaf() -> impl Strategy<Value = Value> {
    const MAX_SAFE: i64 = 1 << 53;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-MAX_SAFE..=MAX_SAFE).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        key().prop_map(Value::String),
    ]
}

/// Keys drawn from the characters where UTF-16 and code point order disagree, plus plain ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c\\x{7F}\\x{80}\\x{D7FF}\\x{E000}\\x{FB33}\\x{FFFF}\\x{10000}\\x{1F602}\\n\"]{0,3}",
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A deliberately naive JCS writer to diff against: a full UTF-16 sort for every object, and
/// serde_json's own string escaping, which matches RFC 8785 for the values generated here.
fn reference(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                reference(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string"));
                out.push(':');
                reference(v, out);
            }
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalar")),
    }
}

proptest! {
    #[test]
    fn text_form_equals_value_form(value in json_value(), floats in prop::collection::vec(any::<f64>(), 0..4), pretty in any::<bool>()) {
        // Floats beside the generated value: every spelling serde_json writes for a double.
        let value = Value::Array(vec![value, floats.into_iter().filter(|f| f.is_finite()).map(Value::from).collect()]);
        let text = if pretty {
            serde_json::to_string_pretty(&value).expect("JSON")
        } else {
            serde_json::to_string(&value).expect("JSON")
        };
        let mut out = Vec::new();
        write_canonical_text(&text, &mut out).expect("valid JSON");
        prop_assert_eq!(String::from_utf8(out).expect("utf-8"), canonical_string(&value));
    }

    #[test]
    fn reparses_equal_and_is_idempotent(value in json_value()) {
        let canonical = canonical_string(&value);
        let reparsed: Value = serde_json::from_str(&canonical).expect("canonical output parses");
        prop_assert_eq!(&reparsed, &value);
        prop_assert_eq!(canonical_string(&reparsed), canonical.clone());

        let mut naive = String::new();
        reference(&value, &mut naive);
        prop_assert_eq!(canonical, naive);
    }
}
