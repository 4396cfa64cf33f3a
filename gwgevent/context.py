"""Per-event context of a BusinessWorker, local to the greenlet running the handler.

PHP keeps this in globals ($_SERVER, $_SESSION, Context::$client_id) because one process runs one
event at a time. Here events of different clients run concurrently in greenlets, so each handler
greenlet carries its own Context; `current()` finds it. Timers and greenlets spawned by user code
have no context (as in PHP, where Context is cleared after each event).
"""
from __future__ import annotations

from typing import Any, Optional

from greenlet import getcurrent

from . import accel

__all__ = ["Context", "current", "bind", "unbind", "context", "by_greenlet", "event_context",
           "py_event_context", "EVENT_FIELDS"]


class Context:
    """What PHP spreads over $_SERVER, $_SESSION and Lib\\Context for one client event."""

    __slots__ = (
        "client_id", "connection_id", "local_ip", "local_port", "client_ip", "client_port",
        "gateway_port", "gateway_addr", "session", "old_session", "session_raw", "cmd",
        "gateway_address",
    )

    def __init__(self, client_id: str = "", connection_id: int = 0, local_ip: str = "",
                 local_port: int = 0, client_ip: str = "", client_port: int = 0,
                 gateway_port: int = 0, session: Optional[dict] = None, cmd: int = 0,
                 gateway_address: Optional[str] = None) -> None:
        self.client_id = client_id
        self.connection_id = connection_id
        self.local_ip = local_ip          # gateway lan ip (dotted)
        self.local_port = local_port      # gateway inner (lan) port
        self.client_ip = client_ip        # client remote ip (dotted)
        self.client_port = client_port
        self.gateway_port = gateway_port  # gateway public port
        self.gateway_addr = local_ip
        #: 'lan_ip:lan_port' of the gateway holding the client (where commands go)
        self.gateway_address = gateway_address or "%s:%d" % (local_ip, local_port)
        self.session = session
        self.old_session = session
        self.session_raw = b""
        self.cmd = cmd

    @property
    def server(self) -> dict:
        """PHP's replaced $_SERVER for the event."""
        return {
            "REMOTE_ADDR": self.client_ip, "REMOTE_PORT": self.client_port,
            "GATEWAY_ADDR": self.local_ip, "GATEWAY_PORT": self.gateway_port,
            "GATEWAY_CLIENT_ID": self.client_id,
        }


#: the fields of `event_context`, in its argument order
EVENT_FIELDS = ("client_id", "connection_id", "local_ip", "local_port", "client_ip",
                "client_port", "gateway_port", "gateway_addr", "session", "old_session",
                "session_raw", "cmd", "gateway_address")


def py_event_context(client_id: str, connection_id: int, local_ip: str, local_port: int,
                     client_ip: str, client_port: int, gateway_port: int, gateway_addr: str,
                     session: Optional[dict], old_session: Any, session_raw: bytes, cmd: int,
                     gateway_address: str) -> Context:
    """The Context of one client event, every field given (`EVENT_FIELDS`). The BusinessWorker
    makes one per event, so with the C speedups this is a maker that fills the slots without
    a Python __init__ (`event_context`); this is the reference."""
    ctx = Context(client_id, connection_id, local_ip, local_port, client_ip, client_port,
                  gateway_port, session, cmd, gateway_address)
    ctx.gateway_addr = gateway_addr
    ctx.old_session = old_session
    ctx.session_raw = session_raw
    return ctx


event_context = py_event_context if accel.speedups is None else \
    accel.speedups.slot_maker(Context, EVENT_FIELDS)

#: greenlet -> the Context of the event it handles. `current()`, `bind()` and `unbind()` are
#: the API; the BusinessWorker and the Gateway API use the dict directly on their per-event
#: paths (a Python call less each, per message)
by_greenlet: "dict[Any, Context]" = {}


def current() -> Optional[Context]:
    """The context of the event the calling greenlet is handling, or None."""
    return by_greenlet.get(getcurrent())


def bind(ctx: Context) -> None:
    by_greenlet[getcurrent()] = ctx


def unbind() -> None:
    by_greenlet.pop(getcurrent(), None)


class _ContextProxy:
    """`from gwgevent import context; context.session['x'] = 1` reads the current event's context."""

    def __getattr__(self, name: str) -> Any:
        ctx = current()
        if ctx is None:
            if name == "session":
                return None
            raise RuntimeError("no client context here: context is only set while a "
                               "BusinessWorker handles a client event (not in timers)")
        return getattr(ctx, name)

    def __setattr__(self, name: str, value: Any) -> None:
        ctx = current()
        if ctx is None:
            raise RuntimeError("no client context here: context is only set while a "
                               "BusinessWorker handles a client event (not in timers)")
        setattr(ctx, name, value)

    def __bool__(self) -> bool:
        return current() is not None


context = _ContextProxy()
