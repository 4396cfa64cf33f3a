"""Chat business logic (a port of workerman-chat's Events.php).

Runs in BusinessWorker processes. Each client's events run in order in a greenlet; blocking
calls (database, HTTP) only park that greenlet. `context.session` is this client's session
(a dict, or None), written back to the gateway automatically when it changes.
"""
import html
import json
import logging
import time

from gwgevent import Gateway, context

# under gwgevent's logger: these lines go where gwgevent's go (terminal, journal, log file)
# unless the app configures logging itself
log = logging.getLogger("gwgevent.chat")


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def on_message(client_id, message):
    try:
        data = json.loads(message)
    except ValueError:
        log.info("client %s sent something that is not JSON; ignored", client_id)
        return
    if not isinstance(data, dict):
        return
    kind = data.get("type")
    if kind == "pong":
        return
    if kind == "login":
        room_id = str(data.get("room_id") or "1")
        client_name = html.escape(str(data.get("client_name") or "guest"))
        session = context.session or {}
        session.update(room_id=room_id, client_name=client_name)
        # stored now, not at the end of the event: whoever lists the room next sees the name
        Gateway.set_session(client_id, session)
        # join before listing the room and announcing: of two clients logging in at the same
        # time (every page reconnects after a restart), each then either finds the other in
        # its list or gets the other's announcement (workerman-chat lists first and can miss)
        Gateway.join_group(client_id, room_id)
        members = Gateway.get_client_sessions_by_group(room_id)
        client_list = {cid: (s or {}).get("client_name", "") for cid, s in members.items()}
        client_list[client_id] = client_name
        new_message = {"type": "login", "client_id": client_id, "client_name": client_name,
                       "time": _now()}
        Gateway.send_to_group(room_id, json.dumps(new_message), exclude=client_id)
        # behind nginx or the page server this is the browser's address (trusted_proxies)
        log.info("%s joined room %s from %s", client_name, room_id, context.client_ip)
        new_message["client_list"] = client_list
        Gateway.send_to_current_client(json.dumps(new_message))
        return
    if kind == "say":
        session = context.session
        if not session or "room_id" not in session:
            Gateway.send_to_current_client(json.dumps({"type": "error",
                                                       "content": "login first"}))
            return
        room_id, name = session["room_id"], session["client_name"]
        content = html.escape(str(data.get("content", "")))
        target = data.get("to_client_id", "all")
        if target != "all":
            to_name = html.escape(str(data.get("to_client_name", "")))
            msg = {"type": "say", "from_client_id": client_id, "from_client_name": name,
                   "to_client_id": target, "content": "<b>to you: </b>" + content,
                   "time": _now()}
            Gateway.send_to_client(target, json.dumps(msg))
            msg["content"] = "<b>you to %s: </b>%s" % (to_name, content)
            Gateway.send_to_current_client(json.dumps(msg))
            return
        Gateway.send_to_group(room_id, json.dumps({
            "type": "say", "from_client_id": client_id, "from_client_name": name,
            "to_client_id": "all", "content": content, "time": _now()}))


def on_close(client_id):
    session = context.session
    if session and "room_id" in session:
        Gateway.send_to_group(session["room_id"], json.dumps({
            "type": "logout", "from_client_id": client_id,
            "from_client_name": session.get("client_name", ""), "time": _now()}))
