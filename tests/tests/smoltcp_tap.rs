//! The smoltcp server against the Linux TCP stack: on a TAP device inside a network namespace
//! this test creates (and always deletes), `curl` fetches files, a range, a resumed download
//! and a 304 from it.
//!
//! It needs root, `/dev/net/tun` and `ip`; without them it says so and passes as skipped,
//! unless `SATCHEL_REQUIRE_TAP=1` (set by `.ci/run`) makes the skip a failure.
//!
//! The TAP device is created outside the namespace, opened by the server thread, and only then
//! moved into the namespace, where it gets its address (10.77.0.1/24, the smoltcp side is
//! 10.77.0.2): an open TAP file keeps working across the move, so the whole test runs in one
//! process with no `unsafe` `setns`. The device has no address and is down while it is
//! outside the namespace, so no traffic leaves it.

use std::os::unix::io::AsRawFd as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use satchel_core::smoltcp::{core_instant, Server, SocketBuffers};
use satchel_tests::smol::{
    self, baked_site, header_value as header, host_clock, TapNet, BAKED, BIG,
};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

const SERVER_IP: &str = "10.77.0.2";

/// Sets the flag when dropped, so that the server thread ends even when the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The board's poll loop, on the TAP device: until `stop`.
fn serve_on_tap(tap: &str, stop: &AtomicBool, ready: mpsc::Sender<Result<(), String>>) {
    let mut device = match TunTapInterface::new(tap, Medium::Ethernet) {
        Ok(d) => d,
        Err(e) => {
            let _ = ready.send(Err(format!("open {tap}: {e}")));
            return;
        }
    };
    let site = baked_site();
    let mac = EthernetAddress([0x02, 0x00, 0x00, 0x77, 0x00, 0x02]);
    let mut iface = Interface::new(IfaceConfig::new(mac.into()), &mut device, host_clock());
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(10, 77, 0, 2), 24))
            .expect("one address fits");
    });
    let mut storage = [SocketStorage::EMPTY; smol::CONNECTIONS];
    let mut buffers =
        SocketBuffers::<{ smol::CONNECTIONS }, { smol::SOCK_RX }, { smol::SOCK_TX }>::new();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let handles = buffers.add_sockets(&mut sockets);
    let mut server = Server::<_, { smol::CONNECTIONS }, { smol::HEAD_TX }, { smol::STAGE }>::new(
        &site,
        smol::PORT,
        handles,
    )
    .expect("server geometry");
    let _ = ready.send(Ok(()));
    let fd = device.as_raw_fd();
    while !stop.load(Ordering::SeqCst) {
        let now = host_clock();
        iface.poll(now, &mut device, &mut sockets);
        if server.poll(now, &mut sockets) {
            // Put what the server just queued on the wire without waiting.
            iface.poll(now, &mut device, &mut sockets);
        }
        // Sleep until a packet arrives or either side has timed work, at most 50 ms (to see
        // `stop`).
        let mut delay = smoltcp::time::Duration::from_millis(50);
        if let Some(d) = iface.poll_delay(now, &sockets) {
            delay = delay.min(d);
        }
        if let Some(at) = server.poll_at() {
            let wait = core_instant(at).saturating_since(core_instant(now));
            delay = delay.min(smoltcp::time::Duration::from_millis(wait.as_millis()));
        }
        let _ = smoltcp::phy::wait(fd, Some(delay));
    }
}

/// `curl ARGS` inside the namespace: (exit status ok, stdout).
fn curl(net: &TapNet, args: &[&str]) -> (bool, String) {
    let (code, out) = net.curl(args);
    (code == 0, out)
}

fn url(path: &str) -> String {
    format!("http://{SERVER_IP}:{}{path}", smol::PORT)
}

#[test]
fn curl_from_linux_fetches_from_the_smoltcp_server_on_tap() {
    if smol::skip(
        "smoltcp TAP test",
        smol::tap_capable(),
        "SATCHEL_REQUIRE_TAP",
    ) {
        return;
    }
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !smol::tap_required(),
            "SATCHEL_REQUIRE_TAP=1 but curl is missing"
        );
        eprintln!("SKIPPED smoltcp TAP test: curl is missing");
        return;
    }

    let net = TapNet::new();
    let dir = tempfile::tempdir().expect("tempdir");
    smol::ip(&["netns", "add", &net.netns]).expect("create the namespace");
    smol::ip(&["tuntap", "add", "dev", &net.tap, "mode", "tap"]).expect("create the TAP device");

    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        let (ready_tx, ready_rx) = mpsc::channel();
        let tap = net.tap.clone();
        let stop = &stop;
        scope.spawn(move || serve_on_tap(&tap, stop, ready_tx));
        ready_rx
            .recv_timeout(satchel_tests::WAIT)
            .expect("server thread started")
            .expect("server opened the TAP device");

        // Into the namespace, then addresses and links up, all inside it.
        smol::ip(&["link", "set", "dev", &net.tap, "netns", &net.netns]).expect("move the device");
        let inside = |args: &[&str]| {
            let mut argv = vec!["-n", net.netns.as_str()];
            argv.extend_from_slice(args);
            smol::ip(&argv).expect("configure the namespace");
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", "10.77.0.1/24", "dev", &net.tap]);
        inside(&["link", "set", "dev", &net.tap, "up"]);

        run_curl_checks(&net, dir.path());
    });
}

fn run_curl_checks(net: &TapNet, dir: &Path) {
    let body = dir.join("body");
    let headers = dir.join("headers");
    let (body_s, headers_s) = (body.to_str().unwrap(), headers.to_str().unwrap());

    // Every file, byte for byte (the link may still be settling: retry the first a few times).
    for (i, file) in BAKED.iter().enumerate() {
        let u = url(&format!("/{}", file.path));
        let attempts = if i == 0 { 5 } else { 1 };
        let mut ok = false;
        for _ in 0..attempts {
            ok = curl(net, &["-o", body_s, "-D", headers_s, &u]).0;
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(ok, "curl {u}");
        assert_eq!(std::fs::read(&body).unwrap(), file.data, "{}", file.path);
        let h = std::fs::read_to_string(&headers).unwrap();
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    }

    // Two files over one kept-alive connection, the second a cache hit.
    let (ok, out) = curl(
        net,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &url("/hello.txt"),
            &url("/hello.txt"),
        ],
    );
    assert!(ok);
    assert_eq!(
        out, "200 1\n200 0\n",
        "the second request reused the connection"
    );

    // A range.
    let (ok, out) = curl(
        net,
        &[
            "-r",
            "100-199",
            "-o",
            body_s,
            "-w",
            "%{http_code}",
            &url("/big.bin"),
        ],
    );
    assert!(ok);
    assert_eq!(out, "206");
    assert_eq!(std::fs::read(&body).unwrap(), &BIG[100..200]);

    // A resumed download: curl continues a partial file from where it stops.
    std::fs::write(&body, &BIG[..7_000]).unwrap();
    let (ok, out) = curl(
        net,
        &[
            "-C",
            "-",
            "-o",
            body_s,
            "-w",
            "%{http_code}",
            &url("/big.bin"),
        ],
    );
    assert!(ok);
    assert_eq!(out, "206");
    assert_eq!(std::fs::read(&body).unwrap(), BIG, "resumed file is whole");

    // Revalidation.
    let (ok, _) = curl(net, &["-o", "/dev/null", "-D", headers_s, &url("/docs/")]);
    assert!(ok);
    let h = std::fs::read_to_string(&headers).unwrap();
    let etag = header(&h, "etag").expect("etag").to_string();
    let inm = format!("If-None-Match: {etag}");
    let _ = std::fs::remove_file(&body);
    let (ok, out) = curl(
        net,
        &[
            "-o",
            body_s,
            "-H",
            &inm,
            "-w",
            "%{http_code}",
            &url("/docs/"),
        ],
    );
    assert!(ok);
    assert_eq!(out, "304");
    // curl writes no file for a response without a body.
    assert!(std::fs::read(&body).map_or(true, |b| b.is_empty()));

    // A miss is a 404, from the same loop.
    let (ok, out) = curl(
        net,
        &["-o", "/dev/null", "-w", "%{http_code}", &url("/nope")],
    );
    assert!(ok);
    assert_eq!(out, "404");
}
