//! Unit tests of requests that wait for their file source: a test source whose opens complete
//! only when the test says so (the fake clock of a thread pool or an upstream server), with
//! one open per file however many requests wait for it (single flight).

use core::cell::RefCell;
use std::string::String;
use std::vec::Vec;

use super::tests::{get, test_site, text, Board};
use super::*;
use crate::path::SafePath;
use crate::source::{Arrival, FileKind, Metadata, SourceError, StaticSource, Ticket};
use crate::time::Instant;

/// Opens complete when the test says so; a probe answers at once (a warm `stat`), or
/// [`SourceError::WouldBlock`] with `probe_blocks`.
struct Slow {
    inner: StaticSource,
    probe_blocks: bool,
    state: RefCell<SlowState>,
}

/// What an open found: the file (an index into the static table) and its metadata.
type Opened = Result<(usize, Metadata), SourceError>;

#[derive(Default)]
struct SlowState {
    next: u64,
    /// Opens started: the path and the tickets waiting for it.
    in_flight: Vec<(String, Vec<Ticket>)>,
    /// Opens done, per ticket.
    done: Vec<(Ticket, String, Opened)>,
    /// Opens actually made.
    opens: usize,
}

impl Slow {
    fn new(probe_blocks: bool) -> Self {
        Self {
            inner: StaticSource::new(super::tests::FILES),
            probe_blocks,
            state: RefCell::new(SlowState::default()),
        }
    }

    /// Makes the open of `path` (once, whoever waits for it); returns the tickets now ready.
    fn complete(&self, path: &str) -> Vec<Ticket> {
        let mut st = self.state.borrow_mut();
        let Some(i) = st.in_flight.iter().position(|(p, _)| p == path) else {
            return Vec::new();
        };
        let (path, tickets) = st.in_flight.remove(i);
        st.opens += 1;
        let safe = SafePath::from_normalized(path.as_bytes()).unwrap();
        let result = match self.inner.metadata(&safe) {
            Ok(m) if m.kind == FileKind::Dir => Ok((usize::MAX, m)),
            _ => self.inner.open(&safe),
        };
        for &t in &tickets {
            st.done.push((t, path.clone(), result));
        }
        tickets
    }

    fn opens(&self) -> usize {
        self.state.borrow().opens
    }
}

impl FileSource for Slow {
    type File = usize;
    type Listing = &'static [u8];

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        self.inner.metadata(path)
    }

    fn probe(&self, path: &SafePath<'_>, _arrived: Arrival) -> Result<Metadata, SourceError> {
        match self.probe_blocks {
            true => Err(SourceError::WouldBlock),
            false => self.inner.metadata(path),
        }
    }

    fn open(&self, _path: &SafePath<'_>) -> Result<(usize, Metadata), SourceError> {
        // Never called: every open of the connection may wait.
        Err(SourceError::Io)
    }

    fn open_waiting(
        &self,
        path: &SafePath<'_>,
        wait: Option<Ticket>,
    ) -> Result<(usize, Metadata), SourceError> {
        let mut st = self.state.borrow_mut();
        let name = text(path.as_bytes());
        if let Some(t) = wait {
            if let Some((_, _, r)) = st.done.iter().find(|(dt, p, _)| *dt == t && *p == name) {
                return *r;
            }
        }
        let ticket = wait.unwrap_or_else(|| {
            st.next += 1;
            Ticket(st.next)
        });
        match st.in_flight.iter_mut().find(|(p, _)| *p == name) {
            Some((_, waiting)) if !waiting.contains(&ticket) => waiting.push(ticket),
            Some(_) => {}
            None => st.in_flight.push((name, std::vec![ticket])),
        }
        Err(SourceError::Pending(ticket))
    }

    fn file_metadata(&self, file: &usize) -> Result<Metadata, SourceError> {
        self.inner.file_metadata(file)
    }

    fn read_at(&self, file: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
        self.inner.read_at(file, offset, buf)
    }
}

type SlowSite = SiteParts<Slow, RefCell<Board>>;
type Conn<'s> = Connection<'s, SlowSite, 4096>;

fn slow_site(probe_blocks: bool) -> SlowSite {
    SiteParts::new(Slow::new(probe_blocks), test_site().cache, Config::host())
}

/// A driver's connection: the bytes it holds, what it sent, the statuses it logged.
struct Peer<'s> {
    conn: Conn<'s>,
    held: Vec<u8>,
    out: Vec<u8>,
    log: Vec<(u16, Option<crate::http::response::CacheStatus>)>,
}

impl<'s> Peer<'s> {
    fn new(site: &'s SlowSite, t: Instant) -> Self {
        Self {
            conn: Conn::new(site, t),
            held: Vec::new(),
            out: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Offers what it holds plus `bytes`, sends what is owed, until nothing moves.
    fn pump(&mut self, site: &SlowSite, t: Instant, bytes: &str) {
        self.held.extend_from_slice(bytes.as_bytes());
        loop {
            let n = self.conn.handle_input(t, Arrival::UNKNOWN, &self.held);
            self.held.drain(..n);
            let mut moved = n > 0;
            while let Some(event) = self.conn.poll_event() {
                if let Event::Response(info) = event {
                    self.log.push((info.status.as_u16(), info.cache));
                }
            }
            while let Some(tx) = self.conn.poll_transmit() {
                let mut buf = std::vec![0u8; tx.len() as usize];
                let n = tx.copy_to(site, &mut buf).unwrap();
                self.out.extend_from_slice(&buf[..n]);
                self.conn.transmitted(t, n);
                moved = true;
                while self.conn.poll_event().is_some() {}
            }
            if !moved || self.conn.is_closed() {
                break;
            }
        }
    }

    /// The bodies of the responses received so far, each with its status line.
    fn responses(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = &self.out[..];
        while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = text(&rest[..end]);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.parse().unwrap());
            let status = String::from(head.lines().next().unwrap());
            let body_len = if status.contains(" 304 ") { 0 } else { len };
            out.push((status, rest[end + 4..end + 4 + body_len].to_vec()));
            rest = &rest[end + 4 + body_len..];
        }
        out
    }
}

#[test]
fn a_hit_is_answered_while_a_miss_waits() {
    let site = slow_site(false);
    let t = Instant::from_millis(0);
    // Warm /hello.txt.
    let mut a = Peer::new(&site, t);
    a.pump(&site, t, &get("/hello.txt"));
    let ready = site.source.complete("hello.txt");
    assert_eq!(ready.len(), 1);
    a.conn.handle_ready(ready[0]);
    a.pump(&site, t, "");
    assert_eq!(a.log, [(200, Some(CacheStatus::MissStored))]);

    // A miss that waits...
    let mut b = Peer::new(&site, t);
    b.pump(&site, t, &get("/big.bin"));
    let ticket = b.conn.waiting_for().expect("the miss waits for its source");
    assert!(b.out.is_empty() && b.log.is_empty());
    assert!(!b.conn.is_idle() && !b.conn.is_sending() && b.conn.is_waiting());
    // ...does not hold a hit on another connection of the same site.
    let mut c = Peer::new(&site, t);
    c.pump(&site, t, &get("/hello.txt"));
    assert_eq!(c.log, [(200, Some(CacheStatus::Hit))]);
    assert_eq!(c.responses()[0].1, b"hello, satchel\n");
    assert!(b.out.is_empty(), "the miss is still waiting");

    // Another ticket wakes nothing; its own does.
    b.conn.handle_ready(Ticket(ticket.0 + 100));
    assert_eq!(b.conn.waiting_for(), Some(ticket));
    assert_eq!(site.source.complete("big.bin"), [ticket]);
    b.conn.handle_ready(ticket);
    assert_eq!(b.conn.waiting_for(), None);
    b.pump(&site, t, "");
    assert_eq!(b.log, [(200, Some(CacheStatus::MissStored))]);
    assert_eq!(b.responses()[0].1, [7u8; 6000]);
}

#[test]
fn pipelined_requests_wait_their_turn() {
    let site = slow_site(false);
    let t = Instant::from_millis(0);
    let mut p = Peer::new(&site, t);
    let mut two = get("/big.bin");
    two.push_str(&get("/hello.txt"));
    p.pump(&site, t, &two);
    let ticket = p.conn.waiting_for().unwrap();
    // Nothing consumed: both requests are still the driver's.
    assert_eq!(p.held, two.as_bytes());
    assert!(p.out.is_empty());
    site.source.complete("big.bin");
    p.conn.handle_ready(ticket);
    p.pump(&site, t, "");
    // The second now waits for its own open, after the first was sent whole.
    let second = p.conn.waiting_for().expect("second miss waits");
    assert_ne!(second, ticket, "a new request gets a new ticket");
    assert_eq!(p.responses().len(), 1);
    site.source.complete("hello.txt");
    p.conn.handle_ready(second);
    p.pump(&site, t, "");
    let r = p.responses();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].1, [7u8; 6000]);
    assert_eq!(r[1].1, b"hello, satchel\n");
    assert!(p.held.is_empty());
}

#[test]
fn concurrent_misses_of_one_file_open_it_once() {
    let site = slow_site(false);
    let t = Instant::from_millis(0);
    let mut peers: Vec<Peer<'_>> = (0..5).map(|_| Peer::new(&site, t)).collect();
    for p in &mut peers {
        p.pump(&site, t, &get("/big.bin"));
        assert!(p.conn.waiting_for().is_some());
    }
    let ready = site.source.complete("big.bin");
    assert_eq!(ready.len(), 5);
    for p in &mut peers {
        let ticket = p.conn.waiting_for().unwrap();
        assert!(ready.contains(&ticket));
        p.conn.handle_ready(ticket);
        p.pump(&site, t, "");
        assert_eq!(p.responses()[0].1, [7u8; 6000]);
    }
    assert_eq!(site.source.opens(), 1);
    // The first stored it; the others, probing after, found it cached.
    assert_eq!(peers[0].log, [(200, Some(CacheStatus::MissStored))]);
    for p in &peers[1..] {
        assert_eq!(p.log, [(200, Some(CacheStatus::Hit))]);
    }
}

#[test]
fn timeout_while_waiting_answers_503_and_closes() {
    let site = slow_site(false);
    let t0 = Instant::from_millis(1000);
    let mut p = Peer::new(&site, t0);
    p.pump(&site, t0, &get("/big.bin"));
    assert!(p.conn.waiting_for().is_some());
    let deadline = p.conn.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + site.config.send_timeout);
    p.conn
        .handle_timeout(Instant::from_millis(deadline.as_millis() - 1));
    assert!(p.conn.is_waiting());
    p.conn.handle_timeout(deadline);
    assert!(!p.conn.is_waiting());
    p.pump(&site, deadline, "");
    assert_eq!(p.log, [(503, None)]);
    assert!(p.responses()[0].0.starts_with("HTTP/1.1 503 "));
    assert!(p.conn.is_closed());
    // Its request was never taken: a driver closing now lingers.
    assert!(p.conn.should_linger(!p.held.is_empty()));
}

#[test]
fn shutdown_and_eof_while_waiting_answer_then_close() {
    for eof in [false, true] {
        let site = slow_site(false);
        let t = Instant::from_millis(0);
        let mut p = Peer::new(&site, t);
        p.pump(&site, t, &(get("/big.bin") + &get("/hello.txt")));
        let ticket = p.conn.waiting_for().unwrap();
        match eof {
            true => p.conn.handle_eof(t),
            false => p.conn.shutdown(),
        }
        assert!(!p.conn.is_closed(), "the waiting request is still answered");
        site.source.complete("big.bin");
        p.conn.handle_ready(ticket);
        p.pump(&site, t, "");
        let r = p.responses();
        assert_eq!(r.len(), 1, "nothing after the waited request");
        assert_eq!(r[0].1, [7u8; 6000]);
        assert!(text(&p.out).contains("Connection: close\r\n"));
        assert!(p.conn.is_closed());
    }
}

#[test]
fn abort_while_waiting_closes_with_no_event() {
    let site = slow_site(false);
    let t = Instant::from_millis(0);
    let mut p = Peer::new(&site, t);
    p.pump(&site, t, &get("/big.bin"));
    p.conn.abort();
    assert!(p.conn.is_closed());
    assert_eq!(p.conn.waiting_for(), None);
    assert!(p.conn.poll_event().is_none());
}

/// A probe that would block sends the request to the open, which judges folders too; a
/// folder's `index.html` is a second wait under the same ticket.
#[test]
fn blocked_probe_goes_to_the_open_and_folders_wait_twice() {
    let site = slow_site(true);
    let t = Instant::from_millis(0);
    let mut p = Peer::new(&site, t);
    p.pump(&site, t, &get("/docs"));
    let ticket = p.conn.waiting_for().unwrap();
    site.source.complete("docs");
    p.conn.handle_ready(ticket);
    p.pump(&site, t, "");
    assert_eq!(p.log, [(301, None)]);

    let mut q = Peer::new(&site, t);
    q.pump(&site, t, &get("/docs/"));
    let ticket = q.conn.waiting_for().expect("index.html is opened, waiting");
    site.source.complete("docs/index.html");
    q.conn.handle_ready(ticket);
    q.pump(&site, t, "");
    assert_eq!(q.responses()[0].1, b"<h1>docs</h1>\n");

    // Missing files are judged by the open too.
    let mut r = Peer::new(&site, t);
    r.pump(&site, t, &get("/nope.txt"));
    let ticket = r.conn.waiting_for().unwrap();
    site.source.complete("nope.txt");
    r.conn.handle_ready(ticket);
    r.pump(&site, t, "");
    assert_eq!(r.log, [(404, None)]);
}

/// A driver that resumes with bytes other than the request that waited gets a 400, not a
/// response to a request nobody parked.
#[test]
fn resuming_with_other_bytes_is_refused() {
    let site = slow_site(false);
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(&site, t);
    let req = get("/big.bin");
    assert_eq!(conn.handle_input(t, Arrival::UNKNOWN, req.as_bytes()), 0);
    let ticket = conn.waiting_for().unwrap();
    conn.handle_ready(ticket);
    assert_eq!(conn.handle_input(t, Arrival::UNKNOWN, b"GET /x HT"), 9);
    let tx = conn.poll_transmit().unwrap();
    assert!(tx.head.starts_with(b"HTTP/1.1 400 "));
}
