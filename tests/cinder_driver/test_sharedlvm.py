"""The SharedLVM driver inside Debian's cinder, against real agents.

Every test goes through cinder's VolumeManager of a started cinder-volume
service (harness.py) and checks, after each step, the lock mode lvmlockd
holds on every simulated host as its agent reports it (list_volumes).
"""

import harness  # noqa: F401 -- first: cinder's eventlet patching

import os
import subprocess
import tempfile
import uuid

from oslo_messaging import TransportURL
from oslo_utils import units

from cinder import exception
from cinder.interface import volume_driver
from cinder.interface import volume_group_driver
from cinder.interface import volume_manageable_driver
from cinder import objects
from cinder.objects import fields
from cinder.scheduler.filters import capabilities_filter
from cinder.tests.unit import utils as tests_utils
from cinder.volume import group_types

from cinder_sharedlvm_driver import agent_client
from cinder_sharedlvm_driver import driver as sharedlvm

# cinder's own compliance check of every registered driver (ours included,
# since it is imported above), run as cinder runs it.
from cinder.tests.compliance import test_volume_drivers

CinderCompliance = test_volume_drivers.TestVolumeDrivers


class Compliance(harness.test.TestCase):
    def test_interfaces(self):
        for iface in (volume_driver.VolumeDriverCore,
                      volume_manageable_driver.VolumeManagementDriver,
                      volume_group_driver.VolumeGroupDriver):
            self.assertTrue(issubclass(sharedlvm.SharedLVMDriver, iface),
                            iface.__name__)
        from cinder.interface import util
        self.assertIn(sharedlvm.SharedLVMDriver,
                      [d.cls for d in util.get_volume_drivers()])


class ImageFiles(object):
    """An image service over local files, for cinder's image utilities."""

    def __init__(self, directory):
        self.dir = directory
        self.meta = {}
        self.temp_images = None  # image_utils.TemporaryImages keeps its own

    def add(self, path, disk_format):
        image_id = str(uuid.uuid4())
        self.meta[image_id] = {'id': image_id, 'disk_format': disk_format,
                               'container_format': 'bare',
                               'size': os.path.getsize(path),
                               'status': 'active'}
        os.rename(path, os.path.join(self.dir, image_id))
        return image_id

    def show(self, context, image_id):
        return dict(self.meta[image_id])

    def download(self, context, image_id, data):
        with open(os.path.join(self.dir, image_id), 'rb') as f:
            while True:
                chunk = f.read(units.Mi)
                if not chunk:
                    return
                data.write(chunk)

    def update(self, context, image_id, meta, data, **kwargs):
        with open(os.path.join(self.dir, image_id), 'wb') as f:
            while True:
                chunk = data.read(units.Mi)
                if not chunk:
                    return
                f.write(chunk)

    def path(self, image_id):
        return os.path.join(self.dir, image_id)


def raw_of(qcow2):
    """The raw bytes of a qcow2 image (qemu-img)."""
    out = qcow2 + '.raw'
    subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', qcow2,
                    out], check=True)
    with open(out, 'rb') as f:
        data = f.read()
    os.unlink(out)
    return data


class SeedConfig(harness.SharedLVMTestCase):
    def test_seed_section_as_written(self):
        conf = self.driver.configuration
        # The section's values reached the driver (the URL and VG are the
        # test's own; everything else is the seed's).
        self.assertEqual(
            ('default', 0, 'iscsi', 'tgtadm', 'sanlock', 'none', 100, 2888),
            (conf.lvm_type, conf.lvm_mirrors, conf.target_protocol,
             conf.target_helper, conf.volume_backend_name, conf.volume_clear,
             conf.volume_clear_size, conf.agent_response_timeout))
        self.assertEqual(sharedlvm.SharedLVMDriver, type(self.driver))
        self.assertTrue(self.driver.initialized)
        # amqp:// is RabbitMQ for this driver; oslo would read it as AMQP 1.0.
        seed = agent_client.rabbit_url(
            'amqp://aos:password@controller:5672/aos')
        url = TransportURL.parse(harness.CONF, seed)
        self.assertEqual(('rabbit', 'controller', 5672, 'aos', 'aos'),
                         (url.transport, url.hosts[0].hostname,
                          url.hosts[0].port, url.hosts[0].username,
                          url.virtual_host))
        # The test's broker is given as amqp:// too: the driver talks to it.
        self.assertTrue(conf.agent_transport_url.startswith('amqp://'))
        self.assertTrue(self.driver.agents.url.startswith('rabbit://'))
        stats = self.driver.get_volume_stats(refresh=True)
        self.assertEqual((True, False, 'up', 'sanlock'),
                         (stats['multiattach'], stats['online_extend_support'],
                          stats['backend_state'],
                          stats['volume_backend_name']))
        # Capacity from the VG as the agent reads it with vgs: the
        # simulated LUN less lvmlockd's lease LV, nothing allocated beyond.
        self.assertIsInstance(stats['total_capacity_gb'], float)
        self.assertGreater(stats['total_capacity_gb'], 0)
        self.assertLessEqual(stats['free_capacity_gb'],
                             stats['total_capacity_gb'])

    def test_several_brokers(self):
        # A URL with two brokers, the first one dead: oslo fails over.
        good = harness.URL.split('://', 1)[1]
        creds = good.split('@', 1)[0]
        url = 'rabbit://%s@127.0.0.1:9,%s' % (creds, good)
        self.override_config('agent_transport_url', url, group='sanlock')
        self.restart_volume_service()
        self.assertTrue(self.driver.initialized)
        self.assertEqual(['127.0.0.1', '127.0.0.1'], [
            h.hostname for h in TransportURL.parse(harness.CONF, url).hosts])

    def test_refused_settings(self):
        for name, value, words in (('lvm_type', 'thin', 'lvm_type = thin'),
                                   ('lvm_mirrors', 1, 'lvm_mirrors = 1'),
                                   ('agent_transport_url', '',
                                    'agent_transport_url is not set')):
            self.override_config(name, value, group='sanlock')
            d = sharedlvm.SharedLVMDriver(
                configuration=self.driver.configuration, host='x')
            e = self.assertRaises(exception.VolumeDriverException,
                                  d.do_setup, self.context)
            self.assertIn(words, str(e))
            harness.CONF.clear_override(name, group='sanlock')

    def test_setup_names_what_is_wrong(self):
        # a VG the agents do not manage
        self.override_config('volume_group', 'other', group='sanlock')
        self.restart_volume_service()
        self.assertFalse(self.driver.initialized)
        e = self.assertRaises(exception.VolumeBackendAPIException,
                              self.driver.check_for_setup_error)
        self.assertIn('does not manage VG other', str(e))
        self.assertIn('[lvm] volume_groups', str(e))
        # this host's agent is unknown (no mapping for its name)
        self.override_config('volume_group', self.cluster.vg,
                             group='sanlock')
        self.override_config('agent_host_map', {}, group='sanlock')
        self.override_config('agent_call_monitor_timeout', 2,
                             group='sanlock')
        self.restart_volume_service()
        self.assertFalse(self.driver.initialized)
        e = self.assertRaises(agent_client.AgentTimeout,
                              self.driver.check_for_setup_error)
        self.assertIn('did not answer ping', str(e))
        self.assertIn('agent_host_map', str(e))


class Story(harness.SharedLVMTestCase):
    """create → attach on A → live-migrate to B (and back, rolled back) →
    multi-attach on A and B → extend → snapshot → clone → detach → delete.
    """

    def test_story(self):
        c = self.cluster
        vol = self.create_volume(size=1, multiattach=True)
        self.assertModes(vol)
        vm1, vm2 = str(uuid.uuid4()), str(uuid.uuid4())

        # nova attaches vm1's volume on compute-a
        att_a = self.attach(vol, vm1, 'compute-a')
        self.assertEqual({'device_path': '/dev/%s/%s' % (c.vg, vol.name)},
                         {'device_path': att_a['connection_info'][
                             'device_path']})
        self.assertEqual('local',
                         att_a['connection_info']['driver_volume_type'])
        self.assertModes(vol, compute_a='exclusive')

        # live migration a -> b, in nova's order: pre_live_migration on the
        # destination creates its attachment while the source's remains
        att_b = self.attachment_create(vol, vm1, 'compute-b')
        self.assertModes(vol, compute_a='shared', compute_b='shared')
        self.attachment_complete(att_b)
        # _post_live_migration on the source deletes the old attachment
        self.attachment_delete(att_a)
        self.assertModes(vol, compute_b='exclusive')

        # live migration b -> a, rolled back (_rollback_volume_bdms deletes
        # the destination's attachment)
        att_back = self.attachment_create(vol, vm1, 'compute-a')
        self.assertModes(vol, compute_a='shared', compute_b='shared')
        self.attachment_delete(att_back)
        self.assertModes(vol, compute_b='exclusive')

        # multi-attach: vm2 on compute-a
        att_vm2 = self.attach(vol, vm2, 'compute-a')
        self.assertModes(vol, compute_a='shared', compute_b='shared')

        # extend while attached: cinder's scheduler refuses it for this
        # backend (online_extend_support False: nova's 'local' driver
        # cannot grow an attached disk); nothing changes
        stats = self.driver.get_volume_stats(refresh=True)
        vol.refresh()
        backend = type('Backend', (), {'capabilities': stats})()
        request = {'request_spec': {
            'operation': 'extend_volume',
            'volume_properties': {'attach_status': vol.attach_status}}}
        self.assertFalse(capabilities_filter.CapabilitiesFilter()
                         .backend_passes(backend, request))
        self.assertModes(vol, compute_a='shared', compute_b='shared')

        # vm2 detaches: compute-b, the one host left, holds it exclusively
        self.attachment_delete(att_vm2)
        self.assertModes(vol, compute_b='exclusive')

        # snapshot of the in-use volume: taken on compute-b, which holds it
        snap = tests_utils.create_snapshot(self.context, vol.id,
                                           status='creating')
        self.manager.create_snapshot(self.context, snap)
        snap.refresh()
        self.assertEqual('available', snap.status)
        self.assertModes(vol, compute_b='exclusive')
        self.assertEqual(vol.size * units.Gi,
                         c.lv('_snapshot-' + snap.id)['size_bytes'])

        # a clone of the attached volume, and a volume from the snapshot,
        # both read on compute-b; they end up idle everywhere
        clone = self.create_volume(size=1, source_volid=vol.id)
        from_snap = self.create_volume(size=2, snapshot_id=snap.id)
        self.assertModes(clone)
        self.assertModes(from_snap)
        self.assertEqual(2 * units.Gi, c.lv(from_snap.name)['size_bytes'])
        self.assertModes(vol, compute_b='exclusive')

        # vm1 detaches: released everywhere
        vol.refresh()
        att_b_obj = objects.VolumeAttachment.get_by_id(self.context,
                                                       att_b['id'])
        self.attachment_delete({'id': att_b_obj.id})
        vol.refresh()
        self.assertEqual('available', vol.status)
        self.assertModes(vol)

        # extend, now that it is available
        self.manager.extend_volume(self.context, vol, 3, None)
        vol.refresh()
        self.assertEqual((3, 'available'), (vol.size, vol.status))
        self.assertEqual(3 * units.Gi, c.lv(vol.name)['size_bytes'])
        self.assertModes(vol)

        # delete: the snapshot, the clones, the volume
        self.manager.delete_snapshot(self.context, snap)
        self.assertIsNone(c.lv('_snapshot-' + snap.id))
        for v in (clone, from_snap, vol):
            self.delete_volume(v)
            self.assertIsNone(c.lv(v.name))
            self.assertModes(v)


class Connections(harness.SharedLVMTestCase):
    def test_multiattach_two_hosts_and_force_detach(self):
        vol = self.create_volume(multiattach=True)
        att_a = self.attach(vol, str(uuid.uuid4()), 'compute-a')
        att_b = self.attach(vol, str(uuid.uuid4()), 'compute-b')
        self.assertModes(vol, compute_a='shared', compute_b='shared')
        # initialize_connection again (nova retrying): nothing changes
        info = self.driver.initialize_connection(
            vol, harness.nova_connector('compute-b'))
        self.assertEqual('local', info['driver_volume_type'])
        self.assertModes(vol, compute_a='shared', compute_b='shared')
        # force-detach (os-force_detach without a connector): every host
        # lets it go
        vol.refresh()
        self.context.service_roles = ['service']  # nova's service token
        self.volume_api.terminate_connection(self.context, vol, None,
                                             force=True)
        self.assertModes(vol)
        for att in (att_a, att_b):
            self.volume_api.detach(self.context, vol, att['id'])
        vol.refresh()
        self.assertEqual('available', vol.status)
        self.delete_volume(vol)

    def test_two_attachments_on_one_host(self):
        vol = self.create_volume(multiattach=True)
        att1 = self.attach(vol, str(uuid.uuid4()), 'compute-a')
        att2 = self.attach(vol, str(uuid.uuid4()), 'compute-a')
        self.assertModes(vol, compute_a='exclusive')
        # the first detach leaves the other VM's lock in place
        self.attachment_delete(att1)
        self.assertModes(vol, compute_a='exclusive')
        self.attachment_delete(att2)
        self.assertModes(vol)
        self.delete_volume(vol)

    def test_invalid_connector(self):
        vol = self.create_volume()
        self.assertRaises(exception.InvalidConnectorException,
                          self.driver.validate_connector, {'ip': '192.0.2.1'})
        self.override_config('agent_call_monitor_timeout', 2,
                             group='sanlock')
        self.restart_volume_service()
        e = self.assertRaises(exception.InvalidConnectorException,
                              self.driver.validate_connector,
                              harness.nova_connector('compute-z'))
        self.assertIn('compute-z', str(e))
        # through the API: nova gets a 400, nothing was activated
        self.assertRaises(Exception, self.attachment_create, vol,
                          str(uuid.uuid4()), 'compute-z')
        self.assertModes(vol)
        self.delete_volume(vol)

    def test_ensure_export_with_an_agent_down(self):
        vol = self.create_volume()
        att = self.attach(vol, str(uuid.uuid4()), 'compute-b')
        self.assertModes(vol, compute_b='exclusive')
        self.override_config('agent_call_monitor_timeout', 2,
                             group='sanlock')
        self.cluster.control('stop compute-b')
        try:
            # cinder-volume restarts: init_host calls ensure_export for the
            # in-use volume while compute-b's agent does not answer
            self.restart_volume_service()
            self.assertTrue(self.driver.initialized)
            vol.refresh()
            self.assertEqual('in-use', vol.status)
        finally:
            self.cluster.control('start compute-b')
        # the host kept its lock through the agent's absence
        self.assertModes(vol, compute_b='exclusive')
        self.attachment_delete(att)
        self.assertModes(vol)
        self.delete_volume(vol)


class Operations(harness.SharedLVMTestCase):
    def setUp(self):
        super().setUp()
        self.images = ImageFiles(self.useFixture(
            harness.fixtures.TempDir()).path)

    def pattern_image(self):
        """A qcow2 image of 1 GiB whose first 2 MiB are a pattern."""
        raw = tempfile.mktemp(dir=self.images.dir)
        data = os.urandom(2 * units.Mi)
        with open(raw, 'wb') as f:
            f.write(data)
            f.truncate(units.Gi)
        qcow2 = raw + '.qcow2'
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                        raw, qcow2], check=True)
        os.unlink(raw)
        return self.images.add(qcow2, 'qcow2'), data

    def upload(self, volume):
        """copy_volume_to_image into a new qcow2 image; its raw bytes."""
        image_id = str(uuid.uuid4())
        meta = {'id': image_id, 'disk_format': 'qcow2',
                'container_format': 'bare'}
        self.images.meta[image_id] = meta
        self.driver.copy_volume_to_image(self.context, volume, self.images,
                                         meta)
        return raw_of(self.images.path(image_id))

    def test_image_copies_snapshots_clones_carry_data(self):
        image_id, data = self.pattern_image()
        vol = self.create_volume()
        # image -> volume on cinder-1, the lock released afterwards
        self.driver.copy_image_to_volume(self.context, vol, self.images,
                                         image_id)
        self.assertModes(vol)
        snap = tests_utils.create_snapshot(self.context, vol.id,
                                           status='creating')
        self.manager.create_snapshot(self.context, snap)
        # the origin changes after the snapshot: the snapshot keeps the image
        other_id, other = self.pattern_image()
        self.driver.copy_image_to_volume(self.context, vol, self.images,
                                         other_id)
        from_snap = self.create_volume(snapshot_id=snap.id)
        clone = self.create_volume(source_volid=vol.id)
        # volume -> image, for each: the bytes are what they must be
        zeros = bytes(units.Gi - 2 * units.Mi)
        self.assertEqual(data + zeros, self.upload(from_snap))
        self.assertEqual(other + zeros, self.upload(clone))
        for v in (vol, from_snap, clone):
            self.assertModes(v)
        self.manager.delete_snapshot(self.context, snap)
        for v in (from_snap, clone, vol):
            self.delete_volume(v)

    def test_image_copy_of_an_attached_volume(self):
        # upload of an in-use volume: compute-a shares it with cinder-1 for
        # the copy and holds it exclusively again afterwards
        image_id, data = self.pattern_image()
        vol = self.create_volume()
        self.driver.copy_image_to_volume(self.context, vol, self.images,
                                         image_id)
        att = self.attach(vol, str(uuid.uuid4()), 'compute-a')
        self.assertEqual(data, self.upload(vol)[:len(data)])
        self.assertModes(vol, compute_a='exclusive')
        self.attachment_delete(att)
        self.delete_volume(vol)

    def test_delete_clears(self):
        self.override_config('volume_clear', 'zero', group='sanlock')
        self.override_config('volume_clear_size', 1, group='sanlock')
        self.restart_volume_service()
        image_id, data = self.pattern_image()
        vol = self.create_volume()
        self.driver.copy_image_to_volume(self.context, vol, self.images,
                                         image_id)
        # the LV's backing file, held open past the LV's removal
        uuid_ = self.cluster.lv(vol.name)['uuid']
        backing = open(os.path.join(self.cluster.work, 'lv-data', uuid_),
                       'rb')
        self.addCleanup(backing.close)
        self.delete_volume(vol)
        self.assertIsNone(self.cluster.lv(vol.name))
        content = backing.read(len(data))
        # volume_clear_size = 1: the first MiB zeroed, the rest untouched
        self.assertEqual(bytes(units.Mi), content[:units.Mi])
        self.assertEqual(data[units.Mi:], content[units.Mi:])

    def test_manage_and_unmanage(self):
        c = self.cluster
        lv_id = str(uuid.uuid4())
        c.call('cinder-1', 'create_volume', volume_name='volume-' + lv_id,
               size=2, volume_group=c.vg)
        vol = tests_utils.create_volume(
            self.context, host=harness.SERVICE_HOST + '#sanlock', size=0,
            status='managing', volume_type_id=self.volume_type().id)
        ref = {'source-name': 'volume-' + lv_id}
        self.assertEqual(2, self.driver.manage_existing_get_size(vol, ref))
        update = self.driver.manage_existing(vol, ref)
        self.assertEqual({'_name_id': lv_id}, update)
        vol.update(update)
        vol.size = 2
        vol.status = 'available'
        vol.save()
        self.assertEqual('volume-' + lv_id, vol.name)
        att = self.attach(vol, str(uuid.uuid4()), 'compute-a')
        self.assertModes(vol, compute_a='exclusive')
        self.attachment_delete(att)
        # other names cannot be adopted; unknown LVs are refused
        c.call('cinder-1', 'create_volume', volume_name='data-1', size=1,
               volume_group=c.vg)
        e = self.assertRaises(exception.ManageExistingInvalidReference,
                              self.driver.manage_existing, vol,
                              {'source-name': 'data-1'})
        self.assertIn('lvrename', str(e))
        self.assertRaises(exception.ManageExistingInvalidReference,
                          self.driver.manage_existing_get_size, vol,
                          {'source-name': 'nope'})
        # unmanage leaves the LV in the VG
        self.driver.unmanage(vol)
        self.assertIsNotNone(c.lv('volume-' + lv_id))
        c.call('cinder-1', 'delete_volume', volume_name='volume-' + lv_id,
               volume_group=c.vg)
        c.call('cinder-1', 'delete_volume', volume_name='data-1',
               volume_group=c.vg)

    def test_consistency_group(self):
        # `cinder consisgroup-create`: a group of cinder's default
        # cgsnapshot type, then a group snapshot, a group from it, delete
        gt = group_types.get_default_cgsnapshot_type()
        if not gt:
            gt = group_types.create(
                self.context, group_types.DEFAULT_CGSNAPSHOT_TYPE,
                group_specs={'consistent_group_snapshot_enabled':
                             '<is> True'})
        vt = self.volume_type()
        group = tests_utils.create_group(
            self.context, group_type_id=gt['id'], volume_type_ids=[vt.id],
            host=harness.SERVICE_HOST + '#sanlock', status='creating')
        self.manager.create_group(self.context, group)
        group.refresh()
        self.assertEqual(fields.GroupStatus.AVAILABLE, group.status)
        vols = [self.create_volume(group_id=group.id) for _ in range(2)]
        gs = tests_utils.create_group_snapshot(
            self.context, group.id, group_type_id=gt['id'],
            status='creating')
        snaps = [tests_utils.create_snapshot(
            self.context, v.id, group_snapshot_id=gs.id, status='creating')
            for v in vols]
        self.manager.create_group_snapshot(self.context, gs)
        gs.refresh()
        self.assertEqual(fields.GroupSnapshotStatus.AVAILABLE, gs.status)
        for s in snaps:
            self.assertIsNotNone(self.cluster.lv('_snapshot-' + s.id))
        # an attached member: the group snapshot is refused
        att = self.attach(vols[0], str(uuid.uuid4()), 'compute-a')
        gs2 = tests_utils.create_group_snapshot(
            self.context, group.id, group_type_id=gt['id'],
            status='creating')
        for v in vols:
            tests_utils.create_snapshot(self.context, v.id,
                                        group_snapshot_id=gs2.id,
                                        status='creating')
        self.assertRaises(exception.CinderException,
                          self.manager.create_group_snapshot, self.context,
                          gs2)
        self.attachment_delete(att)
        # a group from the group snapshot
        group2 = tests_utils.create_group(
            self.context, group_type_id=gt['id'], volume_type_ids=[vt.id],
            host=harness.SERVICE_HOST + '#sanlock', status='creating',
            group_snapshot_id=gs.id)
        new = [tests_utils.create_volume(
            self.context, host=harness.SERVICE_HOST + '#sanlock', size=1,
            status='creating', group_id=group2.id, snapshot_id=s.id,
            volume_type_id=vt.id) for s in snaps]
        self.manager.create_group_from_src(self.context, group2,
                                           group_snapshot=gs)
        for v in new:
            self.assertIsNotNone(self.cluster.lv(v.name))
        # delete everything through the manager
        self.manager.delete_group_snapshot(self.context, gs)
        for g in (group2, group):
            g.refresh()
            self.manager.delete_group(self.context, g)
        for v in vols + new:
            self.assertIsNone(self.cluster.lv(v.name))

    def test_extend_of_a_volume_held_shared_refreshes(self):
        # extend_volume on a volume attached on two hosts (a path cinder's
        # API does not take): the agent extends it shared and every holder
        # refreshes; the manager then asks nova, which is not there
        vol = self.create_volume(multiattach=True)
        atts = [self.attach(vol, str(uuid.uuid4()), h)
                for h in ('compute-a', 'compute-b')]
        self.driver.extend_volume(vol, 2)
        self.assertEqual(2 * units.Gi, self.cluster.lv(vol.name)['size_bytes'])
        self.assertModes(vol, compute_a='shared', compute_b='shared')
        for att in atts:
            self.attachment_delete(att)
        self.delete_volume(vol)

