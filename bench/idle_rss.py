#!/usr/bin/env python3
"""RSS cost of idle keep-alive connections on satchel-server.

Starts satchel-server on 127.0.0.1 (port 0) over a tiny root, reads its RSS, opens N
connections that each make one request and then stay idle (kept alive), reads the RSS again,
and prints the difference per connection. The server is stopped (SIGTERM) at the end.

usage: bench/idle_rss.py [--conns 10000] [--server target/release/satchel-server]
"""
import argparse, os, resource, signal, socket, subprocess, sys, tempfile, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--server", default="target/release/satchel-server")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.conns + 1024), hard))
    root = tempfile.mkdtemp()
    with open(os.path.join(root, "a.txt"), "w") as f:
        f.write("a\n")
    srv = subprocess.Popen([args.server, "0", root, "--bind", "127.0.0.1", "--quiet",
                            "--idle-timeout", "10m", "--max-connections", str(args.conns + 100)],
                           stdout=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        time.sleep(0.3)
        before = rss_kib(srv.pid)
        socks = []
        req = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        for i in range(args.conns):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(req)
            socks.append(s)
        got = 0
        for s in socks:
            data = b""
            while b"\r\n\r\na\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            got += data.startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        after = rss_kib(srv.pid)
        print(f"connections={args.conns} answered_200={got} rss_before_kib={before} "
              f"rss_after_kib={after} delta_mib={(after - before) / 1024:.1f} "
              f"per_conn_bytes={(after - before) * 1024 // max(1, args.conns)}")
        for s in socks:
            s.close()
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=15)
        except subprocess.TimeoutExpired:
            srv.kill()


if __name__ == "__main__":
    sys.exit(main())
