//! The smoltcp server and the smoltcp client (through the embedded-nal adapter) in one process,
//! over smoltcp's in-memory `Loopback` device: every baked file downloads byte for byte, hits
//! come from the cache, a Range resume completes a download, a revalidation is a 304, several
//! connections are served at once, pipelined requests are answered in order, and the sockets
//! listen again after each connection.
//!
//! Two clients run over the adapter: a small hand-written one (any request bytes, so it can ask
//! for a 304 too) and the core's download client, the code satchel-client runs (keep-alive
//! downloads, an `If-Range` resume, a restart on a stale validator, a 416 read as complete).

use satchel_core::cache::ContentCache;
use satchel_core::serve::Config;
use satchel_core::source::StaticSource;
use satchel_core::time::Duration;
use satchel_tests::smol::{
    self, baked_site, board_site, exchange, loopback_addr, parse, NalConn, BAKED, BIG,
};

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: board\r\n{extra}\r\n").into_bytes()
}

#[test]
fn downloads_every_baked_file_then_hits_the_cache() {
    let mut stack = smol::loopback_world(baked_site());
    let addr = loopback_addr();
    // Three rounds over 4 files: 12 connections on 4 sockets, so each socket is reused.
    for round in 0..3 {
        for file in BAKED {
            let bytes = exchange(&mut stack, addr, &get(&format!("/{}", file.path), ""))
                .unwrap_or_else(|e| panic!("{}: {e}", file.path));
            let r = parse(&bytes, false).expect("a response");
            assert_eq!(r.status, 200, "{}", file.path);
            assert_eq!(r.body, file.data, "{} round {round}", file.path);
            assert_eq!(
                r.header("content-length"),
                Some(file.data.len().to_string().as_str())
            );
            assert_eq!(r.header("date"), None, "no clock on the board, no Date");
            let expected = match (file.data.len() > smol::CACHE_BYTES / 2, round) {
                (true, _) => "satchel; fwd=bypass",
                (false, 0) => "satchel; fwd=miss; stored",
                (false, _) => "satchel; hit",
            };
            assert_eq!(r.header("cache-status"), Some(expected), "{}", file.path);
        }
    }
    let stats = stack.background_mut().site().cache.stats();
    assert_eq!((stats.insertions, stats.hits, stats.bypasses), (3, 6, 3));
    // The last client close reaches the server on the next polls.
    let deadline = std::time::Instant::now() + satchel_tests::WAIT;
    while stack.background_mut().active() > 0 && std::time::Instant::now() < deadline {
        stack.poll();
    }
    assert_eq!(stack.background_mut().active(), 0, "every connection ended");
}

#[test]
fn index_redirect_and_errors() {
    let mut stack = smol::loopback_world(baked_site());
    let addr = loopback_addr();
    let r = parse(
        &exchange(&mut stack, addr, &get("/docs/", "")).unwrap(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, BAKED[1].data);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = parse(
        &exchange(&mut stack, addr, &get("/docs", "")).unwrap(),
        false,
    )
    .unwrap();
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
    let r = parse(
        &exchange(&mut stack, addr, &get("/nope", "")).unwrap(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 404);
    let bad = b"GET / HTTP/9.9\r\nHost: board\r\n\r\n";
    let r = parse(&exchange(&mut stack, addr, bad).unwrap(), false).unwrap();
    assert_eq!((r.status, r.header("connection")), (505, Some("close")));
}

#[test]
fn range_resume_and_not_modified() {
    let mut stack = smol::loopback_world(baked_site());
    let addr = loopback_addr();

    // A download of big.bin interrupted after the head and 7,000 bytes of body.
    let mut conn = NalConn::open(&mut stack, addr).unwrap();
    conn.send(&get("/big.bin", "")).unwrap();
    let head_end;
    let partial = {
        let mut got = conn.read_exact_prefix(512).unwrap();
        head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        got.extend(
            conn.read_exact_prefix(head_end + 7_000 - got.len())
                .unwrap(),
        );
        got
    };
    conn.close();
    let first = parse(&partial, true).unwrap();
    assert_eq!(first.status, 200);
    let etag = first.header("etag").unwrap().to_string();
    let mut body = partial[head_end..].to_vec();
    assert_eq!(body.len(), 7_000);

    // Resume where it stopped, only if the file is still the same one.
    let resume = get(
        "/big.bin",
        &format!("Range: bytes=7000-\r\nIf-Range: {etag}\r\n"),
    );
    let r = parse(&exchange(&mut stack, addr, &resume).unwrap(), false).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 7000-19999/20000"));
    body.extend_from_slice(&r.body);
    assert_eq!(body, BIG, "the resumed download is the file");

    // A stale validator gets the whole file instead of a wrong splice.
    let stale = get("/big.bin", "Range: bytes=7000-\r\nIf-Range: \"0-0-0\"\r\n");
    let r = parse(&exchange(&mut stack, addr, &stale).unwrap(), false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, BIG.len()));

    // Revalidation: 304 without a body, for a cached and for a streamed file.
    for path in ["/hello.txt", "/big.bin"] {
        let first = parse(&exchange(&mut stack, addr, &get(path, "")).unwrap(), false).unwrap();
        let etag = first.header("etag").unwrap();
        let again = get(path, &format!("If-None-Match: {etag}\r\n"));
        let bytes = exchange(&mut stack, addr, &again).unwrap();
        let r = parse(&bytes, false).unwrap();
        assert_eq!(r.status, 304, "{path}");
        assert!(r.body.is_empty() && bytes.ends_with(b"\r\n\r\n"));
        assert_eq!(r.header("etag"), Some(etag));
    }
}

#[test]
fn concurrent_and_pipelined_connections() {
    let mut stack = smol::loopback_world(baked_site());
    let addr = loopback_addr();
    // Two connections open at once, each with two pipelined requests; the second connection's
    // requests are sent before the first connection reads anything.
    let two = [get("/big.bin", ""), get("/hello.txt", "")].concat();
    let socket_a = {
        let mut a = NalConn::open(&mut stack, addr).unwrap();
        a.send(&two).unwrap();
        a.into_socket()
    };
    let mut b = NalConn::open(&mut stack, addr).unwrap();
    b.send(&two).unwrap();
    assert_eq!(b.response(false).unwrap().body, BIG);
    assert_eq!(b.response(false).unwrap().body, b"hello, satchel\n");
    b.close();
    let mut a = NalConn::resume(&mut stack, socket_a);
    assert_eq!(a.response(false).unwrap().body, BIG);
    assert_eq!(a.response(false).unwrap().body, b"hello, satchel\n");
    a.close();
}

#[test]
fn idle_connections_time_out_and_the_socket_listens_again() {
    let mut config = Config::host();
    config.idle_timeout = Duration::from_millis(300);
    let site = board_site(StaticSource::new(BAKED), config, false);
    let mut stack: smol::LoopStack<StaticSource> = smol::loopback_world(site);
    let addr = loopback_addr();
    let started = std::time::Instant::now();
    // Two idle connections in turn, each closed by the server after the idle timeout.
    for _ in 0..2 {
        let mut c = NalConn::open(&mut stack, addr).unwrap();
        assert!(
            c.closed_by_peer(),
            "the idle connection is closed by the server"
        );
        c.close();
    }
    let waited = started.elapsed();
    // (The connection's clock counts whole milliseconds, so allow for truncation.)
    assert!(
        waited >= std::time::Duration::from_millis(590),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
    // And the sockets serve again.
    let r = parse(
        &exchange(&mut stack, addr, &get("/hello.txt", "")).unwrap(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

/// The core's download client (`satchel_core::client`), the same code satchel-client runs,
/// over the smoltcp adapter.
mod core_client {
    use std::convert::Infallible;

    use satchel_core::client::nal::{connect, exchange, Buffers, Handler, Waiter};
    use satchel_core::client::{plan, Plan, Request, Response};
    use satchel_core::smoltcp::core_instant;
    use satchel_core::time::{Duration, Instant};
    use satchel_tests::smol::{self, baked_site, host_clock, loopback_addr, BAKED, BIG};

    /// The adapter polls the interface (and the server behind it) on every call, so waiting
    /// is just trying again; a board would sleep until its next interrupt here.
    struct Spin;

    impl Waiter for Spin {
        fn now(&mut self) -> Instant {
            core_instant(host_clock())
        }
        fn wait(&mut self, _deadline: Instant) {
            std::thread::yield_now();
        }
    }

    /// Collects one response: its status, validator, resume plan and body.
    #[derive(Default)]
    struct Download {
        asked_from: Option<u64>,
        status: u16,
        etag: Option<String>,
        plan: Option<Plan>,
        body: Vec<u8>,
    }

    impl Handler for Download {
        type Error = Infallible;
        fn head(&mut self, response: &Response<'_>) -> Result<(), Infallible> {
            self.status = response.head.status.as_u16();
            self.etag = response
                .head
                .etag
                .map(|e| String::from_utf8_lossy(e).into_owned());
            self.plan = plan(self.asked_from, response).ok();
            Ok(())
        }
        fn body(&mut self, data: &[u8]) -> Result<(), Infallible> {
            self.body.extend_from_slice(data);
            Ok(())
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(10);
    const HOST: &str = "127.0.0.1:8080";

    /// `requests` in turn on one connection; the last one asks to close.
    fn fetch(
        stack: &mut smol::LoopStack<satchel_core::source::StaticSource>,
        requests: &[Request<'_>],
    ) -> Vec<Download> {
        let mut waiter = Spin;
        let mut socket = connect::<_, _, Infallible>(stack, &mut waiter, loopback_addr(), TIMEOUT)
            .expect("connect");
        let mut out = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let mut request = *request;
            request.keep_alive = i + 1 < requests.len();
            let mut download = Download {
                asked_from: request.range_from,
                ..Download::default()
            };
            let (mut tx, mut rx) = ([0u8; 1024], [0u8; 4096]);
            let done = exchange(
                stack,
                &mut socket,
                &mut waiter,
                &request,
                TIMEOUT,
                Buffers {
                    tx: &mut tx,
                    rx: &mut rx,
                },
                &mut download,
            )
            .expect("exchange");
            assert_eq!(done.keep_alive, request.keep_alive);
            assert_eq!(done.body_len, download.body.len() as u64);
            out.push(download);
        }
        embedded_nal::TcpClientStack::close(stack, socket).expect("close");
        out
    }

    #[test]
    fn downloads_every_file_on_one_connection() {
        let mut stack = smol::loopback_world(baked_site());
        let targets: Vec<String> = BAKED.iter().map(|f| format!("/{}", f.path)).collect();
        let requests: Vec<Request<'_>> = targets.iter().map(|t| Request::get(HOST, t)).collect();
        let downloads = fetch(&mut stack, &requests);
        for (file, d) in BAKED.iter().zip(&downloads) {
            assert_eq!(d.status, 200, "{}", file.path);
            assert_eq!(d.body, file.data, "{}", file.path);
            let total = Some(file.data.len() as u64);
            assert_eq!(d.plan, Some(Plan::Write { total }));
        }
    }

    #[test]
    fn resumes_a_download_with_if_range() {
        let mut stack = smol::loopback_world(baked_site());
        let first = fetch(&mut stack, &[Request::get(HOST, "/big.bin")]).remove(0);
        let etag = first.etag.expect("an ETag");
        // Keep 7,000 bytes, as if the first download had broken off there.
        let mut saved = first.body[..7_000].to_vec();
        let resume = Request {
            range_from: Some(7_000),
            if_range: Some(&etag),
            ..Request::get(HOST, "/big.bin")
        };
        let stale = Request {
            if_range: Some("\"not-this-one\""),
            ..resume
        };
        let done = Request {
            range_from: Some(BIG.len() as u64),
            ..resume
        };
        let answers = fetch(&mut stack, &[resume, stale, done]);

        assert_eq!(answers[0].status, 206);
        assert_eq!(
            answers[0].plan,
            Some(Plan::Append {
                offset: 7_000,
                total: Some(BIG.len() as u64)
            })
        );
        saved.extend_from_slice(&answers[0].body);
        assert_eq!(saved, BIG, "the resumed file is whole");

        // Another version: the server sends the whole file and the client starts over.
        assert_eq!(answers[1].status, 200);
        assert!(matches!(answers[1].plan, Some(Plan::Write { .. })));
        assert_eq!(answers[1].body, BIG);

        // Nothing left to fetch: 416, which the client reads as complete.
        assert_eq!(answers[2].status, 416);
        assert_eq!(answers[2].plan, Some(Plan::Complete));
    }
}
