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
//!   writes it straight from where it lives (`writev`, or [`Transmit::copy_to`] into a socket
//!   buffer);
//! * [`Connection::transmitted`] says how many of those bytes went out (any split is fine).
//!
//! * [`Connection::poll_event`] says what was answered and how it ended (for access logs):
//!   an [`Event::Response`] when a response is planned, an [`Event::Done`] with the bytes
//!   actually sent when it completes or is cut short;
//! * [`Connection::is_closed`] tells it to close the socket, and
//!   [`Connection::should_linger`] whether to drain the socket a while first.
//!
//! # The order of calls
//!
//! Each time the driver wakes (bytes arrived, the socket can take more, a timeout passed):
//!
//! 1. inputs: [`handle_input`](Connection::handle_input) (repeatedly, while it consumes),
//!    [`handle_eof`](Connection::handle_eof), [`handle_timeout`](Connection::handle_timeout);
//! 2. [`poll_event`](Connection::poll_event) until `None`;
//! 3. [`poll_transmit`](Connection::poll_transmit), send, [`transmitted`](Connection::transmitted),
//!    until it offers nothing or the socket is full; then `poll_event` until `None` again (a
//!    response that ended);
//! 4. [`is_closed`](Connection::is_closed) to close, else
//!    [`poll_timeout`](Connection::poll_timeout) for when to wake at the latest.
//!
//! The `poll_*` outputs are `#[must_use]`, and events cannot be skipped: while one waits,
//! `handle_input` takes no new request.
//!
//! # Sources that answer later
//!
//! A file source may be slow: a spinning disk, a network volume, a board fetching a miss from
//! an upstream HTTP server. The connection can wait for it without blocking its driver, and
//! without costing anything where the source is always fast.
//!
//! * The source's `_waiting` methods ([`FileSource::open_waiting`],
//!   [`FileSource::listing_waiting`]) may start the work elsewhere and answer
//!   [`SourceError::Pending`]`(ticket)`; a probe may answer [`SourceError::WouldBlock`] (go
//!   straight to the open) instead of looking.
//! * The connection then *parks* the request: it consumes nothing (the request's bytes stay in
//!   the driver's buffer, where pipelined requests behind it wait their turn as they do behind
//!   a response being sent), emits no event, and reports the ticket through
//!   [`Connection::waiting_for`]. Its other duties go on: the send timeout runs from the start
//!   of the wait (past it the request gets `503` and the connection closes),
//!   [`Connection::shutdown`] and [`Connection::handle_eof`] make the answer close the
//!   connection, [`Connection::abort`] drops it.
//! * The driver completes the work (a thread pool, an upstream socket) and calls
//!   [`Connection::handle_ready`]`(ticket)`; the next [`Connection::handle_input`] with the same
//!   bytes answers the request *from its start*, and every `_waiting` call gets the ticket
//!   back, so the source answers from what it completed under it (or adds more work to it: a
//!   folder's `index.html` after the folder, a fill after an open).
//!
//! Why this shape (readiness with a ticket and a retry, as a non-blocking socket's `EAGAIN`,
//! rather than quinn-proto's `poll_io`/`handle_io` with the result handed to the connection):
//!
//! * The connection keeps no copy of the request: a head borrows the driver's bytes, and
//!   parking it would otherwise cost a request-sized buffer in every connection (10,000 idle
//!   connections), or an allocation the core does not have. Parsing the head again after a
//!   wait costs well under a microsecond against the milliseconds of the wait.
//! * The result stays where its type lives: an open file descriptor, bytes read ahead, a
//!   rendered listing, an upstream response are the source's types, and a source can share one
//!   piece of work among every request that waits for the same file (single flight) by giving
//!   them tickets under which it answers the same result.
//! * The sync path is unchanged: a source that never pends (flash, [`StaticSource`], a warm
//!   cache hit validated by a probe) takes exactly today's steps: the probe, the cache lookup,
//!   no ticket, no extra copy, call or allocation; the only new work is a match arm on an error
//!   path.
//! * It fits a network round trip: a board's source starts an upstream `GET` under a ticket,
//!   its driver polls that socket with the others and calls `handle_ready` when the body is
//!   in (or in memory far enough for the cache fill); timeouts and shutdown work as for a disk.
//!
//! The bodies of files the cache does not take (larger than it admits) are read while they are
//! sent ([`Transmit::copy_to`]), by the driver's own reads of the open file: a driver with a
//! slow medium reads them where it may wait.
//!
//! [`FileSource::open_waiting`]: crate::source::FileSource::open_waiting
//! [`FileSource::listing_waiting`]: crate::source::FileSource::listing_waiting
//! [`SourceError::Pending`]: crate::source::SourceError::Pending
//! [`SourceError::WouldBlock`]: crate::source::SourceError::WouldBlock
//! [`StaticSource`]: crate::source::StaticSource
//!
//! Everything the peer controls goes through the parsers in [`crate::http`] and
//! [`crate::path`]; nothing it sends can panic the connection.
//!
//! # Modules
//!
//! * `connection`: the state machine (reading, waiting for the source, sending, closed;
//!   timeouts; accounting);
//! * `respond`: the response rules, one step per function: lookup → open → decide
//!   (conditionals, range) → fill the cache → head;
//! * `body`: what a driver sends ([`Transmit`], [`BodyRef`]) and the one copy loop;

mod body;
mod connection;
mod respond;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_encoded;
#[cfg(test)]
mod tests_waiting;

pub use body::{BodyRef, SourceChanged, Transmit};
pub use connection::{Completion, Connection, Event, ResponseInfo, Span};

#[cfg(test)]
use crate::http::response::CacheStatus;

use crate::cache::ContentCache;
use crate::http::request::Limits;
use crate::path::PathOptions;
use crate::source::FileSource;
use crate::time::Duration;

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
    /// Whether a precompressed sibling (`name.br`, `name.zst`, `name.gz`) is sent in place of
    /// `name` when the request's `Accept-Encoding` accepts its coding and it is not older than
    /// `name`. When on, every file response carries `Vary: Accept-Encoding`.
    pub precompressed: bool,
    /// A kept-alive connection with no new request for this long is closed silently.
    pub idle_timeout: Duration,
    /// A request head not complete this long after its first byte is answered 408.
    pub head_timeout: Duration,
    /// A response that makes no progress for this long (the peer stopped reading) is abandoned.
    pub send_timeout: Duration,
    /// The `Cache-Control` field value on file responses (200, 206, 304); `None`: no field.
    /// It must be a valid field value (no control characters); [`valid_cache_control`] checks.
    pub cache_control: Option<&'static str>,
}

impl Config {
    /// The host defaults of PROTOCOL.md: 15 s idle, 10 s head, 30 s send, listings and
    /// precompressed siblings on, `Cache-Control: no-cache` (caches in front revalidate every
    /// time, so the server's never-stale promise reaches them).
    pub const fn host() -> Self {
        Self {
            limits: Limits::host(),
            path: PathOptions {
                allow_hidden: false,
            },
            listings: true,
            precompressed: true,
            idle_timeout: Duration::from_secs(15),
            head_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            cache_control: Some("no-cache"),
        }
    }
}

/// Whether `value` may be sent as the `Cache-Control` field value: non-empty, visible ASCII,
/// spaces and tabs inside only (RFC 9110 §5.5 field-value; obs-text and control characters
/// refused).
pub fn valid_cache_control(value: &str) -> bool {
    let b = value.as_bytes();
    let visible = |c: &u8| (0x21..=0x7e).contains(c);
    b.first().is_some_and(visible)
        && b.last().is_some_and(visible)
        && b.iter().all(|c| visible(c) || *c == b' ' || *c == b'\t')
}

impl Default for Config {
    fn default() -> Self {
        Self::host()
    }
}

/// Everything a connection asks its server for: files, the cache, settings and the time of day.
///
/// [`SiteParts`] is the ready-made one (a source, a cache, a config, no clock); a host with a
/// clock implements it once for its shared state.
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

/// A [`Site`] made of its parts, so that an embedder writes no `impl Site`:
/// `SiteParts::new(StaticSource::new(FILES), RefCell::new(cache), Config::host())`, plus
/// [`with_clock`](Self::with_clock) where the platform knows the time of day.
#[derive(Debug)]
pub struct SiteParts<Src, C> {
    /// Where files come from.
    pub source: Src,
    /// The content cache.
    pub cache: C,
    /// The configuration.
    pub config: Config,
    /// The time of day in Unix seconds, for `Date`; `None`: no clock, no `Date`.
    pub clock: Option<fn() -> u64>,
}

impl<Src, C> SiteParts<Src, C> {
    /// A site of `source`, `cache` and `config`, without a clock (`const`, so it can live in a
    /// `static`).
    pub const fn new(source: Src, cache: C, config: Config) -> Self {
        Self {
            source,
            cache,
            config,
            clock: None,
        }
    }

    /// The same site with `clock` giving the time of day (Unix seconds) for `Date`.
    #[must_use]
    pub const fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = Some(clock);
        self
    }
}

impl<Src: FileSource, C: ContentCache> Site for SiteParts<Src, C> {
    type Source = Src;
    type Cache = C;

    fn source(&self) -> &Src {
        &self.source
    }

    fn cache(&self) -> &C {
        &self.cache
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn unix_time(&self) -> Option<u64> {
        self.clock.map(|now| now())
    }
}

#[cfg(test)]
#[test]
fn cache_control_values() {
    for ok in [
        "no-cache",
        "max-age=60, stale-if-error=600",
        "private,\tno-store",
    ] {
        assert!(valid_cache_control(ok), "{ok}");
    }
    for bad in [
        "",
        " no-cache",
        "no-cache ",
        "a\r\nb",
        "a\nb",
        "caf\u{e9}",
        "\t",
    ] {
        assert!(!valid_cache_control(bad), "{bad:?}");
    }
}

type Handle<S> = <<S as Site>::Cache as ContentCache>::Handle;
type File<S> = <<S as Site>::Source as FileSource>::File;
type Listing<S> = <<S as Site>::Source as FileSource>::Listing;
/// The body of a response of site `S`.
type SiteBody<S> = body::Body<Handle<S>, File<S>, Listing<S>>;
