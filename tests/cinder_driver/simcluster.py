"""Real agents on simulated hosts, for the tests that drive cinder.

`aos-lab simulate`: the production agent code on simulated hosts sharing one
VG, answering RPC through the project's RabbitMQ. With devices, the
simulated LVs are real block devices (--lv-devices: loop devices linked at
/dev/VG/LV while active); the VG name is unique to the run, so /dev/VG is
the test's. Shared by tests/cinder_driver (cinder's own harness) and
tests/cinder_services (cinder's services); it imports nothing of cinder.
"""

import os
import shutil
import subprocess
import tempfile
import time
import uuid

from oslo_config import cfg
import oslo_messaging

HOSTS = ('compute-a', 'compute-b', 'cinder-1')

# The seed deployment's backend section, verbatim (docs/cinder-driver.md).
SEED_SECTION = """\
[sanlock]
volume_driver = cinder_sharedlvm_driver.driver.SharedLVMDriver
agent_transport_url = amqp://aos:password@controller:5672/aos
volume_group = vol
lvm_type = default
lvm_mirrors = 0
target_protocol = iscsi
target_helper = tgtadm
volume_backend_name=sanlock
volume_clear=none
volume_clear_size=100
agent_response_timeout = 2888
"""


class Cluster(object):
    """One simulator process: HOSTS, one VG of its own; with devices, its
    LVs are block devices.

    url: the broker (rabbit://...); binary: the simulator's executable,
    run as `BINARY simulate ...`; prefix names the topic, VG and temporary
    directory (under work_dir) of the run.
    """

    # cinder-volume's own agent calls (agent_host_map maps this machine's
    # hostname to it); nova's host names are the agents' own.
    service_agent = 'cinder-1'

    def __init__(self, url, binary, devices=True, hosts=HOSTS,
                 prefix='aos-cinder', work_dir=None):
        run = uuid.uuid4().hex[:8]
        self.hosts = tuple(hosts)
        self.topic = prefix + '-' + run
        self.vg = 'aos-ct-' + run
        self.work = tempfile.mkdtemp(prefix=prefix + '-',
                                     dir=work_dir or '/tmp')
        argv = [binary, 'simulate', '--transport-url', url,
                '--topic', self.topic, '--hosts', ','.join(self.hosts),
                '--vg', self.vg, '--pv-size-gib', '256',
                '--work-dir', os.path.join(self.work, 'agents')]
        if devices:
            data = os.path.join(self.work, 'lv-data')
            os.mkdir(data)
            argv += ['--lv-devices', data]
        self.log = os.path.join(self.work, 'simulate.log')
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                text=True)
        line = self.proc.stdout.readline()
        if not line.startswith('READY'):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError('agents did not start: %r; log %s'
                               % (line, self.log))
        self.transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=url)
        target = oslo_messaging.Target(topic=self.topic, version='1.0',
                                       exchange='openstack')
        self.client = oslo_messaging.get_rpc_client(self.transport, target)

    def call(self, host, method, **kwargs):
        """Calls an agent directly (the test's own view, not the driver's)."""
        return self.client.prepare(server=host, timeout=60).call(
            {}, method, **kwargs)

    def modes(self, lv_name, hosts=None):
        """The lock mode lvmlockd holds for the LV on each host (of hosts),
        as its agent reports it."""
        out = {}
        for host in hosts or self.hosts:
            out[host] = 'none'
            for v in self.call(host, 'list_volumes'):
                if v['volume_name'] == lv_name:
                    out[host] = v.get('mode', 'none')
        return out

    def lv(self, lv_name, host='cinder-1'):
        for v in self.call(host, 'list_volumes'):
            if v['volume_name'] == lv_name:
                return v
        return None

    def agent_host_map(self):
        return {}

    def agent(self, host):
        """The agent's name for nova's host name."""
        return host

    def lose_lease(self, host):
        """Every path of the host fails; returns once its agent has seen
        the lease lost: fenced by the simulated kill hook (recovery under
        way) when it held an LV lock, else the lockspace sanlock dropped."""
        self.control('fault %s paths-down' % host)
        self._wait_status(host, lambda rec, ls: rec != 'idle'
                          or ls == 'dropped')

    def restore_lease(self, host):
        """The paths come back; returns once the agent's recovery (or its
        rejoin of the dropped lockspace) is done."""
        self.control('fault %s paths-up' % host)
        self._wait_status(host, lambda rec, ls: rec == 'idle'
                          and ls == 'joined')

    def _wait_status(self, host, done, timeout=120):
        """Waits until done(recovery state, lockspace state) holds."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                # short calls: the agent's probes wait while I/O queues
                st = self.client.prepare(server=host, timeout=5).call(
                    {}, 'get_status')
            except oslo_messaging.MessagingTimeout:
                continue
            got = (st['recovery']['state'],
                   next((ls['state'] for ls in st.get('lockspaces', [])
                         if ls['volume_group'] == self.vg), 'absent'))
            if done(*got):
                return
            time.sleep(0.5)
        raise AssertionError('%s: recovery and lockspace stay %s'
                             % (host, got))

    def control(self, line):
        """Stops or starts one host's agent ("stop HOST", "start HOST")."""
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if reply != 'OK':
            raise RuntimeError('%s: %s' % (line, reply))

    def close(self):
        self.transport.cleanup()
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.work, ignore_errors=True)


def nova_connector(host):
    """What nova's get_volume_connector sends for a compute host."""
    return {'platform': 'x86_64', 'os_type': 'linux', 'ip': '192.0.2.%d'
            % (len(host) + 10), 'host': host, 'multipath': False,
            'initiator': 'iqn.1993-08.org.debian:01:%s' % host,
            'do_local_attach': False, 'system uuid': str(uuid.uuid4())}
