"""TLS test app: a wss:// echo Worker (transport='ssl') with the certificate and key named in
GWT_CERT / GWT_KEY, on the port in GWT_WSS_PORT."""
import os

from gwgevent import Worker, run_all

wss = Worker("websocket://127.0.0.1:%s" % os.environ["GWT_WSS_PORT"], name="TlsEcho", count=1,
             transport="ssl", certfile=os.environ["GWT_CERT"], keyfile=os.environ["GWT_KEY"])
wss.handshake_timeout = float(os.environ.get("GWT_HANDSHAKE_TIMEOUT", "10"))


def on_message(conn, data):
    conn.websocket_type = b"\x81" if isinstance(data, str) else b"\x82"
    conn.send(data)


wss.on_message = on_message

if __name__ == "__main__":
    run_all()
