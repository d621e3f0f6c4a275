//! The smoltcp server gives the same PROTOCOL.md answers as satchel-server: a fixed list of
//! requests, good and bad, each on a new connection to both, and the response bytes compared
//! exactly, except the `Date` line.
//!
//! Both serve the same folder. The smoltcp side reads it through a `FileSource` that reports
//! the same file versions as satchel-server's (so `ETag` and `Last-Modified` agree), behind the
//! same core and the smoltcp driver; the order of requests is the same, so the caches agree
//! too (`Cache-Status`).
//!
//! Needs the binaries: `cargo build --workspace --bins` first.

use std::fs;

use satchel_core::serve::Config;
use satchel_tests::smol::{
    self, board_site, exchange_many, exchange_std, parse, without_date, DirSource,
};
use satchel_tests::Server;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::write(root.join("index.html"), b"<h1>root</h1>\n").unwrap();
    fs::write(root.join("hello.txt"), b"hello, satchel\n").unwrap();
    fs::write(root.join("data.bin"), smol::MEDIUM).unwrap();
    fs::write(root.join("style.css"), b"body { margin: 0 }\n").unwrap();
    fs::create_dir(root.join("docs")).unwrap();
    fs::write(root.join("docs/index.html"), b"<h1>docs</h1>\n").unwrap();
    fs::create_dir(root.join("files")).unwrap();
    fs::write(root.join("files/a b.txt"), b"spaced\n").unwrap();
    fs::write(root.join(".secret"), b"hidden\n").unwrap();
    dir
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}

/// The requests, as (name, bytes, responses expected). Validators are filled in from the
/// host's answers (the comparison checks the smoltcp side sends the same ones).
fn requests(etag: &str, last_modified: &str) -> Vec<(&'static str, Vec<u8>, usize)> {
    let long_path = format!("/{}", "a".repeat(3000));
    let big_header = format!("X-Filler: {}\r\n", "b".repeat(9000));
    let list: Vec<(&'static str, String, usize)> = vec![
        ("get miss", get("/hello.txt", ""), 1),
        ("get hit", get("/hello.txt", ""), 1),
        ("root index", get("/", ""), 1),
        (
            "head",
            "HEAD /data.bin HTTP/1.1\r\nHost: test\r\n\r\n".into(),
            1,
        ),
        ("get larger file", get("/data.bin", ""), 1),
        ("range", get("/data.bin", "Range: bytes=100-199\r\n"), 1),
        ("suffix range", get("/data.bin", "Range: bytes=-500\r\n"), 1),
        ("open range", get("/data.bin", "Range: bytes=9990-\r\n"), 1),
        (
            "unsatisfiable range",
            get("/data.bin", "Range: bytes=20000-\r\n"),
            1,
        ),
        (
            "multi range",
            get("/data.bin", "Range: bytes=0-1,5-6\r\n"),
            1,
        ),
        ("bad range", get("/data.bin", "Range: pages=1-2\r\n"), 1),
        (
            "if-none-match",
            get("/hello.txt", &format!("If-None-Match: {etag}\r\n")),
            1,
        ),
        (
            "if-none-match other",
            get("/hello.txt", "If-None-Match: \"nope\"\r\n"),
            1,
        ),
        (
            "if-modified-since",
            get(
                "/hello.txt",
                &format!("If-Modified-Since: {last_modified}\r\n"),
            ),
            1,
        ),
        (
            "if-range match",
            get(
                "/hello.txt",
                &format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
            ),
            1,
        ),
        (
            "if-range stale",
            get("/hello.txt", "Range: bytes=0-4\r\nIf-Range: \"old\"\r\n"),
            1,
        ),
        ("folder redirect", get("/docs", ""), 1),
        ("folder index", get("/docs/", ""), 1),
        ("percent-encoded", get("/files/a%20b.txt", ""), 1),
        ("css type", get("/style.css", ""), 1),
        ("not found", get("/missing.txt", ""), 1),
        ("file as folder", get("/hello.txt/", ""), 1),
        ("hidden", get("/.secret", ""), 1),
        ("dot-dot", get("/a/../hello.txt", ""), 1),
        ("encoded dot-dot", get("/%2e%2e/etc/passwd", ""), 1),
        ("encoded nul", get("/hello%00.txt", ""), 1),
        (
            "method not allowed",
            "DELETE /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n".into(),
            1,
        ),
        (
            "post",
            "POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n".into(),
            1,
        ),
        (
            "version",
            "GET /hello.txt HTTP/9.9\r\nHost: test\r\n\r\n".into(),
            1,
        ),
        ("http/1.0", "GET /hello.txt HTTP/1.0\r\n\r\n".into(), 1),
        ("no host", "GET /hello.txt HTTP/1.1\r\n\r\n".into(), 1),
        (
            "two hosts",
            "GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            1,
        ),
        ("garbage", "BLAH\r\n\r\n".into(), 1),
        (
            "bare LF",
            "GET /hello.txt HTTP/1.1\nHost: test\n\n".into(),
            1,
        ),
        (
            "absolute form",
            "GET http://test/hello.txt HTTP/1.1\r\nHost: test\r\n\r\n".into(),
            1,
        ),
        (
            "asterisk",
            "OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n".into(),
            1,
        ),
        (
            "body on GET",
            get("/hello.txt", "Content-Length: 5\r\n") + "hello",
            2,
        ),
        (
            "chunked",
            get("/hello.txt", "Transfer-Encoding: chunked\r\n"),
            1,
        ),
        ("expect", get("/hello.txt", "Expect: 100-continue\r\n"), 1),
        (
            "expect other",
            get("/hello.txt", "Expect: something\r\n"),
            1,
        ),
        ("long request line", get(&long_path, ""), 1),
        ("large head", get("/hello.txt", &big_header), 1),
        (
            "connection close",
            get("/hello.txt", "Connection: close\r\n"),
            1,
        ),
        (
            "pipelined",
            get("/hello.txt", "")
                + &get("/missing", "")
                + &get("/data.bin", "Range: bytes=0-9\r\n"),
            3,
        ),
        (
            "pipelined after an error",
            "GET / HTTP/9.9\r\nHost: test\r\n\r\n".to_string() + &get("/hello.txt", ""),
            2,
        ),
    ];
    list.into_iter()
        .map(|(name, text, n)| (name, text.into_bytes(), n))
        .collect()
}

#[test]
fn smoltcp_server_answers_as_satchel_server_does() {
    let dir = fixture();
    let host = Server::start(dir.path(), &["--quiet"]);
    let site = board_site(DirSource::new(dir.path()), Config::host(), true);
    let mut stack = smol::loopback_world(site);
    let smol_addr = smol::loopback_addr();

    // The validators come from the host; the first two requests of the list are then the
    // miss and the hit on both sides.
    let probe_bytes = exchange_std(host.addr(), get("/hello.txt", "").as_bytes(), 1);
    let probe = parse(&probe_bytes, false).expect("a response from satchel-server");
    let etag = probe.header("etag").expect("etag").to_string();
    let last_modified = probe
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    // Give the smoltcp side the same history (its cache now holds hello.txt too).
    let smol_probe = exchange_many(&mut stack, smol_addr, get("/hello.txt", "").as_bytes(), 1)
        .expect("a response from the smoltcp server");
    assert_eq!(
        String::from_utf8_lossy(&without_date(&smol_probe)),
        String::from_utf8_lossy(&without_date(&probe_bytes))
    );

    for (name, request, count) in requests(&etag, &last_modified) {
        let from_host = exchange_std(host.addr(), &request, count);
        let from_smol = exchange_many(&mut stack, smol_addr, &request, count)
            .unwrap_or_else(|e| panic!("{name}: smoltcp side: {e}"));
        assert!(!from_host.is_empty(), "{name}: satchel-server sent nothing");
        let (a, b) = (without_date(&from_host), without_date(&from_smol));
        assert!(
            a == b,
            "{name}: answers differ\n--- satchel-server ---\n{}\n--- smoltcp ---\n{}",
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b)
        );
        // The one field left out is there on both sides (both have a clock).
        let dates = |r: &[u8]| r.windows(8).filter(|w| w == b"\r\nDate: ").count();
        assert_eq!(dates(&from_host), dates(&from_smol), "{name}: Date lines");
    }
}
