//! `response_head`: arbitrary bytes into the client's response head parser
//! ([`parse_response`]), as the answer to a GET and to a HEAD.
//!
//! Input: the bytes a server sent, as they are.
//!
//! Properties:
//! - no panic;
//! - a prefix of an accepted head is `Partial` (incomplete input is never an error), a prefix
//!   of a rejected one is `Partial` or the same error (the scanner decides left to right), and
//!   the head alone parses the same as the head with what follows it;
//! - an accepted head is well-formed as RFC 9112 asks (no bare CR, no obs-fold, no control
//!   byte, `name: value` lines with token names, at most `MAX_FIELDS` of them, a status in
//!   100..=599 but 101);
//! - what the client acts on agrees with a plain reading of the same lines, written here
//!   without the core's code: the framing (RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304;
//!   `Transfer-Encoding: chunked` never together with `Content-Length`; equal
//!   `Content-Length` values only), persistence (RFC 9112 §9.3), the validators kept, and
//!   `Response::header` finding the first field of each name;
//! - both directions agree: the parsed view written back canonically (from the plain line
//!   reading) parses to the same response, and the typed head the parser filled (`response.head`, the one `ResponseHead`
//!   the server encodes with) encodes to bytes that parse back to the same head, every field;
//! - the resume decision (`plan`) for the whole file and for ranges from a few offsets obeys
//!   RFC 9110 §14 (append only a 206 that starts where asked, reaches the end and agrees with
//!   its `Content-Length`; complete only a 416 naming the size already saved);
//! - a SHA-256 digest the client accepts (any bytes as the value of `Repr-Digest` or
//!   `Digest`) reads back the same from its canonical base64, among other members.

use satchel_core::client::digest::{from_dictionary, from_legacy, whole_file_sha256, Sha256};
use satchel_core::client::head::MAX_FIELDS;
use satchel_core::client::ResumeError;
use satchel_core::client::{parse_response, plan, ContentRange, Framing, Plan, Response};
use satchel_core::Status;

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    for head_request in [false, true] {
        check_with(data, head_request);
    }
    // The digest fields' values, as any bytes.
    for parse in [from_dictionary, from_legacy] {
        if let Ok(Some(digest)) = parse(data) {
            digest_round_trip(&digest);
        }
    }
}

/// A digest the client accepted, written back canonically, reads the same in both field forms.
fn digest_round_trip(digest: &Sha256) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in digest.chunks(3) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let dictionary = format!("sha-512=:AA==:, sha-256=:{b64}:;p=1");
    assert_eq!(from_dictionary(dictionary.as_bytes()), Ok(Some(*digest)));
    let legacy = format!("MD5=x, SHA-256={b64}");
    assert_eq!(from_legacy(legacy.as_bytes()), Ok(Some(*digest)));
}

fn check_with(data: &[u8], head_request: bool) {
    let verdict = parse_response(data, head_request);
    match verdict {
        Ok(Status::Complete((response, n))) => {
            assert!(n > 0 && n <= data.len(), "took {n} of {} bytes", data.len());
            assert_eq!(
                parse_response(&data[..n], head_request),
                verdict,
                "the head alone parses differently"
            );
            for k in [n - 1, n / 2, 1] {
                if k < n {
                    assert_eq!(
                        parse_response(&data[..k], head_request),
                        Ok(Status::Partial),
                        "prefix of {k} bytes of an accepted head"
                    );
                }
            }
            agrees_with_model(&response, &data[..n], head_request);
            reencodes_the_same(&response, head_request);
            server_head_round_trip(&response);
            let _ = whole_file_sha256(&response);
            plans(&response);
        }
        Ok(Status::Partial) => {
            for k in [data.len() / 2, 1] {
                if k < data.len() {
                    assert_eq!(
                        parse_response(&data[..k], head_request),
                        Ok(Status::Partial)
                    );
                }
            }
        }
        Err(e) => {
            for k in [data.len().saturating_sub(1), data.len() / 2, 1] {
                if k < data.len() {
                    let got = parse_response(&data[..k], head_request);
                    assert!(
                        got == Ok(Status::Partial) || got == Err(e),
                        "prefix of {k} bytes gives {got:?}, the whole {e:?}"
                    );
                }
            }
        }
    }
}

/// Parses `buf`, which must be exactly one complete head; `what` names it in a failure.
fn parse_whole<'b>(buf: &'b [u8], head_request: bool, what: &str) -> Response<'b> {
    match parse_response(buf, head_request) {
        Ok(Status::Complete((r, n))) if n == buf.len() => r,
        other => panic!("{what} {:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

/// `parse` → canonical form → `parse` gives the same response and the same fields. The core
/// has one emitter (`ResponseHead::encode`, checked below), which writes only the typed head;
/// the wire-only parts (version, reason, unknown fields, spacing) are written back here from
/// the plain line reading, without the core's code.
fn reencodes_the_same(r: &Response<'_>, head_request: bool) {
    let names = |r: &Response<'_>| {
        lines(r.fields)
            .into_iter()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let colon = l.iter().position(|&b| b == b':').expect("a colon");
                (l[..colon].to_vec(), trim_ows(&l[colon + 1..]).to_vec())
            })
            .collect::<Vec<_>>()
    };
    let mut buf = format!("HTTP/1.{} {:03} ", r.minor_version, r.head.status.as_u16()).into_bytes();
    buf.extend_from_slice(r.reason);
    buf.extend_from_slice(b"\r\n");
    for (name, value) in names(r) {
        buf.extend_from_slice(&[&name[..], b": ", &value, b"\r\n"].concat());
    }
    buf.extend_from_slice(b"\r\n");
    let again = parse_whole(&buf, head_request, "re-encoded head");
    assert_eq!(
        Response {
            fields: r.fields,
            ..again
        },
        *r,
        "re-encoded head parses differently"
    );
    assert_eq!(names(&again), names(r));
}

/// The one head type's round trip from the other end: whatever head the client's parser
/// reads, the server's encoder writes so that it parses back to the same head.
fn server_head_round_trip(r: &Response<'_>) {
    let head = r.head;
    let mut buf = vec![0; head.encoded_len()];
    assert_eq!(head.encode(&mut buf), Ok(buf.len()));
    let back = parse_whole(&buf, false, "the server's head");
    assert_eq!(back.head, head);
    assert_eq!(back.reason, head.status.reason().as_bytes());
    if head.connection_close {
        assert!(!back.keep_alive);
    }
}

/// Strips `OWS = *( SP / HTAB )` from both ends (RFC 9110 §5.6.3).
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The lines of a complete head, line ends removed; panics on a bare CR.
fn lines(head: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = head;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!line.contains(&b'\r'), "bare CR accepted");
        out.push(line);
        rest = &rest[lf + 1..];
    }
    assert!(
        rest.is_empty(),
        "bytes after the empty line counted in the head"
    );
    out
}

fn agrees_with_model(r: &Response<'_>, head: &[u8], head_request: bool) {
    let lines = lines(head);
    let (status_line, fields) = lines.split_first().expect("a status line");
    assert_eq!(
        fields.last(),
        Some(&&b""[..]),
        "head does not end with an empty line"
    );
    let fields = &fields[..fields.len() - 1];
    assert!(
        fields.len() <= MAX_FIELDS,
        "{} fields accepted",
        fields.len()
    );

    // Status line: "HTTP/1.d SP 3DIGIT [SP reason]".
    assert!(status_line.starts_with(b"HTTP/1.") && status_line.len() >= 12);
    assert_eq!(r.minor_version, status_line[7] - b'0');
    let code: u16 = std::str::from_utf8(&status_line[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("three digits");
    assert_eq!(r.head.status, code);
    assert!((100..=599).contains(&code) && code != 101);

    let mut lengths = Vec::new();
    let mut chunked = 0;
    let mut close = false;
    let mut keep_alive = false;
    let mut etag = None;
    let mut ranges = 0;
    for line in fields {
        let colon = line.iter().position(|&b| b == b':').expect("a colon");
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        assert!(!name.is_empty(), "empty field name");
        assert!(
            name.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "field name {name:?} accepted (space before colon or obs-fold?)"
        );
        assert!(
            value
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
            "control byte in a field value accepted"
        );
        let first = fields
            .iter()
            .find(|l| {
                l.len() > name.len()
                    && l[..name.len()].eq_ignore_ascii_case(name)
                    && l[name.len()] == b':'
            })
            .map(|l| trim_ows(&l[name.len() + 1..]));
        assert_eq!(r.header(name), first, "header({name:?})");
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let items = || value.split(|&b| b == b',').map(trim_ows);
        if is("content-length") {
            for item in items() {
                let n: u64 = std::str::from_utf8(item)
                    .ok()
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .expect("a Content-Length that is not a number was accepted");
                lengths.push(n);
            }
        } else if is("transfer-encoding") {
            for item in items().filter(|i| !i.is_empty()) {
                assert!(
                    item.eq_ignore_ascii_case(b"chunked"),
                    "coding {item:?} accepted"
                );
                chunked += 1;
            }
        } else if is("connection") {
            for item in items() {
                close |= item.eq_ignore_ascii_case(b"close");
                keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is("etag") {
            etag = Some(value);
        } else if is("content-range") {
            ranges += 1;
        }
    }
    assert!(chunked <= 1, "chunked twice accepted");
    assert!(
        lengths.windows(2).all(|w| w[0] == w[1]),
        "differing Content-Length values accepted: {lengths:?}"
    );
    let no_body = head_request || code < 200 || code == 204 || code == 304;
    let framing = if no_body {
        Framing::Empty
    } else {
        assert!(
            chunked == 0 || lengths.is_empty(),
            "Transfer-Encoding with Content-Length accepted"
        );
        match (chunked, lengths.first()) {
            (1, _) => Framing::Chunked,
            (_, Some(&n)) => Framing::Length(n),
            _ => Framing::UntilClose,
        }
    };
    assert_eq!(r.framing, framing, "framing");
    let persistent = if r.minor_version >= 1 {
        !close
    } else {
        keep_alive && !close
    };
    assert_eq!(
        r.keep_alive,
        persistent && framing != Framing::UntilClose,
        "keep-alive"
    );
    assert_eq!(r.head.etag, etag);
    assert!(ranges <= 1, "two Content-Range fields accepted");
    assert_eq!(r.head.content_range.is_some(), ranges == 1);
    match r.head.content_range {
        Some(ContentRange::Bytes {
            first,
            last,
            complete,
        }) => {
            assert!(first <= last && complete.is_none_or(|c| last < c));
        }
        Some(ContentRange::Unsatisfied { .. }) | None => {}
    }
}

/// What a download makes of the response (RFC 9110 §14 as `client::resume` applies it), for a
/// request of the whole file and for ranges from a few offsets.
fn plans(r: &Response<'_>) {
    let mut offsets = vec![None, Some(0), Some(1)];
    match r.head.content_range {
        Some(ContentRange::Bytes { first, .. }) => offsets.push(Some(first)),
        Some(ContentRange::Unsatisfied { complete }) => offsets.push(Some(complete)),
        None => {}
    }
    for asked in offsets {
        let decided = plan(asked, r);
        match decided {
            Ok(Plan::Write { total }) => {
                assert!(
                    !matches!(r.head.status.as_u16(), 206 | 416),
                    "{decided:?} for a {}",
                    r.head.status
                );
                if let Framing::Length(n) = r.framing {
                    assert_eq!(total, Some(n));
                }
            }
            Ok(Plan::Append { offset, total }) => {
                assert_eq!((r.head.status.as_u16(), Some(offset)), (206, asked));
                let Some(ContentRange::Bytes {
                    first,
                    last,
                    complete,
                }) = r.head.content_range
                else {
                    panic!("append without a byte range");
                };
                assert_eq!(first, offset);
                let end = last.saturating_add(1);
                assert_eq!(total, Some(complete.unwrap_or(end)));
                assert_eq!(total, Some(end), "a range that does not reach the end");
                if let Framing::Length(n) = r.framing {
                    assert_eq!(n, last - first + 1, "Content-Length against Content-Range");
                }
            }
            Ok(Plan::Complete) => {
                assert_eq!(r.head.status, 416);
                assert_eq!(
                    r.head.content_range.map(|c| match c {
                        ContentRange::Unsatisfied { complete } => Some(complete),
                        ContentRange::Bytes { .. } => None,
                    }),
                    Some(asked)
                );
            }
            Ok(Plan::Restart) => assert!(r.head.status == 416 && asked.is_some()),
            Err(ResumeError::Unasked) => {
                assert!(matches!(r.head.status.as_u16(), 206 | 416) && asked.is_none());
            }
            Err(_) => assert_eq!(r.head.status, 206),
        }
    }
}
