"""The SharedLVM driver's story, written as the driver calls the agent.

Debian's oslo.messaging RPCClient (run with /usr/bin/python3) against real
agents (`aos-lab simulate`: the production agent code on simulated hosts) through
a real RabbitMQ. Needs:
  AOS_TEST_AMQP_URL  rabbit://user:pass@127.0.0.1:PORT/vhost
  AOS_SIM_BIN        path of the built aos-lab binary (its simulate command)
or, against agents already running on real hosts (the lab's two guests):
  AOS_STORY_HOSTS    compute-a=SERVER,compute-b=SERVER,cinder-1=SERVER (agent host names)
  AOS_STORY_TOPIC    their RPC topic (default aos-agent)
"""
import os
import subprocess
import tempfile
import unittest
import uuid

import oslo_messaging
from oslo_config import cfg

URL = os.environ["AOS_TEST_AMQP_URL"]
HOSTS = dict(kv.split("=", 1) for kv in os.environ.get("AOS_STORY_HOSTS", "").split(",") if kv)
TOPIC = os.environ.get("AOS_STORY_TOPIC", "aos-agent") if HOSTS else "aos-driver-" + uuid.uuid4().hex[:8]


class DriverStory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = None
        if not HOSTS:
            cls.log = tempfile.NamedTemporaryFile(prefix="aos-simulate-", suffix=".log", delete=False)
            cls.proc = subprocess.Popen(
                [os.environ["AOS_SIM_BIN"], "simulate", "--transport-url", URL, "--topic", TOPIC,
                 "--hosts", "compute-a,compute-b,cinder-1"],
                stdout=subprocess.PIPE, stderr=cls.log, text=True)
            line = cls.proc.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"agents did not start: {line!r}; log {cls.log.name}")
        conf = cfg.CONF
        conf([], project="aos-driver-story")
        cls.transport = oslo_messaging.get_rpc_transport(conf, url=URL)
        cls.target = oslo_messaging.Target(topic=TOPIC, version="1.0", exchange="openstack")

    @classmethod
    def tearDownClass(cls):
        cls.transport.cleanup()
        if cls.proc:
            cls.proc.terminate()
            cls.proc.wait(60)

    def agent(self, host):
        client = oslo_messaging.get_rpc_client(self.transport, self.target)
        # real lvm2 under emulation takes seconds per command, not milliseconds
        return client.prepare(server=HOSTS.get(host, host), timeout=300 if HOSTS else 60)

    def call(self, host, method, **kwargs):
        # the request context cinder sends (the token must never reach a log)
        ctxt = {"request_id": "req-" + uuid.uuid4().hex, "project_id": "p-1", "auth_token": "SECRET"}
        return self.agent(host).call(ctxt, method, **kwargs)

    def expect_remote(self, exc_type, host, method, **kwargs):
        with self.assertRaises(oslo_messaging.RemoteError) as cm:
            self.call(host, method, **kwargs)
        self.assertEqual(cm.exception.exc_type, exc_type, cm.exception.value)
        return cm.exception

    def mode_on(self, host, name):
        for v in self.call(host, "list_volumes"):
            if v["volume_name"] == name:
                return v.get("mode", "none")
        raise AssertionError(f"{name} not listed on {host}")

    def test_story(self):
        vol = "volume-" + uuid.uuid4().hex[:12]
        # create_volume on the cinder-volume host: inactive, unlocked everywhere
        created = self.call("cinder-1", "create_volume", volume_name=vol, size=1)
        self.assertEqual(created["size_bytes"], 1 << 30)
        self.assertFalse(created["active_here"])
        # initialize_connection: attach exclusive on compute-a
        att = self.call("compute-a", "activate_volume", volume_name=vol, mode="exclusive")
        self.assertEqual(att["device_path"], f"/dev/vol/{vol}")
        # a second attach on compute-b is refused with the lock's class
        self.expect_remote("LockConflict", "compute-b", "activate_volume", volume_name=vol, mode="exclusive")
        # multi-attach: shared on A (conversion in place) and B
        self.call("compute-a", "activate_volume", volume_name=vol, mode="shared")
        self.call("compute-b", "activate_volume", volume_name=vol, mode="shared")
        self.assertEqual(self.mode_on("compute-a", vol), "shared")
        self.assertEqual(self.mode_on("compute-b", vol), "shared")
        # migration hand-off A -> B: source releases, destination converts to exclusive
        self.call("compute-a", "deactivate_volume", volume_name=vol)
        self.call("compute-b", "activate_volume", volume_name=vol, mode="exclusive")
        self.assertEqual(self.mode_on("compute-b", vol), "exclusive")
        self.assertEqual(self.mode_on("compute-a", vol), "none")
        # extend on the attached host (exclusive there), then refresh it
        ext = self.call("compute-b", "extend_volume", volume_name=vol, new_size=2)
        self.assertEqual(ext["size_bytes"], 2 << 30)
        self.assertTrue(self.call("compute-b", "refresh_volume", volume_name=vol)["refreshed"])
        # delete is refused while attached elsewhere
        self.expect_remote("LockConflict", "cinder-1", "delete_volume", volume_name=vol, clear="zero", clear_size_mb=1)
        # terminate_connection: detach (twice: idempotent)
        self.call("compute-b", "deactivate_volume", volume_name=vol)
        self.call("compute-b", "deactivate_volume", volume_name=vol)
        # delete with zero-clear, then again (idempotent)
        self.assertTrue(self.call("cinder-1", "delete_volume", volume_name=vol, clear="zero", clear_size_mb=1)["deleted"])
        self.assertFalse(self.call("cinder-1", "delete_volume", volume_name=vol)["deleted"])

    def test_shared_extend_refreshes_other_hosts(self):
        vol = "volume-" + uuid.uuid4().hex[:12]
        self.call("cinder-1", "create_volume", volume_name=vol, size=1)
        self.call("compute-a", "activate_volume", volume_name=vol, mode="shared")
        self.call("compute-b", "activate_volume", volume_name=vol, mode="shared")
        ext = self.call("cinder-1", "extend_volume", volume_name=vol, new_size=3)
        self.assertTrue(ext["refresh_broadcast"], ext)
        for h in ("compute-a", "compute-b"):
            self.call(h, "deactivate_volume", volume_name=vol)
        self.call("cinder-1", "delete_volume", volume_name=vol)

    def test_snapshot_and_clone(self):
        vol = "volume-" + uuid.uuid4().hex[:12]
        snap = "_snapshot-" + uuid.uuid4().hex[:12]  # cinder's LVM naming; "snapshot*" is reserved by LVM
        clone = "volume-" + uuid.uuid4().hex[:12]
        self.call("cinder-1", "create_volume", volume_name=vol, size=2)
        # create_snapshot of an idle volume from the cinder host: nothing stays locked
        s = self.call("cinder-1", "create_snapshot", snapshot_name=snap, volume_name=vol, size=1)
        self.assertEqual((s["snapshot_name"], s["volume_name"], s["size_bytes"], s["cow_bytes"]), (snap, vol, 2 << 30, 1 << 30))
        self.assertEqual(self.call("cinder-1", "create_snapshot", snapshot_name=snap, volume_name=vol, size=1)["uuid"], s["uuid"])
        self.assertEqual(self.mode_on("cinder-1", vol), "none")
        # attached on compute-a: the origin of a snapshot cannot be shared (no
        # multi-attach or migration), and the snapshot's lifecycle moves there
        self.call("compute-a", "activate_volume", volume_name=vol, mode="exclusive")
        self.expect_remote("IncompatibleLockMode", "compute-b", "activate_volume", volume_name=vol, mode="shared")
        self.expect_remote("InvalidArgument", "compute-b", "activate_volume", volume_name=snap, mode="shared")
        self.expect_remote("LockConflict", "compute-b", "delete_snapshot", snapshot_name=snap)
        # clone from the snapshot on the host holding its origin
        c = self.call("compute-a", "clone_volume", volume_name=clone, source_name=snap)
        self.assertEqual(c["size_bytes"], 2 << 30)  # the origin's size, not the COW space
        self.assertEqual(self.call("compute-a", "clone_volume", volume_name=clone, source_name=snap)["uuid"], c["uuid"])
        self.assertTrue(self.call("compute-a", "delete_snapshot", snapshot_name=snap)["deleted"])
        self.assertFalse(self.call("compute-a", "delete_snapshot", snapshot_name=snap)["deleted"])
        self.assertEqual(self.mode_on("compute-a", vol), "exclusive")
        self.call("compute-a", "deactivate_volume", volume_name=vol)
        # the clone is an ordinary volume: multi-attach works
        for h in ("compute-a", "compute-b"):
            self.call(h, "activate_volume", volume_name=clone, mode="shared")
        for h in ("compute-a", "compute-b"):
            self.call(h, "deactivate_volume", volume_name=clone)
        for v in (clone, vol):
            self.assertTrue(self.call("cinder-1", "delete_volume", volume_name=v)["deleted"])

    def test_bad_input_is_refused(self):
        self.expect_remote("InvalidArgument", "compute-a", "activate_volume", volume_name="../etc/passwd")
        self.expect_remote("InvalidArgument", "compute-a", "activate_volume", volume_name="v1", mode="rw")
        self.expect_remote("InvalidArgument", "compute-a", "activate_volume", volume_name="v1", force=True)
        self.expect_remote("InvalidArgument", "compute-a", "activate_volume", volume_name="v1", volume_group="other")
        self.expect_remote("InvalidArgument", "cinder-1", "create_volume", volume_name="v1", size=-1)
        self.expect_remote("VolumeNotFound", "compute-a", "activate_volume", volume_name="volume-missing")
        self.expect_remote("InvalidArgument", "cinder-1", "create_snapshot", snapshot_name="s1", volume_name="v1", size=0)
        self.expect_remote("InvalidArgument", "cinder-1", "clone_volume", volume_name="c1", source_name="c1")
        self.expect_remote("InvalidArgument", "cinder-1", "delete_snapshot", snapshot_name="s1", force=True)

    def test_ping_and_status(self):
        pong = self.call("compute-a", "ping")
        self.assertEqual(pong["host"], HOSTS.get("compute-a", "compute-a"))
        self.assertEqual(pong["volume_groups"], ["vol"], pong)
        status = self.call("compute-b", "get_status")
        self.assertEqual(status["lockspaces"][0]["state"], "joined", status)
        self.assertTrue(status["ready"], status)


if __name__ == "__main__":
    unittest.main(verbosity=2)
