"""Worker behaviour test app: one process per Worker, each on a port from the environment.

WText   text://   command interpreter: timers, raising/blocking callbacks, pause/resume,
                  close(data), destroy, an event log of on_connect/on_message/on_close
WCamel  text://   configured only through camelCase aliases; maxPackageSize 1024
WFlood  text://   maxSendBufferSize 256 KB, on_buffer_full/on_buffer_drain counters
WWs     websocket echo with an event log, a blocking command and a raising command
WProto  myproto:// a user protocol from Protocols/MyProto.py
"""
import gc
import json
import os

import gevent

from gwgevent import Timer, Worker, run_all


def port(name):
    return int(os.environ["GWT_PORT_" + name])


# ---------------------------------------------------------------------------- event log
events = {}     # remote port -> [event, ...]


def record(conn, what):
    events.setdefault(conn.remote_port, []).append(what)


# ---------------------------------------------------------------------------- hold/release
# "hold K" blocks its callback until another connection sends "release K": proves the process
# serves others meanwhile without relying on how long anything takes
holds = {}
paused = {}     # remote port -> paused connection


def hold(conn, key):
    import gevent.event
    ev = holds.setdefault(key, gevent.event.Event())
    released = ev.wait(10)
    conn.send("released %s %s" % (key, released))


def release(conn, key):
    import gevent.event
    holds.setdefault(key, gevent.event.Event()).set()
    conn.send("ok")


# ---------------------------------------------------------------------------- WText
text = Worker("text://127.0.0.1:%d" % port("TEXT"), name="WText", count=1)
timer_hits = {}


def text_connect(conn):
    record(conn, "connect")


def text_close(conn):
    record(conn, "close")


def text_message(conn, data):
    cmd, _, arg = data.partition(" ")
    if cmd not in ("events", "timer_hits", "timers"):
        record(conn, "message:" + data)
    if cmd == "ping":
        conn.send("pong")
    elif cmd == "echo":
        conn.send("echo:" + arg)
    elif cmd == "gc":
        conn.send(json.dumps([gc.get_threshold()[0], gc.get_freeze_count()]))
    elif cmd == "events":
        conn.send(json.dumps(events.get(int(arg), [])))
    elif cmd == "raise":
        raise RuntimeError("boom from on_message " + arg)
    elif cmd == "sleep":
        secs, tag = arg.split()
        gevent.sleep(float(secs))
        conn.send("slept " + tag)
    elif cmd == "delay":                       # Timer.delay(secs, cb, args)
        secs, tag = arg.split()
        Timer.delay(float(secs), conn.send, ("delayed " + tag,))
        conn.send("ok")
    elif cmd == "once":                        # Timer.add(..., persistent=False)
        secs, tag = arg.split()
        Timer.add(float(secs), conn.send, ("once " + tag,), persistent=False)
        conn.send("ok")
    elif cmd == "repeat":                      # Timer.repeat + Timer.delete from its callback
        secs, n = arg.split()
        state = {"k": 0}

        def tick():
            state["k"] += 1
            conn.send("tick %d" % state["k"])
            if state["k"] == int(n):
                conn.send("deleted %s" % Timer.delete(state["id"]))
        state["id"] = Timer.repeat(float(secs), tick)
        conn.send("ok")
    elif cmd == "add_delete":                  # a deleted timer never fires
        tid = Timer.add(0.1, conn.send, ("deleted timer fired!",))
        first = Timer.delete(tid)
        second = Timer.delete(tid)
        Timer.delay(0.3, conn.send, ("after",))
        conn.send("del %s %s" % (first, second))
    elif cmd == "timer_raise":                 # a raising timer keeps running
        key = arg

        def bad():
            timer_hits[key] = timer_hits.get(key, 0) + 1
            raise ValueError("timer boom " + key)
        conn.send(str(Timer.add(0.05, bad)))
    elif cmd == "timer_hits":
        conn.send(str(timer_hits.get(arg, 0)))
    elif cmd == "del":
        conn.send(str(Timer.delete(int(arg))))
    elif cmd == "timers":
        conn.send(str(Timer.count()))
    elif cmd == "hold":
        hold(conn, arg)
    elif cmd == "release":
        release(conn, arg)
    elif cmd == "pause":
        conn.pause_recv()
        paused[conn.remote_port] = conn
        conn.send("paused")
    elif cmd == "resume":                      # from another connection: resume_recv a paused one
        other = paused.pop(int(arg))
        other.send("resumed")
        other.resume_recv()
        conn.send("ok")
    elif cmd == "closeme":
        conn.close("bye " + arg)
    elif cmd == "destroy":
        conn.send("you will not see this")
        conn.destroy()
    else:
        conn.send("unknown " + data)


text.on_connect = text_connect
text.on_close = text_close
text.on_message = text_message

# ---------------------------------------------------------------------------- WCamel
camel = Worker("text://127.0.0.1:%d" % port("CAMEL"), name="WCamel", count=1)
camel_state = {"started": 0, "connects": 0, "closes": 0}


def camel_start(worker):
    camel_state["started"] += 1


def camel_connect(conn):
    camel_state["connects"] += 1


def camel_close(conn):
    camel_state["closes"] += 1


def camel_message(conn, data):
    if data == "info":
        conn.send(json.dumps({
            "worker_max_send_buffer_size": camel.max_send_buffer_size,
            "worker_max_package_size": camel.max_package_size,
            "conn_maxSendBufferSize": conn.maxSendBufferSize,
            "conn_max_send_buffer_size": conn.max_send_buffer_size,
            "conn_maxPackageSize": conn.maxPackageSize,
            "remote_port": conn.getRemotePort(), "remote_ip": conn.getRemoteIp(),
            "remote_address": conn.getRemoteAddress(), "local_port": conn.getLocalPort(),
            "camel_reads_back": [camel.onMessage is camel_message,
                                 camel.maxSendBufferSize == camel.max_send_buffer_size],
            "gc_threshold": gc.get_threshold()[0], "gc_frozen": gc.get_freeze_count(),
            **camel_state}))
    else:
        conn.send("camel:" + data)


camel.onWorkerStart = camel_start
camel.onConnect = camel_connect
camel.onMessage = camel_message
camel.onClose = camel_close
camel.gcThreshold = 12345
camel.maxSendBufferSize = 123456
camel.maxPackageSize = 1024

# ---------------------------------------------------------------------------- WFlood
flood = Worker("text://127.0.0.1:%d" % port("FLOOD"), name="WFlood", count=1)
flood.max_send_buffer_size = 256 * 1024
flood_stats = {"buffer_full": 0, "buffer_drain": 0}
CHUNK = "x" * 16383          # + "\n" = 16 KB per send


def flood_message(conn, data):
    if data == "flood":
        accepted = sends = 0
        result = True
        while sends < 4096:                    # at most 64 MB
            sends += 1
            result = conn.send(CHUNK)
            if result is not True:
                break
            accepted += len(CHUNK) + 1
            gevent.sleep(0)                    # let the loop flush what the kernel takes
        flood_stats.update(accepted=accepted, result=result, sends=sends,
                           buffered=conn.send_buffer_size, flood_port=conn.remote_port)
        # a second attempt while still full is refused too and counted
        flood_stats["second"] = conn.send(CHUNK)
        flood_stats["status_after"] = conn.status
    elif data == "stats":
        conn.send(json.dumps(dict(flood_stats, send_fail=flood.send_fail,
                                  connections=len(flood.connections))))
    elif data == "ping":
        conn.send("pong")


def flood_full(conn):
    flood_stats["buffer_full"] += 1


def flood_drain(conn):
    flood_stats["buffer_drain"] += 1


flood.on_message = flood_message
flood.on_buffer_full = flood_full
flood.on_buffer_drain = flood_drain

# ---------------------------------------------------------------------------- WWs
ws = Worker("websocket://127.0.0.1:%d" % port("WS"), name="WWs", count=1)


def ws_connect(conn):
    record(conn, "connect")


def ws_websocket_connect(conn, data):
    record(conn, "websocket_connect " + data["server"]["REQUEST_URI"])


def ws_close(conn):
    record(conn, "close")


def ws_message(conn, data):
    cmd, _, arg = data.partition(" ")
    if cmd == "events":
        conn.send(json.dumps(events.get(int(arg), [])))
        return
    record(conn, "message:" + data)
    if cmd == "sleep":
        secs, tag = arg.split()
        gevent.sleep(float(secs))
        conn.send("slept " + tag)
    elif cmd == "raise":
        raise RuntimeError("boom from websocket on_message " + arg)
    elif cmd == "hold":
        hold(conn, arg)
    elif cmd == "release":
        release(conn, arg)
    else:
        conn.send("echo:" + data)


ws.on_connect = ws_connect
ws.on_websocket_connect = ws_websocket_connect
ws.on_close = ws_close
ws.on_message = ws_message

# ---------------------------------------------------------------------------- WProto
proto = Worker("MyProto://127.0.0.1:%d" % port("PROTO"), name="WProto", count=1)
proto.on_message = lambda conn, data: conn.send("myproto:" + data)

if __name__ == "__main__":
    run_all()
