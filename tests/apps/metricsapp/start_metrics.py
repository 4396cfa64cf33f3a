"""Metrics test app: a text echo Worker "MetricsEcho" (count=2, GWT_TXT_PORT) and the
Prometheus exporter on GWT_METRICS_PORT (multiprocess files in GWT_METRICS_DIR)."""
import os

from gwgevent import Worker, run_all
from gwgevent import enable_metrics

echo = Worker("text://127.0.0.1:%s" % os.environ["GWT_TXT_PORT"], name="MetricsEcho", count=2)


def on_message(conn, data):
    conn.send("echo:" + data)


echo.on_message = on_message
enable_metrics(int(os.environ["GWT_METRICS_PORT"]), directory=os.environ["GWT_METRICS_DIR"])

if __name__ == "__main__":
    run_all()
