//! A file rewritten in place (same size) while a slow client is still receiving it: the client
//! must get one whole version or a body cut short, never a complete-looking mix of two.
//!
//! The slow reader is a relay between the client and the server that stops forwarding the
//! server's bytes after the first [`GATE`] of the first connection, until the test has rewritten
//! the file. A cached body is an immutable copy, so it arrives whole (the old version); a
//! streamed one (above `--max-cached-file`) is checked against the file's version between the
//! pieces the server sends, so the connection ends early and every client sees a short body.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use satchel_tests::peers::{run_program, ClientRun};
use satchel_tests::raw::Conn;
use satchel_tests::{bin_path, content, required_tool, Server, WAIT};

/// Larger than everything the kernel can hold in flight between the server and the relay
/// (`tcp_wmem` max 4 MiB + `tcp_rmem` max 32 MiB here, plus the relay's buffer), so the rewrite
/// always happens before the server has read the file's end.
const STREAMED: usize = 64 * 1024 * 1024;
/// Below the default `--max-cached-file` (8 MiB).
const CACHED: usize = 4 * 1024 * 1024;
/// Bytes the relay forwards before it stops and lets the test rewrite the file.
const GATE: usize = 1024 * 1024;

/// A TCP relay on 127.0.0.1 in front of `server`. On the first connection it forwards the
/// server's first [`GATE`] bytes, reports that on `paused`, and waits for `go` before forwarding
/// the rest; later connections (a client's retry) pass freely. When the server ends its side
/// (FIN or reset), the relay ends the client's side with a FIN.
struct Relay {
    addr: SocketAddr,
    paused: mpsc::Receiver<()>,
    go: mpsc::Sender<()>,
}

impl Relay {
    fn start(server: SocketAddr) -> Self {
        Self::start_gated(server, GATE)
    }

    /// A relay that stops after `gate` bytes of the first connection.
    fn start_gated(server: SocketAddr, gate: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused_tx, paused) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut gate = Some((gate, paused_tx, go_rx));
            // The thread ends with the test process; each connection is bounded by timeouts.
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let gate = gate.take();
                std::thread::spawn(move || relay_one(client, server, gate));
            }
        });
        Self { addr, paused, go }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits (bounded) until the first connection has forwarded [`GATE`] bytes and stopped.
    fn wait_paused(&self) {
        self.paused
            .recv_timeout(WAIT)
            .expect("the relay forwarded the first bytes of the body");
    }

    fn release(&self) {
        let _ = self.go.send(());
    }
}

/// Where the first connection stops, how it says so, and what lets it go on.
type Gate = (usize, mpsc::Sender<()>, mpsc::Receiver<()>);

fn relay_one(mut client: TcpStream, server: SocketAddr, mut gate: Option<Gate>) {
    let Ok(mut upstream) = TcpStream::connect_timeout(&server, WAIT) else {
        return;
    };
    for s in [&client, &upstream] {
        let _ = s.set_read_timeout(Some(WAIT));
        let _ = s.set_write_timeout(Some(WAIT));
    }
    // Requests: client → server, as they come.
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 || u_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u_out.shutdown(Shutdown::Write);
    });
    // Responses: server → client, stopping once at GATE bytes.
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarded = 0usize;
    loop {
        let want = match &gate {
            Some((at, ..)) => buf.len().min(at - forwarded),
            None => buf.len(),
        };
        let n = match upstream.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        forwarded += n;
        if gate.as_ref().is_some_and(|(at, ..)| forwarded == *at) {
            if let Some((_, paused, go)) = gate.take() {
                let _ = paused.send(());
                let _ = go.recv_timeout(WAIT);
            }
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// Writes `bytes` over the file at `path` in place: same inode, same size, no truncation.
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// Writes a file dated a minute ago, so that the rewrite's modification time surely differs
/// even on a file system with coarse timestamps.
fn write_dated(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    let past = SystemTime::now() - Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(past)
        .unwrap();
}

/// One GET through the relay while the file is rewritten: the declared length and the body
/// that arrived before the connection ended.
fn get_while_rewritten(relay: &Relay, path: &Path, name: &str, new: &[u8]) -> (usize, Vec<u8>) {
    let mut conn = Conn::open(relay.addr);
    conn.get(&format!("/{name}"), "Connection: close\r\n");
    relay.wait_paused();
    rewrite_in_place(path, new);
    relay.release();
    let all = conn.read_to_close();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head arrived")
        + 4;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let declared: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    (declared, all[end..].to_vec())
}

/// Runs `program` (in `cwd`) on a URL through a new relay in front of `server`, with `{url}`
/// in `args` standing for it, and rewrites the file at `path` with `new` while the relay holds
/// the first response back.
fn run_while_rewritten(
    server: SocketAddr,
    (path, new): (&Path, &[u8]),
    name: &str,
    (program, cwd): (&Path, &Path),
    args: &[&str],
) -> ClientRun {
    let relay = Relay::start(server);
    let url = relay.url(&format!("/{name}"));
    let args: Vec<String> = args.iter().map(|a| a.replace("{url}", &url)).collect();
    let run = std::thread::spawn({
        let (program, cwd) = (program.to_path_buf(), cwd.to_path_buf());
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_program(&program, &cwd, &args, WAIT * 4)
        }
    });
    relay.wait_paused();
    rewrite_in_place(path, new);
    relay.release();
    run.join().unwrap()
}

/// Above `--max-cached-file` the body streams from the file. Rewritten in place mid-body, the
/// response must end short, and what did arrive is the old version's beginning.
#[test]
fn streamed_file_rewritten_in_place_ends_the_connection_early() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let (old, new) = (content(STREAMED, 1), content(STREAMED, 2));
    write_dated(&path, &old);
    let server = Server::start(dir.path(), &["--workers", "1"]);
    let relay = Relay::start(server.addr());

    let (declared, body) = get_while_rewritten(&relay, &path, "big.bin", &new);
    assert_eq!(declared, STREAMED);
    assert!(
        body.len() < declared,
        "a complete-looking body of a file rewritten while it was sent ({} bytes; {} of them \
         differ from the old version)",
        body.len(),
        body.iter().zip(&old).filter(|(a, b)| a != b).count()
    );
    // The relay forwarded GATE bytes, head included (well under 1 KiB), before it paused.
    assert!(body.len() >= GATE - 1024, "the first bytes were forwarded");
    assert!(
        body == old[..body.len()],
        "every byte sent belongs to the version the response announced"
    );
    // The access log says the response was cut short.
    let line = (0..4)
        .filter_map(|_| server.next_line(WAIT))
        .find(|l| l.contains("GET /big.bin"))
        .expect("an access-log line for the download");
    assert!(line.ends_with(" incomplete"), "{line}");
    assert!(line.contains(" bypass "), "{line}");
}

/// A streamed body small enough to be queued whole in the socket buffers before the rewrite:
/// the server has finished (and logged it complete), the client has not read it yet. What the
/// client then reads must still be the old version: the bytes were copied out of the file when
/// sent. (`sendfile` from the file would hand the kernel references to the page cache, which
/// the in-place rewrite changes under the unread bytes: a complete-looking mixed body.)
#[test]
fn streamed_body_already_queued_is_not_changed_by_a_rewrite() {
    queued_body_survives_a_rewrite(512 * 1024, 9);
}

/// The same with a body of two 512 KiB pieces (the server's streaming buffer). This is what
/// rules out `sendfile` for all pieces but the last with the last one copied and checked
/// (issue 19): every check passes before the rewrite, and the first piece, handed over by
/// reference, would arrive as the new version's bytes beside the old version's last piece.
#[test]
fn streamed_body_of_several_pieces_already_queued_is_not_changed_by_a_rewrite() {
    queued_body_survives_a_rewrite(1024 * 1024, 11);
}

/// Serves a `size`-byte file (streamed: above `--max-cached-file`) through a relay that stops
/// after 64 KiB; once the server has logged the response complete, rewrites the file in place
/// with other bytes, lets the relay go on, and asserts the body read is wholly the old version.
fn queued_body_survives_a_rewrite(size: usize, seed: u8) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.bin");
    let (old, new) = (content(size, seed), content(size, seed + 1));
    write_dated(&path, &old);
    let server = Server::start(
        dir.path(),
        &["--workers", "1", "--max-cached-file", "64KiB"],
    );
    let relay = Relay::start_gated(server.addr(), 64 * 1024);
    let mut conn = Conn::open(relay.addr);
    conn.get("/q.bin", "Connection: close\r\n");
    relay.wait_paused();
    // The server has sent it all (into the kernel's buffers) before the file changes.
    let line = (0..4)
        .filter_map(|_| server.next_line(WAIT))
        .find(|l| l.contains("GET /q.bin"))
        .expect("the response ended");
    assert!(
        line.contains("GET /q.bin 200") && line.contains(" bypass "),
        "{line}"
    );
    assert!(line.ends_with(" complete"), "{line}");
    rewrite_in_place(&path, &new);
    relay.release();
    let all = conn.read_to_close();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &all[end..];
    assert_eq!(body.len(), size);
    assert!(
        body == old,
        "{} bytes of the body that was sent whole changed afterwards",
        body.iter().zip(&old).filter(|(a, b)| a != b).count()
    );
}

/// satchel-client over the same slow path: without retries it fails (exit 5, network) and
/// leaves no final file; with one retry it resumes with `If-Range`, the server's answer is a
/// `200` of the new version (another ETag), and the client saves that, whole.
#[test]
fn satchel_client_never_saves_a_mixed_streamed_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let (old, new) = (content(STREAMED, 3), content(STREAMED, 4));
    write_dated(&path, &old);
    let server = Server::start(dir.path(), &["--workers", "1", "--quiet"]);

    let client = (bin_path("satchel-client"), dest.path().to_path_buf());
    let client = (client.0.as_path(), client.1.as_path());
    let args = ["{url}", "-o", "once.bin", "--retries", "0", "-q"];
    let run = run_while_rewritten(server.addr(), (&path, &new), "big.bin", client, &args);
    run.assert_code(5);
    assert!(!dest.path().join("once.bin").exists(), "no final file");

    // Again with a retry, from the new version back to the old one being rewritten.
    write_dated(&path, &old);
    let args = ["{url}", "-o", "retried.bin", "--retries", "1", "-q"];
    let run = run_while_rewritten(server.addr(), (&path, &new), "big.bin", client, &args);
    run.assert_code(0);
    let saved = fs::read(dest.path().join("retried.bin")).unwrap();
    assert!(
        saved == new,
        "the retry restarted on the new version and saved it whole"
    );
}

/// curl over the same slow path sees a body shorter than its Content-Length (exit 18).
#[test]
fn curl_sees_a_short_body_for_a_streamed_file_rewritten_in_place() {
    let Some(curl) = required_tool(&["curl"], "curl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let (old, new) = (content(STREAMED, 5), content(STREAMED, 6));
    write_dated(&path, &old);
    let server = Server::start(dir.path(), &["--workers", "1", "--quiet"]);
    let args = ["-s", "-o", "out.bin", "--max-time", "30", "{url}"];
    let program = (curl.as_path(), dest.path());
    let run = run_while_rewritten(server.addr(), (&path, &new), "big.bin", program, &args);
    assert_eq!(
        run.code,
        Some(18),
        "curl: partial file; stderr {}",
        run.stderr
    );
    let got = fs::read(dest.path().join("out.bin")).unwrap();
    assert!(got.len() < STREAMED && got == old[..got.len()]);
}

/// A cached body is an immutable copy: a hit in flight while the file is rewritten arrives as
/// the old version, whole; the next request (the entry is then stale) gets the new one, whole.
#[test]
fn cached_file_rewritten_in_place_is_sent_whole_old_then_whole_new() {
    let dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.bin");
    let (old, new) = (content(CACHED, 7), content(CACHED, 8));
    write_dated(&path, &old);
    let server = Server::start(dir.path(), &["--workers", "1", "--quiet"]);
    warm(server.addr(), &old);

    let relay = Relay::start(server.addr());
    let (declared, body) = get_while_rewritten(&relay, &path, "small.bin", &new);
    assert_eq!(declared, CACHED);
    assert!(body == old, "the hit in flight is the old version, whole");

    let after = satchel_tests::raw::get(server.addr(), "/small.bin");
    assert!(after.body == new, "then the new version, whole");

    // satchel-client through the slow path on a hit: the old version, whole, and exit 0.
    write_dated(&path, &old);
    warm(server.addr(), &old);
    let client = bin_path("satchel-client");
    let args = ["{url}", "-o", "c.bin", "--retries", "0", "-q"];
    let program = (client.as_path(), dest.path());
    run_while_rewritten(server.addr(), (&path, &new), "small.bin", program, &args).assert_code(0);
    assert!(fs::read(dest.path().join("c.bin")).unwrap() == old);
}

/// Asks for `/small.bin` until the cache holds it (a large file is stored on its second
/// request: the first only earns it a place).
fn warm(addr: SocketAddr, expected: &[u8]) {
    for _ in 0..3 {
        let r = satchel_tests::raw::get(addr, "/small.bin");
        assert!(r.body == expected);
        if r.header("cache-status")
            .is_some_and(|s| s.contains("stored"))
        {
            return;
        }
    }
    panic!("/small.bin was never stored in the cache");
}
