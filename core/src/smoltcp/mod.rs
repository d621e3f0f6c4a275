//! Serving (and fetching) over the smoltcp TCP/IP stack, from a board's poll loop.
//!
//! [`Server`] runs `N` server connections, one per smoltcp TCP socket listening on the same
//! port: it accepts, feeds each [`Connection`] from its socket's receive buffer, copies what the
//! connection plans to send ([`Connection::poll_transmit`]) into the socket's transmit buffer,
//! acts on the connection's timeouts and puts the socket back to listening once the connection
//! is over. [`nal::NalStack`] gives the client side the same stack through embedded-nal's
//! `TcpClientStack`, and [`fetch::Fetcher`] runs a caching edge's fetches (the core's download
//! session for an [`Upstream`](crate::upstream::Upstream) source) on one more socket of the
//! same poll loop.
//!
//! # Memory
//!
//! Everything is fixed at compile time and nothing is allocated:
//!
//! * socket buffers: [`SocketBuffers<N, SOCK_RX, SOCK_TX>`](SocketBuffers), `N × (SOCK_RX +
//!   SOCK_TX)` bytes, lent to smoltcp for the program's lifetime;
//! * per connection, inside the [`Server`]: the connection's head buffer (`TX`) and a staging
//!   buffer for request heads (`STAGE`, which must exceed the configured `max_head`);
//! * the cache: index and arena, owned by the [`Site`] (e.g. `RefCell<ArrayCache<..>>`).
//!
//! # Why a staging buffer
//!
//! smoltcp's receive buffer is a ring, and a request head may be split across its wrap point,
//! while the parser needs it contiguous. So each poll moves received bytes into the
//! connection's staging buffer (bounded: once it is full the socket keeps the rest, and its
//! window closes — the same back-pressure as on the host), and the connection parses from
//! there. Only heads are copied this way; bodies go straight from the cache arena or the
//! [`FileSource`](crate::source::FileSource) into the socket's transmit ring with one copy
//! ([`Transmit::copy_to`](crate::serve::Transmit::copy_to)), as smoltcp requires.
//!
//! # The poll loop
//!
//! ```text
//! loop {
//!     let now = board_clock();                                  // smoltcp::time::Instant
//!     iface.poll(now, &mut device, &mut sockets);
//!     server.poll(now, &mut sockets);
//!     let delay = min(iface.poll_delay(now, &sockets), server.poll_at() - now);
//!     sleep_until_irq_or(delay);
//! }
//! ```

pub mod fetch;
pub mod nal;

use ::smoltcp::iface::{SocketHandle, SocketSet};
use ::smoltcp::socket::tcp;
use ::smoltcp::time::Instant as SmolInstant;
use ::smoltcp::wire::IpEndpoint;

use crate::serve::{Connection, Event, Site};
use crate::source::Arrival;
use crate::time::{Duration, Instant};

/// One [`Event`] of a connection, as [`Server::poll_with`] reports it: enough for an access log
/// in the host server's shape (client, method, target, status, bytes sent, cache, completion).
#[derive(Debug)]
pub struct Answered<'a> {
    /// Which of the server's `N` connections it happened on: a response's [`Event::Done`]
    /// comes on the same slot as its [`Event::Response`], after it.
    pub slot: usize,
    /// What happened.
    pub event: Event,
    /// The client's address and port.
    pub peer: Option<IpEndpoint>,
    /// The request bytes that an [`Event::Response`]'s [`Span`](crate::serve::Span)s point
    /// into (empty for other events).
    pub request: &'a [u8],
}

/// The core's instant for a smoltcp instant (milliseconds; times before the origin are 0).
pub fn core_instant(t: SmolInstant) -> Instant {
    Instant::from_millis(u64::try_from(t.total_millis()).unwrap_or(0))
}

/// The smoltcp instant for a core instant (smoltcp counts microseconds in an `i64`, so instants
/// past about 292,000 years saturate).
pub fn smol_instant(t: Instant) -> SmolInstant {
    let micros = i64::try_from(t.as_millis())
        .ok()
        .and_then(|ms| ms.checked_mul(1000))
        .unwrap_or(i64::MAX);
    SmolInstant::from_micros(micros)
}

/// Receive and transmit buffers for `N` TCP sockets, `RX` and `TX` bytes each.
///
/// The receive buffer is also the TCP window the server advertises: requests are small, so a
/// board can keep it small (a request head larger than it still arrives, in several rounds).
/// The transmit buffer bounds the bytes in flight, so it sets the throughput over a link with
/// latency: about `TX / RTT`.
pub struct SocketBuffers<const N: usize, const RX: usize, const TX: usize> {
    pairs: [SocketBufferPair<RX, TX>; N],
}

struct SocketBufferPair<const RX: usize, const TX: usize> {
    rx: [u8; RX],
    tx: [u8; TX],
}

impl<const N: usize, const RX: usize, const TX: usize> SocketBuffers<N, RX, TX> {
    /// Zeroed buffers (`const`, so they can live in a `static`).
    pub const fn new() -> Self {
        Self {
            pairs: [const {
                SocketBufferPair {
                    rx: [0; RX],
                    tx: [0; TX],
                }
            }; N],
        }
    }

    /// Makes one TCP socket per buffer pair, adds them to `sockets` and returns their handles,
    /// ready for [`Server::new`].
    ///
    /// `sockets` must have room for them (a `SocketSet` over a fixed `[SocketStorage; M]`
    /// panics inside smoltcp when full, so size `M` for these plus any client sockets).
    pub fn add_sockets<'a>(&'a mut self, sockets: &mut SocketSet<'a>) -> [SocketHandle; N] {
        self.pairs.each_mut().map(|pair| {
            sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut pair.rx[..]),
                tcp::SocketBuffer::new(&mut pair.tx[..]),
            ))
        })
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for SocketBuffers<N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a [`Server`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerError {
    /// Port 0 cannot be listened on.
    PortZero,
    /// The staging buffer (`STAGE`) is not larger than the configured `max_head`, so a head of
    /// the allowed size could not be parsed (nor a too-large one answered 431).
    StageTooSmall,
}

impl core::fmt::Display for ServerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::PortZero => "cannot listen on port 0",
            Self::StageTooSmall => "STAGE must be larger than the configured max_head",
        })
    }
}

impl core::error::Error for ServerError {}

/// Where one socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Listening (or about to be put back to listening).
    Listening,
    /// A connection is being served.
    Serving,
    /// The connection is over; the socket sends what it holds, then its FIN, until the peer
    /// acknowledges or the deadline passes (then it is aborted).
    Closing { deadline: Instant },
}

/// One socket and the connection it carries.
struct Slot<'s, S: Site, const TX: usize, const STAGE: usize> {
    handle: SocketHandle,
    phase: Phase,
    conn: Option<Connection<'s, S, TX>>,
    /// Request bytes taken from the socket and not yet consumed by the connection.
    stage: [u8; STAGE],
    staged: usize,
    /// Whether the peer's FIN was passed to the connection.
    eof_seen: bool,
}

/// `N` HTTP server connections on smoltcp TCP sockets. See the [module docs](self).
///
/// * `TX`: each connection's head buffer ([`Connection`]'s `TX`; 4096 holds any head);
/// * `STAGE`: each connection's staging buffer for request heads; it must be larger than the
///   site's `config().limits.max_head`.
pub struct Server<'s, S: Site, const N: usize, const TX: usize, const STAGE: usize> {
    site: &'s S,
    port: u16,
    slots: [Slot<'s, S, TX, STAGE>; N],
}

/// What one round of sending did.
enum Pushed {
    /// Nothing could be sent (nothing to send, or the socket's buffer is full).
    Nothing,
    /// Some bytes (or the end of a response) went out.
    Progress,
    /// A file ended before its announced length: the connection must be abandoned.
    SourceChanged,
}

impl<'s, S: Site, const N: usize, const TX: usize, const STAGE: usize> Server<'s, S, N, TX, STAGE> {
    /// A server for `site` on `port` over the TCP sockets `handles` (from
    /// [`SocketBuffers::add_sockets`], or TCP sockets the board made itself: smoltcp panics on a
    /// handle of another kind of socket). The sockets are put to listening on the first
    /// [`poll`](Self::poll).
    ///
    /// # Errors
    /// [`ServerError::PortZero`] for port 0; [`ServerError::StageTooSmall`] when `STAGE` is not
    /// larger than the site's `max_head`.
    pub fn new(site: &'s S, port: u16, handles: [SocketHandle; N]) -> Result<Self, ServerError> {
        if port == 0 {
            return Err(ServerError::PortZero);
        }
        if STAGE <= site.config().limits.max_head {
            return Err(ServerError::StageTooSmall);
        }
        Ok(Self {
            site,
            port,
            slots: handles.map(|handle| Slot {
                handle,
                phase: Phase::Listening,
                conn: None,
                stage: [0; STAGE],
                staged: 0,
                eof_seen: false,
            }),
        })
    }

    /// The site served.
    pub fn site(&self) -> &'s S {
        self.site
    }

    /// The port served.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections being served now (accepted and not yet closed).
    pub fn active(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.phase == Phase::Serving)
            .count()
    }

    /// Does all the work due at `now` on every socket: accept, read, answer, send, time out,
    /// close, listen again. Call it after each `Interface::poll`. Returns whether anything
    /// changed (then polling the interface again at once sends it without waiting).
    pub fn poll(&mut self, now: SmolInstant, sockets: &mut SocketSet<'_>) -> bool {
        self.poll_with(now, sockets, |_| {})
    }

    /// [`poll`](Self::poll), calling `on_event` with each [`Event`] (a response planned, a
    /// response ended with the bytes actually sent) as an [`Answered`], for an access log or
    /// counters.
    pub fn poll_with(
        &mut self,
        now: SmolInstant,
        sockets: &mut SocketSet<'_>,
        mut on_event: impl FnMut(&Answered<'_>),
    ) -> bool {
        let now = core_instant(now);
        let mut progress = false;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let socket = sockets.get_mut::<tcp::Socket<'_>>(slot.handle);
            let mut on_response = |event, peer, request: &[u8]| {
                on_event(&Answered {
                    slot: index,
                    event,
                    peer,
                    request,
                });
            };
            progress |= slot.poll(self.site, self.port, socket, now, &mut on_response);
        }
        progress
    }

    /// The work a source started under `ticket` is done (see [`crate::source::Ticket`]): the
    /// request waiting for it is answered at the next [`poll`](Self::poll). A board whose
    /// source fetches misses from elsewhere (an upstream server) calls this when the fetch is
    /// in; with sources that answer at once (flash, [`crate::source::StaticSource`]) nothing
    /// ever waits.
    pub fn handle_ready(&mut self, ticket: crate::source::Ticket) {
        for conn in self.slots.iter_mut().filter_map(|s| s.conn.as_mut()) {
            conn.handle_ready(ticket);
        }
    }

    /// The earliest instant at which [`poll`](Self::poll) has timed work to do (a connection's
    /// idle, head or send timeout, or a closing socket's deadline); `None` when there is none.
    /// The board may sleep until the earlier of this and `Interface::poll_at`.
    #[must_use]
    pub fn poll_at(&self) -> Option<SmolInstant> {
        self.slots
            .iter()
            .filter_map(|slot| match (&slot.conn, slot.phase) {
                (Some(conn), _) => conn.poll_timeout(),
                (None, Phase::Closing { deadline }) => Some(deadline),
                (None, _) => None,
            })
            .min()
            .map(smol_instant)
    }
}

impl<'s, S: Site, const TX: usize, const STAGE: usize> Slot<'s, S, TX, STAGE> {
    fn poll(
        &mut self,
        site: &'s S,
        port: u16,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
        on_response: &mut impl FnMut(Event, Option<IpEndpoint>, &[u8]),
    ) -> bool {
        match self.phase {
            Phase::Listening => self.poll_listening(site, port, socket, now, on_response),
            Phase::Serving => self.poll_serving(site, socket, now, on_response),
            Phase::Closing { deadline } => {
                // Whatever the peer still sends is not read by anyone: discard it so that its
                // FIN (which waits behind it) can be taken.
                let _ = socket.recv(|data| (data.len(), ()));
                if !socket.is_open() {
                    self.phase = Phase::Listening;
                    self.poll_listening(site, port, socket, now, on_response)
                } else if now >= deadline {
                    socket.abort();
                    self.phase = Phase::Listening;
                    true
                } else {
                    false
                }
            }
        }
    }

    fn poll_listening(
        &mut self,
        site: &'s S,
        port: u16,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
        on_response: &mut impl FnMut(Event, Option<IpEndpoint>, &[u8]),
    ) -> bool {
        if !socket.is_open() {
            // Closed, or in TIME-WAIT after a close we started: a server with a handful of
            // sockets cannot leave one idle for 2 MSL, and `listen` starts it afresh. The port
            // is non-zero (checked by `Server::new`), the only error `listen` can return here.
            return socket.listen(port).is_ok();
        }
        // Accepted: the handshake is complete (or the peer already sent and closed).
        if socket.may_send() || socket.may_recv() {
            self.phase = Phase::Serving;
            self.conn = Some(Connection::new(site, now));
            self.staged = 0;
            self.eof_seen = false;
            self.poll_serving(site, socket, now, on_response);
            return true;
        }
        false
    }

    fn poll_serving(
        &mut self,
        site: &'s S,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
        on_response: &mut impl FnMut(Event, Option<IpEndpoint>, &[u8]),
    ) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            self.phase = Phase::Listening;
            return true;
        };
        if !socket.is_active() {
            // Reset by the peer (or timed out by smoltcp): nobody is left to answer. Dropping
            // the connection releases its cache pin.
            conn.abort();
            drain(conn, socket, &[], on_response);
            self.conn = None;
            self.phase = Phase::Listening;
            return true;
        }
        let mut progress = false;

        // Take what arrived, as far as the staging buffer has room.
        while self.staged < STAGE && socket.can_recv() {
            match socket.recv_slice(&mut self.stage[self.staged..]) {
                Ok(n) if n > 0 => {
                    self.staged += n;
                    progress = true;
                }
                _ => break,
            }
        }

        // Answer every complete request held, in order, each completely before the next (the
        // connection consumes nothing while a response is in flight).
        let mut source_changed = false;
        loop {
            let consumed = conn.handle_input(now, Arrival::UNKNOWN, &self.stage[..self.staged]);
            drain(
                conn,
                socket,
                &self.stage[..consumed.min(self.staged)],
                on_response,
            );
            if consumed > 0 {
                let consumed = consumed.min(self.staged);
                self.stage.copy_within(consumed..self.staged, 0);
                self.staged -= consumed;
                progress = true;
            }
            let pushed = push(site, conn, socket, now);
            drain(conn, socket, &[], on_response);
            match pushed {
                Pushed::Nothing => {}
                Pushed::Progress => progress = true,
                Pushed::SourceChanged => {
                    source_changed = true;
                    break;
                }
            }
            if consumed == 0 || conn.is_closed() {
                break;
            }
        }

        if !source_changed {
            // The peer's FIN, once everything before it is answered: with a response still in
            // flight the connection would close after it and drop pipelined requests.
            if !self.eof_seen && !socket.may_recv() && conn.poll_transmit().is_none() {
                self.eof_seen = true;
                conn.handle_eof(now);
                progress = true;
            }
            if conn.poll_timeout().is_some_and(|t| now >= t) {
                conn.handle_timeout(now);
                drain(conn, socket, &[], on_response);
                source_changed = matches!(push(site, conn, socket, now), Pushed::SourceChanged);
                drain(conn, socket, &[], on_response);
                progress = true;
            }
        }

        if source_changed {
            // Never send wrong bytes: the peer sees the connection reset mid-body.
            conn.abort();
            drain(conn, socket, &[], on_response);
            socket.abort();
            self.conn = None;
            self.phase = Phase::Listening;
            return true;
        }
        if conn.is_closed() {
            let linger = site.config().send_timeout;
            self.conn = None;
            socket.close();
            self.phase = Phase::Closing {
                deadline: now + linger.max(Duration::from_millis(1)),
            };
            return true;
        }
        progress
    }
}

/// Hands every waiting event of `conn` to `on_event`, with the request bytes `data` their spans
/// point into (empty once those bytes are gone).
fn drain<S: Site, const TX: usize>(
    conn: &mut Connection<'_, S, TX>,
    socket: &tcp::Socket<'_>,
    data: &[u8],
    on_event: &mut impl FnMut(Event, Option<IpEndpoint>, &[u8]),
) {
    while let Some(event) = conn.poll_event() {
        on_event(event, socket.remote_endpoint(), data);
    }
}

/// Copies what `conn` has to send into `socket`'s transmit buffer, as far as it has room.
fn push<S: Site, const TX: usize>(
    site: &S,
    conn: &mut Connection<'_, S, TX>,
    socket: &mut tcp::Socket<'_>,
    now: Instant,
) -> Pushed {
    let mut pushed = Pushed::Nothing;
    loop {
        let sent = {
            let Some(transmit) = conn.poll_transmit() else {
                return pushed;
            };
            if transmit.head.is_empty() && transmit.body.is_empty() {
                // The end of a response with nothing left: `transmitted(0)` completes it.
                0
            } else {
                if !socket.can_send() {
                    return pushed;
                }
                // The ring's contiguous free part; a second round fills the part after the wrap.
                match socket.send(|buf| match transmit.copy_to(site, buf) {
                    Ok(n) => (n, Some(n)),
                    Err(_) => (0, None),
                }) {
                    Ok(Some(n)) if n > 0 => n,
                    Ok(Some(_)) => return pushed,
                    Ok(None) => return Pushed::SourceChanged,
                    // The socket cannot send any more (reset or closed): the caller sees it
                    // as inactive on this or the next poll.
                    Err(_) => return pushed,
                }
            }
        };
        conn.transmitted(now, sent);
        pushed = Pushed::Progress;
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use std::boxed::Box;
    use std::vec::Vec;

    use ::smoltcp::iface::{Config as IfaceConfig, Interface, SocketStorage};
    use ::smoltcp::phy::{Loopback, Medium};
    use ::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    use super::*;
    use crate::cache::{
        ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
    };
    use crate::path::SafePath;
    use crate::serve::{Config, SiteParts};
    use crate::source::{FileSource, Metadata, SourceError, StaticFile, StaticSource};

    const PORT: u16 = 80;
    const STAGE: usize = 8192 + 64;
    type Board = ArrayCache<4, 8, 8192>;

    static BIG: [u8; 3000] = {
        let mut b = [0u8; 3000];
        let mut i = 0;
        while i < b.len() {
            b[i] = (i % 251) as u8;
            i += 1;
        }
        b
    };

    static FILES: &[StaticFile] = &[
        StaticFile {
            path: "hello.txt",
            data: b"hello, satchel\n",
            modified: Some(1_700_000_000),
        },
        StaticFile {
            path: "big.bin",
            data: &BIG,
            modified: Some(1_700_000_000),
        },
    ];

    /// A static source whose files end early when read past `limit`, as a file truncated on
    /// disk while it is sent.
    struct Shrinking {
        inner: StaticSource,
        limit: u64,
    }

    impl FileSource for Shrinking {
        type File = usize;
        type Listing = &'static [u8];
        fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
            self.inner.metadata(path)
        }
        fn open(&self, path: &SafePath<'_>) -> Result<(usize, Metadata), SourceError> {
            self.inner.open(path)
        }
        fn file_metadata(&self, file: &usize) -> Result<Metadata, SourceError> {
            self.inner.file_metadata(file)
        }
        fn read_at(&self, file: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
            if offset >= self.limit {
                return Ok(0);
            }
            let n = buf.len().min((self.limit - offset) as usize);
            self.inner.read_at(file, offset, &mut buf[..n])
        }
    }

    type TestSite<F> = SiteParts<F, RefCell<Board>>;

    /// `max_entry` bytes: files above it are streamed from the source, not cached.
    fn site<F: FileSource>(source: F, max_entry: usize) -> &'static TestSite<F> {
        let store = ArenaStore::new([0u8; 8192], [const { Region::new() }; 4]).unwrap();
        let cache = Cache::new(
            store,
            [const { Slot::new() }; 4],
            [const { Bucket::new() }; 8],
            CacheConfig {
                max_entry_bytes: max_entry,
                large_bytes: max_entry,
                small_percent: 10,
            },
        )
        .unwrap();
        let mut config = Config::host();
        config.idle_timeout = crate::time::Duration::from_millis(500);
        Box::leak(Box::new(SiteParts::new(
            source,
            RefCell::new(cache),
            config,
        )))
    }

    /// One interface on a Loopback device, the server (2 sockets with `RX`/`TX` buffers) and
    /// one client socket, on a virtual clock that advances 1 ms per step.
    struct World<F: FileSource + 'static> {
        iface: Interface,
        device: Loopback,
        sockets: SocketSet<'static>,
        server: Server<'static, TestSite<F>, 2, 4096, STAGE>,
        client: SocketHandle,
        now: SmolInstant,
    }

    impl<F: FileSource + 'static> World<F> {
        fn new<const RX: usize, const TX: usize>(site: &'static TestSite<F>) -> Self {
            let mut device = Loopback::new(Medium::Ip);
            let now = SmolInstant::from_millis(1);
            let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
            });
            let storage = Box::leak(Box::new([SocketStorage::EMPTY; 3]));
            let mut sockets = SocketSet::new(&mut storage[..]);
            let server_buffers = Box::leak(Box::new(SocketBuffers::<2, RX, TX>::new()));
            let client_buffers = Box::leak(Box::new(SocketBuffers::<1, 65536, 2048>::new()));
            let handles = server_buffers.add_sockets(&mut sockets);
            let [client] = client_buffers.add_sockets(&mut sockets);
            let server = Server::new(site, PORT, handles).unwrap();
            Self {
                iface,
                device,
                sockets,
                server,
                client,
                now,
            }
        }

        fn step(&mut self) {
            self.iface
                .poll(self.now, &mut self.device, &mut self.sockets);
            self.server.poll(self.now, &mut self.sockets);
            self.iface
                .poll(self.now, &mut self.device, &mut self.sockets);
            self.now += ::smoltcp::time::Duration::from_millis(1);
        }

        fn run(&mut self, steps: usize) {
            for _ in 0..steps {
                self.step();
            }
        }

        fn client(&mut self) -> &mut tcp::Socket<'static> {
            self.sockets.get_mut(self.client)
        }

        fn connect(&mut self, local_port: u16) {
            let cx = self.iface.context();
            self.sockets
                .get_mut::<tcp::Socket<'static>>(self.client)
                .connect(cx, (IpAddress::v4(127, 0, 0, 1), PORT), local_port)
                .unwrap();
            self.run(5);
            assert_eq!(self.client().state(), tcp::State::Established);
        }

        /// Sends `bytes` in pieces of at most `piece`, stepping in between.
        fn send(&mut self, bytes: &[u8], piece: usize) {
            for chunk in bytes.chunks(piece) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let n = self.client().send_slice(rest).unwrap();
                    rest = &rest[n..];
                    self.step();
                }
            }
        }

        /// Everything received until `steps` pass with nothing new.
        fn receive(&mut self) -> Vec<u8> {
            let mut out = Vec::new();
            let mut quiet = 0;
            while quiet < 20 {
                self.step();
                let mut buf = [0u8; 4096];
                match self.client().recv_slice(&mut buf) {
                    Ok(n) if n > 0 => {
                        out.extend_from_slice(&buf[..n]);
                        quiet = 0;
                    }
                    _ => quiet += 1,
                }
            }
            out
        }
    }

    fn get(path: &str) -> Vec<u8> {
        std::format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
    }

    fn body_of(response: &[u8]) -> &[u8] {
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        &response[end..]
    }

    #[test]
    fn instants_convert_both_ways() {
        let t = Instant::from_millis(123_456);
        assert_eq!(core_instant(smol_instant(t)), t);
        assert_eq!(
            core_instant(SmolInstant::from_millis(-5)),
            Instant::from_millis(0)
        );
        assert_eq!(
            smol_instant(Instant::from_millis(u64::MAX)),
            SmolInstant::from_micros(i64::MAX)
        );
        assert_eq!(
            smol_instant(Instant::from_millis(i64::MAX as u64 / 1000 + 1)),
            SmolInstant::from_micros(i64::MAX)
        );
    }

    #[test]
    fn construction_checks_port_and_stage() {
        let s = site(StaticSource::new(FILES), 4096);
        let mut storage = [SocketStorage::EMPTY; 1];
        let mut sockets = SocketSet::new(&mut storage[..]);
        let buffers = Box::leak(Box::new(SocketBuffers::<1, 64, 64>::new()));
        let handles = buffers.add_sockets(&mut sockets);
        assert_eq!(
            Server::<_, 1, 4096, STAGE>::new(s, 0, handles).err(),
            Some(ServerError::PortZero)
        );
        // 8192 is the host max_head: a staging buffer of exactly that cannot tell a full head
        // from a too-large one.
        assert_eq!(
            Server::<_, 1, 4096, 8192>::new(s, 80, handles).err(),
            Some(ServerError::StageTooSmall)
        );
        assert!(Server::<_, 1, 4096, 8193>::new(s, 80, handles).is_ok());
    }

    #[test]
    fn head_split_across_the_receive_ring_wrap_is_parsed() {
        // A 64-byte receive ring and a 300-byte head sent 7 bytes at a time: the head wraps
        // the ring several times and reaches the parser whole through the staging buffer.
        let s = site(StaticSource::new(FILES), 4096);
        let mut world = World::new::<64, 4096>(s);
        world.connect(50_000);
        let filler = "x".repeat(200);
        let req = std::format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n");
        world.send(req.as_bytes(), 7);
        let out = world.receive();
        assert!(
            out.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{:?}",
            std::string::String::from_utf8_lossy(&out)
        );
        assert_eq!(body_of(&out), b"hello, satchel\n");
    }

    #[test]
    fn bodies_larger_than_the_transmit_ring_arrive_whole_cached_or_streamed() {
        for max_entry in [4096, 1024] {
            // 3000 bytes through a 256-byte transmit ring: many rounds, wrapping the ring;
            // cached (max_entry 4096) or streamed from the source (1024).
            let s = site(StaticSource::new(FILES), max_entry);
            let mut world = World::new::<1024, 256>(s);
            world.connect(50_001);
            let two = [get("/big.bin"), get("/hello.txt")].concat();
            world.send(&two, two.len());
            let out = world.receive();
            let second = out.windows(9).rposition(|w| w == b"HTTP/1.1 ").unwrap();
            assert_eq!(body_of(&out[..second]), &BIG[..], "max_entry {max_entry}");
            assert_eq!(body_of(&out[second..]), b"hello, satchel\n");
            let status = if max_entry == 4096 {
                "fwd=miss; stored"
            } else {
                "fwd=bypass"
            };
            assert!(std::string::String::from_utf8_lossy(&out).contains(status));
        }
    }

    #[test]
    fn idle_timeout_closes_and_the_socket_listens_again() {
        let s = site(StaticSource::new(FILES), 4096);
        let mut world = World::new::<1024, 1024>(s);
        world.connect(50_002);
        world.run(3);
        assert_eq!(world.server.active(), 1);
        let deadline = world.server.poll_at().expect("an idle deadline");
        assert!(
            deadline > world.now
                && deadline <= world.now + ::smoltcp::time::Duration::from_millis(500)
        );
        while world.now <= deadline {
            world.step();
        }
        world.run(5);
        assert_eq!(world.server.active(), 0);
        // The server's FIN arrived: the client may no longer receive.
        assert!(!world.client().may_recv());
        world.client().close();
        world.run(20);
        // Both sockets listen again and serve a new connection.
        world.client().abort();
        world.run(2);
        world.connect(50_003);
        world.send(&get("/hello.txt"), 1000);
        assert_eq!(body_of(&world.receive()), b"hello, satchel\n");
    }

    #[test]
    fn reset_mid_response_frees_the_socket_and_the_cache_pin() {
        let s = site(StaticSource::new(FILES), 4096);
        let mut world = World::new::<1024, 256>(s);
        world.connect(50_004);
        world.send(&get("/big.bin"), 1000);
        // A little of the response, then the client resets.
        world.run(2);
        world.client().abort();
        world.run(10);
        assert_eq!(world.server.active(), 0);
        // Unpinned: the entry can be dropped.
        assert!(s.cache.borrow_mut().invalidate(b"big.bin"));
    }

    #[test]
    fn a_file_that_shrinks_while_sent_resets_the_connection() {
        let source = Shrinking {
            inner: StaticSource::new(FILES),
            limit: 1000,
        };
        // Streamed (not cached: max_entry 1024 < 3000), so the source is read while sending.
        let s = site(source, 1024);
        let mut world = World::new::<1024, 4096>(s);
        world.connect(50_005);
        world.send(&get("/big.bin"), 1000);
        // smoltcp drops what is still queued when the socket is aborted, so the client gets at
        // most a prefix of the response, never a byte the file did not have, then a reset.
        let out = world.receive();
        if !out.is_empty() {
            assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
            let body = body_of(&out);
            assert!(body.len() <= 1000 && body == &BIG[..body.len()]);
        }
        assert_eq!(
            world.client().state(),
            tcp::State::Closed,
            "reset, not a clean end"
        );
    }

    #[test]
    fn poll_with_reports_each_event_with_its_slot_peer_and_request() {
        let s = site(StaticSource::new(FILES), 4096);
        let mut world = World::new::<1024, 4096>(s);
        world.connect(50_010);
        let two = [get("/hello.txt"), get("/nope")].concat();
        assert_eq!(world.client().send_slice(&two), Ok(two.len()));
        let mut seen = std::vec::Vec::new();
        for _ in 0..20 {
            let now = world.now;
            world.iface.poll(now, &mut world.device, &mut world.sockets);
            world.server.poll_with(now, &mut world.sockets, |a| {
                let what = match a.event {
                    Event::Response(info) => std::format!(
                        "{} {} {}",
                        std::string::String::from_utf8_lossy(info.method_token.of(a.request)),
                        std::string::String::from_utf8_lossy(info.target.of(a.request)),
                        info.status.as_u16()
                    ),
                    Event::Done(done) => std::format!("done {}", done.complete),
                };
                seen.push((a.slot, a.peer.map(|p| p.port), what));
            });
            world.iface.poll(now, &mut world.device, &mut world.sockets);
            world.now += ::smoltcp::time::Duration::from_millis(1);
        }
        let port = Some(50_010);
        assert_eq!(
            seen,
            [
                (0, port, "GET /hello.txt 200".into()),
                (0, port, "done true".into()),
                (0, port, "GET /nope 404".into()),
                (0, port, "done true".into()),
            ]
        );
    }
}
