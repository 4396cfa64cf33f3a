"""Prometheus exporter for the test cluster, only when GWT_METRICS_PORT is set (multiprocess
files in GWT_METRICS_DIR)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import run_all  # noqa: E402

if _env.get("METRICS_PORT"):
    from gwgevent import enable_metrics
    enable_metrics(_env.num("METRICS_PORT"), directory=_env.get("METRICS_DIR"))

if __name__ == "__main__":
    run_all()
