#!/usr/bin/env python3
"""Cluster hit ratio: one satchel node against three, behind HAProxy (a benchmark, not a test).

A working set three times one node's --cache-size is requested with a Zipf-like distribution
through HAProxy (deploy/haproxy.cfg's balancing: consistent hashing on the path) to 1 node and
to 3 nodes, each node with the same --cache-size. Reported per setup: the cluster-wide hit ratio
(from the nodes' access logs, cache column) and the bytes read from disk (the sizes of the
files that were misses).

    python3 bench/cluster_hit_ratio.py [--cache-size MIB] [--requests N] [--zipf S] [--seed N]

Hit ratios do not depend on timing, so a busy machine gives the same figures. Requests go one
at a time over one kept-alive connection (HAProxy's bounded loads then never move a path to a
neighbour; with concurrent clients a hot path can overflow to a second node). Needs haproxy and
satchel-server (target/release, or SATCHEL_SERVER=path).
"""

import argparse
import bisect
import http.client
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A satchel-server on 127.0.0.1 port 0; its access log collected in the background."""

    def __init__(self, server, root, cache_mib):
        self.proc = subprocess.Popen(
            [server, "0", root, "--bind", "127.0.0.1", "--cache-size", f"{cache_mib}MiB"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.lines = []
        first = self.proc.stdout.readline()
        if not first.startswith("listening on "):
            raise SystemExit(f"satchel-server did not start: {first!r}")
        self.addr = first.split()[-1].replace("http://", "").rstrip("/")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.split())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def haproxy_config(port, nodes):
    servers = "".join(f"    server node{i} {n.addr}\n" for i, n in enumerate(nodes))
    return f"""global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1
frontend files
    bind 127.0.0.1:{port}
    default_backend satchel
backend satchel
    balance uri path-only
    hash-type consistent
    hash-balance-factor 150
{servers}"""


def run(setup_nodes, args, server, tree, names, sizes, trace):
    nodes = [Node(server, tree, args.cache_size) for _ in range(setup_nodes)]
    work = tempfile.mkdtemp(prefix="satchel-bench-haproxy.")
    haproxy = None
    try:
        port = free_port()
        cfg = os.path.join(work, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(port, nodes))
        haproxy = subprocess.Popen([args.haproxy, "-db", "-f", cfg],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("haproxy did not listen")
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in trace:
            conn.request("GET", "/" + names[i])
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or len(body) != sizes[i]:
                raise SystemExit(f"bad answer for {names[i]}: {r.status}, {len(body)} bytes")
        conn.close()
        # Every request is in some node's log once the last answer has arrived; wait for it.
        deadline = time.time() + 10
        while sum(len(gets(n)) for n in nodes) < len(trace) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        if haproxy:
            haproxy.terminate()
            haproxy.wait(timeout=30)
        for n in nodes:
            n.stop()
        shutil.rmtree(work, ignore_errors=True)
    size_of = {"/" + n: s for n, s in zip(names, sizes)}
    per_node = [gets(n) for n in nodes]
    lines = [l for p in per_node for l in p]
    if len(lines) != len(trace):
        raise SystemExit(f"{len(lines)} log lines for {len(trace)} requests")
    hits = sum(1 for l in lines if l[5] == "hit")
    disk = sum(size_of[l[2]] for l in lines if l[5] != "hit")
    return hits / len(lines), disk, [len(p) for p in per_node]


def gets(node):
    return [l for l in node.lines if len(l) == 7 and l[1] == "GET" and l[2] != "/"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache-size", type=int, default=8, help="MiB of cache per node")
    p.add_argument("--requests", type=int, default=40000)
    p.add_argument("--zipf", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    args = p.parse_args()
    server = os.environ.get("SATCHEL_SERVER", os.path.join(ROOT, "target/release/satchel-server"))
    if not os.access(server, os.X_OK):
        raise SystemExit(f"{server} missing: cargo build --release -p satchel-server")
    if not os.access(args.haproxy, os.X_OK):
        raise SystemExit("haproxy missing: apt-get install haproxy")

    rng = random.Random(args.seed)
    budget = 3 * args.cache_size << 20  # the working set: three times one node's cache
    names, sizes, total = [], [], 0
    while total < budget:
        size = rng.randint(4 << 10, 28 << 10)
        names.append(f"d{len(names) % 16:02}/f{len(names):05}.bin")
        sizes.append(size)
        total += size
    # Popularity rank is independent of the name (and so of the node the name hashes to).
    ranks = list(range(len(names)))
    rng.shuffle(ranks)
    weights = [1.0 / (r + 1) ** args.zipf for r in ranks]
    cumulative, acc = [], 0.0
    for w in weights:
        acc += w
        cumulative.append(acc)
    trace = [bisect.bisect_left(cumulative, rng.random() * acc) for _ in range(args.requests)]

    tree = tempfile.mkdtemp(prefix="satchel-bench-tree.")
    try:
        for name, size in zip(names, sizes):
            path = os.path.join(tree, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(rng.randbytes(size))
        print(f"working set: {len(names)} files, {total / 2**20:.1f} MiB "
              f"(3 x --cache-size {args.cache_size}MiB); {args.requests} requests, "
              f"Zipf({args.zipf}), seed {args.seed}")
        print("| nodes | cache per node | cluster cache | hit ratio | read from disk | requests per node |")
        print("|---:|---:|---:|---:|---:|---|")
        for n in (1, 3):
            ratio, disk, per = run(n, args, server, tree, names, sizes, trace)
            print(f"| {n} | {args.cache_size} MiB | {n * args.cache_size} MiB | "
                  f"{100 * ratio:.2f} % | {disk / 2**20:.1f} MiB | {per} |", flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
