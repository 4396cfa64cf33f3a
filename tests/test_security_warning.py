"""The start-up warning for roles reachable beyond loopback without a secret_key: present
exactly when configured so, once per role (the real-cluster side: a loopback cluster logs none,
tests/test_cluster_hardening.py; the namespace cluster with 10.77.0.x lan_ips logs it,
tests/test_netns_cluster.py)."""
from __future__ import annotations

import logging

import pytest

from gwgevent import BusinessWorker, Gateway, Register
from gwgevent.cluster.security import check_secret_key, is_loopback


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("10.77.0.2", False), ("0.0.0.0", False), ("example.org", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def _roles(host: str, key: str):
    gw = Gateway("websocket://%s:7272" % host, lan_ip=host, secret_key=key, _register=False)
    bw = BusinessWorker(register_address=["127.0.0.1:1236", "%s:1236" % host],
                        secret_key=key, _register=False)
    reg = Register("text://%s:1236" % host, secret_key=key, _register=False)
    return [("gateway", gw), ("worker", bw), ("register", reg)]


@pytest.mark.parametrize("host,key,warns", [
    ("10.77.0.2", "", True), ("10.77.0.2", "k", False), ("127.0.0.1", "", False),
])
def test_warning_per_role(caplog, host, key, warns):
    caplog.set_level(logging.WARNING, logger="gwgevent.security")
    for role, worker in _roles(host, key):
        caplog.clear()
        assert check_secret_key(role, worker) is warns
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == (1 if warns else 0), lines
        if warns:
            assert lines[0].startswith(role + " ") and "no secret_key is set" in lines[0]
            assert host in lines[0]
