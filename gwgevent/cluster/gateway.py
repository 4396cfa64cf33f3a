"""Gateway: holds the client connections, forwards their events to BusinessWorkers, and carries
out the commands workers and push clients send to its inner port.

It does only network I/O, all of it in loop callbacks (no greenlet per client, no user code on
the hot path). Events bound for one worker leave in one write per loop iteration; a broadcast
frame is encoded once and queued to each receiver, and each receiver's frames leave in one send.

`Gateway` is also the API facade: `Gateway.send_to_client(...)` and friends are static methods
that work inside a BusinessWorker and, as a push client, anywhere else (GatewayWorker spreads
these over `GatewayWorker\\Gateway` and `GatewayWorker\\Lib\\Gateway`; PHP users reach for both).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional

from .._version import VERSION
from ..api.facade import GatewayFacade, _FacadeMeta
from ..codec import register_lines
from ..codec.gateway_protocol import (CMD_CLOSE_DONE, CMD_GATEWAY_CLIENT_CONNECT, CMD_ON_CLOSE,
                                     CMD_ON_CONNECT, CMD_ON_MESSAGE, CMD_ON_WEBSOCKET_CONNECT,
                                     CMD_PING, CMD_WORKER_CONNECT, CMD_WORKER_DRAIN,
                                     CMD_WORKER_DRAINED, FEATURES,
                                     encode as encode_packet, hello_packet, parse_hello)
from ..codec.phpjson import json_decode
from ..log import get_logger
from ..runtime.badinput import LimitedLogger, peer_log
from ..protocols.websocket import WebSocketCodec
from ..runtime.connection import STATUS_ESTABLISHED, TcpConnection, write_many, write_ws_open
from ..runtime.keepalive import tune_link
from ..runtime.outbound import AsyncTcpConnection, keep_register_link
from ..runtime.strict import StrictConfigMeta
from ..runtime.timer import Timer
from ..runtime.worker import Worker
from .client_connection import ClientConnection, PausedClients
from .gateway_core import GatewayCore
from .gateway_flow import DROPPED, GatewayFlow
from .gateway_suspend import Suspension, WorkerSuspension
from .inner_guard import InnerGuard, InnerLinkCodec
from .links import LINK_HEADROOM
from .proxy import TrustedProxies, forwarded_client_ip
from .register_links import connect_registers
from .security import check_secret_key

__all__ = ["Gateway", "ClientConnection"]

log = get_logger("gateway")

ROUTER_LEAST_CONNECTIONS = 1
ROUTER_RANDOM = 2
WORKER_PING_INTERVAL = 25.0
_PING = encode_packet(CMD_PING)
_DRAIN_CMDS = frozenset((CMD_WORKER_DRAIN, CMD_WORKER_DRAINED))


class _Link:
    """State of one inner-port connection (a BusinessWorker or a push client)."""

    __slots__ = ("authorized", "worker_key", "features", "last_pong")

    def __init__(self, authorized: bool) -> None:
        self.authorized = authorized
        self.worker_key = ""
        #: gwgevent extensions the peer announced in its hello (empty for a PHP worker)
        self.features: frozenset = frozenset()
        #: when the worker last answered a ping (or greeted us)
        self.last_pong = 0.0


class _InnerServer(Worker):
    """The inner port (lan_ip:start_port+id) where workers and push clients talk to us."""
    fd_reserve = False      # its links are what the client ports' reserve is kept for
    queue_read = None       # packets are handled inline in the loop (no user code)

    __setattr__ = object.__setattr__     # internal and on the hot path: no settings check

    def __init__(self, gateway: "Gateway", host: str, port: int) -> None:
        super().__init__("tcp://%s:%d" % (host, port), name=gateway.name + " inner",
                         _register=False)
        self.gateway = gateway
        self.max_send_buffer_size = gateway.send_to_worker_buffer_size
        # a worker's commands carry client messages of up to the gateway's own limit (an echo
        # of the largest message a client may send), plus header and session
        self.max_package_size = max(int(gateway.max_package_size),
                                    TcpConnection.default_max_package_size) + LINK_HEADROOM
        self.app_dir = gateway.app_dir
        # limits for a port anyone on the LAN can open (inner_guard.py)
        self.guard = InnerGuard(gateway.inner_max_buffered)
        self.gate_first_packet = bool(gateway.secret_key)

    def _resolve_codec(self) -> Any:
        return InnerLinkCodec

    def _on_open(self, conn: TcpConnection) -> None:
        conn.context = _Link(authorized=not self.gateway.secret_key)
        tune_link(conn.sock)
        if len(self.connections) > self.gateway.inner_max_connections:
            peer_log(log, conn, "gateway %s: inner port has %d connections "
                     "(inner_max_connections); refusing %s", self.name,
                     len(self.connections) - 1, conn.remote_address, level=logging.WARNING)
            conn.destroy()

    def handle_messages(self, conn: TcpConnection, packets: list) -> None:
        self.gateway._on_inner_packets(conn, packets)

    def handle_closed(self, conn: TcpConnection) -> None:
        self.connections.pop(conn.id, None)
        conn.codec.release()
        self.gateway._on_inner_close(conn)

    def handle_buffer_drain(self, conn: TcpConnection) -> None:
        self.gateway._worker_link_drained(conn)


class _GatewayMeta(_FacadeMeta, StrictConfigMeta):
    """The Gateway is a role (strictly configured, like every Worker) and the API facade
    (class-level `Gateway.register_address = ...` configures the push client)."""


class Gateway(GatewayFlow, WorkerSuspension, Worker, GatewayFacade, metaclass=_GatewayMeta):
    """`Gateway('websocket://0.0.0.0:7272')` with GatewayWorker's properties and defaults."""

    #: client reads are handled inline in the loop: the gateway runs no user code per message
    #: (ConnectionOwner.queue_read)
    queue_read = None

    _ALIASES = dict(
        Worker._ALIASES, lanIp="lan_ip", lanPort="lan_port", startPort="start_port",
        innerTcpWorkerListen="inner_tcp_worker_listen", registerAddress="register_address",
        pingInterval="ping_interval", pingNotResponseLimit="ping_not_response_limit",
        pingData="ping_data", secretKey="secret_key",
        sendToWorkerBufferSize="send_to_worker_buffer_size",
        sendToClientBufferSize="send_to_client_buffer_size",
        protocolAccelerate="protocol_accelerate",
        onBusinessWorkerConnected="on_business_worker_connected",
        onBusinessWorkerClose="on_business_worker_close",
        trustedProxies="trusted_proxies",
    )

    ROUTER_LEAST_CONNECTIONS = ROUTER_LEAST_CONNECTIONS
    ROUTER_RANDOM = ROUTER_RANDOM
    #: one inner port per process id: a replacement cannot start before the old one has gone
    reload_overlap = False
    #: like PHP's static Gateway::$selectLoadBalancingMode
    select_load_balancing_mode = ROUTER_LEAST_CONNECTIONS

    def __init__(self, address: str = "websocket://0.0.0.0:7272", **options: Any) -> None:
        self.lan_ip = "127.0.0.1"
        self.lan_port = 0
        self.start_port = 2000
        self.inner_tcp_worker_listen = ""
        self.register_address: Any = "127.0.0.1:1236"
        self.ping_interval = 0.0
        self.ping_not_response_limit = 0
        self.ping_data: Any = ""
        self.secret_key = ""
        self.router: Optional[Callable] = None
        self.send_to_worker_buffer_size = 10240000
        self.send_to_client_buffer_size = 1024000
        self.protocol_accelerate = False
        self.on_business_worker_connected: Optional[Callable] = None
        self.on_business_worker_close: Optional[Callable] = None
        #: while no BusinessWorker is connected, hold a client's events (instead of dropping
        #: the client like GatewayWorker) up to these bounds; beyond them, drop as PHP does
        self.hold_timeout = 3.0
        self.hold_max_per_client = 64
        self.hold_max_total = 20000
        #: a gwgevent worker that has not answered pings for this long gets no new clients, and
        #: the events of its clients wait (until it answers again, or its watchdog ends it after
        #: loop_timeout) instead of piling up in a hung process, where they would be lost with
        #: it. Waiting loses nothing, so the bound is short; 0 turns the check off
        self.worker_ping_timeout = 1.0
        self.trusted_proxies = ()
        #: inner port limits (inner_guard.py): connections at once, and bytes held in
        #: incomplete packets across all of them
        self.inner_max_connections = 4096
        self.inner_max_buffered = 256 * 1048576
        super().__init__(address, **options)
        self.reloadable = False
        # child state
        self.core: Optional[GatewayCore] = None
        self.inner: Optional[_InnerServer] = None
        self.worker_conns: Dict[str, TcpConnection] = {}
        self._lc: Dict[str, int] = {}
        self._held: Dict[int, list] = {}
        self._held_total = 0
        self._hold_timer = 0
        self._deferred: List[tuple] = []
        self._register_links: List[AsyncTcpConnection] = []
        self._started_at = 0.0
        self._hello = b""
        #: worker link -> clients paused because that link's send buffer is full
        self._paused_by_link: Dict[TcpConnection, PausedClients] = {}
        #: connection id -> (client, deadline) for closes waiting on CMD_CLOSE_DONE
        self._closing: Dict[int, tuple] = {}
        self._closing_timer = 0
        #: worker key -> its suspended link and the events waiting for it (gateway_suspend.py)
        self._suspended: Dict[str, Suspension] = {}

    @property
    def trusted_proxies(self) -> Any:
        """Addresses/networks of reverse proxies whose X-Forwarded-For / X-Real-IP headers
        name the client (websocket only; see gwgevent/proxy.py); empty: headers ignored.
        Parsed when set, so a bad entry fails in the start file, not in every child."""
        return self._trusted_proxies

    @trusted_proxies.setter
    def trusted_proxies(self, value: Any) -> None:
        self._trusted = TrustedProxies(value)
        self._trusted_proxies = value

    # ------------------------------------------------------------ start / stop
    def _start_serving(self) -> None:
        from gevent import get_hub
        self._hub = get_hub()
        self._started_at = time.monotonic()
        self.lan_port = int(self.start_port) + self.id
        self.core = GatewayCore(self.lan_ip, self.lan_port, self.port,
                                log=LimitedLogger(log, "%s inner commands" % self.name))
        self.core.write_each = write_many     # broadcasts fan out without per-send layers
        if write_ws_open is not None:
            self.core.fan_out = write_ws_open     # (the C one, see GatewayCore)
            self.core.fan_out_codec = WebSocketCodec
        self.connections = self.core.connections     # one table, not two
        self.inner = _InnerServer(self, self._inner_bind_host(), self.lan_port)
        self.inner._hub = self._hub
        self._hello = hello_packet(VERSION, FEATURES, self.inner.max_package_size)
        self.inner._start_accepting()
        self._connect_registers()
        check_secret_key("gateway", self)
        if float(self.ping_interval or 0) > 0:
            period = float(self.ping_interval)
            if int(self.ping_not_response_limit or 0) > 0:
                period /= 2.0
            Timer.add(period, self._ping_tick)
        if self.lan_ip != "127.0.0.1":
            Timer.add(WORKER_PING_INTERVAL, self._ping_workers)
        if float(self.worker_ping_timeout or 0) > 0:
            Timer.add(float(self.worker_ping_timeout) / 3.0, self._check_workers_alive)
        super()._start_serving()

    def _inner_bind_host(self) -> str:
        if self.inner_tcp_worker_listen:
            return self.inner_tcp_worker_listen
        import ipaddress
        try:
            if ipaddress.ip_address(self.lan_ip).is_global:
                return "0.0.0.0"
        except ValueError:
            pass
        return self.lan_ip

    def stop(self, graceful: bool = False) -> None:
        for link in self._register_links:
            link.cancel()
        self._register_links = []
        if self.inner is not None:
            self.inner.unlisten()
            if not graceful:
                for c in list(self.inner.connections.values()):
                    c.destroy()
        super().stop(graceful)

    def _connect_registers(self) -> None:
        hello = register_lines.gateway_connect_line("%s:%d" % (self.lan_ip, self.lan_port),
                                                    self.secret_key)
        self._register_links = connect_registers(self.register_address, hello,
                                                 self._register_closed)

    def _register_closed(self, link: AsyncTcpConnection) -> None:
        if not self.stopping:
            keep_register_link(link, "gateway %s:%d" % (self.lan_ip, self.lan_port))

    # ------------------------------------------------------------ client side
    _wants_handshake_data = True   # CMD_ON_WEBSOCKET_CONNECT always carries it

    def _next_connection_id(self) -> int:
        return self.core.new_connection_id()

    def _connection_class(self) -> type:
        return ClientConnection

    def _on_open(self, conn: ClientConnection) -> None:
        conn.session = b""
        conn.uid = None
        conn.groups = None
        conn.ping_count = -1
        conn.worker_key = None
        conn.close_out = None
        conn.connect_held = False
        conn.max_send_buffer_size = self.send_to_client_buffer_size
        codec = conn.codec
        if hasattr(codec, "raw_text"):
            codec.raw_text = True   # forward bytes as received; no decode/encode round trip
        self.core.add_client(conn)
        if self.on_connect is not None:
            self._call_user(self.on_connect, conn)
        if conn.is_open:
            if self._trusted and conn.remote_ip in self._trusted and \
                    getattr(codec, "handshaking", False):
                # a proxy's client: its address arrives with the handshake headers, so the
                # workers hear of the client (CMD_ON_CONNECT) once the handshake is in
                conn.connect_held = True
            else:
                self._forward(conn, CMD_ON_CONNECT, b"")

    def handle_messages(self, conn: ClientConnection, msgs: list) -> None:
        self.total_request += len(msgs)
        conn.ping_count = -1
        key = conn.worker_key
        wc = self.worker_conns.get(key) if key is not None else None
        if wc is None or self.router is not None or self._suspended or self._held:
            forward = self._forward     # routing, holding or suspension to consider
            for msg in msgs:
                forward(conn, CMD_ON_MESSAGE, msg)
            return
        # the common case: a client already bound to a linked worker (what _forward would do,
        # without its per-message checks)
        encode = self.core.encode_event
        write = wc.write
        for msg in msgs:
            write(encode(CMD_ON_MESSAGE, conn, msg), True)
        if wc.buffer_full and conn.status == STATUS_ESTABLISHED:
            self._pause_for(wc, conn)

    def handle_handshake(self, conn: ClientConnection, data: dict) -> None:
        if conn.connect_held:
            conn.connect_held = False
            server = data.get("server") if isinstance(data, dict) else None
            ip = forwarded_client_ip(conn.remote_ip, server or {}, self._trusted)
            if ip is not None:
                conn.remote_ip = ip
                server["REMOTE_ADDR"] = ip
                self.core.forget_header(conn)
            self._forward(conn, CMD_ON_CONNECT, b"")
            if not conn.is_open:
                return
        if self.on_websocket_connect is not None:
            self._call_user(self.on_websocket_connect, conn, data)
        if conn.is_open:
            self._forward(conn, CMD_ON_WEBSOCKET_CONNECT, data)

    def handle_closed(self, conn: ClientConnection) -> None:
        core = self.core
        if core.connections.get(conn.id) is conn:
            if conn.connect_held:
                pass   # the workers never heard of this client (closed before its handshake)
            elif conn.close_out is None:
                self._forward(conn, CMD_ON_CLOSE, b"")
            else:
                self._closing.pop(conn.id, None)   # its CMD_ON_CLOSE went out already
            key = conn.worker_key
            if key is not None and key in self._lc:
                self._lc[key] -= 1
            core.remove_client(conn)
        if self.on_close is not None:
            self._call_user(self.on_close, conn)
        if self._graceful and not core.connections:
            self._stop_event.set()

    # ------------------------------------------------------------ routing
    def _route(self, conn: ClientConnection, cmd: int, body: Any) -> Optional[TcpConnection]:
        workers = self.worker_conns
        if not workers:
            return None
        if self.router is not None:
            try:
                return self.router(workers, conn, cmd, body)
            except Exception:
                log.exception("gateway: custom router failed for client %s", conn.id)
                return None
        wc = workers.get(conn.worker_key)
        if wc is not None:
            return wc
        lc = self._lc
        if Gateway.select_load_balancing_mode == ROUTER_RANDOM:
            import random
            key = random.choice(list(workers))
        else:
            key = min(lc, key=lc.__getitem__)
        conn.worker_key = key
        lc[key] += 1
        return workers[key]

    def _forward(self, conn: ClientConnection, cmd: int, body: Any) -> None:
        if conn.worker_key is DROPPED:
            return
        packet = self.core.encode_event(cmd, conn, body)
        if self._suspended and conn.worker_key in self._suspended:
            self._suspended[conn.worker_key].hold(conn, packet)
            return
        if conn.id in self._held:
            self._hold(conn, packet)
            return
        wc = self._route(conn, cmd, body)
        if wc is None:
            self._hold(conn, packet)
            return
        wc.write(packet, force=True)
        if wc.buffer_full and conn.status == STATUS_ESTABLISHED:
            self._pause_for(wc, conn)

    # ------------------------------------------------------------ inner port
    def _on_inner_packets(self, link: TcpConnection, packets: list) -> None:
        state: _Link = link.context
        if state.worker_key:
            self._handle_inner(link, state, packets)
            return
        # A push-client / query socket: handle it once every inner read of this loop iteration
        # is done. libev runs the io callbacks of one poll in reverse order, so a query that a
        # worker sent right after writing commands on its own link (bind_uid, then
        # get_client_id_by_uid; a session write-back, then the crc guard's re-read) would
        # otherwise be answered before those commands are applied.
        if not self._deferred:
            self._hub.loop.run_callback(self._run_deferred)
        self._deferred.append((link, packets))

    def _run_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for link, packets in deferred:
            if link.is_open:
                try:
                    self._handle_inner(link, link.context, packets)
                except Exception:
                    log.exception("gateway %s:%d: packets from %s failed", self.lan_ip,
                                  self.lan_port, link.remote_address)
                    link.destroy()

    def _handle_inner(self, link: TcpConnection, state: "_Link", packets: list) -> None:
        handle = self.core.handle
        reply = link.write
        authorized = state.authorized
        for pkt in packets:
            cmd = pkt.cmd
            if cmd < CMD_WORKER_CONNECT and authorized:
                handle(pkt, reply)    # GatewayWorker's commands (1-28): never close the link
                continue
            if cmd == CMD_WORKER_CONNECT:
                self._worker_connect(link, state, pkt)
            elif cmd == CMD_GATEWAY_CLIENT_CONNECT:
                self._push_client_connect(link, state, pkt)
            elif not state.authorized:
                peer_log(log, link, "gateway %s:%d: %s sent command %d without "
                         "authenticating (secret_key set); closing", self.lan_ip,
                         self.lan_port, link.remote_address, cmd, level=logging.WARNING)
                link.destroy()
                return
            elif cmd == CMD_PING:
                if pkt.body:
                    state.features = parse_hello(pkt.body)
                self._pong(link, state)
                continue
            elif cmd == CMD_CLOSE_DONE:
                self._close_done(pkt.connection_id)
            elif cmd in _DRAIN_CMDS:
                self._worker_drain(link, state, cmd)
            else:
                handle(pkt, reply)
            if not link.is_open:
                return
            authorized = state.authorized

    def _auth_body(self, link: TcpConnection, pkt: Any) -> Optional[dict]:
        data = json_decode(pkt.body)
        if not isinstance(data, dict):
            peer_log(log, link, "gateway %s:%d: %s sent a bad authentication body %r; "
                     "closing", self.lan_ip, self.lan_port, link.remote_address,
                     pkt.body[:100], level=logging.WARNING)
            link.destroy()
            return None
        if self.secret_key and data.get("secret_key") != self.secret_key:
            peer_log(log, link, "gateway %s:%d: %s sent a wrong secret_key; closing",
                     self.lan_ip, self.lan_port, link.remote_address, level=logging.WARNING)
            link.destroy()
            return None
        return data

    def _push_client_connect(self, link: TcpConnection, state: _Link, pkt: Any) -> None:
        if self._auth_body(link, pkt) is not None:
            state.authorized = True

    def _worker_connect(self, link: TcpConnection, state: _Link, pkt: Any) -> None:
        data = self._auth_body(link, pkt)
        if data is None:
            return
        key = "%s:%s" % (link.remote_ip, data.get("worker_key", ""))
        if key in self._suspended:
            self._release(key, close=True)     # its old, suspended link: replaced
        old = self.worker_conns.get(key)
        if old is not None and old is not link:
            log.warning("gateway %s:%d: worker %s connected again; closing its old link "
                        "(two BusinessWorkers with the same name on one host?)", self.lan_ip,
                        self.lan_port, key)
            old.context.worker_key = ""
            old.close()
        state.authorized = True
        state.worker_key = key
        link.max_send_buffer_size = self.send_to_worker_buffer_size
        self.worker_conns[key] = link
        self._lc[key] = 0
        link.write(self._hello)   # a gwgevent worker answers with its features; PHP ignores it
        if self.on_business_worker_connected is not None:
            self._call_user(self.on_business_worker_connected, link)
        if self._held:
            self._flush_held()

    def _on_inner_close(self, link: TcpConnection) -> None:
        state: _Link = link.context
        key = state.worker_key if state is not None else ""
        self._worker_link_drained(link)      # its paused clients go on (re-routed)
        if key:
            for cid, (conn, _) in list(self._closing.items()):
                if conn.worker_key == key:   # nobody will confirm these closes now
                    del self._closing[cid]
                    self._finish_close(conn)
        if key and self.worker_conns.get(key) is link:
            del self.worker_conns[key]
            self._lc.pop(key, None)
            if self.on_business_worker_close is not None:
                self._call_user(self.on_business_worker_close, link)
        elif key in self._suspended and self._suspended[key].link is link:
            self._suspended_link_closed(link, key)

    def _ping_workers(self) -> None:
        for link in list(self.worker_conns.values()):
            link.write(_PING)

    # ------------------------------------------------------------ heartbeat
    def _ping_tick(self) -> None:
        limit = int(self.ping_not_response_limit or 0)
        data = self.ping_data
        if data == "0" or data == b"0":
            data = None   # PHP: a falsy string disables ping data
        for conn in list(self.core.connections.values()):
            if limit > 0 and conn.ping_count >= 2 * limit:
                peer_log(log, conn, "gateway: client %s from %s sent nothing for too long; "
                         "closing it", conn.id, conn.remote_address)
                conn.destroy()
                continue
            conn.ping_count += 1
            if data:
                count = conn.ping_count
                if count == 0 or (limit > 0 and count % 2 == 1):
                    continue
                conn.send(data)

    # ------------------------------------------------------------ status
    def status_row(self) -> dict:
        row = super().status_row()
        row["listening"] = "%s (inner %s:%d)" % (self.listening, self.lan_ip, self.lan_port)
        return row
