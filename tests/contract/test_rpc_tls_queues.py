"""Debian's oslo.messaging against the Go agent over TLS, and with the
deployment queue options (amqp_durable_queues, amqp_auto_delete,
rabbit_quorum_queue, rabbit_ha_queues) compared with a real oslo server.

Needs, besides test_rpc_contract.py's variables, AOS_TEST_AMQPS_URL and
AOS_TEST_TLS_DIR (scripts/rabbitmq.sh with AOS_RABBIT_TLS=1).
"""
import json
import os
import re
import secrets
import shlex
import socket
import ssl
import subprocess
import tempfile
import unittest
import urllib.parse
import uuid

import amqp
import oslo_messaging
from oslo_config import cfg
from oslo_messaging._drivers import amqp as amqp_driver
from oslo_messaging._drivers import impl_rabbit

URL = os.environ["AOS_TEST_AMQP_URL"]
TLS_URL = os.environ["AOS_TEST_AMQPS_URL"]
TLS_DIR = os.environ["AOS_TEST_TLS_DIR"]
SERVER_BIN = os.environ["AOS_RPCTESTSERVER"]
RABBIT_SH = os.environ["AOS_RABBIT_SH"]


def rabbitmqctl(*args):
    return subprocess.run([RABBIT_SH, "ctl", *args], check=True, capture_output=True, text=True).stdout


OVERRIDDEN = ["ssl", "ssl_ca_file", "ssl_cert_file", "ssl_key_file", "amqp_durable_queues", "amqp_auto_delete",
              "rabbit_ha_queues", "rabbit_quorum_queue"]


def oslo_conf(**rabbit):
    """The global config (oslo's metrics collector is bound to it) with only
    these [oslo_messaging_rabbit] overrides."""
    conf = cfg.CONF
    conf([], project="aos-contract")
    conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    conf.register_opts(amqp_driver.amqp_opts, group="oslo_messaging_rabbit")
    for k in OVERRIDDEN:
        conf.clear_override(k, group="oslo_messaging_rabbit")
    for k, v in rabbit.items():
        conf.set_override(k, v, group="oslo_messaging_rabbit")
    return conf


def go_agent(url, topic, exchange, *flags):
    log = tempfile.NamedTemporaryFile(prefix="agent-", suffix=".log", delete=False)
    proc = subprocess.Popen([SERVER_BIN, "-url", url, "-topic", topic, "-server", "agent1", "-exchange", exchange, *flags],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"agent did not start: {line!r}; log {log.name}")
    return proc


def stop(proc):
    proc.terminate()
    proc.wait(30)


class Endpoint:
    def echo(self, ctxt, **kwargs):
        return kwargs


class TLSTest(unittest.TestCase):
    def test_broker_verifies_client_certificates(self):
        """The listener is mutual TLS (verify_peer): a certificate from a CA
        it does not trust is refused in the handshake, with strict checks on
        our side."""
        u = urllib.parse.urlparse(TLS_URL)
        for cert, accepted in (("client", True), ("other-client", False)):
            ctx = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "ca.pem"))
            ctx.load_cert_chain(os.path.join(TLS_DIR, cert + ".pem"), os.path.join(TLS_DIR, cert + "-key.pem"))
            with socket.create_connection((u.hostname, u.port), 5) as raw:
                try:
                    with ctx.wrap_socket(raw, server_hostname=u.hostname) as tls:
                        tls.sendall(b"AMQP\x00\x00\x09\x01")
                        got = tls.recv(8)  # connection.start once the handshake passed
                except ssl.SSLError as e:
                    got = e
            self.assertEqual(isinstance(got, bytes) and len(got) > 0, accepted, f"{cert}: {got!r}")

    def test_oslo_client_over_tls(self):
        topic, exchange = "aos-tls-" + uuid.uuid4().hex[:8], "aos-tls"
        ca = os.path.join(TLS_DIR, "ca.pem")
        agent = go_agent(TLS_URL, topic, exchange, "-ca", ca)
        try:
            # oslo has no amqps:// scheme: rabbit:// to the TLS port with ssl=True.
            conf = oslo_conf(ssl=True, ssl_ca_file=ca, ssl_cert_file=os.path.join(TLS_DIR, "client.pem"),
                             ssl_key_file=os.path.join(TLS_DIR, "client-key.pem"))
            transport = oslo_messaging.get_rpc_transport(conf, "rabbit://" + TLS_URL.split("://", 1)[1])
            client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=topic, exchange=exchange),
                                                   timeout=15)
            self.assertEqual(client.prepare(server="agent1").call({}, "echo", over="tls"), {"over": "tls"})
            transport.cleanup()
        finally:
            stop(agent)

    def test_rabbit_url_with_ssl_as_oslo(self):
        """The agent reads rabbit:// + ssl = true as oslo does: TLS to every
        host of the URL. Given TLS files but not TLS it refuses to start,
        never sending the password in clear."""
        topic, exchange = "aos-tls-" + uuid.uuid4().hex[:8], "aos-tls"
        ca = os.path.join(TLS_DIR, "ca.pem")
        rabbit_url = "rabbit://" + TLS_URL.split("://", 1)[1]
        agent = go_agent(rabbit_url, topic, exchange, "-tls", "-ca", ca)
        try:
            conf = oslo_conf(ssl=True, ssl_ca_file=ca, ssl_cert_file=os.path.join(TLS_DIR, "client.pem"),
                             ssl_key_file=os.path.join(TLS_DIR, "client-key.pem"))
            transport = oslo_messaging.get_rpc_transport(conf, rabbit_url)
            client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=topic, exchange=exchange),
                                                   timeout=15)
            self.assertEqual(client.prepare(server="agent1").call({}, "echo", over="rabbit+ssl"), {"over": "rabbit+ssl"})
            transport.cleanup()
        finally:
            stop(agent)
        with self.assertRaisesRegex(RuntimeError, "agent did not start"):
            stop(go_agent(rabbit_url, topic, exchange, "-ca", ca))


DOCS_RPC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "rpc.md")


def documented_permissions():
    """The rabbitmqctl set_permissions lines of docs/rpc.md's trust model."""
    with open(DOCS_RPC) as f:
        return [shlex.split(line)[1:] for line in f if line.startswith("rabbitmqctl set_permissions")]


class PermissionsTest(unittest.TestCase):
    def test_documented_permissions(self):
        """Exactly the documented permissions, on a vhost of their own: the
        Go agent declares, consumes and replies as aos-agent; cinder calls
        it; the agent's user cannot publish requests to the control exchange
        and cinder's cannot read the agents' queues."""
        u = urllib.parse.urlparse(URL)
        vhost = "aos-perm-" + uuid.uuid4().hex[:6]
        pw = {"cinder": secrets.token_hex(8), "aos-agent": secrets.token_hex(8)}
        rabbitmqctl("add_vhost", vhost)
        for user, password in pw.items():
            subprocess.run([RABBIT_SH, "ctl", "delete_user", user], capture_output=True)
            rabbitmqctl("add_user", user, password)
        lines = documented_permissions()
        self.assertEqual(sorted(args[3] for args in lines), ["aos-agent", "cinder"], lines)
        for args in lines:
            self.assertEqual(args[:3], ["set_permissions", "-p", "aos"], args)
            rabbitmqctl(args[0], "-p", vhost, *args[3:])

        def url(user):
            return f"rabbit://{user}:{pw[user]}@{u.hostname}:{u.port}/{vhost}"

        def connect(user):
            conn = amqp.Connection(host=f"{u.hostname}:{u.port}", userid=user, password=pw[user], virtual_host=vhost,
                                   confirm_publish=True)
            conn.connect()
            return conn

        agent = go_agent(url("aos-agent"), "aos-agent", "openstack")
        try:
            conf = oslo_conf()
            transport = oslo_messaging.get_rpc_transport(conf, url("cinder"))
            client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic="aos-agent", exchange="openstack"),
                                                   timeout=15)
            self.assertEqual(client.prepare(server="agent1").call({}, "echo", who="cinder"), {"who": "cinder"})
            client.prepare(server="agent1").cast({}, "record", who="cinder")
            # Another agent's user may publish to the default exchange (replies
            # go that way) and so reach agent1's queue by name: the agent
            # refuses what did not come through the control exchange.
            conn = connect("aos-agent")
            try:
                body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(
                    {"method": "record", "args": {"who": "another agent"}, "_unique_id": uuid.uuid4().hex})})
                conn.channel().basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8"),
                                             exchange="", routing_key="aos-agent.agent1")
            finally:
                conn.collect()
            self.assertEqual(client.prepare(server="agent1").call({}, "recorded"), [{"who": "cinder"}])
            transport.cleanup()
        finally:
            stop(agent)

        conn = connect("aos-agent")
        try:
            with self.assertRaises(amqp.exceptions.AccessRefused):
                conn.channel().basic_publish(amqp.Message(b"{}"), exchange="openstack", routing_key="aos-agent.agent1")
        finally:
            conn.collect()
        conn = connect("cinder")
        try:
            with self.assertRaises(amqp.exceptions.AccessRefused):
                conn.channel().basic_get(queue="aos-agent")
        finally:
            conn.collect()


def queue_rows(topic):
    """list_queues rows of topic's queues, the topic and fanout id masked."""
    out = rabbitmqctl("-q", "list_queues", "-p", urllib.parse.urlparse(URL).path.lstrip("/"), "--no-table-headers",
                      "name", "durable", "auto_delete", "arguments", "type")
    rows = []
    for line in out.splitlines():
        name = line.split("\t", 1)[0]
        if not name.startswith(topic):
            continue
        if name.startswith(topic + "_fanout_"):
            line = line.replace(name, "TOPIC_fanout_ID", 1)
        fields = line.replace(topic, "TOPIC").split("\t")
        # The broker compares arguments as a set: their order is not part of the contract.
        fields[3] = "[" + ",".join(sorted(re.findall(r"\{[^{}]*\}", fields[3]))) + "]"
        rows.append("\t".join(fields))
    return sorted(rows)


class QueueOptionsTest(unittest.TestCase):
    VARIANTS = {
        "durable": ({"amqp_durable_queues": True}, ["-durable"]),
        "auto_delete": ({"amqp_auto_delete": True}, ["-auto-delete"]),
        "ha": ({"rabbit_ha_queues": True}, ["-ha"]),
        # Quorum queues are always durable: neither side is told so.
        "quorum": ({"rabbit_quorum_queue": True}, ["-quorum"]),
    }

    def test_go_and_oslo_declare_the_same_queues(self):
        for name, (opts, flags) in self.VARIANTS.items():
            with self.subTest(variant=name):
                exchange = "aos-q-" + name  # exchange flags follow the options too
                go_topic, py_topic = "aosq-go-" + uuid.uuid4().hex[:8], "aosq-py-" + uuid.uuid4().hex[:8]
                conf = oslo_conf(**opts)
                transport = oslo_messaging.get_rpc_transport(conf, URL)
                agent = go_agent(URL, go_topic, exchange, *flags)
                server = oslo_messaging.get_rpc_server(
                    transport, oslo_messaging.Target(topic=py_topic, server="agent1", exchange=exchange),
                    [Endpoint()], executor="threading")
                server.start()
                try:
                    for topic in (go_topic, py_topic):
                        client = oslo_messaging.get_rpc_client(
                            transport, oslo_messaging.Target(topic=topic, exchange=exchange), timeout=15)
                        self.assertEqual(client.call({}, "echo", v=name), {"v": name})
                        self.assertEqual(client.prepare(server="agent1").call({}, "echo", v=1), {"v": 1})
                    go_rows, py_rows = queue_rows(go_topic), queue_rows(py_topic)
                    self.assertEqual(len(go_rows), 3, go_rows)
                    self.assertEqual(go_rows, py_rows)
                finally:
                    stop(agent)
                    server.stop()
                    server.wait()
                    transport.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
