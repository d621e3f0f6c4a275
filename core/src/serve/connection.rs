//! The connection state machine: reading a head, sending a response, closed; timeouts and the
//! accounting of what was sent. What to answer is decided in `respond`.

use crate::cache::{CacheStats, ContentCache};
use crate::http::method::Method;
use crate::http::request::parse_request;
use crate::http::response::{CacheStatus, ResponseHead};
use crate::http::status::StatusCode;
use crate::source::{Arrival, FileSource, Ticket};
use crate::time::Instant;

use super::body::{Body, Transmit};
use super::{File, Handle, Listing, Site, SiteBody};

/// What the connection tells its driver, through [`Connection::poll_event`]: for each response
/// a [`Event::Response`] when it is planned, then a [`Event::Done`] when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A response was planned: what was asked and what is answered (the start of an access-log
    /// line).
    Response(ResponseInfo),
    /// The response ended, completely or cut short (the end of the access-log line).
    Done(Completion),
}

/// A response as planned, for access logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    /// The request's method (`None` when the head could not be parsed).
    pub method: Option<Method>,
    /// The method token as sent, in the bytes given to the
    /// [`handle_input`](Connection::handle_input) call that took the request (empty when the
    /// head could not be parsed, or for a timeout's or a refusal's answer).
    pub method_token: Span,
    /// The request-target as sent, in the same bytes (empty as `method_token`).
    pub target: Span,
    /// The status sent.
    pub status: StatusCode,
    /// The cache's part in it, for file responses.
    pub cache: Option<CacheStatus>,
    /// Head plus body bytes planned.
    pub bytes: u64,
    /// When the request head was complete (for a request that waited for its file source:
    /// when it began waiting), or when the timeout fired.
    pub started: Instant,
}

impl ResponseInfo {
    /// The cache's part as an access log writes it: `hit`, `miss-stored`, `miss`, `bypass`, or
    /// `-` for a response that is not a file's.
    pub fn cache_token(&self) -> &'static str {
        match self.cache {
            Some(CacheStatus::Hit) => "hit",
            Some(CacheStatus::MissStored) => "miss-stored",
            Some(CacheStatus::Miss) => "miss",
            Some(CacheStatus::Bypass) => "bypass",
            None => "-",
        }
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Head plus body bytes actually sent (reported through
    /// [`transmitted`](Connection::transmitted)).
    pub sent: u64,
    /// Whether all of it was sent; `false`: cut short (the peer went away or stopped reading,
    /// the file changed, the server shut down), as nginx's `$request_completion`.
    pub complete: bool,
}

/// Where a part of the request lies in the bytes given to
/// [`handle_input`](Connection::handle_input): `data[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset after the last byte.
    pub end: usize,
}

impl Span {
    /// The part of `data` this span names (empty if it lies outside).
    pub fn of<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        data.get(self.start..self.end).unwrap_or_default()
    }

    /// The span of `part`, a subslice of `data`.
    fn within(data: &[u8], part: &[u8]) -> Self {
        let start = (part.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if end <= data.len() => Self { start, end },
            _ => Self::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Waiting for (more of) a request head.
    Reading,
    /// A request waits for its file source (see [`Ticket`]): its bytes stay unconsumed in the
    /// driver's buffer, and it is answered from its start once `ready`.
    Waiting { ticket: Ticket, ready: bool },
    /// Sending a response; `close` says whether the connection ends after it.
    Sending { close: bool },
    /// Done: the driver should close the socket.
    Closed,
}

/// One HTTP/1.1 server connection, sans-IO. See the [module docs](crate::serve), and there
/// the order of calls.
///
/// `TX` is the size of the buffer for response heads and short error bodies; it must hold the
/// longest head (a `301` whose `Location` is a 1024-byte path percent-encoded: 4096 is safe).
pub struct Connection<'s, S: Site, const TX: usize> {
    pub(super) site: &'s S,
    pub(super) state: State,
    tx: [u8; TX],
    tx_len: usize,
    tx_sent: usize,
    body: SiteBody<S>,
    /// When the first byte of an incomplete head arrived.
    head_started: Option<Instant>,
    /// When the connection last made progress (request answered, bytes sent).
    last_activity: Instant,
    peer_closed: bool,
    /// When the request being answered had arrived (passed on to [`FileSource::probe`]).
    ///
    /// [`FileSource::probe`]: crate::source::FileSource::probe
    pub(super) arrived: Arrival,
    /// The ticket the request being answered waits under, once its source answered
    /// [`SourceError::Pending`](crate::source::SourceError::Pending): passed back to the
    /// source's `_waiting` calls until the request is answered.
    pub(super) wait: Option<Ticket>,
    /// The response to the waiting request must close the connection (shutdown, or the peer
    /// closed its side while the request waited).
    pub(super) closing: bool,
    /// Head plus body bytes sent of the response in flight.
    sent: u64,
    /// The status of the last response planned (for [`Connection::should_linger`]).
    last_status: Option<StatusCode>,
    /// Events not yet polled: at most the start and the end of one response.
    started: Option<ResponseInfo>,
    done: Option<Completion>,
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
            arrived: Arrival::UNKNOWN,
            wait: None,
            closing: false,
            sent: 0,
            last_status: None,
            started: None,
            done: None,
        }
    }

    /// A connection that refuses service: it answers `503` with `Retry-After: 1` at once and
    /// closes. For a driver past its connection cap; send what
    /// [`poll_transmit`](Self::poll_transmit) offers (one short head), then close.
    pub fn busy(site: &'s S, now: Instant) -> Self {
        let mut conn = Self::new(site, now);
        conn.respond_busy(now);
        conn
    }

    /// Offers the bytes received and not yet consumed; returns how many were consumed.
    ///
    /// At most one request is taken per call. `0` means the head is incomplete (call again with
    /// more bytes appended), the previous response is still being sent (call again once
    /// [`poll_transmit`](Self::poll_transmit) returns `None`), or events wait to be polled (call
    /// [`poll_event`](Self::poll_event) until `None`: no request is taken while the driver
    /// has not seen how the last one was answered). A malformed head is answered with
    /// its error status and consumes everything: the connection closes after that response.
    ///
    /// `arrived` says when the newest of these bytes had arrived, in the driver's count of its
    /// reads; it lets a source reuse a recent lookup soundly (see [`Arrival`]). A driver that
    /// does not count passes [`Arrival::UNKNOWN`].
    ///
    /// While a request waits for its source ([`waiting_for`](Self::waiting_for)), nothing is
    /// consumed; after [`handle_ready`](Self::handle_ready), the same bytes (the driver keeps
    /// them) are answered from the start.
    pub fn handle_input(&mut self, now: Instant, arrived: Arrival, data: &[u8]) -> usize {
        let resuming = match self.state {
            State::Reading => false,
            State::Waiting { ready: true, .. } => true,
            _ => return 0,
        };
        if data.is_empty() || self.has_events() {
            return 0;
        }
        self.arrived = arrived;
        match parse_request(data, &self.site.config().limits) {
            Ok(crate::Status::Complete((request, consumed))) => {
                self.head_started = None;
                if !resuming {
                    self.last_activity = now;
                }
                self.respond(now, &request);
                if matches!(self.state, State::Waiting { .. }) {
                    return 0;
                }
                self.wait = None;
                if let Some(info) = &mut self.started {
                    info.method_token = Span::within(data, request.method_token);
                    info.target = Span::within(data, request.target);
                }
                consumed
            }
            // A driver that resumes with other bytes than the request that waited.
            _ if resuming => {
                self.wait = None;
                let reason = "request changed while it waited";
                self.respond_error(now, None, StatusCode::BAD_REQUEST, reason, true);
                data.len()
            }
            Ok(crate::Status::Partial) => {
                self.head_started.get_or_insert(now);
                0
            }
            Err(e) => {
                self.head_started = None;
                self.last_activity = now;
                self.respond_error(now, None, e.status(), e.reason(), true);
                data.len()
            }
        }
    }

    /// The ticket the request in hand waits under, while it waits for its file source (and
    /// until [`handle_ready`](Self::handle_ready) names it). The driver completes the work
    /// the source started under it, then calls `handle_ready`.
    #[must_use]
    pub fn waiting_for(&self) -> Option<Ticket> {
        match self.state {
            State::Waiting {
                ticket,
                ready: false,
            } => Some(ticket),
            _ => None,
        }
    }

    /// The work behind `ticket` is done: the waiting request is answered again from its start
    /// at the next [`handle_input`](Self::handle_input) (with the same bytes), and the
    /// source's `_waiting` calls get the ticket back. Another ticket changes nothing.
    pub fn handle_ready(&mut self, ticket: Ticket) {
        if self.waiting_for() == Some(ticket) {
            self.state = State::Waiting {
                ticket,
                ready: true,
            };
        }
    }

    /// Parks the request in hand: its source answered `Pending(ticket)`.
    pub(super) fn park(&mut self, now: Instant, ticket: Ticket) {
        if self.wait.is_none() {
            // The first wait of this request: the send timeout runs from here.
            self.last_activity = now;
        }
        self.wait = Some(ticket);
        self.state = State::Waiting {
            ticket,
            ready: false,
        };
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
            State::Waiting { .. } => self.closing = true,
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
            State::Waiting { .. } => {
                // The source took longer than a stalled peer may: the request gets 503 and
                // the connection closes (its bytes, and any after them, are left unread).
                self.wait = None;
                let reason = "file source did not answer in time";
                self.respond_error(now, None, StatusCode::SERVICE_UNAVAILABLE, reason, true);
            }
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
            State::Sending { .. } | State::Waiting { .. } => {
                Some(self.last_activity + config.send_timeout)
            }
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
        Some(Transmit {
            head,
            body: self.body.as_ref(),
        })
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
        let from_body =
            (n - from_head).min(usize::try_from(self.body.remaining()).unwrap_or(usize::MAX));
        self.sent += (from_head + from_body) as u64;
        self.tx_sent += from_head;
        self.body.advance(from_body);
        if self.tx_sent == self.tx_len && self.body.remaining() == 0 {
            self.finish_response();
        }
    }

    /// Abandons the connection at once: the body source failed (a file shrank while it was
    /// streamed), the socket broke, or the driver gives up on it (shutdown grace over). Nothing
    /// more is sent; a response in flight ends as cut short ([`Completion::complete`] false).
    pub fn abort(&mut self) {
        self.close();
    }

    /// Asks the connection to end after the response in flight (server shutdown). An idle
    /// connection closes at once.
    pub fn shutdown(&mut self) {
        match self.state {
            State::Reading => self.close(),
            State::Waiting { .. } => self.closing = true,
            State::Sending { .. } => self.state = State::Sending { close: true },
            State::Closed => {}
        }
    }

    /// The next event, oldest first: a response planned, a response ended (see [`Event`]).
    ///
    /// Call it until `None` after each `handle_*` call and after
    /// [`transmitted`](Self::transmitted): while an event waits,
    /// [`handle_input`](Self::handle_input) takes no new request, so a driver that never polls
    /// stalls at once instead of losing what was answered.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(info) = self.started.take() {
            return Some(Event::Response(info));
        }
        self.done.take().map(Event::Done)
    }

    fn has_events(&self) -> bool {
        self.started.is_some() || self.done.is_some()
    }

    /// Whether the driver, closing the socket now, should first half-close it and read (and
    /// discard) what the peer still sends for a short while, so that the peer reads the last
    /// response rather than a reset (RFC 9112 §9.6). `unread`: whether the driver holds, or may
    /// still receive, request bytes the connection did not consume.
    ///
    /// True when the peer has not closed its side and either bytes are unread or the last
    /// response was an error (after which the connection may close with the peer still
    /// sending).
    #[must_use]
    pub fn should_linger(&self, unread: bool) -> bool {
        let error = self.last_status.is_some_and(|s| s.as_u16() >= 400);
        !self.peer_closed && (unread || error)
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

    /// Whether a request waits for its file source (ready or not): the driver keeps its bytes
    /// and reads no more from the peer meanwhile.
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, State::Waiting { .. })
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
        let body = core::mem::replace(&mut self.body, Body::None);
        self.drop_body(body);
    }

    fn finish_response(&mut self) {
        self.done = Some(Completion {
            sent: self.sent,
            complete: true,
        });
        self.release_body();
        self.tx_len = 0;
        self.tx_sent = 0;
        self.state = match self.state {
            State::Sending { close: false } if !self.peer_closed => State::Reading,
            _ => State::Closed,
        };
    }

    fn close(&mut self) {
        self.wait = None;
        if self.is_sending() {
            self.done = Some(Completion {
                sent: self.sent,
                complete: false,
            });
        }
        self.release_body();
        self.tx_len = 0;
        self.tx_sent = 0;
        self.state = State::Closed;
    }

    /// Plans the answer to a parsed request.
    /// Encodes `head` (and a short inline body) into TX and starts sending.
    pub(super) fn start(
        &mut self,
        now: Instant,
        method: Option<Method>,
        head: &ResponseHead<'_>,
        inline: &[u8],
        body: SiteBody<S>,
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
            self.planned(
                now,
                method,
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                n as u64,
            );
            return;
        };
        self.tx_len = len;
        self.tx_sent = 0;
        let body_len = body.remaining();
        self.body = body;
        self.state = State::Sending { close };
        self.planned(
            now,
            method,
            head.status,
            head.cache_status,
            len as u64 + body_len,
        );
        if len == 0 && body_len == 0 {
            self.finish_response();
        }
    }

    /// Records the start of a response (the first event of the pair).
    fn planned(
        &mut self,
        now: Instant,
        method: Option<Method>,
        status: StatusCode,
        cache: Option<CacheStatus>,
        bytes: u64,
    ) {
        self.sent = 0;
        self.last_status = Some(status);
        // A request that waited for its source started when it began waiting (its head was
        // complete then), so the duration logged includes the wait.
        let now = match self.wait {
            Some(_) => self.last_activity,
            None => now,
        };
        self.started = Some(ResponseInfo {
            method,
            method_token: Span::default(),
            target: Span::default(),
            status,
            cache,
            bytes,
            started: now,
        });
    }

    pub(super) fn drop_body(&self, body: SiteBody<S>) {
        match body {
            Body::Cached { handle, .. } => self.site.cache().release(handle),
            Body::File { file, .. } => self.site.source().close(&file),
            Body::None | Body::Listing { .. } => {}
        }
    }
}

impl<S: Site, const TX: usize> Drop for Connection<'_, S, TX> {
    fn drop(&mut self) {
        self.release_body();
    }
}
