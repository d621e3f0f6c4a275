//! The admin listener (`--admin ADDR`): `GET /healthz` and `GET /metrics` on a port of their
//! own, served by one small thread, so that no file under ROOT can shadow them and a busy file
//! port never delays a health check.
//!
//! One connection at a time, one request per connection (`Connection: close`), each bounded by
//! [`IO_TIMEOUT`] for reading its head and writing its answer: a balancer's check and a
//! Prometheus scrape are short, and a client that stalls costs the others at most that long.
//! Request heads are parsed by the core's parser, as on the file port.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use satchel_core::cache::ContentCache;
use satchel_core::http::method::Method;
use satchel_core::http::request::{parse_request, Limits};
use satchel_core::http::response::ResponseHead;
use satchel_core::status::StatusCode;
use satchel_core::Status;

use crate::metrics::{Gauges, Metrics};
use crate::site::{HostSite, Shared};

/// How long one admin client may take to send its head, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the loop looks at `stop` while no client comes.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// What the admin thread reads to answer.
pub(crate) struct Admin<'a> {
    pub(crate) site: &'a HostSite,
    pub(crate) shared: &'a Shared,
    pub(crate) metrics: &'a Metrics,
    /// Set at the first SIGTERM/SIGINT: `/healthz` answers 503 from then on.
    pub(crate) draining: &'a AtomicBool,
    /// Set when the workers are done: the thread ends.
    pub(crate) stop: &'a AtomicBool,
}

impl Admin<'_> {
    /// Serves `listener` until `stop` is set.
    pub(crate) fn run(&self, listener: &TcpListener) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(STOP_CHECK.subsec_nanos()),
        };
        while !self.stop.load(Ordering::Acquire) {
            let mut fds = [PollFd::new(listener, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("satchel-server: admin listener: {e}");
                    return;
                }
            }
            match listener.accept() {
                Ok((sock, _)) => {
                    let _ = self.serve(sock);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Out of descriptors or a connection gone before accept: wait and go on.
                Err(_) => std::thread::sleep(STOP_CHECK),
            }
        }
    }

    /// Reads one request head and answers it.
    fn serve(&self, mut sock: TcpStream) -> io::Result<()> {
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        let limits = Limits::host();
        let mut buf = vec![0u8; limits.max_head];
        let mut have = 0;
        let answer = loop {
            let n = sock.read(&mut buf[have..])?;
            if n == 0 {
                return Ok(());
            }
            have += n;
            match parse_request(&buf[..have], &limits) {
                Ok(Status::Complete((req, _))) => {
                    let body_only = req.method == Method::Head;
                    let mut answer = match req.method {
                        Method::Get | Method::Head => self.route(req.path),
                        Method::Other => {
                            Answer::text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n")
                        }
                    };
                    answer.head_only = body_only;
                    break answer;
                }
                Ok(Status::Partial) if have < buf.len() => {}
                Ok(Status::Partial) => {
                    break Answer::text(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "")
                }
                Err(e) => break Answer::text(e.status(), e.reason()),
            }
        };
        sock.write_all(&answer.encode())?;
        let _ = sock.shutdown(Shutdown::Write);
        // Drain what the client may still send (briefly), so that closing does not reset the
        // answer away before it is read.
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let _ = sock.read(&mut buf);
        Ok(())
    }

    fn route(&self, path: &[u8]) -> Answer {
        match path {
            b"/healthz" if self.draining.load(Ordering::Acquire) => {
                Answer::text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            }
            b"/healthz" => Answer::text(StatusCode::OK, "ok\n"),
            b"/metrics" => {
                let gauges = Gauges {
                    cache: self.site.cache.stats(),
                    open_connections: self.shared.connections.load(Ordering::Relaxed),
                    draining: self.draining.load(Ordering::Acquire),
                };
                Answer {
                    status: StatusCode::OK,
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: self.metrics.render(&gauges).into_bytes(),
                    head_only: false,
                }
            }
            _ => Answer::text(
                StatusCode::NOT_FOUND,
                "not found: the admin port has /healthz and /metrics\n",
            ),
        }
    }
}

/// An admin response, encoded by the core's [`ResponseHead`] like every file response.
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    head_only: bool,
}

impl Answer {
    fn text(status: StatusCode, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            head_only: false,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut head = ResponseHead::new(self.status);
        head.content_type = Some(self.content_type);
        head.content_length = Some(self.body.len() as u64);
        head.cache_control = Some("no-store");
        head.connection_close = true;
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            head.allow = Some("GET, HEAD");
        }
        let mut out = vec![0; head.encoded_len()];
        // Every value above is a constant without control characters, so this cannot fail;
        // if it did, the client would see the connection close without an answer.
        match head.encode(&mut out) {
            Ok(n) => out.truncate(n),
            Err(_) => out.clear(),
        }
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}
