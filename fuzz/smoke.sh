#!/usr/bin/env bash
# The fuzz part of CI: a short `cargo fuzz run` of every target, failing on any crash.
#
#   fuzz/smoke.sh                 # 60 s per target
#   FUZZ_SECONDS=600 fuzz/smoke.sh request_head path   # longer, some targets only
#
# Needs a nightly toolchain (cargo-fuzz is installed when missing). Each target starts from
# its checked-in seeds (fuzz/corpus/<target>/) and crash regressions (fuzz/regressions/<target>/)
# and grows a working corpus under fuzz/work/ (not checked in). Targets are built with debug
# assertions (so integer overflow panics) and without a sanitizer: satchel-core has no unsafe
# code, so AddressSanitizer would only slow the search down. A crash leaves its input in
# fuzz/artifacts/<target>/ and the line to reproduce it in the log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${FUZZ_SECONDS:-60}"
all_targets=(request_head path range_and_conditionals connection cache_ops response_head client client_pipeline names proxy_header)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal || true
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: cargo-fuzz needs a nightly toolchain, and none could be installed" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

dict_for() {
    case "$1" in
        path | names) echo fuzz/url.dict ;;
        client | client_pipeline | proxy_header) echo "" ;;
        cache_ops) echo "" ;;
        *) echo fuzz/http.dict ;;
    esac
}

mkdir -p fuzz/work/dicts
failed=()
for target in "${targets[@]}"; do
    corpora=("fuzz/work/corpus/$target" "fuzz/corpus/$target")
    mkdir -p "fuzz/work/corpus/$target"
    if [ -d "fuzz/regressions/$target" ]; then corpora+=("fuzz/regressions/$target"); fi
    flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    shared="$(dict_for "$target")"
    if [ -n "$shared" ]; then
        cat "$shared" fuzz/satchel.dict >"fuzz/work/dicts/$target.dict"
        flags+=(-dict="fuzz/work/dicts/$target.dict")
    fi
    echo "=== fuzz $target for ${seconds}s"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none --debug-assertions \
        "$target" "${corpora[@]}" -- "${flags[@]}"; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/smoke.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/smoke.sh: ${#targets[@]} targets ran ${seconds}s each without a crash"
