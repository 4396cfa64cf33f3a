"""A websocket gateway of the namespace cluster: public port on this host, lan_ip = this host's
address (GWT_NS_IP), register on GWT_NS_REGISTER. Copied per host (its pid file is named
after the file)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Gateway, run_all  # noqa: E402

gateway = Gateway("websocket://%s:%d" % (_env.get("NS_IP"), _env.num("WS_PORT")),
                  name="NsGateway")
gateway.lan_ip = _env.get("NS_IP")
gateway.start_port = _env.num("WS_START_PORT")
gateway.register_address = _env.get("NS_REGISTER")

if __name__ == "__main__":
    run_all()
