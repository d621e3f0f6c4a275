//! The download client's protocol logic, sans-IO: what to send, how to read the answer, and what
//! the answer means for the file being saved.
//!
//! ```text
//! request   the GET head the client sends (Host, Range, If-Range, Accept, Connection)
//! head      strict, bounded response head parser -> Response view (framing, validators...)
//! body      Content-Length / chunked / until-close decoder, zero-copy
//! digest    the whole-file SHA-256 a server announces (Repr-Digest, Content-Digest)
//! resume    206/416/200 after a Range request -> Plan (append, restart, complete, refuse)
//! target    URLs, request targets, redirects on the same server, safe local file names
//! session   one download: redirects, retries with backoff, resume, timeouts (time is an input)
//! pipeline  download sessions sharing one connection, the next requests sent ahead
//! nal       blocking drivers over embedded-nal's TcpClientStack: an exchange, a session, a pipeline
//! ```
//!
//! [`Exchange`] ties head and body together for one request on a connection: feed it the bytes
//! received, it reports the response head, then runs of body data borrowed from your buffer,
//! then the end. It reads no clock and does no I/O; [`nal::exchange`] drives it over any
//! `TcpClientStack` (std sockets on the host, smoltcp on a board).
//!
//! [`session::Download`] makes every decision of a whole download on top of it; the host client
//! and a board drive it through [`nal::download`] and only move bytes, files and time.
//!
//! Nothing a server sends can make it panic, loop or buffer without bound: a malformed,
//! oversized or lying response is an [`ExchangeError`].

pub mod body;
pub mod digest;
pub mod head;
pub mod nal;
#[cfg(test)]
mod pair;
pub mod pipeline;
#[cfg(test)]
mod pipeline_pair;
pub mod request;
pub mod resume;
pub mod session;
pub mod target;

use core::fmt;

use crate::Status;

pub use body::{BodyDecoder, FramingError};
pub use head::{parse_response, ContentRange, Framing, HeadError, Response};
pub use request::{EncodeError, Request};
pub use resume::{plan, Plan, ResumeError};
pub use target::{local_name, resolve_location, ListingEntry, TargetError, Typed, Url};

/// What one call to [`Exchange::handle_input`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'d> {
    /// The input held nothing complete; receive more and call again with all unconsumed bytes.
    NeedMore,
    /// The final (non-1xx) response head.
    Head(Response<'d>),
    /// A run of body data, borrowed from the input.
    Body(&'d [u8]),
    /// The response is complete.
    Done {
        /// Whether another request may follow on this connection.
        keep_alive: bool,
    },
}

/// Why an exchange failed; after any of these the connection must be closed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeError {
    /// The response head is malformed or too large.
    Head(HeadError),
    /// The body framing is malformed, or the body was cut short.
    Framing(FramingError),
    /// The connection ended before a complete response head.
    Closed {
        /// Whether any byte of the response had arrived (if not, a request on a reused
        /// keep-alive connection may safely be retried on a new one).
        response_started: bool,
    },
    /// Bytes arrived after the end of the response, before any other request: the framing
    /// the server declared was a lie (e.g. a body longer than its `Content-Length`).
    TrailingBytes,
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(e) => write!(f, "bad response head: {e}"),
            Self::Framing(e) => write!(f, "bad body: {e}"),
            Self::Closed {
                response_started: false,
            } => f.write_str("connection closed before any response"),
            Self::Closed {
                response_started: true,
            } => f.write_str("connection closed in the middle of the response head"),
            Self::TrailingBytes => {
                f.write_str("bytes after the end of the response (framing was a lie)")
            }
        }
    }
}

impl core::error::Error for ExchangeError {}

impl From<HeadError> for ExchangeError {
    fn from(e: HeadError) -> Self {
        Self::Head(e)
    }
}

impl From<FramingError> for ExchangeError {
    fn from(e: FramingError) -> Self {
        Self::Framing(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Body,
    Done,
}

/// One request's response, read off a connection (sans-IO).
///
/// Feed it everything received after the request was sent. The head must arrive in one buffer
/// of at most `head_capacity` bytes (the caller's receive buffer); body bytes are handed back as
/// slices of the input, never copied.
#[derive(Debug, Clone)]
pub struct Exchange {
    phase: Phase,
    head_request: bool,
    head_capacity: usize,
    /// Bytes of the current head already looked at without a complete new line: the head is
    /// re-parsed only when a line ends, so a head arriving a byte at a time costs linear time.
    head_scanned: usize,
    decoder: BodyDecoder,
    keep_alive: bool,
    seen_bytes: bool,
    /// Another request follows this one on the connection (a pipeline): bytes after the end
    /// of this response are the next response, not a lie.
    followed: bool,
}

impl Exchange {
    /// Starts reading the response to a GET (or a HEAD when `head_request`), whose head must fit
    /// in `head_capacity` bytes.
    pub fn new(head_request: bool, head_capacity: usize) -> Self {
        Self {
            phase: Phase::Head,
            head_request,
            head_capacity,
            head_scanned: 0,
            decoder: BodyDecoder::new(Framing::Empty),
            keep_alive: false,
            seen_bytes: false,
            followed: false,
        }
    }

    /// Says another request was sent after this one on the same connection (a pipeline):
    /// bytes after the end of this response then belong to the next one and are left
    /// unconsumed, instead of being [`ExchangeError::TrailingBytes`].
    pub fn set_followed(&mut self) {
        self.followed = true;
    }

    /// Whether the response is complete.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether the final response head has been read (from then on only body bytes follow).
    pub fn head_received(&self) -> bool {
        self.phase != Phase::Head
    }

    /// Body bytes delivered so far.
    pub fn body_received(&self) -> u64 {
        self.decoder.received()
    }

    /// Feeds the received bytes not yet consumed; returns how many it consumed and what they
    /// held.
    ///
    /// Interim 1xx responses are consumed silently. Call again with the unconsumed rest until
    /// the event is [`Event::NeedMore`] or [`Event::Done`].
    ///
    /// # Errors
    /// An [`ExchangeError`] for a malformed or oversized head, bad framing, or bytes after the
    /// end of the response. The connection must not be used again.
    pub fn handle_input<'d>(
        &mut self,
        data: &'d [u8],
    ) -> Result<(usize, Event<'d>), ExchangeError> {
        self.seen_bytes |= !data.is_empty();
        let mut consumed = 0usize;
        loop {
            let rest = data.get(consumed..).unwrap_or_default();
            match self.phase {
                Phase::Head => {
                    let fresh = rest.get(self.head_scanned..).unwrap_or_default();
                    if !fresh.contains(&b'\n') && rest.len() < self.head_capacity {
                        self.head_scanned = rest.len();
                        return Ok((consumed, Event::NeedMore));
                    }
                    self.head_scanned = rest.len();
                    let (response, len) = match parse_response(rest, self.head_request)? {
                        Status::Complete(done) => done,
                        Status::Partial if rest.len() >= self.head_capacity => {
                            return Err(HeadError::TooLarge.into())
                        }
                        Status::Partial => return Ok((consumed, Event::NeedMore)),
                    };
                    consumed += len;
                    self.head_scanned = 0;
                    if response.status < 200 {
                        continue;
                    }
                    self.decoder = BodyDecoder::new(response.framing);
                    self.keep_alive = response.keep_alive;
                    self.phase = if self.decoder.is_done() {
                        Phase::Done
                    } else {
                        Phase::Body
                    };
                    return Ok((consumed, Event::Head(response)));
                }
                Phase::Body => {
                    if rest.is_empty() {
                        return Ok((consumed, Event::NeedMore));
                    }
                    let step = self.decoder.decode(rest)?;
                    consumed += step.consumed;
                    if self.decoder.is_done() {
                        self.phase = Phase::Done;
                    }
                    if let Some(body) = rest.get(step.data).filter(|b| !b.is_empty()) {
                        return Ok((consumed, Event::Body(body)));
                    }
                }
                Phase::Done if rest.is_empty() || self.followed => {
                    return Ok((
                        consumed,
                        Event::Done {
                            keep_alive: self.keep_alive,
                        },
                    ))
                }
                Phase::Done => return Err(ExchangeError::TrailingBytes),
            }
        }
    }

    /// Tells the exchange the connection ended (all received bytes having been fed).
    ///
    /// # Errors
    /// [`ExchangeError::Closed`] before a complete head; [`FramingError::Truncated`] before the
    /// end of a delimited body.
    pub fn handle_eof(&mut self) -> Result<Event<'static>, ExchangeError> {
        match self.phase {
            Phase::Head => Err(ExchangeError::Closed {
                response_started: self.seen_bytes,
            }),
            Phase::Body => {
                self.decoder.finish()?;
                self.phase = Phase::Done;
                self.keep_alive = false;
                Ok(Event::Done { keep_alive: false })
            }
            Phase::Done => Ok(Event::Done { keep_alive: false }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Runs a whole response through an exchange in `step`-byte reads; returns status, body and
    /// keep-alive.
    fn run(input: &[u8], step: usize, cap: usize) -> Result<(u16, Vec<u8>, bool), ExchangeError> {
        let mut ex = Exchange::new(false, cap);
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut status = 0;
        let mut body = Vec::new();
        loop {
            let (n, ev) = ex.handle_input(&buf)?;
            let ev = match ev {
                Event::NeedMore if fed == input.len() => ex.handle_eof()?,
                other => other,
            };
            match ev {
                Event::NeedMore => {
                    buf.drain(..n);
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                    continue;
                }
                Event::Head(r) => status = r.status,
                Event::Body(b) => body.extend_from_slice(b),
                Event::Done { keep_alive } => return Ok((status, body, keep_alive)),
            }
            buf.drain(..n);
        }
    }

    #[test]
    fn content_length_response() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for step in 1..wire.len() {
            assert_eq!(run(wire, step, 1024), Ok((200, b"hello".to_vec(), true)));
        }
    }

    #[test]
    fn skips_interim_and_reads_chunked() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for step in [1, 7, 500] {
            assert_eq!(run(wire, step, 1024), Ok((200, b"abc".to_vec(), true)));
        }
    }

    #[test]
    fn until_close() {
        let wire = b"HTTP/1.0 200 OK\r\n\r\nall the rest";
        assert_eq!(
            run(wire, 4, 1024),
            Ok((200, b"all the rest".to_vec(), false))
        );
    }

    #[test]
    fn faults() {
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                3,
                1024
            ),
            Err(ExchangeError::Framing(FramingError::Truncated {
                received: 5
            }))
        );
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nlonger",
                100,
                1024
            ),
            Err(ExchangeError::TrailingBytes)
        );
        assert_eq!(
            run(b"", 1, 1024),
            Err(ExchangeError::Closed {
                response_started: false
            })
        );
        assert_eq!(
            run(b"HTTP/1.1 200 O", 100, 1024),
            Err(ExchangeError::Closed {
                response_started: true
            })
        );
        let mut big = Vec::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
        big.resize(300, b'a');
        assert_eq!(
            run(&big, 64, 256),
            Err(ExchangeError::Head(HeadError::TooLarge))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_any_split_no_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), step in 1usize..64) {
            let _ = run(&bytes, step, 256);
        }

        #[test]
        fn same_result_however_split(step in 1usize..80) {
            let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nwxyz\r\n2;e=1\r\n!!\r\n0\r\nT: v\r\n\r\n";
            proptest::prop_assert_eq!(run(wire, step, 1024), Ok((200, b"wxyz!!".to_vec(), false)));
        }
    }
}
