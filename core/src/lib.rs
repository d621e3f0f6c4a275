//! satchel-core: the protocol core of the satchel caching file server.
//!
//! `#![no_std]`, no allocator, no `unsafe`. Every rule of the wire protocol (a strict subset of
//! HTTP/1.1, see `PROTOCOL.md`) and of the cache lives here, so the desktop binaries, a
//! microcontroller running smoltcp and the fuzzers all run exactly the same logic.
//!
//! # Layers
//!
//! Each module has one job; dependencies point down only (the right column lists what each
//! imports from the crate, tests aside).
//!
//! ```text
//! io       blocking driver over embedded-io Read + Write                    serve source time
//! smoltcp  (feature) server connections on smoltcp TCP sockets;             serve source time
//!          embedded-nal client stack; an edge's fetches                     client upstream
//!                                                                           cache
//! serve    sans-IO server connection: state machine (connection), response  cache http listing
//!          rules lookup -> open -> decide -> fill -> head (respond), body   mime path source
//!          and Transmit::copy_to (body); requests waiting for a slow        time
//!          source; SiteParts
//! client   sans-IO download: session (redirects, retries, resume,           http percent time
//!          timeouts), framing, safe names, embedded-nal driver
//! upstream a caching edge's source: local files, the rest fetched from     cache http listing
//!          an upstream server (orders for a driver, revalidation)          path source
//! cache    fixed-capacity content cache: storage + index + eviction +       http source
//!          admission, a SHA-256 per entry
//! source   trait FileSource (probe with the request's Arrival, metadata,   listing path version
//!          open, read_at, waiting opens) + a static table for boards
//! listing  folder listings (HTML page, text, JSON) and their negotiation    http path percent
//!                                                                           version
//! http     both directions on one field scanner and byte table: request     version
//!          head parser, response head (encode + parse), Content-Range,
//!          status codes, Range, conditionals, dates, ETag, digests,
//!          Accept-Encoding
//! path     percent-decoding and normalisation into a SafePath that cannot   percent
//!          leave the root
//! proxy    PROXY protocol v2 header (the real client behind a balancer)     -
//! mime     extension -> media type table                                    -
//! percent  percent-encoding and -decoding (RFC 3986 §2.1)                   -
//! version  FileVersion: which version of a file's content bytes are         -
//! time     Instant / Duration in milliseconds (the core reads no clock)     -
//! ```
//!
//! # Panic contract
//!
//! Nothing a peer sends can panic the core: parsers return `Status::Partial` for incomplete
//! input and an error that knows its HTTP status for bad input; capacity failures are values.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod cache;
pub mod client;
pub mod http;
pub mod io;
pub mod listing;
pub mod mime;
pub mod path;
pub mod percent;
pub mod proxy;
pub mod serve;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;
pub mod source;
pub mod time;
pub mod upstream;
pub mod version;

/// The outcome of parsing input that may be incomplete.
///
/// `Partial` is not an error: more bytes are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The input held a complete item.
    Complete(T),
    /// More input is needed to decide.
    Partial,
}

impl<T> Status<T> {
    /// Whether this is `Complete`.
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete(_))
    }
}
