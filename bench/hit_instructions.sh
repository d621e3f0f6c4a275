#!/usr/bin/env bash
# Instructions the core spends on a 1 KiB cache hit, counted by callgrind (a count, not a
# time, so a busy machine does not blur it): core/examples/hit_cost.rs serves N kept-alive
# GETs of one 1 KiB file through the blocking driver from an in-memory stream, once with N1
# and once with N2 requests; the difference of the two totals over N2 - N1 is one request
# (start-up and the first miss cancel out). User space, the core's work only: the host
# worker's epoll and system calls are not in it (and valgrind cannot run satchel-server
# itself: it does not know openat2).
#
#   bench/hit_instructions.sh [CHECKOUT ...]      # default: this checkout
#   bench/hit_instructions.sh /tmp/before .       # before and after, side by side
#
# A checkout without the example gets this one copied in (it uses only long-standing API).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N1="${N1:-1000}"
N2="${N2:-11000}"
command -v valgrind >/dev/null || { echo "hit_instructions.sh: needs valgrind" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for checkout in "${@:-$here}"; do
    checkout="$(cd "$checkout" && pwd)"
    if [ ! -f "$checkout/core/examples/hit_cost.rs" ]; then
        mkdir -p "$checkout/core/examples"
        cp "$here/core/examples/hit_cost.rs" "$checkout/core/examples/hit_cost.rs"
    fi
    (cd "$checkout" && cargo build -q --release -p satchel-core --example hit_cost)
    bin="$(cd "$checkout" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/hit_cost"
    total() {
        valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" "$1" > /dev/null 2>&1
        sed -n 's/^summary: \([0-9]*\)$/\1/p' "$work/cg.out"
    }
    a="$(total "$N1")"
    b="$(total "$N2")"
    echo "$checkout: $(( (b - a) / (N2 - N1) )) instructions/request ($N1 and $N2 requests: $a, $b)"
done
