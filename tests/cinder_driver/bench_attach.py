"""Benchmark, not a test: 100 attachments through cinder, concurrent vs
sequential, side by side in one run.

Each attachment is nova's: the v3 attachments API, cinder's RPC to the
volume service, VolumeManager.attachment_update, the driver, the agent of
compute-a (activate_volume exclusive). Concurrent ones overlap in cinder's
RPC executor and the agent batches their activations into few lvchange
runs; the ratio shows how much of that reaches cinder. Agents on the
simulator (no block devices: the attach path opens none). Prints the times
and the ratio; checks only that every attachment took its lock.
"""

import harness  # noqa: F401 -- first: cinder's eventlet patching

import time
import uuid

import eventlet

N = 100


class BenchAttach(harness.SharedLVMTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = harness.Cluster(devices=False)

    @classmethod
    def tearDownClass(cls):
        cls.plain.close()
        super().tearDownClass()

    def use_cluster(self):
        return self.plain

    def attach_all(self, volumes, concurrent):
        start = time.monotonic()
        if concurrent:
            pool = eventlet.GreenPool(N)
            atts = list(pool.imap(
                lambda v: self.attach(v, str(uuid.uuid4()), 'compute-a'),
                volumes))
        else:
            atts = [self.attach(v, str(uuid.uuid4()), 'compute-a')
                    for v in volumes]
        elapsed = time.monotonic() - start
        held = {v['volume_name']: v.get('mode')
                for v in self.cluster.call('compute-a', 'list_volumes')}
        self.assertEqual(['exclusive'] * N, [held.get(v.name)
                                             for v in volumes])
        for att in atts:
            self.attachment_delete(att)
        return elapsed

    def test_bench(self):
        seq = [self.create_volume() for _ in range(N)]
        conc = [self.create_volume() for _ in range(N)]
        t_seq = self.attach_all(seq, concurrent=False)
        t_conc = self.attach_all(conc, concurrent=True)
        print('\nbench: %d attachments through cinder: sequential %.2f s '
              '(%.1f ms each), concurrent %.2f s; ratio %.1fx'
              % (N, t_seq, 1000 * t_seq / N, t_conc, t_seq / t_conc),
              flush=True)
        for v in seq + conc:
            self.manager.delete_volume(self.context, v)
