#!/usr/bin/env bash
# Slow storage: how a server's hits fare while other requests miss on a slow file system, and how
# many misses it serves at once. satchel-server, nginx (default), nginx with `aio threads` and h2o
# side by side, each serving the same root through bench/slowfs, a FUSE passthrough that sleeps
# DELAY_MS before each lookup, open and read (getattr is not delayed; the kernel keeps entries
# and attributes 1 s, and drops a file's pages at each open, see bench/slowfs/src/main.rs).
#
#   bench/slow.sh                                    ROUNDS=3 DURATION=10s: ~15 min
#   ROUNDS=1 DURATION=3s bench/slow.sh               a quick look (~3 min)
#   SERVERS="satchel h2o" DELAY_MS=10 bench/slow.sh  a subset, another delay
#   Other knobs: HOT_CONNS COLD_CONNS MISS_CLIENTS COLD_SIZE COLD_FILES SATCHEL_ARGS SERVER_CPU
#   WRK_CPU QUIET_PCT QUIET_WAIT FOREIGN_MAX SHARED (../shared/bench) WORK (/tmp/satchel-slow).
#
# Measures, per server and round (the server is started afresh for each round):
#   hot_alone        the hot file /hot/1k.bin (warmed first) at HOT_CONNS connections alone;
#   hot_under_misses the same, while COLD_CONNS other connections fetch cold files;
#   miss_cN          cold files per second with N concurrent clients, N in MISS_CLIENTS.
# A cold file is /cold/dDDD/fFFFF of the pool (COLD_SIZE bytes each, sparse); every request
# names a file that server process has not been asked for yet (bench/lua/cold.lua), and each
# server start waits out the FUSE entry TTL, so every cold request really goes to slow storage.
#
# Pinning as in ../shared/bench: the server on SERVER_CPU, wrk (both instances) on WRK_CPU, and
# slowfs on WRK_CPU too (the storage is not the server's work). Before each measured run a quiet
# gate waits (at most QUIET_WAIT s) for the machine to be under QUIET_PCT % busy; the CPU other
# tenants used during the run is recorded (foreign_cpu_pct) and flagged above FOREIGN_MAX.
# Results go to bench/results/<UTC timestamp>-slow/ (results.txt, env.txt, summary.md, logs).
#
# Needs root (mount), /dev/fuse and: apt-get install fuse3 nginx h2o wrk curl (wrk, nginx and h2o
# as in ../shared/bench/README.md; fuse3 gives fusermount3 and the kernel module's user tools).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=$(cd "${SHARED:-$ROOT/../shared/bench}" && pwd)   # SHARED=... when not beside the checkout

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
DELAY_MS=${DELAY_MS:-5}
SERVERS=${SERVERS:-"satchel nginx nginx-aio h2o"}
SATCHEL_ARGS=${SATCHEL_ARGS:-}   # e.g. "--workers 2" (pinned to one CPU it runs one worker)
HOT_CONNS=${HOT_CONNS:-16}
COLD_CONNS=${COLD_CONNS:-16}
MISS_CLIENTS=${MISS_CLIENTS:-"1 4 16"}
COLD_SIZE=${COLD_SIZE:-16384}
COLD_PER_DIR=1000
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
QUIET_PCT=${QUIET_PCT:-5}
QUIET_WAIT=${QUIET_WAIT:-30}
FOREIGN_MAX=${FOREIGN_MAX:-5}
WORK=${WORK:-/tmp/satchel-slow}
BACKING=$WORK/backing
MNT=$WORK/mnt
RES=${RES:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)-slow}
export BENCH_LUA_DIR="$SHARED/lua"
CLK_TCK=$(getconf CLK_TCK)

dur_s=${DURATION%s}
case "$dur_s" in *[!0-9]* | "") echo "DURATION must be whole seconds, e.g. 10s" >&2; exit 2 ;; esac
# Enough cold names for one server's life: every run at the ideal rate (three delays per file,
# all clients in parallel), twice over. A run that still outgrows it gets 404s, reported.
cold_per_s=0
for n in $MISS_CLIENTS "$COLD_CONNS"; do
    cold_per_s=$(awk -v a="$cold_per_s" -v n="$n" -v d="$DELAY_MS" 'BEGIN { print a + n * 1000 / (3 * d) }')
done
COLD_FILES=${COLD_FILES:-$(awk -v r="$cold_per_s" -v s="$dur_s" -v k=$COLD_PER_DIR \
    'BEGIN { n = 2 * r * s; print k * int((n + k - 1) / k) }')}

log() { echo "[slow.sh] $*" >&2; }
need="wrk curl taskset ss"
case " $SERVERS " in *" nginx"*) need="$need nginx" ;; esac
case " $SERVERS " in *" h2o "*) need="$need h2o" ;; esac
for t in $need; do
    command -v "$t" >/dev/null || { log "missing tool: $t (see the header of $0)"; exit 1; }
done
[ -e /dev/fuse ] || { log "no /dev/fuse"; exit 1; }

mkdir -p "$RES" "$WORK"
OUT=$RES/results.txt
: > "$OUT"
emit() { echo "$*" | tee -a "$OUT"; }

# ---------------------------------------------------------------- builds --
cargo build --release --quiet -p satchel-server --manifest-path "$ROOT/Cargo.toml"
SATCHEL=$ROOT/target/release/satchel-server
cargo build --release --quiet --manifest-path "$HERE/slowfs/Cargo.toml"
SLOWFS=$HERE/slowfs/target/release/slowfs

# ----------------------------------------------------- the backing folder --
want="files=$COLD_FILES size=$COLD_SIZE per_dir=$COLD_PER_DIR"
if [ "$(cat "$BACKING/.pool" 2>/dev/null)" != "$want" ]; then
    log "creating $COLD_FILES sparse cold files of $COLD_SIZE bytes in $BACKING"
    rm -rf "$BACKING"
    python3 - "$BACKING" "$COLD_FILES" "$COLD_SIZE" "$COLD_PER_DIR" <<'EOF'
import os, sys
root, n, size, per_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(root + "/hot")
with open(root + "/hot/1k.bin", "wb") as f:
    f.write(bytes((i * 131 + 7) % 251 for i in range(1024)))
os.makedirs(root + "/check")
for i in range(64):  # for the parallelism check, never served
    with open("%s/check/f%02d" % (root, i), "wb") as f:
        f.truncate(size)
for i in range(n):
    d = "%s/cold/d%03d" % (root, i // per_dir)
    if i % per_dir == 0:
        os.makedirs(d)
    with open("%s/f%04d" % (d, i % per_dir), "wb") as f:
        f.truncate(size)
EOF
    chmod -R a+rX "$BACKING"
    echo "$want" > "$BACKING/.pool"
fi

# ------------------------------------------------- mount, and always undo --
SERVER_PID=""; SLOWFS_PID=""; KNOWN_PIDS=""
tree_pids() { # a PID and all its descendants
    local all=("$1") frontier=("$1") next p c
    while [ ${#frontier[@]} -gt 0 ]; do
        next=()
        for p in "${frontier[@]}"; do
            for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do all+=("$c"); next+=("$c"); done
        done
        frontier=("${next[@]+"${next[@]}"}")
    done
    echo "${all[@]}"
}
remember_tree() {
    local p
    for p in $(tree_pids "$SERVER_PID"); do
        case " $KNOWN_PIDS " in *" $p "*) ;; *) KNOWN_PIDS="$KNOWN_PIDS $p" ;; esac
    done
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    remember_tree
    local p i left
    declare -A comm=()
    for p in $KNOWN_PIDS; do comm[$p]=$(cat /proc/"$p"/comm 2>/dev/null || echo '?'); done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 50); do
        left=""
        for p in $KNOWN_PIDS; do
            [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "${comm[$p]}" ] \
                && ! grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null && left="$left $p"
        done
        [ -n "$left" ] || break
        sleep 0.2
    done
    for p in $left; do log "SIGKILL leftover pid $p (${comm[$p]})"; kill -KILL "$p" 2>/dev/null || true; done
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""; KNOWN_PIDS=""
}
mounted() { awk -v m="$MNT" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
cleanup() {
    stop_server
    # /proc/mounts, not mountpoint(1): a mount whose daemon died cannot be stat'ed.
    if mounted; then umount "$MNT" 2>/dev/null || umount -l "$MNT" || true; fi
    if [ -n "$SLOWFS_PID" ]; then
        for _ in $(seq 1 25); do kill -0 "$SLOWFS_PID" 2>/dev/null || break; sleep 0.2; done
        kill -TERM "$SLOWFS_PID" 2>/dev/null || true
        wait "$SLOWFS_PID" 2>/dev/null || true
        SLOWFS_PID=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if mounted; then log "$MNT is already mounted (a run in progress? else: umount $MNT)"; exit 1; fi
mkdir -p "$MNT"
taskset -c "$WRK_CPU" "$SLOWFS" --delay-ms "$DELAY_MS" "$BACKING" "$MNT" 2> "$RES/slowfs.log" &
SLOWFS_PID=$!
for _ in $(seq 1 50); do mounted && break; sleep 0.1; done
mounted || { log "slowfs did not mount:"; cat "$RES/slowfs.log" >&2; exit 1; }

# The storage must wait out each request's delay in parallel, or this measures slowfs.
python3 - "$MNT/check" > "$RES/parallel-check.txt" <<'EOF'
import sys, threading, time
root, start = sys.argv[1], 0
def fetch(path, out, i):
    barrier.wait()
    t = time.monotonic()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    out[i] = time.monotonic() - t
for k in (1, 16):
    barrier = threading.Barrier(k + 1)
    out = [0.0] * k
    ts = [threading.Thread(target=fetch, args=("%s/f%02d" % (root, start + i), out, i)) for i in range(k)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in ts:
        t.join()
    print("cold files read in parallel: %2d, wall %.1f ms, slowest %.1f ms" % (k, (time.monotonic() - t0) * 1e3, max(out) * 1e3))
    start += k
EOF
cat "$RES/parallel-check.txt" >&2

(  # a subshell: errexit stays on for the rest of the script
  set +e +o pipefail
  grep -m1 'model name' /proc/cpuinfo; echo "cpus: $(nproc)"; free -m | sed -n 2p
  echo "date: $(date -u +%FT%TZ)"; uname -a
  nginx -v 2>&1; h2o --version 2>&1 | head -1; wrk -v 2>&1 | head -1; rustc --version
  git -C "$ROOT" rev-parse HEAD
  echo "ROUNDS=$ROUNDS DURATION=$DURATION DELAY_MS=$DELAY_MS HOT_CONNS=$HOT_CONNS COLD_CONNS=$COLD_CONNS SATCHEL_ARGS=$SATCHEL_ARGS"
  echo "MISS_CLIENTS=$MISS_CLIENTS COLD_FILES=$COLD_FILES COLD_SIZE=$COLD_SIZE SERVERS=$SERVERS"
  echo "SERVER_CPU=$SERVER_CPU WRK_CPU=$WRK_CPU (slowfs on $WRK_CPU) QUIET_PCT=$QUIET_PCT QUIET_WAIT=$QUIET_WAIT"
  cat "$RES/parallel-check.txt"
) > "$RES/env.txt" || true

# ---------------------------------------------------------------- servers --
# nginx with `aio threads` (its default pool: 32 threads): the shared peer config plus one line.
AIO_TEMPLATE=$RES/nginx-aio.conf.template
sed -E 's/^([[:space:]]*)sendfile([[:space:]]+)on;/&\n\1aio                 threads;/' \
    "$SHARED/peers/nginx.conf" > "$AIO_TEMPLATE"
grep -q 'aio  *threads;' "$AIO_TEMPLATE" || { log "could not derive the aio threads config"; exit 1; }

port_of() {
    case $1 in satchel) echo 28185 ;; nginx) echo 28180 ;; nginx-aio) echo 28183 ;; h2o) echo 28182 ;;
        *) log "unknown server $1"; exit 2 ;; esac
}
start_server() { # name port
    local name=$1 port=$2 rundir=/tmp/bench-run/slow-$1-$2 cmd
    mkdir -p "$rundir/nginx-tmp"
    case $name in
        satchel) cmd="$SATCHEL $port $MNT --bind 127.0.0.1 --quiet $SATCHEL_ARGS" ;;
        nginx | h2o) cmd="$SHARED/peers/start-peer.sh $name $port $MNT $rundir" ;;
        nginx-aio)
            chown -R www-data:www-data "$rundir"
            sed -e "s|@PORT@|$port|g" -e "s|@CORPUS@|$MNT|g" -e "s|@RUNDIR@|$rundir|g" \
                "$AIO_TEMPLATE" > "$rundir/nginx.conf"
            cmd="nginx -p $rundir -c $rundir/nginx.conf" ;;
    esac
    if ss -Hltn "sport = :$port" | grep -q .; then log "port $port is in use by someone else"; exit 1; fi
    taskset -c "$SERVER_CPU" bash -c "exec $cmd" > "$RES/$name.out" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || { log "$name exited at start:"; cat "$RES/$name.out" >&2; exit 1; }
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/hot/1k.bin" && break
        sleep 0.1
    done
    remember_tree
    local owners p ours=0
    owners=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
    for p in $owners; do case " $KNOWN_PIDS " in *" $p "*) ours=1 ;; esac; done
    [ $ours = 1 ] || { log "the listener on $port is not $name's ($KNOWN_PIDS)"; exit 1; }
}

# ------------------------------------------------------- measuring helpers --
cpu_busy_total() { # whole machine "busy total" jiffies
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
quiet_gate() { # sets BG (busy % in the last second) and WAITED (seconds waited)
    local b0 t0 b1 t1
    WAITED=0
    while :; do
        read -r b0 t0 < <(cpu_busy_total); sleep 1; read -r b1 t1 < <(cpu_busy_total)
        BG=$(( 100 * (b1 - b0) / ((t1 - t0) > 0 ? (t1 - t0) : 1) ))
        [ "$BG" -gt "$QUIET_PCT" ] && [ "$WAITED" -lt "$QUIET_WAIT" ] || break
        WAITED=$((WAITED + 1))
    done
}
proc_ticks() { # "pid ppid ticks" of every user process (kernel threads left out)
    # A process that exits between the glob and cat makes cat fail: not an error here.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
        pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, f, " ");
        if (pid != 2 && f[2] != 2) print pid, f[2], f[12] + f[13] + f[14] + f[15] }'
}
ANCESTORS=""
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    ANCESTORS="$ANCESTORS $p"
    p=$(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[2] }' /proc/"$p"/stat 2>/dev/null || true)
done
foreign_ticks() { # ticks other tenants used between two proc_ticks snapshots
    awk -v ex=" $ANCESTORS $KNOWN_PIDS $SLOWFS_PID " 'NR == FNR { b[$1] = $3; next }
        index(ex, " " $1 " ") == 0 && index(ex, " " $2 " ") == 0 {
            d = $3 - (($1 in b) ? b[$1] : 0); if (d > 0) t += d }
        END { print t + 0 }' "$1" "$2"
}
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
wrk_line() { # conns url [wrk args...] -> WRKRESULT line on stdout
    local conns=$1 url=$2; shift 2
    taskset -c "$WRK_CPU" wrk -t1 -c"$conns" -d"$DURATION" --timeout 10s "$@" "$url" \
        | grep '^WRKRESULT' || true
}
describe() { # a WRKRESULT line -> "rps=.. p50_ms=.. p99_ms=.. requests=.. errors=.. non2xx=.."
    local l=$1
    [ -n "$l" ] || { echo "rps=0 requests=0 errors=1 non2xx=0 wrk_failed=1"; return; }
    awk -v r="$(field "$l" requests)" -v d="$(field "$l" duration_us)" \
        -v p50="$(field "$l" p50_us)" -v p99="$(field "$l" p99_us)" \
        -v e=$(( $(field "$l" err_connect) + $(field "$l" err_read) + $(field "$l" err_write) + $(field "$l" err_timeout) )) \
        -v s="$(field "$l" err_status)" 'BEGIN {
        printf "rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d non2xx=%d", r / (d / 1e6), p50 / 1e3, p99 / 1e3, r, e, s }'
}

COLD_NEXT=0
measure() { # name round measure: runs one measured unit and emits its SLOW line(s)
    local name=$1 round=$2 what=$3 url=http://127.0.0.1:$PORT
    local hot="" cold="" fpct clean b0 t0 b1 t1 n
    quiet_gate
    proc_ticks > "$WORK/snap0"
    read -r b0 t0 < <(cpu_busy_total)
    case $what in
        hot_alone)
            hot=$(wrk_line "$HOT_CONNS" "$url/hot/1k.bin" -s "$SHARED/lua/report.lua") ;;
        hot_under_misses)
            COLD_START=$COLD_NEXT COLD_PER_DIR=$COLD_PER_DIR \
                wrk_line "$COLD_CONNS" "$url/" -s "$HERE/lua/cold.lua" > "$WORK/cold.line" &
            local cold_pid=$!
            hot=$(wrk_line "$HOT_CONNS" "$url/hot/1k.bin" -s "$SHARED/lua/report.lua")
            wait "$cold_pid" || true
            cold=$(cat "$WORK/cold.line") ;;
        miss_c*)
            n=${what#miss_c}
            cold=$(COLD_START=$COLD_NEXT COLD_PER_DIR=$COLD_PER_DIR \
                wrk_line "$n" "$url/" -s "$HERE/lua/cold.lua") ;;
    esac
    read -r b1 t1 < <(cpu_busy_total)
    proc_ticks > "$WORK/snap1"
    fpct=$(( 100 * $(foreign_ticks "$WORK/snap0" "$WORK/snap1") * $(nproc) / ((t1 - t0) > 0 ? (t1 - t0) : 1) ))
    clean=1; [ "$fpct" -gt "$FOREIGN_MAX" ] && clean=0
    local common="server=$name round=$round clean=$clean foreign_cpu_pct=$fpct bg_busy_pct=$BG quiet_wait_s=$WAITED machine_busy_pct=$(( 100 * (b1 - b0) / ((t1 - t0) > 0 ? (t1 - t0) : 1) )) duration=$DURATION delay_ms=$DELAY_MS"
    if [ "$what" != "${what#hot_}" ]; then
        emit "SLOW measure=$what part=hot conns=$HOT_CONNS $(describe "$hot") $common"
    fi
    if [ "$what" != hot_alone ]; then
        local conns=$COLD_CONNS; [ "$what" = hot_under_misses ] || conns=${what#miss_c}
        emit "SLOW measure=$what part=cold conns=$conns $(describe "$cold") cold_start=$COLD_NEXT $common"
        # Move past every name this run may have asked for (requests sent, plus those in flight).
        COLD_NEXT=$(( COLD_NEXT + $(field "$cold" requests | grep . || echo 0) + 2 * conns + 16 ))
    fi
}

# ----------------------------------------------------------------- rounds --
set -- $SERVERS
nserv=$#
for round in $(seq 1 "$ROUNDS"); do
    set -- $SERVERS
    k=$(( (round - 1) % nserv )); shift "$k"
    order="$*"; [ "$k" -gt 0 ] && order="$order $(echo $SERVERS | cut -d' ' -f1-"$k")"
    log "round $round: $order"
    for name in $order; do
        PORT=$(port_of "$name")
        sleep 1.1    # past the FUSE entry TTL of the previous server's names
        start_server "$name" "$PORT"
        log "$name up (pid $SERVER_PID, tree:$KNOWN_PIDS) on :$PORT"
        # Warm the hot file (cached by every server after this) without touching cold names.
        taskset -c "$WRK_CPU" wrk -t1 -c"$HOT_CONNS" -d1s "http://127.0.0.1:$PORT/hot/1k.bin" > /dev/null
        COLD_NEXT=0
        for what in hot_alone hot_under_misses $(for n in $MISS_CLIENTS; do echo "miss_c$n"; done); do
            measure "$name" "$round" "$what"
        done
        [ "$COLD_NEXT" -le "$COLD_FILES" ] || log "$name used $COLD_NEXT cold names, more than the pool of $COLD_FILES: later requests got 404s (raise COLD_FILES)"
        stop_server
    done
done

cleanup
trap - EXIT
cat "$RES/slowfs.log" >&2
python3 "$HERE/slow_summary.py" "$OUT" > "$RES/summary.md"
cat "$RES/summary.md"
