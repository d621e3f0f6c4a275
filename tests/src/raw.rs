//! A raw-socket HTTP/1.1 client for tests: sends exact bytes, reads responses framed by
//! `Content-Length`, every read bounded by a timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::WAIT;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD and 304).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times header `name` occurs.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// One TCP connection to a server.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` with [`WAIT`] as read and write timeout.
    pub fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("read timeout");
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends `GET path` with a Host header and the extra header lines given.
    pub fn get(&mut self, path: &str, extra: &str) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
        self.send(req.as_bytes());
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response; `head_only` for answers to HEAD. `None` if the connection closed
    /// (or reset) before a whole head arrived.
    ///
    /// # Panics
    /// On a read timeout: the server must answer within [`WAIT`].
    pub fn response(&mut self, head_only: bool) -> Option<Response> {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match self.fill() {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("no response within the timeout")
                }
                Err(_) => return None,
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        self.buf.drain(..end);
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = if head_only || status == 304 {
            0
        } else {
            response
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        while self.buf.len() < len {
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let take = len.min(self.buf.len());
        response.body = self.buf.drain(..take).collect();
        Some(response)
    }

    /// Whether the server closed the connection (EOF or reset) within `timeout`, with nothing
    /// more sent.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.set_read_timeout(timeout);
        match self.fill() {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    /// Everything the server sends until it closes the connection (bounded by [`WAIT`]).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// The underlying stream.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// Sends `request` on a new connection and reads one response.
pub fn one(addr: SocketAddr, request: &[u8]) -> Option<Response> {
    let mut c = Conn::open(addr);
    c.send(request);
    c.response(request.starts_with(b"HEAD "))
}

/// `GET path` on a new connection with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    one(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("a response")
}
