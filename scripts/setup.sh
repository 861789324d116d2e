#!/usr/bin/env bash
# setup.sh: installs the Debian packages toolrl builds and tests with, only those missing.
set -euo pipefail
PKGS=(gcc clang make libc6-dev libopenblas-dev libpcre2-dev libcmocka-dev libmicrohttpd-dev libcjson-dev
      libsqlite3-dev libssl-dev chromium chromium-driver libjs-dygraphs python3 python3-pip python3-venv ca-certificates curl)
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
