#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""Volume driver for one LVM VG shared by every host (lvmlockd + sanlock).

Every compute and cinder-volume host sees the VG on a shared LUN and runs an
aos-agent, which (de)activates, creates, extends, snapshots, clones and
deletes LVs under lvmlockd's locks (docs/rpc.md). This driver asks the agent
of the right host over oslo.messaging: the attaching compute host's to
activate, its own host's for everything else. A volume is held exclusively
by the one host that uses it; while two hosts use it (live migration,
multi-attach) both hold it shared, and the last one left takes it back
exclusively. The connection is 'local': nova opens the LV's device path.
"""

import math
import socket
import time

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import units
from oslo_utils import uuidutils

from cinder import context
from cinder import coordination
from cinder import exception
from cinder.i18n import _
from cinder import interface
from cinder import objects
from cinder.objects import fields
from cinder.volume import configuration
from cinder.volume import driver
from cinder.volume.drivers import lvm
from cinder.volume import volume_utils

from cinder_sharedlvm_driver import agent_client

LOG = logging.getLogger(__name__)

agent_opts = [
    cfg.StrOpt('agent_transport_url',
               secret=True,
               help='oslo.messaging URL of the broker the aos-agents listen '
                    'on, e.g. rabbit://cinder:PASS@controller:5672/aos; '
                    'several brokers as in transport_url. amqp:// means '
                    'RabbitMQ here (it is read as rabbit://), not oslo\'s '
                    'AMQP 1.0 driver. TLS: [oslo_messaging_rabbit] ssl.'),
    cfg.IntOpt('agent_response_timeout',
               default=600,
               min=1,
               help='Seconds to wait for an agent\'s reply. Long calls '
                    '(clones, clearing) stay alive through the agent\'s '
                    'call-monitor heartbeats up to this limit.'),
    cfg.IntOpt('agent_call_monitor_timeout',
               default=60,
               min=2,
               help='Seconds without a heartbeat or a reply after which an '
                    'agent is taken as not answering (oslo\'s '
                    'call_monitor_timeout); it sends one every half of '
                    'this while a call runs.'),
    cfg.StrOpt('agent_topic',
               default='aos-agent',
               help='RPC topic of the agents ([DEFAULT] topic in '
                    'aos-agent.conf).'),
    cfg.StrOpt('agent_exchange',
               default='openstack',
               help='Control exchange of the agents ([DEFAULT] '
                    'control_exchange in aos-agent.conf).'),
    cfg.DictOpt('agent_host_map',
                default={},
                help='Connector host name to agent host name, for hosts '
                     'whose name in nova (its [DEFAULT] host) or whose '
                     'gethostname() (cinder-volume attaching for image '
                     'copies) differs from the agent\'s [DEFAULT] host, '
                     'e.g. compute1.example.org:compute1,cvol:cinder-1.'),
]

# volume_group, lvm_type and lvm_mirrors keep the LVM driver's definitions,
# so both drivers can be loaded in one cinder-volume.
lvm_opts = [o for o in lvm.volume_opts
            if o.name in ('volume_group', 'lvm_type', 'lvm_mirrors')]

CONF = cfg.CONF
CONF.register_opts(agent_opts, group=configuration.SHARED_CONF_GROUP)

# Attachments whose connection is made: nova's connector is stored with
# the attachment once initialize_connection has returned.
_DETACHED = fields.VolumeAttachStatus.DETACHED


@interface.volumedriver
class SharedLVMDriver(driver.VolumeDriver):
    """Shared-LVM volumes through the aos-agents of the hosts sharing a VG.

    Version history:
        1.0.0 - initial driver
    """

    VERSION = '1.0.0'
    CI_WIKI_NAME = 'aos-agent'

    # Seconds to wait for a concurrent attach on another host to show in
    # cinder's records after the agent reported that host's lock.
    _peer_attach_wait = 5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(agent_opts)
        self.configuration.append_config_values(lvm_opts)
        self.backend_name = (self.configuration.safe_get(
            'volume_backend_name') or 'SharedLVM')
        self.vg = self.configuration.volume_group
        self.agents = None
        self._held_cache = {}

    @classmethod
    def get_driver_options(cls):
        return agent_opts + lvm_opts + cls._get_oslo_driver_opts(
            'volume_clear', 'volume_clear_size', 'target_protocol',
            'target_helper', 'reserved_percentage', 'volume_backend_name')

    # -- setup --------------------------------------------------------

    def do_setup(self, context):
        conf = self.configuration
        if conf.lvm_type != 'default':
            raise exception.VolumeDriverException(message=_(
                "lvm_type = %s is not supported: a thin pool and its thin "
                "LVs are usable by one host at a time in a sanlock VG. Set "
                "lvm_type = default (thick LVs).") % conf.lvm_type)
        if conf.lvm_mirrors != 0:
            raise exception.VolumeDriverException(message=_(
                "lvm_mirrors = %d is not supported: the shared VG lives on "
                "one LUN whose redundancy is the array's. Set "
                "lvm_mirrors = 0.") % conf.lvm_mirrors)
        if not conf.agent_transport_url:
            raise exception.VolumeDriverException(message=_(
                "agent_transport_url is not set: give the URL of the broker "
                "the aos-agents listen on, e.g. "
                "rabbit://cinder:PASS@controller:5672/aos."))
        LOG.info("target_protocol = %(p)s and target_helper = %(h)s are "
                 "not used: nova opens the LV on the compute host itself "
                 "(driver_volume_type 'local'), nothing is exported.",
                 {'p': conf.target_protocol, 'h': conf.target_helper})
        self.agents = agent_client.AgentClient(
            conf.agent_transport_url, conf.agent_topic, conf.agent_exchange,
            conf.agent_response_timeout, conf.agent_call_monitor_timeout)
        LOG.info("SharedLVM backend %(name)s: VG %(vg)s, agents on "
                 "%(url)s topic %(topic)s, this host's agent %(host)s",
                 {'name': self.backend_name, 'vg': self.vg,
                  'url': agent_client.redact_url(self.agents.url),
                  'topic': conf.agent_topic, 'host': self._local_host()})

    def check_for_setup_error(self):
        host = self._local_host()
        pong = self._call(host, 'ping')
        if self.vg not in pong.get('volume_groups', []):
            raise exception.VolumeBackendAPIException(data=_(
                "the aos-agent on %(host)s does not manage VG %(vg)s (it "
                "manages %(vgs)s): add it to [lvm] volume_groups in "
                "/etc/aos-agent/aos-agent.conf there, or fix volume_group "
                "in this backend's section.") %
                {'host': host, 'vg': self.vg,
                 'vgs': ', '.join(pong.get('volume_groups', [])) or 'none'})
        status = self._call(host, 'get_status')
        state = next((ls.get('state') for ls in status.get('lockspaces', [])
                      if ls.get('volume_group') == self.vg), 'absent')
        if state == 'dropped':
            raise exception.VolumeBackendAPIException(data=_(
                "VG %(vg)s's lockspace was dropped on %(host)s: its lease "
                "failed while no LV was locked there; the agent starts it "
                "again once the host's paths are back.") %
                {'vg': self.vg, 'host': host})
        if state != 'joined':
            raise exception.VolumeBackendAPIException(data=_(
                "VG %(vg)s's lockspace is %(state)s on %(host)s, not joined: "
                "start it with `aos-agent lockstart` (the "
                "aos-agent-lockstart unit) and check the host with "
                "`aos-agent doctor`.") %
                {'vg': self.vg, 'state': state, 'host': host})

    # -- hosts and agents ---------------------------------------------

    def _agent_host(self, connector_host):
        return self.configuration.agent_host_map.get(connector_host,
                                                     connector_host)

    def _local_host(self):
        # cinder-volume's own connector (image copies) names this host by
        # gethostname(), so the same name maps to its agent.
        return self._agent_host(socket.gethostname())

    def _call(self, host, method, **kwargs):
        kwargs.setdefault('volume_group', self.vg)
        if method in ('ping', 'get_status'):
            kwargs.pop('volume_group')
        return self.agents.call(host, method, **kwargs)

    @staticmethod
    def _snapshot_lv(snapshot):
        # LVM reserves names starting with "snapshot"; cinder's LVM driver
        # prefixes an underscore the same way.
        return '_' + snapshot.name

    def _attachments(self, volume_id):
        """The volume's attachments whose connection is made, from the DB.

        Read fresh: the Volume the manager passes may predate the
        attachment of another host made a moment ago.
        """
        ctxt = context.get_admin_context()
        attachments = objects.VolumeAttachmentList.get_all_by_volume_id(
            ctxt, volume_id)
        return [a for a in attachments
                if a.connector and a.attach_status != _DETACHED]

    def _attached_hosts(self, volume_id):
        hosts = []
        for a in self._attachments(volume_id):
            host = self._agent_host(a.connector.get('host'))
            if host not in hosts:
                hosts.append(host)
        return hosts

    def _acting_host(self, volume_id):
        """Where to run a step that needs the LV's lock: the host it is
        attached to (the agent refuses elsewhere), or this host's agent."""
        hosts = self._attached_hosts(volume_id)
        return hosts[0] if hosts else self._local_host()

    # -- volumes ------------------------------------------------------

    def create_volume(self, volume):
        self._call(self._local_host(), 'create_volume',
                   volume_name=volume.name, size=volume.size)

    def delete_volume(self, volume):
        conf = self.configuration
        clear = 'zero' if conf.volume_clear == 'zero' else 'none'
        try:
            self._call(self._local_host(), 'delete_volume',
                       volume_name=volume.name, clear=clear,
                       clear_size_mb=conf.volume_clear_size)
        except agent_client.AgentError as e:
            if e.exc_type in ('VolumeInUse', 'LockConflict'):
                raise exception.VolumeIsBusy(
                    volume_name=volume.name,
                    message=_("volume %(name)s is in use: %(reason)s") %
                    {'name': volume.name, 'reason': e.reason})
            raise

    def extend_volume(self, volume, new_size):
        # cinder extends available volumes only (online_extend_support is
        # False); one attached all the same is extended where it is held:
        # by its one host, or here with a refresh on every host holding it
        # shared.
        hosts = self._attached_hosts(volume.id)
        host = hosts[0] if len(hosts) == 1 else self._local_host()
        reply = self._call(host, 'extend_volume', volume_name=volume.name,
                           new_size=new_size)
        if reply.get('refresh_error'):
            LOG.warning("extend of %(name)s: the agents' refresh broadcast "
                        "failed (%(err)s); refreshing %(hosts)s one by one",
                        {'name': volume.name, 'err': reply['refresh_error'],
                         'hosts': hosts})
            for h in hosts:
                self._call(h, 'refresh_volume', volume_name=volume.name)

    def create_cloned_volume(self, volume, src_vref):
        self._call(self._acting_host(src_vref.id), 'clone_volume',
                   volume_name=volume.name, source_name=src_vref.name,
                   size=volume.size)

    # -- snapshots ----------------------------------------------------

    def create_snapshot(self, snapshot):
        # The origin is locked exclusively for the snapshot: on the host it
        # is attached to, or here while it is idle.
        self._call(self._acting_host(snapshot.volume_id), 'create_snapshot',
                   snapshot_name=self._snapshot_lv(snapshot),
                   volume_name=snapshot.volume_name,
                   size=snapshot.volume_size)

    def delete_snapshot(self, snapshot):
        try:
            self._call(self._acting_host(snapshot.volume_id),
                       'delete_snapshot',
                       snapshot_name=self._snapshot_lv(snapshot))
        except agent_client.AgentError as e:
            if e.exc_type == 'LockConflict':
                raise exception.SnapshotIsBusy(
                    snapshot_name=snapshot.name,
                    message=_("snapshot %(name)s's origin is held by "
                              "another host: %(reason)s") %
                    {'name': snapshot.name, 'reason': e.reason})
            raise

    def create_volume_from_snapshot(self, volume, snapshot):
        self._call(self._acting_host(snapshot.volume_id), 'clone_volume',
                   volume_name=volume.name,
                   source_name=self._snapshot_lv(snapshot), size=volume.size)

    # -- connections --------------------------------------------------

    def validate_connector(self, connector):
        if not connector or not connector.get('host'):
            raise exception.InvalidConnectorException(missing='host')
        host = self._agent_host(connector['host'])
        try:
            self._call(host, 'ping')
        except exception.VolumeBackendAPIException as e:
            raise exception.InvalidConnectorException(missing=_(
                "an aos-agent answering as %(host)s (%(err)s)") %
                {'host': host, 'err': e.msg})

    def create_export(self, context, volume, connector):
        pass

    def remove_export(self, context, volume):
        pass

    def ensure_export(self, context, volume):
        """Reports attached volumes that their hosts do not hold.

        The agents restore their hosts' locks at boot, before nova-compute
        starts; cinder-volume has nothing to re-export. It only checks, at
        most once a minute per host, and never fails: an agent that does not
        answer must not turn an in-use volume into 'error'.
        """
        for host in self._attached_hosts(volume.id):
            held = self._held_on(host)
            if held is None:
                continue
            if volume.name not in held:
                LOG.warning("volume %(name)s is attached on %(host)s but "
                            "the agent there does not hold it active",
                            {'name': volume.name, 'host': host})

    def _held_on(self, host):
        """Names of the LVs active on host, or None if its agent failed."""
        now = time.monotonic()
        cached = self._held_cache.get(host)
        if cached and now - cached[0] < 60:
            return cached[1]
        held = None
        try:
            held = {v['volume_name'] for v in self._call(host, 'list_volumes')
                    if v.get('active_here')}
        except exception.VolumeBackendAPIException as e:
            LOG.warning("could not check the volumes attached on %(host)s: "
                        "%(err)s", {'host': host, 'err': e.msg})
        self._held_cache[host] = (now, held)
        return held

    @coordination.synchronized('sharedlvm-{volume.id}')
    def initialize_connection(self, volume, connector, **kwargs):
        host = self._agent_host(connector['host'])
        others = [h for h in self._attached_hosts(volume.id) if h != host]
        if not others:
            others = self._activate_exclusive(volume, host)
        if others:
            self._activate_shared(volume, host, others)
        device_path = '/dev/%s/%s' % (self.vg, volume.name)
        return {'driver_volume_type': 'local',
                'data': {'device_path': device_path}}

    def _activate_exclusive(self, volume, host):
        """Takes the volume exclusively on host, or returns the other hosts
        cinder shows attached meanwhile (a concurrent attach there)."""
        deadline = time.monotonic() + self._peer_attach_wait
        while True:
            try:
                self._call(host, 'activate_volume', volume_name=volume.name,
                           mode='exclusive')
                return []
            except agent_client.AgentError as e:
                if e.exc_type != 'LockConflict':
                    raise
                others = [h for h in self._attached_hosts(volume.id)
                          if h != host]
                if others:
                    return others
                if time.monotonic() > deadline:
                    raise exception.VolumeBackendAPIException(data=_(
                        "volume %(name)s is held by another host that "
                        "cinder does not show attached (%(reason)s): "
                        "release it there with `aos-agent call HOST "
                        "deactivate_volume volume_name=%(name)s`") %
                        {'name': volume.name, 'reason': e.reason})
            time.sleep(0.5)

    def _activate_shared(self, volume, host, others):
        # The live-migration hand-off (docs/rpc.md): the hosts holding it
        # convert to shared in place, then the new host joins them shared.
        for other in others:
            self._call(other, 'activate_volume', volume_name=volume.name,
                       mode='shared')
        try:
            self._call(host, 'activate_volume', volume_name=volume.name,
                       mode='shared')
        except exception.VolumeBackendAPIException:
            # Nothing calls terminate_connection for an attach that failed:
            # give the one other host its exclusive lock back.
            if len(others) == 1:
                self._return_exclusive(volume, others[0])
            raise

    def _return_exclusive(self, volume, host):
        try:
            self._call(host, 'activate_volume', volume_name=volume.name,
                       mode='exclusive')
        except exception.VolumeBackendAPIException as e:
            LOG.warning("volume %(name)s stays shared on %(host)s, the only "
                        "host left holding it: %(err)s; snapshots of it "
                        "are refused until it is exclusive again",
                        {'name': volume.name, 'host': host, 'err': e.msg})

    @coordination.synchronized('sharedlvm-{volume.id}')
    def terminate_connection(self, volume, connector, **kwargs):
        """Releases the volume on the connector's host.

        Returns whether other attachments on that host still use it. The
        attachment being deleted is still in cinder's records here: it is
        the one with this very connector.
        """
        attachments = self._attachments(volume.id)
        if connector is None:
            self._release_everywhere(volume, attachments)
            return False
        host = self._agent_host(connector.get('host'))
        here = [a for a in attachments
                if self._agent_host(a.connector.get('host')) == host]
        if any(a.connector == connector for a in here):
            here = here[1:]
        if here:
            return True
        self._deactivate(volume, host)
        others = []
        for a in attachments:
            h = self._agent_host(a.connector.get('host'))
            if h != host and h not in others:
                others.append(h)
        if len(others) == 1:
            # The end of a live migration, or of its rollback, or of a
            # multi-attach down to one host.
            self._return_exclusive(volume, others[0])
        return False

    def _deactivate(self, volume, host):
        try:
            self._call(host, 'deactivate_volume', volume_name=volume.name)
        except agent_client.AgentError as e:
            if e.exc_type == 'VolumeInUse':
                raise exception.VolumeIsBusy(
                    volume_name=volume.name,
                    message=_("volume %(name)s is still open on %(host)s: "
                              "%(reason)s") %
                    {'name': volume.name, 'host': host, 'reason': e.reason})
            raise

    def _release_everywhere(self, volume, attachments):
        # Force-detach: every host cinder shows it attached to lets it go.
        hosts = []
        for a in attachments:
            h = self._agent_host(a.connector.get('host'))
            if h not in hosts:
                hosts.append(h)
        failed = []
        for h in hosts:
            try:
                self._deactivate(volume, h)
            except exception.CinderException as e:
                failed.append('%s: %s' % (h, e.msg))
        if failed:
            raise exception.VolumeBackendAPIException(data=_(
                "force-detach of %(name)s released it on %(ok)s but not on "
                "%(failed)s") % {'name': volume.name,
                                 'ok': sorted(set(hosts) - {
                                     f.split(':')[0] for f in failed}),
                                 'failed': '; '.join(failed)})

    # -- stats --------------------------------------------------------

    def _capacity_gb(self):
        """The VG's size and free space in GiB, as the own agent reads them
        from vgs; 'unknown' (the scheduler then places volumes regardless)
        when it cannot tell."""
        try:
            status = self._call(self._local_host(), 'get_status')
        except exception.VolumeBackendAPIException:
            return 'unknown', 'unknown'
        for vg in status.get('capacity') or []:
            if vg.get('volume_group') == self.vg:
                return (round(vg['size_bytes'] / units.Gi, 2),
                        round(vg['free_bytes'] / units.Gi, 2))
        return 'unknown', 'unknown'

    def _update_volume_stats(self):
        state = 'up'
        try:
            self.check_for_setup_error()
        except exception.VolumeBackendAPIException as e:
            LOG.warning("SharedLVM backend %(name)s is down: %(err)s",
                        {'name': self.backend_name, 'err': e.msg})
            state = 'down'
        total, free = self._capacity_gb()
        self._stats = {
            'volume_backend_name': self.backend_name,
            'vendor_name': 'Open Source',
            'driver_version': self.VERSION,
            'storage_protocol': 'local',
            'total_capacity_gb': total,
            'free_capacity_gb': free,
            'reserved_percentage': self.configuration.reserved_percentage,
            'thick_provisioning_support': True,
            'thin_provisioning_support': False,
            'multiattach': True,
            # nova's 'local' volume driver cannot extend an attached disk.
            'online_extend_support': False,
            'consistent_group_snapshot_enabled': True,
            'QoS_support': False,
            'backend_state': state,
        }

    def get_volume_stats(self, refresh=False):
        if refresh or not self._stats:
            self._update_volume_stats()
        return self._stats

    # -- manage / unmanage --------------------------------------------

    def _existing_lv(self, existing_ref):
        name = existing_ref.get('source-name')
        if not name:
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref,
                reason=_('give the LV name as source-name'))
        for lv in self._call(self._local_host(), 'list_volumes'):
            if lv['volume_name'] == name:
                return lv
        raise exception.ManageExistingInvalidReference(
            existing_ref=existing_ref,
            reason=_('no LV %(name)s in VG %(vg)s') %
            {'name': name, 'vg': self.vg})

    def manage_existing_get_size(self, volume, existing_ref):
        lv = self._existing_lv(existing_ref)
        return int(math.ceil(float(lv['size_bytes']) / units.Gi))

    def manage_existing(self, volume, existing_ref):
        """Adopts an LV named by cinder's template (volume-<uuid>).

        The agents have no rename, and with [lvm] allowed_names they touch
        only cinder's names anyway: the LV keeps its name and the volume
        takes its uuid as _name_id. Its size is rounded up to whole GiB.
        """
        lv = self._existing_lv(existing_ref)
        name = lv['volume_name']
        prefix, _sep, suffix = CONF.volume_name_template.partition('%s')
        name_id = name[len(prefix):len(name) - len(suffix)]
        if not (name.startswith(prefix) and name.endswith(suffix) and
                uuidutils.is_uuid_like(name_id)):
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref,
                reason=_("the LV must be named %(template)s with a uuid; "
                         "rename it first (lvrename %(vg)s %(name)s "
                         "%(example)s)") %
                {'template': CONF.volume_name_template, 'vg': self.vg,
                 'name': name,
                 'example': CONF.volume_name_template % volume.id})
        if name != volume.name:
            try:
                objects.Volume.get_by_id(context.get_admin_context(),
                                         name_id)
            except exception.VolumeNotFound:
                pass
            else:
                raise exception.ManageExistingAlreadyManaged(volume_ref=name)
        size = self.manage_existing_get_size(volume, existing_ref)
        if lv['size_bytes'] != size * units.Gi:
            self._call(self._local_host(), 'extend_volume', volume_name=name,
                       new_size=size)
        if name != volume.name:
            return {'_name_id': name_id}
        return None

    def unmanage(self, volume):
        LOG.info("volume %s leaves cinder; its LV stays in the VG",
                 volume.name)

    # -- generic volume groups ----------------------------------------

    # Groups that are not consistency groups are cinder's generic ones
    # (NotImplementedError lets the manager handle them volume by volume).
    # A consistency group snapshot must be of idle volumes: LVM snapshots
    # one LV at a time, so attached volumes would not be consistent.

    def create_group(self, context, group):
        if not volume_utils.is_group_a_cg_snapshot_type(group):
            raise NotImplementedError()
        return {'status': fields.GroupStatus.AVAILABLE}

    def delete_group(self, context, group, volumes):
        if not volume_utils.is_group_a_cg_snapshot_type(group):
            raise NotImplementedError()
        model_update = {'status': fields.GroupStatus.DELETED}
        volumes_update = []
        for volume in volumes:
            status = 'deleted'
            try:
                self.delete_volume(volume)
            except exception.CinderException as e:
                LOG.error("group %(group)s: deleting %(name)s failed: "
                          "%(err)s", {'group': group.id,
                                      'name': volume.name, 'err': e.msg})
                status = model_update['status'] = 'error_deleting'
            volumes_update.append({'id': volume.id, 'status': status})
        return model_update, volumes_update

    def update_group(self, context, group, add_volumes=None,
                     remove_volumes=None):
        if not volume_utils.is_group_a_cg_snapshot_type(group):
            raise NotImplementedError()
        return None, None, None

    def create_group_from_src(self, context, group, volumes,
                              group_snapshot=None, snapshots=None,
                              source_group=None, source_vols=None):
        if not volume_utils.is_group_a_cg_snapshot_type(group):
            raise NotImplementedError()
        snaps = {s.id: s for s in snapshots or []}
        srcs = {v.id: v for v in source_vols or []}
        for volume in volumes:
            if volume.snapshot_id in snaps:
                self.create_volume_from_snapshot(volume,
                                                 snaps[volume.snapshot_id])
            elif volume.source_volid in srcs:
                self.create_cloned_volume(volume, srcs[volume.source_volid])
            else:
                raise exception.VolumeBackendAPIException(data=_(
                    "volume %s of the new group has no source in the "
                    "group snapshot or source group") % volume.id)
        return None, None

    def create_group_snapshot(self, context, group_snapshot, snapshots):
        if not volume_utils.is_group_a_cg_snapshot_type(group_snapshot):
            raise NotImplementedError()
        attached = [s.volume_name for s in snapshots
                    if self._attached_hosts(s.volume_id)]
        if attached:
            raise exception.VolumeBackendAPIException(data=_(
                "consistency group snapshot refused: %s attached, and LVM "
                "snapshots one LV at a time, so the snapshots would not be "
                "of one instant; detach them first") % ', '.join(attached))
        for snapshot in snapshots:
            self.create_snapshot(snapshot)
        return None, None

    def delete_group_snapshot(self, context, group_snapshot, snapshots):
        if not volume_utils.is_group_a_cg_snapshot_type(group_snapshot):
            raise NotImplementedError()
        for snapshot in snapshots:
            self.delete_snapshot(snapshot)
        return None, None

    # -- nothing to do ------------------------------------------------

    def clone_image(self, context, volume, image_location, image_meta,
                    image_service):
        return None, False

    def local_path(self, volume):
        # The device exists only on hosts that hold the LV active.
        return '/dev/%s/%s' % (self.vg, volume.name)

