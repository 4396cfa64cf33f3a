"""Module paths from before the layer packages keep working: `import gwgevent.gateway` gives
`gwgevent.cluster.gateway` (the same module object), and so on for every moved module. One
table; installed by gwgevent/__init__.py. New code should import the new paths."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any, Dict, Optional

__all__ = ["MOVED", "install"]

#: old module path -> where it lives now
MOVED: Dict[str, str] = {
    "gwgevent.connection": "gwgevent.runtime.connection",
    "gwgevent.async_connection": "gwgevent.runtime.outbound",
    "gwgevent.tls": "gwgevent.runtime.tls",
    "gwgevent.timer": "gwgevent.runtime.timer",
    "gwgevent.worker": "gwgevent.runtime.worker",
    "gwgevent.arbiter": "gwgevent.manager.arbiter",
    "gwgevent.child": "gwgevent.manager.child",
    "gwgevent.cli": "gwgevent.manager.cli",
    "gwgevent.register": "gwgevent.cluster.register",
    "gwgevent.gateway": "gwgevent.cluster.gateway",
    "gwgevent.gateway_core": "gwgevent.cluster.gateway_core",
    "gwgevent.business_worker": "gwgevent.cluster.business_worker",
    "gwgevent.links": "gwgevent.cluster.links",
    "gwgevent.push_client": "gwgevent.api.push",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and hands back the module at its new one."""

    def __init__(self) -> None:
        self._real_specs: Dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[Any]:
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module(MOVED[spec.name])
        self._real_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        # the import system stamped the alias spec on the module: give it its own back
        real = self._real_specs.pop(module.__name__, None)
        for alias, target in MOVED.items():
            if target == module.__name__ and real is None:
                real = self._real_specs.pop(alias, None)
        if real is not None:
            module.__spec__ = real


def install() -> None:
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
