//! Harness for satchel's end-to-end tests: locate the real binaries, start a server on
//! 127.0.0.1 port 0, read back the address it prints, and stop it (only it) on drop.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which the README's test
//! command does); [`bin_path`] refuses a binary older than the sources so a stale build cannot
//! pass for the current code.

pub mod board;
pub mod browser;
pub mod faulty;
pub mod haproxy;
pub mod peers;
pub mod raw;
pub mod smol;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// `n` bytes of deterministic, non-repeating-looking test content; `seed` tells files apart.
pub fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7) ^ (i >> 11) as u8 ^ seed)
        .collect()
}

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The folder holding the built binaries: the profile folder of the running test executable.
fn bin_dir() -> PathBuf {
    // current_exe = <target>/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(t);
    }
    newest
}

/// Path of the built binary `name` (`satchel-server`, `satchel-client`).
///
/// # Panics
/// When it is missing or older than the sources it is built from: run
/// `cargo build --workspace --bins` first.
pub fn bin_path(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --workspace --bins` before the tests",
                path.display()
            )
        });
    let root = workspace_root();
    let package = match name {
        "satchel-server" => "host-server",
        "satchel-client" => "host-client",
        other => other,
    };
    let sources =
        newest_mtime(&root.join("core/src")).max(newest_mtime(&root.join(package).join("src")));
    assert!(
        built >= sources,
        "{} is older than its sources: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// A running satchel-server started by a test; killed (and reaped) on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `satchel-server 0 ROOT --bind 127.0.0.1 EXTRA...` and waits (bounded) for the
    /// `listening on ADDR` line.
    ///
    /// # Panics
    /// When the server does not start or print its address within [`WAIT`].
    pub fn start(root: &Path, extra: &[&str]) -> Self {
        Self::start_on(0, root, extra)
    }

    /// Starts `satchel-server PORT ROOT --bind 127.0.0.1 EXTRA...` (a restart on a port
    /// known to be free) and waits as [`Server::start`] does. With `--admin`, the admin's
    /// address (its `admin on ADDR` line, printed before `listening on`) is in
    /// [`Server::admin`].
    ///
    /// # Panics
    /// When the server does not start or print its address within [`WAIT`].
    pub fn start_on(port: u16, root: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(bin_path("satchel-server"))
            .arg(port.to_string())
            .arg(root)
            .args(["--bind", "127.0.0.1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn satchel-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = spawn_line_reader(stdout);
        let errors = spawn_stderr_reader(child.stderr.take().expect("piped stderr"));
        let mut admin = None;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("admin on ") {
                        admin = Some(
                            addr.trim()
                                .parse()
                                .expect("admin line holds a socket address"),
                        );
                    }
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        let addr = addr
                            .trim()
                            .trim_start_matches("http://")
                            .trim_end_matches('/')
                            .parse()
                            .expect("listening line holds a socket address");
                        return Self {
                            child,
                            addr,
                            admin,
                            lines,
                            errors,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("satchel-server printed no `listening on` line in time ({status:?})");
                }
            }
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when started with `--admin`.
    pub fn admin(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The next line the server printed on stderr (also echoed to the test's stderr), waiting
    /// at most `timeout`.
    pub fn next_error(&self, timeout: Duration) -> Option<String> {
        self.errors.recv_timeout(timeout).ok()
    }

    /// `http://ADDR` for building URLs.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The next line the server printed on stdout (access log), waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The process id, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded by `timeout`) for the server to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the server printed after the last line read, until it exits (bounded).
    pub fn drain_lines(&self, timeout: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = self.next_line(timeout) {
            out.push(line);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn spawn_line_reader<R: Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends signal `sig` (`-TERM`, `-INT`, `-KILL`, `-STOP`...) to process `pid` with `kill`.
///
/// # Panics
/// When `kill` fails (no such process).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Reads a child's stderr lines in the background: each is echoed on our stderr (as an
/// inherited stderr would show it) and kept for [`Server::next_error`].
fn spawn_stderr_reader<R: Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    rx
}

/// Reads a child's stdout (or stderr) lines in the background (helper for other peers).
pub fn line_reader<R: Read + Send + 'static>(pipe: R) -> mpsc::Receiver<String> {
    spawn_line_reader(pipe)
}

/// The first of `names` found on `PATH`, or `None` (locally) with a message naming the Debian
/// `package` to install.
///
/// # Panics
/// When none is found under `SATCHEL_REQUIRE_PEERS=1` (CI): a missing tool fails the test.
pub fn required_tool(names: &[&str], package: &str) -> Option<PathBuf> {
    let found = names.iter().find_map(|name| peers::find(name, &[]));
    if found.is_none() {
        let name = names.first().copied().unwrap_or_default();
        assert!(
            !peers::required(),
            "{name} is not installed, and SATCHEL_REQUIRE_PEERS=1 requires it"
        );
        eprintln!("skipping: {name} is not installed (Debian package `{package}`)");
    }
    found
}

/// `promtool` (Debian package `prometheus`), or `None` (locally) with a message when it is not
/// installed.
///
/// # Panics
/// When it is missing under `SATCHEL_REQUIRE_PEERS=1`.
pub fn promtool() -> Option<PathBuf> {
    let found = peers::find("promtool", &["/usr/bin", "/usr/local/bin"]);
    if found.is_none() {
        assert!(
            !peers::required(),
            "promtool is not installed, and SATCHEL_REQUIRE_PEERS=1 requires it"
        );
        eprintln!(
            "skipping the promtool check: promtool is not installed (apt-get install prometheus)"
        );
    }
    found
}
