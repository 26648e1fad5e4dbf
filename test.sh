#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as errors, runs every
# test, then the same under AddressSanitizer + UBSan. Needs ../shared (the fixtures) beside the
# project. Ends with the line "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
[ -d ../shared/fixtures ] || { echo "test.sh: ../shared (fixtures, models, data) not found" >&2; exit 1; }

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

run_suite() { # build dir, meson options...
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
  ninja -C "$dir"
  local rc=0
  meson test -C "$dir" --print-errorlogs --num-processes 2 || rc=$?
  # meson's summary lines "Ok: N" / "Fail: N" give the counts
  local ok fail
  ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$dir/meson-logs/testlog.txt" | tail -1)
  fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$dir/meson-logs/testlog.txt" | tail -1)
  passed=$((passed + ${ok:-0})); failed=$((failed + ${fail:-0}))
  [ $rc -eq 0 ] || failed=$((failed > 0 ? failed : 1))
}

passed=0; failed=0
run_suite build
run_suite build-sanitize -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
