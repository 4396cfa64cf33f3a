"""Register for the Chat app (discovery; keep it private: bind 127.0.0.1 or a LAN address)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from gwgevent import Register, run_all  # noqa: E402

register = Register("text://127.0.0.1:1236")

if __name__ == "__main__":
    run_all()
