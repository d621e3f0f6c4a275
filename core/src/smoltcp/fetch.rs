//! The driver of an [`Upstream`] edge on smoltcp: one TCP client socket running the core's own
//! download [`session`] for each fetch the source orders, in the
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
//!
//! A body larger than the source's buffer streams to its client (see the upstream module):
//! the fetcher feeds the session only as many body bytes as [`Upstream::room`] allows, the
//! rest wait in the staging buffer and then in the socket, whose window closes on upstream,
//! so upstream sends no faster than the client takes. A client that takes less than the
//! session's progress minimum (1 KiB per timeout window) loses the stream as a timeout would
//! (its connection is cut short), and a client that goes away lets the fetch go.
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
use crate::client::{Plan, Request, TargetError, Url};
use crate::source::{FileSource, Ticket, UpstreamError};
use crate::status::StatusCode;
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
            let Some(run) = self.running else {
                return progress;
            };
            let step = match self.download.poll(now_core) {
                Action::Connect if !run.connecting => self.connect(now_core, iface, socket),
                Action::Connect => self.await_connected(now_core, socket),
                Action::Send(request) => {
                    if !send_request(&request, socket) {
                        self.download.handle_broken(now_core);
                    }
                    Step::Moved
                }
                Action::Receive => match self.receive(now_core, socket, upstream) {
                    true => Step::Moved,
                    false => Step::Wait,
                },
                // No retries are configured; a retry or a backoff is waited out by polling.
                Action::Retry(_) => Step::Again,
                Action::Wait(_) => Step::Wait,
                Action::Done(result) => {
                    self.finish(run, result, socket, upstream);
                    return true;
                }
            };
            match step {
                Step::Moved => progress = true,
                Step::Again => {}
                Step::Wait => return progress,
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

    /// Opens a new connection from the next local port, for the session's `Connect`.
    fn connect(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        socket: &mut tcp::Socket<'_>,
    ) -> Step {
        socket.abort();
        self.staged = 0;
        let port = self.next_port;
        self.next_port = port.checked_add(1).unwrap_or(EPHEMERAL_FIRST);
        match socket.connect(iface.context(), self.config.endpoint, port) {
            Ok(()) => self.set_connecting(true),
            Err(_) => self
                .download
                .handle_connect_failed(now, ConnectFailure::Other),
        }
        Step::Moved
    }

    /// Waits out the handshake of the connection `connect` opened and tells the session how
    /// it ended.
    fn await_connected(&mut self, now: Instant, socket: &tcp::Socket<'_>) -> Step {
        match socket.state() {
            tcp::State::SynSent | tcp::State::SynReceived => return Step::Wait,
            tcp::State::Established => self.download.handle_connected(now),
            _ => self
                .download
                .handle_connect_failed(now, ConnectFailure::Refused),
        }
        self.set_connecting(false);
        Step::Again
    }

    fn set_connecting(&mut self, connecting: bool) {
        if let Some(run) = self.running.as_mut() {
            run.connecting = connecting;
        }
    }

    /// Reports the session's end to the source and frees the socket for the next fetch.
    fn finish<L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize>(
        &mut self,
        run: Running,
        result: Result<session::Saved, Error>,
        socket: &mut tcp::Socket<'_>,
        upstream: &Upstream<'_, L, C, BODY, KNOWN>,
    ) {
        let outcome = match (run.refused, result) {
            (Some(e), _) => Outcome::Failed(e),
            (None, Ok(_)) if self.download.not_modified() => Outcome::NotModified,
            (None, Ok(_)) => Outcome::Fetched,
            (None, Err(Error::Status(StatusCode::NOT_FOUND))) => Outcome::NotFound,
            (None, Err(e)) => Outcome::Failed(upstream_error(e)),
        };
        upstream.finish(run.ticket, outcome);
        socket.abort();
        self.staged = 0;
        self.running = None;
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
        let Some(run) = self.running else {
            return false;
        };
        let got = self.stage_input(socket);
        let fed = match self.feed(now, run.ticket, upstream) {
            Ok(fed) => fed,
            Err(e) => {
                // Stop reading: the session ends as broken, reported as the refusal.
                self.set_refused(e);
                self.download.handle_broken(now);
                self.staged = 0;
                return true;
            }
        };
        self.stage.copy_within(fed.consumed..self.staged, 0);
        self.staged -= fed.consumed;
        // Time limits are checked by the session's own poll.
        if got == 0 && !socket.can_recv() && self.socket_ended(now, socket, fed.held_back) {
            return true;
        }
        got > 0 || fed.moved
    }

    /// Moves what the socket holds into the staging buffer, as much as fits; returns how much.
    fn stage_input(&mut self, socket: &mut tcp::Socket<'_>) -> usize {
        let room = self.stage.get_mut(self.staged..).unwrap_or_default();
        let got = match socket.can_recv() {
            true => socket.recv_slice(room).unwrap_or(0),
            false => 0,
        };
        self.staged += got;
        got
    }

    /// Feeds the staged bytes to the session, no more than the source has room for, and hands
    /// the session's events to the source.
    ///
    /// # Errors
    /// The source refused the body (or has no room at all for it).
    fn feed<L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize>(
        &mut self,
        now: Instant,
        ticket: Ticket,
        upstream: &Upstream<'_, L, C, BODY, KNOWN>,
    ) -> Result<Fed, UpstreamError> {
        let mut fed = Fed {
            consumed: 0,
            moved: false,
            held_back: false,
        };
        loop {
            // A streamed body goes no faster than its reader takes it: what the source has
            // no room for stays staged, then in the socket (whose window closes upstream).
            let room = upstream.room(ticket)?;
            let data = self
                .stage
                .get(fed.consumed..self.staged)
                .unwrap_or_default();
            fed.held_back = room < data.len();
            let data = data.get(..room.min(data.len())).unwrap_or_default();
            let (n, event) = self.download.handle_input(now, data);
            fed.consumed += n;
            fed.moved |= n > 0;
            match event {
                Event::NeedMore | Event::Ended => return Ok(fed),
                Event::Start(start) => {
                    if let Plan::Write { total } = start.plan {
                        let etag = start.response.head.etag;
                        let last_modified = start.response.header(b"last-modified");
                        upstream.begin(ticket, total, etag, last_modified)?;
                    }
                }
                Event::Body(bytes) => upstream.append(ticket, bytes)?,
            }
        }
    }

    fn set_refused(&mut self, e: UpstreamError) {
        if let Some(run) = self.running.as_mut() {
            run.refused = Some(e);
        }
    }

    /// With nothing left to read: tells the session if the connection was reset or upstream's
    /// end has come (once every staged byte is in the source). Returns whether it did.
    fn socket_ended(&mut self, now: Instant, socket: &tcp::Socket<'_>, held_back: bool) -> bool {
        match socket.state() {
            // Closed without a FIN read: reset (or aborted by smoltcp's own timeouts).
            tcp::State::Closed => self.download.handle_broken(now),
            _ if !socket.may_recv() && !held_back => self.download.handle_eof(now),
            _ => return false,
        }
        true
    }
}

/// What one turn of [`Fetcher::poll`] did.
enum Step {
    /// Something changed: poll the interface.
    Moved,
    /// Nothing to send yet; ask the session again.
    Again,
    /// Nothing to do until the socket or the clock moves.
    Wait,
}

/// What [`Fetcher::feed`] did with the staged bytes.
struct Fed {
    /// How many the session took.
    consumed: usize,
    /// Whether it took any.
    moved: bool,
    /// Staged bytes the source had no room for yet: upstream's end waits until they are in.
    held_back: bool,
}

/// Encodes the session's request head and queues it whole on the socket; false when it does
/// not fit.
fn send_request(request: &Request<'_>, socket: &mut tcp::Socket<'_>) -> bool {
    let mut head = [0u8; MAX_UPSTREAM_TARGET + 512];
    request
        .encode(&mut head)
        .ok()
        .and_then(|n| head.get(..n))
        .is_some_and(|h| socket.send_slice(h).is_ok_and(|m| m == h.len()))
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

#[cfg(test)]
mod tests {
    //! The fetcher on smoltcp's Loopback, on a virtual clock: an edge server whose source
    //! fetches from an upstream satchel server on the same interface (127.0.0.1:8080), and a
    //! client socket asking the edge (127.0.0.1:80).

    use core::cell::RefCell;
    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    use ::smoltcp::iface::{Config as IfaceConfig, SocketStorage};
    use ::smoltcp::phy::{Loopback, Medium};
    use ::smoltcp::time::Duration as SmolDuration;
    use ::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    use super::*;
    use crate::path::SafePath;
    use crate::serve::{Config, SiteParts};
    use crate::smoltcp::{Server, SocketBuffers};
    use crate::source::{FileKind, FileVersion, Metadata, SourceError, StaticFile, StaticSource};
    use crate::upstream::tests::{edge_cache, Board, BODY};

    const EDGE_PORT: u16 = 80;
    /// The servers' staging buffers: more than the host limits' `max_head`.
    const STAGE: usize = 8192 + 64;
    const UPSTREAM_PORT: u16 = 8080;
    type Edge = Upstream<'static, StaticSource, RefCell<Board>, BODY, 4>;
    type EdgeSite = SiteParts<Edge, &'static RefCell<Board>>;
    type OriginSite = SiteParts<Origin, RefCell<Board>>;

    static FLASH: &[StaticFile] = &[StaticFile {
        path: "hello.txt",
        data: b"hello from flash\n",
        modified: None,
    }];

    /// The upstream's files, which the test changes: name, bytes, a stamp bumped per change.
    #[derive(Default)]
    struct Origin {
        files: RefCell<Vec<(String, Vec<u8>, u64)>>,
    }

    impl Origin {
        fn put(&self, name: &str, bytes: &[u8]) {
            let mut files = self.files.borrow_mut();
            let stamp = files.iter().map(|f| f.2).max().unwrap_or(0) + 1;
            files.retain(|f| f.0 != name);
            files.push((name.into(), bytes.to_vec(), stamp));
        }

        fn meta(&self, i: usize) -> Option<Metadata> {
            let files = self.files.borrow();
            let (_, bytes, stamp) = files.get(i)?;
            Some(Metadata {
                kind: FileKind::File,
                version: FileVersion {
                    len: bytes.len() as u64,
                    stamp: *stamp,
                    id: *stamp,
                },
                modified: Some(1_700_000_000),
            })
        }
    }

    impl FileSource for Origin {
        type File = usize;
        type Listing = &'static [u8];

        fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
            self.open(path).map(|(_, m)| m)
        }

        fn open(&self, path: &SafePath<'_>) -> Result<(usize, Metadata), SourceError> {
            let i = self
                .files
                .borrow()
                .iter()
                .position(|f| f.0.as_bytes() == path.as_bytes())
                .ok_or(SourceError::NotFound)?;
            Ok((i, self.meta(i).ok_or(SourceError::NotFound)?))
        }

        fn file_metadata(&self, file: &usize) -> Result<Metadata, SourceError> {
            self.meta(*file).ok_or(SourceError::Io)
        }

        fn read_at(&self, file: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
            let files = self.files.borrow();
            let data = &files.get(*file).ok_or(SourceError::Io)?.1;
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
    }

    /// Either upstream: a satchel server, or a socket that accepts and never answers.
    enum Up {
        Server(Box<Server<'static, OriginSite, 1, 4096, STAGE>>),
        Silent,
        Down,
    }

    struct World {
        iface: Interface,
        device: Loopback,
        sockets: SocketSet<'static>,
        origin: &'static OriginSite,
        up: Up,
        up_handle: SocketHandle,
        edge_site: &'static EdgeSite,
        edge: Server<'static, EdgeSite, 1, 4096, STAGE>,
        fetcher: Fetcher<1024>,
        client: SocketHandle,
        next_port: u16,
        now: SmolInstant,
    }

    impl World {
        fn new() -> Self {
            let mut device = Loopback::new(Medium::Ip);
            let now = SmolInstant::from_millis(1);
            let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
            });
            let storage = Box::leak(Box::new([SocketStorage::EMPTY; 4]));
            let mut sockets = SocketSet::new(&mut storage[..]);
            let bufs = Box::leak(Box::new(SocketBuffers::<4, 4096, 4096>::new()));
            let [up_handle, edge_handle, fetch_handle, client] = bufs.add_sockets(&mut sockets);
            let origin: &'static OriginSite = Box::leak(Box::new(SiteParts::new(
                Origin::default(),
                RefCell::new(edge_cache()),
                Config::host(),
            )));
            let edge_cache: &'static RefCell<Board> =
                Box::leak(Box::new(RefCell::new(edge_cache())));
            let edge_site: &'static EdgeSite = Box::leak(Box::new(SiteParts::new(
                Upstream::new(StaticSource::new(FLASH), edge_cache),
                edge_cache,
                Config::host(),
            )));
            let up = Up::Server(Box::new(
                Server::new(origin, UPSTREAM_PORT, [up_handle]).unwrap(),
            ));
            let edge = Server::new(edge_site, EDGE_PORT, [edge_handle]).unwrap();
            let config = UpstreamConfig {
                endpoint: IpEndpoint::new(IpAddress::v4(127, 0, 0, 1), UPSTREAM_PORT),
                host: "127.0.0.1:8080",
                timeout: Duration::from_millis(300),
            };
            let fetcher = Fetcher::new(fetch_handle, config).unwrap();
            let mut world = Self {
                iface,
                device,
                sockets,
                origin,
                up,
                up_handle,
                edge_site,
                edge,
                fetcher,
                client,
                next_port: 40_000,
                now,
            };
            // The servers' sockets listen from their first poll.
            world.step();
            world
        }

        /// One round of a board's loop.
        fn step(&mut self) {
            self.iface
                .poll(self.now, &mut self.device, &mut self.sockets);
            // Each round ends with the interface polled again, changed or not.
            if let Up::Server(s) = &mut self.up {
                let _ = s.poll(self.now, &mut self.sockets);
            }
            let source = &self.edge_site.source;
            self.fetcher
                .poll(self.now, &mut self.iface, &mut self.sockets, source);
            if let Some(t) = source.poll_ready() {
                self.edge.handle_ready(t);
            }
            let _ = self.edge.poll(self.now, &mut self.sockets);
            self.iface
                .poll(self.now, &mut self.device, &mut self.sockets);
            self.now += SmolDuration::from_millis(1);
        }

        /// Upstream goes away (its socket reset and closed), or becomes a listener that never
        /// answers.
        fn set_upstream(&mut self, silent: bool) {
            let socket = self.sockets.get_mut::<tcp::Socket<'static>>(self.up_handle);
            socket.abort();
            self.up = Up::Down;
            if silent {
                socket.listen(UPSTREAM_PORT).unwrap();
                self.up = Up::Silent;
            }
        }

        /// `GET path` from the client (its own connection, `Connection: close`): the
        /// response head and body, within a bounded number of 1 ms steps.
        fn get(&mut self, path: &str) -> (String, Vec<u8>, u64) {
            // The last connection (closed by the server) goes first, its reset sent.
            self.sockets
                .get_mut::<tcp::Socket<'static>>(self.client)
                .abort();
            self.step();
            let started = self.now;
            self.next_port += 1;
            let cx = self.iface.context();
            self.sockets
                .get_mut::<tcp::Socket<'static>>(self.client)
                .connect(cx, (IpAddress::v4(127, 0, 0, 1), EDGE_PORT), self.next_port)
                .unwrap();
            let request =
                std::format!("GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
            let mut sent = false;
            let mut got = Vec::new();
            for _ in 0..5000 {
                self.step();
                let client = self.sockets.get_mut::<tcp::Socket<'static>>(self.client);
                if !sent && client.can_send() {
                    client.send_slice(request.as_bytes()).unwrap();
                    sent = true;
                }
                while client.can_recv() {
                    let mut buf = [0u8; 4096];
                    let n = client.recv_slice(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                if sent && !client.may_recv() {
                    break;
                }
            }
            let state = self
                .sockets
                .get::<tcp::Socket<'static>>(self.client)
                .state();
            let end = got
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or_else(|| panic!("no head for {path} (client {state}, got {got:?})"))
                + 4;
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let took = (self.now - started).total_millis();
            (head, got[end..].to_vec(), took)
        }
    }

    fn cache_status(head: &str) -> &str {
        head.lines()
            .find_map(|l| l.strip_prefix("Cache-Status: "))
            .unwrap_or("-")
    }

    #[test]
    fn the_edge_fetches_caches_revalidates_and_answers_failures() {
        let mut w = World::new();
        w.origin.source.put("a.txt", b"first\n");
        // Larger than the fetch buffer: streamed through it, at the client's pace.
        let big: Vec<u8> = (0..5 * BODY + 3).map(|i| (i * 7 % 251) as u8).collect();
        w.origin.source.put("big.bin", &big);

        let (head, body, _) = w.get("/a.txt");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, b"first\n");
        assert_eq!(cache_status(&head), "satchel; fwd=miss; stored");

        let (head, body, _) = w.get("/a.txt");
        assert_eq!(body, b"first\n");
        assert_eq!(cache_status(&head), "satchel; hit", "a 304 from upstream");

        w.origin.source.put("a.txt", b"second\n");
        let (head, body, _) = w.get("/a.txt");
        assert_eq!(body, b"second\n", "never stale");
        assert_eq!(cache_status(&head), "satchel; fwd=miss; stored");

        let (head, body, _) = w.get("/big.bin");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 10243\r\n"), "{head}");
        assert!(body == big, "byte for byte ({} bytes)", body.len());
        assert_eq!(
            cache_status(&head),
            "satchel; fwd=bypass",
            "streamed, not cached"
        );

        let (head, _, _) = w.get("/none.txt");
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");

        let (head, body, _) = w.get("/hello.txt");
        assert_eq!(body, b"hello from flash\n");
        assert_eq!(cache_status(&head), "satchel; fwd=bypass");

        // Upstream gone: refused at once, 502.
        w.set_upstream(false);
        let (head, body, _) = w.get("/a.txt");
        assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("refused"));

        // Upstream that never answers: 504 once the fetcher's timeout (300 ms) passes.
        w.set_upstream(true);
        let (head, body, took) = w.get("/a.txt");
        assert!(head.starts_with("HTTP/1.1 504 "), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("in time"));
        assert!((300..1000).contains(&took), "{took} ms of virtual time");
        assert!(matches!(w.up, Up::Silent));

        // The flash still answers, and the edge's slot came back for it.
        let (_, body, _) = w.get("/hello.txt");
        assert_eq!(body, b"hello from flash\n");
    }
}
