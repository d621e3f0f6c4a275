//! Unit tests of the server connection, through a driver in miniature.

use core::cell::RefCell;
use std::borrow::ToOwned;
use std::string::String;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::cache::{ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot};
use crate::http::status::StatusCode;
use crate::source::{Arrival, StaticFile, StaticSource};
use crate::time::{Duration, Instant};

const BYTES: usize = 16 * 1024;
pub(super) type Board = ArrayCache<8, 16, BYTES>;

pub(super) static FILES: &[StaticFile] = &[
    StaticFile {
        path: "hello.txt",
        data: b"hello, satchel\n",
        modified: Some(1_700_000_000),
    },
    StaticFile {
        path: "docs/index.html",
        data: b"<h1>docs</h1>\n",
        modified: Some(1_700_000_000),
    },
    StaticFile {
        path: "big.bin",
        data: &[7u8; 6000],
        modified: Some(1_700_000_000),
    },
];

pub(super) type TestSite = SiteParts<StaticSource, RefCell<Board>>;

pub(super) fn test_site() -> TestSite {
    site_of(FILES, Config::host())
}

/// A site serving `files` with `config`, and a cache that stores every file on its first GET.
pub(super) fn site_of(files: &'static [StaticFile], config: Config) -> TestSite {
    SiteParts::new(StaticSource::new(files), board_cache(BYTES / 2), config)
}

/// A board's cache holding files of up to `max_entry_bytes`, each stored on its first GET.
fn board_cache(max_entry_bytes: usize) -> RefCell<Board> {
    let store = ArenaStore::new([0u8; BYTES], [const { Region::new() }; 8]).unwrap();
    let cache = Cache::new(
        store,
        [const { Slot::new() }; 8],
        [const { Bucket::new() }; 16],
        // No large-file deferral here.
        CacheConfig {
            max_entry_bytes,
            large_bytes: BYTES / 2,
            small_percent: 10,
        },
    )
    .unwrap();
    RefCell::new(cache)
}

type Conn<'s> = Connection<'s, TestSite, 4096>;

/// A driver in miniature: feeds `chunks` in turn (keeping what is not consumed, as a real
/// driver does), sends with write sizes from `sizes` (cycled), then EOF. Returns the bytes
/// the peer would receive.
pub(super) fn drive(site: &TestSite, chunks: &[&[u8]], sizes: &[usize]) -> Vec<u8> {
    drive_logged(site, chunks, sizes).0
}

/// One access-log record as a driver would write it from the events.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Logged {
    method: String,
    target: String,
    status: u16,
    planned: u64,
    done: Option<Completion>,
}

/// [`drive`], also returning what the events say, one record per response.
fn drive_logged(site: &TestSite, chunks: &[&[u8]], sizes: &[usize]) -> (Vec<u8>, Vec<Logged>) {
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(site, t);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut log = Vec::new();
    let mut size = sizes.iter().copied().cycle();
    let mut pump = |conn: &mut Conn<'_>,
                    pending: &mut Vec<u8>,
                    out: &mut Vec<u8>,
                    log: &mut Vec<Logged>| loop {
        let n = conn.handle_input(t, Arrival::UNKNOWN, pending);
        drain_events(conn, &pending[..n], log);
        pending.drain(..n);
        let mut progressed = n > 0;
        while let Some(tx) = conn.poll_transmit() {
            let max = size.next().unwrap_or(usize::MAX).max(1);
            let mut sent = std::vec![0u8; max.min(tx.len() as usize)];
            let n = tx.copy_to(site, &mut sent).unwrap();
            sent.truncate(n);
            out.extend_from_slice(&sent);
            conn.transmitted(t, sent.len());
            drain_events(conn, &[], log);
            progressed = true;
        }
        if !progressed || conn.is_closed() {
            break;
        }
    };
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        pump(&mut conn, &mut pending, &mut out, &mut log);
    }
    conn.handle_eof(t);
    pump(&mut conn, &mut pending, &mut out, &mut log);
    (out, log)
}

fn drain_events(conn: &mut Conn<'_>, data: &[u8], log: &mut Vec<Logged>) {
    while let Some(event) = conn.poll_event() {
        match event {
            Event::Response(info) => log.push(Logged {
                method: text(info.method_token.of(data)),
                target: text(info.target.of(data)),
                status: info.status.as_u16(),
                planned: info.bytes,
                done: None,
            }),
            Event::Done(c) => {
                let last = log.last_mut().expect("Done follows its Response");
                assert_eq!(last.done, None, "one Done per response");
                last.done = Some(c);
            }
        }
    }
}

/// Offers the whole request `req`, which the connection must take at once.
fn take(conn: &mut Conn<'_>, t: Instant, req: &str) {
    assert_eq!(
        conn.handle_input(t, Arrival::UNKNOWN, req.as_bytes()),
        req.len()
    );
}

/// Sends everything offered, in one piece each time, draining events as a driver must.
fn send_all(conn: &mut Conn<'_>, t: Instant) {
    while let Some(tx) = conn.poll_transmit() {
        let n = tx.len() as usize;
        conn.transmitted(t, n);
    }
    while conn.poll_event().is_some() {}
}

pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn get(path: &str) -> String {
    std::format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[test]
fn miss_then_hit_same_bytes() {
    let site = test_site();
    let req = get("/hello.txt") + &get("/hello.txt");
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    let parts: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(parts.len(), 2, "{out}");
    assert!(parts[0].starts_with("200 OK\r\n"));
    assert!(
        parts[0].contains("Cache-Status: satchel; fwd=miss; stored\r\n"),
        "{out}"
    );
    assert!(parts[1].contains("Cache-Status: satchel; hit\r\n"), "{out}");
    for p in &parts {
        assert!(p.ends_with("\r\n\r\nhello, satchel\n"), "{p}");
        assert!(p.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(p.contains("Content-Length: 15\r\n"));
        assert!(!p.contains("Date:"), "no clock, no Date");
    }
    let stats = site.cache().stats();
    assert_eq!((stats.hits, stats.insertions), (1, 1));
}

/// Found by the `connection` fuzz target: `transmitted` while nothing was offered (a driver
/// reporting a zero-byte write between responses) closed a kept-alive connection.
#[test]
fn transmitted_with_nothing_offered_changes_nothing() {
    let site = test_site();
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(&site, t);
    conn.transmitted(t, 0);
    conn.transmitted(t, 5);
    assert!(conn.is_idle() && !conn.is_closed());
    assert_eq!(conn.poll_timeout(), Some(t + Duration::from_secs(15)));
    let req = get("/hello.txt");
    take(&mut conn, t, &req);
    send_all(&mut conn, t);
    conn.transmitted(Instant::from_millis(9_000), 3);
    assert!(conn.is_idle() && !conn.is_closed());
    assert_eq!(conn.poll_timeout(), Some(t + Duration::from_secs(15)));
}

/// `closes_after` is what lets a driver send the last bytes with the FIN: true exactly while
/// a response that ends the connection is owed, then the connection is closed.
#[test]
fn closes_after_marks_the_last_response() {
    let site = test_site();
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(&site, t);
    let req = get("/hello.txt");
    take(&mut conn, t, &req);
    assert!(conn.is_sending() && !conn.closes_after());
    send_all(&mut conn, t);
    assert!(conn.is_idle() && !conn.closes_after());
    let req = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    take(&mut conn, t, req);
    assert!(conn.is_sending() && conn.closes_after());
    send_all(&mut conn, t);
    assert!(conn.is_closed() && !conn.closes_after());
    // A keep-alive response in flight when the server shuts down becomes the last one.
    let mut conn = Conn::new(&site, t);
    let req = get("/big.bin");
    take(&mut conn, t, &req);
    assert!(!conn.closes_after());
    conn.shutdown();
    assert!(conn.closes_after());
}

#[test]
fn head_has_headers_no_body() {
    let site = test_site();
    let out = text(&drive(
        &site,
        &[b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"],
        &[usize::MAX],
    ));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(out.contains("Content-Length: 6000\r\n"));
    assert!(out.ends_with("\r\n\r\n"), "{out}");
}

#[test]
fn errors_keep_or_close_as_protocol_says() {
    let site = test_site();
    // 405 and 404 and a bad path keep the connection; the next request is answered.
    let req = std::format!(
        "DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n{}{}{}",
        get("/missing"),
        get("/a/../hello.txt"),
        get("/hello.txt")
    );
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|p| &p[..3]).collect();
    assert_eq!(statuses, ["405", "404", "400", "200"], "{out}");
    assert!(out.contains("Allow: GET, HEAD\r\n"));
    // A malformed head: error, Connection: close, nothing after it.
    let req = std::format!(
        "{}GET / HTTP/9.9\r\nHost: t\r\n\r\n{}",
        get("/hello.txt"),
        get("/hello.txt")
    );
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|p| &p[..3]).collect();
    assert_eq!(statuses, ["200", "505"], "{out}");
    assert!(out.contains("Connection: close\r\n"));
}

#[test]
fn folder_redirect_and_index() {
    let site = test_site();
    let out = text(&drive(&site, &[get("/docs").as_bytes()], &[usize::MAX]));
    assert!(
        out.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{out}"
    );
    assert!(out.contains("Location: /docs/\r\n"));
    let out = text(&drive(&site, &[get("/docs/").as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(out.ends_with("<h1>docs</h1>\n"));
    // No listings from a static source: the root without index is 404.
    let out = text(&drive(&site, &[get("/").as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
}

#[test]
fn ranges_and_conditionals() {
    let site = test_site();
    let req = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=7-13\r\n\r\n";
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out}");
    assert!(out.contains("Content-Range: bytes 7-13/15\r\n"));
    assert!(out.ends_with("\r\n\r\nsatchel"));
    let req = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=15-\r\n\r\n";
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    assert!(
        out.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"),
        "{out}"
    );
    assert!(out.contains("Content-Range: bytes */15\r\n"));

    let first = text(&drive(
        &site,
        &[get("/hello.txt").as_bytes()],
        &[usize::MAX],
    ));
    let etag = first
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .unwrap()
        .to_owned();
    let req = std::format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n");
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
    assert!(!out.contains("Content-Length"));
    assert!(out.ends_with("\r\n\r\n"));
}

#[test]
fn timeouts() {
    let site = test_site();
    let t0 = Instant::from_millis(0);
    // Idle: closed silently.
    let mut conn = Conn::new(&site, t0);
    let idle = conn.poll_timeout().unwrap();
    assert_eq!(idle, t0 + site.config.idle_timeout);
    conn.handle_timeout(Instant::from_millis(idle.as_millis() - 1));
    assert!(!conn.is_closed());
    conn.handle_timeout(idle);
    assert!(conn.is_closed());
    assert!(conn.poll_transmit().is_none());
    // Slow head: 408 then close, deadline counted from the first byte.
    let mut conn = Conn::new(&site, t0);
    let t1 = Instant::from_millis(5000);
    assert_eq!(
        conn.handle_input(t1, Arrival::UNKNOWN, b"GET / HTTP/1.1\r\nHo"),
        0
    );
    assert_eq!(conn.poll_timeout(), Some(t1 + site.config.head_timeout));
    conn.handle_timeout(t1 + site.config.head_timeout);
    let tx = conn.poll_transmit().unwrap();
    assert!(tx.head.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    let n = tx.head.len();
    conn.transmitted(t1, n);
    assert!(conn.is_closed());
}

#[test]
fn eof_after_request_still_sends_response() {
    let site = test_site();
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(&site, t);
    let req = get("/hello.txt");
    take(&mut conn, t, &req);
    conn.handle_eof(t);
    assert!(!conn.is_closed());
    let tx = conn.poll_transmit().unwrap();
    let total = tx.head.len() + tx.body.len() as usize;
    conn.transmitted(t, total);
    assert!(conn.is_closed(), "closes once the owed response is sent");
    assert_eq!(site.cache().stats().entries, 1);
}

#[test]
fn pinned_entries_are_released() {
    let site = test_site();
    drive(
        &site,
        &[get("/big.bin").as_bytes(), get("/big.bin").as_bytes()],
        &[100],
    );
    // A dropped connection mid-body releases its pin too.
    {
        let t = Instant::from_millis(0);
        let mut conn = Conn::new(&site, t);
        let req = get("/big.bin");
        conn.handle_input(t, Arrival::UNKNOWN, req.as_bytes());
        conn.transmitted(t, 50);
    }
    let s = site.cache().stats();
    assert_eq!((s.hits, s.entries), (2, 1));
    // Everything unpinned: the entry can be evicted and replaced.
    assert!(site.cache().borrow_mut().invalidate(b"big.bin"));
    assert_eq!(site.cache().stats().entries, 0);
}

fn request_mix() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![
        Just(get("/hello.txt")),
        Just(get("/big.bin")),
        Just(get("/docs")),
        Just(get("/missing")),
        Just(String::from("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")),
        Just(String::from(
            "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-4000\r\n\r\n"
        )),
        Just(String::from("PUT /x HTTP/1.1\r\nHost: t\r\n\r\n")),
    ];
    proptest::collection::vec(one, 1..6).prop_map(|v| v.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Output bytes do not depend on how the input is split into reads.
    #[test]
    fn input_chunking_is_invisible(input in request_mix(), cuts in proptest::collection::vec(0usize..1000, 0..8)) {
        let whole = drive(&test_site(), &[&input], &[usize::MAX]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&input[last..p]);
            last = p;
        }
        chunks.push(&input[last..]);
        let split = drive(&test_site(), &chunks, &[usize::MAX]);
        prop_assert_eq!(text(&whole), text(&split));
    }

    /// Output bytes do not depend on how much each write takes (`transmitted(n)` splits).
    #[test]
    fn transmit_splits_are_invisible(input in request_mix(), sizes in proptest::collection::vec(1usize..300, 1..8)) {
        let whole = drive(&test_site(), &[&input], &[usize::MAX]);
        let split = drive(&test_site(), &[&input], &sizes);
        prop_assert_eq!(text(&whole), text(&split));
    }

    /// Nothing a peer sends panics the connection, and it never buffers unboundedly.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)) {
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let _ = drive(&test_site(), &refs, &[64]);
    }
}

/// RFC 9110 §14.2 defines range handling for GET only: a HEAD with `Range` is a plain HEAD
/// (200, the full length), conditionals included.
#[test]
fn head_with_range_is_a_plain_head() {
    let site = test_site();
    let req = "HEAD /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n";
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 6000\r\n"), "{out}");
    assert!(!out.contains("Content-Range"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "{out}");
    let req = "HEAD /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=9000-\r\n\r\n";
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    // GET keeps its ranges.
    let req = "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n";
    let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
    assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out}");
}

/// What the driver says of a request's arrival reaches the source's probe, for every path the
/// request looks at: nothing else tells a source which lookups it may reuse.
#[test]
fn arrival_reaches_the_probe() {
    use crate::path::SafePath;
    use crate::source::{FileSource, Metadata, SourceError};
    use core::cell::Cell;

    struct Recording {
        inner: StaticSource,
        seen: Cell<Option<Arrival>>,
    }
    impl FileSource for Recording {
        type File = usize;
        type Listing = &'static [u8];
        fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
            self.inner.metadata(path)
        }
        fn probe(&self, path: &SafePath<'_>, arrived: Arrival) -> Result<Metadata, SourceError> {
            self.seen.set(Some(arrived));
            self.inner.metadata(path)
        }
        fn open(&self, path: &SafePath<'_>) -> Result<(usize, Metadata), SourceError> {
            self.inner.open(path)
        }
        fn file_metadata(&self, file: &usize) -> Result<Metadata, SourceError> {
            self.inner.file_metadata(file)
        }
        fn read_at(&self, file: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
            self.inner.read_at(file, offset, buf)
        }
    }
    let base = test_site();
    let site = SiteParts::new(
        Recording {
            inner: StaticSource::new(FILES),
            seen: Cell::new(None),
        },
        base.cache,
        Config::host(),
    );
    let t = Instant::from_millis(0);
    let mut conn = Connection::<_, 4096>::new(&site, t);
    let req = get("/hello.txt");
    assert_eq!(conn.handle_input(t, Arrival(7), req.as_bytes()), req.len());
    assert_eq!(site.source.seen.get(), Some(Arrival(7)));
    while let Some(tx) = conn.poll_transmit() {
        let n = tx.len() as usize;
        conn.transmitted(t, n);
    }
    while conn.poll_event().is_some() {}
    // The index of a folder is probed with the arrival of the request naming the folder.
    let req = get("/docs/");
    assert_eq!(conn.handle_input(t, Arrival(9), req.as_bytes()), req.len());
    assert_eq!(site.source.seen.get(), Some(Arrival(9)));
}

/// A miss costs one lookup of the path plus the open; a hit, the probe alone; a folder, the
/// probe alone (it was looked up a second time before).
#[test]
fn a_path_is_looked_up_once() {
    use crate::path::SafePath;
    use crate::source::{FileSource, Metadata, SourceError};
    use core::cell::Cell;

    #[derive(Default)]
    struct Calls {
        probe: Cell<u32>,
        metadata: Cell<u32>,
        open: Cell<u32>,
    }
    struct Counting(StaticSource, Calls);
    impl FileSource for Counting {
        type File = usize;
        type Listing = &'static [u8];
        fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
            self.1.metadata.set(self.1.metadata.get() + 1);
            self.0.metadata(path)
        }
        fn probe(&self, path: &SafePath<'_>, _: Arrival) -> Result<Metadata, SourceError> {
            self.1.probe.set(self.1.probe.get() + 1);
            self.0.metadata(path)
        }
        fn open(&self, path: &SafePath<'_>) -> Result<(usize, Metadata), SourceError> {
            self.1.open.set(self.1.open.get() + 1);
            self.0.open(path)
        }
        fn file_metadata(&self, file: &usize) -> Result<Metadata, SourceError> {
            self.0.file_metadata(file)
        }
        fn read_at(&self, file: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
            self.0.read_at(file, offset, buf)
        }
    }
    let site = SiteParts::new(
        Counting(StaticSource::new(FILES), Calls::default()),
        test_site().cache,
        Config::host(),
    );
    let calls = |site: &SiteParts<Counting, _>| {
        let c = &site.source.1;
        let got = (c.probe.get(), c.metadata.get(), c.open.get());
        c.probe.set(0);
        c.metadata.set(0);
        c.open.set(0);
        got
    };
    // One request on a new connection; the response's bytes.
    fn serve_one<S: Site>(site: &S, req: &str) -> String {
        let t = Instant::from_millis(0);
        let mut conn = Connection::<_, 4096>::new(site, t);
        assert_eq!(
            conn.handle_input(t, Arrival::UNKNOWN, req.as_bytes()),
            req.len()
        );
        let (mut out, mut buf) = (Vec::new(), [0u8; 8192]);
        while let Some(tx) = conn.poll_transmit() {
            let n = tx.copy_to(site, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            conn.transmitted(t, n);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    let miss = serve_one(&site, &get("/hello.txt"));
    assert!(miss.starts_with("HTTP/1.1 200 OK\r\n"), "{miss}");
    assert_eq!(calls(&site), (1, 0, 1), "miss: probe + open");
    let hit = serve_one(&site, &get("/hello.txt"));
    assert!(hit.contains("Cache-Status: satchel; hit\r\n"), "{hit}");
    assert_eq!(calls(&site), (1, 0, 0), "hit: the probe");
    let folder = serve_one(&site, &get("/docs"));
    assert!(folder.starts_with("HTTP/1.1 301 "), "{folder}");
    assert_eq!(calls(&site), (1, 0, 0), "folder: the probe");
}

/// Every response gives a `Response` event with what was asked, then a `Done` with the bytes
/// actually sent; a response cut short says so, with the bytes that did go out.
#[test]
fn events_record_what_was_asked_and_what_was_sent() {
    let site = test_site();
    let req = std::format!(
        "{}HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nBREW /pot HTTP/1.1\r\nHost: t\r\n\r\n",
        get("/hello.txt?x=1")
    );
    let (out, log) = drive_logged(&site, &[req.as_bytes()], &[7]);
    let names: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|l| (l.method.as_str(), l.target.as_str(), l.status))
        .collect();
    assert_eq!(
        names,
        [
            ("GET", "/hello.txt?x=1", 200),
            ("HEAD", "/hello.txt", 200),
            ("BREW", "/pot", 405)
        ]
    );
    for l in &log {
        let done = l.done.expect("every response ends");
        assert!(done.complete, "{l:?}");
        assert_eq!(done.sent, l.planned, "{l:?}");
    }
    assert_eq!(log.iter().map(|l| l.planned).sum::<u64>(), out.len() as u64);

    // Cut short: 1000 bytes of a 6000-byte body, then the peer is gone.
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(&site, t);
    let req = get("/big.bin");
    take(&mut conn, t, &req);
    let Some(Event::Response(info)) = conn.poll_event() else {
        panic!("a response event first");
    };
    assert_eq!(conn.poll_event(), None);
    let head_len = conn.poll_transmit().unwrap().head.len();
    conn.transmitted(t, head_len + 1000);
    assert_eq!(conn.poll_event(), None, "nothing ends mid-body");
    conn.abort();
    assert_eq!(
        conn.poll_event(),
        Some(Event::Done(Completion {
            sent: head_len as u64 + 1000,
            complete: false
        }))
    );
    assert_eq!(info.bytes, head_len as u64 + 6000);
    assert_eq!(conn.poll_event(), None);
    // A send timeout cuts the response short the same way.
    let mut conn = Conn::new(&site, t);
    take(&mut conn, t, &req);
    while conn.poll_event().is_some() {}
    conn.transmitted(t, 10);
    conn.handle_timeout(t + site.config.send_timeout);
    assert_eq!(
        conn.poll_event(),
        Some(Event::Done(Completion {
            sent: 10,
            complete: false
        }))
    );
}

/// Events cannot be skipped: while one waits, no new request is taken.
#[test]
fn undrained_events_hold_the_next_request() {
    let site = test_site();
    let t = Instant::from_millis(0);
    let mut conn = Conn::new(&site, t);
    let req = get("/hello.txt");
    take(&mut conn, t, &req);
    while let Some(tx) = conn.poll_transmit() {
        let n = tx.len() as usize;
        conn.transmitted(t, n);
    }
    assert_eq!(conn.handle_input(t, Arrival::UNKNOWN, req.as_bytes()), 0);
    assert!(matches!(conn.poll_event(), Some(Event::Response(_))));
    assert!(matches!(conn.poll_event(), Some(Event::Done(c)) if c.complete));
    take(&mut conn, t, &req);
}

/// Past the connection cap the core answers: 503, `Retry-After`, close.
#[test]
fn busy_answers_503_and_closes() {
    let site = test_site();
    let t = Instant::from_millis(0);
    let mut conn = Conn::busy(&site, t);
    let Some(Event::Response(info)) = conn.poll_event() else {
        panic!("a response event");
    };
    assert_eq!(info.status, StatusCode::SERVICE_UNAVAILABLE);
    let tx = conn.poll_transmit().unwrap();
    let head = text(tx.head);
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    assert!(head.contains("Retry-After: 1\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\nserver busy: too many connections, retry later\n"),
        "{head}"
    );
    let n = tx.head.len();
    conn.transmitted(t, n);
    assert!(conn.is_closed());
    assert!(matches!(conn.poll_event(), Some(Event::Done(c)) if c.complete));
}

/// Lingering: after an error that closes, while the peer may still be sending; not after the
/// peer closed, nor after a clean `Connection: close`.
#[test]
fn linger_after_errors_while_the_peer_may_send() {
    let site = test_site();
    let t = Instant::from_millis(0);
    let run = |req: &[u8], eof: bool| {
        let mut conn = Conn::new(&site, t);
        let _ = conn.handle_input(t, Arrival::UNKNOWN, req);
        if eof {
            conn.handle_eof(t);
        }
        send_all(&mut conn, t);
        assert!(conn.is_closed());
        (conn.should_linger(false), conn.should_linger(true))
    };
    assert_eq!(
        run(b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", false),
        (true, true)
    );
    assert_eq!(
        run(b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", true),
        (false, false)
    );
    let close = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_eq!(run(close, false), (false, true));
}

/// A [`StaticSource`] whose files all take a new version when `generation` moves (a file
/// rewritten in place, same size, bytes unchanged here: only the version tells).
struct Rewritten {
    inner: StaticSource,
    generation: core::cell::Cell<u64>,
}

impl Rewritten {
    fn moved(&self, mut meta: crate::source::Metadata) -> crate::source::Metadata {
        meta.version.stamp += self.generation.get();
        meta
    }
}

impl crate::source::FileSource for Rewritten {
    type File = usize;
    type Listing = &'static [u8];

    fn metadata(
        &self,
        path: &crate::path::SafePath<'_>,
    ) -> Result<crate::source::Metadata, crate::source::SourceError> {
        self.inner.metadata(path).map(|m| self.moved(m))
    }

    fn open(
        &self,
        path: &crate::path::SafePath<'_>,
    ) -> Result<(usize, crate::source::Metadata), crate::source::SourceError> {
        self.inner.open(path).map(|(f, m)| (f, self.moved(m)))
    }

    fn file_metadata(
        &self,
        file: &usize,
    ) -> Result<crate::source::Metadata, crate::source::SourceError> {
        self.inner.file_metadata(file).map(|m| self.moved(m))
    }

    fn read_at(
        &self,
        file: &usize,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, crate::source::SourceError> {
        self.inner.read_at(file, offset, buf)
    }
}

/// A streamed body (above the cache's largest entry) is checked against the file's version
/// after each piece is read: once the file has changed, `copy_to` refuses the piece, the driver
/// aborts, and the response ends short (logged incomplete), never complete with a mixed body.
#[test]
fn a_streamed_file_whose_version_changes_mid_body_ends_short() {
    type Streaming = SiteParts<Rewritten, RefCell<Board>>;
    let site = |max_entry_bytes| {
        let source = Rewritten {
            inner: StaticSource::new(FILES),
            generation: core::cell::Cell::new(0),
        };
        SiteParts::new(source, board_cache(max_entry_bytes), Config::host())
    };
    let t = Instant::from_millis(0);
    // Sends big.bin (6000 bytes) in 1000-byte pieces, rewriting it after `rewrite_after`
    // pieces: what was sent and whether the response completed.
    let run = |site: &Streaming, rewrite_after: usize| {
        let mut conn = Connection::<'_, Streaming, 4096>::new(site, t);
        let req = b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
        assert_eq!(conn.handle_input(t, Arrival::UNKNOWN, req), req.len());
        let mut out = Vec::new();
        let mut pieces = 0;
        while let Some(tx) = conn.poll_transmit() {
            if pieces == rewrite_after {
                site.source().generation.set(1);
            }
            let mut buf = [0u8; 1000];
            match tx.copy_to(site, &mut buf) {
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    conn.transmitted(t, n);
                }
                Err(SourceChanged) => conn.abort(),
            }
            pieces += 1;
        }
        let mut complete = None;
        while let Some(event) = conn.poll_event() {
            if let Event::Done(c) = event {
                complete = Some(c.complete);
            }
        }
        (out, complete)
    };
    let streamed = site(1024);
    let (out, complete) = run(&streamed, usize::MAX);
    assert_eq!(complete, Some(true));
    assert!(out.ends_with(&[7u8; 6000]));
    streamed.source().generation.set(0);
    let (out, complete) = run(&streamed, 3);
    assert_eq!(complete, Some(false), "cut short");
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(out.len() - head_end < 6000, "the body ends short");
    let head = std::str::from_utf8(&out[..head_end]).unwrap();
    assert!(head.contains("Content-Length: 6000"), "{head}");

    // A cached body is an immutable copy: the same rewrite mid-body changes nothing sent.
    let cached = site(BYTES / 2);
    let (out, complete) = run(&cached, 3);
    assert_eq!(complete, Some(true));
    assert!(out.ends_with(&[7u8; 6000]));
}
