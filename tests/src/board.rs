//! The emulated board for `tests/tests/board_qemu.rs`: the satchel firmware of
//! `boards/mps2-an386` booted in `qemu-system-arm -M mps2-an386`, its LAN9118 on a TAP device in
//! a network namespace the test creates (and always removes), and a small Python helper that
//! does inside the namespace what curl cannot (hold idle connections, stall mid-response, send
//! raw request bytes, ping).
//!
//! The order of teardown is the order of the guards: [`Qemu`] (killed by its PID: `ip netns
//! exec` execs QEMU itself, so the child is QEMU) before the [`TapNet`] it runs in.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::smol::TapNet;
use crate::WAIT;

/// The board's address (`boards/mps2-an386/src/config.rs`).
pub const BOARD_IP: &str = "192.168.69.2";
/// The namespace's side of the TAP link.
pub const HOST_CIDR: &str = "192.168.69.1/24";
/// The board's HTTP port.
pub const BOARD_PORT: u16 = 80;
/// The firmware's target.
pub const TARGET: &str = "thumbv7em-none-eabihf";
/// The upstream server the board fetches files not in flash from
/// (`boards/mps2-an386/src/config.rs`): the TAP's host side.
pub const UPSTREAM_IP: &str = "192.168.69.1";
/// The upstream server's port.
pub const UPSTREAM_PORT: u16 = 8080;

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this machine can run the board test: `Ok` or why not.
pub fn qemu_capable() -> Result<(), String> {
    crate::smol::tap_capable()?;
    if !runs("qemu-system-arm", &["--version"]) {
        return Err("qemu-system-arm is missing (apt-get install qemu-system-arm)".into());
    }
    for peer in ["curl", "python3"] {
        if !runs(peer, &["--version"]) {
            return Err(format!("{peer} is missing"));
        }
    }
    if std::env::var_os("SATCHEL_BOARD_ELF").is_none() {
        let out = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map_err(|e| format!("rustup: {e}"))?;
        if !String::from_utf8_lossy(&out.stdout).contains(TARGET) {
            return Err(format!(
                "the {TARGET} target is missing (rustup target add {TARGET})"
            ));
        }
    }
    Ok(())
}

/// The firmware ELF: `SATCHEL_BOARD_ELF` if set, else built now (`cargo build --release` in
/// `boards/mps2-an386`, its own target folder; a no-op when it is up to date).
///
/// # Panics
/// When the build fails.
pub fn firmware() -> PathBuf {
    if let Some(elf) = std::env::var_os("SATCHEL_BOARD_ELF") {
        return PathBuf::from(elf);
    }
    let dir = crate::workspace_root().join("boards/mps2-an386");
    let target_dir = dir.join("target");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run cargo build for the firmware");
    assert!(status.success(), "building the firmware failed");
    target_dir.join(TARGET).join("release/satchel-mps2-an386")
}

/// The namespace with its TAP device, configured: `192.168.69.1/24` on the TAP, links up.
///
/// # Panics
/// When `ip` fails.
pub fn tap_net() -> TapNet {
    let net = TapNet::new();
    let inside = |args: &[&str]| {
        let mut argv = vec!["-n", net.netns.as_str()];
        argv.extend_from_slice(args);
        crate::smol::ip(&argv).expect("configure the namespace");
    };
    crate::smol::ip(&["netns", "add", &net.netns]).expect("create the namespace");
    inside(&["link", "set", "lo", "up"]);
    inside(&["tuntap", "add", "dev", &net.tap, "mode", "tap"]);
    inside(&["addr", "add", HOST_CIDR, "dev", &net.tap]);
    inside(&["link", "set", "dev", &net.tap, "up"]);
    net
}

/// A running QEMU, killed (by its PID) and reaped on drop.
pub struct Qemu {
    child: Child,
    /// The UART0 log file.
    pub log: PathBuf,
    /// When QEMU was started.
    pub started: Instant,
}

impl Qemu {
    /// Starts `qemu-system-arm -M mps2-an386` on `elf` inside `net`'s namespace, its LAN9118
    /// on the TAP device, UART0 into `log`; waits (bounded) for the TAP to report `state UP`
    /// (Linux drops frames on a TAP until then).
    ///
    /// # Panics
    /// When QEMU cannot start or the link does not come up within [`WAIT`].
    pub fn start(net: &TapNet, elf: &Path, log: &Path) -> Self {
        let netdev = format!("tap,id=n0,ifname={},script=no,downscript=no", net.tap);
        let serial = format!("file:{}", log.display());
        let started = Instant::now();
        let child = Command::new("ip")
            .args(["netns", "exec", &net.netns, "qemu-system-arm"])
            .args(["-M", "mps2-an386", "-display", "none", "-monitor", "none"])
            .args(["-serial", &serial, "-netdev", &netdev])
            .args(["-net", "nic,netdev=n0,model=lan9118", "-kernel"])
            .arg(elf)
            .stdin(Stdio::null())
            .spawn()
            .expect("start qemu-system-arm");
        let mut qemu = Self {
            child,
            log: log.to_path_buf(),
            started,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let out = net
                .exec(&["ip", "link", "show", "dev", &net.tap])
                .expect("ip link show");
            if String::from_utf8_lossy(&out.stdout).contains("state UP") {
                break;
            }
            if let Ok(Some(status)) = qemu.child.try_wait() {
                panic!("QEMU exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "the TAP link never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
        qemu
    }

    /// The UART log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .replace('\r', "")
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The helper run with `python3` inside the namespace.
pub const HELPER: &str = r#"
import socket, struct, sys, time

def connect(host, port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((host, port))
    return s

def framed(buf, head_only):
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    end += 4
    head = buf[:end].decode("latin-1")
    status = head.split(" ")[1]
    body = 0
    if not head_only and status != "304":
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                body = int(value.strip())
    return end + body if len(buf) >= end + body else None

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "exchange":
    # exchange HOST PORT REQUEST_FILE RESPONSE_FILE: one request, its raw response (or what
    # came before the server closed).
    request = open(sys.argv[4], "rb").read()
    s = connect(host, port)
    s.sendall(request)
    head_only = request.startswith(b"HEAD ")
    buf = b""
    while framed(buf, head_only) is None:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        buf += chunk
    n = framed(buf, head_only)
    open(sys.argv[5], "wb").write(buf[:n] if n else buf)
elif mode == "hold":
    # hold HOST PORT N: N idle connections; each stdin line closes one, EOF closes the rest.
    conns = []
    for _ in range(int(sys.argv[4])):
        conns.append(connect(host, port))
    print("held", len(conns), flush=True)
    for line in sys.stdin:
        if conns:
            conns.pop().close()
        print("closed", flush=True)
    for c in conns:
        c.close()
elif mode == "stall":
    # stall HOST PORT PATH SECS: ask for PATH with a tiny receive window, read nothing for SECS,
    # then read what is left: prints the bytes received and how the connection ended.
    s = connect(host, port, rcvbuf=1024)
    s.sendall(b"GET " + sys.argv[4].encode() + b" HTTP/1.1\r\nHost: board\r\n\r\n")
    print("stalling", flush=True)
    time.sleep(float(sys.argv[5]))
    got, end = 0, "open"
    s.settimeout(5)
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            end = "reset"
            break
        except socket.timeout:
            end = "open"
            break
        if not chunk:
            end = "eof"
            break
        got += len(chunk)
    print("got", got, end, flush=True)
elif mode == "silent":
    # silent HOST PORT: an upstream that accepts connections, reads requests and never answers,
    # until stdin closes.
    import threading
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(8)
    held = []
    def accept():
        while True:
            c, _ = l.accept()
            held.append(c)
    threading.Thread(target=accept, daemon=True).start()
    print("listening", flush=True)
    sys.stdin.read()
elif mode == "dying":
    # dying HOST PORT LEN SENT: an upstream that answers one request with a 200 announcing
    # LEN bytes, sends the first SENT of them (byte i is i * 7 % 251) and dies: it closes the
    # connection mid-body.
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(1)
    l.settimeout(10)
    print("listening", flush=True)
    c, _ = l.accept()
    c.settimeout(10)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = c.recv(4096)
        if not chunk:
            break
        buf += chunk
    total, sent = int(sys.argv[4]), int(sys.argv[5])
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: \"dying\"\r\n\r\n" % total
    c.sendall(head + bytes(i * 7 % 251 for i in range(sent)))
    c.close()
    print("died", flush=True)
elif mode == "ping":
    # ping HOST 0: one ICMP echo request; prints "reply" when the echo comes back.
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(5)
    payload = b"satchel-ping"
    def checksum(b):
        b += b"\0" * (len(b) % 2)
        t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        t = (t >> 16) + (t & 0xFFFF)
        t += t >> 16
        return ~t & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, 0x5a7c, 1)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), 0x5a7c, 1) + payload
    s.sendto(packet, (host, 0))
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = data[(data[0] & 0x0F) * 4:]
        if addr[0] == host and icmp[0] == 0 and icmp[4:6] == b"\x5a\x7c" and icmp[8:] == payload:
            print("reply", flush=True)
            break
    else:
        print("no reply", flush=True)
"#;

/// A long-running helper (`hold`, `stall`) with its stdin and stdout, killed on drop.
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Helper {
    /// Starts `python3 SCRIPT ARGS` inside `net`'s namespace.
    ///
    /// # Panics
    /// When python3 cannot start.
    pub fn start(net: &TapNet, script: &Path, args: &[&str]) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &net.netns, "python3"])
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the python helper");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The helper's next line (empty when it ended).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_string()
    }

    /// Asks a `hold` helper to close one connection, and waits for it to say so.
    pub fn close_one(&mut self) -> String {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"close\n");
            let _ = stdin.flush();
        }
        self.line()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `satchel-server UPSTREAM_PORT ROOT --bind UPSTREAM_IP` inside the namespace: the board's
/// upstream. Killed by its PID (`ip netns exec` execs the server itself) and reaped on drop.
pub struct Upstream {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Upstream {
    /// Starts it and waits (bounded) for its `listening on` line.
    ///
    /// # Panics
    /// When it does not start or print the line within [`WAIT`].
    pub fn start(net: &TapNet, root: &Path) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &net.netns])
            .arg(crate::bin_path("satchel-server"))
            .arg(UPSTREAM_PORT.to_string())
            .arg(root)
            .args(["--bind", UPSTREAM_IP])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start satchel-server in the namespace");
        let lines = crate::line_reader(child.stdout.take().expect("piped stdout"));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with("listening on ") => return Self { child, lines },
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("the upstream satchel-server did not start ({status:?})");
                }
            }
        }
    }

    /// The access-log lines it printed so far (waiting at most `timeout` for the first).
    pub fn lines(&self, timeout: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let mut wait = timeout;
        while let Ok(line) = self.lines.recv_timeout(wait) {
            out.push(line);
            wait = Duration::from_millis(200);
        }
        out
    }

    /// Stops it now (SIGKILL to its PID) and reaps it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}
