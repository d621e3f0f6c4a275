//! `request_head`: arbitrary bytes into [`parse_request`].
//!
//! Input: the bytes of the receive buffer, as they are. Each input is parsed under the host
//! limits and under tiny ones (so that the limit paths are reached by short inputs).
//!
//! Properties:
//! - no panic;
//! - the verdict does not depend on how much of the input has arrived: a prefix of an accepted
//!   head is `Partial`, a prefix of a rejected one is `Partial` or the same error, and an
//!   accepted head parses the same with nothing after it;
//! - every accepted request re-encodes (canonical CRLF form) to bytes that parse to an equal
//!   [`Request`] taking exactly those bytes;
//! - an accepted request satisfies the documented invariants (path starts with `/` and is part
//!   of the target, at most `MAX_HEADERS` fields, Host present in HTTP/1.1, `keep_alive` as
//!   RFC 9112 §9.3 says) and an error maps to 400, 405, 414, 431 or 505.

use satchel_core::http::method::Method;
use satchel_core::http::request::{parse_request, Limits, Request, Version, MAX_HEADERS};
use satchel_core::Status;

/// The limits each input is parsed under.
const LIMITS: [Limits; 2] = [
    Limits::host(),
    Limits {
        max_request_line: 48,
        max_head: 160,
    },
];

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    for limits in &LIMITS {
        check_with(data, limits);
    }
}

fn check_with(data: &[u8], limits: &Limits) {
    let verdict = parse_request(data, limits);
    match &verdict {
        Ok(Status::Complete((request, n))) => {
            let n = *n;
            assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
            assert!(n <= limits.max_head, "accepted a head of {n} bytes");
            assert_eq!(
                parse_request(&data[..n], limits),
                verdict,
                "the head alone parses differently"
            );
            for k in prefixes(n) {
                assert_eq!(
                    parse_request(&data[..k], limits),
                    Ok(Status::Partial),
                    "prefix of {k} bytes of an accepted head"
                );
            }
            invariants(request);
            head_bytes_ok(&data[..n]);
            round_trip(request, limits);
        }
        Ok(Status::Partial) => {
            assert!(data.len() < limits.max_head, "Partial at the head limit");
            for k in prefixes(data.len()) {
                assert_eq!(parse_request(&data[..k], limits), Ok(Status::Partial));
            }
        }
        Err(e) => {
            assert!(
                matches!(e.status().as_u16(), 400 | 405 | 414 | 431 | 505),
                "{e:?} maps to {}",
                e.status()
            );
            for k in prefixes(data.len()) {
                let got = parse_request(&data[..k], limits);
                assert!(
                    got == Ok(Status::Partial) || got == Err(*e),
                    "prefix of {k} bytes gives {got:?}, the whole {e:?}"
                );
            }
        }
    }
}

/// A few prefix lengths below `n` (all of them would make the check quadratic).
fn prefixes(n: usize) -> impl Iterator<Item = usize> {
    let mut ks = [n.saturating_sub(1), n / 2, n / 3, 1];
    ks.sort_unstable();
    let mut last = None;
    ks.into_iter().filter(move |&k| {
        let fresh = k < n && last != Some(k);
        last = Some(k);
        fresh
    })
}

fn invariants(r: &Request<'_>) {
    assert!(r.path.starts_with(b"/"), "path {:?}", r.path);
    assert!(!r.path.contains(&b'?'), "query left in the path");
    assert!(r.headers.len() <= MAX_HEADERS);
    assert_eq!(r.method, Method::from_token(r.method_token));
    assert!(!r.target.is_empty() && !r.target.contains(&b' '));
    if r.version == Version::Http11 {
        assert!(r.host.is_some(), "HTTP/1.1 request without a host");
    }
    let has = |name: &[u8], option: &[u8]| {
        r.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(option))
    };
    let close = has(b"connection", b"close");
    let expected = match r.version {
        Version::Http11 => !close,
        Version::Http10 => !close && has(b"connection", b"keep-alive"),
    };
    assert_eq!(r.keep_alive, expected, "keep_alive");
    for h in &r.headers {
        assert!(!h.name.is_empty());
        assert!(!h.value.starts_with(b" ") && !h.value.ends_with(b" "));
        assert!(!h.value.iter().any(|&b| b == b'\r' || b == b'\n'));
    }
    assert_eq!(r.range, r.header(b"range"));
    assert_eq!(r.if_none_match, r.header(b"if-none-match"));

    // The framing rows of PROTOCOL.md, checked on what was accepted.
    let named = |name: &'static [u8]| {
        r.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    assert_eq!(
        named(b"transfer-encoding").count(),
        0,
        "Transfer-Encoding accepted"
    );
    for h in named(b"content-length") {
        assert!(
            h.value
                .iter()
                .all(|&b| matches!(b, b'0' | b',' | b' ' | b'\t')),
            "Content-Length {:?} accepted",
            h.value
        );
    }
    let hosts = named(b"host").count();
    assert!(hosts <= 1, "{hosts} Host fields accepted");
    if r.version == Version::Http11 {
        assert_eq!(hosts, 1, "HTTP/1.1 without a Host field accepted");
    }
}

/// PROTOCOL.md: "a bare CR anywhere: 400"; and no control byte but HTAB outside line ends.
fn head_bytes_ok(head: &[u8]) {
    for (i, &b) in head.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR accepted at {i}");
        }
        assert!(
            b >= 0x20 && b != 0x7f || matches!(b, b'\t' | b'\r' | b'\n'),
            "control byte {b:#04x} accepted at {i}"
        );
    }
}

/// The canonical wire form of `r`: single spaces, `name: value`, CRLF line ends.
pub fn encode(r: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(r.method_token);
    out.push(b' ');
    out.extend_from_slice(r.target);
    out.push(b' ');
    out.extend_from_slice(r.version.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &r.headers {
        out.extend_from_slice(h.name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn round_trip(r: &Request<'_>, limits: &Limits) {
    let wire = encode(r);
    // Bare LFs become CRLFs, so the canonical form may be longer than the original.
    let relaxed = Limits {
        max_head: limits.max_head.max(wire.len()),
        ..*limits
    };
    match parse_request(&wire, &relaxed) {
        Ok(Status::Complete((again, n))) => {
            assert_eq!(n, wire.len(), "re-encoded head not consumed whole");
            assert_eq!(&again, r, "re-encoded head parses to another request");
        }
        other => panic!(
            "re-encoded head {:?} does not parse: {other:?}",
            String::from_utf8_lossy(&wire)
        ),
    };
}
