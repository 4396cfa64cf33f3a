"""Redis helper for business code: named redis-py clients per process, and pub/sub listeners
that run in their own gevent greenlet and survive reconnects.

GatewayWorker ships no Redis helper; Workerman's manual recommends phpredis (synchronous) in
BusinessWorkers and ``workerman/redis`` for subscribe. Here:

* ``Redis.instance(name)`` -> a ``redis.Redis`` client on a bounded ``BlockingConnectionPool``
  (per process, rebuilt after a fork), configured like Db: ``Redis.configure({...})``, a config
  module, or env ``GW_REDIS_<NAME>_URL=redis://127.0.0.1:6379/0``. redis-py uses the hiredis
  parser by itself when the ``hiredis`` package is installed. Connection failures name the
  config, host:port and what failed.
* ``Redis.subscribe(channels, callback)`` -> :class:`Subscription`: a greenlet that calls
  ``callback(channel, message)`` per message, logs (and survives) callback exceptions, and
  re-subscribes with back-off when the connection drops (server restart, CLIENT KILL), logging
  once per outage.

This file is ``gwgevent/lib/redis.py``; ``import redis`` below is absolute
(``from __future__ import annotations`` + no implicit relative imports in Python 3), so it loads
redis-py, not this module.
"""
from __future__ import annotations

import logging
import os
import random
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import gevent
import gevent.event
try:
    import redis as _redis
    import redis.backoff
    import redis.connection
    import redis.exceptions
    import redis.retry
except ImportError as _exc:                     # an optional dependency: say how to get it
    from gwgevent.lib.config import missing_extra
    raise ImportError(missing_extra("gwgevent.lib.redis", "redis")) from _exc
from gevent.socket import wait_read
from greenlet import getcurrent

from gwgevent.lib.config import ConfigError, ConfigRegistry, NamedInstances, merge_url

if _redis.__name__ != "redis" or not hasattr(_redis, "StrictRedis"):   # pragma: no cover
    raise ImportError("gwgevent.lib.redis imported itself instead of redis-py")

__all__ = ["Redis", "Subscription", "RedisError", "RedisConnectError", "RedisPoolTimeout",
           "ConfigError", "parse_redis_url"]

log = logging.getLogger("gwgevent.lib.redis")

DEFAULT_POOL_SIZE = 50
DEFAULT_WAIT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3

RedisError = _redis.exceptions.RedisError


class RedisConnectError(_redis.exceptions.ConnectionError):
    """Connecting (or talking) to the server failed; message names config and host:port.
    Subclasses redis-py's ConnectionError so existing ``except redis.ConnectionError`` works."""


class RedisPoolTimeout(_redis.exceptions.ConnectionError):
    """No pooled connection became free within ``wait_timeout`` seconds."""


# Our own keys (not redis-py Connection kwargs); the rest of a config goes to redis-py.
_OWN_KEYS = {"pool_size": int, "wait_timeout": float, "retries": int}
_BOOL_KEYS = {"decode_responses"}


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def parse_redis_url(url: str, name: str = "") -> Dict[str, Any]:
    """``redis://[user:pass@]host:port/db?pool_size=..&wait_timeout=..&decode_responses=0``
    (also rediss:// and unix://) -> config dict. Other query options go to redis-py."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("Redis config %r: URL scheme must be redis://, rediss:// or unix:// "
                          "(got %r)" % (name, url))
    ours: Dict[str, Any] = {}
    rest: List[Tuple[str, str]] = []
    for key, value in parse_qsl(parts.query):
        if key in _OWN_KEYS:
            try:
                ours[key] = _OWN_KEYS[key](value)
            except ValueError:
                raise ConfigError("Redis config %r: %s=%r is not a number"
                                  % (name, key, value)) from None
        elif key in _BOOL_KEYS:
            ours[key] = _bool(value)
        else:
            rest.append((key, value))
    try:
        cfg = _redis.connection.parse_url(urlunsplit(parts._replace(query=urlencode(rest))))
    except ValueError as exc:
        raise ConfigError("Redis config %r: bad URL %r: %s" % (name, url, exc)) from None
    cfg.update(ours)
    return cfg


def _where(kwargs: Mapping[str, Any]) -> str:
    if kwargs.get("path"):
        return "unix:%s" % kwargs["path"]
    return "%s:%s" % (kwargs.get("host", "localhost"), kwargs.get("port", 6379))


class _Pool(_redis.BlockingConnectionPool):
    """BlockingConnectionPool whose failures say which config, which server, what failed."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        self.gw_label = label
        super().__init__(**kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get_connection(*args, **kwargs)
        except (RedisConnectError, RedisPoolTimeout):
            raise
        except _redis.exceptions.ConnectionError as exc:
            if str(exc) == "No connection available.":
                raise RedisPoolTimeout(
                    "%s: no free connection in the pool of %d after waiting %.1f s (raise "
                    "pool_size or wait_timeout)" % (self.gw_label, self.max_connections,
                                                     self.timeout or 0)) from exc
            raise RedisConnectError("%s: cannot connect: %s" % (self.gw_label, exc)) from exc
        except (_redis.exceptions.TimeoutError, OSError) as exc:
            raise RedisConnectError("%s: cannot connect: %s" % (self.gw_label, exc)) from exc


class _Client(_redis.Redis):
    """redis.Redis whose connection errors carry the config name and server address."""

    gw_label = ""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except (RedisConnectError, RedisPoolTimeout):
            raise
        except (_redis.exceptions.ConnectionError, _redis.exceptions.TimeoutError) as exc:
            if str(exc).startswith(self.gw_label):
                raise
            cmd = str(args[0]) if args else "?"
            try:
                labelled = type(exc)("%s: %s failed: %s" % (self.gw_label, cmd, exc))
            except Exception:
                raise exc
            raise labelled from exc


def _connection_kwargs(cfg: Mapping[str, Any], name: str) -> Tuple[Dict[str, Any], int, float]:
    """Config dict -> (redis-py connection kwargs, pool size, pool wait timeout)."""
    kw = dict(cfg)
    pool_size = int(kw.pop("pool_size", None) or kw.pop("max_connections", None)
                    or DEFAULT_POOL_SIZE)
    kw.pop("max_connections", None)
    wait_timeout = float(kw.pop("wait_timeout", DEFAULT_WAIT_TIMEOUT))
    if "database" in kw:
        kw["db"] = kw.pop("database")
    if "auth" in kw:                       # phpredis-ish
        kw["password"] = kw.pop("auth")
    kw.setdefault("host", "127.0.0.1")
    kw.setdefault("port", 6379)
    kw["port"] = int(kw["port"])
    kw.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    kw.setdefault("decode_responses", True)
    retries = int(kw.pop("retries", DEFAULT_RETRIES))
    if "retry" not in kw:
        # A command that hit a dropped connection is retried on a new one (redis-py's own
        # default is 10 retries, capped at 1 s each; a worker should fail faster).
        kw["retry"] = _redis.retry.Retry(
            _redis.backoff.ExponentialWithJitterBackoff(base=0.01, cap=0.5), retries)
    return kw, pool_size, wait_timeout


class Redis(NamedInstances):
    """Named redis-py clients, one pool per process, created at first use.

    ``Redis.configure({'default': 'redis://127.0.0.1:6379/0'})`` (or dicts with host, port, db,
    password, username, pool_size, wait_timeout, decode_responses and any redis-py Connection
    option), a config module, or env ``GW_REDIS_DEFAULT_URL``. ``decode_responses`` defaults to
    True (str results, like phpredis).
    """

    _registry = ConfigRegistry("Redis")
    _instances: Dict[str, _Client] = {}
    _subscriptions: Dict[str, List["Subscription"]] = {}
    _pid = os.getpid()

    @classmethod
    def _release(cls, instance: _Client) -> None:
        instance.connection_pool.disconnect()

    @classmethod
    def _after_fork(cls) -> None:
        # Drop, don't disconnect: the sockets are the parent's (redis-py skips shutdown()
        # for connections of another pid anyway).
        cls._instances = {}
        cls._subscriptions = {}

    @classmethod
    def settings(cls, name: str = "default") -> Dict[str, Any]:
        """The redis-py connection kwargs resolved for config `name` (password included)."""
        return cls._resolve(name)[0]

    @classmethod
    def _resolve(cls, name: str) -> Tuple[Dict[str, Any], int, float, str]:
        """(redis-py connection kwargs, pool size, wait timeout, label) for config `name`."""
        raw, where = cls._registry.lookup(name)
        try:
            cfg = merge_url(raw, parse_redis_url, name)
            kw, size, wait = _connection_kwargs(cfg, name)
        except ConfigError as exc:
            raise ConfigError("%s (from %s)" % (exc, where)) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError("Redis config %r (from %s) is invalid: %s"
                              % (name, where, exc)) from None
        return kw, size, wait, "Redis %r (%s)" % (name, _where(kw))

    @classmethod
    def instance(cls, name: str = "default") -> _redis.Redis:
        """The process's redis.Redis client for config `name` (no I/O until first command)."""
        cls._check_fork()
        client = cls._instances.get(name)
        if client is None:
            kw, size, wait, label = cls._resolve(name)
            try:
                pool = _Pool(label, max_connections=size, timeout=wait, **kw)
                client = _Client(connection_pool=pool)
            except TypeError as exc:
                raise ConfigError("%s: invalid option: %s" % (label, exc)) from None
            client.gw_label = label
            cls._instances[name] = client
        return client

    @classmethod
    def close(cls, name: str = "default") -> None:
        """Disconnect and forget client `name` and stop its subscriptions."""
        cls._check_fork()
        client = cls._instances.pop(name, None)
        if client is not None:
            client.connection_pool.disconnect()
        for sub in cls._subscriptions.pop(name, []):
            sub.stop()

    @classmethod
    def close_all(cls) -> None:
        cls._check_fork()
        for name in set(cls._instances) | set(cls._subscriptions):
            cls.close(name)

    closeAll = close_all

    @classmethod
    def subscribe(cls, channels: Union[str, Iterable[str]],
                  callback: Callable[[Any, Any], Any], name: str = "default",
                  pattern: bool = False, **options: Any) -> "Subscription":
        """Start a greenlet listening on `channels` (patterns when `pattern`), calling
        ``callback(channel, message)`` for each message. See :class:`Subscription` for
        options (max_backoff, health_check_interval, client_name)."""
        cls._check_fork()
        kw, _size, _wait, label = cls._resolve(name)
        sub = Subscription(label, kw, channels, callback, pattern=pattern, **options)
        subs = cls._subscriptions.setdefault(name, [])
        subs[:] = [s for s in subs if s.running]
        subs.append(sub)
        sub.start()
        return sub

    @classmethod
    def psubscribe(cls, patterns: Union[str, Iterable[str]],
                   callback: Callable[[Any, Any], Any], name: str = "default",
                   **options: Any) -> "Subscription":
        """subscribe(..., pattern=True): glob patterns; callback gets the matching channel."""
        return cls.subscribe(patterns, callback, name, pattern=True, **options)


class Subscription:
    """A pub/sub listener running in its own greenlet (see Redis.subscribe).

    It owns a dedicated connection (not taken from the command pool, so a busy pool never
    starves it). Reading waits with ``gevent.socket.wait_read`` on the socket, so the listener
    yields to other greenlets even in a process that is not monkey-patched. On connection loss
    it re-subscribes with exponential back-off (0.05 s doubling up to `max_backoff`), logging a
    warning when the outage starts and an info line when it is over. The callback runs in the
    listener greenlet: a slow callback delays later messages; an exception is logged and the
    listener goes on.
    """

    def __init__(self, label: str, connection_kwargs: Mapping[str, Any],
                 channels: Union[str, Iterable[str]], callback: Callable[[Any, Any], Any],
                 pattern: bool = False, max_backoff: float = 2.0,
                 health_check_interval: float = 30.0,
                 client_name: Optional[str] = None) -> None:
        self.channels: Tuple[str, ...] = ((channels,) if isinstance(channels, (str, bytes))
                                          else tuple(channels))
        if not self.channels:
            raise ValueError("Redis.subscribe(): no channels given")
        if not callable(callback):
            raise TypeError("Redis.subscribe(): callback must be callable")
        self.label = label
        self.callback = callback
        self.pattern = pattern
        self.max_backoff = max_backoff
        self.ready = gevent.event.Event()        # set while subscribed
        self.reconnects = 0                      # successful re-subscriptions after a loss
        self.messages = 0
        self._stopping = False
        self._greenlet: Optional[gevent.Greenlet] = None
        kw = dict(connection_kwargs)
        kw["socket_timeout"] = kw.get("socket_timeout") or 10.0   # bounded writes/reads
        kw["health_check_interval"] = health_check_interval
        # Named so CLIENT LIST shows which connections are worker subscriptions.
        kw["client_name"] = client_name or kw.get("client_name") or "gwgevent-sub-%d" % os.getpid()
        # No redis-py-level retries: this loop owns reconnection (and its logging).
        kw["retry"] = _redis.retry.Retry(_redis.backoff.NoBackoff(), 0)
        self._client = _redis.Redis(connection_pool=_redis.ConnectionPool(max_connections=2,
                                                                          **kw))

    def __repr__(self) -> str:
        return "<Subscription %s %s%r ready=%s>" % (self.label, "patterns " if self.pattern
                                                    else "", self.channels, self.ready.is_set())

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead and not self._stopping

    def start(self) -> "Subscription":
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        return self

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block (cooperatively) until subscribed; False on timeout."""
        return bool(self.ready.wait(timeout))

    def stop(self, timeout: float = 2.0) -> None:
        """Unsubscribe and end the listener greenlet (safe to call from the callback)."""
        self._stopping = True
        self.ready.clear()
        g = self._greenlet
        if g is not None and g is not getcurrent() and not g.dead:
            g.kill(block=True, timeout=timeout)
        try:
            self._client.connection_pool.disconnect()
        except Exception:
            pass

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- listener
    def _next(self, pubsub: Any, timeout: float) -> Optional[Dict[str, Any]]:
        msg = pubsub.get_message(timeout=0)          # buffered data first, non-blocking
        if msg is not None:
            return msg
        sock = getattr(pubsub.connection, "_sock", None)
        if sock is None:
            return pubsub.get_message(timeout=timeout)
        try:
            wait_read(sock.fileno(), timeout=timeout)
        except OSError:                              # timeout (socket.timeout) or bad fd
            if getattr(pubsub.connection, "_sock", None) is None:
                raise _redis.exceptions.ConnectionError("connection closed")
            return None
        return pubsub.get_message(timeout=0)

    def _dispatch(self, msg: Dict[str, Any]) -> None:
        self.messages += 1
        try:
            self.callback(msg["channel"], msg["data"])
        except Exception:
            log.exception("%s: subscription callback %r failed on channel %r",
                          self.label, self.callback, msg.get("channel"))

    def _run(self) -> None:
        failures = 0
        outage_since: Optional[float] = None
        kinds = ("pmessage",) if self.pattern else ("message",)
        confirm = "psubscribe" if self.pattern else "subscribe"
        while not self._stopping:
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                if self.pattern:
                    pubsub.psubscribe(*self.channels)
                else:
                    pubsub.subscribe(*self.channels)
                pending = len(set(self.channels))
                while pending > 0 and not self._stopping:
                    msg = self._next(pubsub, 1.0)
                    if msg is None:
                        continue
                    if msg["type"] == confirm:
                        pending -= 1
                    elif msg["type"] in kinds:
                        self._dispatch(msg)
                self.ready.set()
                failures = 0
                if outage_since is not None:
                    self.reconnects += 1
                    log.info("%s: re-subscribed to %r after %.1f s", self.label,
                             self.channels, time.monotonic() - outage_since)
                    outage_since = None
                while not self._stopping:
                    msg = self._next(pubsub, 1.0)
                    if msg is not None and msg["type"] in kinds:
                        self._dispatch(msg)
            except gevent.GreenletExit:
                break
            except Exception as exc:
                self.ready.clear()
                if self._stopping:
                    break
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("%s: subscription to %r lost (%s: %s); re-subscribing with "
                                "back-off", self.label, self.channels, type(exc).__name__, exc)
                else:
                    log.debug("%s: re-subscribe attempt %d failed: %s", self.label, failures,
                              exc)
                delay = min(self.max_backoff, 0.05 * (2 ** failures))
                failures += 1
                gevent.sleep(delay * (0.8 + 0.4 * random.random()))
            finally:
                if pubsub is not None:
                    try:
                        pubsub.reset()
                    except Exception:
                        pass
        self.ready.clear()
