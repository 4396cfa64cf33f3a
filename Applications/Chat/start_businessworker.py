"""BusinessWorkers for the Chat app: they run Events.py (imported after fork, so `reload`
picks up edits)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from gwgevent import BusinessWorker, run_all  # noqa: E402

worker = BusinessWorker()
worker.name = "ChatBusinessWorker"
worker.count = 2
worker.register_address = "127.0.0.1:%s" % os.environ.get("CHAT_REGISTER_PORT", "1236")
worker.event_handler = "Events"

if __name__ == "__main__":
    run_all()
