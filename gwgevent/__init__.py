"""gwgevent: GatewayWorker (PHP) rebuilt in Python on gevent.

Importing the package does not monkey-patch anything, so the push client (`GatewayClient`) can be
used from plain Flask/Django/cron code. Server processes patch themselves after fork.
"""
from __future__ import annotations

from typing import Any

from .manager.launcher import run_all
from .runtime.connection import TcpConnection
from .context import context
from .runtime.timer import Timer
from ._version import VERSION as __version__
from .runtime.worker import Worker

runAll = run_all

__all__ = ["Worker", "Timer", "TcpConnection", "run_all", "runAll", "context", "Register",
           "Gateway", "BusinessWorker", "GatewayClient", "__version__"]


def __getattr__(name: str) -> Any:
    # the roles and the push client load lazily: a Flask app importing GatewayClient should not
    # pay for the server side, and the server side should not import what it does not run
    if name == "Register":
        from .cluster.register import Register
        return Register
    if name == "Gateway":
        from .cluster.gateway import Gateway
        return Gateway
    if name == "BusinessWorker":
        from .cluster.business_worker import BusinessWorker
        return BusinessWorker
    if name == "GatewayClient":
        from .api.push import GatewayClient
        return GatewayClient
    raise AttributeError("module 'gwgevent' has no attribute %r" % (name,))
