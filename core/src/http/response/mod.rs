//! Response heads in both directions: the server's encoder and the client's parser
//! (RFC 9112 §4, §5, §6.3).
//!
//! ```text
//! status-line = HTTP-version SP status-code SP [ reason-phrase ]
//! field-line  = field-name ":" OWS field-value OWS
//! ```
//!
//! One head type serves both sides, in smoltcp's `Repr` + view pattern:
//!
//! * [`ResponseHead`] is the `Repr`: the typed fields (status, lengths, ranges, validators,
//!   dates, cache status...). The server fills one and emits it with
//!   [`ResponseHead::encoded_len`] then [`ResponseHead::encode`] into a caller's buffer, or
//!   [`ResponseHead::write_to`] an `embedded_io::Write`; all three run one emitter, so the
//!   length is exact by construction. Numbers are formatted by hand (no `core::fmt`): this runs
//!   for every response.
//! * [`Response`] is the checked view a client gets from [`Response::parse`]: the same
//!   [`ResponseHead`] (`response.head`, read back from the fields) plus what only the wire
//!   has: the version, the reason phrase, the framing of the body, persistence, and the raw
//!   header section for [`Response::header`].
//!
//! The parser reads with the request parser's field scanner (`http/scan.rs`): strict and
//! bounded, zero-copy, ambiguous framing (conflicting lengths, an unknown coding, obs-fold,
//! bare CR, control bytes) rejected rather than guessed. Incomplete input is
//! [`Status::Partial`](crate::Status::Partial), never an error; the caller turns "partial and
//! my buffer is full" into [`HeadError::TooLarge`]. `head.encode` → `parse` gives back the
//! same `head` (property-tested below): a client re-encodes what it parsed with
//! `response.head.encode`, the one emitter.

use super::date::{format_http_date, IMF_FIXDATE_LEN};
use super::digest::ContentDigest;
use super::scan::{is_value_byte, parse_u64};
use super::status::StatusCode;

mod parse;

pub use parse::{parse_content_range, parse_response, Framing, HeadError, Response, MAX_FIELDS};

/// The `Cache-Status` the server reports for a response (RFC 9211), cache name `satchel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// Served from the cache: `satchel; hit`.
    Hit,
    /// Read from the source and stored: `satchel; fwd=miss; stored`.
    MissStored,
    /// Read from the source, not stored (no room, or not admitted): `satchel; fwd=miss`.
    Miss,
    /// Streamed from the source because it is too big to cache: `satchel; fwd=bypass`.
    Bypass,
}

impl CacheStatus {
    const ALL: [Self; 4] = [Self::Hit, Self::MissStored, Self::Miss, Self::Bypass];

    /// The status a `Cache-Status` value names, if it is one satchel sends.
    pub fn parse(value: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == value)
    }

    /// The field value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "satchel; hit",
            Self::MissStored => "satchel; fwd=miss; stored",
            Self::Miss => "satchel; fwd=miss",
            Self::Bypass => "satchel; fwd=bypass",
        }
    }
}

/// A `Content-Range` field value for a byte range (RFC 9110 §14.4), sent by the server and
/// read by the client.
///
/// ```text
/// Content-Range     = range-unit SP ( range-resp / unsatisfied-range )
/// range-resp        = incl-range "/" ( complete-length / "*" )
/// incl-range        = first-pos "-" last-pos
/// unsatisfied-range = "*/" complete-length
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentRange {
    /// `bytes first-last/complete` on a 206 (`complete` is `None` for `/*`).
    Bytes {
        /// Offset of the first byte sent.
        first: u64,
        /// Offset of the last byte sent (inclusive).
        last: u64,
        /// Size of the whole representation, when known.
        complete: Option<u64>,
    },
    /// `bytes */complete`, on a 416 (Range Not Satisfiable).
    Unsatisfied {
        /// Size of the whole representation.
        complete: u64,
    },
}

impl ContentRange {
    /// Parses a field value.
    ///
    /// # Errors
    /// [`HeadError::ContentRange`] for another unit, bad syntax, `first > last` or
    /// `last >= complete`.
    pub fn parse(value: &[u8]) -> Result<Self, HeadError> {
        let bad = HeadError::ContentRange;
        let rest = value.strip_prefix(b"bytes ").ok_or(bad)?;
        let slash = rest.iter().position(|&b| b == b'/').ok_or(bad)?;
        let (range, complete) = rest.split_at(slash);
        let complete = complete.get(1..).unwrap_or_default();
        if range == b"*" {
            let complete = parse_u64(complete).ok_or(bad)?;
            return Ok(Self::Unsatisfied { complete });
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
        Ok(Self::Bytes {
            first,
            last,
            complete,
        })
    }

    /// Emits the field value (`bytes ...`).
    fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        match *self {
            Self::Bytes {
                first,
                last,
                complete,
            } => {
                s.put(b"bytes ")?;
                s.put(Decimal::new(first).as_bytes())?;
                s.put(b"-")?;
                s.put(Decimal::new(last).as_bytes())?;
                s.put(b"/")?;
                match complete {
                    Some(c) => s.put(Decimal::new(c).as_bytes()),
                    None => s.put(b"*"),
                }
            }
            Self::Unsatisfied { complete } => {
                s.put(b"bytes */")?;
                s.put(Decimal::new(complete).as_bytes())
            }
        }
    }
}

/// Why a head could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The buffer is shorter than [`ResponseHead::encoded_len`].
    BufferTooSmall,
    /// A field value contains a control character (CR, LF, NUL...), which would split or
    /// corrupt the head (RFC 9110 §5.5).
    InvalidFieldValue,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "buffer too small for the response head",
            Self::InvalidFieldValue => "control character in a response field value",
        })
    }
}

impl core::error::Error for EncodeError {}

/// Why [`ResponseHead::write_to`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteError<E> {
    /// The head cannot be encoded; nothing was written.
    Encode(EncodeError),
    /// The writer failed.
    Io(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Encode(e) => core::fmt::Display::fmt(e, f),
            Self::Io(e) => write!(f, "writing the response head: {e:?}"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for WriteError<E> {}

/// A response head: the status line and the fields satchel sends.
///
/// Fields are emitted in this fixed order, each only when set: `Date`, `Content-Type`,
/// `Content-Encoding`, `Content-Length`, `Content-Range`, `Accept-Ranges: bytes`, `ETag`,
/// `Last-Modified`, `Vary`, `Cache-Control`, `Repr-Digest`, `Cache-Status`, `Location`, `Allow`,
/// `Retry-After`, `Content-Security-Policy`,
/// `Connection: close`. The status line is
/// always `HTTP/1.1 <code> <reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// The status code.
    pub status: StatusCode,
    /// The full `Content-Type` value, parameters included (`text/html; charset=utf-8`).
    pub content_type: Option<&'a str>,
    /// `Content-Encoding` (a precompressed representation: `br`, `zstd`, `gzip`).
    pub content_encoding: Option<&'a str>,
    /// `Content-Length`; `None` for a 304 (RFC 9110 §15.4.5 lets it be omitted).
    pub content_length: Option<u64>,
    /// The selected representation's `ETag`, quotes (and any `W/`) included: the server's
    /// [`ETag::as_bytes`](super::etag::ETag::as_bytes), or what a peer sent.
    pub etag: Option<&'a [u8]>,
    /// `Last-Modified`, in seconds since the Unix epoch.
    pub last_modified: Option<u64>,
    /// `Vary` (`Accept-Encoding` where a precompressed sibling may be chosen).
    pub vary: Option<&'a str>,
    /// `Cache-Control`, the whole field value (e.g. `no-cache`).
    pub cache_control: Option<&'a str>,
    /// `Repr-Digest: sha-256=:<base64>:` (RFC 9530) of the selected representation (read
    /// back from a dictionary's well-formed `sha-256` member; other algorithms are ignored).
    pub repr_digest: Option<ContentDigest>,
    /// `Date`, in seconds since the Unix epoch; `None` on a platform without a clock
    /// (RFC 9110 §6.6.1).
    pub date: Option<u64>,
    /// Whether to send `Accept-Ranges: bytes`.
    pub accept_ranges: bool,
    /// `Content-Range`, on a 206 or a 416.
    pub content_range: Option<ContentRange>,
    /// `Cache-Status`.
    pub cache_status: Option<CacheStatus>,
    /// `Location`, already percent-encoded (see [`crate::listing::percent_encode_path`]).
    pub location: Option<&'a [u8]>,
    /// `Allow`, e.g. `GET, HEAD` on a 405.
    pub allow: Option<&'a str>,
    /// `Retry-After`, in seconds (on a 503).
    pub retry_after: Option<u32>,
    /// `Content-Security-Policy` (on listing pages).
    pub content_security_policy: Option<&'a str>,
    /// Whether to send `Connection: close` (the server closes after this response).
    pub connection_close: bool,
}

impl<'a> ResponseHead<'a> {
    /// A head with the given status and no fields.
    pub const fn new(status: StatusCode) -> Self {
        Self {
            status,
            content_type: None,
            content_encoding: None,
            content_length: None,
            etag: None,
            last_modified: None,
            vary: None,
            cache_control: None,
            repr_digest: None,
            date: None,
            accept_ranges: false,
            content_range: None,
            cache_status: None,
            location: None,
            allow: None,
            retry_after: None,
            content_security_policy: None,
            connection_close: false,
        }
    }

    /// The exact number of bytes [`ResponseHead::encode`] writes, final empty line included.
    pub fn encoded_len(&self) -> usize {
        let mut counter = Counter(0);
        match self.emit(&mut counter) {
            Ok(()) => counter.0,
            Err(never) => match never {},
        }
    }

    /// Writes the head into `buf` and returns its length.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than
    /// [`ResponseHead::encoded_len`]; [`EncodeError::InvalidFieldValue`] when `content_type`,
    /// `content_encoding`, `vary`, `location`, `allow` or `content_security_policy` holds a
    /// control character (or `etag` does, for a head built from a peer's bytes). `buf` may be
    /// partly written on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.check_values()?;
        let mut cursor = BufSink { buf, pos: 0 };
        self.emit(&mut cursor)?;
        Ok(cursor.pos)
    }

    /// Writes the head to `w`, piece by piece (wrap an unbuffered transport in a buffer, or
    /// [`ResponseHead::encode`] into one).
    ///
    /// # Errors
    /// [`WriteError::Encode`] with [`EncodeError::InvalidFieldValue`] as for
    /// [`ResponseHead::encode`], before anything is written; [`WriteError::Io`] when the writer
    /// fails (part of the head may have been written).
    pub fn write_to<W: embedded_io::Write>(&self, w: &mut W) -> Result<(), WriteError<W::Error>> {
        self.check_values().map_err(WriteError::Encode)?;
        self.emit(&mut IoSink(w)).map_err(WriteError::Io)
    }

    fn check_values(&self) -> Result<(), EncodeError> {
        let ok = self.content_type.is_none_or(|v| valid_value(v.as_bytes()))
            && self.etag.is_none_or(valid_value)
            && self.cache_control.is_none_or(|v| valid_value(v.as_bytes()))
            && self
                .content_encoding
                .is_none_or(|v| valid_value(v.as_bytes()))
            && self.vary.is_none_or(|v| valid_value(v.as_bytes()))
            && self.location.is_none_or(valid_value)
            && self.allow.is_none_or(|v| valid_value(v.as_bytes()))
            && self
                .content_security_policy
                .is_none_or(|v| valid_value(v.as_bytes()));
        if ok {
            Ok(())
        } else {
            Err(EncodeError::InvalidFieldValue)
        }
    }

    /// The one place that knows the wire form; every output goes through it.
    fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        s.put(b"HTTP/1.1 ")?;
        s.put(&self.status.digits())?;
        s.put(b" ")?;
        s.put(self.status.reason().as_bytes())?;
        s.put(b"\r\n")?;
        if let Some(date) = self.date {
            field_date(s, b"Date: ", date)?;
        }
        self.emit_representation(s)?;
        self.emit_validators(s)?;
        self.emit_control(s)?;
        s.put(b"\r\n")
    }

    /// What the body is: `Content-Type` to `Accept-Ranges`.
    #[inline]
    fn emit_representation<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        if let Some(ct) = self.content_type {
            field(s, b"Content-Type: ", ct.as_bytes(), b"")?;
        }
        if let Some(ce) = self.content_encoding {
            field(s, b"Content-Encoding: ", ce.as_bytes(), b"")?;
        }
        if let Some(len) = self.content_length {
            field_u64(s, b"Content-Length: ", len)?;
        }
        if let Some(range) = self.content_range {
            s.put(b"Content-Range: ")?;
            range.emit(s)?;
            s.put(b"\r\n")?;
        }
        if self.accept_ranges {
            s.put(b"Accept-Ranges: bytes\r\n")?;
        }
        Ok(())
    }

    /// Which version it is and how caches may keep it: `ETag` to `Cache-Status`.
    #[inline]
    fn emit_validators<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        if let Some(etag) = self.etag {
            field(s, b"ETag: ", etag, b"")?;
        }
        if let Some(lm) = self.last_modified {
            field_date(s, b"Last-Modified: ", lm)?;
        }
        if let Some(vary) = self.vary {
            field(s, b"Vary: ", vary.as_bytes(), b"")?;
        }
        if let Some(cc) = self.cache_control {
            field(s, b"Cache-Control: ", cc.as_bytes(), b"")?;
        }
        if let Some(digest) = &self.repr_digest {
            s.put(b"Repr-Digest: sha-256=:")?;
            s.put(&digest.base64())?;
            s.put(b":\r\n")?;
        }
        if let Some(cs) = self.cache_status {
            field(s, b"Cache-Status: ", cs.as_str().as_bytes(), b"")?;
        }
        Ok(())
    }

    /// What the client should do next: `Location` to `Connection`.
    #[inline]
    fn emit_control<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        if let Some(location) = self.location {
            field(s, b"Location: ", location, b"")?;
        }
        if let Some(allow) = self.allow {
            field(s, b"Allow: ", allow.as_bytes(), b"")?;
        }
        if let Some(secs) = self.retry_after {
            field_u64(s, b"Retry-After: ", u64::from(secs))?;
        }
        if let Some(csp) = self.content_security_policy {
            field(s, b"Content-Security-Policy: ", csp.as_bytes(), b"")?;
        }
        if self.connection_close {
            s.put(b"Connection: close\r\n")?;
        }
        Ok(())
    }
}

/// `field-value` may hold visible characters, SP, HTAB and obs-text, never other controls
/// (RFC 9110 §5.5): the scanner's own byte class, so what we send is what we accept.
///
/// Every response checks its values (an entity-tag alone is ~46 bytes), so eight bytes are
/// tested at a time: a word with no byte below 0x20 and none equal to 0x7f holds only valid
/// bytes (HTAB, the one control allowed, is below 0x20, so its word takes the byte-wise path).
fn valid_value(v: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero exactly when some byte of `x` is below `n` (n <= 0x80; "hasless").
    let has_less = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let mut words = v.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let suspect = has_less(x, 0x20) | has_less(x ^ (ONES * 0x7f), 1);
        if suspect != 0 && !chunk.iter().all(|&b| is_value_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_value_byte(b))
}

/// Emits `name` `sep` `value` CRLF (`sep` is empty when `name` already ends in `": "`).
fn field<S: Sink>(s: &mut S, name: &[u8], value: &[u8], sep: &[u8]) -> Result<(), S::Error> {
    s.put(name)?;
    s.put(sep)?;
    s.put(value)?;
    s.put(b"\r\n")
}

fn field_u64<S: Sink>(s: &mut S, name: &[u8], n: u64) -> Result<(), S::Error> {
    field(s, name, Decimal::new(n).as_bytes(), b"")
}

fn field_date<S: Sink>(s: &mut S, name: &[u8], secs: u64) -> Result<(), S::Error> {
    let date: [u8; IMF_FIXDATE_LEN] = format_http_date(secs);
    field(s, name, &date, b"")
}

/// Where the emitter's bytes go.
trait Sink {
    type Error;
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// Counts bytes for `encoded_len`.
struct Counter(usize);

impl Sink for Counter {
    type Error = core::convert::Infallible;
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0 += bytes.len();
        Ok(())
    }
}

/// Writes into a caller's buffer.
struct BufSink<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Sink for BufSink<'_> {
    type Error = EncodeError;
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// Writes to an `embedded_io::Write`.
struct IoSink<'w, W>(&'w mut W);

impl<W: embedded_io::Write> Sink for IoSink<'_, W> {
    type Error = W::Error;
    fn put(&mut self, bytes: &[u8]) -> Result<(), W::Error> {
        self.0.write_all(bytes)
    }
}

/// A `u64` in decimal, formatted right-aligned into a fixed buffer.
struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut n: u64) -> Self {
        let mut buf = [b'0'; 20];
        let mut start = buf.len();
        // 20 digits hold u64::MAX, so the loop always ends on `n == 0`.
        for slot in buf.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            start -= 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::date::MAX_HTTP_DATE;
    use crate::http::etag::ETag;
    use crate::http::scan::{self, Cursor, ScanError};
    use crate::version::FileVersion;
    use crate::Status;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn encode_vec(head: &ResponseHead<'_>) -> Vec<u8> {
        let mut buf = std::vec![0; head.encoded_len()];
        let n = head.encode(&mut buf).unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    fn etag() -> ETag {
        ETag::from_version(&FileVersion {
            len: 5,
            stamp: 6,
            id: 7,
        })
    }

    #[test]
    fn minimal_head() {
        let head = ResponseHead::new(StatusCode::NOT_FOUND);
        assert_eq!(encode_vec(&head), b"HTTP/1.1 404 Not Found\r\n\r\n");
    }

    #[test]
    fn full_file_head_in_documented_order() {
        let tag = etag();
        let head = ResponseHead {
            content_type: Some("text/plain; charset=utf-8"),
            content_length: Some(5),
            etag: Some(tag.as_bytes()),
            last_modified: Some(784_111_777),
            date: Some(784_111_778),
            accept_ranges: true,
            cache_status: Some(CacheStatus::MissStored),
            ..ResponseHead::new(StatusCode::OK)
        };
        let expected = "HTTP/1.1 200 OK\r\n\
            Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Length: 5\r\n\
            Accept-Ranges: bytes\r\n\
            ETag: \"6-5\"\r\n\
            Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
            Cache-Status: satchel; fwd=miss; stored\r\n\
            \r\n";
        assert_eq!(String::from_utf8(encode_vec(&head)).unwrap(), expected);
    }

    #[test]
    fn partial_and_unsatisfiable_content_range() {
        let head = ResponseHead {
            content_length: Some(10),
            content_range: Some(ContentRange::Bytes {
                first: 990,
                last: 999,
                complete: Some(1000),
            }),
            ..ResponseHead::new(StatusCode::PARTIAL_CONTENT)
        };
        assert_eq!(
            encode_vec(&head),
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\
              Content-Range: bytes 990-999/1000\r\n\r\n"
        );
        let head = ResponseHead {
            content_range: Some(ContentRange::Unsatisfied { complete: 0 }),
            ..ResponseHead::new(StatusCode::RANGE_NOT_SATISFIABLE)
        };
        assert_eq!(
            encode_vec(&head),
            b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */0\r\n\r\n"
        );
    }

    #[test]
    fn redirect_405_and_503_fields() {
        let head = ResponseHead {
            location: Some(b"/a%20b/"),
            content_length: Some(0),
            ..ResponseHead::new(StatusCode::MOVED_PERMANENTLY)
        };
        assert_eq!(
            encode_vec(&head),
            b"HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\nLocation: /a%20b/\r\n\r\n"
        );
        let head = ResponseHead {
            allow: Some("GET, HEAD"),
            retry_after: Some(u32::MAX),
            connection_close: true,
            ..ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE)
        };
        assert_eq!(
            encode_vec(&head),
            b"HTTP/1.1 503 Service Unavailable\r\nAllow: GET, HEAD\r\n\
              Retry-After: 4294967295\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn content_encoding_after_type_and_vary_after_last_modified() {
        let tag = etag();
        let head = ResponseHead {
            content_type: Some("text/html"),
            content_encoding: Some("br"),
            content_length: Some(3),
            etag: Some(tag.as_bytes()),
            vary: Some("Accept-Encoding"),
            cache_status: Some(CacheStatus::Hit),
            ..ResponseHead::new(StatusCode::OK)
        };
        assert_eq!(
            String::from_utf8(encode_vec(&head)).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: br\r\n\
             Content-Length: 3\r\nETag: \"6-5\"\r\nVary: Accept-Encoding\r\n\
             Cache-Status: satchel; hit\r\n\r\n"
        );
        let head = ResponseHead {
            vary: Some("a\nb"),
            ..ResponseHead::new(StatusCode::OK)
        };
        assert_eq!(
            head.encode(&mut [0; 64]),
            Err(EncodeError::InvalidFieldValue)
        );
    }

    #[test]
    fn content_security_policy_before_connection_and_checked() {
        let head = ResponseHead {
            content_security_policy: Some("default-src 'none'"),
            connection_close: true,
            ..ResponseHead::new(StatusCode::OK)
        };
        assert_eq!(
            encode_vec(&head),
            b"HTTP/1.1 200 OK\r\nContent-Security-Policy: default-src 'none'\r\n\
              Connection: close\r\n\r\n"
        );
        let head = ResponseHead {
            content_security_policy: Some("a\r\nX: y"),
            ..ResponseHead::new(StatusCode::OK)
        };
        assert_eq!(
            head.encode(&mut [0; 64]),
            Err(EncodeError::InvalidFieldValue)
        );
    }

    #[test]
    fn short_buffer_is_an_error_at_every_length() {
        let tag = etag();
        let head = ResponseHead {
            content_length: Some(u64::MAX),
            etag: Some(tag.as_bytes()),
            ..ResponseHead::new(StatusCode::OK)
        };
        let len = head.encoded_len();
        let mut buf = std::vec![0; len];
        for short in 0..len {
            assert_eq!(
                head.encode(&mut buf[..short]),
                Err(EncodeError::BufferTooSmall)
            );
        }
        assert_eq!(head.encode(&mut buf), Ok(len));
    }

    #[test]
    fn control_characters_in_values_are_refused() {
        let mut buf = [0; 256];
        for head in [
            ResponseHead {
                location: Some(b"/x\r\nSet-Cookie: a=b"),
                ..ResponseHead::new(StatusCode::FOUND)
            },
            ResponseHead {
                content_type: Some("text/html\n"),
                ..ResponseHead::new(StatusCode::OK)
            },
            ResponseHead {
                allow: Some("GET\0"),
                ..ResponseHead::new(StatusCode::METHOD_NOT_ALLOWED)
            },
        ] {
            assert_eq!(head.encode(&mut buf), Err(EncodeError::InvalidFieldValue));
        }
    }

    #[test]
    fn write_to_matches_encode() {
        let tag = etag();
        let head = ResponseHead {
            etag: Some(tag.as_bytes()),
            content_length: Some(42),
            ..ResponseHead::new(StatusCode::OK)
        };
        let mut out = [0u8; 128];
        let mut w: &mut [u8] = &mut out;
        head.write_to(&mut w).unwrap();
        let written = 128 - w.len();
        assert_eq!(&out[..written], encode_vec(&head).as_slice());
    }

    #[test]
    fn write_to_refuses_invalid_values_before_writing() {
        let head = ResponseHead {
            location: Some(b"/x\r\nEvil: 1"),
            ..ResponseHead::new(StatusCode::FOUND)
        };
        let mut out = [0u8; 128];
        let mut w: &mut [u8] = &mut out;
        assert_eq!(
            head.write_to(&mut w),
            Err(WriteError::Encode(EncodeError::InvalidFieldValue))
        );
        assert_eq!(w.len(), 128);
    }

    #[test]
    fn write_to_reports_a_full_writer() {
        let head = ResponseHead::new(StatusCode::OK);
        let mut out = [0u8; 8];
        let mut w: &mut [u8] = &mut out;
        assert!(matches!(head.write_to(&mut w), Err(WriteError::Io(_))));
    }

    proptest! {
        /// The word-at-a-time check says what the byte class says, for any bytes.
        #[test]
        fn valid_value_is_the_byte_class(v in prop::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(valid_value(&v), v.iter().all(|&b| is_value_byte(b)));
        }

        #[test]
        fn valid_value_finds_one_bad_byte(
            len in 1usize..40,
            at in any::<prop::sample::Index>(),
            bad in prop_oneof![0u8..0x09, 0x0au8..0x20, Just(0x7f)],
            fill in prop_oneof![Just(b'a'), Just(b'\t'), Just(0x80u8), Just(0xffu8), Just(b' ')],
        ) {
            let mut v = std::vec![fill; len];
            v[at.index(len)] = bad;
            prop_assert!(!valid_value(&v));
        }
    }

    #[test]
    fn decimal_extremes() {
        assert_eq!(Decimal::new(0).as_bytes(), b"0");
        assert_eq!(Decimal::new(9).as_bytes(), b"9");
        assert_eq!(Decimal::new(10).as_bytes(), b"10");
        assert_eq!(Decimal::new(u64::MAX).as_bytes(), b"18446744073709551615");
    }

    /// Every status a client accepts: 100..=599 but 101 (a download never asks to upgrade).
    fn arb_status() -> impl Strategy<Value = StatusCode> {
        (100u16..=599)
            .prop_filter("101", |&c| c != 101)
            .prop_map(|c| StatusCode::from_u16(c).unwrap_or(StatusCode::OK))
    }

    /// Every valid `Content-Range`: `first <= last < complete`, `/*`, or `*/complete`.
    fn arb_content_range() -> impl Strategy<Value = ContentRange> {
        prop_oneof![
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
                |(a, b, c, known)| {
                    let mut v = [a, b, c];
                    v.sort_unstable();
                    let [first, last, complete] = v;
                    // `last < complete` needs room: nudge the equal cases down.
                    let last = if last == complete {
                        last.saturating_sub(1)
                    } else {
                        last
                    };
                    let first = first.min(last);
                    ContentRange::Bytes {
                        first,
                        last,
                        complete: (known && last < complete).then_some(complete),
                    }
                }
            ),
            any::<u64>().prop_map(|complete| ContentRange::Unsatisfied { complete }),
        ]
    }

    /// The fields of a parsed head, in order.
    fn field_list<'b>(r: &Response<'b>) -> Vec<(&'b [u8], &'b [u8])> {
        let mut out = Vec::new();
        let mut cur = Cursor::new(r.fields, usize::MAX);
        scan::fields::<ScanError>(&mut cur, MAX_FIELDS, |h| {
            out.push((h.name, h.value));
            Ok(())
        })
        .unwrap();
        out
    }

    /// A parsed view's typed head, encoded by the one emitter, parses back to the same head.
    fn head_round_trips(r: &Response<'_>) {
        let buf = encode_vec(&r.head);
        let Ok(Status::Complete((again, n))) = Response::parse(&buf, false) else {
            panic!(
                "re-encoded head rejected: {:?}",
                String::from_utf8_lossy(&buf)
            );
        };
        assert_eq!(n, buf.len());
        assert_eq!(again.head, r.head);
    }

    #[test]
    fn a_messy_head_reencodes_through_the_one_emitter() {
        let messy =
            b"HTTP/1.0 200 \nX-A:\t v \t\nContent-Length: 3, 3\r\nConnection: keep-alive\n\nabc";
        let Ok(Status::Complete((r, _))) = Response::parse(messy, false) else {
            panic!("messy head rejected");
        };
        head_round_trips(&r);
        assert_eq!(
            encode_vec(&r.head),
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
        );
        assert_eq!(r.header(b"x-a"), Some(&b"v"[..]));
        assert_eq!(r.header(b"missing"), None);
        assert_eq!(r.head.status, StatusCode::OK);
        assert_eq!((r.minor_version, r.reason), (0, &b""[..]));
        assert_eq!(r.framing, Framing::Length(3));
    }

    #[test]
    fn statuses_a_client_refuses_still_encode() {
        for (code, err) in [(101, HeadError::Upgrade), (600, HeadError::StatusLine)] {
            let head = ResponseHead::new(StatusCode::from_u16(code).unwrap());
            assert_eq!(Response::parse(&encode_vec(&head), false), Err(err));
        }
    }

    fn arb_cache_status() -> impl Strategy<Value = CacheStatus> {
        prop_oneof![
            Just(CacheStatus::Hit),
            Just(CacheStatus::MissStored),
            Just(CacheStatus::Miss),
            Just(CacheStatus::Bypass),
        ]
    }

    /// The owned parts of a random head; the head borrows from it.
    #[derive(Debug, Clone)]
    struct Owned {
        status: StatusCode,
        content_type: Option<String>,
        content_encoding: Option<String>,
        content_length: Option<u64>,
        etag: Option<ETag>,
        last_modified: Option<u64>,
        vary: Option<String>,
        cache_control: Option<String>,
        repr_digest: Option<ContentDigest>,
        date: Option<u64>,
        accept_ranges: bool,
        content_range: Option<ContentRange>,
        cache_status: Option<CacheStatus>,
        location: Option<String>,
        allow: Option<String>,
        retry_after: Option<u32>,
        content_security_policy: Option<String>,
        connection_close: bool,
    }

    fn arb_owned() -> impl Strategy<Value = Owned> {
        let token = "[a-z][a-z0-9-]{0,10}";
        (
            (
                arb_status(),
                proptest::option::of("[a-z]{1,10}/[a-z0-9.+-]{1,15}(; charset=utf-8)?"),
                proptest::option::of(token),
                proptest::option::of(any::<u64>()),
                proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
                    |(len, stamp, id)| ETag::from_version(&FileVersion { len, stamp, id }),
                )),
                proptest::option::of(0..=MAX_HTTP_DATE),
                proptest::option::of("[A-Za-z-]{1,20}"),
                proptest::option::of("(no-cache|max-age=[0-9]{1,6})(, [a-z-]{1,12})?"),
                proptest::option::of(any::<[u8; 32]>().prop_map(ContentDigest)),
            ),
            (
                proptest::option::of(0..=MAX_HTTP_DATE),
                any::<bool>(),
                proptest::option::of(arb_content_range()),
                proptest::option::of(arb_cache_status()),
                proptest::option::of("/[A-Za-z0-9%/._~-]{0,40}"),
                proptest::option::of("[A-Z]{3,7}(, [A-Z]{3,7}){0,3}"),
                proptest::option::of(any::<u32>()),
                proptest::option::of("[a-z-]{1,12} '[a-z]{1,8}'(; [a-z-]{1,12})?"),
                any::<bool>(),
            ),
        )
            .prop_map(|(a, b)| Owned {
                status: a.0,
                content_type: a.1,
                content_encoding: a.2,
                content_length: a.3,
                etag: a.4,
                last_modified: a.5,
                vary: a.6,
                cache_control: a.7,
                repr_digest: a.8,
                date: b.0,
                accept_ranges: b.1,
                content_range: b.2,
                cache_status: b.3,
                location: b.4,
                allow: b.5,
                retry_after: b.6,
                content_security_policy: b.7,
                connection_close: b.8,
            })
    }

    impl Owned {
        fn head(&self) -> ResponseHead<'_> {
            ResponseHead {
                status: self.status,
                content_type: self.content_type.as_deref(),
                content_encoding: self.content_encoding.as_deref(),
                content_length: self.content_length,
                etag: self.etag.as_ref().map(ETag::as_bytes),
                last_modified: self.last_modified,
                vary: self.vary.as_deref(),
                cache_control: self.cache_control.as_deref(),
                repr_digest: self.repr_digest,
                date: self.date,
                accept_ranges: self.accept_ranges,
                content_range: self.content_range,
                cache_status: self.cache_status,
                location: self.location.as_deref().map(str::as_bytes),
                allow: self.allow.as_deref(),
                retry_after: self.retry_after,
                content_security_policy: self.content_security_policy.as_deref(),
                connection_close: self.connection_close,
            }
        }
    }

    #[test]
    fn cache_control_and_repr_digest_fields() {
        let digest = ContentDigest::of(b"hello world\n");
        let mut head = ResponseHead::new(StatusCode::OK);
        head.cache_control = Some("max-age=60, stale-if-error=600");
        head.repr_digest = Some(digest);
        head.content_length = Some(12);
        let mut buf = [0u8; 256];
        let n = head.encode(&mut buf).unwrap();
        assert_eq!(n, head.encoded_len());
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\
             Cache-Control: max-age=60, stale-if-error=600\r\n\
             Repr-Digest: sha-256=:qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=:\r\n\r\n"
        );
        head.cache_control = Some("no-cache\r\nX-Injected: 1");
        assert_eq!(head.encode(&mut buf), Err(EncodeError::InvalidFieldValue));
    }

    /// Collects emitted bytes (for the `ContentRange` round trip).
    struct VecSink<'v>(&'v mut Vec<u8>);

    impl Sink for VecSink<'_> {
        type Error = core::convert::Infallible;
        fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// The documented field order.
    const ORDER: [&str; 17] = [
        "Date",
        "Content-Type",
        "Content-Encoding",
        "Content-Length",
        "Content-Range",
        "Accept-Ranges",
        "ETag",
        "Last-Modified",
        "Vary",
        "Cache-Control",
        "Repr-Digest",
        "Cache-Status",
        "Location",
        "Allow",
        "Retry-After",
        "Content-Security-Policy",
        "Connection",
    ];

    proptest! {
        /// The `Repr` round trip: what the server encodes, the client's parser reads back as
        /// the same head, with the framing and persistence the fields call for.
        #[test]
        fn encode_parse_round_trip(owned in arb_owned()) {
            let head = owned.head();
            let bytes = encode_vec(&head);
            let verdict = Response::parse(&bytes, false);
            let Ok(Status::Complete((r, n))) = verdict else {
                panic!("encoded head rejected: {verdict:?}");
            };
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(r.head, head);
            prop_assert_eq!(r.minor_version, 1);
            prop_assert_eq!(r.reason, head.status.reason().as_bytes());
            // Framing and persistence follow from the fields (RFC 9112 §6.3, §9.3).
            let status = head.status;
            let framing = match head.content_length {
                _ if status.is_informational() || status == 204 || status == 304 => {
                    Framing::Empty
                }
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            };
            prop_assert_eq!(r.framing, framing);
            prop_assert_eq!(
                r.keep_alive,
                !head.connection_close && framing != Framing::UntilClose
            );
            // Fields come in the documented order, each one once.
            let ranks: Vec<usize> = field_list(&r)
                .iter()
                .map(|(name, _)| {
                    ORDER.iter().position(|o| o.as_bytes() == *name).unwrap_or(usize::MAX)
                })
                .collect();
            prop_assert!(ranks.iter().all(|&k| k < ORDER.len()), "{:?}", ranks);
            prop_assert!(ranks.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn content_range_round_trips(range in arb_content_range()) {
            let mut out = Vec::new();
            range.emit(&mut VecSink(&mut out)).unwrap();
            prop_assert_eq!(ContentRange::parse(&out), Ok(range));
        }

        /// A response (head and body) parses the same however it is split: every prefix is
        /// `Partial` until the head is whole, and bytes after the head change nothing.
        #[test]
        fn a_response_parses_the_same_however_split(
            owned in arb_owned(),
            body in prop::collection::vec(any::<u8>(), 0..32),
            head_request in any::<bool>(),
        ) {
            let head = encode_vec(&owned.head());
            let whole = [&head[..], &body].concat();
            let verdict = Response::parse(&whole, head_request);
            let Ok(Status::Complete((r, n))) = verdict else {
                panic!("encoded head rejected: {verdict:?}");
            };
            prop_assert_eq!(n, head.len());
            prop_assert_eq!(encode_vec(&r.head), head.clone());
            for cut in 0..whole.len() {
                let got = Response::parse(&whole[..cut], head_request);
                if cut < head.len() {
                    prop_assert_eq!(got, Ok(Status::Partial), "cut at {}", cut);
                } else {
                    prop_assert_eq!(got, Ok(Status::Complete((r, n))), "cut at {}", cut);
                }
            }
        }

        #[test]
        fn encoded_len_is_exact(owned in arb_owned(), extra in 0usize..8) {
            let head = owned.head();
            let len = head.encoded_len();
            let mut buf = std::vec![0xaa; len + extra];
            prop_assert_eq!(head.encode(&mut buf), Ok(len));
            prop_assert!(buf[len..].iter().all(|&b| b == 0xaa));
            prop_assert_eq!(head.encode(&mut buf[..len - 1]), Err(EncodeError::BufferTooSmall));
        }
    }
}
