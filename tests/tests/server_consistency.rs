//! Under concurrent load while a file keeps changing, every response is one whole version of
//! the file: never a torn mix of two, never an ETag of one with the bytes of another, and once
//! the changes stop, nothing stale.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use satchel_tests::raw::Conn;
use satchel_tests::Server;

const SIZE: usize = 256 * 1024;

fn version(fill: u8) -> Vec<u8> {
    vec![fill; SIZE]
}

/// The SHA-256 of `body` in base64, as `ETag` and `Repr-Digest` carry it.
fn content_digest(body: &[u8]) -> String {
    use sha2::Digest;
    let digest = satchel_core::http::digest::ContentDigest(sha2::Sha256::digest(body).into());
    String::from_utf8(digest.base64().to_vec()).unwrap()
}

/// Lets a writer thread (returning how many versions it published) and reader threads (counting
/// the responses they checked in `checked`) run for three seconds, and longer (up to a minute)
/// while the readers have checked no more than `min.1` responses (a loaded machine), stops and
/// joins them, and asserts that both did enough work for the test to mean something: more than
/// `min.0` versions and more than `min.1` responses.
fn run_then_stop(
    stop: &AtomicBool,
    writer: JoinHandle<u64>,
    readers: Vec<JoinHandle<()>>,
    min: (u64, usize),
    checked: &AtomicUsize,
) {
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    while checked.load(Ordering::Relaxed) <= min.1
        && start.elapsed() < Duration::from_secs(60)
        && !readers.iter().any(|r| r.is_finished())
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let versions = writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert!(versions > min.0, "the file changed {versions} times");
    let checked = checked.load(Ordering::Relaxed);
    assert!(checked > min.1, "{checked} responses checked");
}

#[test]
fn replaced_file_is_never_served_torn_or_mislabelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.bin");
    fs::write(&path, version(b'a')).unwrap();
    let server = Server::start(dir.path(), &["--quiet", "--workers", "2"]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));

    // A writer replaces the file atomically (rename over) with alternating versions.
    let writer = {
        let stop = Arc::clone(&stop);
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let fill = b"abcd"[(n % 4) as usize];
                let tmp = dir.join(format!("v.tmp{n}"));
                fs::write(&tmp, version(fill)).unwrap();
                fs::rename(&tmp, dir.join("v.bin")).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };

    // Readers over keep-alive connections: each body is one version, and the ETag names it.
    let checked = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let checked = Arc::clone(&checked);
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut etag_fill: std::collections::HashMap<String, u8> = Default::default();
                while !stop.load(Ordering::Relaxed) {
                    conn.get("/v.bin", "");
                    let r = conn.response(false).expect("a response");
                    assert_eq!(r.status, 200);
                    assert_eq!(r.body.len(), SIZE);
                    let fill = r.body[0];
                    assert!(
                        r.body.iter().all(|&b| b == fill),
                        "torn body: starts with {fill}"
                    );
                    // The ETag is the content's digest, so it names these bytes and no others,
                    // however close in time two versions were written (same size, same mtime
                    // tick): checked exactly on every response, not only when a clash happens.
                    let etag = r.header("etag").expect("an ETag").to_string();
                    let digest = content_digest(&r.body);
                    assert_eq!(etag, format!("\"{digest}\""), "ETag of other bytes");
                    assert_eq!(
                        r.header("repr-digest"),
                        Some(format!("sha-256=:{digest}:").as_str())
                    );
                    let seen = *etag_fill.entry(etag.clone()).or_insert(fill);
                    assert_eq!(seen, fill, "ETag {etag} labelled two different contents");
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    run_then_stop(&stop, writer, readers, (50, 100), &checked);

    // Quiescent: the final content, whatever was cached before.
    let last = fs::read(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut conn = Conn::open(addr);
    for _ in 0..3 {
        conn.get("/v.bin", "");
        let r = conn.response(false).unwrap();
        assert!(r.body == last, "stale content after the changes stopped");
        assert!(Instant::now() < deadline);
    }
}

/// Rewriting a file in place (not atomic: a reader may land between two writes) must not
/// leave a mixed version in the cache: once the writes stop, every response is the new content.
/// A response streamed while the file changes is cut short (the connection ends: see
/// server_mixed.rs); the reader then connects again.
#[test]
fn in_place_rewrites_never_leave_a_mix_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.bin");
    fs::write(&path, version(b'x')).unwrap();
    let server = Server::start(dir.path(), &["--quiet", "--workers", "2"]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut conn = Conn::open(addr);
            while !stop.load(Ordering::Relaxed) {
                conn.get("/w.bin", "");
                match conn.response(false) {
                    Some(r) if r.body.len() == SIZE => assert_eq!(r.status, 200),
                    _ => conn = Conn::open(addr),
                }
            }
        })
    };
    for round in 0..40u8 {
        // Same size, new bytes, written in two halves so that a reader can land in between.
        let fill = b'A' + round % 26;
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::{Seek, SeekFrom, Write};
        f.write_all(&vec![fill; SIZE / 2]).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        f.seek(SeekFrom::Start((SIZE / 2) as u64)).unwrap();
        f.write_all(&vec![fill; SIZE / 2]).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let last = fs::read(&path).unwrap();
    let mut conn = Conn::open(addr);
    for _ in 0..3 {
        conn.get("/w.bin", "");
        let r = conn.response(false).unwrap();
        assert!(r.body == last, "the cache kept a mixed or old version");
    }
}

/// The server validates a cached file once per path for a whole batch of requests received
/// together; a change must still reach every request sent after it completed. Many keep-alive
/// connections send at once (so batches are large) while a writer publishes numbered versions;
/// a response may never carry a version older than the one published before its request left.
#[test]
fn a_change_is_seen_by_every_request_sent_after_it() {
    const CONNS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.txt");
    let body = |n: u64| format!("{n:020}\n").repeat(32);
    fs::write(&path, body(0)).unwrap();
    let server = Server::start(dir.path(), &["--quiet", "--workers", "1"]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    // The newest version whose rename has returned.
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));

    let writer = {
        let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let tmp = dir.join(format!("n.tmp{n}"));
                fs::write(&tmp, body(n)).unwrap();
                fs::rename(&tmp, dir.join("n.txt")).unwrap();
                published.store(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(300));
            }
            n
        })
    };

    let checked = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, published, checked) = (
                Arc::clone(&stop),
                Arc::clone(&published),
                Arc::clone(&checked),
            );
            std::thread::spawn(move || {
                let mut conns: Vec<Conn> = (0..CONNS).map(|_| Conn::open(addr)).collect();
                while !stop.load(Ordering::Relaxed) {
                    let floor = published.load(Ordering::SeqCst);
                    for c in &mut conns {
                        c.get("/n.txt", "");
                    }
                    for c in &mut conns {
                        let r = c.response(false).expect("a response");
                        assert_eq!(r.status, 200);
                        let text = std::str::from_utf8(&r.body).unwrap();
                        let seen: u64 = text[..20].parse().unwrap();
                        assert!(
                            seen >= floor,
                            "version {seen} served after version {floor} was published"
                        );
                        assert_eq!(text, body(seen), "a whole version");
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    run_then_stop(&stop, writer, readers, (100, 1000), &checked);
}

/// Two contents of the same size with the same modification time (a rename within one tick of
/// the file system's clock, set here exactly) are told apart: different ETags, and an
/// `If-Range` naming the first never splices a range of the second onto it. Then the same
/// with the cache off (`--cache-size 0`): the file is admitted but not stored, and its digest is
/// read from the file for the response.
#[test]
fn same_size_same_mtime_versions_get_different_validators() {
    for extra in [&[][..], &["--cache-size", "0"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.bin");
        let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let put = |fill: u8| {
            let tmp = dir.path().join("s.tmp");
            fs::write(&tmp, vec![fill; 4096]).unwrap();
            fs::File::options()
                .write(true)
                .open(&tmp)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            fs::rename(&tmp, &path).unwrap();
        };
        let mut args = vec!["--quiet"];
        args.extend_from_slice(extra);
        put(b'a');
        let server = Server::start(dir.path(), &args);
        let mut conn = Conn::open(server.addr());
        conn.get("/s.bin", "");
        let first = conn.response(false).unwrap();
        let etag_a = first.header("etag").expect("an ETag").to_string();
        assert_eq!(etag_a, format!("\"{}\"", content_digest(&first.body)));

        put(b'b');
        conn.get("/s.bin", "");
        let second = conn.response(false).unwrap();
        assert_eq!(second.body, vec![b'b'; 4096]);
        let etag_b = second.header("etag").expect("an ETag").to_string();
        assert_ne!(etag_a, etag_b, "{extra:?}: one ETag for two contents");
        assert_eq!(
            first.header("last-modified"),
            second.header("last-modified")
        );

        // A resume against the first version: the whole second one, never its tail.
        conn.get(
            "/s.bin",
            &format!("Range: bytes=100-\r\nIf-Range: {etag_a}\r\n"),
        );
        let resumed = conn.response(false).unwrap();
        assert_eq!(resumed.status, 200, "{extra:?}");
        assert_eq!(resumed.body, vec![b'b'; 4096]);
        // Revalidation: the old tag is not modified-from-now, the new one is.
        conn.get("/s.bin", &format!("If-None-Match: {etag_a}\r\n"));
        assert_eq!(conn.response(false).unwrap().status, 200);
        conn.get("/s.bin", &format!("If-None-Match: {etag_b}\r\n"));
        let not_modified = conn.response(false).unwrap();
        assert_eq!(not_modified.status, 304, "{extra:?}");
        assert_eq!(not_modified.header("etag"), Some(etag_b.as_str()));
        conn.get(
            "/s.bin",
            &format!("Range: bytes=100-\r\nIf-Range: {etag_b}\r\n"),
        );
        assert_eq!(conn.response(false).unwrap().status, 206);
    }
}

/// A file above `--max-cached-file` is streamed and labelled by its version (size and mtime in
/// ns), with no `Repr-Digest`: the server does not read it whole to hash it.
#[test]
fn streamed_files_carry_the_version_tag_and_no_digest() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("big.bin"), vec![7u8; 10_000]).unwrap();
    fs::write(dir.path().join("small.bin"), vec![7u8; 100]).unwrap();
    let server = Server::start(dir.path(), &["--quiet", "--max-cached-file", "1000"]);
    let mut conn = Conn::open(server.addr());
    conn.get("/big.bin", "");
    let big = conn.response(false).unwrap();
    assert_eq!(big.header("cache-status"), Some("satchel; fwd=bypass"));
    let etag = big.header("etag").expect("an ETag");
    assert!(etag.ends_with("-2710\""), "{etag}");
    assert_eq!(big.header("repr-digest"), None);
    // The JSON listing gives the streamed file's tag (what a GET sends), none for the other.
    conn.get("/", "Accept: application/json\r\n");
    let listing: serde_json::Value =
        serde_json::from_slice(&conn.response(false).unwrap().body).unwrap();
    let entry = |name: &str| {
        listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("big.bin")["etag"].as_str(), Some(etag));
    assert!(entry("small.bin")["etag"].is_null());
    conn.get("/small.bin", "");
    let small = conn.response(false).unwrap();
    let digest = content_digest(&small.body);
    assert_eq!(small.header("etag"), Some(format!("\"{digest}\"").as_str()));
    assert_eq!(
        small.header("repr-digest"),
        Some(format!("sha-256=:{digest}:").as_str())
    );
}
