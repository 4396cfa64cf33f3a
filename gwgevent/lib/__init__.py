"""Helpers for business code running in BusinessWorker processes.

``from gwgevent.lib import Db, Redis`` (or ``from gwgevent.lib.db import Db``). The submodules
are imported on first access so a worker that only uses MySQL does not import redis-py and
vice versa.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Db", "DbConnection", "Redis", "Subscription"]

_LAZY = {
    "Db": "gwgevent.lib.db", "DbConnection": "gwgevent.lib.db",
    "Redis": "gwgevent.lib.redis", "Subscription": "gwgevent.lib.redis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'gwgevent.lib' has no attribute %r" % name)
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
