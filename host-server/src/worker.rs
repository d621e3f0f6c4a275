//! One worker: an edge-triggered readiness loop (epoll through mio) that drives the core's
//! sans-IO connections on non-blocking sockets.
//!
//! Per request on a kept-alive connection the loop makes two system calls in the common case:
//! one `read` (a short read means the socket is drained, so no second read to see `EAGAIN`) and
//! one `send` of the response head together with the cached body (a cached body of 16 KiB or
//! more: the head by `send`, the body by `sendfile` from its sealed memfd, [`crate::memfd`]).
//! Bodies of uncached files go out by `pread` + `send` through the worker's buffer, in bounded
//! chunks. Each turn of the loop first reads every ready socket, then handles what came, so that one `stat` per path
//! validates the cache for all the turn's requests ([`crate::probes`]). Timeouts are checked by a sweep
//! every [`SWEEP`], which costs a few nanoseconds per connection and needs no timer structure.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rustix::net::SendFlags;
use satchel_core::http::method::Method;
use satchel_core::serve::{BodyRef, Connection, Event};
use satchel_core::source::{Arrival, Ticket};

use crate::metrics::WorkerCounters;
use crate::readside::{ReadSide, Received};
use crate::site::{Shared, WorkerSite};

/// Bytes of response head buffer per connection: fits a `301` whose `Location` is the longest
/// path (1024 bytes, percent-encoded).
const TX: usize = 4096;
/// Size of the read buffer shared by a worker's connections.
const READ_CHUNK: usize = 16 * 1024;
/// How long a deferred accept waits for a silent client's first bytes.
const DEFER_ACCEPT_SECS: libc::c_int = 1;
/// Largest piece of an uncached file per `pread` + `send`. Measured here (256 MiB, one
/// connection, 8 interleaved rounds, median requests/s): 512 KiB 20.3, 256 KiB 17.3, 1 MiB 17.7,
/// against `sendfile` in 1 MiB calls 12.6 (and h2o, which also reads into buffers, 15.8):
/// `sendfile` on this VM pays more for splicing page references than two copies through a
/// buffer that stays in the L2 cache.
const STREAM_CHUNK: usize = 512 * 1024;
/// How often timeouts are checked.
const SWEEP: Duration = Duration::from_millis(250);
/// How long a closing connection may linger, draining what the peer still sends, so that the
/// last response is not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(2);
/// At most this many sockets linger per worker; past it they are closed at once.
const MAX_LINGERING: usize = 4096;
const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// Binds `count` listeners on `addr` with `SO_REUSEPORT`, so the kernel spreads new
/// connections over the workers. Port 0 is resolved by the first bind and reused.
/// With `defer_accept`, a connection is handed over only once its first bytes have arrived (or
/// after [`DEFER_ACCEPT_SECS`] without any).
pub(crate) fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    defer_accept: bool,
) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut addr = addr;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            // Dual stack: [::] also takes IPv4 clients.
            socket.set_only_v6(false)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one setsockopt here
        // instead of one per connection.
        socket.set_tcp_nodelay(true)?;
        if defer_accept {
            set_defer_accept(&socket, DEFER_ACCEPT_SECS)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        let listener: std::net::TcpListener = socket.into();
        if addr.port() == 0 {
            addr = listener.local_addr()?;
        }
        out.push(listener);
    }
    Ok(out)
}

/// `TCP_DEFER_ACCEPT` on a listener: the kernel completes the handshake but wakes the server
/// only when the client's first bytes arrive, so a new connection costs one turn of the loop
/// (accept, read, answer) instead of two, and clients that connect and say nothing hold no
/// slot. Apache httpd does the same by default on Linux (`AcceptFilter http data`). A client
/// silent for `secs` is handed over anyway (and then meets the usual timeouts).
///
/// Neither std (unstable), socket2, rustix nor nix offers this option, hence an `unsafe`
/// call (one of two in the workspace, with `malloc.rs`), on a descriptor borrowed for the call.
#[allow(unsafe_code)]
fn set_defer_accept(socket: &socket2::Socket, secs: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor is open for the whole call (borrowed from `socket`); the option
    // value is a live, aligned `c_int` and `len` is its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SIGINT/SIGTERM: the first asks every worker to finish and stop; a second one exits at once.
pub(crate) struct ShutdownSignal {
    signals: signal_hook::iterator::Signals,
    wakers: Mutex<Vec<Arc<Waker>>>,
}

impl ShutdownSignal {
    pub(crate) fn install() -> io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        Ok(Self {
            signals: signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?,
            wakers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn add_waker(&self, waker: Arc<Waker>) {
        if let Ok(mut w) = self.wakers.lock() {
            w.push(waker);
        }
    }

    /// Blocks until a signal arrives, then drains and tells the workers to shut down:
    /// `draining` is set at once (the admin's `/healthz` answers 503), the files are still
    /// served for `drain`, then the workers stop accepting and finish what is in flight. From
    /// the first signal on, a second one exits the process at once with 128 + its number (130
    /// for SIGINT, 143 for SIGTERM, as shells report a process killed by it).
    pub(crate) fn wait(self, shared: &Shared, draining: &AtomicBool, drain: Duration) {
        let mut signals = self.signals;
        let first = signals.forever().next();
        draining.store(true, Ordering::Release);
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("satchel-server: second signal, exiting without waiting");
                std::process::exit(128 + sig);
            }
        });
        if first.is_some() && !drain.is_zero() {
            eprintln!(
                "satchel-server: draining: /healthz answers 503, files served for {} more",
                humantime::format_duration(drain)
            );
            std::thread::sleep(drain);
        }
        shared.shutdown.store(true, Ordering::Release);
        if let Ok(wakers) = self.wakers.lock() {
            for w in wakers.iter() {
                let _ = w.wake();
            }
        }
    }
}

/// A log line waiting for its response to end (to know what was sent and how long it took).
struct PendingLog {
    /// `client method target status`.
    line: String,
    cache: &'static str,
    started: std::time::Instant,
}

/// One client connection of a worker.
struct Slot<'s> {
    sock: TcpStream,
    /// The client: the socket's peer, or the one a PROXY header named.
    peer: SocketAddr,
    /// With `--proxy-protocol`, until the PROXY v2 header has been read: when the connection is
    /// closed if it has not come whole (the head timeout, from the accept).
    proxy_until: Option<std::time::Instant>,
    conn: Connection<'s, WorkerSite<'s>, TX>,
    /// Received bytes the connection has not consumed yet (an incomplete head, or pipelined
    /// requests waiting for the response before them). Empty in the common case.
    pending: Vec<u8>,
    /// What the socket is registered for in the worker's epoll set (`None`: not registered).
    interest: Option<Interest>,
    /// Whether the socket may be read, the peer closed, or reading failed.
    read: ReadSide,
    /// The number of the read that delivered the newest bytes (see [`crate::probes`]).
    received: Arrival,
    /// The last write went with `MSG_MORE`: its tail may still wait in the kernel for our FIN.
    held: bool,
    log: Option<PendingLog>,
    /// The ticket its request waits under in the I/O pool (see [`crate::iopool`]).
    ticket: Option<Ticket>,
}

/// What the loop should do with a connection after driving it.
enum Flow {
    /// Wait for the next readiness event: the socket's room to write (`write`), or bytes.
    Wait { write: bool },
    /// Close it (after lingering if the peer may still be sending).
    Close,
}

/// A worker thread's state.
pub(crate) struct Worker<'s> {
    site: &'s WorkerSite<'s>,
    shared: Arc<Shared>,
    poll: Poll,
    /// Kept open for the worker's life: a wake-up of an eventfd whose last descriptor is
    /// closed is dropped from the epoll set unseen.
    _waker: Arc<Waker>,
    listener: Option<TcpListener>,
    slots: Vec<Option<Box<Slot<'s>>>>,
    free: Vec<usize>,
    open: usize,
    /// Shared by the worker's connections: reads (the first [`READ_CHUNK`] bytes) and uncached
    /// bodies on their way out.
    buf: Box<[u8]>,
    /// Connections with something to do in this turn of the loop.
    ready: Vec<usize>,
    /// The connection whose request waits under each ticket of this worker.
    tickets: HashMap<u64, usize>,
    lingering: Vec<(TcpStream, std::time::Instant)>,
    /// Accepting stopped on EMFILE/ENFILE; retried at each sweep.
    accept_stalled: bool,
    /// Read a new connection at once (deferred accept: its request is usually there).
    eager_read: bool,
    /// `--proxy-protocol`: every connection must start with a PROXY v2 header, within this.
    proxy_protocol: Option<Duration>,
    log: Vec<u8>,
    counters: &'s WorkerCounters,
    /// How long shutdown waits for responses in flight before cutting them off.
    grace: Duration,
}

/// A worker's event loop and listener, made on the main thread (so that the shutdown signal
/// can hold its waker) and handed to the worker's thread.
pub(crate) struct WorkerIo {
    poll: Poll,
    waker: Arc<Waker>,
    listener: TcpListener,
}

impl WorkerIo {
    pub(crate) fn new(listener: std::net::TcpListener) -> Result<Self> {
        let poll = Poll::new().context("epoll")?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).context("waker")?);
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .context("registering listener")?;
        Ok(Self {
            poll,
            waker,
            listener,
        })
    }

    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }
}

impl<'s> Worker<'s> {
    /// A worker over its own `site` (made on its thread: it holds the worker's clock and memo).
    /// With `proxy_protocol`, every connection must begin with a PROXY v2 header, complete
    /// within that time of the accept, or it is closed unanswered.
    pub(crate) fn new(
        site: &'s WorkerSite<'s>,
        shared: Arc<Shared>,
        io: WorkerIo,
        defer_accept: bool,
        counters: &'s WorkerCounters,
        grace: Duration,
        proxy_protocol: Option<Duration>,
    ) -> Self {
        Self {
            site,
            shared,
            poll: io.poll,
            _waker: io.waker,
            listener: Some(io.listener),
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            buf: vec![0; READ_CHUNK.max(STREAM_CHUNK)].into_boxed_slice(),
            ready: Vec::new(),
            tickets: HashMap::new(),
            lingering: Vec::new(),
            accept_stalled: false,
            eager_read: defer_accept,
            proxy_protocol,
            log: Vec::with_capacity(64 * 1024),
            counters,
            grace,
        }
    }

    /// Runs until shutdown and the connections in flight are done.
    pub(crate) fn run(mut self) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = std::time::Instant::now() + SWEEP;
        let mut shutdown_deadline: Option<std::time::Instant> = None;
        loop {
            let idle = self.open == 0 && self.lingering.is_empty() && !self.accept_stalled;
            let timeout = if idle && shutdown_deadline.is_none() {
                None
            } else {
                Some(next_sweep.saturating_duration_since(std::time::Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e).context("epoll_wait");
                }
            }
            self.site.clock.tick();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.collect_done(),
                    Token(id) => {
                        if let Some(Some(slot)) = self.slots.get_mut(id) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                slot.read.on_event();
                            }
                            self.ready.push(id);
                        }
                    }
                }
            }
            self.serve_ready();
            if shutdown_deadline.is_none() && self.shared.shutting_down() {
                shutdown_deadline = Some(std::time::Instant::now() + self.grace);
                self.begin_shutdown();
            }
            let now_std = std::time::Instant::now();
            if now_std >= next_sweep {
                self.sweep(now_std);
                next_sweep = now_std + SWEEP;
            }
            self.flush_log();
            if let Some(deadline) = shutdown_deadline {
                if self.open == 0 || now_std >= deadline {
                    break;
                }
            }
        }
        // Whatever is left after the grace period is cut off, and counted.
        for id in 0..self.slots.len() {
            if let Some(slot) = &self.slots[id] {
                if slot.conn.is_sending() {
                    self.counters.cut_off();
                }
                self.close_slot(id, false);
            }
        }
        self.lingering.clear();
        self.flush_log();
        let answered = usize::try_from(self.counters.responses()).unwrap_or(usize::MAX);
        self.shared.requests.fetch_add(answered, Ordering::Relaxed);
        Ok(())
    }

    /// Serves the connections that became ready: first every one of them takes in what it
    /// received, then each is driven. Reading all before handling any lets one `stat` of a path
    /// validate the cache for every request of the turn (see [`crate::probes`]).
    fn serve_ready(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        for &id in &ready {
            if let Some(Some(slot)) = self.slots.get_mut(id) {
                slot.receive(self.site, &mut self.buf);
            }
        }
        for &id in &ready {
            self.drive(id);
        }
        ready.clear();
        self.ready = ready;
    }

    /// File work finished in the I/O pool: each connection waiting for it is made ready and
    /// driven in this turn (its request is answered from the start, see `Connection::handle_ready`).
    fn collect_done(&mut self) {
        for ticket in self.site.collect_done() {
            let slot = self.tickets.get(&ticket.0).copied().and_then(|id| {
                let slot = self.slots.get_mut(id)?.as_mut()?;
                Some((id, slot))
            });
            match slot {
                Some((id, slot)) => {
                    slot.conn.handle_ready(ticket);
                    self.ready.push(id);
                }
                // Its connection closed while it waited.
                None => self.site.forget(ticket),
            }
        }
    }

    /// Keeps the map from tickets to connections right after `id` was driven: a request that
    /// now waits is found by its ticket; one that was answered frees what was kept for it.
    fn track_ticket(&mut self, id: usize) {
        let Some(Some(slot)) = self.slots.get_mut(id) else {
            return;
        };
        if slot.conn.is_waiting() {
            if let Some(t) = slot.conn.waiting_for() {
                if slot.ticket != Some(t) {
                    if let Some(old) = slot.ticket.replace(t) {
                        self.tickets.remove(&old.0);
                        self.site.forget(old);
                    }
                    self.tickets.insert(t.0, id);
                }
            }
        } else if let Some(old) = slot.ticket.take() {
            self.tickets.remove(&old.0);
            self.site.forget(old);
        }
    }

    fn begin_shutdown(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for id in 0..self.slots.len() {
            if let Some(slot) = self.slots[id].as_mut() {
                slot.conn.shutdown();
                self.drive(id);
            }
        }
    }

    fn accept_all(&mut self) {
        self.accept_stalled = false;
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((sock, peer)) => self.admit(sock, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(c) if c == rustix::io::Errno::MFILE.raw_os_error() || c == rustix::io::Errno::NFILE.raw_os_error()) =>
                {
                    // Out of descriptors: retry at the next sweep instead of spinning.
                    self.accept_stalled = true;
                    return;
                }
                // ECONNABORTED and friends concern one connection only.
                Err(_) => {}
            }
        }
    }

    fn admit(&mut self, sock: TcpStream, peer: SocketAddr) {
        if !self.shared.try_admit() {
            self.refuse(sock, peer);
            return;
        }
        let id = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.open += 1;
        self.slots[id] = Some(Box::new(Slot {
            sock,
            peer,
            proxy_until: self
                .proxy_protocol
                .map(|limit| std::time::Instant::now() + limit),
            conn: Connection::new(self.site, self.site.clock.now()),
            pending: Vec::new(),
            interest: None,
            // With deferred accept the request is usually there already; otherwise a read now
            // would only see EAGAIN, and registering reports the data when it comes.
            read: ReadSide::new(self.eager_read),
            received: Arrival::UNKNOWN,
            held: false,
            log: None,
            ticket: None,
        }));
        self.ready.push(id);
    }

    /// Runs a connection until it must wait for the socket, then closes it if it is done.
    fn drive(&mut self, id: usize) {
        let Some(Some(slot)) = self.slots.get_mut(id) else {
            return;
        };
        let ctx = Ctx {
            site: self.site,
            quiet: self.shared.quiet,
            log: &mut self.log,
            counters: self.counters,
        };
        let flow = slot.pump(&mut self.buf, ctx);
        self.track_ticket(id);
        let Some(Some(slot)) = self.slots.get_mut(id) else {
            return;
        };
        match flow {
            Flow::Wait { write } => {
                // Writability is asked for only once a write has blocked (then kept: a
                // connection that streamed once may well stream again), so that short exchanges
                // cost no EPOLLOUT wakeups; a connection that never waits is never registered.
                let wanted = if write || slot.interest.is_some_and(|i| i.is_writable()) {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                if slot.interest != Some(wanted) {
                    let registry = self.poll.registry();
                    let done = match slot.interest {
                        None => registry.register(&mut slot.sock, Token(id), wanted),
                        Some(_) => registry.reregister(&mut slot.sock, Token(id), wanted),
                    };
                    match done {
                        Ok(()) => slot.interest = Some(wanted),
                        Err(_) => self.close_slot(id, false),
                    }
                }
            }
            Flow::Close => {
                if slot.read.peer_done() {
                    slot.conn.handle_eof(self.site.clock.now());
                }
                let linger = slot.conn.should_linger(!slot.pending.is_empty());
                self.close_slot(id, linger);
            }
        }
    }

    fn close_slot(&mut self, id: usize, linger: bool) {
        let Some(mut slot) = self.slots.get_mut(id).and_then(Option::take) else {
            return;
        };
        // No EPOLL_CTL_DEL: closing the descriptor removes it from the epoll set (it is never
        // duplicated), which saves a system call per connection.
        // A response still in flight is cut short here (peer gone, shutdown grace over): the
        // connection reports it so, with the bytes that did go out.
        slot.conn.abort();
        slot.drain_events(&[], &mut self.log, self.shared.quiet, self.counters);
        if let Some(t) = slot.ticket.take() {
            self.tickets.remove(&t.0);
            self.site.forget(t);
        }
        self.free.push(id);
        self.open -= 1;
        self.shared.release();
        if linger {
            // It stays open a while: its token will be reused, so it must leave the epoll set.
            if slot.interest.is_some() {
                let _ = self.poll.registry().deregister(&mut slot.sock);
            }
            self.linger(slot.sock);
        } else if slot.held {
            // Sends the held bytes with the FIN at once: a reset from `close` (bytes the peer
            // sent after its last request are unread) would otherwise discard them unsent.
            let _ = slot.sock.shutdown(Shutdown::Write);
        }
    }

    /// Past the connection cap: the core's refusal (`503`, `Retry-After`), one write, logged,
    /// then the socket lingers so that the client reads it rather than a reset.
    fn refuse(&mut self, mut sock: TcpStream, peer: SocketAddr) {
        let mut conn = Connection::<_, TX>::busy(self.site, self.site.clock.now());
        let mut log = None;
        while let Some(event) = conn.poll_event() {
            count_event(&event, self.counters);
            log_event(event, peer, &[], &mut log, &mut self.log, self.shared.quiet);
        }
        let written = match conn.poll_transmit() {
            Some(t) => sock.write(t.head).unwrap_or(0),
            None => 0,
        };
        conn.transmitted(self.site.clock.now(), written);
        conn.abort();
        while let Some(event) = conn.poll_event() {
            count_event(&event, self.counters);
            log_event(event, peer, &[], &mut log, &mut self.log, self.shared.quiet);
        }
        self.linger(sock);
    }

    /// Half-closes `sock` and keeps draining it for a while so that the peer reads our last
    /// response instead of a reset (RFC 9112 §9.6).
    fn linger(&mut self, sock: TcpStream) {
        let _ = sock.shutdown(Shutdown::Write);
        if self.lingering.len() < MAX_LINGERING {
            self.lingering
                .push((sock, std::time::Instant::now() + LINGER));
        }
    }

    /// Whether connection `id` has a timeout due at `t`.
    fn is_due(&self, id: usize, t: satchel_core::time::Instant) -> bool {
        self.slots[id]
            .as_ref()
            .is_some_and(|slot| slot.conn.poll_timeout().is_some_and(|d| d <= t))
    }

    /// Timeouts of every connection, after reading what is waiting; draining of lingering
    /// sockets; a stalled accept.
    fn sweep(&mut self, now_std: std::time::Instant) {
        let t = self.site.clock.now();
        for id in 0..self.slots.len() {
            let proxy_late = self.slots[id]
                .as_ref()
                .and_then(|slot| slot.proxy_until)
                .is_some_and(|until| now_std >= until);
            if proxy_late {
                // No whole PROXY header within the head timeout: closed, never served.
                self.close_slot(id, false);
                continue;
            }
            if !self.is_due(id, t) {
                continue;
            }
            // What is waiting first: after a pause (SIGSTOP, a suspended VM, a starved CPU)
            // every deadline has passed, but requests that arrived meanwhile are answered,
            // not timed out unread (which would reset their connections).
            if let Some(slot) = self.slots[id].as_mut() {
                slot.read.on_event();
                slot.receive(self.site, &mut self.buf);
            }
            self.drive(id);
            if self.is_due(id, t) {
                if let Some(slot) = self.slots[id].as_mut() {
                    slot.conn.handle_timeout(t);
                }
                self.drive(id);
            }
        }
        let buf = &mut self.buf;
        self.lingering.retain_mut(|(sock, until)| {
            if now_std >= *until {
                return false;
            }
            loop {
                match sock.read(buf) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
        });
        if self.accept_stalled {
            self.accept_all();
            self.serve_ready();
        }
    }

    fn flush_log(&mut self) {
        if !self.log.is_empty() {
            let mut out = io::stdout().lock();
            let _ = out.write_all(&self.log);
            let _ = out.flush();
            self.log.clear();
        }
    }
}

/// What `pump` needs from its worker besides the slot.
struct Ctx<'a> {
    site: &'a WorkerSite<'a>,
    quiet: bool,
    log: &'a mut Vec<u8>,
    counters: &'a WorkerCounters,
}

impl Slot<'_> {
    /// The first half of a turn: one read of what the socket holds, kept for [`Slot::pump`].
    /// Only when nothing is pending or being sent, so that a client that does not read its
    /// responses cannot make the server buffer its requests.
    fn receive(&mut self, site: &WorkerSite<'_>, buf: &mut [u8]) {
        if !self.read.may_read() || !self.pending.is_empty() || self.conn.is_sending() {
            return;
        }
        let read_buf = &mut buf[..READ_CHUNK];
        if let Received::Bytes(n) = self.read_once(site, read_buf) {
            self.pending.extend_from_slice(&read_buf[..n]);
        }
    }

    /// One `read`, with its outcome recorded in the slot's read side.
    fn read_once(&mut self, site: &WorkerSite<'_>, read_buf: &mut [u8]) -> Received {
        let got = loop {
            break match self.sock.read(read_buf) {
                Ok(0) => Received::Eof,
                Ok(n) => {
                    self.received = site.received();
                    Received::Bytes(n)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Received::Failed,
            };
        };
        self.read.after_read(got, read_buf.len());
        got
    }

    /// Sends what is owed, feeds what was received, reads more; until the socket would block.
    fn pump(&mut self, buf: &mut [u8], mut ctx: Ctx<'_>) -> Flow {
        loop {
            // A timeout's answer (408) or end (a stalled response cut off).
            self.drain_events(&[], ctx.log, ctx.quiet, ctx.counters);
            if self.read.failed() {
                return Flow::Close;
            }
            match self.send(buf, &mut ctx) {
                Ok(true) => {}
                Ok(false) => return Flow::Wait { write: true },
                Err(_) => return Flow::Close,
            }
            if self.conn.is_closed() {
                return Flow::Close;
            }
            if self.proxy_until.is_some() && !self.pending.is_empty() {
                match self.take_proxy_header() {
                    Some(true) => continue,
                    Some(false) => return Flow::Close,
                    None => {}
                }
            }
            if self.proxy_until.is_none() && !self.pending.is_empty() {
                let mut pending = std::mem::take(&mut self.pending);
                let now = ctx.site.clock.now();
                let consumed = self.conn.handle_input(now, self.received, &pending);
                self.drain_events(&pending[..consumed], ctx.log, ctx.quiet, ctx.counters);
                pending.drain(..consumed);
                self.pending = pending;
                if consumed > 0 {
                    continue;
                }
            }
            if self.conn.is_waiting() {
                // Its request waits for the I/O pool: no more reading until it is answered
                // (the requests behind it wait in the peer's socket buffer, as when a response
                // is being sent).
                return Flow::Wait { write: false };
            }
            if self.read.take_eof_notice() {
                self.conn.handle_eof(ctx.site.clock.now());
                continue;
            }
            if !self.read.may_read() {
                return Flow::Wait { write: false };
            }
            match self.read_once(ctx.site, &mut buf[..READ_CHUNK]) {
                Received::Bytes(n) => {
                    let data = &buf[..n];
                    if self.pending.is_empty() && self.proxy_until.is_none() {
                        let now = ctx.site.clock.now();
                        let consumed = self.conn.handle_input(now, self.received, data);
                        self.drain_events(&data[..consumed], ctx.log, ctx.quiet, ctx.counters);
                        self.pending.extend_from_slice(&data[consumed..]);
                    } else {
                        self.pending.extend_from_slice(data);
                    }
                }
                Received::Eof | Received::Failed => {}
                Received::Blocked => return Flow::Wait { write: false },
            }
        }
    }

    /// With `--proxy-protocol`, takes the PROXY v2 header off the front of what was received:
    /// `Some(true)` when it was whole and valid (the client it names becomes the peer; the bytes
    /// after it are the first request), `None` while it is still incomplete, `Some(false)` when
    /// it is not a valid header: the connection is then closed without a response (the bytes are
    /// dropped, so nothing of them is ever served or lingered over).
    fn take_proxy_header(&mut self) -> Option<bool> {
        match satchel_core::proxy::parse(&self.pending) {
            Ok(satchel_core::Status::Complete((header, len))) => {
                self.peer = header.client_or(self.peer);
                self.pending.drain(..len);
                self.proxy_until = None;
                Some(true)
            }
            Ok(satchel_core::Status::Partial) => None,
            Err(_) => {
                self.pending.clear();
                Some(false)
            }
        }
    }

    /// Polls the connection's events: each planned response is counted and starts a log line
    /// (its method and target from `data`, the bytes that held the request); each ended one
    /// completes it with the bytes actually sent.
    fn drain_events(
        &mut self,
        data: &[u8],
        log: &mut Vec<u8>,
        quiet: bool,
        counters: &WorkerCounters,
    ) {
        while let Some(event) = self.conn.poll_event() {
            count_event(&event, counters);
            log_event(event, self.peer, data, &mut self.log, log, quiet);
        }
    }

    /// Writes until everything owed is sent (`Ok(true)`) or the socket is full (`Ok(false)`).
    ///
    /// When the connection closes after this response, its last write goes with `MSG_MORE`: the
    /// kernel holds the tail for the FIN that closing adds, and both leave in one segment (one
    /// packet less per connection, and the peer learns of the end with the data).
    fn send(&mut self, buf: &mut [u8], ctx: &mut Ctx<'_>) -> io::Result<bool> {
        loop {
            // For a write that reaches the end of the response; a file's earlier pieces clear it.
            let mut flags = if self.conn.closes_after() {
                SendFlags::MORE
            } else {
                SendFlags::empty()
            };
            let result = {
                let Some(t) = self.conn.poll_transmit() else {
                    return Ok(true);
                };
                match t.body {
                    BodyRef::None if t.head.is_empty() => Ok(0),
                    BodyRef::None => send_two(&self.sock, t.head, &[], flags, buf),
                    BodyRef::Cached {
                        handle,
                        offset,
                        len,
                    } => match handle.sealed() {
                        // A large entry: its sealed pages handed to the socket (`sendfile`).
                        Some(sealed) => {
                            flags = SendFlags::empty();
                            sealed.send_to(&self.sock, t.head, offset, len)
                        }
                        None => {
                            let bytes = handle.bytes().unwrap_or_default();
                            let body = bytes.get(offset..offset + len).unwrap_or(&[]);
                            send_two(&self.sock, t.head, body, flags, buf)
                        }
                    },
                    BodyRef::Listing {
                        listing,
                        offset,
                        len,
                    } => {
                        let body = listing.get(offset..offset + len).unwrap_or(&[]);
                        send_two(&self.sock, t.head, body, flags, buf)
                    }
                    BodyRef::File { len, .. } => {
                        // The head (while still owed) and the next piece of the file in one
                        // write, from the worker's buffer. After a partial write the rest is
                        // read again: cheap, and no per-connection buffer is needed.
                        match t.copy_to(ctx.site, buf) {
                            Ok(n) => {
                                if (n.saturating_sub(t.head.len()) as u64) < len {
                                    flags = SendFlags::empty();
                                }
                                rustix::net::send(&self.sock, &buf[..n], flags)
                                    .map_err(io::Error::from)
                            }
                            // The file ended before its length (it shrank under us) or cannot
                            // be read: nothing truthful can follow, so the connection ends.
                            Err(_) => {
                                self.conn.abort();
                                return Ok(true);
                            }
                        }
                    }
                }
            };
            match result {
                Ok(n) => {
                    if n > 0 {
                        self.held = flags.contains(SendFlags::MORE);
                    }
                    self.conn.transmitted(ctx.site.clock.now(), n);
                    self.drain_events(&[], ctx.log, ctx.quiet, ctx.counters);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Counts a connection's event in the worker's metrics: a planned response by its status, an
/// ended one by the bytes that went out.
fn count_event(event: &Event, counters: &WorkerCounters) {
    match event {
        Event::Response(info) => counters.response(info.status.as_u16()),
        Event::Done(done) => counters.sent(done.sent),
    }
}

/// One system call sending a head then a body (either may be empty). A small pair is copied
/// into `scratch` (the worker's buffer, at least [`COALESCE`] bytes) for a plain `send`, which
/// costs the kernel less than a two-segment `sendmsg`. (A fresh `[0u8; 8192]` here instead
/// cost ~8,000 instructions a request to zero, half of a 1 KiB hit's user-space work.)
fn send_two(
    sock: &TcpStream,
    head: &[u8],
    body: &[u8],
    flags: SendFlags,
    scratch: &mut [u8],
) -> io::Result<usize> {
    let total = head.len() + body.len();
    let sent = if head.is_empty() {
        rustix::net::send(sock, body, flags)
    } else if body.is_empty() {
        rustix::net::send(sock, head, flags)
    } else if total <= COALESCE && total <= scratch.len() {
        scratch[..head.len()].copy_from_slice(head);
        scratch[head.len()..total].copy_from_slice(body);
        rustix::net::send(sock, &scratch[..total], flags)
    } else {
        let parts = [IoSlice::new(head), IoSlice::new(body)];
        rustix::net::sendmsg(sock, &parts, &mut Default::default(), flags)
    };
    sent.map_err(io::Error::from)
}

/// Up to this many bytes, a head and its body leave in one plain `send` ([`send_two`]).
const COALESCE: usize = 8 * 1024;

/// Turns a connection's event into access-log text: a planned response starts `pending`
/// (`client method target status`, method and target from `data`); its end appends
/// `sent cache duration completion` to the worker's `out`:
/// `127.0.0.1 GET /a.txt 200 274 miss-stored 41us complete`.
fn log_event(
    event: Event,
    peer: SocketAddr,
    data: &[u8],
    pending: &mut Option<PendingLog>,
    out: &mut Vec<u8>,
    quiet: bool,
) {
    if quiet {
        return;
    }
    match event {
        Event::Response(info) => {
            let mut line = String::with_capacity(64);
            let _ = write!(line, "{} ", peer.ip().to_canonical());
            match info.method {
                Some(Method::Get) => line.push_str("GET"),
                Some(Method::Head) => line.push_str("HEAD"),
                Some(Method::Other) => push_safe(&mut line, info.method_token.of(data), 32),
                None => line.push('-'),
            }
            line.push(' ');
            push_safe(&mut line, info.target.of(data), 1024);
            let _ = write!(line, " {}", info.status.as_u16());
            *pending = Some(PendingLog {
                line,
                cache: info.cache_token(),
                started: std::time::Instant::now(),
            });
        }
        Event::Done(done) => {
            let Some(entry) = pending.take() else {
                return;
            };
            let cache = entry.cache;
            let _ = writeln!(
                out,
                "{} {} {} {}us {}",
                entry.line,
                done.sent,
                cache,
                entry.started.elapsed().as_micros(),
                if done.complete {
                    "complete"
                } else {
                    "incomplete"
                }
            );
        }
    }
}

/// `bytes` made safe for a log line: printable ASCII kept, anything else (controls, spaces,
/// non-ASCII) as `%XX`; at most `max` input bytes; `-` when empty.
fn push_safe(line: &mut String, bytes: &[u8], max: usize) {
    if bytes.is_empty() {
        line.push('-');
    }
    for &b in bytes.iter().take(max) {
        if b.is_ascii_graphic() {
            line.push(char::from(b));
        } else {
            let _ = write!(line, "%{b:02X}");
        }
    }
}
