"""The command line end to end, against a real app started through its start file
(tests/apps/cliapp/start_cli.py: websocket echo `CliEcho` count=2 + non-reloadable text echo
`CliText` count=1), with real processes, real sockets and real websocket clients."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from helpers import (LineClient, apps, free_ports, pid_alive, port_listening,  # noqa: F401
                     proc_children, proc_title, wait_for, ws_connect, ws_local_port,
                     ws_roundtrip)

PROCESSES = 3   # CliEcho x2 + CliText x1


def make_app(apps, **env):
    ws_port, txt_port = free_ports(2)
    env.update({"GWT_WS_PORT": ws_port, "GWT_TXT_PORT": txt_port})
    app = apps("cliapp", "start_cli.py", env=env, ports=[ws_port, txt_port])
    app.ws_port, app.txt_port = ws_port, txt_port
    return app


def assert_all_gone(app, master, kids, timeout=5.0):
    wait_for(lambda: not pid_alive(master), timeout, "master %d to exit" % master)
    wait_for(lambda: not any(pid_alive(p) for p in kids), timeout,
             "children %r to exit" % (kids,))
    wait_for(lambda: not port_listening(app.ws_port) and not port_listening(app.txt_port),
             timeout, "ports %d/%d to be released" % (app.ws_port, app.txt_port))
    assert not app.pid_file.exists(), "pid file left behind"


def parse_status(out):
    """pid -> row dict from the PROCESS STATUS table, plus the summary row. A child that did
    not answer in time shows as "[busy]" with N/A fields (kept, with None counts)."""
    rows, summary = {}, None
    in_table = False
    for line in out.splitlines():
        if "PROCESS STATUS" in line:
            in_table = True
            continue
        if not in_table:
            continue
        parts = line.split()
        if parts and parts[0].isdigit():
            num = (lambda v: int(v) if v.isdigit() else None)
            rows[int(parts[0])] = {"memory": parts[1], "listening": parts[2], "name": parts[3],
                                   "connections": num(parts[4]), "send_fail": num(parts[5]),
                                   "line": line}
        elif parts and parts[0] == "Summary":
            summary = parts
    return rows, summary


def full_status(app, timeout=10.0):
    """Run `status` until every child answered (a loaded host may leave one [busy] once)."""
    def attempt():
        out = app.cli("status", check=True).stdout
        rows, summary = parse_status(out)
        if rows and all(r["connections"] is not None for r in rows.values()):
            return out, rows, summary
        return None
    return wait_for(attempt, timeout, "a complete `status` table")


def connections_output(app, needle, timeout=10.0):
    """Run `connections` until a line ending with `needle` shows up."""
    def attempt():
        out = app.cli("connections", check=True).stdout
        lines = [ln for ln in out.splitlines() if ln.endswith(needle)]
        return (out, lines) if lines else None
    return wait_for(attempt, timeout, "`connections` to list %s" % needle)


def ws_closed_by_server(ws):
    """True once the server has closed this websocket-client connection."""
    import websocket
    try:
        for _ in range(3):
            ws.send("probe")
            if ws.recv() in ("", b""):      # websocket-client returns "" for a close frame
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        return True
    return False


def test_start_daemon_status_connections_stop(apps):
    app = make_app(apps)
    res = app.cli("start", "-d", check=True)
    assert "Start success" in res.stdout
    assert "CliEcho" in res.stdout and "CliText" in res.stdout
    # `start -d` returns once the master is up: the pid file is there already
    assert app.pid_file.exists(), "pid file missing right after `start -d` returned"
    master = app.wait_up(PROCESSES)
    assert int(app.pid_file.read_text()) == master
    assert proc_title(master).startswith("gwgevent: master process")

    # a second start refuses, clearly, with a non-zero exit, and changes nothing
    again = app.cli("start", "-d")
    assert again.returncode != 0
    assert "already running" in again.stderr and str(master) in again.stderr
    assert app.master_pid() == master

    # status: every child of the master, with its name and listen address, plus the summary
    st, rows, summary = full_status(app)
    kids = proc_children(master)
    assert sorted(rows) == kids, st
    echo, text = app.workers("CliEcho"), app.workers("CliText")
    assert sorted(echo) == [0, 1] and sorted(text) == [0]
    for pid in echo.values():
        assert rows[pid]["name"] == "CliEcho"
        assert rows[pid]["listening"] == "websocket://127.0.0.1:%d" % app.ws_port
    assert rows[text[0]]["name"] == "CliText"
    assert rows[text[0]]["listening"] == "text://127.0.0.1:%d" % app.txt_port
    assert summary is not None and "[Summary]" in summary, st
    assert "3 processes" in st and "2 workers" in st

    # connections: a live websocket connection shows with its remote port
    ws = ws_connect(app.ws_port)
    try:
        ws.send("hi")
        assert ws.recv() == "v1:hi"
        port = ws_local_port(ws)
        conns, lines = connections_output(app, "127.0.0.1:%d" % port)
        assert len(lines) == 1, conns
        assert "CliEcho" in lines[0] and "websocket" in lines[0]
        assert "127.0.0.1:%d" % app.ws_port in lines[0]      # local address
        # status counts it too
        _, rows, _ = full_status(app)
        assert sum(r["connections"] for r in rows.values()) == 1
    finally:
        ws.close()

    res = app.cli("stop", check=True)
    assert "stop success" in res.stdout
    assert_all_gone(app, master, kids)


def test_reload_replaces_only_reloadable_and_picks_up_edits(apps):
    app = make_app(apps)
    master = app.start_daemon(PROCESSES)
    echo_before = app.workers("CliEcho")
    text_before = app.workers("CliText")
    assert ws_roundtrip(app.ws_port, "a") == "v1:a"

    txt = LineClient(app.txt_port)       # on the non-reloadable worker: must survive
    assert txt.ask("x") == "txt:x"
    ws = ws_connect(app.ws_port)         # on a reloadable worker: dropped by the reload
    ws.send("b")
    assert ws.recv() == "v1:b"

    handler = app.dir / "cli_handler.py"
    handler.write_text(handler.read_text().replace('VERSION = "v1"', 'VERSION = "v2-edited"'))
    res = app.cli("reload", check=True)
    assert "reload" in res.stdout

    def replaced():
        now = app.workers("CliEcho")
        return (sorted(now) == [0, 1] and not set(now.values()) & set(echo_before.values())
                and now)
    echo_after = wait_for(replaced, 10, "both CliEcho processes to be replaced")
    assert app.master_pid() == master
    assert sorted(echo_after) == sorted(echo_before)            # worker ids stable
    assert app.workers("CliText") == text_before                 # non-reloadable pid kept
    # the edited handler module is what the new processes run
    for _ in range(4):
        assert ws_roundtrip(app.ws_port, "c") == "v2-edited:c"
    # the text client stayed connected through the reload; on_worker_reload ran there
    assert txt.ask("y") == "txt:y"
    assert wait_for(lambda: txt.ask("reloads") == "1", 3, "on_worker_reload in CliText")
    txt.close()
    # the websocket client of the replaced process was closed
    assert ws_closed_by_server(ws)
    ws.close()


def test_reload_keeps_websocket_client_of_non_reloadable_worker(apps):
    app = make_app(apps, GWT_WS_RELOADABLE="0")
    app.start_daemon(PROCESSES)
    before = {**app.workers("CliEcho"), **{"t": app.workers("CliText")[0]}}
    ws = ws_connect(app.ws_port)
    try:
        ws.send("one")
        assert ws.recv() == "v1:one"
        app.cli("reload", check=True)
        txt = LineClient(app.txt_port)
        # the reload reached the (non-reloadable) processes: on_worker_reload ran
        assert wait_for(lambda: txt.ask("reloads") == "1", 3, "on_worker_reload in CliText")
        txt.close()
        for i in range(5):
            ws.send("m%d" % i)
            assert ws.recv() == "v1:m%d" % i
        assert {**app.workers("CliEcho"), **{"t": app.workers("CliText")[0]}} == before
    finally:
        ws.close()


def test_kill9_child_is_respawned_with_same_worker_id(apps):
    app = make_app(apps)
    app.start_daemon(PROCESSES)
    victim_id, victim = sorted(app.workers("CliEcho").items())[1]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    def respawned():
        pid = app.workers("CliEcho").get(victim_id)
        return pid if pid and pid != victim else None
    new = wait_for(respawned, 3.0, "CliEcho worker #%d to be respawned" % victim_id,
                   interval=0.005)
    elapsed = time.monotonic() - t0
    print("respawn after kill -9 took %.3f s" % elapsed)
    assert elapsed < 1.5, "respawn took %.3f s" % elapsed
    assert proc_title(new) == "gwgevent: CliEcho worker #%d" % victim_id
    assert sorted(app.workers("CliEcho")) == [0, 1]
    # the new process serves
    wait_for(lambda: sum(ws_roundtrip(app.ws_port, "z") == "v1:z" for _ in range(4)) == 4, 3,
             "echo after respawn")
    st, _, _ = full_status(app)
    assert "was killed by SIGKILL" in st, st


def test_stop_graceful_waits_for_open_client(apps):
    app = make_app(apps)
    master = app.start_daemon(PROCESSES)
    kids = proc_children(master)
    ws = ws_connect(app.ws_port)
    ws.send("hold")
    assert ws.recv() == "v1:hold"
    stopper = app.cli_async("stop", "-g")
    try:
        # the listeners go away at once, but the process with the client waits for it
        wait_for(lambda: not port_listening(app.ws_port), 5, "listener closed by stop -g")
        wait_for(lambda: len([p for p in kids if pid_alive(p)]) == 1, 5,
                 "only the process holding the client to remain")
        time.sleep(0.5)   # give a wrong implementation the chance to exit early
        assert stopper.poll() is None, "stop -g returned while a client was connected"
        assert pid_alive(master)
        ws.send("still")
        assert ws.recv() == "v1:still"
        ws.close()
        out, err = stopper.communicate(timeout=10)
        assert stopper.returncode == 0, (out, err)
        assert "stop success" in out
    finally:
        if stopper.poll() is None:
            stopper.kill()
            stopper.wait(5)
    assert_all_gone(app, master, kids)


def test_restart(apps):
    app = make_app(apps)
    master = app.start_daemon(PROCESSES)
    kids = proc_children(master)
    res = app.cli("restart", "-d", check=True)
    assert "stop success" in res.stdout and "Start success" in res.stdout
    new_master = app.wait_up(PROCESSES)
    assert new_master != master
    assert not pid_alive(master) and not any(pid_alive(p) for p in kids)
    assert ws_roundtrip(app.ws_port, "again") == "v1:again"
    new_kids = proc_children(new_master)
    app.cli("stop", check=True)
    assert_all_gone(app, new_master, new_kids)


def test_foreground_start_banner_and_ctrl_c(apps):
    app = make_app(apps)
    proc = app.start_foreground()
    wait_for(lambda: "Start success" in app.foreground_output(), 10, "the banner")
    out = app.foreground_output()
    assert "Press Ctrl+C to stop" in out
    assert re.search(r"CliEcho\s+websocket://127\.0\.0\.1:%d\s+2" % app.ws_port, out), out
    assert re.search(r"CliText\s+text://127\.0\.0\.1:%d\s+1" % app.txt_port, out), out
    wait_for(lambda: len(app.children()) == PROCESSES, 10, "children")
    kids = list(app.children())
    wait_for(lambda: port_listening(app.ws_port), 5, "listen")
    assert ws_roundtrip(app.ws_port, "fg") == "v1:fg"
    os.killpg(proc.pid, signal.SIGINT)          # what Ctrl+C in the terminal does
    rc = proc.wait(10)
    assert rc == 0, app.foreground_output()
    wait_for(lambda: not any(pid_alive(p) for p in kids), 5, "children to exit")
    wait_for(lambda: not port_listening(app.ws_port) and not port_listening(app.txt_port), 5,
             "ports released")
    assert not app.pid_file.exists()
    # the children got the SIGINT too and exited before the master saw its own: that is a stop,
    # not a crash, so nothing may be respawned
    assert "starting it again" not in app.foreground_output(), app.foreground_output()


def test_commands_without_running_master(apps):
    app = make_app(apps)
    for cmd in (["stop"], ["reload"], ["status"], ["connections"]):
        res = app.cli(*cmd)
        assert res.returncode != 0 and "not running" in res.stderr, (cmd, res)
    res = app.cli("bogus")
    assert res.returncode != 0 and "Usage" in res.stdout
