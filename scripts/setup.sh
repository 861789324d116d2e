#!/usr/bin/env bash
# setup.sh [--test]: installs the Debian packages toolrl needs, only those missing. Without
# --test: what building, serving, fetching the default model and building the training mix
# need (`make run`, `make data`, the Docker image; python3-venv holds pyarrow for the one parquet
# source). With --test: also what the tests need: cmocka, clang (fuzzing), g++ (the CUDA
# emulation the CUDA kernels are tested on) and Chromium with its driver (the dashboard's
# browser test, `make check-web`).
set -euo pipefail
PKGS=(gcc make libc6-dev libopenblas-dev libpcre2-dev libmicrohttpd-dev libcjson-dev libsqlite3-dev libssl-dev
      libjs-dygraphs python3 python3-pip python3-venv ca-certificates curl)
TEST_PKGS=(clang g++ libcmocka-dev chromium chromium-driver)
case "${1:-}" in
    --test) PKGS+=("${TEST_PKGS[@]}") ;;
    "") ;;
    *) echo "usage: setup.sh [--test]" >&2; exit 2 ;;
esac
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
