"""Logging as Python applications expect it, with real processes through the start file
(tests/apps/logapp): gwgevent logs under the `gwgevent` logger and leaves the root logger to the
application; Workerman's $logFile / $pidFile and a log level are settings; the log file is
reopened on REOPEN_SIGNAL (logrotate); identical tracebacks collapse; `stop` leaves no status
files behind."""
from __future__ import annotations

import logging
import os
import signal

import pytest

from helpers import LineClient, apps, free_ports, pid_alive, wait_for  # noqa: F401 (fixture)
from gwgevent.log import REOPEN_SIGNAL


def make_app(apps, **env):
    (port,) = free_ports(1)
    env["GWT_TXT_PORT"] = port
    app = apps("logapp", "start_log.py", env=env, ports=[port])
    app.port = port
    return app


def ask(app, line):
    c = LineClient(app.port)
    try:
        return c.ask(line)
    finally:
        c.sock.close()


def test_application_logging_config_wins(apps):
    """basicConfig(DEBUG) in the app: every gwgevent line once, in the app's format, DEBUG kept."""
    app = make_app(apps, GWT_USER_BASIC="1")
    proc = app.start_foreground()
    app.wait_up(1)
    assert ask(app, "debug hello") == "ok"
    wait_for(lambda: "debug hello" in app.foreground_output(), 5, "the DEBUG line")
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(10)
    out = app.foreground_output()
    started = [ln for ln in out.splitlines() if "gwgevent started" in ln]
    assert started == ["USER|gwgevent.master|INFO|gwgevent started: 1 worker(s), 1 process(es)"], out
    assert "USER|gwgevent.test|DEBUG|debug hello" in out.splitlines(), out
    assert out.count("debug hello") == 1, out


def test_log_file_pid_file_settings_reopen_and_status_cleanup(apps, tmp_path):
    logs, run = tmp_path / "logs", tmp_path / "run"
    logs.mkdir()
    run.mkdir()
    app = make_app(apps, GWT_LOG_FILE=logs / "app.log", GWT_PID_FILE=run / "app.pid")
    app.pid_file, app.log_file = run / "app.pid", logs / "app.log"
    master = app.start_daemon(1)
    assert not (app.dir / "gwgevent.log").exists(), "the default log file was used"
    assert not list(app.dir.glob("gwgevent.*.pid")), "the default pid file was used"
    assert ask(app, "log before") == "ok"
    app.wait_log("info before")

    os.rename(app.log_file, logs / "app.log.1")          # what logrotate does
    os.kill(master, REOPEN_SIGNAL)
    app.wait_log("log file reopened")                     # the master writes to the new file
    assert ask(app, "log after") == "ok"
    app.wait_log("info after")                            # ... and so does the child
    assert "info after" not in (logs / "app.log.1").read_text()
    assert pid_alive(master)

    assert "LogText" in app.cli("status", check=True).stdout
    assert list(app.dir.glob("gwgevent.*.status*")), "status left no file to clean up"
    app.cli("stop", check=True)
    wait_for(lambda: not pid_alive(master), 10, "master to exit")
    assert not app.pid_file.exists()
    assert not list(app.dir.glob("gwgevent.*.status*")), list(app.dir.glob("gwgevent.*"))


def test_log_level_and_repeated_tracebacks(apps):
    app = make_app(apps, GWT_LOG_LEVEL="debug")
    app.start_daemon(1)
    c = LineClient(app.port)
    try:
        assert c.ask("debug lvl") == "ok"
        for _ in range(3):
            assert c.ask("boom") == "raising"
        assert c.ask("log fence") == "ok"
    finally:
        c.sock.close()
    text = app.wait_log("info fence")
    assert "debug lvl" in text
    assert text.count("Traceback (most recent call last)") == 1, text
    assert text.count("same traceback as at") == 2, text
    assert "seen 3 times: ValueError: boom" in text, text


def test_bad_log_level_is_an_error():
    from gwgevent.manager.settings import log_level
    from gwgevent.worker import Worker
    Worker.log_level = "LOUD"
    try:
        with pytest.raises(ValueError, match="LOUD"):
            log_level()
    finally:
        Worker.log_level = None
    assert log_level() is None


def test_log_file_in_the_foreground_too(apps, tmp_path):
    """Workerman writes $logFile in debug mode as well: the terminal and the file get the line;
    the file is reopened on REOPEN_SIGNAL there too."""
    log_file = tmp_path / "fg.log"
    app = make_app(apps, GWT_LOG_FILE=log_file)
    proc = app.start_foreground()
    app.wait_up(1)
    assert ask(app, "log one") == "ok"
    wait_for(lambda: "info one" in log_file.read_text(), 5, "the line in the log file")
    assert "info one" in app.foreground_output()
    os.rename(log_file, tmp_path / "fg.log.1")
    os.kill(proc.pid, REOPEN_SIGNAL)
    wait_for(lambda: log_file.exists() and "log file reopened" in log_file.read_text(), 5,
             "the master's line in the new file")
    assert ask(app, "log two") == "ok"
    wait_for(lambda: "info two" in log_file.read_text(), 5, "the child's line in the new file")
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(10)
