"""The deploy/ recipes run as their managers would run them.

systemd: ExecStart, ExecReload, KillSignal and KillMode are read from
deploy/systemd/gwgevent-chat.service; the demo is started with that command line in the
foreground (its own session, output captured like the journal), reloaded with ExecReload, and
stopped by KillSignal sent to the main process only (KillMode=mixed) within TimeoutStopSec.

Docker: the image from deploy/docker is built and run only where a docker daemon answers.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid

import pytest

from chat_app import PROCESSES, make_chat
from cluster import WsClient, port_block
from helpers import REPO, apps, pid_alive, port_listening, wait_for  # noqa: F401 (fixture)

UNIT = REPO / "deploy" / "systemd" / "gwgevent-chat.service"
DOCKER_DIR = REPO / "deploy" / "docker"


def read_unit(path) -> dict:
    """[Service] keys of a unit file (last assignment wins, as for these keys in systemd)."""
    section, out = None, {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def as_local(command: str, workdir: str, app_dir) -> list:
    """The unit's command line for this machine: its python is ours, its app dir the copy."""
    argv = shlex.split(command)
    assert os.path.basename(argv[0]).startswith("python"), argv
    return [sys.executable] + [a.replace(workdir, str(app_dir)) for a in argv[1:]]


def login(port: int, name: str) -> WsClient:
    c = WsClient(port, path="/ws?room_id=1")
    c.send(json.dumps({"type": "login", "client_name": name, "room_id": "1"}))
    c.take_json(lambda d: d.get("type") == "login" and "client_list" in d, 10, "login reply")
    return c


def test_systemd_unit_command_lines(apps, tmp_path):
    unit = read_unit(UNIT)
    assert unit["Type"] == "simple" and unit["KillMode"] == "mixed", unit
    workdir = unit["WorkingDirectory"]
    start = as_local(unit["ExecStart"], workdir, "APP")
    assert start[1:] == ["APP/start.py", "start"], "ExecStart must run in the foreground"
    app = make_chat(apps, tmp_path)
    start = as_local(unit["ExecStart"], workdir, app.dir)
    reload_cmd = as_local(unit["ExecReload"], workdir, app.dir)
    kill_signal = signal.Signals[unit["KillSignal"]]
    stop_timeout = float(re.match(r"\d+", unit["TimeoutStopSec"]).group())

    journal = open(tmp_path / "journal.txt", "wb")
    proc = subprocess.Popen(start, cwd=str(app.dir), env=app.env, stdin=subprocess.DEVNULL,
                            stdout=journal, stderr=subprocess.STDOUT, start_new_session=True)
    journal.close()
    app.foreground = proc            # cleanup kills it whatever happens
    app.seen_pids.add(proc.pid)
    app.seen_pgids.add(proc.pid)
    master = app.wait_up(PROCESSES, timeout=20)
    assert master == proc.pid, "the main process must be the master (Type=simple)"

    client = login(app.web_port, "sam")
    before = set(app.workers("ChatBusinessWorker").values())
    res = subprocess.run(reload_cmd, cwd=str(app.dir), env=app.env, capture_output=True,
                         text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    wait_for(lambda: len(app.workers("ChatBusinessWorker")) == 2 and
             not before & set(app.workers("ChatBusinessWorker").values()), 20,
             "ExecReload to replace the business workers")
    assert proc.poll() is None and pid_alive(master)
    client.send(json.dumps({"type": "say", "to_client_id": "all", "content": "still here"}))
    client.take_json(lambda d: d.get("content") == "still here", 10, "a message after reload")
    client.close()

    kids = list(app.children())
    os.kill(master, kill_signal)     # KillMode=mixed: the main process only
    try:
        code = proc.wait(stop_timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("master still running %.0f s after %s (systemd would SIGKILL it)"
                    % (stop_timeout, kill_signal.name))
    # systemd counts exit 0 or death by the KillSignal itself as a clean stop
    assert code in (0, -kill_signal), (code, (tmp_path / "journal.txt").read_text())
    wait_for(lambda: not any(pid_alive(p) for p in kids), 5, "children to exit with the master")
    wait_for(lambda: not any(port_listening(p) for p in app.ports), 5, "ports released")
    assert not app.pid_file.exists()
    out = (tmp_path / "journal.txt").read_text(errors="replace")
    assert "Traceback" not in out, out


def _docker_usable() -> str:
    if not shutil.which("docker"):
        return "no docker binary"
    try:
        res = subprocess.run(["docker", "info"], capture_output=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "docker info failed: %s" % exc
    if res.returncode != 0:
        return "no docker daemon answers (docker info exited %d)" % res.returncode
    return ""


def test_docker_image(tmp_path):
    why = _docker_usable()
    if why:
        pytest.skip("docker recipe not built: " + why)
    tag = "gwgevent-chat-test:%s" % uuid.uuid4().hex[:8]
    name = "gwgevent-chat-test-%s" % uuid.uuid4().hex[:8]
    (port,) = port_block(1)
    build = subprocess.run(["docker", "build", "-q", "-f", str(DOCKER_DIR / "Dockerfile"),
                            "-t", tag, str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        run = subprocess.run(["docker", "run", "-d", "--name", name, "-p",
                              "127.0.0.1:%d:55151" % port, tag], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr

        def page():
            try:
                return urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2).read()
            except OSError:
                return None
        assert b"gwgevent chat" in wait_for(page, 30, "the page from the container")
        login(port, "whale").close()
        stop = subprocess.run(["docker", "stop", "-t", "20", name], capture_output=True,
                              text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        assert code == "0", "container exited %s on docker stop" % code
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=60)
