//! Blocking drivers over embedded-nal's [`TcpClientStack`]: [`download`] runs a whole
//! [`Download`] session (redirects, retries, resume: the session decides, the driver moves
//! bytes), [`exchange`] one request and its response.
//!
//! The stack is non-blocking (`nb`); when it would block, the driver asks a [`Waiter`] to park
//! until the socket may have news or a deadline passes. The host's waiter polls the socket's
//! file descriptor; a board's waiter runs its smoltcp poll loop. The drivers read time only
//! through the waiter, so the same code runs on a fake clock in tests.
//!
//! Timeouts are the core's [`ResponseTimer`]: the whole response head must arrive within
//! `timeout` of the request being sent (so a server dripping its head a byte at a time cannot
//! hold us), and while the body lasts, every `timeout` window must bring at least
//! [`MIN_PROGRESS`] bytes (so a body dripped a byte a second times out too, like curl's
//! `--speed-limit`).

use core::fmt;
use core::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack};

use super::pipeline::{Action as PipelineAction, Event as PipelineEvent, Pipeline};
use super::session::{
    self, Action, ConnectFailure, Download, Event, ResponseTimer, Retry, Saved, Start,
};
use super::{Event as ExchangeEvent, Exchange, ExchangeError, Request, Response};
use crate::time::{Duration, Instant};

pub use super::session::MIN_PROGRESS;

/// Time and readiness, as the platform provides them.
pub trait Waiter {
    /// The current time on a monotonic clock.
    fn now(&mut self) -> Instant;
    /// Parks until the socket may be readable or writable, or until `deadline`. Waking early
    /// is allowed; the driver simply tries again.
    fn wait(&mut self, deadline: Instant);
}

/// Receives what an exchange reads.
pub trait Handler {
    /// The handler's own error (e.g. a file write failing).
    type Error;

    /// Called once with the final response head, before any body byte.
    ///
    /// # Errors
    /// Any error stops the exchange (and the connection is then unusable).
    fn head(&mut self, response: &Response<'_>) -> Result<(), Self::Error>;

    /// Called with each run of body data, in order.
    ///
    /// # Errors
    /// Any error stops the exchange.
    fn body(&mut self, data: &[u8]) -> Result<(), Self::Error>;
}

/// The caller's buffers for one exchange.
#[derive(Debug)]
pub struct Buffers<'b> {
    /// Holds the encoded request head.
    pub tx: &'b mut [u8],
    /// Holds the response head (bounding its size), then body data in chunks of up to its
    /// length.
    pub rx: &'b mut [u8],
}

/// How an exchange ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// Body bytes received.
    pub body_len: u64,
}

/// Why an exchange (or a connect) failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum FetchError<N, E> {
    /// The network stack failed.
    Net(N),
    /// No progress within the timeout.
    Timeout,
    /// The response was malformed, lying, or cut short.
    Exchange(ExchangeError),
    /// The request could not be encoded.
    Encode(super::EncodeError),
    /// The handler failed.
    Handler(E),
}

impl<N: fmt::Debug, E: fmt::Display> fmt::Display for FetchError<N, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(e) => write!(f, "network error: {e:?}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Exchange(e) => fmt::Display::fmt(e, f),
            Self::Encode(e) => fmt::Display::fmt(e, f),
            Self::Handler(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<N: fmt::Debug, E: fmt::Debug + fmt::Display> core::error::Error for FetchError<N, E> {}

/// Opens a socket and connects it to `remote`, bounded by `timeout`.
///
/// # Errors
/// [`FetchError::Net`] when the stack refuses; [`FetchError::Timeout`] when the connection is
/// not established in time.
pub fn connect<S: TcpClientStack, W: Waiter, E>(
    stack: &mut S,
    waiter: &mut W,
    remote: SocketAddr,
    timeout: Duration,
) -> Result<S::TcpSocket, FetchError<S::Error, E>> {
    let mut socket = stack.socket().map_err(FetchError::Net)?;
    let deadline = waiter.now() + timeout;
    loop {
        match stack.connect(&mut socket, remote) {
            Ok(()) => return Ok(socket),
            Err(nb::Error::Other(e)) => {
                let _ = stack.close(socket);
                return Err(FetchError::Net(e));
            }
            Err(nb::Error::WouldBlock) => {
                if waiter.now() >= deadline {
                    let _ = stack.close(socket);
                    return Err(FetchError::Timeout);
                }
                waiter.wait(deadline);
            }
        }
    }
}

/// Sends `request` on a connected socket and reads the whole response into `handler`.
///
/// The request head is encoded into `buffers.tx`; the response head must fit `buffers.rx`,
/// which then carries the body to the handler in runs of up to its length. Time limits are
/// those of the module doc, with `timeout` as the window.
///
/// # Errors
/// See [`FetchError`]. After an error the socket must be closed, not reused.
pub fn exchange<S, W, H>(
    stack: &mut S,
    socket: &mut S::TcpSocket,
    waiter: &mut W,
    request: &Request<'_>,
    timeout: Duration,
    buffers: Buffers<'_>,
    handler: &mut H,
) -> Result<Exchanged, FetchError<S::Error, H::Error>>
where
    S: TcpClientStack,
    W: Waiter,
    H: Handler,
{
    let Buffers { tx, rx } = buffers;
    let len = request.encode(tx).map_err(FetchError::Encode)?;
    let mut sent = 0usize;
    let mut deadline = waiter.now() + timeout;
    while let Some(out) = tx.get(sent..len).filter(|o| !o.is_empty()) {
        match stack.send(socket, out) {
            Ok(n) => {
                sent += n;
                deadline = waiter.now() + timeout;
            }
            Err(nb::Error::Other(e)) => return Err(FetchError::Net(e)),
            Err(nb::Error::WouldBlock) => park(waiter, deadline)?,
        }
    }

    let mut ex = Exchange::new(false, rx.len());
    let mut timer = ResponseTimer::new(waiter.now(), timeout);
    let mut filled = 0usize;
    loop {
        // Drain what is buffered.
        let mut start = 0usize;
        loop {
            let input = rx.get(start..filled).unwrap_or_default();
            let (n, event) = ex.handle_input(input).map_err(FetchError::Exchange)?;
            start += n;
            match event {
                ExchangeEvent::NeedMore => break,
                ExchangeEvent::Head(response) => {
                    handler.head(&response).map_err(FetchError::Handler)?;
                }
                ExchangeEvent::Body(data) => handler.body(data).map_err(FetchError::Handler)?,
                ExchangeEvent::Done { keep_alive } => {
                    return Ok(Exchanged {
                        keep_alive,
                        body_len: ex.body_received(),
                    })
                }
            }
        }
        rx.copy_within(start..filled, 0);
        filled -= start;
        timer
            .check(waiter.now(), &ex)
            .map_err(|_| FetchError::Timeout)?;

        // Receive more.
        let Some(space) = rx.get_mut(filled..).filter(|s| !s.is_empty()) else {
            // Only a head larger than rx can fill it; the exchange reports that itself.
            return Err(FetchError::Exchange(ExchangeError::Head(
                super::HeadError::TooLarge,
            )));
        };
        match stack.receive(socket, space) {
            Ok(0) => {
                if let ExchangeEvent::Done { keep_alive } =
                    ex.handle_eof().map_err(FetchError::Exchange)?
                {
                    return Ok(Exchanged {
                        keep_alive,
                        body_len: ex.body_received(),
                    });
                }
            }
            Ok(n) => filled += n,
            Err(nb::Error::Other(e)) => return Err(FetchError::Net(e)),
            Err(nb::Error::WouldBlock) if waiter.now() < timer.deadline() => {
                waiter.wait(timer.deadline());
            }
            Err(nb::Error::WouldBlock) => {}
        }
    }
}

/// Receives what a [`download`] saves.
pub trait Sink {
    /// The sink's own error (e.g. a file write failing).
    type Error;

    /// Called with each response to save, before its body: truncate, append or finish.
    ///
    /// # Errors
    /// Any error ends the download (and closes the connection).
    fn start(&mut self, start: &Start<'_>) -> Result<(), Self::Error>;

    /// Called with each run of body data, in order.
    ///
    /// # Errors
    /// Any error ends the download.
    fn body(&mut self, data: &[u8]) -> Result<(), Self::Error>;

    /// A retry is about to wait until `retry.at`; the host tells the user.
    fn retry(&mut self, retry: &Retry) {
        let _ = retry;
    }
}

/// Why a [`download`] failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum DownloadError<E> {
    /// The session gave up (after its retries): see [`session::Error`].
    Session(session::Error),
    /// A request could not be encoded into the send buffer.
    Encode(super::EncodeError),
    /// The sink failed.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for DownloadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(e) => fmt::Display::fmt(e, f),
            Self::Encode(e) => fmt::Display::fmt(e, f),
            Self::Sink(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for DownloadError<E> {}

/// Connects to `remote` with [`connect`], for [`download`]: a refusal by the stack is
/// [`ConnectFailure::Refused`], no connection by the deadline [`ConnectFailure::TimedOut`].
pub fn connector<S: TcpClientStack, W: Waiter>(
    remote: SocketAddr,
) -> impl FnMut(&mut S, &mut W, Instant) -> Result<S::TcpSocket, ConnectFailure> {
    move |stack, waiter, deadline| {
        let timeout = deadline.saturating_since(waiter.now());
        connect::<S, W, ()>(stack, waiter, remote, timeout).map_err(|e| match e {
            FetchError::Timeout => ConnectFailure::TimedOut,
            _ => ConnectFailure::Refused,
        })
    }
}

/// Runs a whole download [`Download`] session over a [`TcpClientStack`]: the session decides
/// (redirects, retries, resume, timeouts), this driver only moves bytes between the socket and
/// the `sink`, and waits.
///
/// `socket` is the connection to the server, kept between downloads: used when the session
/// was created with `connected`, replaced when the session asks for a new one (through
/// `connect`, which opens one by the deadline it is given), and left open at the end only when
/// the session says it may be kept. `buffers.rx` must be the session's
/// [`Config::head_capacity`](session::Config) long.
///
/// # Errors
/// See [`DownloadError`]; on an error the connection is closed.
pub fn download<S, W, K, C>(
    stack: &mut S,
    waiter: &mut W,
    socket: &mut Option<S::TcpSocket>,
    mut connect: C,
    session: &mut Download<'_>,
    buffers: Buffers<'_>,
    sink: &mut K,
) -> Result<Saved, DownloadError<K::Error>>
where
    S: TcpClientStack,
    W: Waiter,
    K: Sink,
    C: FnMut(&mut S, &mut W, Instant) -> Result<S::TcpSocket, ConnectFailure>,
{
    let mut io = Io::new(buffers);
    let result = loop {
        let now = waiter.now();
        match session.poll(now) {
            Action::Connect => {
                close(stack, socket);
                let deadline = session.poll_timeout().unwrap_or(now);
                match connect(stack, waiter, deadline) {
                    Ok(s) => {
                        *socket = Some(s);
                        session.handle_connected(waiter.now());
                    }
                    Err(why) => session.handle_connect_failed(waiter.now(), why),
                }
            }
            Action::Send(request) => {
                if let Err(e) = io.load(&request) {
                    break Err(DownloadError::Encode(e));
                }
            }
            Action::Receive => {
                let Some(sock) = socket.as_mut() else {
                    session.handle_broken(now);
                    continue;
                };
                io.transfer(stack, sock, waiter, session);
                if let Err(e) = io.deliver(session, waiter.now(), sink) {
                    break Err(DownloadError::Sink(e));
                }
            }
            Action::Retry(r) => sink.retry(&r),
            Action::Wait(t) => {
                close(stack, socket);
                waiter.wait(t);
            }
            Action::Done(r) => break r.map_err(DownloadError::Session),
        }
    };
    if result.is_err() || !session.keep_alive() {
        close(stack, socket);
    }
    result
}

fn close<S: TcpClientStack>(stack: &mut S, socket: &mut Option<S::TcpSocket>) {
    if let Some(old) = socket.take() {
        let _ = stack.close(old);
    }
}

/// A [`download`]'s buffers and how far they are used.
struct Io<'b> {
    tx: &'b mut [u8],
    rx: &'b mut [u8],
    /// Request bytes sent, of `len` encoded.
    sent: usize,
    len: usize,
    /// Response bytes received and not yet consumed.
    filled: usize,
}

impl<'b> Io<'b> {
    fn new(buffers: Buffers<'b>) -> Self {
        Self {
            tx: buffers.tx,
            rx: buffers.rx,
            sent: 0,
            len: 0,
            filled: 0,
        }
    }

    /// Encodes the next request; nothing of it is sent and nothing of its answer received yet.
    fn load(&mut self, request: &Request<'_>) -> Result<(), super::EncodeError> {
        self.len = request.encode(self.tx)?;
        self.sent = 0;
        self.filled = 0;
        Ok(())
    }

    /// One send (while the request lasts) or receive on `sock`, reported to the session;
    /// parks until the session's next deadline when the socket has nothing.
    fn transfer<S: TcpClientStack, W: Waiter>(
        &mut self,
        stack: &mut S,
        sock: &mut S::TcpSocket,
        waiter: &mut W,
        session: &mut Download<'_>,
    ) {
        let now = waiter.now();
        let step = if let Some(out) = self.tx.get(self.sent..self.len).filter(|o| !o.is_empty()) {
            stack.send(sock, out).map(|n| self.sent += n)
        } else if let Some(space) = self.rx.get_mut(self.filled..).filter(|s| !s.is_empty()) {
            stack.receive(sock, space).map(|n| match n {
                0 => session.handle_eof(now),
                n => self.filled += n,
            })
        } else {
            // Not reached: a head that does not fit rx ends the session first, and a body is
            // consumed as it comes. Give up on the connection all the same.
            session.handle_broken(now);
            Ok(())
        };
        match step {
            Ok(()) => {}
            Err(nb::Error::WouldBlock) => match session.poll_timeout() {
                Some(t) if now < t => waiter.wait(t),
                _ => session.handle_timeout(now),
            },
            Err(nb::Error::Other(_)) => session.handle_broken(waiter.now()),
        }
    }

    /// Feeds what was received to the session (and what it saves to `sink`); keeps the rest.
    fn deliver<K: Sink>(
        &mut self,
        session: &mut Download<'_>,
        now: Instant,
        sink: &mut K,
    ) -> Result<(), K::Error> {
        let used = feed(
            session,
            now,
            self.rx.get(..self.filled).unwrap_or_default(),
            sink,
        )?;
        self.rx.copy_within(used..self.filled, 0);
        self.filled -= used;
        Ok(())
    }
}

/// Feeds `input` to the session, handing what it saves to `sink`; returns the bytes consumed.
fn feed<K: Sink>(
    session: &mut Download<'_>,
    now: Instant,
    input: &[u8],
    sink: &mut K,
) -> Result<usize, K::Error> {
    let mut used = 0usize;
    loop {
        let (n, event) = session.handle_input(now, input.get(used..).unwrap_or_default());
        used += n;
        match event {
            Event::NeedMore | Event::Ended => return Ok(used),
            Event::Start(start) => sink.start(&start)?,
            Event::Body(data) => sink.body(data)?,
        }
    }
}

/// What a [`pipeline`] run saves, and where its downloads come from.
pub trait Jobs<'a, const N: usize> {
    /// The jobs' own error (e.g. a file write failing).
    type Error;

    /// Fills free slots with new downloads ([`Pipeline::push`]); called before every step.
    fn refill(&mut self, pipeline: &mut Pipeline<'a, N>, now: Instant);

    /// Called with each response `slot` saves, before its body (as [`Sink::start`]).
    ///
    /// # Errors
    /// Any error ends that download (and the connection: the requests behind it are sent
    /// again on a new one).
    fn start(&mut self, slot: usize, start: &Start<'_>) -> Result<(), Self::Error>;

    /// Called with each run of `slot`'s body data, in order.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    fn body(&mut self, slot: usize, data: &[u8]) -> Result<(), Self::Error>;

    /// `slot`'s download is about to wait until `retry.at`.
    fn retry(&mut self, slot: usize, retry: &Retry) {
        let _ = (slot, retry);
    }

    /// `slot`'s download is over and out of the pipeline (the slot is free again).
    fn done(
        &mut self,
        slot: usize,
        download: Download<'a>,
        result: Result<Saved, DownloadError<Self::Error>>,
    );
}

/// The longest request head a [`pipeline`] expects to encode: the driver sends no new request
/// while its send buffer has less room than this (and one at a time when it is smaller).
pub const MAX_REQUEST: usize = super::target::MAX_TARGET + 2 * session::MAX_VALIDATOR + 1024;

/// Runs a [`Pipeline`] over a [`TcpClientStack`] until `jobs` has no more downloads: the
/// requests are sent ahead on one connection, up to the pipeline's depth, and the answers fed
/// back in order; each download keeps every rule of its session. `buffers.tx` holds the
/// requests not yet sent (best a few [`MAX_REQUEST`]s long), `buffers.rx` must be the
/// sessions' [`Config::head_capacity`](session::Config) long. The connection is closed at the
/// end.
pub fn pipeline<'a, S, W, J, C, const N: usize>(
    stack: &mut S,
    waiter: &mut W,
    socket: &mut Option<S::TcpSocket>,
    mut connect: C,
    pipeline: &mut Pipeline<'a, N>,
    buffers: Buffers<'_>,
    jobs: &mut J,
) where
    S: TcpClientStack,
    W: Waiter,
    J: Jobs<'a, N>,
    C: FnMut(&mut S, &mut W, Instant) -> Result<S::TcpSocket, ConnectFailure>,
{
    let mut io = Io::new(buffers);
    // Every byte in rx has been offered to the pipeline since the last receive.
    let mut offered = true;
    loop {
        let now = waiter.now();
        jobs.refill(pipeline, now);
        if io.sent == io.len {
            (io.sent, io.len) = (0, 0);
        }
        let room = io.tx.len() - io.len;
        match pipeline.poll(now, room >= MAX_REQUEST) {
            PipelineAction::Connect => {
                close(stack, socket);
                (io.sent, io.len, io.filled, offered) = (0, 0, 0, true);
                let deadline = pipeline.poll_timeout().unwrap_or(now);
                match connect(stack, waiter, deadline) {
                    Ok(s) => {
                        *socket = Some(s);
                        pipeline.handle_connected(waiter.now());
                    }
                    Err(why) => pipeline.handle_connect_failed(waiter.now(), why),
                }
            }
            PipelineAction::Send { slot, request } => {
                let encoded = io.tx.get_mut(io.len..).map(|free| request.encode(free));
                match encoded {
                    Some(Ok(n)) => io.len += n,
                    Some(Err(e)) => fail_slot(pipeline, jobs, slot, now, DownloadError::Encode(e)),
                    None => fail_slot(
                        pipeline,
                        jobs,
                        slot,
                        now,
                        DownloadError::Encode(super::EncodeError::BufferTooSmall),
                    ),
                }
            }
            PipelineAction::Receive if !offered => {
                offered = true;
                if let Err((slot, e)) = io.offer(pipeline, waiter.now(), jobs) {
                    fail_slot(pipeline, jobs, slot, waiter.now(), DownloadError::Sink(e));
                }
            }
            PipelineAction::Receive => {
                let Some(sock) = socket.as_mut() else {
                    pipeline.handle_broken(now);
                    continue;
                };
                offered = !io.exchange(stack, sock, waiter, pipeline);
            }
            PipelineAction::Retry { slot, retry } => jobs.retry(slot, &retry),
            PipelineAction::Wait(t) => {
                close(stack, socket);
                (io.sent, io.len, io.filled, offered) = (0, 0, 0, true);
                waiter.wait(t);
            }
            PipelineAction::Done { slot, result } => {
                if let Some(download) = pipeline.remove(slot, now) {
                    jobs.done(slot, download, result.map_err(DownloadError::Session));
                }
            }
            PipelineAction::Idle => break,
        }
    }
    close(stack, socket);
}

/// Ends `slot`'s download with `error` (the connection goes with it).
fn fail_slot<'a, J: Jobs<'a, N>, const N: usize>(
    pipeline: &mut Pipeline<'a, N>,
    jobs: &mut J,
    slot: usize,
    now: Instant,
    error: DownloadError<J::Error>,
) {
    if let Some(download) = pipeline.remove(slot, now) {
        jobs.done(slot, download, Err(error));
    }
}

impl Io<'_> {
    /// Sends what is waiting and receives what has come, reporting to the pipeline; parks
    /// until its next deadline when the socket has nothing. Returns whether bytes arrived.
    fn exchange<S: TcpClientStack, W: Waiter, const N: usize>(
        &mut self,
        stack: &mut S,
        sock: &mut S::TcpSocket,
        waiter: &mut W,
        pipeline: &mut Pipeline<'_, N>,
    ) -> bool {
        let now = waiter.now();
        let mut progress = false;
        if let Some(out) = self.tx.get(self.sent..self.len).filter(|o| !o.is_empty()) {
            match stack.send(sock, out) {
                Ok(n) => {
                    self.sent += n;
                    progress = true;
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(_)) => {
                    pipeline.handle_broken(now);
                    return false;
                }
            }
        }
        // Receive even while requests wait to be sent: a server may stop reading until its
        // answers are read.
        let Some(space) = self.rx.get_mut(self.filled..).filter(|s| !s.is_empty()) else {
            // Not reached: a head that does not fit rx ends its session first.
            pipeline.handle_broken(now);
            return false;
        };
        match stack.receive(sock, space) {
            Ok(0) => pipeline.handle_eof(now),
            Ok(n) => {
                self.filled += n;
                return true;
            }
            Err(nb::Error::WouldBlock) if progress => {}
            Err(nb::Error::WouldBlock) => match pipeline.poll_timeout() {
                Some(t) if now < t => waiter.wait(t),
                _ => pipeline.handle_timeout(now),
            },
            Err(nb::Error::Other(_)) => pipeline.handle_broken(waiter.now()),
        }
        false
    }

    /// Feeds what was received to the pipeline (and what it saves to `jobs`); keeps the rest.
    fn offer<'a, J: Jobs<'a, N>, const N: usize>(
        &mut self,
        pipeline: &mut Pipeline<'a, N>,
        now: Instant,
        jobs: &mut J,
    ) -> Result<(), (usize, J::Error)> {
        let mut used = 0usize;
        let result = loop {
            let input = self.rx.get(used..self.filled).unwrap_or_default();
            let (n, event) = pipeline.handle_input(now, input);
            used += n;
            match event {
                PipelineEvent::NeedMore => break Ok(()),
                PipelineEvent::Start { slot, start } => {
                    if let Err(e) = jobs.start(slot, &start) {
                        break Err((slot, e));
                    }
                }
                PipelineEvent::Body { slot, data } => {
                    if let Err(e) = jobs.body(slot, data) {
                        break Err((slot, e));
                    }
                }
            }
        };
        self.rx.copy_within(used..self.filled, 0);
        self.filled -= used;
        result
    }
}

fn park<W: Waiter, N, E>(waiter: &mut W, deadline: Instant) -> Result<(), FetchError<N, E>> {
    if waiter.now() >= deadline {
        return Err(FetchError::Timeout);
    }
    waiter.wait(deadline);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A scripted peer: each receive gets the next scripted piece, `None` means "would block"
    /// (and the fake clock advances 1 s on the wait that follows).
    struct Scripted {
        sent: Vec<u8>,
        script: Vec<Option<&'static [u8]>>,
        clock: u64,
    }

    #[derive(Debug)]
    struct Never;

    impl embedded_nal::TcpError for Never {
        fn kind(&self) -> embedded_nal::TcpErrorKind {
            embedded_nal::TcpErrorKind::Other
        }
    }

    impl TcpClientStack for Scripted {
        type TcpSocket = ();
        type Error = Never;
        fn socket(&mut self) -> Result<(), Never> {
            Ok(())
        }
        fn connect(&mut self, _: &mut (), _: SocketAddr) -> nb::Result<(), Never> {
            Ok(())
        }
        fn send(&mut self, _: &mut (), buf: &[u8]) -> nb::Result<usize, Never> {
            let n = buf.len().min(7);
            self.sent.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn receive(&mut self, _: &mut (), buf: &mut [u8]) -> nb::Result<usize, Never> {
            if self.script.is_empty() {
                return Ok(0);
            }
            match self.script.remove(0) {
                None => Err(nb::Error::WouldBlock),
                Some(piece) => {
                    let n = piece.len().min(buf.len());
                    buf[..n].copy_from_slice(&piece[..n]);
                    if n < piece.len() {
                        self.script.insert(0, Some(&piece[n..]));
                    }
                    Ok(n)
                }
            }
        }
        fn close(&mut self, _: ()) -> Result<(), Never> {
            Ok(())
        }
    }

    struct Clock<'a>(&'a core::cell::Cell<u64>);

    impl Waiter for Clock<'_> {
        fn now(&mut self) -> Instant {
            Instant::from_millis(self.0.get())
        }
        fn wait(&mut self, _deadline: Instant) {
            self.0.set(self.0.get() + 1000);
        }
    }

    #[derive(Default)]
    struct Collect {
        status: u16,
        body: Vec<u8>,
    }

    impl Handler for Collect {
        type Error = &'static str;
        fn head(&mut self, r: &Response<'_>) -> Result<(), &'static str> {
            self.status = r.status;
            Ok(())
        }
        fn body(&mut self, data: &[u8]) -> Result<(), &'static str> {
            self.body.extend_from_slice(data);
            Ok(())
        }
    }

    fn fetch(
        script: Vec<Option<&'static [u8]>>,
        rx_len: usize,
    ) -> (
        Result<Exchanged, FetchError<Never, &'static str>>,
        Collect,
        Vec<u8>,
    ) {
        let mut peer = Scripted {
            sent: Vec::new(),
            script,
            clock: 0,
        };
        let time = core::cell::Cell::new(0);
        let mut clock = Clock(&time);
        let mut tx = [0u8; 256];
        let mut rx = std::vec![0u8; rx_len];
        let mut out = Collect::default();
        let req = Request::get("h", "/f");
        let r = exchange(
            &mut peer,
            &mut (),
            &mut clock,
            &req,
            Duration::from_secs(5),
            Buffers {
                tx: &mut tx,
                rx: &mut rx,
            },
            &mut out,
        );
        let _ = peer.clock;
        (r, out, peer.sent)
    }

    #[test]
    fn sends_request_and_reads_body_through_small_buffer() {
        let (r, out, sent) = fetch(
            std::vec![
                Some(&b"HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n"[..]),
                None,
                Some(b"abcdefghijklmnopqrstuvwxyz"),
            ],
            64,
        );
        assert_eq!(
            r.ok(),
            Some(Exchanged {
                keep_alive: true,
                body_len: 26
            })
        );
        assert_eq!(out.status, 200);
        assert_eq!(out.body, b"abcdefghijklmnopqrstuvwxyz");
        assert!(sent.starts_with(b"GET /f HTTP/1.1\r\nHost: h\r\n"));
        assert!(sent.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn dripping_head_times_out() {
        let mut script = Vec::new();
        for piece in b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".chunks(1) {
            script.push(None);
            script.push(Some(piece));
        }
        let (r, _, _) = fetch(script, 256);
        assert!(matches!(r, Err(FetchError::Timeout)), "{r:?}");
    }

    #[test]
    fn dripping_body_times_out() {
        let mut script = std::vec![Some(&b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"[..])];
        for piece in b"12345678".chunks(1) {
            script.push(None);
            script.push(Some(piece));
        }
        let (r, out, _) = fetch(script, 256);
        assert!(matches!(r, Err(FetchError::Timeout)), "{r:?}");
        assert!(out.body.len() < 8);
    }

    #[test]
    fn paused_but_plentiful_body_is_fine() {
        static CHUNK: [u8; 2048] = [b'x'; 2048];
        let mut script = std::vec![Some(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 20480\r\n\r\n"[..]
        )];
        for _ in 0..10 {
            script.push(None);
            script.push(Some(&CHUNK[..]));
        }
        let (r, out, _) = fetch(script, 4096);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(out.body.len(), 20480);
    }

    #[test]
    fn truncated_body_is_an_error() {
        let (r, out, _) = fetch(
            std::vec![Some(
                &b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n1234"[..]
            )],
            256,
        );
        assert!(matches!(
            r,
            Err(FetchError::Exchange(ExchangeError::Framing(
                super::super::FramingError::Truncated { received: 4 }
            )))
        ));
        assert_eq!(out.body, b"1234");
    }

    #[test]
    fn oversized_head_is_an_error() {
        let (r, _, _) = fetch(std::vec![Some(&b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"[..])], 32);
        assert!(matches!(
            r,
            Err(FetchError::Exchange(ExchangeError::Head(
                super::super::HeadError::TooLarge
            )))
        ));
    }
}
