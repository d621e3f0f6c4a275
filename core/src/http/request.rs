//! Strict, zero-copy, bounded parser for HTTP/1.1 request heads (RFC 9112 §2-§5).
//!
//! [`parse_request`] reads one request head from the front of a buffer and returns borrowed views
//! into it. It implements every row of PROTOCOL.md, "Requests the server accepts", that can be
//! decided from the bytes of the head:
//!
//! | part | rule | on violation |
//! |---|---|---|
//! | line endings | CRLF; a bare LF is accepted as CRLF; up to [`MAX_EMPTY_LINES`] empty lines before the request line are ignored | a bare CR anywhere, or more empty lines: 400, close |
//! | request line | `METHOD SP target SP HTTP/1.x`, at most `MAX_REQUEST_LINE` (2048 on host) bytes | 414 if the target is too long, else 400; close |
//! | version | `HTTP/1.1` or `HTTP/1.0`; `HTTP/1.x` with x > 1 is processed as HTTP/1.1 | another major version: 505; anything else: 400; close |
//! | header section | at most `MAX_HEADERS` (64) fields and `MAX_HEAD` (8 KiB on host) bytes in all | 431, close |
//! | field syntax | `name: value`; token name; no space before the colon; no obs-fold (line starting with SP/HTAB) | 400, close |
//! | Host | exactly one in HTTP/1.1 (RFC 9112 §3.2) | 400, close |
//! | target | origin-form `/path?query` or absolute-form `http://host/path`; the query is ignored | other forms: 400 |
//! | request body | none: `Content-Length: 0` is fine; a body is announced by `Content-Length` > 0, several differing `Content-Length`, or any `Transfer-Encoding`, and never read | another method: 405, close; GET/HEAD: 400, close |
//!
//! The `method` (405) and `Expect` (417) rows are not parse errors: they are answered from
//! [`Request::method`] and [`Request::expect_ok`] on a request that parsed. The one exception
//! is a body announced with another method: [`ParseError::MethodWithBody`] (405, then close),
//! since a body that is never read leaves nothing on the connection to parse next.
//!
//! # Incremental input
//!
//! The parser keeps no state: the caller re-parses its accumulated buffer when more bytes arrive.
//! The head is scanned strictly left to right and every error is decided by the bytes already
//! scanned, so the outcome does not depend on how the input was split: a prefix of a request is
//! either [`Status::Partial`] or fails with exactly the error the whole request fails with.
//! Limits are enforced on prefixes too (a target that can no longer fit the request line, a head
//! that already fills `max_head` bytes), so a peer cannot make the caller buffer without bound.

use super::scan::{self, is_target_byte, is_tchar, list_items, trim_ows, Cursor, ScanError, Stop};
use super::status::StatusCode;
use crate::http::method::Method;
use crate::Status;

pub use super::scan::Header;

/// The most header fields a request may carry (PROTOCOL.md `MAX_HEADERS`); more is 431.
pub const MAX_HEADERS: usize = 64;

/// The most empty lines skipped before a request line (RFC 9112 §2.2 asks for at least one);
/// one more is [`ParseError::EmptyLines`], a prompt 400 rather than a wait for `max_head`.
pub const MAX_EMPTY_LINES: usize = 8;

/// Size limits applied while parsing a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest request line accepted, in bytes, not counting its line ending
    /// (PROTOCOL.md `MAX_REQUEST_LINE`).
    pub max_request_line: usize,
    /// The largest head accepted, in bytes, from the first byte of the buffer (leading empty
    /// lines included) through the empty line that ends it (PROTOCOL.md `MAX_HEAD`).
    pub max_head: usize,
}

impl Limits {
    /// The host defaults of PROTOCOL.md: a 2048-byte request line and an 8 KiB head.
    pub const fn host() -> Self {
        Self {
            max_request_line: 2048,
            max_head: 8192,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::host()
    }
}

/// The protocol version named on the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The version as written on the wire, e.g. `"HTTP/1.1"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed request head; every slice borrows the buffer given to [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'b> {
    /// The method, classified; [`Method::Other`] is answered 405.
    pub method: Method,
    /// The method token exactly as sent.
    pub method_token: &'b [u8],
    /// The protocol version.
    pub version: Version,
    /// The raw request-target as sent.
    pub target: &'b [u8],
    /// The absolute path of the target, still percent-encoded, without the query: the path of
    /// an origin-form target, or of an absolute-form `http://host[:port]/path` target (`/` if
    /// that target has no path). Always starts with `/`.
    pub path: &'b [u8],
    /// The header fields in the order sent.
    pub headers: heapless::Vec<Header<'b>, MAX_HEADERS>,
    /// The authority of an absolute-form target, else the value of the `Host` field
    /// (RFC 9112 §3.2.2: the target's authority takes precedence).
    pub host: Option<&'b [u8]>,
    /// Whether the connection may stay open after the response: for HTTP/1.1 unless a
    /// `Connection` field lists `close`; for HTTP/1.0 only if one lists `keep-alive` (and none
    /// lists `close`).
    pub keep_alive: bool,
    /// The first `Expect` value, if any.
    pub expect: Option<&'b [u8]>,
    /// The first `If-None-Match` value, if any.
    pub if_none_match: Option<&'b [u8]>,
    /// The first `If-Modified-Since` value, if any.
    pub if_modified_since: Option<&'b [u8]>,
    /// The first `If-Range` value, if any.
    pub if_range: Option<&'b [u8]>,
    /// The first `Range` value, if any.
    pub range: Option<&'b [u8]>,
    /// The first `Accept` value, if any.
    pub accept: Option<&'b [u8]>,
}

impl<'b> Request<'b> {
    /// The value of the first field named `name` (compared case-insensitively), if any.
    pub fn header(&self, name: &[u8]) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Whether the `Expect` field, if present, is one satchel meets.
    ///
    /// PROTOCOL.md: "`Expect` | `100-continue` is ignored (no body); any other value | 417".
    /// Returns `false` when the server must answer 417 Expectation Failed.
    pub fn expect_ok(&self) -> bool {
        self.expect
            .is_none_or(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }
}

/// Why a request head was rejected. Each error knows the status code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseError {
    /// A CR not followed by LF (400).
    BareCr,
    /// The method is not a token (400).
    Method,
    /// The request line is not `METHOD SP target SP version` with single spaces (400).
    RequestLine,
    /// The request line exceeds the limit before the target starts (400).
    RequestLineTooLong,
    /// The request-target is too long for the request line limit (414).
    TargetTooLong,
    /// The request-target has a byte that may not appear in it (400).
    TargetSyntax,
    /// The request-target is not in origin-form or `http` absolute-form (400).
    TargetForm,
    /// The version is not of the form `HTTP/d.d` (400).
    Version,
    /// The version is `HTTP/d.d` with a major version other than 1 (505).
    UnsupportedVersion,
    /// More than [`MAX_EMPTY_LINES`] empty lines before the request line (400).
    EmptyLines,
    /// More than [`MAX_HEADERS`] header fields (431).
    TooManyHeaders,
    /// The head exceeds `max_head` bytes (431).
    HeadTooLarge,
    /// A field name is empty or not a token (400).
    HeaderName,
    /// A field line has no colon (400).
    MissingColon,
    /// Whitespace between a field name and its colon (400, RFC 9112 §5.1).
    SpaceBeforeColon,
    /// A line starting with whitespace: obsolete line folding (400, RFC 9112 §5.2).
    ObsFold,
    /// A field value holds a control character other than HTAB (400).
    HeaderValue,
    /// An HTTP/1.1 request without a `Host` field (400).
    MissingHost,
    /// More than one `Host` field (400).
    DuplicateHost,
    /// A `Host` value that is not an authority (`host[:port]`) (400).
    Host,
    /// A `Content-Length` that is not a number (400).
    ContentLength,
    /// A `GET` or `HEAD` request that announces content (`Content-Length` > 0, or several
    /// differing values) (400).
    Body,
    /// A `GET` or `HEAD` request with a `Transfer-Encoding` field (400).
    TransferEncoding,
    /// A request with another method that announces content (`Content-Length` > 0, several
    /// differing values, or `Transfer-Encoding`): 405 with `Allow: GET, HEAD`, and the
    /// connection closes without reading the content (PROTOCOL.md, "request body").
    MethodWithBody,
}

impl ParseError {
    /// The status of the response this error calls for: 400, 405, 414, 431 or 505.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TargetTooLong => StatusCode::URI_TOO_LONG,
            Self::TooManyHeaders | Self::HeadTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::MethodWithBody => StatusCode::METHOD_NOT_ALLOWED,
            Self::BareCr
            | Self::Method
            | Self::RequestLine
            | Self::RequestLineTooLong
            | Self::TargetSyntax
            | Self::TargetForm
            | Self::Version
            | Self::EmptyLines
            | Self::HeaderName
            | Self::MissingColon
            | Self::SpaceBeforeColon
            | Self::ObsFold
            | Self::HeaderValue
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::Host
            | Self::ContentLength
            | Self::Body
            | Self::TransferEncoding => StatusCode::BAD_REQUEST,
        }
    }

    /// A short sentence saying what was wrong, suitable as the error response body.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BareCr => "bare CR in request head",
            Self::Method => "invalid method token",
            Self::RequestLine => "malformed request line",
            Self::RequestLineTooLong => "request line too long",
            Self::TargetTooLong => "request target too long",
            Self::TargetSyntax => "invalid character in request target",
            Self::TargetForm => "request target must be a path or an http URL",
            Self::Version => "malformed HTTP version",
            Self::UnsupportedVersion => "HTTP version not supported",
            Self::EmptyLines => "too many empty lines before the request line",
            Self::TooManyHeaders => "too many header fields",
            Self::HeadTooLarge => "request head too large",
            Self::HeaderName => "invalid header field name",
            Self::MissingColon => "header field without colon",
            Self::SpaceBeforeColon => "whitespace before colon in header field",
            Self::ObsFold => "obsolete line folding in header field",
            Self::HeaderValue => "control character in header field value",
            Self::MissingHost => "missing Host header",
            Self::DuplicateHost => "duplicate Host header",
            Self::Host => "invalid Host header",
            Self::ContentLength => "invalid Content-Length",
            Self::Body => "request content is not accepted",
            Self::TransferEncoding => "Transfer-Encoding is not accepted",
            Self::MethodWithBody => "method not allowed: use GET or HEAD",
        }
    }
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl core::error::Error for ParseError {}

impl From<ScanError> for ParseError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::BareCr => Self::BareCr,
            ScanError::HeadTooLarge => Self::HeadTooLarge,
            ScanError::TooManyFields => Self::TooManyHeaders,
            ScanError::HeaderName => Self::HeaderName,
            ScanError::MissingColon => Self::MissingColon,
            ScanError::SpaceBeforeColon => Self::SpaceBeforeColon,
            ScanError::ObsFold => Self::ObsFold,
            ScanError::HeaderValue => Self::HeaderValue,
        }
    }
}

/// Parses one request head from the front of `buf`.
///
/// ```text
/// HTTP-message   = start-line CRLF *( field-line CRLF ) CRLF      ; RFC 9112 §2.1
/// request-line   = method SP request-target SP HTTP-version       ; RFC 9112 §3
/// HTTP-version   = "HTTP" "/" DIGIT "." DIGIT                     ; RFC 9112 §2.3
/// field-line     = field-name ":" OWS field-value OWS             ; RFC 9112 §5
/// ```
///
/// Up to [`MAX_EMPTY_LINES`] empty lines before the request line are skipped (RFC 9112 §2.2);
/// they count towards `max_head`. A bare LF is accepted wherever CRLF is expected.
///
/// On success returns the request and the number of bytes it took, including the empty line
/// that ends the head; the bytes after it belong to the next request (no request has content).
/// Returns `Ok(Status::Partial)` when `buf` is a proper prefix of a head that may still be
/// valid.
///
/// # Errors
///
/// A [`ParseError`] as soon as the bytes seen make the request invalid; see
/// [`ParseError::status`] for the response each one calls for.
pub fn parse_request<'b>(
    buf: &'b [u8],
    limits: &Limits,
) -> Result<Status<(Request<'b>, usize)>, ParseError> {
    match parse_head(buf, limits) {
        Ok(done) => Ok(Status::Complete(done)),
        Err(Stop::Partial) => Ok(Status::Partial),
        Err(Stop::Error(e)) => Err(e),
    }
}

/// The request line's three parts.
#[derive(Clone, Copy)]
struct RequestLine<'b> {
    method: &'b [u8],
    target: &'b [u8],
    version: Version,
}

/// [`parse_request`] with `Partial` as an early exit, so `?` works throughout.
fn parse_head<'b>(
    buf: &'b [u8],
    limits: &Limits,
) -> Result<(Request<'b>, usize), Stop<ParseError>> {
    let mut cur = Cursor::new(buf, limits.max_head);

    // RFC 9112 §2.2: "a server that is expecting to receive and parse a request-line SHOULD
    // ignore at least one empty line (CRLF) received prior to the request-line".
    let mut empty = 0;
    let first = loop {
        let b = cur.next()?;
        if !cur.line_end(b)? {
            break b;
        }
        empty += 1;
        if empty > MAX_EMPTY_LINES {
            return Err(ParseError::EmptyLines.into());
        }
    };
    let line = request_line(&mut cur, first, limits.max_request_line)?;
    let (path, authority) = split_target(line.target)?;

    let mut headers = heapless::Vec::new();
    scan::fields(&mut cur, MAX_HEADERS, |header| {
        headers.push(header).map_err(|_| ParseError::TooManyHeaders)
    })?;

    let request = Request::build(line, path, authority, headers)?;
    Ok((request, cur.pos))
}

/// Scans `method SP request-target SP HTTP-version` up to and including its line ending.
fn request_line<'b>(
    cur: &mut Cursor<'b>,
    first: u8,
    max_line: usize,
) -> Result<RequestLine<'b>, Stop<ParseError>> {
    let line_start = cur.pos - 1;
    let method_end = method(cur, first, line_start, max_line)?;
    let (target_start, target_end) = target(cur, line_start, max_line)?;
    let version = version(cur)?;
    Ok(RequestLine {
        method: cur.slice(line_start, method_end),
        target: cur.slice(target_start, target_end),
        version,
    })
}

/// `method = token`, from its first byte `first` (at `line_start`) through the space after
/// it; returns where it ends.
#[inline]
fn method(
    cur: &mut Cursor<'_>,
    first: u8,
    line_start: usize,
    max_line: usize,
) -> Result<usize, Stop<ParseError>> {
    let mut b = first;
    while b != b' ' {
        if cur.pos - line_start > max_line {
            return Err(ParseError::RequestLineTooLong.into());
        }
        if cur.line_end(b)? || b == b'\t' {
            return Err(ParseError::RequestLine.into());
        }
        if !is_tchar(b) {
            return Err(ParseError::Method.into());
        }
        b = cur.next()?;
    }
    let method_end = cur.pos - 1;
    if method_end == line_start {
        return Err(ParseError::RequestLine.into());
    }
    Ok(method_end)
}

/// `request-target`: any visible ASCII but '#', through the space after it; returns its span.
/// A target byte at line offset `o` leaves room for at least " HTTP/1.1" after it, so once
/// `o + 1 + 9 > max_line` the target cannot fit.
#[inline]
fn target(
    cur: &mut Cursor<'_>,
    line_start: usize,
    max_line: usize,
) -> Result<(usize, usize), Stop<ParseError>> {
    let target_start = cur.pos;
    loop {
        let b = cur.next()?;
        if b == b' ' {
            break;
        }
        if cur.line_end(b)? {
            return Err(ParseError::RequestLine.into());
        }
        if !is_target_byte(b) {
            return Err(ParseError::TargetSyntax.into());
        }
        if cur.pos - line_start + 9 > max_line {
            return Err(ParseError::TargetTooLong.into());
        }
    }
    let target_end = cur.pos - 1;
    if target_end == target_start {
        return Err(ParseError::RequestLine.into());
    }
    Ok((target_start, target_end))
}

/// `HTTP-version = "HTTP" "/" DIGIT "." DIGIT` and the line ending after it.
#[inline]
fn version(cur: &mut Cursor<'_>) -> Result<Version, Stop<ParseError>> {
    let mut version = [0u8; 8];
    let mut len = 0;
    loop {
        let b = cur.next()?;
        if cur.line_end(b)? {
            break;
        }
        let fits = match len {
            0..=4 => b"HTTP/".get(len) == Some(&b),
            5 | 7 => b.is_ascii_digit(),
            6 => b == b'.',
            _ => false,
        };
        if !fits {
            return Err(ParseError::Version.into());
        }
        if let Some(slot) = version.get_mut(len) {
            *slot = b;
        }
        len += 1;
    }
    // RFC 9110 §2.5: a recipient "SHOULD process [a higher minor version] as if it were in the
    // highest minor version within that major version to which the recipient is conformant".
    match &version {
        _ if len != version.len() => Err(ParseError::Version.into()),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', _] => Ok(Version::Http11),
        _ => Err(ParseError::UnsupportedVersion.into()),
    }
}

/// Splits a request-target into its absolute path (without query) and, for absolute-form, its
/// authority.
///
/// ```text
/// origin-form   = absolute-path [ "?" query ]                      ; RFC 9112 §3.2.1
/// absolute-form = absolute-URI                                     ; RFC 9112 §3.2.2
/// ```
///
/// Only the `http` scheme is accepted in absolute-form; the asterisk-form and authority-form
/// (RFC 9112 §3.2.3-4) are never valid for `GET`/`HEAD` and are rejected with the rest.
fn split_target(target: &[u8]) -> Result<(&[u8], Option<&[u8]>), ParseError> {
    const SCHEME: &[u8] = b"http://";

    if target.first() == Some(&b'/') {
        return Ok((strip_query(target), None));
    }
    let rest = match target.split_at_checked(SCHEME.len()) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest,
        _ => return Err(ParseError::TargetForm),
    };
    let authority_end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, rest) = rest.split_at_checked(authority_end).unwrap_or_default();
    // An empty host is invalid for http URIs (RFC 9110 §4.2.1).
    if authority.is_empty() || !is_authority(authority) {
        return Err(ParseError::TargetForm);
    }
    let path = strip_query(rest);
    let path = if path.is_empty() { b"/" } else { path };
    Ok((path, Some(authority)))
}

/// The part of a target before its `?`.
fn strip_query(target: &[u8]) -> &[u8] {
    target.split(|&b| b == b'?').next().unwrap_or_default()
}

/// Whether `s` is made of the characters of `authority = host [ ":" port ]` without userinfo
/// (RFC 3986 §3.2: unreserved, pct-encoded, sub-delims, `:` and the `[` `]` of IP-literals).
///
/// This is a character check, not a full grammar: it keeps whitespace, `/`, `@` (userinfo,
/// deprecated and to be treated as an error, RFC 9110 §4.2.4) and the like out of the host,
/// which the server may echo in a `Location` field.
fn is_authority(s: &[u8]) -> bool {
    s.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

impl<'b> Request<'b> {
    /// Applies the field-level rules (Host, framing, Connection) to a syntactically valid head.
    fn build(
        line: RequestLine<'b>,
        path: &'b [u8],
        authority: Option<&'b [u8]>,
        headers: heapless::Vec<Header<'b>, MAX_HEADERS>,
    ) -> Result<Self, ParseError> {
        let fields = Fields::scan(&headers)?;
        if line.version == Version::Http11 && fields.host.is_none() {
            return Err(ParseError::MissingHost);
        }
        let method = Method::from_token(line.method);
        fields.check_no_content(method)?;
        Ok(Self {
            method,
            method_token: line.method,
            version: line.version,
            target: line.target,
            path,
            headers,
            host: authority.or(fields.host),
            keep_alive: match line.version {
                Version::Http11 => !fields.close,
                Version::Http10 => fields.keep_alive && !fields.close,
            },
            expect: fields.expect,
            if_none_match: fields.if_none_match,
            if_modified_since: fields.if_modified_since,
            if_range: fields.if_range,
            range: fields.range,
            accept: fields.accept,
        })
    }
}

/// What a request's fields say, gathered in one pass over them. A field the server acts on
/// keeps its first value, as [`Request::header`] finds it.
#[derive(Default)]
struct Fields<'b> {
    host: Option<&'b [u8]>,
    content_length: bool,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
    expect: Option<&'b [u8]>,
    if_none_match: Option<&'b [u8]>,
    if_modified_since: Option<&'b [u8]>,
    if_range: Option<&'b [u8]>,
    range: Option<&'b [u8]>,
    accept: Option<&'b [u8]>,
}

impl<'b> Fields<'b> {
    fn scan(headers: &[Header<'b>]) -> Result<Self, ParseError> {
        let mut fields = Self::default();
        for h in headers {
            fields.absorb(h.name, h.value)?;
        }
        Ok(fields)
    }

    fn absorb(&mut self, name: &[u8], value: &'b [u8]) -> Result<(), ParseError> {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        let slot = if is(b"host") {
            // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
            // to any HTTP/1.1 request message that lacks a Host header field and to any
            // request message that contains more than one Host header field line".
            if self.host.replace(value).is_some() {
                return Err(ParseError::DuplicateHost);
            }
            if !is_authority(value) {
                return Err(ParseError::Host);
            }
            return Ok(());
        } else if is(b"transfer-encoding") {
            self.transfer_encoding = true;
            return Ok(());
        } else if is(b"content-length") {
            self.content_length |= announces_content(value)?;
            return Ok(());
        } else if is(b"connection") {
            for option in list_items(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
            return Ok(());
        } else if is(b"if-none-match") {
            &mut self.if_none_match
        } else if is(b"if-modified-since") {
            &mut self.if_modified_since
        } else if is(b"range") {
            &mut self.range
        } else if is(b"if-range") {
            &mut self.if_range
        } else if is(b"accept") {
            &mut self.accept
        } else if is(b"expect") {
            &mut self.expect
        } else {
            return Ok(());
        };
        slot.get_or_insert(value);
        Ok(())
    }

    /// No content is ever read, so the head alone decides and framing cannot desync: the
    /// method's own answer first (405), else the body's (400); both close.
    fn check_no_content(&self, method: Method) -> Result<(), ParseError> {
        if (self.content_length || self.transfer_encoding) && !method.is_supported() {
            return Err(ParseError::MethodWithBody);
        }
        if self.transfer_encoding {
            return Err(ParseError::TransferEncoding);
        }
        if self.content_length {
            return Err(ParseError::Body);
        }
        Ok(())
    }
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), also as a list of equal values (RFC 9112 §6.3).
/// satchel reads no content, so any value but zero announces content (`true`).
fn announces_content(value: &[u8]) -> Result<bool, ParseError> {
    let mut any = false;
    let mut nonzero = false;
    for item in value.split(|&b| b == b',').map(trim_ows) {
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::ContentLength);
        }
        nonzero |= item.iter().any(|&b| b != b'0');
        any = true;
    }
    if any {
        Ok(nonzero)
    } else {
        Err(ParseError::ContentLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    const HOST: Limits = Limits::host();

    /// Parses `buf`, checking on the way that every proper prefix is `Partial`.
    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        for cut in 0..buf.len() {
            let prefix = buf.get(..cut).unwrap();
            assert_eq!(
                parse_request(prefix, &HOST).map(|s| s.is_complete()),
                Ok(false),
                "prefix of {cut} bytes"
            );
        }
        match parse_request(buf, &HOST) {
            Ok(Status::Complete(done)) => done,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    /// Parses `buf` expecting `err`, checking that no prefix fails differently.
    fn rejected(buf: &[u8], limits: &Limits) -> ParseError {
        let err = match parse_request(buf, limits) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        };
        for cut in 0..buf.len() {
            let prefix = buf.get(..cut).unwrap();
            match parse_request(prefix, limits) {
                Ok(Status::Partial) => {}
                Err(e) => assert_eq!(e, err, "prefix of {cut} bytes"),
                Ok(Status::Complete(_)) => panic!("prefix of {cut} bytes is complete"),
            }
        }
        err
    }

    /// `req!(name, bytes, |r| checks)` for accepted heads (consuming all of `bytes`),
    /// `req!(name, bytes, Err(variant))` for rejected ones.
    macro_rules! req {
        ($name:ident, $buf:expr, |$r:ident| $body:expr) => {
            #[test]
            fn $name() {
                let buf: &[u8] = $buf;
                let ($r, n) = complete(buf);
                assert_eq!(n, buf.len());
                $body
            }
        };
        ($name:ident, $buf:expr, Err($err:ident)) => {
            #[test]
            fn $name() {
                assert_eq!(rejected($buf, &HOST), ParseError::$err);
            }
        };
    }

    // --- accepted heads -------------------------------------------------------------------

    req!(
        simple_get,
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
        |r| {
            assert_eq!(r.method, Method::Get);
            assert_eq!(r.method_token, b"GET");
            assert_eq!(r.version, Version::Http11);
            assert_eq!(r.target, b"/index.html");
            assert_eq!(r.path, b"/index.html");
            assert_eq!(r.host, Some(&b"example.com"[..]));
            assert!(r.keep_alive);
            assert_eq!(r.headers.len(), 1);
            assert!(r.expect_ok());
        }
    );

    req!(head_method, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", |r| {
        assert_eq!(r.method, Method::Head);
    });

    req!(
        other_method_is_not_an_error,
        b"PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.method, Method::Other);
            assert_eq!(r.method_token, b"PROPFIND");
        }
    );

    req!(
        lowercase_method_is_other,
        b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.method, Method::Other);
        }
    );

    req!(
        bare_lf_line_endings,
        b"GET /a HTTP/1.1\nHost: h\nAccept: */*\n\n",
        |r| {
            assert_eq!(r.path, b"/a");
            assert_eq!(r.accept, Some(&b"*/*"[..]));
        }
    );

    req!(
        mixed_line_endings,
        b"GET /a HTTP/1.1\r\nHost: h\n\r\n",
        |r| {
            assert_eq!(r.host, Some(&b"h"[..]));
        }
    );

    req!(
        leading_empty_lines_are_skipped,
        b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.method, Method::Get);
        }
    );

    req!(
        query_is_removed_from_path,
        b"GET /a/b?x=1&y=/z HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.target, b"/a/b?x=1&y=/z");
            assert_eq!(r.path, b"/a/b");
        }
    );

    req!(
        path_stays_percent_encoded,
        b"GET /a%20b/%2e%2e HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.path, b"/a%20b/%2e%2e");
        }
    );

    req!(
        absolute_form,
        b"GET http://example.com:8080/x/y?q HTTP/1.1\r\nHost: other\r\n\r\n",
        |r| {
            assert_eq!(r.path, b"/x/y");
            assert_eq!(r.target, b"http://example.com:8080/x/y?q");
            // RFC 9112 §3.2.2: the target's authority wins over the Host field.
            assert_eq!(r.host, Some(&b"example.com:8080"[..]));
            assert_eq!(r.header(b"host"), Some(&b"other"[..]));
        }
    );

    req!(
        absolute_form_scheme_is_case_insensitive,
        b"GET HTTP://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.path, b"/x");
        }
    );

    req!(
        absolute_form_without_path,
        b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.path, b"/");
            assert_eq!(r.host, Some(&b"h"[..]));
        }
    );

    req!(
        absolute_form_with_query_only,
        b"GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.path, b"/");
        }
    );

    req!(http10_without_host, b"GET / HTTP/1.0\r\n\r\n", |r| {
        assert_eq!(r.version, Version::Http10);
        assert_eq!(r.host, None);
        assert!(!r.keep_alive);
    });

    req!(
        http10_keep_alive,
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        |r| {
            assert!(r.keep_alive);
        }
    );

    req!(
        http10_keep_alive_and_close,
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
        |r| {
            assert!(!r.keep_alive);
        }
    );

    req!(
        http11_close,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo,  CLOSE \r\n\r\n",
        |r| {
            assert!(!r.keep_alive);
        }
    );

    req!(
        http11_close_in_second_connection_field,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nConnection: close\r\n\r\n",
        |r| {
            assert!(!r.keep_alive);
        }
    );

    req!(
        http11_connection_token_is_not_substring,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n",
        |r| {
            assert!(r.keep_alive);
        }
    );

    req!(
        value_ows_is_trimmed,
        b"GET / HTTP/1.1\r\nHost:\t  h \t\r\nX-Empty:\r\nX-Inner: a  b\r\n\r\n",
        |r| {
            assert_eq!(r.host, Some(&b"h"[..]));
            assert_eq!(r.header(b"x-empty"), Some(&b""[..]));
            assert_eq!(r.header(b"X-INNER"), Some(&b"a  b"[..]));
        }
    );

    req!(
        obs_text_in_value_is_kept,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
        |r| {
            assert_eq!(r.header(b"x"), Some(&b"caf\xc3\xa9"[..]));
        }
    );

    req!(conditional_fields, b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nif-modified-since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIF-RANGE: \"b\"\r\nRange: bytes=0-1\r\nRange: bytes=5-\r\nExpect: 100-Continue\r\n\r\n", |r| {
        assert_eq!(r.if_none_match, Some(&b"\"a\""[..]));
        assert_eq!(r.if_modified_since, Some(&b"Sun, 06 Nov 1994 08:49:37 GMT"[..]));
        assert_eq!(r.if_range, Some(&b"\"b\""[..]));
        assert_eq!(r.range, Some(&b"bytes=0-1"[..]), "the first field wins");
        assert_eq!(r.expect, Some(&b"100-Continue"[..]));
        assert!(r.expect_ok());
    });

    req!(
        other_expectation_is_parsed_but_not_ok,
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
        |r| {
            assert!(!r.expect_ok());
        }
    );

    req!(
        content_length_zero,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        |r| {
            assert_eq!(r.header(b"content-length"), Some(&b"0"[..]));
        }
    );

    req!(content_length_equal_zeros, b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 00\r\nContent-Length: 0, 0\r\n\r\n", |r| {
        assert_eq!(r.headers.len(), 4);
    });

    req!(max_headers_exactly, &many_headers(MAX_HEADERS - 1), |r| {
        assert_eq!(r.headers.len(), MAX_HEADERS);
    });

    req!(
        tchar_punctuation_in_names,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-!#$%&'*+.^_`|~: v\r\n\r\n",
        |r| {
            assert_eq!(r.header(b"x-!#$%&'*+.^_`|~"), Some(&b"v"[..]));
        }
    );

    req!(
        host_ip_literal_and_port,
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        |r| {
            assert_eq!(r.host, Some(&b"[::1]:8080"[..]));
        }
    );

    req!(
        empty_host_is_allowed,
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        |r| {
            // RFC 9110 §7.2: an empty Host for a target URI without authority.
            assert_eq!(r.host, Some(&b""[..]));
        }
    );

    // --- rejected heads -------------------------------------------------------------------

    req!(
        bare_cr_in_request_line,
        b"GET /\rx HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(BareCr)
    );
    req!(
        bare_cr_in_method,
        b"GE\rT / HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(BareCr)
    );
    req!(
        bare_cr_after_version,
        b"GET / HTTP/1.1\rHost: h\r\n\r\n",
        Err(BareCr)
    );
    req!(
        bare_cr_in_value,
        b"GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n",
        Err(BareCr)
    );
    req!(
        bare_cr_ending_head,
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
        Err(BareCr)
    );
    req!(
        bare_cr_before_request_line,
        b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(BareCr)
    );
    req!(
        bare_cr_in_name,
        b"GET / HTTP/1.1\r\nHo\rst: h\r\n\r\n",
        Err(BareCr)
    );

    req!(
        double_space_after_method,
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(RequestLine)
    );
    req!(
        double_space_before_version,
        b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(Version)
    );
    req!(
        leading_space,
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(RequestLine)
    );
    req!(
        tab_separator,
        b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(RequestLine)
    );
    req!(missing_version, b"GET /\r\n\r\n", Err(RequestLine));
    req!(method_only, b"GET\r\n\r\n", Err(RequestLine));
    req!(
        method_not_token,
        b"GE(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(Method)
    );
    req!(
        target_with_space_in_it,
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(Version)
    );
    req!(
        target_with_fragment,
        b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetSyntax)
    );
    req!(
        target_with_non_ascii,
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetSyntax)
    );
    req!(
        target_with_ctl,
        b"GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetSyntax)
    );

    req!(
        lowercase_version,
        b"GET / http/1.1\r\nHost: h\r\n\r\n",
        Err(Version)
    );
    req!(
        version_too_long,
        b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
        Err(Version)
    );
    req!(
        version_too_short,
        b"GET / HTTP/1\r\nHost: h\r\n\r\n",
        Err(Version)
    );
    req!(
        version_trailing_space,
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        Err(Version)
    );
    req!(
        version_http2,
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        Err(UnsupportedVersion)
    );
    req!(
        version_http09,
        b"GET / HTTP/0.9\r\n\r\n",
        Err(UnsupportedVersion)
    );
    // Issue 16 item 3: RFC 9110 §2.5, a higher minor version is processed as the highest
    // minor version the server implements; only another major version is 505.
    req!(
        version_http12_is_processed_as_http11,
        b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
        |r| {
            assert_eq!(r.version, Version::Http11);
            assert!(r.keep_alive);
        }
    );
    req!(
        version_http19_still_needs_host,
        b"GET / HTTP/1.9\r\n\r\n",
        Err(MissingHost)
    );
    req!(
        version_http31,
        b"GET / HTTP/3.1\r\nHost: h\r\n\r\n",
        Err(UnsupportedVersion)
    );

    req!(
        asterisk_form,
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetForm)
    );
    req!(
        authority_form,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetForm)
    );
    req!(
        https_absolute_form,
        b"GET https://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetForm)
    );
    req!(
        absolute_form_empty_authority,
        b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetForm)
    );
    req!(
        absolute_form_userinfo,
        b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetForm)
    );
    req!(
        relative_target,
        b"GET index.html HTTP/1.1\r\nHost: h\r\n\r\n",
        Err(TargetForm)
    );

    req!(
        obs_fold,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        Err(ObsFold)
    );
    req!(
        whitespace_before_first_field,
        b"GET / HTTP/1.1\r\n\tHost: h\r\n\r\n",
        Err(ObsFold)
    );
    req!(
        space_before_colon,
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        Err(SpaceBeforeColon)
    );
    req!(
        field_without_colon,
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        Err(MissingColon)
    );
    req!(
        empty_field_name,
        b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",
        Err(HeaderName)
    );
    req!(
        field_name_not_token,
        b"GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n",
        Err(HeaderName)
    );
    req!(
        nul_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
        Err(HeaderValue)
    );
    req!(
        del_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n",
        Err(HeaderValue)
    );
    req!(
        esc_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[31m\r\n\r\n",
        Err(HeaderValue)
    );

    req!(
        missing_host,
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        Err(MissingHost)
    );
    req!(
        duplicate_host,
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        Err(DuplicateHost)
    );
    req!(
        duplicate_host_http10,
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        Err(DuplicateHost)
    );
    req!(
        host_with_space,
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        Err(Host)
    );
    req!(
        host_with_userinfo,
        b"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n",
        Err(Host)
    );
    req!(
        absolute_form_still_needs_host,
        b"GET http://h/ HTTP/1.1\r\n\r\n",
        Err(MissingHost)
    );

    req!(
        content_length_positive,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
        Err(Body)
    );
    req!(
        content_length_differing,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
        Err(Body)
    );
    req!(
        content_length_list_differing,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0, 7\r\n\r\n",
        Err(Body)
    );
    req!(
        content_length_not_numeric,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: zero\r\n\r\n",
        Err(ContentLength)
    );
    req!(
        content_length_signed,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -0\r\n\r\n",
        Err(ContentLength)
    );
    req!(
        content_length_empty,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
        Err(ContentLength)
    );
    req!(
        content_length_huge,
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        Err(Body)
    );
    req!(
        transfer_encoding,
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        Err(TransferEncoding)
    );
    // Issue 16 item 1: a body announced with another method is that method's 405, then close.
    req!(
        post_with_content_length_is_405,
        b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
        Err(MethodWithBody)
    );
    req!(
        put_with_transfer_encoding_is_405,
        b"PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        Err(MethodWithBody)
    );
    req!(
        delete_with_differing_lengths_is_405,
        b"DELETE /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
        Err(MethodWithBody)
    );
    req!(
        post_with_invalid_length_is_400,
        b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
        Err(ContentLength)
    );
    req!(
        head_with_transfer_encoding_is_400,
        b"HEAD /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        Err(TransferEncoding)
    );
    req!(
        post_without_body_parses,
        b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        |r| {
            assert_eq!(r.method, Method::Other);
        }
    );

    #[test]
    fn method_with_body_is_405_and_closes() {
        assert_eq!(ParseError::MethodWithBody.status(), 405);
    }

    req!(
        transfer_encoding_identity,
        b"GET / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: identity\r\n\r\n",
        Err(TransferEncoding)
    );

    req!(
        too_many_headers,
        &many_headers(MAX_HEADERS),
        Err(TooManyHeaders)
    );

    /// A GET with a Host field and `extra` more fields.
    fn many_headers(extra: usize) -> Vec<u8> {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..extra {
            buf.extend_from_slice(std::format!("X-{i}: {i}\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        buf
    }

    // --- limits ---------------------------------------------------------------------------

    fn get_with_target_len(len: usize) -> Vec<u8> {
        let mut buf = b"GET /".to_vec();
        buf.resize(4 + len, b'a');
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        buf
    }

    #[test]
    fn request_line_at_the_limit() {
        // "GET " + target + " HTTP/1.1" = 13 + len bytes.
        let buf = get_with_target_len(HOST.max_request_line - 13);
        let (r, n) = complete(&buf);
        assert_eq!(n, buf.len());
        assert_eq!(r.target.len(), HOST.max_request_line - 13);
    }

    #[test]
    fn target_one_byte_too_long_is_414() {
        let buf = get_with_target_len(HOST.max_request_line - 12);
        let err = rejected(&buf, &HOST);
        assert_eq!(err, ParseError::TargetTooLong);
        assert_eq!(err.status(), 414);
    }

    #[test]
    fn drip_fed_target_is_rejected_before_the_line_ends() {
        let mut buf = b"GET /".to_vec();
        buf.resize(HOST.max_request_line, b'a');
        assert_eq!(parse_request(&buf, &HOST), Err(ParseError::TargetTooLong));
    }

    #[test]
    fn long_method_is_400() {
        let mut buf = std::vec![b'A'; HOST.max_request_line + 1];
        assert_eq!(
            parse_request(&buf, &HOST),
            Err(ParseError::RequestLineTooLong)
        );
        buf.extend_from_slice(b" / HTTP/1.1\r\nHost: h\r\n\r\n");
        let err = rejected(&buf, &HOST);
        assert_eq!(err, ParseError::RequestLineTooLong);
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn head_at_the_limit() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let limits = Limits {
            max_request_line: 64,
            max_head: head.len(),
        };
        assert!(matches!(
            parse_request(head, &limits),
            Ok(Status::Complete((_, n))) if n == head.len()
        ));
        let tight = Limits {
            max_head: head.len() - 1,
            ..limits
        };
        assert_eq!(rejected(head, &tight), ParseError::HeadTooLarge);
    }

    #[test]
    fn head_too_large_is_decided_on_a_partial_buffer() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
        buf.resize(HOST.max_head - 1, b'v');
        assert_eq!(parse_request(&buf, &HOST), Ok(Status::Partial));
        buf.push(b'v');
        let err = parse_request(&buf, &HOST).unwrap_err();
        assert_eq!(err, ParseError::HeadTooLarge);
        assert_eq!(err.status(), 431);
    }

    // Issue 16 item 4: a few empty lines are skipped, a flood is a prompt 400 (not a 431 after
    // `max_head` bytes).
    #[test]
    fn a_few_leading_empty_lines_are_skipped() {
        let mut buf = Vec::new();
        for i in 0..MAX_EMPTY_LINES {
            buf.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n" });
        }
        buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        let (r, n) = complete(&buf);
        assert_eq!((r.method, n), (Method::Get, buf.len()));
    }

    #[test]
    fn a_flood_of_empty_lines_is_a_prompt_400() {
        let buf = b"\r\n".repeat(MAX_EMPTY_LINES + 1);
        let err = rejected(&buf, &HOST);
        assert_eq!(err, ParseError::EmptyLines);
        assert_eq!(err.status(), 400);
        let lf = std::vec![b'\n'; HOST.max_head];
        assert_eq!(parse_request(&lf, &HOST), Err(ParseError::EmptyLines));
    }

    #[test]
    fn pipelined_requests_are_consumed_one_at_a_time() {
        let buf = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
        let Ok(Status::Complete((first, n))) = parse_request(buf, &HOST) else {
            panic!("first request")
        };
        assert_eq!(first.path, b"/a");
        let Ok(Status::Complete((second, m))) = parse_request(&buf[n..], &HOST) else {
            panic!("second request")
        };
        assert_eq!(second.path, b"/b");
        assert_eq!(n + m, buf.len());
    }

    #[test]
    fn errors_know_their_status_and_reason() {
        assert_eq!(ParseError::BareCr.status(), 400);
        assert_eq!(ParseError::UnsupportedVersion.status(), 505);
        assert_eq!(ParseError::TooManyHeaders.status(), 431);
        assert_eq!(ParseError::BareCr.reason(), "bare CR in request head");
        assert_eq!(
            std::format!("{}", ParseError::MissingHost),
            "missing Host header"
        );
    }

    #[test]
    fn empty_input_is_partial() {
        assert_eq!(parse_request(b"", &HOST), Ok(Status::Partial));
        assert_eq!(parse_request(b"\r", &HOST), Ok(Status::Partial));
        assert_eq!(parse_request(b"\r\n", &HOST), Ok(Status::Partial));
    }

    // --- properties -----------------------------------------------------------------------

    /// What the test encoder writes and the parser must give back.
    #[derive(Debug, Clone)]
    struct Spec {
        leading_empty_lines: usize,
        method: std::string::String,
        target: std::string::String,
        path: std::string::String,
        http10: bool,
        /// (name, OWS before the value, value, OWS after the value, LF-only line ending)
        headers: Vec<(
            std::string::String,
            &'static str,
            std::string::String,
            &'static str,
            bool,
        )>,
        lf_only_last: bool,
    }

    impl Spec {
        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for _ in 0..self.leading_empty_lines {
                out.extend_from_slice(b"\r\n");
            }
            let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
            out.extend_from_slice(
                std::format!("{} {} {version}\r\n", self.method, self.target).as_bytes(),
            );
            for (name, pre, value, post, lf) in &self.headers {
                let eol = if *lf { "\n" } else { "\r\n" };
                out.extend_from_slice(std::format!("{name}:{pre}{value}{post}{eol}").as_bytes());
            }
            out.extend_from_slice(if self.lf_only_last { b"\n" } else { b"\r\n" });
            out
        }

        fn check(&self, r: &Request<'_>) {
            assert_eq!(r.method_token, self.method.as_bytes());
            assert_eq!(r.method, Method::from_token(self.method.as_bytes()));
            assert_eq!(r.target, self.target.as_bytes());
            assert_eq!(r.path, self.path.as_bytes());
            assert_eq!(
                r.version,
                if self.http10 {
                    Version::Http10
                } else {
                    Version::Http11
                }
            );
            assert_eq!(r.headers.len(), self.headers.len());
            for (h, (name, _, value, _, _)) in r.headers.iter().zip(&self.headers) {
                assert_eq!(h.name, name.as_bytes());
                assert_eq!(h.value, value.as_bytes());
            }
            assert_eq!(r.keep_alive, !self.http10);
        }
    }

    fn ows() -> impl Strategy<Value = &'static str> {
        prop::sample::select(&["", " ", "\t", "  ", " \t"][..])
    }

    fn field() -> impl Strategy<
        Value = (
            std::string::String,
            &'static str,
            std::string::String,
            &'static str,
            bool,
        ),
    > {
        (
            "X-[A-Za-z0-9!#$%&'*+.^_`|~-]{0,12}",
            ows(),
            "([!-~\u{80}-\u{ff}]([ \t!-~]{0,20}[!-~])?)?",
            ows(),
            any::<bool>(),
        )
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let path = "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,8}){1,4}";
        let target = prop_oneof![
            (path, "(\\?[!-~&&[^#]]{0,12})?").prop_map(|(p, q)| (std::format!("{p}{q}"), p)),
            (
                "[hH][tT][tT][pP]://[a-z0-9.-]{1,10}(:[0-9]{1,5})?",
                "(/[a-z0-9._~%-]{0,8}){0,3}"
            )
                .prop_map(|(a, p)| {
                    let path = if p.is_empty() { "/".into() } else { p.clone() };
                    (std::format!("{a}{p}"), path)
                }),
        ];
        (
            0..3usize,
            prop_oneof![
                Just("GET".into()),
                Just("HEAD".into()),
                "[A-Za-z!#$%&'*+.^_`|~-]{1,10}"
            ],
            target,
            any::<bool>(),
            prop::collection::vec(field(), 0..8),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(
                |(leading, method, (target, path), http10, mut headers, at, lf)| {
                    if !http10 {
                        let at = at.index(headers.len() + 1);
                        headers.insert(at, ("Host".into(), " ", "example.com".into(), "", false));
                    }
                    Spec {
                        leading_empty_lines: leading,
                        method,
                        target,
                        path,
                        http10,
                        headers,
                        lf_only_last: lf,
                    }
                },
            )
    }

    /// Fragments that steer random input towards the parser's interesting states.
    fn noisy_head() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"GET "[..]),
            Just(&b"/a?b "[..]),
            Just(&b"http://h/x "[..]),
            Just(&b"HTTP/1.1"[..]),
            Just(&b"HTTP/2.0"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"Host: h"[..]),
            Just(&b"Content-Length: 0"[..]),
            Just(&b"Connection: close"[..]),
            Just(&b": "[..]),
            Just(&b" "[..]),
            Just(&b"\t"[..]),
            Just(&b"\0"[..]),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..600)) {
            let tight = Limits { max_request_line: 32, max_head: 128 };
            let _ = parse_request(&buf, &HOST);
            let _ = parse_request(&buf, &tight);
        }

        #[test]
        fn noisy_heads_never_panic_and_never_overrun(buf in noisy_head()) {
            if let Ok(Status::Complete((_, n))) = parse_request(&buf, &HOST) {
                prop_assert!(n <= buf.len());
            }
        }

        #[test]
        fn noisy_heads_give_the_same_verdict_for_every_prefix(buf in noisy_head()) {
            let full = parse_request(&buf, &HOST);
            for cut in 0..buf.len() {
                match parse_request(&buf[..cut], &HOST) {
                    Ok(Status::Partial) => {}
                    Err(e) => prop_assert_eq!(Err(e), full.clone().map(|_| ())),
                    Ok(Status::Complete((r, n))) => {
                        // A complete head in a prefix is the same head in the whole.
                        let Ok(Status::Complete((whole, m))) = parse_request(&buf, &HOST) else {
                            panic!("prefix complete, whole not");
                        };
                        prop_assert_eq!(n, m);
                        prop_assert_eq!(r, whole);
                    }
                }
            }
        }

        #[test]
        fn encode_then_parse_round_trips(spec in spec(), trailing in prop::collection::vec(any::<u8>(), 0..16)) {
            let buf = spec.encode();
            let Ok(Status::Complete((r, n))) = parse_request(&buf, &HOST) else {
                panic!("encoded head did not parse");
            };
            prop_assert_eq!(n, buf.len());
            spec.check(&r);
            // Bytes after the head (a pipelined request) change nothing.
            let more = [&buf[..], &trailing].concat();
            let Ok(Status::Complete((r2, n2))) = parse_request(&more, &HOST) else {
                panic!("trailing bytes broke the head");
            };
            prop_assert_eq!(n2, buf.len());
            prop_assert_eq!(r2, r);
        }

        #[test]
        fn growing_prefixes_are_partial_until_the_head_is_whole(spec in spec()) {
            // The caller re-parses its accumulated buffer after every read; try every split.
            let buf = spec.encode();
            for cut in 0..buf.len() {
                prop_assert_eq!(parse_request(&buf[..cut], &HOST), Ok(Status::Partial), "cut at {}", cut);
            }
            let Ok(Status::Complete((r, n))) = parse_request(&buf, &HOST) else {
                panic!("whole head not complete");
            };
            prop_assert_eq!(n, buf.len());
            spec.check(&r);
        }
    }
}
