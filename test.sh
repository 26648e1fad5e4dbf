#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as errors, runs every
# test, then the same under AddressSanitizer + UBSan, then the daemon and the threaded search
# tests under ThreadSanitizer. Needs ../shared (the fixtures) beside the project. Ends with the
# line "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
[ -d ../shared/fixtures ] || { echo "test.sh: ../shared (fixtures, models, data) not found" >&2; exit 1; }

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

run_suite() { # build dir, meson options... ($TESTS: only these meson tests)
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
  local tests=(${TESTS:-})
  # All targets, or (with $TESTS) what those tests need: meson test builds just that.
  [ ${#tests[@]} -gt 0 ] || ninja -C "$dir"
  local rc out="$dir/meson-logs/summary.txt"
  set +e
  meson test -C "$dir" --print-errorlogs --num-processes 2 "${tests[@]}" | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  # Each Check case counts ("Checks: N, Failures: F, Errors: E" in the log), and each Python
  # test case ("python: N passed, F failed", tests/python); each fuzz corpus program counts as one
  # (a run without some of them, as the ThreadSanitizer one, finds none: grep's 1 is no failure)
  local log="$dir/meson-logs/testlog.txt" checks bad py_ok py_bad fuzz_ok fuzz_bad
  checks=$( (grep -ho 'Checks: [0-9]*' "$log" || true) | awk '{s += $2} END {print s + 0}')
  bad=$( (grep -ho 'Failures: [0-9]*, Errors: [0-9]*' "$log" || true) | tr -d , | awk '{s += $2 + $4} END {print s + 0}')
  py_ok=$( (grep -ho '^python: [0-9]* passed' "$log" || true) | awk '{s += $2} END {print s + 0}')
  py_bad=$( (grep -ho '^python: [0-9]* passed, [0-9]* failed' "$log" || true) | awk '{s += $4} END {print s + 0}')
  checks=$((checks + py_ok + py_bad)); bad=$((bad + py_bad))
  fuzz_ok=$(grep -c 'fuzz-corpus-[a-z]* *OK' "$out" || true)
  fuzz_bad=$(grep 'fuzz-corpus-' "$out" | grep -vc ' OK ' || true)
  # What failed, named, for the digest printed last (a CI log may show only its end).
  digest+=$( (grep -hE '^[^ ]+:[0-9]+:[FE]:' "$log" || true) | head -20 | sed "s|^|  $dir: |")$'\n'
  digest+=$( (grep -E ' (FAIL|TIMEOUT|ERROR) ' "$out" || true) | sed "s|^|  $dir: meson: |")$'\n'
  passed=$((passed + checks - bad + fuzz_ok))
  failed=$((failed + bad + fuzz_bad))
  [ $rc -eq 0 ] || failed=$((failed > 0 ? failed : 1))
}

passed=0; failed=0; digest=""
# The tree is formatted by .clang-format; a file that is not counts as a failure.
if clang-format --dry-run -Werror $(git ls-files '*.c' '*.h' 2>/dev/null || find . -path ./build\* -prune -o -name '*.[ch]' -print); then
  echo "clang-format: the tree is formatted"; passed=$((passed + 1))
else
  echo "clang-format: files above are not formatted (clang-format -i FILE)"; failed=$((failed + 1))
  digest+="  clang-format: the tree is not formatted"$'\n'
fi
run_suite build
# The installed libraries: `meson install` into a temporary root, then examples/installed/ built
# from a copy outside the tree with pkg-config only (PKG_CONFIG_SYSROOT_DIR maps the .pc files'
# prefix into that root) and run on the demo model, unpruned and with a schedule, on a positive
# and a negative sentence: each label must be the one searchctl gives. Counts as one check.
installed_example() ( # temp dir; prints the labels (a condition: `set -e` would not apply)
  export PKG_CONFIG_SYSROOT_DIR=$1/root PKG_CONFIG_PATH
  meson install -C build --destdir "$1/root" >/dev/null &&
    cp examples/installed/classify.c examples/installed/Makefile "$1/" &&
    PKG_CONFIG_PATH=$(dirname "$(find "$1/root" -name sdc.pc)") &&
    make -s -C "$1" >/dev/null &&
    export LD_LIBRARY_PATH=$(pkg-config --variable=libdir sdc) &&
    for text in "a gripping, beautifully acted film" "the plot is a mess and the acting is worse"; do
      "$1/classify" models/sst2-bert-L4-H128-demo "$text" 2>>"$1/log" &&
        "$1/classify" models/sst2-bert-L4-H128-demo "$text" --schedule attn:1,0.7,0.5,0.3 2>>"$1/log" ||
        exit 1
    done
)
searchctl_labels() {
  for text in "a gripping, beautifully acted film" "the plot is a mess and the acting is worse"; do
    for s in attn:1,1,1,1 attn:1,0.7,0.5,0.3; do
      build/client/searchctl classify --model models/sst2-bert-L4-H128-demo --schedule $s --json "$text" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["label"])'
    done
  done
}
# Under build/ rather than /tmp: a /tmp mounted noexec would stop the example from running.
inst=$(mktemp -d "$PWD/build/installed-example.XXXXXX")
if labels=$(installed_example "$inst") && [ "$labels" = "$(searchctl_labels)" ]; then
  echo "installed libraries: examples/installed builds with pkg-config and agrees with searchctl:" $labels
  passed=$((passed + 1))
else
  echo "installed libraries: examples/installed did not build, run or agree with searchctl on the installed files"
  tail -5 "$inst/log" 2>/dev/null || true
  failed=$((failed + 1)); digest+="  installed libraries: examples/installed"$'\n'
fi
rm -rf "$inst"
# Under the sanitizers the heavy numeric tests check every 4th fixture line or example: a memory
# error shows on any input, and the release build above has checked every value.
SEARCHD_TEST_STRIDE=4 run_suite build-sanitize -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
# ThreadSanitizer over the threads: the daemon's template tune and the cases tagged "threads"
# (a tune's progress from the search threads to the loop, subscribe, cancel, a requester that
# leaves mid-job, SIGTERM during a search) and a two-thread search stopped from its progress
# callback. Instrumented, the whole daemon suite takes 17 minutes here; these take 2 to 3. OpenBLAS's threads are not
# instrumented: one BLAS thread, so every thread TSan sees is ours or libuv's.
OPENBLAS_NUM_THREADS=1 SEARCHD_TEST_STRIDE=4 TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
  TESTS="daemon-threads schedules-threads" run_suite build-tsan -Db_sanitize=thread -Dbuildtype=debugoptimized
# The debug build with the sanitizers must build too (compiled, not run): at -O0 GCC's
# -Wformat-truncation sees what the optimized builds do not. Counts as one check.
[ -f build-debug/build.ninja ] ||
  meson setup build-debug -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug >/dev/null
if ninja -C build-debug >/dev/null; then
  echo "build-debug (debug + ASan/UBSan): builds"; passed=$((passed + 1))
else
  echo "build-debug (debug + ASan/UBSan): does not build"; failed=$((failed + 1))
  digest+="  build-debug: does not build"$'\n'
fi
# The machine, for a log read from its end: CPU, its widest vector set, OpenBLAS's settings, user.
simd=$(grep -m1 -o -w -E 'avx512f|avx2' /proc/cpuinfo 2>/dev/null | sort -u | xargs || true)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | xargs), $(nproc) cores," \
  "${simd:-no avx}; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-}; user $(id -un)"
digest=$(printf '%s' "$digest" | grep -v '^$' || true)
[ -z "$digest" ] || printf 'what failed:\n%s\n' "$digest"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
