"""Text, Frame and tcp codecs against the PHP vectors (bytes only, no sockets)."""
from __future__ import annotations

import pytest

from gwgevent.protocols import CLOSE, DESTROY, FrameCodec, TcpCodec, TextCodec
from vectors import load_vectors

TEXT = load_vectors("text_protocol")
FRAME = load_vectors("frame_protocol")


class Conn:
    def __init__(self, max_package_size: int = 10485760) -> None:
        self.max_package_size = max_package_size
        self.remote_ip = "127.0.0.1"
        self.remote_port = 1
        self.local_port = 2


# ---------------------------------------------------------------- text

@pytest.mark.parametrize("case", TEXT["encode"], ids=lambda c: c["input"])
def test_text_encode_vectors(case):
    assert TextCodec(Conn()).encode(case["input"]).hex() == case["output_hex"]
    assert TextCodec(Conn()).encode(case["input"].encode()).hex() == case["output_hex"]


@pytest.mark.parametrize("case", TEXT["decode"], ids=lambda c: c["input_hex"])
def test_text_decode_vectors(case):
    codec = TextCodec(Conn())
    assert codec.feed(bytes.fromhex(case["input_hex"])) == [case["output"]]
    codec.raw_text = True
    assert codec.feed(bytes.fromhex(case["input_hex"])) == [case["output"].encode()]


@pytest.mark.parametrize("case", TEXT["input"], ids=lambda c: c["buffer"])
def test_text_input_vectors(case):
    codec = TextCodec(Conn())
    msgs = codec.feed(case["buffer"].encode())
    if case["returns"] == 0:
        assert msgs == [] and codec.buf == case["buffer"].encode()
    else:
        assert msgs == [case["buffer"][:case["returns"] - 1]]
        assert codec.buf == case["buffer"].encode()[case["returns"]:]


def test_text_many_lines_and_split_reads():
    codec = TextCodec(Conn())
    assert codec.feed(b"a\r\nb\n\nc") == ["a", "b", ""]
    assert codec.feed(b"d") == []
    assert codec.feed("é\r\n张".encode()) == ["cdé"]
    assert codec.feed("三\n".encode()[:1]) == []
    assert codec.feed("三\n".encode()[1:]) == ["张三"]
    assert codec.buf == b""


def test_text_invalid_utf8_is_replaced_not_raised():
    assert TextCodec(Conn()).feed(b"\xff\n") == ["\ufffd"]


def test_text_oversize_line_closes():
    codec = TextCodec(Conn(max_package_size=10))
    assert codec.feed(b"12345") == []
    assert codec.feed(b"67890") == []
    assert codec.closing == CLOSE and codec.pending and codec.error
    assert codec.buf == b""
    assert codec.feed(b"\n") == []


def test_text_complete_lines_before_an_oversize_rest_are_delivered():
    codec = TextCodec(Conn(max_package_size=10))
    assert codec.feed(b"ok\n" + b"x" * 20) == ["ok"]
    assert codec.closing == CLOSE


def test_text_encode_json_for_arrays():
    assert TextCodec(Conn()).encode({"a": "x/y"}) == b'{"a":"x\\/y"}\n'


# ---------------------------------------------------------------- frame

@pytest.mark.parametrize("case", FRAME["encode"], ids=lambda c: c["input"] or "empty")
def test_frame_encode_vectors(case):
    assert FrameCodec(Conn()).encode(case["input"]).hex() == case["output_hex"]


def test_frame_decode_round_trip_and_split_reads():
    codec = FrameCodec(Conn())
    data = b"".join(codec.encode(m) for m in (b"hello", b"", b"x" * 300))
    assert codec.feed(data) == [b"hello", b"", b"x" * 300]
    msgs = []
    for i in range(len(data)):
        msgs += codec.feed(data[i:i + 1])
    assert msgs == [b"hello", b"", b"x" * 300]
    assert codec.buf == b""


@pytest.mark.parametrize("header", [b"\x00\x00\x00\x00", b"\x00\x00\x00\x03",
                                    b"\x7f\xff\xff\xff"], ids=["zero", "three", "2GiB"])
def test_frame_bad_length_destroys(header):
    codec = FrameCodec(Conn(max_package_size=1 << 20))
    assert codec.feed(b"\x00\x00\x00\x05a" + header) == [b"a"]
    assert codec.closing == DESTROY and codec.pending and codec.error
    assert codec.buf == b""


# ---------------------------------------------------------------- tcp

def test_tcp_each_chunk_is_a_message():
    codec = TcpCodec(Conn())
    assert codec.feed(b"abc") == [b"abc"]
    assert codec.feed(b"") == []
    assert codec.encode("é") == "é".encode()
    assert codec.encode(b"\x00") == b"\x00"
    assert codec.encode([1, 2]) == b"[1,2]"
    assert not codec.pending
