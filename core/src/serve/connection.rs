//! The connection state machine: reading a head, sending a response, closed; timeouts and the
//! accounting of what was sent. What to answer is decided in `respond`.

use crate::cache::{CacheStats, ContentCache};
use crate::http::method::Method;
use crate::http::request::parse_request;
use crate::http::response::{CacheStatus, ResponseHead};
use crate::http::status::StatusCode;
use crate::source::Arrival;
use crate::time::Instant;

use super::body::{Body, Transmit};
use super::{File, Handle, Listing, Site, SiteBody};

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
pub(super) enum State {
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
            arrived: Arrival::UNKNOWN,
            event: None,
        }
    }

    /// Offers the bytes received and not yet consumed; returns how many were consumed.
    ///
    /// At most one request is taken per call. `0` means the head is incomplete (call again with
    /// more bytes appended) or the previous response is still being sent (call again once
    /// [`poll_transmit`](Self::poll_transmit) returns `None`). A malformed head is answered with
    /// its error status and consumes everything: the connection closes after that response.
    ///
    /// `arrived` says when the newest of these bytes had arrived, in the driver's count of its
    /// reads; it lets a source reuse a recent lookup soundly (see [`Arrival`]). A driver that
    /// does not count passes [`Arrival::UNKNOWN`].
    pub fn handle_input(&mut self, now: Instant, arrived: Arrival, data: &[u8]) -> usize {
        if self.state != State::Reading || data.is_empty() {
            return 0;
        }
        self.arrived = arrived;
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
        self.tx_sent += from_head;
        self.body.advance(n - from_head);
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

    pub(super) fn drop_body(&self, body: SiteBody<S>) {
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

/// The status for an error's code (the parsers only produce valid codes; 400 otherwise).
pub(super) fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}
