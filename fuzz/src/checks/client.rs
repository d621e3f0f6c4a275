//! `client`: server answers into the client's download state machine ([`Exchange`] and
//! [`plan`]), as a download or a resumed download would meet them.
//!
//! Input ([`Reader`] encoding): the file on the server (its length and a seed for its bytes),
//! how much of it the client already saved (none, or a `Range` from there), the receive
//! buffer's size and the sizes of the reads, then the answer: either *generated*, an honest
//! server's answer (200 with the file, 206 with the rest, 416 when it is all there, a changed
//! file) in a framing chosen by the input (`Content-Length`, chunked with chosen chunk sizes,
//! extensions and trailers, until close, interim 100, bare LF line ends), possibly corrupted
//! at one place (a byte changed, inserted or removed, or the answer cut short); or raw bytes.
//!
//! The model reads the same bytes on its own: the head with the core's parser (the
//! `response_head` target checks it), the body with a plain decoder of `Content-Length`,
//! chunked (RFC 9112 §7.1) and until-close framing written here.
//!
//! Properties:
//! - no panic; consumed counts stay within the input; `body_received` counts the body;
//! - a response the exchange reports complete is exactly the model's well-framed body, and it
//!   ends exactly where the model's does (no byte of what was read is left over);
//! - an honest, intact answer whose head fits the buffer completes, and the saved file is the
//!   server's file byte for byte;
//! - a "complete" download (exchange done, plan accepted, size as announced) is the model's
//!   body put where the plan says; from an honest answer, that is the server's file;
//! - the download session ([`Download`], what satchel-client and a board run) fed the same
//!   reads saves exactly such a complete download, and only that.

use satchel_core::client::digest::whole_file_sha256;
use satchel_core::client::session::{self, Action, Config, Download, Resume};
use satchel_core::client::{parse_response, plan, Event, Exchange, Framing, Plan, Url};
use satchel_core::time::{Duration, Instant};
use satchel_core::Status;

use super::Reader;

/// What the peer's reads deliver and the exchange made of them.
#[derive(Debug, Default)]
struct Outcome {
    /// The final status, once its head was read.
    status: Option<u16>,
    /// The body runs, joined.
    body: Vec<u8>,
    /// The exchange reported the response complete.
    done: bool,
    /// The exchange failed (head, framing, truncation, trailing bytes).
    error: bool,
    /// Bytes of the answer not yet read when the exchange reported the response complete.
    unread: usize,
}

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let len = usize::from(r.u16() % 3000);
    let seed = r.u8();
    let file: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect();
    let asked_from = match r.below(3) {
        0 => None,
        _ => Some(u64::from(r.u16()) % (len as u64 + 2)),
    };
    let capacity = 64 + usize::from(r.u16() % 2048);
    let reads: Vec<usize> = (0..4).map(|_| 1 + usize::from(r.u8())).collect();

    let (wire, honest) = if r.bool() {
        answer(&mut r, &file, asked_from)
    } else {
        (r.rest().to_vec(), false)
    };

    let got = run(&wire, capacity, &reads);
    let model = model_body(&wire);
    if got.done {
        let (body, end) = model.unwrap_or_else(|| {
            panic!(
                "a complete response the model finds ill-framed: {:?}",
                String::from_utf8_lossy(&wire)
            )
        });
        assert!(
            got.body == body,
            "the body delivered is not the well-framed body"
        );
        // The exchange ends a response where its framing does, with nothing left over among
        // the bytes it has seen (later ones would belong to the next response).
        assert_eq!(end, wire.len() - got.unread, "the response ended elsewhere");
    }
    if honest && heads_fit(&wire, capacity) {
        assert!(
            got.done,
            "an honest answer did not complete: {:?}",
            String::from_utf8_lossy(&wire[..wire.len().min(300)])
        );
    }

    // The session asks for a range only from a non-empty part within the file.
    let resumable = asked_from.is_none_or(|a| a > 0 && a as usize <= len);
    let session = resumable
        .then(|| run_session(&wire, capacity, &reads, asked_from, &file, false).0)
        .flatten();
    // The same answer to a conditional request (a mirror's If-None-Match): a 304 ends it with
    // nothing saved and "not modified"; any other answer does exactly what it did before.
    if asked_from.is_none() {
        let (conditional, not_modified) = run_session(&wire, capacity, &reads, None, &file, true);
        if not_modified {
            let status = match parse_response(skip_interim(&wire), false) {
                Ok(Status::Complete((r, _))) => Some(r.head.status.as_u16()),
                _ => None,
            };
            assert_eq!(status, Some(304), "\"not modified\" without a 304");
            // Nothing saved: an empty download, or none at all when the 304 was followed by
            // something that ended the session otherwise (a reset, a retry, junk).
            assert!(
                conditional.as_ref().is_none_or(Vec::is_empty),
                "a 304 saved bytes"
            );
        } else {
            assert_eq!(
                conditional, session,
                "a conditional request changed the outcome"
            );
        }
    }
    let expected = if got.done {
        complete_download(&wire, &file, asked_from, &got, honest)
    } else {
        None
    };
    if resumable {
        if let Some(expected) = &expected {
            assert_eq!(
                session.as_ref(),
                Some(expected),
                "the session did not save the complete download"
            );
        }
    }
    if let (Some(saved), Some(status)) = (&session, got.status) {
        // A 204 or another 2xx without a range the model does not plan: the session saves it
        // as an empty or whole body, which needs no model.
        if matches!(status, 200 | 206 | 416) {
            assert_eq!(
                Some(saved),
                expected.as_ref(),
                "the session saved a bad download"
            );
        }
    }
}

/// The download the exchange's answer makes (plan applied, size as announced), if complete;
/// from an honest answer, the server's file.
fn complete_download(
    wire: &[u8],
    file: &[u8],
    asked_from: Option<u64>,
    got: &Outcome,
    honest: bool,
) -> Option<Vec<u8>> {
    let len = file.len();
    let Ok(Status::Complete((response, _))) = parse_response(skip_interim(wire), false) else {
        panic!("a complete exchange without a parsable head");
    };
    let saved = &file[..asked_from.map_or(0, |a| (a as usize).min(len))];
    let planned = plan(asked_from, &response);
    // The session refuses a malformed SHA-256 field in an answer it would save.
    let digest_ok = matches!(planned, Ok(Plan::Complete)) || whole_file_sha256(&response).is_ok();
    let outcome = match planned {
        Ok(Plan::Write { total }) if response.head.status == 200 => Some((got.body.clone(), total)),
        Ok(Plan::Append { offset, total }) => {
            let mut f = saved[..(offset as usize).min(saved.len())].to_vec();
            assert_eq!(f.len() as u64, offset, "append past what was saved");
            f.extend_from_slice(&got.body);
            Some((f, total))
        }
        Ok(Plan::Complete) => Some((saved.to_vec(), Some(saved.len() as u64))),
        _ => None,
    };
    let (saved_file, total) = outcome?;
    let complete = total.is_none_or(|t| t == saved_file.len() as u64);
    if honest {
        assert!(
            complete,
            "an honest answer saved {} of {total:?} bytes",
            saved_file.len()
        );
        assert!(
            saved_file == file,
            "an honest answer saved other bytes than the file"
        );
    }
    (complete && digest_ok).then_some(saved_file)
}

/// Runs a download session on the answer, read in the same sizes, from a part holding the
/// file's first `asked_from` bytes; returns the part if the session saved it (`None` when it
/// failed or would go elsewhere: a redirect, a retry), and whether it ended "not modified".
/// `conditional` asks with `If-None-Match`, as a mirror does for a copy it has.
fn run_session(
    wire: &[u8],
    capacity: usize,
    reads: &[usize],
    asked_from: Option<u64>,
    file: &[u8],
    conditional: bool,
) -> (Option<Vec<u8>>, bool) {
    let url = Url {
        host: "h",
        port: 80,
        target: "/f",
    };
    let config = Config {
        timeout: Duration::from_secs(10),
        retries: 0,
        head_capacity: capacity,
        accept: None,
    };
    let resume = asked_from.map(|offset| Resume {
        offset,
        validator: "\"v\"",
    });
    let now = Instant::from_millis(0);
    let Ok(mut s) = Download::new(url, "h", config, resume, false, now) else {
        return (None, false);
    };
    if conditional {
        s.set_conditional(Some("\"v\""), None);
    }
    let mut part = file[..asked_from.map_or(0, |a| a as usize)].to_vec();
    let (mut buf, mut fed, mut requests) = (Vec::new(), 0, 0);
    let mut sizes = reads.iter().copied().cycle();
    loop {
        match s.poll(now) {
            // A second request (a redirect, a restart) would need another answer.
            Action::Connect | Action::Send(_) if requests > 0 => return (None, s.not_modified()),
            Action::Connect => s.handle_connected(now),
            Action::Send(request) => {
                requests += 1;
                assert_eq!(request.range_from, asked_from, "the range asked for");
                let expected = conditional.then_some("\"v\"");
                assert_eq!(request.if_none_match, expected, "If-None-Match");
            }
            Action::Receive if fed == wire.len() => s.handle_eof(now),
            Action::Receive => {
                let end = (fed + sizes.next().unwrap_or(1)).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
                let mut used = 0;
                loop {
                    let (n, event) = s.handle_input(now, &buf[used..]);
                    used += n;
                    assert!(used <= buf.len());
                    match event {
                        session::Event::NeedMore | session::Event::Ended => break,
                        session::Event::Start(start) => match start.plan {
                            Plan::Write { .. } => part.clear(),
                            Plan::Append { offset, .. } => {
                                assert_eq!(offset, part.len() as u64, "append where the part ends");
                            }
                            Plan::Complete | Plan::Restart => {}
                        },
                        session::Event::Body(data) => part.extend_from_slice(data),
                    }
                }
                buf.drain(..used);
            }
            Action::Retry(_) | Action::Wait(_) => return (None, s.not_modified()),
            Action::Done(Ok(saved)) => {
                assert_eq!(
                    saved.len,
                    part.len() as u64,
                    "the length the session counted"
                );
                return (Some(part), s.not_modified());
            }
            Action::Done(Err(_)) => return (None, s.not_modified()),
        }
    }
}

/// The answer without leading interim (1xx) responses, as the exchange skips them.
fn skip_interim(wire: &[u8]) -> &[u8] {
    let mut rest = wire;
    while let Ok(Status::Complete((r, n))) = parse_response(rest, false) {
        if !r.head.status.is_informational() {
            break;
        }
        rest = &rest[n..];
    }
    rest
}

/// Feeds `wire` to an exchange in reads of the given sizes (cycled), then the EOF.
fn run(wire: &[u8], capacity: usize, reads: &[usize]) -> Outcome {
    let mut ex = Exchange::new(false, capacity);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Outcome::default();
    let mut sizes = reads.iter().copied().cycle();
    loop {
        let Ok((n, event)) = ex.handle_input(&buf) else {
            out.error = true;
            return out;
        };
        assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
        let event = match event {
            Event::NeedMore if fed == wire.len() => match ex.handle_eof() {
                Ok(event) => event,
                Err(_) => {
                    out.error = true;
                    return out;
                }
            },
            other => other,
        };
        match event {
            Event::NeedMore => {
                buf.drain(..n);
                let end = (fed + sizes.next().unwrap_or(1)).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
                continue;
            }
            Event::Head(response) => {
                assert!(out.status.is_none(), "two final heads");
                assert!(!response.head.status.is_informational());
                out.status = Some(response.head.status.as_u16());
            }
            Event::Body(data) => {
                assert!(out.status.is_some(), "body before the head");
                assert!(!data.is_empty(), "an empty body event");
                out.body.extend_from_slice(data);
            }
            Event::Done { .. } => {
                assert!(out.status.is_some(), "done without a head");
                assert_eq!(ex.body_received(), out.body.len() as u64);
                out.done = true;
                out.unread = wire.len() - fed;
                return out;
            }
        }
        buf.drain(..n);
    }
}

/// Whether every head of the answer (interim ones too) fits a receive buffer of `capacity`.
fn heads_fit(wire: &[u8], capacity: usize) -> bool {
    let mut rest = wire;
    while let Ok(Status::Complete((r, n))) = parse_response(rest, false) {
        if n > capacity {
            return false;
        }
        if !r.head.status.is_informational() {
            return true;
        }
        rest = &rest[n..];
    }
    false
}

/// The model's reading of a whole answer: (body, where the body ends), or `None` when it is not
/// a well-framed response.
fn model_body(wire: &[u8]) -> Option<(Vec<u8>, usize)> {
    let start = wire.len() - skip_interim(wire).len();
    let rest = &wire[start..];
    let Ok(Status::Complete((response, head))) = parse_response(rest, false) else {
        return None;
    };
    let body_start = start + head;
    let after = &wire[body_start..];
    match response.framing {
        Framing::Empty => Some((Vec::new(), body_start)),
        Framing::Length(n) => {
            let n = usize::try_from(n).ok()?;
            let body = after.get(..n)?;
            Some((body.to_vec(), body_start + n))
        }
        Framing::UntilClose => Some((after.to_vec(), wire.len())),
        Framing::Chunked => {
            let (body, used) = dechunk(after)?;
            Some((body, body_start + used))
        }
    }
}

/// Decodes a chunked body (RFC 9112 §7.1) the plain way, line by line:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// ```
///
/// Lenient where the core may be (bare LF line ends, any extension text without control
/// bytes, `BWS` before it), so that it only disagrees on the bytes of the body and where it
/// ends. Returns the body and the bytes used.
fn dechunk(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut pos = 0;
    let mut body = Vec::new();
    let line_at = |pos: usize| -> Option<(&[u8], usize)> {
        let lf = input.get(pos..)?.iter().position(|&b| b == b'\n')?;
        let line = &input[pos..pos + lf];
        Some((line.strip_suffix(b"\r").unwrap_or(line), pos + lf + 1))
    };
    loop {
        let (line, next) = line_at(pos)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 {
            return None;
        }
        let ext = &line[digits..];
        if !(ext.is_empty() || matches!(ext[0], b';' | b' ' | b'\t')) {
            return None;
        }
        if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return None;
        }
        let hex = std::str::from_utf8(&line[..digits]).ok()?;
        let hex = hex.trim_start_matches('0');
        let size = if hex.is_empty() {
            0
        } else {
            u64::from_str_radix(hex, 16).ok()?
        };
        pos = next;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).ok()?;
        body.extend_from_slice(input.get(pos..pos.checked_add(size)?)?);
        pos += size;
        pos += match input.get(pos..)? {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            _ => return None,
        };
    }
    // trailer-section CRLF. Trailers are discarded, so a bare CR in one is ignored (RFC 9112
    // §2.2 lets a recipient treat such an element as invalid), as the core does: a line of
    // nothing but CRs is the empty line that ends the body.
    loop {
        let (line, next) = line_at(pos)?;
        pos = next;
        if line.iter().all(|&b| b == b'\r') {
            return Some((body, pos));
        }
        if line.iter().any(|&b| b < 0x20 && b != b'\t' && b != b'\r') {
            return None;
        }
    }
}

/// An honest server's answer (possibly corrupted afterwards); the flag says it is intact.
fn answer(r: &mut Reader<'_>, file: &[u8], asked_from: Option<u64>) -> (Vec<u8>, bool) {
    let len = file.len() as u64;
    let changed = r.below(8) == 0;
    let (status, extra, body): (u16, String, &[u8]) = match asked_from {
        Some(_) if changed => (416, format!("Content-Range: bytes */{}\r\n", len + 1), b""),
        Some(a) if a < len => (
            206,
            format!("Content-Range: bytes {a}-{}/{len}\r\n", len - 1),
            &file[a as usize..],
        ),
        Some(_) => (416, format!("Content-Range: bytes */{len}\r\n"), b""),
        None => (200, String::new(), file),
    };
    let framing = r.below(3);
    let bare_lf = r.below(4) == 0;
    let mut head = String::new();
    if r.below(4) == 0 {
        head.push_str("HTTP/1.1 100 Continue\r\n\r\n");
    }
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        _ => "Range Not Satisfiable",
    };
    let version = if framing == 2 && r.bool() {
        "1.0"
    } else {
        "1.1"
    };
    head.push_str(&format!("HTTP/{version} {status} {reason}\r\n"));
    head.push_str(&extra);
    head.push_str("ETag: \"v1\"\r\nContent-Type: application/octet-stream\r\n");
    head.push_str(match framing {
        0 => "",
        1 => "Transfer-Encoding: chunked\r\n\r\n",
        _ => "Connection: close\r\n\r\n",
    });
    if framing == 0 {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    }
    if bare_lf {
        // Bare LF line ends in the heads (RFC 9112 §2.2 lets a recipient accept them).
        head = head.replace("\r\n", "\n");
    }
    let mut wire = head.into_bytes();
    match framing {
        0 => {
            wire.extend_from_slice(body);
        }
        1 => {
            let mut rest = body;
            while !rest.is_empty() {
                let n = (1 + usize::from(r.u8()) * 4).min(rest.len());
                let ext = match r.below(4) {
                    0 => ";name=\"value\"",
                    1 => " ;x",
                    _ => "",
                };
                wire.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0\r\n");
            if r.bool() {
                wire.extend_from_slice(b"X-Trailer: done\r\n");
            }
            wire.extend_from_slice(b"\r\n");
        }
        _ => wire.extend_from_slice(body),
    }
    let intact = match r.below(5) {
        0 if !wire.is_empty() => {
            let at = usize::from(r.u16()) % wire.len();
            wire[at] ^= 1 + r.u8() % 255;
            false
        }
        1 => {
            let at = usize::from(r.u16()) % (wire.len() + 1);
            wire.insert(at, r.u8());
            false
        }
        2 if !wire.is_empty() => {
            let at = usize::from(r.u16()) % wire.len();
            wire.remove(at);
            false
        }
        3 => {
            let at = usize::from(r.u16()) % (wire.len() + 1);
            wire.truncate(at);
            false
        }
        _ => true,
    };
    (wire, intact)
}
