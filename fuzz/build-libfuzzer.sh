#!/usr/bin/env bash
# Builds every fuzz/fuzz_<name>.c as a libFuzzer binary (clang, -fsanitize=fuzzer with ASan and
# UBSan) into BUILD/libfuzzer/ (BUILD defaults to /tmp/build-libfuzzer). The project's libraries
# are built by meson in BUILD with -fsanitize=fuzzer-no-link so libFuzzer sees their coverage.
# Then run, e.g.:
#   BUILD/libfuzzer/fuzz_safetensors -max_total_time=120 -max_len=65536 \
#       /tmp/corpus-st fuzz/corpus/safetensors
# (new inputs go to the first folder; keep the committed corpus small and hand-picked).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/build-libfuzzer}
san=address,undefined

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$src" -Dbuildtype=debugoptimized -Dwerror=false \
        -Db_sanitize=$san -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
fi
ninja -C "$build"

# Every static library of the project, and the system libraries they may use.
mapfile -t libs < <(find "$build" -name 'lib*.a' -not -path '*/libfuzzer/*' | sort)
syslibs=()
for pkg in jansson libutf8proc openblas libuv msgpack; do
    if pkg-config --exists "$pkg"; then
        read -ra flags <<<"$(pkg-config --libs "$pkg")"
        syslibs+=("${flags[@]}")
    fi
done

mkdir -p "$build/libfuzzer"
for f in "$src"/fuzz/fuzz_*.c; do
    name=$(basename "$f" .c)
    echo "linking $name"
    clang -g -O1 -fsanitize=fuzzer,$san -fno-sanitize-recover=undefined -std=c11 \
        -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I"$src" "$f" \
        -o "$build/libfuzzer/$name" \
        -Wl,--start-group "${libs[@]}" -Wl,--end-group "${syslibs[@]}" -lm -pthread
done
echo "built: $(ls "$build/libfuzzer" | tr '\n' ' ')"
