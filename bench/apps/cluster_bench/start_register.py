"""Register of the benchmark cluster (text://127.0.0.1:GWB_REGISTER_PORT)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Register, run_all  # noqa: E402

register = Register("text://" + _env.REGISTER)
register.on_worker_start = _env.on_worker_start("register")

if __name__ == "__main__":
    run_all()
