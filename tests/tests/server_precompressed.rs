//! Precompressed siblings end to end: `name.br`, `name.zst`, `name.gz` made by the real
//! `brotli`, `zstd` and `gzip` tools, fetched with curl (`--compressed` decodes; a plain
//! `Accept-Encoding` shows the raw sibling) and loaded by headless Chromium.
//!
//! A missing tool skips the test with a message, unless `SATCHEL_REQUIRE_PEERS=1` (CI), where
//! it fails.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use satchel_tests::browser::{chromium, dump_dom};
use satchel_tests::{required_tool, Server};

/// Whether curl and the three compressors are installed (a missing one skips the test, or
/// fails it in CI).
fn tools() -> bool {
    ["curl", "gzip", "zstd", "brotli"]
        .iter()
        .all(|t| required_tool(&[t], t).is_some())
}

/// A compressible page (about 60 kB) whose text can be recognised in a DOM.
fn page() -> Vec<u8> {
    let mut html =
        String::from("<!doctype html><html><head><title>precompressed</title></head><body>\n");
    html.push_str("<h1 id=\"marker\">the original page, decoded</h1>\n");
    for i in 0..1500 {
        html.push_str(&format!("<p>line {i} of a page that compresses well</p>\n"));
    }
    html.push_str("</body></html>\n");
    html.into_bytes()
}

/// Writes `name` and, for each of `tools` (`gzip`, `zstd`, `brotli`), its sibling made by that
/// tool, keeping the original (`-k`; each tool gives the sibling the original's mtime).
fn with_siblings(root: &Path, name: &str, data: &[u8], tools: &[&str]) {
    let path = root.join(name);
    fs::write(&path, data).unwrap();
    for &tool in tools {
        // Keep the input, overwrite an old sibling (brotli's `-q` is a level, not quiet).
        let args: &[&str] = match tool {
            "brotli" => &["-k", "-f"],
            _ => &["-k", "-f", "-q"],
        };
        let status = Command::new(tool).args(args).arg(&path).status().unwrap();
        assert!(status.success(), "{tool} failed");
    }
}

/// A curl run: the response head(s) as text and the body as received (decoded with
/// `--compressed`).
struct Fetched {
    head: String,
    body: Vec<u8>,
}

impl Fetched {
    /// A field's value (case-insensitive name), from the last response head.
    fn field(&self, name: &str) -> Option<String> {
        let last = self.head.rsplit("HTTP/1.1 ").next().unwrap_or_default();
        last.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn status(&self) -> u16 {
        let last = self.head.rsplit("HTTP/1.1 ").next().unwrap_or_default();
        last.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

fn curl(url: &str, args: &[&str]) -> Fetched {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Fetched {
        head: fs::read_to_string(head).unwrap(),
        body: fs::read(&body).unwrap_or_default(),
    }
}

#[test]
fn curl_compressed_decodes_to_the_original_and_raw_codings_are_the_siblings() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let original = page();
    with_siblings(
        root.path(),
        "page.html",
        &original,
        &["gzip", "zstd", "brotli"],
    );
    let server = Server::start(root.path(), &[]);
    let url = server.url("/page.html");

    // curl --compressed offers every coding it decodes; br is satchel's first choice.
    let got = curl(&url, &["--compressed"]);
    assert_eq!(got.status(), 200, "{}", got.head);
    assert_eq!(
        got.field("Content-Encoding").as_deref(),
        Some("br"),
        "{}",
        got.head
    );
    assert_eq!(
        got.field("Content-Type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(got.field("Vary").as_deref(), Some("Accept-Encoding"));
    assert!(
        got.body == original,
        "the decoded body differs from page.html"
    );

    let mut etags = vec![curl(&url, &[]).field("ETag").unwrap()];
    for (coding, ext) in [("br", "br"), ("zstd", "zst"), ("gzip", "gz")] {
        let header = format!("Accept-Encoding: {coding}");
        let raw = curl(&url, &["-H", &header]);
        let sibling = fs::read(root.path().join(format!("page.html.{ext}"))).unwrap();
        assert_eq!(
            raw.field("Content-Encoding").as_deref(),
            Some(coding),
            "{}",
            raw.head
        );
        assert!(
            raw.body == sibling,
            "{coding}: the raw body is not page.html.{ext}"
        );
        assert!(
            sibling.len() < original.len() / 4,
            "{coding} compressed poorly"
        );
        assert_eq!(raw.field("Content-Length"), Some(sibling.len().to_string()));
        etags.push(raw.field("ETag").unwrap());
        // curl decodes what it asked for, to the original.
        let decoded = curl(&url, &["--compressed", "-H", &header]);
        assert!(decoded.body == original, "{coding}: decoded body differs");
    }
    for (i, a) in etags.iter().enumerate() {
        assert!(!etags[i + 1..].contains(a), "ETag {a} repeated: {etags:?}");
    }

    // No coding accepted: the file itself, still with Vary.
    let plain = curl(&url, &["-H", "Accept-Encoding: identity"]);
    assert!(plain.body == original);
    assert_eq!(plain.field("Content-Encoding"), None);
    assert_eq!(plain.field("Vary").as_deref(), Some("Accept-Encoding"));
}

#[test]
fn ranges_conditionals_and_head_apply_to_the_encoded_form() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    with_siblings(root.path(), "page.html", &page(), &["gzip"]);
    let gz = fs::read(root.path().join("page.html.gz")).unwrap();
    let server = Server::start(root.path(), &[]);
    let url = server.url("/page.html");
    let ae = ["-H", "Accept-Encoding: gzip"];

    let part = curl(&url, &[ae[0], ae[1], "-r", "10-19"]);
    assert_eq!(part.status(), 206, "{}", part.head);
    assert_eq!(part.body, gz[10..20]);
    assert_eq!(
        part.field("Content-Range"),
        Some(format!("bytes 10-19/{}", gz.len()))
    );
    assert_eq!(part.field("Content-Encoding").as_deref(), Some("gzip"));

    let full = curl(&url, &ae);
    let etag = full.field("ETag").unwrap();
    let inm = format!("If-None-Match: {etag}");
    let not_modified = curl(&url, &[ae[0], ae[1], "-H", &inm]);
    assert_eq!(not_modified.status(), 304, "{}", not_modified.head);
    // The gzip tag does not validate the file itself.
    assert_eq!(curl(&url, &["-H", &inm]).status(), 200);

    let head = curl(&url, &[ae[0], ae[1], "-I"]);
    for name in [
        "Content-Type",
        "Content-Encoding",
        "Content-Length",
        "ETag",
        "Vary",
    ] {
        assert_eq!(head.field(name), full.field(name), "{name}");
    }
}

#[test]
fn a_stale_sibling_is_not_served() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    with_siblings(root.path(), "notes.txt", b"old text\n", &["gzip"]);
    // The original is rewritten after its sibling was made: the sibling is stale.
    let path = root.path().join("notes.txt");
    fs::write(&path, b"new text, not in the gzip\n").unwrap();
    let earlier = SystemTime::now() - Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(root.path().join("notes.txt.gz"))
        .unwrap()
        .set_modified(earlier)
        .unwrap();
    let server = Server::start(root.path(), &[]);
    let got = curl(&server.url("/notes.txt"), &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(got.body, b"new text, not in the gzip\n", "{}", got.head);
    assert_eq!(got.field("Content-Encoding"), None);

    // Made fresh again (as new as the original), it is served.
    let status = Command::new("gzip")
        .args(["-k", "-f", "-q"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let got = curl(&server.url("/notes.txt"), &["--compressed"]);
    assert_eq!(got.field("Content-Encoding").as_deref(), Some("gzip"));
    assert_eq!(got.body, b"new text, not in the gzip\n");
}

#[test]
fn no_precompressed_sends_the_file_itself() {
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let original = page();
    with_siblings(root.path(), "page.html", &original, &["gzip", "brotli"]);
    let server = Server::start(root.path(), &["--no-precompressed"]);
    let got = curl(
        &server.url("/page.html"),
        &["-H", "Accept-Encoding: br, gzip"],
    );
    assert!(got.body == original);
    assert_eq!(got.field("Content-Encoding"), None, "{}", got.head);
    assert_eq!(got.field("Vary"), None);
}

/// What a person sees: Chromium loads a page whose `.br` and `.gz` siblings exist; it is sent
/// encoded (the access log's byte count is far below the page's size) and the rendered DOM
/// shows the original's content.
#[test]
fn chromium_renders_the_original_from_a_compressed_sibling() {
    let Some(chromium) = chromium() else { return };
    if !tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let original = page();
    with_siblings(root.path(), "page.html", &original, &["gzip", "brotli"]);
    let server = Server::start(root.path(), &[]);
    let dom = dump_dom(&chromium, &server.url("/page.html"));
    assert!(
        dom.contains("<h1 id=\"marker\">the original page, decoded</h1>"),
        "{}",
        &dom[..dom.len().min(500)]
    );
    assert!(dom.contains("<p>line 1499 of a page that compresses well</p>"));
    let log = server.drain_lines(Duration::from_millis(500));
    let line = log
        .iter()
        .find(|l| l.contains(" GET /page.html 200 "))
        .unwrap_or_else(|| panic!("no log line for the page: {log:?}"));
    let sent: usize = line.split(' ').nth(4).unwrap().parse().unwrap();
    let br = fs::metadata(root.path().join("page.html.br"))
        .unwrap()
        .len() as usize;
    assert!(
        sent < original.len() / 4 && sent >= br,
        "{sent} bytes sent for a {}-byte page with a {br}-byte .br: {line}",
        original.len()
    );
}
