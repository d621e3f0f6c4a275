//! `range_and_conditionals`: `Range`, `If-Range`, `If-None-Match` and `If-Modified-Since`
//! against a file, evaluated directly and through a server connection.
//!
//! Input ([`Reader`] encoding): the file size (a small size, one above the cache limit, or 0),
//! its modification time (none, a plausible one, any `u64`), a size for the direct check only
//! (any `u64`), the method of the first request, then four fields in the order above. Each
//! field is absent, raw bytes (control bytes other than HTAB replaced, so that the request
//! stays well-formed), or *generated* from a few choices (a range relative to the size, the
//! file's own entity-tag, weak or in a list, a date one second around `Last-Modified`, ...).
//! A generated field carries its expected meaning, computed here from PROTOCOL.md without the
//! core's parsers.
//!
//! Properties:
//! - no panic;
//! - [`evaluate`]: a partial answer has `first <= last < size`; 416 and 206 only with a
//!   `Range`, 304 only with `If-None-Match` or `If-Modified-Since`; non-GET/HEAD is always the
//!   full response; when every present field was generated, exactly the model's decision;
//! - through [`Connection`](satchel_core::serve::Connection) (the request sent twice, GET and
//!   HEAD in either order, so one is a cache miss and one a hit for small files): the status
//!   is 200, 206, 304 or 416 and is the one [`evaluate`] gave; `Content-Range` is
//!   `bytes first-last/size` on a 206 (with a matching `Content-Length` and exactly those bytes
//!   of the file), `bytes */size` on a 416 and absent otherwise; a 200 carries the whole file;
//!   a 304 has no body; HEAD gets the same header fields as GET (but `Cache-Status`), decided
//!   without the range (RFC 9110 §14.2: a HEAD with `Range` is a plain HEAD).

use satchel_core::http::conditional::{evaluate, Conditions, Decision, Validators};
use satchel_core::http::date::{format_http_date, MAX_HTTP_DATE};
use satchel_core::http::range::{evaluate_range, RangeRequest};
use satchel_core::serve::Config;

use super::site::{mem_site, read_response, Peer, Response, MAX_CACHED};
use super::Reader;

/// A decoded field: its value and, when generated, what it must mean.
#[derive(Debug, Clone)]
struct Field<T> {
    value: Vec<u8>,
    expect: Option<T>,
}

/// The fields of one input.
#[derive(Debug, Clone, Default)]
struct Fields {
    range: Option<Field<RangeRequest>>,
    if_range: Option<Field<bool>>,
    if_none_match: Option<Field<bool>>,
    if_modified_since: Option<Field<bool>>,
}

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let size = match r.below(4) {
        0 => u64::from(r.u8()),
        1 => u64::from(r.u16() % 2048),
        2 => MAX_CACHED as u64 + 1 + u64::from(r.u8()),
        _ => 0,
    };
    let modified = match r.below(3) {
        0 => None,
        1 => Some(1_600_000_000 + u64::from(r.u32() % 400_000_000)),
        _ => Some(r.u64()),
    };
    let other_size = r.u64();
    let head_first = r.bool();

    let site = mem_site(Config::host());
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let snap = site.source.put(b"f.bin", content, modified);
    let etag = snap.etag();
    let etag_text = etag.as_bytes().to_vec();

    let fields = Fields {
        range: field(&mut r, |r| gen_range(r, size)),
        if_range: field(&mut r, |r| gen_if_range(r, &etag_text, modified)),
        if_none_match: field(&mut r, |r| gen_if_none_match(r, &etag_text)),
        if_modified_since: field(&mut r, |r| gen_date_not_after(r, modified)),
    };
    let conditions = Conditions {
        if_none_match: fields.if_none_match.as_ref().map(|f| f.value.as_slice()),
        if_modified_since: fields
            .if_modified_since
            .as_ref()
            .map(|f| f.value.as_slice()),
        if_range: fields.if_range.as_ref().map(|f| f.value.as_slice()),
        range: fields.range.as_ref().map(|f| f.value.as_slice()),
    };
    let validators = Validators {
        etag: &etag,
        last_modified: modified,
    };

    // The decision alone, for the real size and for any size.
    let decision = evaluate(&conditions, &validators, size, true);
    decision_invariants(&conditions, &validators, size, decision);
    if let Some(expected) = model(&fields) {
        assert_eq!(decision, expected, "{fields:?} on {size} bytes");
    }
    let other = evaluate(&conditions, &validators, other_size, true);
    decision_invariants(&conditions, &validators, other_size, other);
    if let Some(range) = conditions.range {
        range_invariants(evaluate_range(range, other_size), other_size);
    }

    // The same through a connection: GET and HEAD, one after the other on one connection.
    let mut peer = Peer::new(&site);
    let methods: [&[u8]; 2] = if head_first {
        [b"HEAD", b"GET"]
    } else {
        [b"GET", b"HEAD"]
    };
    for method in methods {
        peer.pending
            .extend_from_slice(&request(method, &conditions));
    }
    peer.run();
    // A HEAD has no range (RFC 9110 §14.2): it is decided as the same request without one.
    let head_conditions = Conditions {
        range: None,
        ..conditions
    };
    let head_decision = evaluate(&head_conditions, &validators, size, true);
    let mut rest = peer.out.as_slice();
    let mut answers = Vec::new();
    for method in methods {
        let (response, used) = read_response(rest, method == b"HEAD")
            .unwrap_or_else(|| panic!("no complete response to {method:?}"));
        rest = &rest[used..];
        let expected = if method == b"HEAD" {
            head_decision
        } else {
            decision
        };
        check_response(&response, expected, size, &snap.data, &etag_text, method);
        answers.push(response);
    }
    assert!(rest.is_empty(), "bytes after the responses");
    let fields_of = |r: &Response| {
        let mut h = r.headers.clone();
        h.retain(|(n, _)| n != "Cache-Status");
        h
    };
    if head_decision == decision {
        assert_eq!(
            fields_of(&answers[0]),
            fields_of(&answers[1]),
            "HEAD and GET differ"
        );
    }
}

/// Reads one field: absent, raw (sanitised) or generated.
fn field<T>(
    r: &mut Reader<'_>,
    generate: impl FnOnce(&mut Reader<'_>) -> Field<T>,
) -> Option<Field<T>> {
    match r.below(3) {
        0 => None,
        1 => Some(Field {
            value: r
                .bytes()
                .iter()
                .map(|&b| {
                    if (b < 0x20 && b != b'\t') || b == 0x7f {
                        b'x'
                    } else {
                        b
                    }
                })
                .collect(),
            expect: None,
        }),
        _ => Some(generate(r)),
    }
}

/// A byte offset around the interesting points of a file of `size` bytes.
fn offset(r: &mut Reader<'_>, size: u64) -> u64 {
    match r.below(6) {
        0 => 0,
        1 => size.saturating_sub(1),
        2 => size,
        3 => size + 1,
        4 => u64::from(r.u8()),
        _ => r.u64(),
    }
}

fn gen_range(r: &mut Reader<'_>, size: u64) -> Field<RangeRequest> {
    use RangeRequest::{Full, Partial, Unsatisfiable};
    let kind = r.below(7);
    let a = offset(r, size);
    let b = offset(r, size);
    let int_range = |a: u64, b: Option<u64>| match b {
        Some(b) if b < a => Full,
        _ if a >= size => Unsatisfiable,
        b => Partial {
            first: a,
            last: b.map_or(size - 1, |b| b.min(size - 1)),
        },
    };
    let (value, expect) = match kind {
        0 => (format!("bytes={a}-{b}"), int_range(a, Some(b))),
        1 => (format!("bytes={a}-"), int_range(a, None)),
        2 => (
            format!("bytes=-{b}"),
            if b == 0 || size == 0 {
                Unsatisfiable
            } else {
                Partial {
                    first: size - b.min(size),
                    last: size - 1,
                }
            },
        ),
        3 => (format!("bytes={a}-{b}, {b}-"), Full),
        4 => (format!("items={a}-{b}"), Full),
        5 => (format!(" BYTES = {a}-{b} "), Full),
        _ => (format!("bytes=\t{a}-{b} ,"), int_range(a, Some(b))),
    };
    Field {
        value: value.into_bytes(),
        expect: Some(expect),
    }
}

fn gen_if_range(r: &mut Reader<'_>, etag: &[u8], modified: Option<u64>) -> Field<bool> {
    let (value, expect) = match r.below(5) {
        0 => (etag.to_vec(), true),
        1 => ([b"W/", etag].concat(), false),
        2 => (b"\"other\"".to_vec(), false),
        3 => {
            let t = around(r, modified);
            let (date, shown) = http_date(r, t);
            return Field {
                value: date,
                expect: shown.map(|shown| Some(shown) == modified),
            };
        }
        _ => (b"yesterday".to_vec(), false),
    };
    Field {
        value,
        expect: Some(expect),
    }
}

fn gen_if_none_match(r: &mut Reader<'_>, etag: &[u8]) -> Field<bool> {
    let (value, expect) = match r.below(6) {
        0 => (b"*".to_vec(), true),
        1 => (etag.to_vec(), true),
        2 => ([b"W/", etag].concat(), true),
        3 => ([b"\"a\", W/\"b,c\" ,", etag, b" "].concat(), true),
        4 => (b"\"a\", W/\"b\"".to_vec(), false),
        _ => ([b"\"a\" junk, ", etag].concat(), false),
    };
    Field {
        value,
        expect: Some(expect),
    }
}

/// `If-Modified-Since`: a date around the modification time; expected "not modified".
fn gen_date_not_after(r: &mut Reader<'_>, modified: Option<u64>) -> Field<bool> {
    let t = around(r, modified);
    let (value, shown) = http_date(r, t);
    Field {
        value,
        expect: shown.map(|shown| modified.is_some_and(|m| m <= shown)),
    }
}

/// `t` as an HTTP-date in one of the three forms RFC 9110 §5.6.7 makes recipients accept,
/// built from the IMF-fixdate by moving its fields (so independent of the core's parser), and
/// the time it stands for: `None` when the form cannot express it (an RFC 850 year outside
/// 1970-2069).
fn http_date(r: &mut Reader<'_>, t: u64) -> (Vec<u8>, Option<u64>) {
    const LONG_DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let imf = format_http_date(t);
    let shown = t.min(MAX_HTTP_DATE);
    let text = String::from_utf8_lossy(&imf).into_owned();
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (day_name, day, month, year, time) = (
        &text[0..3],
        &text[5..7],
        &text[8..11],
        &text[12..16],
        &text[17..25],
    );
    match r.below(3) {
        0 => (imf.to_vec(), Some(shown)),
        1 => {
            let day = day
                .strip_prefix('0')
                .map_or_else(|| day.to_owned(), |d| format!(" {d}"));
            (
                format!("{day_name} {month} {day} {time} {year}").into_bytes(),
                Some(shown),
            )
        }
        _ => {
            let long = LONG_DAYS
                .iter()
                .find(|d| d.starts_with(day_name))
                .copied()
                .unwrap_or("Sunday");
            let yy = &year[2..];
            let in_range = matches!(year.parse::<u32>(), Ok(1970..=2069));
            (
                format!("{long}, {day}-{month}-{yy} {time} GMT").into_bytes(),
                in_range.then_some(shown),
            )
        }
    }
}

/// A time one second around `modified` (or any time when there is none).
fn around(r: &mut Reader<'_>, modified: Option<u64>) -> u64 {
    let delta = r.below(4);
    match (modified, delta) {
        (Some(m), 0) => m.saturating_sub(1),
        (Some(m), 1) => m,
        (Some(m), 2) => m.saturating_add(1),
        _ => u64::from(r.u32()),
    }
}

/// RFC 9110 §13.2.2 as PROTOCOL.md narrows it, from the generated fields' meanings; `None`
/// when a field that matters was raw.
fn model(f: &Fields) -> Option<Decision> {
    if let Some(inm) = &f.if_none_match {
        if inm.expect? {
            return Some(Decision::NotModified);
        }
    } else if let Some(ims) = &f.if_modified_since {
        if ims.expect? {
            return Some(Decision::NotModified);
        }
    }
    let Some(range) = &f.range else {
        return Some(Decision::Full);
    };
    if let Some(if_range) = &f.if_range {
        if !if_range.expect? {
            return Some(Decision::Full);
        }
    }
    Some(match range.expect? {
        RangeRequest::Full => Decision::Full,
        RangeRequest::Partial { first, last } => Decision::Partial { first, last },
        RangeRequest::Unsatisfiable => Decision::Unsatisfiable,
    })
}

fn decision_invariants(c: &Conditions<'_>, v: &Validators<'_>, size: u64, d: Decision) {
    match d {
        Decision::Partial { first, last } => {
            assert!(first <= last && last < size, "{first}-{last} of {size}");
            assert!(c.range.is_some());
        }
        Decision::Unsatisfiable => assert!(c.range.is_some()),
        Decision::NotModified => {
            assert!(c.if_none_match.is_some() || c.if_modified_since.is_some());
        }
        Decision::Full => {}
    }
    assert_eq!(
        evaluate(c, v, size, false),
        Decision::Full,
        "conditional non-GET"
    );
}

fn range_invariants(r: RangeRequest, size: u64) {
    if let RangeRequest::Partial { first, last } = r {
        assert!(first <= last && last < size, "{first}-{last} of {size}");
    }
}

/// `METHOD /f.bin HTTP/1.1` with the conditions as fields.
fn request(method: &[u8], c: &Conditions<'_>) -> Vec<u8> {
    let mut req = [method, b" /f.bin HTTP/1.1\r\nHost: t\r\n"].concat();
    let fields: [(&[u8], Option<&[u8]>); 4] = [
        (b"Range", c.range),
        (b"If-Range", c.if_range),
        (b"If-None-Match", c.if_none_match),
        (b"If-Modified-Since", c.if_modified_since),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            req.extend_from_slice(name);
            req.extend_from_slice(b": ");
            req.extend_from_slice(value);
            req.extend_from_slice(b"\r\n");
        }
    }
    req.extend_from_slice(b"\r\n");
    req
}

fn check_response(
    response: &Response,
    decision: Decision,
    size: u64,
    data: &[u8],
    etag: &[u8],
    method: &[u8],
) {
    let get = method == b"GET";
    let expected_status = match decision {
        Decision::NotModified => 304,
        Decision::Full => 200,
        Decision::Partial { .. } => 206,
        Decision::Unsatisfiable => 416,
    };
    assert_eq!(response.status, expected_status, "{response:?}");
    let content_range = response.header("content-range");
    match decision {
        Decision::Full => {
            assert_eq!(content_range, None);
            assert_eq!(response.content_length(), Some(size));
            if get {
                assert!(response.body == data, "200 body differs from the file");
            }
        }
        Decision::Partial { first, last } => {
            let expected = format!("bytes {first}-{last}/{size}");
            assert_eq!(content_range, Some(expected.as_str()));
            assert_eq!(response.content_length(), Some(last - first + 1));
            if get {
                assert!(
                    response.body == data[first as usize..=last as usize],
                    "206 body differs from the file's bytes {first}-{last}"
                );
            }
        }
        Decision::Unsatisfiable => {
            let expected = format!("bytes */{size}");
            assert_eq!(content_range, Some(expected.as_str()));
        }
        Decision::NotModified => {
            assert_eq!(content_range, None);
            assert!(response.body.is_empty());
        }
    }
    if !get {
        assert!(response.body.is_empty(), "HEAD with a body");
    }
    if decision != Decision::Unsatisfiable {
        assert_eq!(response.header("etag").map(str::as_bytes), Some(etag));
    }
}
