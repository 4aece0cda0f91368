//! Canonical JSON per [RFC 8785], the JSON Canonicalization Scheme (JCS).
//!
//! Two replicas hash and compare records, so the same logical value must always serialize to
//! the same bytes, whichever peer or language produced it. JCS pins down every choice that
//! ordinary JSON writers leave open:
//!
//! - no insignificant whitespace;
//! - object members sorted by their names as arrays of UTF-16 code units (what JavaScript's
//!   default sort does), not by UTF-8 bytes or by locale;
//! - numbers written exactly as ECMAScript's `Number.prototype.toString` writes the IEEE-754
//!   double, so every number goes through `f64` (`9007199254740993` becomes
//!   `9007199254740992`, `-0` becomes `0`, `1e21` stays `1e+21`);
//! - strings escape only `"`, `\` and the controls below U+0020 (`\b \t \n \f \r` in their short
//!   form, the rest as lowercase `\u00xx`); everything else, `/` and non-ASCII included, is
//!   written as literal UTF-8, without Unicode normalization.
//!
//! ```
//! use tether_engine::canonical::canonical_string;
//!
//! // U+1F602 sorts before U+FB33: its first UTF-16 code unit is 0xD83D.
//! let value = serde_json::json!({
//!     "b": [1.50, -0.0, 1e21, 9007199254740993u64],
//!     "a": "é/\n",
//!     "\u{FB33}": 1,
//!     "\u{1F602}": 2,
//! });
//! assert_eq!(
//!     canonical_string(&value),
//!     "{\"a\":\"é/\\n\",\"b\":[1.5,0,1e+21,9007199254740992],\"\u{1F602}\":2,\"\u{FB33}\":1}"
//! );
//! ```
//!
//! [RFC 8785]: https://www.rfc-editor.org/rfc/rfc8785

use serde_json::{Map, Number, Value};

mod check;
pub use check::is_canonical;

/// Appends the RFC 8785 canonical form of `value` to `out`.
///
/// Cannot fail: a `serde_json::Value` has no NaN or infinity to reject. `out` is not cleared,
/// so a caller can reuse one buffer across records.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_canonical_map(map, out),
    }
}

/// Returns the RFC 8785 canonical form of `value` as a string.
pub fn canonical_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_canonical(value, &mut out);
    // Every byte written is either ASCII or copied whole from a `&str`, so this cannot fail.
    String::from_utf8(out).expect("canonical JSON is built from valid UTF-8")
}

/// 2^53: every integer up to this magnitude is an exact double, and ECMAScript prints such an
/// integer as its plain decimal digits.
const MAX_EXACT_INT: u64 = 1 << 53;

fn write_number(n: &Number, out: &mut Vec<u8>) {
    // Integers are the common case in records, and plain digit formatting is much cheaper than
    // the shortest-round-trip search ryu does; it gives the same text for exact integers.
    if let Some(u) = n.as_u64() {
        write_u64(u, out)
    } else if let Some(i) = n.as_i64() {
        write_i64(i, out)
    } else {
        // Only `None` if some crate enables serde_json's `arbitrary_precision` and a number
        // overflows f64.
        write_f64(n.as_f64().unwrap_or(f64::NAN), out)
    }
}

fn write_u64(u: u64, out: &mut Vec<u8>) {
    if u <= MAX_EXACT_INT {
        write_digits(u, out)
    } else {
        // JCS defines numbers as IEEE-754 doubles, so integers beyond 2^53 must lose precision
        // exactly as they would in JavaScript; `as f64` rounds to nearest.
        write_f64(u as f64, out)
    }
}

fn write_i64(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        write_u64(i.unsigned_abs(), out)
    } else if i.unsigned_abs() <= MAX_EXACT_INT {
        out.push(b'-');
        write_digits(i.unsigned_abs(), out)
    } else {
        write_f64(i as f64, out)
    }
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(f).as_bytes());
    } else {
        // `null` is what JSON.stringify writes for a non-finite number, and it keeps the output
        // valid JSON instead of emitting `Infinity`.
        out.extend_from_slice(b"null")
    }
}

fn write_digits(mut n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Bytes that need escaping, mapped to their short escape, or `u` for the `\u00xx` form.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Copy unescaped runs in one go; bytes >= 0x80 never need escaping, so multi-byte
    // characters are copied intact.
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the RFC 8785 canonical form of a JSON object, given as its map, to `out`.
///
/// Same output as [`write_canonical`] on `Value::Object(map)`, for callers that hold the map
/// and would otherwise have to clone it into a `Value`.
pub fn write_canonical_map(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    if iteration_order_is_canonical(map) {
        for (i, (key, value)) in map.iter().enumerate() {
            write_member(i, key, value, out);
        }
    } else {
        let members: Vec<(&String, &Value)> = map.iter().collect();
        let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
        for (i, m) in member_order(&names).into_iter().enumerate() {
            let (key, value) = members[m];
            write_member(i, key, value, out);
        }
    }
    out.push(b'}');
}

/// The order of members with these names in RFC 8785 (by UTF-16 code units), as indices into
/// `names`; equal names in their order. Through the engine's one sort, not the standard
/// library's (several KB of code per element type in the wasm build).
///
/// UTF-8 byte order is the same as UTF-16 order unless a name holds a character in
/// U+E000..=U+FFFF (lead byte 0xEE or 0xEF; see [`iteration_order_is_canonical`]): without one,
/// names are compared as bytes, several times faster than through `encode_utf16` on the path
/// that canonicalizes every record of every page.
fn member_order(names: &[&str]) -> Vec<usize> {
    if names.iter().all(|n| !n.bytes().any(|b| b >= 0xEE)) {
        return crate::sort::order_by(names.len(), &mut |a, b| {
            names[a].as_bytes().cmp(names[b].as_bytes())
        });
    }
    crate::sort::order_by(names.len(), &mut |a, b| {
        names[a].encode_utf16().cmp(names[b].encode_utf16())
    })
}

fn write_member(index: usize, key: &str, value: &Value, out: &mut Vec<u8>) {
    if index > 0 {
        out.push(b',');
    }
    write_string(key, out);
    out.push(b':');
    write_canonical(value, out);
}

/// Whether iterating `map` already yields the RFC 8785 member order, so no sort is needed.
///
/// The default `serde_json::Map` is a `BTreeMap`, which iterates in UTF-8 byte order, i.e. code
/// point order. That differs from UTF-16 code unit order in one case only: a character in
/// U+E000..=U+FFFF sorts after every supplementary character (>= U+10000) in UTF-16, whose
/// leading surrogate is in U+D800..=U+DBFF, but before it by code point. Every other pair of
/// differing characters compares the same both ways. So byte order is canonical unless some key
/// has a U+E000..=U+FFFF character (UTF-8 lead byte 0xEE or 0xEF) and some key has a
/// supplementary one (lead byte 0xF0..=0xF4). The sortedness check keeps this correct when a
/// dependency enables serde_json's `preserve_order` feature and the map iterates in insertion
/// order instead.
fn iteration_order_is_canonical(map: &Map<String, Value>) -> bool {
    let mut prev: Option<&str> = None;
    let mut has_high_bmp = false;
    let mut has_supplementary = false;
    for key in map.keys() {
        if prev.is_some_and(|p| p.as_bytes() >= key.as_bytes()) {
            return false;
        }
        prev = Some(key);
        for &b in key.as_bytes() {
            // Continuation bytes are 0x80..=0xBF, so only lead bytes can match here.
            has_high_bmp |= b == 0xEE || b == 0xEF;
            has_supplementary |= b >= 0xF0;
        }
    }
    !(has_high_bmp && has_supplementary)
}

/// Appends the RFC 8785 canonical form of the JSON text `json` to `out`, parsing the text once
/// and building no `Value`: strings are copied from the text where they have no escapes, and
/// each object's members are sorted as they are read. The output is the same as
/// [`write_canonical`] on the parsed value (for a duplicate member name, the last one counts, as
/// in a parsed `Value`).
///
/// ```
/// use tether_engine::canonical::write_canonical_text;
/// let mut out = Vec::new();
/// write_canonical_text(r#"{ "b": [1.50, -0.0], "a": "\u00e9" }"#, &mut out).unwrap();
/// assert_eq!(out, r#"{"a":"é","b":[1.5,0]}"#.as_bytes());
/// assert!(write_canonical_text("{\"a\": }", &mut Vec::new()).is_err());
/// ```
pub fn write_canonical_text(json: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    // From the `str`, not its bytes: the text is UTF-8 already, and a slice reader checks every
    // string again (a seventh of this function's time on a sync's pages).
    let mut de = serde_json::Deserializer::from_str(json);
    serde::de::DeserializeSeed::deserialize(Canon { out }, &mut de)?;
    de.end()
}

/// Writes the canonical form of the value it deserializes into `out`.
struct Canon<'a> {
    out: &'a mut Vec<u8>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Canon<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Canon<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        write_u64(v, self.out);
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        write_i64(v, self.out);
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        write_f64(v, self.out);
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        write_string(v, self.out);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(Canon { out: self.out })?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Each member's value is written to `values`; `members` keeps its name and range.
        let mut values = Vec::new();
        let mut members: Vec<(std::borrow::Cow<'de, str>, std::ops::Range<usize>)> = Vec::new();
        while let Some(Name(name)) = map.next_key()? {
            let start = values.len();
            map.next_value_seed(Canon { out: &mut values })?;
            members.push((name, start..values.len()));
        }
        // Among equal names the last one read stays last, and is the one kept.
        let names: Vec<&str> = members.iter().map(|m| &*m.0).collect();
        let order = member_order(&names);
        self.out.push(b'{');
        let mut written = 0;
        for (i, &m) in order.iter().enumerate() {
            let name = names[m];
            if order.get(i + 1).is_some_and(|&next| names[next] == name) {
                continue;
            }
            let range = &members[m].1;
            if written > 0 {
                self.out.push(b',');
            }
            write_string(name, self.out);
            self.out.push(b':');
            self.out.extend_from_slice(&values[range.clone()]);
            written += 1;
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        canonical_string(v)
    }

    proptest::proptest! {
        #[test]
        fn the_member_order_is_the_utf16_order_whatever_the_characters(
            names in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(
                    vec!['a', 'b', '~', '\u{7f}', '\u{e9}', '\u{D7FF}', '\u{E000}', '\u{FB33}',
                         '\u{FFFF}', '\u{10000}', '\u{1F602}']), 0..4)
                    .prop_map(|cs| cs.into_iter().collect::<String>()),
                0..8)
        ) {
            let input: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut expected: Vec<usize> = (0..input.len()).collect();
            expected.sort_by(|&a, &b| input[a].encode_utf16().cmp(input[b].encode_utf16()));
            proptest::prop_assert_eq!(member_order(&input), expected);
        }
    }

    #[test]
    fn the_member_order_is_the_stable_utf16_order() {
        let names = [
            "b",
            "\u{FB33}",
            "a",
            "\u{1F602}",
            "",
            "b",
            "aa",
            "\u{E000}",
            "a",
            "ab",
        ];
        for n in 0..=names.len() {
            for rot in 0..names.len() {
                let input: Vec<&str> = (0..n).map(|i| names[(i + rot) % names.len()]).collect();
                let mut expected: Vec<usize> = (0..n).collect();
                expected.sort_by(|&a, &b| input[a].encode_utf16().cmp(input[b].encode_utf16()));
                assert_eq!(member_order(&input), expected);
            }
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_code_points() {
        // U+1F602 is encoded as D83D DE02, which sorts before U+FB33 and U+E000 in UTF-16 even
        // though its code point (and UTF-8 encoding) is larger.
        let v = json!({"\u{FB33}": 1, "\u{1F602}": 2, "\u{E000}": 3, "\u{D7FF}": 4, "a": 5});
        assert_eq!(
            canon(&v),
            "{\"a\":5,\"\u{D7FF}\":4,\"\u{1F602}\":2,\"\u{E000}\":3,\"\u{FB33}\":1}"
        );
        // The same characters deeper in a key, after a common prefix.
        let v = json!({"x\u{FFFF}": 1, "x\u{10000}": 2});
        assert_eq!(canon(&v), "{\"x\u{10000}\":2,\"x\u{FFFF}\":1}");
    }

    #[test]
    fn keys_without_the_divergent_ranges_keep_byte_order() {
        let v = json!({"b": 1, "a": 2, "\u{1F602}": 3, "\u{D7FF}": 4, "": 5, "aa": 6});
        assert_eq!(
            canon(&v),
            "{\"\":5,\"a\":2,\"aa\":6,\"b\":1,\"\u{D7FF}\":4,\"\u{1F602}\":3}"
        );
        let v = json!({"\u{FB33}": 1, "\u{E000}": 2, "\u{80}": 3});
        assert_eq!(canon(&v), "{\"\u{80}\":3,\"\u{E000}\":2,\"\u{FB33}\":1}");
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(canon(&json!(-0.0)), "0");
        assert_eq!(canon(&json!([0.0, -0.0])), "[0,0]");
    }

    #[test]
    fn integers_go_through_f64() {
        assert_eq!(canon(&json!(9007199254740993u64)), "9007199254740992");
        assert_eq!(canon(&json!(9007199254740992u64)), "9007199254740992");
        assert_eq!(canon(&json!(-9007199254740992i64)), "-9007199254740992");
        assert_eq!(canon(&json!(9007199254740994u64)), "9007199254740994");
        assert_eq!(canon(&json!(9007199254740995u64)), "9007199254740996");
        assert_eq!(
            canon(&json!([0, 7, -1, 10, 1234567890])),
            "[0,7,-1,10,1234567890]"
        );
        assert_eq!(canon(&json!(-9007199254740993i64)), "-9007199254740992");
        assert_eq!(canon(&json!(u64::MAX)), "18446744073709552000");
        assert_eq!(canon(&json!(i64::MIN)), "-9223372036854776000");
        assert_eq!(
            canon(&json!(1_000_000_000_000_000_000_000u128 as f64)),
            "1e+21"
        );
        assert_eq!(
            canon(&json!(100_000_000_000_000_000_000u128 as f64)),
            "100000000000000000000"
        );
    }

    #[test]
    fn nested_structures() {
        let v = json!({"z": [{"b": [], "a": {}}, [[1, [2]], {"d": null, "c": true}]], "y": false});
        assert_eq!(
            canon(&v),
            "{\"y\":false,\"z\":[{\"a\":{},\"b\":[]},[[1,[2]],{\"c\":true,\"d\":null}]]}"
        );
        assert_eq!(canon(&json!([])), "[]");
        assert_eq!(canon(&json!({})), "{}");
    }

    #[test]
    fn control_characters_and_specials_are_escaped() {
        let all: String = (0u8..0x20).map(char::from).collect();
        assert_eq!(
            canon(&json!(all)),
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
             \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
             \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        assert_eq!(
            canon(&json!("a\"b\\c/d\u{7f}\u{80}é\u{2028}😂")),
            "\"a\\\"b\\\\c/d\u{7f}\u{80}é\u{2028}😂\""
        );
        assert_eq!(canon(&json!({"\n\u{1}": "\t"})), "{\"\\n\\u0001\":\"\\t\"}");
    }

    #[test]
    fn map_form_matches_value_form() {
        let v = json!({"\u{E000}": [1], "\u{10000}": {"b": 2, "a": 1}, "": null});
        let mut out = Vec::new();
        write_canonical_map(v.as_object().expect("object"), &mut out);
        assert_eq!(out, canon(&v).as_bytes());
    }

    #[test]
    fn appends_without_clearing() {
        let mut out = b"x".to_vec();
        write_canonical(&json!([1, "a"]), &mut out);
        assert_eq!(out, b"x[1,\"a\"]");
    }

    #[test]
    fn text_form_matches_value_form() {
        let texts = [
            r#"{"z": [{"b": [], "a": {}}, [[1, [2]], {"d": null, "c": true}]], "y": false}"#,
            r#"{"\uE000": [1], "\ud83d\ude02": {"b": 2, "a": 1}, "": null, "\n": "\u0001\t/"}"#,
            r#"[1.50, -0.0, 1e21, 9007199254740993, -9007199254740993, 18446744073709551616, 0.1]"#,
            r#"{"a": 1, "a": 2, "b": {"x": 1, "x": {"y": 3}}}"#,
            r#"  "plain"  "#,
            "[]",
            "{}",
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).expect("valid JSON");
            let mut out = Vec::new();
            write_canonical_text(text, &mut out).expect("valid JSON");
            assert_eq!(String::from_utf8(out).unwrap(), canon(&value), "{text}");
        }
    }

    #[test]
    fn text_form_rejects_what_is_not_json() {
        for text in ["", "{", "{\"a\"}", "[1,]", "{\"a\":1} x", "nul", "\"\\x\""] {
            assert!(
                write_canonical_text(text, &mut Vec::new()).is_err(),
                "{text}"
            );
        }
    }
}
