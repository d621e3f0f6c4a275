#!/usr/bin/env bash
# Mirroring a 20,000-file folder: satchel-client -r beside wget -r, on the same satchel-server.
#
#   bench/mirror.sh                 # ROUNDS=5 FILES=20000 CONNECTIONS=4 PIPELINE=16
#   ROUNDS=3 FILES=5000 bench/mirror.sh
#
# Builds the tree (FILES files of 20-200 bytes in one folder, plus 1/10 of that in a
# subfolder), starts satchel-server (release) on 127.0.0.1, then runs interleaved rounds; each
# round times, in turn:
#   satchel  fresh   satchel-client -q --pipeline N -r /tree -d DEST   (DEST empty)
#   satchel  no-sync the same with --no-sync (no syncfs, as wget) into another DEST
#   wget     fresh   wget -q -r -np -nH --reject-regex "[?]" -P DEST http://127.0.0.1:P/tree/
#                    (the folder page's sort links are not followed)
#   satchel  again   the same satchel-client command on the mirror it just made (304s)
#   wget     again   wget -q -r -N -np -nH -P DEST ... on its mirror (-N: timestamping)
# and prints every time and the median of each line. Before each round the previous mirrors
# are removed and `sync` flushes that removal (untimed). Wall-clock times on a shared machine:
# compare the medians, not single runs. Needs wget (Debian package `wget`) and python3.
#
# The two clients do not do the same work: satchel-client makes every file durable before its
# final name appears (a syncfs per batch, on a thread beside the downloads), checks each body's length and keeps
# a .satchel-mirror record per folder; wget writes straight to the final name and never syncs.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
FILES=${FILES:-20000}
CONNECTIONS=${CONNECTIONS:-4}
PIPELINE=${PIPELINE:-16}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/satchel-mirror-bench.XXXXXX")
server_pid=

cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

command -v wget >/dev/null || { echo "mirror.sh: wget is missing (apt-get install wget)" >&2; exit 1; }
(cd "$here" && cargo build --release -q -p satchel-server -p satchel-client)
server="$here/target/release/satchel-server"
client="$here/target/release/satchel-client"

echo "building the tree: $FILES files + $((FILES / 10)) in a subfolder" >&2
python3 - "$work/root/tree" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
random.seed(17)
os.makedirs(os.path.join(root, "sub"))
for i in range(n):
    with open(os.path.join(root, f"file-{i:05}.txt"), "wb") as f:
        f.write(os.urandom(random.randint(20, 200)))
for i in range(n // 10):
    with open(os.path.join(root, "sub", f"s-{i:05}.bin"), "wb") as f:
        f.write(os.urandom(random.randint(20, 200)))
EOF

"$server" 0 "$work/root" --bind 127.0.0.1 --quiet >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening on' "$work/server.out" && break
    sleep 0.1
done
port=$(sed -n 's/^listening on .*:\([0-9]*\).*/\1/p' "$work/server.out" | head -1)
[ -n "$port" ] || { echo "mirror.sh: satchel-server did not start" >&2; cat "$work/server.out" >&2; exit 1; }
url="http://127.0.0.1:$port/tree/"
expected=$((FILES + FILES / 10))

# seconds CMD...: runs CMD, prints its wall time in seconds.
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}

count() { find "$1" -type f ! -name '.satchel-mirror' ! -name 'index.html*' | wc -l; }

results="$work/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    rm -rf "$work/s" "$work/w" "$work/n"
    # Flush the removal's dirty metadata now, untimed: satchel-client's syncfs would otherwise
    # pay for the previous round's cleanup (wget never syncs, so it never would).
    sync
    s1=$(seconds "$client" -q --connections "$CONNECTIONS" --pipeline "$PIPELINE" -r "$url" -d "$work/s")
    n=$(count "$work/s")
    [ "$n" -eq "$expected" ] || { echo "satchel-client saved $n of $expected files" >&2; exit 1; }
    n1=$(seconds "$client" -q --no-sync --connections "$CONNECTIONS" --pipeline "$PIPELINE" -r "$url" -d "$work/n")
    w1=$(seconds wget -q -r -np -nH --reject-regex "[?]" -P "$work/w" "$url")
    s2=$(seconds "$client" -q --connections "$CONNECTIONS" --pipeline "$PIPELINE" -r "$url" -d "$work/s")
    w2=$(seconds wget -q -r -N -np -nH --reject-regex "[?]" -P "$work/w" "$url")
    echo "round $round: satchel fresh $s1 s, --no-sync $n1 s, wget fresh $w1 s, satchel again $s2 s, wget -N again $w2 s" >&2
    printf '%s %s %s %s %s\n' "$s1" "$w1" "$s2" "$w2" "$n1" >>"$results"
done

python3 - "$results" "$FILES" "$CONNECTIONS" "$ROUNDS" "$PIPELINE" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
files, conns, rounds, pipeline = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
cols = list(zip(*rows))
med = [statistics.median(c) for c in cols]
lo = [min(c) for c in cols]
hi = [max(c) for c in cols]
print(f"{int(files) * 11 // 10} files, {rounds} interleaved rounds, median [min-max] seconds")
print()
print(f"| | satchel-client -r (--connections {conns} --pipeline {pipeline}) | wget -r |")
print("|---|---:|---:|")
print(f"| fresh mirror | {med[0]:.2f} [{lo[0]:.2f}-{hi[0]:.2f}] | {med[1]:.2f} [{lo[1]:.2f}-{hi[1]:.2f}] |")
print(f"| fresh mirror, satchel-client --no-sync | {med[4]:.2f} [{lo[4]:.2f}-{hi[4]:.2f}] | |")
print(f"| again, nothing changed (satchel: 304s; wget: -N) | {med[2]:.2f} [{lo[2]:.2f}-{hi[2]:.2f}] | {med[3]:.2f} [{lo[3]:.2f}-{hi[3]:.2f}] |")
EOF
