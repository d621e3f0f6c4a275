//! The satchel firmware on an emulated board: `boards/mps2-an386` built for the Cortex-M4F,
//! booted in `qemu-system-arm -M mps2-an386`, its LAN9118 on a TAP device inside a network
//! namespace this test creates (and always deletes), and curl (plus a small Python helper)
//! inside the namespace as its clients. It checks every baked file byte for byte, HEAD, a
//! range, a resumed download, 304, 404, 400, 405, 414, 431, keep-alive, four downloads at
//! once, a fifth client refused while four are connected and served once one leaves, a client
//! that stalls mid-response (timed out, its slot comes back), ping, the same answers as
//! satchel-server for the same requests, and the UART log (the requests, no panic).
//!
//! Then the board as a caching edge: satchel-server in the namespace on the TAP's host side
//! (`192.168.69.1:8080`, the board's configured upstream) serves a folder this test writes;
//! through the board: a miss, then a hit revalidated upstream (its `304`), a change upstream
//! served at once, a file far larger than the board's fetch buffer streamed through byte for
//! byte (SHA-256 compared; its HEAD and a range too), upstream's `404`, upstream stopped
//! (`502` with a reason, flash still served), an upstream that never answers (`504`), one
//! that dies mid-body (curl sees a short transfer, never success), and upstream started
//! again.
//!
//! It needs root, `/dev/net/tun`, `ip`, `qemu-system-arm`, curl, python3 and the
//! `thumbv7em-none-eabihf` target (or a built firmware in `SATCHEL_BOARD_ELF`); without them
//! it says so and passes as skipped, unless `SATCHEL_REQUIRE_QEMU=1` (set by `.ci/run`) makes
//! the skip a failure. Needs the binaries too: `cargo build --workspace --bins` first.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use satchel_tests::board::{self, Helper, Qemu, Upstream, BOARD_IP, BOARD_PORT};
use satchel_tests::smol::{
    self, exchange_std, header_value as header, without_date, TapNet, BAKED, BIG, MEDIUM,
};
use satchel_tests::{Server, WAIT};

/// The board's send timeout (`boards/mps2-an386/src/config.rs`) plus its linger, and margin:
/// how long the stalling client reads nothing.
const STALL_SECS: &str = "13";

fn url(path: &str) -> String {
    format!("http://{BOARD_IP}:{BOARD_PORT}{path}")
}

fn curl(net: &TapNet, args: &[&str]) -> (i32, String) {
    net.curl(args)
}

/// `curl -o /dev/null -w %{http_code} ARGS`: the status.
fn status(net: &TapNet, args: &[&str]) -> String {
    let mut argv = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    argv.extend_from_slice(args);
    let (code, out) = curl(net, &argv);
    assert_eq!(code, 0, "curl {args:?}");
    out
}

#[test]
fn the_firmware_serves_curl_from_an_emulated_mps2_board() {
    let test = "board (QEMU mps2-an386) test";
    if smol::skip(test, board::qemu_capable(), "SATCHEL_REQUIRE_QEMU") {
        return;
    }
    let elf = board::firmware();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("helper.py");
    std::fs::write(&script, board::HELPER).expect("write the helper");

    // Guards drop in reverse order: QEMU and the upstream server are killed before their
    // namespace goes.
    let net = board::tap_net();
    // The board's upstream, for the files not in flash (none yet: a path the board does not
    // hold is upstream's 404, as the error and equivalence checks expect).
    let upstream_root = dir.path().join("upstream");
    std::fs::create_dir_all(&upstream_root).expect("upstream folder");
    let upstream = Upstream::start(&net, &upstream_root);
    let mut qemu = Qemu::start(&net, &elf, &dir.path().join("uart.log"));

    // Boot to the first 200 (reported, not asserted: the machine is shared). The first
    // request waits for the log's "serving on" line: a frame sent before the firmware has
    // enabled the NIC is lost, and an ARP request only goes again a second later.
    let deadline = Instant::now() + WAIT;
    while !qemu.log_text().contains("satchel: serving on") {
        assert!(
            qemu.running() && Instant::now() < deadline,
            "the firmware did not start serving; UART log:\n{}",
            qemu.log_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let serving = qemu.started.elapsed();
    loop {
        let (code, out) = curl(
            &net,
            &[
                "--max-time",
                "1",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url("/hello.txt"),
            ],
        );
        if code == 0 && out == "200" {
            break;
        }
        assert!(
            qemu.running() && Instant::now() < deadline,
            "no 200 from the board; UART log:\n{}",
            qemu.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "board_qemu: QEMU start to `serving on`: {} ms, to the first 200: {} ms",
        serving.as_millis(),
        qemu.started.elapsed().as_millis()
    );

    let dir = dir.path();
    fetch_checks(&net, dir);
    error_checks(&net);
    ping_check(&net, &script);
    concurrency_checks(&net, &script, dir);
    equivalence_checks(&net, &script, dir);
    edge_checks(&net, &script, dir, &qemu, upstream);

    let log = qemu.log_text();
    eprintln!("board_qemu: UART log:\n{log}");
    assert!(
        log.contains("satchel: serving on 192.168.69.2:80\n"),
        "{log}"
    );
    for line in [
        "192.168.69.1 GET /hello.txt 200 ",
        "192.168.69.1 GET /big.bin 206 ",
        "192.168.69.1 HEAD /data.bin 200 ",
        "192.168.69.1 GET /nope 404 ",
        "192.168.69.1 DELETE /hello.txt 405 ",
    ] {
        assert!(log.contains(line), "no `{line}` in the UART log:\n{log}");
    }
    assert!(!log.to_ascii_lowercase().contains("panic"), "{log}");
    assert!(!log.contains("halted"), "{log}");
    assert!(qemu.running(), "QEMU is still running");
}

/// Every file byte for byte, HEAD, a range, a resume, 304, keep-alive.
fn fetch_checks(net: &TapNet, dir: &Path) {
    let body = dir.join("body");
    let headers = dir.join("headers");
    let (body_s, headers_s) = (body.to_str().unwrap(), headers.to_str().unwrap());

    for file in BAKED {
        let u = url(&format!("/{}", file.path));
        let (code, _) = curl(net, &["-o", body_s, "-D", headers_s, &u]);
        assert_eq!(code, 0, "curl {u}");
        assert_eq!(std::fs::read(&body).unwrap(), file.data, "{}", file.path);
        let h = std::fs::read_to_string(&headers).unwrap();
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
        assert_eq!(
            header(&h, "content-length"),
            Some(file.data.len().to_string().as_str())
        );
    }

    // HEAD: the GET's head, no body.
    let (code, out) = curl(net, &["-I", &url("/data.bin")]);
    assert_eq!(code, 0);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert_eq!(header(&out, "content-length"), Some("10000"));
    assert!(out.ends_with("\r\n\r\n"), "no body after a HEAD: {out:?}");

    // A range, then a resumed download: curl continues a partial file from where it stops.
    let fetch = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["-o", body_s, "-w", "%{http_code}"]);
        let big = url("/big.bin");
        args.push(&big);
        let (code, out) = curl(net, &args);
        assert_eq!(code, 0, "curl {extra:?}");
        out
    };
    assert_eq!(fetch(&["-r", "100-199"]), "206");
    assert_eq!(std::fs::read(&body).unwrap(), &BIG[100..200]);
    std::fs::write(&body, &BIG[..7_000]).unwrap();
    assert_eq!(fetch(&["-C", "-"]), "206");
    assert_eq!(std::fs::read(&body).unwrap(), BIG, "resumed file is whole");

    // Revalidation: If-None-Match with the ETag it sent → 304, no body.
    let (code, _) = curl(net, &["-o", "/dev/null", "-D", headers_s, &url("/docs/")]);
    assert_eq!(code, 0);
    let h = std::fs::read_to_string(&headers).unwrap();
    let etag = header(&h, "etag").expect("etag").to_string();
    let inm = format!("If-None-Match: {etag}");
    assert_eq!(status(net, &["-H", &inm, &url("/docs/")]), "304");

    // Keep-alive: three requests, one connection.
    let (code, out) = curl(
        net,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &url("/hello.txt"),
            &url("/data.bin"),
            &url("/hello.txt"),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out, "200 1\n200 0\n200 0\n",
        "one connection for three requests"
    );
}

/// 404, a traversal, 405, 414, 431.
fn error_checks(net: &TapNet) {
    assert_eq!(status(net, &[&url("/nope")]), "404");
    assert_eq!(
        status(net, &["--path-as-is", &url("/docs/../../hello.txt")]),
        "400"
    );
    assert_eq!(status(net, &[&url("/%2e%2e/hello.txt")]), "400");
    let (code, out) = curl(
        net,
        &[
            "-X",
            "DELETE",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &url("/hello.txt"),
        ],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
    assert_eq!(header(&out, "allow"), Some("GET, HEAD"));
    // The board's limits: a 1024-byte request line, a 1024-byte head.
    let long = format!("/{}", "a".repeat(1100));
    assert_eq!(status(net, &[&url(&long)]), "414");
    let filler = format!("X-Filler: {}", "b".repeat(1100));
    assert_eq!(status(net, &["-H", &filler, &url("/hello.txt")]), "431");
}

fn ping_check(net: &TapNet, script: &Path) {
    let mut ping = Helper::start(net, script, &["ping", BOARD_IP, "0"]);
    assert_eq!(ping.line(), "reply", "ICMP echo from the board");
}

/// Four downloads at once; a fifth client while four are connected; a stalled client.
fn concurrency_checks(net: &TapNet, script: &Path, dir: &Path) {
    four_downloads(net, dir);

    // Four idle connections take every slot: a fifth is refused (a reset, curl's "couldn't
    // connect"), and served once one of the four leaves.
    let port = BOARD_PORT.to_string();
    let mut hold = Helper::start(net, script, &["hold", BOARD_IP, &port, "4"]);
    assert_eq!(hold.line(), "held 4");
    let (code, _) = curl(net, &["-o", "/dev/null", &url("/hello.txt")]);
    assert_eq!(
        code, 7,
        "a fifth client is refused while four are connected"
    );
    assert_eq!(hold.close_one(), "closed");
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, out) = curl(
            net,
            &["-o", "/dev/null", "-w", "%{http_code}", &url("/hello.txt")],
        );
        if code == 0 {
            assert_eq!(out, "200");
            break;
        }
        assert_eq!(code, 7, "refused, not anything else, until a slot frees");
        assert!(
            Instant::now() < deadline,
            "no slot came back after a client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(hold);

    // A client that stops reading mid-response: the board gives up on it (send timeout, then
    // its linger) and the connection ends before the body does.
    let mut stall = Helper::start(
        net,
        script,
        &["stall", BOARD_IP, &port, "/big.bin", STALL_SECS],
    );
    assert_eq!(stall.line(), "stalling");
    let result = stall.line();
    let mut parts = result.split(' ');
    assert_eq!(parts.next(), Some("got"), "{result}");
    let got: usize = parts.next().and_then(|n| n.parse().ok()).expect("a count");
    let end = parts.next().unwrap_or_default();
    assert!(
        got < BIG.len(),
        "a stalled client got the whole body: {result}"
    );
    assert!(
        end == "eof" || end == "reset",
        "the board kept a stalled client: {result}"
    );

    // Its slot came back: four clients fit again.
    let mut hold = Helper::start(net, script, &["hold", BOARD_IP, &port, "4"]);
    assert_eq!(hold.line(), "held 4", "four slots free after the stall");
    drop(hold);
    // And the board still serves (the held connections' slots return as they close).
    let deadline = Instant::now() + WAIT;
    while curl(net, &["-o", "/dev/null", &url("/hello.txt")]).0 != 0 {
        assert!(Instant::now() < deadline, "the board serves again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn four_downloads(net: &TapNet, dir: &Path) {
    // Rate-limited so that the four overlap.
    let children: Vec<_> = (0..4)
        .map(|i| {
            let out = dir.join(format!("par{i}"));
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &net.netns,
                    "curl",
                    "-sS",
                    "--max-time",
                    "20",
                ])
                .args(["--limit-rate", "8k", "-o"])
                .arg(&out)
                .arg(url("/big.bin"))
                .spawn()
                .expect("spawn curl")
        })
        .collect();
    for (i, mut child) in children.into_iter().enumerate() {
        assert!(child.wait().expect("curl").success(), "download {i}");
        assert_eq!(std::fs::read(dir.join(format!("par{i}"))).unwrap(), BIG);
    }
}

/// The same requests to the board and to satchel-server (serving the same files with the
/// same modification times, its cache bypassed as the board's is): the same answers, but for
/// `Date` (the board has no clock) and the ETag's value (each side derives its own: the
/// conditional requests use each side's).
fn equivalence_checks(net: &TapNet, script: &Path, dir: &Path) {
    let root = dir.join("root");
    for file in BAKED {
        let path = root.join(file.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file.data).unwrap();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(file.modified.unwrap());
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .unwrap();
    }
    let host = Server::start(&root, &["--max-cached-file", "0", "--quiet"]);
    let etag_of = |raw: &[u8]| -> String {
        let text = String::from_utf8_lossy(raw);
        header(&text, "etag").expect("an etag").to_string()
    };
    let board_exchange = |request: &[u8]| -> Vec<u8> {
        let req = dir.join("request");
        let resp = dir.join("response");
        std::fs::write(&req, request).unwrap();
        let _ = std::fs::remove_file(&resp);
        let port = BOARD_PORT.to_string();
        let mut helper = Helper::start(
            net,
            script,
            &[
                "exchange",
                BOARD_IP,
                &port,
                req.to_str().unwrap(),
                resp.to_str().unwrap(),
            ],
        );
        let _ = helper.line();
        drop(helper);
        std::fs::read(&resp).expect("the helper wrote the response")
    };
    let get =
        |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: board\r\n{extra}\r\n");
    let probe = get("/hello.txt", "");
    let host_etag = etag_of(&exchange_std(host.addr(), probe.as_bytes(), 1));
    let board_etag = etag_of(&board_exchange(probe.as_bytes()));
    assert_eq!(MEDIUM.len(), 10_000);

    // (name, request with `{etag}` for each side's ETag)
    let requests: Vec<(&str, String)> = vec![
        ("get", get("/hello.txt", "")),
        ("get larger", get("/data.bin", "")),
        ("get streamed", get("/big.bin", "")),
        (
            "head",
            "HEAD /data.bin HTTP/1.1\r\nHost: board\r\n\r\n".into(),
        ),
        ("range", get("/data.bin", "Range: bytes=100-199\r\n")),
        ("suffix range", get("/data.bin", "Range: bytes=-500\r\n")),
        ("unsatisfiable", get("/data.bin", "Range: bytes=20000-\r\n")),
        ("multi range", get("/data.bin", "Range: bytes=0-1,5-6\r\n")),
        (
            "if-none-match",
            get("/hello.txt", "If-None-Match: {etag}\r\n"),
        ),
        (
            "if-none-match other",
            get("/hello.txt", "If-None-Match: \"nope\"\r\n"),
        ),
        (
            "if-modified-since",
            get(
                "/hello.txt",
                "If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT\r\n",
            ),
        ),
        (
            "if-range",
            get("/hello.txt", "Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
        ),
        (
            "if-range stale",
            get("/hello.txt", "Range: bytes=0-4\r\nIf-Range: \"old\"\r\n"),
        ),
        ("folder redirect", get("/docs", "")),
        ("folder index", get("/docs/", "")),
        ("not found", get("/missing.txt", "")),
        ("file as folder", get("/hello.txt/", "")),
        ("dot-dot", get("/docs/../hello.txt", "")),
        ("encoded dot-dot", get("/%2e%2e/etc/passwd", "")),
        ("encoded nul", get("/hello%00.txt", "")),
        (
            "delete",
            "DELETE /hello.txt HTTP/1.1\r\nHost: board\r\n\r\n".into(),
        ),
        (
            "version",
            "GET /hello.txt HTTP/2.0\r\nHost: board\r\n\r\n".into(),
        ),
        ("no host", "GET /hello.txt HTTP/1.1\r\n\r\n".into()),
        ("bad line", "GET\r\n\r\n".into()),
    ];
    for (name, template) in requests {
        let from_host = exchange_std(
            host.addr(),
            template.replace("{etag}", &host_etag).as_bytes(),
            1,
        );
        let from_board = board_exchange(template.replace("{etag}", &board_etag).as_bytes());
        // (head without Date, the ETag's value replaced; body)
        let split = |raw: &[u8], etag: &str| {
            let raw = without_date(raw);
            let end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(raw.len(), |p| p + 4);
            let head: String = String::from_utf8_lossy(&raw[..end])
                .split_inclusive("\r\n")
                .map(|l| {
                    if l.starts_with("ETag: ") {
                        "ETag: <etag>\r\n"
                    } else {
                        l
                    }
                })
                .collect();
            let head = head.replace(etag, "<etag>");
            (head, raw[end..].to_vec())
        };
        let (host_head, host_body) = split(&from_host, &host_etag);
        let (board_head, board_body) = split(&from_board, &board_etag);
        assert!(
            !host_head.is_empty(),
            "{name}: no answer from satchel-server"
        );
        assert_eq!(
            host_head, board_head,
            "{name}: satchel-server (left) and the board (right) differ"
        );
        assert!(
            host_body == board_body,
            "{name}: bodies differ ({} and {} bytes)",
            host_body.len(),
            board_body.len()
        );
    }
}

/// The board's fetch buffer (`FETCH_BODY` in `boards/mps2-an386/src/config.rs`).
const FETCH_BODY: usize = 4096;

/// The UART log gains a line starting with `prefix` (bounded wait): the access-log line is
/// written when the response ends, which may be just after curl has its last byte.
fn wait_log_line(qemu: &Qemu, prefix: &str, count: usize) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = qemu.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.starts_with(prefix)).collect();
        if lines.len() >= count {
            return lines[count - 1].to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line {count} starting `{prefix}` in the UART log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The caching edge: files not in flash fetched from satchel-server upstream, cached,
/// revalidated, never stale; upstream down answered 502/504 without a hang.
fn edge_checks(net: &TapNet, script: &Path, dir: &Path, qemu: &Qemu, upstream: Upstream) {
    let root = dir.join("upstream");
    std::fs::create_dir_all(root.join("edge")).unwrap();
    let first = satchel_tests::content(1500, 7);
    std::fs::write(root.join("edge/a.txt"), &first).unwrap();
    // Far larger than the board's fetch buffer (and its RAM).
    let big = satchel_tests::content(32 * FETCH_BODY + 17, 9);
    std::fs::write(root.join("edge/big.bin"), &big).unwrap();

    let body = dir.join("edge-body");
    let headers = dir.join("edge-headers");
    let get = |path: &str| -> (String, Vec<u8>, String) {
        let _ = std::fs::remove_file(&body);
        let (code, out) = curl(
            net,
            &[
                "-o",
                body.to_str().unwrap(),
                "-D",
                headers.to_str().unwrap(),
                "-w",
                "%{http_code}",
                &url(path),
            ],
        );
        assert_eq!(code, 0, "curl {path}");
        let h = std::fs::read_to_string(&headers).unwrap_or_default();
        (out, std::fs::read(&body).unwrap_or_default(), h)
    };
    let cache_status = |h: &str| header(h, "cache-status").unwrap_or("-").to_string();

    // A miss: fetched, stored, served.
    let (status, bytes, h) = get("/edge/a.txt");
    assert_eq!(status, "200", "{h}");
    assert!(bytes == first, "the fetched bytes ({} bytes)", bytes.len());
    assert_eq!(cache_status(&h), "satchel; fwd=miss; stored", "{h}");
    let line = wait_log_line(qemu, "192.168.69.1 GET /edge/a.txt ", 1);
    assert!(
        line.contains(" 200 ") && line.contains(" miss-stored "),
        "{line}"
    );

    // Again: upstream answers the board's If-None-Match with 304, the cached copy is sent.
    let (status, bytes, h) = get("/edge/a.txt");
    assert_eq!(status, "200", "{h}");
    assert!(bytes == first, "the cached bytes ({} bytes)", bytes.len());
    assert_eq!(cache_status(&h), "satchel; hit", "{h}");
    let line = wait_log_line(qemu, "192.168.69.1 GET /edge/a.txt ", 2);
    assert!(line.contains(" 200 ") && line.contains(" hit "), "{line}");
    let upstream_log = upstream.lines(WAIT);
    let revalidated = upstream_log
        .iter()
        .filter(|l| l.contains(" GET /edge/a.txt 304 "))
        .count();
    assert_eq!(revalidated, 1, "one 304 upstream: {upstream_log:?}");

    // A conditional request from the client is answered by the board from the cached copy.
    let etag = header(&h, "etag").expect("an etag").to_string();
    let inm = format!("If-None-Match: {etag}");
    assert_eq!(status_of(net, &["-H", &inm, &url("/edge/a.txt")]), "304");

    // Changed upstream: the next request gets the new bytes, never the cached ones.
    let second = satchel_tests::content(2100, 8);
    std::fs::write(root.join("edge/a.txt"), &second).unwrap();
    let (status, bytes, h) = get("/edge/a.txt");
    assert_eq!(status, "200", "{h}");
    assert!(bytes == second, "not the new bytes ({} bytes)", bytes.len());
    assert_eq!(cache_status(&h), "satchel; fwd=miss; stored", "{h}");
    let (_, bytes, h) = get("/edge/a.txt");
    assert!(bytes == second, "the new bytes, cached");
    assert_eq!(cache_status(&h), "satchel; hit", "{h}");

    // Larger than the fetch buffer: streamed from upstream through the board at curl's pace,
    // byte for byte, never cached (`bypass` both times).
    for n in 1..=2 {
        let (status, bytes, h) = get("/edge/big.bin");
        assert_eq!(status, "200", "{h}");
        let len = big.len().to_string();
        assert_eq!(header(&h, "content-length"), Some(len.as_str()), "{h}");
        assert_eq!(
            Sha256::digest(&bytes),
            Sha256::digest(&big),
            "streamed bytes ({} of {})",
            bytes.len(),
            big.len()
        );
        assert_eq!(cache_status(&h), "satchel; fwd=bypass", "{h}");
        let line = wait_log_line(qemu, "192.168.69.1 GET /edge/big.bin ", n);
        assert!(
            line.contains(" 200 ") && line.contains(" bypass ") && line.ends_with(" complete"),
            "{line}"
        );
    }
    // HEAD: upstream's length, no body; the fetch slot comes back (the next file is served).
    let (code, out) = curl(net, &["-sI", &url("/edge/big.bin")]);
    assert_eq!(code, 0);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert_eq!(
        header(&out, "content-length"),
        Some(big.len().to_string().as_str())
    );
    let (_, bytes, h) = get("/edge/a.txt");
    assert!(bytes == second, "{h}");
    // A range: exactly its bytes (the board skips upstream's bytes before it).
    let _ = std::fs::remove_file(&body);
    let (code, out) = curl(
        net,
        &[
            "-r",
            "70000-70999",
            "-o",
            body.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &url("/edge/big.bin"),
        ],
    );
    assert_eq!((code, out.as_str()), (0, "206"));
    assert!(std::fs::read(&body).unwrap() == big[70000..71000]);
    // Not upstream either: its 404.
    assert_eq!(status_of(net, &[&url("/edge/none.txt")]), "404");

    // Upstream killed mid-stream: curl gets a prefix of the file and a connection that ends
    // before Content-Length, never success.
    killed_mid_stream(net, dir, upstream);

    // Upstream stopped: a clear 502 (refused) or 504, quickly (curl's 10 s limit), with a
    // reason; the flash files are still served.
    let (status, bytes, h) = get("/edge/a.txt");
    assert!(status == "502" || status == "504", "{status}: {h}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("upstream"), "{text}");
    let (status, bytes, _) = get("/hello.txt");
    assert_eq!(status, "200");
    assert_eq!(bytes, BAKED[0].data);
    let line = wait_log_line(qemu, &format!("192.168.69.1 GET /edge/a.txt {status}"), 1);
    assert!(!line.is_empty());

    // An upstream that accepts and never answers: 504 once the board's upstream timeout
    // (2 s) passes, well within curl's 10 s; the slot comes back (flash served after).
    let port = board::UPSTREAM_PORT.to_string();
    let mut silent = Helper::start(net, script, &["silent", board::UPSTREAM_IP, &port]);
    assert_eq!(silent.line(), "listening");
    let (status, bytes, h) = get("/edge/a.txt");
    assert_eq!(status, "504", "{h}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("upstream did not answer in time"), "{text}");
    assert_eq!(get("/hello.txt").0, "200");
    drop(silent);

    // An upstream that dies mid-body: curl gets the bytes upstream sent and a connection that
    // ends before Content-Length (a short transfer, never success, never padding).
    let (total, sent) = (20 * FETCH_BODY, 9 * FETCH_BODY + 5);
    let mut dying = Helper::start(
        net,
        script,
        &[
            "dying",
            board::UPSTREAM_IP,
            &port,
            &total.to_string(),
            &sent.to_string(),
        ],
    );
    assert_eq!(dying.line(), "listening");
    let _ = std::fs::remove_file(&body);
    let (code, _) = curl(
        net,
        &["-o", body.to_str().unwrap(), &url("/edge/dying.bin")],
    );
    assert!(
        code == 18 || code == 56,
        "curl exit {code}: a short transfer (18) or a reset mid-body (56)"
    );
    let got = std::fs::read(&body).unwrap_or_default();
    let expected: Vec<u8> = (0..sent).map(|i| (i * 7 % 251) as u8).collect();
    assert!(
        got.len() < total && got == expected[..got.len()],
        "{} bytes of {total}, a prefix of what upstream sent ({sent})",
        got.len()
    );
    assert_eq!(dying.line(), "died");
    drop(dying);
    let line = wait_log_line(qemu, "192.168.69.1 GET /edge/dying.bin ", 1);
    assert!(
        line.contains(" 200 ") && line.ends_with(" incomplete"),
        "{line}"
    );
    assert_eq!(get("/hello.txt").0, "200");

    // Upstream back: served again (the copy cached before is still current).
    let upstream = Upstream::start(net, &root);
    let (status, bytes, h) = get("/edge/a.txt");
    assert_eq!(status, "200", "{h}");
    assert!(bytes == second, "the current bytes after upstream returned");
    assert_eq!(cache_status(&h), "satchel; hit", "{h}");
    drop(upstream);
}

/// A download of a file far larger than what upstream's kernel can hold in its socket
/// buffers (at most 4 MiB), upstream SIGKILLed once curl has 256 KiB: the board gets what was
/// queued, then upstream's end, and cuts the client short.
fn killed_mid_stream(net: &TapNet, dir: &Path, upstream: Upstream) {
    let root = dir.join("upstream");
    let huge = satchel_tests::content(16 << 20, 5);
    std::fs::write(root.join("edge/huge.bin"), &huge).unwrap();
    let out = dir.join("huge-body");
    let mut curl = std::process::Command::new("ip")
        .args(["netns", "exec", &net.netns])
        .args(["curl", "-sS", "--max-time", "60", "--noproxy", "*", "-o"])
        .arg(&out)
        .arg(url("/edge/huge.bin"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start curl");
    let deadline = Instant::now() + WAIT;
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 256 << 10 {
        if Instant::now() >= deadline || !matches!(curl.try_wait(), Ok(None)) {
            let _ = curl.kill();
            let _ = curl.wait();
            panic!("curl did not get 256 KiB of huge.bin");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    upstream.stop();
    let deadline = Instant::now() + Duration::from_secs(90);
    let code = loop {
        match curl.try_wait() {
            Ok(Some(status)) => break status.code(),
            _ if Instant::now() >= deadline => {
                let _ = curl.kill();
                let _ = curl.wait();
                panic!("curl still running 90 s after upstream died");
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let got = std::fs::read(&out).unwrap_or_default();
    assert!(
        code == Some(18) || code == Some(56),
        "curl exit {code:?} after {} bytes: a short transfer (18) or a reset mid-body (56)",
        got.len()
    );
    assert!(
        got.len() < huge.len() && got == huge[..got.len()],
        "{} bytes of {}, a prefix",
        got.len(),
        huge.len()
    );
    eprintln!(
        "board_qemu: upstream killed mid-stream: curl got {} of {} bytes, exit {code:?}",
        got.len(),
        huge.len()
    );
}

fn status_of(net: &TapNet, args: &[&str]) -> String {
    status(net, args)
}
