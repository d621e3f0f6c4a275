#!/usr/bin/env bash
# satchel-server against nginx, lighttpd, h2o and the canned-response floor, in the same run.
#
#   bench/compare.sh                  ROUNDS=3 DURATION=10s: ~35 min on the 2-core box
#   SCENARIOS=g ROUNDS=5 bench/compare.sh   one row (here: a new connection per request)
#   BIG_CACHE=1 bench/compare.sh      adds "satchel-1g": the same binary with a cache that holds
#                                     the 256 MiB file (--cache-size 1GiB --max-cached-file
#                                     512MiB), run on the big-body rows (c d e) only
#
# Uses ../shared/bench/run.sh (wrk pinned to cpu 1, each server to cpu 0, quiet gate, foreign
# CPU accounting) for every unit, in interleaved rounds (each round runs every server once, in
# rotated order) so drift in machine noise spreads over all of them. Results and the summary
# (median [min-max] per scenario and server) go to bench/results/<UTC timestamp>/. For the
# 64 KiB, 1 MiB and 256 MiB rows the summary also gives the machine's CPU per request (server
# core + wrk core, bench/machine_cpu.py), where a copy moved to the receiver still counts.
# The README's speed table comes out as <run>/readme_table.md (bench/readme_table.py); the line
# printed at the end splices it into README.md between its speed-table markers.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=$(cd "${SHARED:-$ROOT/../shared/bench}" && pwd)   # SHARED=... when not beside the checkout
ROUNDS=${ROUNDS:-3}
# A subset of run.sh's scenarios, e.g. SCENARIOS=g for the new-connection row alone.
WANTED=${SCENARIOS:-a b c d e f g}
export DURATION=${DURATION:-10s} WARMUP=${WARMUP:-2s}
export CORPUS=${CORPUS:-/tmp/bench-corpus}
export BENCH_LUA_DIR="$SHARED/lua"
RES=${RES:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RES"
export OUT="$RES/results.txt"
: > "$OUT"

if ! ( cd "$CORPUS" 2>/dev/null && sha256sum -c --quiet SHA256SUMS ) >/dev/null 2>&1; then
    "$SHARED/make-corpus.sh" "$CORPUS"
fi
cargo build --release --quiet -p satchel-server --manifest-path "$ROOT/Cargo.toml"
SATCHEL="$ROOT/target/release/satchel-server"
# The floor server lives in the read-only shared folder: build it into /tmp.
CARGO_TARGET_DIR=/tmp/satchel-bench-limit cargo build --release --quiet \
    --manifest-path "$SHARED/limit/Cargo.toml"
LIMIT=/tmp/satchel-bench-limit/release/limit

# A subshell, so that `set +e` here does not switch errexit off for the rest of the script.
(
  set +e +o pipefail
  grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"; free -m | sed -n 2p
  echo "date: $(date -u +%FT%TZ)"; uname -a
  nginx -v 2>&1; lighttpd -v 2>&1 | head -1; h2o --version 2>&1 | head -1
  wrk -v 2>&1 | head -1; rustc --version; git -C "$ROOT" rev-parse HEAD
  echo "DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS corpus=$CORPUS"
) > "$RES/env.txt" || true

UNITS="satchel:28085 nginx:28080 lighttpd:28081"
command -v h2o >/dev/null && UNITS="$UNITS h2o:28082"
UNITS="$UNITS limit"
# By default the 256 MiB file is larger than satchel's cache (64 MiB), so it is streamed with
# pread + send (sendfile from the file could send a mixed body that looks complete: see the
# README's Speed section). satchel-1g shows the cached path (sealed memfd + sendfile) on it.
[ "${BIG_CACHE:-0}" = 1 ] && UNITS="$UNITS satchel-1g:28086"

run_unit() { # name:port | limit
    local u=$1 round=$2
    cd "$SHARED"
    if [ "$u" = limit ]; then
        local sz s picked
        for sz in "1024:a b g" "4096:f" "65536:c" "1048576:d" "268435456:e"; do
            # The floor answers one size per start: run the sizes the chosen scenarios need.
            picked=""
            for s in ${sz#*:}; do
                case " $WANTED " in *" $s "*) picked="$picked $s" ;; esac
            done
            [ -n "$picked" ] || continue
            SCENARIOS=$picked REPS_A=1 REPS=1 TAG=round$round \
                ./run.sh limit "$LIMIT --mode epoll --size ${sz%%:*} --addr 127.0.0.1:\$PORT" 28090
        done
    elif [ "${u%%:*}" = satchel-1g ]; then
        local big=""
        for s in c d e; do case " $WANTED " in *" $s "*) big="$big $s" ;; esac; done
        [ -n "$big" ] || return 0
        SCENARIOS=$big REPS_A=1 REPS=1 TAG=round$round ./run.sh satchel-1g \
            "$SATCHEL \$PORT \$CORPUS --bind 127.0.0.1 --quiet --cache-size 1GiB --max-cached-file 512MiB" \
            "${u##*:}"
    elif [ "${u%%:*}" = satchel ]; then
        REPS_A=1 REPS=1 TAG=round$round ./run.sh satchel \
            "$SATCHEL \$PORT \$CORPUS --bind 127.0.0.1 --quiet" "${u##*:}"
    else
        local n=${u%%:*} p=${u##*:}
        REPS_A=1 REPS=1 TAG=round$round ./run.sh "$n" "peers/start-peer.sh $n \$PORT" "$p"
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    set -- $UNITS
    k=$(( (round - 1) % $# )); shift "$k"
    order="$*"; [ "$k" -gt 0 ] && order="$order $(echo $UNITS | cut -d' ' -f1-"$k")"
    echo "=== round $round: $order" >&2
    for u in $order; do
        # One unit failing (run.sh exits on any error) leaves its cells empty, not the run.
        st=0; run_unit "$u" "$round" || st=$?
        if [ "$st" != 0 ]; then
            echo "=== $u failed in round $round (exit $st); its remaining scenarios are missing" >&2
            echo "FAILED unit=$u round=$round exit=$st" >> "$OUT"
        fi
    done
done

python3 "$SHARED/summarize.py" "$OUT" > "$RES/summary.md"
# Issue 19: what the whole machine (server + wrk + kernel) pays per big response.
python3 "$HERE/machine_cpu.py" "$SHARED" "$(nproc)" "$OUT" >> "$RES/summary.md"
if grep -q '^FAILED' "$OUT"; then
    { echo; echo "### Units that failed (cells missing above)"; echo
      grep '^FAILED' "$OUT" | sed 's/^FAILED /- /'; } >> "$RES/summary.md"
fi
cat "$RES/summary.md"
SHARED="$SHARED" python3 "$HERE/readme_table.py" "$RES" > "$RES/readme_table.md"
echo
echo "README table: $RES/readme_table.md; into README.md with:"
echo "  SHARED=$SHARED python3 $HERE/readme_table.py $RES --splice $ROOT/README.md"
