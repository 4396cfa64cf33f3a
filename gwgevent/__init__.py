"""gwgevent: GatewayWorker (PHP) rebuilt in Python on gevent.

Importing the package does not monkey-patch anything and loads nothing but this file: each
public name is imported on first use, so a Flask app doing `from gwgevent import GatewayClient`
loads the push client (plain sockets, no gevent) and not the server side. Server processes
patch themselves after fork.

Layers (imports only go down; tests/test_architecture.py checks it):
    manager/   process manager: arbiter, child life, CLI, launcher (run_all)
    cluster/   roles: Register, Gateway (+ gateway_core), BusinessWorker, link codec
    api/       the Gateway API over a transport, the push client, the static facade
    runtime/   connections on loop watchers, outbound links, TLS, timers, Worker
    protocols/ codec/   sans-IO client protocols and wire formats
    lib/       MySQL and Redis helpers for business code
"""
from __future__ import annotations

import importlib
from typing import Any

from . import _compat
from ._version import VERSION as __version__
# eager, and light (greenlet only): `import gwgevent.context` would otherwise rebind the
# package attribute `context` to the module instead of the per-event proxy
from .context import context

_compat.install()

__all__ = ["Worker", "Timer", "TcpConnection", "run_all", "runAll", "context", "Register",
           "Gateway", "BusinessWorker", "GatewayClient", "enable_metrics", "__version__"]

#: public name -> (module, attribute)
_LAZY = {
    "Worker": ("gwgevent.manager.launcher", "Worker"),   # the launcher registers run_all
    "run_all": ("gwgevent.manager.launcher", "run_all"),
    "runAll": ("gwgevent.manager.launcher", "run_all"),
    "Timer": ("gwgevent.runtime.timer", "Timer"),
    "TcpConnection": ("gwgevent.runtime.connection", "TcpConnection"),
    "Register": ("gwgevent.cluster.register", "Register"),
    "Gateway": ("gwgevent.cluster.gateway", "Gateway"),
    "BusinessWorker": ("gwgevent.cluster.business_worker", "BusinessWorker"),
    "GatewayClient": ("gwgevent.api.push", "GatewayClient"),
    "enable_metrics": ("gwgevent.manager.metrics", "enable_metrics"),
}
_ROLES = ("Register", "Gateway", "BusinessWorker")


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError("module 'gwgevent' has no attribute %r" % (name,))
    if name in _ROLES:
        importlib.import_module("gwgevent.manager.launcher")   # Role.run_all() works too
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
