//! The whole-file SHA-256 a server may announce, so the client can check what it saved.
//!
//! RFC 9530 fields are Structured Field Dictionaries of algorithm to byte sequence:
//!
//! ```text
//! Repr-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:...:
//! Content-Digest: sha-256=:...:
//! ```
//!
//! `Repr-Digest` is the digest of the whole selected representation (the file), in a 200 or a
//! 206 alike. `Content-Digest` (and RFC 3230's `Digest: SHA-256=...`) covers the content of
//! this message only: the whole file for a 200 with no content coding, just the slice for a 206.
//! The client only checks SHA-256 and ignores algorithms it does not know; the hashing itself
//! is the driver's (the core only parses).

use core::fmt;

use super::head::Response;

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

/// The SHA-256 of the whole file that `response` announces, if any.
///
/// Prefers `Repr-Digest`; for a 200 also accepts `Content-Digest` and the legacy `Digest`.
///
/// # Errors
/// [`DigestError`] when a field names `sha-256` with a value that is not 32 bytes of base64.
pub fn whole_file_sha256(response: &Response<'_>) -> Result<Option<Sha256>, DigestError> {
    if let Some(d) = response
        .repr_digest
        .map(from_dictionary)
        .transpose()?
        .flatten()
    {
        return Ok(Some(d));
    }
    if response.status != 200 {
        return Ok(None);
    }
    if let Some(d) = response
        .content_digest
        .map(from_dictionary)
        .transpose()?
        .flatten()
    {
        return Ok(Some(d));
    }
    Ok(response
        .legacy_digest
        .map(from_legacy)
        .transpose()?
        .flatten())
}

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
fn base64_32(s: &[u8]) -> Option<Sha256> {
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
mod tests {
    use super::*;
    use crate::client::head::parse_response;
    use crate::Status;

    /// SHA-256 of "hello world\n" (from `sha256sum`).
    const HELLO: &[u8] = b"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=";
    const HELLO_BYTES: Sha256 = [
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

    fn announced(head: &[u8]) -> Result<Option<Sha256>, DigestError> {
        match parse_response(head, false) {
            Ok(Status::Complete((r, _))) => whole_file_sha256(&r),
            other => panic!("bad fixture {other:?}"),
        }
    }

    #[test]
    fn which_field_covers_the_file() {
        let d = "sha-256=:qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=:";
        let h = |status: &str, field: &str| {
            std::format!("HTTP/1.1 {status}\r\n{field}: {d}\r\nContent-Length: 0\r\n\r\n")
        };
        assert_eq!(
            announced(h("200 OK", "Repr-Digest").as_bytes()),
            Ok(Some(HELLO_BYTES))
        );
        assert_eq!(
            announced(h("206 P", "Repr-Digest").as_bytes()),
            Ok(Some(HELLO_BYTES))
        );
        assert_eq!(
            announced(h("200 OK", "Content-Digest").as_bytes()),
            Ok(Some(HELLO_BYTES))
        );
        assert_eq!(
            announced(h("206 P", "Content-Digest").as_bytes()),
            Ok(None),
            "covers the slice only"
        );
        assert_eq!(
            announced(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Ok(None)
        );
    }
}
