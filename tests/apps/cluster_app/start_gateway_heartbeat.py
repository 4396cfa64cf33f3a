"""Heartbeat gateways (only when GWT_HB1_PORT / GWT_HB0_PORT are set):
HB1 websocket, ping_interval=1, ping_not_response_limit=1, ping_data set;
HB0 text, ping_interval=1, ping_not_response_limit=0 (pings, never closes)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402

from gwgevent import Gateway, run_all  # noqa: E402

PING = '{"ev":"ping"}'

if _env.get("HB1_PORT"):
    hb1 = Gateway("websocket://127.0.0.1:%d" % _env.num("HB1_PORT"))
    hb1.name = "TestHeartbeat1"
    hb1.start_port = _env.num("HB1_START_PORT")
    hb1.register_address = _env.REGISTERS
    hb1.secret_key = _env.SECRET
    hb1.pingInterval = 1                 # the PHP spellings work too
    hb1.pingNotResponseLimit = 1
    hb1.pingData = PING

if _env.get("HB0_PORT"):
    hb0 = Gateway("text://127.0.0.1:%d" % _env.num("HB0_PORT"))
    hb0.name = "TestHeartbeat0"
    hb0.start_port = _env.num("HB0_START_PORT")
    hb0.register_address = _env.REGISTERS
    hb0.secret_key = _env.SECRET
    hb0.ping_interval = 1
    hb0.ping_not_response_limit = 0
    hb0.ping_data = PING

if __name__ == "__main__":
    run_all()
