//! Content hashes and the scope digest.
//!
//! A record's [`RecordHash`] is SHA-256 of the RFC 8785 canonical JSON of its data. The scope
//! [`Digest`] is the sum, modulo 2^256, of one leaf per live record, so it is maintained in O(1)
//! per change (add the new leaf, subtract the old one) and the digest of any key range is defined
//! the same way.
//!
//! ```
//! use tether_engine::digest::{leaf, record_hash, Digest};
//! let data = serde_json::json!({"name": "orders"});
//! let hash = record_hash(data.as_object().unwrap());
//! let mut digest = Digest::ZERO;
//! digest.add(&leaf("objects", "obj_1", &hash));
//! assert_ne!(digest, Digest::ZERO);
//! digest.sub(&leaf("objects", "obj_1", &hash));
//! assert_eq!(digest.to_string(), "0".repeat(64));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// SHA-256 of a record's canonical JSON data, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordHash(pub [u8; 32]);

/// The scope digest: a 256-bit unsigned integer, stored little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

/// Count and digest of a scope, or of a key range of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Number of live records.
    pub count: u64,
    /// Sum of their leaves.
    pub digest: Digest,
}

/// Hashes a record's data: SHA-256 of its RFC 8785 canonical JSON.
pub fn record_hash(data: &serde_json::Map<String, serde_json::Value>) -> RecordHash {
    let mut buf = Vec::with_capacity(256);
    record_hash_with(data, &mut buf)
}

/// Like [`record_hash`], reusing `buf` to avoid an allocation per record.
pub fn record_hash_with(
    data: &serde_json::Map<String, serde_json::Value>,
    buf: &mut Vec<u8>,
) -> RecordHash {
    buf.clear();
    crate::canonical::write_canonical_map(data, buf);
    hash_canonical(buf)
}

/// SHA-256 of canonical JSON text already written.
pub fn hash_canonical(canonical: &[u8]) -> RecordHash {
    RecordHash(Sha256::digest(canonical).into())
}

/// The leaf of one record in the scope digest:
/// `SHA-256(u32le(len(collection)) ‖ collection ‖ u32le(len(id)) ‖ id ‖ hash_bytes)`.
pub fn leaf(collection: &str, id: &str, hash: &RecordHash) -> Digest {
    let mut h = Sha256::new();
    h.update((collection.len() as u32).to_le_bytes());
    h.update(collection.as_bytes());
    h.update((id.len() as u32).to_le_bytes());
    h.update(id.as_bytes());
    h.update(hash.0);
    Digest(h.finalize().into())
}

impl Digest {
    /// The digest of the empty scope.
    pub const ZERO: Digest = Digest([0; 32]);

    /// Adds `other` modulo 2^256.
    pub fn add(&mut self, other: &Digest) {
        let mut carry = 0u16;
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            let s = *a as u16 + *b as u16 + carry;
            *a = s as u8;
            carry = s >> 8;
        }
    }

    /// Subtracts `other` modulo 2^256.
    pub fn sub(&mut self, other: &Digest) {
        let mut borrow = 0i16;
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            let mut d = *a as i16 - *b as i16 - borrow;
            borrow = 0;
            if d < 0 {
                d += 256;
                borrow = 1;
            }
            *a = d as u8;
        }
    }
}

impl Snapshot {
    /// Adds a live record.
    pub fn insert(&mut self, leaf: &Digest) {
        self.count += 1;
        self.digest.add(leaf);
    }

    /// Removes a live record.
    pub fn remove(&mut self, leaf: &Digest) {
        self.count = self.count.saturating_sub(1);
        self.digest.sub(leaf);
    }
}

fn write_hex(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // Runs for every record read or sent: one write of 64 digits, not 32 formatted bytes
    // (which was most of the time of writing a record out of a wasm query).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// A hash or digest that is not 64 lowercase hex digits. As an [`Error`](crate::Error) (`?`
/// converts it) it is a `Protocol` error with `Detail::Malformed`: it comes from what a remote
/// or a file sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedHex(String);

impl fmt::Display for MalformedHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MalformedHex {}

fn parse_hex(s: &str, what: &str) -> Result<[u8; 32], MalformedHex> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(MalformedHex(format!(
            "{what} must be 64 lowercase hex digits, got {} characters",
            bytes.len()
        )));
    }
    // Runs for every incoming record: a table lookup per digit, one branch per byte.
    const BAD: u8 = 0xff;
    const NIBBLE: [u8; 256] = {
        let mut t = [BAD; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
        if hi == BAD || lo == BAD {
            return Err(MalformedHex(format!("{what} {s:?} is not lowercase hex")));
        }
        *o = hi << 4 | lo;
    }
    Ok(out)
}

macro_rules! hex_type {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($ty))?;
                write_hex(&self.0, f)?;
                write!(f, ")")
            }
        }
        impl FromStr for $ty {
            type Err = MalformedHex;
            fn from_str(s: &str) -> Result<Self, MalformedHex> {
                parse_hex(s, $what).map($ty)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_type!(RecordHash, "hash");
hex_type!(Digest, "digest");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: u8) -> Digest {
        let mut b = [0u8; 32];
        b[0] = n;
        Digest(b)
    }

    #[test]
    fn add_carries_across_bytes_and_wraps() {
        let mut a = Digest([0xff; 32]);
        a.add(&d(1));
        assert_eq!(a, Digest::ZERO, "2^256 - 1 + 1 wraps to zero");
        let mut b = d(0xff);
        b.add(&d(1));
        let mut want = [0u8; 32];
        want[1] = 1;
        assert_eq!(b, Digest(want));
    }

    #[test]
    fn sub_borrows_and_wraps() {
        let mut a = Digest::ZERO;
        a.sub(&d(1));
        assert_eq!(a, Digest([0xff; 32]));
    }

    #[test]
    fn leaf_is_length_prefixed() {
        let h = RecordHash([7; 32]);
        // Without length prefixes these two keys would hash the same bytes.
        assert_ne!(leaf("ab", "c", &h), leaf("a", "bc", &h));
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let h = RecordHash([0xab; 32]);
        assert_eq!(h.to_string().parse::<RecordHash>().unwrap(), h);
        assert!(
            "AB".repeat(32).parse::<RecordHash>().is_err(),
            "uppercase is not canonical"
        );
        assert!("ab".parse::<RecordHash>().is_err());
        assert_eq!(Digest::ZERO.to_string(), "0".repeat(64));
    }

    #[test]
    fn record_hash_is_sha256_of_canonical_json() {
        let v = serde_json::json!({"b": 1, "a": [true, null, "x"]});
        let h = record_hash(v.as_object().unwrap());
        let canonical = br#"{"a":[true,null,"x"],"b":1}"#;
        assert_eq!(h.0, <[u8; 32]>::from(Sha256::digest(canonical)));
    }

    proptest! {
        #[test]
        fn sum_is_order_independent(leaves in proptest::collection::vec(any::<[u8; 32]>(), 0..20)) {
            let mut fwd = Digest::ZERO;
            for l in &leaves { fwd.add(&Digest(*l)); }
            let mut rev = Digest::ZERO;
            for l in leaves.iter().rev() { rev.add(&Digest(*l)); }
            prop_assert_eq!(fwd, rev);
            for l in &leaves { fwd.sub(&Digest(*l)); }
            prop_assert_eq!(fwd, Digest::ZERO);
        }
    }
}
