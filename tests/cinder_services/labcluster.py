"""The lab's two qemu guests as the compute hosts behind cinder's services.

Each guest runs the production agent (lab/cinder_services_test.go starts
them: agent hosts lab-h1 and lab-h2, the shared VG `vol` on the multipathed
LUN). nova's names for
them are compute-a and compute-b; agent_host_map maps those, and this
machine's hostname (cinder-volume's own agent calls), to the agents, as
docs/cinder-driver.md tells an operator whose names differ.

The Go test answers on AOS_LAB_BRIDGE, a unix socket: one JSON request a
connection, {"host": N, "argv": [...]} runs a command on guest N and
answers {"exit_code", "stdout", "stderr"}.

Everything is checked on the guests themselves: lock modes from lvmlockd
(`lvmlockctl --info --dump`), sizes from lvm, the device through os-brick's
LocalConnector, as nova's compute host connects it.
"""

import json
import socket
import time

VG = 'vol'
# The story agents' fence journal (their state_dir, as the kill hook's
# --config names it).
JOURNAL = '/var/lib/aos-agent-story/recovery-%s.json' % VG
# nova's host name -> (guest number, agent host name)
GUESTS = {'compute-a': (1, 'lab-h1'), 'compute-b': (2, 'lab-h2')}
# What a compute host runs: os-brick loaded once, as in nova-compute (a
# fresh python3 spends ~15 s importing it under TCG), connecting each
# attachment's connection_info with the connector of its
# driver_volume_type from os-brick's factory. Requests and answers are
# files in BRICK_DIR, written whole (rename).
BRICK_DIR = '/run/aos-brick'
BRICK_UNIT = 'aos-brick'
BRICK = """
import json, os, sys, time
from os_brick.initiator import connector
d = sys.argv[1]
open(os.path.join(d, 'ready'), 'w').close()
while True:
    for name in sorted(os.listdir(d)):
        if not name.endswith('.req'):
            continue
        req = os.path.join(d, name)
        with open(req) as f:
            info = json.load(f)
        try:
            brick = connector.InitiatorConnector.factory(
                info['driver_volume_type'], None)
            out = {'path': brick.connect_volume(info['data'])['path']}
        except Exception as e:
            out = {'error': repr(e)}
        with open(req[:-4] + '.part', 'w') as f:
            json.dump(out, f)
        os.rename(req[:-4] + '.part', req[:-4] + '.out')
        os.unlink(req)
    time.sleep(0.05)
"""


def timing(name, start):
    """A figure for the lab's operation table (lab/cinder_services_test.go
    reads these lines)."""
    print('timing: %s %.3f' % (name, time.monotonic() - start), flush=True)


class LabCluster(object):
    hosts = tuple(GUESTS)
    vg = VG
    topic = 'aos-agent'  # the agents' default
    # cinder-volume runs on this machine; its agent calls go to lab-h1.
    service_agent = GUESTS['compute-a'][1]

    def __init__(self, bridge):
        self.bridge = bridge
        self.requests = 0
        # Started now, the import overlaps cinder's services starting.
        for host in self.hosts:
            self.run(host, 'systemctl', 'stop', BRICK_UNIT, check=False)
            self.run(host, 'rm', '-rf', BRICK_DIR)
            self.run(host, 'mkdir', '-p', BRICK_DIR)
            self.run(host, 'systemd-run', '--unit', BRICK_UNIT, '--collect',
                     'python3', '-c', BRICK, BRICK_DIR)

    def agent_host_map(self):
        return {host: agent for host, (_, agent) in GUESTS.items()}

    def _ask(self, request, timeout):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout + 30)
            s.connect(self.bridge)
            s.sendall(json.dumps(request).encode() + b'\n')
            buf = b''
            while not buf.endswith(b'\n'):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf)
        if reply.get('error'):
            raise RuntimeError('%s: %s' % (request, reply['error']))
        return reply

    def run(self, host, *argv, check=True, timeout=120):
        """argv on nova's host's guest; its stdout (or the reply)."""
        r = self._ask({'host': GUESTS[host][0], 'argv': list(argv),
                       'timeout': timeout}, timeout)
        if check:
            if r['exit_code'] != 0:
                raise AssertionError('%s on %s: exit %d: %s' % (
                    ' '.join(argv), host, r['exit_code'], r['stderr']))
            return r['stdout']
        return r

    def lv(self, lv_name, host='compute-a'):
        """The LV's uuid and size as lvm reports it, or None."""
        r = self.run(host, 'lvs', '--noheadings', '--nosuffix', '--units',
                     'b', '-o', 'lv_uuid,lv_size', '%s/%s' % (VG, lv_name),
                     check=False)
        if r['exit_code'] != 0:
            if 'Failed to find logical volume' in r['stderr']:
                return None
            raise AssertionError('lvs %s: %s' % (lv_name, r['stderr']))
        lv_uuid, size = r['stdout'].split()
        return {'uuid': lv_uuid, 'size_bytes': int(size)}

    def dump(self, host):
        """lvmlockd's state (`lvmlockctl --info --dump`). lvmlockctl takes
        its dump on an abstract socket of a fixed name: while the agent's
        own poll has it, a second one fails "socket error -98"; try again,
        as the agent does."""
        for _ in range(20):
            r = self.run(host, 'lvmlockctl', '--info', '--dump', check=False)
            if r['exit_code'] == 0:
                return r['stdout']
            if 'socket error -98' not in r['stdout'] + r['stderr']:
                break
            time.sleep(0.2)
        raise AssertionError('lvmlockctl --info --dump on %s: exit %d: %s%s'
                             % (host, r['exit_code'], r['stdout'],
                                r['stderr']))

    def modes(self, lv_name, hosts=None):
        """The lock lvmlockd holds on the LV on each guest (of hosts)."""
        lv_uuid = self.lv(lv_name)['uuid']
        names = {'ex': 'exclusive', 'sh': 'shared'}
        out = {}
        for host in hosts or self.hosts:
            out[host] = 'none'
            dump = self.dump(host)
            for ln in dump.splitlines():
                f = dict(kv.split('=', 1) for kv in ln.split() if '=' in kv)
                if (f.get('info') == 'r' and f.get('type') == 'lv'
                        and f.get('name') == lv_uuid):
                    out[host] = names.get(f.get('mode'), 'none')
        return out

    def connect(self, host, connection_info, marker=None):
        """nova's side on the host: os-brick connects the attachment's
        connection_info (cinder's flat form, translated as nova's
        cinder.py does); then the device is read, O_DIRECT, past any page
        cache, and with marker its first sector is written first. Returns
        the first sector's text."""
        info = dict(connection_info)
        info.pop('attachment_id', None)
        info = {'driver_volume_type': info.pop('driver_volume_type'),
                'data': info}
        dev = self._brick(host, info)
        if marker is not None:
            assert marker.replace('-', '').isalnum(), marker  # for sh -c
            self.run(host, 'sh', '-c', 'printf %%s %s | dd of=%s bs=512 '
                     'count=1 conv=sync oflag=direct status=none'
                     % (marker, dev))
        out = self.run(host, 'dd', 'if=' + dev, 'bs=512', 'count=1',
                       'iflag=direct', 'status=none')
        return out.rstrip('\0')

    def agent(self, host):
        """The agent's name for nova's host name."""
        return GUESTS[host][1]

    def lose_lease(self, host):
        """Every path of the host's LUN goes offline; returns once the kill
        hook has fenced (its journal written) and lvmlockctl dropped the
        lockspace."""
        start = time.monotonic()
        self._set_paths(host, 'offline')
        self._wait(host, 'fenced', lambda: self._journal(host)
                   and 'info=ls' not in self.dump(host), 120)
        timing('lease loss: paths offline -> fenced, lockspace dropped',
               start)

    def restore_lease(self, host):
        """The paths come back; returns once the agent's own recovery has
        finished (journal removed, lockspace joined in sanlock)."""
        start = time.monotonic()
        self._set_paths(host, 'running')
        self._wait(host, 'recovered', lambda: not self._journal(host)
                   and self._joined(host), 180)
        timing('lease loss: paths back -> recovered by the agent', start)

    def _set_paths(self, host, state):
        deps = self.run(host, 'dmsetup', 'deps', '-o', 'devname', 'lun0')
        devs = [f.strip('()') for f in deps.split() if f.startswith('(')]
        assert devs and all(d.isalnum() for d in devs), deps  # for sh -c
        for dev in devs:
            self.run(host, 'sh', '-c', 'echo %s > /sys/block/%s/device/state'
                     % (state, dev))

    def _journal(self, host):
        return self.run(host, 'test', '-e', JOURNAL, check=False)[
            'exit_code'] == 0

    def _joined(self, host):
        out = self.run(host, 'sanlock', 'client', 'status', check=False)
        return any(ln.startswith('s lvm_%s:' % VG) and not ln.endswith(
            (' ADD', ' REM')) for ln in out.get('stdout', '').splitlines())

    @staticmethod
    def _wait(host, what, done, timeout, interval=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(interval)
        raise AssertionError('%s: not %s after %ds' % (host, what, timeout))

    def _brick(self, host, info):
        """The device path os-brick's connector returns on the host."""
        self._wait(host, 'running os-brick', lambda: self.run(
            host, 'test', '-e', BRICK_DIR + '/ready', check=False)[
                'exit_code'] == 0, 180)
        self.requests += 1
        base = '%s/%d' % (BRICK_DIR, self.requests)
        self.run(host, 'sh', '-c', 'printf %s "$1" > "$2.new" && '
                 'mv "$2.new" "$2.req"', 'sh', json.dumps(info), base)
        answer = {}

        def answered():
            r = self.run(host, 'cat', base + '.out', check=False)
            if r['exit_code'] == 0:
                answer.update(json.loads(r['stdout']))
            return bool(answer)
        self._wait(host, 'connected', answered, 60, interval=0.2)
        self.run(host, 'rm', '-f', base + '.out')
        if 'error' in answer:
            raise AssertionError('os-brick on %s: %s' % (host, answer['error']))
        return answer['path']

    def close(self):
        """Stops the os-brick helpers; the agents and guests are the Go
        test's."""
        for host in self.hosts:
            self.run(host, 'systemctl', 'stop', BRICK_UNIT, check=False)
