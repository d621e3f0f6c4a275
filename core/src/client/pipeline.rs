//! Download sessions pipelined over one kept-alive connection (RFC 9112 §9.3.2), sans-IO like
//! the sessions it composes.
//!
//! Each file is still one [`Download`] with all its rules (redirects, retries with backoff,
//! resume, timeouts); the pipeline only shares the connection among up to `N` of them. It sends
//! the next sessions' requests while the first one's response is read, up to a depth, and feeds
//! the bytes received to the sessions in the order their requests were sent (the only order a
//! server may answer in), so a response is never given to the wrong request.
//!
//! ```text
//! line       the slots whose requests are on the connection, oldest first; only the front one
//!            is fed bytes and timed (its limits start when the one before it ends)
//! idle       the other slots: not sent yet, between tries (a redirect or a restart is sent
//!            again at the back of the line), waiting out a backoff, or done
//! ```
//!
//! What real servers do, and what the pipeline makes of it:
//! - The server closes after some response (`Connection: close`, or just closes): the requests
//!   not answered are sent again on a new connection, at once, and count as no retry. A close
//!   before any response on a fresh connection is the front session's failure, retried within
//!   its budget, so a server that never answers cannot loop the pipeline.
//! - A response needing a redirect, a restart or a resume: the session decides, as alone; its
//!   next request joins the back of the line.
//! - A malformed response, or a failure that needs a retry: that session fails (or backs off)
//!   by its own rules, the connection is dropped, and the requests behind it are sent again on
//!   a new one.
//!
//! # The order of calls
//!
//! ```text
//! loop {
//!     fill free slots: pipeline.push(Download::new(...))   (while pipeline.has_room())
//!     match pipeline.poll(now, may_send) {
//!         Action::Connect          => drop any connection; open one within poll_timeout();
//!                                     then handle_connected(now) or handle_connect_failed(now, why)
//!         Action::Send { request } => encode it after the requests already sent (keep receiving)
//!         Action::Receive          => receive until poll_timeout(); then handle_input(now,
//!                                     unconsumed bytes) until Event::NeedMore (saving each
//!                                     Event::Start / Event::Body to its slot's file), or
//!                                     handle_eof(now), handle_broken(now), handle_timeout(now)
//!         Action::Retry { .. }     => tell the user
//!         Action::Wait(t)          => drop the connection; sleep until t
//!         Action::Done { slot, .. } => the slot's download is over: remove(slot, now)
//!         Action::Idle             => every slot is empty
//!     }
//! }
//! ```
//!
//! Unlike a lone session's driver, a pipeline's driver keeps the bytes it received across
//! `Send` (they may be the answers to earlier requests) and drops them only on `Connect` and
//! `Wait`.

use super::session::{self, ConnectFailure, Download, Error, Retry, Saved, Start};
use super::Request;
use crate::time::Instant;

/// What the driver must do next (see the module doc for the order of calls).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'s> {
    /// Drop any connection held and open a new one to the server.
    Connect,
    /// Send this request on the connection, after those already sent.
    Send {
        /// The session it is for.
        slot: usize,
        /// The request.
        request: Request<'s>,
    },
    /// Receive and feed [`Pipeline::handle_input`].
    Receive,
    /// A session scheduled a retry; tell the user. The others go on meanwhile.
    Retry {
        /// The session.
        slot: usize,
        /// When and why.
        retry: Retry,
    },
    /// Nothing to do before this instant, and no connection in use.
    Wait(Instant),
    /// A session is over; take it out with [`Pipeline::remove`].
    Done {
        /// The session.
        slot: usize,
        /// How it ended.
        result: Result<Saved, Error>,
    },
    /// No session at all: push more, or stop.
    Idle,
}

/// What the bytes fed to [`Pipeline::handle_input`] meant.
// `Start` is big (a response view and a digest) but short-lived, and the core has no heap.
#[allow(clippy::large_enum_variant)]
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'d> {
    /// Nothing complete in the input: receive more and feed every unconsumed byte again (or
    /// call [`Pipeline::poll`] first: a response may have ended).
    NeedMore,
    /// The response `slot` saves from: what to do with its part, before any body byte.
    Start {
        /// The session.
        slot: usize,
        /// As [`session::Event::Start`].
        start: Start<'d>,
    },
    /// Body bytes for `slot`'s part, borrowed from the input.
    Body {
        /// The session.
        slot: usize,
        /// The bytes.
        data: &'d [u8],
    },
}

/// Up to `N` download sessions sharing one connection (see the [module docs](self)).
#[derive(Debug)]
pub struct Pipeline<'a, const N: usize> {
    slots: [Option<Download<'a>>; N],
    /// When each slot was filled: idle sessions are sent oldest first.
    pushed: [u64; N],
    next_push: u64,
    /// The slots whose requests are on the connection, in the order sent.
    line: [usize; N],
    line_len: usize,
    /// Requests in flight at most.
    depth: usize,
    /// A connection is open.
    open: bool,
    /// The open connection has carried a request.
    used: bool,
    /// The slot whose session asked for the connection being opened.
    connecting: Option<usize>,
    /// The earliest backoff of a session off the line, as of the last [`poll`](Self::poll)
    /// (one that is due waits for room on the line, which only the front's progress makes).
    backoff: Option<Instant>,
}

impl<'a, const N: usize> Pipeline<'a, N> {
    /// An empty pipeline keeping up to `depth` requests in flight (1 to `N`; 1 is no
    /// pipelining, one request at a time on a kept-alive connection).
    pub fn new(depth: usize) -> Self {
        Self {
            slots: core::array::from_fn(|_| None),
            pushed: [0; N],
            next_push: 0,
            line: [0; N],
            line_len: 0,
            depth: depth.clamp(1, N.max(1)),
            open: false,
            used: false,
            connecting: None,
            backoff: None,
        }
    }

    /// Whether a slot is free for [`push`](Self::push).
    pub fn has_room(&self) -> bool {
        self.slots.iter().any(Option::is_none)
    }

    /// Whether no slot holds a session.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Adds a download (made with `connected` false; the pipeline hands it the connection);
    /// returns its slot, or gives it back when every slot is taken.
    ///
    /// # Errors
    /// The download itself, when there is no room.
    // The core has no heap to box it in, and the caller gets its session back.
    #[allow(clippy::result_large_err)]
    pub fn push(&mut self, download: Download<'a>) -> Result<usize, Download<'a>> {
        let Some(slot) = self.slots.iter().position(Option::is_none) else {
            return Err(download);
        };
        self.slots[slot] = Some(download);
        self.pushed[slot] = self.next_push;
        self.next_push += 1;
        Ok(slot)
    }

    /// The session in `slot`.
    pub fn session(&self, slot: usize) -> Option<&Download<'a>> {
        self.slots.get(slot)?.as_ref()
    }

    /// Takes the session out of `slot` (once [`Action::Done`], or to abandon it: a session
    /// abandoned while its request is on the connection takes the connection with it, and the
    /// requests behind it are sent again on a new one).
    pub fn remove(&mut self, slot: usize, now: Instant) -> Option<Download<'a>> {
        let download = self.slots.get_mut(slot)?.take()?;
        if self.connecting == Some(slot) {
            self.connecting = None;
        }
        if let Some(i) = self.position(slot) {
            self.line.copy_within(i + 1..self.line_len, i);
            self.line_len -= 1;
            self.drop_connection(now);
        }
        Some(download)
    }

    /// The slot being received (the oldest request on the connection).
    pub fn front(&self) -> Option<usize> {
        self.line[..self.line_len].first().copied()
    }

    /// Requests on the connection now.
    pub fn in_flight(&self) -> usize {
        self.line_len
    }

    /// What to do next; see the module doc. `may_send` says whether the driver can take
    /// another request now (room in its send buffer); while requests are in flight, `false`
    /// holds new ones back.
    pub fn poll(&mut self, now: Instant, may_send: bool) -> Action<'_> {
        if let Some(front) = self.front_mut() {
            front.handle_timeout(now);
        }
        self.advance(now);
        if self.connecting.is_some() {
            return Action::Connect;
        }
        // The sessions off the line: report the ended ones and retries, and find the oldest
        // one due to send.
        let mut wait: Option<Instant> = None;
        let mut due: Option<usize> = None;
        for slot in 0..N {
            if self.position(slot).is_some() {
                continue;
            }
            let Some(s) = self.slots[slot].as_mut() else {
                continue;
            };
            match s.poll_timeout() {
                Some(at) if at <= now => {
                    if due.is_none_or(|d| self.pushed[slot] < self.pushed[d]) {
                        due = Some(slot);
                    }
                }
                _ => match s.poll(now) {
                    session::Action::Done(result) => return Action::Done { slot, result },
                    session::Action::Retry(retry) => return Action::Retry { slot, retry },
                    session::Action::Wait(t) => wait = Some(wait.map_or(t, |w| w.min(t))),
                    // Not reached: a session off the line with a future deadline waits.
                    _ => {}
                },
            }
        }
        self.backoff = wait;
        let can_send = self.open && self.line_len < self.depth && (may_send || self.line_len == 0);
        if let Some(slot) = due.filter(|_| can_send || !self.open) {
            return self.start(slot, now);
        }
        if self.line_len > 0 {
            return Action::Receive;
        }
        match wait {
            Some(t) => {
                self.open = false;
                Action::Wait(t)
            }
            None if due.is_some() => Action::Wait(now),
            None => Action::Idle,
        }
    }

    /// Sends `slot`'s next request on the open connection, or asks for a connection for it.
    fn start(&mut self, slot: usize, now: Instant) -> Action<'_> {
        let Self {
            slots,
            line,
            line_len,
            open,
            used,
            connecting,
            ..
        } = self;
        let last = line[..*line_len].last().copied();
        let (Some(Some(s)), previous) = pair_mut(slots, slot, last) else {
            return Action::Idle;
        };
        s.set_connection(*open, *used);
        match s.poll(now) {
            session::Action::Send(request) => {
                if let Some(Some(p)) = previous {
                    p.handle_followed();
                }
                line[*line_len] = slot;
                *line_len += 1;
                *used = true;
                Action::Send { slot, request }
            }
            session::Action::Connect => {
                *connecting = Some(slot);
                Action::Connect
            }
            session::Action::Done(result) => Action::Done { slot, result },
            session::Action::Retry(retry) => Action::Retry { slot, retry },
            session::Action::Wait(t) => Action::Wait(t),
            // Not reached: a session off the line is not receiving.
            session::Action::Receive => Action::Wait(now),
        }
    }

    /// The next deadline: of the connect, the front response, or a session's backoff.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(slot) = self.connecting {
            return self.slots[slot].as_ref()?.poll_timeout();
        }
        let front = self.front().and_then(|slot| self.slots[slot].as_ref());
        match (front.and_then(Download::poll_timeout), self.backoff) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The connection asked for by [`Action::Connect`] is open.
    pub fn handle_connected(&mut self, now: Instant) {
        if let Some(slot) = self.connecting.take() {
            self.open = true;
            self.used = false;
            self.line_len = 0;
            if let Some(s) = self.slots[slot].as_mut() {
                s.handle_connected(now);
            }
        }
    }

    /// The connection asked for by [`Action::Connect`] could not be made: that session fails
    /// or backs off by its rules (the others try on their own turn).
    pub fn handle_connect_failed(&mut self, now: Instant, why: ConnectFailure) {
        if let Some(slot) = self.connecting.take() {
            if let Some(s) = self.slots[slot].as_mut() {
                s.handle_connect_failed(now, why);
            }
        }
    }

    /// Time has passed without news: fails the front response if it is late. (A connect that
    /// does not finish by its deadline is [`handle_connect_failed`](Self::handle_connect_failed)
    /// with [`ConnectFailure::TimedOut`].)
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(front) = self.front_mut() {
            front.handle_timeout(now);
        }
        self.advance(now);
    }

    /// The connection broke: the front response fails by its session's rules, the requests
    /// behind it are sent again on a new connection.
    pub fn handle_broken(&mut self, now: Instant) {
        if let Some(front) = self.front_mut() {
            front.handle_broken(now);
        }
        self.drop_connection(now);
    }

    /// The server closed the connection (every byte received having been fed): the front
    /// response ends or fails by its session's rules (a close before it began on a reused
    /// connection is sent again at once), the requests behind it are sent again on a new one.
    pub fn handle_eof(&mut self, now: Instant) {
        if let Some(front) = self.front_mut() {
            front.handle_eof(now);
        }
        self.advance(now);
        self.drop_connection(now);
    }

    /// Feeds the received bytes not yet consumed to the sessions, in the order their requests
    /// were sent; returns how many were consumed and what they meant. Call again with the rest
    /// until [`Event::NeedMore`].
    pub fn handle_input<'d>(&mut self, now: Instant, data: &'d [u8]) -> (usize, Event<'d>) {
        let mut consumed = 0;
        loop {
            self.advance(now);
            let rest = data.get(consumed..).unwrap_or_default();
            let Some(slot) = self.front() else {
                if !rest.is_empty() {
                    // Bytes no request asked for: the connection cannot be trusted.
                    self.drop_connection(now);
                }
                return (consumed, Event::NeedMore);
            };
            let Some(s) = self.slots[slot].as_mut() else {
                return (consumed, Event::NeedMore);
            };
            let (n, event) = s.handle_input(now, rest);
            consumed += n;
            match event {
                session::Event::NeedMore => return (consumed, Event::NeedMore),
                session::Event::Start(start) => return (consumed, Event::Start { slot, start }),
                session::Event::Body(data) => return (consumed, Event::Body { slot, data }),
                session::Event::Ended => {}
            }
        }
    }

    /// Takes the front off the line while its response is over (its session done, or between
    /// tries); the next one's time limits start. When the connection cannot carry more, every
    /// request still on it is unanswered.
    fn advance(&mut self, now: Instant) {
        while let Some(slot) = self.front() {
            let (receiving, keep_alive) = match &self.slots[slot] {
                Some(s) => (s.is_receiving(), s.keep_alive()),
                None => (false, true),
            };
            if receiving {
                return;
            }
            self.line.copy_within(1..self.line_len, 0);
            self.line_len -= 1;
            if !keep_alive {
                self.drop_connection(now);
                return;
            }
            if let Some(next) = self.front_mut() {
                next.handle_front(now);
            }
        }
    }

    /// The connection is gone: the requests on it are unanswered, to be sent again.
    fn drop_connection(&mut self, now: Instant) {
        for &slot in &self.line[..self.line_len] {
            if let Some(s) = self.slots[slot].as_mut() {
                s.handle_unanswered(now);
            }
        }
        self.line_len = 0;
        self.open = false;
        self.used = false;
    }

    fn position(&self, slot: usize) -> Option<usize> {
        self.line[..self.line_len].iter().position(|&s| s == slot)
    }

    fn front_mut(&mut self) -> Option<&mut Download<'a>> {
        let slot = self.front()?;
        self.slots[slot].as_mut()
    }
}

/// Mutable references to `slots[a]` and, when it is another slot, `slots[b]`.
fn pair_mut<T>(
    slots: &mut [Option<T>],
    a: usize,
    b: Option<usize>,
) -> (Option<&mut Option<T>>, Option<&mut Option<T>>) {
    match b {
        Some(b) if b != a && a < slots.len() && b < slots.len() => {
            let (lo, hi) = slots.split_at_mut(a.max(b));
            let (low, high) = (lo.get_mut(a.min(b)), hi.first_mut());
            if a < b {
                (low, high)
            } else {
                (high, low)
            }
        }
        _ => (slots.get_mut(a), None),
    }
}
