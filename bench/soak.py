#!/usr/bin/env python3
"""Memory soak of satchel-server: RSS over time under load while files change.

Builds a corpus (FILES files of 1 KiB to 4 MiB, sizes log-uniform, fixed seed; about 1 GiB for
2,000 files) unless it is already there, starts the release server on 127.0.0.1 over it, drives
it with wrk (CONNS keep-alive connections, each request a random file of the corpus), rewrites
--churn files every 2 s (half replaced by rename, half rewritten in place), and samples the
server's memory every --every seconds from /proc/PID/status and the pages of its memfd cache
entries (not mapped, so not in RSS). Prints a CSV (t_s, rss_mib, hwm_mib, anon_mib, file_mib,
memfd_mib, rss_plus_memfd_mib), then a summary: the load rate wrk reached, the last sample, the mean of the last third of the run ("steady") and the
high-water mark, against the goal of --cache-size x 1.25 + 16 MiB. The server runs with
--quiet (no access log) and is stopped with SIGTERM at the end.

usage: bench/soak.py [--duration 600] [--conns 256] [--files 2000] [--cache-size 64MiB]
                     [--every 5] [--churn 20] [--corpus /tmp/satchel-soak]
                     [--server target/release/satchel-server] [-- EXTRA SERVER ARGS]
Build first: cargo build --release -p satchel-server. Needs wrk.
"""
import argparse, os, random, re, signal, subprocess, sys, tempfile, time

MIN_SIZE, MAX_SIZE = 1 << 10, 4 << 20


def parse_size(s):
    m = re.fullmatch(r"(\d+)\s*([kmg]?)(i?b)?", s.strip().lower())
    if not m:
        sys.exit(f"bad size {s}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2)]


def build_corpus(root, files):
    stamp = os.path.join(root, ".complete")
    if os.path.exists(stamp) and open(stamp).read() == str(files):
        return
    os.makedirs(root, exist_ok=True)
    rng = random.Random(16)
    block = bytes(rng.randrange(256) for _ in range(1 << 16))
    for i in range(files):
        size = int(MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** rng.random())
        with open(os.path.join(root, f"f{i:05}.bin"), "wb") as f:
            f.write((block * (size // len(block) + 1))[:size])
    with open(stamp, "w") as f:
        f.write(str(files))


def churn(root, files, count, rng, tick):
    """Rewrites `count` random files with new content of the same size."""
    for k in range(count):
        name = os.path.join(root, f"f{rng.randrange(files):05}.bin")
        size = os.path.getsize(name)
        data = (tick.to_bytes(8, "little") + k.to_bytes(8, "little")) * (size // 16 + 1)
        data = data[:size]
        if k % 2:
            with open(name, "r+b") as f:
                f.write(data)
        else:
            tmp = name + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, name)


def memory(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
    # Cache entries in memfds (not mapped, so not in VmRSS): the pages their descriptors hold.
    memfd = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:"):
                memfd += os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
        except OSError:
            pass
    out["memfd"] = memfd / (1 << 20)
    return out


LUA = r"""
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    ap.add_argument("--conns", type=int, default=256)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--cache-size", default="64MiB")
    ap.add_argument("--every", type=float, default=5, help="seconds between samples")
    ap.add_argument("--churn", type=int, default=20, help="files rewritten every 2 s")
    ap.add_argument("--corpus", default="/tmp/satchel-soak")
    ap.add_argument("--server", default="target/release/satchel-server")
    ap.add_argument("extra", nargs="*", help="more server arguments (after --)")
    args = ap.parse_args()

    build_corpus(args.corpus, args.files)
    work = tempfile.mkdtemp(prefix="soak-")
    paths = os.path.join(work, "paths.txt")
    with open(paths, "w") as f:
        for i in range(args.files):
            f.write(f"/f{i:05}.bin\n")
    lua = os.path.join(work, "soak.lua")
    with open(lua, "w") as f:
        f.write(LUA % paths)

    srv = subprocess.Popen([args.server, "0", args.corpus, "--bind", "127.0.0.1", "--quiet",
                            "--cache-size", args.cache_size,
                            "--max-connections", str(args.conns + 100)] + args.extra,
                           stdout=subprocess.PIPE, text=True)
    wrk = None
    try:
        line = srv.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.conns}", f"-d{args.duration}s",
                                "--timeout", "30s", "-s", lua, f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.PIPE, text=True)
        rng = random.Random(2)
        start = time.monotonic()
        next_sample, next_churn, tick = start, start + 2, 0
        samples = []
        print("t_s,rss_mib,hwm_mib,anon_mib,file_mib,memfd_mib,rss_plus_memfd_mib", flush=True)
        while wrk.poll() is None:
            now = time.monotonic()
            if now >= next_churn:
                tick += 1
                churn(args.corpus, args.files, args.churn, rng, tick)
                next_churn += 2
            if now >= next_sample:
                m = memory(srv.pid)
                t = now - start
                samples.append((t, m["VmRSS"], m["VmRSS"] + m["memfd"]))
                print(f"{t:.0f},{m['VmRSS']:.1f},{m['VmHWM']:.1f},{m['RssAnon']:.1f},"
                      f"{m['RssFile']:.1f},{m['memfd']:.1f},{m['VmRSS'] + m['memfd']:.1f}",
                      flush=True)
                next_sample += args.every
            time.sleep(max(0.0, min(next_churn, next_sample) - time.monotonic()))
        report = wrk.stdout.read()
        m = memory(srv.pid)
    finally:
        if wrk and wrk.poll() is None:
            wrk.terminate()
            wrk.wait()
        srv.send_signal(signal.SIGTERM)
    try:
        srv.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.communicate()

    rate = re.search(r"Requests/sec:\s*([\d.]+)", report)
    transfer = re.search(r"Transfer/sec:\s*([\d.]+\w+)", report)
    errors = re.search(r"Socket errors:.*|Non-2xx.*", report)
    cache = parse_size(args.cache_size) / (1 << 20)
    goal = cache * 1.25 + 16
    tail = [s for s in samples if s[0] >= samples[-1][0] * 2 / 3] if samples else [(0, 0, 0)]
    last = [s[1] for s in tail]
    both = [s[2] for s in tail]
    print(f"# load: {rate.group(1) if rate else '?'} requests/s, {transfer.group(1) if transfer else '?'}/s"
          f" over {args.conns} connections{'; ' + errors.group(0) if errors else ''}")
    print(f"# rss: end {m['VmRSS']:.1f} MiB, steady (mean of last third) {sum(last) / len(last):.1f} MiB,"
          f" high-water {m['VmHWM']:.1f} MiB; goal <= {goal:.0f} MiB (cache {cache:.0f} MiB x 1.25 + 16)")
    print(f"# rss + memfd pages: steady {sum(both) / len(both):.1f} MiB, max {max(both):.1f} MiB")


if __name__ == "__main__":
    main()
