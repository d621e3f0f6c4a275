//! satchel-client against a misbehaving server: every fault ends in its documented exit code
//! and never in a final file that is not the whole, right content.
//!
//! Exit codes: 0 ok, 2 usage, 3 not found, 4 other HTTP error, 5 network/timeout,
//! 6 local I/O, 7 integrity, 8 some entries skipped (-r).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use satchel_tests::content;
use satchel_tests::faulty::{Act, FaultyServer, Version};
use satchel_tests::peers::{run_client, run_program, ClientRun};

const LIMIT: Duration = Duration::from_secs(30);
const SIZE: usize = 600_000;

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn v(etag: &str, body: Vec<u8>) -> Version {
    Version {
        etag: etag.into(),
        body,
        headers: String::new(),
    }
}

/// `Repr-Digest: sha-256=:<base64 of the SHA-256 of body>:` and CRLF.
fn repr_digest(body: &[u8]) -> String {
    use sha2::Digest as _;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let hash = sha2::Sha256::digest(body);
    let mut out = String::new();
    for chunk in hash.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    format!("Repr-Digest: sha-256=:{out}:\r\n")
}

#[test]
fn honest_server_several_names_one_connection() {
    let body = content(SIZE, 0);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(
        dir.path(),
        &["127.0.0.1", &port, "a.bin", "b.bin", "c.bin", "-d", "out"],
    );
    run.assert_code(0);
    assert!(
        run.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        run.stderr
    );
    for n in ["a.bin", "b.bin", "c.bin"] {
        assert_eq!(
            std::fs::read(dir.path().join("out").join(n)).expect(n),
            body
        );
    }
    assert_eq!(names(&dir.path().join("out")), ["a.bin", "b.bin", "c.bin"]);
    assert_eq!(
        server.connections(),
        1,
        "keep-alive: one connection for all names"
    );
    let reqs = server.requests();
    assert!(
        reqs[0].starts_with("GET /a.bin HTTP/1.1\r\n"),
        "{}",
        reqs[0]
    );
    assert!(reqs[0].contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")));
    assert!(reqs[0].contains("\r\nUser-Agent: satchel-client/"));
}

#[test]
fn seed_positional_order_and_url_form() {
    let body = content(1000, 1);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("dest")).expect("mkdir");
    let port = server.addr().port().to_string();
    let run = client(dir.path(), &["127.0.0.1", &port, "file.bin", "dest"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("dest/file.bin")).expect("saved"),
        body
    );
    let run = client(
        dir.path(),
        &[&server.url("/x/y.bin?q=1"), "-o", "named.out"],
    );
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("named.out")).expect("saved"),
        body
    );
}

#[test]
fn chunked_body_is_decoded() {
    let body = content(SIZE, 2);
    let server = FaultyServer::simple("/file.bin", &body, Act::Chunked);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin")]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
}

#[test]
fn statuses_map_to_codes() {
    let server = FaultyServer::simple("/file.bin", b"x", Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    client(dir.path(), &[&server.url("/missing.bin")]).assert_code(3);
    let server500 = FaultyServer::simple("/file.bin", b"x", Act::Status(500));
    client(dir.path(), &[&server500.url("/file.bin")]).assert_code(4);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

/// Runs one download from a server doing `act` with no retries; checks the code and that no
/// final file exists.
fn faulty_download(act: Act, code: i32, extra: &[&str]) -> (tempfile::TempDir, FaultyServer) {
    // A lie about the length is only visible when the extra bytes arrive with the body: keep
    // that body small enough for one read.
    let size = if act == Act::LongerThanDeclared {
        5000
    } else {
        SIZE
    };
    let server = FaultyServer::simple("/file.bin", &content(size, 3), act);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url("/file.bin");
    let mut args = vec![url.as_str()];
    if !extra.contains(&"--retries") {
        args.extend(["--retries", "0"]);
    }
    args.extend_from_slice(extra);
    let run = client(dir.path(), &args);
    run.assert_code(code);
    assert!(
        !dir.path().join("file.bin").exists(),
        "no final file after a fault"
    );
    (dir, server)
}

#[test]
fn truncated_body_is_a_network_error_and_keeps_the_part() {
    let (dir, _s) = faulty_download(Act::Truncate(1000), 5, &[]);
    let part = std::fs::metadata(dir.path().join("file.bin.part")).expect("part kept");
    assert_eq!(
        part.len(),
        1000,
        "the part holds what arrived, for --continue"
    );
}

#[test]
fn content_length_longer_than_the_body_is_a_network_error() {
    faulty_download(Act::ShorterThanDeclared, 5, &[]);
}

#[test]
fn body_longer_than_content_length_is_an_integrity_error() {
    let (dir, _s) = faulty_download(Act::LongerThanDeclared, 7, &[]);
    assert!(
        names(dir.path()).is_empty(),
        "untrusted bytes are not kept: {:?}",
        names(dir.path())
    );
}

#[test]
fn garbage_head_is_an_integrity_error() {
    faulty_download(Act::GarbageHead, 7, &[]);
}

#[test]
fn broken_chunked_framing_is_an_integrity_error() {
    faulty_download(Act::BadChunked, 7, &[]);
}

#[test]
fn dripping_head_times_out() {
    let start = Instant::now();
    faulty_download(
        Act::DripHead(Duration::from_millis(500)),
        5,
        &["--timeout", "1"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn reset_mid_transfer_is_a_network_error() {
    faulty_download(Act::Reset, 5, &[]);
}

#[test]
fn retries_resume_where_the_last_try_stopped() {
    let body = content(SIZE, 4);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone())],
        vec![
            (Act::Truncate(200_000), 0),
            (Act::Truncate(400_000), 0),
            (Act::Serve, 0),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "3"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
    assert_eq!(
        names(dir.path()),
        ["file.bin"],
        "part and meta are cleaned up"
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(!reqs[0].contains("Range:"));
    assert!(
        reqs[1].contains("\r\nRange: bytes=200000-\r\nIf-Range: \"v0\"\r\n"),
        "{}",
        reqs[1]
    );
    // The second try was answered 200 (whole file) and cut at 400 000: the part was rewritten
    // from 0, so the third asks from there.
    assert!(
        reqs[2].contains("\r\nRange: bytes=400000-\r\n"),
        "{}",
        reqs[2]
    );
}

#[test]
fn retries_give_up_with_network_code() {
    let (_dir, server) = faulty_download(Act::Truncate(10), 5, &["--retries", "2"]);
    let _ = server;
}

#[test]
fn file_changed_between_tries_starts_over() {
    let old = content(SIZE, 5);
    let new = content(SIZE + 77, 6);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"old\"", old), v("\"new\"", new.clone())],
        vec![(Act::Truncate(300_000), 0), (Act::Serve, 1)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "1"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        new
    );
    assert!(server.requests()[1].contains("If-Range: \"old\""));
}

#[test]
fn partial_with_the_wrong_range_is_an_integrity_error() {
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", content(SIZE, 7))],
        vec![(Act::Truncate(1000), 0), (Act::WrongRange, 0)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "1"]);
    run.assert_code(7);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn continue_resumes_a_part_with_if_range() {
    let body = content(SIZE, 8);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file.bin.part"), &body[..123_456]).expect("part");
    std::fs::write(dir.path().join("file.bin.part.meta"), "\"v0\"\n").expect("meta");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--continue"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
    let req = &server.requests()[0];
    assert!(
        req.contains("\r\nRange: bytes=123456-\r\nIf-Range: \"v0\"\r\n"),
        "{req}"
    );
    assert_eq!(names(dir.path()), ["file.bin"]);
}

#[test]
fn continue_on_a_complete_part_is_success() {
    let body = content(5000, 9);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file.bin.part"), &body).expect("part");
    std::fs::write(dir.path().join("file.bin.part.meta"), "\"v0\"").expect("meta");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--continue"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
}

#[test]
fn continue_with_a_stale_part_restarts_cleanly() {
    let body = content(5000, 10);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("file.bin.part"),
        b"old bytes of another version",
    )
    .expect("part");
    std::fs::write(dir.path().join("file.bin.part.meta"), "\"stale\"").expect("meta");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--continue"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
}

#[test]
fn existing_file_needs_force() {
    let body = content(5000, 11);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file.bin"), b"precious").expect("existing");
    let url = server.url("/file.bin");
    client(dir.path(), &[&url]).assert_code(6);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("kept"),
        b"precious"
    );
    assert_eq!(server.connections(), 0, "refused before connecting");
    client(dir.path(), &[&url, "--force"]).assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("replaced"),
        body
    );
}

#[test]
fn redirects_stay_on_the_server_and_never_rename() {
    let body = content(5000, 12);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone())],
        vec![
            (Act::Redirect("/elsewhere/../../other.bin".into()), 0),
            (Act::Serve, 0),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin")]);
    run.assert_code(0);
    assert_eq!(
        names(dir.path()),
        ["file.bin"],
        "saved under the name asked for"
    );
    assert!(server.requests()[1].starts_with("GET /elsewhere/../../other.bin "));

    let hostile = FaultyServer::simple(
        "/file.bin",
        &body,
        Act::Redirect("http://evil.invalid/file.bin".into()),
    );
    let run = client(dir.path(), &[&hostile.url("/other.bin")]);
    run.assert_code(4);
    assert_eq!(names(dir.path()), ["file.bin"]);
}

#[test]
fn hostile_names_stay_inside_the_destination() {
    let body = content(100, 13);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let root = tempfile::tempdir().expect("tempdir");
    let dest = root.path().join("a/b/dest");
    std::fs::create_dir_all(&dest).expect("mkdir");
    let port = server.addr().port().to_string();
    let run = client(
        &dest,
        &[
            "127.0.0.1",
            &port,
            "../../x",
            "/etc/passwd-copy",
            "100%",
            "-d",
            ".",
        ],
    );
    run.assert_code(0);
    assert_eq!(names(&dest), ["100%", "passwd-copy", "x"]);
    assert_eq!(names(&root.path().join("a/b")), ["dest"]);
    // A %XX escape in a NAME is kept as written: %2f is a slash, so the name is refused
    // before anything is fetched.
    let before = server.connections();
    let run = client(&dest, &["127.0.0.1", &port, "a%2fb", "-d", "."]);
    run.assert_code(2);
    assert_eq!(server.connections(), before);
    // In a URL, %2f decodes to a slash: refused before anything is fetched.
    let before = server.connections();
    let run = client(&dest, &[&server.url("/a/..%2f..%2fevil")]);
    run.assert_code(2);
    assert_eq!(server.connections(), before);
    let run = client(&dest, &[&server.url("/dir/")]);
    run.assert_code(2);
}

#[test]
fn mirror_skips_hostile_listing_entries() {
    let body = content(3000, 14);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let root = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(root.path(), &["127.0.0.1", &port, "-r", "/", "-d", "m"]);
    // Skipped and counted, not an integrity error: exit 8, "some entries skipped".
    run.assert_code(8);
    assert!(run.stderr.contains("2 skipped"), "{}", run.stderr);
    assert!(
        run.stderr.contains("skipped /..%2f..%2fescaped"),
        "{}",
        run.stderr
    );
    assert_eq!(
        names(&root.path().join("m")),
        [".satchel-mirror", "file.bin"]
    );
    assert_eq!(names(root.path()), ["m"], "nothing escaped the mirror");
    let run = client(root.path(), &["127.0.0.1", &port, "--list", "/"]);
    run.assert_code(0);
    assert!(run.stdout.starts_with("file.bin\t3000\n"), "{}", run.stdout);
}

#[test]
fn killed_client_leaves_no_final_file_and_resumes() {
    let body = content(SIZE, 15);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone())],
        vec![(Act::Stall(250_000), 0), (Act::Serve, 0)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(satchel_tests::bin_path("satchel-client"))
        .arg(server.url("/file.bin"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let part = dir.path().join("file.bin.part");
    let deadline = Instant::now() + LIMIT;
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 250_000 {
        assert!(Instant::now() < deadline, "the part never grew");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(!dir.path().join("file.bin").exists());
    let run = client(dir.path(), &[&server.url("/file.bin"), "--continue"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
    assert!(server.requests()[1].contains("Range: bytes=250000-"));
}

#[test]
fn usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &[][..],
        &["127.0.0.1"],
        &["127.0.0.1", "notaport", "x"],
        &["https://127.0.0.1/x"],
        &["http://127.0.0.1:1/a", "http://127.0.0.1:1/b", "-o", "f"],
        &["--bogus-flag"],
    ] {
        let run = client(dir.path(), args);
        run.assert_code(2);
    }
    let help = client(dir.path(), &["--help"]);
    help.assert_code(0);
    assert!(help.stdout.contains("7  integrity"), "{}", help.stdout);
}

#[test]
fn unreachable_server_is_a_network_error() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &["127.0.0.1", &port, "x", "--retries", "0"]);
    run.assert_code(5);
}

#[test]
fn announced_digest_is_verified() {
    let body = content(SIZE, 16);
    let good = Version {
        headers: repr_digest(&body),
        ..v("\"v0\"", body.clone())
    };
    let server = FaultyServer::start(
        "/file.bin",
        vec![good],
        vec![(Act::Truncate(100_000), 0), (Act::Serve, 0)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "1"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
    assert!(
        server.requests()[1].contains("Range: bytes=100000-"),
        "resumed, prefix hashed from disk"
    );

    let bad = Version {
        headers: repr_digest(b"something else"),
        ..v("\"v0\"", body)
    };
    let server = FaultyServer::start("/file.bin", vec![bad], vec![(Act::Serve, 0)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin")]);
    run.assert_code(7);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn dripping_body_times_out() {
    let start = Instant::now();
    faulty_download(
        Act::DripBody(Duration::from_millis(300)),
        5,
        &["--timeout", "1"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn idle_keep_alive_closed_by_the_server_is_reopened() {
    let body = content(5000, 17);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone())],
        vec![(Act::ServeOnceThenClose, 0), (Act::Serve, 0)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(
        dir.path(),
        &[
            "127.0.0.1",
            &port,
            "a.bin",
            "b.bin",
            "-d",
            ".",
            "--retries",
            "0",
        ],
    );
    run.assert_code(0);
    assert_eq!(std::fs::read(dir.path().join("a.bin")).expect("a"), body);
    assert_eq!(std::fs::read(dir.path().join("b.bin")).expect("b"), body);
    assert_eq!(server.connections(), 2);
}

#[test]
fn full_disk_is_a_local_error() {
    let server = FaultyServer::simple("/file.bin", &content(SIZE, 18), Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    let client_bin = satchel_tests::bin_path("satchel-client");
    let url = server.url("/file.bin");
    // A file size limit stands in for a full disk: with SIGXFSZ ignored, write() fails (EFBIG)
    // once the part reaches ~100 KiB, as it would with ENOSPC.
    let run = run_program(
        Path::new("/bin/sh"),
        dir.path(),
        &[
            "-c",
            "trap '' XFSZ; ulimit -f 200; exec \"$0\" \"$@\"",
            client_bin.to_str().expect("utf-8 path"),
            &url,
        ],
        LIMIT,
    );
    run.assert_code(6);
    assert!(!dir.path().join("file.bin").exists());
}

#[test]
fn progress_bar_on_a_terminal() {
    let Some(script) = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        eprintln!("skipping: util-linux script(1) is not installed");
        return;
    };
    let server = FaultyServer::simple("/file.bin", &content(SIZE, 19), Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    let command = format!(
        "{} {}",
        satchel_tests::bin_path("satchel-client").display(),
        server.url("/file.bin")
    );
    // script(1) runs the client on a pseudo-terminal and copies what it draws to stdout.
    let run = run_program(script, dir.path(), &["-qec", &command, "/dev/null"], LIMIT);
    run.assert_code(0);
    assert!(
        run.stdout.contains("file.bin") && run.stdout.contains("100%"),
        "{:?}",
        run.stdout
    );
    assert!(
        run.stdout.contains("585.9 KiB/585.9 KiB"),
        "{:?}",
        run.stdout
    );
}

/// A port nobody listens on: bind, note it, close.
fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
        .to_string()
}

#[test]
fn a_refused_connection_is_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The default --retries 3, and retry notices on (no --quiet).
    let run = client(dir.path(), &["127.0.0.1", &closed_port(), "x"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("cannot connect") && run.stderr.contains("refused"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("retry"),
        "a refused connection is final: {}",
        run.stderr
    );
    assert!(names(dir.path()).is_empty());
}

#[test]
fn a_reset_mid_body_is_retried_and_resumed() {
    let body = content(SIZE, 20);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone())],
        vec![(Act::Reset, 0), (Act::Serve, 0)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "1"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
    assert_eq!(names(dir.path()), ["file.bin"]);
    assert_eq!(server.connections(), 2);
    // The resetting connection never reads its request; the retry is the first one recorded.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert!(
        reqs[0].contains(&format!(
            "\r\nRange: bytes={}-\r\nIf-Range: \"v0\"\r\n",
            SIZE / 2
        )),
        "resumed after the half that arrived before the reset: {}",
        reqs[0]
    );
}

#[test]
fn unavailable_with_retry_after_is_retried_other_errors_are_not() {
    let body = content(5000, 21);
    for first in [
        Act::RetryAfter(503, 1),
        Act::RetryAfter(500, 1),
        Act::Status(503),
    ] {
        let server = FaultyServer::start(
            "/file.bin",
            vec![v("\"v0\"", body.clone())],
            vec![(first.clone(), 0), (Act::Serve, 0)],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "1"]);
        run.assert_code(0);
        assert_eq!(
            std::fs::read(dir.path().join("file.bin")).expect("saved"),
            body,
            "{first:?}"
        );
        assert_eq!(server.connections(), 2, "{first:?}");
    }
    for (first, code) in [
        (Act::Status(500), 4),
        (Act::Status(404), 3),
        (Act::RetryAfter(429, 1), 4),
    ] {
        let server = FaultyServer::start(
            "/file.bin",
            vec![v("\"v0\"", body.clone())],
            vec![(first.clone(), 0), (Act::Serve, 0)],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "3"]);
        run.assert_code(code);
        assert_eq!(server.connections(), 1, "{first:?} is not retried");
        assert!(names(dir.path()).is_empty(), "{first:?}");
    }
}

#[test]
fn giving_up_says_the_part_is_kept_for_continue() {
    let server = FaultyServer::simple("/file.bin", &content(SIZE, 22), Act::Truncate(1000));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &[&server.url("/file.bin"), "--retries", "1"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("file.bin.part") && run.stderr.contains("--continue"),
        "{}",
        run.stderr
    );
    assert_eq!(server.connections(), 2);
    let part = std::fs::metadata(dir.path().join("file.bin.part")).expect("part kept");
    assert_eq!(part.len(), 1000);
}

#[test]
fn chunked_together_with_content_length_is_an_integrity_error() {
    // RFC 9112 §6.3 lets a recipient treat this as an error, and the client does (the README's
    // limits say so).
    let (dir, _s) = faulty_download(Act::ChunkedWithLength, 7, &[]);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}
