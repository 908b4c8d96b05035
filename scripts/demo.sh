#!/usr/bin/env bash
# README command 1: installs what is missing, starts a private RabbitMQ on
# loopback, runs agents for three simulated hosts through the operator story,
# then stops everything it started (broker by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
bash scripts/deps.sh
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-demo-rabbit}
work=$(mktemp -d /tmp/aos-demo.XXXXXX)
cleanup() { bash scripts/rabbitmq.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "demo: starting a private RabbitMQ on 127.0.0.1 (state in $AOS_RABBIT_DIR)"
url=$(bash scripts/rabbitmq.sh start | tail -n 1)
go build -o bin/aos-lab ./cmd/aos-lab
./bin/aos-lab demo --transport-url "$url" --work-dir "$work" "$@"
echo "demo: agent state and logs kept in $work"
