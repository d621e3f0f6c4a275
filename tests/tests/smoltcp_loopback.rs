//! The smoltcp server and the smoltcp client (through the embedded-nal adapter) in one process,
//! over smoltcp's in-memory `Loopback` device: every baked file downloads byte for byte, hits
//! come from the cache, a Range resume completes a download, a revalidation is a 304, several
//! connections are served at once, pipelined requests are answered in order, and the sockets
//! listen again after each connection.

use satchel_core::cache::ContentCache;
use satchel_core::serve::Config;
use satchel_core::source::StaticSource;
use satchel_core::time::Duration;
use satchel_tests::smol::{
    self, baked_site, exchange, loopback_addr, parse, BoardSite, NalConn, BAKED, BIG,
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
    let site = BoardSite::new(StaticSource::new(BAKED), config, false);
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
