//! The driver of an [`Upstream`] edge on smoltcp: one TCP client socket running the core's own
//! download [`session`](crate::client::session) for each fetch the source orders, in the
//! board's poll loop, beside the [`Server`](super::Server) on the same interface.
//!
//! ```text
//! loop {
//!     iface.poll(now, device, sockets);
//!     fetcher.poll(now, &mut iface, sockets, upstream);   // make the ordered fetch
//!     if let Some(t) = upstream.poll_ready() { server.handle_ready(t) }
//!     server.poll(now, sockets);                           // answers those that waited
//! }
//! ```
//!
//! Each fetch is a new connection (closed with a reset when it ends, so the socket is free at
//! once for the next); no retries (a board answers `502`/`504` and the client may retry).
//! Time limits are the session's: the connection, the response head, then body progress, each
//! within the configured timeout, which should be shorter than the server's send timeout so
//! the waiting request gets the `504` rather than a `503`.

use ::smoltcp::iface::{Interface, SocketHandle, SocketSet};
use ::smoltcp::socket::tcp;
use ::smoltcp::time::Instant as SmolInstant;
use ::smoltcp::wire::IpEndpoint;

use super::core_instant;
use crate::cache::ContentCache;
use crate::client::session::{self, Action, ConnectFailure, Download, Error, Event};
use crate::client::{Plan, TargetError, Url};
use crate::source::{FileSource, Ticket, UpstreamError};
use crate::time::{Duration, Instant};
use crate::upstream::{Outcome, Upstream, MAX_UPSTREAM_TARGET};

/// The first local port used (the IANA dynamic range); each fetch takes the next.
const EPHEMERAL_FIRST: u16 = 49_152;

/// Where the upstream server is and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamConfig {
    /// Its address and port.
    pub endpoint: IpEndpoint,
    /// The `Host` header sent (`192.168.69.1:8080`).
    pub host: &'static str,
    /// Connect, response head, and each body-progress window.
    pub timeout: Duration,
}

/// One fetch in progress (its session is the fetcher's, renewed for each fetch).
#[derive(Debug, Clone, Copy)]
struct Running {
    ticket: Ticket,
    /// The source refused the body (too large): the download is ended with this.
    refused: Option<UpstreamError>,
    /// `connect` was issued for the session's current `Connect`.
    connecting: bool,
}

/// Runs an [`Upstream`]'s fetches on one TCP socket; `STAGE`: the receive staging buffer,
/// which must hold a whole response head.
pub struct Fetcher<const STAGE: usize> {
    handle: SocketHandle,
    config: UpstreamConfig,
    /// The download session, built once and renewed for each fetch.
    download: Download<'static>,
    running: Option<Running>,
    stage: [u8; STAGE],
    staged: usize,
    next_port: u16,
}

impl<const STAGE: usize> Fetcher<STAGE> {
    /// A fetcher on the TCP socket `handle` (in the set the server's sockets are in; its
    /// transmit buffer must hold a request head, a few hundred bytes).
    ///
    /// # Errors
    /// [`TargetError::TooLong`] never in practice (the session is built for `/`), but the
    /// session's constructor can fail in general.
    pub fn new(handle: SocketHandle, config: UpstreamConfig) -> Result<Self, TargetError> {
        let url = Url {
            host: config.host,
            port: config.endpoint.port,
            target: "/",
        };
        let session = session::Config {
            timeout: config.timeout,
            retries: 0,
            head_capacity: STAGE,
            accept: None,
        };
        let download = Download::new(url, config.host, session, None, false, Instant::default())?;
        Ok(Self {
            handle,
            config,
            download,
            running: None,
            stage: [0; STAGE],
            staged: 0,
            next_port: EPHEMERAL_FIRST,
        })
    }

    /// Whether a fetch is in progress.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Starts the fetch `upstream` ordered, if any, and moves the one in progress on: connect,
    /// send, receive into the source, finish. Returns whether anything changed (poll the
    /// interface again to send it).
    // Kept out of the caller's frame (a board's poll loop): its locals, and the session's
    // construction, then count on the stack only while it runs.
    #[inline(never)]
    pub fn poll<L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize>(
        &mut self,
        now: SmolInstant,
        iface: &mut Interface,
        sockets: &mut SocketSet<'_>,
        upstream: &Upstream<'_, L, C, BODY, KNOWN>,
    ) -> bool {
        let now_core = core_instant(now);
        if self.running.is_none() && !self.start(now_core, upstream) {
            return false;
        }
        let socket = sockets.get_mut::<tcp::Socket<'_>>(self.handle);
        let mut progress = false;
        // Bounded: each turn either acts or returns.
        for _ in 0..16 {
            let Some(run) = self.running.as_mut() else {
                return progress;
            };
            match self.download.poll(now_core) {
                Action::Connect if !run.connecting => {
                    socket.abort();
                    self.staged = 0;
                    let port = self.next_port;
                    self.next_port = port.checked_add(1).unwrap_or(EPHEMERAL_FIRST);
                    match socket.connect(iface.context(), self.config.endpoint, port) {
                        Ok(()) => run.connecting = true,
                        Err(_) => self
                            .download
                            .handle_connect_failed(now_core, ConnectFailure::Other),
                    }
                    progress = true;
                }
                Action::Connect => match socket.state() {
                    tcp::State::SynSent | tcp::State::SynReceived => return progress,
                    tcp::State::Established => {
                        run.connecting = false;
                        self.download.handle_connected(now_core);
                    }
                    _ => {
                        run.connecting = false;
                        self.download
                            .handle_connect_failed(now_core, ConnectFailure::Refused);
                    }
                },
                Action::Send(request) => {
                    let mut head = [0u8; MAX_UPSTREAM_TARGET + 512];
                    let sent = request
                        .encode(&mut head)
                        .ok()
                        .and_then(|n| head.get(..n))
                        .is_some_and(|h| socket.send_slice(h).is_ok_and(|m| m == h.len()));
                    if !sent {
                        self.download.handle_broken(now_core);
                    }
                    progress = true;
                }
                Action::Receive => {
                    if !self.receive(now_core, socket, upstream) {
                        return progress;
                    }
                    progress = true;
                }
                // No retries are configured; a retry or a backoff is waited out by polling.
                Action::Retry(_) => {}
                Action::Wait(_) => return progress,
                Action::Done(result) => {
                    let outcome = match (run.refused, result) {
                        (Some(e), _) => Outcome::Failed(e),
                        (None, Ok(_)) if self.download.not_modified() => Outcome::NotModified,
                        (None, Ok(_)) => Outcome::Fetched,
                        (None, Err(Error::Status(404))) => Outcome::NotFound,
                        (None, Err(e)) => Outcome::Failed(upstream_error(e)),
                    };
                    upstream.finish(run.ticket, outcome);
                    socket.abort();
                    self.staged = 0;
                    self.running = None;
                    return true;
                }
            }
        }
        progress
    }

    /// Takes the source's order, if any, and starts its session.
    #[inline(never)]
    fn start<L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize>(
        &mut self,
        now: Instant,
        upstream: &Upstream<'_, L, C, BODY, KNOWN>,
    ) -> bool {
        let Some(order) = upstream.take_order() else {
            return false;
        };
        let mut target = [0u8; MAX_UPSTREAM_TARGET];
        let renewed = order
            .target(&mut target)
            .is_some_and(|t| self.download.renew(t, false, now).is_ok());
        if !renewed {
            upstream.finish(order.ticket, Outcome::Failed(UpstreamError::PathTooLong));
            return false;
        }
        self.download.set_conditional(order.if_none_match(), None);
        self.running = Some(Running {
            ticket: order.ticket,
            refused: None,
            connecting: false,
        });
        true
    }

    /// Reads what the socket holds and feeds the session; the body goes to the source.
    /// Returns whether anything happened.
    #[inline(never)]
    fn receive<L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize>(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket<'_>,
        upstream: &Upstream<'_, L, C, BODY, KNOWN>,
    ) -> bool {
        let Some(run) = self.running.as_mut() else {
            return false;
        };
        let room = self.stage.get_mut(self.staged..).unwrap_or_default();
        let got = match socket.can_recv() {
            true => socket.recv_slice(room).unwrap_or(0),
            false => 0,
        };
        self.staged += got;
        let mut consumed = 0;
        let mut moved = got > 0;
        loop {
            let data = self.stage.get(consumed..self.staged).unwrap_or_default();
            let (n, event) = self.download.handle_input(now, data);
            consumed += n;
            moved |= n > 0;
            let refused = match event {
                Event::NeedMore | Event::Ended => break,
                Event::Start(start) => match start.plan {
                    Plan::Write { total } => upstream
                        .begin(
                            run.ticket,
                            total,
                            start.response.etag,
                            start.response.last_modified,
                        )
                        .err(),
                    _ => None,
                },
                Event::Body(bytes) => upstream.append(run.ticket, bytes).err(),
            };
            if let Some(e) = refused {
                // Stop reading: the session ends as broken, reported as the refusal.
                run.refused = Some(e);
                self.download.handle_broken(now);
                self.staged = 0;
                return true;
            }
        }
        self.stage.copy_within(consumed..self.staged, 0);
        self.staged -= consumed;
        // Time limits are checked by the session's own poll.
        if got == 0 && !socket.can_recv() {
            match socket.state() {
                // Closed without a FIN read: reset (or aborted by smoltcp's own timeouts).
                tcp::State::Closed => {
                    self.download.handle_broken(now);
                    return true;
                }
                _ if !socket.may_recv() => {
                    self.download.handle_eof(now);
                    return true;
                }
                _ => {}
            }
        }
        moved
    }
}

/// What a failed session means for the request waiting for it.
fn upstream_error(e: Error) -> UpstreamError {
    match e {
        Error::Connect(ConnectFailure::Refused) => UpstreamError::Refused,
        Error::Connect(ConnectFailure::TimedOut) | Error::Timeout => UpstreamError::Timeout,
        Error::Connect(_) | Error::Broken => UpstreamError::Broken,
        Error::Status(code) => UpstreamError::Status(code),
        _ => UpstreamError::BadAnswer,
    }
}
