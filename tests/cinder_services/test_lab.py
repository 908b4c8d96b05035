"""Issue 14's lab tier: cinder's real services in front of real hosts.

cinder-api, cinder-scheduler and cinder-volume (Debian's, on this machine)
drive the SharedLVM driver, whose agents are the production daemons on the
lab's two qemu guests (real lvm2, lvmlockd, sanlock, multipath). The stories
(attach, live migration, a lease lost during an attach) are
test_services.Story's own, run unchanged; what
differs is where every step is checked: lock modes from lvmlockd on the
guests, and each attachment connected on its guest by os-brick, as nova's
compute host does, its device read (and, the first time, written) there.

Run by lab/cinder_services_test.go (AOS_LAB_BRIDGE, AOS_TEST_AMQP_URL,
AOS_TEST_WORK). Prints `timing: NAME SECONDS` lines for the lab's table.
"""

import os
import time
import unittest

import base
import labcluster
import test_services


class LabStory(base.ServicesTestCase):
    @classmethod
    def make_cluster(cls):
        return labcluster.LabCluster(os.environ['AOS_LAB_BRIDGE'])

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_seed_type()
        cls.markers = {}

    timing = staticmethod(labcluster.timing)

    # Every attachment nova makes is connected on its host.
    def attachment_create(self, vid, host, instance):
        others = self.api.volumes.get(vid).attachments
        start = time.monotonic()
        att = super().attachment_create(vid, host, instance)
        self.timing('attachment-create (%s)' % (
            'second host: both shared' if others else 'exclusive'), start)
        start = time.monotonic()
        # The first host to connect writes a marker; every later one (the
        # migration's destination) must read it through its own device.
        marker = self.markers.get(vid)
        got = self.cluster.connect(host, att['connection_info'],
                                   marker=None if marker else 'm-' + vid[:8])
        self.assertEqual(marker or 'm-' + vid[:8], got)
        self.markers[vid] = got
        self.connect_s = time.monotonic() - start
        self.timing('os-brick connect (loaded, as in nova) + O_DIRECT I/O',
                    start)
        return att

    def attach(self, vid, host, instance=None):
        start = time.monotonic()
        att = super().attach(vid, host, instance)
        self.timing('attach through cinder (attachment-create -> complete, '
                    'os-brick excluded)', start + self.connect_s)
        return att

    def detach(self, att):
        remaining = len(self.api.volumes.get(att['volume_id']).attachments)
        start = time.monotonic()
        super().detach(att)
        if att.get('connection_info'):  # not a bare reservation
            self.timing('attachment-delete (%s)' % (
                'other host keeps it: to exclusive' if remaining > 1
                else 'last: released'), start)

    test_attach_detach = test_services.Story.test_attach_detach
    test_live_migration = test_services.Story.test_live_migration
    test_lease_loss_during_attach = \
        test_services.Story.test_lease_loss_during_attach


if __name__ == '__main__':
    unittest.main(verbosity=2)
