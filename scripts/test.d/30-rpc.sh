#!/usr/bin/env bash
# RPC against a real RabbitMQ on loopback: Go integration tests, then the
# Python oslo.messaging RPCClient contract suite against the Go test server.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AOS_RABBIT_DIR=${AOS_RABBIT_DIR:-/tmp/aos-rabbit-30-rpc}
work=$(mktemp -d)
trap 'bash scripts/rabbitmq.sh stop; rm -rf "$work"' EXIT

AOS_TEST_AMQP_URL=$(bash scripts/rabbitmq.sh start)
export AOS_TEST_AMQP_URL
echo "broker: $(sed 's#://\([^:]*\):[^@]*@#://\1:***@#' <<<"$AOS_TEST_AMQP_URL")"

go_status=0
go test -tags integration -race -count=1 ./agent/rpc/... 2>&1 | tee "$work/go.log" || go_status=1

go build -o "$work/rpctestserver" ./internal/rpctestserver
py_status=0
AOS_RPCTESTSERVER=$work/rpctestserver AOS_RABBIT_SH=$PWD/scripts/rabbitmq.sh \
  /usr/bin/python3 -W ignore::ResourceWarning tests/contract/test_rpc_contract.py 2>&1 |
  grep -v -e '^Connection failed: ' -e 'is unreachable: ' | tee "$work/py.log" || true
grep -q '^OK' "$work/py.log" || py_status=1
ran=$(grep -oE '^Ran [0-9]+ test' "$work/py.log" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '(failures|errors)=[0-9]+' "$work/py.log" | awk -F= '{s+=$2} END {print s+0}' || true)
failed=${failed:-0}
if [ "$ran" = 0 ]; then failed=1; fi
passed=$((ran - failed))
echo "rpc-go-integration: $([ $go_status = 0 ] && echo ok || echo FAILED)"
echo "rpc-contract: $passed passed, $failed failed"
[ $go_status = 0 ] && [ $py_status = 0 ]
