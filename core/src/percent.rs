//! Percent-encoding (RFC 3986 §2.1) in one place: the server's decoding of request paths
//! ([`crate::path`]), its encoding of listing names and `Location` paths ([`crate::listing`]),
//! and the client's encoding and decoding of request targets ([`crate::client::target`]).
//!
//! ```text
//! pct-encoded = "%" HEXDIG HEXDIG
//! unreserved  = ALPHA / DIGIT / "-" / "." / "_" / "~"
//! sub-delims  = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
//! pchar       = unreserved / pct-encoded / sub-delims / ":" / "@"
//! ```
//!
//! Encoding always writes upper-case hex; decoding takes either case.
//!
//! It sits at the bottom of the layer map, not in `http/`: `path` needs it, `source` needs
//! `path`, and `http` (the ETag of a file version) needs `source`, so a module in `http/` would
//! close a cycle.

/// Which bytes stay as they are when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Unreserved and sub-delims: one path segment that may stand as a relative reference.
    /// `:` and `@`, though allowed in a segment, are encoded: a relative link `a:b` would be read
    /// as a URI with scheme `a` (RFC 3986 §4.2); `/` is encoded too.
    Segment,
    /// `pchar` and `/`: an absolute path sent as an origin-form target.
    Path,
}

impl Keep {
    /// Whether `b` stays unencoded.
    pub const fn keeps(self, b: u8) -> bool {
        let segment = matches!(b,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~'
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=');
        match self {
            Self::Segment => segment,
            Self::Path => segment || matches!(b, b':' | b'@' | b'/'),
        }
    }
}

/// `%XY` for `b`, upper-case hex.
pub const fn escape(b: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]
}

/// Encodes `input`, handing `put` runs of bytes (kept runs whole, each escape as three bytes).
///
/// # Errors
/// The first error `put` returns.
pub fn encode<E>(
    input: &[u8],
    keep: Keep,
    mut put: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = input;
    while !rest.is_empty() {
        let run = rest
            .iter()
            .position(|&b| !keep.keeps(b))
            .unwrap_or(rest.len());
        let (kept, tail) = rest.split_at(run);
        if !kept.is_empty() {
            put(kept)?;
        }
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        put(&escape(b))?;
        rest = tail;
    }
    Ok(())
}

/// The value of a hex digit (`HEXDIG`, either case).
pub const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the two hex digits after a `%` taken from `bytes`; `None` when either is missing or
/// not a hex digit (the caller's "bad escape").
pub fn decode_escape(bytes: &mut impl Iterator<Item = u8>) -> Option<u8> {
    let hi = hex_value(bytes.next()?)?;
    let lo = hex_value(bytes.next()?)?;
    Some((hi << 4) | lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn enc(input: &[u8], keep: Keep) -> Vec<u8> {
        let mut out = Vec::new();
        encode::<()>(input, keep, |run| {
            out.extend_from_slice(run);
            Ok(())
        })
        .unwrap();
        out
    }

    fn dec(input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut bytes = input.iter().copied();
        while let Some(b) = bytes.next() {
            out.push(if b == b'%' {
                decode_escape(&mut bytes)?
            } else {
                b
            });
        }
        Some(out)
    }

    #[test]
    fn sets() {
        assert_eq!(enc(b"a b/c:d@e%", Keep::Segment), b"a%20b%2Fc%3Ad%40e%25");
        assert_eq!(enc(b"a b/c:d@e%", Keep::Path), b"a%20b/c:d@e%25");
        assert_eq!(enc(b"\xc3\xa9?#", Keep::Path), b"%C3%A9%3F%23");
    }

    #[test]
    fn bad_escapes() {
        assert_eq!(dec(b"%4"), None);
        assert_eq!(dec(b"%zz"), None);
        assert_eq!(dec(b"%4a%4A"), Some(b"JJ".to_vec()));
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(input in prop::collection::vec(any::<u8>(), 0..64)) {
            for keep in [Keep::Segment, Keep::Path] {
                let encoded = enc(&input, keep);
                prop_assert!(encoded.iter().all(|&b| b == b'%' || keep.keeps(b) || b.is_ascii_hexdigit()));
                prop_assert_eq!(dec(&encoded), Some(input.clone()));
            }
        }
    }
}
