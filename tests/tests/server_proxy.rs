//! `--proxy-protocol`: the file listener requires a PROXY protocol v2 header (HAProxy's
//! `send-proxy-v2`) at the start of every connection; the access log shows the client it names.
//! A connection without a valid header, or whose header does not come whole within the head
//! timeout, is closed without a response.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use satchel_tests::haproxy::Haproxy;
use satchel_tests::raw::Conn;
use satchel_tests::{Server, WAIT};

/// A PROXY v2 header (PROXY command, TCP over IPv4) naming `client` connecting to `server`.
fn v2_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(c), SocketAddr::V4(s)) = (client, server) else {
        panic!("IPv4 only here")
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&c.ip().octets());
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&c.port().to_be_bytes());
    h.extend_from_slice(&s.port().to_be_bytes());
    h
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hello\n").unwrap();
    dir
}

/// The next access-log line that mentions `target`, within [`WAIT`].
fn log_line_for(server: &Server, target: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Some(line) = server.next_line(Duration::from_millis(200)) {
            if line.contains(target) {
                return line;
            }
        }
    }
    panic!("no access-log line for {target}");
}

/// Whether the server closed `stream` without sending a byte (EOF or reset), within [`WAIT`].
fn closed_unanswered(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_v2_header_names_the_client_in_the_access_log() {
    let dir = tree();
    let server = Server::start(dir.path(), &["--proxy-protocol"]);
    let client: SocketAddr = "203.0.113.7:40123".parse().unwrap();
    let mut conn = Conn::open(server.addr());
    // The header and two pipelined requests in one write, then a third on its own.
    let mut first = v2_header(client, server.addr());
    first.extend_from_slice(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    first.extend_from_slice(b"GET /hello.txt?two HTTP/1.1\r\nHost: t\r\n\r\n");
    conn.send(&first);
    for _ in 0..2 {
        let r = conn.response(false).expect("a response");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello\n"[..]));
    }
    conn.get("/hello.txt?three", "");
    assert_eq!(conn.response(false).unwrap().status, 200);
    for target in ["/hello.txt ", "/hello.txt?two", "/hello.txt?three"] {
        let line = log_line_for(&server, target);
        assert!(line.starts_with("203.0.113.7 GET "), "{line}");
    }

    // A header cut in two writes is awaited; LOCAL (a health check) keeps the socket's peer.
    let mut conn = Conn::open(server.addr());
    let header = v2_header(client, server.addr());
    conn.send(&header[..7]);
    std::thread::sleep(Duration::from_millis(50));
    conn.send(&header[7..]);
    conn.get("/hello.txt?split", "");
    assert_eq!(conn.response(false).unwrap().status, 200);
    assert!(log_line_for(&server, "?split").starts_with("203.0.113.7 "));
    let mut conn = Conn::open(server.addr());
    conn.send(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    conn.get("/hello.txt?local", "");
    assert_eq!(conn.response(false).unwrap().status, 200);
    assert!(log_line_for(&server, "?local").starts_with("127.0.0.1 "));
}

#[test]
fn connections_without_a_valid_header_are_closed_unanswered() {
    let dir = tree();
    let server = Server::start(dir.path(), &["--proxy-protocol", "--head-timeout", "300ms"]);
    // A plain HTTP request: refused at its first byte, nothing sent back, nothing logged.
    let mut plain = TcpStream::connect(server.addr()).unwrap();
    plain
        .write_all(b"GET /hello.txt?plain HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(closed_unanswered(&mut plain));
    // A damaged header (version 1 in the version nibble).
    let mut bad = TcpStream::connect(server.addr()).unwrap();
    let mut header = v2_header("192.0.2.1:1".parse().unwrap(), server.addr());
    header[12] = 0x11;
    header.extend_from_slice(b"GET /hello.txt?bad HTTP/1.1\r\nHost: t\r\n\r\n");
    bad.write_all(&header).unwrap();
    assert!(closed_unanswered(&mut bad));
    // Half a header, then silence: closed once the head timeout has passed.
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(&v2_header("192.0.2.1:1".parse().unwrap(), server.addr())[..10])
        .unwrap();
    assert!(closed_unanswered(&mut slow));
    // The server still serves a proper connection, and logged none of the refused ones.
    let mut good = Conn::open(server.addr());
    let mut request = v2_header("192.0.2.9:9".parse().unwrap(), server.addr());
    request.extend_from_slice(b"GET /hello.txt?good HTTP/1.1\r\nHost: t\r\n\r\n");
    good.send(&request);
    assert_eq!(good.response(false).unwrap().status, 200);
    let line = log_line_for(&server, "/hello.txt");
    assert!(line.starts_with("192.0.2.9 GET /hello.txt?good "), "{line}");
}

/// Through real HAProxy with `send-proxy-v2`, connecting to the node from 127.0.0.3 (`source`)
/// while the test connects from 127.0.0.1: the node logs the request under 127.0.0.1, the
/// client HAProxy saw. Its health checks carry the header too (LOCAL: no client), so they are
/// logged under HAProxy's own address, 127.0.0.3, which shows the socket's peer really differs.
#[test]
fn through_haproxy_send_proxy_v2_the_node_logs_the_client() {
    let dir = tree();
    let node = Server::start(dir.path(), &["--proxy-protocol"]);
    let Some(haproxy) = Haproxy::start_with(&[node.addr()], "send-proxy-v2 source 127.0.0.3")
    else {
        return;
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut conn = Conn::open(haproxy.addr());
        conn.get("/hello.txt?via-haproxy", "");
        match conn.response(false) {
            Some(r) if r.status == 200 => break,
            // Until a health check has marked the node up, HAProxy answers 503.
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!(
                "no 200 through haproxy: {:?}\n{}",
                other.map(|r| r.status),
                haproxy.log()
            ),
        }
    }
    let line = log_line_for(&node, "/hello.txt?via-haproxy");
    assert!(line.starts_with("127.0.0.1 GET "), "{line}");
    let check = log_line_for(&node, "HEAD / ");
    assert!(check.starts_with("127.0.0.3 HEAD / "), "{check}");
}
