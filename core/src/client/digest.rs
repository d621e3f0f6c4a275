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

use super::head::Response;
use crate::status::StatusCode;

pub use crate::http::digest::{from_dictionary, from_legacy, DigestError, Sha256};

/// The SHA-256 of the whole file that `response` announces, if any.
///
/// Prefers `Repr-Digest`; for a 200 also accepts `Content-Digest` and the legacy `Digest`.
///
/// # Errors
/// [`DigestError`] when a field names `sha-256` with a value that is not 32 bytes of base64.
pub fn whole_file_sha256(response: &Response<'_>) -> Result<Option<Sha256>, DigestError> {
    if let Some(d) = response
        .header(b"repr-digest")
        .map(from_dictionary)
        .transpose()?
        .flatten()
    {
        return Ok(Some(d));
    }
    if response.head.status != StatusCode::OK {
        return Ok(None);
    }
    if let Some(d) = response
        .header(b"content-digest")
        .map(from_dictionary)
        .transpose()?
        .flatten()
    {
        return Ok(Some(d));
    }
    Ok(response
        .header(b"digest")
        .map(from_legacy)
        .transpose()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::head::parse_response;
    use crate::http::digest::tests::HELLO_BYTES;
    use crate::Status;

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
