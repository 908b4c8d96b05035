#!/usr/bin/env bash
# The volume API end to end: Debian's oslo.messaging RPCClient runs the
# SharedLVM driver's story against real agents on simulated hosts through a
# real broker; then README command 1 (the demo) must tell its story cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-rabbit-60-api}
work=$(mktemp -d)
trap 'bash scripts/rabbitmq.sh stop >/dev/null; rm -rf "$work"' EXIT
AOS_TEST_AMQP_URL=$(bash scripts/rabbitmq.sh start | tail -n 1)
export AOS_TEST_AMQP_URL
go build -o "$work/aos-lab" ./cmd/aos-lab
AOS_SIM_BIN=$work/aos-lab /usr/bin/python3 -W ignore::ResourceWarning tests/contract/test_driver_story.py 2>&1 | tee "$work/py.log" || true
ran=$(grep -oE '^Ran [0-9]+ test' "$work/py.log" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '(failures|errors)=[0-9]+' "$work/py.log" | awk -F= '{s+=$2} END {print s+0}' || true)
[ "$ran" = 0 ] && failed=1
echo "driver-story: $((ran - failed)) passed, $failed failed"
demo_status=0
"$work/aos-lab" demo --transport-url "$AOS_TEST_AMQP_URL" --metrics-listen 127.0.0.1:0 --work-dir "$work" >"$work/demo.log" 2>&1 || demo_status=1
tail -n 35 "$work/demo.log"
grep -q '^OK' "$work/py.log" && [ $demo_status = 0 ]
