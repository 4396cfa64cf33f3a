"""Text (newline-delimited) gateway of the test cluster (GWT_TEXT_PORT, GWT_TEXT_START_PORT);
absent when GWT_TEXT_PORT is not set."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Gateway, run_all  # noqa: E402

if _env.get("TEXT_PORT"):
    gateway = Gateway("text://127.0.0.1:%d" % _env.num("TEXT_PORT"))
    gateway.name = "TestTextGateway"
    gateway.count = _env.num("TEXT_COUNT", 1)
    gateway.lan_ip = "127.0.0.1"
    gateway.start_port = _env.num("TEXT_START_PORT")
    gateway.register_address = _env.REGISTERS
    gateway.secret_key = _env.SECRET
    gateway.hold_timeout = _env.num("HOLD_TIMEOUT", 3.0)

if __name__ == "__main__":
    run_all()
