"""The chat page on http://127.0.0.1:55151/, and a same-origin websocket endpoint on /ws.

The page connects to `/ws` on whatever host and scheme it was loaded from (ws:// for http,
wss:// for https), so one page works directly on this port and behind nginx (which routes
/ws to the gateway itself, see deploy/nginx). Here, /ws is piped byte for byte to the
gateway, with X-Real-IP / X-Forwarded-For added so the gateway (which trusts 127.0.0.1, see
start_gateway.py) reports the browser's address to Events.py instead of ours.

A plain Worker on the raw `tcp` protocol: the first bytes of a connection are an HTTP request
head; a page request is answered and closed, a /ws request turns the connection into a pipe.
Enough to serve the demo; not a web server. CHAT_WEB_PORT / CHAT_GATEWAY_PORT override ports.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from gwgevent import Worker, run_all  # noqa: E402

WEB_PORT = os.environ.get("CHAT_WEB_PORT", "55151")
GATEWAY = ("127.0.0.1", int(os.environ.get("CHAT_GATEWAY_PORT", "7272")))
MAX_HEAD = 16384
FILES = {
    b"/": ("index.html", "text/html; charset=utf-8"),
    b"/index.html": ("index.html", "text/html; charset=utf-8"),
    b"/favicon.svg": ("favicon.svg", "image/svg+xml"),
    b"/favicon.ico": ("favicon.svg", "image/svg+xml"),
}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           502: "Bad Gateway"}

web = Worker("tcp://0.0.0.0:%s" % WEB_PORT, name="ChatWeb", count=1)
# this process carries the pages' piped websockets: `reload` must not restart it (that would
# drop every page); the Gateway is not reloadable for the same reason
web.reloadable = False


class _Request:
    """Per-connection state: the request head read so far, then the upstream socket."""

    __slots__ = ("head", "upstream")

    def __init__(self) -> None:
        self.head = b""
        self.upstream = None


def _response(status: int, ctype: str, body: bytes, head_only: bool = False) -> bytes:
    head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
            % (status, REASONS[status], ctype, len(body)))
    return head.encode() + (b"" if head_only else body)


def on_connect(conn):
    conn.context = _Request()


def on_message(conn, data):
    req = conn.context
    if req.upstream is not None:
        try:
            req.upstream.sendall(data)
        except OSError:
            conn.close()
        return
    req.head += data
    end = req.head.find(b"\r\n\r\n")
    if end < 0:
        if len(req.head) > MAX_HEAD:
            conn.close(_response(400, "text/plain", b"request head too long\n"), raw=True)
        return
    lines = req.head[:end].split(b"\r\n")
    rest = req.head[end + 4:]
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        conn.close(_response(400, "text/plain", b"bad request\n"), raw=True)
        return
    method, path = parts[0], parts[1].split(b"?", 1)[0]
    if path == b"/ws":
        _pipe_to_gateway(conn, req, lines, rest)
    elif method not in (b"GET", b"HEAD"):
        conn.close(_response(405, "text/plain", b"GET only\n"), raw=True)
    elif path in FILES:
        name, ctype = FILES[path]
        with open(os.path.join(HERE, "Web", name), "rb") as f:
            conn.close(_response(200, ctype, f.read(), method == b"HEAD"), raw=True)
    else:
        conn.close(_response(404, "text/plain", b"not found\n"), raw=True)


def _pipe_to_gateway(conn, req, lines, rest):
    """Forward the upgrade request with the client's address added, then pipe both ways."""
    import socket   # gevent-patched in the worker process: blocking calls park one greenlet
    import gevent
    forwarded = []
    head = [lines[0]]
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name == b"x-forwarded-for":
            forwarded.append(line.split(b":", 1)[1].strip())
        elif name != b"x-real-ip":
            head.append(line)
    ip = conn.remote_ip.encode()
    head.append(b"X-Real-IP: " + ip)
    head.append(b"X-Forwarded-For: " + b", ".join(forwarded + [ip]))
    try:
        up = socket.create_connection(GATEWAY, timeout=5)
        up.settimeout(None)
        up.sendall(b"\r\n".join(head) + b"\r\n\r\n" + rest)
    except OSError as exc:
        conn.close(_response(502, "text/plain", ("gateway unreachable: %s\n" % exc).encode()),
                   raw=True)
        return
    req.upstream = up
    gevent.spawn(_pump, up, conn)


def _pump(up, conn):
    try:
        while True:
            data = up.recv(65536)
            if not data:
                break
            conn.send(data, raw=True)
    except OSError:
        pass
    finally:
        conn.close()


def on_close(conn):
    req = conn.context
    if req is not None and req.upstream is not None:
        req.upstream.close()


web.on_connect = on_connect
web.on_message = on_message
web.on_close = on_close

if __name__ == "__main__":
    run_all()
