"""CLI test app: a websocket echo Worker (count=2, reloadable unless GWT_WS_RELOADABLE=0) whose
reply format comes from cli_handler.py, imported in on_worker_start (after fork, so a reload
picks up an edited file), plus a non-reloadable text echo Worker (count=1).

Ports come from the environment (GWT_WS_PORT, GWT_TXT_PORT) so parallel runs never collide.
"""
import os
import sys

from gwgevent import Worker, run_all

HERE = os.path.dirname(os.path.abspath(__file__))

echo = Worker("websocket://127.0.0.1:%s" % os.environ["GWT_WS_PORT"], name="CliEcho", count=2)
echo.reloadable = os.environ.get("GWT_WS_RELOADABLE", "1") == "1"
handler = None


def echo_start(worker):
    global handler
    sys.path.insert(0, HERE)
    import cli_handler
    handler = cli_handler


def echo_message(conn, data):
    conn.send(handler.reply(echo, conn, data))


echo.on_worker_start = echo_start
echo.on_message = echo_message

text = Worker("text://127.0.0.1:%s" % os.environ["GWT_TXT_PORT"], name="CliText", count=1)
text.reloadable = False
reloads = [0]


def text_reload(worker):
    reloads[0] += 1


def text_message(conn, data):
    if data == "reloads":
        conn.send(str(reloads[0]))
    elif data == "whoami":
        conn.send("%d:%d" % (os.getpid(), text.id))
    else:
        conn.send("txt:" + data)


text.on_worker_reload = text_reload
text.on_message = text_message

if __name__ == "__main__":
    run_all()
