"""Byte-level replay of the real PHP Lib\\Gateway calls (vectors ``lib_gateway_api``) through
gwgevent.api.gateway_api.GatewayApi with a recording fake transport.

For every call: the packets handed to the transport must equal the vectors'
``sent_on_worker_link_hex`` (commands) / ``gateway_handled[].request_hex`` (queries), the fake
answers queries with the vectors' ``reply_hex``, and the API's return value must equal the PHP
return value (compared as PHP arrays, [] == {}, with PHP's key types: where PHP has the int
key 123 the API must not return '123').
"""
from __future__ import annotations

import re
from collections import deque

import pytest

from gwgevent.api import current as api_mod
import sys

import gwgevent.context  # noqa: F401  (the package attribute `context` is the proxy)
from gwgevent.api.gateway_api import API_METHODS, GatewayApi, GatewayApiError, NoGatewayError
from gwgevent.api.phpvalues import decode_reply
from gwgevent.codec import gateway_protocol as gp
from gwgevent.codec.client_id import InvalidClientId, encode_client_id
from gwgevent.codec.phpserialize import dumps
from vectors import load_vectors, php_value

ctx_mod = sys.modules["gwgevent.context"]

QUERY_CMDS = {10, 11, 15, 16, 23, 24, 25, 26, 28, 203}


@pytest.fixture(scope="module")
def vectors():
    return load_vectors()


# ----------------------------------------------------------------------------------------------
# PHP values: a tiny literal parser for the vectors' `call` strings, and PHP-array comparison
# ----------------------------------------------------------------------------------------------

class _Php:
    def __init__(self, src: str) -> None:
        self.s, self.i = src, 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self, n=1):
        return self.s[self.i:self.i + n]

    def value(self):
        self.ws()
        c = self.peek()
        if c == "'":
            return self.single()
        if c == '"':
            return self.double()
        if c == "[":
            return self.array()
        m = re.compile(r"-?\d+(\.\d+)?").match(self.s, self.i)
        if m:
            self.i = m.end()
            return float(m.group()) if m.group(1) else int(m.group())
        for word, val in (("null", None), ("true", True), ("false", False)):
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return val
        raise ValueError("cannot parse PHP literal at %r" % self.s[self.i:])

    def single(self):
        self.i += 1
        out = []
        while True:
            c = self.s[self.i]
            if c == "\\" and self.s[self.i + 1] in "\\'":
                out.append(self.s[self.i + 1])
                self.i += 2
            elif c == "'":
                self.i += 1
                return "".join(out)
            else:
                out.append(c)
                self.i += 1

    def double(self):
        self.i += 1
        out = bytearray()
        esc = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "$": b"$", "0": b"\0"}
        while True:
            c = self.s[self.i]
            if c == "\\":
                n = self.s[self.i + 1]
                if n == "x":
                    out.append(int(self.s[self.i + 2:self.i + 4], 16))
                    self.i += 4
                    continue
                out += esc.get(n, ("\\" + n).encode())
                self.i += 2
            elif c == '"':
                self.i += 1
                try:
                    return out.decode("utf-8")
                except UnicodeDecodeError:
                    return bytes(out)
            else:
                out += c.encode("utf-8")
                self.i += 1

    def array(self):
        self.i += 1
        pairs, keyed, nxt = [], False, 0
        while True:
            self.ws()
            if self.peek() == "]":
                self.i += 1
                break
            v = self.value()
            self.ws()
            if self.peek(2) == "=>":
                self.i += 2
                key, v, keyed = v, self.value(), True
                if isinstance(key, int):
                    nxt = key + 1
            else:
                key, nxt = nxt, nxt + 1
            pairs.append((key, v))
            self.ws()
            if self.peek() == ",":
                self.i += 1
        if not keyed:
            return [v for _, v in pairs]
        return dict(pairs)


def parse_call(call: str):
    call = call.split("  [")[0].strip()
    name, _, rest = call.partition("(")
    args_src = rest[:rest.rindex(")")]
    p, args = _Php(args_src), []
    p.ws()
    while p.i < len(p.s):
        args.append(p.value())
        p.ws()
        if p.peek() == ",":
            p.i += 1
        p.ws()
    return name, args


def php_norm(v):
    """A comparable form of a PHP value: arrays (list or dict) become ordered (key, value) pairs,
    so [] == {} and [x] == {0: x}. Keys are compared as they are, type included: give the PHP
    side through ``php_value`` (vectors JSON keys that are canonical ints become int keys), so
    an API result keyed '123' where PHP has 123 fails."""
    if isinstance(v, dict):
        return ("array", tuple(((type(k).__name__, k), php_norm(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return ("array", tuple((("int", i), php_norm(x)) for i, x in enumerate(v)))
    if isinstance(v, bool):
        return ("bool", v)
    if v is None:
        return ("null",)
    return (type(v).__name__, v)


# ----------------------------------------------------------------------------------------------
# recording transport
# ----------------------------------------------------------------------------------------------

class GatewayGone(GatewayApiError):
    pass


class RecordingTransport:
    """Records commands; answers queries from a queue of (expected request, reply) pairs."""

    def __init__(self, address: str, secret_key: str = "") -> None:
        self.address = address
        self.secret_key = secret_key
        self.sent: list = []       # (address or '*', packet)
        self.queries: list = []    # (address, packet)
        self.replies: deque = deque()

    def addresses(self):
        return [self.address]

    def send(self, address, packet):
        self.sent.append((address, packet))
        return address == self.address

    def send_all(self, packet):
        self.sent.append(("*", packet))

    def _answer(self, address, packet):
        self.queries.append((address, packet))
        assert self.replies, "unexpected query %s" % packet.hex()
        reply_hex = self.replies.popleft()
        if reply_hex is None:
            raise GatewayGone("connection close tcp://%s" % address)
        reply = bytes.fromhex(reply_hex)
        assert int.from_bytes(reply[:4], "big") == len(reply) - 4
        return decode_reply(reply[4:])

    def query(self, address, packet):
        return self._answer(address, packet)

    def query_all(self, packet):
        return {self.address: self._answer(self.address, packet)}


def _handled_queries(call):
    return [g for g in call.get("gateway_handled") or [] if g.get("cmd", g["request"]["cmd"]) in QUERY_CMDS]


# ----------------------------------------------------------------------------------------------
# the replay
# ----------------------------------------------------------------------------------------------

def _phase(vectors, name):
    for phase in vectors["lib_gateway_api"]["phases"]:
        if phase["phase"] == name:
            return phase
    pytest.fail("phase %s missing from the vectors" % name)


def _replay_call(api, transport, call, address):
    text = call["call"]
    transport.sent.clear()
    transport.queries.clear()
    transport.replies.clear()
    queries = _handled_queries(call)
    for g in queries:
        transport.replies.append(g.get("reply_hex"))
    ip, port = address.split(":")
    expected = php_value(call["returns"])

    if text.startswith("raw "):
        if "CMD_BATCH_GET_CLIENT_ID_BY_UID" in text:
            got = api.batch_get_client_id_by_uid(["u1", "123", "nobody"])
            expected = {uid: [encode_client_id(gp.ip2long(ip), int(port), c) for c in conns]
                        for uid, conns in expected.items()}
        elif "CMD_BATCH_GET_CLIENT_COUNT_BY_GROUP" in text:
            got = api.batch_get_client_id_count_by_group(["room", "lobby", "none"])
        elif "where {groups:[room], uid:[123]}" in text:
            merged = api._select(["session", "uid", "groups"], {"groups": ["room"], "uid": ["123"]})
            got = {cid: info for _ip, _port, data in merged for cid, info in data.items()}
        else:
            return "skipped"
    else:
        name, args = parse_call(text)
        method = getattr(api, name)
        if call.get("exception"):
            with pytest.raises(GatewayGone):
                method(*args)
            got = None
        else:
            got = method(*args)

    # queries: exact request bytes, in order
    want_q = [g["request_hex"] for g in queries]
    got_q = [p.hex() for _a, p in transport.queries]
    assert got_q == want_q, text
    # commands: exact bytes put on the worker link
    want_sent = call.get("sent_on_worker_link_hex", [])
    got_sent = [p.hex() for _a, p in transport.sent]
    assert got_sent == want_sent, text
    for a, _p in transport.sent:
        assert a in ("*", address), text
    assert php_norm(got) == php_norm(expected), "%s: got %r, PHP returned %r" % (text, got, expected)
    return "ok"


def test_no_secret_phase_byte_exact(vectors):
    phase = _phase(vectors, "no_secret")
    transport = RecordingTransport(phase["gateway_address"])
    api = GatewayApi(transport)
    results = [(_replay_call(api, transport, c, phase["gateway_address"]), c["call"])
               for c in phase["calls"]]
    ok = [c for r, c in results if r == "ok"]
    assert len(ok) >= len(phase["calls"]) - 1  # only the deliberately invalid raw SELECT skipped
    assert len(phase["calls"]) == 80


def test_secret_abc_phase(vectors):
    """API packets are the same with a secret key; the push transport frames them with the auth
    packet exactly as PHP's Lib did on the wire."""
    from gwgevent.api.push import PushTransport

    phase = _phase(vectors, "secret_abc")
    address = phase["gateway_address"]
    for call in phase["calls"]:
        handled = call["gateway_handled"]
        key = re.search(r"secretKey '([^']*)'", call["call"]).group(1)
        transport = RecordingTransport(address, secret_key=key)
        api = GatewayApi(transport)
        name, args = parse_call(call["call"])
        api_requests = [g for g in handled if g["request"]["cmd"] != gp.CMD_GATEWAY_CLIENT_CONNECT]
        auth = [g for g in handled if g["request"]["cmd"] == gp.CMD_GATEWAY_CLIENT_CONNECT]
        if call.get("exception"):
            transport.replies.append(None)
            with pytest.raises(GatewayGone):
                getattr(api, name)(*args)
        else:
            for g in api_requests:
                transport.replies.append(g["reply_hex"])
            got = getattr(api, name)(*args)
            assert php_norm(got) == php_norm(php_value(call["returns"])), call["call"]
        (_addr, packet), = transport.queries
        if api_requests:
            assert packet.hex() == api_requests[0]["request_hex"]
        framed = PushTransport("127.0.0.1:1", secret_key=key).frame(packet)
        want = "".join(g["request_hex"] for g in auth) + packet.hex()
        assert framed.hex() == want, call["call"]
        if key == "":
            assert framed == packet


def test_abc_client_writes_live(vectors):
    """live_secret_abc.abc_client_writes: the 76-byte auth+query buffers a PHP client wrote."""
    from gwgevent.api.push import PushTransport

    writes = vectors["live_secret_abc"]["abc_client_writes"]
    buffers = [w for w in writes if w.get("packets")]
    assert buffers
    t = PushTransport("127.0.0.1:1", secret_key="abc")
    for w in buffers:
        cmd = w["packets"][1]["cmd"]
        rec = RecordingTransport("127.0.0.1:2960", secret_key="abc")
        rec.replies.append("00000004693a303b" if cmd == gp.CMD_GET_CLIENT_COUNT_BY_GROUP
                           else "00000006613a303a7b7d")
        api = GatewayApi(rec)
        if cmd == gp.CMD_GET_ALL_CLIENT_SESSIONS:
            api.get_all_client_sessions()
        elif cmd == gp.CMD_GET_CLIENT_COUNT_BY_GROUP:
            api.get_all_client_count()
        else:
            continue
        (_a, packet), = rec.queries
        assert t.frame(packet).hex() == w["bytes_hex"]
    line = [w for w in writes if w.get("text", "").startswith('{"event":"worker_connect"') and
            '"abc"' in w["text"]][0]
    from gwgevent.codec.register_lines import worker_connect_line
    assert worker_connect_line("abc").hex() == line["bytes_hex"]


def test_query_reply_from_gateway(vectors):
    """query_reply.from_gateway: each Lib call -> request bytes, reply -> the Lib's return."""
    checked = 0
    for entry in vectors["query_reply"]["from_gateway"]:
        text = entry["lib_call"]
        if text.startswith("raw "):
            continue
        transport = RecordingTransport("127.0.0.1:2900")
        transport.replies.append(entry["reply_hex"])
        api = GatewayApi(transport)
        name, args = parse_call(text)
        got = getattr(api, name)(*args)
        (_a, packet), = transport.queries
        assert packet.hex() == entry["request_hex"], text
        assert php_norm(got) == php_norm(php_value(entry["lib_returns"])), text
        checked += 1
    assert checked >= 25


def test_invalid_client_id(vectors, caplog):
    rows = vectors["client_id"]["lib_gateway_with_invalid_id"]
    transport = RecordingTransport("127.0.0.1:2900")
    api = GatewayApi(transport)
    for row in rows:
        name, args = parse_call(row["call"])
        caplog.clear()
        assert php_norm(getattr(api, name)(*args)) == php_norm(php_value(row["returns"])), row["call"]
        assert len([r for r in caplog.records if "is invalid" in r.getMessage()]) == 1
    assert not transport.sent and not transport.queries
    strict = GatewayApi(transport, strict_client_id=True)
    for row in rows:
        name, args = parse_call(row["call"])
        with pytest.raises(InvalidClientId):
            getattr(strict, name)(*args)


# ----------------------------------------------------------------------------------------------
# semantics not covered by the vectors
# ----------------------------------------------------------------------------------------------

def test_aliases_generated_from_table():
    names = set()
    for entry in API_METHODS:
        assert callable(getattr(GatewayApi, entry[0])), entry[0]
        for alias in entry[1:]:
            assert callable(getattr(GatewayApi, alias)), alias
            names.add(alias)
    for must in ("sendToAll", "destoryClient", "destory_client", "getAllClientCount",
                 "getClientCountByGroup", "isUidsOnline", "batchGetClientIdByUid",
                 "batchGetClientIdCountByGroup", "destoryCurrentClient", "setSocketSession"):
        assert must in names
    # aliases follow overrides in subclasses
    class Sub(GatewayApi):
        def is_online(self, client_id):
            return 42
    assert Sub(RecordingTransport("127.0.0.1:1")).isOnline("x") == 42


def _ctx(session=None):
    c = ctx_mod.Context(client_id=encode_client_id(gp.ip2long("127.0.0.1"), 2900, 7),
                        connection_id=7, local_ip="127.0.0.1", local_port=2900,
                        client_ip="1.2.3.4", client_port=5555, gateway_port=7272,
                        session=session)
    return c


def test_current_client_shortcuts():
    t = RecordingTransport("127.0.0.1:2900")
    api = GatewayApi(t)
    with pytest.raises(GatewayApiError):
        api.close_current_client()
    with pytest.raises(GatewayApiError):
        api.destroy_current_client()
    assert api.send_to_current_client("x") is False and not t.sent
    c = _ctx({"a": 1})
    ctx_mod.bind(c)
    try:
        assert api.send_to_current_client("hi") is True
        assert api.close_client(c.client_id, "bye") is True
        assert api.destoryClient(c.client_id) is True
        (a1, p1), (a2, p2), (a3, p3) = t.sent
        assert a1 == a2 == a3 == "127.0.0.1:2900"
        assert p1 == gp.encode(gp.CMD_SEND_TO_ONE, "hi", connection_id=7)
        assert p2 == gp.encode(gp.CMD_KICK, "bye", connection_id=7)
        assert p3 == gp.encode(gp.CMD_DESTROY, b"", connection_id=7)
    finally:
        ctx_mod.unbind()


def test_set_and_update_session_of_current_client():
    t = RecordingTransport("127.0.0.1:2900")
    api = GatewayApi(t)
    c = _ctx({"a": 1, "n": {"x": 1, "y": 2}})
    ctx_mod.bind(c)
    try:
        api.update_session(c.client_id, {"n": {"y": 3}, "b": 2})
        assert c.session == {"a": 1, "n": {"x": 1, "y": 3}, "b": 2}
        assert c.old_session == c.session and c.old_session is not c.session
        api.set_session(c.client_id, {"only": True})
        assert c.session == {"only": True} and c.old_session == {"only": True}
        c.session["more"] = 1          # later changes are still detected by the write-back
        assert c.old_session != c.session
        # the current client's entry of getAllClientSessions comes from the local session
        payload = dumps({1: "", 2: "", 7: ""})
        t.replies.append((len(payload).to_bytes(4, "big") + payload).hex())
        sessions = api.get_all_client_sessions()
        assert sessions[c.client_id] == {"only": True, "more": 1}
        assert len(sessions) == 3
    finally:
        ctx_mod.unbind()
    (_a, p1), (_b, p2) = t.sent
    assert p1 == gp.encode(gp.CMD_UPDATE_SESSION, b"", connection_id=7,
                           ext_data=b'a:2:{s:1:"n";a:1:{s:1:"y";i:3;}s:1:"b";i:2;}')
    assert p2 == gp.encode(gp.CMD_SET_SESSION, b"", connection_id=7,
                           ext_data=b'a:1:{s:4:"only";b:1;}')


def test_empty_group_ids_rejected(caplog):
    t = RecordingTransport("127.0.0.1:2900")
    api = GatewayApi(t)
    for bad in (0, "0", "", None, False, []):
        assert api.send_to_group(bad, "x") is False
        assert api.ungroup(bad) is False
        assert api.get_client_id_list_by_group(bad) == {}
        assert api.get_client_sessions_by_group(bad) == {}
        assert api.get_uid_list_by_group(bad) == {}
        assert api.get_uid_count_by_group(bad) == 0
    assert not t.sent and not t.queries


def test_not_connected_gateway_in_worker():
    class WorkerLike(RecordingTransport):
        def is_connected(self, address):
            return False
    t = WorkerLike("127.0.0.1:2900")
    api = GatewayApi(t)
    cid = encode_client_id(gp.ip2long("127.0.0.1"), 2900, 1)
    assert api.is_online(cid) == 0
    assert api.get_session(cid) is None
    assert not t.queries


def test_multi_gateway_merge_order():
    """Replies are merged per [local_ip][local_port] like PHP (grouped by ip, first seen)."""
    class Multi(RecordingTransport):
        def addresses(self):
            return ["10.0.0.1:2000", "10.0.0.2:2000", "10.0.0.1:2001"]

        def query_all(self, packet):
            self.queries.append(("*", packet))
            return {"10.0.0.1:2000": [1], "10.0.0.2:2000": [2], "10.0.0.1:2001": [3]}
    api = GatewayApi(Multi("x"))
    ids = api.get_client_id_by_uid("u")
    assert ids == [encode_client_id(gp.ip2long("10.0.0.1"), 2000, 1),
                   encode_client_id(gp.ip2long("10.0.0.1"), 2001, 3),
                   encode_client_id(gp.ip2long("10.0.0.2"), 2000, 2)]
    assert api.is_uid_online("u") == 1


def test_no_gateway_raises_for_queries():
    class Empty(RecordingTransport):
        def addresses(self):
            return []
    api = GatewayApi(Empty("x"))
    with pytest.raises(NoGatewayError):
        api.get_all_client_id_count()


def test_get_api_resolution(monkeypatch):
    t = RecordingTransport("127.0.0.1:2900")
    api_mod.uninstall_transport()
    try:
        api_mod.configure(register_address=["127.0.0.1:1", "127.0.0.1:2"], secret_key="k")
        push = api_mod.get_api()
        from gwgevent.api.push import GatewayClient
        assert isinstance(push, GatewayClient) and push.strict_client_id
        assert push.transport.registers == ["127.0.0.1:1", "127.0.0.1:2"]
        assert push.secret_key == "k"
        assert api_mod.get_api() is push
        api_mod.configure(secret_key="k2")
        assert api_mod.get_api() is not push and api_mod.get_api().secret_key == "k2"
        installed = api_mod.install_transport(t)
        assert api_mod.get_api() is installed and api_mod.default_api() is installed
        assert installed.strict_client_id is False
    finally:
        api_mod.uninstall_transport()
        api_mod.configure(register_address="127.0.0.1:1236", secret_key="")
