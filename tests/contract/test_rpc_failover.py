"""Broker failover: the Go agent behind a real three-node RabbitMQ cluster on
loopback, a real oslo.messaging RPCClient looping calls at it.

Each kill SIGKILLs the node the agent's listen connection is on, waits for
service, then starts the node again; each restart stops the whole cluster and
starts it again. Figures per event, printed at the end (and as JSON to
$FAILOVER_REPORT when set):
  - agent back: a kill: from the agent's seeing its connection reset to its
    "rpc reconnected" (consuming on another node); a restart: from the first
    node accepting AMQP connections again to "rpc reconnected";
  - no service: from the same start to the first successful reply to a call
    sent after it (the oslo client's own reconnect counts too: it has
    connections on more than one node);
  - queue ready (restart, quorum): from a node accepting to a passive
    declare of the agent's queue succeeding (the queue needs a majority of
    its members), and the agent's reconnect after that;
  - calls lost: calls that got no reply, split by whether their effect ran;
  - calls applied twice: must be 0 (the agent's dedupe of redeliveries).

Env:
  AOS_CLUSTER_SH      scripts/rabbitmq-cluster.sh (cluster already started)
  AOS_RPCTESTSERVER   the Go test server binary
  FAILOVER_KILLS, FAILOVER_RESTARTS   how many of each (default 2, 2)
  FAILOVER_QUEUES     quorum (default: rabbit_quorum_queue, what a cluster
                      should run) or classic (oslo's transient default)
  FAILOVER_REPORT     file for the figures as JSON
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import amqp
import oslo_messaging
from oslo_config import cfg

CLUSTER_SH = os.environ["AOS_CLUSTER_SH"]
SERVER_BIN = os.environ["AOS_RPCTESTSERVER"]
KILLS = int(os.environ.get("FAILOVER_KILLS", "2"))
RESTARTS = int(os.environ.get("FAILOVER_RESTARTS", "2"))
QUEUES = os.environ.get("FAILOVER_QUEUES", "quorum")
REPORT = os.environ.get("FAILOVER_REPORT")
TOPIC = "aos-failover-" + uuid.uuid4().hex[:8]
EXCHANGE = TOPIC  # its own: quorum queues make the exchange durable, oslo's default is not
CALLERS = 4
CALL_TIMEOUT = 60  # oslo's rpc_response_timeout default


def cluster(*args):
    return subprocess.run([CLUSTER_SH, *args], check=True, capture_output=True, text=True).stdout.strip()


URL = cluster("url")
PORTS = [int(p) for p in cluster("ports").split()]


def accepting(port):
    """The node answers the AMQP protocol header (its listener is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.settimeout(0.5)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(8)[:1] == b"\x01"  # a connection.start frame
    except OSError:
        return False


def queue_serves(port, queue):
    """The node at port answers a passive declare of queue: a quorum queue
    after a whole-cluster restart needs a majority of its members up first,
    so a node accepting connections is not yet a node that can serve it."""
    creds = URL.split("://", 1)[1].split("@", 1)[0]
    user, password = creds.split(":", 1)
    try:
        conn = amqp.Connection(host=f"127.0.0.1:{port}", userid=user, password=password,
                               virtual_host=URL.rsplit("/", 1)[1], connect_timeout=1)
        conn.connect()
        try:
            conn.channel().queue_declare(queue=queue, passive=True)
            return True
        finally:
            conn.collect()
    except Exception:  # refused, booting, or the queue not available yet
        return False


def connections():
    """(node index, connection name) of every connection the cluster has."""
    for n in (1, 2, 3):
        try:
            out = cluster("ctl", str(n), "-q", "list_connections", "port", "client_properties", "--formatter", "json")
        except subprocess.CalledProcessError:
            continue  # that node is down; ask the next
        return [(PORTS.index(c["port"]) + 1, {k: v for k, _, v in c["client_properties"]}.get("connection_name", ""))
                for c in json.loads(out or "[]")]
    raise AssertionError("no node answers")


def agent_node():
    """1-based index of the node holding the agent's listen connection."""
    for node, name in connections():
        if name.startswith("rpctestserver:") and name.endswith(":listen"):
            return node
    raise AssertionError("the agent's listen connection is on no node")


def client_nodes():
    """Nodes this process's oslo client has connections on (its names are
    <program>:<pid>:<uuid>)."""
    return {node for node, name in connections() if name.split(":")[1:2] == [str(os.getpid())]}


class Failover(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.NamedTemporaryFile(prefix="agent-failover-", suffix=".log", delete=False)
        argv = [SERVER_BIN, "-url", URL, "-topic", TOPIC, "-server", "agent1", "-exchange", EXCHANGE,
                "-reply-retry", "60s"]
        if QUEUES == "quorum":
            argv.append("-quorum")
        cls.agent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=cls.log, text=True)
        line = cls.agent.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"agent did not start: {line!r}; log {cls.log.name}")
        conf = cfg.CONF
        conf_file = tempfile.NamedTemporaryFile("w", prefix="failover-", suffix=".conf", delete=False)
        conf_file.write(f"[oslo_messaging_rabbit]\nrabbit_quorum_queue = {QUEUES == 'quorum'}\n")
        conf_file.close()
        conf(["--config-file", conf_file.name], project="aos-failover")
        # The client starts on another node than the agent (the URL rotated),
        # so a kill of the agent's node measures the agent's failover.
        hosts = URL.split("://", 1)[1].rsplit("/", 1)
        nodes = hosts[0].split(",")
        client_url = "rabbit://" + ",".join(nodes[1:] + nodes[:1]) + "/" + hosts[1]
        cls.transport = oslo_messaging.get_rpc_transport(conf, client_url)
        cls.client = oslo_messaging.get_rpc_client(
            cls.transport, oslo_messaging.Target(topic=TOPIC, exchange=EXCHANGE, server="agent1"),
            timeout=CALL_TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.transport.cleanup()
        cls.agent.terminate()
        cls.agent.wait(30)

    def logged(self, msg):
        """Times of the agent's log lines saying msg."""
        times = []
        with open(self.log.name) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == msg:
                    times.append(rec["ts"])
        return times

    def test_failover_under_load(self):
        stop = threading.Event()
        outcomes = []  # (sent, done, key, ok)
        lock = threading.Lock()

        def caller():
            while not stop.is_set():
                key = uuid.uuid4().hex
                sent = time.time()
                try:
                    self.client.call({"request_id": "req-" + key}, "count", key=key)
                    ok = True
                except Exception:  # no reply: the broker lost it, or the timeout
                    ok = False
                with lock:
                    outcomes.append((sent, time.time(), key, ok))

        threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
        for t in threads:
            t.start()
        time.sleep(2)

        def first_reply_after(t0, deadline=120):
            end = time.time() + deadline
            while time.time() < end:
                with lock:
                    done = [d for s, d, _, ok in outcomes if ok and s >= t0]
                if done:
                    return min(done)
                time.sleep(0.05)
            self.fail(f"no reply to a call sent after {t0:.1f} within {deadline} s")

        def agent_logs_after(msg, t0, deadline=120):
            end = time.time() + deadline
            while time.time() < end:
                later = [ts for ts in self.logged(msg) if ts >= t0]
                if later:
                    return min(later)
                time.sleep(0.05)
            self.fail(f"the agent did not log {msg!r} within {deadline} s; log {self.log.name}")

        events = []
        try:
            for _ in range(KILLS):
                node = agent_node()
                client_hit = node in client_nodes()
                t0 = time.time()
                cluster("kill", str(node))
                self.assertFalse(accepting(PORTS[node - 1]), f"node {node} still accepts after its kill")
                # From the agent's seeing its connection reset (at once, on
                # loopback) to its consuming again on another node.
                lost = agent_logs_after("rpc connection lost, reconnecting", t0)
                back = agent_logs_after("rpc reconnected", lost)
                served = first_reply_after(lost)
                events.append({"kind": "kill", "node": node, "client_on_node": client_hit,
                               "agent_back_s": back - lost, "no_service_s": served - lost})
                cluster("start-node", str(node))
                time.sleep(1)
            for _ in range(RESTARTS):
                t_stop = time.time()
                restart = threading.Thread(target=cluster, args=("restart",))
                restart.start()
                time.sleep(1)  # the first node is down by then
                while any(accepting(p) for p in PORTS):
                    time.sleep(0.05)
                while not any(accepting(p) for p in PORTS):
                    time.sleep(0.05)
                t_accept = time.time()
                ready = {}
                if QUEUES == "quorum":
                    end = time.time() + 120
                    while not any(queue_serves(p, f"{TOPIC}.agent1") for p in PORTS):
                        self.assertLess(time.time(), end, "the agent's quorum queue unservable for 120 s")
                        time.sleep(0.05)
                    ready["queue_ready_s"] = time.time() - t_accept
                back = agent_logs_after("rpc reconnected", t_accept - 0.05)
                served = first_reply_after(t_accept)
                restart.join(300)
                events.append({"kind": "restart", "agent_back_s": back - t_accept,
                               "no_service_s": served - t_accept, "down_s": t_accept - t_stop, **ready})
                if ready:
                    # What the agent's backoff owns: the time from its queue
                    # being servable again to its consuming (negative: it was
                    # consuming before the probe's passive declare got through).
                    events[-1]["agent_after_queue_ready_s"] = back - t_accept - ready["queue_ready_s"]
                time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(CALL_TIMEOUT + 30)

        counts = self.client.prepare(timeout=30).call({}, "counts")
        failed = [key for _, _, key, ok in outcomes if not ok]
        twice = [k for k, v in counts.items() if v > 1]
        lost_unapplied = [k for k in failed if counts.get(k, 0) == 0]
        report = {
            "queues": QUEUES, "callers": CALLERS, "calls": len(outcomes), "failed_calls": len(failed),
            "failed_unapplied": len(lost_unapplied), "failed_applied": len(failed) - len(lost_unapplied),
            "applied_twice": len(twice), "events": events,
        }
        # A kill of a node the oslo client also had a connection on measures
        # the client's reconnect (kombu's) as well: reported apart.
        groups = {
            "kill": [e for e in events if e["kind"] == "kill"],
            "kill_agent_node_only": [e for e in events if e["kind"] == "kill" and not e["client_on_node"]],
            "restart": [e for e in events if e["kind"] == "restart"],
        }
        for group, evs in groups.items():
            if evs:
                for fig in ("agent_back_s", "no_service_s", "queue_ready_s", "agent_after_queue_ready_s"):
                    vals = [e[fig] for e in evs if fig in e]
                    if vals:
                        report[f"{group}_{fig}"] = {"n": len(vals), "median": statistics.median(vals), "max": max(vals)}
        if REPORT:
            with open(REPORT, "w") as f:
                json.dump(report, f, indent=1)
        print(f"\n  failover ({QUEUES} queues, {KILLS} kills, {RESTARTS} restarts): {len(outcomes)} calls, "
              f"{len(failed)} without reply ({len(lost_unapplied)} never applied), {len(twice)} applied twice",
              file=sys.stderr)
        for group in groups:
            if f"{group}_agent_back_s" in report:
                a, s = report[f"{group}_agent_back_s"], report[f"{group}_no_service_s"]
                print(f"  {group} (n={a['n']}): agent back median {a['median']:.2f} s max {a['max']:.2f} s; "
                      f"no service median {s['median']:.2f} s max {s['max']:.2f} s", file=sys.stderr)
                if f"{group}_queue_ready_s" in report:
                    q, b = report[f"{group}_queue_ready_s"], report[f"{group}_agent_after_queue_ready_s"]
                    print(f"  {group}: its quorum queue servable median {q['median']:.2f} s max {q['max']:.2f} s "
                          f"after a node accepted; agent back after that median {b['median']:.2f} s max {b['max']:.2f} s",
                          file=sys.stderr)
        self.assertEqual(twice, [], "calls applied twice")
        for e in events:
            # Figures, not a timing test: the bound only catches a reconnect
            # that waits for a long backoff (oslo's reached 30 s).
            self.assertLess(e["agent_back_s"], 10, e)
        self.assertEqual(self.agent.poll(), None, f"agent died; log {self.log.name}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
