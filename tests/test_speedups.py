"""The optional C codec loops (gwgevent/_speedups.c) against the pure-Python reference.

Both paths must give identical results for every input: the same messages (type and value),
the same bytes written, the same close decision and the same buffered remainder. Inputs: the
PHP vectors (client frames, server encodings) and generated streams that mix every case the C
loop hands back to Python (control frames, fragments, oversize, invalid UTF-8, unmasked,
incomplete frames), fed in one read and in small reads, with and without raw text mode.
"""
from __future__ import annotations

import os
import random
import shutil

import pytest

import gwgevent.accel as accel
import gwgevent.codec.gateway_protocol as gp
import gwgevent.protocols.websocket as ws
from helpers import client_frame
from vectors import load_vectors

needs_c = pytest.mark.skipif(not accel.ACCELERATED, reason="gwgevent._speedups: %s" %
                             accel.reason)


def test_the_c_module_is_used_where_it_can_be_built():
    """CI installs with a compiler: the accelerated path must really be the one running
    (otherwise every test below would silently compare Python with itself)."""
    if os.environ.get("GWGEVENT_PURE") not in (None, "", "0"):
        assert not accel.ACCELERATED and ws._ws_frames is None
        pytest.skip("GWGEVENT_PURE is set: the pure-Python path is under test")
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: the pure-Python codecs are used")
    assert accel.ACCELERATED, accel.describe()
    assert ws._ws_frames is not None and ws.unmask is accel.speedups.unmask
    assert gp._gp_split is accel.speedups.gp_split


class _Conn:
    def __init__(self, limit: int) -> None:
        self.max_package_size = limit
        self.websocket_type = b"\x81"
        self.remote_ip, self.remote_port = "127.0.0.1", 40000
        self.local_ip, self.local_port = "127.0.0.1", 7272
        self.id = 1


def _run(stream: bytes, cuts: list, raw: bool, limit: int, accelerated: bool,
         monkeypatch) -> tuple:
    """Feed `stream` in pieces to an OPEN codec; return everything observable."""
    with monkeypatch.context() as m:
        if not accelerated:
            m.setattr(ws, "_ws_frames", None)
            m.setattr(ws, "unmask", ws.py_unmask)
        codec = ws.WebSocketCodec(_Conn(limit))
        codec.state = ws.OPEN
        codec.raw_text = raw
        seen = []
        pos = 0
        for cut in cuts + [len(stream)]:
            chunk, pos = stream[pos:cut], cut
            if codec.closing:
                break
            msgs = codec.feed(chunk)
            while True:
                seen.extend((type(x).__name__, bytes(x) if isinstance(x, memoryview) else x)
                            for x in msgs)
                if codec.out:
                    seen.append(("out", b"".join(codec.out)))
                    codec.out = ()
                if not codec.more or codec.closing:
                    break
                msgs = codec.feed(b"")
        return seen, codec.closing, codec.error, bytes(codec.buf), codec.state


def _frame(rnd: random.Random, op: int, payload: bytes, fin: bool = True,
           masked: bool = True) -> bytes:
    """helpers.client_frame with masks from the seeded generator (reproducible streams)."""
    return client_frame(payload, op, fin, masked, mask=rnd.randbytes(4) if masked else None)


def _payload(rnd: random.Random) -> tuple:
    kind = rnd.choice(["ascii", "utf8", "bad", "binary", "empty"])
    n = rnd.choice([0, 1, 3, 4, 7, 8, 9, 63, 64, 125, 126, 127, 500, 65535, 65536, 70000])
    if kind == "ascii":
        return 1, bytes(rnd.randrange(32, 127) for _ in range(n))
    if kind == "utf8":
        return 1, ("é€😀a" * (n // 8 + 1)).encode()[:max(n, 4)].decode("utf-8", "ignore").encode()
    if kind == "bad":
        return 1, b"ok" * (n // 4) + b"\xed\xa0\x80" + b"\xff"
    if kind == "binary":
        return 2, rnd.randbytes(n)
    return rnd.choice([1, 2]), b""


def _stream(rnd: random.Random) -> bytes:
    parts = []
    for _ in range(rnd.randrange(1, 12)):
        r = rnd.random()
        if r < 0.65:
            op, p = _payload(rnd)
            parts.append(_frame(rnd, op, p))
        elif r < 0.75:
            parts.append(_frame(rnd, 9, b"ping"))                       # ping: writes a pong
        elif r < 0.82:
            op, p = _payload(rnd)
            half = len(p) // 2
            parts.append(_frame(rnd, op, p[:half], fin=False) + _frame(rnd, 0, p[half:]))
        elif r < 0.86:
            parts.append(_frame(rnd, 1, b"not masked", masked=False))   # protocol error
        elif r < 0.90:
            parts.append(bytes((0x81, 0xFF)) + (1 << 63).to_bytes(8, "big") + b"mask")
        elif r < 0.93:
            parts.append(_frame(rnd, 8, (1000).to_bytes(2, "big")))      # close
        else:
            parts.append(_frame(rnd, 3, b"reserved opcode"))
    return b"".join(parts)


def _cuts(rnd: random.Random, n: int) -> list:
    mode = rnd.random()
    if mode < 0.4 or n < 2:
        return []
    if mode < 0.7:
        step = rnd.choice([1, 2, 3, 5, 7, 13, 100])
        return list(range(step, n, step))[:4000]
    return sorted(rnd.sample(range(1, n), min(n - 1, rnd.randrange(1, 6))))


@needs_c
def test_generated_streams_give_identical_results(monkeypatch):
    rnd = random.Random(12)
    compared = 0
    for i in range(800):
        stream = _stream(rnd)
        cuts = _cuts(rnd, len(stream))
        raw = rnd.random() < 0.3
        limit = rnd.choice([10 * 1024 * 1024, 1 << 80, 100, 65536])
        c = _run(stream, cuts, raw, limit, True, monkeypatch)
        py = _run(stream, cuts, raw, limit, False, monkeypatch)
        assert c == py, "stream %d differs (raw=%s limit=%s cuts=%s): %r" % (
            i, raw, limit, cuts[:10], stream[:80])
        compared += len(c[0])
    assert compared > 1500     # the streams really produced messages


@needs_c
def test_php_vectors_give_identical_results(monkeypatch):
    vec = load_vectors()["websocket"]
    frames = [bytes.fromhex(f["frame_hex"]) for f in vec["client_frames"] if f.get("frame_hex")]
    assert frames
    stream = b"".join(frames)
    for raw in (False, True):
        for cuts in ([], list(range(1, len(stream)))):
            assert _run(stream, cuts, raw, 1 << 20, True, monkeypatch) == \
                _run(stream, cuts, raw, 1 << 20, False, monkeypatch)
    checked = 0
    for enc in vec["server_encode"]:
        if "payload_len" in enc:            # 'a' x N: the header is the vector
            payload, op = b"a" * int(enc["payload_len"]), 0x81
            want = enc["header_hex"]
        elif "frame_hex" in enc and ("payload" in enc or "payload_hex" in enc):
            payload = enc["payload"].encode() if "payload" in enc else \
                bytes.fromhex(enc["payload_hex"])
            op, want = (0x81 if "payload" in enc else 0x82), enc["frame_hex"]
        else:
            continue
        for impl in (accel.speedups.encode_frame, ws.py_encode_frame):
            got = impl(payload, op)
            assert got.hex().startswith(want) and len(got) == len(payload) + len(want) // 2 \
                or got.hex() == want
        checked += 1
    assert checked >= 9


@needs_c
def test_unmask_and_encode_frame_match_python():
    rnd = random.Random(3)
    for n in list(range(0, 140)) + [1000, 16383, 16384, 16385, 65535, 65536, 70001, 300000]:
        data, key = rnd.randbytes(n), rnd.randbytes(4)
        assert accel.speedups.unmask(data, key) == ws.py_unmask(data, key)
        for op in (0x81, 0x82, 0x88, 0x01):
            assert accel.speedups.encode_frame(data, op) == ws.py_encode_frame(data, op)
    with pytest.raises(ValueError):
        accel.speedups.unmask(b"abc", b"12")


# ---- GatewayProtocol split (gp_split) ------------------------------------------------------

def _split(fn, buf: bytes, max_size: int) -> tuple:
    try:
        packets, rest = fn(buf, max_size)
    except gp.PacketTooLarge as exc:
        return "raised", str(exc)
    return [(type(p).__name__, p.as_dict()) for p in packets], bytes(rest), rest is buf


def _random_packet(rnd: random.Random) -> bytes:
    body = rnd.randbytes(rnd.choice([0, 1, 5, 64, 300, 70000]))
    ext = rnd.randbytes(rnd.choice([0, 0, 3, 40]))
    pkt = bytearray(gp.encode(rnd.randrange(256), body, local_ip=rnd.getrandbits(32),
                              local_port=rnd.getrandbits(16), client_ip=rnd.getrandbits(32),
                              client_port=rnd.getrandbits(16),
                              connection_id=rnd.getrandbits(32), flag=rnd.getrandbits(8),
                              gateway_port=rnd.getrandbits(16), ext_data=ext))
    r = rnd.random()
    if r < 0.05:                     # ext_len pointing past the packet's end
        pkt[24:28] = (len(pkt) + rnd.randrange(1, 1 << 20)).to_bytes(4, "big")
    elif r < 0.08:                   # declared length shorter than the header
        pkt[0:4] = rnd.randrange(28).to_bytes(4, "big")
    return bytes(pkt)


@needs_c
def test_gateway_protocol_split_gives_identical_packets():
    rnd = random.Random(5)
    vec = load_vectors()["gateway_protocol"]
    streams = [bytes.fromhex(c["packet_hex"]) for c in vec["decode_cases"] if c.get("packet_hex")]
    streams += [bytes.fromhex(c["encoded_hex"]) for c in vec["cases"] if c.get("encoded_hex")]
    assert len(streams) >= 10
    streams.append(b"".join(streams))
    for _ in range(600):
        stream = b"".join(_random_packet(rnd) for _ in range(rnd.randrange(1, 8)))
        streams.append(stream[:rnd.randrange(len(stream) + 1)] if rnd.random() < 0.4 else stream)
    compared = 0
    for stream in streams:
        for max_size in (10 * 1024 * 1024, 100, 1 << 70):
            c = _split(gp.split_decode, stream, max_size)
            py = _split(gp.py_split_decode, stream, max_size)
            assert c == py, (max_size, stream[:64].hex())
            compared += len(c[0]) if c[0] != "raised" else 0
    assert compared > 1000
