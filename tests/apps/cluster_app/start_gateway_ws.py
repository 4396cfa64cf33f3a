"""Websocket gateway of the test cluster (GWT_WS_PORT, GWT_WS_START_PORT, GWT_WS_COUNT)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Gateway, run_all  # noqa: E402

gateway = Gateway("websocket://127.0.0.1:%d" % _env.num("WS_PORT"))
gateway.name = "TestWsGateway"
gateway.count = _env.num("WS_COUNT", 1)
gateway.lan_ip = "127.0.0.1"
gateway.start_port = _env.num("WS_START_PORT")
gateway.register_address = _env.REGISTERS
gateway.secret_key = _env.SECRET
gateway.hold_timeout = _env.num("HOLD_TIMEOUT", 3.0)
gateway.graceful_timeout = _env.num("GRACEFUL_TIMEOUT", 30.0)
gateway.worker_ping_timeout = _env.num("WORKER_PING_TIMEOUT", 1.0)
gateway.trusted_proxies = _env.get("TRUSTED_PROXIES", "")
gateway.inner_max_connections = _env.num("INNER_MAX_CONNECTIONS", gateway.inner_max_connections)
gateway.inner_max_buffered = _env.num("INNER_MAX_BUFFERED", gateway.inner_max_buffered)
gateway.reuse_port = bool(_env.num("WS_REUSE_PORT", 0))
gateway.client_sndbuf = _env.num("CLIENT_SNDBUF", 0)
gateway.send_timeout = _env.num("SEND_TIMEOUT", 0.0)
gateway.send_to_client_buffer_size = _env.num("CLIENT_BUFFER", gateway.send_to_client_buffer_size)

if __name__ == "__main__":
    run_all()
