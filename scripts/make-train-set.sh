#!/usr/bin/env bash
# make-train-set.sh [OUT]: the ready training set for the default model: the shared xLAM,
# ToolACE and ToolRL files converted to the unified format (toolrl data convert, with the
# paper's filters) and concatenated into OUT (default var/data/train.jsonl). Evaluation sets
# (BFCL, API-Bank) are never read. Prints each converter's filter counts.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${TOOLRL_SHARED:-../shared}
OUT=${1:-var/data/train.jsonl}
mkdir -p "$(dirname "$OUT")"
make -s build/toolrl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./build/toolrl data convert --format xlam --in "$SHARED/data/xlam/masking_sft_data_example.json" --out "$tmp/xlam.jsonl"
./build/toolrl data convert --format toolace --in "$SHARED/data/toolace/sharegpt_func_fixed.json" --out "$tmp/toolace.jsonl"
./build/toolrl data convert --format toolrl --in "$SHARED/data/toolrl_rlla/rlla_sft.json" --out "$tmp/toolrl.jsonl"
cat "$tmp/xlam.jsonl" "$tmp/toolace.jsonl" "$tmp/toolrl.jsonl" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "make-train-set: $(wc -l < "$OUT") examples in $OUT"
