//! `connection`: a sequence of driver events against the sans-IO server connection over an
//! in-memory file set.
//!
//! Input ([`Reader`] encoding): three configuration bits (listings off, hidden files, small
//! head limits), then events
//! until the input ends: raw input bytes, a generated request (method, one of a list of
//! interesting paths, version, a few fields), `transmitted(n)` after a partial send, a send of
//! everything offered, time passing (around each timeout) with `handle_timeout`, EOF, a file
//! replaced on "disk", a `transmitted(n)` with nothing offered, and shutdown. After the last
//! event the driver offers what it holds, reports EOF and sends everything owed.
//!
//! Every request the connection consumes is parsed again here and answered by a model of
//! PROTOCOL.md (method, `Expect`, path rules, file / folder / index / listing / redirect, and
//! the conditional decision), which fixes the response it must get.
//!
//! Properties:
//! - no panic, and `handle_input` never consumes more than it was offered;
//! - the bytes sent are a well-framed sequence of responses (status line, fields,
//!   `Content-Length` on all but 304), one per consumed request (plus a 408 for a head that
//!   timed out), in request order, each with the status the model expects;
//! - every byte of a 200 (206) body equals the file (the requested part of it) as it was when
//!   the request was read, even if it is replaced while being sent; the `ETag` names that
//!   version;
//! - `Connection: close` exactly when the request asked for it (or was malformed), and the
//!   connection closes only for a reason: such a response, EOF, shutdown or a due timeout;
//! - a `handle_timeout` before the deadline, and a `transmitted` with nothing offered,
//!   change nothing;
//! - unless a send timed out, every consumed request is answered completely by the end.

use std::collections::VecDeque;
use std::rc::Rc;

use satchel_core::http::conditional::{evaluate, Conditions, Decision, Validators};
use satchel_core::http::method::Method;
use satchel_core::http::request::{parse_request, Limits, Request};
use satchel_core::path::{SafePath, MAX_PATH};
use satchel_core::serve::Config;
use satchel_core::Status;

use satchel_core::http::date::format_http_date;
use satchel_core::mime;

use super::site::{mem_site, read_response, MemSite, Peer, Response, Snapshot, MAX_CACHED};
use super::Reader;

/// The files every run starts with: small and cached, large and streamed, a folder with an
/// index, folders without, a hidden file, a name that needs escaping, an empty file.
const FILES: &[(&str, usize)] = &[
    ("hello.txt", 15),
    ("docs/index.html", 14),
    ("big.bin", 6000),
    ("mid.bin", 3000),
    (".hidden", 7),
    ("a b/c%d.txt", 9),
    ("empty.txt", 0),
    ("sub/deeper/x.txt", 40),
];

/// Request targets the generator picks from.
const TARGETS: &[&str] = &[
    "/hello.txt",
    "/docs/",
    "/docs",
    "/",
    "/big.bin",
    "/mid.bin",
    "/.hidden",
    "/a%20b/c%25d.txt",
    "/a%20b/",
    "/empty.txt",
    "/sub/",
    "/sub/deeper",
    "/missing",
    "/hello.txt/",
    "/../etc/passwd",
    "/%2e%2e/x",
    "/docs/./index.html",
    "//hello.txt?x=1",
    "http://example.com/mid.bin",
    "/a%2Fb",
];

/// The contents a file gets when (re)written.
fn contents(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i + usize::from(seed)) % 26) as u8)
        .collect()
}

/// What the response to one consumed request must be.
#[derive(Debug, Clone)]
struct Expect {
    /// The status code.
    status: u16,
    /// Whether the request was a HEAD (no body).
    head: bool,
    /// Whether the response must carry `Connection: close`.
    close: bool,
    /// For a file response: the version that must be sent.
    file: Option<Rc<Snapshot>>,
    /// For a file response: the file's name (its last segment).
    name: Vec<u8>,
    /// For a file response: what was decided.
    decision: Option<Decision>,
    /// What the request was, for messages.
    what: String,
}

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let mut config = Config::host();
    config.listings = flags & 1 == 0;
    config.path.allow_hidden = flags & 2 != 0;
    if flags & 4 != 0 {
        // Small limits, so that 414 and 431 are reached by short inputs.
        config.limits = Limits {
            max_request_line: 40,
            max_head: 200,
        };
    }
    let site = new_site(config);
    // A source that answers later: every miss waits for the driver to hand the answer in.
    site.source.slow.set(flags & 8 != 0);
    site.source.probe_blocks.set(flags & 16 != 0);
    // Everything the peer sent, and whether the run had only input and sends (no timeout
    // fired, no EOF, shutdown or file change): then the same bytes sent at once must get
    // exactly the same answer.
    let mut sent_by_peer = Vec::new();
    // A probe that always blocks makes every request a miss (Cache-Status differs from the
    // run without it); a slow source alone must answer exactly as a fast one.
    let mut calm = flags & 24 != 24;
    let mut t = Test {
        peer: Peer::new(&site),
        expect: VecDeque::new(),
        read: 0,
        close_ok: false,
        abandoned: false,
        closing_response_seen: false,
        close_waiting: false,
    };

    while !r.is_empty() {
        let was_closed = t.peer.conn.is_closed();
        match r.below(11) {
            0 => {
                let bytes = r.bytes();
                t.peer.pending.extend_from_slice(bytes);
                sent_by_peer.extend_from_slice(bytes);
            }
            1 | 2 => {
                let req = generate(&mut r, &site);
                t.peer.pending.extend_from_slice(&req);
                sent_by_peer.extend_from_slice(&req);
            }
            3 => {
                let max = usize::from(r.u16() % 4096) + 1;
                t.peer.send(max);
            }
            4 => while t.peer.send(usize::MAX).is_some() {},
            5 => calm &= !t.time_passes(&mut r),
            6 => {
                t.close_waiting |= t.peer.conn.is_waiting();
                t.peer.conn.handle_eof(t.peer.instant());
                t.close_ok = true;
                calm = false;
            }
            7 => {
                calm = false;
                let (i, len, seed) = (r.below(FILES.len()), r.u16() % 5000, r.u8());
                let path = FILES[i].0.as_bytes();
                let old = site.source.get(path).and_then(|s| s.meta.modified);
                let modified = old.map(|m| m + 1);
                site.source
                    .put(path, contents(usize::from(len), seed), modified);
            }
            8 => {
                let n = usize::from(r.u8());
                if t.peer.conn.poll_transmit().is_none() {
                    let before = t.observe();
                    t.peer.conn.transmitted(t.peer.instant(), n);
                    assert_eq!(t.observe(), before, "transmitted({n}) with nothing offered");
                }
            }
            9 => {
                t.close_waiting |= t.peer.conn.is_waiting();
                t.peer.conn.shutdown();
                t.close_ok = true;
                calm = false;
            }
            // The source's answer arrives (a slow source only).
            _ => {
                t.source_answers();
            }
        }
        t.pump_input();
        t.read_responses();
        if t.peer.conn.is_closed() && !was_closed {
            assert!(t.close_ok, "the connection closed for no reason");
        }
    }

    // The peer half-closes. The driver reports the EOF once it has offered every complete
    // request it holds (a connection that is sending takes none, and one told of the EOF
    // closes after its response), then the server finishes what it owes.
    t.drain();
    t.close_waiting |= t.peer.conn.is_waiting();
    t.peer.conn.handle_eof(t.peer.instant());
    t.close_ok = true;
    t.drain();
    t.read_responses();
    assert!(
        t.peer.conn.is_closed(),
        "not closed after EOF and a full send"
    );
    assert!(t.peer.conn.poll_transmit().is_none());
    if !t.abandoned {
        assert!(
            t.expect.is_empty(),
            "requests left unanswered: {:?}",
            t.expect
        );
        assert_eq!(t.read, t.peer.out.len(), "bytes after the last response");
    }
    if calm {
        let again = new_site(config);
        let mut peer = Peer::new(&again);
        peer.pending = sent_by_peer;
        peer.run();
        peer.conn.handle_eof(peer.instant());
        peer.run();
        assert!(
            peer.out == t.peer.out,
            "the answer depends on how the input was split or the output was sent:\n{}\n----\n{}",
            String::from_utf8_lossy(&t.peer.out),
            String::from_utf8_lossy(&peer.out)
        );
    }
}

/// The site every run starts with.
fn new_site(config: Config) -> MemSite {
    let site = mem_site(config);
    for (i, (path, len)) in FILES.iter().enumerate() {
        site.source.put(
            path.as_bytes(),
            contents(*len, i as u8),
            Some(1_700_000_000),
        );
    }
    site
}

struct Test<'s> {
    peer: Peer<'s>,
    /// Responses owed, in order.
    expect: VecDeque<Expect>,
    /// Bytes of `peer.out` read as complete responses.
    read: usize,
    /// Whether the connection may have closed by now.
    close_ok: bool,
    /// A send timed out: the response in flight may be cut short.
    abandoned: bool,
    /// A response with `Connection: close` was read: nothing may follow.
    closing_response_seen: bool,
    /// The peer closed or the server shut down while a request waited for its source: that
    /// request's response closes the connection.
    close_waiting: bool,
}

/// What is visible of a connection from outside, to check that a no-op changed nothing.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    closed: bool,
    sending: bool,
    idle: bool,
    timeout: Option<u64>,
    offered: Option<(usize, u64)>,
}

impl Test<'_> {
    fn observe(&self) -> Observed {
        let conn = &self.peer.conn;
        Observed {
            closed: conn.is_closed(),
            sending: conn.is_sending(),
            idle: conn.is_idle(),
            timeout: conn.poll_timeout().map(|t| t.as_millis()),
            offered: conn
                .poll_transmit()
                .map(|tx| (tx.head.len(), tx.body.len())),
        }
    }

    /// A slow source's work is done: the waiting request may be answered. Returns whether a
    /// request was waiting.
    fn source_answers(&mut self) -> bool {
        let waiting = self.peer.conn.waiting_for();
        if let Some(ticket) = waiting {
            self.peer.conn.handle_ready(ticket);
        }
        waiting.is_some()
    }

    /// Sends everything and offers the pending input until neither makes progress.
    fn drain(&mut self) {
        loop {
            let answered = self.source_answers();
            let consumed = !self.pump_input_once().is_empty();
            // A request that just started waiting is answered in the next round.
            let mut progressed = answered || consumed || self.peer.conn.waiting_for().is_some();
            while self.peer.send(usize::MAX).is_some() {
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    /// Offers the pending input until the connection takes no more; records what it owes.
    fn pump_input(&mut self) {
        while !self.pump_input_once().is_empty() {}
    }

    fn pump_input_once(&mut self) -> Vec<u8> {
        let offered = self.peer.pending.len();
        let consumed = self.peer.offer();
        if !consumed.is_empty() {
            let expect = self.model(&consumed, offered);
            self.expect.push_back(expect);
            self.close_waiting = false;
        }
        consumed
    }

    /// The response owed for the request in `consumed` (all of it, for a malformed one).
    fn model(&self, consumed: &[u8], offered: usize) -> Expect {
        let site = self.peer.site;
        let config = site.config;
        let what = String::from_utf8_lossy(&consumed[..consumed.len().min(80)]).into_owned();
        let request = match parse_request(consumed, &config.limits) {
            Ok(Status::Complete((request, n))) => {
                assert_eq!(n, consumed.len(), "consumed other than one request head");
                request
            }
            Ok(Status::Partial) => panic!("consumed a partial head {what:?}"),
            Err(e) => {
                assert_eq!(
                    consumed.len(),
                    offered,
                    "a malformed head consumes everything"
                );
                return Expect {
                    status: e.status().as_u16(),
                    head: false,
                    close: true,
                    file: None,
                    name: Vec::new(),
                    decision: None,
                    what,
                };
            }
        };
        let mut expect = Expect {
            status: 0,
            head: request.method == Method::Head,
            close: !request.keep_alive || self.close_waiting,
            file: None,
            name: Vec::new(),
            decision: None,
            what,
        };
        if request.method == Method::Other {
            expect.status = 405;
            return expect;
        }
        if !request.expect_ok() {
            expect.status = 417;
            return expect;
        }
        let mut scratch = [0u8; MAX_PATH];
        let path = match SafePath::parse(request.path, &mut scratch, config.path) {
            Ok(path) => path,
            Err(e) => {
                expect.status = e.status().as_u16();
                return expect;
            }
        };
        let key = path.as_bytes();
        let source = &site.source;
        let file = if let Some(snap) = source.get(key) {
            if path.trailing_slash() {
                expect.status = 404;
                return expect;
            }
            expect.name = path.file_name().unwrap_or_default().to_vec();
            snap
        } else if source.is_dir(key) {
            if !path.trailing_slash() && !path.is_root() {
                expect.status = 301;
                return expect;
            }
            let index = if key.is_empty() {
                b"index.html".to_vec()
            } else {
                [key, b"/index.html"].concat()
            };
            match source.get(&index) {
                Some(snap) => {
                    expect.name = b"index.html".to_vec();
                    snap
                }
                None => {
                    expect.status = if config.listings { 200 } else { 404 };
                    return expect;
                }
            }
        } else {
            expect.status = 404;
            return expect;
        };
        let decision = decide(&request, &file);
        expect.status = match decision {
            Decision::NotModified => 304,
            Decision::Full => 200,
            Decision::Partial { .. } => 206,
            Decision::Unsatisfiable => 416,
        };
        expect.decision = Some(decision);
        expect.file = Some(file);
        expect
    }

    /// Reads every complete response sent so far and checks it against what is owed.
    fn read_responses(&mut self) {
        loop {
            let rest = &self.peer.out[self.read..];
            if rest.is_empty() {
                return;
            }
            let head_only = self.expect.front().is_some_and(|e| e.head);
            let Some((response, used)) = read_response(rest, head_only) else {
                return;
            };
            assert!(
                !self.closing_response_seen,
                "a response after Connection: close"
            );
            let expect = self
                .expect
                .pop_front()
                .unwrap_or_else(|| panic!("a response nobody asked for: {response:?}"));
            self.read += used;
            check_response(&response, &expect);
            if response.closes() {
                self.closing_response_seen = true;
                self.close_ok = true;
            }
        }
    }

    /// Lets time pass and calls `handle_timeout`, early or when due; returns whether it was due.
    fn time_passes(&mut self, r: &mut Reader<'_>) -> bool {
        let config = self.peer.site.config;
        let dt = match r.below(6) {
            0 => 1,
            1 => config.head_timeout.as_millis(),
            2 => config.idle_timeout.as_millis(),
            3 => config.send_timeout.as_millis(),
            4 => u64::from(r.u16()),
            _ => 0,
        };
        self.peer.now += dt;
        let now = self.peer.instant();
        let due = self.peer.conn.poll_timeout().is_some_and(|t| t <= now);
        if !due {
            let before = self.observe();
            self.peer.conn.handle_timeout(now);
            assert_eq!(self.observe(), before, "handle_timeout before the deadline");
            return false;
        }
        let conn = &self.peer.conn;
        let waiting = conn.is_waiting();
        let partial_head = !conn.is_sending() && !conn.is_closed() && !conn.is_idle() && !waiting;
        let sending = conn.is_sending();
        self.peer.conn.handle_timeout(now);
        self.close_ok = true;
        if partial_head {
            self.expect.push_back(Expect {
                status: 408,
                head: false,
                close: true,
                file: None,
                name: Vec::new(),
                decision: None,
                what: "(slow head)".to_owned(),
            });
        }
        if waiting {
            // The source took too long: 503, and the connection closes.
            self.expect.push_back(Expect {
                status: 503,
                head: false,
                close: true,
                file: None,
                name: Vec::new(),
                decision: None,
                what: "(source too slow)".to_owned(),
            });
        }
        if sending {
            self.abandoned = true;
        }
        true
    }
}

/// The conditional decision for `request` on `file`, as the server must take it.
fn decide(request: &Request<'_>, file: &Snapshot) -> Decision {
    let etag = file.etag();
    let conditions = Conditions {
        if_none_match: request.if_none_match,
        if_modified_since: request.if_modified_since,
        if_range: request.if_range,
        // Only a GET has a range (RFC 9110 §14.2): a HEAD with one is a plain HEAD.
        range: request.range.filter(|_| request.method == Method::Get),
    };
    let validators = Validators {
        etag: &etag,
        last_modified: file.meta.modified,
    };
    evaluate(&conditions, &validators, file.meta.version.len, true)
}

fn check_response(response: &Response, expect: &Expect) {
    assert_eq!(
        response.status, expect.status,
        "{:?} answered {response:?}",
        expect.what
    );
    assert_eq!(
        response.closes(),
        expect.close,
        "Connection: close on {:?}",
        expect.what
    );
    if expect.head {
        assert!(response.body.is_empty());
    }
    match response.status {
        301 => {
            let location = response.header("location").unwrap_or_default();
            assert!(
                location.starts_with('/') && location.ends_with('/'),
                "{location:?}"
            );
        }
        400.. => assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        ),
        _ => {}
    }
    let (Some(file), Some(decision)) = (&expect.file, expect.decision) else {
        return;
    };
    if decision != Decision::Unsatisfiable {
        let etag = file.etag();
        assert_eq!(
            response.header("etag"),
            Some(etag.as_str()),
            "another version of {:?}",
            expect.what
        );
    }
    let size = file.data.len() as u64;
    if decision != Decision::Unsatisfiable {
        let modified = file
            .meta
            .modified
            .map(|m| String::from_utf8_lossy(&format_http_date(m)).into_owned());
        assert_eq!(
            response.header("last-modified").map(str::to_owned),
            modified,
            "Last-Modified"
        );
        // PROTOCOL.md: a file above the per-entry limit is streamed (`fwd=bypass`).
        let cache = response.header("cache-status").unwrap_or_default();
        assert!(
            matches!(
                cache,
                "satchel; hit"
                    | "satchel; fwd=miss; stored"
                    | "satchel; fwd=miss"
                    | "satchel; fwd=bypass"
            ),
            "Cache-Status {cache:?}"
        );
        assert_eq!(
            cache == "satchel; fwd=bypass",
            size > MAX_CACHED as u64,
            "Cache-Status {cache:?} for {size} bytes"
        );
    }
    if matches!(decision, Decision::Full | Decision::Partial { .. }) {
        assert_eq!(
            response.header("content-type"),
            Some(mime::content_type_for_name(&expect.name)),
            "Content-Type of {:?}",
            String::from_utf8_lossy(&expect.name)
        );
        assert_eq!(response.header("accept-ranges"), Some("bytes"));
    }
    match decision {
        Decision::Full => {
            assert_eq!(response.content_length(), Some(size));
            if !expect.head {
                assert!(response.body == file.data, "200 body differs from the file");
            }
        }
        Decision::Partial { first, last } => {
            let range = format!("bytes {first}-{last}/{size}");
            assert_eq!(response.header("content-range"), Some(range.as_str()));
            if !expect.head {
                assert!(
                    response.body == file.data[first as usize..=last as usize],
                    "206 body differs from the file"
                );
            }
        }
        Decision::Unsatisfiable => {
            let range = format!("bytes */{size}");
            assert_eq!(response.header("content-range"), Some(range.as_str()));
        }
        Decision::NotModified => assert!(response.body.is_empty()),
    }
}

/// A request from a few choices, complete with its final empty line.
fn generate(r: &mut Reader<'_>, site: &MemSite) -> Vec<u8> {
    let method: &[u8] = match r.below(6) {
        0 | 1 => b"GET",
        2 => b"HEAD",
        3 => b"POST",
        4 => b"get",
        _ => b"GET",
    };
    let target = TARGETS[r.below(TARGETS.len())];
    let flags = r.u16();
    let version: &[u8] = if flags & 1 != 0 {
        b"HTTP/1.0"
    } else {
        b"HTTP/1.1"
    };
    let mut req = [method, b" ", target.as_bytes(), b" ", version, b"\r\n"].concat();
    let mut field = |name: &str, value: &[u8]| {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    };
    if flags & 2 == 0 {
        field("Host", b"t");
    }
    if flags & 4 != 0 {
        field("Connection", b"close");
    }
    if flags & 8 != 0 {
        field("Connection", b"keep-alive");
    }
    if flags & 16 != 0 {
        let (a, b) = (r.u16() % 7000, r.u16() % 7000);
        let range = match r.below(3) {
            0 => format!("bytes={a}-{b}"),
            1 => format!("bytes={a}-"),
            _ => format!("bytes=-{b}"),
        };
        field("Range", range.as_bytes());
    }
    if flags & 32 != 0 {
        // The current tag of the target's file, if it names one: a 304 (or a full answer once
        // the file is replaced).
        let key = target
            .trim_start_matches('/')
            .replace("%20", " ")
            .replace("%25", "%");
        let tag = site
            .source
            .get(key.as_bytes())
            .map_or_else(|| b"*".to_vec(), |s| s.etag().as_bytes().to_vec());
        field("If-None-Match", &tag);
    }
    if flags & 64 != 0 {
        field("If-Range", b"\"stale\"");
    }
    if flags & 128 != 0 {
        field(
            "Expect",
            if flags & 256 != 0 {
                b"100-continue"
            } else {
                b"teapot"
            },
        );
    }
    if flags & 512 != 0 {
        field("Accept", b"text/plain");
    }
    if flags & 1024 != 0 {
        field("Content-Length", b"0");
    }
    req.extend_from_slice(b"\r\n");
    req
}
