#!/usr/bin/env bash
# User-space instructions per request of satchel-server for one path (a 1 KiB hit by default),
# by callgrind, for one or more commits: robust where CPU time on this shared machine is not.
#
#   bench/hitcount.sh 8d6ed48 HEAD            PATH_=/1k.bin CORPUS=/tmp/bench-corpus
#   WORKTREE=1 bench/hitcount.sh               the working tree as it is (uncommitted too)
#
# Each build goes to /tmp/satchel-hitcount/<rev> with its own target directory. valgrind 3.19
# does not know openat2 (the server's only way to open a file under ROOT), so the copy measured
# opens with plain openat instead (fs.rs's open_beneath, patched in the copy only; a hit opens
# nothing). Instructions per request = (total after N2 requests - total after N1) / (N2 - N1),
# which leaves out start-up and the first miss. Needs valgrind and gcc.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CORPUS=${CORPUS:-/tmp/bench-corpus}
P=${PATH_:-/1k.bin}
N1=${N1:-1000} N2=${N2:-5000}
PORT=${PORT:-29111}
WORK=/tmp/satchel-hitcount
mkdir -p "$WORK"
gcc -O2 "$HERE/keepalive.c" -o "$WORK/keepalive"
[ -f "$CORPUS${P}" ] || { echo "no $CORPUS$P (../shared/bench/make-corpus.sh $CORPUS)" >&2; exit 1; }

build() { # rev -> path of the binary
    local rev=$1 dir
    dir="$WORK/$(echo "$rev" | tr '/' '_')"
    rm -rf "$dir/src"; mkdir -p "$dir/src"
    if [ "$rev" = worktree ]; then
        (cd "$ROOT" && git ls-files -z | tar --null -T - -cf - | tar -x -C "$dir/src")
    else
        git -C "$ROOT" archive "$rev" | tar -x -C "$dir/src"
    fi
    # Fresh mtimes: cargo must not take a reused target's artifacts for this source's.
    find "$dir/src" -type f -exec touch {} +
    python3 - "$dir/src/host-server/src/fs.rs" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
t = re.sub(r'rustix::fs::openat2\(\s*self\.root\.as_fd\(\),\s*rel,\s*flags \| OFlags::CLOEXEC,'
           r'\s*Mode::empty\(\),\s*ResolveFlags::BENEATH \| ResolveFlags::NO_MAGICLINKS,\s*\)',
           'rustix::fs::openat(self.root.as_fd(), rel, flags | OFlags::CLOEXEC, Mode::empty())',
           s, count=1)
if t == s:
    sys.exit(f"{p}: open_beneath's openat2 call not found; patch it by hand")
open(p, "w").write(t)
PY
    (cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" cargo build --release --quiet -p satchel-server \
        2>&1 | grep -v '^warning\|^ *|\|^ *=\|^$' >&2 || true)
    echo "$dir/target/release/satchel-server"
}

count() { # binary requests -> total instructions
    local bin=$1 n=$2 out vp
    out=$(mktemp "$WORK/cg.XXXXXX")
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$PORT" "$CORPUS" \
        --bind 127.0.0.1 --quiet --workers 1 >/dev/null 2>&1 &
    vp=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT$P" && break; sleep 0.2
    done
    "$WORK/keepalive" "$PORT" "$P" "$n" >/dev/null
    kill -INT "$vp"; wait "$vp" || true
    awk '/^totals:/ {print $2}' "$out"
    rm -f "$out"
}

revs=("$@")
[ "${WORKTREE:-0}" = 1 ] && revs+=(worktree)
[ ${#revs[@]} -gt 0 ] || revs=(HEAD)
echo "| build | instructions per request ($P, (N=$N2 - N=$N1) / $((N2 - N1))) |"
echo "|---|---:|"
for rev in "${revs[@]}"; do
    bin=$(build "$rev")
    a=$(count "$bin" "$N1"); b=$(count "$bin" "$N2")
    name=$rev; [ "$rev" = worktree ] || name=$(git -C "$ROOT" rev-parse --short "$rev")
    echo "| $name | $(( (b - a) / (N2 - N1) )) |"
done
