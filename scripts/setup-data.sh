#!/usr/bin/env bash
# setup-data.sh OUT: writes ToolRL's rlla_4k test split (the only parquet file among the shared
# training sets) as JSONL at OUT, for `toolrl data mix` and the data tests. pyarrow comes from
# PyPI into .venv-data (created once). Datasets are never committed: OUT lives under var/.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${TOOLRL_SHARED:-../shared}
OUT=${1:-var/data/sources/toolrl_rlla4k_test.jsonl}
IN="$SHARED/data/toolrl_rlla4k_test/dataset/rlla_4k/test.parquet"
if [ ! -f "$IN" ]; then
    echo "setup-data: $IN not found (is ../shared beside the repository, or TOOLRL_SHARED set?)" >&2
    exit 1
fi
if ! .venv-data/bin/python -c 'import pyarrow' 2>/dev/null; then
    echo "setup-data: installing pyarrow into .venv-data"
    python3 -m venv .venv-data
    .venv-data/bin/pip install --quiet pyarrow
fi
mkdir -p "$(dirname "$OUT")"
.venv-data/bin/python scripts/parquet-to-jsonl.py "$IN" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
