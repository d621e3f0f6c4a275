#!/usr/bin/env bash
# Sender and receiver CPU per response body by way of sending (bench/sendpath.c), in
# interleaved rounds; prints the median [min-max] per size and way.
#
#   bench/sendpath.sh                       ROUNDS=5, every set below
#   SETS="cached" ROUNDS=7 bench/sendpath.sh
#
# Sets: cached   (heap send against memfd sendfile: where sealed memfd entries start to pay)
#       head     (the same with a 385-byte response head, sent as the server sends it)
#       uncached (pread + send against sendfile from the file, splice into a memfd, and
#                 sendfile for all but the last piece)
#       piece    (pread + send of a 256 MiB file in 64 KiB to 1 MiB pieces; the server uses 512)
#       sndbuf   (SO_SNDBUF fixed at 1 and 4 MiB against the autotuned default)
#       zerocopy (send with MSG_ZEROCOPY against plain send; loopback copies anyway)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-5}
SETS=${SETS:-cached head uncached piece sndbuf zerocopy}
BIN=/tmp/satchel-sendpath
FILE=${FILE:-/tmp/satchel-sendpath-256m}
gcc -O2 -pthread "$HERE/sendpath.c" -o "$BIN"
[ -s "$FILE" ] || head -c 268435456 /dev/urandom > "$FILE"
cat "$FILE" > /dev/null   # in the page cache
OUT=$(mktemp)
run() { # SIZE:ITERATIONS MODE...
    local sz=$1; shift
    for m in "$@"; do "$BIN" "${sz%%:*}" "$m" "${sz##*:}" "$FILE" >> "$OUT" 2>/dev/null; done
}
for r in $(seq 1 "$ROUNDS"); do
    for set in $SETS; do
        case $set in
        cached)
            for sz in 4096:20000 8192:20000 12288:15000 16384:10000 65536:4000 262144:1000 \
                      1048576:300 8388608:40; do run "$sz" 0 1; done ;;
        head)
            for sz in 4096:20000 8192:20000 12288:15000 16384:10000 32768:8000 65536:4000; do
                HEAD=385 run "$sz" 0 1
            done ;;
        uncached)
            for sz in 65536:4000 262144:1000 1048576:300 8388608:40; do run "$sz" 3 2 4 5; done
            run 268435456:3 3 2 4 5 ;;
        piece)
            for p in 65536 131072 262144 524288 1048576; do PIECE=$p run 268435456:3 3; done ;;
        sndbuf)
            for sz in 1048576:300 268435456:3; do
                for b in 0 1048576 4194304; do SNDBUF=$b run "$sz" 3 1; done
            done ;;
        zerocopy)
            for sz in 65536:4000 1048576:300; do run "$sz" 0 6; done ;;
        esac
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
    print(f"| {size} | {way} | {f(s)} | {f(r)} | {f(both)} |")
PY
rm -f "$OUT"
