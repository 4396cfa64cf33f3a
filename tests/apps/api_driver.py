"""A plain Python process (no gevent monkey patching) that drives the Gateway API through
`GatewayClient(register_address, secret_key)`.

    python api_driver.py <register ip:port> <secret_key>

Reads one JSON request per stdin line, {"op": name, "args": [...]}, and writes one JSON line
per request: {"result": ...} or {"error": "ExcType", "message": "..."}. The first line written
is {"ready": true, "patched": false, ...} once the client exists.
"""
import json
import os
import sys

REPO = os.environ.get("GWT_REPO") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, REPO)

from gwgevent import GatewayClient  # noqa: E402


def _default(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    return any(monkey.is_module_patched(m) for m in ("socket", "time", "threading", "select"))


def main() -> None:
    register, secret = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    client = GatewayClient(register, secret)
    out = sys.stdout
    out.write(json.dumps({"ready": True, "patched": _patched(), "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            result = getattr(client, req["op"])(*req.get("args", []))
            reply = {"result": result}
        except Exception as exc:
            reply = {"error": type(exc).__name__, "message": str(exc),
                     "classes": [c.__name__ for c in type(exc).__mro__]}
        out.write(json.dumps(reply, default=_default) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
