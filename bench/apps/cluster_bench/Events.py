"""Business logic of the benchmark cluster.

Every message that does not start with "!" is echoed to its sender with
`Gateway.send_to_client(client_id, message)` (the echo bench: client -> gateway -> worker ->
gateway -> client). Commands:

    !join              join group "room", answer "joined" (wsload --login '!join' --login-wait)
    !ping              answer "pong" (readiness probe: a worker is linked to the gateway)
    !burst N [MS [B]]  N x Gateway.send_to_group("room", payload), MS milliseconds apart
                       (0 = back to back, in one handler run), B-byte payloads (default 64)
                       starting with the send time (CLOCK_MONOTONIC ns, 16 hex digits: the
                       receiving wsload times each delivery); then answers "done N"

With GWB_HELLO=1, on_connect sends "hello" to the new client (wsload --login-wait without
--login holds each connection until it arrived: on_connect has run in the worker).
"""
import os
import time

import gevent

from gwgevent import Gateway

HELLO = os.environ.get("GWB_HELLO") == "1"
FILL = "abcdefghijklmnopqrstuvwxyz" * 400


def on_connect(client_id):
    if HELLO:
        Gateway.send_to_current_client("hello")


def on_message(client_id, message):
    if message[:1] != "!":
        Gateway.send_to_client(client_id, message)
        return
    words = message.split()
    cmd = words[0]
    if cmd == "!join":
        Gateway.join_group(client_id, "room")
        Gateway.send_to_current_client("joined")
    elif cmd == "!ping":
        Gateway.send_to_current_client("pong")
    elif cmd == "!burst":
        n = int(words[1])
        interval = float(words[2]) / 1000.0 if len(words) > 2 else 0.0
        fill = FILL[:max(0, (int(words[3]) if len(words) > 3 else 64) - 16)]
        monotonic_ns = time.monotonic_ns
        send = Gateway.send_to_group
        for i in range(n):
            send("room", "%016x%s" % (monotonic_ns(), fill))
            if interval and i < n - 1:
                gevent.sleep(interval)
        Gateway.send_to_current_client("done %d" % n)
