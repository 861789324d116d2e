#!/usr/bin/env bash
# run.sh: the OpenAI-SDK integration tests. Creates .venv-test (openai, pytest) when missing,
# builds toolrl, starts `toolrl serve` on a free port, runs pytest, stops the server.
# Exits non-zero when anything fails. Extra arguments go to pytest (e.g. -k stream).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${TOOLRL_TEST_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
VENV=.venv-test
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai, pytest, langchain_openai, agents' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q openai==3.54.0 pytest==9.2.0 langchain-openai==1.7.3 openai-agents==0.24.0
fi
[ -f "$MODEL" ] || { echo "run.sh: model $MODEL missing (make model)" >&2; exit 1; }
make -s build/toolrl build/tiny-model
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp)
./build/toolrl serve --model "$MODEL" --port "$PORT" >"$LOG" 2>&1 &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; echo "run.sh: server died" >&2; exit 1; }
    sleep 0.2
done
export TOOLRL_TEST_BASE_URL="http://127.0.0.1:$PORT" TOOLRL_TEST_MODEL="$MODEL"
rc=0
"$VENV/bin/python" -m pytest -q tests/api "$@" || rc=$?
if [ $rc -ne 0 ]; then echo "--- server log ---" >&2; tail -50 "$LOG" >&2; fi
exit $rc
