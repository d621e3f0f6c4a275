//! Shared pieces of the smoltcp tests: a board-like site (files baked in with `include_bytes!`,
//! a `RefCell` cache in arrays), the smoltcp server and the embedded-nal client adapter over
//! smoltcp's in-memory `Loopback`, a small GET client written against `TcpClientStack`, and a
//! throw-away network namespace with a TAP device for talking to the Linux stack.
//!
//! Everything a test leaks here (socket buffers, the site) is leaked on purpose: smoltcp's
//! `SocketSet<'a>` borrows its buffers for `'a`, and a board has them in statics, which a
//! leaked box stands in for.

use std::cell::RefCell;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use embedded_nal::{nb, TcpClientStack};
use satchel_core::cache::{
    ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
};
use satchel_core::path::SafePath;
use satchel_core::serve::{Config, Site};
use satchel_core::smoltcp::nal::NalStack;
use satchel_core::smoltcp::{Server, SocketBuffers};
use satchel_core::source::{
    FileKind, FileSource, FileVersion, Metadata, SourceError, StaticFile, StaticSource,
};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::raw::Response;
use crate::WAIT;

/// Server connections (TCP sockets listening on the port).
pub const CONNECTIONS: usize = 4;
/// Each connection's response-head buffer.
pub const HEAD_TX: usize = 4096;
/// Each connection's staging buffer for request heads: above the host `max_head` (8192).
pub const STAGE: usize = 8192 + 512;
/// Each server socket's receive buffer (the advertised window).
pub const SOCK_RX: usize = 1024;
/// Each server socket's transmit buffer.
pub const SOCK_TX: usize = 4096;
/// The cache arena, in bytes.
pub const CACHE_BYTES: usize = 32 * 1024;
/// The cache's file slots.
pub const CACHE_ENTRIES: usize = 16;
/// The port the smoltcp server listens on.
pub const PORT: u16 = 8080;

/// The board cache: 16 files, 32 buckets, 32 KiB.
pub type BoardCache = ArrayCache<CACHE_ENTRIES, { 2 * CACHE_ENTRIES }, CACHE_BYTES>;

/// The smoltcp server over a site with source `F`.
pub type SmolServer<F> = Server<'static, BoardSite<F>, CONNECTIONS, HEAD_TX, STAGE>;

/// The loopback world: one interface, the server in the background, `2` client sockets.
pub type LoopStack<F> = NalStack<'static, Loopback, fn() -> SmolInstant, SmolServer<F>, 2>;

// `pattern`, `BIG`, `MEDIUM` and `BAKED`: the file set the board firmware bakes too.
include!("../fixtures/smol/baked.rs");

/// A board's site: a file source, a cache in arrays behind a `RefCell`, a configuration, and
/// optionally a wall clock for `Date`.
pub struct BoardSite<F> {
    /// The files.
    pub source: F,
    /// The cache.
    pub cache: RefCell<BoardCache>,
    /// The configuration.
    pub config: Config,
    /// Whether responses carry `Date` (from the host's clock).
    pub clock: bool,
}

impl<F: FileSource> BoardSite<F> {
    /// A site over `source` with a fresh cache that stores every admitted file on its first GET
    /// (files up to 16 KiB), like the host server does for small files.
    pub fn new(source: F, config: Config, clock: bool) -> Self {
        let store = ArenaStore::new([0u8; CACHE_BYTES], [const { Region::new() }; CACHE_ENTRIES])
            .expect("arena geometry");
        let cache = Cache::new(
            store,
            [const { Slot::new() }; CACHE_ENTRIES],
            [const { Bucket::new() }; 2 * CACHE_ENTRIES],
            CacheConfig {
                max_entry_bytes: CACHE_BYTES / 2,
                large_bytes: CACHE_BYTES / 2,
                small_percent: 10,
            },
        )
        .expect("cache geometry");
        Self {
            source,
            cache: RefCell::new(cache),
            config,
            clock,
        }
    }
}

impl<F: FileSource> Site for BoardSite<F> {
    type Source = F;
    type Cache = RefCell<BoardCache>;

    fn source(&self) -> &F {
        &self.source
    }

    fn cache(&self) -> &RefCell<BoardCache> {
        &self.cache
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn unix_time(&self) -> Option<u64> {
        self.clock.then(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }
}

/// The board site over [`BAKED`] with the host configuration and no clock.
pub fn baked_site() -> BoardSite<StaticSource> {
    BoardSite::new(StaticSource::new(BAKED), Config::host(), false)
}

/// A [`FileSource`] over a host folder that reports exactly the versions and times
/// satchel-server's source does (size; mtime and ctime in ns mixed; inode and device mixed),
/// so that both servers send the same `ETag` and `Last-Modified` for the same file. No
/// listings (a board has none).
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// A source over `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn full(&self, path: &SafePath<'_>) -> PathBuf {
        let rel = String::from_utf8_lossy(path.as_bytes()).into_owned();
        self.root.join(rel.trim_end_matches('/'))
    }
}

/// satchel-server's `metadata_from`, over `std::fs::Metadata`.
fn host_metadata(m: &std::fs::Metadata) -> Metadata {
    let kind = if m.is_file() {
        FileKind::File
    } else if m.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    };
    let ns = |secs: i64, nsec: i64| {
        (secs as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(nsec as u64)
    };
    let mtime = ns(m.mtime(), m.mtime_nsec());
    let ctime = ns(m.ctime(), m.ctime_nsec());
    Metadata {
        kind,
        version: FileVersion::from_stat(m.size(), mtime, ctime, m.dev(), m.ino()),
        modified: u64::try_from(m.mtime()).ok(),
    }
}

fn not_found(_: std::io::Error) -> SourceError {
    SourceError::NotFound
}

impl FileSource for DirSource {
    type File = std::fs::File;
    type Listing = &'static [u8];

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        std::fs::metadata(self.full(path))
            .map(|m| host_metadata(&m))
            .map_err(not_found)
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(std::fs::File, Metadata), SourceError> {
        let file = std::fs::File::open(self.full(path)).map_err(not_found)?;
        let meta = file.metadata().map_err(not_found)?;
        Ok((file, host_metadata(&meta)))
    }

    fn file_metadata(&self, file: &std::fs::File) -> Result<Metadata, SourceError> {
        file.metadata()
            .map(|m| host_metadata(&m))
            .map_err(|_| SourceError::Io)
    }

    fn read_at(
        &self,
        file: &std::fs::File,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, SourceError> {
        file.read_at(buf, offset).map_err(|_| SourceError::Io)
    }
}

/// Milliseconds on the host's monotonic clock since the first call, as smoltcp's time.
pub fn host_clock() -> SmolInstant {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    SmolInstant::from_micros(i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX))
}

/// The loopback address the server listens on.
pub fn loopback_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PORT))
}

/// One process, one smoltcp interface on the in-memory `Loopback` device (127.0.0.1/8): the
/// smoltcp server (4 sockets on [`PORT`]) in the background, and two client sockets behind
/// the embedded-nal adapter.
pub fn loopback_world<F: FileSource + 'static>(site: BoardSite<F>) -> LoopStack<F> {
    let site: &'static BoardSite<F> = Box::leak(Box::new(site));
    let mut device = Loopback::new(Medium::Ip);
    let mut iface = Interface::new(
        IfaceConfig::new(HardwareAddress::Ip),
        &mut device,
        host_clock(),
    );
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
            .expect("one address fits");
    });
    let storage: &'static mut [SocketStorage<'static>; 8] =
        Box::leak(Box::new([SocketStorage::EMPTY; 8]));
    let mut sockets = SocketSet::new(&mut storage[..]);
    let server_buffers: &'static mut SocketBuffers<CONNECTIONS, SOCK_RX, SOCK_TX> =
        Box::leak(Box::new(SocketBuffers::new()));
    let client_buffers: &'static mut SocketBuffers<2, 16384, 2048> =
        Box::leak(Box::new(SocketBuffers::new()));
    let server_handles = server_buffers.add_sockets(&mut sockets);
    let client_handles = client_buffers.add_sockets(&mut sockets);
    let server = Server::new(site, PORT, server_handles).expect("server geometry");
    NalStack::new(
        iface,
        device,
        sockets,
        client_handles,
        host_clock as fn() -> SmolInstant,
        server,
    )
}

/// Calls `op` until it stops saying `WouldBlock`, for at most [`WAIT`].
///
/// # Errors
/// The operation's error, or a timeout.
pub fn block<T, E: std::fmt::Debug>(mut op: impl FnMut() -> nb::Result<T, E>) -> Result<T, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(nb::Error::Other(e)) => return Err(format!("{e:?}")),
            Err(nb::Error::WouldBlock) if Instant::now() < deadline => {}
            Err(nb::Error::WouldBlock) => return Err("timed out".into()),
        }
    }
}

/// The length of the first complete response in `buf` (head, then `Content-Length` bytes of
/// body unless it answers a HEAD or is a 304), if it is all there.
pub fn framed_len(buf: &[u8], head_only: bool) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(buf.get(..end)?).ok()?;
    let status = head.split(' ').nth(1)?;
    let body = if head_only || status == "304" {
        0
    } else {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (buf.len() >= end + body).then_some(end + body)
}

/// An open client connection over any embedded-nal stack.
pub struct NalConn<'t, T: TcpClientStack> {
    stack: &'t mut T,
    socket: Option<T::TcpSocket>,
    buf: Vec<u8>,
    eof: bool,
}

impl<'t, T: TcpClientStack> NalConn<'t, T> {
    /// Connects to `addr`.
    ///
    /// # Errors
    /// When no socket is free or the connection fails or times out.
    pub fn open(stack: &'t mut T, addr: SocketAddr) -> Result<Self, String> {
        let mut socket = stack.socket().map_err(|e| format!("socket: {e:?}"))?;
        block(|| stack.connect(&mut socket, addr))?;
        Ok(Self {
            stack,
            socket: Some(socket),
            buf: Vec::new(),
            eof: false,
        })
    }

    /// Takes the connection apart, keeping its socket open (to use the stack for another
    /// connection meanwhile); [`NalConn::resume`] puts it back together.
    pub fn into_socket(mut self) -> T::TcpSocket {
        self.socket.take().expect("an open connection")
    }

    /// A connection over a socket from [`NalConn::into_socket`].
    pub fn resume(stack: &'t mut T, socket: T::TcpSocket) -> Self {
        Self {
            stack,
            socket: Some(socket),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Sends all of `bytes`.
    ///
    /// # Errors
    /// When the stack fails or times out.
    pub fn send(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        let socket = self.socket.as_mut().ok_or("closed")?;
        while !bytes.is_empty() {
            let n = block(|| self.stack.send(socket, bytes))?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Reads more bytes into the buffer; `false` at the peer's EOF.
    fn fill(&mut self) -> Result<bool, String> {
        let socket = self.socket.as_mut().ok_or("closed")?;
        let mut chunk = [0u8; 4096];
        let n = block(|| self.stack.receive(socket, &mut chunk))?;
        self.buf.extend_from_slice(&chunk[..n]);
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// The raw bytes of the next response (framed by [`framed_len`]), or whatever arrived
    /// before the peer closed.
    ///
    /// # Errors
    /// When the stack fails or times out.
    pub fn response_bytes(&mut self, head_only: bool) -> Result<Vec<u8>, String> {
        loop {
            if let Some(n) = framed_len(&self.buf, head_only) {
                return Ok(self.buf.drain(..n).collect());
            }
            if self.eof || !self.fill()? {
                return Ok(std::mem::take(&mut self.buf));
            }
        }
    }

    /// The next response, parsed.
    ///
    /// # Errors
    /// When the stack fails, times out, or the bytes are no response.
    pub fn response(&mut self, head_only: bool) -> Result<Response, String> {
        let bytes = self.response_bytes(head_only)?;
        parse(&bytes, head_only).ok_or_else(|| format!("not a response: {bytes:?}"))
    }

    /// Reads the next `n` bytes only (an interrupted download).
    ///
    /// # Errors
    /// When the stack fails or times out.
    pub fn read_exact_prefix(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n && !self.eof {
            self.fill()?;
        }
        Ok(self.buf.drain(..n.min(self.buf.len())).collect())
    }

    /// Whether the peer closes the connection (EOF or reset) within [`WAIT`], sending nothing.
    pub fn closed_by_peer(&mut self) -> bool {
        matches!(self.fill(), Ok(false) | Err(_)) && self.buf.is_empty()
    }

    /// Closes this side and gives the socket back.
    pub fn close(mut self) {
        if let Some(socket) = self.socket.take() {
            let _ = self.stack.close(socket);
        }
    }
}

/// Parses one response (head and body) from `bytes`.
pub fn parse(bytes: &[u8], head_only: bool) -> Option<Response> {
    let end = framed_len(bytes, true)?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let body = if head_only {
        Vec::new()
    } else {
        bytes[end..].to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// One request on a new connection, its response's raw bytes.
///
/// # Errors
/// As [`NalConn`]'s calls.
pub fn exchange<T: TcpClientStack>(
    stack: &mut T,
    addr: SocketAddr,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    exchange_many(stack, addr, request, 1)
}

/// `requests` (pipelined: `count` of them, all of the same method) on a new connection; the
/// raw bytes of `count` responses, or of what came before the server closed.
///
/// # Errors
/// As [`NalConn`]'s calls.
pub fn exchange_many<T: TcpClientStack>(
    stack: &mut T,
    addr: SocketAddr,
    requests: &[u8],
    count: usize,
) -> Result<Vec<u8>, String> {
    let head_only = requests.starts_with(b"HEAD ");
    let mut conn = NalConn::open(stack, addr)?;
    conn.send(requests)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let bytes = conn.response_bytes(head_only)?;
        if bytes.is_empty() {
            break;
        }
        out.extend_from_slice(&bytes);
    }
    conn.close();
    Ok(out)
}

/// [`exchange_many`] over a host TCP socket (to satchel-server).
///
/// # Panics
/// When the server cannot be reached or sends nothing within [`WAIT`].
pub fn exchange_std(addr: SocketAddr, requests: &[u8], count: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(requests).expect("send");
    let head_only = requests.starts_with(b"HEAD ");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut eof = false;
    for _ in 0..count {
        loop {
            if let Some(n) = framed_len(&buf, head_only) {
                out.extend(buf.drain(..n));
                break;
            }
            if eof {
                out.append(&mut buf);
                return out;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
    out
}

/// `bytes` without its `Date` header line (the one field that may differ between two servers).
pub fn without_date(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let mut in_head = true;
    while in_head {
        let Some(p) = rest.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let line = &rest[..p + 2];
        if !line.starts_with(b"Date: ") {
            out.extend_from_slice(line);
        }
        in_head = line != b"\r\n";
        rest = &rest[p + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// Whether this process may build a namespace with a TAP device: `Ok` or why not.
pub fn tap_capable() -> Result<(), String> {
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing".into());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Err("`ip` (iproute2) is missing".into());
    }
    Ok(())
}

/// Whether `test` must be skipped because `check` failed: says why on stderr and returns
/// `true`, or fails when the environment variable `required_by` is `1` (CI), which makes a skip
/// a failure.
///
/// # Panics
/// When the check failed and `required_by` is set to `1`.
pub fn skip(test: &str, check: Result<(), String>, required_by: &str) -> bool {
    let Err(why) = check else {
        return false;
    };
    assert!(
        std::env::var(required_by).map_or(true, |v| v != "1"),
        "{required_by}=1 but the {test} cannot run: {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
    true
}

/// Whether a TAP skip must fail (CI sets `SATCHEL_REQUIRE_TAP=1`).
pub fn tap_required() -> bool {
    std::env::var("SATCHEL_REQUIRE_TAP").is_ok_and(|v| v == "1")
}

/// Runs `ip ARGS`, failing with its stderr.
///
/// # Errors
/// When `ip` fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace and a TAP device named after this process, deleted on drop whatever
/// happened (the device too, should it still be outside the namespace).
pub struct TapNet {
    /// The namespace's name.
    pub netns: String,
    /// The TAP device's name.
    pub tap: String,
}

impl TapNet {
    /// Names unique to this process (a device name fits in 15 bytes).
    pub fn new() -> Self {
        let pid = std::process::id();
        Self {
            netns: format!("satchel-smol-{pid}"),
            tap: format!("stap{}", pid % 10_000_000),
        }
    }

    /// Runs `argv` inside the namespace, returning its output.
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn exec(&self, argv: &[&str]) -> Result<std::process::Output, String> {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ip netns exec: {e}"))
    }
}

impl TapNet {
    /// `curl -sS --max-time 10 --noproxy '*' ARGS` inside the namespace: its exit code (`-1`
    /// when a signal ended it) and stdout. Its stderr is printed when it fails.
    ///
    /// # Panics
    /// When curl cannot be started.
    pub fn curl(&self, args: &[&str]) -> (i32, String) {
        let mut argv = vec!["curl", "-sS", "--max-time", "10", "--noproxy", "*"];
        argv.extend_from_slice(args);
        let out = self.exec(&argv).expect("run curl");
        if !out.status.success() {
            eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// The value of the first field `name` (case-insensitive) in a response head given as text.
pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

impl Default for TapNet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TapNet {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.tap]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}
