#!/usr/bin/env bash
# Broker failover against a real three-node RabbitMQ cluster on loopback
# (scripts/rabbitmq-cluster.sh): the Go test server behind it with quorum
# queues, a real oslo.messaging client looping calls; two kills of the node
# the agent is on and one whole-cluster restart. No call may be applied twice.
# make bench-failover runs 20 + 20 of each, with quorum and classic queues.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
export AOS_RABBIT_CLUSTER_DIR=$work/cluster
trap 'bash scripts/rabbitmq-cluster.sh stop; rm -rf "$work"' EXIT
bash scripts/rabbitmq-cluster.sh start >/dev/null
go build -o "$work/rpctestserver" ./internal/rpctestserver
AOS_CLUSTER_SH=$PWD/scripts/rabbitmq-cluster.sh AOS_RPCTESTSERVER=$work/rpctestserver \
  FAILOVER_KILLS=2 FAILOVER_RESTARTS=1 FAILOVER_QUEUES=quorum \
  timeout 600 /usr/bin/python3 -W ignore::ResourceWarning tests/contract/test_rpc_failover.py 2>&1 |
  grep -v -e '^Connection failed' -e 'is unreachable' -e '^Received method' -e '^Failed to publish' \
    -e '^Unable to connect' | tee "$work/failover.log" || true
grep -q '^OK' "$work/failover.log"
