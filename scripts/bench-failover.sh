#!/usr/bin/env bash
# Broker failover figures (issue 15): the Go agent behind a private three-node
# RabbitMQ cluster on loopback, a real oslo.messaging client looping calls;
# FAILOVER_KILLS node kills (default 20) and FAILOVER_RESTARTS whole-cluster
# restarts (default 20), once with quorum queues and once with oslo's classic
# transient queues. Prints the figures; JSON reports go to $OUT (default
# /tmp/aos-bench-failover).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
out=${OUT:-/tmp/aos-bench-failover}
mkdir -p "$out"
export AOS_RABBIT_CLUSTER_DIR=${AOS_RABBIT_CLUSTER_DIR:-$out/cluster}
export FAILOVER_KILLS=${FAILOVER_KILLS:-20} FAILOVER_RESTARTS=${FAILOVER_RESTARTS:-20}
bash scripts/deps.sh >/dev/null
trap 'bash scripts/rabbitmq-cluster.sh stop' EXIT
bash scripts/rabbitmq-cluster.sh start >/dev/null
go build -o "$out/rpctestserver" ./internal/rpctestserver
echo "cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for queues in ${FAILOVER_MODES:-quorum classic}; do
  AOS_CLUSTER_SH=$PWD/scripts/rabbitmq-cluster.sh AOS_RPCTESTSERVER=$out/rpctestserver FAILOVER_QUEUES=$queues \
    FAILOVER_REPORT=$out/failover-$queues.json \
    /usr/bin/python3 -W ignore::ResourceWarning tests/contract/test_rpc_failover.py 2>&1 |
    grep -v -e '^Connection failed' -e 'is unreachable' -e '^Received method' | tee "$out/failover-$queues.log" || true
  grep -q '^OK' "$out/failover-$queues.log" || status=1
done
exit $status
