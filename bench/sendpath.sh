#!/usr/bin/env bash
# Sender and receiver CPU per response body by way of sending (bench/sendpath.c), in
# interleaved rounds; prints the median [min-max] per size and way. ROUNDS=5 by default.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-5}
BIN=/tmp/satchel-sendpath
FILE=${FILE:-/tmp/satchel-sendpath-256m}
gcc -O2 -pthread "$HERE/sendpath.c" -o "$BIN"
[ -s "$FILE" ] || head -c 268435456 /dev/urandom > "$FILE"
cat "$FILE" > /dev/null   # in the page cache
OUT=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
    # Cached sizes: heap send against memfd sendfile.
    for sz in 4096:20000 16384:10000 65536:4000 262144:1000 1048576:300 8388608:40; do
        for m in 0 1; do "$BIN" "${sz%%:*}" "$m" "${sz##*:}" "$FILE" >> "$OUT"; done
    done
    # Uncached sizes: sendfile from the file against pread + send.
    for sz in 1048576:300 268435456:3; do
        for m in 2 3; do "$BIN" "${sz%%:*}" "$m" "${sz##*:}" "$FILE" >> "$OUT"; done
    done
done
python3 - "$OUT" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(lambda: ([], []))
for line in open(sys.argv[1]):
    size, way, s, r = line.split()
    d[(int(size), way)][0].append(float(s.split('=')[1]))
    d[(int(size), way)][1].append(float(r.split('=')[1]))
print("| size | way | sender µs | receiver µs | both µs |\n|---:|---|---:|---:|---:|")
for (size, way), (s, r) in sorted(d.items()):
    both = [a + b for a, b in zip(s, r)]
    f = lambda v: f"{statistics.median(v):.1f} [{min(v):.1f}–{max(v):.1f}]"
    print(f"| {size} | {way} | {f(s)} | {f(r)} | {statistics.median(both):.1f} |")
PY
rm -f "$OUT"
