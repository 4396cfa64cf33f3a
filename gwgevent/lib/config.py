"""Named-config lookup shared by the Db and Redis helpers.

GatewayWorker reads `Config\\Db::$<name>` arrays. Here a name resolves, in this order, to:

1. a dict registered with ``configure({name: {...}})`` (newest registration wins),
2. an attribute ``<name>`` of an object/module registered with ``configure(module)``
   (the PHP ``Config\\Db`` class translated: ``default = {'host': ..., ...}``),
3. the environment variable ``GW_<KIND>_<NAME>_URL`` (``GW_DB_DEFAULT_URL``,
   ``GW_REDIS_CACHE_URL``...), so deployments can point workers at servers without code.

A config value may be a dict or a URL string; a dict may itself carry a ``url`` key whose
fields are overridden by the dict's other keys. The lookup is done lazily (at first
``instance()``) so configuration registered in ``on_worker_start`` is seen.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["ConfigError", "ConfigRegistry", "env_var_name", "parse_mysql_url"]

ConfigValue = Union[str, Mapping[str, Any]]


class ConfigError(LookupError):
    """A named config is missing or malformed (the message says which name and where we looked)."""


def env_var_name(kind: str, name: str) -> str:
    """``GW_<KIND>_<NAME>_URL`` with the name upper-cased and non-alphanumerics turned to ``_``."""
    return "GW_%s_%s_URL" % (kind.upper(), re.sub(r"[^0-9A-Za-z]", "_", name).upper())


class ConfigRegistry:
    """Where one helper (Db or Redis) finds its named configs; see the module docstring."""

    def __init__(self, kind: str) -> None:
        self.kind = kind                      # 'Db' / 'Redis': used in messages and env var names
        self._dicts: Dict[str, ConfigValue] = {}
        self._objects: List[Any] = []

    def configure(self, config: Any = None, **named: ConfigValue) -> None:
        """Register ``{name: config}`` (dict), an object/module with one attribute per name,
        and/or ``name=config`` keywords. Later registrations win over earlier ones."""
        if config is not None:
            if isinstance(config, Mapping):
                for key, value in config.items():
                    self._check_value(str(key), value)
                    self._dicts[str(key)] = value
            else:
                self._objects.insert(0, config)
        for key, value in named.items():
            self._check_value(key, value)
            self._dicts[key] = value

    def clear(self) -> None:
        """Forget every registration (tests; env vars are still consulted)."""
        self._dicts.clear()
        self._objects.clear()

    def _check_value(self, name: str, value: Any) -> None:
        if not isinstance(value, (str, Mapping)):
            raise ConfigError("%s config %r must be a dict or a URL string, got %s"
                              % (self.kind, name, type(value).__name__))

    def lookup(self, name: str) -> Tuple[ConfigValue, str]:
        """(raw config, human description of where it came from) or ConfigError."""
        if name in self._dicts:
            return self._dicts[name], "%s.configure()" % self.kind
        for obj in self._objects:
            value = getattr(obj, name, None)
            if value is not None:
                self._check_value(name, value)
                where = getattr(obj, "__name__", None) or type(obj).__name__
                return value, "%s.%s" % (where, name)
        var = env_var_name(self.kind, name)
        url = os.environ.get(var)
        if url:
            return url, "env %s" % var
        raise ConfigError(
            "%s config %r not found: not registered with %s.configure({%r: {...}}) or a "
            "configured module attribute, and env %s is not set"
            % (self.kind, name, self.kind, name, var))


def _num(value: Any, cast: type, key: str, name: str) -> Any:
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise ConfigError("Db config %r: %s=%r is not a valid %s"
                          % (name, key, value, cast.__name__)) from None


_BOOL_TRUE = {"1", "true", "yes", "on", "required"}


def parse_mysql_url(url: str, name: str = "") -> Dict[str, Any]:
    """``mysql://user:pass@host:3306/dbname?charset=utf8mb4&pool_size=20`` -> config dict.

    Accepted schemes: mysql, mariadb, mysql+pymysql. Query keys: charset, pool_size,
    wait_timeout, connect_timeout, read_timeout, write_timeout, ssl (1/true), ssl_ca,
    ssl_cert, ssl_key. User and password are percent-decoded.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ConfigError("Db config %r: URL scheme must be mysql:// (got %r)" % (name, url))
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("Db config %r: bad port in URL %r" % (name, url)) from None
    cfg: Dict[str, Any] = {
        "host": unquote(parts.hostname or "127.0.0.1"),
        "port": port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "dbname": unquote(parts.path.lstrip("/")) or None,
    }
    ssl: Dict[str, Any] = {}
    for key, value in parse_qsl(parts.query):
        if key in ("pool_size",):
            cfg[key] = _num(value, int, key, name)
        elif key in ("wait_timeout", "connect_timeout", "read_timeout", "write_timeout"):
            cfg[key] = _num(value, float, key, name)
        elif key == "ssl":
            if value.lower() in _BOOL_TRUE:
                cfg["ssl"] = True
        elif key in ("ssl_ca", "ssl_cert", "ssl_key"):
            ssl[key[4:]] = value
        elif key == "charset":
            cfg["charset"] = value
        else:
            raise ConfigError("Db config %r: unknown URL option %r in %r" % (name, key, url))
    if ssl:
        cfg["ssl"] = ssl
    return cfg


def merge_url(value: ConfigValue, parse: Any, name: str) -> Dict[str, Any]:
    """A config value (URL or dict, dict may hold 'url') -> plain dict via `parse(url, name)`."""
    if isinstance(value, str):
        return parse(value, name)
    cfg = dict(value)
    url = cfg.pop("url", None)
    if url:
        base = parse(url, name)
        base.update(cfg)
        return base
    return cfg


def opt(cfg: Mapping[str, Any], *keys: str, default: Optional[Any] = None) -> Any:
    """First present key among synonyms (PHP 'dbname' vs 'db_name' vs 'database')."""
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    return default


class NamedInstances:
    """Per-process cache of named clients built from a ConfigRegistry (Db, Redis share it).

    Subclasses set `_registry`, `_instances` and `_pid`, and say how to let go of one client in
    `_release`. After a fork the child drops (never closes) the parent's clients: the sockets
    belong to the parent."""

    _registry: "ConfigRegistry"
    _instances: Dict[str, Any]
    _pid: int

    @classmethod
    def _release(cls, instance: Any) -> None:
        raise NotImplementedError

    @classmethod
    def _after_fork(cls) -> None:
        cls._instances = {}

    @classmethod
    def _check_fork(cls) -> None:
        if cls._pid != os.getpid():
            cls._after_fork()
            cls._pid = os.getpid()

    @classmethod
    def configure(cls, config: Any = None, **named: Any) -> None:
        """Register configs (see the subclass docstring); reconfigured names are rebuilt on
        next use."""
        names = set(named)
        if isinstance(config, Mapping):
            names.update(str(k) for k in config)
        elif config is not None:
            names.update(k for k in list(cls._instances) if getattr(config, k, None) is not None)
        cls._registry.configure(config, **named)
        for name in names:
            instance = cls._instances.pop(name, None)
            if instance is not None:
                cls._release(instance)


def missing_extra(module: str, package: str) -> str:
    """The ImportError text of a helper whose client library is not installed: the database
    and Redis helpers are optional (`pip install 'gwgevent[db]'`), the framework is not."""
    return ("%s needs the %s package, which is not installed: pip install 'gwgevent[db]' "
            "(or pip install %s)" % (module, package, package))
