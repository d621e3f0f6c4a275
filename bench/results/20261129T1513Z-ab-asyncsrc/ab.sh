#!/usr/bin/env bash
# Interleaved A/B of two satchel-server builds on scenarios a (1 KiB, 16 conns) and f (10,000 files).
set -euo pipefail
export OUT=${OUT:-/tmp/asrc-ab.txt}
ROUNDS=${ROUNDS:-3}
A=/tmp/asrc-main/target/release/satchel-server
B=/work/wt/asyncsrc/target/release/satchel-server
cd /work/shared/bench
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="main asyncsrc"; else order="asyncsrc main"; fi
  for which in $order; do
    bin=$A; [ "$which" = asyncsrc ] && bin=$B
    SCENARIOS="a f" REPS_A=1 REPS=1 TAG=round$round ./run.sh "satchel-$which" "$bin \$PORT \$CORPUS --bind 127.0.0.1 --quiet" 28085 >/dev/null
  done
done
