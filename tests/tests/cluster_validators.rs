//! Validators that mean the same on every node: two satchel-server processes over two `cp -a`
//! copies of one tree (same bytes and modification times, other inodes and change times) give
//! the same `ETag` and `Last-Modified` for each file, so a client may validate or resume
//! against either (PROTOCOL.md, "Responses").

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use satchel_tests::haproxy::replicas;
use satchel_tests::raw::{get, one};
use satchel_tests::{content, Server};

const FILES: &[(&str, usize)] = &[
    ("a.txt", 11),
    ("b.bin", 300_000),
    ("sub/c.html", 4096),
    ("empty.txt", 0),
];

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (name, len)) in FILES.iter().enumerate() {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content(*len, i as u8)).unwrap();
    }
    dir
}

fn request(path: &str, extra: &str) -> Vec<u8> {
    format!("GET /{path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n").into_bytes()
}

#[test]
fn copies_give_the_same_validators_and_resume_across_nodes() {
    let src = tree();
    let copies = replicas(src.path(), 2);
    let (one_root, two_root) = (copies[0].path(), copies[1].path());
    let ino = |root: &Path, name: &str| std::fs::metadata(root.join(name)).unwrap().ino();
    for (name, _) in FILES {
        assert_ne!(
            ino(one_root, name),
            ino(two_root, name),
            "cp -a made new inodes"
        );
    }
    let (a, b) = (
        Server::start(one_root, &["--quiet"]),
        Server::start(two_root, &["--quiet"]),
    );

    for (name, len) in FILES {
        let (ra, rb) = (
            get(a.addr(), &format!("/{name}")),
            get(b.addr(), &format!("/{name}")),
        );
        assert_eq!((ra.status, rb.status), (200, 200), "{name}");
        assert_eq!(ra.body.len(), *len);
        assert_eq!(ra.body, rb.body);
        let etag = ra.header("ETag").expect("an ETag");
        assert_eq!(Some(etag), rb.header("ETag"), "{name}: ETag differs");
        assert_eq!(
            ra.header("Last-Modified"),
            rb.header("Last-Modified"),
            "{name}: Last-Modified differs"
        );
        // A browser's revalidation against the other node: 304.
        let inm = one(
            b.addr(),
            &request(name, &format!("If-None-Match: {etag}\r\n")),
        )
        .unwrap();
        assert_eq!(inm.status, 304, "{name}");
    }

    // A download begun on one node, resumed on the other with If-Range: 206, the right bytes.
    let first = one(a.addr(), &request("b.bin", "Range: bytes=0-99999\r\n")).unwrap();
    assert_eq!(first.status, 206);
    let etag = first.header("ETag").unwrap().to_owned();
    let rest = one(
        b.addr(),
        &request(
            "b.bin",
            &format!("Range: bytes=100000-\r\nIf-Range: {etag}\r\n"),
        ),
    )
    .unwrap();
    assert_eq!(rest.status, 206, "If-Range with the other node's ETag");
    assert_eq!(
        rest.header("Content-Range"),
        Some("bytes 100000-299999/300000")
    );
    let whole = [first.body, rest.body].concat();
    assert_eq!(whole, content(300_000, 1));

    // The same with the date as validator.
    let date = get(a.addr(), "/b.bin")
        .header("Last-Modified")
        .unwrap()
        .to_owned();
    let by_date = one(
        b.addr(),
        &request(
            "b.bin",
            &format!("Range: bytes=299000-\r\nIf-Range: {date}\r\n"),
        ),
    )
    .unwrap();
    assert_eq!(by_date.status, 206);

    // A copy that really differs (rewritten on one node) gets another ETag, and a resume
    // against it starts over with the whole file (200), never a splice of two versions.
    let changed = two_root.join("b.bin");
    std::fs::write(&changed, content(300_000, 99)).unwrap();
    let after = get(b.addr(), "/b.bin");
    assert_ne!(after.header("ETag"), Some(etag.as_str()));
    let restart = one(
        b.addr(),
        &request(
            "b.bin",
            &format!("Range: bytes=100000-\r\nIf-Range: {etag}\r\n"),
        ),
    )
    .unwrap();
    assert_eq!(restart.status, 200);
    assert_eq!(restart.body, content(300_000, 99));
}
