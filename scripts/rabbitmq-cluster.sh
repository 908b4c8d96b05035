#!/usr/bin/env bash
# A private three-node RabbitMQ cluster on loopback for the failover tests:
# three nodes of scripts/rabbitmq.sh with one Erlang cookie, one epmd and one
# user, each on its own AMQP port. State lives under $AOS_RABBIT_CLUSTER_DIR
# (default /tmp/aos-rabbit-cluster), one directory per node (n1 n2 n3).
#   rabbitmq-cluster.sh start       start the nodes, join n2 and n3 to n1 once,
#                                   wait until all three run; print the URL
#   rabbitmq-cluster.sh stop        stop every node, then epmd
#   rabbitmq-cluster.sh restart     the whole broker: stop all, start all at once
#   rabbitmq-cluster.sh kill N      SIGKILL node N (1-3)
#   rabbitmq-cluster.sh start-node N  start node N again; it rejoins the cluster
#   rabbitmq-cluster.sh url         the transport URL listing the three nodes
#   rabbitmq-cluster.sh ports       the three AMQP ports, n1 first
#   rabbitmq-cluster.sh ctl N ...   rabbitmqctl against node N
set -euo pipefail

base=${AOS_RABBIT_CLUSTER_DIR:-/tmp/aos-rabbit-cluster}
one=$(cd "$(dirname "$0")" && pwd)/rabbitmq.sh
mkdir -p "$base"

port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Ports, cookie and password are chosen once and remembered in cluster.env.
if [ ! -f "$base/cluster.env" ]; then
  port=5700
  taken() { # the three AMQP ports, their dist ports (+20000) and the epmd port
    local p
    for p in "$1" $(($1 + 1)) $(($1 + 2)) $(($1 + 20000)) $(($1 + 20001)) $(($1 + 20002)) $(($1 - 5672 + 14369)); do
      port_taken "$p" && return 0
    done
    return 1
  }
  while taken "$port"; do port=$((port + 3)); done
  cat >"$base/cluster.env" <<ENV
PORT1=$port
EPMD=$((port - 5672 + 14369))
COOKIE=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
ENV
fi
# shellcheck disable=SC1091
. "$base/cluster.env"

node() { # N cmd...: run rabbitmq.sh for node N
  local n=$1
  shift
  AOS_RABBIT_DIR=$base/n$n AOS_RABBIT_PORT=$((PORT1 + n - 1)) AOS_RABBIT_EPMD_PORT=$EPMD \
    AOS_RABBIT_COOKIE=$COOKIE AOS_RABBIT_PASS=$PASS "$one" "$@"
}

url() {
  local hosts=() n
  for n in 1 2 3; do hosts+=("aos:$PASS@127.0.0.1:$((PORT1 + n - 1))"); done
  (IFS=,; echo "rabbit://${hosts[*]}/aos")
}

running() { # how many nodes node 1's view of the cluster lists as running
  node 1 ctl -q cluster_status --formatter json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null || echo 0
}

wait_running() {
  for _ in $(seq 600); do
    [ "$(running)" = 3 ] && return 0
    sleep 0.2
  done
  echo "rabbitmq-cluster.sh: the three nodes did not all run within 120 s" >&2
  return 1
}

# start_all starts every node at once: after a whole-cluster stop each node
# waits in its boot for the peers it last saw, so they must come up together.
start_all() {
  local pids=() n status=0
  for n in 1 2 3; do
    node "$n" start >"$base/start-n$n.out" 2>&1 &
    pids+=($!)
  done
  for n in "${!pids[@]}"; do
    wait "${pids[$n]}" || { echo "rabbitmq-cluster.sh: node $((n + 1)) did not start:" >&2; cat "$base/start-n$((n + 1)).out" >&2; status=1; }
  done
  return $status
}

start() {
  if [ ! -f "$base/joined" ]; then
    node 1 start >/dev/null
    for n in 2 3; do
      node "$n" start >/dev/null
      node "$n" ctl -q stop_app
      node "$n" ctl -q join_cluster "aos-$PORT1@localhost"
      node "$n" ctl -q start_app
    done
    touch "$base/joined"
  else
    start_all
  fi
  wait_running
  url
}

stop() {
  local n
  for n in 3 2 1; do node "$n" stop; done
  # A node whose pid file was lost (its start interrupted) is found by its
  # home directory, which is under $base and nobody else's.
  pkill -KILL -f -- "-home $base/n[123]/home" 2>/dev/null || true
  if [ -f "$base/n1/epmd.pid" ]; then
    kill "$(cat "$base/n1/epmd.pid")" 2>/dev/null || true
    rm -f "$base"/n*/epmd.pid
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart)
    for n in 3 2 1; do node "$n" stop; done
    start_all
    wait_running
    ;;
  kill) node "${2:?node 1-3}" kill ;;
  start-node) node "${2:?node 1-3}" start >/dev/null; wait_running ;;
  url) url ;;
  ports) echo "$PORT1 $((PORT1 + 1)) $((PORT1 + 2))" ;;
  ctl) n=${2:?node 1-3}; shift 2; node "$n" ctl "$@" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
