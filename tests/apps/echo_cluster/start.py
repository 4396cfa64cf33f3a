#!/usr/bin/env python3
"""Echo cluster: a Register, one websocket Gateway and GWT_WORKER_COUNT BusinessWorkers running
Events.py (every message goes back to its sender through `Gateway.send_to_client`), all under
one master: `python start.py start -d` / `stop`.

Settings (GWT_* environment variables, set by tests/cluster.py `Cluster(app="echo_cluster")`):
GWT_REGISTER_PORT, GWT_WS_PORT (public), GWT_WS_START_PORT (inner), GWT_WS_COUNT,
GWT_WORKER_COUNT, GWT_SECRET, GWT_REPO (the gwgevent checkout to import);
GWT_MAX_PACKAGE: the gateway's max_package_size (unset: its default);
GWT_CERT + GWT_KEY: the gateway serves wss (transport='ssl' with that certificate and key).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("GWT_REPO") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
for _p in (HERE, REPO):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from gwgevent import BusinessWorker, Gateway, Register, run_all  # noqa: E402

env = os.environ.get
REGISTER = "127.0.0.1:%s" % env("GWT_REGISTER_PORT", "1236")
SECRET = env("GWT_SECRET", "")

register = Register("text://" + REGISTER)
register.secret_key = SECRET

gateway = Gateway("websocket://127.0.0.1:%s" % env("GWT_WS_PORT", "7272"))
gateway.name = "EchoGateway"
gateway.count = int(env("GWT_WS_COUNT", "1"))
gateway.lan_ip = "127.0.0.1"
gateway.start_port = int(env("GWT_WS_START_PORT", "2900"))
gateway.register_address = REGISTER
gateway.secret_key = SECRET
if env("GWT_MAX_PACKAGE"):
    gateway.max_package_size = int(env("GWT_MAX_PACKAGE"))
if env("GWT_CERT"):
    gateway.transport = "ssl"
    gateway.certfile = env("GWT_CERT")
    gateway.keyfile = env("GWT_KEY")

worker = BusinessWorker()
worker.name = "EchoBusinessWorker"
worker.count = int(env("GWT_WORKER_COUNT", "1"))
worker.register_address = REGISTER
worker.secret_key = SECRET
worker.event_handler = "Events"

if __name__ == "__main__":
    run_all()
