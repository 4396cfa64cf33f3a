"""Workerman's camelCase spellings (`onMessage`, `maxPackageSize`, `pingInterval` ...) as
properties over gwgevent's snake_case attributes: PHP users' muscle memory works, and plain
attribute writes stay fast (no __setattr__ hook)."""
from __future__ import annotations

from typing import Any

__all__ = ["CAMEL_ALIASES", "install_aliases"]

#: camelCase (Workerman) -> snake_case attribute names accepted on every Worker
CAMEL_ALIASES = {
    "onWorkerStart": "on_worker_start", "onWorkerStop": "on_worker_stop",
    "onWorkerReload": "on_worker_reload", "onConnect": "on_connect", "onMessage": "on_message",
    "onClose": "on_close", "onError": "on_error", "onBufferFull": "on_buffer_full",
    "onBufferDrain": "on_buffer_drain", "onWebSocketConnect": "on_websocket_connect",
    "reusePort": "reuse_port", "maxSendBufferSize": "max_send_buffer_size",
    "maxPackageSize": "max_package_size", "stopTimeout": "stop_timeout",
    "gracefulTimeout": "graceful_timeout", "loopTimeout": "loop_timeout",
    "readyTimeout": "ready_timeout", "gcThreshold": "gc_threshold",
}


def _alias(snake: str) -> property:
    def get(self: Any) -> Any:
        return getattr(self, snake)

    def set_(self: Any, value: Any) -> None:
        setattr(self, snake, value)
    return property(get, set_, doc="camelCase alias of `%s`" % snake)


def install_aliases(cls: type) -> None:
    """camelCase (Workerman/GatewayWorker) names as properties over the snake_case attributes:
    PHP users' muscle memory works, and plain attribute writes stay fast (no __setattr__)."""
    for camel, snake in cls._ALIASES.items():
        if camel not in cls.__dict__:
            # type.__setattr__: a role's metaclass may give class-level writes a meaning of its
            # own (the Gateway facade's `Gateway.registerAddress = ...` configures the API)
            type.__setattr__(cls, camel, _alias(snake))
