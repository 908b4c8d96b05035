"""cinder's own test harness around real agents, for the SharedLVM driver.

The tests run Debian's cinder (python3-cinder, stable/zed): its TestCase
(in-memory SQLite, the fake:/ transport for cinder's own RPC), a real
cinder-volume service (Service + VolumeManager, init_host included) with
this driver loaded from the seed deployment's cinder.conf section, and the
v3 attachments API controllers that nova calls. The driver talks to real
agents: `aos-lab simulate`, the production agent code on simulated hosts
sharing one VG, through the project's RabbitMQ. The simulated LVs are real
block devices (--lv-devices: loop devices linked at /dev/VG/LV while
active) so cinder's image copies and the agents' clearing and clones move
real bytes; the VG name is unique to the run, so /dev/VG is the test's.

Environment: AOS_TEST_AMQP_URL (rabbit://...), AOS_SIM_BIN (the built
aos-lab, whose simulate command runs the agents). Run with /usr/bin/python3 as root (loop devices).
"""

from cinder.tests.unit import test  # noqa: F401 -- first: eventlet patching

import atexit
import os
import socket
import uuid

import fixtures
from os_brick import privileged as brick_privileged
from oslo_config import cfg

from cinder.api.v3 import attachments as v3_attachments
from cinder import context
from cinder import objects
from cinder import privsep as cinder_privsep
from cinder.tests.unit.api import fakes
from cinder.tests.unit import fake_constants as fake
from cinder.tests.unit import utils as tests_utils
from cinder.volume import api as volume_api
from cinder.volume import configuration

from cinder_sharedlvm_driver import driver as sharedlvm

import simcluster

CONF = cfg.CONF

URL = os.environ['AOS_TEST_AMQP_URL']
SIM_BIN = os.environ['AOS_SIM_BIN']
HOSTS = simcluster.HOSTS
BACKEND = 'sanlock'
SERVICE_HOST = 'cinder-1@' + BACKEND

# The seed deployment's backend section, verbatim (docs/cinder-driver.md).
SEED_SECTION = simcluster.SEED_SECTION


class Cluster(simcluster.Cluster):
    """One `aos-lab simulate` process: three hosts, one VG of its own;
    with devices, its LVs are block devices (simcluster.py)."""

    def __init__(self, devices=True):
        # Not under the per-test temporary directory cinder's TestCase sets:
        # the cluster outlives the test that started it.
        super().__init__(URL, SIM_BIN, devices=devices, hosts=HOSTS,
                         prefix='aos-cinder-driver',
                         work_dir=os.environ.get('AOS_TEST_WORK', '/tmp'))


_cluster = None


def cluster():
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
        atexit.register(_cluster.close)
    return _cluster


nova_connector = simcluster.nova_connector


class SharedLVMTestCase(test.TestCase):
    """A cinder-volume service for the seed's backend, on the simulator."""

    # Options that differ from the seed's section, and why: the broker and
    # the VG are the test's own; this machine's name is not an agent's.
    def backend_overrides(self, c):
        return {'agent_transport_url': URL.replace('rabbit://', 'amqp://',
                                                   1),
                'volume_group': c.vg,
                'agent_topic': c.topic,
                'agent_host_map': {socket.gethostname(): 'cinder-1'}}

    def use_cluster(self):
        return cluster()

    def setUp(self):
        super().setUp()
        self.cluster = self.use_cluster()
        conf_file = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'cinder.conf')
        with open(conf_file, 'w') as f:
            f.write('[DEFAULT]\nenabled_backends = %s\n\n%s'
                    % (BACKEND, SEED_SECTION))
        CONF([], default_config_files=[conf_file])
        # The options exist in the backend's group once a driver registered
        # them; register them as it does, to override some before it starts.
        configuration.Configuration(sharedlvm.agent_opts + sharedlvm.lvm_opts,
                                    config_group=BACKEND)
        for name, value in self.backend_overrides(self.cluster).items():
            self.override_config(name, value, group=BACKEND)
        # The tests run as root, as cinder-volume's privileged helpers do:
        # os-brick's and cinder's privileged calls (reading the iSCSI
        # initiator name for a connector, qemu-img, dd) run in-process,
        # with no privsep-helper and rootwrap configuration to install.
        for pctxt in (brick_privileged.default, cinder_privsep.sys_admin_pctxt):
            pctxt.set_client_mode(False)
            self.addCleanup(pctxt.set_client_mode, True)
        self.context = context.get_admin_context()
        self.context.user_id = fake.USER_ID
        self.context.project_id = fake.PROJECT_ID
        self.volume_api = volume_api.API()
        self.attachments = v3_attachments.AttachmentsController()
        self.svc = self.start_volume_service()

    def start_volume_service(self):
        """Starts cinder-volume as cinder/cmd/volume.py does per backend."""
        svc = self.start_service('volume', host=SERVICE_HOST,
                                 service_name=BACKEND)
        self.manager = svc.manager
        self.driver = svc.manager.driver
        return svc

    def restart_volume_service(self):
        self.svc.stop()
        self._services.remove(self.svc)
        self.svc = self.start_volume_service()

    # -- cinder objects ----------------------------------------------

    def volume_type(self, multiattach=False):
        specs = {'volume_backend_name': BACKEND}
        if multiattach:
            specs['multiattach'] = '<is> True'
        vt = tests_utils.create_volume_type(
            self.context, name='sanlock-' + uuid.uuid4().hex[:6],
            extra_specs=specs)
        return vt

    def create_volume(self, size=1, multiattach=False, **kwargs):
        """cinder's create_volume, as the scheduler casts it to us."""
        vt = self.volume_type(multiattach)
        volume = tests_utils.create_volume(
            self.context, host=SERVICE_HOST + '#' + BACKEND, size=size,
            status='creating', multiattach=multiattach,
            volume_type_id=vt.id, **kwargs)
        self.manager.create_volume(self.context, volume)
        volume.refresh()
        self.assertEqual('available', volume.status)
        return volume

    def delete_volume(self, volume):
        self.manager.delete_volume(self.context, volume)
        self.assertRaises(Exception, objects.Volume.get_by_id,
                          self.context, volume.id)

    # -- nova's calls to the v3 attachments API -----------------------

    def _req(self, path, service=False):
        req = fakes.HTTPRequest.blank('/v3/%s/%s' % (fake.PROJECT_ID, path),
                                      version='3.54', use_admin_context=True)
        if service:
            # nova sends its service token with attachment deletes
            # ([service_user] send_service_user_token).
            req.environ['cinder.context'].service_roles = ['service']
        return req

    def attachment_create(self, volume, instance_uuid, host):
        body = {'attachment': {'instance_uuid': instance_uuid,
                               'volume_uuid': volume.id,
                               'connector': nova_connector(host)}}
        out = self.attachments.create(self._req('attachments'), body=body)
        return out['attachment']

    def attachment_complete(self, attachment):
        self.attachments.complete(
            self._req('attachments/%s/action' % attachment['id']),
            attachment['id'], body={'os-complete': {}})

    def attach(self, volume, instance_uuid, host):
        """nova's attach: attachment create with its connector, complete."""
        att = self.attachment_create(volume, instance_uuid, host)
        self.attachment_complete(att)
        return att

    def attachment_delete(self, attachment):
        self.attachments.delete(
            self._req('attachments/%s' % attachment['id'], service=True),
            attachment['id'])

    def assertModes(self, volume, **expected):
        """Checks the lock mode on every host (unnamed hosts: none)."""
        want = {h: 'none' for h in HOSTS}
        want.update({k.replace('_', '-'): v for k, v in expected.items()})
        self.assertEqual(want, self.cluster.modes(volume.name))
