#!/usr/bin/env bash
# run.sh: the engine benchmark. Runs toolrl and llama.cpp (PyPI llama-cpp-python, the peer)
# on the same GGUF with the same thread count, one after the other in one run, and prints
# both JSON lines and the ratios toolrl / llama.cpp.
#   bash bench/run.sh [--threads N] [--prompt-tokens P] [--gen-tokens N] [--reps R]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ARGS=(--threads 2 --prompt-tokens 128 --gen-tokens 128 --reps 3)
[ $# -gt 0 ] && ARGS=("$@")
VENV=.venv-bench
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    echo "bench: installing the peer (llama-cpp-python from PyPI, compiles llama.cpp; several minutes)" >&2
    python3 -m venv "$VENV"
    CMAKE_ARGS="-DGGML_NATIVE=ON" MAKEFLAGS=-j"$(nproc)" "$VENV/bin/pip" install -q llama-cpp-python==0.3.36 numpy >&2
fi
make -s build/toolrl
ours=$(./build/toolrl bench --model "$MODEL" "${ARGS[@]}")
peer=$("$VENV/bin/python" bench/peer_llamacpp.py --model "$MODEL" "${ARGS[@]}")
echo "$ours"
echo "$peer"
python3 - "$ours" "$peer" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"prefill: toolrl {a['prefill_tps']:.1f} tok/s, llama.cpp {b['prefill_tps']:.1f} tok/s, ratio {a['prefill_tps']/b['prefill_tps']:.2f}x")
print(f"decode:  toolrl {a['decode_tps']:.1f} tok/s, llama.cpp {b['decode_tps']:.1f} tok/s, ratio {a['decode_tps']/b['decode_tps']:.2f}x")
PY
