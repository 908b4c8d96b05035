#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every
# stage in scripts/test.d in order and prints a table of stage timings.
# STAGES="10-go 30-rpc" limits the run to those stages (for iteration).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
bash scripts/deps.sh || { echo "deps failed"; exit 1; }
pass=0; fail=0; table=()
for stage in scripts/test.d/*.sh; do
  name=$(basename "$stage" .sh)
  if [ -n "${STAGES:-}" ] && ! grep -qw "$name" <<<"$STAGES"; then continue; fi
  echo "=== stage $name"
  start=$(date +%s)
  if bash "$stage"; then r=ok; pass=$((pass+1)); else r=FAILED; fail=$((fail+1)); fi
  table+=("$(printf '%-22s %-7s %5ss' "$name" "$r" $(( $(date +%s) - start )))")
done
echo
echo "stage                  result   time"
printf '%s\n' "${table[@]}"
echo "stages: $pass passed, $fail failed"
[ "$fail" = 0 ]
