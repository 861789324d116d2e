#!/usr/bin/env bash
# make-train-set.sh [OUT]: the training mix for the default model (docs/data.md): every shared
# training source converted with the paper's filters, rows asking an evaluation question
# (BFCL, API-Bank, ACEBench) dropped, duplicates dropped, and a seeded validation split
# (toolrl data mix --val-frac 0.02 --seed 1). OUT is a folder (default var/data), which gets
# train.jsonl and val.jsonl, or a .jsonl path for the training rows (val.jsonl goes next to
# it). Evaluation sets are never read as training data. Prints the mix's composition.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${TOOLRL_SHARED:-../shared}
OUT=${1:-var/data}
if [[ $OUT == *.jsonl ]]; then DIR=$(dirname "$OUT"); else DIR=$OUT; fi
make -s build/toolrl
./build/toolrl data mix --shared "$SHARED" --out-dir "$DIR" --val-frac 0.02 --seed 1
if [[ $OUT == *.jsonl && $OUT != "$DIR/train.jsonl" ]]; then mv "$DIR/train.jsonl" "$OUT"; fi
echo "make-train-set: $(wc -l < "${OUT%/}$([[ $OUT == *.jsonl ]] || echo /train.jsonl)") training rows"
