//! Index keys: one byte encoding of JSON values whose bytewise order is Tether's one ordering of
//! JSON values, the same on every store (a SQLite BLOB compares with `memcmp`, an IndexedDB
//! binary key bytewise, a `Vec<u8>` lexicographically).
//!
//! The ordering, across types first:
//!
//! | rank | values | within the type |
//! |---|---|---|
//! | 1 | `null`, and a path the record does not have | equal |
//! | 2 | `false` | |
//! | 3 | `true` | |
//! | 4 | numbers | numerically, as IEEE-754 doubles (`1` equals `1.0`; `-0` equals `0`) |
//! | 5 | strings | by UTF-8 bytes (Unicode code point order; case-sensitive) |
//! | 6 | arrays and objects | by their canonical JSON text, bytewise |
//!
//! Each value is a tag byte then a payload that ends itself, so a compound key is the values'
//! encodings one after another and a key that starts with the encoding of `v` is exactly a key
//! whose first value is `v`:
//!
//! - numbers: 8 bytes, the double's bits big-endian, with the sign bit flipped for positives
//!   and every bit flipped for negatives (the usual order-preserving transform);
//! - strings and the canonical text of arrays and objects: the UTF-8 bytes with `0x00` written
//!   as `0x00 0xFF`, then a `0x00 0x00` terminator, so a string's encoding without its
//!   terminator is a prefix of the encoding of every string it is a prefix of.

use serde_json::Value;

use crate::canonical::write_canonical;

/// Type tags, in the order of the types.
pub(crate) const NULL: u8 = 0x01;
pub(crate) const FALSE: u8 = 0x02;
pub(crate) const TRUE: u8 = 0x03;
pub(crate) const NUMBER: u8 = 0x04;
pub(crate) const STRING: u8 = 0x05;
pub(crate) const NESTED: u8 = 0x06;

/// Appends the encoding of `value` (`None`: the path is absent, which sorts as `null`).
pub fn encode_value(value: Option<&Value>, out: &mut Vec<u8>) {
    match value {
        None | Some(Value::Null) => out.push(NULL),
        Some(Value::Bool(false)) => out.push(FALSE),
        Some(Value::Bool(true)) => out.push(TRUE),
        Some(Value::Number(n)) => {
            out.push(NUMBER);
            // serde_json numbers without `arbitrary_precision` always have an f64 view.
            out.extend_from_slice(&number_bits(n.as_f64().unwrap_or(0.0)));
        }
        Some(Value::String(s)) => {
            out.push(STRING);
            escape_into(s.as_bytes(), out);
            out.extend_from_slice(&[0, 0]);
        }
        Some(nested) => {
            out.push(NESTED);
            let mut text = Vec::new();
            write_canonical(nested, &mut text);
            escape_into(&text, out);
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// The bytes a string's encoding starts with, before its terminator: every string that starts
/// with `prefix` encodes to these bytes followed by more.
pub(crate) fn string_prefix(prefix: &str, out: &mut Vec<u8>) {
    out.push(STRING);
    escape_into(prefix.as_bytes(), out);
}

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

fn number_bits(f: f64) -> [u8; 8] {
    let f = if f == 0.0 { 0.0 } else { f }; // -0 sorts as 0
    let bits = f.to_bits();
    let ordered = if bits >> 63 == 0 {
        bits | (1 << 63)
    } else {
        !bits
    };
    ordered.to_be_bytes()
}

/// Compares two JSON values in the ordering above, directly on the values (not through the
/// encoding): the reference the encoding is tested against, and the naive filter of the
/// differential tests.
pub fn compare_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 1,
            Some(Value::Bool(false)) => 2,
            Some(Value::Bool(true)) => 3,
            Some(Value::Number(_)) => 4,
            Some(Value::String(_)) => 5,
            Some(_) => 6,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Some(x), Some(y)) if rank(a) == 6 && rank(b) == 6 => {
            let (mut p, mut q) = (Vec::new(), Vec::new());
            write_canonical(x, &mut p);
            write_canonical(y, &mut q);
            p.cmp(&q)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(Some(v), &mut out);
        out
    }

    #[test]
    fn types_order_null_bools_numbers_strings_nested() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1e300),
            json!(-1.5),
            json!(0),
            json!(1),
            json!(2.5),
            json!(1e300),
            json!(""),
            json!("\u{0}"),
            json!("A"),
            json!("a"),
            json!("ab"),
            json!("é"),
            json!([]),
            json!({"a": 1}),
        ];
        for w in ordered.windows(2) {
            assert!(enc(&w[0]) < enc(&w[1]), "{} < {}", w[0], w[1]);
            assert_eq!(
                compare_values(Some(&w[0]), Some(&w[1])),
                std::cmp::Ordering::Less
            );
        }
        assert_eq!(enc(&json!(1)), enc(&json!(1.0)));
        assert_eq!(enc(&json!(-0.0)), enc(&json!(0)));
        let mut absent = Vec::new();
        encode_value(None, &mut absent);
        assert_eq!(absent, enc(&json!(null)));
    }

    #[test]
    fn a_prefix_covers_exactly_the_strings_it_starts() {
        let mut p = Vec::new();
        string_prefix("ord", &mut p);
        for (s, starts) in [
            ("ord", true),
            ("orders", true),
            ("ord\u{0}x", true),
            ("or", false),
            ("orE", false),
            ("ore", false),
        ] {
            assert_eq!(enc(&json!(s)).starts_with(&p), starts, "{s}");
        }
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "\\PC{0,6}".prop_map(Value::String),
            prop::collection::vec(any::<u8>(), 0..3).prop_map(|v| json!(v)),
        ]
    }

    proptest! {
        #[test]
        fn the_encoding_orders_as_the_values(a in scalar(), b in scalar(), c in scalar(), d in scalar()) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), compare_values(Some(&a), Some(&b)));
            // Compound keys order lexicographically by their values.
            let (mut ab, mut cd) = (enc(&a), enc(&c));
            ab.extend(enc(&b));
            cd.extend(enc(&d));
            let expected = compare_values(Some(&a), Some(&c)).then(compare_values(Some(&b), Some(&d)));
            prop_assert_eq!(ab.cmp(&cd), expected);
        }
    }
}
