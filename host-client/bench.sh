#!/usr/bin/env bash
# Benchmark (not a test): satchel-client against `curl -o`, fetching one file from the same
# satchel-server over loopback, median of N runs each (hyperfine), plus satchel-client's peak
# RSS (/usr/bin/time -v).
#
#   host-client/bench.sh [SIZE_MIB] [RUNS]     defaults: 256 MiB, 5 runs
#
# Needs: a release build (cargo build --release -p satchel-client -p satchel-server), curl,
# hyperfine, /usr/bin/time. Everything lives in a temporary folder removed on exit; the server
# listens on 127.0.0.1 only and is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-256}
runs=${2:-5}
bin=target/release
for tool in curl hyperfine /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing" >&2; exit 2; }
done
[ -x "$bin/satchel-client" ] && [ -x "$bin/satchel-server" ] ||
  { echo "bench.sh: build first: cargo build --release -p satchel-client -p satchel-server" >&2; exit 2; }

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/root" "$work/out"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/root/file.bin"

"$bin/satchel-server" 0 "$work/root" --bind 127.0.0.1 --quiet >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$work/server.log" && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on \(http:\/\/\)\{0,1\}//p' "$work/server.log" | head -1)
[ -n "$addr" ] || { echo "bench.sh: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
url="http://$addr/file.bin"
echo "server at $addr, file of $size_mib MiB, $runs runs each"

hyperfine --warmup 1 --runs "$runs" --style basic \
  --export-json "$work/hyperfine.json" \
  --prepare "rm -f $work/out/file.bin $work/out/curl.bin" \
  -n satchel-client "$bin/satchel-client --quiet $url -d $work/out" \
  -n 'curl -o' "curl -sS -o $work/out/curl.bin $url"

python3 - "$work/hyperfine.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f'{r["command"]:>15}: median {r["median"]:.3f} s  (mean {r["mean"]:.3f} s, min {r["min"]:.3f} s)')
EOF

rm -f "$work/out/file.bin"
/usr/bin/time -v "$bin/satchel-client" --quiet "$url" -d "$work/out" 2>"$work/time.txt"
cmp "$work/root/file.bin" "$work/out/file.bin"
echo "satchel-client peak RSS: $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt") KiB"
rm -f "$work/out/curl.bin"
/usr/bin/time -v curl -sS -o "$work/out/curl.bin" "$url" 2>"$work/time.txt"
echo "curl peak RSS:           $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt") KiB"
