//! Third-party HTTP servers to test the client against: nginx and python3's `http.server`.
//!
//! Each is started on 127.0.0.1 (port 0 where the peer allows it), waited for with a bound, and
//! killed by its own PID on drop. A peer that is not installed makes [`Peer::start`] return
//! `None` locally (the test prints why and skips), but panic when `SATCHEL_REQUIRE_PEERS=1`
//! (CI), so a missing peer can never pass as green there.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::WAIT;

/// Which peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nginx serving a folder (`autoindex on`).
    Nginx,
    /// `python3 -m http.server`.
    Python,
}

/// A running peer server; killed (and reaped) on drop.
pub struct Peer {
    child: Child,
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

/// Whether CI demands every peer.
pub(crate) fn required() -> bool {
    std::env::var("SATCHEL_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

pub(crate) fn find(program: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn missing(what: &str) -> Option<Peer> {
    assert!(
        !required(),
        "{what} is not installed, and SATCHEL_REQUIRE_PEERS=1 requires it"
    );
    eprintln!("skipping: {what} is not installed");
    None
}

impl Peer {
    /// Starts `kind` serving `root`; `None` (locally) when it is not installed.
    ///
    /// # Panics
    /// When the peer is installed but does not come up within [`WAIT`], or is missing under
    /// `SATCHEL_REQUIRE_PEERS=1`.
    pub fn start(kind: Kind, root: &Path) -> Option<Self> {
        match kind {
            Kind::Nginx => Self::nginx(root),
            Kind::Python => Self::python(root),
        }
    }

    fn python(root: &Path) -> Option<Self> {
        let Some(python) = find("python3", &[]) else {
            return missing("python3");
        };
        let mut child = Command::new(python)
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
                "--directory",
            ])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 -m http.server");
        let lines = crate::line_reader(child.stdout.take().expect("piped stdout"));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("python3 http.server printed no `Serving HTTP` line in time");
            };
            // "Serving HTTP on 127.0.0.1 port 34567 (http://127.0.0.1:34567/) ..."
            let port = line
                .split_once(" port ")
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(port) = port {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                // Keep draining its output so it never blocks on a full pipe.
                std::thread::spawn(move || while lines.recv().is_ok() {});
                return Some(Self {
                    child,
                    addr,
                    _dir: None,
                });
            }
        }
    }

    fn nginx(root: &Path) -> Option<Self> {
        let Some(nginx) = find("nginx", &["/usr/sbin", "/usr/local/sbin"]) else {
            return missing("nginx");
        };
        let dir = tempfile::tempdir().expect("tempdir for nginx");
        // nginx cannot listen on port 0 and report it: take a free port and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let p = dir.path();
        let conf = format!(
            "pid {pid};\n\
             error_log {err} warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               log_format pipe '$connection $connection_requests $pipe $request_uri';\n\
               access_log {p}/access.log pipe;\n\
               default_type application/octet-stream;\n\
               client_body_temp_path {p}/body;\n\
               proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi;\n\
               uwsgi_temp_path {p}/uwsgi;\n\
               scgi_temp_path {p}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 root {root};\n\
                 autoindex on;\n\
               }}\n\
             }}\n",
            pid = p.join("nginx.pid").display(),
            err = p.join("error.log").display(),
            p = p.display(),
            root = root.display(),
        );
        let conf_path = p.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(p.join("error.log")).unwrap_or_default();
                panic!("nginx exited early ({status}): {log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nginx did not listen on {addr} in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            addr,
            _dir: Some(dir),
        })
    }

    /// nginx's access log so far: a line per request, `connection-serial requests-on-it
    /// pipelined(p or .) target` (empty for another peer).
    pub fn access_log(&self) -> String {
        self._dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("access.log")).ok())
            .unwrap_or_default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a finished `satchel-client` run left behind.
#[derive(Debug)]
pub struct ClientRun {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl ClientRun {
    /// Asserts the exit code, showing stderr when it differs.
    ///
    /// # Panics
    /// When the code is not `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "stderr: {}", self.stderr);
    }
}

/// Runs the built `satchel-client` with `args` in `cwd`, bounded by `limit`.
///
/// # Panics
/// When it cannot be started, or is still running after `limit` (it is killed first).
pub fn run_client(cwd: &Path, args: &[&str], limit: Duration) -> ClientRun {
    run_program(&crate::bin_path("satchel-client"), cwd, args, limit)
}

/// Runs `program` with `args` in `cwd`, bounded by `limit`, capturing its output.
///
/// # Panics
/// As [`run_client`].
pub fn run_program(program: &Path, cwd: &Path, args: &[&str], limit: Duration) -> ClientRun {
    use std::io::Read;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} still running after {limit:?}",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ClientRun {
        code: status.code(),
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}
