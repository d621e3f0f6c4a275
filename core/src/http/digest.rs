//! The SHA-256 of a file's content: the value of `Repr-Digest` (RFC 9530 §3) and the source of
//! content entity-tags ([`crate::http::etag::ETag::from_digest`]).
//!
//! ```text
//! Repr-Digest = Dictionary        ; RFC 8941 structured field
//! value       = sha-256=:<base64 of the 32 digest bytes>:   ; a Byte Sequence
//! ```
//!
//! The digest is computed once, when a cache entry is filled, and kept with the entry; every node
//! holding the same bytes computes the same value.

use core::fmt;

use sha2::Digest;

/// The SHA-256 of a representation's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest(pub [u8; 32]);

/// The length of a 32-byte digest in padded base64: 44 characters.
pub const BASE64_LEN: usize = 44;

impl ContentDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// The digest in standard padded base64 (RFC 4648 §4), as RFC 8941 Byte Sequences write it.
    pub fn base64(&self) -> [u8; BASE64_LEN] {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 0x3f) as usize];
        let mut out = [b'='; BASE64_LEN];
        // Ten whole 3-byte groups, four characters each (no per-byte branches: this runs twice
        // for every hit, once for the ETag and once for Repr-Digest)...
        let groups = self.0.chunks_exact(3);
        let tail = groups.remainder();
        for (g, dst) in groups.zip(out.chunks_exact_mut(4)) {
            let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
            dst.copy_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
        }
        // ...then the last two bytes as three characters and one '='.
        if let [a, b] = *tail {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out[BASE64_LEN - 4..BASE64_LEN - 1].copy_from_slice(&[
                sextet(n, 18),
                sextet(n, 12),
                sextet(n, 6),
            ]);
        }
        out
    }
}

/// A digest computed over pieces (a file read in several calls).
#[derive(Debug, Clone, Default)]
pub struct ContentHasher(sha2::Sha256);

impl ContentHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self(sha2::Sha256::new())
    }

    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(self) -> ContentDigest {
        ContentDigest(self.0.finalize().into())
    }
}

/// A SHA-256 value.
pub type Sha256 = [u8; 32];

/// A digest field naming SHA-256 whose value is not 32 bytes of valid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestError;

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed sha-256 digest field")
    }
}

impl core::error::Error for DigestError {}

/// `sha-256=:base64:` out of an RFC 9530 dictionary (parameters after `;` are ignored).
///
/// # Errors
/// [`DigestError`] when the `sha-256` member is not a 32-byte byte sequence.
pub fn from_dictionary(value: &[u8]) -> Result<Option<Sha256>, DigestError> {
    for member in value.split(|&b| b == b',') {
        let member = member.trim_ascii();
        let Some((key, rest)) = split_once(member, b'=') else {
            continue;
        };
        if key != b"sha-256" {
            continue;
        }
        let rest = rest.split(|&b| b == b';').next().unwrap_or_default();
        let inner = rest
            .strip_prefix(b":")
            .and_then(|r| r.strip_suffix(b":"))
            .ok_or(DigestError)?;
        return base64_32(inner).map(Some).ok_or(DigestError);
    }
    Ok(None)
}

/// `SHA-256=base64` out of an RFC 3230 `Digest` list (algorithm case-insensitive).
///
/// # Errors
/// [`DigestError`] when the `SHA-256` entry is not 32 bytes of base64.
pub fn from_legacy(value: &[u8]) -> Result<Option<Sha256>, DigestError> {
    for member in value.split(|&b| b == b',') {
        let member = member.trim_ascii();
        let Some((key, rest)) = split_once(member, b'=') else {
            continue;
        };
        if key.eq_ignore_ascii_case(b"sha-256") {
            return base64_32(rest).map(Some).ok_or(DigestError);
        }
    }
    Ok(None)
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Decodes standard padded base64 that must hold exactly 32 bytes (44 characters, one `=`).
pub(crate) fn base64_32(s: &[u8]) -> Option<Sha256> {
    fn val(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    if s.len() != 44 || s.get(43) != Some(&b'=') {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bits = 0u32;
    let mut nbits = 0u32;
    let mut n = 0usize;
    for &c in s.get(..43)? {
        bits = (bits << 6) | val(c)?;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            *out.get_mut(n)? = (bits >> nbits) as u8;
            n += 1;
            bits &= (1 << nbits) - 1;
        }
    }
    // 43 characters carry 258 bits: 32 bytes and 2 bits that must be zero.
    (n == 32 && bits == 0).then_some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SHA-256 of "hello world\n" (from `sha256sum`).
    pub(crate) const HELLO: &[u8] = b"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=";
    pub(crate) const HELLO_BYTES: Sha256 = [
        0xa9, 0x48, 0x90, 0x4f, 0x2f, 0x0f, 0x47, 0x9b, 0x8f, 0x81, 0x97, 0x69, 0x4b, 0x30, 0x18,
        0x4b, 0x0d, 0x2e, 0xd1, 0xc1, 0xcd, 0x2a, 0x1e, 0xc0, 0xfb, 0x85, 0xd2, 0x99, 0xa1, 0x92,
        0xa4, 0x47,
    ];

    #[test]
    fn base64_exactly_32_bytes() {
        assert_eq!(base64_32(HELLO), Some(HELLO_BYTES));
        assert_eq!(
            base64_32(b"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc"),
            None
        );
        assert_eq!(
            base64_32(b"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEd="),
            None,
            "stray bits"
        );
        assert_eq!(
            base64_32(b"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSp!c="),
            None
        );
    }

    #[test]
    fn dictionary_members() {
        let v = b"sha-512=:AAAA:, sha-256=:qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=:;p=1";
        assert_eq!(from_dictionary(v), Ok(Some(HELLO_BYTES)));
        assert_eq!(from_dictionary(b"md5=:AAAA:"), Ok(None));
        assert_eq!(from_dictionary(b"sha-256=:short:"), Err(DigestError));
        assert_eq!(
            from_legacy(b"SHA-256=qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc="),
            Ok(Some(HELLO_BYTES))
        );
    }

    #[test]
    fn known_values() {
        // `printf 'hello world\n' | sha256sum | xxd -r -p | base64`
        assert_eq!(
            &ContentDigest::of(b"hello world\n").base64(),
            b"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc="
        );
        // RFC 9530 Appendix D: the empty representation.
        assert_eq!(
            &ContentDigest::of(b"").base64(),
            b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn pieces_give_the_whole() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut h = ContentHasher::new();
        for piece in data.chunks(33) {
            h.update(piece);
        }
        assert_eq!(h.finish(), ContentDigest::of(&data));
    }
}
