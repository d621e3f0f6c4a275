//! satchel-client against satchel-server: plain and multi-name downloads, resume with
//! `If-Range`, the text listing (`--list`) and mirroring (`-r`).

use std::path::Path;
use std::time::Duration;

use satchel_tests::peers::{run_client, ClientRun};
use satchel_tests::{raw, Server};

const LIMIT: Duration = Duration::from_secs(60);

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13) ^ (i >> 10) as u8 ^ seed)
        .collect()
}

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

fn assert_code(run: &ClientRun, code: i32) {
    assert_eq!(run.code, Some(code), "stderr: {}", run.stderr);
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
    assert_code(&run, 0);
    let out = dir.path().join("out");
    same_file(&root.path().join("big.bin"), &out.join("big.bin"));
    same_file(
        &root.path().join("small file.txt"),
        &out.join("small file.txt"),
    );
    same_file(&root.path().join("sub/a.txt"), &out.join("a.txt"));
    // Seed order, and a second run refusing to overwrite.
    let run = client(dir.path(), &["127.0.0.1", &port, "big.bin", "out"]);
    assert_code(&run, 6);
    let run = client(dir.path(), &["127.0.0.1", &port, "missing.bin", "out"]);
    assert_code(&run, 3);
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
    assert_code(&client(dir.path(), &[&url, "--continue"]), 0);
    same_file(&root.path().join("big.bin"), &saved);
    let log = server.drain_lines(Duration::from_millis(300));
    assert!(
        log.iter().any(|l| l.contains("GET /big.bin 206 ")),
        "{log:?}"
    );

    std::fs::write(&part, &big).expect("part");
    std::fs::write(&meta, &etag).expect("meta");
    assert_code(&client(dir.path(), &[&url, "--continue", "--force"]), 0);
    same_file(&root.path().join("big.bin"), &saved);
    let log = server.drain_lines(Duration::from_millis(300));
    assert!(
        log.iter().any(|l| l.contains("GET /big.bin 416 ")),
        "{log:?}"
    );

    std::fs::write(&part, b"another version").expect("part");
    std::fs::write(&meta, "\"not-the-etag\"").expect("meta");
    assert_code(&client(dir.path(), &[&url, "--continue", "--force"]), 0);
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
    assert_code(&run, 0);
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.contains(&"a.txt\t5"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("deeper/\t")),
        "{lines:?}"
    );
    let run = client(dir.path(), &["--list", &server.url("/sub/deeper")]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, "z%.bin\t70000\n");
}

#[test]
fn mirrors_a_tree() {
    let root = tree();
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = client(dir.path(), &["-r", &server.url("/sub/"), "-d", "m"]);
    assert_code(&run, 0);
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
    assert_code(&run, 0);
    same_file(
        &root.path().join("big.bin"),
        &dir.path().join("all/big.bin"),
    );
    same_file(
        &root.path().join("sub/deeper/z%.bin"),
        &dir.path().join("all/sub/deeper/z%.bin"),
    );
}
