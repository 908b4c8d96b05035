#!/usr/bin/env bash
# RPC benchmark: latency p50/p99 and throughput of a trivial call through a
# real private RabbitMQ, for the Go agent, a real Python oslo.messaging
# server and a bare responder (the broker floor), in one run.
# Extra arguments go to bench/rpc (e.g. -duration 10s -callers 64).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-rabbit-bench}
bash scripts/deps.sh >/dev/null
trap 'bash scripts/rabbitmq.sh stop' EXIT
url=$(bash scripts/rabbitmq.sh start)
echo "cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
go run ./bench/rpc -url "$url" "$@"
