//! satchel-server: the caching file server for desktops and servers.
//!
//! The std shim around `satchel-core`: it parses the command line, opens the root, builds the
//! shared sharded cache, starts one readiness loop (epoll through mio) per worker thread, each
//! with its own `SO_REUSEPORT` listener, and drives the core's sans-IO connections from them.

mod admin;
mod cache;
mod clock;
mod fs;
mod iopool;
mod listen;
mod malloc;
mod memfd;
mod metrics;
mod probes;
mod readside;
mod site;
mod worker;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use satchel_core::cache::ContentCache;

use crate::site::{HostSite, Shared, WorkerSite};

/// Exit code for a bad command line or an unusable ROOT (clap uses 2 for usage errors too).
const EXIT_USAGE: u8 = 2;
/// Exit code for a failure at run time (the port is in use, the system refuses resources).
const EXIT_RUNTIME: u8 = 1;

/// A caching HTTP/1.1 file server: serves the files under ROOT, keeping them in a bounded
/// in-memory cache.
///
/// Shutdown: at SIGTERM or SIGINT the admin's /healthz answers 503 at once while files are still
/// served for --drain; then no new connection is accepted and responses in flight may finish
/// for --shutdown-grace; what is still sending then is cut off, counted on stderr and in the
/// metrics.
///
/// Exit codes: 0 after a shutdown by SIGINT/SIGTERM (even if responses were cut off), 1 on a
/// run-time failure (e.g. the port is in use), 2 on a bad command line or ROOT; a second
/// signal during shutdown exits at once with 128 + its number: 130 (SIGINT), 143 (SIGTERM).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TCP port to listen on (0 picks a free one and prints it).
    #[arg(default_value_t = 8080)]
    port: u16,

    /// Folder whose files are served.
    #[arg(default_value = ".")]
    root: PathBuf,

    /// Address to bind: an IP address or a host name such as `localhost` (default: all
    /// interfaces, IPv6 and IPv4).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,

    /// Bytes of file content the cache may hold (KiB, MiB, GiB are powers of 1024; K/KB, M/MB,
    /// G/GB powers of 1000).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    cache_size: u64,

    /// Files the cache may hold at once (at most one per 64 bytes of --cache-size: each entry
    /// is charged 64 bytes of bookkeeping) [default: 16384, or what --cache-size holds].
    #[arg(long, value_name = "N")]
    cache_entries: Option<usize>,

    /// Files larger than this are streamed from disk, never cached.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    max_cached_file: u64,

    /// Worker threads, each with its own event loop (default: the CPUs this process may use).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    workers: Option<usize>,

    /// Open connections at most; past it a new client gets 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = at_least_one)]
    max_connections: usize,

    /// Close a kept-alive connection idle this long (e.g. 15s, 500ms, 2m).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// Answer 408 when a request head is not complete this long after its first byte.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    head_timeout: Duration,

    /// Abandon a response when the client reads nothing of it for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    send_timeout: Duration,

    /// The Cache-Control field on file responses (200, 206, 304). The default makes browsers
    /// and caches in front revalidate every time (a 304 when nothing changed), so they never
    /// show a stale file; e.g. "max-age=60, stale-if-error=600" lets them reuse it for a while.
    #[arg(long, default_value = "no-cache", value_name = "VALUE")]
    cache_control: String,

    /// Require the PROXY protocol v2 header (HAProxy's send-proxy-v2) at the start of every
    /// connection on the file port; the access log then shows the client it names. A
    /// connection without a valid header is closed unanswered. Only for a port that nothing
    /// but the proxy can reach.
    #[arg(long)]
    proxy_protocol: bool,

    /// Answer 404 for folders without index.html instead of listing them.
    #[arg(long)]
    no_listing: bool,

    /// Never send a precompressed sibling (name.br, name.zst, name.gz) in place of a file whose
    /// request accepts that coding.
    #[arg(long)]
    no_precompressed: bool,

    /// Serve files and folders whose names start with a dot.
    #[arg(long)]
    hidden: bool,

    /// No access log on stdout (and no cache summary at exit).
    #[arg(long)]
    quiet: bool,

    /// Accept connections as soon as the handshake completes, not when the client's first bytes
    /// arrive (TCP_DEFER_ACCEPT, on by default: it saves a wakeup per connection, and clients
    /// that connect without sending hold no slot until they have waited a second).
    #[arg(long)]
    no_defer_accept: bool,

    /// Admin listener (e.g. 127.0.0.1:9080; off by default): GET /healthz (200 `ok`, 503
    /// `draining` after SIGTERM) and GET /metrics (Prometheus text format). Must differ from
    /// the file port's address; port 0 picks a free one and prints `admin on ADDR`.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,

    /// After SIGTERM/SIGINT, keep serving files this long while /healthz answers 503, so the
    /// balancer's checks see the node leave before it stops accepting (set it a little above
    /// the check interval times the failures needed; e.g. 2s).
    #[arg(long, default_value = "0s", value_parser = parse_wait, value_name = "T")]
    drain: Duration,

    /// Once accepting has stopped, how long responses in flight may take to finish before they
    /// are cut off (0: cut off at once).
    #[arg(long, default_value = "10s", value_parser = parse_wait, value_name = "T")]
    shutdown_grace: Duration,
}

fn main() -> ExitCode {
    malloc::return_large_blocks();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.is::<UsageError>() {
                EXIT_USAGE
            } else {
                EXIT_RUNTIME
            };
            eprintln!("satchel-server: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// A problem with the command line or ROOT (exit code 2).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: String) -> anyhow::Error {
    UsageError(msg).into()
}

/// The server's life in steps: check the arguments, build the site, bind, announce, serve
/// until a signal, report.
fn run(args: Args) -> Result<()> {
    let (bind, cache_entries) = check_args(&args)?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let max_connections = raise_fd_limit(args.max_connections, workers)?;
    let site = build_site(&args, workers, cache_entries)?;

    let defer_accept = !args.no_defer_accept;
    let listeners = listen::bind_exclusive(SocketAddr::new(bind, args.port), workers, defer_accept)
        .with_context(|| format!("cannot listen on {}", SocketAddr::new(bind, args.port)))?;
    let addr = listeners[0].local_addr().context("listener address")?;
    let shared = Arc::new(Shared::new(max_connections, args.quiet));
    // Before the address is printed: whoever reads it may signal at once, and a signal that
    // comes before the handlers would kill the process without its shutdown.
    let signals = worker::ShutdownSignal::install().context("installing signal handlers")?;
    let admin_listener = args.admin.map(bind_admin).transpose()?;
    announce(&args, addr, &site, workers);

    let running = Running {
        site: &site,
        shared: &shared,
        metrics: metrics::Metrics::new(workers),
        draining: AtomicBool::new(false),
        admin_stop: AtomicBool::new(false),
        defer_accept,
        // A connection must bring its PROXY header within the head timeout.
        proxy_protocol: args.proxy_protocol.then_some(args.head_timeout),
        grace: args.shutdown_grace,
        drain: args.drain,
    };
    running.serve(listeners, admin_listener.as_ref(), signals)?;
    running.report(args.quiet);
    Ok(())
}

/// Checks what clap cannot: the root, `--cache-control`, the cache's entry count, and that
/// the admin port is not the file port; returns the address to bind and the cache's entries.
fn check_args(args: &Args) -> Result<(IpAddr, usize)> {
    let meta = std::fs::metadata(&args.root)
        .map_err(|e| usage(format!("root {}: {e}", args.root.display())))?;
    if !meta.is_dir() {
        return Err(usage(format!(
            "root {} is not a folder",
            args.root.display()
        )));
    }
    if !satchel_core::serve::valid_cache_control(&args.cache_control) {
        return Err(usage(format!(
            "--cache-control {:?}: not a field value (visible ASCII, spaces and tabs inside \
             only, not empty)",
            args.cache_control
        )));
    }
    let entries = cache_entries(args.cache_entries, args.cache_size)?;
    let bind = match &args.bind {
        Some(spec) => resolve_bind(spec, args.port)?,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    if let Some(admin) = args.admin {
        let file = SocketAddr::new(bind, args.port);
        if overlaps(admin, file) {
            return Err(usage(format!(
                "--admin {admin} is the file port's address ({file}): give the admin listener a port of its own"
            )));
        }
    }
    Ok((bind, entries))
}

/// The file source, the cache, the core's configuration and the I/O pool, as one site.
fn build_site(args: &Args, workers: usize, cache_entries: usize) -> Result<HostSite> {
    let source = fs::FsSource::open(&args.root, args.hidden)
        .map_err(|e| usage(format!("root {}: {e}", args.root.display())))?
        .with_content_tags_up_to(args.max_cached_file);
    let cache = cache::ShardedCache::new(
        usize::try_from(args.cache_size).context("--cache-size too large")?,
        cache_entries,
        args.max_cached_file,
    );
    let mut config = satchel_core::serve::Config::host();
    config.listings = !args.no_listing;
    config.precompressed = !args.no_precompressed;
    config.path.allow_hidden = args.hidden;
    config.idle_timeout = core_duration(args.idle_timeout);
    config.head_timeout = core_duration(args.head_timeout);
    config.send_timeout = core_duration(args.send_timeout);
    // Fixed for the process's lifetime, as the core's Config wants it.
    config.cache_control = Some(Box::leak(args.cache_control.clone().into_boxed_str()));
    let pool = iopool::IoPool::new(workers, args.max_cached_file);
    Ok(HostSite::new(source, cache, config, pool))
}

/// The admin listener (`--admin`), non-blocking, its address said on stdout.
fn bind_admin(admin: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(admin)
        .with_context(|| format!("cannot listen on {admin} (--admin)"))?;
    l.set_nonblocking(true).context("admin listener")?;
    say(format_args!(
        "admin on {}",
        l.local_addr().context("admin address")?
    ));
    Ok(l)
}

/// Says where the server listens (tests and scripts read this line) and, unless `--quiet`,
/// what it serves and the URLs to try.
fn announce(args: &Args, addr: SocketAddr, site: &HostSite, workers: usize) {
    say(format_args!("listening on {addr}"));
    if !args.quiet {
        say(format_args!(
            "serving {} with {} worker(s), cache {} bytes / {} entries in {} shard(s), files above {} bytes streamed",
            site.source_root().display(),
            workers,
            args.cache_size,
            site.cache.entries_capacity(),
            site.cache.shard_count(),
            args.max_cached_file
        ));
    }
    flush_stdout();
    if !args.quiet {
        print_urls(addr);
    }
}

/// What the serving threads share, from the first accept to the report at shutdown.
struct Running<'a> {
    site: &'a HostSite,
    shared: &'a Arc<Shared>,
    metrics: metrics::Metrics,
    /// Set at the first SIGTERM/SIGINT (`/healthz` answers 503 from then on).
    draining: AtomicBool,
    /// Set when the workers are done: the admin thread ends.
    admin_stop: AtomicBool,
    defer_accept: bool,
    proxy_protocol: Option<Duration>,
    grace: Duration,
    drain: Duration,
}

impl Running<'_> {
    /// Starts the I/O threads, one worker per listener and the admin thread, then waits for
    /// a signal and for the workers to finish.
    fn serve(
        &self,
        listeners: Vec<std::net::TcpListener>,
        admin_listener: Option<&std::net::TcpListener>,
        signals: worker::ShutdownSignal,
    ) -> Result<()> {
        std::thread::scope(|scope| -> Result<()> {
            let site = self.site;
            // However this closure ends, the I/O threads end with it (the scope waits for them).
            let _stop = iopool::StopOnDrop(&site.pool);
            for i in 0..iopool::IO_THREADS {
                std::thread::Builder::new()
                    .name(format!("io-{i}"))
                    .spawn_scoped(scope, move || site.pool.run(&site.source))
                    .context("spawning I/O thread")?;
            }
            let mut handles = Vec::new();
            for (i, listener) in listeners.into_iter().enumerate() {
                handles.push(self.spawn_worker(scope, i, listener, &signals)?);
            }
            let admin = admin::Admin {
                site,
                shared: self.shared,
                metrics: &self.metrics,
                draining: &self.draining,
                stop: &self.admin_stop,
            };
            if let Some(listener) = admin_listener {
                std::thread::Builder::new()
                    .name("admin".into())
                    .spawn_scoped(scope, move || admin.run(listener))
                    .context("spawning the admin thread")?;
            }
            signals.wait(self.shared, &self.draining, self.drain);
            let joined = join_workers(handles);
            self.admin_stop.store(true, Ordering::Release);
            joined
        })
    }

    /// Worker `i` on its listener, in a thread of `scope`.
    fn spawn_worker<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        i: usize,
        listener: std::net::TcpListener,
        signals: &worker::ShutdownSignal,
    ) -> Result<std::thread::ScopedJoinHandle<'scope, Result<()>>> {
        let io = worker::WorkerIo::new(listener).context("creating worker")?;
        signals.add_waker(io.waker());
        self.site.pool.set_waker(i, io.waker());
        let shared = Arc::clone(self.shared);
        let counters = self.metrics.worker(i);
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn_scoped(scope, move || {
                let site = WorkerSite::new(self.site, i);
                worker::Worker::new(
                    &site,
                    shared,
                    io,
                    self.defer_accept,
                    counters,
                    self.grace,
                    self.proxy_protocol,
                )
                .run()
            })
            .context("spawning worker thread")
    }

    /// Responses cut off at the grace period (always said), and the cache's counters
    /// (unless `--quiet`).
    fn report(&self, quiet: bool) {
        let cut = self.metrics.cut_off_total();
        if cut > 0 {
            eprintln!(
                "satchel-server: shutdown: {cut} response(s) still sending after --shutdown-grace {} were cut off",
                humantime::format_duration(self.grace)
            );
        }
        if quiet {
            return;
        }
        let s = self.site.cache.stats();
        say(format_args!(
            "shutdown: cache hits={} misses={} insertions={} evictions={} bypasses={} stale={} bytes_used={} entries={} | requests={}",
            s.hits,
            s.misses,
            s.insertions,
            s.evictions,
            s.bypasses,
            s.stale_drops,
            s.bytes_used,
            s.entries,
            self.shared.requests.load(Ordering::Relaxed)
        ));
        flush_stdout();
    }
}

/// Waits for every worker; a worker's error is reported, a panic fails the run.
fn join_workers(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<()>>>) -> Result<()> {
    let mut panicked = false;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("satchel-server: worker: {e:#}"),
            Err(_) => panicked = true,
        }
    }
    if panicked {
        bail!("a worker thread panicked");
    }
    Ok(())
}

/// Whether listening on `a` would take `b`'s place: the same port on the same address, or on
/// an unspecified address (which covers every one).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// One line on stdout. A closed stdout (`satchel-server | head`) is not an error worth dying
/// for: the line is dropped (Rust ignores SIGPIPE, and `println!` would panic on EPIPE).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn flush_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// `--cache-entries`, checked against `--cache-size`: each entry is charged
/// [`cache::ENTRY_OVERHEAD`] bytes, so a count the size cannot hold is refused (saying what it
/// would hold, and what size the count needs); unset, it is 16384 or what the size holds.
fn cache_entries(entries: Option<usize>, cache_size: u64) -> Result<usize> {
    const DEFAULT: usize = 16384;
    let per = cache::ENTRY_OVERHEAD as u64;
    let holds = usize::try_from(cache_size / per).unwrap_or(usize::MAX);
    match entries {
        None => Ok(DEFAULT.min(holds).max(1)),
        Some(0) if cache_size > 0 => Err(usage("--cache-entries must be at least 1".into())),
        Some(n) if cache_size > 0 && n > holds => Err(usage(format!(
            "--cache-entries {n} does not fit in --cache-size {cache_size} bytes: each entry takes \
             at least {per} bytes, so that size holds at most {holds} entries \
             (--cache-entries {n} needs --cache-size {} or more)",
            (n as u64).saturating_mul(per)
        ))),
        Some(n) => Ok(n.max(1)),
    }
}

/// `--bind`: an IP address (`127.0.0.1`, `::1`, `[::1]`) as is, or a host name resolved; of
/// its addresses the first IPv4 one is taken (an IPv4 address also serves clients that try a
/// name's IPv6 address first and fall back, not the other way round), and the choice is said.
fn resolve_bind(spec: &str, port: u16) -> Result<IpAddr> {
    use std::net::ToSocketAddrs;
    let bare = spec.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    let found: Vec<IpAddr> = (spec, port)
        .to_socket_addrs()
        .map_err(|e| {
            usage(format!(
                "--bind {spec}: not an IP address, and resolving it failed: {e}"
            ))
        })?
        .map(|a| a.ip())
        .collect();
    let Some(&ip) = found.iter().find(|ip| ip.is_ipv4()).or(found.first()) else {
        return Err(usage(format!("--bind {spec}: the name has no address")));
    };
    let others: Vec<String> = found
        .iter()
        .filter(|&&a| a != ip)
        .map(ToString::to_string)
        .collect();
    match others.is_empty() {
        true => eprintln!("satchel-server: --bind {spec}: resolved to {ip}"),
        false => eprintln!(
            "satchel-server: --bind {spec}: resolved to {ip} (not {})",
            others.join(", ")
        ),
    }
    Ok(ip)
}

/// Prints where a browser can reach the server, one clickable URL a line (on stderr: stdout
/// carries the lines scripts read, `listening on` and the access log). Bound to all interfaces,
/// that is loopback and each of this machine's network addresses, as `python -m http.server`
/// and miniserve show them.
fn print_urls(addr: SocketAddr) {
    for (label, ip) in url_addresses(addr.ip()) {
        eprintln!("  {label} http://{}/", SocketAddr::new(ip, addr.port()));
    }
}

/// The addresses worth showing for a listener bound to `bound`, labelled `local:` or
/// `network:`.
fn url_addresses(bound: IpAddr) -> Vec<(&'static str, IpAddr)> {
    use std::net::Ipv4Addr;
    if !bound.is_unspecified() {
        let label = if bound.is_loopback() {
            "local:  "
        } else {
            "network:"
        };
        return vec![(label, bound)];
    }
    // [::] is dual stack (IPv4 too); 0.0.0.0 is IPv4 only.
    let v6 = bound.is_ipv6();
    let mut out = vec![("local:  ", IpAddr::V4(Ipv4Addr::LOCALHOST))];
    if v6 {
        out.push(("local:  ", IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }
    let mut lan: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && (v6 || ip.is_ipv4()))
        // A link-local IPv6 address needs a zone (`%eth0`) that browsers do not take in URLs.
        .filter(|ip| !matches!(ip, IpAddr::V6(a) if a.is_unicast_link_local()))
        .collect();
    lan.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    lan.dedup();
    out.extend(lan.into_iter().map(|ip| ("network:", ip)));
    out
}

/// A count that must be at least 1 (`--workers`, `--max-connections`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

fn core_duration(d: Duration) -> satchel_core::time::Duration {
    satchel_core::time::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Raises the soft open-file limit to what `max_connections` needs; if the hard limit is
/// lower, says so and returns the number of connections that can really be held.
fn raise_fd_limit(max_connections: usize, workers: usize) -> Result<usize> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // Per worker: epoll, waker, listener; plus stdio, the root, files being streamed and the
    // cache's sealed memfds.
    let reserve = 64 + 4 * workers as u64 + memfd::MAX_SEALED as u64;
    let want = max_connections as u64 + reserve;
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= want {
        return Ok(max_connections);
    }
    let target = want.min(hard);
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: current.maximum,
        },
    );
    let have = if raised.is_ok() { target } else { soft };
    if have >= want {
        return Ok(max_connections);
    }
    let usable = have.saturating_sub(reserve) as usize;
    if usable == 0 {
        bail!("the open-file limit ({have}) is too low to serve any connection; raise `ulimit -n`");
    }
    eprintln!(
        "satchel-server: warning: open-file limit is {have} (hard limit {hard}), so at most {usable} \
         connections instead of --max-connections {max_connections}; raise `ulimit -Hn` to allow more"
    );
    Ok(usable)
}

/// Parses a byte size with `parse-size`: `4096`, `64KiB`, `8MiB`, `1GiB` (powers of 1024), or
/// `64K`/`64KB`, `8MB`, `1GB` (powers of 1000, as in every other tool).
fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s.trim())
        .map_err(|e| format!("`{s}` is not a size (e.g. 4096, 64KiB, 8MiB, 1GiB, 100MB): {e}"))
}

/// Parses a duration with `humantime` (`15s`, `500ms`, `2m`, `1h 30m`), or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration (e.g. 15s, 500ms, 2m): {e}"))?,
    };
    if d.is_zero() {
        return Err("a timeout must be greater than zero".into());
    }
    Ok(d)
}

/// Parses a wait (`--drain`, `--shutdown-grace`) like [`parse_duration`], zero allowed.
fn parse_wait(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" => Ok(Duration::ZERO),
        t => humantime::parse_duration(t)
            .or_else(|_| parse_duration(t))
            .map_err(|_| format!("`{s}` is not a duration (e.g. 0, 2s, 500ms, 1m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        // Decimal prefixes mean powers of 1000, binary ones powers of 1024.
        assert_eq!(parse_size("8M"), Ok(8_000_000));
        assert_eq!(parse_size("8MB"), Ok(8_000_000));
        assert_eq!(parse_size("64K"), Ok(64_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn counts_of_at_least_one() {
        assert_eq!(at_least_one("1"), Ok(1));
        assert_eq!(at_least_one("64"), Ok(64));
        assert!(at_least_one("0").unwrap_err().contains("at least 1"));
        assert!(at_least_one("-1").is_err());
        assert!(at_least_one("many").is_err());
    }

    #[test]
    fn cache_entries_must_fit_the_size() {
        assert_eq!(cache_entries(None, 64 << 20).unwrap(), 16384);
        // Unset, the count shrinks to what a small cache holds.
        assert_eq!(cache_entries(None, 6400).unwrap(), 100);
        assert_eq!(cache_entries(Some(100), 6400).unwrap(), 100);
        let e = cache_entries(Some(101), 6400).unwrap_err().to_string();
        assert!(e.contains("holds at most 100 entries"), "{e}");
        assert!(e.contains("needs --cache-size 6464"), "{e}");
        assert!(cache_entries(Some(0), 6400).is_err());
        // No cache at all: the count does not matter.
        assert_eq!(cache_entries(Some(5), 0).unwrap(), 5);
    }

    #[test]
    fn bind_takes_addresses_and_names() {
        assert_eq!(
            resolve_bind("127.0.0.1", 0).unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(resolve_bind("::1", 0).unwrap().to_string(), "::1");
        assert_eq!(resolve_bind("[::1]", 0).unwrap().to_string(), "::1");
        assert!(resolve_bind("localhost", 0).unwrap().is_loopback());
        // Refused before any lookup (no DNS query leaves the machine in a test).
        assert!(resolve_bind("bad\0name", 0).is_err());
    }

    #[test]
    fn urls_for_one_address_or_all() {
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(url_addresses(one), [("local:  ", one)]);
        let all = url_addresses(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(all[0].1.to_string(), "127.0.0.1");
        assert_eq!(all[1].1.to_string(), "::1");
        assert!(all[2..].iter().all(|(_, ip)| !ip.is_loopback()));
        let v4 = url_addresses("0.0.0.0".parse().unwrap());
        assert!(v4.iter().all(|(_, ip)| ip.is_ipv4()));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_wait("3"), Ok(Duration::from_secs(3)));
        assert!(parse_wait("later").is_err());
    }

    #[test]
    fn admin_address_must_differ_from_the_file_port() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(at("127.0.0.1:8080"), at("[::]:8080")));
        assert!(overlaps(at("127.0.0.1:8080"), at("127.0.0.1:8080")));
        assert!(overlaps(at("0.0.0.0:8080"), at("127.0.0.1:8080")));
        assert!(!overlaps(at("127.0.0.1:9080"), at("[::]:8080")));
        assert!(!overlaps(at("127.0.0.2:8080"), at("127.0.0.1:8080")));
        assert!(!overlaps(at("127.0.0.1:0"), at("127.0.0.1:0")));
    }
}
