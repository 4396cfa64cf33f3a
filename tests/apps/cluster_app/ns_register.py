"""Register of the namespace cluster, on this host's address (GWT_NS_IP)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Register, run_all  # noqa: E402

register = Register("text://%s:%d" % (_env.get("NS_IP"), _env.num("REGISTER_PORT")))

if __name__ == "__main__":
    run_all()
