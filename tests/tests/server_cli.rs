//! The server's command line as a person meets it: nonsense refused up front (exit 2, a message
//! naming the option), `--bind` with a host name, the URLs printed at start, and IPv4 clients
//! of a dual-stack socket logged as IPv4.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use satchel_tests::{bin_path, line_reader, raw, WAIT};

/// Runs the server with `args` expecting it to refuse them: its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(bin_path("satchel-server"))
        .arg("0")
        .arg(root.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "printed before refusing: {:?}",
        out.stdout
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn zero_workers_or_connections_are_refused() {
    for option in ["--workers", "--max-connections"] {
        let (code, err) = refused(&[option, "0"]);
        assert_eq!(code, Some(2), "{option} 0: {err}");
        assert!(err.contains(option) && err.contains("at least 1"), "{err}");
    }
}

#[test]
fn a_cache_entry_count_the_size_cannot_hold_is_refused() {
    let (code, err) = refused(&["--cache-size", "64KiB", "--cache-entries", "5000"]);
    assert_eq!(code, Some(2), "{err}");
    // What the size holds, and what the count would need.
    assert!(err.contains("holds at most 1024 entries"), "{err}");
    assert!(err.contains("--cache-size 320000"), "{err}");
    // The same count with room for it starts (and a small size alone is fine: the default
    // count shrinks to fit).
    let root = tempfile::tempdir().unwrap();
    let fits = Started::new(
        root.path(),
        &[
            "--bind",
            "127.0.0.1",
            "--cache-size",
            "320000",
            "--cache-entries",
            "5000",
        ],
    );
    assert_eq!(raw::get(fits.addr, "/").status, 200);
    let small = Started::new(
        root.path(),
        &["--bind", "127.0.0.1", "--cache-size", "64KiB"],
    );
    assert_eq!(raw::get(small.addr, "/").status, 200);
}

/// A server started by a test with stdout and stderr read; killed (by its own handle) on drop.
struct Started {
    child: Child,
    addr: SocketAddr,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Started {
    fn new(root: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(bin_path("satchel-server"))
            .arg("0")
            .arg(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = line_reader(child.stdout.take().unwrap());
        let stderr = line_reader(child.stderr.take().unwrap());
        let line = stdout.recv_timeout(WAIT).unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            let err: Vec<String> = stderr.try_iter().collect();
            panic!("no `listening on` line: {err:?}");
        });
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line}"))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// Stderr lines until one contains `want` (bounded); all of them.
    fn stderr_until(&self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(WAIT) {
            let done = line.contains(want);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no stderr line with {want:?}: {seen:?}");
    }

    /// The next stdout line containing `needle` (skipping the banner).
    fn log_line(&self, needle: &str) -> String {
        while let Ok(line) = self.stdout.recv_timeout(WAIT) {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no log line with {needle:?}");
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bind_takes_a_host_name_and_says_what_it_took() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), b"a\n").unwrap();
    let server = Started::new(root.path(), &["--bind", "localhost"]);
    let said = server.stderr_until("--bind localhost: resolved to");
    let line = said.last().unwrap();
    let took = line
        .split("resolved to ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert_eq!(took, server.addr.ip().to_string(), "{line}");
    assert!(server.addr.ip().is_loopback());
    assert_eq!(raw::get(server.addr, "/a.txt").body, b"a\n");
}

#[test]
fn start_prints_a_clickable_url() {
    let root = tempfile::tempdir().unwrap();
    let server = Started::new(root.path(), &["--bind", "127.0.0.1"]);
    let url = format!("http://127.0.0.1:{}/", server.addr.port());
    let said = server.stderr_until(&url);
    assert!(said.last().unwrap().trim().ends_with(&url), "{said:?}");
}

/// Bound to all interfaces (the default `[::]`, dual stack): loopback in both families is
/// shown, every other line is a network address, and a client over IPv4 is logged as
/// `127.0.0.1`, not `::ffff:127.0.0.1`.
#[test]
fn all_interfaces_list_the_lan_and_log_ipv4_clients_as_ipv4() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), b"a\n").unwrap();
    let server = Started::new(root.path(), &["--bind", "::"]);
    let port = server.addr.port();
    let v6 = format!("http://[::1]:{port}/");
    let said = server.stderr_until(&v6);
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("http://127.0.0.1:{port}/"))),
        "{said:?}"
    );
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(raw::get(v4, "/a.txt").status, 200);
    let line = server.log_line(" GET /a.txt ");
    assert!(line.starts_with("127.0.0.1 GET /a.txt 200 "), "{line}");
}
