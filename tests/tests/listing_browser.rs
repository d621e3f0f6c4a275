//! The folder page as a person sees it: headless Chromium loads satchel-server's listing of a
//! folder with hostile names (`--dump-dom`), and the test checks the rows, that every link is
//! percent-encoded and fetches the right file, the order for every sort parameter, and that no
//! name became markup.
//!
//! Chromium missing: the test says so and skips, unless `SATCHEL_REQUIRE_PEERS=1` (CI), where
//! it fails. With `SATCHEL_LISTING_SCREENSHOTS=DIR` it also saves the README's screenshots
//! (`listing.png`, `listing-phone.png`) of a friendlier folder into DIR.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use satchel_tests::browser::{chromium, dump_dom, run_chromium};
use satchel_tests::{raw, Server};

/// One file or folder of the test tree.
#[derive(Debug, Clone)]
struct Item {
    name: Vec<u8>,
    is_dir: bool,
    size: u64,
    mtime: u64,
}

const NOW: u64 = 1_700_000_000;

/// A folder of hostile names with distinct sizes and times; returns what it holds.
fn hostile_tree(root: &Path) -> Vec<Item> {
    let specs: &[(&[u8], bool, u64, u64)] = &[
        (b"sub dir", true, 0, NOW - 5000),
        (b"<b>bold<", true, 0, NOW - 100),
        (b"<img src=x onerror=alert(1)>.txt", false, 10, NOW - 300),
        (b"a&b'c \"q\".txt", false, 2_500, NOW - 200),
        (b"line\nbreak.txt", false, 30, NOW - 10),
        (b"bad\xffutf8.bin", false, 4, NOW - 4000),
        (b"100% done?#.txt", false, 1_234_567, NOW - 60),
        ("r\u{e9}sum\u{e9}.txt".as_bytes(), false, 50, NOW - 9000),
        (b"javascript:alert(1)", false, 6, NOW - 7),
        (b"<script>alert(1)<", false, 70, NOW - 800),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(i, &(name, is_dir, size, mtime))| {
            let path = root.join(OsStr::from_bytes(name));
            if is_dir {
                fs::create_dir(&path).unwrap();
                fs::write(path.join("inner.txt"), b"inner\n").unwrap();
            } else {
                fs::write(&path, satchel_tests::content(size as usize, i as u8)).unwrap();
            }
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
            fs::File::open(&path).unwrap().set_modified(time).unwrap();
            Item {
                name: name.to_vec(),
                is_dir,
                size,
                mtime,
            }
        })
        .collect()
}

/// RFC 3986 path-segment encoding, written independently of the core's.
fn encode(name: &[u8]) -> String {
    name.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the page shows for a name: invalid UTF-8 and control characters as U+FFFD.
fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Undoes the character references Chromium's serializer writes.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// A row of the dumped table: the link's href (as written) and text, and the row's cells.
#[derive(Debug)]
struct Row {
    href: String,
    text: String,
    is_dir: bool,
    cells: Vec<String>,
}

/// The rows of the listing's `<tbody>`, from Chromium's serialization of the DOM.
fn rows(dom: &str) -> Vec<Row> {
    let body = dom
        .split_once("<tbody>")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("no table body in\n{dom}"));
    body.split("<tr")
        .skip(1)
        .map(|tr| {
            let is_dir = tr.starts_with(" class=\"d\"");
            let cells: Vec<String> = tr
                .split("<td")
                .skip(1)
                .map(|td| td.split("</td>").next().unwrap().to_string())
                .collect();
            let first = cells.first().expect("a cell");
            let href = first
                .split_once("href=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(href, _)| unescape(href))
                .unwrap_or_default();
            // A linked name, or an unlinked one (`<span title=…>`).
            let text = first
                .split_once("\">")
                .and_then(|(_, rest)| rest.split_once("</"))
                .map(|(text, _)| unescape(text))
                .unwrap_or_default();
            Row {
                href,
                text,
                is_dir,
                cells,
            }
        })
        .collect()
}

/// The order the server must give for `key` (`name`, `size`, `date`): folders first, then by
/// the key (ties by name ascending).
fn expected_order(items: &[Item], key: &str, descending: bool) -> Vec<Vec<u8>> {
    let mut v = items.to_vec();
    v.sort_by(|a, b| {
        let by_key = match key {
            "name" => a.name.cmp(&b.name),
            "size" => a.size.cmp(&b.size),
            "date" => a.mtime.cmp(&b.mtime),
            _ => unreachable!(),
        };
        let by_key = if descending { by_key.reverse() } else { by_key };
        b.is_dir
            .cmp(&a.is_dir)
            .then(by_key)
            .then_with(|| a.name.cmp(&b.name))
    });
    v.into_iter().map(|i| i.name).collect()
}

#[test]
fn folder_page_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let items = hostile_tree(dir.path());
    let server = Server::start(dir.path(), &["--quiet"]);

    // The response itself: HTML with the strict policy.
    let r = raw::get(server.addr(), "/");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r
        .header("content-security-policy")
        .expect("a CSP on the page");
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );

    let dom = dump_dom(&chromium, &server.url("/"));
    // Hostile names stayed text: no element the page does not write itself.
    for tag in ["<img", "<script", "<b>", "<b "] {
        assert!(!dom.contains(tag), "{tag} became markup in\n{dom}");
    }
    assert!(dom.contains("<meta name=\"viewport\""), "{dom}");

    let got = rows(&dom);
    assert_eq!(
        got.len(),
        items.len(),
        "one row per entry (no parent row at the root)"
    );
    let want = expected_order(&items, "name", false);
    for (row, name) in got.iter().zip(&want) {
        let item = items.iter().find(|i| &i.name == name).unwrap();
        let slash = if item.is_dir { "/" } else { "" };
        assert_eq!(row.text, format!("{}{slash}", shown(name)), "{row:?}");
        assert_eq!(row.is_dir, item.is_dir, "{row:?}");
        if name.iter().any(u8::is_ascii_control) {
            // The server refuses control bytes in paths: shown, but not linked.
            assert!(
                row.href.is_empty() && row.cells[0].contains("<span"),
                "{row:?}"
            );
            let r = raw::get(server.addr(), &format!("/{}", encode(name)));
            assert_eq!(r.status, 400, "{row:?}");
            continue;
        }
        assert_eq!(row.href, format!("{}{slash}", encode(name)), "{row:?}");
        // Every link fetches the right thing.
        let r = raw::get(server.addr(), &format!("/{}", row.href));
        assert_eq!(r.status, 200, "{row:?}");
        if item.is_dir {
            assert!(String::from_utf8_lossy(&r.body).contains("inner.txt"));
        } else {
            let disk = fs::read(dir.path().join(OsStr::from_bytes(name))).unwrap();
            assert_eq!(r.body, disk, "{row:?}");
            // Exact bytes in the tooltip, e.g. "1,234,567 bytes".
            let mut digits = item.size.to_string();
            let mut at = digits.len();
            while at > 3 {
                at -= 3;
                digits.insert(at, ',');
            }
            assert!(
                row.cells[1].contains(&format!("title=\"{digits} byte")),
                "{row:?}"
            );
        }
    }
    let big = got.iter().find(|r| r.text.starts_with("100%")).unwrap();
    assert!(big.cells[1].ends_with(">1.2 MiB"), "{big:?}");
    assert!(
        big.cells[2].contains("datetime=\"2023-11-14T22:12:20Z\""),
        "{big:?}"
    );

    // Every sort parameter, both directions: rows in the expected order, the active header
    // linking to the other direction.
    for key in ["name", "size", "date"] {
        for (order, descending) in [("asc", false), ("desc", true)] {
            let dom = dump_dom(
                &chromium,
                &server.url(&format!("/?sort={key}&order={order}")),
            );
            let names: Vec<String> = rows(&dom).into_iter().map(|r| r.text).collect();
            let want: Vec<String> = expected_order(&items, key, descending)
                .iter()
                .map(|n| {
                    let dir = items.iter().any(|i| &i.name == n && i.is_dir);
                    format!("{}{}", shown(n), if dir { "/" } else { "" })
                })
                .collect();
            assert_eq!(names, want, "sort={key}&order={order}");
            let other = if descending { "asc" } else { "desc" };
            let header = format!("href=\"?sort={key}&amp;order={other}\"");
            assert!(dom.contains(&header), "{header} in\n{dom}");
        }
    }

    // A subfolder: breadcrumbs back to the root, a parent row, the links relative to it.
    let dom = dump_dom(&chromium, &server.url("/sub%20dir/"));
    assert!(
        dom.contains("<h1>Index of <a href=\"../\">/</a>sub dir/</h1>"),
        "{dom}"
    );
    let got = rows(&dom);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].href.as_str(), got[0].is_dir), ("../", true));
    assert_eq!(got[1].href, "inner.txt");
    let r = raw::get(server.addr(), "/sub%20dir/inner.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"inner\n"[..]));

    if let Some(out) = std::env::var_os("SATCHEL_LISTING_SCREENSHOTS") {
        screenshots(&chromium, Path::new(&out));
    }
}

/// The README's pictures: a folder as people keep them, desktop and phone width.
fn screenshots(chromium: &Path, out: &Path) {
    let dir = tempfile::tempdir().unwrap();
    // Deep enough to show breadcrumbs and the parent row.
    let root = dir.path().join("projects/satchel");
    fs::create_dir_all(&root).unwrap();
    let day = 86_400;
    let files: &[(&str, u64, u64)] = &[
        ("photos/", 0, NOW - 3 * day),
        ("docs/", 0, NOW - 40 * day),
        ("src/", 0, NOW - 2 * day),
        ("README.md", 4_812, NOW - 3600),
        ("release-1.4.0.tar.gz", 18_350_112, NOW - 9 * day),
        (
            "debian-12.5.0-amd64-netinst.iso",
            659_554_304,
            NOW - 120 * day,
        ),
        ("notes <draft> & ideas.txt", 933, NOW - 600),
        ("r\u{e9}sum\u{e9} 2024.pdf", 84_231, NOW - 200 * day),
        ("screenshot.png", 1_204_555, NOW - 5 * day),
    ];
    for &(name, size, mtime) in files {
        let path = root.join(name.trim_end_matches('/'));
        if name.ends_with('/') {
            fs::create_dir(&path).unwrap();
        } else {
            let f = fs::File::create(&path).unwrap();
            f.set_len(size).unwrap();
        }
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
        fs::File::open(&path).unwrap().set_modified(time).unwrap();
    }
    let server = Server::start(dir.path(), &["--quiet"]);
    fs::create_dir_all(out).unwrap();
    for (file, size) in [("listing.png", "900,540"), ("listing-phone.png", "390,640")] {
        let mut shot = std::ffi::OsString::from("--screenshot=");
        shot.push(out.join(file));
        let window = format!("--window-size={size}");
        run_chromium(
            chromium,
            &[
                &shot,
                window.as_ref(),
                "--force-device-scale-factor=1".as_ref(),
                server.url("/projects/satchel/").as_ref(),
            ],
        );
    }
}
