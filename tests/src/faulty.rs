//! A misbehaving HTTP server for the client's fault tests.
//!
//! It serves one file (in one or more versions, each with its own strong `ETag`) on 127.0.0.1
//! port 0. Each accepted connection takes the next [`Act`] of a script (the last one repeats),
//! so a test can say "cut the first transfer short, then behave". [`Act::Serve`] is an honest
//! keep-alive server with `Range` and `If-Range`; every other act misbehaves in one precise way
//! and closes. Every request head received is recorded for the test to inspect.
//!
//! Everything is bounded: the accept loop polls a stop flag, connections time out, and drips
//! stop after a fixed number of bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How one connection misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Honest keep-alive service of the file (at any path but `/` and those containing
    /// `missing`), with `Range` + `If-Range`; `/` is a text listing with hostile names; paths
    /// containing `missing` are 404.
    Serve,
    /// Correct head, then only the first `n` body bytes, then a clean close (FIN).
    Truncate(usize),
    /// Correct head, the first `n` body bytes, then hang without closing.
    Stall(usize),
    /// `Content-Length` says half the file; the whole file follows in the same write.
    LongerThanDeclared,
    /// `Content-Length` larger than the file; the file follows, then a close.
    ShorterThanDeclared,
    /// Bytes that are not an HTTP response.
    GarbageHead,
    /// A correct response, but the head goes out one byte per interval.
    DripHead(Duration),
    /// A correct head, then the body one byte per interval.
    DripBody(Duration),
    /// An honest kept-alive answer to the first request; the next request is read and the
    /// connection closed without an answer (a server closing an idle connection just as the
    /// client reuses it).
    ServeOnceThenClose,
    /// Head and half the body, then a connection reset (RST).
    Reset,
    /// Answers a range request with a 206 for bytes from 0 instead of where it was asked.
    WrongRange,
    /// Chunked framing that breaks in the middle.
    BadChunked,
    /// Honest chunked response (no Content-Length).
    Chunked,
    /// Redirect to this `Location`.
    Redirect(String),
    /// This status with a short body.
    Status(u16),
    /// This status with `Retry-After: secs` and a short body.
    RetryAfter(u16, u32),
    /// A 200 with both `Transfer-Encoding: chunked` and `Content-Length` (RFC 9112 §6.3 lets
    /// a recipient treat it as an error), then an honest chunked body.
    ChunkedWithLength,
}

/// One version of the served file.
#[derive(Debug, Clone)]
pub struct Version {
    /// Strong ETag, with quotes.
    pub etag: String,
    /// Content.
    pub body: Vec<u8>,
    /// Extra header lines (each ending in CRLF) for its 200 and 206 answers, e.g. a
    /// `Repr-Digest`.
    pub headers: String,
}

/// The running server; stops on drop.
pub struct FaultyServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    path: String,
    script: Vec<(Act, usize)>,
    versions: Vec<Version>,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultyServer {
    /// Serves `versions` at `path` (e.g. `/file.bin`; [`Act::Serve`] answers other paths too);
    /// connection `i` gets `script[i]`
    /// (`(act, version index)`), the last entry repeating.
    ///
    /// # Panics
    /// When it cannot bind 127.0.0.1:0.
    pub fn start(path: &str, versions: Vec<Version>, script: Vec<(Act, usize)>) -> Self {
        assert!(!script.is_empty() && !versions.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            script,
            versions,
            requests: requests.clone(),
            connections: connections.clone(),
            stop: stop.clone(),
        });
        let thread = std::thread::spawn(move || accept_loop(&listener, &shared));
        Self {
            addr,
            stop,
            requests,
            connections,
            thread: Some(thread),
        }
    }

    /// A server with a single version of `body` (ETag `"v0"`) and one act for every connection.
    pub fn simple(path: &str, body: &[u8], act: Act) -> Self {
        Self::start(
            path,
            vec![Version {
                etag: "\"v0\"".into(),
                body: body.to_vec(),
                headers: String::new(),
            }],
            vec![(act, 0)],
        )
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let i = shared.connections.fetch_add(1, Ordering::SeqCst);
                let step = shared
                    .script
                    .get(i)
                    .or(shared.script.last())
                    .cloned()
                    .expect("script is not empty");
                let shared = shared.clone();
                // Connection threads are detached; each is bounded by its socket timeouts.
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared, &step.0, step.1);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A parsed request: target and the headers the server acts on.
struct Req {
    target: String,
    range_from: Option<u64>,
    if_range: Option<String>,
}

/// Reads one request head (bounded), records it, returns it; `None` at a clean close.
fn read_request(stream: &mut TcpStream, shared: &Shared) -> std::io::Result<Option<Req>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return Ok(None);
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    if let Ok(mut r) = shared.requests.lock() {
        r.push(text.clone());
    }
    let mut lines = text.lines();
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let mut req = Req {
        target,
        range_from: None,
        if_range: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("range") {
            req.range_from = value
                .strip_prefix("bytes=")
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case("if-range") {
            req.if_range = Some(value.to_owned());
        }
    }
    Ok(Some(req))
}

fn serve(mut stream: TcpStream, shared: &Shared, act: &Act, version: usize) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let file = shared
        .versions
        .get(version)
        .or(shared.versions.last())
        .cloned()
        .expect("versions is not empty");
    let body = &file.body;
    let ok_head = |len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n{}\r\n",
            file.etag, file.headers
        )
    };
    let half = body.len() / 2;

    if *act == Act::Reset {
        // Leave the request unread: closing a socket with unread input makes Linux send RST.
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(ok_head(body.len()).as_bytes())?;
        stream.write_all(&body[..half])?;
        std::thread::sleep(Duration::from_millis(50));
        return Ok(());
    }

    let Some(req) = read_request(&mut stream, shared)? else {
        return Ok(());
    };
    if req.target.contains("missing") {
        return not_found(&mut stream);
    }
    match act {
        Act::Serve => {
            let mut req = req;
            loop {
                if req.target == "/" {
                    serve_listing(&mut stream, shared, &file)?;
                } else if req.target.contains("missing") {
                    not_found(&mut stream)?;
                } else {
                    serve_honest(&mut stream, &file, &req)?;
                }
                match read_request(&mut stream, shared)? {
                    Some(next) => req = next,
                    None => return Ok(()),
                }
            }
        }
        Act::Truncate(n) => {
            stream.write_all(ok_head(body.len()).as_bytes())?;
            stream.write_all(&body[..(*n).min(body.len())])?;
            stream.shutdown(Shutdown::Both)
        }
        Act::Stall(n) => {
            stream.write_all(ok_head(body.len()).as_bytes())?;
            stream.write_all(&body[..(*n).min(body.len())])?;
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
        Act::LongerThanDeclared => {
            let mut all = ok_head(half).into_bytes();
            all.extend_from_slice(body);
            stream.write_all(&all)
        }
        Act::ShorterThanDeclared => {
            stream.write_all(ok_head(body.len() + 100).as_bytes())?;
            stream.write_all(body)?;
            stream.shutdown(Shutdown::Both)
        }
        Act::GarbageHead => stream.write_all(b"HTTP/1.1 2OO OK\r\nContent-Length: 3\r\n\r\nabc"),
        Act::DripHead(every) => {
            let mut all = ok_head(body.len()).into_bytes();
            all.extend_from_slice(body);
            for b in all.iter().take(64) {
                if shared.stop.load(Ordering::SeqCst) || stream.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(*every);
            }
            Ok(())
        }
        Act::DripBody(every) => {
            stream.write_all(ok_head(body.len()).as_bytes())?;
            for b in body.iter().take(64) {
                if shared.stop.load(Ordering::SeqCst) || stream.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(*every);
            }
            Ok(())
        }
        Act::ServeOnceThenClose => {
            serve_honest(&mut stream, &file, &req)?;
            let _ = read_request(&mut stream, shared)?;
            stream.shutdown(Shutdown::Both)
        }
        Act::WrongRange => match req.range_from {
            Some(_) => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-{}/{}\r\nContent-Length: {}\r\nETag: {}\r\n\r\n",
                    body.len() - 1,
                    body.len(),
                    body.len(),
                    file.etag
                );
                stream.write_all(head.as_bytes())?;
                stream.write_all(body)
            }
            None => serve_honest(&mut stream, &file, &req),
        },
        Act::BadChunked => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: {}\r\n\r\n",
                file.etag
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(format!("{:x}\r\n", half).as_bytes())?;
            stream.write_all(&body[..half])?;
            stream.write_all(b"\r\nZZ-not-hex\r\n")?;
            stream.shutdown(Shutdown::Both)
        }
        Act::Chunked => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: {}\r\n\r\n",
                file.etag
            );
            stream.write_all(head.as_bytes())?;
            for piece in body.chunks(1000) {
                stream.write_all(format!("{:x};ext=1\r\n", piece.len()).as_bytes())?;
                stream.write_all(piece)?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\nX-Trailer: yes\r\n\r\n")?;
            stream.shutdown(Shutdown::Both)
        }
        Act::Redirect(location) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())
        }
        // Handled before the request is read.
        Act::Reset => Ok(()),
        Act::Status(code) => {
            let head = format!(
                "HTTP/1.1 {code} Status\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstatus"
            );
            stream.write_all(head.as_bytes())
        }
        Act::RetryAfter(code, secs) => {
            let head = format!(
                "HTTP/1.1 {code} Busy\r\nRetry-After: {secs}\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"
            );
            stream.write_all(head.as_bytes())
        }
        Act::ChunkedWithLength => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\nETag: {}\r\n\r\n",
                body.len(),
                file.etag
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(format!("{:x}\r\n", body.len()).as_bytes())?;
            stream.write_all(body)?;
            stream.write_all(b"\r\n0\r\n\r\n")?;
            stream.shutdown(Shutdown::Both)
        }
    }
}

/// The text listing of `/` (PROTOCOL.md's form): the file, a folder-less hostile entry, and
/// one whose name would climb out of the destination.
fn serve_listing(stream: &mut TcpStream, shared: &Shared, file: &Version) -> std::io::Result<()> {
    let name = shared.path.trim_start_matches('/');
    let text = format!("{name}\t{}\n..%2f..%2fescaped\t5\n..\t0\n", file.body.len());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        text.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(text.as_bytes())
}

fn not_found(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
}

/// An honest answer: 200, or 206 / 416 for a range whose `If-Range` matches (or is absent).
fn serve_honest(stream: &mut TcpStream, file: &Version, req: &Req) -> std::io::Result<()> {
    let body = &file.body;
    let len = body.len() as u64;
    let range_ok = req.if_range.as_ref().is_none_or(|v| *v == file.etag);
    match req.range_from.filter(|_| range_ok) {
        Some(from) if from >= len => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nETag: {}\r\n\r\n",
                file.etag
            );
            stream.write_all(head.as_bytes())
        }
        Some(from) => {
            let rest = &body[from as usize..];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{len}\r\nContent-Length: {}\r\nETag: {}\r\n{}\r\n",
                len - 1,
                rest.len(),
                file.etag,
                file.headers
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(rest)
        }
        None => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n{}\r\n",
                file.etag, file.headers
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(body)
        }
    }
}
