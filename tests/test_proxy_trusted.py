"""`trusted_proxies`: which address a Gateway reports for a client behind a reverse proxy.

Unit tests of the header rules (gwgevent/proxy.py), then a real cluster whose websocket gateway
trusts 127.0.0.1: the CMD_ON_CONNECT/CMD_ON_MESSAGE client_ip, REMOTE_ADDR in
on_websocket_connect and in context.server all carry the forwarded address; and the same
headers are ignored when the peer is not trusted (the default)."""
from __future__ import annotations

import pytest

from cluster import Cluster, serve
from gwgevent.cluster.proxy import TrustedProxies, forwarded_client_ip


def fwd(peer, trusted, xff=None, real=None):
    server = {}
    if xff is not None:
        server["HTTP_X_FORWARDED_FOR"] = xff
    if real is not None:
        server["HTTP_X_REAL_IP"] = real
    return forwarded_client_ip(peer, server, TrustedProxies(trusted))


def test_untrusted_peer_or_no_setting_ignores_headers():
    assert fwd("127.0.0.1", [], xff="203.0.113.7") is None
    assert fwd("198.51.100.1", ["127.0.0.1"], xff="203.0.113.7", real="203.0.113.7") is None


def test_rightmost_untrusted_hop_wins_over_client_written_entries():
    # the client wrote "1.1.1.1"; our proxy appended the address it saw
    assert fwd("127.0.0.1", ["127.0.0.1"], xff="1.1.1.1, 203.0.113.7") == "203.0.113.7"
    # two proxies of ours in a row (10.0.0.0/8 and the local one)
    assert fwd("127.0.0.1", "127.0.0.1, 10.0.0.0/8",
               xff="1.1.1.1, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    # every hop is ours: the first one is the client
    assert fwd("127.0.0.1", ["127.0.0.0/8"], xff="127.0.0.5") == "127.0.0.5"


def test_x_real_ip_is_the_fallback_and_junk_is_refused():
    assert fwd("127.0.0.1", ["127.0.0.1"], real="203.0.113.8") == "203.0.113.8"
    assert fwd("127.0.0.1", ["127.0.0.1"], xff="not-an-ip", real="203.0.113.8") == "203.0.113.8"
    assert fwd("127.0.0.1", ["127.0.0.1"], xff="not-an-ip") is None
    assert fwd("127.0.0.1", ["127.0.0.1"], xff="203.0.113.9:5555") == "203.0.113.9"
    assert fwd("::1", ["::1"], xff="[2001:db8::1]:443") == "2001:db8::1"


def test_bad_setting_fails_at_construction():
    with pytest.raises(ValueError):
        TrustedProxies(["not-a-network"])


@pytest.fixture(scope="module", params=["127.0.0.1", ""], ids=["trusted", "default-off"])
def cluster(request):
    c = Cluster(ws_count=1, text=False, worker_count=1,
                env={"TRUSTED_PROXIES": request.param, "REPORT_WS_CONNECT": "1"})
    c.trusted = bool(request.param)
    yield from serve(c)


def test_client_ip_from_proxy_headers(cluster):
    forwarded = cluster.ws(headers=["X-Forwarded-For: 1.1.1.1, 203.0.113.7",
                                    "X-Real-IP: 203.0.113.7"])
    direct = cluster.ws()
    expect = "203.0.113.7" if cluster.trusted else "127.0.0.1"
    # CMD_ON_CONNECT's client_ip
    assert forwarded.hello["client_ip"] == expect
    assert direct.hello["client_ip"] == "127.0.0.1"
    # on_websocket_connect data and the client_ip of that event
    ev = forwarded.take_json(lambda d: d.get("ev") == "ws_connect", what="ws_connect")
    assert (ev["remote_addr"], ev["client_ip"]) == (expect, expect)
    # CMD_ON_MESSAGE: context.client_ip and $_SERVER-style REMOTE_ADDR
    ctx = forwarded.result("context")
    assert ctx["client_ip"] == expect and ctx["server"]["REMOTE_ADDR"] == expect
    assert direct.result("context")["client_ip"] == "127.0.0.1"
    cluster.close_clients()


def test_gateway_setting_is_parsed_when_set():
    from gwgevent import Gateway, Worker
    before = list(Worker._all)
    try:
        gw = Gateway("websocket://127.0.0.1:1", trustedProxies="127.0.0.1, 10.0.0.0/8")
        assert "10.2.3.4" in gw._trusted and "11.0.0.1" not in gw._trusted
        with pytest.raises(ValueError):
            gw.trusted_proxies = ["10.0.0.0/33"]
    finally:
        Worker._all[:] = before
