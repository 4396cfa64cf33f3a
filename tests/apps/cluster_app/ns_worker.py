"""BusinessWorkers of the namespace cluster (register on GWT_NS_REGISTER), running Events.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import BusinessWorker, run_all  # noqa: E402

worker = BusinessWorker(name="NsBusinessWorker", count=2)
worker.register_address = _env.get("NS_REGISTER")
worker.event_handler = "Events"

if __name__ == "__main__":
    run_all()
