//! The host's side of the core's network abstraction: std sockets through `std-embedded-nal`,
//! and a [`Waiter`] that parks on the socket's file descriptor with mio (epoll on Linux) instead
//! of spinning on `WouldBlock`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embedded_nal::TcpClientStack;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use satchel_core::client::nal::{self, Buffers, Exchanged, FetchError, Handler, Waiter};
use satchel_core::client::Request;
use satchel_core::time::{Duration, Instant};
use std_embedded_nal::Stack;

/// The std stack's error: a `std::io::Error` in field `.0`.
pub(crate) type NetError = <Stack as TcpClientStack>::Error;
type Socket = <Stack as TcpClientStack>::TcpSocket;

fn net_error(e: std::io::Error) -> NetError {
    NetError::from(e)
}

/// A [`Waiter`] over the process's monotonic clock and one socket's readiness.
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
        // mio is edge-triggered: we only get here after WouldBlock, so an event means news.
        // An error (EINTR) just returns early; the driver tries again.
        let _ = self
            .poll
            .poll(&mut self.events, Some(StdDuration::from_millis(left)));
    }
}

/// One TCP connection to the server, ready for exchanges.
pub(crate) struct Conn {
    stack: Stack,
    socket: Socket,
    waiter: FdWaiter,
    /// Exchanges completed on this connection.
    pub(crate) completed: u32,
}

/// A connection-level failure, before any response.
pub(crate) type ConnectError = FetchError<NetError, std::convert::Infallible>;

impl Conn {
    /// Resolves `host` and connects to `port`, trying each address in turn, all within
    /// `timeout`.
    ///
    /// std-embedded-nal's `connect` blocks (and so does name resolution), so both run on a
    /// helper thread that is abandoned if it overruns: the wait, not the system, bounds them.
    ///
    /// # Errors
    /// The last address's failure, a `Net` error when the name does not resolve, or `Timeout`.
    pub(crate) fn open(host: &str, port: u16, timeout: Duration) -> Result<Self, ConnectError> {
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The receiver may have given up; then the socket is simply dropped.
            let _ = tx.send(connect_any(&bare, port, timeout));
        });
        let socket = rx
            .recv_timeout(StdDuration::from_millis(timeout.as_millis()))
            .map_err(|_| FetchError::Timeout)??;
        let fd = socket
            .as_raw_fd()
            .ok_or_else(|| FetchError::Net(net_error(std::io::Error::other("socket has no fd"))))?;
        let waiter = FdWaiter {
            poll: Poll::new().map_err(|e| FetchError::Net(net_error(e)))?,
            events: Events::with_capacity(4),
            origin: StdInstant::now(),
        };
        waiter
            .poll
            .registry()
            .register(
                &mut SourceFd(&fd),
                Token(0),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| FetchError::Net(net_error(e)))?;
        Ok(Self {
            stack: Stack,
            socket,
            waiter,
            completed: 0,
        })
    }

    /// Sends `request` and reads its response into `handler` (see [`nal::exchange`]).
    ///
    /// # Errors
    /// As [`nal::exchange`]; the connection must then be dropped.
    pub(crate) fn exchange<H: Handler>(
        &mut self,
        request: &Request<'_>,
        timeout: Duration,
        buffers: Buffers<'_>,
        handler: &mut H,
    ) -> Result<Exchanged, FetchError<NetError, H::Error>> {
        let done = nal::exchange(
            &mut self.stack,
            &mut self.socket,
            &mut self.waiter,
            request,
            timeout,
            buffers,
            handler,
        )?;
        self.completed += 1;
        Ok(done)
    }
}

/// Resolves `host` and connects to the first address that accepts, through the core's
/// [`nal::connect`].
fn connect_any(host: &str, port: u16, timeout: Duration) -> Result<Socket, ConnectError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| FetchError::Net(net_error(e)))?
        .collect();
    let mut last = FetchError::Net(net_error(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} resolves to no address"),
    )));
    for addr in addrs {
        let mut waiter = FdWaiter {
            poll: Poll::new().map_err(|e| FetchError::Net(net_error(e)))?,
            events: Events::with_capacity(1),
            origin: StdInstant::now(),
        };
        match nal::connect(&mut Stack, &mut waiter, addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(last)
}
