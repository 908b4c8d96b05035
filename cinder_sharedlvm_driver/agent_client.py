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

"""oslo.messaging client of the aos-agents (docs/rpc.md).

Every host sharing the VG runs one agent, an RPC server addressed by the
host's name on the agents' topic. Failures come back as RemoteError whose
exc_type is the agent's error class; they are raised here as AgentError (a
VolumeBackendAPIException carrying the class, the host and the agent's
message), and the driver turns the classes an operator acts on into
cinder's own exceptions.
"""

import re

from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_log import log as logging
import oslo_messaging

from cinder import exception
from cinder.i18n import _

LOG = logging.getLogger(__name__)

API_VERSION = '1.0'


class AgentError(exception.VolumeBackendAPIException):
    message = _("aos-agent on %(host)s: %(method)s failed: "
                "%(exc_type)s: %(reason)s")

    def __init__(self, host, method, exc_type, reason):
        super().__init__(host=host, method=method, exc_type=exc_type,
                         reason=reason)
        self.host = host
        self.method = method
        self.exc_type = exc_type
        self.reason = reason


class AgentTimeout(exception.VolumeBackendAPIException):
    message = _("aos-agent on %(host)s did not answer %(method)s "
                "(%(reason)s): is aos-agent running on %(host)s, and is "
                "%(host)s its [DEFAULT] host name (agent_host_map)?")

    def __init__(self, host, method, reason):
        super().__init__(host=host, method=method, reason=reason)
        self.host = host
        self.method = method


def redact_url(url):
    """The transport URL without passwords, for logs and errors."""
    return re.sub(r'(://|,)([^:@/,]*):[^@/,]*@', r'\1\2:***@', url)


def rabbit_url(url):
    """Maps the deployment's amqp:// URL to oslo's rabbit driver.

    oslo.messaging reads amqp:// as AMQP 1.0 (its qpid-proton driver); the
    agents speak AMQP 0-9-1 on RabbitMQ, which oslo calls rabbit://.
    """
    if url.startswith('amqp://'):
        return 'rabbit://' + url[len('amqp://'):]
    return url


class AgentClient(object):
    """Calls the agent of one host at a time."""

    def __init__(self, url, topic, exchange, timeout, call_monitor_timeout):
        self.url = rabbit_url(url)
        self.timeout = timeout
        self.call_monitor_timeout = call_monitor_timeout
        # cinder.conf's [oslo_messaging_rabbit] (TLS, heartbeats) applies.
        self._transport = oslo_messaging.get_rpc_transport(cfg.CONF,
                                                           url=self.url)
        target = oslo_messaging.Target(topic=topic, exchange=exchange,
                                       version=API_VERSION)
        self._client = oslo_messaging.get_rpc_client(self._transport, target)

    def close(self):
        self._transport.cleanup()

    @staticmethod
    def _context():
        # Only the request id: cinder's context carries the user's token,
        # which the agents have no use for and must never log.
        ctxt = oslo_context.get_current()
        request_id = getattr(ctxt, 'request_id', None)
        return {'request_id': request_id} if request_id else {}

    def call(self, host, method, timeout=None, **kwargs):
        """Calls method on host's agent and returns its reply.

        The agent sends oslo's call-monitor heartbeats while a call runs, so
        a long one (a clone, a wipe) may take up to the call timeout, while
        an agent that is down is noticed after call_monitor_timeout.
        """
        timeout = timeout or self.timeout
        cctxt = self._client.prepare(
            server=host, timeout=timeout,
            call_monitor_timeout=min(self.call_monitor_timeout, timeout))
        LOG.debug('aos-agent %(host)s: %(method)s(%(args)s)',
                  {'host': host, 'method': method, 'args': kwargs})
        try:
            return cctxt.call(self._context(), method, **kwargs)
        except oslo_messaging.MessagingTimeout as e:
            raise AgentTimeout(host=host, method=method, reason=str(e))
        except oslo_messaging.RemoteError as e:
            raise AgentError(host=host, method=method, exc_type=e.exc_type,
                             reason=e.value)
        except oslo_messaging.MessagingException as e:
            raise exception.VolumeBackendAPIException(
                data=_("cannot reach the aos-agents' broker %(url)s to call "
                       "%(method)s on %(host)s: %(err)s") %
                {'url': redact_url(self.url), 'method': method,
                 'host': host, 'err': e})
