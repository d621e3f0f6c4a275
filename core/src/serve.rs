//! The sans-IO server connection: request bytes in, a response plan out.
//!
//! A [`Connection`] reads no clock and does no I/O. The driver (a host thread with an epoll
//! loop, a smoltcp poll loop, a test, a fuzzer) feeds it:
//!
//! * [`Connection::handle_input`] with the bytes received so far that it still holds. The
//!   connection takes one whole request head at a time and returns how many bytes it consumed;
//!   `0` means "not yet": the head is incomplete, or a response is still being sent (that is the
//!   back-pressure: pipelined requests wait in the driver's buffer and are answered in order,
//!   each completely, before the next is parsed);
//! * [`Connection::handle_timeout`] when [`Connection::poll_timeout`]'s instant has passed;
//! * [`Connection::handle_eof`] when the peer closed its side.
//!
//! and drains it:
//!
//! * [`Connection::poll_transmit`] gives what to send next: response head bytes (from the
//!   connection's own small TX buffer) followed by a body that is a range of cached bytes, of an
//!   open file, or of a rendered listing. The body is never copied through this layer: the driver
//!   writes it straight from where it lives (`writev`, `sendfile`, or a copy into a smoltcp
//!   socket buffer);
//! * [`Connection::transmitted`] says how many of those bytes went out (any split is fine).
//!
//! After each response, [`Connection::poll_event`] tells the driver what was answered (for
//! access logs), and [`Connection::is_closed`] tells it to close the socket.
//!
//! Everything the peer controls goes through the parsers in [`crate::http`] and
//! [`crate::path`]; nothing it sends can panic the connection.

use crate::cache::{CacheStats, ContentCache};
use crate::http::conditional::{self, Conditions, Decision, Validators};
use crate::http::etag::ETag;
use crate::http::method::Method;
use crate::http::request::{parse_request, Limits, Request};
use crate::http::response::{CacheStatus, ContentRange, ResponseHead};
use crate::http::status::StatusCode;
use crate::listing;
use crate::mime;
use crate::path::{PathOptions, SafePath, MAX_PATH};
use crate::source::{FileKind, FileSource, Metadata, SourceError};
use crate::time::{Duration, Instant};

/// The name of the file served for a folder requested with a trailing slash.
pub const INDEX_FILE: &[u8] = b"index.html";

/// What a connection needs to know about its server; fixed for the server's lifetime.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Limits on the request head.
    pub limits: Limits,
    /// Path normalisation options (hidden files).
    pub path: PathOptions,
    /// Whether folders without `index.html` are listed.
    pub listings: bool,
    /// A kept-alive connection with no new request for this long is closed silently.
    pub idle_timeout: Duration,
    /// A request head not complete this long after its first byte is answered 408.
    pub head_timeout: Duration,
    /// A response that makes no progress for this long (the peer stopped reading) is abandoned.
    pub send_timeout: Duration,
}

impl Config {
    /// The host defaults of PROTOCOL.md: 15 s idle, 10 s head, 30 s send, listings on.
    pub const fn host() -> Self {
        Self {
            limits: Limits::host(),
            path: PathOptions {
                allow_hidden: false,
            },
            listings: true,
            idle_timeout: Duration::from_secs(15),
            head_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::host()
    }
}

/// Everything a connection asks its server for: files, the cache, settings and the time of day.
///
/// A host implements it once for its shared state; a board for its statics.
pub trait Site {
    /// Where files come from.
    type Source: FileSource;
    /// The content cache shared by the site's connections.
    type Cache: ContentCache;

    /// The file source.
    fn source(&self) -> &Self::Source;
    /// The cache.
    fn cache(&self) -> &Self::Cache;
    /// The configuration.
    fn config(&self) -> &Config;
    /// The time of day in seconds since the Unix epoch, for `Date`; `None` where the platform has
    /// no clock (a board), in which case `Date` is omitted (RFC 9110 §6.6.1).
    fn unix_time(&self) -> Option<u64> {
        None
    }
}

type Handle<S> = <<S as Site>::Cache as ContentCache>::Handle;
type File<S> = <<S as Site>::Source as FileSource>::File;
type Listing<S> = <<S as Site>::Source as FileSource>::Listing;

/// The body of the response being sent, and how far it has gone.
enum Body<H, F, L> {
    None,
    Cached {
        handle: H,
        offset: usize,
        len: usize,
    },
    File {
        file: F,
        offset: u64,
        len: u64,
    },
    Listing {
        listing: L,
        offset: usize,
        len: usize,
    },
}

impl<H, F, L> Body<H, F, L> {
    /// Bytes still to send.
    fn remaining(&self) -> u64 {
        match self {
            Self::None => 0,
            Self::Cached { len, .. } | Self::Listing { len, .. } => *len as u64,
            Self::File { len, .. } => *len,
        }
    }
}

/// What to send next: the rest of the response head, then (part of) the body.
///
/// Send `head` first, then the body bytes; report the total sent with
/// [`Connection::transmitted`].
#[must_use]
pub struct Transmit<'a, H, F, L> {
    /// Head bytes not yet sent (may be empty).
    pub head: &'a [u8],
    /// The body still to send.
    pub body: BodyRef<'a, H, F, L>,
}

/// The part of a response body still to send, where it lives.
#[must_use]
pub enum BodyRef<'a, H, F, L> {
    /// No body (or all of it sent).
    None,
    /// `len` bytes at `offset` of a pinned cache entry.
    Cached {
        /// The pinned entry.
        handle: &'a H,
        /// Offset into the entry's content.
        offset: usize,
        /// Bytes to send.
        len: usize,
    },
    /// `len` bytes at `offset` of an open file. A file that ends early has changed under us:
    /// the driver must [`Connection::abort`] rather than send anything else.
    File {
        /// The open file.
        file: &'a F,
        /// Offset into the file.
        offset: u64,
        /// Bytes to send.
        len: u64,
    },
    /// `len` bytes at `offset` of a rendered listing.
    Listing {
        /// The listing.
        listing: &'a L,
        /// Offset into it.
        offset: usize,
        /// Bytes to send.
        len: usize,
    },
}

impl<H, F, L> BodyRef<'_, H, F, L> {
    /// Bytes of body still to send.
    pub fn len(&self) -> u64 {
        match self {
            Self::None => 0,
            Self::Cached { len, .. } | Self::Listing { len, .. } => *len as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// Whether no body bytes remain.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A summary of one answered request, for access logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    /// The request's method (`None` when the head could not be parsed).
    pub method: Option<Method>,
    /// The status sent.
    pub status: StatusCode,
    /// The cache's part in it, for file responses.
    pub cache: Option<CacheStatus>,
    /// Head plus body bytes planned.
    pub bytes: u64,
    /// When the request head was complete (or the timeout fired).
    pub started: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (more of) a request head.
    Reading,
    /// Sending a response; `close` says whether the connection ends after it.
    Sending { close: bool },
    /// Done: the driver should close the socket.
    Closed,
}

/// One HTTP/1.1 server connection, sans-IO. See the [module docs](self).
///
/// `TX` is the size of the buffer for response heads and short error bodies; it must hold the
/// longest head (a `301` whose `Location` is a 1024-byte path percent-encoded: 4096 is safe).
pub struct Connection<'s, S: Site, const TX: usize> {
    site: &'s S,
    state: State,
    tx: [u8; TX],
    tx_len: usize,
    tx_sent: usize,
    body: Body<Handle<S>, File<S>, Listing<S>>,
    /// When the first byte of an incomplete head arrived.
    head_started: Option<Instant>,
    /// When the connection last made progress (request answered, bytes sent).
    last_activity: Instant,
    peer_closed: bool,
    event: Option<ResponseInfo>,
}

impl<'s, S: Site, const TX: usize> Connection<'s, S, TX> {
    /// A new connection of `site`, accepted at `now`.
    pub fn new(site: &'s S, now: Instant) -> Self {
        Self {
            site,
            state: State::Reading,
            tx: [0; TX],
            tx_len: 0,
            tx_sent: 0,
            body: Body::None,
            head_started: None,
            last_activity: now,
            peer_closed: false,
            event: None,
        }
    }

    /// Offers the bytes received and not yet consumed; returns how many were consumed.
    ///
    /// At most one request is taken per call. `0` means the head is incomplete (call again with
    /// more bytes appended) or the previous response is still being sent (call again once
    /// [`poll_transmit`](Self::poll_transmit) returns `None`). A malformed head is answered with
    /// its error status and consumes everything: the connection closes after that response.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> usize {
        if self.state != State::Reading || data.is_empty() {
            return 0;
        }
        match parse_request(data, &self.site.config().limits) {
            Ok(crate::Status::Partial) => {
                self.head_started.get_or_insert(now);
                0
            }
            Ok(crate::Status::Complete((request, consumed))) => {
                self.head_started = None;
                self.last_activity = now;
                self.respond(now, &request);
                consumed
            }
            Err(e) => {
                self.head_started = None;
                self.last_activity = now;
                self.respond_error(now, None, status_of(e.status()), e.reason(), true);
                data.len()
            }
        }
    }

    /// The peer closed its sending side (read returned 0).
    ///
    /// A response in flight is still sent (the peer may only have half-closed); then the
    /// connection closes. An incomplete head is dropped silently.
    ///
    /// Call it once every complete request received before the EOF has been offered to
    /// [`handle_input`](Self::handle_input): told of the EOF while a response is in flight, the
    /// connection closes after that response, and pipelined requests still in the driver's
    /// buffer go unanswered (the `io`, `smoltcp` and host drivers all wait for that).
    pub fn handle_eof(&mut self, _now: Instant) {
        self.peer_closed = true;
        match self.state {
            State::Reading => self.close(),
            State::Sending { .. } => self.state = State::Sending { close: true },
            State::Closed => {}
        }
    }

    /// Acts on timeouts due at `now`: idle keep-alive (close silently), slow head (408, close),
    /// stalled send (abandon).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Reading if self.head_started.is_some() => {
                self.head_started = None;
                self.respond_error(
                    now,
                    None,
                    StatusCode::REQUEST_TIMEOUT,
                    "request head not received in time",
                    true,
                );
            }
            State::Reading | State::Sending { .. } => self.close(),
            State::Closed => {}
        }
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let config = self.site.config();
        match self.state {
            State::Reading => Some(match self.head_started {
                Some(t) => t + config.head_timeout,
                None => self.last_activity + config.idle_timeout,
            }),
            State::Sending { .. } => Some(self.last_activity + config.send_timeout),
            State::Closed => None,
        }
    }

    /// What to send next, or `None` when there is nothing to send.
    #[must_use]
    pub fn poll_transmit(&self) -> Option<Transmit<'_, Handle<S>, File<S>, Listing<S>>> {
        if !matches!(self.state, State::Sending { .. }) {
            return None;
        }
        let head = self.tx.get(self.tx_sent..self.tx_len).unwrap_or(&[]);
        let body = match &self.body {
            Body::None => BodyRef::None,
            Body::Cached {
                handle,
                offset,
                len,
            } => BodyRef::Cached {
                handle,
                offset: *offset,
                len: *len,
            },
            Body::File { file, offset, len } => BodyRef::File {
                file,
                offset: *offset,
                len: *len,
            },
            Body::Listing {
                listing,
                offset,
                len,
            } => BodyRef::Listing {
                listing,
                offset: *offset,
                len: *len,
            },
        };
        Some(Transmit { head, body })
    }

    /// Reports that `n` bytes of the last [`poll_transmit`](Self::poll_transmit) were sent
    /// (head first, then body). Any split is fine; `n` beyond what was offered is ignored.
    pub fn transmitted(&mut self, now: Instant, n: usize) {
        // Nothing was offered (between responses, or closed): there is nothing to account for,
        // and finishing a response that does not exist would close a kept-alive connection.
        if !self.is_sending() {
            return;
        }
        if n > 0 {
            self.last_activity = now;
        }
        let from_head = n.min(self.tx_len - self.tx_sent);
        self.tx_sent += from_head;
        let from_body = n - from_head;
        match &mut self.body {
            Body::None => {}
            Body::Cached { offset, len, .. } | Body::Listing { offset, len, .. } => {
                let k = from_body.min(*len);
                *offset += k;
                *len -= k;
            }
            Body::File { offset, len, .. } => {
                let k = (from_body as u64).min(*len);
                *offset += k;
                *len -= k;
            }
        }
        if self.tx_sent == self.tx_len && self.body.remaining() == 0 {
            self.finish_response();
        }
    }

    /// Abandons the connection at once: the body source failed (a file shrank while it was
    /// streamed) or the socket broke. Nothing more is sent.
    pub fn abort(&mut self) {
        self.close();
    }

    /// Asks the connection to end after the response in flight (server shutdown). An idle
    /// connection closes at once.
    pub fn shutdown(&mut self) {
        match self.state {
            State::Reading => self.close(),
            State::Sending { .. } => self.state = State::Sending { close: true },
            State::Closed => {}
        }
    }

    /// The summary of the response planned last, once; see [`ResponseInfo`].
    pub fn poll_event(&mut self) -> Option<ResponseInfo> {
        self.event.take()
    }

    /// Whether the driver should close the socket (after sending what `poll_transmit` offered:
    /// once closed, it offers nothing more).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the connection closes once the response in flight is sent.
    pub fn closes_after(&self) -> bool {
        matches!(self.state, State::Sending { close: true })
    }

    /// Whether a response is being sent.
    pub fn is_sending(&self) -> bool {
        matches!(self.state, State::Sending { .. })
    }

    /// Whether the connection is between requests with no partial head pending.
    pub fn is_idle(&self) -> bool {
        self.state == State::Reading && self.head_started.is_none()
    }

    /// A snapshot of the shared cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.site.cache().stats()
    }

    fn release_body(&mut self) {
        if let Body::Cached { handle, .. } = core::mem::replace(&mut self.body, Body::None) {
            self.site.cache().release(handle);
        }
    }

    fn finish_response(&mut self) {
        self.release_body();
        self.tx_len = 0;
        self.tx_sent = 0;
        self.state = match self.state {
            State::Sending { close: false } if !self.peer_closed => State::Reading,
            _ => State::Closed,
        };
    }

    fn close(&mut self) {
        self.release_body();
        self.tx_len = 0;
        self.tx_sent = 0;
        self.state = State::Closed;
    }

    /// Plans the answer to a parsed request.
    fn respond(&mut self, now: Instant, request: &Request<'_>) {
        let site = self.site;
        let config = site.config();
        let method = request.method;
        let close = !request.keep_alive;
        if method == Method::Other {
            return self.respond_error(
                now,
                Some(method),
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET or HEAD",
                close,
            );
        }
        if !request.expect_ok() {
            return self.respond_error(
                now,
                Some(method),
                StatusCode::EXPECTATION_FAILED,
                "unsupported Expect",
                close,
            );
        }
        let mut scratch = [0u8; MAX_PATH];
        let path = match SafePath::parse(request.path, &mut scratch, config.path) {
            Ok(path) => path,
            Err(e) => {
                return self.respond_error(
                    now,
                    Some(method),
                    status_of(e.status()),
                    e.reason(),
                    close,
                )
            }
        };
        // Fast path: a cached entry of exactly the version the file system shows now.
        if !path.trailing_slash() {
            if let Some(hit) = self.lookup_probe(&path) {
                return self.respond_file(now, request, &path, hit.1, Some(hit.0), close);
            }
        }
        let meta = match site.source().metadata(&path) {
            Ok(meta) => meta,
            Err(e) => return self.respond_source_error(now, method, e, close),
        };
        match meta.kind {
            FileKind::File if path.trailing_slash() => {
                // "/file.txt/" names no folder: as nginx, not found.
                self.respond_error(now, Some(method), StatusCode::NOT_FOUND, "not found", close)
            }
            FileKind::File => self.respond_file(now, request, &path, meta, None, close),
            FileKind::Dir if !path.trailing_slash() && !path.is_root() => {
                self.respond_redirect(now, method, &path, close)
            }
            FileKind::Dir => self.respond_folder(now, request, &path, close),
            FileKind::Other => {
                self.respond_error(now, Some(method), StatusCode::NOT_FOUND, "not found", close)
            }
        }
    }

    /// A cache hit for `path` at the version a quick probe reports, with that metadata.
    fn lookup_probe(&self, path: &SafePath<'_>) -> Option<(Handle<S>, Metadata)> {
        let meta = self.site.source().probe(path).ok()?;
        if meta.kind != FileKind::File {
            return None;
        }
        let handle = self.site.cache().lookup(path.as_bytes(), &meta.version)?;
        Some((handle, meta))
    }

    /// A folder: its `index.html` if present, else a listing when listings are on, else 404.
    fn respond_folder(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        dir: &SafePath<'_>,
        close: bool,
    ) {
        let method = request.method;
        let mut joined = [0u8; MAX_PATH];
        if let Some(index) = join(dir, INDEX_FILE, &mut joined) {
            if let Some((handle, meta)) = self.lookup_probe(&index) {
                return self.respond_file(now, request, &index, meta, Some(handle), close);
            }
            if let Ok(meta) = self.site.source().metadata(&index) {
                if meta.kind == FileKind::File {
                    return self.respond_file(now, request, &index, meta, None, close);
                }
            }
        }
        if !self.site.config().listings {
            return self.respond_error(
                now,
                Some(method),
                StatusCode::NOT_FOUND,
                "not found",
                close,
            );
        }
        let view = listing::negotiate(request.accept, request.target);
        let listing = match self.site.source().listing(dir, view) {
            Ok(listing) => listing,
            Err(e) => return self.respond_source_error(now, method, e, close),
        };
        let len = listing.as_ref().len();
        let mut head = ResponseHead::new(StatusCode::OK);
        head.content_type = Some(view.style.content_type());
        head.content_security_policy = Some(listing::CONTENT_SECURITY_POLICY);
        head.content_length = Some(len as u64);
        head.date = self.site.unix_time();
        head.connection_close = close;
        let body = if method == Method::Head {
            Body::None
        } else {
            Body::Listing {
                listing,
                offset: 0,
                len,
            }
        };
        self.start(now, Some(method), &head, b"", body, close);
    }

    /// A regular file: conditionals, range, then the body from the cache or the file.
    ///
    /// `cached` is the hit found for `meta`'s version, if any (the lookup, hit or miss, was
    /// counted by the caller).
    fn respond_file(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        path: &SafePath<'_>,
        meta: Metadata,
        cached: Option<Handle<S>>,
        close: bool,
    ) {
        let site = self.site;
        let cache = site.cache();
        let method = request.method;
        let key = path.as_bytes();

        // A hit needs nothing but the metadata just read: the entry is of exactly that version.
        let mut meta = meta;
        let mut cache_status;
        let mut body = Body::None;
        let mut cached = cached;
        let mut file = None;
        if cached.is_some() {
            cache_status = CacheStatus::Hit;
        } else if !cache.admits(meta.version.len) {
            cache_status = CacheStatus::Bypass;
        } else {
            cache_status = CacheStatus::Miss;
        }

        // Headers come from the version whose bytes we send: on a miss, what was opened. HEAD
        // opens too, so that it reports exactly what GET would send, checked the same way.
        if cached.is_none() {
            match site.source().open(path) {
                Ok((f, opened)) if opened.kind == FileKind::File => {
                    meta = opened;
                    file = Some(f);
                }
                Ok(_) => {
                    return self.respond_error(
                        now,
                        Some(method),
                        StatusCode::NOT_FOUND,
                        "not found",
                        close,
                    )
                }
                Err(e) => return self.respond_source_error(now, method, e, close),
            }
        }

        let etag = ETag::from_version(&meta.version);
        let size = meta.version.len;
        let validators = Validators {
            etag: &etag,
            last_modified: meta.modified,
        };
        let conditions = Conditions {
            if_none_match: request.if_none_match,
            if_modified_since: request.if_modified_since,
            if_range: request.if_range,
            range: request.range,
        };
        let decision = conditional::evaluate(&conditions, &validators, size, true);

        // Fill the cache on a GET miss that will send content (a 304 or 416 needs none).
        let sends_content = matches!(decision, Decision::Full | Decision::Partial { .. });
        if let (Some(f), true, CacheStatus::Miss) = (&file, sends_content, cache_status) {
            if let Ok(len) = usize::try_from(size) {
                let source = site.source();
                let version = meta.version;
                let mut fill = |dst: &mut [u8]| fill_from(source, f, &version, dst);
                if let Some(handle) = cache.insert(key, &version, len, &mut fill) {
                    cached = Some(handle);
                    cache_status = CacheStatus::MissStored;
                }
            }
        }

        let mut head = ResponseHead::new(StatusCode::OK);
        head.etag = Some(&etag);
        head.last_modified = meta.modified;
        head.date = site.unix_time();
        head.cache_status = Some(cache_status);
        head.connection_close = close;
        let (first, len) = match decision {
            Decision::NotModified => {
                head.status = StatusCode::NOT_MODIFIED;
                if let Some(h) = cached.take() {
                    cache.release(h);
                }
                return self.start(now, Some(method), &head, b"", Body::None, close);
            }
            Decision::Unsatisfiable => {
                if let Some(h) = cached.take() {
                    cache.release(h);
                }
                head.status = StatusCode::RANGE_NOT_SATISFIABLE;
                head.content_range = Some(ContentRange::Unsatisfied { size });
                head.etag = None;
                head.last_modified = None;
                head.cache_status = None;
                return self.respond_error_head(now, Some(method), head, "range not satisfiable");
            }
            Decision::Full => (0, size),
            Decision::Partial { first, last } => {
                head.status = StatusCode::PARTIAL_CONTENT;
                head.content_range = Some(ContentRange::Satisfied { first, last, size });
                (first, last - first + 1)
            }
        };
        head.content_type = Some(mime::content_type(path.extension()));
        head.content_length = Some(len);
        head.accept_ranges = true;

        if method == Method::Get {
            body = match (cached.take(), file) {
                (Some(handle), _) => {
                    // Both fit in usize: the entry holds `size` bytes in memory.
                    let (offset, len) = (first as usize, len as usize);
                    Body::Cached {
                        handle,
                        offset,
                        len,
                    }
                }
                (None, Some(file)) => Body::File {
                    file,
                    offset: first,
                    len,
                },
                (None, None) => {
                    return self.respond_error(
                        now,
                        Some(method),
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "file could not be read",
                        true,
                    )
                }
            };
        } else if let Some(h) = cached.take() {
            cache.release(h);
        }
        self.start(now, Some(method), &head, b"", body, close);
    }

    /// `301` to the same path with a trailing slash.
    fn respond_redirect(&mut self, now: Instant, method: Method, path: &SafePath<'_>, close: bool) {
        let mut location = [0u8; 3 * MAX_PATH + 2];
        let Some(n) = encode_location(path, &mut location) else {
            return self.respond_error(
                now,
                Some(method),
                StatusCode::URI_TOO_LONG,
                "path too long",
                close,
            );
        };
        let mut head = ResponseHead::new(StatusCode::MOVED_PERMANENTLY);
        head.location = Some(&location[..n]);
        head.date = self.site.unix_time();
        head.connection_close = close;
        self.respond_error_head(now, Some(method), head, "moved permanently");
    }

    fn respond_source_error(&mut self, now: Instant, method: Method, e: SourceError, close: bool) {
        let (status, reason) = match e {
            SourceError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            SourceError::Io => (StatusCode::INTERNAL_SERVER_ERROR, "file could not be read"),
            _ => (StatusCode::NOT_FOUND, "not found"),
        };
        self.respond_error(now, Some(method), status, reason, close);
    }

    /// An error (or other short) response with a `text/plain` body stating `reason`.
    fn respond_error(
        &mut self,
        now: Instant,
        method: Option<Method>,
        status: StatusCode,
        reason: &str,
        close: bool,
    ) {
        let mut head = ResponseHead::new(status);
        head.date = self.site.unix_time();
        head.connection_close = close;
        if status == StatusCode::METHOD_NOT_ALLOWED {
            head.allow = Some("GET, HEAD");
        }
        self.respond_error_head(now, method, head, reason);
    }

    /// Sends `head` with a `text/plain` body `reason` + newline (none for HEAD).
    fn respond_error_head(
        &mut self,
        now: Instant,
        method: Option<Method>,
        mut head: ResponseHead<'_>,
        reason: &str,
    ) {
        let close = head.connection_close;
        head.content_type = Some("text/plain; charset=utf-8");
        let mut text = [0u8; 128];
        let n = reason.len().min(text.len() - 1);
        text[..n].copy_from_slice(&reason.as_bytes()[..n]);
        text[n] = b'\n';
        head.content_length = Some(n as u64 + 1);
        let inline = if method == Some(Method::Head) {
            &text[..0]
        } else {
            &text[..=n]
        };
        self.start(now, method, &head, inline, Body::None, close);
    }

    /// Encodes `head` (and a short inline body) into TX and starts sending.
    fn start(
        &mut self,
        now: Instant,
        method: Option<Method>,
        head: &ResponseHead<'_>,
        inline: &[u8],
        body: Body<Handle<S>, File<S>, Listing<S>>,
        close: bool,
    ) {
        self.release_body();
        let encoded = head.encode(&mut self.tx).ok().and_then(|n| {
            let end = n.checked_add(inline.len())?;
            self.tx.get_mut(n..end)?.copy_from_slice(inline);
            Some(end)
        });
        let Some(len) = encoded else {
            // The head does not fit TX: a configuration error of the driver (TX too small).
            // Answer a bare 500 that always fits rather than nothing.
            const FALLBACK: &[u8] =
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let n = FALLBACK.len().min(TX);
            self.tx[..n].copy_from_slice(&FALLBACK[..n]);
            self.tx_len = n;
            self.tx_sent = 0;
            self.body = Body::None;
            self.drop_body(body);
            self.state = State::Sending { close: true };
            return;
        };
        self.tx_len = len;
        self.tx_sent = 0;
        let body_len = body.remaining();
        self.body = body;
        self.state = State::Sending { close };
        self.event = Some(ResponseInfo {
            method,
            status: head.status,
            cache: head.cache_status,
            bytes: len as u64 + body_len,
            started: now,
        });
        if len == 0 && body_len == 0 {
            self.finish_response();
        }
    }

    fn drop_body(&self, body: Body<Handle<S>, File<S>, Listing<S>>) {
        if let Body::Cached { handle, .. } = body {
            self.site.cache().release(handle);
        }
    }
}

impl<S: Site, const TX: usize> Drop for Connection<'_, S, TX> {
    fn drop(&mut self) {
        self.release_body();
    }
}

/// Reads exactly `dst.len()` bytes of `file` and checks the file is still at `version`
/// afterwards, so a file changed during the read is never stored.
fn fill_from<F: FileSource>(
    source: &F,
    file: &F::File,
    version: &crate::source::FileVersion,
    dst: &mut [u8],
) -> Result<(), SourceError> {
    let mut done = 0;
    while done < dst.len() {
        let n = source.read_at(file, done as u64, &mut dst[done..])?;
        if n == 0 {
            return Err(SourceError::Io);
        }
        done += n;
    }
    match source.file_metadata(file) {
        Ok(after) if after.version == *version => Ok(()),
        _ => Err(SourceError::Io),
    }
}

/// `dir/name` as a [`SafePath`] in `buf`, if it fits.
fn join<'b>(dir: &SafePath<'_>, name: &[u8], buf: &'b mut [u8; MAX_PATH]) -> Option<SafePath<'b>> {
    let d = dir.as_bytes();
    let sep = usize::from(!d.is_empty());
    let len = d.len() + sep + name.len();
    if len > MAX_PATH {
        return None;
    }
    buf[..d.len()].copy_from_slice(d);
    if sep == 1 {
        buf[d.len()] = b'/';
    }
    buf[d.len() + sep..len].copy_from_slice(name);
    SafePath::from_normalized(&buf[..len]).ok()
}

/// `/` + the percent-encoded path + `/` into `out`; its length, or `None` if it does not fit.
fn encode_location(path: &SafePath<'_>, out: &mut [u8]) -> Option<usize> {
    let mut w = SliceWriter { buf: out, len: 0 };
    w.push(b"/")?;
    listing::percent_encode_path(path.as_bytes(), &mut w).ok()?;
    w.push(b"/")?;
    Some(w.len)
}

/// A `core::fmt::Write` into a byte slice that fails (rather than truncates) when full.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl SliceWriter<'_> {
    fn push(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes()).ok_or(core::fmt::Error)
    }
}

/// The status for an error's code (the parsers only produce valid codes; 400 otherwise).
fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use std::borrow::ToOwned;
    use std::string::String;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::cache::{
        ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
    };
    use crate::source::{StaticFile, StaticSource};

    const BYTES: usize = 16 * 1024;
    type Board = ArrayCache<8, 16, BYTES>;

    static FILES: &[StaticFile] = &[
        StaticFile {
            path: "hello.txt",
            data: b"hello, satchel\n",
            modified: Some(1_700_000_000),
        },
        StaticFile {
            path: "docs/index.html",
            data: b"<h1>docs</h1>\n",
            modified: Some(1_700_000_000),
        },
        StaticFile {
            path: "big.bin",
            data: &[7u8; 6000],
            modified: Some(1_700_000_000),
        },
    ];

    struct TestSite {
        source: StaticSource,
        cache: RefCell<Board>,
        config: Config,
    }

    impl TestSite {
        fn new() -> Self {
            let store = ArenaStore::new([0u8; BYTES], [const { Region::new() }; 8]).unwrap();
            let cache = Cache::new(
                store,
                [const { Slot::new() }; 8],
                [const { Bucket::new() }; 16],
                // Every test file is stored on its first GET (no large-file deferral here).
                CacheConfig {
                    max_entry_bytes: BYTES / 2,
                    large_bytes: BYTES / 2,
                    small_percent: 10,
                },
            )
            .unwrap();
            Self {
                source: StaticSource::new(FILES),
                cache: RefCell::new(cache),
                config: Config::host(),
            }
        }
    }

    impl Site for TestSite {
        type Source = StaticSource;
        type Cache = RefCell<Board>;
        fn source(&self) -> &StaticSource {
            &self.source
        }
        fn cache(&self) -> &RefCell<Board> {
            &self.cache
        }
        fn config(&self) -> &Config {
            &self.config
        }
    }

    type Conn<'s> = Connection<'s, TestSite, 4096>;

    /// A driver in miniature: feeds `chunks` in turn (keeping what is not consumed, as a real
    /// driver does), sends with write sizes from `sizes` (cycled), then EOF. Returns the bytes
    /// the peer would receive.
    fn drive(site: &TestSite, chunks: &[&[u8]], sizes: &[usize]) -> Vec<u8> {
        let t = Instant::from_millis(0);
        let mut conn = Conn::new(site, t);
        let mut pending: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut size = sizes.iter().copied().cycle();
        let mut pump = |conn: &mut Conn<'_>, pending: &mut Vec<u8>, out: &mut Vec<u8>| loop {
            let n = conn.handle_input(t, pending);
            pending.drain(..n);
            let mut progressed = n > 0;
            while let Some(tx) = conn.poll_transmit() {
                let max = size.next().unwrap_or(usize::MAX).max(1);
                let mut sent = Vec::new();
                sent.extend_from_slice(&tx.head[..tx.head.len().min(max)]);
                let room = max - sent.len();
                match tx.body {
                    BodyRef::None => {}
                    BodyRef::Cached {
                        handle,
                        offset,
                        len,
                    } => {
                        let mut buf = std::vec![0u8; len.min(room)];
                        let got = site.cache().copy_out(handle, offset, &mut buf);
                        sent.extend_from_slice(&buf[..got]);
                    }
                    BodyRef::File { file, offset, len } => {
                        let mut buf = std::vec![0u8; (len as usize).min(room)];
                        let got = site.source().read_at(file, offset, &mut buf).unwrap();
                        sent.extend_from_slice(&buf[..got]);
                    }
                    BodyRef::Listing {
                        listing,
                        offset,
                        len,
                    } => {
                        let part = &listing[offset..offset + len.min(room)];
                        sent.extend_from_slice(part);
                    }
                }
                out.extend_from_slice(&sent);
                conn.transmitted(t, sent.len());
                progressed = true;
            }
            if !progressed || conn.is_closed() {
                break;
            }
        };
        for chunk in chunks {
            pending.extend_from_slice(chunk);
            pump(&mut conn, &mut pending, &mut out);
        }
        conn.handle_eof(t);
        pump(&mut conn, &mut pending, &mut out);
        out
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn get(path: &str) -> String {
        std::format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
    }

    #[test]
    fn miss_then_hit_same_bytes() {
        let site = TestSite::new();
        let req = get("/hello.txt") + &get("/hello.txt");
        let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
        let parts: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(parts.len(), 2, "{out}");
        assert!(parts[0].starts_with("200 OK\r\n"));
        assert!(
            parts[0].contains("Cache-Status: satchel; fwd=miss; stored\r\n"),
            "{out}"
        );
        assert!(parts[1].contains("Cache-Status: satchel; hit\r\n"), "{out}");
        for p in &parts {
            assert!(p.ends_with("\r\n\r\nhello, satchel\n"), "{p}");
            assert!(p.contains("Content-Type: text/plain; charset=utf-8\r\n"));
            assert!(p.contains("Content-Length: 15\r\n"));
            assert!(!p.contains("Date:"), "no clock, no Date");
        }
        let stats = site.cache().stats();
        assert_eq!((stats.hits, stats.insertions), (1, 1));
    }

    /// Found by the `connection` fuzz target: `transmitted` while nothing was offered (a driver
    /// reporting a zero-byte write between responses) closed a kept-alive connection.
    #[test]
    fn transmitted_with_nothing_offered_changes_nothing() {
        let site = TestSite::new();
        let t = Instant::from_millis(0);
        let mut conn = Conn::new(&site, t);
        conn.transmitted(t, 0);
        conn.transmitted(t, 5);
        assert!(conn.is_idle() && !conn.is_closed());
        assert_eq!(conn.poll_timeout(), Some(t + Duration::from_secs(15)));
        let req = get("/hello.txt");
        assert_eq!(conn.handle_input(t, req.as_bytes()), req.len());
        while let Some(tx) = conn.poll_transmit() {
            let n = tx.head.len() + tx.body.len() as usize;
            conn.transmitted(t, n);
        }
        conn.transmitted(Instant::from_millis(9_000), 3);
        assert!(conn.is_idle() && !conn.is_closed());
        assert_eq!(conn.poll_timeout(), Some(t + Duration::from_secs(15)));
    }

    /// `closes_after` is what lets a driver send the last bytes with the FIN: true exactly while
    /// a response that ends the connection is owed, then the connection is closed.
    #[test]
    fn closes_after_marks_the_last_response() {
        let site = TestSite::new();
        let t = Instant::from_millis(0);
        let mut conn = Conn::new(&site, t);
        let send_all = |conn: &mut Conn<'_>| {
            while let Some(tx) = conn.poll_transmit() {
                let n = tx.head.len() + tx.body.len() as usize;
                conn.transmitted(t, n);
            }
        };
        let req = get("/hello.txt");
        assert_eq!(conn.handle_input(t, req.as_bytes()), req.len());
        assert!(conn.is_sending() && !conn.closes_after());
        send_all(&mut conn);
        assert!(conn.is_idle() && !conn.closes_after());
        let req = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        assert_eq!(conn.handle_input(t, req.as_bytes()), req.len());
        assert!(conn.is_sending() && conn.closes_after());
        send_all(&mut conn);
        assert!(conn.is_closed() && !conn.closes_after());
        // A keep-alive response in flight when the server shuts down becomes the last one.
        let mut conn = Conn::new(&site, t);
        let req = get("/big.bin");
        assert_eq!(conn.handle_input(t, req.as_bytes()), req.len());
        assert!(!conn.closes_after());
        conn.shutdown();
        assert!(conn.closes_after());
    }

    #[test]
    fn head_has_headers_no_body() {
        let site = TestSite::new();
        let out = text(&drive(
            &site,
            &[b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"],
            &[usize::MAX],
        ));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(out.contains("Content-Length: 6000\r\n"));
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[test]
    fn errors_keep_or_close_as_protocol_says() {
        let site = TestSite::new();
        // 405 and 404 and a bad path keep the connection; the next request is answered.
        let req = std::format!(
            "DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n{}{}{}",
            get("/missing"),
            get("/a/../hello.txt"),
            get("/hello.txt")
        );
        let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
        let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|p| &p[..3]).collect();
        assert_eq!(statuses, ["405", "404", "400", "200"], "{out}");
        assert!(out.contains("Allow: GET, HEAD\r\n"));
        // A malformed head: error, Connection: close, nothing after it.
        let req = std::format!(
            "{}GET / HTTP/9.9\r\nHost: t\r\n\r\n{}",
            get("/hello.txt"),
            get("/hello.txt")
        );
        let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
        let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|p| &p[..3]).collect();
        assert_eq!(statuses, ["200", "505"], "{out}");
        assert!(out.contains("Connection: close\r\n"));
    }

    #[test]
    fn folder_redirect_and_index() {
        let site = TestSite::new();
        let out = text(&drive(&site, &[get("/docs").as_bytes()], &[usize::MAX]));
        assert!(
            out.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
            "{out}"
        );
        assert!(out.contains("Location: /docs/\r\n"));
        let out = text(&drive(&site, &[get("/docs/").as_bytes()], &[usize::MAX]));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(out.ends_with("<h1>docs</h1>\n"));
        // No listings from a static source: the root without index is 404.
        let out = text(&drive(&site, &[get("/").as_bytes()], &[usize::MAX]));
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
    }

    #[test]
    fn ranges_and_conditionals() {
        let site = TestSite::new();
        let req = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=7-13\r\n\r\n";
        let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
        assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out}");
        assert!(out.contains("Content-Range: bytes 7-13/15\r\n"));
        assert!(out.ends_with("\r\n\r\nsatchel"));
        let req = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=15-\r\n\r\n";
        let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
        assert!(
            out.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"),
            "{out}"
        );
        assert!(out.contains("Content-Range: bytes */15\r\n"));

        let first = text(&drive(
            &site,
            &[get("/hello.txt").as_bytes()],
            &[usize::MAX],
        ));
        let etag = first
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .unwrap()
            .to_owned();
        let req =
            std::format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n");
        let out = text(&drive(&site, &[req.as_bytes()], &[usize::MAX]));
        assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
        assert!(!out.contains("Content-Length"));
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn timeouts() {
        let site = TestSite::new();
        let t0 = Instant::from_millis(0);
        // Idle: closed silently.
        let mut conn = Conn::new(&site, t0);
        let idle = conn.poll_timeout().unwrap();
        assert_eq!(idle, t0 + site.config.idle_timeout);
        conn.handle_timeout(Instant::from_millis(idle.as_millis() - 1));
        assert!(!conn.is_closed());
        conn.handle_timeout(idle);
        assert!(conn.is_closed());
        assert!(conn.poll_transmit().is_none());
        // Slow head: 408 then close, deadline counted from the first byte.
        let mut conn = Conn::new(&site, t0);
        let t1 = Instant::from_millis(5000);
        assert_eq!(conn.handle_input(t1, b"GET / HTTP/1.1\r\nHo"), 0);
        assert_eq!(conn.poll_timeout(), Some(t1 + site.config.head_timeout));
        conn.handle_timeout(t1 + site.config.head_timeout);
        let tx = conn.poll_transmit().unwrap();
        assert!(tx.head.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
        let n = tx.head.len();
        conn.transmitted(t1, n);
        assert!(conn.is_closed());
    }

    #[test]
    fn eof_after_request_still_sends_response() {
        let site = TestSite::new();
        let t = Instant::from_millis(0);
        let mut conn = Conn::new(&site, t);
        let req = get("/hello.txt");
        assert_eq!(conn.handle_input(t, req.as_bytes()), req.len());
        conn.handle_eof(t);
        assert!(!conn.is_closed());
        let tx = conn.poll_transmit().unwrap();
        let total = tx.head.len() + tx.body.len() as usize;
        conn.transmitted(t, total);
        assert!(conn.is_closed(), "closes once the owed response is sent");
        assert_eq!(site.cache().stats().entries, 1);
    }

    #[test]
    fn pinned_entries_are_released() {
        let site = TestSite::new();
        drive(
            &site,
            &[get("/big.bin").as_bytes(), get("/big.bin").as_bytes()],
            &[100],
        );
        // A dropped connection mid-body releases its pin too.
        {
            let t = Instant::from_millis(0);
            let mut conn = Conn::new(&site, t);
            let req = get("/big.bin");
            conn.handle_input(t, req.as_bytes());
            conn.transmitted(t, 50);
        }
        let s = site.cache().stats();
        assert_eq!((s.hits, s.entries), (2, 1));
        // Everything unpinned: the entry can be evicted and replaced.
        assert!(site.cache().borrow_mut().invalidate(b"big.bin"));
        assert_eq!(site.cache().stats().entries, 0);
    }

    fn request_mix() -> impl Strategy<Value = Vec<u8>> {
        let one = prop_oneof![
            Just(get("/hello.txt")),
            Just(get("/big.bin")),
            Just(get("/docs")),
            Just(get("/missing")),
            Just(String::from("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")),
            Just(String::from(
                "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-4000\r\n\r\n"
            )),
            Just(String::from("PUT /x HTTP/1.1\r\nHost: t\r\n\r\n")),
        ];
        proptest::collection::vec(one, 1..6).prop_map(|v| v.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Output bytes do not depend on how the input is split into reads.
        #[test]
        fn input_chunking_is_invisible(input in request_mix(), cuts in proptest::collection::vec(0usize..1000, 0..8)) {
            let whole = drive(&TestSite::new(), &[&input], &[usize::MAX]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&input[last..p]);
                last = p;
            }
            chunks.push(&input[last..]);
            let split = drive(&TestSite::new(), &chunks, &[usize::MAX]);
            prop_assert_eq!(text(&whole), text(&split));
        }

        /// Output bytes do not depend on how much each write takes (`transmitted(n)` splits).
        #[test]
        fn transmit_splits_are_invisible(input in request_mix(), sizes in proptest::collection::vec(1usize..300, 1..8)) {
            let whole = drive(&TestSite::new(), &[&input], &[usize::MAX]);
            let split = drive(&TestSite::new(), &[&input], &sizes);
            prop_assert_eq!(text(&whole), text(&split));
        }

        /// Nothing a peer sends panics the connection, and it never buffers unboundedly.
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let _ = drive(&TestSite::new(), &refs, &[64]);
        }
    }
}
