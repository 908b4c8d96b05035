#!/usr/bin/env bash
# RPC against a real RabbitMQ on loopback: Go integration tests (the cluster
# view's among them), then the Python oslo.messaging RPCClient contract
# suite against the Go test server.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
# A broker of our own per run: a concurrent run elsewhere must not stop it.
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-$work/rabbit} AOS_RABBIT_TLS=1
export AOS_RABBIT_SH=$PWD/scripts/rabbitmq.sh AOS_TEST_TLS_DIR=$AOS_RABBIT_DIR/tls
trap 'bash scripts/rabbitmq.sh stop; rm -rf "$work"' EXIT

AOS_TEST_AMQP_URL=$(bash scripts/rabbitmq.sh start)
AOS_TEST_AMQPS_URL=$(bash scripts/rabbitmq.sh tls-url)
export AOS_TEST_AMQP_URL AOS_TEST_AMQPS_URL
echo "broker: $(sed 's#://\([^:]*\):[^@]*@#://\1:***@#' <<<"$AOS_TEST_AMQP_URL")"

go_status=0
go test -tags integration -race -count=1 ./agent/rpc/... 2>&1 | tee "$work/go.log" || go_status=1
# The cluster view on simulated agents through the broker: planted mistakes
# found by the view and by the alert rules on the agents' scrapes; its
# cost for 32 hosts (printed).
go test -tags integration -count=1 -v ./agent/cluster/ >"$work/cluster.log" 2>&1 || go_status=1
grep -E '^(--- |cluster view|ok|FAIL)' "$work/cluster.log" || true
grep -q '^ok' "$work/cluster.log" || { grep -v '^=== ' "$work/cluster.log" | tail -80; go_status=1; }

go build -o "$work/rpctestserver" ./internal/rpctestserver
py_status=0 passed=0 failed=0
for suite in tests/contract/test_rpc_contract.py tests/contract/test_rpc_tls_queues.py; do
  log=$work/$(basename "$suite" .py).log
  AOS_RPCTESTSERVER=$work/rpctestserver \
    timeout 600 /usr/bin/python3 -W ignore::ResourceWarning "$suite" 2>&1 |
    grep -v -e '^Connection failed: ' -e 'is unreachable: ' -e '^Received method (60, 30) during closing' | tee "$log" || true
  grep -q '^OK' "$log" || py_status=1
  ran=$(grep -oE '^Ran [0-9]+ test' "$log" | grep -oE '[0-9]+' || echo 0)
  bad=$(grep -oE '(failures|errors)=[0-9]+' "$log" | awk -F= '{s+=$2} END {print s+0}' || true)
  bad=${bad:-0}
  if [ "$ran" = 0 ]; then bad=1; fi
  passed=$((passed + ran - bad)) failed=$((failed + bad))
done
echo "rpc-go-integration: $([ $go_status = 0 ] && echo ok || echo FAILED)"
echo "rpc-contract: $passed passed, $failed failed"
[ $go_status = 0 ] && [ $py_status = 0 ]
