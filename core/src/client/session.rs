//! One download as a sans-IO session: every decision between "fetch this name" and "these bytes
//! are the whole file" — redirects, retries with backoff, resume with `If-Range`, starting over
//! when the file changed, timeouts — with time as an input.
//!
//! The session reads no clock and does no I/O (quinn-proto's `Connection` is the model). The
//! driver owns a connection to the server, the part file and the clock; the session tells it
//! what to do next and is told what happened.
//!
//! # The order of calls
//!
//! ```text
//! loop {
//!     match session.poll(now) {                      // #[must_use]
//!         Action::Connect    => drop any connection; open one within session.poll_timeout();
//!                               then handle_connected(now) or handle_connect_failed(now, why)
//!         Action::Send(req)  => encode req and send it on the connection
//!         Action::Receive    => receive until session.poll_timeout(); then
//!                               handle_input(now, unconsumed bytes) until Event::NeedMore or
//!                               Event::Ended (saving each Event::Start / Event::Body),
//!                               or handle_eof(now), handle_broken(now), handle_timeout(now)
//!         Action::Retry(r)   => tell the user (the session now waits until r.at)
//!         Action::Wait(t)    => sleep until t (no connection is in use)
//!         Action::Done(r)    => the download is over; keep the connection if keep_alive()
//!     }
//! }
//! ```
//!
//! # What is retried
//!
//! Only what can succeed later (as curl's `--retry`): a connect or response that timed out, a
//! connection broken or cut short after it was made, a `503`, and any other 5xx that carries
//! `Retry-After`. Never a refused connection, a name that does not resolve, a 4xx, or a
//! malformed or lying response. Each retry waits `250 ms × 2^n` (n = 1..5), or the server's
//! `Retry-After` when that is longer, and resumes from the bytes already saved when the
//! validator is known.
//!
//! # Timeouts
//!
//! Connecting, and the whole response head, each get one `timeout`; while the body lasts, each
//! `timeout` window must bring at least [`MIN_PROGRESS`] bytes (curl's `--speed-limit`), so a
//! server dripping a byte a second cannot hold a download forever.

use core::fmt;

use super::digest::{whole_file_sha256, DigestError, Sha256};
use super::target::{resolve_location, TargetError, MAX_TARGET};
use super::{plan, Event as ExchangeEvent, Exchange, ExchangeError, Framing, Plan};
use super::{Request, Response, ResumeError, Url};
use crate::time::{Duration, Instant};

/// The fewest body bytes each `timeout` window must bring while the body lasts.
pub const MIN_PROGRESS: u64 = 1024;
/// Redirects followed per download (PROTOCOL.md: "up to 5 redirects on the same server").
pub const MAX_REDIRECTS: u32 = 5;
/// Times a download may start over because the file changed under it.
pub const MAX_RESTARTS: u32 = 2;
/// The longest `Retry-After` waited for; a server asking for more is not retried.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest validator kept for `If-Range` (a longer one is not resumable).
pub const MAX_VALIDATOR: usize = 256;
/// The longest `If-Modified-Since` date sent (an IMF-fixdate is 29 bytes; the obsolete forms
/// a server may have sent in `Last-Modified` are shorter than this).
const MAX_DATE: usize = 40;
/// The first backoff; each retry doubles it, five times at most.
const BACKOFF: Duration = Duration::from_millis(250);
/// The reason phrase kept for an error status.
const MAX_REASON: usize = 64;

/// How a download behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config<'a> {
    /// Connect timeout, response-head deadline, and the body's progress window.
    pub timeout: Duration,
    /// Retries after a transient failure (see the module doc).
    pub retries: u32,
    /// The driver's receive buffer: a response head must fit in it.
    pub head_capacity: usize,
    /// `Accept` to send; when set, the answer must be a 200 of this media type (a listing).
    pub accept: Option<&'a str>,
}

/// A `.part` left by an earlier run: its length and the validator it was saved under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume<'v> {
    /// Bytes the part holds.
    pub offset: u64,
    /// The strong `ETag` or `Last-Modified` its bytes came with.
    pub validator: &'v str,
}

/// Why a connection could not be made, as the driver saw it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The server refused (nobody listens on that port). Not retried.
    Refused,
    /// The name does not resolve. Not retried.
    Unresolved,
    /// No answer within the timeout. Retried.
    TimedOut,
    /// Anything else (no route, no free socket). Not retried.
    Other,
}

/// Why a download failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No connection could be made.
    Connect(ConnectFailure),
    /// No progress within the timeout (head deadline or body window).
    Timeout,
    /// The connection broke (reset, aborted) during the exchange.
    Broken,
    /// The response was malformed, lying, or cut short.
    Exchange(ExchangeError),
    /// A partial response that does not fit the range asked for.
    Resume(ResumeError),
    /// A malformed SHA-256 digest field.
    Digest(DigestError),
    /// A status that is not a success, a redirect or a range answer (see [`Download::reason`]).
    Status(u16),
    /// A redirect that is not followed (another server, not a URL).
    Redirect(TargetError),
    /// More than [`MAX_REDIRECTS`] redirects.
    TooManyRedirects,
    /// A file download redirected to the same path with a `/` added: the name is a folder.
    Folder,
    /// The file changed more than [`MAX_RESTARTS`] times during the download.
    KeepsChanging,
    /// Not a 200 of the media type asked for in [`Config::accept`].
    NotAccepted,
    /// The body ended (by its framing) at another length than the server announced for the
    /// file (a chunked 206 longer or shorter than its `Content-Range`).
    Length {
        /// What the part holds.
        saved: u64,
        /// The file's length the server announced.
        announced: u64,
    },
}

impl Error {
    /// Whether the failure is the network's (connect, timeout, reset, cut short) rather than
    /// the server's answer or the request's.
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            Self::Connect(_)
                | Self::Timeout
                | Self::Broken
                | Self::Exchange(
                    ExchangeError::Closed { .. }
                        | ExchangeError::Framing(super::FramingError::Truncated { .. })
                )
        )
    }

    /// Whether the failure may go away by itself, so a retry makes sense.
    fn is_transient(&self) -> bool {
        match self {
            Self::Connect(why) => *why == ConnectFailure::TimedOut,
            _ => self.is_network(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(ConnectFailure::Refused) => f.write_str("connection refused"),
            Self::Connect(ConnectFailure::Unresolved) => f.write_str("name does not resolve"),
            Self::Connect(ConnectFailure::TimedOut) => f.write_str("connect timed out"),
            Self::Connect(ConnectFailure::Other) => f.write_str("cannot connect"),
            Self::Timeout => f.write_str("timed out"),
            Self::Broken => f.write_str("connection broken"),
            Self::Exchange(e) => fmt::Display::fmt(e, f),
            Self::Resume(e) => fmt::Display::fmt(e, f),
            Self::Digest(e) => fmt::Display::fmt(e, f),
            Self::Status(s) => write!(f, "status {s}"),
            Self::Redirect(e) => write!(f, "redirect not followed: {e}"),
            Self::TooManyRedirects => f.write_str("more than 5 redirects"),
            Self::Folder => f.write_str("is a folder on the server"),
            Self::KeepsChanging => f.write_str("the file keeps changing on the server"),
            Self::NotAccepted => f.write_str("not the media type asked for"),
            Self::Length { saved, announced } => {
                write!(f, "saved {saved} bytes, the server announced {announced}")
            }
        }
    }
}

impl core::error::Error for Error {}

/// What the last [`Error::Timeout`] was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The whole response head, within `timeout` of the request.
    Head,
    /// Body progress: [`MIN_PROGRESS`] bytes within each `timeout` window.
    Body,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Head => "the response head",
            Self::Body => "body progress (at least 1 KiB per window)",
        })
    }
}

/// A download that ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// The length the saved file must have (what the part held before plus the body).
    pub len: u64,
}

/// A retry about to happen, for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Which retry this is (1-based).
    pub attempt: u32,
    /// Retries allowed in all.
    pub of: u32,
    /// When it starts.
    pub at: Instant,
    /// How long until then (the backoff, or the server's `Retry-After`).
    pub wait: Duration,
    /// Why the last try failed.
    pub cause: Error,
}

/// What the driver must do next (see the module doc for the order of calls).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'s> {
    /// Drop any connection held and open a new one to the server.
    Connect,
    /// Send this request on the connection.
    Send(Request<'s>),
    /// Receive and feed [`Download::handle_input`].
    Receive,
    /// A retry is scheduled; tell the user. Polling again waits for it.
    Retry(Retry),
    /// Nothing to do before this instant.
    Wait(Instant),
    /// The download is over.
    Done(Result<Saved, Error>),
}

/// What the bytes fed to [`Download::handle_input`] meant for the file.
// `Start` is big (a response view and a digest) but short-lived, and the core has no heap.
#[allow(clippy::large_enum_variant)]
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'d> {
    /// Nothing complete in the input: receive more and feed every unconsumed byte again.
    NeedMore,
    /// The response to save: what to do with the part, before any body byte.
    Start(Start<'d>),
    /// Body bytes to append to the part, borrowed from the input.
    Body(&'d [u8]),
    /// This exchange is over (saved, failed, or followed elsewhere): call [`Download::poll`].
    Ended,
}

/// How the part file starts for the response that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start<'d> {
    /// Truncate and write from 0, append at an offset, or finish without a body.
    pub plan: Plan,
    /// The response head.
    pub response: Response<'d>,
    /// The validator to store beside the part for a later `--continue` (with `Plan::Write`;
    /// `None` means remove any stored one).
    pub validator: Option<&'d str>,
    /// The whole file's SHA-256, when the server announced it (not with `Plan::Complete`).
    pub digest: Option<Sha256>,
}

/// What the current response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No head yet.
    Head,
    /// Its body goes to the part.
    Save,
    /// The part is complete already (416 for its length); the body is drained.
    Complete,
    /// Drained; then the next try goes to the new target (already in place).
    Redirect,
    /// Drained; then the whole file is asked for again.
    Restart,
    /// Drained; then the download fails (or is retried, after `Option<Duration>`).
    Fail(Error, Option<Duration>),
}

#[derive(Debug, Clone)]
enum State {
    /// The next try starts at this instant.
    Ready(Instant),
    /// A connection was asked for; it must be made by this deadline.
    Connecting(Instant),
    /// Reading the response to the request sent.
    Receiving(Receiving),
    /// Over.
    Done(Result<Saved, Error>),
}

#[derive(Debug, Clone)]
struct Receiving {
    exchange: Exchange,
    role: Role,
    timer: ResponseTimer,
}

/// The time limits on one response (see the module doc): its head within `timeout` of the
/// request, then at least [`MIN_PROGRESS`] body bytes in every `timeout` window. Sans-IO like
/// the rest: [`check`](Self::check) is told the time and the exchange it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTimer {
    timeout: Duration,
    /// Before the head: its deadline; in the body: the end of the current window.
    deadline: Instant,
    /// Body bytes received when the current window began (`None` before the head).
    window_base: Option<u64>,
}

/// A [`ResponseTimer`] limit was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl ResponseTimer {
    /// Limits for the response to a request sent at `now`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Self {
            timeout,
            deadline: now + timeout,
            window_base: None,
        }
    }

    /// When the limit in force runs out.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Checks the limits at `now` against what `exchange` has received (every byte received
    /// having been fed to it); a window that brought enough starts the next one.
    ///
    /// # Errors
    /// [`TimedOut`] when the head is late or a window brought too few body bytes.
    pub fn check(&mut self, now: Instant, exchange: &Exchange) -> Result<(), TimedOut> {
        let received = exchange.body_received();
        match self.window_base {
            None if exchange.head_received() => self.window_base = Some(received),
            Some(base) if now >= self.deadline => {
                if received.saturating_sub(base) < MIN_PROGRESS {
                    return Err(TimedOut);
                }
                self.window_base = Some(received);
            }
            None if now >= self.deadline => return Err(TimedOut),
            _ => return Ok(()),
        }
        self.deadline = now + self.timeout;
        Ok(())
    }
}

/// One download (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Download<'a> {
    url: Url<'a>,
    host_header: &'a str,
    config: Config<'a>,
    state: State,
    target: [u8; MAX_TARGET],
    target_len: usize,
    validator: [u8; MAX_VALIDATOR],
    /// `Some(len)` while a validator is known.
    validator_len: Option<usize>,
    reason: [u8; MAX_REASON],
    reason_len: usize,
    /// Bytes the part holds, as far as this session wrote or was told.
    saved: u64,
    /// The file's length, as the response being saved announced it.
    total: Option<u64>,
    /// The range the current request asked for.
    asked_from: Option<u64>,
    /// Whether a connection is open and may carry the next request.
    connected: bool,
    /// The connection was inherited from an earlier download (a failure before any response
    /// on it is a stale keep-alive, tried again at once).
    reused: bool,
    retries: u32,
    redirects: u32,
    restarts: u32,
    pending_retry: Option<Retry>,
    /// `If-None-Match` to send (the `ETag` of a copy already saved), when nonzero.
    cond_etag: [u8; MAX_VALIDATOR],
    cond_etag_len: usize,
    /// `If-Modified-Since` to send (an HTTP date), when nonzero.
    cond_date: [u8; MAX_DATE],
    cond_date_len: usize,
    /// The server answered `304 Not Modified` to the conditional request.
    not_modified: bool,
    /// What the last timeout was waiting for.
    waiting: Option<Waiting>,
}

impl<'a> Download<'a> {
    /// A download of `url` (the target being already percent-encoded), sending `host_header`.
    ///
    /// `connected` says whether the driver holds a kept-alive connection to the server that
    /// the first request may use; `resume` is a part left by an earlier run.
    ///
    /// # Errors
    /// [`TargetError::TooLong`] when the target does not fit [`MAX_TARGET`].
    pub fn new(
        url: Url<'a>,
        host_header: &'a str,
        config: Config<'a>,
        resume: Option<Resume<'_>>,
        connected: bool,
        now: Instant,
    ) -> Result<Self, TargetError> {
        let mut target = [0u8; MAX_TARGET];
        let dst = target
            .get_mut(..url.target.len())
            .ok_or(TargetError::TooLong)?;
        dst.copy_from_slice(url.target.as_bytes());
        let mut session = Self {
            url,
            host_header,
            config,
            state: State::Ready(now),
            target,
            target_len: url.target.len(),
            validator: [0; MAX_VALIDATOR],
            validator_len: None,
            reason: [0; MAX_REASON],
            reason_len: 0,
            saved: 0,
            total: None,
            asked_from: None,
            connected,
            reused: connected,
            retries: 0,
            redirects: 0,
            restarts: 0,
            pending_retry: None,
            cond_etag: [0; MAX_VALIDATOR],
            cond_etag_len: 0,
            cond_date: [0; MAX_DATE],
            cond_date_len: 0,
            not_modified: false,
            waiting: None,
        };
        if let Some(r) = resume {
            if session.keep_validator(r.validator.as_bytes()) {
                session.saved = r.offset;
            }
        }
        Ok(session)
    }

    /// Starts this session over, in place, as a new download of `target` (already
    /// percent-encoded, starting with `/`) on the same server with the same configuration:
    /// as [`new`](Self::new) without a `.part`, but without building a new session (a few KB)
    /// on the stack, which a board running one fetch after another cannot spare.
    ///
    /// # Errors
    /// [`TargetError::TooLong`] when `target` does not fit [`MAX_TARGET`] (the session is then
    /// unchanged).
    pub fn renew(
        &mut self,
        target: &str,
        connected: bool,
        now: Instant,
    ) -> Result<(), TargetError> {
        let dst = self
            .target
            .get_mut(..target.len())
            .ok_or(TargetError::TooLong)?;
        dst.copy_from_slice(target.as_bytes());
        self.target_len = target.len();
        self.state = State::Ready(now);
        self.validator_len = None;
        self.reason_len = 0;
        self.saved = 0;
        self.total = None;
        self.asked_from = None;
        self.connected = connected;
        self.reused = connected;
        self.retries = 0;
        self.redirects = 0;
        self.restarts = 0;
        self.pending_retry = None;
        self.cond_etag_len = 0;
        self.cond_date_len = 0;
        self.not_modified = false;
        self.waiting = None;
        Ok(())
    }

    /// The target now being fetched (after any redirect).
    pub fn target(&self) -> &str {
        let bytes = self.target.get(..self.target_len).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Makes the request conditional on a copy already saved (a mirror asking only for what
    /// changed): `etag` goes in `If-None-Match`, `date` in `If-Modified-Since`. A `304` then
    /// ends the download with nothing saved and [`not_modified`](Self::not_modified) true.
    /// A value that cannot appear in a header, or is too long (an `ETag` over
    /// [`MAX_VALIDATOR`] bytes, a date over 40), is not sent.
    pub fn set_conditional(&mut self, etag: Option<&str>, date: Option<&str>) {
        self.cond_etag_len = copy_value(&mut self.cond_etag, etag);
        self.cond_date_len = copy_value(&mut self.cond_date, date);
    }

    /// What the last [`Error::Timeout`] (retried or final) was waiting for.
    pub fn waiting(&self) -> Option<Waiting> {
        self.waiting
    }

    /// Whether the server answered `304 Not Modified`: the saved copy is current.
    pub fn not_modified(&self) -> bool {
        self.not_modified
    }

    /// The reason phrase of the last error status (at most 64 bytes, as sent).
    pub fn reason(&self) -> &[u8] {
        self.reason.get(..self.reason_len).unwrap_or_default()
    }

    /// Whether the connection may carry another request (meaningful once done).
    pub fn keep_alive(&self) -> bool {
        self.connected
    }

    /// What to do next; see the module doc.
    pub fn poll(&mut self, now: Instant) -> Action<'_> {
        if let Some(retry) = self.pending_retry.take() {
            return Action::Retry(retry);
        }
        if let State::Receiving(_) | State::Connecting(_) = self.state {
            self.handle_timeout(now);
        }
        match self.state {
            State::Done(result) => Action::Done(result),
            State::Receiving(_) => Action::Receive,
            State::Connecting(_) => Action::Connect,
            State::Ready(at) if now < at => Action::Wait(at),
            State::Ready(_) if !self.connected => {
                self.reused = false;
                self.state = State::Connecting(now + self.config.timeout);
                Action::Connect
            }
            State::Ready(_) => {
                let range_from =
                    (self.saved > 0 && self.validator_len.is_some()).then_some(self.saved);
                self.asked_from = range_from;
                self.state = State::Receiving(Receiving {
                    exchange: Exchange::new(false, self.config.head_capacity),
                    role: Role::Head,
                    timer: ResponseTimer::new(now, self.config.timeout),
                });
                Action::Send(self.request(range_from))
            }
        }
    }

    /// The next deadline: of the connect, the response head, the progress window or the
    /// backoff.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Ready(at) => Some(*at),
            State::Connecting(deadline) => Some(*deadline),
            State::Receiving(r) => Some(r.timer.deadline()),
            State::Done(_) => None,
        }
    }

    /// Whether a request was sent and its response is not over yet.
    pub fn is_receiving(&self) -> bool {
        matches!(self.state, State::Receiving(_))
    }

    /// For a driver that shares one connection among sessions (a
    /// [`Pipeline`](super::pipeline::Pipeline)): whether a connection is `open` that the next
    /// request may use, and whether it has carried requests before (`reused`: a close before
    /// any byte of the response is then a stale connection, tried again at once). Only a
    /// session between tries (not receiving, connecting or done) takes it.
    pub fn set_connection(&mut self, open: bool, reused: bool) {
        if let State::Ready(_) = self.state {
            self.connected = open;
            self.reused = open && reused;
        }
    }

    /// Another request was sent after this one on the connection: bytes after the end of this
    /// response are the next response (see [`Exchange::set_followed`]).
    pub fn handle_followed(&mut self) {
        if let State::Receiving(r) = &mut self.state {
            r.exchange.set_followed();
        }
    }

    /// The response before this one on a pipelined connection is over, so this one's time
    /// limits start now (not when its request was sent).
    pub fn handle_front(&mut self, now: Instant) {
        if let State::Receiving(r) = &mut self.state {
            if !r.exchange.head_received() {
                r.timer = ResponseTimer::new(now, self.config.timeout);
            }
        }
    }

    /// The request was sent but the connection ended before any byte of its response (the
    /// server closed after answering earlier requests, RFC 9112 §9.3.2): it is sent again, on a
    /// new connection, at once, and this counts as no retry. The request is a GET, so
    /// repeating it is safe.
    pub fn handle_unanswered(&mut self, now: Instant) {
        if let State::Receiving(r) = &self.state {
            self.connected = false;
            if r.exchange.head_received() {
                // Not unanswered after all: a response cut short.
                self.fail(now, Error::Broken, None);
            } else {
                self.state = State::Ready(now);
            }
        }
    }

    /// The connection asked for by [`Action::Connect`] is open.
    pub fn handle_connected(&mut self, now: Instant) {
        if let State::Connecting(_) = self.state {
            self.connected = true;
            self.state = State::Ready(now);
        }
    }

    /// The connection asked for by [`Action::Connect`] could not be made.
    pub fn handle_connect_failed(&mut self, now: Instant, why: ConnectFailure) {
        if let State::Connecting(_) = self.state {
            self.fail(now, Error::Connect(why), None);
        }
    }

    /// Time has passed without news: fails the connect or the exchange whose deadline is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Connecting(deadline) if now >= *deadline => {
                self.fail(now, Error::Connect(ConnectFailure::TimedOut), None);
            }
            State::Receiving(r) => {
                let late = r.timer.check(now, &r.exchange).is_err();
                if late {
                    self.waiting = Some(if r.exchange.head_received() {
                        Waiting::Body
                    } else {
                        Waiting::Head
                    });
                    self.fail(now, Error::Timeout, None);
                }
            }
            _ => {}
        }
    }

    /// The connection broke (reset, aborted, a send or receive error).
    pub fn handle_broken(&mut self, now: Instant) {
        if let State::Receiving(r) = &self.state {
            let stale = self.reused && !r.exchange.head_received();
            self.connected = false;
            if stale {
                self.state = State::Ready(now);
            } else {
                self.fail(now, Error::Broken, None);
            }
        }
    }

    /// The server closed the connection (all bytes received having been fed).
    pub fn handle_eof(&mut self, now: Instant) {
        let State::Receiving(r) = &mut self.state else {
            return;
        };
        self.connected = false;
        match r.exchange.handle_eof() {
            Ok(_) => self.end_exchange(now),
            Err(ExchangeError::Closed {
                response_started: false,
            }) if self.reused => self.state = State::Ready(now),
            Err(e) => self.fail(now, Error::Exchange(e), None),
        }
    }

    /// Feeds the received bytes not yet consumed; returns how many were consumed and what they
    /// meant. Call again with the rest until [`Event::NeedMore`] or [`Event::Ended`].
    pub fn handle_input<'d>(&mut self, now: Instant, data: &'d [u8]) -> (usize, Event<'d>) {
        let mut consumed = 0;
        loop {
            let State::Receiving(r) = &mut self.state else {
                return (consumed, Event::Ended);
            };
            let rest = data.get(consumed..).unwrap_or_default();
            let (n, event) = match r.exchange.handle_input(rest) {
                Ok(step) => step,
                Err(e) => {
                    self.fail(now, Error::Exchange(e), None);
                    return (consumed, Event::Ended);
                }
            };
            consumed += n;
            match event {
                ExchangeEvent::NeedMore => {
                    self.handle_timeout(now);
                    let ended = !matches!(self.state, State::Receiving(_));
                    return (consumed, if ended { Event::Ended } else { Event::NeedMore });
                }
                ExchangeEvent::Head(response) => {
                    let raw = rest.get(..n).unwrap_or_default();
                    if let Some(start) = self.head(&response, raw) {
                        return (consumed, Event::Start(start));
                    }
                }
                ExchangeEvent::Body(body) if r.role == Role::Save => {
                    self.saved += body.len() as u64;
                    return (consumed, Event::Body(body));
                }
                ExchangeEvent::Body(_) => {}
                ExchangeEvent::Done { keep_alive } => {
                    self.connected &= keep_alive;
                    self.end_exchange(now);
                    return (consumed, Event::Ended);
                }
            }
        }
    }

    /// Decides what a final response head means (the exchange then reads its body, and
    /// [`end_exchange`](Self::end_exchange) acts on the role); returns the start of a save.
    fn head<'d>(&mut self, r: &Response<'d>, raw: &[u8]) -> Option<Start<'d>> {
        let conditional = self.cond_etag_len > 0 || self.cond_date_len > 0;
        let role = match r.status {
            304 if conditional && self.asked_from.is_none() => {
                self.not_modified = true;
                Role::Complete
            }
            301 | 302 | 303 | 307 | 308 if r.location.is_some() => {
                self.redirect(r.location.unwrap_or_default())
            }
            200..=299 | 416 => match plan(self.asked_from, r) {
                Err(e) => Role::Fail(Error::Resume(e), None),
                Ok(Plan::Restart) => Role::Restart,
                Ok(Plan::Complete) => Role::Complete,
                Ok(_) if !self.accepted(r) => Role::Fail(Error::NotAccepted, None),
                Ok(p) => return self.start(p, r),
            },
            status => {
                let n = r.reason.len().min(MAX_REASON);
                if let (Some(dst), Some(src)) = (self.reason.get_mut(..n), r.reason.get(..n)) {
                    dst.copy_from_slice(src);
                }
                self.reason_len = n;
                let wait = match retry_after(raw) {
                    Some(secs) if status >= 500 => Some(Duration::from_secs(secs)),
                    None if status == 503 => Some(Duration::from_millis(0)),
                    _ => None,
                };
                Role::Fail(Error::Status(status), wait)
            }
        };
        self.set_role(role);
        (role == Role::Complete).then_some(Start {
            plan: Plan::Complete,
            response: *r,
            validator: None,
            digest: None,
        })
    }

    /// A 200, 206 or 416 to save from.
    fn start<'d>(&mut self, plan: Plan, r: &Response<'d>) -> Option<Start<'d>> {
        let digest = match whole_file_sha256(r) {
            Ok(d) => d,
            Err(e) => {
                self.set_role(Role::Fail(Error::Digest(e), None));
                return None;
            }
        };
        let mut validator = None;
        let plan = match plan {
            Plan::Write { total } => {
                self.saved = 0;
                validator = strong_validator(r);
                if !validator.is_some_and(|v| self.keep_validator(v.as_bytes())) {
                    self.validator_len = None;
                }
                let empty = r.framing == Framing::Empty;
                Plan::Write {
                    total: total.or(empty.then_some(0)),
                }
            }
            other => other,
        };
        self.total = match plan {
            Plan::Write { total } | Plan::Append { total, .. } => total,
            Plan::Complete | Plan::Restart => None,
        };
        self.set_role(Role::Save);
        Some(Start {
            plan,
            response: *r,
            validator,
            digest,
        })
    }

    fn set_role(&mut self, role: Role) {
        if let State::Receiving(rx) = &mut self.state {
            rx.role = role;
        }
    }

    /// Follows a `Location` on the same server.
    fn redirect(&mut self, location: &[u8]) -> Role {
        self.redirects += 1;
        if self.redirects > MAX_REDIRECTS {
            return Role::Fail(Error::TooManyRedirects, None);
        }
        let mut next = [0u8; MAX_TARGET];
        let base = Url {
            target: self.target(),
            ..self.url
        };
        match resolve_location(&base, location, &mut next) {
            // A file asked for that is a folder: never save its listing page as the file.
            Ok(t) if self.config.accept.is_none() && is_folder_of(t, self.target()) => {
                Role::Fail(Error::Folder, None)
            }
            Ok(t) => {
                let len = t.len();
                self.target = next;
                self.target_len = len;
                Role::Redirect
            }
            Err(e) => Role::Fail(Error::Redirect(e), None),
        }
    }

    fn accepted(&self, r: &Response<'_>) -> bool {
        let Some(want) = self.config.accept else {
            return true;
        };
        r.status == 200
            && r.content_type.is_some_and(|t| {
                t.get(..want.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(want.as_bytes()))
            })
    }

    /// The response is over: save done, or on to the next try.
    fn end_exchange(&mut self, now: Instant) {
        let State::Receiving(r) = &self.state else {
            return;
        };
        self.reused = false;
        match r.role {
            Role::Save => {
                self.state = match self.total {
                    Some(announced) if announced != self.saved => State::Done(Err(Error::Length {
                        saved: self.saved,
                        announced,
                    })),
                    _ => State::Done(Ok(Saved { len: self.saved })),
                };
            }
            Role::Complete => self.state = State::Done(Ok(Saved { len: self.saved })),
            Role::Redirect => self.state = State::Ready(now),
            Role::Restart => {
                self.restarts += 1;
                self.validator_len = None;
                self.saved = 0;
                self.state = if self.restarts > MAX_RESTARTS {
                    State::Done(Err(Error::KeepsChanging))
                } else {
                    State::Ready(now)
                };
            }
            Role::Fail(e, wait) => self.fail(now, e, wait),
            // A complete exchange always had a head.
            Role::Head => self.fail(now, Error::Exchange(ExchangeError::TrailingBytes), None),
        }
    }

    /// Ends the try with `error`: schedules a retry when it can help, else ends the download.
    /// `wait` marks a status as retryable (with the server's `Retry-After`).
    fn fail(&mut self, now: Instant, error: Error, wait: Option<Duration>) {
        if !matches!(error, Error::Status(_)) {
            self.connected = false;
        }
        let transient = error.is_transient() || wait.is_some();
        let wait = wait.unwrap_or(Duration::from_millis(0));
        if !transient || self.retries >= self.config.retries || wait > MAX_RETRY_AFTER {
            self.state = State::Done(Err(error));
            return;
        }
        self.retries += 1;
        // A retry starts on a new connection (the driver drops the old one while it waits).
        self.connected = false;
        let backoff = BACKOFF.as_millis() << self.retries.min(5);
        let wait = Duration::from_millis(backoff.max(wait.as_millis()));
        let at = now + wait;
        self.state = State::Ready(at);
        self.pending_retry = Some(Retry {
            attempt: self.retries,
            of: self.config.retries,
            at,
            wait,
            cause: error,
        });
    }

    /// Keeps `v` as the validator if it can be sent back verbatim and fits.
    fn keep_validator(&mut self, v: &[u8]) -> bool {
        let ok = !v.is_empty() && v.iter().all(|&b| b == b' ' || b.is_ascii_graphic());
        match self.validator.get_mut(..v.len()).filter(|_| ok) {
            Some(dst) => {
                dst.copy_from_slice(v);
                self.validator_len = Some(v.len());
                true
            }
            None => false,
        }
    }

    fn request(&self, range_from: Option<u64>) -> Request<'_> {
        let validator = self
            .validator_len
            .and_then(|n| self.validator.get(..n))
            .and_then(|v| core::str::from_utf8(v).ok());
        Request {
            host: self.host_header,
            target: self.target(),
            accept: self.config.accept,
            range_from,
            if_range: validator.filter(|_| range_from.is_some()),
            // A resumed request carries If-Range instead: both would be ambiguous.
            if_none_match: value(&self.cond_etag, self.cond_etag_len)
                .filter(|_| range_from.is_none()),
            if_modified_since: value(&self.cond_date, self.cond_date_len)
                .filter(|_| range_from.is_none()),
            keep_alive: true,
        }
    }
}

/// Whether `to` is `from`'s path with a `/` added (the server's answer to a folder's name).
fn is_folder_of(to: &str, from: &str) -> bool {
    let path = |t: &str| t.split('?').next().unwrap_or_default().len();
    let (to_path, from_path) = (path(to), path(from));
    to_path == from_path + 1
        && to.get(..from_path) == from.get(..from_path)
        && to.as_bytes().get(from_path) == Some(&b'/')
}

/// Copies a header value into `dst`, returning its length; 0 (not sent) when it is absent,
/// too long, or holds a byte a header cannot carry.
fn copy_value(dst: &mut [u8], v: Option<&str>) -> usize {
    let Some(v) = v.map(str::as_bytes) else {
        return 0;
    };
    let ok = v.iter().all(|&b| b == b' ' || b.is_ascii_graphic());
    match dst.get_mut(..v.len()).filter(|_| ok) {
        Some(d) => {
            d.copy_from_slice(v);
            v.len()
        }
        None => 0,
    }
}

/// The first `len` bytes of `buf` as a header value (`None` when `len` is 0).
fn value(buf: &[u8], len: usize) -> Option<&str> {
    let v = buf.get(..len).filter(|v| !v.is_empty())?;
    core::str::from_utf8(v).ok()
}

/// The validator to resume with: a strong `ETag`, else `Last-Modified` (RFC 9110 §13.1.5:
/// `If-Range` needs a strong one).
fn strong_validator<'d>(r: &Response<'d>) -> Option<&'d str> {
    let strong_etag = r.etag.filter(|e| !e.starts_with(b"W/"));
    core::str::from_utf8(strong_etag.or(r.last_modified)?).ok()
}

/// `Retry-After` in delay-seconds (RFC 9110 §10.2.3) from a response head the parser has
/// already validated; an HTTP-date is ignored (the core has no calendar clock).
pub(super) fn retry_after(head: &[u8]) -> Option<u64> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"retry-after") {
            return None;
        }
        let value = value.get(1..)?.trim_ascii();
        let digits = value.len() <= 9 && !value.is_empty();
        value.iter().try_fold(0u64, |n, &b| {
            (digits && b.is_ascii_digit()).then(|| n * 10 + u64::from(b - b'0'))
        })
    })
}
