#!/usr/bin/env bash
# run.sh: the dashboard's browser test: headless Chromium (Debian chromium + chromium-driver)
# driven by Selenium against a real `toolrl serve` on loopback with a fresh job store.
# Creates .venv-web (selenium, pytest) when missing. Screenshots go to tests/out/web/.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-web
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import selenium, pytest' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q selenium==4.51.0 pytest==9.2.0
fi
command -v chromium >/dev/null && command -v chromedriver >/dev/null || {
    echo "run.sh: chromium and chromium-driver are missing (make deps)" >&2; exit 1; }
make -s build/toolrl
exec "$VENV/bin/python" -m pytest -q tests/web "$@"
