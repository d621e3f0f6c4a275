//! satchel firmware for ARM's MPS2 board with the AN386 image (Cortex-M4F at 25 MHz), as QEMU's
//! `mps2-an386` machine emulates it: the satchel smoltcp server on the board's LAN9118
//! Ethernet, serving files from flash, with a log on UART0.
//!
//! ```text
//! cd boards/mps2-an386 && cargo build --release
//! qemu-system-arm -M mps2-an386 -display none -monitor none -serial stdio \
//!   -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -net nic,netdev=n0,model=lan9118 \
//!   -kernel target/thumbv7em-none-eabihf/release/satchel-mps2-an386
//! ```
//!
//! The loop polls the NIC and the server, then sleeps (`wfi`) until the next interrupt: the
//! 1 ms SysTick. The LAN9118's interrupt line is not used, so a frame waits at most 1 ms.
//!
//! Files not in flash are fetched from the upstream HTTP server in [`config`] (a caching edge,
//! [`satchel_core::upstream`]): the core's download session on one more TCP socket
//! ([`Fetcher`]), every request revalidated upstream (`If-None-Match`), the bytes kept in the
//! cache; a file larger than the fetch buffer streams through it to the client, uncached.
//!
//! The register accesses are the only `unsafe`, all in [`hw`].
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod config;
mod files;
mod hw;
mod lan9118;
mod uart;

use core::cell::RefCell;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_rt::{entry, exception};
use satchel_core::cache::{ArenaStore, Bucket, Cache, Config as CacheConfig, Region, Slot};
use satchel_core::http::method::Method;
use satchel_core::http::request::Limits;
use satchel_core::serve::{Completion, Config, Event, ResponseInfo, SiteParts};
use satchel_core::smoltcp::fetch::{Fetcher, UpstreamConfig};
use satchel_core::smoltcp::{Answered, Server, SocketBuffers};
use satchel_core::source::StaticSource;
use satchel_core::time::Duration;
use satchel_core::upstream::Upstream;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint};
use static_cell::{ConstStaticCell, StaticCell};

use config::{BoardCache, CACHE_BUCKETS, CACHE_BYTES, CACHE_ENTRIES, CONNECTIONS, FETCH_BODY};
use lan9118::Lan9118;
use uart::Uart;

/// The core clock, which drives SysTick.
const CORE_HZ: u32 = 25_000_000;
/// How often the stack's high-water mark is checked (and logged when it grew), in ms.
const STACK_CHECK_MS: u64 = 1000;

/// The flash files, and the rest fetched from upstream into the cache.
type EdgeSource = Upstream<'static, StaticSource, RefCell<BoardCache>, FETCH_BODY, CACHE_ENTRIES>;

/// The site: the edge source, the cache it shares with the server, the configuration.
type Board = SiteParts<EdgeSource, &'static RefCell<BoardCache>>;

type BoardServer = Server<'static, Board, CONNECTIONS, { config::HEAD_TX }, { config::STAGE }>;

static CACHE: StaticCell<RefCell<BoardCache>> = StaticCell::new();
static SITE: StaticCell<Board> = StaticCell::new();
static UPSTREAM_BUFFERS: ConstStaticCell<
    SocketBuffers<1, { config::UPSTREAM_RX }, { config::UPSTREAM_TX }>,
> = ConstStaticCell::new(SocketBuffers::new());
static FETCHER: StaticCell<Fetcher<{ config::UPSTREAM_STAGE }>> = StaticCell::new();
static NIC: StaticCell<Lan9118> = StaticCell::new();
static NIC_BUFFERS: ConstStaticCell<lan9118::Buffers> =
    ConstStaticCell::new(lan9118::Buffers::new());
static SOCKET_BUFFERS: ConstStaticCell<
    SocketBuffers<CONNECTIONS, { config::SOCK_RX }, { config::SOCK_TX }>,
> = ConstStaticCell::new(SocketBuffers::new());
/// The server's sockets and the upstream one.
static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; CONNECTIONS + 1]> = StaticCell::new();
static SERVER: StaticCell<BoardServer> = StaticCell::new();

/// Milliseconds since boot, counted by the SysTick exception.
static TICKS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick every millisecond from the core clock, with its interrupt.
fn start_systick() {
    const CSR: usize = 0x0;
    const RVR: usize = 0x4;
    const CVR: usize = 0x8;
    const ENABLE_TICKINT_CORECLK: u32 = 0b111;
    hw::write(hw::Block::SysTick, RVR, CORE_HZ / 1000 - 1);
    hw::write(hw::Block::SysTick, CVR, 0);
    hw::write(hw::Block::SysTick, CSR, ENABLE_TICKINT_CORECLK);
}

/// The 32-bit tick counter extended to 64 bits (it wraps after 49 days).
struct Clock {
    last: u32,
    high: u64,
}

impl Clock {
    fn now(&mut self) -> Instant {
        let t = TICKS.load(Ordering::Relaxed);
        if t < self.last {
            self.high += 1 << 32;
        }
        self.last = t;
        Instant::from_millis((self.high + u64::from(t)) as i64)
    }
}

fn board_config() -> Config {
    let mut config = Config::host();
    config.limits = Limits {
        max_request_line: config::MAX_REQUEST_LINE,
        max_head: config::MAX_HEAD,
    };
    config.listings = false;
    config.idle_timeout = Duration::from_secs(config::IDLE_TIMEOUT_SECS);
    config.head_timeout = Duration::from_secs(config::HEAD_TIMEOUT_SECS);
    config.send_timeout = Duration::from_secs(config::SEND_TIMEOUT_SECS);
    config
}

fn halt(uart: &mut Uart, why: core::fmt::Arguments<'_>) -> ! {
    let _ = writeln!(uart, "satchel: halted: {why}");
    loop {
        hw::wait_for_interrupt();
    }
}

/// What [`boot`] brings up and the poll loop runs.
struct World {
    uart: Uart,
    clock: Clock,
    nic: &'static mut Lan9118,
    iface: Interface,
    sockets: SocketSet<'static>,
    server: &'static mut BoardServer,
    fetcher: &'static mut Fetcher<{ config::UPSTREAM_STAGE }>,
    site: &'static Board,
}

#[entry]
fn main() -> ! {
    let world = boot();
    serve(world)
}

/// Reset to serving: UART, SysTick, the site (files and cache), the NIC, the interface, the
/// sockets and the server.
#[inline(never)]
fn boot() -> World {
    let mut uart = Uart::init();
    start_systick();
    let _ = writeln!(
        uart,
        "satchel: mps2-an386 firmware, {CONNECTIONS} connections"
    );

    let site = init_site(&mut uart);

    let nic = match Lan9118::init(config::FALLBACK_MAC, NIC_BUFFERS.take()) {
        Ok(nic) => NIC.init(nic),
        Err(e) => halt(&mut uart, format_args!("LAN9118: {e:?}")),
    };
    let _ = writeln!(
        uart,
        "satchel: LAN9118 id {:08x}, mac {}, link {}",
        nic.id(),
        nic.mac(),
        if nic.link_up() { "up" } else { "down" }
    );

    let mut clock = Clock { last: 0, high: 0 };
    let mut iface = Interface::new(IfaceConfig::new(nic.mac().into()), nic, clock.now());
    let [a, b, c, d] = config::ADDRESS;
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, c, d), config::PREFIX_LEN));
    });
    let mut sockets =
        SocketSet::new(&mut SOCKET_STORAGE.init([SocketStorage::EMPTY; CONNECTIONS + 1])[..]);
    let handles = SOCKET_BUFFERS.take().add_sockets(&mut sockets);
    let [upstream_socket] = UPSTREAM_BUFFERS.take().add_sockets(&mut sockets);
    let [ua, ub, uc, ud] = config::UPSTREAM_ADDRESS;
    let upstream = UpstreamConfig {
        endpoint: IpEndpoint::new(IpAddress::v4(ua, ub, uc, ud), config::UPSTREAM_PORT),
        host: config::UPSTREAM_HOST,
        timeout: Duration::from_millis(config::UPSTREAM_TIMEOUT_MS),
    };
    let fetcher = init_fetcher(upstream_socket, upstream);
    let server = init_server(site, handles);
    let _ = writeln!(
        uart,
        "satchel: stack high-water at boot {} bytes",
        hw::stack_high_water()
    );
    let _ = writeln!(
        uart,
        "satchel: upstream {ua}.{ub}.{uc}.{ud}:{} for files not in flash",
        config::UPSTREAM_PORT
    );
    let _ = writeln!(uart, "satchel: serving on {a}.{b}.{c}.{d}:{}", config::PORT);
    World {
        uart,
        clock,
        nic,
        iface,
        sockets,
        server,
        fetcher,
        site,
    }
}

// Each big static is built in its own frame (`inline(never)`): its by-value copies then count
// on the stack one at a time, not all together in `boot`'s frame.

/// The cache and the site (the flash files and the upstream source).
#[inline(never)]
fn init_site(uart: &mut Uart) -> &'static Board {
    let Ok(store) = ArenaStore::new([0u8; CACHE_BYTES], [const { Region::new() }; CACHE_ENTRIES])
    else {
        halt(uart, format_args!("cache arena geometry"))
    };
    let Ok(cache) = Cache::new(
        store,
        [const { Slot::new() }; CACHE_ENTRIES],
        [const { Bucket::new() }; CACHE_BUCKETS],
        CacheConfig {
            max_entry_bytes: config::MAX_CACHED_FILE,
            // Every fill cost an upstream round trip: store on the first request rather than
            // waiting for a second one to find the file in the ghost queue.
            large_bytes: config::MAX_CACHED_FILE,
            ..CacheConfig::for_capacity(CACHE_BYTES)
        },
    ) else {
        halt(uart, format_args!("cache geometry"))
    };
    let cache: &'static RefCell<BoardCache> = CACHE.init(RefCell::new(cache));
    init_board(cache)
}

#[inline(never)]
fn init_board(cache: &'static RefCell<BoardCache>) -> &'static Board {
    SITE.init_with(|| {
        SiteParts::new(
            Upstream::new(StaticSource::new(files::BAKED), cache),
            cache,
            board_config(),
        )
    })
}

#[inline(never)]
fn init_fetcher(
    socket: smoltcp::iface::SocketHandle,
    upstream: UpstreamConfig,
) -> &'static mut Fetcher<{ config::UPSTREAM_STAGE }> {
    FETCHER.init_with(|| match Fetcher::new(socket, upstream) {
        Ok(fetcher) => fetcher,
        Err(e) => halt(&mut Uart::init(), format_args!("upstream: {e:?}")),
    })
}

#[inline(never)]
fn init_server(
    site: &'static Board,
    handles: [smoltcp::iface::SocketHandle; CONNECTIONS],
) -> &'static mut BoardServer {
    SERVER.init_with(|| match Server::new(site, config::PORT, handles) {
        Ok(server) => server,
        Err(e) => halt(&mut Uart::init(), format_args!("server: {e:?}")),
    })
}

/// The poll loop: the NIC and the server on every SysTick (1 ms), `wfi` in between.
#[inline(never)]
fn serve(world: World) -> ! {
    let World {
        mut uart,
        mut clock,
        nic,
        mut iface,
        mut sockets,
        server,
        fetcher,
        site,
    } = world;
    // From here on the high-water mark is the serving loop's own.
    hw::repaint_stack();
    let mut stack_logged = 0;
    let mut next_stack_check = 0;
    let mut access_log = AccessLog::new();
    loop {
        let now = clock.now();
        iface.poll(now, nic, &mut sockets);
        let fetched = fetcher.poll(now, &mut iface, &mut sockets, &site.source);
        // Once per round, before the server's poll: the requests a finished fetch (or the
        // free fetch slot) lets go on.
        if let Some(ticket) = site.source.poll_ready() {
            server.handle_ready(ticket);
        }
        let changed = server.poll_with(now, &mut sockets, |answered| {
            access_log.record(&mut uart, answered, now);
        }) | fetched;
        if changed {
            // Put what the server just queued on the wire without waiting for the next tick.
            iface.poll(now, nic, &mut sockets);
        }
        if now.total_millis() as u64 >= next_stack_check {
            next_stack_check = now.total_millis() as u64 + STACK_CHECK_MS;
            let used = hw::stack_high_water();
            if used > stack_logged {
                stack_logged = used;
                let _ = writeln!(uart, "satchel: stack high-water serving {used} bytes");
            }
        }
        // Sleep until the next tick unless the stack or the server has work due now.
        let due_now = iface
            .poll_delay(now, &sockets)
            .is_some_and(|d| d.total_millis() == 0)
            || server.poll_at().is_some_and(|t| t <= now);
        if !due_now {
            hw::wait_for_interrupt();
        }
    }
}

/// How many bytes of a request's target an access-log line keeps.
const LOG_TARGET: usize = 96;

/// A response planned on one connection, kept until its end is logged.
#[derive(Clone, Copy)]
struct PendingLog {
    info: ResponseInfo,
    peer: Option<IpAddress>,
    method: [u8; 8],
    method_len: usize,
    target: [u8; LOG_TARGET],
    target_len: usize,
}

/// The access log: one line per response, in satchel-server's shape (`client method target
/// status sent cache duration complete|incomplete`), written when the response ends, with the
/// bytes actually sent. The duration runs on the 1 ms tick.
struct AccessLog {
    pending: [Option<PendingLog>; CONNECTIONS],
}

impl AccessLog {
    const fn new() -> Self {
        Self {
            pending: [None; CONNECTIONS],
        }
    }

    fn record(&mut self, uart: &mut Uart, answered: &Answered<'_>, now: Instant) {
        let Some(pending) = self.pending.get_mut(answered.slot) else {
            return;
        };
        match answered.event {
            Event::Response(info) => {
                let method_token = info.method_token.of(answered.request);
                let target = info.target.of(answered.request);
                let mut entry = PendingLog {
                    info,
                    peer: answered.peer.map(|p| p.addr),
                    method: [0; 8],
                    method_len: method_token.len().min(8),
                    target: [0; LOG_TARGET],
                    target_len: target.len().min(LOG_TARGET),
                };
                entry.method[..entry.method_len].copy_from_slice(&method_token[..entry.method_len]);
                entry.target[..entry.target_len].copy_from_slice(&target[..entry.target_len]);
                *pending = Some(entry);
            }
            Event::Done(done) => {
                if let Some(entry) = pending.take() {
                    write_line(uart, &entry, done, now);
                }
            }
        }
    }
}

fn write_line(uart: &mut Uart, entry: &PendingLog, done: Completion, now: Instant) {
    let info = &entry.info;
    let _ = match entry.peer {
        Some(addr) => write!(uart, "{addr} "),
        None => write!(uart, "- "),
    };
    let method_token = &entry.method[..entry.method_len];
    let _ = match info.method {
        Some(Method::Get) => uart.write_str("GET"),
        Some(Method::Head) => uart.write_str("HEAD"),
        Some(Method::Other)
            if !method_token.is_empty() && method_token.iter().all(u8::is_ascii_graphic) =>
        {
            method_token
                .iter()
                .try_for_each(|&b| uart.write_char(char::from(b)))
        }
        _ => uart.write_str("-"),
    };
    let _ = uart.write_char(' ');
    let target = &entry.target[..entry.target_len];
    if target.is_empty() {
        let _ = uart.write_char('-');
    }
    for &b in target {
        let _ = if b.is_ascii_graphic() {
            uart.write_char(char::from(b))
        } else {
            write!(uart, "%{b:02X}")
        };
    }
    let ms = (now.total_millis() as u64).saturating_sub(info.started.as_millis());
    let _ = writeln!(
        uart,
        " {} {} {} {ms}ms {}",
        info.status.as_u16(),
        done.sent,
        info.cache_token(),
        if done.complete {
            "complete"
        } else {
            "incomplete"
        }
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut uart = Uart::init();
    halt(&mut uart, format_args!("panic: {info}"))
}
