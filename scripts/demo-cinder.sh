#!/usr/bin/env bash
# make demo-cinder: the demo's story through cinder's own services. Installs
# what is missing, starts a private RabbitMQ on loopback, runs agents for
# three simulated hosts behind Debian's cinder-api, cinder-scheduler and
# cinder-volume (scripts/demo_cinder.py), then stops everything it started
# (services and broker by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
bash scripts/deps.sh
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-demo-cinder-rabbit}
work=$(mktemp -d /tmp/aos-demo-cinder.XXXXXX)
cleanup() { bash scripts/rabbitmq.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "demo-cinder: starting a private RabbitMQ on 127.0.0.1 (state in $AOS_RABBIT_DIR)"
url=$(bash scripts/rabbitmq.sh start | tail -n 1)
go build -o bin/aos-lab ./cmd/aos-lab
PYTHONPATH=$PWD /usr/bin/python3 -W ignore scripts/demo_cinder.py "$url" "$PWD/bin/aos-lab" "$work"
echo "demo-cinder: cinder's config, database and logs kept in $work"
