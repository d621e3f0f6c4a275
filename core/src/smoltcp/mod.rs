//! Serving (and fetching) over the smoltcp TCP/IP stack, from a board's poll loop.
//!
//! [`Server`] runs `N` server connections, one per smoltcp TCP socket listening on the same
//! port: it accepts, feeds each [`Connection`] from its socket's receive buffer, copies what the
//! connection plans to send ([`Connection::poll_transmit`]) into the socket's transmit buffer,
//! acts on the connection's timeouts and puts the socket back to listening once the connection
//! is over. [`nal::NalStack`] gives the client side the same stack through embedded-nal's
//! `TcpClientStack`.
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
//! [`FileSource`] into the socket's transmit ring with one copy, as smoltcp requires.
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

pub mod nal;

use ::smoltcp::iface::{SocketHandle, SocketSet};
use ::smoltcp::socket::tcp;
use ::smoltcp::time::Instant as SmolInstant;

use crate::cache::ContentCache;
use crate::serve::{BodyRef, Connection, ResponseInfo, Site, Transmit};
use crate::source::FileSource;
use crate::time::{Duration, Instant};

/// The core's instant for a smoltcp instant (milliseconds; times before the origin are 0).
pub fn core_instant(t: SmolInstant) -> Instant {
    Instant::from_millis(u64::try_from(t.total_millis()).unwrap_or(0))
}

/// The smoltcp instant for a core instant.
pub fn smol_instant(t: Instant) -> SmolInstant {
    SmolInstant::from_millis(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
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
    /// [`SocketBuffers::add_sockets`], or sockets the board made itself). The sockets are put
    /// to listening on the first [`poll`](Self::poll).
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

    /// [`poll`](Self::poll), calling `on_response` for each response planned (for an access
    /// log or counters).
    pub fn poll_with(
        &mut self,
        now: SmolInstant,
        sockets: &mut SocketSet<'_>,
        mut on_response: impl FnMut(ResponseInfo),
    ) -> bool {
        let now = core_instant(now);
        let mut progress = false;
        for slot in &mut self.slots {
            let socket = sockets.get_mut::<tcp::Socket<'_>>(slot.handle);
            progress |= slot.poll(self.site, self.port, socket, now, &mut on_response);
        }
        progress
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
        on_response: &mut impl FnMut(ResponseInfo),
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
        on_response: &mut impl FnMut(ResponseInfo),
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
        on_response: &mut impl FnMut(ResponseInfo),
    ) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            self.phase = Phase::Listening;
            return true;
        };
        if !socket.is_active() {
            // Reset by the peer (or timed out by smoltcp): nobody is left to answer. Dropping
            // the connection releases its cache pin.
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
            let consumed = conn.handle_input(now, &self.stage[..self.staged]);
            if consumed > 0 {
                let consumed = consumed.min(self.staged);
                self.stage.copy_within(consumed..self.staged, 0);
                self.staged -= consumed;
                progress = true;
            }
            if let Some(info) = conn.poll_event() {
                on_response(info);
            }
            match push(site, conn, socket, now) {
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
                if let Some(info) = conn.poll_event() {
                    on_response(info);
                }
                source_changed = matches!(push(site, conn, socket, now), Pushed::SourceChanged);
                progress = true;
            }
        }

        if source_changed {
            // Never send wrong bytes: the peer sees the connection reset mid-body.
            conn.abort();
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

/// What a connection of site `S` plans to send.
type SiteTransmit<'a, S> = Transmit<
    'a,
    <<S as Site>::Cache as ContentCache>::Handle,
    <<S as Site>::Source as FileSource>::File,
    <<S as Site>::Source as FileSource>::Listing,
>;

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
                match socket.send(|buf| match copy_transmit(site, &transmit, buf) {
                    Some(n) => (n, Some(n)),
                    None => (0, None),
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

/// Fills `buf` with the head bytes of `transmit`, then as many body bytes as fit. `None` when
/// the body's source came up short (a file changed size, a cache entry was not readable).
fn copy_transmit<S: Site>(
    site: &S,
    transmit: &SiteTransmit<'_, S>,
    buf: &mut [u8],
) -> Option<usize> {
    let head = transmit.head;
    let h = head.len().min(buf.len());
    buf.get_mut(..h)?.copy_from_slice(head.get(..h)?);
    if h < head.len() {
        return Some(h);
    }
    let room = buf.get_mut(h..)?;
    let want = usize::try_from(transmit.body.len())
        .unwrap_or(usize::MAX)
        .min(room.len());
    if want == 0 {
        return Some(h);
    }
    let dst = room.get_mut(..want)?;
    let got = match &transmit.body {
        BodyRef::None => 0,
        BodyRef::Cached { handle, offset, .. } => site.cache().copy_out(handle, *offset, dst),
        BodyRef::File { file, offset, .. } => site.source().read_at(file, *offset, dst).ok()?,
        BodyRef::Listing {
            listing, offset, ..
        } => {
            let part = listing
                .as_ref()
                .get(*offset..)
                .and_then(|rest| rest.get(..want))?;
            dst.copy_from_slice(part);
            want
        }
    };
    if got == 0 {
        return None;
    }
    Some(h + got)
}
