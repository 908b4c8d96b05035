"""Every agent failure, produced by real agents, as cinder sees it.

Each test makes the agents fail for real (conflicting locks held behind
cinder's back, names and sizes LVM refuses, an agent stopped, a daemon
crashed, a host's paths lost) and checks the cinder exception the driver
raises, and what cinder's manager then records.
"""

import harness  # noqa: F401 -- first: cinder's eventlet patching

import uuid

from oslo_utils import units
import webob.exc

from cinder import exception
from cinder.tests.unit import utils as tests_utils

from cinder_sharedlvm_driver import agent_client


class Errors(harness.SharedLVMTestCase):
    def agent_error(self, exc_type, fn, *args):
        """Runs fn, which must fail with the agent's exc_type; returns it."""
        e = self.assertRaises(agent_client.AgentError, fn, *args)
        self.assertIsInstance(e, exception.VolumeBackendAPIException)
        self.assertEqual(exc_type, e.exc_type, e.msg)
        self.assertIn(e.reason, e.msg)  # the agent's own message
        return e

    def hold(self, vol, host):
        """Activates vol on host behind cinder's back."""
        self.cluster.call(host, 'activate_volume', volume_name=vol.name,
                          mode='exclusive', volume_group=self.cluster.vg)

    def release(self, vol, host):
        self.cluster.call(host, 'deactivate_volume', volume_name=vol.name,
                          volume_group=self.cluster.vg)

    def test_invalid_argument_and_sizes(self):
        vol = tests_utils.create_volume(self.context, size=2 ** 34)
        self.agent_error('InvalidArgument', self.driver.create_volume, vol)
        vol = tests_utils.create_volume(self.context, size=10 ** 4)
        self.agent_error('InsufficientSpace', self.driver.create_volume, vol)

    def test_volume_not_found_and_exists(self):
        vol = tests_utils.create_volume(self.context, size=1)
        self.agent_error('VolumeNotFound', self.driver.extend_volume, vol, 2)
        self.cluster.call('cinder-1', 'create_volume', volume_name=vol.name,
                          size=2, volume_group=self.cluster.vg)
        self.agent_error('VolumeExists', self.driver.create_volume, vol)
        self.driver.delete_volume(vol)

    def test_create_failure_puts_volume_in_error(self):
        vt = self.volume_type()
        vol = tests_utils.create_volume(
            self.context, host=harness.SERVICE_HOST + '#sanlock',
            size=10 ** 4, status='creating', volume_type_id=vt.id)
        self.assertRaises(agent_client.AgentError,
                          self.manager.create_volume, self.context, vol)
        vol.refresh()
        self.assertEqual('error', vol.status)

    def test_delete_while_held_is_busy(self):
        vol = self.create_volume()
        # active on another host (LockConflict) or on this one (VolumeInUse)
        for host, exc_type in (('compute-a', 'LockConflict'),
                               ('cinder-1', 'VolumeInUse')):
            self.hold(vol, host)
            e = self.assertRaises(exception.VolumeIsBusy,
                                  self.driver.delete_volume, vol)
            self.assertIn(vol.name, e.msg)
            # cinder's manager keeps a busy volume available
            self.manager.delete_volume(self.context, vol)
            vol.refresh()
            self.assertEqual('available', vol.status)
            self.release(vol, host)
        self.delete_volume(vol)

    def test_snapshot_busy_elsewhere(self):
        vol = self.create_volume()
        snap = tests_utils.create_snapshot(self.context, vol.id,
                                           status='creating')
        self.manager.create_snapshot(self.context, snap)
        self.hold(vol, 'compute-a')
        e = self.assertRaises(exception.SnapshotIsBusy,
                              self.driver.delete_snapshot, snap)
        self.assertIn('held by another host', e.msg)
        # the other host holds the origin: a new snapshot is refused too
        snap2 = tests_utils.create_snapshot(self.context, vol.id,
                                            status='creating')
        self.agent_error('LockConflict', self.driver.create_snapshot, snap2)
        self.release(vol, 'compute-a')
        self.manager.delete_snapshot(self.context, snap)
        self.delete_volume(vol)

    def test_attach_while_another_host_holds_it(self):
        vol = self.create_volume()
        self.hold(vol, 'compute-a')
        e = self.assertRaises(exception.VolumeBackendAPIException,
                              self.driver.initialize_connection, vol,
                              harness.nova_connector('compute-b'))
        self.assertIn('held by another host that cinder does not show '
                      'attached', e.msg)
        self.assertIn('deactivate_volume', e.msg)
        # an extend of the available volume meets the same lock
        self.agent_error('LockConflict', self.driver.extend_volume, vol, 2)
        self.release(vol, 'compute-a')
        self.assertModes(vol)
        self.delete_volume(vol)

    def test_multiattach_of_a_volume_with_snapshots(self):
        vol = self.create_volume(multiattach=True)
        snap = tests_utils.create_snapshot(self.context, vol.id,
                                           status='creating')
        self.manager.create_snapshot(self.context, snap)
        att = self.attach(vol, str(uuid.uuid4()), 'compute-a')
        # the second host's attach fails: the origin of a snapshot can only
        # be held exclusively; the first host keeps its exclusive lock
        e = self.assertRaises(webob.exc.HTTPInternalServerError,
                              self.attachment_create, vol,
                              str(uuid.uuid4()), 'compute-b')
        self.assertIn('IncompatibleLockMode', e.explanation)
        self.assertModes(vol, compute_a='exclusive')
        self.attachment_delete(att)
        self.manager.delete_snapshot(self.context, snap)
        self.delete_volume(vol)

    def test_agent_down_names_the_host(self):
        vol = self.create_volume()
        self.override_config('agent_call_monitor_timeout', 2,
                             group='sanlock')
        self.restart_volume_service()
        self.cluster.control('stop compute-b')
        try:
            e = self.assertRaises(agent_client.AgentTimeout,
                                  self.driver.initialize_connection, vol,
                                  harness.nova_connector('compute-b'))
            self.assertIn('aos-agent on compute-b did not answer '
                          'activate_volume', e.msg)
            self.assertIsInstance(e, exception.VolumeBackendAPIException)
        finally:
            self.cluster.control('start compute-b')
        # oslo kept the request queued for the call's timeout: the agent,
        # back, ran it; detach undoes it as for any attachment
        self.driver.terminate_connection(vol,
                                         harness.nova_connector('compute-b'))
        self.assertModes(vol)
        self.delete_volume(vol)


class Faults(harness.SharedLVMTestCase):
    """Host faults, on a cluster of their own: they leave hosts broken."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dedicated = harness.Cluster()

    @classmethod
    def tearDownClass(cls):
        cls.dedicated.close()
        super().tearDownClass()

    def use_cluster(self):
        return self.dedicated

    def agent_error(self, exc_type, fn, *args):
        e = self.assertRaises(agent_client.AgentError, fn, *args)
        self.assertEqual(exc_type, e.exc_type, e.msg)
        self.assertIsInstance(e, exception.VolumeBackendAPIException)
        return e

    def test_faults(self):
        c = self.cluster
        vol = self.create_volume()
        conn = {h: harness.nova_connector(h) for h in harness.HOSTS}
        c.control('fault compute-a crash-lvmlockd')
        e = self.agent_error('LockManagerUnavailable',
                             self.driver.initialize_connection, vol,
                             conn['compute-a'])
        self.assertIn('lvmlockd process is not running', e.msg)
        c.control('fault compute-b crash-sanlock')
        self.agent_error('LockspaceNotStarted',
                         self.driver.initialize_connection, vol,
                         conn['compute-b'])
        # cinder-1 loses its paths while it has a volume attached (sanlock
        # fences only a host holding a lock): the kill hook fences the VG;
        # until the recovery is done, changes are refused there
        held = self.create_volume()
        self.driver.initialize_connection(held, conn['cinder-1'])
        c.lose_lease('cinder-1')
        self.agent_error('RecoveryInProgress', self.driver.extend_volume,
                         vol, 2)
        # the backend reports itself down meanwhile
        self.assertEqual('down',
                         self.driver.get_volume_stats(True)['backend_state'])
        c.restore_lease('cinder-1')
        self.driver.extend_volume(vol, 2)
        self.assertEqual(2 * units.Gi, c.lv(vol.name)['size_bytes'])
        self.delete_volume(vol)
        self.driver.terminate_connection(held, conn['cinder-1'])
        self.delete_volume(held)
