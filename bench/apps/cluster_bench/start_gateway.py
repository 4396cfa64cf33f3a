"""Websocket gateway of the benchmark cluster: clients on 127.0.0.1:GWB_GATEWAY_PORT, inner
ports GWB_START_PORT.., GWB_GATEWAY_COUNT processes (GWB_REUSE_PORT=1: a listening socket each);
no heartbeat (nothing but the bench's own traffic)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Gateway, run_all  # noqa: E402

gateway = Gateway("websocket://127.0.0.1:%d" % _env.GATEWAY_PORT)
gateway.name = "BenchGateway"
gateway.count = _env.GATEWAY_COUNT
gateway.reuse_port = _env.REUSE_PORT
gateway.lan_ip = "127.0.0.1"
gateway.start_port = _env.START_PORT
gateway.register_address = _env.REGISTER
gateway.on_worker_start = _env.on_worker_start("gateway")

if __name__ == "__main__":
    run_all()
