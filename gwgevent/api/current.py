"""The process's Gateway API, the one `Gateway.send_to_all(...)` reaches: inside a
BusinessWorker the API over the worker's own gateway links (installed after fork), anywhere else
a push client built from :data:`config` (PHP ``Gateway::$registerAddress`` / ``$secretKey``)."""
from __future__ import annotations

import os
import threading
from typing import Any, Optional, Tuple

from .gateway_api import GatewayApi, Transport
from .push import GatewayClient

__all__ = ["config", "configure", "install_transport", "uninstall_transport", "installed_api",
           "get_api", "default_api"]


class _Config:
    """Settings of the lazily created push client (PHP Lib\\Gateway static properties)."""

    def __init__(self) -> None:
        self.register_address: Any = "127.0.0.1:1236"   # str or list of str
        self.secret_key: str = ""
        self.connect_timeout: float = 3.0
        self.read_timeout: float = 5.0
        self.persistent: bool = True
        self.addresses_cache_ttl: float = 1.0

    def key(self) -> tuple:
        reg = self.register_address
        reg = tuple(reg) if isinstance(reg, (list, tuple)) else (reg,)
        return (reg, self.secret_key, self.connect_timeout, self.read_timeout, self.persistent,
                self.addresses_cache_ttl)

    def __repr__(self) -> str:
        return "<api.config register_address=%r secret_key=%s>" % (
            self.register_address, "***" if self.secret_key else "''")


config = _Config()
_lock = threading.Lock()
_installed: Optional[GatewayApi] = None
_push: Optional[Tuple[tuple, GatewayApi]] = None


def configure(register_address: Any = None, secret_key: Optional[str] = None, **options: Any) -> None:
    """Set the push-client settings (register_address, secret_key, connect_timeout, read_timeout,
    persistent, addresses_cache_ttl). The next :func:`get_api` outside a worker uses them."""
    if register_address is not None:
        config.register_address = register_address
    if secret_key is not None:
        config.secret_key = secret_key
    for name, value in options.items():
        if not hasattr(config, name) or name.startswith("_"):
            raise TypeError("configure(): unknown option %r" % name)
        setattr(config, name, value)


def install_transport(transport: Transport, *, strict_client_id: bool = False) -> GatewayApi:
    """Bind the API of this process to a BusinessWorker transport (call after fork)."""
    global _installed
    api = GatewayApi(transport, strict_client_id=strict_client_id)
    with _lock:
        _installed = api
    return api


def uninstall_transport() -> None:
    global _installed
    with _lock:
        _installed = None


def installed_api() -> Optional[GatewayApi]:
    """The API bound to the BusinessWorker transport, or None."""
    return _installed


def get_api() -> GatewayApi:
    """The API for the static facade: the installed BusinessWorker one, else a push client built
    (once per settings) from :data:`config`."""
    global _push
    api = _installed
    if api is not None:
        return api
    key = config.key()
    cached = _push
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        if _installed is not None:
            return _installed
        if _push is not None and _push[0] == key:
            return _push[1]
        old = _push
        client = GatewayClient(config.register_address, config.secret_key,
                               connect_timeout=config.connect_timeout,
                               read_timeout=config.read_timeout, persistent=config.persistent,
                               addresses_cache_ttl=config.addresses_cache_ttl)
        _push = (key, client)
    if old is not None:
        try:
            old[1].close()
        except Exception:  # pragma: no cover
            pass
    return client


default_api = get_api


def _after_fork_in_child() -> None:
    # a push client created in the parent must not share its sockets with the child
    global _push
    _push = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
