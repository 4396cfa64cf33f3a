"""Bad-input test app: one websocket echo process with a 1 s handshake timeout
(GWT_HANDSHAKE_TIMEOUT), on the port in GWT_WS_PORT."""
import os

from gwgevent import Worker, run_all

ws = Worker("websocket://127.0.0.1:%s" % os.environ["GWT_WS_PORT"], name="BadInputEcho",
            count=1)
ws.handshake_timeout = float(os.environ.get("GWT_HANDSHAKE_TIMEOUT", "10"))


def on_message(conn, data):
    conn.websocket_type = b"\x81" if isinstance(data, str) else b"\x82"
    conn.send(data)


ws.on_message = on_message

if __name__ == "__main__":
    run_all()
