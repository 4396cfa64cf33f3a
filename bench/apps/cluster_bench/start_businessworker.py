"""BusinessWorkers of the benchmark cluster (GWB_WORKER_COUNT processes) running Events.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import BusinessWorker, run_all  # noqa: E402

worker = BusinessWorker()
worker.name = "BenchBusinessWorker"
worker.count = _env.WORKER_COUNT
worker.register_address = _env.REGISTER
worker.event_handler = "Events"
worker.on_worker_start = _env.on_worker_start("worker")

if __name__ == "__main__":
    run_all()
