//! Response head parser: status line and the header fields a download needs (RFC 9112 §4, §5,
//! §6.3).
//!
//! The parser is strict and bounded like the server's request parser: it reads the head out of
//! the caller's buffer without copying, extracts the fields the client acts on into a validated
//! [`Response`] view, and rejects anything ambiguous (conflicting framing, obs-fold, bare CR,
//! control bytes) instead of guessing. Incomplete input is [`Status::Partial`], never an error;
//! the caller turns "partial and my buffer is full" into [`HeadError::TooLarge`].

use core::fmt;

use crate::Status;

/// At most this many header fields are accepted in one response head (PROTOCOL.md's
/// `MAX_HEADERS`, applied to what we receive as well as what we accept).
pub const MAX_FIELDS: usize = 64;

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: 1xx, 204, 304, or the answer to HEAD.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body runs until the server closes the connection.
    UntilClose,
}

/// A parsed `Content-Range` (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/complete` (`complete` is `None` for `/*`).
    Bytes {
        /// Offset of the first byte sent.
        first: u64,
        /// Offset of the last byte sent (inclusive).
        last: u64,
        /// Size of the whole representation, when the server knows it.
        complete: Option<u64>,
    },
    /// `bytes */complete`, sent with 416 (Range Not Satisfiable).
    Unsatisfied {
        /// Size of the whole representation.
        complete: u64,
    },
}

/// A validated response head, borrowing the buffer it was parsed from.
///
/// Only the fields a download acts on are kept; the rest are checked for syntax and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'b> {
    /// The minor version of `HTTP/1.x`.
    pub minor_version: u8,
    /// The status code, 100..=599.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: &'b [u8],
    /// How the body is delimited.
    pub framing: Framing,
    /// `Content-Range`, if present and well formed.
    pub content_range: Option<ContentRange>,
    /// `ETag`, raw (with quotes and any `W/` prefix).
    pub etag: Option<&'b [u8]>,
    /// `Last-Modified`, raw.
    pub last_modified: Option<&'b [u8]>,
    /// `Location`, raw.
    pub location: Option<&'b [u8]>,
    /// `Content-Type`, raw.
    pub content_type: Option<&'b [u8]>,
    /// `Repr-Digest` (RFC 9530), raw: digests of the whole file.
    pub repr_digest: Option<&'b [u8]>,
    /// `Content-Digest` (RFC 9530), raw: digests of this message's content.
    pub content_digest: Option<&'b [u8]>,
    /// `Digest` (RFC 3230, obsolete), raw.
    pub legacy_digest: Option<&'b [u8]>,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// What is wrong with a response head.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The status line is not `HTTP/1.x SP 3DIGIT SP reason`.
    StatusLine,
    /// The version is not `HTTP/1.x`.
    Version,
    /// A header line is not `name: value`, folds, or holds control bytes.
    Field,
    /// A CR not followed by LF.
    BareCr,
    /// The head does not fit the receive buffer.
    TooLarge,
    /// More than [`MAX_FIELDS`] header fields.
    TooManyFields,
    /// `Content-Length` is not a number, or several disagree.
    ContentLength,
    /// A transfer coding other than `chunked`, or together with `Content-Length`.
    TransferEncoding,
    /// `Content-Range` is malformed or contradicts itself.
    ContentRange,
    /// `101 Switching Protocols`, which a download never asks for.
    Upgrade,
}

impl HeadError {
    fn as_str(self) -> &'static str {
        match self {
            Self::StatusLine => "malformed status line",
            Self::Version => "not an HTTP/1.x response",
            Self::Field => "malformed header field",
            Self::BareCr => "bare CR in response head",
            Self::TooLarge => "response head too large",
            Self::TooManyFields => "too many header fields",
            Self::ContentLength => "invalid or conflicting Content-Length",
            Self::TransferEncoding => "unsupported or conflicting Transfer-Encoding",
            Self::ContentRange => "malformed Content-Range",
            Self::Upgrade => "unexpected protocol upgrade",
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for HeadError {}

/// Parses a response head from the start of `buf`.
///
/// `head_request` says whether the request was `HEAD` (its response has no body whatever the
/// headers say). On success returns the view and the number of bytes the head took, where the
/// body starts.
///
/// ```text
/// status-line = HTTP-version SP status-code SP [ reason-phrase ]
/// field-line  = field-name ":" OWS field-value OWS
/// ```
///
/// A bare LF is accepted as a line end (RFC 9112 §2.2); a CR anywhere else is an error.
///
/// # Errors
/// Any [`HeadError`] but `TooLarge`, which the caller decides from its buffer size.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
) -> Result<Status<(Response<'_>, usize)>, HeadError> {
    let mut lines = Lines { buf, pos: 0 };
    let Some(status_line) = lines.next_line()? else {
        return Ok(Status::Partial);
    };
    let (minor_version, status, reason) = parse_status_line(status_line)?;
    if status == 101 {
        return Err(HeadError::Upgrade);
    }

    let mut fields = Fields::default();
    let mut count = 0usize;
    loop {
        let Some(line) = lines.next_line()? else {
            return Ok(Status::Partial);
        };
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_FIELDS {
            return Err(HeadError::TooManyFields);
        }
        let (name, value) = split_field(line)?;
        fields.absorb(name, value)?;
    }

    let no_body = head_request || status < 200 || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Empty
    } else {
        match (fields.chunked, fields.content_length) {
            (true, Some(_)) => return Err(HeadError::TransferEncoding),
            (true, None) => Framing::Chunked,
            (false, Some(n)) => Framing::Length(n),
            (false, None) => Framing::UntilClose,
        }
    };
    let persistent = if minor_version >= 1 {
        !fields.close
    } else {
        fields.keep_alive && !fields.close
    };
    let keep_alive = persistent && framing != Framing::UntilClose;

    Ok(Status::Complete((
        Response {
            minor_version,
            status,
            reason,
            framing,
            content_range: fields.content_range,
            etag: fields.etag,
            last_modified: fields.last_modified,
            location: fields.location,
            content_type: fields.content_type,
            repr_digest: fields.repr_digest,
            content_digest: fields.content_digest,
            legacy_digest: fields.legacy_digest,
            keep_alive,
        },
        lines.pos,
    )))
}

/// Splits the buffer into lines ending in LF or CRLF.
struct Lines<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Lines<'b> {
    /// The next complete line without its ending, or `None` when it has not all arrived.
    fn next_line(&mut self) -> Result<Option<&'b [u8]>, HeadError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            // A CR that is not the last byte cannot be followed by LF any more.
            if let Some(cr) = rest.iter().position(|&b| b == b'\r') {
                if cr + 1 < rest.len() {
                    return Err(HeadError::BareCr);
                }
            }
            return Ok(None);
        };
        let line = rest.get(..lf).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') {
            return Err(HeadError::BareCr);
        }
        self.pos += lf + 1;
        Ok(Some(line))
    }
}

fn parse_status_line(line: &[u8]) -> Result<(u8, u16, &[u8]), HeadError> {
    let Some(rest) = line.strip_prefix(b"HTTP/") else {
        return Err(HeadError::StatusLine);
    };
    let (minor, rest) = match rest {
        [b'1', b'.', d, rest @ ..] if d.is_ascii_digit() => (d - b'0', rest),
        [a, b'.', b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => {
            return Err(HeadError::Version)
        }
        _ => return Err(HeadError::StatusLine),
    };
    let (status, reason) = match rest {
        [b' ', a, b, c, rest @ ..]
            if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
        {
            let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            let reason = match rest {
                [] => rest,
                [b' ', reason @ ..] => reason,
                _ => return Err(HeadError::StatusLine),
            };
            (code, reason)
        }
        _ => return Err(HeadError::StatusLine),
    };
    if !(100..=599).contains(&status) || !reason.iter().all(|&b| is_field_byte(b)) {
        return Err(HeadError::StatusLine);
    }
    Ok((minor, status, reason))
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte allowed in a field value: VCHAR, obs-text, SP, HTAB.
fn is_field_byte(b: u8) -> bool {
    b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), HeadError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::Field)?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        // Also rejects obs-fold (a line starting with SP/HTAB) and space before the colon.
        return Err(HeadError::Field);
    }
    if !value.iter().all(|&b| is_field_byte(b)) {
        return Err(HeadError::Field);
    }
    Ok((name, value.trim_ascii()))
}

/// The fields a download acts on, gathered while scanning the head.
#[derive(Default)]
struct Fields<'b> {
    content_length: Option<u64>,
    chunked: bool,
    transfer_encoding_seen: bool,
    content_range: Option<ContentRange>,
    etag: Option<&'b [u8]>,
    last_modified: Option<&'b [u8]>,
    location: Option<&'b [u8]>,
    content_type: Option<&'b [u8]>,
    repr_digest: Option<&'b [u8]>,
    content_digest: Option<&'b [u8]>,
    legacy_digest: Option<&'b [u8]>,
    close: bool,
    keep_alive: bool,
}

impl<'b> Fields<'b> {
    fn absorb(&mut self, name: &[u8], value: &'b [u8]) -> Result<(), HeadError> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") {
            // RFC 9110 §8.6: a list of identical values may be treated as one; anything else is
            // an unrecoverable framing error.
            for item in value.split(|&b| b == b',') {
                let n = parse_u64(item.trim_ascii()).ok_or(HeadError::ContentLength)?;
                match self.content_length {
                    Some(m) if m != n => return Err(HeadError::ContentLength),
                    _ => self.content_length = Some(n),
                }
            }
        } else if is("transfer-encoding") {
            // RFC 9112 §6.1: chunked must be the final coding and appear once; we accept
            // nothing else (another coding would make us save encoded bytes).
            for item in value.split(|&b| b == b',') {
                let item = item.trim_ascii();
                if item.is_empty() {
                    continue;
                }
                if !item.eq_ignore_ascii_case(b"chunked") || self.chunked {
                    return Err(HeadError::TransferEncoding);
                }
                self.chunked = true;
            }
            if !self.chunked || self.transfer_encoding_seen {
                return Err(HeadError::TransferEncoding);
            }
            self.transfer_encoding_seen = true;
        } else if is("content-range") {
            if self.content_range.is_some() {
                return Err(HeadError::ContentRange);
            }
            self.content_range = Some(parse_content_range(value)?);
        } else if is("connection") {
            for item in value.split(|&b| b == b',') {
                let item = item.trim_ascii();
                self.close |= item.eq_ignore_ascii_case(b"close");
                self.keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is("etag") {
            self.etag = Some(value);
        } else if is("last-modified") {
            self.last_modified = Some(value);
        } else if is("location") {
            self.location = Some(value);
        } else if is("content-type") {
            self.content_type = Some(value);
        } else if is("repr-digest") {
            self.repr_digest = Some(value);
        } else if is("content-digest") {
            self.content_digest = Some(value);
        } else if is("digest") {
            self.legacy_digest = Some(value);
        }
        Ok(())
    }
}

/// `1*DIGIT` into a `u64`, `None` when empty, not digits, or overflowing.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Parses a `Content-Range` value (RFC 9110 §14.4).
///
/// ```text
/// Content-Range       = range-unit SP ( range-resp / unsatisfied-range )
/// range-resp          = incl-range "/" ( complete-length / "*" )
/// incl-range          = first-pos "-" last-pos
/// unsatisfied-range   = "*/" complete-length
/// ```
///
/// # Errors
/// [`HeadError::ContentRange`] for another unit, bad syntax, `first > last` or
/// `last >= complete`.
pub fn parse_content_range(value: &[u8]) -> Result<ContentRange, HeadError> {
    let bad = HeadError::ContentRange;
    let rest = value.strip_prefix(b"bytes ").ok_or(bad)?;
    let slash = rest.iter().position(|&b| b == b'/').ok_or(bad)?;
    let (range, complete) = rest.split_at(slash);
    let complete = complete.get(1..).unwrap_or_default();
    if range == b"*" {
        let complete = parse_u64(complete).ok_or(bad)?;
        return Ok(ContentRange::Unsatisfied { complete });
    }
    let dash = range.iter().position(|&b| b == b'-').ok_or(bad)?;
    let first = parse_u64(range.get(..dash).unwrap_or_default()).ok_or(bad)?;
    let last = parse_u64(range.get(dash + 1..).unwrap_or_default()).ok_or(bad)?;
    let complete = if complete == b"*" {
        None
    } else {
        Some(parse_u64(complete).ok_or(bad)?)
    };
    if first > last || complete.is_some_and(|c| last >= c) {
        return Err(bad);
    }
    Ok(ContentRange::Bytes {
        first,
        last,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Status<(Response<'_>, usize)>, HeadError> {
        parse_response(buf, false)
    }

    fn complete(buf: &[u8]) -> (Response<'_>, usize) {
        match parse(buf) {
            Ok(Status::Complete(r)) => r,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn plain_200_with_length() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello";
        let (r, n) = complete(buf);
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, b"OK");
        assert_eq!(r.framing, Framing::Length(5));
        assert_eq!(r.etag, Some(&b"\"abc\""[..]));
        assert!(r.keep_alive);
        assert_eq!(&buf[n..], b"hello");
    }

    #[test]
    fn bare_lf_and_missing_reason_accepted() {
        let (r, n) = complete(b"HTTP/1.0 404\nContent-Length: 0\n\n");
        assert_eq!((r.status, r.minor_version, n), (404, 0, 32));
        assert!(!r.keep_alive, "HTTP/1.0 without keep-alive closes");
    }

    #[test]
    fn partial_until_blank_line() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
        assert!(parse(full).is_ok_and(|s| s.is_complete()));
    }

    #[test]
    fn framing_rules() {
        let (r, _) = complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.framing, Framing::Chunked);
        let (r, _) = complete(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(r.framing, Framing::UntilClose);
        assert!(
            !r.keep_alive,
            "a body delimited by close cannot be followed"
        );
        let (r, _) = complete(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(r.framing, Framing::Empty);
        let (r, _) = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!(r.framing, Framing::Length(7));
        let Ok(Status::Complete((r, _))) =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true)
        else {
            panic!("HEAD response");
        };
        assert_eq!(r.framing, Framing::Empty);
    }

    #[test]
    fn rejects_lying_or_ambiguous_framing() {
        let cases: &[(&[u8], HeadError)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                HeadError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                HeadError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                HeadError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                HeadError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                HeadError::TransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                HeadError::TransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                HeadError::TransferEncoding,
            ),
        ];
        for (buf, err) in cases {
            assert_eq!(
                parse(buf),
                Err(*err),
                "{}",
                std::string::String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn rejects_garbage_heads() {
        let cases: &[(&[u8], HeadError)] = &[
            (b"SSH-2.0-OpenSSH\r\n\r\n", HeadError::StatusLine),
            (b"HTTP/2.0 200 OK\r\n\r\n", HeadError::Version),
            (b"HTTP/1.1 20 OK\r\n\r\n", HeadError::StatusLine),
            (b"HTTP/1.1 999 Nine\r\n\r\n", HeadError::StatusLine),
            (b"HTTP/1.1 200OK\r\n\r\n", HeadError::StatusLine),
            (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", HeadError::Field),
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
                HeadError::Field,
            ),
            (b"HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", HeadError::Field),
            (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", HeadError::Field),
            (b"HTTP/1.1 200 OK\rX: y\r\n\r\n", HeadError::BareCr),
            (b"HTTP/1.1 101 Switching\r\n\r\n", HeadError::Upgrade),
        ];
        for (buf, err) in cases {
            assert_eq!(
                parse(buf),
                Err(*err),
                "{}",
                std::string::String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn too_many_fields() {
        let mut buf = std::vec::Vec::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        for _ in 0..=MAX_FIELDS {
            buf.extend_from_slice(b"X: y\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        assert_eq!(parse(&buf), Err(HeadError::TooManyFields));
    }

    #[test]
    fn connection_tokens() {
        let (r, _) = complete(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!r.keep_alive);
        let (r, _) =
            complete(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
        assert!(r.keep_alive);
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range(b"bytes 10-19/100"),
            Ok(ContentRange::Bytes {
                first: 10,
                last: 19,
                complete: Some(100)
            })
        );
        assert_eq!(
            parse_content_range(b"bytes 0-0/*"),
            Ok(ContentRange::Bytes {
                first: 0,
                last: 0,
                complete: None
            })
        );
        assert_eq!(
            parse_content_range(b"bytes */42"),
            Ok(ContentRange::Unsatisfied { complete: 42 })
        );
        for bad in [
            &b"bytes 5-4/10"[..],
            b"bytes 5-10/10",
            b"items 0-1/2",
            b"bytes 0-1",
            b"bytes -1/2",
            b"bytes */*",
        ] {
            assert_eq!(parse_content_range(bad), Err(HeadError::ContentRange));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_response(&bytes, false);
        }

        #[test]
        fn prefix_of_valid_head_is_partial(cut in 0usize..60) {
            let full = b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 1-2/3\r\n\r\n";
            let cut = cut.min(full.len() - 1);
            proptest::prop_assert_eq!(parse(&full[..cut]), Ok(Status::Partial));
        }
    }
}
