//! The limits every record is held to, on every path: the local edit, a page a replica
//! validates, the server's push and admin paths and rows written by plain SQL on PostgreSQL.
//! One number each, checked by one function ([`check_record`]), so what a replica accepts the
//! cloud can always hold, and the other way round.
//!
//! | limit | value | why |
//! |---|---|---|
//! | [`MAX_RECORD_BYTES`] | 2 MiB of canonical data | half a push of [`PUSH_BYTES`](crate::sync::PUSH_BYTES) (4 MiB): one mutation always fits with its key and envelope; the largest page (the budget plus one record) fits [`MAX_BODY`](crate::protocol::MAX_BODY) (64 MiB) |
//! | [`MAX_KEY_BYTES`] | 1,024 bytes of collection + id | PostgreSQL's btree entries are at most 2,704 bytes; the primary key holds the scope (up to 256) beside it |
//! | [`MAX_DEPTH`] | 64 levels, the data object being 1 | a push or page adds 3 levels around the data; serde_json refuses more than 128 |
//! | [`PAGE_BYTES`] | 4 MiB | the server cuts a page once its changes reach this many bytes (at least one change) |
//! | no U+0000 | in any string or member name | PostgreSQL's `text` and `jsonb` cannot hold it |
//! | [`MAX_FILTER_PATHS`], [`MAX_FILTER_VALUES`], [`MAX_PATH_SEGMENTS`], [`MAX_SUBSCRIPTION_BYTES`] | 4 paths, 100 values, 8 segments, 4,096 bytes | a subscription fits a URL and each of its pages reads a bounded number of index ranges |
//!
//! ```
//! use tether_engine::limits::{check_record, MAX_DEPTH};
//! use tether_engine::{Detail, Key};
//! let key = Key::new("notes", "n1");
//! assert!(check_record(&key, Some(br#"{"title":"hello"}"#)).is_ok());
//! let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
//! let err = check_record(&key, Some(format!(r#"{{"a":{deep}}}"#).as_bytes())).unwrap_err();
//! assert_eq!(err.detail(), Some(Detail::TooDeep));
//! assert_eq!(check_record(&key, Some(br#"{"a":"\u0000"}"#)).unwrap_err().detail(),
//!     Some(Detail::BadText));
//! ```

use crate::error::{Detail, Error, Result};
use crate::types::Key;

/// Most bytes of a record's data, measured on its canonical (RFC 8785) text.
pub const MAX_RECORD_BYTES: usize = 2 << 20;

/// Most bytes of a key: its collection and id together, as UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Deepest nesting of a record's data: the object itself is level 1, `{"a": {}}` is 2.
pub const MAX_DEPTH: usize = 64;

/// The server's page budget: a page ends with the change that takes the bytes of its changes
/// to this many or more, so a page holds at most this plus one change (and always one).
pub const PAGE_BYTES: usize = 4 << 20;

/// Most paths one [`Subscription`](crate::subscription::Subscription) filters on. Each path
/// costs the server an index ("Subsets" in docs/server.md) and each page an index scan per value.
pub const MAX_FILTER_PATHS: usize = 4;

/// Most values a subscription lists, over all its paths: a page of a subset reads one index
/// range per value of its first path.
pub const MAX_FILTER_VALUES: usize = 100;

/// Most subscriptions a replica holds in one scope: each is pulled on its own every sync (one
/// request at least) and checked against every evicted row.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// Most member names in one filter path (`owner.team` is 2).
pub const MAX_PATH_SEGMENTS: usize = 8;

/// Most bytes of a subscription's canonical JSON: percent-encoded in a query string (up to
/// three times longer) it stays under the 16 KiB of request line that common proxies accept.
pub const MAX_SUBSCRIPTION_BYTES: usize = 4096;

// A push or a page adds 3 levels around the data (body, list, change); serde_json stops at 128.
const _: () = assert!(MAX_DEPTH + 3 <= 128);

/// The stable reason a refused record is answered with by the cloud (`MutationResult::Invalid`)
/// and journaled with by a replica, for a limit's [`Detail`]: `too_large`, `key_too_long`,
/// `too_deep`, `bad_text`; `None` for a detail that is no limit.
pub fn reason(detail: Detail) -> Option<&'static str> {
    Some(match detail {
        Detail::TooLarge => "too_large",
        Detail::KeyTooLong => "key_too_long",
        Detail::TooDeep => "too_deep",
        Detail::BadText => "bad_text",
        _ => return None,
    })
}

/// Checks a record against every limit: the key, then (for a put) its data, the JSON text of
/// an object (as bytes: the caller's text is UTF-8 already). The size is that of the text given, so callers pass the canonical text; depth
/// and U+0000 are read from any spelling. An [`Error::InvalidInput`] whose detail names the
/// limit ([`Detail::KeyTooLong`], [`Detail::TooLarge`], [`Detail::TooDeep`],
/// [`Detail::BadText`]) and whose message names the key.
pub fn check_record(key: &Key, data: Option<&[u8]>) -> Result<()> {
    check_key(key)?;
    if let Some(text) = data {
        check_data(text).map_err(|e| {
            let Error::InvalidInput { message, detail } = e else {
                return e;
            };
            Error::InvalidInput {
                message: format!("{}/{}: {message}", key.collection, key.id),
                detail,
            }
        })?;
    }
    Ok(())
}

/// Checks a key's length ([`MAX_KEY_BYTES`]) and that it holds no U+0000.
pub fn check_key(key: &Key) -> Result<()> {
    let bytes = key.collection.len() + key.id.len();
    if bytes > MAX_KEY_BYTES {
        return Err(Error::invalid(format!(
            "key {}/{}: collection and id must be at most {MAX_KEY_BYTES} bytes together, got \
             {bytes}",
            clip(&key.collection),
            clip(&key.id)
        ))
        .with_detail(Detail::KeyTooLong));
    }
    for part in [&key.collection, &key.id] {
        check_text(part)?;
    }
    Ok(())
}

/// Checks that a string holds no U+0000 ([`Detail::BadText`]).
pub fn check_text(s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::invalid(format!(
            "{:?} holds U+0000, which no store can keep",
            clip(s)
        ))
        .with_detail(Detail::BadText));
    }
    Ok(())
}

/// Checks the JSON text of a record's data: depth first (so that a text too deep for a parser
/// is refused for what it is), then U+0000, then the size of the text.
pub fn check_data(text: &[u8]) -> Result<()> {
    let scan = scan(text);
    if scan.depth > MAX_DEPTH {
        return Err(Error::invalid(format!(
            "data must be nested at most {MAX_DEPTH} levels deep, got {}",
            scan.depth
        ))
        .with_detail(Detail::TooDeep));
    }
    if scan.nul {
        return Err(Error::invalid(
            "data holds U+0000 in a string or member name, which no store can keep",
        )
        .with_detail(Detail::BadText));
    }
    if text.len() > MAX_RECORD_BYTES {
        return Err(Error::invalid(format!(
            "data must be at most {MAX_RECORD_BYTES} bytes as canonical JSON, got {}",
            text.len()
        ))
        .with_detail(Detail::TooLarge));
    }
    Ok(())
}

/// What one pass over JSON text found.
struct Scan {
    /// Deepest nesting of arrays and objects (0 for a scalar).
    depth: usize,
    /// A `\u0000` escape inside a string (JSON text cannot hold U+0000 unescaped).
    nul: bool,
}

/// One pass over JSON text, without parsing it (no recursion, whatever the depth): brackets
/// outside strings, escapes inside them. For valid JSON only; anything else gives some answer
/// and is refused by the parser later.
///
/// Inside a string only a quote or a backslash matters, and most of a record's text is strings:
/// `memchr2` jumps between them instead of looking at every byte (this scan runs on every
/// record of every page, on the critical path of an initial sync).
fn scan(text: &[u8]) -> Scan {
    let (mut depth, mut deepest, mut nul) = (0usize, 0usize, false);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                // Just past the opening quote; ends on the closing one (or at the end of an
                // unterminated string).
                i += 1;
                loop {
                    let Some(k) = text.get(i..).and_then(|t| memchr::memchr2(b'"', b'\\', t))
                    else {
                        i = text.len();
                        break;
                    };
                    i += k;
                    if text[i] == b'"' {
                        break;
                    }
                    if text.get(i + 1) == Some(&b'u') && text.get(i + 2..i + 6) == Some(b"0000") {
                        nul = true;
                    }
                    // Skips the escaped character; `\uXXXX`'s digits are plain characters.
                    i += 2;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Scan {
        depth: deepest,
        nul,
    }
}

/// The start of a long string, for a message.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::write_canonical_text;

    fn nested(levels: usize) -> String {
        // The object is level 1; each array one more.
        let inner = levels - 1;
        format!(r#"{{"a":{}{}}}"#, "[".repeat(inner), "]".repeat(inner))
    }

    fn detail(key: &Key, data: Option<&str>) -> Option<Detail> {
        check_record(key, data.map(str::as_bytes)).err().map(|e| {
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{e}");
            e.detail().expect("a limit names its detail")
        })
    }

    #[test]
    fn each_limit_holds_at_its_number_and_refuses_one_more() {
        let k = Key::new("c", "i");
        assert_eq!(detail(&k, Some(&nested(MAX_DEPTH))), None);
        assert_eq!(
            detail(&k, Some(&nested(MAX_DEPTH + 1))),
            Some(Detail::TooDeep)
        );

        let fill = |n: usize| format!(r#"{{"a":"{}"}}"#, "x".repeat(n - 8));
        assert_eq!(fill(MAX_RECORD_BYTES).len(), MAX_RECORD_BYTES);
        assert_eq!(detail(&k, Some(&fill(MAX_RECORD_BYTES))), None);
        assert_eq!(
            detail(&k, Some(&fill(MAX_RECORD_BYTES + 1))),
            Some(Detail::TooLarge)
        );

        let id = |n: usize| "i".repeat(n - 1);
        assert_eq!(detail(&Key::new("c", id(MAX_KEY_BYTES)), None), None);
        assert_eq!(
            detail(&Key::new("c", id(MAX_KEY_BYTES + 1)), None),
            Some(Detail::KeyTooLong)
        );
        // Bytes, not characters.
        assert_eq!(
            detail(&Key::new("c", "é".repeat(MAX_KEY_BYTES / 2)), None),
            Some(Detail::KeyTooLong)
        );
    }

    #[test]
    fn u0000_is_refused_in_values_member_names_and_keys_only() {
        let k = Key::new("c", "i");
        for bad in [
            r#"{"a":"x\u0000"}"#,
            r#"{"x\u0000":1}"#,
            r#"{"a":[{"b":"\u0000"}]}"#,
        ] {
            assert_eq!(detail(&k, Some(bad)), Some(Detail::BadText), "{bad}");
        }
        // An escaped backslash before "u0000", and other escapes, are other text.
        for fine in [r#"{"a":"\\u0000"}"#, r#"{"a":"\u0001\n\"[{"}"#] {
            assert_eq!(detail(&k, Some(fine)), None, "{fine}");
        }
        assert_eq!(detail(&Key::new("c\0", "i"), None), Some(Detail::BadText));
        assert_eq!(detail(&Key::new("c", "\0"), None), Some(Detail::BadText));
    }

    #[test]
    fn the_canonical_writer_spells_u0000_as_the_scanner_reads_it() {
        let mut out = Vec::new();
        write_canonical_text("{\"\\u0000\": \"\\u0000\"}", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            check_data(text.as_bytes()).unwrap_err().detail(),
            Some(Detail::BadText)
        );
    }

    /// The scan as it was before it jumped through strings with `memchr2`: the reference.
    fn scan_bytewise(text: &[u8]) -> Scan {
        let (mut depth, mut deepest, mut nul) = (0usize, 0usize, false);
        let mut i = 0;
        let mut in_string = false;
        while i < text.len() {
            let b = text[i];
            if in_string {
                match b {
                    b'"' => in_string = false,
                    b'\\' => {
                        if text.get(i + 1) == Some(&b'u') && text.get(i + 2..i + 6) == Some(b"0000")
                        {
                            nul = true;
                        }
                        // Skips the escaped character; `\uXXXX`'s digits are plain characters.
                        i += 1;
                    }
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        depth += 1;
                        deepest = deepest.max(depth);
                    }
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            i += 1;
        }
        Scan {
            depth: deepest,
            nul,
        }
    }

    proptest::proptest! {
        #[test]
        fn the_jumping_scan_agrees_with_the_bytewise_one(
            text in proptest::collection::vec(proptest::sample::select(
                b"{}[]\"\\u0 a".to_vec()), 0..64)
        ) {
            let (fast, slow) = (scan(&text), scan_bytewise(&text));
            proptest::prop_assert_eq!((fast.depth, fast.nul), (slow.depth, slow.nul));
        }
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!(r#"{{"a":"{}"}}"#, "[{".repeat(200));
        assert_eq!(scan(text.as_bytes()).depth, 1);
    }

    #[test]
    fn a_page_or_push_of_the_deepest_record_parses() {
        // The envelope of a push (the deepest: body, list, mutation) around the data.
        let body = format!(r#"{{"mutations":[{{"data":{}}}]}}"#, nested(MAX_DEPTH));
        serde_json::from_str::<serde_json::Value>(&body).unwrap();
    }

    #[test]
    fn every_limit_has_a_reason() {
        for d in [
            Detail::TooLarge,
            Detail::KeyTooLong,
            Detail::TooDeep,
            Detail::BadText,
        ] {
            assert!(reason(d).is_some(), "{d}");
        }
        assert_eq!(reason(Detail::Quota), None);
    }
}
