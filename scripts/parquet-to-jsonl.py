#!/usr/bin/env python3
"""parquet-to-jsonl.py IN.parquet OUT.jsonl: writes every row of a parquet file as one JSON line
(all columns, nested lists and structs as JSON lists and objects, keys in column order,
json.dumps with ensure_ascii=False). The set-up runs it on ToolRL's rlla_4k test split (verl
format) into the ignored var/data/sources/toolrl_rlla4k_test.jsonl (Makefile rule of that name,
with pyarrow from PyPI in .venv-data); `toolrl data convert --format toolrl` reads it. Datasets
are never committed.
"""
import json
import sys

import pyarrow.parquet as pq


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    rows = pq.read_table(sys.argv[1]).to_pylist()
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{sys.argv[1]}: {len(rows)} rows -> {sys.argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
