"""BusinessWorker: runs the user's Events handlers for client events forwarded by gateways.

Where PHP's worker process blocks on a slow handler, here each client's events run in a greenlet:
events of one client in order, events of different clients concurrently (bounded by
`max_concurrency`). Business code written in blocking style (PyMySQL, redis-py, requests) is
cooperative because the child is gevent-monkey-patched before the handler module is imported.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import time
import zlib
from collections import deque
from typing import Any, Callable, Dict, List, Optional

from greenlet import getcurrent

from . import api as _api
from ._version import VERSION
from .async_connection import AsyncTcpConnection, LinkEvents, keep_register_link
from .codec import register_lines
from .codec.client_id import encode_client_id
from .codec.gateway_protocol import (CMD_GET_SESSION_BY_CLIENT_ID, CMD_ON_CLOSE, CMD_ON_CONNECT,
                                     CMD_ON_MESSAGE, CMD_ON_WEBSOCKET_CONNECT, CMD_PING,
                                     CMD_SET_SESSION, CMD_WORKER_CONNECT, CMD_CLOSE_DONE,
                                     FLAG_BINARY, FLAG_BODY_IS_SCALAR, FLAG_CLOSE_ACK,
                                     encode as encode_packet, hello_max_package_size,
                                     hello_packet, long2ip, parse_hello)
from .codec.phpjson import json_encode
from .codec.phpserialize import PhpSerializeError, dumps, loads
from .connection import STATUS_ESTABLISHED, flush_pending
from .context import Context, bind, unbind
from .links import LINK_HEADROOM, GatewayLinkCodec
from .log import get_logger, log_once
from .security import check_secret_key
from .protocols import get_codec_class
from .push_client import PushTransport
from .timer import Timer
from .worker import Worker

__all__ = ["BusinessWorker"]

log = get_logger("business_worker")

REGISTER_PING_INTERVAL = 25.0
#: a handler waiting this long for a gateway to read is worth a log line
BACKPRESSURE_LOG_AFTER = 5.0
GATEWAY_RETRY_DELAY = 1.0
_EVENT_NAMES = {CMD_ON_CONNECT: "on_connect", CMD_ON_MESSAGE: "on_message",
                CMD_ON_CLOSE: "on_close", CMD_ON_WEBSOCKET_CONNECT: "on_websocket_connect"}
_CAMEL = {"on_connect": "onConnect", "on_message": "onMessage", "on_close": "onClose",
          "on_websocket_connect": "onWebSocketConnect", "on_worker_start": "onWorkerStart",
          "on_worker_stop": "onWorkerStop", "on_worker_reload": "onWorkerReload"}
_FROM_EVENT = object()   # context.old_session marker: "as decoded from the event"
_HELLO = hello_packet(VERSION)


class WorkerTransport(PushTransport):
    """The API's transport inside a BusinessWorker: commands ride the worker's own gateway
    links (batched with everything else), queries use separate cooperative sockets so a slow
    gateway answer parks only the greenlet that asked."""

    def __init__(self, bw: "BusinessWorker") -> None:
        super().__init__(bw.register_address, bw.secret_key, persistent=True)
        self.bw = bw

    def addresses(self) -> List[str]:
        return [a for a, link in self.bw.gateway_links.items()
                if link._status == STATUS_ESTABLISHED]

    def is_connected(self, address: str) -> bool:
        link = self.bw.gateway_links.get(address)
        return link is not None and link._status == STATUS_ESTABLISHED

    def send(self, address: str, packet: bytes) -> bool:
        """Queue a command on the link to `address`. Nothing is dropped for a full buffer:
        the calling handler waits until the gateway has read what is queued (back-pressure).
        False, with a log line, when the link is gone or the gateway could never take it."""
        bw = self.bw
        link = bw.gateway_links.get(address)
        if link is None or link._status != STATUS_ESTABLISHED:
            return False
        limit = bw.gateway_packet_limit.get(address)
        if limit and len(packet) > limit:
            log_once(log, "gw-too-big-" + address, "worker %s #%d: a command of %d bytes is "
                     "larger than gateway %s accepts (%d bytes, its max_package_size plus "
                     "headers); not sent", bw.name, bw.id, len(packet), address, limit,
                     interval=10.0)
            return False
        if link._out_size >= bw.send_to_gateway_buffer_size and \
                not bw._wait_for_link(address, link):
            return False
        return link._write(packet, force=True)

    def send_all(self, packet: bytes) -> None:
        for address in self.addresses():
            self.send(address, packet)

    # queries go out on other sockets: first push what this worker already queued on its links,
    # so e.g. bind_uid() followed by get_client_id_by_uid() sees the binding
    def query(self, address: str, packet: bytes) -> Any:
        flush_pending()
        return super().query(address, packet)

    def query_all(self, packet: bytes) -> Dict[str, Any]:
        flush_pending()
        return super().query_all(packet)

    def query_many(self, packets: Dict[str, bytes]) -> Dict[str, Any]:
        flush_pending()
        return super().query_many(packets)


class BusinessWorker(Worker):
    """`BusinessWorker()`: connects to every register and every gateway, runs `event_handler`."""

    _ALIASES = dict(
        Worker._ALIASES, registerAddress="register_address", eventHandler="event_handler",
        secretKey="secret_key", sendToGatewayBufferSize="send_to_gateway_buffer_size",
        gatewayConnections="gateway_links", maxConcurrency="max_concurrency",
    )

    def __init__(self, address: Optional[str] = None, **options: Any) -> None:
        self.register_address: Any = "127.0.0.1:1236"
        self.event_handler: Any = "Events"
        self.secret_key = ""
        self.send_to_gateway_buffer_size = 10240000
        #: how many client events may run at once; beyond it, reading from gateways pauses
        self.max_concurrency = 1000
        #: on_message gets 'auto' (str when valid UTF-8, else bytes), 'str' or 'bytes'
        self.message_type = "auto"
        super().__init__(None, **options)
        if address:
            log.warning("BusinessWorker listens on nothing; address %r ignored", address)
        self.gateway_links: Dict[str, AsyncTcpConnection] = {}
        self._addresses: List[str] = []
        self._register_links: List[AsyncTcpConnection] = []
        self._handlers: Dict[str, Optional[Callable]] = {}
        self._handler: Any = None
        self._queues: Dict[str, deque] = {}
        self._ready: deque = deque()
        self._active = 0
        self._paused = False
        self._session_crc: Dict[str, int] = {}
        self._gateway_cache: Dict[tuple, tuple] = {}
        self._transport: Optional[WorkerTransport] = None
        #: gateway address -> gwgevent extensions it announced on the current link (a PHP
        #: gateway announces nothing and gets nothing beyond GatewayWorker 4.x)
        self.gateway_features: Dict[str, frozenset] = {}
        #: gateway address -> largest packet its inner port accepts (from its hello)
        self.gateway_packet_limit: Dict[str, int] = {}
        self._link_waiters: Dict[str, Any] = {}   # address -> gevent Event set on drain

    # ------------------------------------------------------------ start / stop
    def _start_serving(self) -> None:
        from gevent import get_hub
        if self.send_to_gateway_buffer_size == 1048576:
            self.send_to_gateway_buffer_size = 50 * 1048576   # as GatewayWorker does
        self._hub = get_hub()
        Timer.runner = self._run_job
        check_secret_key("worker", self)
        self._transport = WorkerTransport(self)
        _api.install_transport(self._transport)
        self._handler = self._load_handler()
        for name in ("on_connect", "on_message", "on_close", "on_websocket_connect",
                     "on_worker_start", "on_worker_stop", "on_worker_reload"):
            self._handlers[name] = self._find(name)
        if self._handlers["on_message"] is None:
            log.warning("%s: event handler %r has no on_message/onMessage", self.name,
                        self.event_handler)
        # user start code first (PHP blocks here too); gateways hold clients' events meanwhile
        if self.on_worker_start is not None:
            self._call_user_sync(self.on_worker_start, self)
        if self._handlers["on_worker_start"] is not None:
            self._call_user_sync(self._handlers["on_worker_start"], self)
        self._connect_registers()

    def _load_handler(self) -> Any:
        eh = self.event_handler
        if not isinstance(eh, str):
            return eh
        module_name, _, attr = eh.partition(":")
        path = os.path.join(self.app_dir, *module_name.split(".")) + ".py"
        if os.path.exists(path):
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            if self.app_dir not in sys.path:
                sys.path.insert(0, self.app_dir)
            # compile from source, not __pycache__: the pyc check is mtime-to-the-second + size,
            # so an edit made within the same second as the last load could be missed on reload
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
            exec(code, module.__dict__)
        else:
            if self.app_dir not in sys.path:
                sys.path.insert(0, self.app_dir)
            module = importlib.import_module(module_name)
        if attr:
            return getattr(module, attr)
        # PHP style: a class named like the module (class Events in Events.py) wins
        inner = getattr(module, module_name.rsplit(".", 1)[-1], None)
        return inner if inspect.isclass(inner) else module

    def _find(self, name: str) -> Optional[Callable]:
        h = self._handler
        fn = getattr(h, name, None) or getattr(h, _CAMEL[name], None)
        return fn if callable(fn) else None

    def stop(self, graceful: bool = False) -> None:
        if self.stopping:
            return
        self.stopping = True
        for link in self._register_links:
            link.cancel()
        self._register_links = []
        self._addresses = []
        import gevent
        gevent.spawn(self._finish_and_stop)

    def _finish_and_stop(self) -> None:
        """Let running handlers finish (bounded), then drop the gateway links: gateways re-route
        this worker's clients to the others."""
        import gevent
        for link in self.gateway_links.values():
            link.pause_recv()
        deadline = 1.5
        while self._active and deadline > 0:
            gevent.sleep(0.02)
            deadline -= 0.02
        flush_pending()
        for link in list(self.gateway_links.values()):
            link.cancel()
        self.gateway_links = {}
        self._stop_event.set()

    def on_stopped(self) -> None:
        super().on_stopped()
        fn = self._handlers.get("on_worker_stop")
        if fn is not None:
            self._call_user_sync(fn, self)

    def reload(self, graceful: bool = False) -> None:
        fn = self._handlers.get("on_worker_reload")
        if fn is not None:
            import gevent
            gevent.spawn(self._call_user, fn, self)
        super().reload(graceful)

    # ------------------------------------------------------------ registers
    def _register_addresses(self) -> List[str]:
        ra = self.register_address
        return [ra] if isinstance(ra, str) else list(ra)

    def _connect_registers(self) -> None:
        text = get_codec_class("text")
        line = register_lines.worker_connect_line(self.secret_key)
        for address in self._register_addresses():
            host, _, port = address.rpartition(":")
            events = LinkEvents(on_connect=lambda c, line=line: c.send(line, raw=True),
                                on_message=self._register_message,
                                on_close=self._register_closed)
            link = AsyncTcpConnection(events, host, int(port), text)
            link.codec_class = text
            self._register_links.append(link)
            link.connect()
            if not address.startswith("127.0.0.1"):
                Timer.add(REGISTER_PING_INTERVAL, self._ping_register, (link,))

    @staticmethod
    def _ping_register(link: AsyncTcpConnection) -> None:
        link.send(register_lines.ping_line(), raw=True)

    def _register_message(self, link: AsyncTcpConnection, lines: list) -> None:
        for line in lines:
            if isinstance(line, str):
                line = line.encode()
            try:
                msg = register_lines.parse_line(line)
            except ValueError as exc:
                log.warning("worker: bad line from register %s: %s", link.address, exc)
                continue
            if msg.get("event") == "broadcast_addresses":
                self._set_addresses(register_lines.addresses_from(msg))
            else:
                log.warning("worker: unexpected event %r from register %s", msg.get("event"),
                            link.address)

    def _register_closed(self, link: AsyncTcpConnection) -> None:
        if not self.stopping:
            keep_register_link(link, "worker %s #%d" % (self.name, self.id))

    # ------------------------------------------------------------ gateways
    def _set_addresses(self, addresses: List[str]) -> None:
        """Replace the gateway list (each broadcast is the whole list) and connect to new ones.
        Links to gateways no longer listed are not closed, only not retried (as PHP)."""
        self._addresses = list(addresses)
        for address in addresses:
            if address not in self.gateway_links:
                self._connect_gateway(address)

    def _connect_gateway(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        hello = encode_packet(CMD_WORKER_CONNECT, json_encode(
            {"worker_key": "%s:%d" % (self.name, self.id), "secret_key": self.secret_key}))
        # CMD_WORKER_CONNECT is the first packet of every (re)connection
        events = LinkEvents(on_connect=lambda c: c._write(hello, force=True),
                            on_message=self._on_gateway_packets,
                            on_close=self._gateway_closed,
                            on_buffer_drain=lambda c: self._wake_link_waiters(c.address))
        link = AsyncTcpConnection(events, host, int(port), GatewayLinkCodec)
        link.max_send_buffer_size = self.send_to_gateway_buffer_size
        # a PHP gateway's events: its 10 MB client limit plus header and session; a gwgevent
        # gateway says its own limit in its hello
        link.max_package_size = link.max_package_size + LINK_HEADROOM
        self.gateway_links[address] = link
        link.connect()

    def _gateway_closed(self, link: AsyncTcpConnection) -> None:
        address = link.address
        self.gateway_features.pop(address, None)
        self.gateway_packet_limit.pop(address, None)
        self._wake_link_waiters(address)
        if self.stopping:
            return
        if address in self._addresses:
            # quiet for a gateway that restarts (or a cluster shutting down): only one that
            # stays unreachable is worth a line
            if link.failing_since and time.monotonic() - link.failing_since >= 3.0:
                log_once(log, "gateway-" + address, "worker %s #%d: cannot reach gateway %s "
                         "(%s); retrying every %.0f s", self.name, self.id, address,
                         link.connect_error, GATEWAY_RETRY_DELAY, interval=30.0)
            link.reconnect(GATEWAY_RETRY_DELAY)
        else:
            if self.gateway_links.get(address) is link:
                del self.gateway_links[address]

    # ------------------------------------------------------------ events
    def _on_gateway_packets(self, link: AsyncTcpConnection, packets: list) -> None:
        queues = self._queues
        ready = self._ready
        gateways = self._gateway_cache
        for pkt in packets:
            cmd = pkt.cmd
            if cmd == CMD_PING:
                if pkt.body:
                    self._gateway_hello(link, pkt.body)
                continue
            if cmd not in _EVENT_NAMES:
                log.warning("worker: unknown command %d from gateway %s ignored", cmd,
                            link.address)
                continue
            self.total_request += 1
            gw = gateways.get((pkt.local_ip, pkt.local_port))
            if gw is None:
                gw = self._gateway_info(pkt.local_ip, pkt.local_port)
            cid = gw[0] + "%08x" % pkt.connection_id
            q = queues.get(cid)
            if q is not None:
                q.append(pkt)    # that client's events are queued or running: keep the order
                continue
            queues[cid] = deque((pkt,))
            ready.append(cid)
        self._pump()

    def _gateway_hello(self, link: AsyncTcpConnection, body: bytes) -> None:
        """A gwgevent gateway greeted us: remember what it understands and greet it back."""
        features = parse_hello(body)
        if features:
            self.gateway_features[link.address] = features
            limit = hello_max_package_size(body)
            if limit:
                self.gateway_packet_limit[link.address] = limit
                link.max_package_size = max(link.max_package_size, limit)
            link._write(_HELLO)

    # ------------------------------------------------------------ back-pressure
    def _wait_for_link(self, address: str, link: AsyncTcpConnection) -> bool:
        """Park the calling handler until the link to `address` has drained its send buffer.
        True when it may write now, False (logged) when the link went away meanwhile. On the
        loop itself (no handler to park) the command is queued over the limit instead."""
        import gevent.event
        if getcurrent() is self._hub:
            log_once(log, "gw-over-" + address, "worker %s #%d: send buffer to gateway %s is "
                     "over its limit (%d bytes) outside a handler; queued anyway", self.name,
                     self.id, address, link._out_size, interval=10.0)
            return True
        while link._out_size >= self.send_to_gateway_buffer_size:
            if link._status != STATUS_ESTABLISHED or self.gateway_links.get(address) is not link:
                log.warning("worker %s #%d: link to gateway %s closed while a handler waited "
                            "to send; that command was not delivered", self.name, self.id,
                            address)
                return False
            event = self._link_waiters.get(address)
            if event is None:
                event = self._link_waiters[address] = gevent.event.Event()
            if not event.wait(BACKPRESSURE_LOG_AFTER):
                log_once(log, "gw-wait-" + address, "worker %s #%d: gateway %s is not reading "
                         "(%d bytes queued for it); handlers that send to it are waiting",
                         self.name, self.id, address, link._out_size, interval=10.0)
        return True

    def _wake_link_waiters(self, address: str) -> None:
        event = self._link_waiters.pop(address, None)
        if event is not None:
            event.set()

    def _gateway_info(self, ip: int, port: int) -> tuple:
        """(client_id prefix, lan ip, 'ip:port') of a gateway, computed once per gateway."""
        info = (encode_client_id(ip, port, 0)[:12], long2ip(ip), "%s:%d" % (long2ip(ip), port))
        self._gateway_cache[(ip, port)] = info
        return info

    def _pump(self) -> None:
        """Run ready clients' events in runner greenlets. One runner goes through every ready
        client; only when a handler blocks does the next runner start, so a read full of events
        costs two greenlet switches, not two per event, and a slow handler still delays
        nobody else."""
        while self._ready:
            if self._active >= self.max_concurrency:
                if not self._paused:
                    self._pause_links()
                return
            self._active += 1
            self._run_job(None, self._drain_ready, ())

    def _drain_ready(self) -> None:
        ready = self._ready
        queues = self._queues
        handle = self._handle_event
        try:
            while ready:
                cid = ready.popleft()
                q = queues[cid]
                try:
                    while q:
                        try:
                            handle(cid, q.popleft())
                        except Exception:
                            # a framework failure (not the handler's: those are caught inside)
                            # must not end this runner with other clients still in `ready`
                            log.exception("worker %s #%d: event of %s failed", self.name,
                                          self.id, cid)
                finally:
                    del queues[cid]
        finally:
            self._active -= 1
            if self._paused and self._active < self.max_concurrency // 2:
                self._resume_links()

    def _pause_links(self) -> None:
        self._paused = True
        log_once(log, "busy", "worker %s #%d: %d client events running; pausing reads from "
                 "gateways until some finish", self.name, self.id, self._active, interval=10.0)
        for link in self.gateway_links.values():
            link.pause_recv()

    def _resume_links(self) -> None:
        self._paused = False
        for link in self.gateway_links.values():
            link.resume_recv()

    def _handle_event(self, cid: str, pkt: Any) -> None:
        cmd = pkt.cmd
        gw = self._gateway_cache[(pkt.local_ip, pkt.local_port)]
        ctx = Context(cid, pkt.connection_id, gw[1], pkt.local_port, long2ip(pkt.client_ip),
                      pkt.client_port, pkt.gateway_port, None, cmd, gw[2])
        raw = pkt.ext_data
        crcs = self._session_crc
        if cmd != CMD_ON_CLOSE and cid in crcs:
            crc = zlib.crc32(raw)
            if crcs[cid] != crc:
                # the session changed since we last wrote it (another worker, or this event was
                # queued before our write landed): read the gateway's current one
                raw = self._fetch_session(ctx, raw)
                crcs[cid] = crc
        session = None
        if raw:
            session = _decode_session(raw, cid)
        ctx.session = session
        ctx.old_session = _FROM_EVENT
        ctx.session_raw = raw
        name = _EVENT_NAMES[cmd]
        fn = self._handlers.get(name)
        if cmd == CMD_ON_CLOSE and pkt.flag & FLAG_CLOSE_ACK:
            # every earlier event of this client is handled and its sends are queued on this
            # link: the gateway may now write the client's close frame behind them
            self._transport.send(gw[2], encode_packet(CMD_CLOSE_DONE, b"",
                                                      connection_id=pkt.connection_id))
        bind(ctx)
        try:
            if fn is not None:
                if cmd == CMD_ON_MESSAGE:
                    fn(cid, self._message(pkt))
                elif cmd == CMD_ON_WEBSOCKET_CONNECT:
                    fn(cid, _handshake_data(pkt))
                else:
                    fn(cid)
        except Exception:
            log.exception("worker %s #%d: %s(%s) raised; the worker goes on", self.name,
                          self.id, name, cid)
        finally:
            unbind()
        if cmd == CMD_ON_CLOSE:
            crcs.pop(cid, None)
            return
        self._write_back(ctx)

    def _message(self, pkt: Any) -> Any:
        flag = pkt.flag
        if not flag & FLAG_BODY_IS_SCALAR:
            return pkt.body_value()      # an array from a custom protocol's decode()
        body = pkt.body
        if flag & FLAG_BINARY:
            return body                  # a binary websocket frame (gwgevent gateway)
        mode = self.message_type
        if mode == "bytes":
            return body
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            if mode == "str":
                return body.decode("utf-8", "replace")
            return body

    def _fetch_session(self, ctx: Context, fallback: bytes) -> bytes:
        address = "%s:%d" % (ctx.local_ip, ctx.local_port)
        try:
            value = self._transport.query(address, encode_packet(
                CMD_GET_SESSION_BY_CLIENT_ID, b"", connection_id=ctx.connection_id))
        except Exception as exc:
            log.warning("worker: could not re-read the session of %s from %s (%s); using the "
                        "one in the event", ctx.client_id, address, exc)
            return fallback
        # the reply payload is the stored session string itself, so the query hands back the
        # session already unserialized (PHP: $_SESSION = Gateway::getSession($client_id))
        if not value:              # None: client gone; [] : no session
            return b""
        if isinstance(value, (dict, list)):
            return dumps(value)
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def _write_back(self, ctx: Context) -> None:
        """PHP writes $_SESSION back after the handler when it changed (full overwrite)."""
        session = ctx.session
        old = ctx.old_session
        if session is not None and not isinstance(session, dict):
            log.error("worker: context.session of %s must be a dict or None, not %s; not saved",
                      ctx.client_id, type(session).__name__)
            return
        if old is _FROM_EVENT:
            if session is None:
                if not ctx.session_raw:
                    return
                new_raw = b""
            else:
                new_raw = dumps(session)
                if new_raw == ctx.session_raw:
                    return
        else:
            if session == old:
                return
            new_raw = dumps(session) if session is not None else b""
        if self._transport.send(ctx.gateway_address, encode_packet(CMD_SET_SESSION, b"",
                                                       connection_id=ctx.connection_id,
                                                       ext_data=new_raw)):
            self._session_crc[ctx.client_id] = zlib.crc32(new_raw)

    # ------------------------------------------------------------ status
    def status_row(self) -> dict:
        row = super().status_row()
        row["connections"] = sum(1 for link in self.gateway_links.values()
                                 if link._status == STATUS_ESTABLISHED)
        return row

    def connection_rows(self) -> list:
        rows = []
        for address, link in self.gateway_links.items():
            if link._status != STATUS_ESTABLISHED:
                continue
            recvq, sendq = link.kernel_queues()
            rows.append({
                "pid": os.getpid(), "worker": self.name, "id": address, "transport": "tcp",
                "protocol": "GatewayProtocol", "local": link.local_address,
                "remote": address, "recv_q": recvq, "send_q": sendq,
                "bytes_read": link.bytes_read, "bytes_written": link.bytes_written,
                "status": "ESTABLISHED",
            })
        return rows


def _decode_session(raw: bytes, cid: str) -> Optional[dict]:
    try:
        value = loads(raw, allow_trailing=True)
    except PhpSerializeError as exc:
        log.warning("worker: session of %s is not PHP-serialized (%s); treated as empty", cid, exc)
        return None
    if isinstance(value, list):
        return dict(enumerate(value))
    return value if isinstance(value, dict) else None


def _handshake_data(pkt: Any) -> dict:
    data = pkt.body_value()
    if not isinstance(data, dict):
        data = {}
    for key in ("get", "server", "cookie"):
        v = data.get(key)
        if isinstance(v, list):
            data[key] = dict(enumerate(v)) if v else {}
        elif v is None:
            data[key] = {}
    return data
