"""A gateway started on its own (`gateway_extra.py start -d`; GWT_EXTRA_PORT,
GWT_EXTRA_START_PORT) after the rest of the cluster: the workers can only learn about it from
whatever register is still up."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Gateway, run_all  # noqa: E402

gateway = Gateway("websocket://127.0.0.1:%d" % _env.num("EXTRA_PORT"), name="ExtraGateway")
gateway.lan_ip = "127.0.0.1"
gateway.start_port = _env.num("EXTRA_START_PORT")
gateway.register_address = _env.REGISTERS
gateway.secret_key = _env.SECRET

if __name__ == "__main__":
    run_all()
