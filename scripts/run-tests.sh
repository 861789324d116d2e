#!/usr/bin/env bash
# run-tests.sh BUILD: runs every test binary in BUILD/tests from the repository root,
# prints each one's cmocka report, and a closing "N passed, N failed, N skipped" line.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
pass=0; fail=0; skip=0; bad_bins=()
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue;; esac
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); bad_bins+=("$t (exit $rc)"); fi
done
for b in "${bad_bins[@]+"${bad_bins[@]}"}"; do echo "crashed or failed: $b"; done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
