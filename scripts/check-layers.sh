#!/usr/bin/env bash
# check-layers.sh: enforces the folder layers of docs/architecture.md on every #include "…" of
# every .c and .h in the repository (tracked or new, not ignored). Fails, naming file and line,
#   - on an include without a folder ("x.h" instead of "folder/x.h": the build has only -I.);
#   - on an include of a folder that the including folder's row of LAYERS does not list.
# tests/, bench/ and fuzz/ may include any folder. Run by `make check` before the tests.
set -uo pipefail
cd "$(dirname "$0")/.."

# The layers, lowest first; each row: a folder, then the folders below it that it may include
# (its own folder is always allowed). A row may only name rows above it, so the table has no
# cycles; the order is base < protocol < model < data < store < eval < trainer < server < cli.
LAYERS='
base
protocol  base
model     base protocol
data      base protocol
store     base
eval      base protocol model data store
trainer   base protocol model data store eval
server    base protocol model data store eval trainer
cli       base protocol model data store eval trainer server
'
FREE='tests bench fuzz'  # may include anything

files=$(git ls-files --cached --others --exclude-standard -- '*.c' '*.h')
awk -v layers="$LAYERS" -v free="$FREE" '
BEGIN {
    n = split(layers, rows, "\n")
    for (r = 1; r <= n; r++) {
        k = split(rows[r], f, " ")
        if (k == 0) continue
        for (j = 2; j <= k; j++) {
            if (!(f[j] in known)) { printf "check-layers: table: %s may include %s, which is not a row above it\n", f[1], f[j] > "/dev/stderr"; bad = 1 }
            ok[f[1], f[j]] = 1
        }
        known[f[1]] = 1
    }
    split(free, fr, " ")
    for (i in fr) anything[fr[i]] = 1
    if (bad) exit 2
}
FNR == 1 { dir = FILENAME; sub(/\/.*/, "", dir); if (dir == FILENAME) dir = "." }
/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
    if (inc !~ /\//) {
        printf "%s:%d: #include \"%s\" has no folder (write \"folder/%s\")\n", FILENAME, FNR, inc, inc
        errs++; next
    }
    to = inc; sub(/\/.*/, "", to)
    if (to == dir || dir in anything) next
    if (!(dir in known)) {
        printf "%s:%d: %s/ is in no layer of scripts/check-layers.sh\n", FILENAME, FNR, dir
        errs++; next
    }
    if (!ok[dir, to]) {
        printf "%s:%d: #include \"%s\": %s/ may not include %s/ (layers: scripts/check-layers.sh, docs/architecture.md)\n", FILENAME, FNR, inc, dir, to
        errs++
    }
}
END {
    if (bad) exit 2
    if (errs) { printf "check-layers: %d include(s) break the layers\n", errs > "/dev/stderr"; exit 1 }
}' $files || exit 1
echo "check-layers: $(echo "$files" | wc -l) files, every include follows the layers"
