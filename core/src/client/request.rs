//! The request head the client sends (RFC 9112 §3, RFC 9110 §14.2, §13.1.5).
//!
//! ```text
//! GET /target HTTP/1.1
//! Host: host[:port]
//! User-Agent: satchel-client/VERSION
//! Accept: */*
//! Range: bytes=N-            (resuming)
//! If-Range: "etag" | date    (resuming, when the validator is known)
//! If-None-Match: "etag"      (mirroring: the copy already saved)
//! If-Modified-Since: date    (mirroring: the copy already saved)
//! Connection: close          (last request on this connection)
//! ```
//!
//! Every value is checked before it is written, so a hostile validator or name echoed back
//! from a server can never inject a header line.

use core::fmt;

/// `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("satchel-client/", env!("CARGO_PKG_VERSION"));

/// A GET request to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The `Host` header value: `host` or `host:port` (IPv6 literals in brackets).
    pub host: &'a str,
    /// The origin-form target, already percent-encoded: starts with `/`.
    pub target: &'a str,
    /// `Accept` value (`*/*` when `None`).
    pub accept: Option<&'a str>,
    /// Ask for the bytes from this offset on (`Range: bytes=N-`).
    pub range_from: Option<u64>,
    /// `If-Range` validator (an `ETag` or a `Last-Modified` date), only sent with a range.
    pub if_range: Option<&'a str>,
    /// `If-None-Match`: the `ETag` of a copy already saved (a mirror asking what changed).
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`: the `Last-Modified` of a copy already saved.
    pub if_modified_since: Option<&'a str>,
    /// Whether to ask the server to keep the connection open.
    pub keep_alive: bool,
}

/// Why a request could not be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A value holds bytes that cannot appear in a header (CR, LF, controls), or the target
    /// is not origin-form.
    Invalid,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid => "request value not allowed in a header",
            Self::BufferTooSmall => "request head does not fit the buffer",
        })
    }
}

impl core::error::Error for EncodeError {}

impl Request<'_> {
    /// A plain GET of `target` on `host`, kept alive.
    pub fn get<'a>(host: &'a str, target: &'a str) -> Request<'a> {
        Request {
            host,
            target,
            accept: None,
            range_from: None,
            if_range: None,
            if_none_match: None,
            if_modified_since: None,
            keep_alive: true,
        }
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    ///
    /// # Errors
    /// [`EncodeError::Invalid`] as for `encode`.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let mut counter = Counter(0);
        self.write(&mut counter)?;
        Ok(counter.0)
    }

    /// Writes the request head into `buf`, returning its length.
    ///
    /// # Errors
    /// [`EncodeError::Invalid`] when a value could break the head (CR, LF or another control
    /// byte; a target not starting with `/`; an empty host); [`EncodeError::BufferTooSmall`]
    /// when `buf` cannot hold it.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut out = SliceWriter { buf, len: 0 };
        self.write(&mut out)?;
        Ok(out.len)
    }

    fn write(&self, w: &mut dyn fmt::Write) -> Result<(), EncodeError> {
        let host_ok = !self.host.is_empty()
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"/@?#\\".contains(&b));
        let target_ok =
            self.target.starts_with('/') && self.target.bytes().all(|b| b.is_ascii_graphic());
        let value_ok = |v: &str| v.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !host_ok
            || !target_ok
            || !self.accept.is_none_or(value_ok)
            || !self.if_range.is_none_or(value_ok)
            || !self.if_none_match.is_none_or(value_ok)
            || !self.if_modified_since.is_none_or(value_ok)
        {
            return Err(EncodeError::Invalid);
        }
        let full = |_| EncodeError::BufferTooSmall;
        write!(
            w,
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: {}\r\n",
            self.target,
            self.host,
            self.accept.unwrap_or("*/*")
        )
        .map_err(full)?;
        if let Some(from) = self.range_from {
            write!(w, "Range: bytes={from}-\r\n").map_err(full)?;
            if let Some(v) = self.if_range {
                write!(w, "If-Range: {v}\r\n").map_err(full)?;
            }
        }
        if let Some(v) = self.if_none_match {
            write!(w, "If-None-Match: {v}\r\n").map_err(full)?;
        }
        if let Some(v) = self.if_modified_since {
            write!(w, "If-Modified-Since: {v}\r\n").map_err(full)?;
        }
        if !self.keep_alive {
            w.write_str("Connection: close\r\n").map_err(full)?;
        }
        w.write_str("\r\n").map_err(full)
    }
}

struct Counter(usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(r: &Request<'_>) -> Result<std::string::String, EncodeError> {
        let mut buf = [0u8; 512];
        let n = r.encode(&mut buf)?;
        assert_eq!(r.encoded_len(), Ok(n));
        Ok(std::string::String::from_utf8(buf[..n].to_vec()).expect("ascii"))
    }

    #[test]
    fn plain_get() {
        let head = encode(&Request::get("127.0.0.1:8080", "/a%20b")).expect("encodes");
        assert_eq!(
            head,
            std::format!(
                "GET /a%20b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n\r\n"
            )
        );
    }

    #[test]
    fn resume_and_close() {
        let r = Request {
            range_from: Some(100),
            if_range: Some("\"v1\""),
            accept: Some("text/plain"),
            keep_alive: false,
            ..Request::get("h", "/f")
        };
        let head = encode(&r).expect("encodes");
        assert!(head.contains("\r\nRange: bytes=100-\r\nIf-Range: \"v1\"\r\n"));
        assert!(head.contains("\r\nAccept: text/plain\r\n"));
        assert!(head.ends_with("\r\nConnection: close\r\n\r\n"));
        // If-Range without Range is meaningless and not sent.
        let r = Request {
            if_range: Some("\"v1\""),
            ..Request::get("h", "/f")
        };
        assert!(!encode(&r).expect("encodes").contains("If-Range"));
    }

    #[test]
    fn conditional_get() {
        let r = Request {
            if_none_match: Some("\"v1\""),
            if_modified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            ..Request::get("h", "/f")
        };
        let head = encode(&r).expect("encodes");
        assert!(head.contains(
            "\r\nIf-None-Match: \"v1\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        ));
    }

    #[test]
    fn refuses_injection() {
        for r in [
            Request::get("h\r\nX: y", "/f"),
            Request::get("", "/f"),
            Request::get("h", "f"),
            Request::get("h", "/a b"),
            Request {
                range_from: Some(1),
                if_range: Some("\"x\"\r\nEvil: 1"),
                ..Request::get("h", "/f")
            },
            Request {
                if_none_match: Some("\"x\"\nEvil: 1"),
                ..Request::get("h", "/f")
            },
            Request {
                if_modified_since: Some("Sun\r"),
                ..Request::get("h", "/f")
            },
        ] {
            assert_eq!(encode(&r), Err(EncodeError::Invalid), "{r:?}");
        }
    }

    #[test]
    fn small_buffer() {
        let mut buf = [0u8; 20];
        assert_eq!(
            Request::get("h", "/f").encode(&mut buf),
            Err(EncodeError::BufferTooSmall)
        );
    }

    /// What the client encodes, the server's parser reads back field for field (the request
    /// round trip: one HTTP layer, both directions).
    mod round_trip {
        use super::*;
        use crate::http::method::Method;
        use crate::http::request::{parse_request, Limits};
        use crate::Status;
        use proptest::prelude::*;

        fn arb_value() -> impl Strategy<Value = std::string::String> {
            "[!-~]([ -~]{0,30}[!-~])?"
        }

        proptest! {
            #[test]
            fn encode_then_parse(
                host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
                target in "/[A-Za-z0-9%/._~!$&'()*+,;=:@?-]{0,60}",
                accept in proptest::option::of("[a-z*]{1,8}/[a-z*+.-]{1,12}"),
                range_from in proptest::option::of(any::<u64>()),
                if_range in proptest::option::of(arb_value()),
                if_none_match in proptest::option::of(arb_value()),
                if_modified_since in proptest::option::of(arb_value()),
                keep_alive in any::<bool>(),
            ) {
                let r = Request {
                    host: &host,
                    target: &target,
                    accept: accept.as_deref(),
                    range_from,
                    if_range: if_range.as_deref(),
                    if_none_match: if_none_match.as_deref(),
                    if_modified_since: if_modified_since.as_deref(),
                    keep_alive,
                };
                let mut buf = [0u8; 1024];
                let n = r.encode(&mut buf).unwrap();
                let verdict = parse_request(&buf[..n], &Limits::host());
                let Ok(Status::Complete((p, used))) = verdict else {
                    panic!("encoded request rejected: {verdict:?}");
                };
                prop_assert_eq!(used, n);
                prop_assert_eq!(p.method, Method::Get);
                prop_assert_eq!(p.target, target.as_bytes());
                prop_assert_eq!(p.host, Some(host.as_bytes()));
                prop_assert_eq!(p.accept, Some(accept.as_deref().unwrap_or("*/*").as_bytes()));
                let range = range_from.map(|from| std::format!("bytes={from}-"));
                prop_assert_eq!(p.range, range.as_deref().map(str::as_bytes));
                prop_assert_eq!(p.if_range, if_range.as_deref().filter(|_| range_from.is_some()).map(str::as_bytes));
                prop_assert_eq!(p.if_none_match, if_none_match.as_deref().map(str::as_bytes));
                prop_assert_eq!(p.if_modified_since, if_modified_since.as_deref().map(str::as_bytes));
                prop_assert_eq!(p.keep_alive, keep_alive);
            }
        }
    }
}
