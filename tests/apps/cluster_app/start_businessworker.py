"""BusinessWorkers of the test cluster (GWT_WORKER_COUNT processes) running Events.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import BusinessWorker, run_all  # noqa: E402

worker = BusinessWorker()
worker.name = "TestBusinessWorker"
worker.count = _env.num("WORKER_COUNT", 2)
worker.register_address = _env.REGISTERS
worker.secret_key = _env.SECRET
worker.event_handler = "Events"
worker.loop_timeout = _env.num("LOOP_TIMEOUT", 30.0)
worker.graceful_timeout = _env.num("GRACEFUL_TIMEOUT", 30.0)

if __name__ == "__main__":
    run_all()
