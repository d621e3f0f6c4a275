//! satchel-client's rough edges, as a user meets them (issue 17): what a rerun does with a
//! `.part`, `-c` on a finished file, names and URLs with spaces or non-ASCII characters, a
//! NAME that is a folder, the seed's `HOST PORT NAME DIR`, what a timeout says, and no folder
//! left behind by a download that failed before its first byte.

use std::path::Path;
use std::time::Duration;

use satchel_tests::content;
use satchel_tests::faulty::{Act, FaultyServer, Version};
use satchel_tests::peers::{run_client, ClientRun};
use satchel_tests::Server;

const LIMIT: Duration = Duration::from_secs(60);

fn client(dir: &Path, args: &[&str]) -> ClientRun {
    run_client(dir, args, LIMIT)
}

fn v(etag: &str, body: Vec<u8>) -> Version {
    Version {
        etag: etag.into(),
        body,
        headers: String::new(),
    }
}

/// The client's stderr holds `text`.
fn says(run: &ClientRun, text: &str) {
    assert!(
        run.stderr.contains(text),
        "{:?} not in: {}",
        text,
        run.stderr
    );
}

/// No message names the client's own bookkeeping file.
fn no_internal_names(run: &ClientRun) {
    assert!(!run.stderr.contains(".part.meta"), "{}", run.stderr);
}

#[test]
fn a_rerun_resumes_a_part_and_says_so_or_announces_starting_over() {
    let body = content(600_000, 21);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone())],
        vec![(Act::Truncate(200_000), 0), (Act::Serve, 0)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url("/file.bin");
    let run = client(dir.path(), &[&url, "--retries", "0"]);
    run.assert_code(5);
    no_internal_names(&run);
    says(&run, "file.bin.part keeps");
    // No -c: the part is resumed anyway (its validator still matches), and the user is told.
    let run = client(dir.path(), &[&url]);
    run.assert_code(0);
    says(&run, "file.bin: resuming from byte 200000");
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        body
    );
    let last = server.requests().pop().expect("a request");
    assert!(last.contains("Range: bytes=200000-"), "{last}");
    assert!(last.contains("If-Range: \"v0\""), "{last}");

    // The file changed on the server since the part was saved: starting over is announced.
    let new = content(600_000, 22);
    let server = FaultyServer::start(
        "/file.bin",
        vec![v("\"v0\"", body.clone()), v("\"v1\"", new.clone())],
        vec![(Act::Truncate(100_000), 0), (Act::Serve, 1)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url("/file.bin");
    client(dir.path(), &[&url, "--retries", "0"]).assert_code(5);
    let run = client(dir.path(), &[&url]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("changed on the server since the earlier run; starting over"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(dir.path().join("file.bin")).expect("saved"),
        new
    );
    no_internal_names(&run);
}

#[test]
fn continue_on_a_complete_file_is_success() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("done.bin"), content(50_000, 23)).expect("write");
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url("/done.bin");
    client(dir.path(), &[&url]).assert_code(0);
    // The saved file carries the server's Last-Modified as its modification time.
    let mtime = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    };
    assert_eq!(
        secs(mtime(&dir.path().join("done.bin"))),
        secs(mtime(&root.path().join("done.bin")))
    );
    let run = client(dir.path(), &[&url, "-c"]);
    run.assert_code(0);
    says(&run, "done.bin: already complete");
    // Without -c an existing file is still refused, as before.
    let run = client(dir.path(), &[&url]);
    run.assert_code(6);
    says(&run, "--force");
    // A copy that is not the server's (another date) is not "complete" either.
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("done.bin"))
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    let run = client(dir.path(), &[&url, "-c"]);
    run.assert_code(6);
    says(&run, "not the server's current version");
    no_internal_names(&run);
}

#[test]
fn spaces_and_non_ascii_are_percent_encoded_and_escapes_kept() {
    let body = content(3000, 24);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(dir.path(), &[&server.url("/a b/ü.txt")]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("ü.txt")).expect("saved"),
        body
    );
    let run = client(
        dir.path(),
        &["127.0.0.1", &port, "x y/%41%zz é", "-d", "out"],
    );
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("out/A%zz é")).expect("saved"),
        body
    );
    let sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.lines().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        sent,
        [
            "GET /a%20b/%C3%BC.txt HTTP/1.1",
            "GET /x%20y/%41%25zz%20%C3%A9 HTTP/1.1"
        ]
    );
}

#[test]
fn a_name_that_is_a_folder_suggests_r_and_saves_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("docs")).expect("mkdir");
    std::fs::write(root.path().join("docs/a.txt"), b"alpha").expect("write");
    let server = Server::start(root.path(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    let run = client(dir.path(), &["127.0.0.1", &port, "docs", "-d", "out"]);
    run.assert_code(4);
    says(&run, "is a folder on the server (use -r");
    assert!(
        !dir.path().join("out").exists(),
        "no folder for a failed download"
    );
    let run = client(dir.path(), &["127.0.0.1", &port, "-r", "docs", "-d", "out"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("out/docs/a.txt")).expect("a"),
        b"alpha"
    );
}

#[test]
fn the_seeds_dir_is_always_a_folder_created_at_the_first_byte() {
    let body = content(1000, 25);
    let server = FaultyServer::simple("/file.bin", &body, Act::Serve);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.addr().port().to_string();
    // "newdir" neither exists nor ends in '/': still a folder.
    let run = client(dir.path(), &["127.0.0.1", &port, "file.bin", "newdir"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read(dir.path().join("newdir/file.bin")).expect("saved"),
        body
    );
    // A download that fails before its first byte creates nothing.
    let run = client(dir.path(), &["127.0.0.1", &port, "missing.bin", "other"]);
    run.assert_code(3);
    assert!(!dir.path().join("other").exists());
    let run = client(dir.path(), &[&server.url("/missing.bin"), "-d", "deep/er"]);
    run.assert_code(3);
    assert!(!dir.path().join("deep").exists());
}

#[test]
fn a_timeout_says_what_it_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FaultyServer::simple(
        "/file.bin",
        &content(600_000, 26),
        Act::DripHead(Duration::from_millis(400)),
    );
    let run = client(
        dir.path(),
        &[&server.url("/file.bin"), "--timeout", "1", "--retries", "0"],
    );
    run.assert_code(5);
    assert!(
        run.stderr
            .contains("timed out after 1 s waiting for the response head"),
        "{}",
        run.stderr
    );
    let server = FaultyServer::simple("/file.bin", &content(600_000, 26), Act::Stall(10_000));
    let run = client(
        dir.path(),
        &[&server.url("/file.bin"), "--timeout", "1", "--retries", "0"],
    );
    run.assert_code(5);
    says(&run, "waiting for body progress");
    no_internal_names(&run);
}

/// Against nginx and python3's http.server: `-c` on a finished file asks `If-Modified-Since`
/// and both answer 304 ("already complete"); a NAME that is a folder gets their 301 to `NAME/`
/// and is refused with a hint, nothing saved.
fn peer_continue_and_folder(kind: satchel_tests::peers::Kind) {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("done.bin"), content(20_000, 27)).expect("write");
    std::fs::create_dir(root.path().join("docs")).expect("mkdir");
    let Some(peer) = satchel_tests::peers::Peer::start(kind, root.path()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let url = peer.url("/done.bin");
    client(dir.path(), &[&url, "-q"]).assert_code(0);
    let run = client(dir.path(), &[&url, "-c"]);
    run.assert_code(0);
    says(&run, "done.bin: already complete");
    let port = peer.addr().port().to_string();
    let run = client(dir.path(), &["127.0.0.1", &port, "docs", "-d", "out"]);
    run.assert_code(4);
    says(&run, "use -r");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn nginx_continue_and_folder() {
    peer_continue_and_folder(satchel_tests::peers::Kind::Nginx);
}

#[test]
fn python_continue_and_folder() {
    peer_continue_and_folder(satchel_tests::peers::Kind::Python);
}
