//! Every knob a board integrator turns, in one place: the address, the number of connections,
//! the buffers and the cache. RAM per item is in the README's "On a board" table.

use satchel_core::cache::ArrayCache;

/// The board's IPv4 address and prefix length (static: no DHCP).
pub const ADDRESS: [u8; 4] = [192, 168, 69, 2];
/// The prefix length of [`ADDRESS`].
pub const PREFIX_LEN: u8 = 24;
/// The HTTP port.
pub const PORT: u16 = 80;
/// The MAC address used when the LAN9118 has none from its EEPROM (QEMU gives it one).
pub const FALLBACK_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x45, 0x00, 0x02];

/// Clients served at once: one TCP socket each. One more is refused with a reset until a
/// socket listens again.
pub const CONNECTIONS: usize = 4;
/// Each connection's response-head buffer. The longest head the board can send is a `301`
/// whose `Location` repeats the request target (at most [`MAX_REQUEST_LINE`] bytes,
/// percent-encoded as it came), plus about 300 bytes of fields.
pub const HEAD_TX: usize = 1536;
/// The longest request line (longer: `414`).
pub const MAX_REQUEST_LINE: usize = 1024;
/// The longest request head (longer: `431`).
pub const MAX_HEAD: usize = 1024;
/// Each connection's staging buffer for request heads: must exceed [`MAX_HEAD`].
pub const STAGE: usize = MAX_HEAD + 64;
/// Each TCP socket's receive buffer (the window a client may fill; requests are short).
pub const SOCK_RX: usize = 1024;
/// Each TCP socket's transmit buffer: the bytes in flight, so it sets throughput
/// (about `SOCK_TX / RTT`).
pub const SOCK_TX: usize = 4096;

/// The upstream HTTP server the board fetches the files it does not hold in flash from (the
/// caching edge). Static: in the QEMU test it is `satchel-server` on the TAP's host side, in
/// the network namespace the test owns.
pub const UPSTREAM_ADDRESS: [u8; 4] = [192, 168, 69, 1];
/// The upstream server's port.
pub const UPSTREAM_PORT: u16 = 8080;
/// The `Host` header sent upstream: [`UPSTREAM_ADDRESS`]`:`[`UPSTREAM_PORT`].
pub const UPSTREAM_HOST: &str = "192.168.69.1:8080";
/// How long upstream may take to accept the connection, to send its response head, and to
/// send each 1 KiB of body; past it the request gets `504`. Shorter than
/// [`SEND_TIMEOUT_SECS`], after which a waiting request would get `503` instead.
pub const UPSTREAM_TIMEOUT_MS: u64 = 2000;
/// The fetch buffer: the largest file fetched from upstream and cached. A larger one (with a
/// `Content-Length`) streams through it to the client at the client's pace, uncached; one of
/// unannounced length that overflows it is answered `502` with the reason.
pub const FETCH_BODY: usize = 4096;
/// The upstream socket's receive buffer (its window).
pub const UPSTREAM_RX: usize = 1024;
/// The upstream socket's transmit buffer: holds one request head.
pub const UPSTREAM_TX: usize = 512;
/// The staging buffer for upstream's response head (a longer head is a `502`).
pub const UPSTREAM_STAGE: usize = 1024;

/// The cache's file slots (a power of two's half of [`CACHE_BUCKETS`]). Only fetched files
/// are cached: flash files are sent straight from flash into the socket's transmit buffer,
/// never copied into RAM first (`Cache-Status: satchel; fwd=bypass`).
pub const CACHE_ENTRIES: usize = 4;
/// The cache's index buckets (a power of two, at least twice [`CACHE_ENTRIES`]).
pub const CACHE_BUCKETS: usize = 8;
/// The cache arena, in bytes (keys and content).
pub const CACHE_BYTES: usize = 8192;
/// The largest file the cache stores: any file a fetch can hold.
pub const MAX_CACHED_FILE: usize = FETCH_BODY;

/// The cache type these knobs give.
pub type BoardCache = ArrayCache<CACHE_ENTRIES, CACHE_BUCKETS, CACHE_BYTES>;

/// A kept-alive connection with no new request for this long is closed.
pub const IDLE_TIMEOUT_SECS: u64 = 15;
/// A request head not complete this long after its first byte is answered `408`.
pub const HEAD_TIMEOUT_SECS: u64 = 10;
/// A response the client stops reading for this long is abandoned and its slot freed
/// (shorter than the host's 30 s: a board has only [`CONNECTIONS`] slots).
pub const SEND_TIMEOUT_SECS: u64 = 5;
