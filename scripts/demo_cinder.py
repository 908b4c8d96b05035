"""make demo-cinder: the operator's story through cinder's own services.

Debian's cinder-api (noauth), cinder-scheduler and cinder-volume with the
seed's [sanlock] backend, in front of agents on three simulated hosts
(compute-a, compute-b, cinder-1; `aos-lab simulate`). The operator's steps
are `openstack` commands, printed as typed; nova's attach and live
migration are cinderclient's attachment calls, as nova makes them. After
each step: what cinder says, and the lock every host's agent holds.
Exits non-zero if anything turns out otherwise.

Usage: demo_cinder.py BROKER_URL AOS_LAB_BINARY WORK_DIR
"""

import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, '..', 'tests', 'cinder_services'),
                os.path.join(HERE, '..', 'tests', 'cinder_driver')]

import controlplane  # noqa: E402
import simcluster  # noqa: E402

START = time.monotonic()


def say(text):
    print('[%5.1fs] %s' % (time.monotonic() - START, text), flush=True)


class Demo(object):
    def __init__(self, cp, cluster):
        self.cp, self.cluster, self.api = cp, cluster, cp.client()

    def openstack(self, *args, parse=True):
        """The command as typed; its JSON output parsed, when it has one."""
        say('$ openstack ' + ' '.join(args))
        if parse:
            return self.cp.openstack(*(args + ('-f', 'json')))
        self.cp.openstack(*args)

    def wait(self, vid, *want):
        deadline = time.monotonic() + 120
        while True:
            v = self.api.volumes.get(vid)
            if v.status in want:
                return v
            if v.status.startswith('error') or time.monotonic() > deadline:
                raise SystemExit('volume %s is %s, waited for %s'
                                 % (vid, v.status, want))
            time.sleep(0.3)

    def hosts(self, vid, **want):
        modes = self.cluster.modes('volume-' + vid)
        expected = {h: 'none' for h in self.cluster.hosts}
        expected.update({k.replace('_', '-'): m for k, m in want.items()})
        v = self.api.volumes.get(vid)
        say('  cinder: %s, attached to %s; locks: %s' % (
            v.status, sorted(a['host_name'] for a in v.attachments) or '-',
            ', '.join('%s %s' % hm for hm in sorted(modes.items()))))
        if modes != expected:
            raise SystemExit('locks %s, expected %s' % (modes, expected))

    def story(self):
        self.openstack('volume', 'type', 'create', 'sanlock')
        self.openstack('volume', 'type', 'set', 'sanlock', '--property',
                       'volume_backend_name=sanlock', parse=False)
        vid = self.openstack('volume', 'create', '--type', 'sanlock',
                             '--size', '1', 'demo-1')['id']
        self.wait(vid, 'available')
        lv = self.cluster.lv('volume-' + vid)
        say('  cinder-1: LV volume-%s, %d GiB, on the shared VG'
            % (vid, lv['size_bytes'] >> 30))
        self.hosts(vid)

        vm = str(uuid.uuid4())
        say("nova attaches it to a VM on compute-a "
            "(attachment create with compute-a's connector, complete)")
        src = self.api.attachments.create(
            vid, simcluster.nova_connector('compute-a'), vm)
        say('  connection_info: %s %s' % (
            src['connection_info']['driver_volume_type'],
            src['connection_info']['device_path']))
        self.api.attachments.complete(src['id'])
        self.hosts(vid, compute_a='exclusive')

        say('nova live-migrates the VM to compute-b: the destination '
            'attaches while the source still has it')
        dst = self.api.attachments.create(
            vid, simcluster.nova_connector('compute-b'), vm)
        self.api.attachments.complete(dst['id'])
        self.hosts(vid, compute_a='shared', compute_b='shared')
        say("the migration is done: nova deletes the source's attachment")
        self.api.attachments.delete(src['id'])
        self.hosts(vid, compute_b='exclusive')

        say('compute-a tries to take the volume behind cinder\'s back '
            '(activate_volume on its agent): refused')
        try:
            self.cluster.call('compute-a', 'activate_volume',
                              volume_name='volume-' + vid, mode='exclusive',
                              volume_group=self.cluster.vg)
            raise SystemExit('compute-a got a volume compute-b holds')
        except Exception as e:  # oslo's RemoteError
            say('  compute-a: %s' % getattr(e, 'exc_type', e))
        self.hosts(vid, compute_b='exclusive')

        say('the VM is deleted: nova detaches')
        self.api.attachments.delete(dst['id'])
        self.wait(vid, 'available')
        self.openstack('volume', 'set', '--size', '2', vid, parse=False)
        v = self.wait(vid, 'available')
        say('  cinder: %d GiB; cinder-1: LV %d GiB'
            % (v.size, self.cluster.lv('volume-' + vid)['size_bytes'] >> 30))
        snap = self.openstack('volume', 'snapshot', 'create', '--volume',
                              vid, 'demo-1-snap')['id']
        deadline = time.monotonic() + 120
        while self.api.volume_snapshots.get(snap).status != 'available':
            if time.monotonic() > deadline:
                raise SystemExit('snapshot %s not available' % snap)
            time.sleep(0.3)
        copy = self.openstack('volume', 'create', '--snapshot', snap,
                              'demo-2')['id']
        self.wait(copy, 'available')
        self.hosts(copy)
        self.openstack('volume', 'snapshot', 'delete', snap, parse=False)
        for v in (copy, vid):
            self.openstack('volume', 'delete', v, parse=False)
        deadline = time.monotonic() + 120
        while self.api.volumes.list():
            if time.monotonic() > deadline:
                raise SystemExit('volumes left: %s' % self.api.volumes.list())
            time.sleep(0.3)
        left = [v['volume_name'] for v in
                self.cluster.call('cinder-1', 'list_volumes')]
        say('  cinder: no volumes; the VG: %s' % (left or 'no LVs'))
        if left:
            raise SystemExit('LVs left: %s' % left)


def main():
    url, sim, work = sys.argv[1:4]
    say('starting agents on three simulated hosts (compute-a, compute-b, '
        'cinder-1)')
    cluster = simcluster.Cluster(url, sim, devices=False,
                                 prefix='aos-demo-cinder', work_dir=work)
    cp = None
    try:
        cp = controlplane.ControlPlane(url, cluster,
                                       simcluster.SEED_SECTION, work)
        say("starting Debian's cinder-api, cinder-scheduler and "
            "cinder-volume (the seed's [sanlock] backend; log in %s/log)"
            % cp.dir)
        cp.start()
        say('cinder is up: the volume service cinder-1@sanlock')
        Demo(cp, cluster).story()
        say('done')
    except BaseException:
        if cp:
            print(cp.logs(), file=sys.stderr)
        raise
    finally:
        if cp:
            cp.stop()
        cluster.close()


if __name__ == '__main__':
    main()
