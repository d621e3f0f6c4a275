//! The smallest complete board program around the satchel server: a Cortex-M4F reset handler,
//! a smoltcp interface on an Ethernet device, and the satchel smoltcp driver serving four
//! connections from files in flash through a 32 KiB cache. Built only to be measured:
//!
//! ```text
//! cd footprint && cargo build --release
//! size -A target/thumbv7em-none-eabihf/release/satchel-footprint     (or llvm-size)
//! nm -S --size-sort -C target/thumbv7em-none-eabihf/release/satchel-footprint
//! ```
//!
//! Variants, for the differences: `--features baseline` (the same stack with a TCP echo and no
//! satchel) and `--features client` (the server plus the core's download client over
//! `satchel_core::smoltcp::nal`). Give each its own `--target-dir` to keep all three.
//!
//! The Ethernet device is a stand-in whose behaviour the optimiser cannot see
//! (`core::hint::black_box`), so every path of the stack and the server stays in the binary
//! as it would with a real driver; the driver's own code is not counted.
#![no_std]
#![no_main]
#![cfg_attr(any(feature = "baseline", feature = "client"), allow(dead_code))]

use core::cell::RefCell;
use core::hint::black_box;

use cortex_m_rt::entry;
use satchel_core::cache::{
    ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
};
use satchel_core::http::request::Limits;
use satchel_core::serve::{Config, SiteParts};
use satchel_core::smoltcp::{Server, SocketBuffers};
use satchel_core::source::{StaticFile, StaticSource};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use static_cell::StaticCell;

/// Connections served at once.
const CONNECTIONS: usize = 4;
/// Response-head buffer per connection (holds the longest head PROTOCOL.md allows).
const HEAD_TX: usize = 4096;
/// The board's request-head limit, and the staging buffer just above it.
const MAX_HEAD: usize = 2048;
const STAGE: usize = MAX_HEAD + 64;
/// TCP socket buffers.
const SOCK_RX: usize = 1024;
const SOCK_TX: usize = 4096;
/// The cache: 16 files, 32 index buckets, 32 KiB of keys and content.
const CACHE_ENTRIES: usize = 16;
const CACHE_BYTES: usize = 32 * 1024;
const MTU: usize = 1514;
/// Socket slots: the server's, plus one client socket when the client is measured too.
const SOCKETS: usize = CONNECTIONS + if cfg!(feature = "client") { 1 } else { 0 };

type BoardCache = ArrayCache<CACHE_ENTRIES, { 2 * CACHE_ENTRIES }, CACHE_BYTES>;

static FILES: &[StaticFile] = &[
    StaticFile {
        path: "index.html",
        data: b"<!doctype html><title>satchel</title><h1>hello from the board</h1>\n",
        modified: Some(1_700_000_000),
    },
    StaticFile {
        path: "app.js",
        data: b"console.log('satchel');\n",
        modified: Some(1_700_000_000),
    },
];

type Board = SiteParts<StaticSource, RefCell<BoardCache>>;

/// An Ethernet device whose frames the optimiser cannot predict.
struct Ethernet {
    rx: [u8; MTU],
    tx: [u8; MTU],
}

struct Rx<'a>(&'a [u8]);
struct Tx<'a>(&'a mut [u8]);

impl smoltcp::phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(black_box(self.0))
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let n = len.min(self.0.len());
        let r = f(&mut self.0[..n]);
        black_box(&self.0);
        r
    }
}

impl Device for Ethernet {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        black_box(true).then(|| (Rx(&self.rx[..]), Tx(&mut self.tx[..])))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        black_box(true).then(|| Tx(&mut self.tx[..]))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = MTU;
        caps.medium = Medium::Ethernet;
        caps
    }
}

static SITE: StaticCell<Board> = StaticCell::new();
static SOCKET_BUFFERS: StaticCell<SocketBuffers<CONNECTIONS, SOCK_RX, SOCK_TX>> = StaticCell::new();
static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; SOCKETS]> = StaticCell::new();
static SERVER: StaticCell<Server<'static, Board, CONNECTIONS, HEAD_TX, STAGE>> = StaticCell::new();
static ETHERNET: StaticCell<Ethernet> = StaticCell::new();

/// A millisecond tick; on a real board, SysTick.
fn now() -> Instant {
    Instant::from_millis(black_box(0i64))
}

fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[entry]
fn main() -> ! {
    let mut config = Config::host();
    config.limits = Limits {
        max_request_line: 1024,
        max_head: MAX_HEAD,
    };
    let Ok(store) = ArenaStore::new([0u8; CACHE_BYTES], [const { Region::new() }; CACHE_ENTRIES])
    else {
        halt()
    };
    let Ok(cache) = Cache::new(
        store,
        [const { Slot::new() }; CACHE_ENTRIES],
        [const { Bucket::new() }; 2 * CACHE_ENTRIES],
        CacheConfig::for_capacity(CACHE_BYTES),
    ) else {
        halt()
    };
    let site: &'static Board = SITE.init(SiteParts::new(
        StaticSource::new(FILES),
        RefCell::new(cache),
        config,
    ));

    let device = ETHERNET.init(Ethernet {
        rx: [0; MTU],
        tx: [0; MTU],
    });
    let mac = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    let mut iface = Interface::new(IfaceConfig::new(mac.into()), device, now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::v4(192, 168, 1, 50), 24));
    });

    let mut sockets = SocketSet::new(&mut SOCKET_STORAGE.init([SocketStorage::EMPTY; SOCKETS])[..]);
    let handles = SOCKET_BUFFERS
        .init(SocketBuffers::new())
        .add_sockets(&mut sockets);
    #[cfg(feature = "client")]
    {
        let _ = device;
        client::run(site, iface, sockets, handles)
    }
    #[cfg(feature = "baseline")]
    {
        let _ = site;
        loop {
            let t = now();
            iface.poll(t, device, &mut sockets);
            for handle in handles {
                let socket = sockets.get_mut::<smoltcp::socket::tcp::Socket<'_>>(handle);
                if !socket.is_open() {
                    let _ = socket.listen(80);
                }
                let mut buf = [0u8; 64];
                if let Ok(n) = socket.recv_slice(&mut buf) {
                    let _ = socket.send_slice(&buf[..n]);
                }
                if !socket.may_recv() {
                    socket.close();
                }
            }
            black_box(iface.poll_delay(t, &sockets));
        }
    }
    #[cfg(not(any(feature = "baseline", feature = "client")))]
    {
        let Ok(server) = Server::new(site, 80, handles) else {
            halt()
        };
        let server = SERVER.init(server);
        loop {
            let t = now();
            iface.poll(t, device, &mut sockets);
            black_box(server.poll(t, &mut sockets));
            black_box(iface.poll_delay(t, &sockets));
            black_box(server.poll_at());
        }
    }
}

/// The server in the background of the core's download client, both on one stack.
#[cfg(feature = "client")]
mod client {
    use core::convert::Infallible;
    use core::hint::black_box;
    use core::net::{Ipv4Addr, SocketAddr};

    use satchel_core::client::nal::{connect, exchange, Buffers, Handler, Waiter};
    use satchel_core::client::{Request, Response};
    use satchel_core::smoltcp::nal::NalStack;
    use satchel_core::smoltcp::{core_instant, Server, SocketBuffers};
    use satchel_core::time::{Duration, Instant as CoreInstant};
    use smoltcp::iface::{Interface, SocketHandle, SocketSet};
    use static_cell::StaticCell;

    use super::{halt, now, Board, Ethernet, CONNECTIONS, HEAD_TX, MTU, STAGE};

    type Stack = NalStack<
        'static,
        Ethernet,
        fn() -> smoltcp::time::Instant,
        Server<'static, Board, CONNECTIONS, HEAD_TX, STAGE>,
        1,
    >;

    static STACK: StaticCell<Stack> = StaticCell::new();
    static CLIENT_BUFFERS: StaticCell<SocketBuffers<1, 4096, 1024>> = StaticCell::new();

    struct Spin;

    impl Waiter for Spin {
        fn now(&mut self) -> CoreInstant {
            core_instant(now())
        }
        fn wait(&mut self, _deadline: CoreInstant) {}
    }

    struct Sink;

    impl Handler for Sink {
        type Error = Infallible;
        fn head(&mut self, response: &Response<'_>) -> Result<(), Infallible> {
            black_box(response);
            Ok(())
        }
        fn body(&mut self, data: &[u8]) -> Result<(), Infallible> {
            black_box(data);
            Ok(())
        }
    }

    pub(super) fn run(
        site: &'static Board,
        iface: Interface,
        mut sockets: SocketSet<'static>,
        handles: [SocketHandle; CONNECTIONS],
    ) -> ! {
        let [client] = CLIENT_BUFFERS
            .init(SocketBuffers::new())
            .add_sockets(&mut sockets);
        let Ok(server) = Server::new(site, 80, handles) else {
            halt()
        };
        let device = Ethernet {
            rx: [0; MTU],
            tx: [0; MTU],
        };
        let stack = STACK.init(NalStack::new(
            iface,
            device,
            sockets,
            [client],
            now as fn() -> smoltcp::time::Instant,
            server,
        ));
        let remote = SocketAddr::from((Ipv4Addr::new(192, 168, 1, 1), 80));
        loop {
            stack.poll();
            if black_box(false) {
                let timeout = Duration::from_secs(10);
                if let Ok(mut socket) =
                    connect::<_, _, Infallible>(stack, &mut Spin, remote, timeout)
                {
                    let (mut tx, mut rx) = ([0u8; 512], [0u8; 2048]);
                    let buffers = Buffers {
                        tx: &mut tx,
                        rx: &mut rx,
                    };
                    let request = Request::get("192.168.1.1", "/firmware.bin");
                    let _ = black_box(exchange(
                        stack,
                        &mut socket,
                        &mut Spin,
                        &request,
                        timeout,
                        buffers,
                        &mut Sink,
                    ));
                    let _ = embedded_nal::TcpClientStack::close(stack, socket);
                }
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    halt()
}
