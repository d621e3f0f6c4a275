//! satchel-core: the protocol core of the satchel caching file server.
//!
//! `#![no_std]`, no allocator, no `unsafe`. Every rule of the wire protocol (a strict subset of
//! HTTP/1.1, see `PROTOCOL.md`) and of the cache lives here, so the desktop binaries, a
//! microcontroller running smoltcp and the fuzzers all run exactly the same logic.
//!
//! # Layers
//!
//! Each module has one job; dependencies point down only.
//!
//! ```text
//! serve     sans-IO server connection: bytes in -> response plan out (head + body source)
//! client    sans-IO download: response parser, framing, resume plan, safe names, embedded-nal driver
//! cache     fixed-capacity content cache: storage + index + eviction + admission
//! http      request head parser, response head encoder, Range, conditionals, dates, ETag
//! path      percent-decoding and normalisation into a SafePath that cannot leave the root
//! proxy     PROXY protocol v2 header (the real client behind a load balancer)
//! mime      extension -> media type table
//! source    trait FileSource (metadata, open, read_at) + a static in-memory table for boards
//! io        blocking driver over embedded-io Read + Write
//! time      Instant / Duration in milliseconds (the core reads no clock)
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
pub mod proxy;
pub mod serve;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;
pub mod source;
pub mod time;

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
