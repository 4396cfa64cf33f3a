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
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional

from greenlet import getcurrent

from ..api import current as api_current
from .._version import VERSION
from ..codec import register_lines
from ..codec.client_id import encode_client_id
from ..codec.gateway_protocol import (CMD_CLOSE_DONE, CMD_ON_CLOSE,
                                     CMD_ON_CONNECT, CMD_ON_MESSAGE, CMD_ON_WEBSOCKET_CONNECT,
                                     CMD_PING, CMD_WORKER_CONNECT,
                                     CMD_WORKER_DRAIN, CMD_WORKER_DRAINED, FLAG_BINARY,
                                     FLAG_BODY_IS_SCALAR, FLAG_CLOSE_ACK,
                                     encode as encode_packet, hello_max_package_size,
                                     hello_packet, long2ip, parse_hello)
from ..codec.phpjson import json_encode
from ..context import by_greenlet, event_context
from ..log import get_logger, log_once
from ..runtime import notify
from ..runtime.connection import STATUS_CLOSED, STATUS_ESTABLISHED, flush_pending
from ..runtime.outbound import AsyncTcpConnection, LinkEvents, keep_register_link
from ..runtime.timer import Timer
from ..runtime.worker import Worker
from .event_routing import route_events
from .links import LINK_HEADROOM, GatewayLinkCodec
from .register_links import connect_registers
from .worker_session import FROM_EVENT, WorkerSessions, decode_session
from .worker_transport import WorkerTransport
from .security import check_secret_key

__all__ = ["BusinessWorker"]

log = get_logger("business_worker")

_client_ip = lru_cache(maxsize=4096)(long2ip)    #: dotted ip per event, no Python call
_SCALAR_BINARY = FLAG_BODY_IS_SCALAR | FLAG_BINARY

GATEWAY_RETRY_DELAY = 1.0
_EVENT_NAMES = {CMD_ON_CONNECT: "on_connect", CMD_ON_MESSAGE: "on_message",
                CMD_ON_CLOSE: "on_close", CMD_ON_WEBSOCKET_CONNECT: "on_websocket_connect"}
_CAMEL = {"on_connect": "onConnect", "on_message": "onMessage", "on_close": "onClose",
          "on_websocket_connect": "onWebSocketConnect", "on_worker_start": "onWorkerStart",
          "on_worker_stop": "onWorkerStop", "on_worker_reload": "onWorkerReload"}
_HELLO = hello_packet(VERSION)
_PONG = encode_packet(CMD_PING)
_DRAIN = encode_packet(CMD_WORKER_DRAIN)
_DRAINED = encode_packet(CMD_WORKER_DRAINED)
#: a PHP gateway never greets: once linked this long without a hello, count it as linked
HELLO_WAIT = 1.0


class BusinessWorker(WorkerSessions, Worker):
    """`BusinessWorker()`: connects to every register and every gateway, runs `event_handler`."""

    stop_order = 1

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
        # a client with an event queued or running is in _queues; its value holds the events
        # that arrived meanwhile (None until one does); _ready holds (client_id, first event)
        self._queues: Dict[str, Optional[deque]] = {}
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
        self._listed = False                      # a register sent the gateway list
        self._linked_at: Dict[str, float] = {}    # gateway address -> when its link came up
        self._ready_timer: Any = None
        self._drained: set = set()                # gateways that answered CMD_WORKER_DRAIN

    # ------------------------------------------------------------ start / stop
    def _start_serving(self) -> None:
        from gevent import get_hub
        if self.send_to_gateway_buffer_size == 1048576:
            self.send_to_gateway_buffer_size = 50 * 1048576   # as GatewayWorker does
        self._hub = get_hub()
        Timer.runner = self._run_job
        check_secret_key("worker", self)
        self._transport = WorkerTransport(self)
        api_current.install_transport(self._transport)
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
        self._ready_timer = self._hub.loop.timer(0.1, 0.1)
        self._ready_timer.start(self._check_ready)

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
        if self._ready_timer is not None:
            self._ready_timer.stop()
            self._ready_timer = None
        import gevent
        gevent.spawn(self._finish_and_stop, graceful)

    def _finish_and_stop(self, graceful: bool = False) -> None:
        """Leave without losing an event. With every gateway that announced "drain": ask it to
        route nothing more here (CMD_WORKER_DRAIN), handle everything it sent until its answer,
        then say CMD_WORKER_DRAINED behind the last reply, so it hands this worker's clients to
        the others in order. A PHP gateway knows no handshake: stop reading from it, let the
        running handlers finish and drop the link (it re-routes; events in flight are lost, as
        with GatewayWorker).

        What was received is always worked off (an overloaded worker may have seconds of it, and
        an overloaded gateway may answer late), within `graceful_timeout`. A fast stop or reload
        leaves earlier when handlers are running and nothing has moved for `stop_timeout` less
        a margin (a handler stuck in a long wait); a graceful one waits for such handlers too."""
        import gevent
        bound = float(self.graceful_timeout or 0) or float(self.stop_timeout)
        stall = None if graceful else max(0.1, float(self.stop_timeout) - 0.5)
        started = last_move = time.monotonic()
        deadline = started + bound
        mark = None
        draining = self._start_drain()
        for address, link in self.gateway_links.items():
            if address not in draining:
                link.pause_recv()
        polls = 0
        while not self._drain_complete(draining):
            now = time.monotonic()
            if not self._active:
                last_move = now        # waiting for a gateway's answer: that is no stuck handler
            elif stall is not None and polls % 50 == 0:
                progress = self._drain_progress()
                if progress != mark:
                    mark, last_move = progress, now
            polls += 1
            if now >= deadline or (stall is not None and now - last_move >= stall):
                log.warning("worker %s #%d: %d handler(s) still running and %d client(s) "
                            "waiting after %.1f s; leaving anyway", self.name, self.id,
                            self._active, len(self._ready), now - started)
                break
            gevent.sleep(0.002)
        flush_pending()
        for address, link in list(self.gateway_links.items()):
            if address in draining and link.status == STATUS_ESTABLISHED:
                link.write(_DRAINED, force=True)   # the gateway reads it after every reply
                link.close()
            else:
                link.cancel()
        while any(link.status != STATUS_CLOSED for link in draining.values()):
            if time.monotonic() >= deadline + 1.0:
                break
            gevent.sleep(0.002)
        if draining:
            log.info("worker %s #%d: drained from %d gateway(s) in %.0f ms", self.name, self.id,
                     len(draining), (time.monotonic() - started) * 1000)
        for link in self.gateway_links.values():
            link.cancel()
        self.gateway_links = {}
        self._stop_event.set()

    def _start_drain(self) -> Dict[str, AsyncTcpConnection]:
        """Send CMD_WORKER_DRAIN to every linked gateway that understands it."""
        draining = {}
        for address, link in self.gateway_links.items():
            if link.status == STATUS_ESTABLISHED and \
                    "drain" in self.gateway_features.get(address, ()):
                link.write(_DRAIN)
                draining[address] = link
        return draining

    def _drain_progress(self) -> tuple:
        """Changes while a drain gets on: events arrive, waiting ones get handled, or a gateway
        reads what we wrote. An overloaded gateway may take seconds to read our replies, and
        our CMD_WORKER_DRAIN waits behind them (in the kernel's send queue, hence TIOCOUTQ)."""
        return (self.total_request, self._active,
                len(self._ready) + sum(len(q) for q in self._queues.values() if q),
                sum(link.kernel_queues()[1] for link in self.gateway_links.values()
                    if link.status == STATUS_ESTABLISHED))

    def _drain_complete(self, draining: Dict[str, AsyncTcpConnection]) -> bool:
        """Every draining gateway has answered (or is gone) and no event is waiting or running."""
        if self._ready or self._active:
            return False
        return all(address in self._drained or link.status != STATUS_ESTABLISHED
                   for address, link in draining.items())

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

    def _connect_registers(self) -> None:
        self._register_links = connect_registers(
            self.register_address, register_lines.worker_connect_line(self.secret_key),
            self._register_closed, self._register_message)

    def _register_message(self, link: AsyncTcpConnection, lines: list) -> None:
        for line in lines:
            if isinstance(line, str):
                line = line.encode()
            try:
                msg = register_lines.parse_line(line)
            except ValueError as exc:
                log_once(log, "register-line", "worker: bad line from register %s: %s",
                         link.address, exc, burst=5)
                continue
            if msg.get("event") == "broadcast_addresses":
                self._set_addresses(register_lines.addresses_from(msg))
            else:
                log_once(log, "register-event", "worker: unexpected event %r from register %s",
                         msg.get("event"), link.address, burst=5)

    def _register_closed(self, link: AsyncTcpConnection) -> None:
        if not self.stopping:
            keep_register_link(link, "worker %s #%d" % (self.name, self.id))

    # ------------------------------------------------------------ gateways
    def _set_addresses(self, addresses: List[str]) -> None:
        """Replace the gateway list (each broadcast is the whole list) and connect to new ones.
        Links to gateways no longer listed are not closed, only not retried (as PHP)."""
        self._addresses = list(addresses)
        self._listed = True
        for address in addresses:
            if address not in self.gateway_links:
                self._connect_gateway(address)
        self._check_ready()

    def _connect_gateway(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        hello = encode_packet(CMD_WORKER_CONNECT, json_encode(
            {"worker_key": self.gateway_key, "secret_key": self.secret_key}))
        # CMD_WORKER_CONNECT is the first packet of every (re)connection
        events = LinkEvents(on_connect=lambda c: self._gateway_connected(c, hello),
                            on_message=self._on_gateway_packets,
                            on_close=self._gateway_closed,
                            on_buffer_drain=lambda c: self._transport.wake(c.address))
        link = AsyncTcpConnection(events, host, int(port), GatewayLinkCodec)
        link.max_send_buffer_size = self.send_to_gateway_buffer_size
        # a PHP gateway's events: its 10 MB client limit plus header and session; a gwgevent
        # gateway says its own limit in its hello
        link.max_package_size = link.max_package_size + LINK_HEADROOM
        self.gateway_links[address] = link
        link.connect()

    @property
    def gateway_key(self) -> str:
        """The key a gateway knows this process by: GatewayWorker's `name:id`; a reload's
        replacement adds `#generation`, so it can link while the process it replaces is still
        linked (a gateway drops the older of two links with one key)."""
        key = "%s:%d" % (self.name, self.id)
        return "%s#%d" % (key, self.generation) if self.generation else key

    def _gateway_connected(self, link: AsyncTcpConnection, hello: bytes) -> None:
        link.write(hello, force=True)
        self._linked_at[link.address] = time.monotonic()

    def _check_ready(self) -> None:
        """Tell the master we serve (notify.ready) once linked to every gateway the register
        listed: a gwgevent gateway has greeted us (it routes to us from then on), a PHP gateway
        has been linked for HELLO_WAIT."""
        if self._ready_timer is None or not self._listed:
            return
        now = time.monotonic()
        for address in self._addresses:
            link = self.gateway_links.get(address)
            if link is None or link.status != STATUS_ESTABLISHED:
                return
            if address not in self.gateway_features and \
                    now - self._linked_at.get(address, now) < HELLO_WAIT:
                return
        self._ready_timer.stop()
        self._ready_timer = None
        notify.ready()

    def _gateway_closed(self, link: AsyncTcpConnection) -> None:
        address = link.address
        self.gateway_features.pop(address, None)
        self.gateway_packet_limit.pop(address, None)
        if self._transport is not None:
            self._transport.wake(address)
        self._linked_at.pop(address, None)
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
        count, control = route_events(packets, _EVENT_NAMES, self._gateway_cache,
                                      self._gateway_info, self._queues, self._ready, deque)
        self.total_request += count
        for pkt in control:
            self._gateway_control(link, pkt)
        self._pump()

    def _gateway_control(self, link: AsyncTcpConnection, pkt: Any) -> None:
        """A gateway packet that is not a client event: ping, hello, drain answer."""
        cmd = pkt.cmd
        if cmd == CMD_PING:
            if pkt.body:
                self._gateway_hello(link, pkt.body)
            elif "pong" in self.gateway_features.get(link.address, ()):
                link.write(_PONG)       # its liveness check: this loop still runs
        elif cmd == CMD_WORKER_DRAIN and self.stopping:
            self._drained.add(link.address)     # nothing more follows on this link
        else:
            log_once(log, "gateway-command", "worker: unknown command %d from gateway %s "
                     "ignored", cmd, link.address, burst=5)

    def _gateway_hello(self, link: AsyncTcpConnection, body: bytes) -> None:
        """A gwgevent gateway greeted us: remember what it understands and greet it back."""
        features = parse_hello(body)
        if features:
            self.gateway_features[link.address] = features
            limit = hello_max_package_size(body)
            if limit:
                self.gateway_packet_limit[link.address] = limit
                link.max_package_size = max(link.max_package_size, limit)
            link.write(_HELLO)
            self._check_ready()

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
                cid, pkt = ready.popleft()
                try:
                    while True:
                        try:
                            handle(cid, pkt)
                        except Exception:
                            # a framework failure (not the handler's: those are caught inside)
                            # must not end this runner with other clients still in `ready`
                            log.exception("worker %s #%d: event of %s failed", self.name,
                                          self.id, cid)
                        q = queues[cid]     # events of this client that came meanwhile
                        if not q:
                            break
                        pkt = q.popleft()
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
        raw = pkt.ext_data
        ctx = event_context(cid, pkt.connection_id, gw[1], pkt.local_port,
                            _client_ip(pkt.client_ip), pkt.client_port, pkt.gateway_port, gw[1],
                            None, FROM_EVENT, raw, cmd, gw[2])
        crcs = self._session_crc
        if cmd != CMD_ON_CLOSE and cid in crcs:
            crc = zlib.crc32(raw)
            if crcs[cid] != crc:
                # the session changed since we last wrote it (another worker, or this event was
                # queued before our write landed): read the gateway's current one
                raw = ctx.session_raw = self._fetch_session(ctx, raw)
                crcs[cid] = crc
        if raw:
            ctx.session = decode_session(raw, cid)
        name = _EVENT_NAMES[cmd]
        fn = self._handlers.get(name)
        if cmd == CMD_ON_CLOSE and pkt.flag & FLAG_CLOSE_ACK:
            # every earlier event of this client is handled and its sends are queued on this
            # link: the gateway may now write the client's close frame behind them
            self._transport.send(gw[2], encode_packet(CMD_CLOSE_DONE, b"",
                                                      connection_id=pkt.connection_id))
        me = getcurrent()
        by_greenlet[me] = ctx       # context.bind(ctx), inline: once per event
        try:
            if fn is not None:
                if cmd == CMD_ON_MESSAGE:
                    if pkt.flag & _SCALAR_BINARY == FLAG_BODY_IS_SCALAR \
                            and self.message_type == "auto":
                        # the usual message: text from a websocket (else bytes, see _message)
                        try:
                            msg = pkt.body.decode()
                        except UnicodeDecodeError:
                            msg = pkt.body
                    else:
                        msg = self._message(pkt)
                    fn(cid, msg)
                elif cmd == CMD_ON_WEBSOCKET_CONNECT:
                    fn(cid, _handshake_data(pkt))
                else:
                    fn(cid)
        except Exception:
            log.exception("worker %s #%d: %s(%s) raised; the worker goes on", self.name,
                          self.id, name, cid)
        finally:
            by_greenlet.pop(me, None)
        if cmd == CMD_ON_CLOSE:
            crcs.pop(cid, None)
            return
        if ctx.session is not None or ctx.session_raw or ctx.old_session is not FROM_EVENT:
            self._write_back(ctx)   # (nothing to write back for a client without a session)

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

    # ------------------------------------------------------------ status
    def status_row(self) -> dict:
        row = super().status_row()
        row["connections"] = sum(1 for link in self.gateway_links.values()
                                 if link.status == STATUS_ESTABLISHED)
        return row

    def connection_rows(self) -> list:
        rows = []
        for address, link in self.gateway_links.items():
            if link.status != STATUS_ESTABLISHED:
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
