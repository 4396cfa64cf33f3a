"""The Gateway API against a real cluster: 1 register, a websocket Gateway (count=2) and a text
Gateway (count=1), 2 BusinessWorker processes, started through the app's launcher with
`start -d`. Every method is driven twice:

* `worker`: from inside a BusinessWorker (a websocket "controller" client sends
  {"op": "api", "args": [method, ...]} and the worker answers with the JSON-encoded result);
* `client`: from a separate plain Python process (tests/apps/api_driver.py, not monkey-patched)
  through `GatewayClient(register_address, secret_key)`.

Targets live on both gateways and both protocols. The whole suite runs on a cluster without a
secret key and on one with a key on register, gateways and workers; for the latter, a wrong key
is rejected at the register and, going straight to an inner port, gets nothing and is closed.
"""
from __future__ import annotations

import ast
import json
import socket
import uuid

import pytest
import websocket

from cluster import DriverError, equal_eventually, packet, read_until_eof, running_cluster
from gwgevent.codec import gateway_protocol as gp

SECRET = "s3cr3t-Key"


def uniq(prefix: str = "m") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def plain_cluster():
    yield from running_cluster(ws_count=2, worker_count=2)


@pytest.fixture(scope="module")
def secret_cluster():
    yield from running_cluster(ws_count=2, worker_count=2, secret=SECRET)


@pytest.fixture(scope="module", params=["plain", "secret"])
def cluster(request):
    return request.getfixturevalue(request.param + "_cluster")


@pytest.fixture(scope="module")
def _drivers():
    drivers = {}
    yield drivers
    for d in drivers.values():
        d.close()


class Via:
    """Calls one API method from inside a worker or from the GatewayClient process."""

    def __init__(self, name, cluster, controller=None, driver=None):
        self.name = name
        self.cluster = cluster
        self.controller = controller
        self.driver = driver

    def __call__(self, method, *args):
        if self.controller is not None:
            return self.controller.api(method, *args)
        return self.driver.call(method, *args)

    @property
    def own(self):
        """Client ids the caller itself adds to the cluster (the controller)."""
        return [self.controller.client_id] if self.controller is not None else []


@pytest.fixture(params=["worker", "client"])
def via(request, cluster, _drivers):
    if request.param == "worker":
        controller = cluster.ws()
        yield Via("worker", cluster, controller=controller)
        cluster.close_clients([controller])
    else:
        key = id(cluster)
        if key not in _drivers:
            _drivers[key] = cluster.driver()
            assert _drivers[key].ready["patched"] is False
        yield Via("client", cluster, driver=_drivers[key])


@pytest.fixture
def targets(cluster):
    """Two websocket clients and two text clients (w1, w2, t1, t2)."""
    clients = [cluster.ws(), cluster.ws(), cluster.text(), cluster.text()]
    yield clients
    cluster.close_clients([c for c in clients if c in cluster.clients])


def fence_all(via, clients):
    """Broadcast a fence; return, per client, the messages it got before the fence."""
    fence = uniq("fence")
    via("send_to_all", fence)
    return [c.until(fence) for c in clients]


# ------------------------------------------------------------------ sending

def test_send_to_client(via, targets):
    for c in targets:
        msg = uniq()
        assert via("send_to_client", c.client_id, msg) is True
        c.expect(msg)
    c = targets[2]
    msg = uniq("camel")
    assert via("sendToClient", c.client_id, msg) is True     # camelCase alias
    c.expect(msg)


def test_send_to_all(via, targets):
    w1, w2, t1, t2 = targets
    m1, m2, m3, m4 = uniq("all"), uniq("only"), uniq("excl"), uniq("both")
    assert via("send_to_all", m1) is None
    via("send_to_all", m2, [w1.client_id, t1.client_id])
    via("send_to_all", m3, None, [w2.client_id, t2.client_id])
    via("send_to_all", m4, [w1.client_id, w2.client_id, t1.client_id], [w2.client_id])
    got = fence_all(via, targets)
    assert got[0] == [m1, m2, m3, m4]
    assert got[1] == [m1]
    assert got[2] == [m1, m2, m3, m4]
    assert got[3] == [m1]
    # a single id as `exclude`, and an empty id list (nobody)
    m5, m6 = uniq("one-excl"), uniq("nobody")
    via("send_to_all", m5, None, t1.client_id)
    via("send_to_all", m6, [])
    got = fence_all(via, targets)
    assert got == [[m5], [m5], [], [m5]]


def test_send_to_uid(via, targets):
    w1, w2, t1, t2 = targets
    u1, u2 = uniq("uid"), uniq("uid")
    via("bind_uid", w1.client_id, u1)
    via("bind_uid", t1.client_id, u1)
    via("bind_uid", t2.client_id, u2)
    m1, m2 = uniq(), uniq()
    via("send_to_uid", u1, m1)
    via("send_to_uid", [u1, u2], m2)
    got = fence_all(via, targets)
    assert got == [[m1, m2], [], [m1, m2], [m2]]


def test_send_to_group(via, targets):
    w1, w2, t1, t2 = targets
    g1, g2 = uniq("g"), uniq("g")
    for c in (w1, t1, t2):
        via("join_group", c.client_id, g1)
    for c in (w1, t1):
        via("join_group", c.client_id, g2)
    m1, m2, m3, m4 = uniq("g1"), uniq("g1-x"), uniq("g1g2"), uniq("g1-xx")
    via("send_to_group", g1, m1)
    via("send_to_group", g1, m2, [t1.client_id])
    # a member of two listed groups gets the message twice (GatewayWorker does not de-duplicate)
    via("send_to_group", [g1, g2], m3)
    via("send_to_group", g1, m4, [w1.client_id, t2.client_id])
    got = fence_all(via, targets)
    assert got[0] == [m1, m2, m3, m3]
    assert got[1] == []
    assert got[2] == [m1, m3, m3, m4]
    assert got[3] == [m1, m2, m3]


# ------------------------------------------------------------------ closing

def test_close_client(via, targets, cluster):
    w1, w2, t1, t2 = targets
    assert via("close_client", w1.client_id) is True
    w1.wait_closed()
    assert via("close_client", t1.client_id, "bye") is True
    t1.wait_closed()
    assert t1.pending() == ["bye"]
    assert w1.pending() == []
    assert via("close_client", w2.client_id, "bye-ws") is True
    w2.wait_closed()
    assert w2.pending() == ["bye-ws"]
    assert via("is_online", t2.client_id) == 1


def test_close_client_without_message_writes_nothing(via, cluster):
    """closeClient($id) with no message sends a N; body: PHP (Workerman close(null)) closes
    the socket without writing anything, not even a websocket close frame. websocket-client
    reads the handshake and the hello frame without reading ahead, so the raw socket then
    shows every byte the gateway writes afterwards."""
    ws = websocket.create_connection("ws://127.0.0.1:%d/" % cluster.ws_port, timeout=5)
    try:
        client_id = json.loads(ws.recv())["client_id"]
        assert via("close_client", client_id) is True
        assert read_until_eof(ws.sock) == (b"", True)
    finally:
        ws.sock.close()


def test_destroy_client(via, targets):
    w1, w2, t1, t2 = targets
    assert via("destroy_client", w1.client_id) is True
    w1.wait_closed()
    assert via("destoryClient", t1.client_id) is True       # the PHP spelling
    t1.wait_closed()
    equal_eventually(lambda: via("is_online", w1.client_id), 0, what="is_online after destroy")
    assert via("is_online", w2.client_id) == 1
    assert via("is_online", t2.client_id) == 1


def test_current_client_methods(via, cluster):
    if via.name == "client":
        # a GatewayClient has no current client
        assert via("send_to_current_client", "x") is False
        with pytest.raises(DriverError) as info:
            via("close_current_client")
        assert "GatewayApiError" in info.value.classes
        with pytest.raises(DriverError) as info:
            via("destroy_current_client")
        assert "GatewayApiError" in info.value.classes
        return
    ctrl = via.controller
    msg = uniq("current")
    assert via("send_to_current_client", msg) is True
    ctrl.expect(msg)
    assert via("sendToCurrentClient", msg + "2") is True
    ctrl.expect(msg + "2")
    x = cluster.ws()
    x.request("api", "close_current_client", "bye-current")
    x.wait_closed()
    assert x.pending() == ["bye-current"]
    y = cluster.text()
    y.request("api", "destroy_current_client")
    y.wait_closed()
    z = cluster.text()
    z.request("api", "destoryCurrentClient")
    z.wait_closed()
    # close_client() on the current client's own id closes it too
    v = cluster.ws()
    v.request("api", "close_client", v.client_id, "bye-self")
    v.wait_closed()
    assert v.pending() == ["bye-self"]
    cluster.close_clients([x, y, z, v])


# ------------------------------------------------------------------ online / uid

def test_is_online(via, targets):
    w1, w2, t1, t2 = targets
    for c in targets:
        assert via("is_online", c.client_id) == 1
    assert via("isOnline", t1.client_id) == 1               # camelCase alias
    # a well-formed id of a connection that does not exist on that gateway
    ghost = t1.client_id[:12] + "%08x" % 0x7ffffff0
    assert via("is_online", ghost) == 0
    w1.close()
    equal_eventually(lambda: via("is_online", w1.client_id), 0, what="is_online after close")


def test_uid_methods(via, targets):
    w1, w2, t1, t2 = targets
    ua, ub, nobody = uniq("ua"), uniq("ub"), uniq("nobody")
    assert via("bind_uid", w1.client_id, ua) is None
    via("bind_uid", t1.client_id, ua)
    via("bind_uid", t2.client_id, ub)
    equal_eventually(lambda: sorted(via("get_client_id_by_uid", ua)),
                     sorted([w1.client_id, t1.client_id]), what="get_client_id_by_uid")
    assert via("get_client_id_by_uid", nobody) == []
    assert via("get_uid_by_client_id", t2.client_id) == ub
    assert via("get_uid_by_client_id", w2.client_id) is None
    assert via("is_uid_online", ua) == 1
    assert via("is_uid_online", nobody) == 0
    assert via("get_all_uid_list") == {ua: ua, ub: ub}
    assert via("get_all_uid_count") == 2
    batch = via("batch_get_client_id_by_uid", [ua, ub, nobody])
    assert {k: sorted(v) for k, v in batch.items()} == {
        ua: sorted([w1.client_id, t1.client_id]), ub: [t2.client_id], nobody: []}
    assert via("is_uids_online", [ua, ub, nobody]) == {ua: 1, ub: 1, nobody: 0}
    assert via("unbind_uid", t1.client_id, ua) is None
    equal_eventually(lambda: via("get_client_id_by_uid", ua), [w1.client_id],
                     what="get_client_id_by_uid after unbind")
    assert via("get_uid_by_client_id", t1.client_id) is None
    assert via("get_all_uid_count") == 2
    via("unbind_uid", w1.client_id, ua)
    equal_eventually(lambda: via("is_uid_online", ua), 0, what="is_uid_online after unbind")
    assert via("get_all_uid_list") == {ub: ub}


# ------------------------------------------------------------------ groups

def test_group_methods(via, targets):
    w1, w2, t1, t2 = targets
    ga, gb, gnone = uniq("ga"), uniq("gb"), uniq("gnone")
    u1, u2 = uniq("u1"), uniq("u2")
    for c in (w1, t1, t2):
        assert via("join_group", c.client_id, ga) is None
    via("join_group", t2.client_id, gb)
    via("bind_uid", w1.client_id, u1)
    via("bind_uid", t2.client_id, u2)
    via("set_session", t2.client_id, {"name": "T2"})
    equal_eventually(lambda: via("get_client_id_count_by_group", ga), 3,
                     what="get_client_id_count_by_group")
    assert via("getClientCountByGroup", ga) == 3
    assert via("get_client_id_count_by_group", gb) == 1
    assert via("get_client_id_count_by_group", gnone) == 0
    assert via("get_client_id_count_by_group", "") == 4 + len(via.own)   # '' = all clients
    assert via("get_all_group_id_list") == {ga: ga, gb: gb}
    assert via("get_client_id_list_by_group", ga) == {
        c.client_id: c.client_id for c in (w1, t1, t2)}
    assert via("get_client_id_list_by_group", [ga, gb]) == {
        c.client_id: c.client_id for c in (w1, t1, t2)}
    assert via("get_uid_list_by_group", ga) == {u1: u1, u2: u2}
    assert via("get_uid_count_by_group", ga) == 2
    assert via("get_uid_count_by_group", gb) == 1
    assert via("get_client_sessions_by_group", gb) == {t2.client_id: {"name": "T2"}}
    assert via("get_client_sessions_by_group", gnone) == {}
    assert via("batch_get_client_id_count_by_group", [ga, gb, gnone]) == {
        ga: 3, gb: 1, gnone: 0}
    assert via("leave_group", t2.client_id, ga) is None
    equal_eventually(lambda: via("get_client_id_count_by_group", ga), 2,
                     what="count after leave_group")
    assert via("ungroup", gb) is None
    equal_eventually(lambda: via("get_all_group_id_list"), {ga: ga},
                     what="group list after ungroup")
    assert via("get_client_id_count_by_group", gb) == 0


def test_all_group_lists(via, targets, cluster):
    """get_all_group_{uid,client_id}_{list,count}. GatewayWorker stops reading a gateway's
    clients at the first one without uid/groups, so every client here has both."""
    w1, w2, t1, t2 = targets
    gx, gy, gz = uniq("gx"), uniq("gy"), uniq("gz")
    members = {gx: [w1, w2], gy: [t1, t2, w1]}
    uids = {c.client_id: uniq("u") for c in targets}
    for c in targets:
        via("bind_uid", c.client_id, uids[c.client_id])
    for g, cs in members.items():
        for c in cs:
            via("join_group", c.client_id, g)
    expected_ids = {g: {c.client_id: c.client_id for c in cs} for g, cs in members.items()}
    expected_uids = {g: {uids[c.client_id]: uids[c.client_id] for c in cs}
                     for g, cs in members.items()}
    if via.own:   # the controller is a client too: give it a uid and a group of its own
        ctrl = via.own[0]
        via("bind_uid", ctrl, "ctrl-" + gz)
        via("join_group", ctrl, gz)
        expected_ids[gz] = {ctrl: ctrl}
        expected_uids[gz] = {"ctrl-" + gz: "ctrl-" + gz}
    equal_eventually(lambda: via("get_all_group_client_id_list"), expected_ids,
                     what="get_all_group_client_id_list")
    assert via("get_all_group_client_id_count") == {g: len(v) for g, v in expected_ids.items()}
    assert via("get_all_group_uid_list") == expected_uids
    assert via("getAllGroupUidCount") == {g: len(v) for g, v in expected_uids.items()}


def test_numeric_uid_and_group_are_int_keys(cluster):
    """PHP's array-key rule in every uid/group-keyed map: uid '123' in group '42' gives the int
    keys 123 and 42 (values stay as bound), from GatewayClient and from inside a worker. The
    worker call goes through op "api_repr" because JSON would make every key a string."""
    c = cluster.ws()
    try:
        cid = c.client_id
        gw = cluster.gateway_client()
        gw.bind_uid(cid, "123")
        gw.join_group(cid, "42")
        equal_eventually(gw.get_all_group_uid_count, {42: 1}, what="uid '123' in group '42'")
        expected = [
            ("get_all_uid_list", (), {123: "123"}),
            ("get_uid_list_by_group", ("42",), {123: "123"}),
            ("get_all_group_id_list", (), {42: 42}),
            ("get_all_group_uid_list", (), {42: {123: "123"}}),
            ("get_all_group_uid_count", (), {42: 1}),
            ("get_all_group_client_id_list", (), {42: {cid: cid}}),
            ("get_all_group_client_id_count", (), {42: 1}),
            ("batch_get_client_id_by_uid", (["123"],), {123: [cid]}),
            ("is_uids_online", (["123"],), {123: 1}),
            ("batch_get_client_id_count_by_group", (["42"],), {42: 1}),
        ]
        for method, args, want in expected:
            # dict equality is strict here: {42: 1} != {'42': 1}
            assert getattr(gw, method)(*args) == want, ("GatewayClient", method)
            assert ast.literal_eval(c.result("api_repr", method, *args)) == want, \
                ("worker", method)
    finally:
        cluster.close_clients([c])


# ------------------------------------------------------------------ sessions / lists

def test_session_methods(via, targets):
    w1, w2, t1, t2 = targets
    assert via("set_session", w1.client_id, {"a": {"x": 1, "y": 2}, "n": 1}) is None
    equal_eventually(lambda: via("get_session", w1.client_id), {"a": {"x": 1, "y": 2}, "n": 1},
                     what="get_session after set_session")
    assert via("update_session", w1.client_id, {"a": {"y": 3, "z": 4}}) is None
    equal_eventually(lambda: via("get_session", w1.client_id),
                     {"a": {"x": 1, "y": 3, "z": 4}, "n": 1}, what="deep merge")
    via("update_session", t1.client_id, {"first": True})     # no session yet: stored as is
    equal_eventually(lambda: via("get_session", t1.client_id), {"first": True},
                     what="update_session on an empty session")
    via("set_session", w1.client_id, {"b": 2})
    equal_eventually(lambda: via("get_session", w1.client_id), {"b": 2}, what="overwrite")
    assert via("get_session", w2.client_id) == {}           # no session: empty array
    # the client's own next event sees what others wrote
    assert w1.result("session") == {"b": 2}
    sessions = via("get_all_client_sessions")
    for cid in via.own:
        sessions.pop(cid)
    assert sessions == {w1.client_id: {"b": 2}, w2.client_id: {}, t1.client_id: {"first": True},
                        t2.client_id: {}}
    assert via("getSession", t1.client_id) == {"first": True}
    t2.close()
    equal_eventually(lambda: via("get_session", t2.client_id), None,
                     what="get_session of a gone client")


def test_all_client_id_list_and_count(via, targets):
    ids = sorted([c.client_id for c in targets] + via.own)
    assert sorted(via("get_all_client_id_list")) == ids
    assert via("get_all_client_id_list") == {cid: cid for cid in via("get_all_client_id_list")}
    assert via("get_all_client_id_count") == len(ids)
    assert via("getAllClientCount") == len(ids)
    targets[0].close()
    equal_eventually(lambda: via("get_all_client_id_count"), len(ids) - 1,
                     what="count after a close")
    assert targets[0].client_id not in via("get_all_client_id_list")


def test_every_gateway_process_reached(via, cluster, targets):
    """The clients of the test are spread over the inner ports of both gateways."""
    ports = {int(c.client_id[8:12], 16) for c in targets}
    assert {cluster.text_inner[0]} <= ports
    assert ports & set(cluster.ws_inner)
    assert len(cluster.gateway_client().addresses()) == len(cluster.inner_addresses)


# ------------------------------------------------------------------ secret key

def test_wrong_key_rejected_at_register(secret_cluster):
    for key in ("wrong-key", ""):
        d = secret_cluster.driver(secret=key)
        with pytest.raises(DriverError) as info:
            d.call("get_all_client_id_count")
        assert info.value.name == "RegisterRejected", info.value
        assert secret_cluster.register_address in info.value.message
        with pytest.raises(DriverError) as info:
            d.call("send_to_all", "never")
        assert info.value.name == "RegisterRejected"
    # the right key still works
    assert secret_cluster.driver().call("get_all_client_id_count") == 0


def test_wrong_key_at_inner_port_gets_nothing(secret_cluster):
    cluster = secret_cluster
    clients = [cluster.ws(), cluster.text()]
    leak = uniq("leak")
    wrong_auth = packet(gp.CMD_GATEWAY_CLIENT_CONNECT, json.dumps({"secret_key": "wrong"}).encode())
    requests = [
        # wrong key, then a broadcast and a query
        wrong_auth + packet(gp.CMD_SEND_TO_ALL, leak.encode())
        + packet(gp.CMD_GET_ALL_CLIENT_SESSIONS, flag=0),
        # no auth at all
        packet(gp.CMD_SEND_TO_ALL, leak.encode()) + packet(gp.CMD_GET_ALL_CLIENT_SESSIONS, flag=0),
        # a worker with the wrong key
        packet(gp.CMD_WORKER_CONNECT, json.dumps({"worker_key": "Evil:0",
                                                  "secret_key": "wrong"}).encode(), flag=0),
    ]
    for address in cluster.inner_addresses:
        host, port = address.rsplit(":", 1)
        for req in requests:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(req)
                data, closed = read_until_eof(s, timeout=5)
            assert data == b"" and closed, (address, req[:40], data)
    got = fence_all(Via("client", cluster, driver=cluster.driver()), clients)
    assert got == [[], []]
    # and the cluster still serves: new clients get answered by the real workers
    cluster.round_trip()
    cluster.close_clients(clients)
