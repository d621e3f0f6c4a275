//! embedded-nal's [`TcpClientStack`] over smoltcp, so the core's client runs on a board.
//!
//! # Why our own adapter
//!
//! `smoltcp-nal` exists, but for smoltcp 0.12 only, and it brings a DHCP client, a DNS socket
//! and `heapless` 0.8 with it. What the client needs is four calls over TCP sockets the board
//! already has, so this adapter is a few hundred lines over the current smoltcp, shares the server's
//! [`SocketSet`] and poll loop, and adds no dependency beyond embedded-nal itself.
//!
//! # Polling
//!
//! The embedded-nal calls are non-blocking (`nb`): a caller retries on `WouldBlock`, and each
//! call polls the interface, so retrying is what moves packets. [`NalStack`] owns the
//! interface, the device and the socket set, and calls a [`Background`] after every interface
//! poll: the board's other work, such as a [`Server`], so that serving goes on
//! while a download waits.

use core::net::SocketAddr;

use ::smoltcp::iface::{Interface, SocketHandle, SocketSet};
use ::smoltcp::phy::Device;
use ::smoltcp::socket::tcp;
use ::smoltcp::time::Instant as SmolInstant;
use ::smoltcp::wire::{IpAddress, IpEndpoint};
use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind};

use super::Server;
use crate::serve::Site;

/// Work done after every interface poll of a [`NalStack`] (e.g. a [`Server`]).
pub trait Background {
    /// Does what is due at `now` on `sockets`; returns whether anything changed.
    fn poll(&mut self, now: SmolInstant, sockets: &mut SocketSet<'_>) -> bool;
}

/// Nothing in the background.
impl Background for () {
    fn poll(&mut self, _now: SmolInstant, _sockets: &mut SocketSet<'_>) -> bool {
        false
    }
}

impl<S: Site, const N: usize, const TX: usize, const STAGE: usize> Background
    for Server<'_, S, N, TX, STAGE>
{
    fn poll(&mut self, now: SmolInstant, sockets: &mut SocketSet<'_>) -> bool {
        Server::poll(self, now, sockets)
    }
}

/// Why a [`NalStack`] call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NalError {
    /// Every client socket is in use (or still closing).
    NoSocket,
    /// The address is not IPv4 (the stack is built with `proto-ipv4` only).
    Unsupported,
    /// smoltcp refused to connect (no route, unspecified address, socket not closed).
    Connect(tcp::ConnectError),
    /// The connection was refused or reset by the peer, or timed out.
    Reset,
    /// The socket cannot send: not connected, or this side was closed.
    PipeClosed,
}

impl TcpError for NalError {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Self::PipeClosed => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

impl core::fmt::Display for NalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSocket => f.write_str("no free client socket"),
            Self::Unsupported => f.write_str("only IPv4 is supported"),
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Reset => f.write_str("connection refused or reset"),
            Self::PipeClosed => f.write_str("socket not open for sending"),
        }
    }
}

impl core::error::Error for NalError {}

/// A client socket of a [`NalStack`] (an index into its pool).
#[derive(Debug, PartialEq, Eq)]
pub struct NalSocket {
    index: usize,
}

/// The first local port used for outgoing connections (the IANA dynamic range).
const EPHEMERAL_FIRST: u16 = 49_152;

/// One TCP client socket of the pool.
#[derive(Debug, Clone, Copy)]
struct ClientSlot {
    handle: SocketHandle,
    in_use: bool,
    /// `connect` was issued and has not failed yet.
    connecting: bool,
}

/// A smoltcp interface, device and socket set seen as an embedded-nal [`TcpClientStack`], with
/// `M` client sockets. See the [module docs](self).
///
/// `clock` gives smoltcp's time; `background` runs after every interface poll.
pub struct NalStack<'a, D: Device, C: FnMut() -> SmolInstant, B: Background, const M: usize> {
    iface: Interface,
    device: D,
    sockets: SocketSet<'a>,
    clock: C,
    background: B,
    clients: [ClientSlot; M],
    next_port: u16,
}

impl<'a, D: Device, C: FnMut() -> SmolInstant, B: Background, const M: usize>
    NalStack<'a, D, C, B, M>
{
    /// A stack over `iface`, `device` and `sockets`, whose client sockets are `clients`
    /// (TCP sockets already in `sockets`, e.g. from
    /// [`SocketBuffers::add_sockets`](super::SocketBuffers::add_sockets)).
    pub fn new(
        iface: Interface,
        device: D,
        sockets: SocketSet<'a>,
        clients: [SocketHandle; M],
        clock: C,
        background: B,
    ) -> Self {
        Self {
            iface,
            device,
            sockets,
            clock,
            background,
            clients: clients.map(|handle| ClientSlot {
                handle,
                in_use: false,
                connecting: false,
            }),
            next_port: EPHEMERAL_FIRST,
        }
    }

    /// One round of the poll loop: the interface, then the background, then the interface
    /// again if the background produced anything. Returns whether anything changed.
    pub fn poll(&mut self) -> bool {
        let now = (self.clock)();
        let mut changed = self.iface.poll(now, &mut self.device, &mut self.sockets)
            == ::smoltcp::iface::PollResult::SocketStateChanged;
        if self.background.poll(now, &mut self.sockets) {
            changed = true;
            self.iface.poll(now, &mut self.device, &mut self.sockets);
        }
        changed
    }

    /// The interface.
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The device.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The socket set (server and client sockets alike).
    pub fn sockets_mut(&mut self) -> &mut SocketSet<'a> {
        &mut self.sockets
    }

    /// The background work.
    pub fn background_mut(&mut self) -> &mut B {
        &mut self.background
    }

    fn slot(&mut self, socket: &NalSocket) -> Result<&mut ClientSlot, NalError> {
        self.clients
            .get_mut(socket.index)
            .filter(|s| s.in_use)
            .ok_or(NalError::NoSocket)
    }

    fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'a> {
        self.sockets.get_mut::<tcp::Socket<'a>>(handle)
    }

    fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX {
            EPHEMERAL_FIRST
        } else {
            port + 1
        };
        port
    }
}

impl<'a, D: Device, C: FnMut() -> SmolInstant, B: Background, const M: usize> TcpClientStack
    for NalStack<'a, D, C, B, M>
{
    type TcpSocket = NalSocket;
    type Error = NalError;

    /// A free client socket whose previous connection is over (closed, or in TIME-WAIT).
    fn socket(&mut self) -> Result<NalSocket, NalError> {
        self.poll();
        let mut free = None;
        for (index, slot) in self.clients.iter().enumerate() {
            if !slot.in_use && !self.sockets.get::<tcp::Socket<'a>>(slot.handle).is_open() {
                free = Some(index);
                break;
            }
        }
        let index = free.ok_or(NalError::NoSocket)?;
        let handle = self.clients.get(index).ok_or(NalError::NoSocket)?.handle;
        // Out of TIME-WAIT at once: this side has already closed, nothing more can arrive
        // that matters, and a new connection uses a new local port.
        self.tcp(handle).abort();
        if let Some(slot) = self.clients.get_mut(index) {
            slot.in_use = true;
            slot.connecting = false;
        }
        Ok(NalSocket { index })
    }

    fn connect(&mut self, socket: &mut NalSocket, remote: SocketAddr) -> nb::Result<(), NalError> {
        let SocketAddr::V4(remote) = remote else {
            return Err(nb::Error::Other(NalError::Unsupported));
        };
        let slot = *self.slot(socket)?;
        if !slot.connecting {
            let local = self.ephemeral_port();
            let endpoint = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
            let cx = self.iface.context();
            self.sockets
                .get_mut::<tcp::Socket<'a>>(slot.handle)
                .connect(cx, endpoint, local)
                .map_err(|e| nb::Error::Other(NalError::Connect(e)))?;
            self.slot(socket)?.connecting = true;
        }
        self.poll();
        match self.tcp(slot.handle).state() {
            tcp::State::SynSent | tcp::State::SynReceived => Err(nb::Error::WouldBlock),
            tcp::State::Closed | tcp::State::TimeWait | tcp::State::Listen => {
                self.slot(socket)?.connecting = false;
                Err(nb::Error::Other(NalError::Reset))
            }
            _ => Ok(()),
        }
    }

    fn send(&mut self, socket: &mut NalSocket, buffer: &[u8]) -> nb::Result<usize, NalError> {
        let handle = self.slot(socket)?.handle;
        self.poll();
        let tcp = self.tcp(handle);
        if !tcp.may_send() {
            return Err(nb::Error::Other(match tcp.state() {
                tcp::State::Closed => NalError::Reset,
                _ => NalError::PipeClosed,
            }));
        }
        let n = tcp
            .send_slice(buffer)
            .map_err(|_| nb::Error::Other(NalError::PipeClosed))?;
        if n == 0 && !buffer.is_empty() {
            return Err(nb::Error::WouldBlock);
        }
        // Put it on the wire now rather than on the next call.
        self.poll();
        Ok(n)
    }

    /// `Ok(0)` once the peer has closed and everything it sent was read (as `std` and
    /// `std-embedded-nal` do); [`NalError::Reset`] when the connection was reset instead.
    fn receive(
        &mut self,
        socket: &mut NalSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, NalError> {
        let handle = self.slot(socket)?.handle;
        self.poll();
        let tcp = self.tcp(handle);
        if tcp.can_recv() {
            let n = tcp
                .recv_slice(buffer)
                .map_err(|_| nb::Error::Other(NalError::Reset))?;
            // The window just opened: tell the peer.
            self.poll();
            return Ok(n);
        }
        match tcp.state() {
            tcp::State::Closed => Err(nb::Error::Other(NalError::Reset)),
            _ if !tcp.may_recv() => Ok(0),
            _ => Err(nb::Error::WouldBlock),
        }
    }

    /// Closes this side (a FIN after what is still queued) and returns the socket to the pool;
    /// it is reused once smoltcp has finished closing it.
    fn close(&mut self, socket: NalSocket) -> Result<(), NalError> {
        let slot = self.slot(&socket)?;
        slot.in_use = false;
        slot.connecting = false;
        let handle = slot.handle;
        self.tcp(handle).close();
        self.poll();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    use core::sync::atomic::{AtomicI64, Ordering};
    use std::boxed::Box;
    use std::vec::Vec;

    use ::smoltcp::iface::{Config as IfaceConfig, SocketStorage};
    use ::smoltcp::phy::{Loopback, Medium};
    use ::smoltcp::wire::{HardwareAddress, IpCidr};

    use super::*;
    use crate::cache::{
        ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
    };
    use crate::serve::{Config, SiteParts};
    use crate::smoltcp::SocketBuffers;
    use crate::source::{StaticFile, StaticSource};

    type Board = ArrayCache<2, 4, 1024>;

    type TestSite = SiteParts<StaticSource, RefCell<Board>>;

    static FILES: &[StaticFile] = &[StaticFile {
        path: "hello.txt",
        data: b"hello, satchel\n",
        modified: None,
    }];

    /// A virtual clock: one millisecond per reading.
    fn tick() -> SmolInstant {
        static NOW: AtomicI64 = AtomicI64::new(0);
        SmolInstant::from_millis(NOW.fetch_add(1, Ordering::Relaxed))
    }

    type TestServer = Server<'static, TestSite, 1, 1024, 8200>;

    /// A stack on Loopback (127.0.0.1) with `M` client sockets and a server on port 80.
    fn stack<const M: usize>() -> NalStack<'static, Loopback, fn() -> SmolInstant, TestServer, M> {
        let store = ArenaStore::new([0u8; 1024], [const { Region::new() }; 2]).unwrap();
        let cache = Cache::new(
            store,
            [const { Slot::new() }; 2],
            [const { Bucket::new() }; 4],
            CacheConfig::for_capacity(1024),
        )
        .unwrap();
        let site = Box::leak(Box::new(SiteParts::new(
            StaticSource::new(FILES),
            RefCell::new(cache),
            Config::host(),
        )));
        let mut device = Loopback::new(Medium::Ip);
        let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device, tick());
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
        });
        let storage = Box::leak(Box::new([SocketStorage::EMPTY; 4]));
        let mut sockets = SocketSet::new(&mut storage[..]);
        let server_buffers = Box::leak(Box::new(SocketBuffers::<1, 1024, 1024>::new()));
        let client_buffers = Box::leak(Box::new(SocketBuffers::<M, 1024, 1024>::new()));
        let server = Server::new(site, 80, server_buffers.add_sockets(&mut sockets)).unwrap();
        let clients = client_buffers.add_sockets(&mut sockets);
        NalStack::new(
            iface,
            device,
            sockets,
            clients,
            tick as fn() -> SmolInstant,
            server,
        )
    }

    fn block<T>(mut op: impl FnMut() -> nb::Result<T, NalError>) -> Result<T, NalError> {
        for _ in 0..10_000 {
            match op() {
                Ok(v) => return Ok(v),
                Err(nb::Error::Other(e)) => return Err(e),
                Err(nb::Error::WouldBlock) => {}
            }
        }
        panic!("still blocked after 10,000 rounds");
    }

    fn local(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn get_over_the_adapter_then_eof() {
        let mut stack = stack::<1>();
        let mut socket = stack.socket().unwrap();
        block(|| stack.connect(&mut socket, local(80))).unwrap();
        let req = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let mut sent = 0;
        while sent < req.len() {
            sent += block(|| stack.send(&mut socket, &req[sent..])).unwrap();
        }
        let mut out = Vec::new();
        loop {
            let mut buf = [0u8; 100];
            let n = block(|| stack.receive(&mut socket, &mut buf)).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(out.ends_with(b"\r\n\r\nhello, satchel\n"));
        stack.close(socket).unwrap();
        for _ in 0..50 {
            stack.poll();
        }
        // The socket is back in the pool.
        let again = stack.socket().unwrap();
        stack.close(again).unwrap();
    }

    #[test]
    fn refused_unsupported_and_exhausted() {
        let mut stack = stack::<1>();
        let mut socket = stack.socket().unwrap();
        assert_eq!(stack.socket(), Err(NalError::NoSocket), "one socket only");
        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 80, 0, 0));
        assert_eq!(
            stack.connect(&mut socket, v6),
            Err(nb::Error::Other(NalError::Unsupported))
        );
        // Nothing listens on port 81: smoltcp answers the SYN with a reset.
        assert_eq!(
            block(|| stack.connect(&mut socket, local(81))),
            Err(NalError::Reset)
        );
        assert_eq!(
            stack.send(&mut socket, b"x"),
            Err(nb::Error::Other(NalError::Reset))
        );
        assert_eq!(NalError::PipeClosed.kind(), TcpErrorKind::PipeClosed);
        assert_eq!(NalError::Reset.kind(), TcpErrorKind::Other);
        stack.close(socket).unwrap();
        assert!(
            stack.socket().is_ok(),
            "a refused socket is reusable at once"
        );
    }
}
