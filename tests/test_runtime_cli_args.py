"""Command-line parsing against the real start file (tests/apps/cliapp): --help, unknown
commands and flags (exit 2 with a message), `restart` keeping daemon mode, `status --json`."""
from __future__ import annotations

import json

import pytest

from helpers import apps, free_ports, pid_alive, proc_title, wait_for  # noqa: F401 (fixture)

PROCESSES = 3


@pytest.fixture
def app(apps):
    ws_port, txt_port = free_ports(2)
    return apps("cliapp", "start_cli.py", env={"GWT_WS_PORT": ws_port, "GWT_TXT_PORT": txt_port},
                ports=[ws_port, txt_port])


def test_help_and_usage_errors(app):
    for argv in (["--help"], ["-h"], ["start", "--help"]):
        res = app.cli(*argv)
        assert res.returncode == 0 and "Usage:" in res.stdout, (argv, res)
    cases = {
        (): "no command given",
        ("bogus",): "unknown command 'bogus'",
        ("stauts",): "did you mean 'status'?",
        ("start", "-x"): "start does not take -x",
        ("stop", "-d"): "stop does not take -d",
        ("connections", "--json"): "connections does not take --json",
    }
    for argv, message in cases.items():
        res = app.cli(*argv)
        assert res.returncode == 2, (argv, res)
        assert message in res.stderr, (argv, res.stderr)
    assert app.master_pid() is None, "a rejected command line started something"


def test_restart_keeps_daemon_mode_and_status_json(app):
    first = app.start_daemon(PROCESSES)
    assert proc_title(first).endswith("(daemon)")
    # without -d: a foreground restart would not return (the cli call would time out)
    res = app.cli("restart", timeout=30)
    assert res.returncode == 0, (res.stdout, res.stderr)
    second = app.wait_up(PROCESSES)
    assert second != first and not pid_alive(first)
    assert proc_title(second).endswith("(daemon)")

    def complete():
        doc = json.loads(app.cli("status", "--json", check=True).stdout)
        return doc if all(p["status"] == "idle" for p in doc["processes"]) else None
    doc = wait_for(complete, 10, "every process in `status --json`")
    assert sorted(p["name"] for p in doc["processes"]) == ["CliEcho", "CliEcho", "CliText"]
    assert sorted(p["pid"] for p in doc["processes"]) == sorted(app.children())
    assert {w["name"] for w in doc["master"]["workers"]} == {"CliEcho", "CliText"}
    for p in doc["processes"]:
        assert isinstance(p["connections"], int) and isinstance(p["memory"], int)
