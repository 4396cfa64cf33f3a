"""GatewayClient: the Gateway API from any Python process (Flask, Django, cron, scripts).

PHP counterpart: ``GatewayClient\\Gateway`` (composer ``workerman/gatewayclient``) and
``Lib\\Gateway`` used outside a BusinessWorker. Gateway addresses come from a Register
(``worker_connect`` line, answer cached ~1 s); commands and queries go straight to the gateways'
inner ports over plain blocking TCP sockets.

No gevent needed. The stdlib ``socket``/``selectors``/``threading`` modules are looked up at call
time, so in a gevent monkey-patched process the client is cooperative automatically (create it
after patching, so its locks are gevent locks).

    from gwgevent.api.push import GatewayClient
    gw = GatewayClient('127.0.0.1:1236', secret_key='')
    gw.send_to_uid('u1', 'hello')            # or gw.sendToUid(...)
    gw.get_all_client_id_count()
"""
from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Tuple

from .errors import (GatewayClientError, GatewayTimeout, GatewayUnavailable, NoGatewayAddress,
                     RegisterRejected, RegisterUnavailable, SendIncomplete)
from .gateway_api import GatewayApi
from .phpvalues import auth_buffer, decode_reply
from ..codec.register_lines import addresses_from, parse_line, worker_connect_line

__all__ = [
    "GatewayClient", "PushTransport", "GatewayClientError", "RegisterUnavailable",
    "RegisterRejected", "GatewayUnavailable", "GatewayTimeout", "NoGatewayAddress",
    "SendIncomplete",
]

log = logging.getLogger("gwgevent.api.push")

_MAX_REGISTER_LINE = 10 * 1024 * 1024
_CONNECT_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EAGAIN}


def _split(address: str) -> Tuple[str, int]:
    host, sep, port = str(address).strip().rpartition(":")
    if not sep or not host:
        raise ValueError("bad address %r (expected 'ip:port')" % (address,))
    return host.strip("[]"), int(port)


def _close(sock: Optional[socket.socket]) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:  # pragma: no cover
            pass


class _QueryState:
    __slots__ = ("address", "out", "sent", "inbuf", "sock", "reused", "retried", "connecting",
                 "connect_deadline")

    def __init__(self, address: str, out: bytes) -> None:
        self.address = address
        self.out = out
        self.sent = 0
        self.inbuf = bytearray()
        self.sock: Optional[socket.socket] = None
        self.reused = False
        self.retried = False
        self.connecting = False
        self.connect_deadline = 0.0


_transports: "weakref.WeakSet[PushTransport]" = weakref.WeakSet()


class PushTransport:
    """:class:`gwgevent.api.gateway_api.Transport` over blocking sockets + register lookup.

    * ``addresses()``: ask the first register that answers, cache ``addresses_cache_ttl`` s
      (0 = ask every time, PHP ``addressesCacheDisable``).
    * sockets: with ``persistent`` one idle socket pool per gateway (a socket is used by one
      thread/greenlet at a time; busy -> another one is opened; dead ones are re-opened).
    * every buffer written is prefixed with the CMD_GATEWAY_CLIENT_CONNECT auth packet when
      ``secret_key`` is set (as PHP does, even on a reused socket).
    """

    def __init__(self, register_address: Any = "127.0.0.1:1236", secret_key: str = "",
                 connect_timeout: float = 3.0, read_timeout: float = 5.0,
                 persistent: bool = True, addresses_cache_ttl: float = 1.0,
                 max_idle_per_gateway: int = 16) -> None:
        if isinstance(register_address, (list, tuple)):
            registers = [str(a) for a in register_address]
        else:
            registers = [str(register_address)]
        if not registers or not all(registers):
            raise ValueError("register_address must be 'ip:port' or a list of them")
        self.registers: List[str] = registers
        self.secret_key = secret_key or ""
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.persistent = bool(persistent)
        self.addresses_cache_ttl = float(addresses_cache_ttl)
        self.max_idle_per_gateway = int(max_idle_per_gateway)
        self._reset_state()
        _transports.add(self)

    def _reset_state(self) -> None:
        self._pool: Dict[str, List[socket.socket]] = {}
        self._pool_lock = threading.Lock()
        self._addr_lock = threading.Lock()
        self._addresses: List[str] = []
        self._addresses_at = 0.0
        self._auth_key: Optional[str] = None
        self._auth = b""

    def __repr__(self) -> str:
        return "<PushTransport registers=%s persistent=%s>" % (",".join(self.registers),
                                                              self.persistent)

    # --- framing ----------------------------------------------------------------------------

    def frame(self, packet: bytes) -> bytes:
        """What goes on the socket for one request: [auth packet] + packet."""
        key = self.secret_key or ""
        if key != self._auth_key:
            self._auth = auth_buffer(key)
            self._auth_key = key
        return self._auth + packet if self._auth else packet

    # --- register ---------------------------------------------------------------------------

    def addresses(self) -> List[str]:
        ttl = self.addresses_cache_ttl
        with self._addr_lock:
            cached, at = self._addresses, self._addresses_at
        if cached and ttl > 0 and time.monotonic() - at <= ttl:
            return list(cached)
        found = self._lookup()
        with self._addr_lock:
            self._addresses, self._addresses_at = found, time.monotonic()
        if not found:
            raise NoGatewayAddress("register %s lists no gateway (no Gateway process registered "
                                   "with it)" % ",".join(self.registers))
        return list(found)

    def invalidate_addresses(self) -> None:
        with self._addr_lock:
            self._addresses, self._addresses_at = [], 0.0

    def _lookup(self) -> List[str]:
        errors: List[RegisterUnavailable] = []
        for register in self.registers:
            try:
                return self._ask_register(register)
            except RegisterUnavailable as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        cls = RegisterRejected if all(isinstance(e, RegisterRejected) for e in errors) \
            else RegisterUnavailable
        raise cls("no register answered: " + "; ".join(str(e) for e in errors))

    def _open(self, address: str, what: str, on_timeout: type, on_error: type) -> socket.socket:
        """Connect within connect_timeout; failures become the caller's exception, naming the
        address."""
        try:
            host, port = _split(address)
        except ValueError as exc:
            raise on_error(str(exc)) from None
        try:
            return socket.create_connection((host, port), timeout=self.connect_timeout)
        except socket.timeout:
            raise on_timeout("connect to %s %s timed out after %gs"
                             % (what, address, self.connect_timeout)) from None
        except OSError as exc:
            raise on_error("cannot connect to %s %s: %s"
                           % (what, address, exc.strerror or exc)) from None

    def _ask_register(self, register: str) -> List[str]:
        sock = self._open(register, "register", RegisterUnavailable, RegisterUnavailable)
        try:
            deadline = time.monotonic() + self.read_timeout
            try:
                sock.settimeout(self.read_timeout)
                sock.sendall(worker_connect_line(self.secret_key))
                buf = bytearray()
                while b"\n" not in buf:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout()
                    sock.settimeout(remaining)
                    chunk = sock.recv(65536)
                    if not chunk:
                        if not buf:
                            raise RegisterRejected(
                                "register %s closed the connection without answering "
                                "(wrong secret_key?)" % register)
                        raise RegisterUnavailable("register %s closed the connection in the "
                                                  "middle of its answer %r"
                                                  % (register, bytes(buf[:200])))
                    buf += chunk
                    if len(buf) > _MAX_REGISTER_LINE:
                        raise RegisterUnavailable("register %s answer too long" % register)
            except socket.timeout:
                raise RegisterUnavailable("no answer from register %s within %gs"
                                          % (register, self.read_timeout)) from None
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise RegisterRejected("register %s closed the connection (%s; wrong "
                                       "secret_key?)" % (register, exc.strerror or exc)) from None
            except OSError as exc:
                raise RegisterUnavailable("register %s: %s" % (register, exc.strerror or exc)) \
                    from None
            line = bytes(buf[:buf.index(b"\n") + 1])
            try:
                msg = parse_line(line)
                if not isinstance(msg, dict) or msg.get("event") != "broadcast_addresses":
                    raise ValueError("not a broadcast_addresses message")
                found = [str(a) for a in addresses_from(msg)]
            except Exception:
                raise RegisterUnavailable("unexpected answer from register %s: %r"
                                          % (register, line[:200])) from None
            return found
        finally:
            _close(sock)

    # --- sockets ----------------------------------------------------------------------------

    def _connect(self, address: str) -> socket.socket:
        sock = self._open(address, "gateway", GatewayTimeout, GatewayUnavailable)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover
            pass
        return sock

    @staticmethod
    def _alive(sock: socket.socket) -> bool:
        """An idle socket is reusable if the gateway hasn't closed it and nothing is pending."""
        try:
            sock.settimeout(0.0)
            sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return False  # b'' = closed by the gateway; unexpected bytes = out of sync

    def _take_idle(self, address: str) -> Optional[socket.socket]:
        if not self.persistent:
            return None
        with self._pool_lock:
            idle = self._pool.get(address)
            while idle:
                sock = idle.pop()
                if self._alive(sock):
                    return sock
                _close(sock)
        return None

    def _checkout(self, address: str) -> Tuple[socket.socket, bool]:
        sock = self._take_idle(address)
        if sock is not None:
            return sock, True
        return self._connect(address), False

    def _checkin(self, address: str, sock: socket.socket) -> None:
        if self.persistent:
            with self._pool_lock:
                idle = self._pool.setdefault(address, [])
                if len(idle) < self.max_idle_per_gateway:
                    idle.append(sock)
                    return
        _close(sock)

    def close(self) -> None:
        """Close every idle socket (the transport stays usable)."""
        with self._pool_lock:
            pools, self._pool = self._pool, {}
        for idle in pools.values():
            for sock in idle:
                _close(sock)

    def _after_fork(self) -> None:
        pools = self._pool
        self._reset_state()
        for idle in pools.values():
            for sock in idle:
                _close(sock)   # only this process's copy of the fd

    # --- fire and forget --------------------------------------------------------------------

    def send(self, address: str, packet: bytes) -> bool:
        """Write one command to a gateway. False (and a log line) if it can't be delivered."""
        buf = self.frame(packet)
        for attempt in (0, 1):
            try:
                sock, reused = self._checkout(address)
            except GatewayClientError as exc:
                log.warning("send to gateway failed: %s", exc)
                return False
            try:
                sock.settimeout(self.read_timeout)
                sock.sendall(buf)
            except OSError as exc:
                _close(sock)
                if reused and attempt == 0:
                    continue  # stale pooled socket: once more on a fresh connection
                log.warning("send to gateway %s failed: %s", address, exc)
                return False
            self._checkin(address, sock)
            return True
        return False  # pragma: no cover

    def send_all(self, packet: bytes) -> List[str]:
        """Write one command to every gateway; returns the addresses that did not take it."""
        return [address for address in self.addresses() if not self.send(address, packet)]

    # --- queries ----------------------------------------------------------------------------

    def query(self, address: str, packet: bytes) -> Any:
        """Send one request to one gateway and return its unserialized reply.

        Raises GatewayUnavailable (cannot connect / closed, e.g. wrong secret_key) or
        GatewayTimeout (connect_timeout / read_timeout exceeded)."""
        buf = self.frame(packet)
        for attempt in (0, 1):
            sock, reused = self._checkout(address)
            received = 0
            try:
                deadline = time.monotonic() + self.read_timeout
                sock.settimeout(self.read_timeout)
                sock.sendall(buf)
                head = self._read_exact(sock, 4, deadline, address)
                received = 4
                (length,) = struct.unpack(">I", head)
                payload = self._read_exact(sock, length, deadline, address) if length else b""
            except _Eof as eof:
                _close(sock)
                if reused and attempt == 0 and not (received or eof.got):
                    continue
                if received or eof.got:
                    raise GatewayUnavailable("gateway %s closed the connection in the middle of "
                                             "a reply" % address) from None
                raise GatewayUnavailable("gateway %s closed the connection without replying "
                                         "(wrong secret_key?)" % address) from None
            except socket.timeout:
                _close(sock)
                raise GatewayTimeout("no reply from gateway %s within %gs"
                                     % (address, self.read_timeout)) from None
            except OSError as exc:
                _close(sock)
                if reused and attempt == 0 and not received:
                    continue
                raise GatewayUnavailable("gateway %s: %s" % (address, exc.strerror or exc)) \
                    from None
            self._checkin(address, sock)
            return decode_reply(payload)
        raise GatewayUnavailable("gateway %s: connection lost" % address)  # pragma: no cover

    @staticmethod
    def _read_exact(sock: socket.socket, n: int, deadline: float, address: str) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout()
            sock.settimeout(remaining)
            chunk = sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise _Eof(len(buf))
            buf += chunk
        return bytes(buf)

    def query_all(self, packet: bytes) -> Dict[str, Any]:
        """The same request to every gateway, in parallel, one read_timeout deadline."""
        return self.query_many({address: packet for address in self.addresses()})

    def query_many(self, packets: Dict[str, bytes]) -> Dict[str, Any]:
        """One request per gateway, all in parallel (non-blocking sockets + selectors), one
        deadline. Returns {address: reply} in the order given; gateways that fail or don't
        answer in time are left out (one log line)."""
        if not packets:
            return {}
        deadline = time.monotonic() + self.read_timeout
        results: Dict[str, Any] = {}
        failures: Dict[str, str] = {}
        active: Dict[str, _QueryState] = {}
        sel = selectors.DefaultSelector()
        try:
            for address, packet in packets.items():
                st = _QueryState(address, self.frame(packet))
                self._q_start(st, sel, active, failures, deadline, reuse=True)
            while active:
                now = time.monotonic()
                if now >= deadline:
                    break
                timeout = deadline - now
                for st in active.values():
                    if st.connecting:
                        timeout = min(timeout, st.connect_deadline - now)
                for key, mask in sel.select(max(timeout, 0.0)):
                    self._q_step(key.data, mask, sel, active, results, failures, deadline)
                now = time.monotonic()
                for st in list(active.values()):
                    if st.connecting and now >= st.connect_deadline:
                        self._q_fail(st, sel, active, failures,
                                     "connect timed out after %gs" % self.connect_timeout)
        finally:
            for st in list(active.values()):
                self._q_fail(st, sel, active, failures,
                             "no reply within %gs" % self.read_timeout)
            sel.close()
        if failures:
            log.warning("query to %d of %d gateway(s) failed: %s", len(failures), len(packets),
                        "; ".join("%s %s" % kv for kv in failures.items()))
        return {address: results[address] for address in packets if address in results}

    def _q_start(self, st: _QueryState, sel, active, failures, deadline: float,
                 reuse: bool) -> None:
        sock = self._take_idle(st.address) if reuse else None
        st.reused = sock is not None
        st.sent = 0
        st.inbuf = bytearray()
        if sock is None:
            try:
                host, port = _split(st.address)
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                err = sock.connect_ex((host, port))
            except (OSError, ValueError) as exc:
                _close(sock)
                failures[st.address] = "cannot connect: %s" % (getattr(exc, "strerror", None) or exc)
                return
            if err not in _CONNECT_IN_PROGRESS:
                _close(sock)
                failures[st.address] = "cannot connect: %s" % os.strerror(err)
                return
            st.connecting = True
            st.connect_deadline = min(time.monotonic() + self.connect_timeout, deadline)
        else:
            sock.setblocking(False)
            st.connecting = False
        st.sock = sock
        sel.register(sock, selectors.EVENT_WRITE, st)
        active[st.address] = st

    @staticmethod
    def _q_drop(st: _QueryState, sel, active) -> None:
        """Take a query's socket out of the selector and close it."""
        active.pop(st.address, None)
        if st.sock is not None:
            try:
                sel.unregister(st.sock)
            except (KeyError, ValueError):
                pass
            _close(st.sock)
            st.sock = None

    def _q_fail(self, st: _QueryState, sel, active, failures, reason: str) -> None:
        self._q_drop(st, sel, active)
        failures[st.address] = reason

    def _q_retry_or_fail(self, st, sel, active, failures, deadline, reason: str) -> None:
        if st.reused and not st.retried and not st.inbuf:
            st.retried = True       # a reused idle socket went stale: one fresh attempt
            self._q_drop(st, sel, active)
            self._q_start(st, sel, active, failures, deadline, reuse=False)
            return
        self._q_fail(st, sel, active, failures, reason)

    def _q_step(self, st: _QueryState, mask: int, sel, active, results, failures,
                deadline: float) -> None:
        sock = st.sock
        if sock is None or st.address not in active:
            return
        try:
            if st.connecting:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._q_fail(st, sel, active, failures, "cannot connect: %s" % os.strerror(err))
                    return
                st.connecting = False
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:  # pragma: no cover
                    pass
            if st.sent < len(st.out):
                if mask & selectors.EVENT_WRITE:
                    st.sent += sock.send(st.out[st.sent:])
                    if st.sent >= len(st.out):
                        sel.modify(sock, selectors.EVENT_READ, st)
                return
            if mask & selectors.EVENT_READ:
                chunk = sock.recv(1 << 18)
                if not chunk:
                    self._q_retry_or_fail(
                        st, sel, active, failures, deadline,
                        "closed the connection in the middle of a reply" if st.inbuf else
                        "closed the connection without replying (wrong secret_key?)")
                    return
                st.inbuf += chunk
                if len(st.inbuf) >= 4:
                    (length,) = struct.unpack(">I", bytes(st.inbuf[:4]))
                    if len(st.inbuf) >= length + 4:
                        results[st.address] = decode_reply(bytes(st.inbuf[4:4 + length]))
                        active.pop(st.address, None)
                        sel.unregister(sock)
                        st.sock = None
                        if len(st.inbuf) == length + 4:
                            sock.setblocking(True)
                            self._checkin(st.address, sock)
                        else:
                            _close(sock)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._q_retry_or_fail(st, sel, active, failures, deadline,
                                  str(exc.strerror or exc))


class _Eof(Exception):
    def __init__(self, got: int) -> None:
        super().__init__(got)
        self.got = got


def _after_fork_in_child() -> None:
    for transport in list(_transports):
        transport._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class GatewayClient(GatewayApi):
    """The whole Gateway API (snake_case + PHP camelCase) for code outside the cluster.

    Differences from the in-worker API (as PHP GatewayClient): an invalid client_id raises
    :class:`gwgevent.codec.client_id.InvalidClientId` (``strict_client_id=True``); there is no
    current client unless called inside a BusinessWorker event.
    """

    def __init__(self, register_address: Any = "127.0.0.1:1236", secret_key: str = "",
                 connect_timeout: float = 3.0, read_timeout: float = 5.0,
                 persistent: bool = True, addresses_cache_ttl: float = 1.0, *,
                 strict_client_id: bool = True, transport: Optional[Any] = None) -> None:
        if transport is None:
            transport = PushTransport(register_address, secret_key, connect_timeout,
                                      read_timeout, persistent, addresses_cache_ttl)
        super().__init__(transport, strict_client_id=strict_client_id)

    #: broadcasts that miss a gateway raise SendIncomplete (its `failed` lists them) after
    #: every other gateway got them; False: log only, return None like PHP's Lib\Gateway
    raise_undelivered = True

    @property
    def register_address(self) -> Any:
        regs = getattr(self.transport, "registers", None)
        if regs is None:
            return None
        return regs[0] if len(regs) == 1 else list(regs)

    @property
    def secret_key(self) -> str:  # type: ignore[override]
        return getattr(self.transport, "secret_key", "") or ""

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        self.transport.secret_key = value or ""

    def addresses(self) -> List[str]:
        """Gateway inner addresses as the register reports them (cached)."""
        return self.transport.addresses()

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
