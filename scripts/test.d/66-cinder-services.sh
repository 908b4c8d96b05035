#!/usr/bin/env bash
# The SharedLVM driver behind cinder's real services (issue 14, CI's fast
# tier): tests/cinder_services start cinder-api (noauth), cinder-scheduler and
# cinder-volume from Debian's packages on SQLite and a private RabbitMQ, with
# the seed's [sanlock] backend, in front of real agents on simulated hosts
# whose LVs are loop devices; they drive it with `openstack` and cinderclient
# as operators and nova do and check every step on the hosts' agents and in
# cinder's API. Then the attach benchmark through the API (printed, not
# asserted). Needs root and scripts/deps.d/cinder-services.pkgs: anything
# missing fails the stage.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-rabbit-66-cinder-services}
# The simulator, run as `$AOS_SIM_BIN simulate`, built from ./cmd/$sim.
sim=aos-lab
work=$(mktemp -d)
# Processes of this run (cinder's services, the simulator) all name $work on
# their command line; a test killed by its timeout leaves them running, so
# the exit stops any that are left, by pid (the check below fails the stage
# first).
cleanup() {
  local pid
  for pid in $(pgrep -f -- "$work/" || true); do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in $(pgrep -f -- "$work/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  bash scripts/rabbitmq.sh stop >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

missing=()
[ "$(id -u)" = 0 ] || missing+=("root (loop devices for the simulated LVs)")
for tool in pyflakes3 losetup /usr/bin/openstack /usr/bin/cinder /usr/bin/cinder-manage /usr/bin/cinder-api /usr/bin/cinder-scheduler /usr/bin/cinder-volume; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -r /etc/cinder/api-paste.ini ] || missing+=("/etc/cinder/api-paste.ini (cinder-common)")
(cd / && /usr/bin/python3 -c 'import cinder.cmd.volume, cinderclient.contrib.noauth, oslo_messaging') 2>/dev/null ||
  missing+=("python3-cinder, python3-cinderclient (scripts/deps.d/cinder-services.pkgs)")
if ((${#missing[@]})); then
  printf '66-cinder-services: missing %s\n' "${missing[@]}" >&2
  exit 1
fi

echo "pyflakes3: tests/cinder_services tests/cinder_driver"
pyflakes3 tests/cinder_services tests/cinder_driver

# The packages' init scripts must not have started cinder; nothing the tests
# start may outlive them.
system=$(pgrep -d ' ' -f '/etc/cinder/(cinder\.conf|cinder-api-uwsgi\.ini)' || true)
if [ -n "$system" ]; then
  echo "66-cinder-services: cinder services from the packages' init scripts are running (pids $system)" >&2
  exit 1
fi

AOS_TEST_AMQP_URL=$(bash scripts/rabbitmq.sh start | tail -n 1)
go build -o "$work/$sim" "./cmd/$sim"
export AOS_TEST_AMQP_URL AOS_SIM_BIN=$work/$sim AOS_TEST_WORK=$work
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# One process per module: each starts its own cluster and control plane.
passed=0 failed=0 status=0
for module in test_services bench_services; do
  log=$work/$module.log
  (cd tests/cinder_services && timeout 900 /usr/bin/python3 -W ignore -m unittest -v "$module") >"$log" 2>&1 || status=1
  grep -E '\.\.\. (ok|FAIL|ERROR)$|^(Ran |OK|FAILED|bench:)' "$log" || true
  if ! grep -q '^OK' "$log"; then
    status=1
    grep -E -A 60 '^(ERROR|FAIL):' "$log" | grep -v -E '^[0-9-]+ [0-9:.,]+ [0-9]+ (DEBUG|INFO)' | head -300
    grep -q -E '^(ERROR|FAIL):' "$log" || tail -50 "$log"
  fi
  ran=$(grep -oE '^Ran [0-9]+ test' "$log" | grep -oE '[0-9]+' || echo 0)
  bad=$(grep -oE '(failures|errors)=[0-9]+' "$log" | awk -F= '{s+=$2} END {print s+0}' || true)
  bad=${bad:-0}
  [ "$ran" = 0 ] && bad=1
  passed=$((passed + ran - bad)) failed=$((failed + bad))
done
# `make demo-cinder`'s story (scripts/demo_cinder.py) on this stage's broker:
# it exits non-zero if any step ends otherwise.
demo_log=$work/demo-cinder.log
if (PYTHONPATH=$PWD timeout 300 /usr/bin/python3 -W ignore scripts/demo_cinder.py "$AOS_TEST_AMQP_URL" "$AOS_SIM_BIN" "$work") >"$demo_log" 2>&1; then
  echo "demo-cinder: $(tail -n 1 "$demo_log")"
else
  echo "demo-cinder: FAILED"; tail -40 "$demo_log"; status=1
fi
# Nothing the tests started may outlive them.
if losetup -a | grep -q "$work"; then echo "loop devices left behind:"; losetup -a | grep "$work"; status=1; fi
left=$(pgrep -d ' ' -f -- "$work/" || true)
if [ -n "$left" ]; then echo "processes left behind (cinder services, simulator):"; ps -o pid,args -p "${left// /,}"; status=1; fi
echo "cinder-services: $passed passed, $failed failed"
[ $status = 0 ] && [ $failed = 0 ]
