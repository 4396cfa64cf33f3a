"""A second register (GWT_REGISTER2_PORT), run under its own master (`register2.py start -d`)
so a test can take one register away while everything else goes on."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Register, run_all  # noqa: E402

register = Register("text://127.0.0.1:%d" % _env.num("REGISTER2_PORT"), name="Register2")
register.secret_key = _env.SECRET

if __name__ == "__main__":
    run_all()
