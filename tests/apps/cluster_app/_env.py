"""Settings of the test cluster, read from GWT_* environment variables (tests/cluster.py sets
them; every port is picked free at fixture time)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("GWT_REPO") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def get(name, default=None):
    return os.environ.get("GWT_" + name, default)


def num(name, default=0):
    value = get(name)
    if value in (None, ""):
        return default
    return float(value) if "." in value else int(value)


REGISTER = "127.0.0.1:%d" % num("REGISTER_PORT", 1236)
SECRET = get("SECRET", "")
#: every register the roles use: a list when GWT_REGISTER2_PORT is set (register2.py)
REGISTERS = REGISTER if not get("REGISTER2_PORT") else [
    REGISTER, "127.0.0.1:%d" % num("REGISTER2_PORT")]
