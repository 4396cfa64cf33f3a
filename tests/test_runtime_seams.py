"""The seams between a child process and its master, without processes: the notification pipe
(gwgevent.notify), the one-line start error (gwgevent.child.describe_error) and the watchdog's
reading of a faulthandler dump (gwgevent.watchdog.describe)."""
from __future__ import annotations

import os

from gwgevent.runtime import notify
from gwgevent.child import describe_error
from gwgevent.manager.watchdog import describe

DUMP = """Timeout (0:00:03.750000)!
Thread 0x00007f2b2a1fdb80 (most recent call first):
  File "/app/Events.py", line 76 in _run
  File "/app/Events.py", line 93 in on_message
  File "%s/business_worker.py", line 531 in _handle_event
  File "%s/worker.py", line 402 in _runner_main
""" % ((os.path.dirname(notify.__file__),) * 2)


def test_notify_lines_reach_the_channel():
    channel = notify.Channel()
    try:
        notify.attach(channel.write_fd)
        notify.ready()
        notify.ready()                       # once only
        notify.failed("SyntaxError: x" * 1000)
        notify.report("closed_at_timeout", count=3)
        rows = channel.read()
        assert [r["event"] for r in rows] == ["ready", "failed", "closed_at_timeout"]
        assert all(r["pid"] == os.getpid() for r in rows)
        assert len(rows[1]["error"]) == notify.MAX_TEXT
        assert rows[2]["count"] == 3
        assert channel.read() == []
    finally:
        notify.attach(None)
        os.close(channel.read_fd)
        os.close(channel.write_fd)
    notify.ready()                           # detached: a no-op, never an error


def test_describe_error_names_file_and_line():
    try:
        compile("x = 1\ndef broken(:\n", "/app/Events.py", "exec")
    except SyntaxError as exc:
        assert describe_error(exc) == "SyntaxError: invalid syntax (/app/Events.py, line 2)"
    try:
        exec(compile("y = undefined_name\n", "/app/Events.py", "exec"), {})
    except NameError as exc:
        text = describe_error(exc)
        assert text.startswith("NameError: name 'undefined_name' is not defined")
        assert text.endswith("(/app/Events.py, line 1)")


def test_watchdog_names_the_user_frame():
    text = describe(DUMP)
    assert text.startswith("stuck in _run (/app/Events.py:76); stack, innermost first: ")
    assert "Events.py:93 on_message < business_worker.py:531 _handle_event" in text
    assert describe("Timeout (0:00:01)!\n") is None
