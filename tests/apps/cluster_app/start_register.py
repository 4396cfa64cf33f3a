"""Register of the test cluster."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Register, run_all  # noqa: E402

register = Register("text://" + _env.REGISTER)
register.secret_key = _env.SECRET

if __name__ == "__main__":
    run_all()
