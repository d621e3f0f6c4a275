//! Traversal, hidden files and symbolic links: nothing outside ROOT is ever served.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use satchel_tests::raw::{self, Conn};
use satchel_tests::{workspace_root, Server};

/// A tree with a secret beside the root: `<tmp>/secret.txt`, `<tmp>/root/...`.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

const SECRET: &[u8] = b"TOP-SECRET-CONTENT-7f3a\n";

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    fs::create_dir(dir.path().join("outside")).unwrap();
    fs::write(dir.path().join("outside/inner.txt"), SECRET).unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("index.txt"), b"public\n").unwrap();
    fs::write(root.join("sub/file.txt"), b"inside\n").unwrap();
    symlink(dir.path().join("secret.txt"), root.join("abs-link")).unwrap();
    symlink("../secret.txt", root.join("rel-link")).unwrap();
    symlink("../outside", root.join("dir-link")).unwrap();
    symlink("sub/file.txt", root.join("inside-link")).unwrap();
    symlink("/etc/passwd", root.join("passwd")).unwrap();
    Tree { _dir: dir, root }
}

fn leaks(body: &[u8]) -> bool {
    body.windows(SECRET.len() - 1)
        .any(|w| w == &SECRET[..SECRET.len() - 1])
        || body.windows(8).any(|w| w == b"root:x:0")
}

fn raw_get(server: &Server, target: &[u8]) -> Option<raw::Response> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    raw::one(server.addr(), &req)
}

#[test]
fn classic_traversals_are_refused() {
    let t = tree();
    let server = Server::start(&t.root, &["--quiet"]);
    let cases: &[(&[u8], u16)] = &[
        (b"/../secret.txt", 400),
        (b"/sub/../../secret.txt", 400),
        (b"/%2e%2e/secret.txt", 400),
        (b"/%2E%2E%2Fsecret.txt", 400),
        (b"/sub%2f..%2f..%2fsecret.txt", 400),
        (b"/..%5csecret.txt", 400),
        (b"/sub\\..\\..\\secret.txt", 400),
        (b"/index.txt%00.png", 400),
        (b"/%zz", 400),
        (b"/.hidden", 404),
    ];
    for (target, status) in cases {
        let r = raw_get(&server, target).expect("an answer");
        assert_eq!(r.status, *status, "{}", String::from_utf8_lossy(target));
        assert!(!leaks(&r.body));
    }
    // A raw NUL in the request line is refused too.
    let r = raw::one(
        server.addr(),
        b"GET /index.txt\0 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn symlinks_followed_only_inside_root() {
    let t = tree();
    let server = Server::start(&t.root, &["--quiet"]);
    let inside = raw::get(server.addr(), "/inside-link");
    assert_eq!(
        (inside.status, inside.body.as_slice()),
        (200, &b"inside\n"[..])
    );
    for target in [
        "/abs-link",
        "/rel-link",
        "/dir-link/inner.txt",
        "/dir-link/",
        "/passwd",
    ] {
        let r = raw::get(server.addr(), target);
        assert_eq!(r.status, 404, "{target}");
        assert!(!leaks(&r.body), "{target}");
        let mut c = Conn::open(server.addr());
        c.send(
            format!("HEAD {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(c.response(true).unwrap().status, 404, "HEAD {target}");
    }
    // Links to outside are not listed either.
    let listing = raw::get(server.addr(), "/");
    let text = String::from_utf8_lossy(&listing.body);
    assert!(
        text.contains("inside-link") && !text.contains("abs-link"),
        "{text}"
    );
}

#[test]
fn link_swapped_in_after_start_and_after_caching_is_refused() {
    let t = tree();
    let server = Server::start(&t.root, &["--quiet"]);
    let victim = t.root.join("sub/file.txt");
    // Cached while it is a plain file...
    assert_eq!(raw::get(server.addr(), "/sub/file.txt").status, 200);
    assert_eq!(
        raw::get(server.addr(), "/sub/file.txt").header("cache-status"),
        Some("satchel; hit")
    );
    // ...then replaced by a link to the secret: neither the old bytes nor the secret.
    fs::remove_file(&victim).unwrap();
    symlink(t.root.parent().unwrap().join("secret.txt"), &victim).unwrap();
    let r = raw::get(server.addr(), "/sub/file.txt");
    assert_eq!(r.status, 404);
    assert!(!leaks(&r.body));
    // A folder swapped for a link to outside.
    fs::remove_file(&victim).unwrap();
    fs::remove_dir(t.root.join("sub")).unwrap();
    symlink(t.root.parent().unwrap().join("outside"), t.root.join("sub")).unwrap();
    let r = raw::get(server.addr(), "/sub/inner.txt");
    assert_eq!(r.status, 404);
    assert!(!leaks(&r.body));
}

fn payload_files() -> Vec<PathBuf> {
    let dir = workspace_root().join("../shared/security-data/payloadsallthethings");
    let Ok(entries) = fs::read_dir(&dir) else {
        assert!(
            std::env::var_os("SATCHEL_REQUIRE_PEERS").is_none(),
            "payload lists missing at {}",
            dir.display()
        );
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

/// Every payload of the public traversal lists, sent as the request target over keep-alive
/// connections: the answer is never the content of a file outside the root.
#[test]
fn payload_lists_never_leak() {
    let t = tree();
    let server = Server::start(&t.root, &["--quiet"]);
    let mut sent = 0usize;
    for file in payload_files() {
        let text = fs::read(&file).unwrap();
        let mut conn = Conn::open(server.addr());
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let mut target = Vec::new();
            if !line.starts_with(b"/") {
                target.push(b'/');
            }
            target.extend_from_slice(line);
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(&target);
            req.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
            conn.send(&req);
            let Some(r) = conn.response(false) else {
                // A malformed request line closed the connection: open a new one.
                conn = Conn::open(server.addr());
                continue;
            };
            sent += 1;
            assert!(
                r.status >= 400 || !leaks(&r.body),
                "{}: {} leaked",
                file.display(),
                String::from_utf8_lossy(line)
            );
            assert!(!leaks(&r.body), "{}", String::from_utf8_lossy(line));
            if r.header("connection") == Some("close") {
                conn = Conn::open(server.addr());
            }
        }
    }
    eprintln!("{sent} payload requests answered without a leak");
    assert!(payload_files().is_empty() || sent > 1000);
}

#[test]
fn root_must_be_a_folder_and_exist() {
    let t = tree();
    let bin = satchel_tests::bin_path("satchel-server");
    for (root, what) in [
        (t.root.join("index.txt"), "not a folder"),
        (t.root.join("missing"), "No such file"),
    ] {
        let out = std::process::Command::new(&bin)
            .args(["0"])
            .arg(&root)
            .args(["--bind", "127.0.0.1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", root.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{err}");
        assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    }
}
