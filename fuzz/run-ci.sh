#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 60).
# Exits non-zero on any finding (crash, panic, timeout, OOM) or build error.
#
#   fuzz/run-ci.sh                       # all targets, 60 s each
#   FUZZ_SECONDS=600 fuzz/run-ci.sh apply roundtrip
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_SANITIZER   cargo-fuzz sanitizer (default none; see README.md)
#   FUZZ_WORK        scratch dir for new corpus entries (default: a temp dir)
#   CARGO_TARGET_DIR build dir (default fuzz/target)
#
# Works on the stable toolchain: cargo-fuzz passes -Z flags, which stable
# rustc accepts with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(parse decode_chunk apply roundtrip inplace)
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-ci: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_WORK:-}" ]; then
    work=$FUZZ_WORK
    scratch=
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/oxdelta-fuzz.XXXXXX")
    scratch=$work
fi
echo "run-ci: building all targets (sanitizer $sanitizer)" >&2
cargo fuzz build -s "$sanitizer" >&2

status=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    echo "run-ci: fuzzing $t for ${seconds}s" >&2
    # New inputs go to $work/$t; the committed seeds and regressions are
    # read-only inputs. Crashes land in fuzz/artifacts/$t/.
    inputs=("corpus/$t")
    [ -d "regressions/$t" ] && inputs+=("regressions/$t")
    if ! cargo fuzz run -s "$sanitizer" "$t" "$work/$t" "${inputs[@]}" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$work/$t.log" 2>&1; then
        echo "run-ci: FINDING in $t (log: $work/$t.log, input in fuzz/artifacts/$t/)" >&2
        tail -n 40 "$work/$t.log" >&2
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$work/$t.log" \
            | sed "s/^/run-ci: $t /" >&2 || true
    fi
done
# A scratch dir is removed after a clean run and kept (with logs) on a finding.
if [ $status -eq 0 ] && [ -n "$scratch" ]; then
    rm -rf "$scratch"
fi
exit $status
