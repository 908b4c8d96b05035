"""A cinder control plane from Debian 12's packages, started by the tests.

cinder-api (auth_strategy = noauth), cinder-scheduler and cinder-volume
(/usr/bin/cinder-*, python3-cinder 21.3.1, zed) on a SQLite database made by
`cinder-manage db sync`, cinder's own RPC on the project's RabbitMQ, the API
on a free port of 127.0.0.1; config, database, locks, state and logs in one
temporary directory. Each service runs in a session of its own and is
stopped by its pid (its process group: cinder-api's worker and
cinder-volume's per-backend child go with it). Nothing else of OpenStack:
no keystone, nova or glance.

cinder.conf is the seed deployment's ([DEFAULT] rpc_response_timeout,
enabled_backends, default_volume_type and the [sanlock] section verbatim,
CINDER_DRIVER.md), with the test's broker, VG and agent topic in place of
the seed's, plus only what the services need to run here (below, in
_write_conf). The cinder-volume service's host is the simulated host
`cinder-1`, and this machine's hostname maps to that agent
(agent_host_map), as docs/cinder-driver.md tells an operator whose
hostname differs from the agent's.

Clients, as people and nova use them (both without keystone):
- `openstack` (python3-openstackclient) for what an operator types:
  `--os-auth-type admin_token --os-token USER:PROJECT --os-endpoint
  URL/v3/PROJECT`; cinder's noauth middleware reads USER:PROJECT from the
  token. (`--os-auth-type none` sends the token `notused`, which cinder
  takes for a project named "notused".)
- cinderclient's Python API with its noauth plugin
  (cinderclient.contrib.noauth) for what nova calls (nova's
  cinder.py uses the same API: attachments.create/update/complete/delete).
  `openstack volume attachment create` cannot stand in for nova: it looks
  the server up in nova's API.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from cinderclient import client as cinder_client
from cinderclient.contrib import noauth
from keystoneauth1 import session as ks_session

BACKEND = 'sanlock'
SERVICE_HOST = 'cinder-1'
API_VERSION = '3.54'
USER = 'admin'
# cinder's API routes take hex project ids only ([DEFAULT] project_id_regex).
PROJECT = '5e7a4c1d9b3f4e2a8c6d0f1b2a3c4d5e'
SERVICES = ('scheduler', 'volume', 'api')
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

SEED_DEFAULT = """\
[DEFAULT]
rpc_response_timeout = 2888
enabled_backends = sanlock
default_volume_type = sanlock
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def seed_section(seed, overrides):
    """The seed's section with some values replaced and others added."""
    out, done = [], set()
    for line in seed.splitlines():
        key = line.split('=', 1)[0].strip()
        if '=' in line and key in overrides:
            out.append('%s = %s' % (key, overrides[key]))
            done.add(key)
        else:
            out.append(line)
    out += ['%s = %s' % (k, v) for k, v in overrides.items()
            if k not in done]
    return '\n'.join(out) + '\n'


class ControlPlane(object):
    def __init__(self, url, cluster, seed, work_dir):
        self.url = url
        self.cluster = cluster
        self.dir = tempfile.mkdtemp(prefix='aos-cinder-services-',
                                    dir=work_dir)
        self.port = free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.conf = os.path.join(self.dir, 'cinder.conf')
        self.procs = {}
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith('OS_')}
        self.env['PYTHONPATH'] = REPO
        self.env['HOME'] = self.dir
        self._write_conf(seed)

    def _write_conf(self, seed):
        d = self.dir
        for sub in ('state', 'log', 'lock'):
            os.mkdir(os.path.join(d, sub))
        # What the services need here, beyond the seed's settings.
        needed = """
host = %(host)s
transport_url = %(url)s
auth_strategy = noauth
api_paste_config = /etc/cinder/api-paste.ini
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = %(port)d
osapi_volume_workers = 1
state_path = %(dir)s/state
log_dir = %(dir)s/log
# Service heartbeats every 60 s rather than 10 (and "down" after 300 s):
# fewer writers racing the tests' requests on SQLite, which fails a
# transaction at once when two processes upgrade their locks together.
report_interval = 60
service_down_time = 300

[database]
# Three processes write to the one file: each waits up to 60 s for the write
# lock instead of pysqlite's 5 s ("database is locked" under 100 concurrent
# attachments).
connection = sqlite:///%(dir)s/cinder.sqlite?timeout=60

[oslo_concurrency]
lock_path = %(dir)s/lock

""" % {'host': SERVICE_HOST, 'url': self.url, 'port': self.port, 'dir': d}
        section = seed_section(seed, {
            # The seed's amqp:// form, as the driver reads it (RabbitMQ).
            'agent_transport_url': self.url.replace('rabbit://', 'amqp://',
                                                    1),
            'volume_group': self.cluster.vg,
            'agent_topic': self.cluster.topic,
            'agent_host_map': ','.join('%s:%s' % kv for kv in sorted(
                dict(self.cluster.agent_host_map(), **{
                    socket.gethostname(): self.cluster.service_agent,
                }).items()))})
        with open(self.conf, 'w') as f:
            f.write(SEED_DEFAULT + needed + section)

    def start(self, timeout=180):
        subprocess.run(['/usr/bin/cinder-manage', '--config-file', self.conf,
                        'db', 'sync'], cwd=self.dir, env=self.env,
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=300)
        for svc in SERVICES:
            out = open(os.path.join(self.dir, 'log', svc + '.out'), 'w')
            self.procs[svc] = subprocess.Popen(
                ['/usr/bin/cinder-' + svc, '--config-file', self.conf],
                cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            out.close()
        deadline = time.monotonic() + timeout
        c = self.client()
        last = None
        while time.monotonic() < deadline:
            for svc, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError('cinder-%s exited with %s:\n%s'
                                       % (svc, p.returncode, self.logs()))
            try:
                up = {(s.binary, s.host) for s in c.services.list()
                      if s.state == 'up'}
                pools = [p.name for p in c.pools.list()]
                if (('cinder-volume', SERVICE_HOST + '@' + BACKEND) in up
                        and ('cinder-scheduler', SERVICE_HOST) in up
                        and pools):
                    return
                last = (up, pools)
            except Exception as e:  # the API is not listening yet
                last = e
            time.sleep(1)
        raise RuntimeError('cinder services not ready after %ds (%r):\n%s'
                           % (timeout, last, self.logs()))

    def logs(self, lines=20):
        """Every service's errors (at most 300 lines) and last lines."""
        out = []
        logdir = os.path.join(self.dir, 'log')
        for name in sorted(os.listdir(logdir)):
            with open(os.path.join(logdir, name), errors='replace') as f:
                text = [ln for ln in f.readlines() if ' DEBUG ' not in ln]
            errors = [ln for ln in text if ' ERROR ' in ln][:300]
            out.append('--- %s: errors\n%s--- %s: last lines\n%s' % (
                name, ''.join(errors), name, ''.join(text[-lines:])))
        return '\n'.join(out)

    def stop(self):
        """Stops every service by its pid (and its process group), then
        checks that nothing of them is left."""
        for svc in reversed(SERVICES):
            p = self.procs.get(svc)
            if p and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for svc in reversed(SERVICES):
            p = self.procs.get(svc)
            if p is None:
                continue
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
            # The group's other members (workers, backend children).
            for _ in range(100):
                try:
                    os.killpg(p.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = {}

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients --------------------------------------------------------

    def client(self):
        """cinderclient's Python API as nova holds it, without keystone.

        nova sends its service token with every call ([service_user]
        send_service_user_token, required since cinder's fix of bug
        2004555 for deleting an attachment in use); keystonemiddleware
        turns a valid one into the X-Service-Roles header, which cinder
        reads into the request's service_roles. With noauth there is no
        keystonemiddleware and cinder reads the headers as they come, so
        nova's client here sends X-Service-Roles itself.
        """
        auth = noauth.CinderNoAuthPlugin(USER, PROJECT,
                                         endpoint=self.endpoint + '/v3')
        sess = ks_session.Session(
            auth=auth, additional_headers={'X-Service-Roles': 'service'})
        return cinder_client.Client(API_VERSION, session=sess)

    def with_client(self, fn):
        """fn(a client of its own), then closes the client's connection.

        cinder-api serves each connection from a pool of 100 green threads
        a worker ([DEFAULT] wsgi_default_pool_size) and keeps an idle
        keep-alive connection, and its thread, for up to
        client_socket_timeout (900 s): 100 clients that keep their
        connections open stall the 101st request for that long.
        """
        c = self.client()
        try:
            return fn(c)
        finally:
            c.client.session.session.close()

    def openstack(self, *args, check=True):
        """The operator's `openstack ...`; parsed JSON when -f json."""
        argv = ['/usr/bin/openstack', '--os-auth-type', 'admin_token',
                '--os-token', '%s:%s' % (USER, PROJECT),
                '--os-endpoint', '%s/v3/%s' % (self.endpoint, PROJECT),
                '--os-volume-api-version', API_VERSION] + list(args)
        r = subprocess.run(argv, env=self.env, cwd=self.dir,
                           capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError('%s: exit %d: %s' % (
                ' '.join(args), r.returncode, r.stderr.strip()[-2000:]))
        if r.returncode == 0 and '-f' in args and 'json' in args:
            return json.loads(r.stdout)
        return r

    def cinder(self, *args):
        """The `cinder` CLI (python3-cinderclient) with its noauth plugin:
        for what the seed's deployment runs with it."""
        argv = ['/usr/bin/cinder', '--os-auth-type', 'noauth',
                '--os-user-id', USER, '--os-project-id', PROJECT,
                '--os-endpoint',
                self.endpoint + '/v3', '--os-volume-api-version',
                API_VERSION] + list(args)
        r = subprocess.run(argv, env=self.env, cwd=self.dir,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError('cinder %s: exit %d: %s' % (
                ' '.join(args), r.returncode, r.stderr.strip()[-2000:]))
        return r.stdout
