//! `satchel-client -r` against satchel-server: a second mirror asks only for what changed
//! (`304` keeps the copy), saved files carry the server's `Last-Modified`, nothing is removed
//! unless `--delete` asks, and then only files the server no longer lists.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use satchel_tests::content;
use satchel_tests::peers::{run_client, ClientRun};
use satchel_tests::Server;

const LIMIT: Duration = Duration::from_secs(120);

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

fn mtime_secs(p: &Path) -> u64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `(status, target)` of every access-log line the server printed since the last call.
fn log(server: &Server) -> Vec<(String, String)> {
    server
        .drain_lines(Duration::from_secs(2))
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(3)?.to_string(), f.get(2)?.to_string()))
        })
        .collect()
}

fn count(log: &[(String, String)], status: &str, prefix: &str) -> usize {
    log.iter()
        .filter(|(s, t)| s == status && t.starts_with(prefix))
        .count()
}

/// Sets `p`'s modification time to `secs` after the epoch (so a change is visible whatever
/// the file system's clock granularity).
fn touch(p: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)))
        .expect("set mtime");
}

#[test]
fn a_second_mirror_asks_only_for_what_changed_and_deletes_only_when_asked() {
    let root = tempfile::tempdir().expect("tempdir");
    let site = root.path().join("site");
    std::fs::create_dir_all(site.join("sub")).expect("mkdir");
    for i in 0..40 {
        std::fs::write(site.join(format!("f{i}.txt")), content(100 + i, i as u8)).expect("write");
    }
    for i in 0..5 {
        std::fs::write(site.join(format!("sub/s{i}.bin")), content(70_000, i as u8)).expect("w");
    }
    let server = Server::start(root.path(), &[]);
    let url = server.url("/site/");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("m");

    let run = client(dir.path(), &["-r", &url, "-d", "m"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("45 saved, 0 unchanged"),
        "{}",
        run.stderr
    );
    for i in 0..40 {
        let name = format!("f{i}.txt");
        let saved = out.join("site").join(&name);
        assert_eq!(
            std::fs::read(&saved).expect("saved"),
            content(100 + i, i as u8)
        );
        assert_eq!(mtime_secs(&saved), mtime_secs(&site.join(&name)), "{name}");
    }
    assert_eq!(
        std::fs::read(out.join("site/sub/s4.bin")).expect("saved"),
        content(70_000, 4)
    );
    let first = log(&server);
    assert_eq!(count(&first, "200", "/site/"), 45 + 2, "{first:?}");

    // Unchanged: every file is answered 304 and kept.
    let run = client(dir.path(), &["-r", &url, "-d", "m"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("0 saved, 45 unchanged"),
        "{}",
        run.stderr
    );
    let second = log(&server);
    assert_eq!(count(&second, "304", "/site/"), 45, "{second:?}");
    assert_eq!(
        count(&second, "200", "/site/"),
        2,
        "only the two listings: {second:?}"
    );

    // One changed, one new, one gone on the server; one local file changed by hand.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    std::fs::write(site.join("f3.txt"), b"changed").expect("change");
    touch(&site.join("f3.txt"), now + 100);
    std::fs::write(site.join("sub/new.txt"), b"new").expect("new");
    std::fs::remove_file(site.join("f7.txt")).expect("remove");
    std::fs::write(out.join("site/f9.txt"), b"edited here").expect("edit");
    std::fs::create_dir(out.join("site/mine")).expect("a local folder");
    let run = client(dir.path(), &["-r", &url, "-d", "m"]);
    run.assert_code(0);
    let third = log(&server);
    let fetched: Vec<&str> = third
        .iter()
        .filter(|(s, t)| s == "200" && !t.ends_with('/'))
        .map(|(_, t)| t.as_str())
        .collect();
    let mut fetched = fetched;
    fetched.sort_unstable();
    assert_eq!(
        fetched,
        ["/site/f3.txt", "/site/f9.txt", "/site/sub/new.txt"],
        "only what changed (a copy edited locally is not trusted): {third:?}"
    );
    assert_eq!(
        std::fs::read(out.join("site/f3.txt")).expect("f3"),
        b"changed"
    );
    assert_eq!(
        std::fs::read(out.join("site/f9.txt")).expect("f9"),
        content(109, 9)
    );
    assert_eq!(
        std::fs::read(out.join("site/sub/new.txt")).expect("new"),
        b"new"
    );
    assert!(
        out.join("site/f7.txt").exists(),
        "nothing removed without --delete"
    );

    // --delete removes the file the server no longer lists, and only that.
    let run = client(dir.path(), &["-r", &url, "-d", "m", "--delete"]);
    run.assert_code(0);
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    assert!(!out.join("site/f7.txt").exists());
    assert!(out.join("site/mine").is_dir(), "folders are never removed");
    assert!(out.join("site/f8.txt").exists());
    assert!(out.join("site/sub/s0.bin").exists());
    let fourth = log(&server);
    assert_eq!(count(&fourth, "200", "/site/f"), 0, "{fourth:?}");
}

#[test]
fn mirror_over_one_or_many_connections_saves_the_same_tree() {
    let root = tempfile::tempdir().expect("tempdir");
    for d in 0..3 {
        std::fs::create_dir_all(root.path().join(format!("t/d{d}"))).expect("mkdir");
        for i in 0..30 {
            std::fs::write(
                root.path().join(format!("t/d{d}/f{i}")),
                content(500 + i * 37, (d * 30 + i) as u8),
            )
            .expect("write");
        }
    }
    let server = Server::start(root.path(), &["--quiet"]);
    let dir = tempfile::tempdir().expect("tempdir");
    for n in ["1", "8"] {
        let dest = format!("c{n}");
        let run = client(
            dir.path(),
            &[
                "-r",
                &server.url("/t"),
                "-d",
                &dest,
                "--connections",
                n,
                "-q",
            ],
        );
        run.assert_code(0);
        for d in 0..3 {
            for i in 0..30 {
                assert_eq!(
                    std::fs::read(dir.path().join(format!("{dest}/t/d{d}/f{i}"))).expect("saved"),
                    content(500 + i * 37, (d * 30 + i) as u8)
                );
            }
        }
    }
}
