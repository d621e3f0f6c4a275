//! A caching edge: a [`FileSource`] that serves what its local source holds (flash on a board)
//! and fetches every other file from an upstream HTTP server, sans-IO.
//!
//! [`Upstream`] answers the server connection's `_waiting` calls; the fetching itself is the
//! driver's (on a board, [`crate::smoltcp::fetch::Fetcher`] runs the core's own download
//! [`session`](crate::client::session) over a smoltcp socket). Between them:
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
//! the cache (the cache's `max_entry_bytes` should be `BODY`). A larger file is refused with
//! [`UpstreamError::TooLarge`] (a `502` saying so), never sent truncated. Upstream's `404` is
//! passed on as not found; any other failure is a `502`, or a `504` for a timeout.
//!
//! Requests for other paths while a fetch runs wait under a retry ticket and try again when
//! it ends. The requests waiting for a fetch are answered (and the cache filled) in the round
//! of the driver's loop in which it ends; its body stays readable until the next fetch is
//! asked for (a response the cache could not store streams from it meanwhile, and is cut short
//! if the next fetch takes the buffer first).

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

    /// The metadata of the fetched body (its version hashes the ETag and the bytes).
    fn fetched_meta(&self) -> Metadata {
        let body = self.body.get(..self.body_len).unwrap_or_default();
        let etag = self.etag.get(..self.etag_len).unwrap_or_default();
        Metadata {
            kind: FileKind::File,
            version: FileVersion {
                len: self.body_len as u64,
                stamp: fnv1a(fnv1a(FNV_OFFSET, etag), body),
                id: UPSTREAM_ID,
            },
            modified: self.modified,
        }
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
/// [module docs](self)). `BODY`: the largest file fetched; `KNOWN`: how many fetched files'
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
    /// # Errors
    /// [`UpstreamError::TooLarge`] when `total` exceeds `BODY`: the driver ends the fetch
    /// (and reports it failed).
    pub fn begin(
        &self,
        ticket: Ticket,
        total: Option<u64>,
        etag: Option<&[u8]>,
        last_modified: Option<&[u8]>,
    ) -> Result<(), UpstreamError> {
        let mut st = self.running(ticket)?;
        if total.is_some_and(|t| t > BODY as u64) {
            return Err(UpstreamError::TooLarge);
        }
        st.body_len = 0;
        // A tag too long to keep is not kept: the next request asks unconditionally.
        let tag = etag.filter(|t| t.len() <= MAX_ETAG).unwrap_or_default();
        st.etag[..tag.len()].copy_from_slice(tag);
        st.etag_len = tag.len();
        st.modified = last_modified.and_then(parse_http_date);
        Ok(())
    }

    /// Body bytes of the `200` for `ticket`.
    ///
    /// # Errors
    /// [`UpstreamError::TooLarge`] when they overflow `BODY`.
    pub fn append(&self, ticket: Ticket, bytes: &[u8]) -> Result<(), UpstreamError> {
        let mut st = self.running(ticket)?;
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
        match st.phase {
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
            Phase::Idle => return Err(self.order(&mut st, path)),
            _ => {}
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
            EdgeFile::Local(_) => false,
            EdgeFile::Fetched(_) => true,
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
        }
    }

    fn listing(&self, path: &SafePath<'_>, view: ListingView) -> Result<L::Listing, SourceError> {
        self.local.listing(path, view)
    }
}
