"""Register for the Chat app (discovery; keep it private: bind 127.0.0.1 or a LAN address).

CHAT_REGISTER_PORT overrides the port (tests and containers run the demo on other ports)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from gwgevent import Register, run_all  # noqa: E402

register = Register("text://127.0.0.1:%s" % os.environ.get("CHAT_REGISTER_PORT", "1236"))

if __name__ == "__main__":
    run_all()
