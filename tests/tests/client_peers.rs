//! satchel-client against third-party servers: nginx and python3's http.server.
//!
//! A missing peer skips its test locally and fails it under `SATCHEL_REQUIRE_PEERS=1` (CI).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use satchel_tests::peers::{run_client, ClientRun, Kind, Peer};

const LIMIT: Duration = Duration::from_secs(60);

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7) ^ (i >> 11) as u8 ^ seed)
        .collect()
}

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

fn assert_code(run: &ClientRun, code: i32) {
    assert_eq!(run.code, Some(code), "stderr: {}", run.stderr);
}

/// A served folder with a few files.
fn root() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let root = tempfile::tempdir().expect("tempdir");
    let big = content(3_000_000, 1);
    let small = content(1000, 2);
    std::fs::write(root.path().join("big.bin"), &big).expect("big");
    std::fs::write(root.path().join("small file.txt"), &small).expect("small");
    (root, big, small)
}

/// The ETag nginx gives a static file: `"<mtime hex>-<size hex>"`.
fn nginx_etag(path: &Path) -> String {
    let m = std::fs::metadata(path).expect("metadata");
    format!("\"{:x}-{:x}\"", m.mtime(), m.len())
}

fn downloads_several_names(kind: Kind) {
    let (root, big, small) = root();
    let Some(peer) = Peer::start(kind, root.path()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = peer.addr().port().to_string();
    let run = client(
        dir.path(),
        &[
            "127.0.0.1",
            &port,
            "big.bin",
            "small file.txt",
            "-d",
            "out",
            "--quiet",
        ],
    );
    assert_code(&run, 0);
    assert_eq!(
        std::fs::read(dir.path().join("out/big.bin")).expect("big"),
        big
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/small file.txt")).expect("small"),
        small
    );
    assert!(
        run.stderr.is_empty(),
        "quiet and not a terminal: {}",
        run.stderr
    );

    let run = client(dir.path(), &[&peer.url("/nope.bin")]);
    assert_code(&run, 3);
    assert!(!dir.path().join("nope.bin").exists());
}

#[test]
fn nginx_downloads() {
    downloads_several_names(Kind::Nginx);
}

#[test]
fn python_downloads() {
    downloads_several_names(Kind::Python);
}

#[test]
fn nginx_resume_if_range_and_complete_part() {
    let (root, big, _) = root();
    let Some(peer) = Peer::start(Kind::Nginx, root.path()) else {
        return;
    };
    let etag = nginx_etag(&root.path().join("big.bin"));
    let url = peer.url("/big.bin");
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("big.bin.part");
    let meta = dir.path().join("big.bin.part.meta");

    // Half a file of the current version: resumed with a 206.
    std::fs::write(&part, &big[..1_234_567]).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    assert_code(&client(dir.path(), &[&url, "--continue"]), 0);
    assert_eq!(
        std::fs::read(dir.path().join("big.bin")).expect("saved"),
        big
    );
    assert!(!part.exists() && !meta.exists());

    // A complete part: nginx answers 416 for its length, which is success.
    std::fs::write(&part, &big).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    assert_code(&client(dir.path(), &[&url, "--continue", "--force"]), 0);
    assert_eq!(
        std::fs::read(dir.path().join("big.bin")).expect("saved"),
        big
    );

    // A part of another version: If-Range fails, nginx sends the whole file, we start over.
    std::fs::write(&part, b"stale bytes").expect("part");
    std::fs::write(&meta, "\"0-0\"").expect("meta");
    assert_code(&client(dir.path(), &[&url, "--continue", "--force"]), 0);
    assert_eq!(
        std::fs::read(dir.path().join("big.bin")).expect("saved"),
        big
    );
}

#[test]
fn python_without_ranges_restarts_cleanly() {
    let (root, big, _) = root();
    let Some(peer) = Peer::start(Kind::Python, root.path()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big.bin.part"), &big[..1000]).expect("part");
    std::fs::write(
        dir.path().join("big.bin.part.meta"),
        "Thu, 01 Jan 1970 00:00:00 GMT",
    )
    .expect("meta");
    assert_code(
        &client(dir.path(), &[&peer.url("/big.bin"), "--continue"]),
        0,
    );
    assert_eq!(
        std::fs::read(dir.path().join("big.bin")).expect("saved"),
        big
    );
}
