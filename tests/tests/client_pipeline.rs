//! `satchel-client -r` pipelines its requests: checked on the wire with a small recording
//! server (which holds its answers until several requests have arrived on the connection, or
//! a bounded wait has passed, and can close after some answers as real servers do), and
//! against satchel-server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use satchel_tests::content;
use satchel_tests::peers::{run_client, ClientRun, Kind, Peer};
use satchel_tests::Server;

const LIMIT: Duration = Duration::from_secs(120);
const FILES: usize = 24;

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

/// `satchel-client -r URL -d DEST --connections C --pipeline P` (and `extra`) in `dir`.
fn mirror(dir: &Path, url: &str, dest: &str, (c, p): (u32, u32), extra: &[&str]) -> ClientRun {
    let (c, p) = (c.to_string(), p.to_string());
    let mut args = vec!["-r", url, "-d", dest, "--connections", &c, "--pipeline", &p];
    args.extend(extra);
    client(dir, &args)
}

fn body(i: usize) -> Vec<u8> {
    content(300 + 37 * i, i as u8)
}

/// What the recording server saw on each connection.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Requests received before the first answer was written.
    ahead: usize,
    /// Request targets, in arrival order.
    targets: Vec<String>,
}

struct Recorder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Serves `/d/` (a text listing of `FILES` files) and `/d/fN`; each connection answers
    /// at most `close_after` requests (then closes, saying so when `announce`).
    fn start(close_after: usize, announce: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let index = {
                            let mut s = seen2.lock().expect("lock");
                            s.push(Seen::default());
                            s.len() - 1
                        };
                        let seen = Arc::clone(&seen2);
                        conns.push(std::thread::spawn(move || {
                            serve(stream, close_after, announce, &seen, index);
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Self {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: reads requests; before the first answer, waits (up to 2 s of silence) for
/// four requests to be in, so a client that pipelines is seen doing it.
fn serve(
    mut stream: TcpStream,
    close_after: usize,
    announce: bool,
    seen: &Mutex<Vec<Seen>>,
    index: usize,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut inbox = Vec::new();
    let mut queue: Vec<String> = Vec::new();
    let mut answered = 0;
    let mut last_news = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    loop {
        while let Some(end) = inbox.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = inbox.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head).into_owned();
            let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
            seen.lock().expect("lock")[index]
                .targets
                .push(target.clone());
            queue.push(target);
        }
        let holding =
            answered == 0 && queue.len() < 4 && last_news.elapsed() < Duration::from_secs(2);
        if !holding && !queue.is_empty() {
            if answered == 0 {
                seen.lock().expect("lock")[index].ahead = queue.len();
            }
            for target in std::mem::take(&mut queue) {
                answered += 1;
                let last = answered >= close_after;
                if stream
                    .write_all(&answer(&target, last && announce))
                    .is_err()
                {
                    return;
                }
                if last {
                    return; // closes, the rest unanswered
                }
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                inbox.extend_from_slice(&buf[..n]);
                last_news = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if last_news.elapsed() > Duration::from_secs(30) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn answer(target: &str, close: bool) -> Vec<u8> {
    let close = if close { "Connection: close\r\n" } else { "" };
    let (kind, body) = if target == "/d/" {
        let listing: String = (0..FILES)
            .map(|i| format!("f{i}\t{}\n", body(i).len()))
            .collect();
        ("text/plain; charset=utf-8", listing.into_bytes())
    } else if let Some(i) = target
        .strip_prefix("/d/f")
        .and_then(|n| n.parse::<usize>().ok())
    {
        ("application/octet-stream", body(i))
    } else {
        let msg = b"no".to_vec();
        let mut out =
            format!("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n{close}\r\n").into_bytes();
        out.extend(msg);
        return out;
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nETag: \"{target}\"\r\n{close}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend(body);
    out
}

fn assert_mirrored(root: &Path) {
    for i in 0..FILES {
        let saved = std::fs::read(root.join(format!("f{i}"))).expect("saved");
        assert_eq!(saved, body(i), "f{i} holds its own bytes");
    }
}

#[test]
fn several_requests_are_in_flight_on_one_connection() {
    let rec = Recorder::start(usize::MAX, false);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://{}/d/", rec.addr);
    let run = mirror(dir.path(), &url, "m", (1, 8), &[]);
    run.assert_code(0);
    assert_mirrored(&dir.path().join("m/d"));
    let seen = rec.seen();
    // The listing is read on the first connection; the files go on one more.
    let files: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.targets.iter().any(|t| t.starts_with("/d/f")))
        .collect();
    assert_eq!(files.len(), 1, "{seen:?}");
    assert_eq!(files[0].targets.len(), FILES, "each file asked once");
    assert!(files[0].ahead >= 4, "requests sent ahead: {seen:?}");

    // --pipeline 1: one request at a time (the server waits 2 s, then answers it alone).
    let rec = Recorder::start(usize::MAX, false);
    let url = format!("http://{}/d/", rec.addr);
    let run = mirror(dir.path(), &url, "one", (1, 1), &["-q"]);
    run.assert_code(0);
    assert_mirrored(&dir.path().join("one/d"));
    assert!(rec.seen().iter().all(|s| s.ahead <= 1), "{:?}", rec.seen());
}

#[test]
fn a_server_closing_after_some_answers_gets_the_rest_asked_again() {
    for announce in [true, false] {
        let rec = Recorder::start(5, announce);
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://{}/d/", rec.addr);
        let run = mirror(dir.path(), &url, "m", (2, 8), &[]);
        run.assert_code(0);
        assert_mirrored(&dir.path().join("m/d"));
        assert!(
            run.stderr.contains(&format!("{FILES} saved")),
            "{}",
            run.stderr
        );
        let seen = rec.seen();
        let asked: usize = seen.iter().map(|s| s.targets.len()).sum();
        assert!(
            asked > FILES + 1,
            "unanswered requests were sent again: {seen:?}"
        );
        assert!(seen.iter().any(|s| s.ahead >= 4), "{seen:?}");
    }
}

#[test]
fn a_pipelined_mirror_from_satchel_server_saves_every_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let site = root.path().join("site");
    std::fs::create_dir_all(site.join("sub")).expect("mkdir");
    for i in 0..60 {
        std::fs::write(site.join(format!("f{i}")), content(50 + 97 * i, i as u8)).expect("w");
    }
    std::fs::write(site.join("sub/big"), content(3 << 20, 9)).expect("w");
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url("/site/");
    let run = mirror(dir.path(), &url, "m", (1, 16), &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("61 saved"), "{}", run.stderr);
    for i in 0..60 {
        let saved = std::fs::read(dir.path().join(format!("m/site/f{i}"))).expect("saved");
        assert_eq!(saved, content(50 + 97 * i, i as u8), "f{i}");
    }
    let big = std::fs::read(dir.path().join("m/site/sub/big")).expect("saved");
    assert_eq!(big, content(3 << 20, 9));
    // Again: every file is unchanged (304s), pipelined as well.
    let run = mirror(dir.path(), &url, "m", (1, 16), &[]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("0 saved, 61 unchanged"),
        "{}",
        run.stderr
    );
}

/// `satchel-client 127.0.0.1 PORT f0.bin ... f{n-1}.bin -d out` (and `extra`) in `dir`, each
/// file then checked.
fn several_names(dir: &Path, peer: &Peer, n: usize, extra: &[&str]) -> ClientRun {
    let port = peer.addr().port().to_string();
    let names: Vec<String> = (0..n).map(|i| format!("f{i}.bin")).collect();
    let mut args = vec!["127.0.0.1", &port];
    args.extend(names.iter().map(String::as_str));
    args.extend(["-d", "out"]);
    args.extend(extra);
    let run = client(dir, &args);
    run.assert_code(0);
    for i in 0..n {
        let saved = std::fs::read(dir.join(format!("out/f{i}.bin"))).expect("saved");
        assert_eq!(saved, body(i), "f{i}.bin holds its own bytes");
    }
    run
}

/// A folder of `n` files `fN.bin` for a third-party server.
fn peer_root(n: usize) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    for i in 0..n {
        std::fs::write(root.path().join(format!("f{i}.bin")), body(i)).expect("write");
    }
    root
}

#[test]
fn several_names_from_nginx_are_pipelined_on_one_connection() {
    let root = peer_root(12);
    let Some(peer) = Peer::start(Kind::Nginx, root.path()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    several_names(dir.path(), &peer, 12, &["-q", "--pipeline", "8"]);
    // nginx's `$pipe` says which requests it read while earlier ones were being answered.
    let log = peer.access_log();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 12, "each name asked once: {log}");
    assert!(
        lines.iter().all(|l| l.first() == lines[0].first()),
        "one connection: {log}"
    );
    assert!(
        lines.iter().filter(|l| l.get(2) == Some(&"p")).count() >= 4,
        "nginx saw pipelined requests: {log}"
    );
}

#[test]
fn several_names_from_an_http_1_0_server_that_closes_after_each_answer() {
    // python3's http.server answers HTTP/1.0 and closes after every response: the requests
    // sent ahead are unanswered each time, and sent again on the next connection.
    let root = peer_root(6);
    let Some(peer) = Peer::start(Kind::Python, root.path()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = several_names(dir.path(), &peer, 6, &["--pipeline", "4"]);
    assert!(!run.stderr.contains("retry"), "no retries: {}", run.stderr);
}
