"""Contract suite: Debian's oslo.messaging RPCClient against the Go agent.

Run with /usr/bin/python3 (Debian's oslo.messaging). Needs:
  AOS_TEST_AMQP_URL  rabbit://user:pass@127.0.0.1:PORT/vhost of a private broker
  AOS_RPCTESTSERVER  path of the built internal/rpctestserver binary
  AOS_RABBIT_SH      path of scripts/rabbitmq.sh (close_connection, restart)
"""
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

import amqp
import oslo_messaging
from oslo_config import cfg

URL = os.environ["AOS_TEST_AMQP_URL"]
SERVER_BIN = os.environ["AOS_RPCTESTSERVER"]
RABBIT_SH = os.environ["AOS_RABBIT_SH"]
TOPIC = "aos-contract-" + uuid.uuid4().hex[:8]
EXCHANGE = "openstack"


def rabbitmqctl(*args):
    return subprocess.run([RABBIT_SH, "ctl", *args], check=True, capture_output=True, text=True).stdout


class Agent:
    """One rpctestserver process; its log goes to a file we can grep."""

    def __init__(self, name):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"agent-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [SERVER_BIN, "-url", URL, "-topic", TOPIC, "-server", name, "-exchange", EXCHANGE],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"agent {name} did not start: {line!r}; log {self.log.name}")
        self.fanout_queue = line.split()[1]

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(30)


def raw_connection():
    u = urllib.parse.urlsplit(URL.replace("rabbit://", "amqp://", 1))
    conn = amqp.Connection(host=f"{u.hostname}:{u.port}", userid=urllib.parse.unquote(u.username),
                           password=urllib.parse.unquote(u.password), virtual_host=u.path[1:] or "/")
    conn.connect()
    return conn


class Contract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agents = [Agent("agent1"), Agent("agent2")]
        conf = cfg.CONF
        conf([], project="aos-contract")
        cls.transport = oslo_messaging.get_rpc_transport(conf, URL)
        cls.client = oslo_messaging.get_rpc_client(
            cls.transport, oslo_messaging.Target(topic=TOPIC, exchange=EXCHANGE), timeout=15)
        cls.ctxt = {"request_id": "req-contract", "user_id": "u-1", "auth_token": "SECRET-TOKEN-must-not-be-logged"}

    @classmethod
    def tearDownClass(cls):
        cls.transport.cleanup()
        for a in cls.agents:
            if a.alive():
                rc = a.stop()
                assert rc == 0, f"agent {a.name} exited {rc}"
            assert "SECRET-TOKEN" not in a.log_text(), "auth token leaked into the agent log"
            # The graceful stop deletes the agent's own fanout queue.
            queues = rabbitmqctl("list_queues", "-q", "-p", urllib.parse.urlsplit(URL).path[1:] or "/", "name")
            assert a.fanout_queue not in queues, f"fanout queue {a.fanout_queue} left behind"

    def call(self, method, server=None, timeout=15, **kwargs):
        c = self.client.prepare(server=server, timeout=timeout) if server else self.client.prepare(timeout=timeout)
        return c.call(self.ctxt, method, **kwargs)

    def assertAgentsUp(self):
        for a in self.agents:
            self.assertTrue(a.alive(), f"agent {a.name} died; log {a.log.name}")

    def test_topology_matches_oslo(self):
        vhost = urllib.parse.urlsplit(URL).path[1:] or "/"
        queues = {}
        for line in rabbitmqctl("list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "durable", "auto_delete", "arguments").splitlines():
            name, durable, auto_delete, args = line.split("\t")
            queues[name] = (durable, auto_delete, args)
        for q in (TOPIC, f"{TOPIC}.agent1", f"{TOPIC}.agent2"):
            self.assertEqual(queues.get(q), ("false", "false", "[]"), q)
        for a in self.agents:
            self.assertRegex(a.fanout_queue, rf"^{TOPIC}_fanout_[0-9a-f]{{32}}$")
            self.assertEqual(queues.get(a.fanout_queue), ("false", "false", '[{"x-expires",1800000}]'))
        exchanges = {}
        for line in rabbitmqctl("list_exchanges", "-q", "--no-table-headers", "-p", vhost, "name", "type", "durable", "auto_delete").splitlines():
            name, kind, durable, auto_delete = line.split("\t")
            exchanges[name] = (kind, durable, auto_delete)
        self.assertEqual(exchanges.get(EXCHANGE), ("topic", "false", "false"))
        self.assertEqual(exchanges.get(f"{TOPIC}_fanout"), ("fanout", "false", "true"))

    def test_call(self):
        self.assertEqual(self.call("echo", vol="volume-1", size_gb=10, nested={"a": [1, None]}),
                         {"vol": "volume-1", "size_gb": 10, "nested": {"a": [1, None]}})

    def test_call_returning_none(self):
        self.assertIsNone(self.call("record", server="agent1", via="call"))

    def test_server_targeted_call(self):
        for name in ("agent1", "agent2"):
            self.assertEqual(self.call("whoami", server=name), name)

    def test_topic_call_reaches_both_agents_round_robin(self):
        seen = {self.call("whoami") for _ in range(10)}
        self.assertEqual(seen, {"agent1", "agent2"})

    def test_cast(self):
        token = uuid.uuid4().hex
        self.client.prepare(server="agent2").cast(self.ctxt, "record", via="cast", token=token)
        self.assertTrue(self.wait_recorded("agent2", token), "cast not delivered")

    def test_fanout_cast_reaches_both_agents(self):
        token = uuid.uuid4().hex
        self.client.prepare(fanout=True).cast(self.ctxt, "record", via="fanout", token=token)
        for name in ("agent1", "agent2"):
            self.assertTrue(self.wait_recorded(name, token), f"fanout cast not delivered to {name}")

    def wait_recorded(self, server, token, within=10):
        deadline = time.time() + within
        while time.time() < deadline:
            if any(r.get("token") == token for r in self.call("recorded", server=server)):
                return True
            time.sleep(0.1)
        return False

    def test_remote_error_class_preserved(self):
        with self.assertRaises(oslo_messaging.RemoteError) as cm:
            self.call("fail_with", server="agent1", **{"class": "LockConflict"})
        self.assertEqual(cm.exception.exc_type, "LockConflict")
        self.assertIn("failing as LockConflict", cm.exception.value)

    def test_unknown_method_is_no_such_method(self):
        with self.assertRaises(oslo_messaging.RemoteError) as cm:
            self.call("does_not_exist")
        self.assertEqual(cm.exception.exc_type, "NoSuchMethod")
        self.assertIn("does_not_exist", cm.exception.value)

    def test_version_checked_like_oslo(self):
        self.assertEqual(self.client.prepare(version="1.2").call(self.ctxt, "whoami") in ("agent1", "agent2"), True)
        with self.assertRaises(oslo_messaging.RemoteError) as cm:
            self.client.prepare(version="2.0").call(self.ctxt, "whoami")
        self.assertEqual(cm.exception.exc_type, "UnsupportedVersion")
        with self.assertRaises(oslo_messaging.RemoteError) as cm:
            self.client.prepare(version="1.4").call(self.ctxt, "whoami")
        self.assertEqual(cm.exception.exc_type, "UnsupportedVersion")

    def test_call_monitor_keeps_long_call_alive(self):
        c = self.client.prepare(timeout=20, call_monitor_timeout=2)
        started = time.time()
        self.assertEqual(c.call(self.ctxt, "sleep", seconds=5), {"slept": 5})
        self.assertGreaterEqual(time.time() - started, 5)

    def test_timeout(self):
        with self.assertRaises(oslo_messaging.MessagingTimeout):
            self.client.prepare(timeout=2).call(self.ctxt, "sleep", seconds=4)
        self.assertAgentsUp()

    def test_200_concurrent_calls(self):
        key = "concurrent-" + uuid.uuid4().hex
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda i: self.call("echo", i=i), range(200)))
        self.assertEqual([r["i"] for r in results], list(range(200)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            counts = list(pool.map(lambda i: self.call("count", server="agent1", key=key), range(200)))
        self.assertEqual(sorted(counts), list(range(1, 201)))

    def test_connection_closed_by_broker(self):
        self.assertEqual(self.call("whoami", server="agent1"), "agent1")
        pid = self.agents[0].proc.pid
        closed = 0
        for line in rabbitmqctl("list_connections", "-q", "pid", "client_properties").splitlines():
            if re.search(rf"rpctestserver:{pid}:", line):
                rabbitmqctl("close_connection", line.split()[0], "contract test")
                closed += 1
        self.assertGreaterEqual(closed, 1)
        started = time.time()
        self.assertEqual(self.call("whoami", server="agent1", timeout=30), "agent1")
        self.assertLess(time.time() - started, 15)
        self.assertIn("reconnected", self.agents[0].log_text())

    MALFORMED_ANSWERED = {
        "wrong_envelope_version": ("InvalidArgument", lambda inner: {"oslo.version": "3.0", "oslo.message": json.dumps(inner)}),
        "missing_method": ("InvalidArgument", lambda inner: envelope({k: v for k, v in inner.items() if k != "method"})),
        "args_not_object": ("InvalidArgument", lambda inner: envelope(dict(inner, args=[1, 2]))),
        "unknown_method": ("NoSuchMethod", lambda inner: envelope(dict(inner, method="nope"))),
        "huge_body": ("InvalidArgument", lambda inner: envelope(dict(inner, args={"blob": "x" * (6 << 20)}))),
    }

    def test_malformed_corpus(self):
        conn = raw_connection()
        ch = conn.channel()
        reply_q = "reply_" + uuid.uuid4().hex
        ch.queue_declare(queue=reply_q, auto_delete=True)
        key = f"{TOPIC}.agent1"

        def publish(body):
            ch.basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8"),
                             exchange=EXCHANGE, routing_key=key)

        def inner_call():
            return {"method": "echo", "args": {}, "_msg_id": uuid.uuid4().hex, "_reply_q": reply_q,
                    "_timeout": None, "_unique_id": uuid.uuid4().hex}

        expected = {}
        for name, (cls, build) in self.MALFORMED_ANSWERED.items():
            inner = inner_call()
            publish(json.dumps(build(inner)).encode())
            expected[inner["_msg_id"]] = (name, cls)
        inner = inner_call()
        publish(json.dumps(envelope(dict(inner, args={"s": "@@"}))).encode().replace(b"@@", b"\xff\xfe"))
        expected[inner["_msg_id"]] = ("invalid_utf8", "InvalidArgument")

        # Not answerable: no reply queue to answer to. Dropped with a log line.
        publish(b"this is not JSON {")
        publish(json.dumps(envelope({"args": {}, "_unique_id": uuid.uuid4().hex})).encode())
        publish(json.dumps(envelope({"method": "echo", "args": "nope", "_unique_id": uuid.uuid4().hex})).encode())

        got = {}
        deadline = time.time() + 20
        while len(got) < len(expected) and time.time() < deadline:
            msg = ch.basic_get(reply_q, no_ack=True)
            if msg is None:
                time.sleep(0.05)
                continue
            self.assertEqual(msg.properties.get("content_type"), "application/json")
            outer = json.loads(msg.body)
            reply = json.loads(outer["oslo.message"])
            self.assertTrue(reply["ending"])
            failure = json.loads(reply["failure"])
            got[reply["_msg_id"]] = failure["class"]
        conn.close()
        for msg_id, (name, cls) in expected.items():
            self.assertEqual(got.get(msg_id), cls, f"{name}: expected a {cls} failure reply")
        log = self.agents[0].log_text()
        self.assertIn("rpc dropping unparseable message", log)
        self.assertGreaterEqual(log.count('"answered":false'), 2, "malformed casts were not logged")
        self.assertEqual(self.call("whoami", server="agent1"), "agent1")
        self.assertAgentsUp()

    def test_zz_broker_restart_mid_traffic(self):
        """Runs last (name order): traffic continues across a broker restart;
        the agents serve again within seconds and no call has two effects."""
        stop = threading.Event()
        outcomes = []

        def traffic():
            i = 0
            while not stop.is_set():
                key = f"restart-{uuid.uuid4().hex}"
                try:
                    self.call("count", server="agent1", timeout=5, key=key)
                    outcomes.append((time.time(), key, True))
                except Exception:  # timeouts and connection errors during the outage
                    outcomes.append((time.time(), key, False))
                i += 1

        t = threading.Thread(target=traffic)
        t.start()
        time.sleep(1)
        subprocess.run([RABBIT_SH, "restart"], check=True, capture_output=True)
        back = time.time()
        deadline = back + 60
        while time.time() < deadline and not any(ok and ts > back for ts, _, ok in outcomes):
            time.sleep(0.2)
        stop.set()
        t.join(30)
        first_ok = min((ts for ts, _, ok in outcomes if ok and ts > back), default=None)
        self.assertIsNotNone(first_ok, "no call succeeded after the broker came back")
        print(f"\n  broker restart: first successful call {first_ok - back:.1f}s after the broker was ready", file=sys.stderr)
        self.assertLess(first_ok - back, 30)
        counts = self.call("counts", server="agent1", timeout=30)
        doubled = {k: v for k, v in counts.items() if k.startswith("restart-") and v > 1}
        self.assertEqual(doubled, {}, "calls with two effects")
        self.assertAgentsUp()


def envelope(inner):
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


if __name__ == "__main__":
    unittest.main(verbosity=2)
