//! HAProxy in front of satchel-server nodes, for the cluster tests.
//!
//! Started on 127.0.0.1 with its own config in a temporary folder, in the foreground (`-db`),
//! and killed by its own PID on drop. The config is deploy/haproxy.cfg's balancing (consistent
//! hashing on the path, bounded loads, redispatch on a refused connection) with health checks
//! every 300 ms: on the nodes' admin port (`GET /healthz`, [`Haproxy::start_checked`]), as
//! deploy/haproxy.cfg does, or on the file port (a HEAD of the root listing, [`Haproxy::start`])
//! for nodes without one. HAProxy that is not installed makes [`Haproxy::start`] return `None` locally
//! (the test prints why and skips), and panic when `SATCHEL_REQUIRE_PEERS=1` (CI).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{find, required};
use crate::WAIT;

/// A running HAProxy; killed (and reaped) on drop.
pub struct Haproxy {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The haproxy binary, or `None` (locally) with a message when it is not installed.
///
/// # Panics
/// When it is missing under `SATCHEL_REQUIRE_PEERS=1`.
pub fn binary() -> Option<PathBuf> {
    let found = find("haproxy", &["/usr/sbin", "/usr/local/sbin"]);
    if found.is_none() {
        assert!(
            !required(),
            "haproxy is not installed, and SATCHEL_REQUIRE_PEERS=1 requires it"
        );
        eprintln!("skipping: haproxy is not installed (apt-get install haproxy)");
    }
    found
}

/// The config for a frontend on `port` balancing over `nodes`, health-checked on their file
/// port.
pub fn config(port: u16, nodes: &[SocketAddr]) -> String {
    config_with(port, nodes, "")
}

/// [`config`] with `server_options` added to every server (e.g. `send-proxy-v2`).
pub fn config_with(port: u16, nodes: &[SocketAddr], server_options: &str) -> String {
    let mut servers = String::new();
    for (i, node) in nodes.iter().enumerate() {
        servers.push_str(&format!("    server node{i} {node} {server_options}\n"));
    }
    render(
        port,
        RETRY_ELSEWHERE,
        "    http-check send meth HEAD uri / ver HTTP/1.1 hdr Host satchel\n",
        &servers,
    )
}

/// The config for a frontend on `port` balancing over `nodes`, each a file address and the
/// admin address its health is checked on (`GET /healthz`, expecting 200), as in
/// deploy/haproxy.cfg. Without `retry`, a request that fails to reach its node is not tried
/// again elsewhere (`retries 0`): only the health checks keep requests off a leaving node.
pub fn config_checked(port: u16, nodes: &[(SocketAddr, SocketAddr)], retry: bool) -> String {
    let mut servers = String::new();
    for (i, (node, admin)) in nodes.iter().enumerate() {
        servers.push_str(&format!(
            "    server node{i} {node} addr {} port {}\n",
            admin.ip(),
            admin.port()
        ));
    }
    render(
        port,
        if retry { RETRY_ELSEWHERE } else { NO_RETRY },
        "    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host satchel\n\
         \x20   http-check expect status 200\n",
        &servers,
    )
}

/// deploy/haproxy.cfg's retries: a connection refused (node down) or closed without an answer
/// (an idle kept-alive connection the node closed) is tried again, on another node.
const RETRY_ELSEWHERE: &str = "    retries 3\n\
                               \x20   option redispatch 1\n\
                               \x20   retry-on conn-failure empty-response\n";
const NO_RETRY: &str = "    retries 0\n";

fn render(port: u16, retry: &str, check: &str, servers: &str) -> String {
    format!(
        "global\n\
         \x20   maxconn 1000\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         \x20   timeout http-request 10s\n\
         {retry}\
         frontend files\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend satchel\n\
         backend satchel\n\
         \x20   balance uri path-only\n\
         \x20   hash-type consistent\n\
         \x20   hash-balance-factor 150\n\
         \x20   option httpchk\n\
         {check}\
         \x20   default-server check inter 300ms fall 1 rise 1\n\
         {servers}"
    )
}

impl Haproxy {
    /// Starts HAProxy balancing over `nodes`; `None` (locally) when it is not installed.
    ///
    /// # Panics
    /// When the config is refused, or HAProxy does not listen within [`WAIT`].
    pub fn start(nodes: &[SocketAddr]) -> Option<Self> {
        Self::launch(|port| config(port, nodes))
    }

    /// [`Haproxy::start`] with `server_options` on every server (e.g. `send-proxy-v2`).
    ///
    /// # Panics
    /// As [`Haproxy::start`].
    pub fn start_with(nodes: &[SocketAddr], server_options: &str) -> Option<Self> {
        Self::launch(|port| config_with(port, nodes, server_options))
    }

    /// Starts HAProxy balancing over `nodes` (file address, admin address), checking each
    /// node's `/healthz`, with or without deploy/haproxy.cfg's retries ([`config_checked`]);
    /// `None` (locally) when it is not installed.
    ///
    /// # Panics
    /// As [`Haproxy::start`].
    pub fn start_checked(nodes: &[(SocketAddr, SocketAddr)], retry: bool) -> Option<Self> {
        Self::launch(|port| config_checked(port, nodes, retry))
    }

    fn launch(config: impl FnOnce(u16) -> String) -> Option<Self> {
        let haproxy = binary()?;
        let dir = tempfile::tempdir().expect("tempdir for haproxy");
        // HAProxy cannot listen on port 0 and report it: take a free port and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(port)).expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("haproxy.log");
        let mut child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("haproxy.log"));
                panic!("haproxy exited early ({status}): {log:?}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("haproxy did not listen on {addr} in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, addr, dir })
    }

    /// The frontend's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/path` through the balancer.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What HAProxy wrote on stderr so far (alerts and warnings), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `n` copies of the tree at `src`, each made with `cp -a` (same bytes and modification times,
/// other inodes and change times), as replicas of one tree on several machines are.
///
/// # Panics
/// When `cp -a` fails.
pub fn replicas(src: &std::path::Path, n: usize) -> Vec<tempfile::TempDir> {
    (0..n)
        .map(|_| {
            let dir = tempfile::tempdir().expect("tempdir for a replica");
            let status = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", src.display()))
                .arg(dir.path())
                .status()
                .expect("run cp -a");
            assert!(status.success(), "cp -a {} failed", src.display());
            dir
        })
        .collect()
}

/// One access-log line of satchel-server:
/// `client method target status sent cache duration complete|incomplete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The request target.
    pub target: String,
    /// The status code.
    pub status: u16,
    /// The cache column: `hit`, `miss-stored`, `miss`, `bypass` or `-`.
    pub cache: String,
    /// Whether the whole response was sent.
    pub complete: bool,
}

impl Access {
    /// Parses an access-log line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(' ').collect();
        let [_client, method, target, status, _sent, cache, _duration, completion] = f[..] else {
            return None;
        };
        Some(Self {
            method: method.to_owned(),
            target: target.to_owned(),
            status: status.parse().ok()?,
            cache: cache.to_owned(),
            complete: match completion {
                "complete" => true,
                "incomplete" => false,
                _ => return None,
            },
        })
    }
}

/// Collects access-log lines from every node until `done` holds for what was collected, or
/// [`WAIT`] passes; returns them per node (index in `nodes`), file-port health checks
/// (`HEAD /`) left out.
pub fn collect_access(
    nodes: &[&crate::Server],
    mut done: impl FnMut(&[Vec<Access>]) -> bool,
) -> Vec<Vec<Access>> {
    let mut seen: Vec<Vec<Access>> = vec![Vec::new(); nodes.len()];
    let deadline = Instant::now() + WAIT;
    while !done(&seen) && Instant::now() < deadline {
        for (i, node) in nodes.iter().enumerate() {
            while let Some(line) = node.next_line(Duration::from_millis(20)) {
                if let Some(a) = Access::parse(&line) {
                    if !(a.method == "HEAD" && a.target == "/") {
                        seen[i].push(a);
                    }
                }
            }
        }
    }
    seen
}
