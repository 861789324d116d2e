#!/usr/bin/env bash
# run_train.sh: training throughput, our fp32 trainer (build/bench_train) against PyTorch on
# the CPU (bench/bench_train_torch.py): same model, batch, tokens, reps and threads, one after
# the other (never in parallel). Prints both JSON lines and the tokens/s ratio.
#
#   bash bench/run_train.sh [BATCH [TOKENS [REPS [THREADS]]]]     (or the same names as env vars;
#                                                                  MODEL too)
# PyTorch is Debian's python3-torch (CPU only), used from .venv-torch (created here if
# missing, with system site packages, plus `gguf` to read the model).
set -euo pipefail
cd "$(dirname "$0")/.."

BATCH=${1:-${BATCH:-4}}
TOKENS=${2:-${TOKENS:-256}}
REPS=${3:-${REPS:-3}}
THREADS=${4:-${THREADS:-2}}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ARGS=(--model "$MODEL" --batch "$BATCH" --tokens "$TOKENS" --reps "$REPS" --threads "$THREADS")

make -s build/bench_train >&2
if [ ! -x .venv-torch/bin/python ]; then
    # /usr/bin/python3 explicitly: python3-torch is installed for Debian's Python only.
    /usr/bin/python3 -m venv --system-site-packages .venv-torch
    .venv-torch/bin/pip install -q gguf numpy >&2
fi

ours=$(build/bench_train "${ARGS[@]}")
echo "$ours"
# Both sides use Debian's OpenBLAS; give PyTorch the same kernels ours chose (build/bench_train
# sets OPENBLAS_CORETYPE itself when OpenBLAS does not know the CPU, see cli/opts.c).
core=$(.venv-torch/bin/python -c 'import json,sys; print(json.loads(sys.argv[1]).get("blas_core",""))' "$ours")
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -n "$core" ]; then export OPENBLAS_CORETYPE=$core; fi
theirs=$(.venv-torch/bin/python bench/bench_train_torch.py "${ARGS[@]}")
echo "$theirs"
.venv-torch/bin/python -c '
import json, sys
a, b = (json.loads(s) for s in sys.argv[1:])
print("ratio toolrl/pytorch tokens_per_s: %.2f" % (a["tokens_per_s"] / b["tokens_per_s"]))' "$ours" "$theirs"
