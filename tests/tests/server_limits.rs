//! Limits and lifecycle of satchel-server: the connection cap, timeouts, slowloris, large files
//! streamed from disk (and truncated while streaming), the command line, graceful shutdown.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use satchel_tests::content;
use satchel_tests::raw::{self, Conn};
use satchel_tests::{bin_path, Server};

fn root_with(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        fs::write(dir.path().join(name), data).unwrap();
    }
    dir
}

/// Sends `GET path` and reads until at least 1 MiB of the response has arrived.
fn start_streaming(addr: std::net::SocketAddr, path: &str) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < 1 << 20 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection ended before 1 MiB");
        got.extend_from_slice(&buf[..n]);
    }
    (s, got)
}

/// Reads until the server closes (or the read times out); returns the body after the head.
fn read_rest(s: &mut TcpStream, mut got: Vec<u8>) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    got.split_off(head_end)
}

/// Waits at most `timeout` for `child` to exit by itself and returns its status and stderr;
/// past it, kills it and fails.
fn exit_of(
    child: &mut std::process::Child,
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("satchel-server (pid {}) did not exit in time", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    (status, err)
}

#[test]
fn past_the_cap_a_client_gets_503_with_retry_after() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let server = Server::start(
        dir.path(),
        &["--quiet", "--max-connections", "2", "--workers", "1"],
    );
    let mut held: Vec<Conn> = (0..2).map(|_| Conn::open(server.addr())).collect();
    // Make sure both are accepted and served before the third arrives.
    for c in &mut held {
        c.get("/a.txt", "");
        assert_eq!(c.response(false).unwrap().status, 200);
    }
    let mut third = Conn::open(server.addr());
    third.get("/a.txt", "");
    let r = third.response(false).expect("an answer, not a hang");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(third.closed_within(Duration::from_secs(5)));
    // Once one leaves, a new client is served again.
    drop(held.pop());
    get_until_status(server.addr(), 200, "slot never freed");
}

/// A client that connects and says nothing is handed to the server only after a second
/// (deferred accept): meanwhile it holds no slot, and afterwards the idle timeout closes it.
/// `--no-defer-accept` makes it take its slot at once.
#[test]
fn silent_connections_hold_no_slot_until_handed_over() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let args = [
        "--quiet",
        "--max-connections",
        "1",
        "--workers",
        "1",
        "--idle-timeout",
        "1s",
    ];
    let server = Server::start(dir.path(), &args);
    let mut silent = Conn::open(server.addr());
    let r = raw::get(server.addr(), "/a.txt");
    assert_eq!(r.status, 200, "a silent connection took the only slot");
    // Handed over after the 1 s defer, then closed by the 1 s idle timeout.
    assert_closed_between(
        &mut silent,
        Duration::from_millis(900),
        Duration::from_secs(10),
    );

    let mut eager = args.to_vec();
    eager.push("--no-defer-accept");
    let server = Server::start(dir.path(), &eager);
    let _silent = Conn::open(server.addr());
    // The silent connection is accepted at once and holds the slot: the next client gets 503.
    get_until_status(
        server.addr(),
        503,
        "the silent connection never took the slot",
    );
}

#[test]
fn idle_connection_closed_silently_and_slow_head_gets_408() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let server = Server::start(
        dir.path(),
        &["--quiet", "--idle-timeout", "1s", "--head-timeout", "1s"],
    );
    let mut idle = Conn::open(server.addr());
    idle.get("/a.txt", "");
    assert_eq!(idle.response(false).unwrap().status, 200);
    assert_closed_between(
        &mut idle,
        Duration::from_millis(700),
        Duration::from_secs(5),
    );

    let mut slow = Conn::open(server.addr());
    slow.send(b"GET /a.txt HTTP/1.1\r\nHo");
    let r = slow.response(false).expect("a 408");
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
}

/// 500 connections dripping one header byte a second do not stop a normal client.
#[test]
fn slowloris_does_not_starve_normal_clients() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let server = Server::start(dir.path(), &["--quiet", "--head-timeout", "3s"]);
    let addr = server.addr();
    let mut drips: Vec<TcpStream> = (0..500)
        .map(|_| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
        .collect();
    let head = b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    for round in 0..3 {
        for s in &mut drips {
            let _ = s.write_all(&head[round..=round]);
        }
        let t = Instant::now();
        let mut c = Conn::open(addr);
        c.set_read_timeout(Duration::from_secs(2));
        c.get("/a.txt", "Connection: close\r\n");
        let r = c.response(false).expect("normal client served");
        assert_eq!(r.status, 200);
        eprintln!(
            "normal request served in {:?} beside 500 drippers",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
    // After the head timeout the drippers get 408 and are closed.
    std::thread::sleep(Duration::from_millis(1500));
    let mut buf = [0u8; 256];
    let s = &mut drips[0];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn large_files_bypass_the_cache_and_stream_intact() {
    let big = content(3 << 20, 0);
    let dir = root_with(&[("big.bin", big.clone()), ("small.bin", content(1000, 0))]);
    let server = Server::start(dir.path(), &["--quiet", "--max-cached-file", "1MiB"]);
    for _ in 0..2 {
        let r = raw::get(server.addr(), "/big.bin");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-status"), Some("satchel; fwd=bypass"));
        assert!(r.body == big, "streamed body differs");
    }
    let mut c = Conn::open(server.addr());
    c.get(
        "/big.bin",
        "Range: bytes=1000000-1000099\r\nConnection: close\r\n",
    );
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[1_000_000..1_000_100]);
    assert_eq!(
        raw::get(server.addr(), "/small.bin").header("cache-status"),
        Some("satchel; fwd=miss; stored")
    );
}

/// A file truncated while it streams ends the connection early; every byte sent is a byte of
/// the file as it was — never garbage, never padding.
#[test]
fn truncated_while_streaming_ends_cleanly() {
    let big = content(64 << 20, 0);
    let dir = root_with(&[("big.bin", big.clone())]);
    let server = Server::start(dir.path(), &["--quiet", "--max-cached-file", "1MiB"]);
    let (mut s, got) = start_streaming(server.addr(), "/big.bin");
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("big.bin"))
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let body = &read_rest(&mut s, got);
    assert!(
        body.len() < big.len(),
        "connection must end before the announced length"
    );
    assert!(
        body == &big[..body.len()],
        "bytes sent must be the file's own bytes"
    );
}

#[test]
fn command_line_errors_have_distinct_exit_codes() {
    let bin = bin_path("satchel-server");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&bin).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(&bin)
        .args(["0", "."])
        .args(["--cache-size", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));
    // A port in use: a run-time error, exit 1, one line naming the address.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = Command::new(&bin)
        .arg(&port)
        .arg(dir.path())
        .args(["--bind", "127.0.0.1", "--workers", "1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port) && err.lines().count() == 1, "{err}");
    let help = Command::new(&bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--cache-size",
        "--cache-entries",
        "--max-cached-file",
        "--workers",
        "--max-connections",
        "--idle-timeout",
        "--head-timeout",
        "--no-listing",
        "--hidden",
        "--quiet",
        "--bind",
    ] {
        assert!(help.contains(flag), "--help documents {flag}");
    }
}

/// A second satchel-server on the port of a running one (same user, so `SO_REUSEPORT` would let
/// it join the listeners) exits 1 naming the address "in use", instead of taking half the
/// connections and serving them from its own root; the first keeps serving all of them.
#[test]
fn a_second_server_on_a_port_in_use_exits_1() {
    let first_root = root_with(&[("a.txt", b"first\n".to_vec())]);
    let second_root = root_with(&[("a.txt", b"second\n".to_vec())]);
    let first = Server::start(first_root.path(), &["--quiet", "--workers", "2"]);
    let port = first.addr().port().to_string();
    let mut second = Command::new(bin_path("satchel-server"))
        .arg(&port)
        .arg(second_root.path())
        .args(["--bind", "127.0.0.1", "--workers", "2", "--quiet"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = exit_of(&mut second, Duration::from_secs(10));
    let mut out = String::new();
    second
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("in use"),
        "{err}"
    );
    assert!(!out.contains("listening on"), "{out}");
    // Every new connection still reaches the first server.
    for _ in 0..20 {
        let r = raw::get(first.addr(), "/a.txt");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"first\n"[..]));
    }
}

/// SIGTERM: new connections are refused, the response in flight completes, exit code 0.
#[test]
fn sigterm_finishes_in_flight_then_exits_zero() {
    let big = content(32 << 20, 0);
    let dir = root_with(&[("big.bin", big.clone())]);
    let mut server = Server::start(dir.path(), &["--max-cached-file", "1MiB"]);
    let (mut s, got) = start_streaming(server.addr(), "/big.bin");
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        read_rest(&mut s, got) == big,
        "the response in flight completes"
    );
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let lines = server.drain_lines(Duration::from_millis(200));
    assert!(
        lines.iter().any(|l| l.starts_with("shutdown: cache")),
        "{lines:?}"
    );
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "no longer accepting"
    );
}

#[test]
fn access_log_has_one_line_per_request() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let server = Server::start(dir.path(), &[]);
    // Skip the banner.
    let _ = server.next_line(Duration::from_secs(5));
    raw::get(server.addr(), "/a.txt");
    raw::get(server.addr(), "/nope");
    // Two workers may log the two requests in either order.
    let mut lines = [
        server.next_line(Duration::from_secs(5)).unwrap(),
        server.next_line(Duration::from_secs(5)).unwrap(),
    ];
    lines.sort_by_key(|l| l.contains(" /nope "));
    let [a, b] = lines;
    let fields: Vec<&str> = a.split(' ').collect();
    assert_eq!(
        &fields[..6],
        [
            "127.0.0.1",
            "GET",
            "/a.txt",
            "200",
            fields[4],
            "miss-stored"
        ],
        "{a}"
    );
    assert!(fields[6].ends_with("us"), "{a}");
    assert!(b.contains(" GET /nope 404 "), "{b}");
}

/// A closed stdout (`satchel-server | head -1`) must not kill the server: the access log and
/// the shutdown summary are dropped, requests are still served, SIGTERM still exits 0.
#[test]
fn closed_stdout_is_not_fatal() {
    use std::io::BufRead;
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let mut child = Command::new(bin_path("satchel-server"))
        .arg("0")
        .arg(dir.path())
        .args(["--bind", "127.0.0.1", "--workers", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    drop(out); // the reader goes away, like `head -1`
    for _ in 0..3 {
        assert_eq!(raw::get(addr, "/a.txt").status, 200);
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let (status, err) = exit_of(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The host's glue (epoll loop, pending buffers, lingering close) under hostile bytes: many
/// connections sending seeded garbage, partial heads, pipelined junk and abrupt closes. The
/// server stays up and keeps serving.
#[test]
fn hostile_bytes_do_not_take_the_server_down() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let server = Server::start(dir.path(), &["--quiet", "--head-timeout", "2s"]);
    let addr = server.addr();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 8] = [
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: \x01\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999\r\n\r\n",
        b"GET /a.txt HTTP/1.1\r\nHo",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    let mut held = Vec::new();
    for i in 0..200 {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
            continue;
        };
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut bytes = Vec::new();
        for _ in 0..(next() % 6) {
            if next() % 3 == 0 {
                bytes.extend((0..(next() % 3000)).map(|_| next() as u8));
            } else {
                bytes.extend_from_slice(pieces[(next() % 8) as usize]);
            }
        }
        let _ = s.write_all(&bytes);
        match i % 3 {
            0 => drop(s), // abrupt close, maybe with unread data
            1 => {
                let _ = s.shutdown(std::net::Shutdown::Write); // half-close
                held.push(s);
            }
            _ => held.push(s), // stays open mid-head
        }
    }
    // Still serving, promptly.
    for _ in 0..5 {
        let r = raw::get(addr, "/a.txt");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"a\n"[..]));
    }
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(raw::get(addr, "/a.txt").status, 200);
}

/// Asserts that the server closes `conn` neither before `min` (a timeout firing, not an early
/// drop) nor after `max`.
#[track_caller]
fn assert_closed_between(conn: &mut Conn, min: Duration, max: Duration) {
    let t = Instant::now();
    assert!(conn.closed_within(max), "not closed within {max:?}");
    let after = t.elapsed();
    assert!(after >= min, "closed after {after:?}, before {min:?}");
}

/// GETs `/a.txt` until the answer has `status`, for at most 5 s.
#[track_caller]
fn get_until_status(addr: std::net::SocketAddr, status: u16, never: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw::get(addr, "/a.txt").status != status {
        assert!(Instant::now() < deadline, "{never}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 16, item 9: a response cut short (here the client goes away mid-body with bytes
/// unread, so the kernel resets the connection, as when the client is killed) is logged with
/// the bytes actually sent and marked `incomplete`; a whole one is marked `complete`.
#[test]
fn access_log_tells_cut_responses_from_complete_ones() {
    let total = 32usize << 20;
    let dir = root_with(&[("big.bin", content(total, 5)), ("a.txt", b"a\n".to_vec())]);
    let server = Server::start(dir.path(), &["--max-cached-file", "1MiB"]);
    let _ = server.next_line(Duration::from_secs(5)); // the banner
    let (s, got) = start_streaming(server.addr(), "/big.bin");
    drop(s);
    let line = server
        .next_line(Duration::from_secs(10))
        .expect("a log line for the cut response");
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 8, "{line}");
    assert_eq!(
        (fields[1], fields[2], fields[3], fields[5], fields[7]),
        ("GET", "/big.bin", "200", "bypass", "incomplete"),
        "{line}"
    );
    let sent: usize = fields[4].parse().unwrap();
    assert!(
        sent >= got.len() && sent < total,
        "{sent} bytes logged, {} received of {total}: {line}",
        got.len()
    );

    assert_eq!(raw::get(server.addr(), "/a.txt").status, 200);
    let line = server
        .next_line(Duration::from_secs(10))
        .expect("a log line for the whole response");
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        (fields[1], fields[2], fields[3], fields[7]),
        ("GET", "/a.txt", "200", "complete"),
        "{line}"
    );
    // The head plus the two body bytes, all sent.
    let sent: usize = fields[4].parse().unwrap();
    assert!(sent > 2 && sent < 1024, "{line}");
}

/// Issue 16, item 6: a server stopped (SIGSTOP, a suspended VM) longer than `--idle-timeout`
/// answers, on resume, the requests that arrived meanwhile on kept-alive connections, instead
/// of timing those connections out unread (which resets them). A connection that stayed
/// silent is still closed by the idle timeout.
#[test]
fn requests_that_arrived_during_a_pause_are_answered() {
    let dir = root_with(&[("a.txt", b"a\n".to_vec())]);
    let server = Server::start(dir.path(), &["--quiet", "--idle-timeout", "1s"]);
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::open(server.addr())).collect();
    for c in &mut conns {
        c.get("/a.txt", "");
        assert_eq!(c.response(false).map(|r| r.status), Some(200));
    }
    let mut silent = Conn::open(server.addr());
    silent.get("/a.txt", "");
    assert_eq!(silent.response(false).map(|r| r.status), Some(200));
    let pid = server.pid().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig}");
    };
    signal("-STOP");
    for c in &mut conns {
        c.get("/a.txt", "");
    }
    // Longer than the idle timeout plus a sweep: every connection is past its deadline.
    std::thread::sleep(Duration::from_millis(2500));
    signal("-CONT");
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.response(false);
        assert_eq!(
            r.map(|r| r.status),
            Some(200),
            "connection {i} was not answered"
        );
    }
    assert!(
        silent.closed_within(Duration::from_secs(10)),
        "the silent connection is still timed out"
    );
}

/// Issue 16, item 9, at shutdown: a response still in flight when the grace period ends (the
/// client stopped reading) is cut off and logged `incomplete`, with the bytes that went out.
#[test]
fn shutdown_logs_the_responses_it_cuts() {
    let total = 64usize << 20;
    let dir = root_with(&[("big.bin", content(total, 6))]);
    let mut server = Server::start(dir.path(), &["--max-cached-file", "1MiB"]);
    let _ = server.next_line(Duration::from_secs(5)); // the banner
    let (s, got) = start_streaming(server.addr(), "/big.bin");
    // The client keeps the connection open and reads no more: the response cannot finish.
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    let lines = server.drain_lines(Duration::from_millis(500));
    let line = lines
        .iter()
        .find(|l| l.contains(" GET /big.bin "))
        .unwrap_or_else(|| panic!("no log line for the cut response: {lines:?}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!((fields[3], fields[7]), ("200", "incomplete"), "{line}");
    let sent: usize = fields[4].parse().unwrap();
    assert!(sent >= got.len() && sent < total, "{line}");
    drop(s);
}
