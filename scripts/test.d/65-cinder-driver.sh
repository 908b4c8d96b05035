#!/usr/bin/env bash
# The cinder SharedLVM driver (cinder_sharedlvm_driver) inside Debian's cinder:
# pyflakes3 on the project's Python code, then tests/cinder_driver on cinder's
# own harness (a real cinder-volume service, the v3 attachments API nova
# calls) against real agents on simulated hosts through a private RabbitMQ,
# their LVs backed by loop devices; then the attach benchmark (printed, not
# asserted). Needs root (loop devices) and scripts/deps.d/cinder.pkgs: anything
# missing fails the stage.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-rabbit-65-cinder}
work=$(mktemp -d)
trap 'bash scripts/rabbitmq.sh stop >/dev/null; rm -rf "$work"' EXIT

missing=()
[ "$(id -u)" = 0 ] || missing+=("root (loop devices for the simulated LVs)")
for tool in pyflakes3 qemu-img losetup dd dmidecode; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
(cd / && /usr/bin/python3 -c 'import cinder.tests.unit.test, ddt, oslotest, os_brick') 2>/dev/null ||
  missing+=("python3-cinder and its test libraries (scripts/deps.d/cinder.pkgs)")
if ((${#missing[@]})); then
  printf '65-cinder-driver: missing %s\n' "${missing[@]}" >&2
  exit 1
fi

echo "pyflakes3: cinder_sharedlvm_driver tests"
pyflakes3 cinder_sharedlvm_driver tests

AOS_TEST_AMQP_URL=$(bash scripts/rabbitmq.sh start | tail -n 1)
go build -o "$work/aos-lab" ./cmd/aos-lab
export AOS_TEST_AMQP_URL AOS_SIM_BIN=$work/aos-lab AOS_TEST_WORK=$work
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# One process per module: each starts its own simulated cluster.
passed=0 failed=0 status=0
for module in test_sharedlvm test_errors bench_attach; do
  log=$work/$module.log
  (cd tests/cinder_driver && timeout 1800 /usr/bin/python3 -W ignore -m unittest -v "$module") >"$log" 2>&1 || status=1
  grep -E '\.\.\. (ok|FAIL|ERROR)$|^(Ran |OK|FAILED|bench:)' "$log" || true
  if ! grep -q '^OK' "$log"; then
    status=1
    grep -E -A 40 '^(ERROR|FAIL):' "$log" | grep -v -E '^[0-9-]+ [0-9:,]+ (DEBUG|INFO)' | head -200
  fi
  ran=$(grep -oE '^Ran [0-9]+ test' "$log" | grep -oE '[0-9]+' || echo 0)
  bad=$(grep -oE '(failures|errors)=[0-9]+' "$log" | awk -F= '{s+=$2} END {print s+0}' || true)
  bad=${bad:-0}
  [ "$ran" = 0 ] && bad=1
  passed=$((passed + ran - bad)) failed=$((failed + bad))
done
# Nothing of the simulated clusters may outlive them.
if losetup -a | grep -q "$work"; then echo "loop devices left behind:"; losetup -a | grep "$work"; status=1; fi
echo "cinder-driver: $passed passed, $failed failed"
[ $status = 0 ] && [ $failed = 0 ]
