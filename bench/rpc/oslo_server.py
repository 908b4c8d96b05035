"""A real oslo.messaging RPC server with one trivial method, the Python
baseline for bench/rpc. Usage: /usr/bin/python3 oslo_server.py URL TOPIC"""
import sys

import oslo_messaging
from oslo_config import cfg


class Endpoint:
    def ping(self, ctxt, **kwargs):
        return kwargs


def main():
    url, topic = sys.argv[1], sys.argv[2]
    cfg.CONF([], project="aos-bench")
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url)
    target = oslo_messaging.Target(topic=topic, server="py1")
    server = oslo_messaging.get_rpc_server(transport, target, [Endpoint()], executor="threading")
    server.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()  # runs until the benchmark closes our stdin
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


if __name__ == "__main__":
    main()
