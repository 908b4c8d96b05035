#!/usr/bin/env bash
# Real-kernel lab: qemu guests with lvm2, lvmlockd, sanlock and multipath on
# a shared LUN. Fails (never skips) when it cannot run: it needs root and qemu.
# Every qemu it started is killed by pid on exit, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "90-lab: needs root (qemu with 9p, debootstrap)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "90-lab: qemu-system-x86_64 missing (scripts/deps.d/lab.pkgs)"; exit 1; }

export LAB_WORK=$(mktemp -d /tmp/aos-lab.XXXXXX)
export LAB_OUT=${LAB_OUT:-$PWD/.out/lab}
rm -rf "$LAB_OUT" && mkdir -p "$LAB_OUT"
cleanup() {
  for f in "$LAB_WORK"/*/h*/qemu.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$LAB_WORK"
}
trap cleanup EXIT

start=$(date +%s)
bash scripts/lab.sh build-image >"$LAB_OUT/image-dir"
echo "90-lab: image ready in $(( $(date +%s) - start ))s ($(cat "$LAB_OUT/image-dir"))"
# Each test prints its own scenario and operation timing tables.
status=0
LAB_LOG="$LAB_OUT/go-test.log" bash scripts/lab.sh test -timeout 45m || status=$?
echo
echo "90-lab: per-test timings"
grep -E '^--- (PASS|FAIL): TestLab' "$LAB_OUT/go-test.log" | awk '{ sub(/:$/, "", $2); printf "  %-28s %-5s %s\n", $3, $2, $4 }' || true
if [ "$status" != 0 ]; then
  # CI shows the end of the output: the failures' own words belong here, not
  # only among the scenario tables above (t.Fatalf's file:line message and,
  # for the Python stories, unittest's FAIL/ERROR headers and assertions).
  echo
  echo "90-lab: why (the first lines of each failure; all in $LAB_OUT/go-test.log)"
  # A failed test's last message (and 8 lines of it) comes right before its
  # "--- FAIL" line.
  awk '/^ *--- FAIL: / { if (msg != "" && msg != last) printf "%s", msg; last = msg; print; n = 99; next }
       /^ *(--- (PASS|SKIP):|=== RUN) / { msg = ""; n = 99; next }
       /^ +[a-z_]+_test\.go:[0-9]+: / { n = 0; msg = "" }
       n < 9 { msg = msg $0 "\n"; n++ }' "$LAB_OUT/go-test.log" | head -60 || true
  grep -h -E '^(FAIL|ERROR): |^[A-Za-z_.]*(Error|Exception): ' "$LAB_OUT"/*/*.log 2>/dev/null | head -20 || true
fi
exit $status
