"""Strict configuration for Worker objects: a misspelt option or attribute is an error with a
suggestion, not a silently ignored setting.

    gateway.pingIntervall = 10
    AttributeError: Gateway has no setting 'pingIntervall'; did you mean 'pingInterval'?

Start files set attributes after construction (`gateway.ping_interval = 10`), so the check is
a `__setattr__`. It applies to the user's Worker objects in the process that configures them;
the forked child process that serves clients switches each worker to a twin class without the
check (`fast_class`), so attribute writes on the serving path cost nothing extra.

Names starting with "_" are not checked (internal state). To keep state of your own on a
worker, subclass it: attributes set in the subclass's __init__ are known.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, FrozenSet

__all__ = ["StrictConfigMeta", "StrictConfig", "fast_class", "unknown_setting"]

_known_cache: Dict[type, FrozenSet[str]] = {}
_fast_cache: Dict[type, type] = {}


def _class_names(cls: type) -> FrozenSet[str]:
    names = _known_cache.get(cls)
    if names is None:
        names = _known_cache[cls] = frozenset(n for n in dir(cls) if not n.startswith("_"))
    return names


def unknown_setting(obj: Any, name: str) -> str:
    """The error text for `name` on `obj`, with the closest known names."""
    known = set(_class_names(type(obj)))
    known.update(n for n in vars(obj) if not n.startswith("_"))
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = "; did you mean %s?" % " or ".join(repr(c) for c in close) if close else ""
    return "%s has no setting %r%s" % (type(obj).__name__, name, hint)


class StrictConfigMeta(type):
    """Locks a worker once its whole constructor chain (subclasses included) has run."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        if getattr(obj, "register", False):          # the user's workers, not internal ones
            object.__setattr__(obj, "_config_locked", True)
        return obj


class StrictConfig:
    """Mixin: after construction, only known attribute names may be assigned."""

    _config_locked = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._config_locked and name[:1] != "_" and name not in self.__dict__ and \
                name not in _class_names(type(self)):
            raise AttributeError(unknown_setting(self, name))
        object.__setattr__(self, name, value)

    def check_options(self, options: Dict[str, Any]) -> None:
        """Constructor keyword options must be known settings too."""
        for key in options:
            if key[:1] == "_" or (key not in self.__dict__ and
                                  key not in _class_names(type(self))):
                raise TypeError(unknown_setting(self, key).replace("no setting",
                                                                    "no option", 1))


def fast_class(cls: type) -> type:
    """A subclass of `cls` with plain attribute assignment, for the serving child process."""
    fast = _fast_cache.get(cls)
    if fast is None:
        fast = type(cls)(cls.__name__, (cls,), {"__setattr__": object.__setattr__,
                                               "__module__": cls.__module__,
                                               "__qualname__": cls.__qualname__})
        _fast_cache[cls] = fast
    return fast
