//! A blocking driver: runs one [`Connection`] over any `embedded-io` `Read + Write` stream.
//!
//! It has no timeouts (embedded-io has none): use it where the transport bounds its own waits,
//! in tests over in-memory streams, or on the host through `embedded-io-adapters`' `FromStd`
//! with socket timeouts set. The host server's event loop and the smoltcp driver do not use it;
//! they drive [`Connection`] themselves.
//!
//! Its source must answer at once (it has nothing to wait on but the stream): a request whose
//! source answers `Pending` would never be resumed here.

use embedded_io::{Read, Write};

use crate::serve::{Connection, Event, Site};
use crate::source::Arrival;
use crate::time::Instant;

/// Why [`serve`] stopped before the peer closed cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeError<E> {
    /// The transport failed.
    Io(E),
    /// A file being streamed ended before its announced length (it changed on disk); the
    /// connection was abandoned mid-body so that no wrong bytes were sent.
    SourceChanged,
}

impl<E: core::fmt::Debug> core::fmt::Display for ServeError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "transport error: {e:?}"),
            Self::SourceChanged => f.write_str("file changed while it was sent"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for ServeError<E> {}

impl<E: embedded_io::Error> embedded_io::Error for ServeError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Io(e) => e.kind(),
            Self::SourceChanged => embedded_io::ErrorKind::Other,
        }
    }
}

/// Serves requests on `stream` until the connection closes.
///
/// `rx` holds request bytes not yet consumed and must be larger than the configured
/// `max_head` (a head filling it is answered 431); `chunk` is the copy buffer for bodies (cached
/// bytes, file reads; it must not be empty). `now` is the driver's monotonic clock;
/// `on_event` gets every [`Event`] (what was answered, how it ended), for logs and counters,
/// with the request bytes its [`Span`](crate::serve::Span)s point into.
///
/// # Errors
/// [`ServeError::Io`] when the stream fails; [`ServeError::SourceChanged`] when a streamed file
/// shrank.
pub fn serve<S, T, const TX: usize>(
    site: &S,
    stream: &mut T,
    rx: &mut [u8],
    chunk: &mut [u8],
    mut now: impl FnMut() -> Instant,
    mut on_event: impl FnMut(Event, &[u8]),
) -> Result<(), ServeError<T::Error>>
where
    S: Site,
    T: Read + Write,
{
    let mut conn = Connection::<S, TX>::new(site, now());
    let mut filled = 0;
    loop {
        // Answer every complete request held, in order, each completely before the next.
        loop {
            let consumed = conn.handle_input(now(), Arrival::UNKNOWN, &rx[..filled]);
            while let Some(event) = conn.poll_event() {
                on_event(event, &rx[..consumed]);
            }
            if consumed > 0 {
                rx.copy_within(consumed..filled, 0);
                filled -= consumed;
            }
            let sent = send_all(site, &mut conn, stream, chunk, &mut now);
            if sent.is_err() {
                conn.abort();
            }
            while let Some(event) = conn.poll_event() {
                on_event(event, &[]);
            }
            sent?;
            if consumed == 0 || conn.is_closed() {
                break;
            }
        }
        if conn.is_closed() {
            return stream.flush().map_err(ServeError::Io);
        }
        if filled == rx.len() {
            // Only reachable when rx is not larger than max_head: nothing more can be parsed.
            return Ok(());
        }
        match stream.read(&mut rx[filled..]) {
            Ok(0) => conn.handle_eof(now()),
            Ok(n) => filled += n,
            Err(e) => {
                conn.abort();
                while let Some(event) = conn.poll_event() {
                    on_event(event, &[]);
                }
                return Err(ServeError::Io(e));
            }
        }
    }
}

/// Sends everything the connection offers.
fn send_all<S, T, const TX: usize>(
    site: &S,
    conn: &mut Connection<'_, S, TX>,
    stream: &mut T,
    chunk: &mut [u8],
    now: &mut impl FnMut() -> Instant,
) -> Result<(), ServeError<T::Error>>
where
    S: Site,
    T: Write,
{
    while let Some(transmit) = conn.poll_transmit() {
        if transmit.is_empty() {
            // Nothing left: transmitted(0) completes the response.
            conn.transmitted(now(), 0);
            break;
        }
        // Zero bytes with some owed: the source came up short (or `chunk` is empty).
        let n = transmit.copy_to(site, chunk).unwrap_or(0);
        if n == 0 {
            conn.abort();
            return Err(ServeError::SourceChanged);
        }
        stream.write_all(&chunk[..n]).map_err(ServeError::Io)?;
        conn.transmitted(now(), n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use std::vec::Vec;

    use super::*;
    use crate::cache::{
        ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
    };
    use crate::serve::{Config, SiteParts};
    use crate::source::{StaticFile, StaticSource};

    static FILES: &[StaticFile] = &[StaticFile {
        path: "big.bin",
        data: &[9u8; 5000],
        modified: None,
    }];

    /// A stream that reads from `input`, 7 bytes at a time, and collects what is written.
    struct Pipe<'a> {
        input: &'a [u8],
        out: Vec<u8>,
    }

    impl embedded_io::ErrorType for Pipe<'_> {
        type Error = embedded_io::ErrorKind;
    }

    impl Read for Pipe<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.input.len()).min(7);
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    impl Write for Pipe<'_> {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// Two pipelined requests read 7 bytes at a time, bodies copied through a small chunk: both
    /// answered in order, and the events name each request and count every byte written.
    #[test]
    fn serves_pipelined_requests_and_reports_them() {
        let store = ArenaStore::new([0u8; 8192], [const { Region::new() }; 4]).unwrap();
        let cache: ArrayCache<4, 8, 8192> = Cache::new(
            store,
            [const { Slot::new() }; 4],
            [const { Bucket::new() }; 8],
            CacheConfig::for_capacity(8192),
        )
        .unwrap();
        let site = SiteParts::new(
            StaticSource::new(FILES),
            RefCell::new(cache),
            Config::host(),
        );
        let input = b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let mut pipe = Pipe {
            input,
            out: Vec::new(),
        };
        let (mut rx, mut chunk) = ([0u8; 1024], [0u8; 300]);
        let mut log = Vec::new();
        let result = serve::<_, _, 1024>(
            &site,
            &mut pipe,
            &mut rx,
            &mut chunk,
            || Instant::from_millis(0),
            |event, data| match event {
                Event::Response(info) => log.push((
                    std::string::String::from_utf8_lossy(info.target.of(data)).into_owned(),
                    info.status.as_u16(),
                    None,
                )),
                Event::Done(done) => log.last_mut().unwrap().2 = Some(done),
            },
        );
        assert_eq!(result, Ok(()));
        let out = std::string::String::from_utf8_lossy(&pipe.out).into_owned();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("HTTP/1.1 404 Not Found\r\n"), "{out}");
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!((log[0].0.as_str(), log[0].1), ("/big.bin", 200));
        assert_eq!((log[1].0.as_str(), log[1].1), ("/nope", 404));
        let sent: u64 = log.iter().map(|l| l.2.unwrap().sent).sum();
        assert!(log.iter().all(|l| l.2.unwrap().complete));
        assert_eq!(sent, pipe.out.len() as u64);
    }
}
