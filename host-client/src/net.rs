//! The host's side of the core's network abstraction: std sockets through `std-embedded-nal`,
//! a [`Waiter`] that parks on the socket's file descriptor with mio (epoll on Linux) instead of
//! spinning on `WouldBlock`, and the connect step the core's session asks for.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embedded_nal::TcpClientStack;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use satchel_core::client::nal::{self, Buffers, DownloadError, FetchError, Jobs, Sink, Waiter};
use satchel_core::client::pipeline::Pipeline;
use satchel_core::client::session::{ConnectFailure, Download, Saved};
use satchel_core::time::{Duration, Instant};
use std_embedded_nal::Stack;

/// The std stack's error: a `std::io::Error` in field `.0`.
type NetError = <Stack as TcpClientStack>::Error;
type Socket = <Stack as TcpClientStack>::TcpSocket;

/// A [`Waiter`] over the process's monotonic clock and the current socket's readiness.
struct FdWaiter {
    poll: Poll,
    events: Events,
    origin: StdInstant,
}

impl Waiter for FdWaiter {
    fn now(&mut self) -> Instant {
        let ms = self.origin.elapsed().as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn wait(&mut self, deadline: Instant) {
        let left = deadline.saturating_since(self.now()).as_millis();
        // mio is edge-triggered: we only get here after WouldBlock (or with no socket, to
        // sleep), so an event means news. An error (EINTR) just returns early; the driver
        // tries again.
        let _ = self
            .poll
            .poll(&mut self.events, Some(StdDuration::from_millis(left)));
    }
}

/// The connection to one server, kept alive between downloads.
pub(crate) struct Net {
    host: String,
    port: u16,
    stack: Stack,
    socket: Option<Socket>,
    waiter: FdWaiter,
    /// What the last failed connect said, for the user (shared with a pipeline's jobs, which
    /// report failures while the connection is in use).
    last_connect_error: Arc<Mutex<String>>,
}

impl Net {
    /// Nothing is connected until a download asks for it.
    ///
    /// # Errors
    /// When the readiness poller cannot be created.
    pub(crate) fn new(host: &str, port: u16) -> std::io::Result<Self> {
        Ok(Self {
            host: host.to_owned(),
            port,
            stack: Stack,
            socket: None,
            waiter: FdWaiter {
                poll: Poll::new()?,
                events: Events::with_capacity(4),
                origin: StdInstant::now(),
            },
            last_connect_error: Arc::default(),
        })
    }

    /// The time on this connection's clock.
    pub(crate) fn now(&mut self) -> Instant {
        self.waiter.now()
    }

    /// Whether a kept-alive connection is open.
    pub(crate) fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// Why the last connect failed, as the system said it.
    pub(crate) fn last_connect_error(&self) -> Arc<Mutex<String>> {
        Arc::clone(&self.last_connect_error)
    }

    /// Runs `session` to its end through the core's driver (see [`nal::download`]).
    ///
    /// # Errors
    /// As [`nal::download`].
    pub(crate) fn download<K: Sink>(
        &mut self,
        session: &mut Download<'_>,
        buffers: Buffers<'_>,
        sink: &mut K,
    ) -> Result<Saved, DownloadError<K::Error>> {
        let (stack, socket, waiter, connect) = self.parts();
        nal::download(stack, waiter, socket, connect, session, buffers, sink)
    }

    /// Runs `pipeline` until `jobs` has no more downloads, through the core's driver (see
    /// [`nal::pipeline`]); the connection is closed at the end.
    pub(crate) fn pipeline<'a, J: Jobs<'a, N>, const N: usize>(
        &mut self,
        pipeline: &mut Pipeline<'a, N>,
        buffers: Buffers<'_>,
        jobs: &mut J,
    ) {
        let (stack, socket, waiter, connect) = self.parts();
        nal::pipeline(stack, waiter, socket, connect, pipeline, buffers, jobs);
    }

    /// The stack, the socket, the waiter, and the connect step the core's drivers take.
    #[allow(clippy::type_complexity)]
    fn parts(
        &mut self,
    ) -> (
        &mut Stack,
        &mut Option<Socket>,
        &mut FdWaiter,
        impl FnMut(&mut Stack, &mut FdWaiter, Instant) -> Result<Socket, ConnectFailure> + '_,
    ) {
        let Self {
            host,
            port,
            stack,
            socket,
            waiter,
            last_connect_error,
        } = self;
        let (host, port) = (&*host, *port);
        let connect = move |_: &mut Stack, w: &mut FdWaiter, deadline: Instant| {
            open(host, port, w, deadline).map_err(|(why, message)| {
                if let Ok(mut last) = last_connect_error.lock() {
                    *last = message;
                }
                why
            })
        };
        (stack, socket, waiter, connect)
    }
}

/// Resolves `host` and connects to `port` by `deadline`, trying each address in turn; the new
/// socket is registered with the waiter.
///
/// std-embedded-nal's `connect` blocks (and so does name resolution), so both run on a helper
/// thread that is abandoned if it overruns: the deadline, not the system, bounds them.
fn open(
    host: &str,
    port: u16,
    waiter: &mut FdWaiter,
    deadline: Instant,
) -> Result<Socket, (ConnectFailure, String)> {
    let timeout = deadline.saturating_since(waiter.now());
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The receiver may have given up; then the socket is simply dropped.
        let _ = tx.send(connect_any(&bare, port, timeout));
    });
    let timed_out = || (ConnectFailure::TimedOut, "timed out".to_owned());
    let socket = rx
        .recv_timeout(StdDuration::from_millis(timeout.as_millis()))
        .map_err(|_| timed_out())??;
    let fd = socket
        .as_raw_fd()
        .ok_or_else(|| (ConnectFailure::Other, "socket has no fd".to_owned()))?;
    waiter
        .poll
        .registry()
        .register(
            &mut SourceFd(&fd),
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| (ConnectFailure::Other, e.to_string()))?;
    Ok(socket)
}

/// Resolves `host` and connects to the first address that accepts, through the core's
/// [`nal::connect`].
fn connect_any(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Socket, (ConnectFailure, String)> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| (ConnectFailure::Unresolved, e.to_string()))?
        .collect();
    let mut last = (
        ConnectFailure::Unresolved,
        format!("{host} resolves to no address"),
    );
    for addr in addrs {
        let mut waiter = FdWaiter {
            poll: Poll::new().map_err(|e| (ConnectFailure::Other, e.to_string()))?,
            events: Events::with_capacity(1),
            origin: StdInstant::now(),
        };
        match nal::connect::<_, _, ()>(&mut Stack, &mut waiter, addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(FetchError::Net(e)) => last = classify(&e),
            Err(_) => last = (ConnectFailure::TimedOut, "timed out".to_owned()),
        }
    }
    Err(last)
}

/// A refused connection is final; a timeout may pass; anything else (no route) is final too.
fn classify(e: &NetError) -> (ConnectFailure, String) {
    let why = match e.0.kind() {
        std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
        std::io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
        _ => ConnectFailure::Other,
    };
    (why, e.0.to_string())
}
