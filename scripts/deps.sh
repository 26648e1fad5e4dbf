#!/usr/bin/env bash
# Installs the Debian 12 packages searchd builds with (only those missing), as root or via sudo.
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config libopenblas-dev libuv1-dev libmsgpack-dev
      libjansson-dev libhiredis-dev redis-server libutf8proc-dev check libsubunit-dev python3
      python3-msgpack clang-format)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
