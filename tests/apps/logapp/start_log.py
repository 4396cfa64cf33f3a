"""Logging test app: one text Worker (GWT_TXT_PORT). "log X" logs X at INFO and "debug X" at
DEBUG under gwgevent.test; "boom" raises in the handler. The environment chooses the logging
setup: GWT_USER_BASIC=1 configures logging like an application would (basicConfig, DEBUG);
GWT_LOG_FILE / GWT_PID_FILE / GWT_LOG_LEVEL set Workerman's $logFile / $pidFile and the level."""
import logging
import os
import sys

from gwgevent import Worker, run_all

if os.environ.get("GWT_USER_BASIC") == "1":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="USER|%(name)s|%(levelname)s|%(message)s")
if os.environ.get("GWT_LOG_FILE"):
    Worker.logFile = os.environ["GWT_LOG_FILE"]          # the Workerman spelling
if os.environ.get("GWT_PID_FILE"):
    Worker.pidFile = os.environ["GWT_PID_FILE"]
if os.environ.get("GWT_LOG_LEVEL"):
    Worker.log_level = os.environ["GWT_LOG_LEVEL"]

log = logging.getLogger("gwgevent.test")
text = Worker("text://127.0.0.1:%s" % os.environ["GWT_TXT_PORT"], name="LogText", count=1)


def on_message(conn, data):
    if data == "boom":
        conn.send("raising")
        raise ValueError("boom")
    kind, _, what = data.partition(" ")
    if kind == "log":
        log.info("info %s", what)
    elif kind == "debug":
        log.debug("debug %s", what)
    conn.send("ok")


text.on_message = on_message

if __name__ == "__main__":
    run_all()
