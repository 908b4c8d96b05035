#!/usr/bin/env bash
# Fails when a host-layer package falls under its statement-coverage floor,
# read from the `go test -cover` log given as $1.
set -euo pipefail
log=$1 floor=85
module=$(go list -m)
status=0
for pkg in lvm sanlock multipath; do
  [ -d "$pkg" ] || continue
  pct=$(grep -E "^ok[[:space:]]+$module/$pkg[[:space:]]" "$log" | grep -oE '[0-9.]+% of statements' | cut -d% -f1 || true)
  echo "coverage $pkg: ${pct:-?}% of statements (floor $floor%)"
  if [ -z "$pct" ] || awk -v s="$pct" -v f="$floor" 'BEGIN{exit !(s < f)}'; then status=1; fi
done
exit $status
