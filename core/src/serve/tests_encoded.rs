//! Unit tests of precompressed siblings: which representation is chosen, and that the rules
//! for a file (conditionals, ranges, the cache, HEAD) apply to it as to any file.

use std::borrow::ToOwned;
use std::string::String;
use std::vec::Vec;

use super::tests::{drive, site_of, TestSite};
use super::*;
use crate::source::StaticFile;

const PAGE: &[u8] = b"<p>the original page</p>\n";
const PAGE_GZ: &[u8] = b"GZ-bytes-of-the-page";
const PAGE_BR: &[u8] = b"BR-bytes";

static FILES: &[StaticFile] = &[
    StaticFile {
        path: "page.html",
        data: PAGE,
        modified: Some(1_700_000_000),
    },
    // Same time as the original (as `gzip -k` leaves it): fresh.
    StaticFile {
        path: "page.html.gz",
        data: PAGE_GZ,
        modified: Some(1_700_000_000),
    },
    StaticFile {
        path: "page.html.br",
        data: PAGE_BR,
        modified: Some(1_700_000_100),
    },
    StaticFile {
        path: "old.txt",
        data: b"newer original\n",
        modified: Some(1_700_000_500),
    },
    // Older than its original: stale, never sent for `old.txt`.
    StaticFile {
        path: "old.txt.gz",
        data: b"stale gzip",
        modified: Some(1_700_000_000),
    },
    StaticFile {
        path: "site/index.html",
        data: b"<h1>index</h1>\n",
        modified: Some(1_700_000_000),
    },
    StaticFile {
        path: "site/index.html.zst",
        data: b"ZSTD-index",
        modified: Some(1_700_000_000),
    },
];

fn site() -> TestSite {
    site_of(FILES, Config::host())
}

/// One response's head (as text) and body.
fn exchange(site: &TestSite, request: &str) -> (String, Vec<u8>) {
    let out = drive(site, &[request.as_bytes()], &[usize::MAX]);
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    (
        String::from_utf8_lossy(&out[..end]).into_owned(),
        out[end..].to_vec(),
    )
}

fn get(path: &str, fields: &str) -> String {
    std::format!("GET {path} HTTP/1.1\r\nHost: t\r\n{fields}\r\n")
}

fn field<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn the_best_accepted_sibling_is_sent_with_the_original_type() {
    let site = site();
    let (head, body) = exchange(&site, &get("/page.html", "Accept-Encoding: gzip, br\r\n"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, PAGE_BR);
    assert_eq!(field(&head, "Content-Encoding"), Some("br"));
    assert_eq!(
        field(&head, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(field(&head, "Content-Length"), Some("8"));
    assert_eq!(field(&head, "Vary"), Some("Accept-Encoding"));

    let (head, body) = exchange(&site, &get("/page.html", "Accept-Encoding: gzip\r\n"));
    assert_eq!(body, PAGE_GZ);
    assert_eq!(field(&head, "Content-Encoding"), Some("gzip"));

    let (head, body) = exchange(
        &site,
        &get("/page.html", "Accept-Encoding: br;q=0, gzip\r\n"),
    );
    assert_eq!(body, PAGE_GZ, "{head}");

    // zstd accepted, but there is no page.html.zst: the next accepted one.
    let (_, body) = exchange(
        &site,
        &get("/page.html", "Accept-Encoding: zstd, gzip;q=0.5\r\n"),
    );
    assert_eq!(body, PAGE_GZ);
}

#[test]
fn identity_without_an_accepted_coding_still_varies() {
    let site = site();
    for fields in ["", "Accept-Encoding: \r\n", "Accept-Encoding: deflate\r\n"] {
        let (head, body) = exchange(&site, &get("/page.html", fields));
        assert_eq!(body, PAGE, "{fields}");
        assert_eq!(field(&head, "Content-Encoding"), None);
        assert_eq!(field(&head, "Vary"), Some("Accept-Encoding"));
    }
    let (_, body) = exchange(
        &site,
        &get("/page.html", "Accept-Encoding: br;q=0.5, identity\r\n"),
    );
    assert_eq!(body, PAGE);
}

#[test]
fn a_stale_sibling_is_never_sent() {
    let site = site();
    let (head, body) = exchange(&site, &get("/old.txt", "Accept-Encoding: gzip\r\n"));
    assert_eq!(body, b"newer original\n");
    assert_eq!(field(&head, "Content-Encoding"), None, "{head}");
}

#[test]
fn each_representation_has_its_own_etag_and_conditionals_use_it() {
    let site = site();
    let tag = |ae: &str| {
        let (head, _) = exchange(&site, &get("/page.html", ae));
        field(&head, "ETag").unwrap().to_owned()
    };
    let (plain, br, gz) = (
        tag(""),
        tag("Accept-Encoding: br\r\n"),
        tag("Accept-Encoding: gzip\r\n"),
    );
    assert!(br.ends_with("-br\""), "{br}");
    assert!(gz.ends_with("-gz\""), "{gz}");
    assert!(plain != br && plain != gz && br != gz);

    let inm = |ae: &str, etag: &str| {
        let fields = std::format!("{ae}If-None-Match: {etag}\r\n");
        exchange(&site, &get("/page.html", &fields)).0
    };
    let head = inm("Accept-Encoding: br\r\n", &br);
    assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
    assert_eq!(field(&head, "Vary"), Some("Accept-Encoding"));
    assert_eq!(field(&head, "ETag"), Some(br.as_str()));
    // The br tag does not validate the identity representation, nor gzip's.
    assert!(inm("", &br).starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(inm("Accept-Encoding: gzip\r\n", &br).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn ranges_apply_to_the_encoded_bytes() {
    let site = site();
    let (head, body) = exchange(
        &site,
        &get(
            "/page.html",
            "Accept-Encoding: gzip\r\nRange: bytes=3-7\r\n",
        ),
    );
    assert!(
        head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{head}"
    );
    assert_eq!(body, &PAGE_GZ[3..=7]);
    let range = std::format!("bytes 3-7/{}", PAGE_GZ.len());
    assert_eq!(field(&head, "Content-Range"), Some(range.as_str()));
    assert_eq!(field(&head, "Content-Encoding"), Some("gzip"));

    // If-Range with the gzip tag: still the range; with the identity tag: the whole gzip.
    let (gz_head, _) = exchange(&site, &get("/page.html", "Accept-Encoding: gzip\r\n"));
    let gz = field(&gz_head, "ETag").unwrap();
    let fields = std::format!("Accept-Encoding: gzip\r\nRange: bytes=0-1\r\nIf-Range: {gz}\r\n");
    let (_, body) = exchange(&site, &get("/page.html", &fields));
    assert_eq!(body, &PAGE_GZ[..2]);
    let (plain_head, _) = exchange(&site, &get("/page.html", ""));
    let plain = field(&plain_head, "ETag").unwrap();
    let fields = std::format!("Accept-Encoding: gzip\r\nRange: bytes=0-1\r\nIf-Range: {plain}\r\n");
    let (head, body) = exchange(&site, &get("/page.html", &fields));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, PAGE_GZ);
}

#[test]
fn head_matches_get() {
    let site = site();
    let (get_head, _) = exchange(&site, &get("/page.html", "Accept-Encoding: br\r\n"));
    let req = "HEAD /page.html HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\n\r\n";
    let (head_head, body) = exchange(&site, req);
    assert!(body.is_empty());
    let strip = |h: &str| {
        h.lines()
            .filter(|l| !l.starts_with("Cache-Status"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&head_head), strip(&get_head));
}

#[test]
fn the_sibling_is_cached_under_its_own_name() {
    let site = site();
    let req = get("/page.html", "Accept-Encoding: br\r\n");
    let (first, _) = exchange(&site, &req);
    let (second, body) = exchange(&site, &req);
    assert_eq!(body, PAGE_BR);
    assert_eq!(
        field(&first, "Cache-Status"),
        Some("satchel; fwd=miss; stored")
    );
    assert_eq!(field(&second, "Cache-Status"), Some("satchel; hit"));
    // The identity file is another entry: a miss the first time.
    let (plain, body) = exchange(&site, &get("/page.html", ""));
    assert_eq!(body, PAGE);
    assert_eq!(
        field(&plain, "Cache-Status"),
        Some("satchel; fwd=miss; stored")
    );
    // The sibling named directly is the same entry, sent as what it is.
    let (direct, body) = exchange(&site, &get("/page.html.br", ""));
    assert_eq!(body, PAGE_BR);
    assert_eq!(field(&direct, "Cache-Status"), Some("satchel; hit"));
    assert_eq!(field(&direct, "Content-Encoding"), None);
}

#[test]
fn a_folder_index_has_siblings_too() {
    let site = site();
    let (head, body) = exchange(&site, &get("/site/", "Accept-Encoding: zstd\r\n"));
    assert_eq!(body, b"ZSTD-index", "{head}");
    assert_eq!(field(&head, "Content-Encoding"), Some("zstd"));
    assert_eq!(
        field(&head, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn switched_off_sends_the_file_and_no_vary() {
    let mut config = Config::host();
    config.precompressed = false;
    let site = site_of(FILES, config);
    let (head, body) = exchange(&site, &get("/page.html", "Accept-Encoding: br, gzip\r\n"));
    assert_eq!(body, PAGE);
    assert_eq!(field(&head, "Content-Encoding"), None);
    assert_eq!(field(&head, "Vary"), None);
}
