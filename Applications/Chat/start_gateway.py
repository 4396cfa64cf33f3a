"""Gateway for the Chat app: websocket clients on 7272, inner ports 2300.. for workers.

Browsers normally reach it through a same-origin proxy: start_web.py (the page server) or nginx
forward /ws here. Those proxies connect from 127.0.0.1, so 127.0.0.1 is a trusted proxy: the
client address Events.py sees is the browser's (from X-Real-IP / X-Forwarded-For), not the
proxy's. CHAT_* environment variables override the ports (tests, containers)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from gwgevent import Gateway, run_all  # noqa: E402

env = os.environ.get
gateway = Gateway("websocket://%s:%s" % (env("CHAT_GATEWAY_HOST", "0.0.0.0"),
                                         env("CHAT_GATEWAY_PORT", "7272")))
gateway.name = "ChatGateway"
gateway.count = 2
gateway.lan_ip = "127.0.0.1"
gateway.start_port = int(env("CHAT_GATEWAY_START_PORT", "2300"))
gateway.register_address = "127.0.0.1:%s" % env("CHAT_REGISTER_PORT", "1236")
# the server pings every 10 s; the page answers {"type":"pong"}; silent clients are not closed
gateway.ping_interval = 10
gateway.ping_not_response_limit = 0
gateway.ping_data = '{"type":"ping"}'
# comma-separated addresses/networks whose X-Real-IP / X-Forwarded-For headers are believed
gateway.trusted_proxies = [p for p in env("CHAT_TRUSTED_PROXIES", "127.0.0.1").split(",") if p]

if __name__ == "__main__":
    run_all()
