#!/usr/bin/env bash
# Runs every Go fuzz target for the given time each (default 5s):
#   scripts/fuzz.sh [DURATION]     e.g. scripts/fuzz.sh 60s  (make fuzz)
# Targets are found by name, so a new Fuzz func is picked up without edits.
# -fuzzminimizetime keeps the fuzzer from spending the budget shrinking one
# large input (it shows as "0 execs/sec", not a hang).
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-5s}
status=0
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  echo "fuzz $pkg $name ($time)"
  if ! go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$time" -fuzzminimizetime 3s >/tmp/aos-fuzz.log 2>&1; then
    cat /tmp/aos-fuzz.log; status=1
  fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's#^\./##; s#:func #:#' | sort)
exit $status
