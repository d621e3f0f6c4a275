//! A caching edge: a [`FileSource`] that serves what its local source holds (flash on a board)
//! and fetches every other file from an upstream HTTP server, sans-IO.
//!
//! [`Upstream`] answers the server connection's `_waiting` calls; the fetching itself is the
//! driver's (on a board, `smoltcp::fetch::Fetcher`, feature `smoltcp`, runs the core's own
//! download [`session`](crate::client::session) over a smoltcp socket). Between them:
//!
//! ```text
//! request for /a (not local)  open_waiting -> a job for /a under ticket t: Pending(t)
//! driver                      take_order() -> GET /a (If-None-Match: the cached copy's ETag)
//!                             begin(t, ..), append(t, bytes).., finish(t, outcome)
//!                             poll_ready() -> t: Server::handle_ready(t)
//! the request again, with t   open_waiting -> Ok(the fetched file) or Err(Upstream(..))
//!                             -> the connection fills the cache from it (miss-stored), or
//!                                finds the cached copy a 304 confirmed (hit)
//! ```
//!
//! # Never stale
//!
//! Every request for an upstream file asks upstream: with `If-None-Match` when the cache holds
//! a copy fetched under that ETag (a `304` keeps it: `hit`), else unconditionally (a `200`
//! replaces it: `miss-stored`). So a change upstream is seen by the first request that
//! arrives after it, as the host server's `stat` per request sees a change on disk. A fetch
//! already in flight when a request arrives may have been answered before that request was
//! sent, so a request never joins a fetch that started earlier for another request: it waits
//! for its own (see [`Upstream::poll_ready`]).
//!
//! # Bounded
//!
//! One fetch at a time, its body in a fixed `BODY`-byte buffer, from which the connection fills
//! the cache (the cache's `max_entry_bytes` should be `BODY`). Upstream's `404` is passed on as
//! not found; any other failure is a `502`, or a `504` for a timeout.
//!
//! # Larger files stream
//!
//! A `200` whose `Content-Length` exceeds `BODY` is not buffered: [`Upstream::begin`] turns
//! the buffer into a ring, [`Upstream::poll_ready`] names the ticket at once, and the waiting
//! request opens the file ([`EdgeFile::Streamed`], with upstream's length, never cached:
//! `Cache-Status: satchel; fwd=bypass`). The connection reads it in order as it arrives
//! (`read_at` answers [`SourceError::WouldBlock`] until the bytes are in), and the driver
//! appends only as far as [`Upstream::room`] allows: upstream is read no faster than the
//! client takes the bytes, and the buffer never holds more than `BODY` of them.
//!
//! - Upstream dies or times out mid-body: the bytes received are sent, then `read_at` fails
//!   and the server aborts the connection before its `Content-Length`: never padded, never a
//!   response that ends cleanly short.
//! - One reader: another request for the file while it streams waits for a fetch of its own
//!   (the slot frees when the reader is done).
//! - `HEAD`, a `304` and a `416` answer from upstream's head and read nothing; the server's
//!   [`FileSource::close`] lets the fetch go at once. A `Range` is answered `206` from the
//!   full upstream body, the bytes before the range skipped as they arrive (the fetch is let
//!   go once the range is sent).
//! - The ETag clients see names upstream's strong ETag (or, without one, this fetch only:
//!   a client's validator then never matches, so it gets the whole file).
//! - A body of unannounced length (chunked, or ended by closing) longer than `BODY` is
//!   [`UpstreamError::TooLarge`], a `502` saying so: a response needs its length before its
//!   first byte, and a server never sends a body that looks complete but is not.
//!
//! Requests for other paths while a fetch runs wait under a retry ticket and try again when
//! it ends. The requests waiting for a fetch are answered (and the cache filled) in the round
//! of the driver's loop in which it ends; its body stays readable until the next fetch is
//! asked for (a response the cache could not store streams from it meanwhile, and is cut short
//! if the next fetch takes the buffer first). A streamed body keeps the slot until its reader
//! is done (the server's send timeout bounds a stalled one).

use core::cell::RefCell;

use crate::cache::ContentCache;
use crate::http::date::parse_http_date;
use crate::listing::ListingView;
use crate::path::SafePath;
use crate::source::{
    FileKind, FileSource, FileVersion, Metadata, SourceError, Ticket, UpstreamError,
};

/// The longest path (decoded, below the root) fetched from upstream.
pub const MAX_UPSTREAM_PATH: usize = 128;
/// The longest upstream `ETag` kept for revalidation (satchel's content tags are 54 bytes).
pub const MAX_ETAG: usize = 96;
/// The buffer an [`Order::target`] needs: the path percent-encoded, plus the leading `/`.
pub const MAX_UPSTREAM_TARGET: usize = 3 * MAX_UPSTREAM_PATH + 1;

/// The `id` of every upstream file's [`FileVersion`] (its `stamp` is a hash of its ETag and
/// bytes): distinct from the small ids of a static source.
const UPSTREAM_ID: u64 = 1 << 63;

/// A file of an [`Upstream`] source: one of the local source's, or a fetched one (named by the
/// ticket it was fetched under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeFile<F> {
    /// From the local source.
    Local(F),
    /// Fetched from upstream under this ticket; readable while the fetch's body is kept.
    Fetched(Ticket),
    /// Streaming from upstream under this ticket (larger than the fetch buffer): read once,
    /// in order, as it arrives; never cached.
    Streamed(Ticket),
}

/// How a fetch ended, as the driver reports it to [`Upstream::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A `200` whose whole body went through [`Upstream::append`].
    Fetched,
    /// A `304`: the cached copy is current.
    NotModified,
    /// Upstream has no such file (`404`).
    NotFound,
    /// It failed.
    Failed(UpstreamError),
}

/// A fetch for the driver to make (from [`Upstream::take_order`]).
#[derive(Debug, Clone, Copy)]
pub struct Order {
    /// The ticket to report under.
    pub ticket: Ticket,
    path: [u8; MAX_UPSTREAM_PATH],
    path_len: usize,
    etag: [u8; MAX_ETAG],
    etag_len: usize,
}

impl Order {
    /// The path asked for (decoded, below the root, no leading `/`).
    pub fn path(&self) -> &[u8] {
        self.path.get(..self.path_len).unwrap_or_default()
    }

    /// The request target: `/` + the path percent-encoded, in `buf`; `None` if it does not fit.
    pub fn target<'b>(&self, buf: &'b mut [u8]) -> Option<&'b str> {
        let mut w = Writer { buf, len: 0 };
        core::fmt::Write::write_str(&mut w, "/").ok()?;
        crate::listing::percent_encode_path(self.path(), &mut w).ok()?;
        let Writer { buf, len } = w;
        core::str::from_utf8(buf.get(..len)?).ok()
    }

    /// The `If-None-Match` to send: the ETag the cached copy came with, when the cache holds
    /// one.
    pub fn if_none_match(&self) -> Option<&str> {
        let tag = self.etag.get(..self.etag_len).filter(|t| !t.is_empty())?;
        core::str::from_utf8(tag).ok()
    }
}

/// A `core::fmt::Write` into a byte slice that fails when full.
struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl core::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Where the one fetch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No fetch.
    Idle,
    /// Asked for, not yet taken by the driver.
    Ordered,
    /// Taken by the driver.
    Running,
    /// Over; `announced` once [`Upstream::poll_ready`] named its ticket.
    Done { outcome: Outcome, announced: bool },
}

/// A fetch whose body is larger than the buffer: the buffer is a ring between the driver,
/// which appends as far as [`Upstream::room`] allows, and the one connection reading it.
/// The byte at file offset `o` sits at `body[o % BODY]`; the ring holds `base..filled`.
#[derive(Debug, Clone, Copy)]
struct Stream {
    /// The length upstream announced (the response's `Content-Length`).
    total: u64,
    /// Body bytes received so far.
    filled: u64,
    /// The reader's position: bytes before it are done with (a range's first byte skips the
    /// bytes before it as they arrive).
    base: u64,
    /// The version's stamp (upstream's strong ETag hashed, else its date and the ticket).
    stamp: u64,
    /// Named to the waiting requests by [`Upstream::poll_ready`].
    announced: bool,
    /// A connection opened it (one may: a second request waits for a fetch of its own).
    claimed: bool,
    /// The connection let it go ([`FileSource::close`]).
    released: bool,
}

/// What is known of a file fetched before: the version it was cached under and its ETag.
#[derive(Debug, Clone, Copy)]
struct Known {
    path: [u8; MAX_UPSTREAM_PATH],
    path_len: usize,
    etag: [u8; MAX_ETAG],
    etag_len: usize,
    meta: Metadata,
}

impl Known {
    const EMPTY: Self = Self {
        path: [0; MAX_UPSTREAM_PATH],
        path_len: 0,
        etag: [0; MAX_ETAG],
        etag_len: 0,
        meta: Metadata {
            kind: FileKind::File,
            version: FileVersion {
                len: 0,
                stamp: 0,
                id: 0,
            },
            modified: None,
        },
    };

    fn path(&self) -> &[u8] {
        self.path.get(..self.path_len).unwrap_or_default()
    }
}

struct State<const BODY: usize, const KNOWN: usize> {
    next_ticket: u64,
    phase: Phase,
    /// The fetch's ticket, path, and its response so far.
    ticket: Ticket,
    path: [u8; MAX_UPSTREAM_PATH],
    path_len: usize,
    /// Whether the fetch is conditional (on the known entry for its path).
    conditional: bool,
    etag: [u8; MAX_ETAG],
    etag_len: usize,
    modified: Option<u64>,
    body: [u8; BODY],
    body_len: usize,
    /// The ticket of the fetch whose body the buffer holds (until the next fetch is asked for).
    held: Option<Ticket>,
    /// Where a request for another path than the fetch's waits: named by `poll_ready` once
    /// the fetch is over.
    retry: Option<Ticket>,
    /// The fetch's body streams through the buffer (it is larger).
    stream: Option<Stream>,
    known: [Known; KNOWN],
    next_known: usize,
}

impl<const BODY: usize, const KNOWN: usize> State<BODY, KNOWN> {
    fn path(&self) -> &[u8] {
        self.path.get(..self.path_len).unwrap_or_default()
    }

    fn new_ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    fn known(&self, path: &[u8]) -> Option<&Known> {
        self.known
            .iter()
            .find(|k| k.path_len > 0 && k.path() == path)
    }

    /// The metadata of the fetched body (its version hashes the ETag and the bytes), or of
    /// the streamed one (upstream's length; see [`Stream::stamp`]).
    fn fetched_meta(&self) -> Metadata {
        let body = self.body.get(..self.body_len).unwrap_or_default();
        let etag = self.etag.get(..self.etag_len).unwrap_or_default();
        let (len, stamp) = match self.stream {
            Some(s) => (s.total, s.stamp),
            None => (self.body_len as u64, fnv1a(fnv1a(FNV_OFFSET, etag), body)),
        };
        Metadata {
            kind: FileKind::File,
            version: FileVersion {
                len,
                stamp,
                id: UPSTREAM_ID,
            },
            modified: self.modified,
        }
    }

    /// The stream of `ticket`'s fetch, if its body streams.
    fn stream_of(&mut self, ticket: Ticket) -> Option<&mut Stream> {
        match self.ticket == ticket {
            true => self.stream.as_mut(),
            false => None,
        }
    }

    /// Whether a connection still reads the stream: the fetch slot stays taken (the next
    /// fetch would overwrite the bytes it has yet to send).
    fn streaming(&self) -> bool {
        self.stream.is_some_and(|s| s.claimed && !s.released)
    }

    /// Reads the streamed body at `offset` (see [`FileSource::read_at`]).
    fn read_stream(
        &mut self,
        ticket: Ticket,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, SourceError> {
        let over = self.phase != Phase::Running;
        let Some(s) = self.stream_of(ticket) else {
            return Err(SourceError::Io);
        };
        // Gone (read before, and the ring moved on), or let go.
        if offset < s.base || s.released {
            return Err(SourceError::Io);
        }
        s.base = offset;
        let held = s.filled.saturating_sub(offset);
        if held == 0 {
            return match (offset >= s.total, over) {
                (true, _) => Ok(0),
                // The fetch ended short (failed): what follows never comes.
                (false, true) => Err(SourceError::Io),
                (false, false) => Err(SourceError::WouldBlock),
            };
        }
        let n = usize::try_from(held).map_or(buf.len(), |h| h.min(buf.len()));
        let at = (offset % BODY as u64) as usize;
        let first = n.min(BODY - at);
        buf[..first].copy_from_slice(&self.body[at..at + first]);
        buf[first..n].copy_from_slice(&self.body[..n - first]);
        Ok(n)
    }

    /// Appends streamed body bytes (the driver keeps within [`Upstream::room`]); bytes before
    /// the reader's position are skipped.
    fn append_stream(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        let Some(s) = self.stream.as_mut() else {
            return Err(UpstreamError::Broken);
        };
        let n = bytes.len() as u64;
        let end = s.filled + n;
        if end > s.base + BODY as u64 || end > s.total {
            return Err(UpstreamError::BadAnswer);
        }
        let skip = usize::try_from(s.base.saturating_sub(s.filled))
            .map_or(bytes.len(), |k| k.min(bytes.len()));
        let mut at = ((s.filled + skip as u64) % BODY as u64) as usize;
        s.filled = end;
        for chunk in bytes[skip..].chunks(BODY) {
            let first = chunk.len().min(BODY - at);
            self.body[at..at + first].copy_from_slice(&chunk[..first]);
            self.body[..chunk.len() - first].copy_from_slice(&chunk[first..]);
            at = (at + chunk.len()) % BODY;
        }
        Ok(())
    }

    /// Remembers the fetched file's ETag and version for the next request's revalidation.
    fn remember(&mut self) {
        let meta = self.fetched_meta();
        let path_len = self.path_len;
        let slot = match self.known.iter().position(|k| k.path() == self.path()) {
            Some(i) => i,
            None => {
                let i = self.next_known % KNOWN.max(1);
                self.next_known = self.next_known.wrapping_add(1);
                i
            }
        };
        let (path, etag, etag_len) = (self.path, self.etag, self.etag_len);
        if let Some(k) = self.known.get_mut(slot) {
            *k = Known {
                path,
                path_len,
                etag,
                etag_len,
                meta,
            };
        }
    }

    fn forget(&mut self, path: &[u8]) {
        for k in self.known.iter_mut().filter(|k| k.path() == path) {
            k.path_len = 0;
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A local source in front of an upstream HTTP server, with the site's cache `C` (see the
/// [module docs](self)). `BODY`: the largest file fetched and cached (a larger one streams through the buffer);
/// `KNOWN`: how many fetched files'
/// ETags are kept for revalidation (the cache's entry count).
pub struct Upstream<'c, L, C, const BODY: usize, const KNOWN: usize> {
    local: L,
    cache: &'c C,
    state: RefCell<State<BODY, KNOWN>>,
}

impl<'c, L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize>
    Upstream<'c, L, C, BODY, KNOWN>
{
    /// An edge serving `local`'s files itself and fetching the rest; `cache` is the site's.
    pub const fn new(local: L, cache: &'c C) -> Self {
        Self {
            local,
            cache,
            state: RefCell::new(State {
                next_ticket: 0,
                phase: Phase::Idle,
                ticket: Ticket(0),
                path: [0; MAX_UPSTREAM_PATH],
                path_len: 0,
                conditional: false,
                etag: [0; MAX_ETAG],
                etag_len: 0,
                modified: None,
                body: [0; BODY],
                body_len: 0,
                held: None,
                retry: None,
                stream: None,
                known: [Known::EMPTY; KNOWN],
                next_known: 0,
            }),
        }
    }

    /// The local source.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// The fetch to make now, if one was asked for: the driver makes it and reports through
    /// [`begin`](Self::begin), [`append`](Self::append) and [`finish`](Self::finish).
    pub fn take_order(&self) -> Option<Order> {
        let mut st = self.state.try_borrow_mut().ok()?;
        if st.phase != Phase::Ordered {
            return None;
        }
        st.phase = Phase::Running;
        let mut order = Order {
            ticket: st.ticket,
            path: st.path,
            path_len: st.path_len,
            etag: [0; MAX_ETAG],
            etag_len: 0,
        };
        if st.conditional {
            if let Some(k) = st.known(st.path()) {
                order.etag = k.etag;
                order.etag_len = k.etag_len;
            }
        }
        Some(order)
    }

    /// The `200` for `ticket` starts: `total` is its announced length, `etag` and
    /// `last_modified` its validators.
    ///
    /// A body longer than `BODY` streams: [`poll_ready`](Self::poll_ready) names the ticket
    /// at once, the waiting request opens the file and reads the body as it arrives, and the
    /// driver appends only as far as [`room`](Self::room) allows (the client's pace).
    ///
    /// # Errors
    /// [`UpstreamError::TooLarge`] when the length is not announced (chunked, or ended by
    /// closing) and the body turns out longer than `BODY` in [`append`](Self::append): a
    /// response needs its length before its first byte.
    pub fn begin(
        &self,
        ticket: Ticket,
        total: Option<u64>,
        etag: Option<&[u8]>,
        last_modified: Option<&[u8]>,
    ) -> Result<(), UpstreamError> {
        let mut st = self.running(ticket)?;
        st.body_len = 0;
        // A tag too long to keep is not kept: the next request asks unconditionally.
        let tag = etag.filter(|t| t.len() <= MAX_ETAG).unwrap_or_default();
        st.etag[..tag.len()].copy_from_slice(tag);
        st.etag_len = tag.len();
        st.modified = last_modified.and_then(parse_http_date);
        if let Some(total) = total.filter(|&t| t > BODY as u64) {
            // The version clients see (the ETag the server makes of it): upstream's strong
            // ETag names these bytes; without one, its date and this fetch's ticket, which
            // matches no earlier fetch's (a client's validator then never matches: a full 200).
            let stamp = match tag {
                t if !t.is_empty() && !t.starts_with(b"W/") => fnv1a(FNV_OFFSET, t),
                _ => fnv1a(
                    fnv1a(FNV_OFFSET, &ticket.0.to_le_bytes()),
                    &st.modified.unwrap_or(0).to_le_bytes(),
                ),
            };
            st.stream = Some(Stream {
                total,
                filled: 0,
                base: 0,
                stamp: fnv1a(stamp, &total.to_le_bytes()),
                announced: false,
                claimed: false,
                released: false,
            });
            // The copy cached before (if any) is not the current version.
            let (path, len) = (st.path, st.path_len);
            st.forget(&path[..len]);
        }
        Ok(())
    }

    /// How many body bytes [`append`](Self::append) takes now for `ticket`: unbounded for a
    /// body that fits the buffer, the ring's free room for a streamed one (none until its
    /// reader takes bytes: the driver stops reading from upstream meanwhile).
    ///
    /// # Errors
    /// The fetch is no longer wanted: its reader let the stream go (or the fetch is not
    /// running). The driver ends it.
    pub fn room(&self, ticket: Ticket) -> Result<usize, UpstreamError> {
        let Ok(mut st) = self.running(ticket) else {
            return Err(UpstreamError::Broken);
        };
        match st.stream_of(ticket) {
            None => Ok(usize::MAX),
            Some(s) if s.released => Err(UpstreamError::Broken),
            Some(s) => {
                let room = (s.base + BODY as u64).saturating_sub(s.filled);
                Ok(usize::try_from(room).unwrap_or(usize::MAX))
            }
        }
    }

    /// Body bytes of the `200` for `ticket`.
    ///
    /// # Errors
    /// [`UpstreamError::TooLarge`] when they overflow `BODY` (a body of unannounced length);
    /// [`UpstreamError::BadAnswer`] when a streamed body's exceed [`room`](Self::room) or its
    /// announced length.
    pub fn append(&self, ticket: Ticket, bytes: &[u8]) -> Result<(), UpstreamError> {
        let mut st = self.running(ticket)?;
        if st.stream.is_some() {
            return st.append_stream(bytes);
        }
        let start = st.body_len;
        let end = start
            .checked_add(bytes.len())
            .filter(|&e| e <= BODY)
            .ok_or(UpstreamError::TooLarge)?;
        st.body[start..end].copy_from_slice(bytes);
        st.body_len = end;
        Ok(())
    }

    /// The fetch for `ticket` is over. [`poll_ready`](Self::poll_ready) then names the ticket.
    pub fn finish(&self, ticket: Ticket, outcome: Outcome) {
        let Ok(mut st) = self.running(ticket) else {
            return;
        };
        match outcome {
            // Streamed: not kept (its reader holds the slot until it is done).
            Outcome::Fetched if st.stream.is_some() => {}
            Outcome::Fetched => {
                st.remember();
                st.held = Some(ticket);
            }
            Outcome::NotModified => {}
            Outcome::NotFound | Outcome::Failed(_) => {
                let path = st.path;
                let len = st.path_len;
                st.forget(&path[..len]);
            }
        }
        st.phase = Phase::Done {
            outcome,
            announced: false,
        };
    }

    /// The ticket whose requests may be answered now, for the server's `handle_ready`; call it
    /// once per round of the driver's loop, before the server's poll. A fetch just over names
    /// its own ticket; one round later its body is let go, and the requests that waited for
    /// another path are named (they try again, and one of them starts the next fetch).
    pub fn poll_ready(&self) -> Option<Ticket> {
        let mut st = self.state.try_borrow_mut().ok()?;
        if let Some(s) = st.stream.as_mut().filter(|s| !s.announced) {
            s.announced = true;
            return Some(st.ticket);
        }
        match st.phase {
            Phase::Done {
                outcome,
                announced: false,
            } => {
                st.phase = Phase::Done {
                    outcome,
                    announced: true,
                };
                Some(st.ticket)
            }
            // A connection still sends the streamed body from the buffer.
            Phase::Done { .. } if st.streaming() => None,
            Phase::Done { .. } | Phase::Idle => {
                st.phase = Phase::Idle;
                st.retry.take()
            }
            Phase::Ordered | Phase::Running => None,
        }
    }

    /// Whether a fetch is asked for or running (the driver may not sleep long).
    pub fn busy(&self) -> bool {
        self.state
            .try_borrow()
            .is_ok_and(|st| matches!(st.phase, Phase::Ordered | Phase::Running))
    }

    fn running(
        &self,
        ticket: Ticket,
    ) -> Result<core::cell::RefMut<'_, State<BODY, KNOWN>>, UpstreamError> {
        let st = self
            .state
            .try_borrow_mut()
            .map_err(|_| UpstreamError::Broken)?;
        match st.phase {
            Phase::Running if st.ticket == ticket => Ok(st),
            _ => Err(UpstreamError::Broken),
        }
    }

    /// Asks for a fetch of `path` (conditional when the cache holds the copy the last fetch
    /// stored); the request waits under the new ticket.
    fn order(&self, st: &mut State<BODY, KNOWN>, path: &[u8]) -> SourceError {
        let conditional = st
            .known(path)
            .is_some_and(|k| self.cache.digest(path, &k.meta.version).is_some());
        let ticket = st.new_ticket();
        st.ticket = ticket;
        st.path[..path.len()].copy_from_slice(path);
        st.path_len = path.len();
        st.conditional = conditional;
        st.etag_len = 0;
        st.body_len = 0;
        st.held = None;
        st.stream = None;
        st.modified = None;
        st.phase = Phase::Ordered;
        SourceError::Pending(ticket)
    }

    /// A request for `path`, with the ticket it waited under.
    fn fetched(
        &self,
        path: &[u8],
        wait: Option<Ticket>,
    ) -> Result<(EdgeFile<L::File>, Metadata), SourceError> {
        if path.len() > MAX_UPSTREAM_PATH {
            return Err(SourceError::Upstream(UpstreamError::PathTooLong));
        }
        let mut st = self.state.try_borrow_mut().map_err(|_| SourceError::Io)?;
        let mine = wait.is_some_and(|t| t == st.ticket) && st.path() == path;
        let phase = st.phase;
        if let Some(s) = st.stream.as_mut().filter(|s| mine && !s.claimed) {
            // Streaming: the first request opens it; upstream's failure before that is its
            // answer. Another request for it waits below for a fetch of its own.
            match phase {
                Phase::Running => {
                    s.claimed = true;
                    return Ok((EdgeFile::Streamed(st.ticket), st.fetched_meta()));
                }
                Phase::Done {
                    outcome: Outcome::Failed(e),
                    ..
                } => return Err(SourceError::Upstream(e)),
                _ => {}
            }
        }
        match phase {
            _ if st.stream.is_some() => {}
            Phase::Done { outcome, .. } if mine => match outcome {
                Outcome::Fetched => return Ok((EdgeFile::Fetched(st.ticket), st.fetched_meta())),
                Outcome::NotModified => {
                    let known = st.known(path).map(|k| k.meta);
                    match known {
                        // The copy is still cached: the connection finds it there.
                        Some(meta) if self.cache.digest(path, &meta.version).is_some() => {
                            return Ok((EdgeFile::Fetched(st.ticket), meta))
                        }
                        // Evicted since the request was sent: fetch it whole.
                        _ => {
                            st.forget(path);
                            return Err(self.order(&mut st, path));
                        }
                    }
                }
                Outcome::NotFound => return Err(SourceError::NotFound),
                Outcome::Failed(e) => return Err(SourceError::Upstream(e)),
            },
            // Its fetch is under way, or asked for and not yet sent (which any request for the
            // path may join): wait for it.
            Phase::Ordered | Phase::Running if mine => return Err(SourceError::Pending(st.ticket)),
            Phase::Ordered if st.path() == path => return Err(SourceError::Pending(st.ticket)),
            _ => {}
        }
        if phase == Phase::Idle {
            return Err(self.order(&mut st, path));
        }
        // The fetch slot is taken (by another path, or by a fetch that may have been
        // answered before this request was sent): wait for the retry.
        let ticket = match st.retry {
            Some(t) => t,
            None => {
                let t = st.new_ticket();
                st.retry = Some(t);
                t
            }
        };
        Err(SourceError::Pending(ticket))
    }
}

impl<L: FileSource, C: ContentCache, const BODY: usize, const KNOWN: usize> FileSource
    for Upstream<'_, L, C, BODY, KNOWN>
{
    type File = EdgeFile<L::File>;
    type Listing = L::Listing;

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        self.local.metadata(path)
    }

    /// The local source's answer; for a path it does not hold, `WouldBlock`: the open asks
    /// upstream.
    fn probe(
        &self,
        path: &SafePath<'_>,
        arrived: crate::source::Arrival,
    ) -> Result<Metadata, SourceError> {
        match self.local.probe(path, arrived) {
            Err(SourceError::NotFound) => Err(SourceError::WouldBlock),
            other => other,
        }
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(Self::File, Metadata), SourceError> {
        self.local.open(path).map(|(f, m)| (EdgeFile::Local(f), m))
    }

    fn open_waiting(
        &self,
        path: &SafePath<'_>,
        wait: Option<Ticket>,
    ) -> Result<(Self::File, Metadata), SourceError> {
        match self.local.open(path) {
            Ok((f, m)) => Ok((EdgeFile::Local(f), m)),
            Err(SourceError::NotFound) => self.fetched(path.as_bytes(), wait),
            Err(e) => Err(e),
        }
    }

    /// Local files are not copied into the cache (they are already at hand); fetched ones are.
    fn cacheable(&self, file: &Self::File) -> bool {
        match file {
            EdgeFile::Local(_) | EdgeFile::Streamed(_) => false,
            EdgeFile::Fetched(_) => true,
        }
    }

    /// A streamed file let go: its fetch ends (the driver sees [`Upstream::room`] fail).
    fn close(&self, file: &Self::File) {
        match file {
            EdgeFile::Local(f) => self.local.close(f),
            EdgeFile::Fetched(_) => {}
            EdgeFile::Streamed(t) => {
                if let Ok(mut st) = self.state.try_borrow_mut() {
                    if let Some(s) = st.stream_of(*t) {
                        s.released = true;
                    }
                }
            }
        }
    }

    fn file_metadata(&self, file: &Self::File) -> Result<Metadata, SourceError> {
        match file {
            EdgeFile::Local(f) => self.local.file_metadata(f),
            EdgeFile::Fetched(t) => {
                let st = self.state.try_borrow().map_err(|_| SourceError::Io)?;
                match st.held == Some(*t) {
                    true => Ok(st.fetched_meta()),
                    false => Err(SourceError::Io),
                }
            }
            EdgeFile::Streamed(t) => {
                let st = self.state.try_borrow().map_err(|_| SourceError::Io)?;
                match st.ticket == *t && st.stream.is_some() {
                    true => Ok(st.fetched_meta()),
                    false => Err(SourceError::Io),
                }
            }
        }
    }

    fn read_at(
        &self,
        file: &Self::File,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, SourceError> {
        match file {
            EdgeFile::Local(f) => self.local.read_at(f, offset, buf),
            EdgeFile::Fetched(t) => {
                let st = self.state.try_borrow().map_err(|_| SourceError::Io)?;
                // The body was let go (the next fetch took the buffer): the read fails rather
                // than reading other bytes.
                if st.held != Some(*t) {
                    return Err(SourceError::Io);
                }
                let body = st.body.get(..st.body_len).unwrap_or_default();
                let start = usize::try_from(offset).map_or(body.len(), |o| o.min(body.len()));
                let n = buf.len().min(body.len() - start);
                buf[..n].copy_from_slice(&body[start..start + n]);
                Ok(n)
            }
            EdgeFile::Streamed(t) => self
                .state
                .try_borrow_mut()
                .map_err(|_| SourceError::Io)?
                .read_stream(*t, offset, buf),
        }
    }

    fn listing(&self, path: &SafePath<'_>, view: ListingView) -> Result<L::Listing, SourceError> {
        self.local.listing(path, view)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The edge without a network: a fake upstream (a table of files the test changes) answers
    //! the source's orders as a driver would, and connections are driven as a server's poll
    //! loop drives them, on a fake clock.

    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    use super::*;
    use crate::cache::{
        ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
    };
    use crate::http::response::CacheStatus;
    use crate::serve::{Config, Connection, Event, SiteParts};
    use crate::source::{Arrival, StaticFile, StaticSource};
    use crate::time::Instant;

    pub(crate) type Board = ArrayCache<4, 8, 8192>;
    /// The fetch buffer of the tests' edges.
    pub(crate) const BODY: usize = 2048;
    type Edge = Upstream<'static, StaticSource, RefCell<Board>, BODY, 4>;

    static FLASH: &[StaticFile] = &[StaticFile {
        path: "hello.txt",
        data: b"hello from flash\n",
        modified: None,
    }];

    type EdgeSite = SiteParts<Edge, &'static RefCell<Board>>;

    /// A board's cache that stores any file a fetch can hold on its first request (also the
    /// fetcher's tests' caches).
    pub(crate) fn edge_cache() -> Board {
        let store = ArenaStore::new([0u8; 8192], [const { Region::new() }; 4]).unwrap();
        Cache::new(
            store,
            [const { Slot::new() }; 4],
            [const { Bucket::new() }; 8],
            CacheConfig {
                max_entry_bytes: BODY,
                large_bytes: BODY,
                small_percent: 10,
            },
        )
        .unwrap()
    }

    fn site() -> &'static EdgeSite {
        let cache: &'static RefCell<Board> = Box::leak(Box::new(RefCell::new(edge_cache())));
        Box::leak(Box::new(SiteParts::new(
            Upstream::new(StaticSource::new(FLASH), cache),
            cache,
            Config::host(),
        )))
    }

    /// What the fake upstream does with the next order.
    #[derive(Clone, Copy)]
    enum Answer {
        /// Serve its files (`304` when the ETag matches).
        Serve,
        /// Fail as given.
        Fail(UpstreamError),
        /// Announce a length, then send more bytes than the buffer holds without it.
        Chunked,
    }

    /// Upstream's files: path, ETag, bytes; and the requests it saw (path, If-None-Match).
    #[derive(Default)]
    struct Fake {
        files: Vec<(String, String, Vec<u8>)>,
        seen: Vec<(String, Option<String>)>,
    }

    impl Fake {
        fn put(&mut self, path: &str, etag: &str, bytes: &[u8]) {
            self.files.retain(|(p, _, _)| p != path);
            self.files.push((path.into(), etag.into(), bytes.to_vec()));
        }

        /// Answers the source's order, if any; returns whether there was one.
        fn answer(&mut self, edge: &Edge, how: Answer) -> bool {
            let Some(order) = edge.take_order() else {
                return false;
            };
            let path = String::from_utf8(order.path().to_vec()).unwrap();
            let inm = order.if_none_match().map(String::from);
            let mut target = [0u8; MAX_UPSTREAM_TARGET];
            assert_eq!(order.target(&mut target), Some(&*std::format!("/{path}")));
            self.seen.push((path.clone(), inm.clone()));
            let t = order.ticket;
            let outcome = match how {
                Answer::Fail(e) => Outcome::Failed(e),
                Answer::Chunked => match edge.begin(t, None, Some(b"\"c\""), None) {
                    Err(e) => Outcome::Failed(e),
                    Ok(()) => {
                        match (0..=BODY / 100).try_for_each(|_| edge.append(t, &[1u8; 100])) {
                            Err(e) => Outcome::Failed(e),
                            Ok(()) => Outcome::Fetched,
                        }
                    }
                },
                Answer::Serve => match self.files.iter().find(|(p, _, _)| *p == path) {
                    None => Outcome::NotFound,
                    Some((_, etag, _)) if inm.as_deref() == Some(etag) => Outcome::NotModified,
                    Some((_, etag, bytes)) => {
                        let lm = b"Tue, 14 Nov 2023 22:13:20 GMT";
                        let started = edge.begin(
                            t,
                            Some(bytes.len() as u64),
                            Some(etag.as_bytes()),
                            Some(lm),
                        );
                        match started.and_then(|()| edge.append(t, bytes)) {
                            Ok(()) => Outcome::Fetched,
                            Err(e) => Outcome::Failed(e),
                        }
                    }
                },
            };
            edge.finish(t, outcome);
            true
        }
    }

    type Conn = Connection<'static, EdgeSite, 4096>;

    /// A client's connection as a server's loop drives it.
    struct Client {
        conn: Conn,
        held: Vec<u8>,
        out: Vec<u8>,
        log: Vec<(u16, Option<CacheStatus>)>,
        /// When each response started, as its access-log line says.
        starts: Vec<Instant>,
        /// The driver's clock.
        now: Instant,
        /// The most body bytes one pump sends (a slow client's socket takes few).
        chunk: usize,
        /// The response was cut short (the driver aborted the connection).
        aborted: bool,
    }

    impl Client {
        fn new(site: &'static EdgeSite) -> Self {
            Self {
                conn: Conn::new(site, Instant::from_millis(0)),
                held: Vec::new(),
                out: Vec::new(),
                log: Vec::new(),
                starts: Vec::new(),
                now: Instant::from_millis(1),
                chunk: usize::MAX,
                aborted: false,
            }
        }

        fn pump(&mut self, site: &EdgeSite, bytes: &str) {
            let t = self.now;
            self.held.extend_from_slice(bytes.as_bytes());
            loop {
                let n = self.conn.handle_input(t, Arrival::UNKNOWN, &self.held);
                self.held.drain(..n);
                let mut moved = n > 0;
                while let Some(event) = self.conn.poll_event() {
                    if let Event::Response(info) = event {
                        self.log.push((info.status.as_u16(), info.cache));
                        self.starts.push(info.started);
                    }
                }
                while let Some(tx) = self.conn.poll_transmit() {
                    let len = tx.head.len() + (tx.body.len() as usize).min(self.chunk);
                    let mut buf = std::vec![0u8; len];
                    let Ok(n) = tx.copy_to(site, &mut buf) else {
                        // As a driver does: never a byte more.
                        self.conn.abort();
                        self.aborted = true;
                        break;
                    };
                    self.out.extend_from_slice(&buf[..n]);
                    // Nothing to send yet (a stream waits for upstream): the next pump.
                    let stalled = n == 0 && !tx.is_empty();
                    self.conn.transmitted(t, n);
                    while self.conn.poll_event().is_some() {}
                    if stalled {
                        break;
                    }
                    if self.chunk < usize::MAX {
                        // A slow client: one piece per pump.
                        return;
                    }
                    moved = true;
                }
                if !moved {
                    break;
                }
            }
        }

        /// The last response: status line, head, body.
        fn last(&self) -> (String, String, Vec<u8>) {
            let text = String::from_utf8_lossy(&self.out).into_owned();
            let start = text.rfind("HTTP/1.1 ").unwrap();
            let end = start + text[start..].find("\r\n\r\n").unwrap();
            let head = String::from(&text[start..end]);
            let status = String::from(head.lines().next().unwrap());
            (status, head, self.out[end + 4..].to_vec())
        }
    }

    fn get(path: &str) -> String {
        std::format!("GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n")
    }

    /// One round of a board's loop after upstream answered: the ready ticket to the waiting
    /// connections, which answer.
    fn round(site: &EdgeSite, clients: &mut [&mut Client]) {
        if let Some(t) = site.source.poll_ready() {
            for c in clients.iter_mut() {
                c.conn.handle_ready(t);
            }
        }
        for c in clients.iter_mut() {
            c.pump(site, "");
        }
    }

    /// A request for `path` through one connection, upstream answering `how`.
    fn fetch(site: &'static EdgeSite, fake: &mut Fake, path: &str, how: Answer) -> Client {
        let mut c = Client::new(site);
        c.pump(site, &get(path));
        assert!(c.conn.waiting_for().is_some(), "{path} waits for upstream");
        assert!(fake.answer(&site.source, how), "an order for {path}");
        round(site, &mut [&mut c]);
        round(site, &mut [&mut c]);
        c
    }

    fn cache_status(head: &str) -> Option<&str> {
        head.lines().find_map(|l| l.strip_prefix("Cache-Status: "))
    }

    #[test]
    fn miss_then_hit_revalidated_then_a_change_is_never_stale() {
        let site = site();
        let mut fake = Fake::default();
        fake.put("a.txt", "\"v1\"", b"first version\n");

        let c = fetch(site, &mut fake, "/a.txt", Answer::Serve);
        let (status, head, body) = c.last();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"first version\n");
        assert_eq!(cache_status(&head), Some("satchel; fwd=miss; stored"));
        assert!(
            head.contains("Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT"),
            "{head}"
        );
        assert_eq!(
            fake.seen.last().unwrap().1,
            None,
            "the first fetch is unconditional"
        );

        // Asked again: upstream is asked with the ETag, says 304, the cached copy is sent.
        let c = fetch(site, &mut fake, "/a.txt", Answer::Serve);
        let (status, head, body) = c.last();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"first version\n");
        assert_eq!(cache_status(&head), Some("satchel; hit"));
        assert_eq!(fake.seen.last().unwrap().1.as_deref(), Some("\"v1\""));
        assert_eq!(c.log, [(200, Some(CacheStatus::Hit))]);

        // Changed upstream: the next request has the new bytes.
        fake.put("a.txt", "\"v2\"", b"second, longer version\n");
        let c = fetch(site, &mut fake, "/a.txt", Answer::Serve);
        let (_, head, body) = c.last();
        assert_eq!(body, b"second, longer version\n");
        assert_eq!(cache_status(&head), Some("satchel; fwd=miss; stored"));
        // Same length, other bytes, other ETag: new bytes too.
        fake.put("a.txt", "\"v3\"", b"second, LONGER version\n");
        let c = fetch(site, &mut fake, "/a.txt", Answer::Serve);
        assert_eq!(c.last().2, b"second, LONGER version\n");
        let c = fetch(site, &mut fake, "/a.txt", Answer::Serve);
        assert_eq!(c.last().2, b"second, LONGER version\n");
        assert_eq!(cache_status(&c.last().1), Some("satchel; hit"));
    }

    #[test]
    fn the_access_log_counts_the_wait_for_upstream() {
        let site = site();
        let mut fake = Fake::default();
        fake.put("a.txt", "\"a\"", b"aaa\n");
        let mut c = Client::new(site);
        c.now = Instant::from_millis(100);
        c.pump(site, &get("/a.txt"));
        c.now = Instant::from_millis(900);
        fake.answer(&site.source, Answer::Serve);
        round(site, &mut [&mut c]);
        assert_eq!(c.last().2, b"aaa\n");
        assert_eq!(
            c.starts,
            [Instant::from_millis(100)],
            "started when it began waiting"
        );
        // The next request on the connection starts when it arrives.
        c.now = Instant::from_millis(1000);
        c.pump(site, &get("/hello.txt"));
        assert_eq!(c.starts[1], Instant::from_millis(1000));
    }

    #[test]
    fn flash_files_are_served_at_once_and_never_cached() {
        let site = site();
        let mut c = Client::new(site);
        c.pump(site, &get("/hello.txt"));
        let (status, head, body) = c.last();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"hello from flash\n");
        assert_eq!(cache_status(&head), Some("satchel; fwd=bypass"));
        assert!(
            site.source.take_order().is_none(),
            "no fetch for a flash file"
        );
    }

    #[test]
    fn upstream_failures_are_502_or_504_with_a_reason_and_404_passes_through() {
        let site = site();
        let mut fake = Fake::default();
        let cases = [
            (
                "/a.txt",
                Answer::Fail(UpstreamError::Refused),
                "502",
                "refused",
            ),
            (
                "/a.txt",
                Answer::Fail(UpstreamError::Broken),
                "502",
                "reset",
            ),
            (
                "/a.txt",
                Answer::Fail(UpstreamError::BadAnswer),
                "502",
                "malformed",
            ),
            (
                "/a.txt",
                Answer::Fail(UpstreamError::Timeout),
                "504",
                "in time",
            ),
            ("/chunked", Answer::Chunked, "502", "larger"),
            ("/missing", Answer::Serve, "404", "not found"),
        ];
        for (path, how, code, reason) in cases {
            let c = fetch(site, &mut fake, path, how);
            let (status, _, body) = c.last();
            assert!(
                status.starts_with(&std::format!("HTTP/1.1 {code} ")),
                "{path}: {status}"
            );
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(reason), "{path}: {text}");
            assert!(!c.conn.is_waiting());
        }
        // And after all that, a file is fetched as usual.
        fake.put("ok.txt", "\"k\"", b"ok\n");
        assert_eq!(
            fetch(site, &mut fake, "/ok.txt", Answer::Serve).last().2,
            b"ok\n"
        );
    }

    #[test]
    fn a_request_for_another_path_waits_for_the_slot_then_gets_its_own_fetch() {
        let site = site();
        let mut fake = Fake::default();
        fake.put("a.txt", "\"a\"", b"aaa\n");
        fake.put("b.txt", "\"b\"", b"bbb\n");
        let (mut a, mut b, mut late_a) = (Client::new(site), Client::new(site), Client::new(site));
        a.pump(site, &get("/a.txt"));
        // The fetch for /a.txt is sent...
        let order = site.source.take_order().expect("an order for a.txt");
        b.pump(site, &get("/b.txt"));
        // ...so a later request for /a.txt does not join it: it may predate that request.
        late_a.pump(site, &get("/a.txt"));
        assert!(b.conn.waiting_for().is_some() && late_a.conn.waiting_for().is_some());
        assert_ne!(a.conn.waiting_for(), b.conn.waiting_for());
        site.source
            .begin(order.ticket, Some(4), Some(b"\"a\""), None)
            .unwrap();
        site.source.append(order.ticket, b"aaa\n").unwrap();
        site.source.finish(order.ticket, Outcome::Fetched);
        round(site, &mut [&mut a, &mut b, &mut late_a]);
        assert_eq!(a.last().2, b"aaa\n");
        assert!(b.conn.is_waiting() && late_a.conn.is_waiting());
        // The next round frees the slot: the two waiting retry; one fetch is ordered, and the
        // other path waits for the one after.
        round(site, &mut [&mut a, &mut b, &mut late_a]);
        let mut rounds = 0;
        while b.out.is_empty() || late_a.out.is_empty() {
            fake.answer(&site.source, Answer::Serve);
            round(site, &mut [&mut a, &mut b, &mut late_a]);
            round(site, &mut [&mut a, &mut b, &mut late_a]);
            rounds += 1;
            assert!(rounds < 5, "both answered within a few fetches");
        }
        assert_eq!(b.last().2, b"bbb\n");
        assert_eq!(late_a.last().2, b"aaa\n");
        assert_eq!(
            late_a.log,
            [(200, Some(CacheStatus::Hit))],
            "revalidated, not refetched"
        );
    }

    #[test]
    fn a_304_for_a_copy_evicted_meanwhile_fetches_it_whole() {
        let site = site();
        let mut fake = Fake::default();
        fake.put("a.txt", "\"a\"", b"aaa\n");
        fetch(site, &mut fake, "/a.txt", Answer::Serve);
        let mut c = Client::new(site);
        c.pump(site, &get("/a.txt"));
        let order = site.source.take_order().unwrap();
        assert_eq!(order.if_none_match(), Some("\"a\""));
        // Evicted before the 304 arrives (another fill took the room).
        let v = site
            .source
            .state
            .borrow()
            .known(b"a.txt")
            .unwrap()
            .meta
            .version;
        assert!(site
            .cache
            .lookup(
                b"a.txt",
                &FileVersion {
                    stamp: v.stamp ^ 1,
                    ..v
                }
            )
            .is_none());
        site.source.finish(order.ticket, Outcome::NotModified);
        round(site, &mut [&mut c]);
        let again = site.source.take_order().expect("an unconditional fetch");
        assert_eq!(again.if_none_match(), None);
        site.source
            .begin(again.ticket, Some(4), Some(b"\"a\""), None)
            .unwrap();
        site.source.append(again.ticket, b"aaa\n").unwrap();
        site.source.finish(again.ticket, Outcome::Fetched);
        round(site, &mut [&mut c]);
        assert_eq!(c.last().2, b"aaa\n");
    }

    /// Bytes that show any misplaced piece.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// How a streamed fetch went, seen from upstream's side.
    struct Streamed {
        /// Body bytes upstream sent.
        sent: usize,
        /// The most bytes sent but not yet sent on to the client.
        most_ahead: usize,
        /// Rounds in which the edge took less than upstream had (it waited for the client).
        throttled: usize,
        /// The edge let the fetch go before its end (its reader was done with it).
        let_go: bool,
    }

    /// Upstream answers the order `c` waits for with `bytes` (their length announced), as
    /// fast as the edge takes them (at most 700 bytes a round); `cut`: it dies after that many
    /// bytes.
    fn stream(site: &EdgeSite, c: &mut Client, bytes: &[u8], cut: Option<usize>) -> Streamed {
        let order = site.source.take_order().expect("an order");
        let t = order.ticket;
        site.source
            .begin(t, Some(bytes.len() as u64), Some(b"\"big\""), None)
            .unwrap();
        let mut st = Streamed {
            sent: 0,
            most_ahead: 0,
            throttled: 0,
            let_go: false,
        };
        let end = cut.unwrap_or(bytes.len());
        let head = |c: &Client| {
            let text = String::from_utf8_lossy(&c.out).into_owned();
            text.find("\r\n\r\n").map_or(c.out.len(), |h| h + 4)
        };
        for _ in 0..100 * (bytes.len() / 100 + 1) {
            round(site, &mut [&mut *c]);
            let delivered = c.out.len() - head(c);
            st.most_ahead = st.most_ahead.max(st.sent - delivered);
            if st.sent == end {
                break;
            }
            let Ok(room) = site.source.room(t) else {
                st.let_go = true;
                break;
            };
            let want = (end - st.sent).min(700);
            let n = room.min(want);
            if n < want {
                st.throttled += 1;
            }
            if n == 0 {
                continue;
            }
            site.source.append(t, &bytes[st.sent..st.sent + n]).unwrap();
            st.sent += n;
        }
        let outcome = match st.sent == bytes.len() {
            true => Outcome::Fetched,
            false => Outcome::Failed(UpstreamError::Broken),
        };
        site.source.finish(t, outcome);
        for _ in 0..100 {
            round(site, &mut [&mut *c]);
        }
        st
    }

    fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    #[test]
    fn a_file_larger_than_the_buffer_streams_byte_exact_and_is_never_cached() {
        let site = site();
        let bytes = pattern(5 * BODY + 123);
        let mut c = Client::new(site);
        c.pump(site, &get("/big.bin"));
        let st = stream(site, &mut c, &bytes, None);
        let (status, head, body) = c.last();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&head, "Content-Length"), Some("10363"));
        assert_eq!(cache_status(&head), Some("satchel; fwd=bypass"));
        assert!(body == bytes, "byte for byte");
        assert_eq!(c.log, [(200, Some(CacheStatus::Bypass))]);
        assert!(st.most_ahead <= BODY, "never more than the buffer ahead");
        assert!(!c.aborted && !c.conn.is_closed(), "kept alive");

        // Not cached: asked again, it is fetched again, unconditionally, and streamed again.
        let mut d = Client::new(site);
        d.pump(site, &get("/big.bin"));
        let order = site
            .source
            .state
            .borrow()
            .known(b"big.bin")
            .map(|k| k.etag_len);
        assert_eq!(order, None, "no ETag kept for a conditional fetch");
        stream(site, &mut d, &bytes, None);
        assert!(d.last().2 == bytes);
        assert_eq!(d.log, [(200, Some(CacheStatus::Bypass))]);
    }

    #[test]
    fn a_second_request_for_a_streaming_file_waits_for_a_fetch_of_its_own() {
        let site = site();
        let bytes = pattern(3 * BODY);
        let (mut c, mut d) = (Client::new(site), Client::new(site));
        c.pump(site, &get("/big.bin"));
        let order = site.source.take_order().unwrap();
        site.source
            .begin(
                order.ticket,
                Some(bytes.len() as u64),
                Some(b"\"big\""),
                None,
            )
            .unwrap();
        site.source.append(order.ticket, &bytes[..100]).unwrap();
        round(site, &mut [&mut c]);
        // c reads it; d asks while it streams: not for the same bytes (one reader).
        d.pump(site, &get("/big.bin"));
        assert!(d.conn.is_waiting() && d.conn.waiting_for() != Some(order.ticket));
        round(site, &mut [&mut c, &mut d]);
        assert!(d.conn.is_waiting() && site.source.take_order().is_none());
        site.source.append(order.ticket, &bytes[100..]).unwrap_err();
        site.source
            .finish(order.ticket, Outcome::Failed(UpstreamError::Broken));
        for _ in 0..4 {
            round(site, &mut [&mut c, &mut d]);
        }
        assert!(c.aborted, "c saw upstream die");
        assert!(
            d.conn.is_waiting(),
            "d waits for its own fetch, now ordered"
        );
        stream(site, &mut d, &bytes, None);
        assert!(d.last().2 == bytes);
    }

    #[test]
    fn a_slow_client_throttles_the_fetch() {
        let site = site();
        let bytes = pattern(4 * BODY + 7);
        let mut c = Client::new(site);
        c.chunk = 100;
        c.pump(site, &get("/big.bin"));
        let st = stream(site, &mut c, &bytes, None);
        assert!(c.last().2 == bytes, "byte for byte");
        assert!(
            st.throttled > 10,
            "upstream waited for the client ({} times)",
            st.throttled
        );
        assert!(st.most_ahead <= BODY, "{} bytes ahead", st.most_ahead);
    }

    #[test]
    fn upstream_dying_mid_body_cuts_the_client_short() {
        let site = site();
        let bytes = pattern(4 * BODY);
        let mut c = Client::new(site);
        c.pump(site, &get("/big.bin"));
        let cut = 2 * BODY + 10;
        let st = stream(site, &mut c, &bytes, Some(cut));
        assert_eq!(st.sent, cut);
        let (status, head, body) = c.last();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&head, "Content-Length"), Some("8192"));
        // Every byte upstream sent, then the connection closed: short, never padded.
        assert!(body == bytes[..cut], "{} bytes", body.len());
        assert!(c.aborted && c.conn.is_closed());
        // The slot is free: the next file is fetched as usual.
        let mut fake = Fake::default();
        fake.put("ok.txt", "\"k\"", b"ok\n");
        assert_eq!(
            fetch(site, &mut fake, "/ok.txt", Answer::Serve).last().2,
            b"ok\n"
        );
    }

    #[test]
    fn head_and_range_of_a_streamed_file() {
        let site = site();
        let bytes = pattern(3 * BODY + 1);
        // HEAD: upstream's length, no body, and the fetch let go at once.
        let mut c = Client::new(site);
        c.pump(site, "HEAD /big.bin HTTP/1.1\r\nHost: edge\r\n\r\n");
        let st = stream(site, &mut c, &bytes, None);
        assert!(st.let_go && st.sent < bytes.len(), "sent {}", st.sent);
        let text = String::from_utf8_lossy(&c.out).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 6145\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
        // A range: upstream sends the file from its start, the bytes before the range are
        // skipped, and the fetch is let go once the range is sent.
        let mut c = Client::new(site);
        c.pump(
            site,
            "GET /big.bin HTTP/1.1\r\nHost: edge\r\nRange: bytes=5000-5099\r\n\r\n",
        );
        let st = stream(site, &mut c, &bytes, None);
        let (status, head, body) = c.last();
        assert_eq!(status, "HTTP/1.1 206 Partial Content");
        assert_eq!(header(&head, "Content-Range"), Some("bytes 5000-5099/6145"));
        assert!(body == bytes[5000..5100], "{body:?}");
        assert!(st.let_go && st.sent < bytes.len(), "sent {}", st.sent);
        assert!(!c.aborted);
        // The ETag names upstream's: the next fetch of the same version matches it (a 304,
        // nothing read); a new version upstream does not.
        let etag = String::from(header(&head, "ETag").expect("an ETag"));
        let conditional =
            std::format!("GET /big.bin HTTP/1.1\r\nHost: edge\r\nIf-None-Match: {etag}\r\n\r\n");
        let mut c = Client::new(site);
        c.pump(site, &conditional);
        let st = stream(site, &mut c, &bytes, None);
        assert_eq!(c.last().0, "HTTP/1.1 304 Not Modified");
        assert!(st.let_go && st.sent < bytes.len(), "sent {}", st.sent);
        let mut c = Client::new(site);
        c.pump(site, &conditional);
        let order = site.source.take_order().unwrap();
        site.source
            .begin(order.ticket, Some(6145), Some(b"\"other\""), None)
            .unwrap();
        round(site, &mut [&mut c]);
        assert!(
            c.last().0 == "HTTP/1.1 200 OK",
            "another version: the whole file"
        );
    }
}
