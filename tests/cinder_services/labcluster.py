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
# nova's host name -> (guest number, agent host name)
GUESTS = {'compute-a': (1, 'lab-h1'), 'compute-b': (2, 'lab-h2')}
# What a compute host runs with the attachment's connection_info, nova's
# way: the connector of its driver_volume_type from os-brick's factory.
BRICK = """
import json, sys
from os_brick.initiator import connector
info = json.loads(sys.argv[1])
brick = connector.InitiatorConnector.factory(info['driver_volume_type'], None)
print(json.dumps(brick.connect_volume(info['data'])))
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
        dev = json.loads(self.run(host, 'python3', '-c', BRICK,
                                  json.dumps(info)))['path']
        if marker is not None:
            assert marker.replace('-', '').isalnum(), marker  # for sh -c
            self.run(host, 'sh', '-c', 'printf %%s %s | dd of=%s bs=512 '
                     'count=1 conv=sync oflag=direct status=none'
                     % (marker, dev))
        out = self.run(host, 'dd', 'if=' + dev, 'bs=512', 'count=1',
                       'iflag=direct', 'status=none')
        return out.rstrip('\0')

    def close(self):
        """Nothing to release: the agents and guests are the Go test's."""
