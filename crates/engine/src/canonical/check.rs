//! Whether JSON text is canonical already, read in one pass without writing anything.
//!
//! The server keeps each record's data as its canonical text and sends it verbatim, so nearly
//! every record a replica validates is canonical already: checking that costs one pass over the
//! bytes, where the rewrite ([`write_canonical_text`](super::write_canonical_text)) parses,
//! buffers each object's members, sorts them and writes the text out again.

/// Whether `text` is exactly what [`write_canonical_text`](super::write_canonical_text) writes
/// for it, nested at most `max_depth` levels deep and with no U+0000 in any string: then the
/// text can be hashed and kept as it came, without the rewrite.
///
/// Conservative: it is false for some canonical texts it does not follow (a member name with an
/// escape, a number in exponent form or with more than 15 significant digits, a `\u0000`, a
/// text nested deeper than `max_depth`), and for anything that is not JSON; the caller then
/// takes the rewrite, which decides. It is never true for a text the rewrite would change or
/// refuse.
///
/// ```
/// use tether_engine::canonical::is_canonical;
/// assert!(is_canonical(r#"{"a":[1,0.5,"x\n"],"b":null}"#, 64));
/// assert!(!is_canonical(r#"{"b":1,"a":2}"#, 64)); // members out of order
/// assert!(!is_canonical(r#"{"a": 1}"#, 64)); // whitespace
/// assert!(!is_canonical(r#"{"a":1.50}"#, 64)); // not the shortest number
/// assert!(!is_canonical(r#"{"a":{}}"#, 1)); // deeper than allowed
/// ```
pub fn is_canonical(text: &str, max_depth: usize) -> bool {
    let mut check = Check {
        text: text.as_bytes(),
        at: 0,
        depth_left: max_depth,
    };
    check.value() && check.at == check.text.len()
}

/// Most significant digits of a number the check takes as canonical: every decimal with at
/// most 15 is the shortest that round-trips its double (`f64::DIGITS`), so ECMAScript writes
/// the same digits.
const MAX_DIGITS: usize = 15;

/// Most zeros between the point and the first significant digit of a number below 1 that
/// ECMAScript writes in fixed notation: `0.000001` (1e-6) is written so, `1e-7` is not.
const MAX_LEADING_ZEROS: usize = 5;

struct Check<'a> {
    text: &'a [u8],
    at: usize,
    depth_left: usize,
}

impl<'a> Check<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// Takes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    fn value(&mut self) -> bool {
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string(),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let next = self.text[self.at..].starts_with(word);
        if next {
            self.at += word.len();
        }
        next
    }

    /// An object or array, one level deeper; the recursion is bounded by the depth allowed.
    fn nested(&mut self, body: fn(&mut Self) -> bool) -> bool {
        if self.depth_left == 0 {
            return false;
        }
        self.depth_left -= 1;
        self.at += 1;
        let ok = body(self);
        self.depth_left += 1;
        ok
    }

    fn array(&mut self) -> bool {
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value() {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self) -> bool {
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            let Some(name) = self.name() else {
                return false;
            };
            if previous.is_some_and(|p| !before(p, name)) || !self.eat(b':') || !self.value() {
                return false;
            }
            previous = Some(name);
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A member name without escapes (names with one are rare; the rewrite takes them), as the
    /// bytes between its quotes.
    fn name(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let rest = &self.text[self.at..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        let name = &rest[..end];
        if rest[end] != b'"' || name.iter().any(|&b| b < 0x20) {
            return None;
        }
        self.at += end + 1;
        Some(name)
    }

    /// A string as [`write_string`](super::write_string) spells it: raw characters but for `"`,
    /// `\` and the controls, and those in their shortest escape.
    fn string(&mut self) -> bool {
        self.at += 1;
        loop {
            let rest = &self.text[self.at..];
            let Some(k) = memchr::memchr2(b'"', b'\\', rest) else {
                return false;
            };
            if rest[..k].iter().any(|&b| b < 0x20) {
                return false;
            }
            self.at += k + 1;
            if rest[k] == b'"' {
                return true;
            }
            let escape_len = match rest.get(k + 1..) {
                Some([b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r', ..]) => 1,
                Some([b'u', b'0', b'0', hi, lo, ..]) if is_control_escape(*hi, *lo) => 5,
                _ => return false,
            };
            self.at += escape_len;
        }
    }

    /// A number as ECMAScript writes its double: an integer of at most 15 digits, or a decimal
    /// in fixed notation with at most 15 significant digits and no trailing zero.
    fn number(&mut self) -> bool {
        let negative = self.eat(b'-');
        let int_start = self.at;
        self.skip_digits();
        let int = &self.text[int_start..self.at];
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return false;
        }
        if !self.eat(b'.') {
            // `-0` is written `0`.
            return int.len() <= MAX_DIGITS
                && !(negative && int == b"0")
                && !matches!(self.peek(), Some(b'e' | b'E'));
        }
        let frac_start = self.at;
        self.skip_digits();
        let frac = &self.text[frac_start..self.at];
        let Some(&last) = frac.last() else {
            return false;
        };
        if last == b'0' || matches!(self.peek(), Some(b'e' | b'E')) {
            return false;
        }
        let digits = if int == b"0" {
            let zeros = frac.iter().take_while(|&&b| b == b'0').count();
            if zeros > MAX_LEADING_ZEROS {
                return false;
            }
            frac.len() - zeros
        } else {
            int.len() + frac.len()
        };
        digits <= MAX_DIGITS
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }
}

/// Whether `\u00{hi}{lo}` is how the canonical writer spells a character: a control other than
/// U+0000 (refused by every store, so left to the rewrite and the limits) that has no short
/// escape, in lowercase hex.
fn is_control_escape(hi: u8, lo: u8) -> bool {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    match (hi, nibble(lo)) {
        (b'0' | b'1', Some(lo)) => {
            let c = (hi - b'0') << 4 | lo;
            c != 0 && !matches!(c, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
        }
        _ => false,
    }
}

/// Whether member name `a` sorts strictly before `b` in RFC 8785 order (UTF-16 code units):
/// as bytes unless one holds a character in U+E000..=U+FFFF (lead byte 0xEE or 0xEF), the only
/// case where the two orders differ (see `super::member_order`).
fn before(a: &[u8], b: &[u8]) -> bool {
    if !a.iter().chain(b).any(|&c| c >= 0xEE) {
        return a < b;
    }
    // Names are whole characters of the text, which is a `str`.
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(a), Ok(b)) => a.encode_utf16().lt(b.encode_utf16()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{canonical_string, write_canonical_text};
    use proptest::prelude::*;
    use serde_json::Value;

    /// The property the fast path rests on: what the check takes, the rewrite writes unchanged.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if is_canonical(text, 64) {
            let mut out = Vec::new();
            let rewritten = write_canonical_text(text, &mut out);
            prop_assert!(rewritten.is_ok(), "taken but refused: {text:?}");
            prop_assert_eq!(String::from_utf8(out).unwrap(), text);
        }
        Ok(())
    }

    /// Strings of the characters where spellings differ: escapes, controls, U+0000, the UTF-16
    /// order's exceptions.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a',
                'b',
                'é',
                '"',
                '\\',
                '/',
                '\n',
                '\u{1}',
                '\u{1f}',
                '\u{0}',
                '\u{7f}',
                '\u{E000}',
                '\u{FFFF}',
                '\u{1F602}',
            ]),
            0..4,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (-10_000i64..10_000, 0u32..9)
                .prop_map(|(m, e)| Value::from(m as f64 / 10f64.powi(e as i32))),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number(),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((text(), inner), 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Number texts in every spelling JSON allows, canonical or not.
    fn number_text() -> impl Strategy<Value = String> {
        let digits = |n| {
            prop::collection::vec(prop::sample::select(b"0123456789".to_vec()), n)
                .prop_map(|d| String::from_utf8(d).unwrap())
        };
        (
            any::<bool>(),
            digits(1..18),
            prop::option::of(digits(0..18)),
            prop::option::of((
                prop::sample::select(vec!["e", "E", "e+", "e-"]),
                digits(1..3),
            )),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut s = String::from(if neg { "-" } else { "" });
                s += &int;
                if let Some(f) = frac {
                    s = s + "." + &f;
                }
                if let Some((e, d)) = exp {
                    s = s + e + &d;
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn what_the_check_takes_the_rewrite_writes_unchanged(
            v in value(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..3),
        ) {
            let canonical = canonical_string(&v);
            agrees(&canonical)?;
            agrees(&serde_json::to_string(&v).unwrap())?;
            agrees(&serde_json::to_string_pretty(&v).unwrap())?;
            // The canonical text edited at the byte level: whatever stays UTF-8.
            let mut bytes = canonical.into_bytes();
            for (at, byte, op) in edits {
                match op {
                    0 if !bytes.is_empty() => { let i = at.index(bytes.len()); bytes[i] = byte; }
                    1 if !bytes.is_empty() => { bytes.remove(at.index(bytes.len())); }
                    _ => bytes.insert(at.index(bytes.len() + 1), byte),
                }
            }
            if let Ok(text) = String::from_utf8(bytes) {
                agrees(&text)?;
            }
        }

        #[test]
        fn a_number_is_taken_only_as_ecmascript_writes_it(n in number_text()) {
            agrees(&n)?;
            agrees(&format!("[{n}]"))?;
        }

        #[test]
        fn short_decimals_are_taken(m in -999_999_999i64..999_999_999, e in 0i32..12) {
            // Canonical numbers of up to 15 significant digits in fixed notation are taken
            // (the data of a sync is mostly these): the fast path is not a rare one.
            let text = canonical_string(&Value::from(m as f64 / 10f64.powi(e)));
            let fixed = !text.contains('e');
            prop_assert_eq!(is_canonical(&text, 64), fixed, "{}", text);
        }
    }

    #[test]
    fn a_record_of_the_usual_kind_is_taken() {
        let v = serde_json::json!({"name": "orders", "n": 12, "ratio": 0.2007, "neg": -3.25,
            "tags": ["a", "b\n\"c\"\\"], "small": 0.000001, "nested": {"x": null, "y": [true, false]},
            "control": "\u{1}\u{1f}", "é": "😂", "\u{FB33}": 1, "\u{1F602}": 2});
        let text = canonical_string(&v);
        assert!(is_canonical(&text, 64), "{text}");
        assert!(is_canonical(&text, 3));
        assert!(!is_canonical(&text, 2), "three levels deep");
    }

    #[test]
    fn what_the_rewrite_decides_is_left_to_it() {
        for text in [
            "",
            " ",
            "{",
            "{}x",
            "{} ",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "nul",
            "\"\\x\"",
            "{\"a\":1,\"a\":1}",
            "{\"b\":1,\"a\":1}",
            "{\"\\n\":1}",
            "{\"a\":\"\\u0000\"}",
            "\"\\u000a\"",
            "\"\\u001F\"",
            "\"\\/\"",
            "\"\\u00e9\"",
            "1.0",
            "1e3",
            "1E+3",
            "-0",
            "01",
            "0.0000001",
            "1234567890123456",
            "0.1234567890123456",
            "1.",
            ".5",
            "-",
            "\"\u{1}\"",
            "[1,2",
            "{\"a\":[1,{\"b\":2}}]}",
        ] {
            assert!(!is_canonical(text, 64), "{text:?}");
        }
        for text in [
            "{}",
            "[]",
            "0",
            "-1",
            "1.5",
            "0.000001",
            "123456789012345",
            "\"\\u001f\\b\"",
            "{\"\":1,\"a\":{\"a\":[]}}",
            "[null,true,false,\"\"]",
        ] {
            assert!(is_canonical(text, 64), "{text:?}");
        }
    }
}
