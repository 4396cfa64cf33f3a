"""gwgevent.lib.redis on a real Redis server (see tests/servers.py for which one).

Keys and channels carry a unique prefix and are deleted afterwards. Subscriptions run in
gevent greenlets in this (unpatched) process: the listener waits with gevent.socket.wait_read,
so it cooperates without monkey-patching. The cooperation bar runs in a monkey-patched
subprocess (tests/coop_check.py).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import types

import gevent
import gevent.queue
import pytest
import redis as redis_py

from gwgevent.lib import redis as libredis
from gwgevent.lib.config import ConfigError
from gwgevent.lib.redis import (Redis, RedisConnectError, RedisPoolTimeout, Subscription,
                                parse_redis_url)
from servers import PrivateRedis, redis_server, uniq  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.timeout(60)

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def registry():
    """Isolate Redis.configure() registrations and instances per test."""
    saved = (dict(Redis._registry._dicts), list(Redis._registry._objects))
    Redis.close_all()
    yield Redis
    Redis.close_all()
    Redis._registry._dicts.clear()
    Redis._registry._dicts.update(saved[0])
    Redis._registry._objects[:] = saved[1]


@pytest.fixture
def prefix(redis_server):  # noqa: F811
    p = "gwtest:%s:" % uniq("r")
    yield p
    c = redis_server.client()
    keys = list(c.scan_iter(p + "*"))
    if keys:
        c.delete(*keys)
    c.close()


def wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        gevent.sleep(0.01)
    return False


def client_id_by_name(admin, name):
    for c in admin.client_list():
        if c.get("name") == name:
            return int(c["id"])
    return None


# ------------------------------------------------------------------------------ clients

def test_instance_commands_and_hiredis(redis_server, registry, prefix):  # noqa: F811
    Redis.configure({"t": redis_server.url})
    r = Redis.instance("t")
    assert r is Redis.instance("t") and isinstance(r, redis_py.Redis)
    assert r.set(prefix + "k", "v\u00e9") is True and r.get(prefix + "k") == "v\u00e9"  # str
    assert r.incr(prefix + "n") == 1 and r.rpush(prefix + "l", "a", "b") == 2
    assert r.lrange(prefix + "l", 0, -1) == ["a", "b"]
    conn = r.connection_pool.get_connection()
    try:
        parser = type(conn._parser).__name__
    finally:
        r.connection_pool.release(conn)
    try:
        import hiredis  # noqa: F401
        assert parser == "_HiredisParser", parser
    except ImportError:
        pass
    assert isinstance(r.connection_pool, redis_py.BlockingConnectionPool)
    assert r.connection_pool.max_connections == libredis.DEFAULT_POOL_SIZE


def test_config_sources(redis_server, registry, monkeypatch, prefix):  # noqa: F811
    s = redis_server
    Redis.configure({"d": {"host": s.host, "port": s.port, "db": s.db, "pool_size": 3,
                           "decode_responses": False}})
    d = Redis.instance("d")
    assert d.connection_pool.max_connections == 3
    d.set(prefix + "b", "x")
    assert d.get(prefix + "b") == b"x"                        # decode_responses honoured
    Redis.configure(types.SimpleNamespace(m={"url": s.url, "wait_timeout": 1.5}))
    m = Redis.instance("m")
    assert m.connection_pool.timeout == 1.5 and m.get(prefix + "b") == "x"
    name = uniq("e")
    monkeypatch.setenv("GW_REDIS_%s_URL" % name.upper(), s.url + "?pool_size=7")
    e = Redis.instance(name)
    assert e.connection_pool.max_connections == 7 and e.ping() is True
    assert Redis.settings(name)["port"] == s.port
    Redis.close(name)
    assert Redis.instance(name) is not e
    Redis.closeAll()
    assert Redis._instances == {}
    with pytest.raises(ConfigError, match="GW_REDIS_MISSING_ONE_URL"):
        Redis.instance("missing-one")
    with pytest.raises(ConfigError, match="scheme"):
        parse_redis_url("http://x")
    cfg = parse_redis_url("redis://u:p%40ss@h:7000/3?pool_size=4&wait_timeout=2&"
                          "decode_responses=0&socket_timeout=3")
    assert cfg["host"] == "h" and cfg["port"] == 7000 and cfg["db"] == 3
    assert cfg["password"] == "p@ss" and cfg["username"] == "u" and cfg["pool_size"] == 4
    assert cfg["wait_timeout"] == 2.0 and cfg["decode_responses"] is False
    assert cfg["socket_timeout"] == 3.0


def test_errors_name_config_and_server(registry):
    Redis.configure(down={"host": "127.0.0.1", "port": 1, "socket_connect_timeout": 1})
    t0 = time.monotonic()
    with pytest.raises(RedisConnectError) as ei:
        Redis.instance("down").get("x")
    assert time.monotonic() - t0 < 5
    assert isinstance(ei.value, redis_py.ConnectionError)
    msg = str(ei.value)
    assert "Redis 'down'" in msg and "127.0.0.1:1" in msg and "connect" in msg


def test_pool_timeout_is_clear(redis_server, registry):  # noqa: F811
    Redis.configure(tiny=redis_server.url + "?pool_size=1&wait_timeout=0.2")
    r = Redis.instance("tiny")
    held = r.connection_pool.get_connection()
    try:
        t0 = time.monotonic()
        with pytest.raises(RedisPoolTimeout, match=r"Redis 'tiny' .*pool of 1 after waiting 0.2"):
            r.ping()
        assert 0.15 < time.monotonic() - t0 < 2
    finally:
        r.connection_pool.release(held)
    assert r.ping() is True


def test_killed_connection_is_reconnected_for_commands(redis_server, registry,  # noqa: F811
                                                       prefix):
    Redis.configure(k={"url": redis_server.url, "client_name": uniq("cmd")})
    r = Redis.instance("k")
    r.set(prefix + "x", "1")
    admin = redis_server.client()
    cid = client_id_by_name(admin, r.connection_pool.connection_kwargs["client_name"])
    assert cid is not None
    admin.client_kill_filter(_id=cid)
    assert r.get(prefix + "x") == "1"                         # transparently reconnected
    admin.close()


def test_fork_rebuilds_instances(redis_server, registry, prefix):  # noqa: F811
    Redis.configure(f=redis_server.url)
    parent = Redis.instance("f")
    parent.set(prefix + "p", "1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            child = Redis.instance("f")
            ok = child is not parent and child.get(prefix + "p") == "1"
            os.write(w, b"ok" if ok else b"bad")
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    got = os.read(r, 10)
    os.close(r)
    assert os.WEXITSTATUS(status) == 0 and got == b"ok"
    assert parent.get(prefix + "p") == "1"                    # parent's sockets untouched


# ------------------------------------------------------------------------------ pub/sub

def test_subscribe_receives_messages_and_survives_callback_errors(redis_server, registry,  # noqa
                                                                  prefix, caplog):
    Redis.configure(ps=redis_server.url)
    got = gevent.queue.Queue()

    def on_message(channel, message):
        if message == "boom":
            raise ValueError("callback failure")
        got.put((channel, message))

    sub = Redis.subscribe([prefix + "a", prefix + "b"], on_message, name="ps")
    assert isinstance(sub, Subscription) and sub.wait_ready(5)
    pub = Redis.instance("ps")
    with caplog.at_level(logging.ERROR, logger="gwgevent.lib.redis"):
        assert pub.publish(prefix + "a", "boom") == 1
        pub.publish(prefix + "a", "hello")
        pub.publish(prefix + "b", "w\u00f6rld")
        assert got.get(timeout=5) == (prefix + "a", "hello")
        assert got.get(timeout=5) == (prefix + "b", "w\u00f6rld")
    assert any("callback" in r.getMessage() and "failed" in r.getMessage()
               for r in caplog.records)
    assert sub.running and sub.messages == 3
    sub.stop()
    assert not sub.running and not sub.ready.is_set()
    assert pub.publish(prefix + "a", "late") == 0             # unsubscribed server-side


def test_pattern_subscription_and_stop_from_callback(redis_server, registry, prefix):  # noqa
    Redis.configure(pp=redis_server.url)
    got = []

    def on_message(channel, message):
        got.append((channel, message))
        if message == "last":
            sub.stop()                                        # from inside the listener

    sub = Redis.psubscribe(prefix + "room:*", on_message, name="pp")
    assert sub.pattern and sub.wait_ready(5)
    pub = Redis.instance("pp")
    pub.publish(prefix + "room:1", "x")
    pub.publish(prefix + "other", "ignored")
    pub.publish(prefix + "room:2", "last")
    assert wait_for(lambda: not sub.running and len(got) == 2)
    assert got == [(prefix + "room:1", "x"), (prefix + "room:2", "last")]
    assert wait_for(lambda: sub._greenlet.dead)


def test_subscription_reconnects_after_client_kill(redis_server, registry, prefix,  # noqa: F811
                                                   caplog):
    """Kill the subscription's connection server-side (by its id: the server may be shared);
    the listener re-subscribes and gets later messages."""
    Redis.configure(pk=redis_server.url)
    got = gevent.queue.Queue()
    name = uniq("sub")
    sub = Redis.subscribe(prefix + "c", lambda ch, m: got.put(m), name="pk",
                          client_name=name, max_backoff=0.2)
    assert sub.wait_ready(5)
    pub = Redis.instance("pk")
    pub.publish(prefix + "c", "before")
    assert got.get(timeout=5) == "before"
    admin = redis_server.client()
    with caplog.at_level(logging.INFO, logger="gwgevent.lib.redis"):
        assert admin.client_kill_filter(_id=client_id_by_name(admin, name)) == 1
        assert wait_for(lambda: sub.reconnects == 1, 5), "listener did not re-subscribe"
        assert sub.wait_ready(5)
        assert pub.publish(prefix + "c", "after") == 1
        assert got.get(timeout=5) == "after"
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING
    assert any("re-subscribed" in r.getMessage() for r in caplog.records)
    admin.close()
    sub.stop()


def test_subscription_survives_client_kill_type_pubsub_and_restart(registry, caplog):
    """On a private redis-server (so CLIENT KILL TYPE pubsub and a restart disturb nobody):
    kill all pubsub clients, then stop and restart the server on the same port."""
    with PrivateRedis() as server:
        Redis.configure(pr=server.url)
        got = gevent.queue.Queue()
        sub = Redis.subscribe("news", lambda ch, m: got.put((ch, m)), name="pr",
                              max_backoff=0.2)
        assert sub.wait_ready(5)
        pub = Redis.instance("pr")
        admin = redis_py.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        pub.publish("news", "1")
        assert got.get(timeout=5) == ("news", "1")
        with caplog.at_level(logging.INFO, logger="gwgevent.lib.redis"):
            assert admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
            assert wait_for(lambda: sub.reconnects == 1, 5)
            pub.publish("news", "2")
            assert got.get(timeout=5) == ("news", "2")

            server.stop()                                    # outage: server gone
            assert wait_for(lambda: not sub.ready.is_set(), 5)
            gevent.sleep(0.5)                                # several failed attempts
            server.start()                                   # same port
            assert wait_for(lambda: sub.reconnects == 2, 10), "no re-subscribe after restart"
            assert sub.wait_ready(5)
            assert pub.publish("news", "3") == 1             # command pool reconnects too
            assert got.get(timeout=5) == ("news", "3")
        lost = [r for r in caplog.records if "lost" in r.getMessage()]
        assert len(lost) == 2, [r.getMessage() for r in caplog.records]   # once per outage
        sub.stop()
        admin.close()


def test_close_stops_subscriptions(redis_server, registry, prefix):  # noqa: F811
    Redis.configure(cs=redis_server.url)
    sub = Redis.subscribe(prefix + "z", lambda ch, m: None, name="cs")
    assert sub.wait_ready(5)
    Redis.close("cs")
    assert not sub.running and wait_for(lambda: sub._greenlet.dead)
    with pytest.raises(ValueError):
        Redis.subscribe([], lambda ch, m: None, name="cs")
    with pytest.raises(TypeError):
        Redis.subscribe("x", None, name="cs")


# ------------------------------------------------------------------------------ cooperation

def test_cooperation_50_blpop_in_parallel(redis_server):  # noqa: F811
    """Monkey-patched subprocess: 50 greenlets x BLPOP(timeout 0.2) < 0.5 s."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "coop_check.py"), "redis",
                          redis_server.url, "50", "0.2"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("\nredis cooperation: 50 x BLPOP(0.2): cold pool %.3f s, warm pool %.3f s "
          "(serial would be %.1f s)" % (result["cold"], result["warm"], result["serial"]))
    # serial would take 10 s: well under half of that proves the waits overlap (a loaded
    # machine slows everything, so no tighter bound)
    assert result["cold"] < 5.0 and result["warm"] < 5.0


def test_subscription_in_a_monkey_patched_process(redis_server):  # noqa: F811
    """As in a BusinessWorker: patch_all(), subscribe, kill the connection mid-stream; every
    message arrives, the listener re-subscribes, and the hub is never stalled."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "coop_check.py"), "pubsub",
                          redis_server.url, "20", "0"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["received"] == [str(i) for i in range(20)]
    assert result["reconnects"] == 1
    assert result["max_stall"] < 1.0, result   # a blocking reconnect would stall for seconds


def test_redis_py_is_not_shadowed():
    assert libredis._redis.__name__ == "redis"
    assert libredis._redis.__file__ != libredis.__file__
    assert os.path.basename(os.path.dirname(libredis._redis.__file__)) == "redis"
    assert redis_py.Redis is libredis._redis.Redis
