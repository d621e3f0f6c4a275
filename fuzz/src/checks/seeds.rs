//! The seed corpora, built from the project's own test fixtures.
//!
//! `cargo test -p satchel-core --test fuzz_corpus -- --ignored write_seeds` writes them to
//! `fuzz/corpus/<target>/seed-*`; the replay test runs them all on stable either way.
//!
//! - `request_head`: the byte fixtures of `core/src/http/request.rs`'s tests;
//! - `path`: the fixtures of `core/src/path.rs`'s tests, and a sample of traversal payloads
//!   from `shared/security-data/payloadsallthethings/directory_traversal.txt` (MIT License,
//!   swisskyrepo/PayloadsAllTheThings), with a `/` put in front of those without one;
//! - `range_and_conditionals`, `connection`, `cache_ops`: encoded scenarios of the server's and
//!   the cache's tests (miss then hit, HEAD, ranges, 304, pipelining, slow reader, timeouts,
//!   eviction, version change, pins).

use super::Writer;

/// Every seed: (target, file name, content).
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (i, s) in REQUESTS.iter().enumerate() {
        seeds.push(("request_head", format!("seed-{i:02}"), s.to_vec()));
    }
    for (i, s) in PATHS.iter().chain(TRAVERSALS).enumerate() {
        let mut s = s.to_vec();
        if !s.starts_with(b"/") {
            s.insert(0, b'/');
        }
        seeds.push(("path", format!("seed-{i:02}"), s));
    }
    for (i, s) in range_seeds().into_iter().enumerate() {
        seeds.push(("range_and_conditionals", format!("seed-{i:02}"), s));
    }
    for (i, s) in connection_seeds().into_iter().enumerate() {
        seeds.push(("connection", format!("seed-{i:02}"), s));
    }
    for (i, s) in cache_seeds().into_iter().enumerate() {
        seeds.push(("cache_ops", format!("seed-{i:02}"), s));
    }
    for (i, s) in RESPONSES.iter().enumerate() {
        seeds.push(("response_head", format!("seed-{i:02}"), s.to_vec()));
    }
    for (i, s) in client_seeds().into_iter().enumerate() {
        seeds.push(("client", format!("seed-{i:02}"), s));
    }
    for (i, s) in client_pipeline_seeds().into_iter().enumerate() {
        seeds.push(("client_pipeline", format!("seed-{i:02}"), s));
    }
    for (i, (op, text)) in NAMES.iter().enumerate() {
        seeds.push(("names", format!("seed-{i:02}"), [&[*op][..], text].concat()));
    }
    for (i, s) in PROXY_HEADERS.iter().enumerate() {
        seeds.push(("proxy_header", format!("seed-{i:02}"), s.to_vec()));
    }
    seeds
}

/// `proxy_header` inputs: the headers of `core/src/proxy.rs`'s tests (TCP over IPv4 as HAProxy
/// sends it, IPv6, LOCAL, TLVs, a CRC32C TLV) and a plain request.
const PROXY_HEADERS: &[&[u8]] = &[
    b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xac\x13\x00\x01\xac\x13\x00\x03\xa6\x52\x00\x50GET / HTTP/1.1\r\n",
    b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02\x30\x39\x01\xbb",
    b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",
    b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x1a\xc0\x00\x02\x01\xc6\x33\x64\x07\xdc\x04\x00\x50\x04\x00\x02\xaa\xbb\x05\x00\x03\x01\x02\x03\xe0\x00\x00",
    b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x13\xc0\x00\x02\x01\xc6\x33\x64\x07\xdc\x04\x00\x50\x03\x00\x04\x00\x00\x00\x00",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
];

/// `names` inputs: (selector, text), from the client's target tests and traversal payloads.
const NAMES: &[(u8, &[u8])] = &[
    (0, b"a%20b.txt\t1234"),
    (0, b"sub/\t0"),
    (0, b"..%2F..%2Fetc%2Fpasswd\t1"),
    (1, b"report.pdf"),
    (1, b"%2e%2e"),
    (1, b"a%5Cb"),
    (1, b"caf%C3%A9"),
    (1, b"%ff"),
    (2, b"/a/b%20c.txt?q=/x"),
    (2, b"/../../x"),
    (2, b"/dir/"),
    (2, b"/x/..%2f..%2fetc%2fpasswd"),
    (3, b"/other"),
    (3, b"next"),
    (3, b"http://H:8080/x"),
    (3, b"//h:8080/y"),
    (3, b"http://evil:8080/x"),
    (3, b"http://h:80/x"),
    (3, b"https://h:8080/x"),
    (3, b"//evil/x"),
    (3, b"file:///etc/passwd"),
    (3, b"/a\r\nX: y"),
    (3, b"http://h:8080@evil/x"),
    (3, b"http://[::1]:8080/x"),
    (4, b"a b/c?d#e.txt"),
    (4, b"../../etc/passwd"),
    (4, b"/abs/name"),
    (4, b"100%.txt"),
];

/// The response fixtures of the client's tests (`core/src/client/`), and digest values.
const RESPONSES: &[&[u8]] = &[
    b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AA==:",
    b"SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    b"HTTP/1.1 200 OK\r\nRepr-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/",
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nall the rest",
        b"HTTP/1.0 404\nContent-Length: 0\n\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 O",
        b"HTTP/1.1 200 OK\rX: y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nlonger",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nwxyz\r\n2;e=1\r\n!!\r\n0\r\nT: v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: ",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/1.1 206 P\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 206 P\r\nContent-Range: bytes 0-9/10\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-5/10\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 206 P\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 1-2/3\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 416 R\r\nContent-Range: bytes */10\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 999 Nine\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.0 200 \nX-A:\t v \t\nContent-Length: 3, 3\r\nConnection: keep-alive\n\nabc",
        b"HTTP/1.1 206 \xe9t\xe9\r\nContent-Range: bytes 0-0/*\r\nX-Obs: caf\xc3\xa9\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: /docs/\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\nETag: \"a\"\r\nETag: \"b\"\r\n\r\n",
        b"HTTP/1.1 600 Beyond\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX\0: y\r\n\r\n",
];

/// `client_pipeline` inputs: the scenarios of `core/src/client/pipeline_pair.rs` (answers in
/// order in any read size, a server closing after some answers with or without a word, a
/// redirect and a `404` mid-line), and raw pipelined answers.
fn client_pipeline_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    // (depth, reads, close after, announce, acts)
    let cases: &[(u8, u8, u8, u8, &[u8])] = &[
        (3, 255, 0, 0, &[0, 1, 0, 1]),
        (3, 1, 0, 0, &[1, 0, 1, 0]),
        (3, 60, 2, 1, &[]),
        (3, 60, 2, 0, &[]),
        (3, 200, 1, 0, &[1, 1, 1, 1, 1, 1]),
        (3, 100, 0, 0, &[0, 2, 0, 0, 0]),
        (3, 100, 3, 0, &[0, 3, 2, 0, 0]),
        (0, 255, 0, 0, &[0, 0, 0, 0]),
    ];
    for &(depth, read, close_after, announce, acts) in cases {
        let mut w = Writer::default();
        w.u8(3);
        for len in [300, 0, 1200, 77] {
            w.u16(len);
        }
        w.u8(depth).u16(512).u8(read).u8(read / 2).u8(read).u8(7);
        w.u8(1).u8(close_after).u8(announce).bytes(acts);
        seeds.push(w.finish());
    }
    for raw in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdefHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: /a\r\nContent-Length: 0\r\n\r\nHTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n",
    ] {
        let mut w = Writer::default();
        w.u8(1).u16(3).u16(1).u16(0).u16(0).u8(1).u16(256);
        w.u8(9).u8(30).u8(1).u8(255).u8(0).raw(raw);
        seeds.push(w.finish());
    }
    seeds
}

/// (file length, asked from, framing, bare LF, interim, corruption kind).
type ClientCase = (u16, Option<u16>, u8, u8, u8, u8);

/// `client` inputs: a file, a saved prefix, buffer and read sizes, then an answer.
fn client_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    // (file length, asked from, framing, bare LF, interim, corruption kind)
    let cases: &[ClientCase] = &[
        (100, None, 0, 1, 1, 4),       // 200, Content-Length
        (100, None, 1, 1, 1, 4),       // 200, chunked
        (100, None, 2, 1, 1, 4),       // 200, until close
        (2000, Some(700), 0, 1, 1, 4), // 206
        (2000, Some(700), 1, 0, 0, 4), // 206 chunked, bare LF, 100 Continue
        (50, Some(50), 0, 1, 1, 4),    // 416: already complete
        (0, None, 0, 1, 1, 4),         // empty file
        (300, None, 0, 1, 1, 0),       // a byte changed
        (300, None, 1, 1, 1, 1),       // a byte inserted
        (300, None, 1, 1, 1, 2),       // a byte removed
        (300, None, 0, 1, 1, 3),       // cut short
    ];
    for &(len, asked, framing, bare_lf, interim, corrupt) in cases {
        let mut w = Writer::default();
        w.u16(len).u8(3);
        match asked {
            None => w.u8(0),
            Some(a) => w.u8(1).u16(a),
        };
        w.u16(1024).u8(10).u8(200).u8(1).u8(255);
        w.u8(1); // generated
        w.u8(1).u8(framing).u8(bare_lf).u8(interim);
        if framing == 2 {
            w.u8(0);
        }
        if framing == 1 {
            for _ in 0..8 {
                w.u8(60).u8(0);
            }
            w.u8(1);
        }
        w.u8(corrupt).u16(150).u8(b'x');
        seeds.push(w.finish());
    }
    for raw in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ] {
        let mut w = Writer::default();
        w.u16(3)
            .u8(0)
            .u8(0)
            .u16(512)
            .u8(5)
            .u8(5)
            .u8(5)
            .u8(5)
            .u8(0)
            .raw(raw);
        seeds.push(w.finish());
    }
    seeds
}

/// The request-head fixtures of the parser's tests.
const REQUESTS: &[&[u8]] = &[
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\rHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo\rst: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo,  CLOSE \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0, 7\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 00\r\nContent-Length: 0, 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: zero\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nif-modified-since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIF-RANGE: \"b\"\r\nRange: bytes=0-1\r\nRange: bytes=5-\r\nExpect: 100-Continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-!#$%&'*+.^_`|~: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[31m\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: identity\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\t  h \t\r\nX-Empty:\r\nX-Inner: a  b\r\n\r\n",
        b"GET / HTTP/1.1\r\n\tHost: h\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET / http/1.1\r\nHost: h\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET /\rx HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a HTTP/1.1\nHost: h\nAccept: */*\n\n",
        b"GET /a HTTP/1.1\r\nHost: h\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a%20b/%2e%2e HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a/b?x=1&y=/z HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET HTTP://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://example.com:8080/x/y?q HTTP/1.1\r\nHost: other\r\n\r\n",
        b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\n\r\n",
        b"GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET https://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET index.html HTTP/1.1\r\nHost: h\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        b"PUT /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"DELETE /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
        b"GET / HTTP/3.1\r\nHost: h\r\n\r\n",
        b"\r\n\n\r\n\n\r\n\n\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
];

/// The path fixtures of the path module's tests.
const PATHS: &[&[u8]] = &[
    b"/",
    b"/%252e%252e/x",
    b"/%2e%2e/etc/passwd",
    b"/%2e/a/%2E",
    b"/%2egit/HEAD",
    b"/%4g",
    b"/.%2E/x",
    b"/..",
    b"/..%2F..%2Fetc",
    b"/..%5c..%5cwin.ini",
    b"/.../x",
    b"/./",
    b"/./././/",
    b"/./a/./b/.",
    b"/.env",
    b"/.git/%zz",
    b"/.git/../x",
    b"/.well-known/../x",
    b"/.well-known/a/.env",
    b"//a///b//",
    b"/a",
    b"/a%",
    b"/a%00.html",
    b"/a%0d%0aSet-Cookie",
    b"/a%20b/%25zz",
    b"/a%2fb",
    b"/a%4",
    b"/a%7f",
    b"/a%zz",
    b"/a..b/c...",
    b"/a/../",
    b"/a/../b",
    b"/a/.git/config",
    b"/a/b/",
    b"/a/b/c.txt",
    b"/a\0b",
    b"/a\\b",
    b"/a\x1bb",
    b"/caf%C3%A9/%ff",
    b"/docs/./guide/intro.tar.gz",
    b"/index.html",
];

/// A sample of `directory_traversal.txt` (PayloadsAllTheThings, MIT License).
const TRAVERSALS: &[&[u8]] = &[
        b".htaccess",
        b"/cgi-bin/.%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        b"..%5c..%5c..%5c..%5c..%5c..%5c..%5c..%5c../winnt/system32/cmd.exe?/c+dir+c:\\",
        b"%%32%65%%36%38%%37%34%%36%31%%36%33%%36%33%%36%35%%37%33%%37%33",
        b"%00../../../../../../etc/shadow",
        b"%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%57%49%4e%44%4f%57%53%5c%77%69%6e%2e%69%6e%69",
        b"%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%57%49%4e%44%4f%57%53%5c%77%69%6e%2e%69%6e%69",
        b"/./././././././././././boot.ini",
        b"..\\..\\..\\..\\..\\..\\..\\..\\..\\..\\etc\\passwd",
        b"%5c%57%49%4e%44%4f%57%53%5c%77%69%6e%2e%69%6e%69",
        b"%2e%68%74%61%63%63%65%73%73",
        b"\\..\\..\\..\\..\\..\\..\\..\\..\\..\\..\\etc\\passwd%00",
        b"%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%2e%2e%5c%57%49%4e%44%4f%57%53%5c%77%69%6e%2e%69%6e%69",
        b"..%c0%af../..%c0%af../..%c0%af../..%c0%af../..%c0%af../..%c0%af../boot.ini",];

/// (size kind, size byte, then the bytes of the four fields).
type RangeCase = (
    u8,
    u8,
    &'static [u8],
    &'static [u8],
    &'static [u8],
    &'static [u8],
);

/// `range_and_conditionals` inputs: size kind and value, modified kind and value, other size,
/// HEAD first, then four fields (0 absent, 1 raw, 2 generated + choices).
fn range_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    // (size kind, size byte, range choice, if-range, if-none-match, if-modified-since)
    let cases: &[RangeCase] = &[
        (0, 100, &[2, 0, 4, 10, 4, 20], &[0], &[0], &[0]), // bytes=10-20
        (0, 100, &[2, 1, 4, 90, 0], &[0], &[0], &[0]),     // bytes=90-
        (0, 100, &[2, 2, 0, 4, 30], &[0], &[0], &[0]),     // bytes=-30
        (0, 100, &[2, 0, 2, 2], &[0], &[0], &[0]),         // past the end: 416
        (0, 100, &[2, 3, 0, 1], &[0], &[0], &[0]),         // two ranges: 200
        (0, 100, &[2, 4, 0, 1], &[0], &[0], &[0]),         // another unit
        (3, 0, &[2, 1, 0, 0], &[0], &[0], &[0]),           // empty file
        (2, 9, &[2, 0, 0, 1], &[0], &[0], &[0]),           // streamed file
        (0, 50, &[2, 0, 0, 1], &[2, 0], &[0], &[0]),       // If-Range strong tag
        (0, 50, &[2, 0, 0, 1], &[2, 1], &[0], &[0]),       // If-Range weak tag
        (0, 50, &[2, 0, 0, 1], &[2, 3, 1, 0], &[0], &[0]), // If-Range date
        (0, 50, &[0], &[0], &[2, 1], &[0]),                // If-None-Match: 304
        (0, 50, &[0], &[0], &[2, 3], &[0]),                // list
        (0, 50, &[0], &[0], &[2, 4], &[2, 2, 0]),          // INM wins over IMS
        (0, 50, &[0], &[0], &[0], &[2, 1, 1]),             // IMS equal: 304
        (0, 50, &[0], &[0], &[0], &[2, 0, 2]),             // IMS earlier: 200
        (
            0,
            50,
            &[1, 9, b'b', b'y', b't', b'e', b's', b'=', b'1', b'-', b'2'],
            &[0],
            &[0],
            &[0],
        ),
        (0, 50, &[0], &[0], &[1, 1, b'*'], &[1, 3, b'x', b'y', b'z']),
    ];
    for (kind, size, range, if_range, inm, ims) in cases {
        let mut w = Writer::default();
        w.u8(*kind);
        if *kind != 3 {
            w.u8(*size);
        }
        w.u8(1).u32(100_000_000); // modified: 1_700_000_000
        w.u64(u64::MAX / 3).u8(0);
        w.raw(range).raw(if_range).raw(inm).raw(ims);
        seeds.push(w.finish());
    }
    seeds
}

/// Connection events, as `connection::check` decodes them.
mod ev {
    pub(super) const RAW: u8 = 0;
    pub(super) const GEN: u8 = 1;
    pub(super) const SEND: u8 = 3;
    pub(super) const SEND_ALL: u8 = 4;
    pub(super) const TIME: u8 = 5;
    pub(super) const EOF: u8 = 6;
    pub(super) const REPLACE: u8 = 7;
    pub(super) const TRANSMITTED: u8 = 8;
    pub(super) const SHUTDOWN: u8 = 9;
}

/// A generated request: method choice, target index, flags (then the range numbers if any).
fn gen(w: &mut Writer, method: u8, target: u8, flags: u16) {
    w.u8(ev::GEN).u8(method).u8(target).u16(flags);
    if flags & 16 != 0 {
        w.u16(10).u16(20).u8(0);
    }
}

fn connection_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mut w = Writer::default();
    // Miss then hit of the same file, both sent at once.
    w.u8(0);
    gen(&mut w, 0, 0, 0);
    gen(&mut w, 0, 0, 0);
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    // HEAD of the streamed file, then GET of it in small sends.
    w.u8(0);
    gen(&mut w, 2, 4, 0);
    w.u8(ev::SEND_ALL);
    gen(&mut w, 0, 4, 0);
    for _ in 0..6 {
        w.u8(ev::SEND).u16(700);
    }
    seeds.push(w.finish());
    // A range, then a 304 by tag, an index, a redirect, a listing, a 404, a hidden file.
    w.u8(0);
    for (target, flags) in [(5, 16), (0, 32), (1, 0), (2, 0), (10, 512), (12, 0), (6, 0)] {
        gen(&mut w, 0, target, flags);
        w.u8(ev::SEND_ALL);
    }
    seeds.push(w.finish());
    // Listings off, hidden files on.
    w.u8(3);
    for target in [3, 6, 8, 11] {
        gen(&mut w, 0, target, 0);
        w.u8(ev::SEND_ALL);
    }
    seeds.push(w.finish());
    // Pipelined raw requests in one chunk, the second HTTP/1.0 without keep-alive.
    w.u8(0).u8(ev::RAW).bytes(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /mid.bin HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    // A head split across chunks, with sends in between.
    w.u8(0).u8(ev::RAW).bytes(b"GET /hel");
    w.u8(ev::TIME).u8(0);
    w.u8(ev::RAW).bytes(b"lo.txt HTTP/1.1\r\nHo");
    w.u8(ev::RAW).bytes(b"st: t\r\n\r\n");
    w.u8(ev::SEND).u16(10).u8(ev::SEND).u16(4000);
    seeds.push(w.finish());
    // Slow head: 408.
    w.u8(0).u8(ev::RAW).bytes(b"GET / HTTP/1.1\r\n");
    w.u8(ev::TIME).u8(1).u8(ev::SEND_ALL);
    seeds.push(w.finish());
    // Idle keep-alive timeout, then a late request that is never read.
    w.u8(0);
    gen(&mut w, 0, 0, 0);
    w.u8(ev::SEND_ALL).u8(ev::TIME).u8(2);
    gen(&mut w, 0, 0, 0);
    seeds.push(w.finish());
    // Stalled reader: send timeout in the middle of the big file.
    w.u8(0);
    gen(&mut w, 0, 4, 0);
    w.u8(ev::SEND).u16(100).u8(ev::TIME).u8(3);
    seeds.push(w.finish());
    // The file is replaced while it is sent, and between two requests.
    w.u8(0);
    gen(&mut w, 0, 4, 0);
    w.u8(ev::SEND)
        .u16(1000)
        .u8(ev::REPLACE)
        .u8(2)
        .u16(100)
        .u8(9);
    w.u8(ev::SEND_ALL);
    gen(&mut w, 0, 0, 0);
    w.u8(ev::SEND_ALL).u8(ev::REPLACE).u8(0).u16(30).u8(1);
    gen(&mut w, 0, 0, 32);
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    // Malformed requests: bad method, Expect, missing Host, garbage.
    w.u8(0);
    gen(&mut w, 3, 0, 0);
    gen(&mut w, 0, 0, 128);
    gen(&mut w, 0, 0, 128 | 256);
    w.u8(ev::SEND_ALL);
    gen(&mut w, 0, 0, 2);
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    w.u8(0)
        .u8(ev::RAW)
        .bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    // Small head limits: a long target (414), a long head (431).
    w.u8(4);
    gen(&mut w, 0, 7, 0);
    w.u8(ev::SEND_ALL);
    gen(&mut w, 0, 0, 512 | 1024 | 32);
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    // Connection: close; EOF while sending; shutdown; a stray transmitted.
    w.u8(0);
    gen(&mut w, 0, 0, 4);
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    w.u8(0);
    gen(&mut w, 0, 5, 0);
    w.u8(ev::SEND).u16(50).u8(ev::EOF).u8(ev::SEND_ALL);
    seeds.push(w.finish());
    w.u8(0);
    gen(&mut w, 0, 0, 0);
    w.u8(ev::SHUTDOWN).u8(ev::SEND_ALL);
    seeds.push(w.finish());
    w.u8(0);
    gen(&mut w, 0, 0, 0);
    w.u8(ev::SEND_ALL).u8(ev::TRANSMITTED).u8(0);
    gen(&mut w, 0, 0, 0);
    w.u8(ev::SEND_ALL);
    seeds.push(w.finish());
    seeds
}

/// Cache operations, as `cache_ops::check` decodes them.
fn cache_seeds() -> Vec<Vec<u8>> {
    const GET: u8 = 0;
    const INSERT: u8 = 1;
    const RELEASE: u8 = 2;
    const INVALIDATE: u8 = 3;
    let mut seeds = Vec::new();
    let mut w = Writer::default();
    let config = |w: &mut Writer, max: u16, large: u16, small: u8| {
        w.u16(max).u16(large).u8(small);
    };
    // Insert, hit, release, version change, invalidate.
    config(&mut w, 256, 256, 10);
    w.u8(INSERT).u8(0).u8(1).u16(4).u8(1);
    w.u8(RELEASE).u8(0);
    w.u8(GET).u8(0).u8(1).u8(RELEASE).u8(0);
    w.u8(GET).u8(0).u8(2);
    w.u8(INSERT)
        .u8(0)
        .u8(2)
        .u16(8)
        .u8(1)
        .u8(INVALIDATE)
        .u8(0)
        .u8(RELEASE)
        .u8(0);
    seeds.push(w.finish());
    // Fill the arena to force evictions, with a pin held throughout.
    config(&mut w, 512, 512, 10);
    w.u8(INSERT).u8(1).u8(0).u16(300).u8(1);
    for k in [0u8, 2, 3, 5, 4] {
        w.u8(INSERT).u8(k).u8(0).u16(200).u8(1).u8(RELEASE).u8(1);
    }
    w.u8(GET).u8(1).u8(0);
    seeds.push(w.finish());
    // Large files are deferred, then admitted; a failing read stores nothing.
    config(&mut w, 900, 100, 10);
    w.u8(INSERT).u8(2).u8(0).u16(400).u8(1);
    w.u8(INSERT).u8(2).u8(0).u16(400).u8(1).u8(RELEASE).u8(0);
    w.u8(INSERT).u8(4).u8(3).u16(20).u8(0).u8(GET).u8(4).u8(3);
    seeds.push(w.finish());
    // Everything pinned: no room.
    config(&mut w, 1000, 1000, 50);
    for k in 0..4u8 {
        w.u8(INSERT).u8(k).u8(k).u16(250).u8(1);
    }
    w.u8(INSERT).u8(5).u8(0).u16(300).u8(1);
    seeds.push(w.finish());
    seeds
}
