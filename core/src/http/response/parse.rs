//! The client's side: [`Response::parse`] reads a response head with the request parser's
//! field scanner (`http/scan.rs`) into the same [`ResponseHead`] the server encodes, inside a
//! checked view. Encoding is [`ResponseHead::encode`]'s alone: re-encode `response.head`.

use super::{CacheStatus, ContentRange, ResponseHead};
use crate::http::date::parse_http_date;
use crate::http::digest::{from_dictionary, ContentDigest};
use crate::http::scan::{
    self, is_value_byte, list_items, parse_u64, trim_ows, Cursor, ScanError, Stop,
};
use crate::http::status::StatusCode;
use crate::Status;

/// At most this many header fields are accepted in one response head (PROTOCOL.md's
/// `MAX_HEADERS`, applied to what we receive as well as what we accept).
pub const MAX_FIELDS: usize = crate::http::request::MAX_HEADERS;

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

/// A checked response head as received: the typed [`ResponseHead`] read back from its fields,
/// and what only the wire carries (version, reason phrase, body framing, persistence, the raw
/// header section), all borrowing the buffer it was parsed from.
///
/// Any field the head does not type is found with [`Response::header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'b> {
    /// The fields both sides know, typed (status 100..=599 but 101). A value that does not
    /// parse (a malformed date, a non-UTF-8 `Content-Type`) is left `None` here; its raw bytes
    /// are still in [`Response::header`]. `content_length` and `connection_close` are the
    /// fields as sent; `framing` and `keep_alive` are what they mean for this exchange.
    pub head: ResponseHead<'b>,
    /// The minor version of `HTTP/1.x`.
    pub minor_version: u8,
    /// The reason phrase (may be empty).
    pub reason: &'b [u8],
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
    /// The header section as received (already validated), for [`Response::header`].
    pub fields: &'b [u8],
}

impl<'b> Response<'b> {
    /// Parses a response head from the start of `buf`.
    ///
    /// `head_request` says whether the request was `HEAD` (its response has no body whatever
    /// the headers say). On success returns the view and the number of bytes the head took,
    /// where the body starts. A bare LF is accepted as a line end (RFC 9112 §2.2); a CR
    /// anywhere else is an error.
    ///
    /// # Errors
    /// Any [`HeadError`] but `TooLarge`, which the caller decides from its buffer size.
    pub fn parse(buf: &'b [u8], head_request: bool) -> Result<Status<(Self, usize)>, HeadError> {
        match parse_head(buf, head_request) {
            Ok(done) => Ok(Status::Complete(done)),
            Err(Stop::Partial) => Ok(Status::Partial),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    /// The value of the first field named `name` (compared case-insensitively), if any.
    pub fn header(&self, name: &[u8]) -> Option<&'b [u8]> {
        let mut cur = Cursor::new(self.fields, usize::MAX);
        let mut found = None;
        // `fields` was scanned once already, so this cannot fail; a failure finds nothing.
        let _ = scan::fields::<ScanError>(&mut cur, MAX_FIELDS, |h| {
            if found.is_none() && h.name.eq_ignore_ascii_case(name) {
                found = Some(h.value);
            }
            Ok(())
        });
        found
    }
}

/// [`Response::parse`] as a function (the client's original name).
///
/// # Errors
/// As [`Response::parse`].
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
) -> Result<Status<(Response<'_>, usize)>, HeadError> {
    Response::parse(buf, head_request)
}

/// [`ContentRange::parse`] as a function (the client's original name).
///
/// # Errors
/// As [`ContentRange::parse`].
pub fn parse_content_range(value: &[u8]) -> Result<ContentRange, HeadError> {
    ContentRange::parse(value)
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

impl core::fmt::Display for HeadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for HeadError {}

impl From<ScanError> for HeadError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::BareCr => Self::BareCr,
            ScanError::HeadTooLarge => Self::TooLarge,
            ScanError::TooManyFields => Self::TooManyFields,
            ScanError::HeaderName
            | ScanError::MissingColon
            | ScanError::SpaceBeforeColon
            | ScanError::ObsFold
            | ScanError::HeaderValue => Self::Field,
        }
    }
}

/// [`Response::parse`] with `Partial` as an early exit, so `?` works throughout.
fn parse_head(buf: &[u8], head_request: bool) -> Result<(Response<'_>, usize), Stop<HeadError>> {
    let mut cur = Cursor::new(buf, usize::MAX);
    let (minor_version, status, reason) = status_line(&mut cur)?;
    let fields_start = cur.pos;
    let mut fields = Fields::new(status);
    scan::fields(&mut cur, MAX_FIELDS, |h| fields.absorb(h.name, h.value))?;
    let fields_end = cur.pos;

    let head = fields.head;
    let no_body = head_request || status.is_informational() || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Empty
    } else {
        match (fields.chunked, head.content_length) {
            (true, Some(_)) => return Err(HeadError::TransferEncoding.into()),
            (true, None) => Framing::Chunked,
            (false, Some(n)) => Framing::Length(n),
            (false, None) => Framing::UntilClose,
        }
    };
    let persistent = if minor_version >= 1 {
        !head.connection_close
    } else {
        fields.keep_alive && !head.connection_close
    };
    let response = Response {
        head,
        minor_version,
        reason,
        framing,
        keep_alive: persistent && framing != Framing::UntilClose,
        fields: cur.slice(fields_start, fields_end),
    };
    Ok((response, cur.pos))
}

/// Scans `HTTP/1.x SP 3DIGIT [ SP reason-phrase ]` and its line ending, left to right.
fn status_line<'b>(cur: &mut Cursor<'b>) -> Result<(u8, StatusCode, &'b [u8]), Stop<HeadError>> {
    for &want in b"HTTP/" {
        if cur.next()? != want {
            return Err(HeadError::StatusLine.into());
        }
    }
    let (major, dot, minor) = (cur.next()?, cur.next()?, cur.next()?);
    if !major.is_ascii_digit() || dot != b'.' || !minor.is_ascii_digit() {
        return Err(HeadError::StatusLine.into());
    }
    if major != b'1' {
        return Err(HeadError::Version.into());
    }
    if cur.next()? != b' ' {
        return Err(HeadError::StatusLine.into());
    }
    let mut code = 0u16;
    for _ in 0..3 {
        let d = cur.next()?;
        if !d.is_ascii_digit() {
            return Err(HeadError::StatusLine.into());
        }
        code = code * 10 + u16::from(d - b'0');
    }
    let status = StatusCode::from_u16(code)
        .filter(|s| s.as_u16() <= 599)
        .ok_or(HeadError::StatusLine)?;
    let b = cur.next()?;
    let reason = if cur.line_end(b)? {
        &[][..]
    } else if b == b' ' {
        cur.rest_of_line(is_value_byte, HeadError::StatusLine)?
    } else {
        return Err(HeadError::StatusLine.into());
    };
    if status == 101 {
        return Err(HeadError::Upgrade.into());
    }
    Ok((minor - b'0', status, reason))
}

/// The head being read back, and the framing facts only the parser needs.
struct Fields<'b> {
    head: ResponseHead<'b>,
    chunked: bool,
    transfer_encoding_seen: bool,
    keep_alive: bool,
}

impl<'b> Fields<'b> {
    fn new(status: StatusCode) -> Self {
        Self {
            head: ResponseHead::new(status),
            chunked: false,
            transfer_encoding_seen: false,
            keep_alive: false,
        }
    }

    /// One field: the framing ones are checked here (a lie about framing is an error); the
    /// rest are read into the head.
    fn absorb(&mut self, name: &[u8], value: &'b [u8]) -> Result<(), HeadError> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") {
            // RFC 9110 §8.6: a list of identical values may be treated as one; anything else is
            // an unrecoverable framing error.
            for item in value.split(|&b| b == b',') {
                let n = parse_u64(trim_ows(item)).ok_or(HeadError::ContentLength)?;
                match self.head.content_length {
                    Some(m) if m != n => return Err(HeadError::ContentLength),
                    _ => self.head.content_length = Some(n),
                }
            }
        } else if is("transfer-encoding") {
            // RFC 9112 §6.1: chunked must be the final coding and appear once; we accept
            // nothing else (another coding would make us save encoded bytes).
            for item in list_items(value) {
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
            if self.head.content_range.is_some() {
                return Err(HeadError::ContentRange);
            }
            self.head.content_range = Some(ContentRange::parse(value)?);
        } else if is("connection") {
            for item in list_items(value) {
                self.head.connection_close |= item.eq_ignore_ascii_case(b"close");
                self.keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
            }
        } else {
            read_field(&mut self.head, name, value);
        }
        Ok(())
    }
}

/// Reads a field that does not frame the body into `head` (the last of a repeated field
/// wins); a value that does not parse, or a field the head does not carry, is left out.
fn read_field<'b>(head: &mut ResponseHead<'b>, name: &[u8], value: &'b [u8]) {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    let text = || core::str::from_utf8(value).ok();
    if is("etag") {
        head.etag = Some(value);
    } else if is("last-modified") {
        head.last_modified = parse_http_date(value);
    } else if is("location") {
        head.location = Some(value);
    } else if is("content-type") {
        head.content_type = text();
    } else if is("date") {
        head.date = parse_http_date(value);
    } else if is("content-encoding") {
        head.content_encoding = text();
    } else if is("accept-ranges") {
        head.accept_ranges = list_items(value).any(|v| v.eq_ignore_ascii_case(b"bytes"));
    } else if is("vary") {
        head.vary = text();
    } else if is("cache-control") {
        head.cache_control = text();
    } else if is("repr-digest") {
        head.repr_digest = from_dictionary(value).ok().flatten().map(ContentDigest);
    } else if is("cache-status") {
        head.cache_status = CacheStatus::parse(value);
    } else if is("allow") {
        head.allow = text();
    } else if is("retry-after") {
        head.retry_after = parse_u64(value).and_then(|n| u32::try_from(n).ok());
    } else if is("content-security-policy") {
        head.content_security_policy = text();
    }
}

/// The client-side parser's own cases (moved from `client/head.rs`).
#[cfg(test)]
mod parse_tests {
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

    /// Each head is refused with its error.
    fn assert_rejects(cases: &[(&[u8], HeadError)]) {
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
    fn plain_200_with_length() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello";
        let (r, n) = complete(buf);
        assert_eq!(r.head.status, 200);
        assert_eq!(r.reason, b"OK");
        assert_eq!(r.framing, Framing::Length(5));
        assert_eq!(r.head.etag, Some(&b"\"abc\""[..]));
        assert!(r.keep_alive);
        assert_eq!(&buf[n..], b"hello");
    }

    #[test]
    fn bare_lf_and_missing_reason_accepted() {
        let (r, n) = complete(b"HTTP/1.0 404\nContent-Length: 0\n\n");
        assert_eq!((r.head.status.as_u16(), r.minor_version, n), (404, 0, 32));
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
        assert_rejects(cases);
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
        assert_rejects(cases);
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

    /// `Retry-After` in delay-seconds (RFC 9110 §10.2.3); an HTTP-date is left out (the core
    /// has no calendar clock), as is a number past `u32`.
    #[test]
    fn retry_after_in_seconds_only() {
        let ra = |field: &str| {
            let head = std::format!("HTTP/1.1 503 X\r\n{field}Content-Length: 0\r\n\r\n");
            complete(head.as_bytes()).0.head.retry_after
        };
        assert_eq!(ra("retry-after:  12 \r\n"), Some(12));
        assert_eq!(ra("Retry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n"), None);
        assert_eq!(ra("Retry-After: 9999999999\r\n"), None);
        assert_eq!(ra(""), None);
    }

    /// What the client reads raw stays raw: a malformed typed value is left out of the head
    /// but still found with `header`.
    #[test]
    fn untyped_values_stay_in_the_fields() {
        let (r, _) = complete(
            b"HTTP/1.1 200 OK\r\nLast-Modified: yesterday\r\nContent-Type: a/\xff\r\n\
              Repr-Digest: sha-256=:short:\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(r.head.last_modified, None);
        assert_eq!(r.header(b"last-modified"), Some(&b"yesterday"[..]));
        assert_eq!(r.head.content_type, None);
        assert_eq!(r.head.repr_digest, None);
        assert_eq!(r.header(b"Repr-Digest"), Some(&b"sha-256=:short:"[..]));
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

        /// Errors are decided left to right (the shared scanner): every prefix of any input is
        /// `Partial` or gives the whole input's verdict.
        #[test]
        fn every_prefix_gives_partial_or_the_same_verdict(buf in noisy_head()) {
            let whole = parse(&buf);
            for cut in 0..buf.len() {
                let got = parse(&buf[..cut]);
                proptest::prop_assert!(
                    got == Ok(Status::Partial) || got == whole,
                    "cut {} gives {:?}, the whole {:?}", cut, got, whole
                );
            }
        }
    }

    /// Fragments that steer random input towards the parser's interesting states.
    fn noisy_head() -> impl proptest::strategy::Strategy<Value = std::vec::Vec<u8>> {
        use proptest::prelude::*;
        use std::vec;
        let piece = prop_oneof![
            Just(&b"HTTP/1.1 200 OK"[..]),
            Just(&b"HTTP/1.0 206 "[..]),
            Just(&b"HTTP/2.0 200"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"Content-Length: 3"[..]),
            Just(&b"Transfer-Encoding: chunked"[..]),
            Just(&b"Content-Range: bytes 0-1/2"[..]),
            Just(&b"Connection: close"[..]),
            Just(&b": "[..]),
            Just(&b" "[..]),
            Just(&b"\t"[..]),
            Just(&b"\0"[..]),
            Just(&b"X"[..]),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }
}
