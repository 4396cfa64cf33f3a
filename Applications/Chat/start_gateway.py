"""Gateway for the Chat app: websocket clients on 7272, inner ports 2300.. for workers."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from gwgevent import Gateway, run_all  # noqa: E402

gateway = Gateway("websocket://0.0.0.0:7272")
gateway.name = "ChatGateway"
gateway.count = 2
gateway.lan_ip = "127.0.0.1"
gateway.start_port = 2300
gateway.register_address = "127.0.0.1:1236"
# the server pings every 10 s; the page answers {"type":"pong"}; silent clients are not closed
gateway.ping_interval = 10
gateway.ping_not_response_limit = 0
gateway.ping_data = '{"type":"ping"}'

if __name__ == "__main__":
    run_all()
