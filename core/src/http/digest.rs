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

use sha2::{Digest, Sha256};

/// The SHA-256 of a representation's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest(pub [u8; 32]);

/// The length of a 32-byte digest in padded base64: 44 characters.
pub const BASE64_LEN: usize = 44;

impl ContentDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
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
pub struct ContentHasher(Sha256);

impl ContentHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self(Sha256::new())
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

#[cfg(test)]
mod tests {
    use super::*;

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
