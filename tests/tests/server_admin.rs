//! The admin listener (`--admin`): `/healthz` and `/metrics` (checked with `promtool check
//! metrics`), and the shutdown sequence it reports: drain (`/healthz` 503 while files are still
//! served), the grace for responses in flight (`--shutdown-grace`; what outlives it is cut off
//! and counted on stderr), and a second signal that exits at once with 128 + its number.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use satchel_tests::raw::{get, one, Conn};
use satchel_tests::{bin_path, content, promtool, signal, Server, WAIT};

fn root_with(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    dir
}

fn admin_of(server: &Server) -> SocketAddr {
    server.admin().expect("the server printed `admin on ADDR`")
}

/// A scrape: the text, and each sample (`name` or `name{labels}`) with its value.
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn take(admin: SocketAddr) -> Self {
        let r = get(admin, "/metrics");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = String::from_utf8(r.body).expect("UTF-8 metrics");
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').expect("`name value`");
                (name.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Self { text, samples }
    }

    fn get(&self, sample: &str) -> f64 {
        self.samples.get(sample).copied().unwrap_or(0.0)
    }
}

/// Sums the `sent` column of the access-log lines of complete responses read so far.
fn logged_bytes(server: &Server, lines: usize) -> f64 {
    let mut sum = 0.0;
    let mut seen = 0;
    while seen < lines {
        let line = server
            .next_line(WAIT)
            .expect("an access-log line per request");
        // `client method target status sent cache duration completion`; the start-up lines
        // are not access-log lines.
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() == 8 && fields[7] == "complete" {
            sum += fields[4].parse::<f64>().unwrap();
            seen += 1;
        }
    }
    sum
}

#[test]
fn metrics_count_what_was_served_and_pass_promtool() {
    let small = content(300, 1);
    let big = content(5000, 2);
    let dir = root_with(&[("small.txt", small.clone()), ("big.bin", big.clone())]);
    let server = Server::start(
        dir.path(),
        &["--admin", "127.0.0.1:0", "--max-cached-file", "4KiB"],
    );
    let admin = admin_of(&server);
    let before = Scrape::take(admin);
    assert_eq!(
        before.get("satchel_http_responses_total{code=\"200\"}"),
        0.0
    );
    assert_eq!(before.get("satchel_cache_entries"), 0.0);

    // A miss, a hit, a bypass (above --max-cached-file), a 404, on one kept-alive connection.
    let mut c = Conn::open(server.addr());
    for (path, status, body) in [
        ("/small.txt", 200, &small),
        ("/small.txt", 200, &small),
        ("/big.bin", 200, &big),
    ] {
        c.get(path, "");
        let r = c.response(false).unwrap();
        assert_eq!((r.status, &r.body), (status, body), "{path}");
    }
    c.get("/nothing-here", "");
    assert_eq!(c.response(false).unwrap().status, 404);
    let bytes = logged_bytes(&server, 4);

    let s = Scrape::take(admin);
    assert_eq!(s.get("satchel_http_responses_total{code=\"200\"}"), 3.0);
    assert_eq!(s.get("satchel_http_responses_total{code=\"404\"}"), 1.0);
    assert_eq!(s.get("satchel_http_response_bytes_total"), bytes);
    assert_eq!(s.get("satchel_cache_hits_total"), 1.0);
    // The cache's own counts: a bypassed file was looked up too (a miss), then not admitted.
    assert_eq!(s.get("satchel_cache_misses_total"), 2.0);
    assert_eq!(s.get("satchel_cache_bypasses_total"), 1.0);
    assert_eq!(s.get("satchel_cache_evictions_total"), 0.0);
    assert_eq!(s.get("satchel_cache_stale_drops_total"), 0.0);
    assert_eq!(s.get("satchel_cache_entries"), 1.0);
    assert!(s.get("satchel_cache_size_bytes") >= small.len() as f64);
    // The kept-alive connection is still open (the admin's own is not counted).
    assert_eq!(s.get("satchel_open_connections"), 1.0);
    assert_eq!(s.get("satchel_draining"), 0.0);
    assert_eq!(s.get("satchel_shutdown_cut_off_responses_total"), 0.0);
    for name in [
        "satchel_http_responses_total counter",
        "satchel_cache_size_bytes gauge",
    ] {
        assert!(s.text.contains(&format!("# TYPE {name}\n")), "{}", s.text);
    }

    // A changed file is a stale drop; closing the connection is seen.
    std::fs::write(dir.path().join("small.txt"), content(301, 3)).unwrap();
    assert_eq!(get(server.addr(), "/small.txt").status, 200);
    drop(c);
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = Scrape::take(admin);
        if s.get("satchel_open_connections") == 0.0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(s.get("satchel_open_connections"), 0.0);
    assert_eq!(s.get("satchel_cache_stale_drops_total"), 1.0);

    let Some(promtool) = promtool() else { return };
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(s.text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {out:?}\n{}",
        s.text
    );
}

#[test]
fn the_admin_port_answers_only_its_two_paths() {
    let dir = root_with(&[("healthz", b"a file named healthz\n".to_vec())]);
    let server = Server::start(dir.path(), &["--admin", "127.0.0.1:0"]);
    let admin = admin_of(&server);
    let r = get(admin, "/healthz");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    // The file of the same name is on the file port only.
    assert_eq!(
        get(server.addr(), "/healthz").body,
        b"a file named healthz\n"
    );
    let head = one(
        admin,
        b"HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(get(admin, "/").status, 404);
    assert_eq!(get(admin, "/small.txt").status, 404);
    let post = one(
        admin,
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    let bad = one(admin, b"GARBAGE\r\n\r\n").unwrap();
    assert_eq!(bad.status, 400);
}

#[test]
fn admin_on_the_file_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(bin_path("satchel-server"))
        .arg(port.to_string())
        .arg(dir.path())
        .args(["--bind", "127.0.0.1", "--admin"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("run satchel-server");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--admin") && err.contains("port of its own"),
        "{err}"
    );
}

/// Polls `/healthz` until it answers `status` (bounded).
fn wait_health(admin: SocketAddr, status: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = get(admin, "/healthz");
        if r.status == status {
            if status == 503 {
                assert_eq!(r.body, b"draining\n");
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_then_a_second_signal_exits_at_once() {
    let dir = root_with(&[("a.txt", b"still here\n".to_vec())]);
    // A drain far longer than the test: it ends only by the second signal.
    let mut server = Server::start(
        dir.path(),
        &["--admin", "127.0.0.1:0", "--drain", "10m", "--quiet"],
    );
    let admin = admin_of(&server);
    wait_health(admin, 200);
    signal(server.pid(), "-TERM");
    wait_health(admin, 503);
    // Still serving files during the drain, on new connections.
    for _ in 0..3 {
        let r = get(server.addr(), "/a.txt");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"still here\n"[..]));
    }
    assert_eq!(Scrape::take(admin).get("satchel_draining"), 1.0);
    assert_eq!(
        server.wait_exit(Duration::from_millis(100)),
        None,
        "still draining"
    );
    signal(server.pid(), "-TERM");
    assert_eq!(server.wait_exit(WAIT), Some(143), "128 + SIGTERM");
}

#[test]
fn a_second_sigint_exits_with_130() {
    let dir = root_with(&[]);
    let mut server = Server::start(
        dir.path(),
        &["--admin", "127.0.0.1:0", "--drain", "10m", "--quiet"],
    );
    let admin = admin_of(&server);
    signal(server.pid(), "-INT");
    wait_health(admin, 503);
    signal(server.pid(), "-INT");
    assert_eq!(server.wait_exit(WAIT), Some(130), "128 + SIGINT");
}

#[test]
fn a_download_that_outlives_the_grace_is_cut_off_and_counted() {
    const BIG: usize = 64 << 20;
    let dir = root_with(&[("big.bin", content(BIG, 5))]);
    let mut server = Server::start(
        dir.path(),
        &[
            "--max-cached-file",
            "1MiB",
            "--drain",
            "200ms",
            "--shutdown-grace",
            "300ms",
            "--send-timeout",
            "10m",
        ],
    );
    // A reader that takes the head and a little, then stops reading: the rest of the 64 MiB
    // cannot fit in the socket buffers, so the response is still sending at the deadline.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = s.read(&mut buf).unwrap();
    assert!(got > 0);
    signal(server.pid(), "-TERM");
    assert_eq!(server.wait_exit(WAIT), Some(0), "a clean shutdown exits 0");
    // The client's connection ends before the whole body.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < BIG, "the response was cut off ({got} bytes)");
    let mut errors = Vec::new();
    while let Some(line) = server.next_error(Duration::from_millis(500)) {
        errors.push(line);
    }
    assert!(
        errors
            .iter()
            .any(|l| l.contains("shutdown: 1 response(s) still sending") && l.contains("cut off")),
        "{errors:?}"
    );
    let lines = server.drain_lines(Duration::from_millis(500));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("GET /big.bin 200") && l.ends_with(" incomplete")),
        "{lines:?}"
    );
}

#[test]
fn help_documents_the_shutdown_options_and_exit_codes() {
    let out = Command::new(bin_path("satchel-server"))
        .arg("--help")
        .output()
        .expect("run satchel-server --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--admin",
        "--drain",
        "--shutdown-grace",
        "/healthz",
        "/metrics",
        "130 (SIGINT)",
        "143 (SIGTERM)",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}: {help}");
    }
}
