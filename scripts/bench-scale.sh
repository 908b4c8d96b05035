#!/usr/bin/env bash
# Cluster scale on the simulator (issue 15): 32 agents sharing a VG of 2,000
# LVs behind one private RabbitMQ; creation, an idle minute (CPU, memory), a
# refresh fanout, the cluster view, 500 concurrent activations and their
# deactivations. Extra arguments go to bench/scale (-hosts, -lvs, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-rabbit-bench-scale}
bash scripts/deps.sh >/dev/null
trap 'bash scripts/rabbitmq.sh stop' EXIT
url=$(bash scripts/rabbitmq.sh start)
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
go run ./bench/scale -url "$url" "$@"
