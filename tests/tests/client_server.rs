//! satchel-client against satchel-server: plain and multi-name downloads, resume with
//! `If-Range`, the text listing (`--list`) and mirroring (`-r`).

use std::path::Path;
use std::time::Duration;

use satchel_tests::content;
use satchel_tests::peers::{run_client, ClientRun};
use satchel_tests::{raw, Server};

const LIMIT: Duration = Duration::from_secs(60);

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

/// A served tree: a big file (streamed, above the cache's per-file limit), a small one with a
/// space in its name, and a nested folder.
fn tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let p = root.path();
    std::fs::write(p.join("big.bin"), content(10_000_000, 1)).expect("big");
    std::fs::write(p.join("small file.txt"), content(777, 2)).expect("small");
    std::fs::create_dir_all(p.join("sub/deeper")).expect("mkdir");
    std::fs::write(p.join("sub/a.txt"), b"alpha").expect("a");
    std::fs::write(p.join("sub/deeper/z%.bin"), content(70_000, 3)).expect("z");
    root
}

fn same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).expect("a"), std::fs::read(b).expect("b"));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

#[test]
fn downloads_several_names_over_keep_alive() {
    let root = tree();
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(
        dir.path(),
        &[
            "127.0.0.1",
            &port,
            "big.bin",
            "small file.txt",
            "sub/a.txt",
            "-d",
            "out",
        ],
    );
    run.assert_code(0);
    let out = dir.path().join("out");
    same_file(&root.path().join("big.bin"), &out.join("big.bin"));
    same_file(
        &root.path().join("small file.txt"),
        &out.join("small file.txt"),
    );
    same_file(&root.path().join("sub/a.txt"), &out.join("a.txt"));
    // Seed order, and a second run refusing to overwrite.
    let run = client(dir.path(), &["127.0.0.1", &port, "big.bin", "out"]);
    run.assert_code(6);
    let run = client(dir.path(), &["127.0.0.1", &port, "missing.bin", "out"]);
    run.assert_code(3);
}

#[test]
fn resumes_with_if_range() {
    let root = tree();
    let server = Server::start(root.path(), &[]);
    let etag = raw::get(server.addr(), "/big.bin")
        .header("etag")
        .expect("satchel-server sends an ETag")
        .to_owned();
    let big = std::fs::read(root.path().join("big.bin")).expect("big");
    let url = server.url("/big.bin");
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("big.bin.part");
    let meta = dir.path().join("big.bin.part.meta");
    let saved = dir.path().join("big.bin");

    std::fs::write(&part, &big[..4_000_001]).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    client(dir.path(), &[&url, "--continue"]).assert_code(0);
    same_file(&root.path().join("big.bin"), &saved);
    let log = server.drain_lines(Duration::from_millis(300));
    assert!(
        log.iter().any(|l| l.contains("GET /big.bin 206 ")),
        "{log:?}"
    );

    std::fs::write(&part, &big).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    client(dir.path(), &[&url, "--continue", "--force"]).assert_code(0);
    same_file(&root.path().join("big.bin"), &saved);
    let log = server.drain_lines(Duration::from_millis(300));
    assert!(
        log.iter().any(|l| l.contains("GET /big.bin 416 ")),
        "{log:?}"
    );

    std::fs::write(&part, b"another version").expect("part");
    std::fs::write(&meta, "\"not-the-etag\"").expect("meta");
    client(dir.path(), &[&url, "--continue", "--force"]).assert_code(0);
    same_file(&root.path().join("big.bin"), &saved);
    assert!(!part.exists() && !meta.exists());
}

#[test]
fn lists_a_folder() {
    let root = tree();
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(dir.path(), &["127.0.0.1", &port, "--list", "/sub/"]);
    run.assert_code(0);
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.contains(&"a.txt\t5"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("deeper/\t")),
        "{lines:?}"
    );
    let run = client(dir.path(), &["--list", &server.url("/sub/deeper")]);
    run.assert_code(0);
    assert_eq!(run.stdout, "z%.bin\t70000\n");
}

#[test]
fn mirrors_a_tree() {
    let root = tree();
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &["-r", &server.url("/sub/"), "-d", "m"]);
    run.assert_code(0);
    same_file(
        &root.path().join("sub/a.txt"),
        &dir.path().join("m/sub/a.txt"),
    );
    same_file(
        &root.path().join("sub/deeper/z%.bin"),
        &dir.path().join("m/sub/deeper/z%.bin"),
    );
    let run = client(
        dir.path(),
        &["-r", &server.url("/"), "-d", "all", "--quiet"],
    );
    run.assert_code(0);
    same_file(
        &root.path().join("big.bin"),
        &dir.path().join("all/big.bin"),
    );
    same_file(
        &root.path().join("sub/deeper/z%.bin"),
        &dir.path().join("all/sub/deeper/z%.bin"),
    );
}

/// satchel-server's `Repr-Digest` meets satchel-client's check: a cached file comes with the
/// SHA-256 of its content, and the client hashes what it saved against it, the prefix it
/// already had included. A `.part` whose prefix was damaged on disk resumes with a 206 (the
/// ETag still matches) and is caught as an integrity error (exit 7), leaving no final file;
/// an intact one resumes to the exact file.
#[test]
fn the_servers_digest_is_checked_by_the_client() {
    let root = tree();
    let server = Server::start(root.path(), &[]);
    let z = std::fs::read(root.path().join("sub/deeper/z%.bin")).expect("z");
    let first = raw::get(server.addr(), "/sub/deeper/z%25.bin");
    let digest = {
        use sha2::Digest as _;
        let hash: [u8; 32] = sha2::Sha256::digest(&z).into();
        satchel_core::http::digest::ContentDigest(hash)
    };
    let b64 = String::from_utf8(digest.base64().to_vec()).unwrap();
    assert_eq!(
        first.header("repr-digest"),
        Some(format!("sha-256=:{b64}:").as_str())
    );
    let etag = first.header("etag").expect("an ETag").to_owned();
    let url = server.url("/sub/deeper/z%25.bin");
    let dir = tempfile::tempdir().expect("tempdir");
    let (part, meta, saved) = (
        dir.path().join("z%.bin.part"),
        dir.path().join("z%.bin.part.meta"),
        dir.path().join("z%.bin"),
    );

    // A damaged prefix: the server sends the right tail, the whole does not hash right.
    let mut damaged = z[..30_000].to_vec();
    damaged[123] ^= 0xff;
    std::fs::write(&part, &damaged).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    client(dir.path(), &[&url, "--continue"]).assert_code(7);
    assert!(!saved.exists());
    let log = server.drain_lines(Duration::from_millis(300));
    assert!(log.iter().any(|l| l.contains(" 206 ")), "{log:?}");

    // An intact prefix, and a plain download: both exact.
    std::fs::write(&part, &z[..30_000]).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    client(dir.path(), &[&url, "--continue", "--force"]).assert_code(0);
    same_file(&root.path().join("sub/deeper/z%.bin"), &saved);
    let fresh = tempfile::tempdir().expect("tempdir");
    client(fresh.path(), &[&url]).assert_code(0);
    same_file(
        &root.path().join("sub/deeper/z%.bin"),
        &fresh.path().join("z%.bin"),
    );
}
