"""WebSocketCodec against the PHP golden vectors and RFC 6455 edge cases (bytes only)."""
from __future__ import annotations

import os
import random

import pytest

from gwgevent.codec.phpserialize import dumps as php_serialize
from gwgevent.protocols import CLOSE, WebSocketCodec, encode_frame
from gwgevent.protocols.websocket import MAX_HANDSHAKE, close_frame, unmask
from vectors import load_vectors

WS = load_vectors("websocket")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = ("GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:7272\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
           % KEY).encode()
MASK = bytes.fromhex("37fa213d")


class Conn:
    """The attributes a codec may read from its connection."""

    def __init__(self, max_package_size: int = 10485760, websocket_type: bytes = b"\x81",
                 max_send_buffer_size: int = 1048576) -> None:
        self.max_package_size = max_package_size
        self.max_send_buffer_size = max_send_buffer_size
        self.websocket_type = websocket_type
        self.remote_ip = "127.0.0.1"
        self.remote_port = 54321
        self.local_ip = "127.0.0.1"
        self.local_port = 7272


def frame(op: int, payload: bytes = b"", fin: bool = True, mask: bytes = MASK,
          rsv: int = 0, masked: bool = True, length: int | None = None) -> bytes:
    """A client frame; `length` overrides the header length (for oversize headers)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | op])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    return head + mask + unmask(payload, mask)


def take(codec: WebSocketCodec) -> list:
    """What the connection writes for the codec (and resets, as the connection does)."""
    out = list(codec.out or [])
    codec.out = []
    codec.pending = False
    return out


def feed_all(codec: WebSocketCodec, data: bytes) -> list:
    """feed() plus the connection's `more` rounds."""
    msgs = codec.feed(data)
    while codec.more:
        msgs += codec.feed(b"")
    return msgs


def opened(**kw) -> WebSocketCodec:
    codec = WebSocketCodec(Conn(**kw))
    assert codec.feed(REQUEST) == []
    assert codec.handshake is not None
    take(codec)
    codec.handshake = None
    return codec


def close_code(data: bytes) -> int:
    assert data[0] == 0x88
    return int.from_bytes(data[2:4], "big")


def assert_failed(codec: WebSocketCodec, code: int) -> None:
    out = take(codec)
    assert len(out) == 1 and close_code(out[0]) == code, out
    assert codec.closing == CLOSE
    assert codec.error


# ---------------------------------------------------------------- handshake

def test_handshake_response_is_byte_exact():
    hs = WS["handshake"]
    codec = WebSocketCodec(Conn())
    assert codec.feed(hs["request"].encode()) == []
    assert codec.pending and not codec.closing
    assert take(codec) == [hs["response"].encode()]
    assert bytes.fromhex(hs["response_hex"]) == hs["response"].encode()
    assert codec.path == "/chat"
    assert codec.buf == b""


def test_handshake_data_for_cmd205_matches_gateway_vector():
    gp = load_vectors("gateway_protocol")
    case = next(c for c in gp["cases"] if c["name"] == "on_websocket_connect")
    codec = WebSocketCodec(Conn())
    req = WS["handshake_for_cmd205"]
    codec.feed(req["request"].encode())
    assert take(codec) == [req["response"].encode()]
    assert codec.handshake == case["input"]["body"]
    assert list(codec.handshake["server"]) == list(case["input"]["body"]["server"])
    assert php_serialize(codec.handshake) == case["input"]["body_serialized"].encode()


def test_handshake_data_matches_live_capture_types():
    live = load_vectors("live_conversation")
    body = None
    for write in live["internal_traffic"]["writes"]:
        for pkt in write.get("packets", []):
            if pkt.get("cmd") == 205:
                body = pkt["body"]
    assert body is not None
    conn = Conn()
    conn.remote_port = body["server"]["REMOTE_PORT"]
    codec = WebSocketCodec(conn)
    codec.feed(b"GET /?token=live HTTP/1.1\r\nHost: 127.0.0.1:7272\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() +
               b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    expected = dict(body, cookie={})    # PHP's empty array is JSON [] in the vectors
    assert codec.handshake == expected
    assert isinstance(codec.handshake["server"]["REMOTE_PORT"], int)
    assert codec.handshake["server"]["CONTENT_TYPE"] is None


@pytest.mark.parametrize("case", WS["handshake_errors"], ids=lambda c: c["name"])
def test_handshake_errors_are_byte_exact(case):
    codec = WebSocketCodec(Conn())
    assert codec.feed(case["request"].encode()) == []
    assert take(codec) == [case["response"].encode()]
    assert codec.closing == CLOSE
    assert codec.error
    assert codec.feed(frame(1, b"late")) == []
    assert codec.encode("x") == b""


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GARBAGE\r\n\r\n",
], ids=["http10", "no-upgrade", "connection-not-upgrade", "bad-key", "garbage"])
def test_not_a_websocket_upgrade_gets_400(request_bytes):
    codec = WebSocketCodec(Conn())
    codec.feed(request_bytes)
    out = take(codec)
    assert len(out) == 1 and out[0].startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert codec.closing == CLOSE


def test_connection_header_token_list_is_accepted():
    codec = WebSocketCodec(Conn())
    codec.feed(REQUEST.replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade"))
    assert take(codec)[0].startswith(b"HTTP/1.1 101 Switching Protocol\r\n")
    assert not codec.closing


def test_non_get_is_rejected_before_the_header_ends():
    codec = WebSocketCodec(Conn())
    codec.feed(b"\x16\x03\x01")          # a TLS ClientHello on a plain ws port
    assert take(codec)[0].startswith(b"HTTP/1.1 400")
    assert codec.closing == CLOSE


def test_handshake_byte_by_byte_then_frames_in_same_read():
    codec = WebSocketCodec(Conn())
    for i in range(len(REQUEST) - 1):
        assert codec.feed(REQUEST[i:i + 1]) == []
        assert not codec.pending
    msgs = codec.feed(REQUEST[-1:] + frame(1, b"hi") + frame(2, b"\x00"))
    assert msgs == ["hi", b"\x00"]
    out = take(codec)
    assert len(out) == 1 and out[0].startswith(b"HTTP/1.1 101 ")


def test_handshake_header_size_is_bounded():
    codec = WebSocketCodec(Conn())
    junk = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 1000
    for _ in range(MAX_HANDSHAKE // 1000 + 1):
        codec.feed(junk)
        if codec.closing:
            break
        junk = b"a" * 1000
    assert codec.closing == CLOSE
    assert take(codec)[0].startswith(b"HTTP/1.1 400")
    assert codec.buf == b""


def test_get_and_cookie_follow_php_parse_str():
    codec = WebSocketCodec(Conn())
    req = REQUEST.replace(b"/chat?x=1", b"/p?a[]=1&a[]=2&b[k]=v&c.d=%E5%BC%A0+x&7=seven&e")
    req = req.replace(b"\r\n\r\n", b"\r\nCookie: s=1; t=a%20b;u=c+d\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
    codec.feed(req)
    data = codec.handshake
    assert data["get"] == {"a": {0: "1", 1: "2"}, "b": {"k": "v"}, "c_d": "张 x", 7: "seven",
                           "e": ""}
    assert data["cookie"] == {"s": "1", "t": "a b", "u": "c d"}
    assert data["server"]["HTTP_X_A"] == "1,2"
    assert data["server"]["QUERY_STRING"].startswith("a[]=1")


# ---------------------------------------------------------------- encode

@pytest.mark.parametrize("case", WS["server_encode"], ids=lambda c: str(c.get("payload_len",
                                                                               c.get("note", ""))))
def test_server_encode_vectors(case):
    conn = Conn()
    if "websocketType" in case:
        conn.websocket_type = b"\x82"
    codec = WebSocketCodec(conn)
    codec.state = 1                     # open (the handshake is tested separately)
    if "error" in case:
        # PHP's Websocket::encode throws a TypeError for an int payload (strict_types; the
        # vectors note says a gateway never passes one). We deliberately send its string form.
        assert "TypeError" in case["error"] and case["payload_php"] == "12345 (int)"
        assert codec.encode(12345) == encode_frame(b"12345", 0x81)
        return
    if str(case.get("payload", "")).startswith("'a' x"):
        payload = "a" * case["payload_len"]
    elif "payload_php" in case:
        payload = {"a": "张三", "b": "x/y"}
    elif "payload_hex" in case:
        payload = bytes.fromhex(case["payload_hex"])
    else:
        payload = case["payload"]
    got = codec.encode(payload)
    if "frame_hex" in case:
        assert got.hex() == case["frame_hex"]
    if "header_hex" in case:
        assert got.hex().startswith(case["header_hex"])
        assert len(got) == case["frame_len"]
        data = payload.encode() if isinstance(payload, str) else payload
        assert encode_frame(data, 0x81) == got


def test_bytes_are_sent_as_text_frames_unless_binary_type():
    codec = opened()
    assert codec.encode(b"\x00\x01")[:1] == b"\x81"      # Workerman: websocketType decides
    codec.conn.websocket_type = b"\x82"
    assert codec.encode("x") == b"\x82\x01x"
    assert encode_frame(b"abc", 0x82) == b"\x82\x03abc"


def test_queued_before_handshake():
    q = WS["queued_before_handshake"]
    codec = WebSocketCodec(Conn())
    assert codec.encode(q["sent_before_handshake"]) == b""
    codec.feed(WS["handshake"]["request"].encode())
    assert [w.hex() for w in take(codec)] == q["writes_after_handshake_hex"]
    assert codec.queue is None
    assert codec.encode("now") == b"\x81\x03now"


def test_queue_before_handshake_is_bounded():
    codec = WebSocketCodec(Conn(max_send_buffer_size=100))
    codec.encode("a" * 60)
    codec.encode("b" * 60)
    codec.encode("c" * 60)               # dropped: already above the limit
    assert codec.error and codec.pending
    codec.error = None
    codec.feed(REQUEST)
    out = take(codec)
    assert len(out) == 2 and out[1].count(b"a") == 60 and out[1].count(b"c") == 0


def test_close_frame_for_server_initiated_close():
    codec = opened()
    assert codec.close_frame() == b"\x88\x02\x03\xe8"
    assert codec.close_frame() == b""
    assert codec.encode("after") == b""
    assert close_frame(1001, b"bye") == b"\x88\x05\x03\xe9bye"
    assert WebSocketCodec(Conn()).close_frame() == b""    # before the handshake


# ---------------------------------------------------------------- client frames (vectors)

@pytest.mark.parametrize("case", WS["client_frames"],
                         ids=lambda c: c.get("name") or "opcode%d-%d" % (c["opcode"],
                                                                         c.get("frame_len", 0)))
def test_client_frame_vectors(case):
    codec = opened()
    if case.get("frame_hex"):
        data = bytes.fromhex(case["frame_hex"])
    else:
        data = frame(case["opcode"], b"b" * 200, mask=bytes.fromhex(case["mask_hex"]))
        assert len(data) == case["frame_len"]
    msgs = codec.feed(data)
    if case.get("name") == "unmasked_client_frame":
        assert msgs == []
        assert_failed(codec, 1002)
        return
    if "decoded" in case:
        expected = case["decoded"]
        assert msgs == ["b" * 200 if expected == "'b' x 200" else expected]
    else:
        assert msgs == []
    out = take(codec)
    assert [o.hex() for o in out] == case["server_wrote_hex"]
    if case["opcode"] == 8:
        assert codec.closing == CLOSE
    else:
        assert not codec.closing


# ---------------------------------------------------------------- protocol errors

@pytest.mark.parametrize("data,code", [
    (frame(1, b"x", rsv=4), 1002),
    (frame(1, b"x", rsv=1), 1002),
    (frame(3, b"x"), 1002),
    (frame(7, b""), 1002),
    (frame(11, b""), 1002),
    (frame(15, b"x"), 1002),
    (frame(9, b"x" * 126), 1002),
    (frame(9, b"x", fin=False), 1002),
    (frame(0, b"x"), 1002),
    (frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"), 1007),
    (frame(1, b"\xff"), 1007),
    (frame(8, b"\x03"), 1002),
    (frame(8, b"\x03\xe8\xff\xfe"), 1007),
    (frame(1, b"x", masked=False), 1002),
    (b"\x81\xff" + (1 << 63).to_bytes(8, "big") + MASK, 1002),
], ids=["rsv4", "rsv1", "opcode3", "opcode7", "opcode11", "opcode15", "ping126",
        "fragmented-ping", "continuation-first", "utf8-surrogate", "utf8-ff", "close-1byte",
        "close-bad-reason", "unmasked", "length-msb"])
def test_protocol_errors_close_with_the_right_code(data, code):
    codec = opened()
    assert codec.feed(data) == []
    assert_failed(codec, code)
    assert codec.feed(frame(1, b"ignored")) == []
    assert codec.out == []


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                                  5000, 65535])
def test_invalid_close_codes(code):
    codec = opened()
    codec.feed(frame(8, code.to_bytes(2, "big")))
    assert_failed(codec, 1002)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                  3000, 3999, 4000, 4999])
def test_valid_close_codes_are_echoed(code):
    codec = opened()
    assert codec.feed(frame(8, code.to_bytes(2, "big") + "bye ✓".encode())) == []
    assert take(codec) == [b"\x88\x02" + code.to_bytes(2, "big")]
    assert codec.closing == CLOSE
    assert codec.error is None


def test_new_message_inside_fragmented_message_is_an_error():
    codec = opened()
    assert codec.feed(frame(1, b"a", fin=False)) == []
    assert codec.feed(frame(1, b"b")) == []
    assert_failed(codec, 1002)


# ---------------------------------------------------------------- fragmentation, UTF-8

def test_fragmented_text_with_ping_in_between():
    codec = opened()
    msgs = codec.feed(frame(1, b"frag", fin=False) + frame(9, b"ping payload") +
                      frame(0, b"ment", fin=False) + frame(0, "1✓".encode()))
    assert msgs == ["fragment1✓"]
    assert take(codec) == [b"\x8a\x0cping payload"]
    assert not codec.more


def test_fragmented_binary_and_empty_fragments():
    codec = opened()
    msgs = codec.feed(frame(2, b"", fin=False) + frame(0, b"\x00", fin=False) +
                      frame(0, b"") + frame(0x0A, b"pong") + frame(1, b""))
    assert msgs == [b"\x00", ""]
    assert take(codec) == []


def test_code_point_split_across_fragments_is_valid():
    data = "κόσμε".encode()
    codec = opened()
    frames = b"".join(frame(1 if i == 0 else 0, data[i:i + 1], fin=i == len(data) - 1)
                      for i in range(len(data)))
    assert codec.feed(frames) == ["κόσμε"]


def test_utf8_fails_fast_in_fragments():
    # Autobahn 6.4.1: the 2nd fragment makes the message invalid; fail before the 3rd
    codec = opened()
    assert codec.feed(frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", fin=False)) == []
    assert not codec.pending
    assert codec.feed(frame(0, b"\xf4\x90\x80\x80", fin=False)) == []
    assert_failed(codec, 1007)


def test_utf8_fails_fast_on_a_single_byte_fragment():
    # Autobahn 6.4.2: ... f4 | 90 | ...: the lone 0x90 fragment is already invalid
    payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4"
    codec = opened()
    assert codec.feed(frame(1, payload, fin=False)) == []
    assert not codec.pending
    assert codec.feed(frame(0, b"\x90", fin=False)) == []
    assert_failed(codec, 1007)


def test_utf8_fails_fast_inside_a_partial_frame():
    # Autobahn 6.4.3/6.4.4: one frame, payload arrives in chops
    payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
    data = frame(1, payload)
    codec = opened()
    assert codec.feed(data[:6 + 11]) == []
    assert not codec.pending
    assert codec.feed(data[17:19]) == []     # ed a0: an encoded surrogate, invalid already
    assert_failed(codec, 1007)


def test_text_ending_inside_a_code_point_is_invalid():
    codec = opened()
    codec.feed(frame(1, b"ok\xe2\x82", fin=False))
    assert not codec.pending
    codec.feed(frame(0, b""))
    assert_failed(codec, 1007)


def test_raw_text_returns_validated_bytes():
    codec = opened()
    codec.raw_text = True
    assert codec.feed(frame(1, "张三".encode()) + frame(1, b"a") + frame(2, b"b")) == \
        ["张三".encode(), b"a", b"b"]
    assert codec.feed(frame(1, b"x", fin=False) + frame(0, b"y")) == [b"xy"]
    codec.feed(frame(1, b"\xc3\x28"))
    assert_failed(codec, 1007)


# ---------------------------------------------------------------- sizes

def test_oversize_frame_header_is_rejected_before_buffering():
    codec = opened()
    header = b"\x82\xff" + (2 << 30).to_bytes(8, "big") + MASK
    assert codec.feed(header + b"x" * 1000) == []
    assert_failed(codec, 1009)
    assert codec.buf == b"" and codec.cur is None
    assert codec.feed(b"x" * 65536) == []


def test_oversize_header_alone_is_enough():
    codec = opened(max_package_size=1000)
    assert codec.feed(b"\x81\xfe\x03\xe9") == []       # 1001 bytes announced, no mask yet
    assert_failed(codec, 1009)


def test_fragmented_message_size_is_accumulated():
    codec = opened(max_package_size=1000)
    assert codec.feed(frame(2, b"a" * 600, fin=False)) == []
    assert codec.feed(frame(0, b"a" * 401)) == []
    assert_failed(codec, 1009)


def test_message_at_the_limit_is_accepted():
    codec = opened(max_package_size=1000)
    assert codec.feed(frame(2, b"a" * 600, fin=False) + frame(0, b"a" * 400)) == [b"a" * 1000]


# ---------------------------------------------------------------- split reads, ordering

def _sample_stream():
    rnd = random.Random(7)
    parts, expected = [], []
    for size in (0, 1, 5, 125, 126, 127, 4095, 65535, 65536, 70000):
        data = bytes(rnd.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
        data = data[:size]
        parts.append(frame(2, data, mask=os.urandom(4)))
        expected.append(data)
        text = ("é" * size)[: size // 2]
        parts.append(frame(1, text.encode(), mask=os.urandom(4)))
        expected.append(text)
    parts.append(frame(1, "fragmented ✓".encode()[:5], fin=False))
    parts.append(frame(0, "fragmented ✓".encode()[5:]))
    expected.append("fragmented ✓")
    return b"".join(parts), expected


def test_split_feed_byte_by_byte_small_frames():
    data = b"".join(frame(1, ("m%d✓" % i).encode()) for i in range(20)) + \
        frame(2, b"\x00" * 300) + frame(1, "ab✓".encode()[:3], fin=False) + \
        frame(0, "ab✓".encode()[3:])
    codec = opened()
    msgs = []
    for i in range(len(data)):
        msgs += codec.feed(data[i:i + 1])
    assert msgs == ["m%d✓" % i for i in range(20)] + [b"\x00" * 300, "ab✓"]
    assert not codec.pending and codec.buf == b"" and codec.cur is None


@pytest.mark.parametrize("chunk", [1000, 4096, 65536, 1 << 20])
def test_split_feed_in_chunks(chunk):
    data, expected = _sample_stream()
    codec = opened()
    msgs = []
    for i in range(0, len(data), chunk):
        msgs += feed_all(codec, data[i:i + chunk])
    assert msgs == expected
    assert not codec.out and not codec.closing


def test_message_then_ping_in_one_read_keeps_order():
    codec = opened()
    assert codec.feed(frame(1, b"first") + frame(9, b"p") + frame(1, b"second")) == ["first"]
    assert codec.more and codec.pending and not codec.out
    codec.pending = False
    assert codec.feed(b"") == ["second"]
    assert take(codec) == [b"\x8a\x01p"]
    assert not codec.more


def test_message_then_close_in_one_read_keeps_order():
    codec = opened()
    assert codec.feed(frame(1, b"last") + frame(8, b"\x03\xe8")) == ["last"]
    assert codec.more and not codec.closing
    codec.pending = False
    assert codec.feed(b"") == []
    assert take(codec) == [b"\x88\x02\x03\xe8"]
    assert codec.closing == CLOSE


def test_message_then_bad_frame_in_one_read_keeps_order():
    codec = opened()
    assert codec.feed(frame(1, b"ok") + frame(1, b"x", rsv=2) + frame(9)) == ["ok"]
    assert codec.more and not codec.closing
    codec.pending = False
    assert codec.feed(b"") == []
    assert_failed(codec, 1002)


def test_large_frame_followed_by_ping_keeps_order():
    codec = opened()
    big = frame(2, b"z" * 100000)
    assert codec.feed(big[:50000]) == []
    assert codec.feed(big[50000:] + frame(9, b"p") + frame(1, b"q")) == [b"z" * 100000]
    assert codec.more and not codec.out
    codec.pending = False
    assert codec.feed(b"") == ["q"]
    assert take(codec) == [b"\x8a\x01p"]


def test_large_frame_followed_by_small_frames_in_one_read():
    codec = opened()
    big = frame(2, b"z" * 100000)
    assert codec.feed(big[:70000]) == []
    assert codec.feed(big[70000:] + frame(1, b"a") + frame(1, b"b")) == [b"z" * 100000, "a", "b"]
    assert not codec.more and not codec.pending


# ---------------------------------------------------------------- unmask, memory

@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 16383, 16384, 16385, 50001, 1 << 20])
def test_unmask_matches_naive_xor(size):
    payload = os.urandom(size)
    mask = os.urandom(4)
    naive = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert unmask(payload, mask) == naive


def test_idle_codec_state_is_small():
    import sys
    codec = opened()
    assert codec.buf == b"" and not codec.out and codec.queue is None
    assert codec.frag is None and codec.cur is None and codec.tail == b""
    assert not hasattr(codec, "__dict__")
    assert sys.getsizeof(codec) <= 200
    assert codec.path is opened().path          # interned


# ---------------------------------------------------------------- frame types (cluster path)

def test_raw_mode_tells_binary_from_text_by_type():
    """The Gateway's raw mode: text stays bytes, binary comes out as a memoryview, so the
    type survives to the worker without a decode or a copy."""
    codec = opened()
    codec.raw_text = True
    msgs = codec.feed(frame(1, b"t") + frame(2, b"\xff\x00") + frame(2, b"a", fin=False) +
                      frame(0, b"b"))
    assert [type(m) for m in msgs] == [bytes, memoryview, memoryview]
    assert [bytes(m) for m in msgs] == [b"t", b"\xff\x00", b"ab"]
    big = os.urandom(70000)
    (m,) = codec.feed(frame(2, big))
    assert type(m) is memoryview and bytes(m) == big
    plain = opened()                       # a plain Worker: str and bytes
    assert [type(m) for m in plain.feed(frame(1, b"t") + frame(2, b"b"))] == [str, bytes]


def test_encode_binary_ignores_websocket_type():
    codec = opened()
    assert codec.encode_binary(b"\xff") == b"\x82\x01\xff"
    assert codec.encode_binary("x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert codec.encode(b"\xff") == b"\x81\x01\xff"     # Workerman: websocket_type decides
    early = WebSocketCodec(Conn())                      # before the handshake: queued
    assert early.encode_binary(b"q") == b""
    assert bytes(early.queue) == b"\x82\x01q"


def test_data_frames_still_encoded_while_the_close_is_held():
    """After the codec answered a close frame (state CLOSING) the owner may hold that frame
    back while it writes replies to earlier messages; after a server-initiated close_frame()
    nothing more is framed."""
    codec = opened()
    codec.feed(frame(8, b"\x03\xe8"))
    assert codec.closing == CLOSE and take(codec) == [b"\x88\x02\x03\xe8"]
    assert codec.encode("late reply") == b"\x81\x0alate reply"
    assert codec.encode_binary(b"b") == b"\x82\x01b"
    assert codec.close_frame() == b""                   # its close frame is already out
