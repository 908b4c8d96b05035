#!/usr/bin/env bash
# A private RabbitMQ node on loopback for tests, demos and the lab, run
# without systemd. State (mnesia, logs, cookie, chosen ports) lives under
# $AOS_RABBIT_DIR (default /tmp/aos-rabbit), so a restart keeps users, port
# and node name.
#   rabbitmq.sh start    start (idempotent), wait until ready, print the URL
#   rabbitmq.sh stop     stop the node and its epmd by pid (idempotent)
#   rabbitmq.sh kill     SIGKILL the node (a crash; epmd stays)
#   rabbitmq.sh restart  stop then start, same port and data
#   rabbitmq.sh url      print the transport URL (rabbit://user:pass@127.0.0.1:PORT/vhost)
#   rabbitmq.sh ctl ...  run rabbitmqctl against the node
#   rabbitmq.sh status   exit 0 when the node answers
#   rabbitmq.sh tls-url  print the amqps:// URL of the TLS listener
# Env: AOS_RABBIT_DIR, AOS_RABBIT_PORT (default 5672 unless taken),
# AOS_RABBIT_TLS=1: also a loopback TLS listener (AMQP port + 1000) with a
# throw-away CA in $AOS_RABBIT_DIR/tls: ca.pem, server.pem/-key.pem,
# client.pem/-key.pem, and a second CA (other-ca.pem, other-client.pem/
# -key.pem) the broker does not trust. Peers that present a certificate are
# verified (verify_peer); clients without one may still log in by password.
# For clustered nodes (scripts/rabbitmq-cluster.sh): AOS_RABBIT_EPMD_PORT (one
# epmd shared by the nodes, left running by stop), AOS_RABBIT_COOKIE (the
# Erlang cookie), AOS_RABBIT_PASS (the password, the same on every node).
set -euo pipefail

dir=${AOS_RABBIT_DIR:-/tmp/aos-rabbit}
bin=/usr/lib/rabbitmq/bin
mkdir -p "$dir"

port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Ports and credentials are chosen once and remembered in $dir/ports.env.
init_env() {
  # A remembered port that someone else took since is chosen afresh (the
  # node name follows the port: a new node, whose data must be new too).
  if [ -f "$dir/ports.env" ] && [ -z "${AOS_RABBIT_PORT:-}" ] && ! alive &&
    port_taken "$(sed -n 's/^AMQP_PORT=//p' "$dir/ports.env")"; then
    rm -f "$dir/ports.env"
  fi
  if [ ! -f "$dir/ports.env" ]; then
    local port=${AOS_RABBIT_PORT:-5672}
    if [ -z "${AOS_RABBIT_PORT:-}" ]; then
      while port_taken "$port" || port_taken $((port + 20000)) || port_taken $((port + 1000)); do port=$((port + 1)); done
    fi
    # A node of that port left by an earlier run keeps its users with
    # their old passwords: the new credentials would be refused.
    rm -rf "$dir/mnesia/aos-$port@localhost" "$dir/mnesia/aos-$port@localhost"-*
    local pass
    pass=${AOS_RABBIT_PASS:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
    cat >"$dir/ports.env" <<ENV
AMQP_PORT=$port
DIST_PORT=$((port + 20000))
EPMD_PORT=$((port - 5672 + 14369))
RMQ_USER=aos
RMQ_PASS=$pass
RMQ_VHOST=aos
ENV
  fi
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  EPMD_PORT=${AOS_RABBIT_EPMD_PORT:-$EPMD_PORT}
  export RABBITMQ_NODENAME="aos-$AMQP_PORT@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$AMQP_PORT RABBITMQ_DIST_PORT=$DIST_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$EPMD_PORT
  export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/rabbit.pid
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export HOME=$dir/home PATH=$bin:$PATH
  mkdir -p "$HOME"
  if [ -n "${AOS_RABBIT_COOKIE:-}" ] && [ "$(cat "$HOME/.erlang.cookie" 2>/dev/null)" != "$AOS_RABBIT_COOKIE" ]; then
    rm -f "$HOME/.erlang.cookie"
    (umask 077; printf '%s' "$AOS_RABBIT_COOKIE" >"$HOME/.erlang.cookie")
    chmod 400 "$HOME/.erlang.cookie"
  fi
  : >"$RABBITMQ_CONF_ENV_FILE"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$AMQP_PORT" >"$RABBITMQ_CONFIG_FILE"
  TLS_PORT=$((AMQP_PORT + 1000))
  if [ "${AOS_RABBIT_TLS:-}" = 1 ]; then
    make_certs
    cat >>"$RABBITMQ_CONFIG_FILE" <<CONF
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $dir/tls/ca.pem
ssl_options.certfile = $dir/tls/server.pem
ssl_options.keyfile = $dir/tls/server-key.pem
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
CONF
  fi
  echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
}

# make_certs creates the throw-away CAs and certificates once.
make_certs() {
  local t=$dir/tls
  [ -f "$t/other-client.pem" ] && return
  mkdir -p "$t"
  ossl() { openssl "$@" >/dev/null 2>&1; }
  for ca in ca other-ca; do
    ossl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=aos-test-$ca" -keyout "$t/$ca-key.pem" -out "$t/$ca.pem" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  done
  # name ca leaf extensions
  issue() {
    ossl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$t/$2-key.pem" -out "$t/$2.csr"
    # Extensions strict verifiers (Python's VERIFY_X509_STRICT) require.
    printf '%s\n' "$3" basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
      subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >"$t/$2.ext"
    ossl x509 -req -in "$t/$2.csr" -CA "$t/$1.pem" -CAkey "$t/$1-key.pem" -CAcreateserial -days 30 \
      -extfile "$t/$2.ext" -out "$t/$2.pem"
    rm -f "$t/$2.csr" "$t/$2.ext"
  }
  issue ca server 'subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth'
  issue ca client 'extendedKeyUsage=clientAuth'
  issue other-ca other-client 'extendedKeyUsage=clientAuth'
  chmod 600 "$t"/*-key.pem
}

tls_url() { echo "amqps://$RMQ_USER:$RMQ_PASS@127.0.0.1:$TLS_PORT/$RMQ_VHOST"; }

url() { echo "rabbit://$RMQ_USER:$RMQ_PASS@127.0.0.1:$AMQP_PORT/$RMQ_VHOST"; }

# alive: the node runs. rabbit.pid is the node's own; beam.pid, our copy made
# once it was ready, is missing when whoever started it was interrupted.
alive() {
  local f
  for f in "$dir/beam.pid" "$dir/rabbit.pid"; do
    [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && return 0
  done
  return 1
}

start() {
  if alive && rabbitmqctl -q status >/dev/null 2>&1; then url; return; fi
  if port_taken "$AMQP_PORT" || { [ "${AOS_RABBIT_TLS:-}" = 1 ] && port_taken "$TLS_PORT"; }; then
    echo "rabbitmq.sh: port $AMQP_PORT (or its TLS port) is taken by another process" >&2
    exit 1
  fi
  [ -x "$bin/rabbitmq-server" ] || { echo "rabbitmq.sh: rabbitmq-server not installed (scripts/deps.sh)" >&2; exit 1; }
  rm -f "$RABBITMQ_PID_FILE"
  # From the node's own directory: a node that dies writes its crash dumps
  # (erl_crash.dump, MnesiaCore.*) to its working directory.
  (cd "$dir" || exit; setsid nohup rabbitmq-server >"$dir/server.out" 2>&1 </dev/null &)
  if ! rabbitmqctl -q wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
    echo "rabbitmq.sh: broker did not start; tail of $dir/server.out:" >&2
    tail -20 "$dir/server.out" >&2
    exit 1
  fi
  cp "$RABBITMQ_PID_FILE" "$dir/beam.pid"
  ss -Hltnp "sport = :$EPMD_PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 >"$dir/epmd.pid" || true
  if ! rabbitmqctl -q list_users | grep -q "^$RMQ_USER\b"; then
    rabbitmqctl -q add_vhost "$RMQ_VHOST" >/dev/null
    rabbitmqctl -q add_user "$RMQ_USER" "$RMQ_PASS" >/dev/null
    rabbitmqctl -q set_permissions -p "$RMQ_VHOST" "$RMQ_USER" '.*' '.*' '.*' >/dev/null
  else
    # The node's data may predate ports.env (an interrupted run, a node
    # directory reused): the remembered password is the one handed out.
    rabbitmqctl -q change_password "$RMQ_USER" "$RMQ_PASS" >/dev/null
  fi
  url
}

stop_pid() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$f"
}

stop() {
  stop_pid "$dir/beam.pid"
  stop_pid "$dir/rabbit.pid" # a node whose start was interrupted
  if [ -z "${AOS_RABBIT_EPMD_PORT:-}" ]; then stop_pid "$dir/epmd.pid"; fi
}

# crash SIGKILLs the node by the pid it wrote itself: beam.pid is missing
# when whoever started it was stopped before the node was ready.
crash() {
  local pid
  pid=$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || cat "$dir/beam.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$dir/beam.pid"
}

init_env
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  kill) crash ;;
  restart) stop; start ;;
  url) url ;;
  tls-url) tls_url ;;
  ctl) shift; rabbitmqctl "$@" ;;
  status) alive && rabbitmqctl -q status >/dev/null 2>&1 ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
