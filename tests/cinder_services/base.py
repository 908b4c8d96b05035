"""The test case every module here builds on: real agents on simulated hosts
(tests/cinder_driver/simcluster.py) behind a cinder control plane from
Debian's packages (controlplane.py), started once per class and stopped
after it.

Environment: AOS_TEST_AMQP_URL (rabbit://...), AOS_SIM_BIN (the simulator
binary, run as `AOS_SIM_BIN simulate ...`), AOS_TEST_WORK (a temporary
directory for everything the tests make). Run as root (loop devices).
"""

import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'cinder_driver'))

import simcluster  # noqa: E402

import controlplane  # noqa: E402

URL = os.environ['AOS_TEST_AMQP_URL']
SIM_BIN = os.environ.get('AOS_SIM_BIN')  # the simulated tier's
WORK = os.environ.get('AOS_TEST_WORK', '/tmp')
nova_connector = simcluster.nova_connector


class ServicesTestCase(unittest.TestCase):
    devices = True  # the simulated LVs on loop devices

    @classmethod
    def make_cluster(cls):
        """The hosts behind cinder: simulated ones here, the lab's guests
        in test_lab."""
        return simcluster.Cluster(URL, SIM_BIN, devices=cls.devices,
                                  prefix='aos-cinder-services',
                                  work_dir=WORK)

    @classmethod
    def setUpClass(cls):
        cls.cluster = cls.make_cluster()
        try:
            cls.cp = controlplane.ControlPlane(URL, cls.cluster,
                                               simcluster.SEED_SECTION, WORK)
            cls.cp.start()
        except BaseException:
            if getattr(cls, 'cp', None):
                print(cls.cp.logs(), file=sys.stderr)
                cls.cp.close()
            cls.cluster.close()
            raise
        cls.api = cls.cp.client()

    @classmethod
    def create_seed_type(cls):
        """The seed's volume type, as its deployment creates it."""
        cls.cp.openstack('volume', 'type', 'create', 'sanlock')
        cls.cp.openstack('volume', 'type', 'set', 'sanlock', '--property',
                         'volume_backend_name=sanlock')

    @classmethod
    def tearDownClass(cls):
        try:
            cls.cp.close()
        finally:
            cls.cluster.close()

    def run(self, result=None):
        # On a failure, what the services logged belongs to the report.
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            print(self.cp.logs(), file=sys.stderr)
        return out

    # -- cinder's view, through its API ------------------------------

    def wait_volume(self, vid, *want, timeout=120):
        """Waits until the volume's status is one of want; fails on an
        error status or when it does not get there."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.api.volumes.get(vid)
            if v.status in want:
                return v
            if v.status.startswith('error') or time.monotonic() > deadline:
                self.fail('volume %s is %s, waited for %s'
                          % (vid, v.status, want))
            time.sleep(0.3)

    def wait_gone(self, getter, rid, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = getter(rid)
            except Exception as e:
                if getattr(e, 'code', None) == 404:
                    return
                raise
            if r.status.startswith('error'):
                self.fail('%s is %s' % (rid, r.status))
            time.sleep(0.3)
        self.fail('%s still there after %ds' % (rid, timeout))

    def wait_snapshot(self, sid, want='available', timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            s = self.api.volume_snapshots.get(sid)
            if s.status == want:
                return s
            if s.status.startswith('error') or time.monotonic() > deadline:
                self.fail('snapshot %s is %s' % (sid, s.status))
            time.sleep(0.3)

    # -- what an operator types --------------------------------------

    def openstack(self, *args, **kwargs):
        return self.cp.openstack(*args, **kwargs)

    def create_volume(self, size=1, vtype='sanlock', extra=()):
        """`openstack volume create`, then waits for `available` and checks
        the LV on the cinder-volume host: there, active nowhere."""
        name = 'v-' + uuid.uuid4().hex[:6]
        args = ['volume', 'create', '--type', vtype] + list(extra)
        if size:
            args += ['--size', str(size)]
        v = self.openstack(*(args + [name, '-f', 'json']))
        vol = self.wait_volume(v['id'], 'available')
        lv = self.cluster.lv('volume-' + vol.id)
        self.assertIsNotNone(lv, 'no LV for volume %s' % vol.id)
        self.assertEqual(vol.size * 1024 ** 3, lv['size_bytes'])
        self.assertModes(vol.id)
        return vol

    def delete_volume(self, vid):
        self.openstack('volume', 'delete', vid)
        self.wait_gone(self.api.volumes.get, vid)
        self.assertIsNone(self.cluster.lv('volume-' + vid))

    # -- what nova calls ---------------------------------------------

    def attachment_create(self, vid, host, instance):
        """pre_live_migration's (and a plain attach's) attachment_create
        with the host's connector."""
        return self.api.attachments.create(vid, nova_connector(host),
                                           instance)

    def attach(self, vid, host, instance=None):
        """nova's attach: attachment_create with the connector, then
        attachment_complete. Returns the attachment."""
        instance = instance or str(uuid.uuid4())
        att = self.attachment_create(vid, host, instance)
        self.assertEqual('attaching', self.api.volumes.get(vid).status)
        self.api.attachments.complete(att['id'])
        return att

    def detach(self, att):
        self.api.attachments.delete(att['id'])

    # -- the hosts' view, through their agents -----------------------

    def assertModes(self, vid, without=(), **expected):
        """The lock mode each host's lvmlockd holds for the volume's LV
        (unnamed hosts: none), but for the hosts without (a host whose paths
        are gone cannot list the VG)."""
        hosts = [h for h in self.cluster.hosts if h not in without]
        want = {h: 'none' for h in hosts}
        want.update({k.replace('_', '-'): v for k, v in expected.items()})
        self.assertEqual(want, self.cluster.modes('volume-' + vid, hosts))

    def assertAttached(self, vid, *hosts, status='in-use'):
        """cinder's view: the volume's status and the hosts of its
        attachments."""
        v = self.api.volumes.get(vid)
        self.assertEqual(status, v.status)
        got = sorted(a['host_name'] for a in v.attachments)
        self.assertEqual(sorted(hosts), got)
