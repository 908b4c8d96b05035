"""The SharedLVM driver behind cinder's real services, driven as people and
nova drive them: `openstack ...` for the operator's steps, cinderclient's
Python API for nova's attachment calls. After every step: cinder's view
through its API, and each host's lock mode through its agent.
"""

import time
import uuid

from cinderclient import exceptions as cinder_exc

import base


class Story(base.ServicesTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The seed's volume type, and one for multi-attach.
        cls.create_seed_type()
        cls.cp.openstack('volume', 'type', 'create', 'sanlock-multiattach',
                         '--property', 'volume_backend_name=sanlock',
                         '--property', 'multiattach=<is> True')

    def test_type(self):
        t = self.openstack('volume', 'type', 'show', 'sanlock', '-f', 'json')
        self.assertEqual({'volume_backend_name': 'sanlock'}, t['properties'])
        pools = self.api.pools.list(detailed=True)
        self.assertEqual(['cinder-1@sanlock#sanlock'], [p.name for p in pools])
        # What the driver reports, as cinder's scheduler holds it.
        pool = pools[0]
        self.assertEqual('local', pool.storage_protocol)
        self.assertTrue(pool.multiattach)
        self.assertFalse(pool.online_extend_support)
        self.assertEqual(256, pool.total_capacity_gb)

    def test_attach_detach(self):
        vol = self.create_volume()
        vm = str(uuid.uuid4())
        att = self.attachment_create(vol.id, 'compute-a', vm)
        self.assertEqual('local', att['connection_info']['driver_volume_type'])
        self.assertEqual('/dev/%s/volume-%s' % (self.cluster.vg, vol.id),
                         att['connection_info']['device_path'])
        self.assertEqual('attaching', self.api.volumes.get(vol.id).status)
        self.assertModes(vol.id, compute_a='exclusive')
        self.api.attachments.complete(att['id'])
        self.assertAttached(vol.id, 'compute-a')
        self.assertModes(vol.id, compute_a='exclusive')
        self.detach(att)
        self.assertAttached(vol.id, status='available')
        self.assertModes(vol.id)
        self.delete_volume(vol.id)

    def test_attach_nova_reserve_then_update(self):
        # nova's compute API reserves first (attachment_create without a
        # connector), the compute host then updates it with its connector.
        vol = self.create_volume()
        att = self.api.attachments.create(vol.id, None, str(uuid.uuid4()))
        self.assertEqual('reserved', self.api.volumes.get(vol.id).status)
        self.assertModes(vol.id)
        self.api.attachments.update(att['id'],
                                    base.nova_connector('compute-b'))
        self.assertModes(vol.id, compute_b='exclusive')
        self.api.attachments.complete(att['id'])
        self.assertAttached(vol.id, 'compute-b')
        self.detach(att)
        self.assertModes(vol.id)
        self.delete_volume(vol.id)

    def test_live_migration(self):
        vol = self.create_volume()
        vm = str(uuid.uuid4())
        src = self.attach(vol.id, 'compute-a', vm)
        self.assertModes(vol.id, compute_a='exclusive')
        # pre_live_migration on the destination: its attachment while the
        # source's exists (same instance); both hosts shared.
        dst = self.attachment_create(vol.id, 'compute-b', vm)
        self.assertModes(vol.id, compute_a='shared', compute_b='shared')
        self.api.attachments.complete(dst['id'])
        self.assertAttached(vol.id, 'compute-a', 'compute-b')
        self.assertModes(vol.id, compute_a='shared', compute_b='shared')
        # _post_live_migration: the source's attachment goes.
        self.detach(src)
        self.assertAttached(vol.id, 'compute-b')
        self.assertModes(vol.id, compute_b='exclusive')
        self.detach(dst)
        self.assertAttached(vol.id, status='available')
        self.assertModes(vol.id)
        self.delete_volume(vol.id)

    def test_live_migration_rollback(self):
        vol = self.create_volume()
        vm = str(uuid.uuid4())
        src = self.attach(vol.id, 'compute-a', vm)
        dst = self.attachment_create(vol.id, 'compute-b', vm)
        self.assertModes(vol.id, compute_a='shared', compute_b='shared')
        # _rollback_volume_bdms: the destination's attachment goes.
        self.detach(dst)
        self.assertAttached(vol.id, 'compute-a')
        self.assertModes(vol.id, compute_a='exclusive')
        self.detach(src)
        self.assertModes(vol.id)
        self.delete_volume(vol.id)

    def test_lease_loss_during_attach(self):
        vol = self.create_volume()
        # A VM on compute-b has another volume attached.
        held = self.create_volume()
        held_att = self.attach(held.id, 'compute-b')
        # nova's compute API reserves the volume; before the compute host
        # connects, its lease is lost (every path gone, the kill hook fenced).
        att = self.api.attachments.create(vol.id, None, str(uuid.uuid4()))
        try:
            self.cluster.lose_lease('compute-b')
            with self.assertRaises(cinder_exc.ClientException) as cm:
                self.api.attachments.update(att['id'],
                                            base.nova_connector('compute-b'))
            # cinder's error names the host whose agent refused, and why.
            self.assertEqual(500, cm.exception.code)
            self.assertIn('aos-agent on %s: activate_volume failed'
                          % self.cluster.agent('compute-b'),
                          str(cm.exception))
            # Nothing half-done: the attachment stays nova's reservation (no
            # connection was made; cinder's manager records none), the
            # volume has no attached attachment, the LV is active nowhere.
            self.assertEqual('reserved', self.api.attachments.show(
                att['id']).status)
            v = self.api.volumes.get(vol.id)
            self.assertEqual(('reserved', []), (v.status, v.attachments))
            self.assertModes(vol.id, without=('compute-b',))
            # nova's rollback of the failed attach.
            self.detach(att)
            self.wait_volume(vol.id, 'available')
        finally:
            self.cluster.restore_lease('compute-b')
        # The recovery re-acquired nothing for the failed attach, and the
        # attached volume's lock where cinder says it is attached.
        self.assertModes(vol.id)
        self.assertAttached(held.id, 'compute-b')
        self.assertModes(held.id, compute_b='exclusive')
        self.detach(held_att)
        self.delete_volume(held.id)
        # Recovered by itself, the host attaches again.
        att = self.attach(vol.id, 'compute-b')
        self.assertModes(vol.id, compute_b='exclusive')
        self.detach(att)
        self.assertModes(vol.id)
        self.delete_volume(vol.id)

    def test_multiattach(self):
        vol = self.create_volume(vtype='sanlock-multiattach')
        self.assertTrue(self.api.volumes.get(vol.id).multiattach)
        a = self.attach(vol.id, 'compute-a')
        self.assertModes(vol.id, compute_a='exclusive')
        b = self.attach(vol.id, 'compute-b')
        self.assertAttached(vol.id, 'compute-a', 'compute-b')
        self.assertModes(vol.id, compute_a='shared', compute_b='shared')
        # A second instance on a host that has it already.
        a2 = self.attach(vol.id, 'compute-a')
        self.assertModes(vol.id, compute_a='shared', compute_b='shared')
        self.detach(a)
        self.assertAttached(vol.id, 'compute-a', 'compute-b')
        self.assertModes(vol.id, compute_a='shared', compute_b='shared')
        self.detach(b)
        self.assertAttached(vol.id, 'compute-a')
        self.assertModes(vol.id, compute_a='exclusive')
        self.detach(a2)
        self.assertModes(vol.id)
        self.delete_volume(vol.id)

    def test_extend(self):
        vol = self.create_volume()
        self.openstack('volume', 'set', '--size', '2', vol.id)
        v = self.wait_volume(vol.id, 'available')
        self.assertEqual(2, v.size)
        self.assertEqual(2 * 1024 ** 3,
                         self.cluster.lv('volume-' + vol.id)['size_bytes'])
        self.assertModes(vol.id)
        # In use: the API accepts it (microversion >= 3.42), and cinder's
        # scheduler refuses it because the driver reports
        # online_extend_support = False: the volume goes back to in-use at
        # its size, with a user message saying why.
        att = self.attach(vol.id, 'compute-a')
        self.openstack('volume', 'set', '--size', '3', vol.id)
        deadline = time.monotonic() + 60
        while True:
            msgs = [m for m in self.api.messages.list()
                    if m.resource_uuid == vol.id]
            v = self.api.volumes.get(vol.id)
            if msgs and v.status != 'extending':
                break
            self.assertLess(time.monotonic(), deadline, (v.status, msgs))
            time.sleep(0.3)
        self.assertEqual(('in-use', 2), (v.status, v.size))
        # extend volume (007): no backend available (003).
        self.assertEqual('VOLUME_VOLUME_007_003', msgs[0].event_id,
                         msgs[0].user_message)
        self.assertEqual(2 * 1024 ** 3,
                         self.cluster.lv('volume-' + vol.id)['size_bytes'])
        self.assertModes(vol.id, compute_a='exclusive')
        self.detach(att)
        self.delete_volume(vol.id)

    def test_snapshot_clone(self):
        vol = self.create_volume()
        snap = self.openstack('volume', 'snapshot', 'create', '--volume',
                              vol.id, 's-' + vol.id[:6], '-f', 'json')
        self.wait_snapshot(snap['id'])
        # The snapshot's LV (the driver's _snapshot-<id>), on the shared VG.
        self.assertIsNotNone(self.cluster.lv('_snapshot-' + snap['id']))
        self.assertModes(vol.id)
        from_snap = self.create_volume(
            size=0, extra=('--snapshot', snap['id']))
        clone = self.create_volume(size=0, extra=('--source', vol.id))
        # The copies attach and detach like any volume.
        att = self.attach(from_snap.id, 'compute-b')
        self.assertModes(from_snap.id, compute_b='exclusive')
        self.detach(att)
        self.assertModes(from_snap.id)
        # A snapshot of an attached volume (--force): taken under the lock
        # on the host that holds it, which keeps it.
        att = self.attach(vol.id, 'compute-a')
        snap2 = self.openstack('volume', 'snapshot', 'create', '--force',
                               '--volume', vol.id, 's2-' + vol.id[:6],
                               '-f', 'json')
        self.wait_snapshot(snap2['id'])
        self.assertModes(vol.id, compute_a='exclusive')
        self.assertAttached(vol.id, 'compute-a')
        self.detach(att)
        self.assertIsNotNone(self.cluster.lv('_snapshot-' + snap2['id']))
        for s in (snap['id'], snap2['id']):
            self.openstack('volume', 'snapshot', 'delete', s)
            self.wait_gone(self.api.volume_snapshots.get, s)
            self.assertIsNone(self.cluster.lv('_snapshot-' + s))
        for v in (from_snap.id, clone.id, vol.id):
            self.delete_volume(v)

    def test_group_and_group_snapshot(self):
        self.openstack('volume', 'group', 'type', 'create', 'generic')
        g = self.openstack('volume', 'group', 'create', 'generic', 'sanlock',
                           '--name', 'g-sanlock', '-f', 'json')
        self.wait_group(g['ID'])
        vols = [self.create_volume() for _ in range(2)]
        # Adding volumes: osc has no command for it; `cinder group-update`.
        self.cp.cinder('group-update', g['ID'], '--add-volumes',
                       ','.join(v.id for v in vols))
        self.wait_group(g['ID'])
        self.assertEqual(sorted(v.id for v in vols), sorted(
            v.id for v in self.api.volumes.list(search_opts={
                'group_id': g['ID']})))
        gs = self.openstack('volume', 'group', 'snapshot', 'create',
                            g['ID'], '--name', 'gs-sanlock', '-f', 'json')
        self.wait_group_snapshot(gs['ID'])
        snaps = self.api.volume_snapshots.list(
            search_opts={'group_snapshot_id': gs['ID']})
        self.assertEqual(sorted(v.id for v in vols),
                         sorted(s.volume_id for s in snaps))
        for sn in snaps:
            self.assertIsNotNone(self.cluster.lv('_snapshot-' + sn.id))
        for v in vols:
            self.assertModes(v.id)
        self.openstack('volume', 'group', 'snapshot', 'delete', gs['ID'])
        self.wait_gone(self.api.group_snapshots.get, gs['ID'])
        for sn in snaps:
            self.assertIsNone(self.cluster.lv('_snapshot-' + sn.id))
        self.openstack('volume', 'group', 'delete', '--force', g['ID'])
        self.wait_gone(self.api.groups.get, g['ID'])
        for v in vols:
            self.wait_gone(self.api.volumes.get, v.id)
            self.assertIsNone(self.cluster.lv('volume-' + v.id))

    def test_seed_consistency_group(self):
        # As the seed's deployment runs it: a group of cinder's default
        # cgsnapshot type, which only the CG commands may operate.
        out = self.cp.cinder('consisgroup-create', '--name', 'sanlock',
                             'sanlock')
        gid = self.field(out, 'id')
        deadline = time.monotonic() + 120
        while True:
            status = self.field(self.cp.cinder('consisgroup-show', gid),
                                'status')
            if status == 'available':
                break
            self.assertFalse(status.startswith('error'), status)
            self.assertLess(time.monotonic(), deadline, status)
            time.sleep(0.5)
        self.cp.cinder('consisgroup-delete', gid)
        deadline = time.monotonic() + 120
        while True:
            try:
                status = self.field(self.cp.cinder('consisgroup-show', gid),
                                    'status')
            except AssertionError as e:
                self.assertIn('No consistencygroup', str(e))
                break
            self.assertFalse(status.startswith('error'), status)
            self.assertLess(time.monotonic(), deadline, status)
            time.sleep(0.5)

    @staticmethod
    def field(table, name):
        """A value of the `cinder` CLI's property table."""
        for ln in table.splitlines():
            cells = [c.strip() for c in ln.split('|')]
            if len(cells) > 2 and cells[1] == name:
                return cells[2]
        raise AssertionError('no %s in %s' % (name, table))

    def wait_group(self, gid, timeout=120):
        self._wait(self.api.groups.get, gid, timeout)

    def wait_group_snapshot(self, gid, timeout=120):
        self._wait(self.api.group_snapshots.get, gid, timeout)

    def _wait(self, getter, rid, timeout):
        deadline = time.monotonic() + timeout
        while True:
            r = getter(rid)
            if r.status == 'available':
                return r
            if r.status.startswith('error') or time.monotonic() > deadline:
                self.fail('%s is %s' % (rid, r.status))
            time.sleep(0.3)
