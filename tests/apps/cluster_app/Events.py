"""Business logic of the test cluster: a small command protocol so a test can drive every
Gateway API method from inside a BusinessWorker.

A client sends JSON {"op": ..., "args": [...], "id": n}; the worker answers the current client
with {"ev": "result", "id": n, "pid": <worker pid>, "behaviour": BEHAVIOUR, "result": ...} (or
"error": "ExcType: text"). Op "api" returns an API result as JSON, "api_repr" as its repr(). on_connect answers {"ev": "hello", "client_id", "pid", ...}.
Anything that is not such a JSON object is answered {"ev": "echo", "data": message}.
"""
import json
import os
import time

import gevent

from gwgevent import Gateway, context

BEHAVIOUR = "v1"   # the reload test edits this line


def _default(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _reply(obj):
    obj["pid"] = os.getpid()
    obj["behaviour"] = BEHAVIOUR
    Gateway.send_to_current_client(json.dumps(obj, default=_default))


def on_connect(client_id):
    _reply({"ev": "hello", "client_id": client_id, "gateway_port": context.gateway_port,
            "local_port": context.local_port, "client_ip": context.client_ip})


if os.environ.get("GWT_REPORT_WS_CONNECT"):
    def on_websocket_connect(client_id, data):
        # only when asked: other tests count the messages a fresh client gets
        _reply({"ev": "ws_connect", "remote_addr": data["server"]["REMOTE_ADDR"],
                "client_ip": context.client_ip})


def _session_put(key, value):
    session = context.session
    if session is None:
        context.session = {key: value}
    else:
        session[key] = value          # in-place change: must be written back too
    return context.session


def _run(op, args):
    if op == "api":
        name, rest = args[0], args[1:]
        return getattr(Gateway, name)(*rest)
    if op == "api_repr":
        # repr() of the result: JSON would turn every dict key into a string, and a test may
        # need to see whether a key is 42 or '42' (read back with ast.literal_eval)
        name, rest = args[0], args[1:]
        return repr(getattr(Gateway, name)(*rest))
    if op == "batch":
        # several API calls in one handler: [[method, arg, ...], ...] -> [result, ...]
        return [getattr(Gateway, call[0])(*call[1:]) for call in args]
    if op == "echo":
        return args
    if op == "sleep":
        seconds, how = args[0], (args[1] if len(args) > 1 else "gevent")
        if how == "time":
            time.sleep(seconds)        # monkey-patched in the worker: cooperative
        else:
            gevent.sleep(seconds)
        return args
    if op == "db_sleep":
        # a slow query through the MySQL helper (config from env GW_DB_CLUSTER_URL)
        from gwgevent.lib.db import Db
        return Db.instance("cluster").single("SELECT SLEEP(?)", [args[0]])
    if op == "session":
        return context.session
    if op == "session_put":
        return _session_put(args[0], args[1])
    if op == "session_assign":
        context.session = args[0]
        return context.session
    if op == "spin":
        while True:            # a handler that never yields: the watchdog's case
            pass
    if op == "busy":
        end = time.monotonic() + args[0]
        while time.monotonic() < end:   # holds the worker's loop (no yield) for a while
            pass
        return args
    if op == "context":
        return {"client_id": context.client_id, "server": context.server,
                "client_ip": context.client_ip}
    raise ValueError("unknown op %r" % (op,))


def on_message(client_id, message):
    try:
        req = json.loads(message)
    except ValueError:
        req = None
    if not isinstance(req, dict) or "op" not in req:
        _reply({"ev": "echo", "data": message})
        return
    out = {"ev": "result", "id": req.get("id"), "op": req["op"]}
    try:
        out["result"] = _run(req["op"], req.get("args") or [])
    except Exception as exc:
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
    _reply(out)


def on_close(client_id):
    pass
