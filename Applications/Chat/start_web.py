"""The chat page on http://127.0.0.1:55151/ (a plain Worker with this app's own tiny HTTP
protocol, Protocols/Http.py: an example of a custom protocol found by scheme name)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from gwgevent import Worker, run_all  # noqa: E402

web = Worker("http://0.0.0.0:55151", name="ChatWeb", count=1)


def on_message(conn, request):
    path = request.get("path", "/").split("?", 1)[0]
    if path in ("/", "/index.html"):
        with open(os.path.join(HERE, "Web", "index.html"), "rb") as f:
            conn.close({"status": 200, "type": "text/html; charset=utf-8", "body": f.read()})
    else:
        conn.close({"status": 404, "type": "text/plain", "body": b"not found\n"})


web.on_message = on_message

if __name__ == "__main__":
    run_all()
