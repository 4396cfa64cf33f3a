"""Scheme -> codec class lookup, user protocols and the Workerman adapter."""
from __future__ import annotations

import sys
import textwrap

import pytest

from gwgevent.protocols import (DESTROY, FrameCodec, TcpCodec, TextCodec, WebSocketCodec,
                                WorkermanAdapter, get_codec_class)


class Conn:
    max_package_size = 100
    remote_ip = "127.0.0.1"
    remote_port = 1
    local_port = 2


LINE_PROTO = textwrap.dedent('''
    class MyProto:
        """Workerman style: 1-byte length prefix."""

        @staticmethod
        def input(buffer, conn):
            if not buffer:
                return 0
            if buffer[0] == 255:
                return -1
            return buffer[0] + 1 if len(buffer) > buffer[0] else (
                buffer[0] + 1 if buffer[0] + 1 > conn.max_package_size else 0)

        @classmethod
        def decode(cls, packet, conn):
            return packet[1:].decode()

        @staticmethod
        def encode(data, conn):
            data = data.encode() if isinstance(data, str) else data
            return bytes([len(data)]) + data
''')


@pytest.mark.parametrize("scheme,cls", [
    ("websocket", WebSocketCodec), ("Websocket", WebSocketCodec), ("WEBSOCKET", WebSocketCodec),
    ("text", TextCodec), ("Text", TextCodec), ("frame", FrameCodec), ("tcp", TcpCodec),
])
def test_builtin_schemes(scheme, cls):
    assert get_codec_class(scheme) is cls
    assert get_codec_class(scheme, "/nonexistent") is cls


def _write_proto(tmp_path, name="MyProto", body=LINE_PROTO):
    folder = tmp_path / "Protocols"
    folder.mkdir(exist_ok=True)
    (folder / (name + ".py")).write_text(body)
    return str(tmp_path)


@pytest.mark.parametrize("scheme", ["MyProto", "myProto", "myproto"])
def test_user_protocol_from_app_dir(tmp_path, scheme):
    app_dir = _write_proto(tmp_path)
    cls = get_codec_class(scheme, app_dir)
    assert issubclass(cls, WorkermanAdapter)
    assert get_codec_class(scheme, app_dir) is cls          # one adapter class per protocol
    codec = cls(Conn())
    assert not hasattr(codec, "__dict__")
    assert codec.feed(b"\x02hi\x03ab") == ["hi"]
    assert codec.feed(b"c\x00") == ["abc", ""]
    assert codec.encode("xyz") == b"\x03xyz"
    assert not codec.pending


def test_workerman_adapter_negative_length_destroys(tmp_path):
    codec = get_codec_class("MyProto", _write_proto(tmp_path))(Conn())
    assert codec.feed(b"\x01a\xff") == ["a"]
    assert codec.closing == DESTROY and codec.pending and "-1" in codec.error


def test_workerman_adapter_oversize_destroys(tmp_path):
    codec = get_codec_class("MyProto", _write_proto(tmp_path))(Conn())
    assert codec.feed(bytes([150]) + b"x" * 10) == []
    assert codec.closing == DESTROY
    assert "max_package_size" in codec.error
    assert codec.buf == b""


def test_workerman_adapter_raising_input_destroys(tmp_path):
    body = textwrap.dedent('''
        class Boom:
            @staticmethod
            def input(buffer, conn):
                raise RuntimeError("bad")
            @staticmethod
            def decode(packet, conn):
                return packet
            @staticmethod
            def encode(data, conn):
                return data
    ''')
    codec = get_codec_class("boom", _write_proto(tmp_path, "Boom", body))(Conn())
    assert codec.feed(b"x") == []
    assert codec.closing == DESTROY and "RuntimeError" in codec.error


def test_native_codec_class_is_used_as_is(tmp_path):
    body = textwrap.dedent('''
        class Upper:
            name = "upper"
            def __init__(self, conn):
                self.conn = conn
                self.out = []
                self.pending = False
                self.closing = 0
                self.handshake = None
                self.error = None
                self.more = False
            def feed(self, data):
                return [data.upper()]
            def encode(self, data):
                return data
    ''')
    cls = get_codec_class("upper", _write_proto(tmp_path, "Upper", body))
    assert cls.__name__ == "Upper"
    assert cls(Conn()).feed(b"ab") == [b"AB"]


def test_dotted_path(tmp_path, monkeypatch):
    pkg = tmp_path / "myprotos_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lines.py").write_text(LINE_PROTO)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cls = get_codec_class("myprotos_pkg.lines.MyProto")
        assert issubclass(cls, WorkermanAdapter)
        assert cls(Conn()).feed(b"\x01z") == ["z"]
        assert get_codec_class("gwgevent.protocols.text.TextCodec") is TextCodec
        with pytest.raises(ValueError, match="no attribute"):
            get_codec_class("myprotos_pkg.lines.Nope")
        with pytest.raises(ValueError, match="cannot import"):
            get_codec_class("no_such_pkg_xyz.mod.Cls")
    finally:
        for name in list(sys.modules):
            if name.startswith("myprotos_pkg"):
                del sys.modules[name]


@pytest.mark.parametrize("scheme", ["nosuch", "ws", "http"])
def test_unknown_scheme(tmp_path, scheme):
    with pytest.raises(ValueError, match="unknown protocol"):
        get_codec_class(scheme, str(tmp_path))
    with pytest.raises(ValueError, match="unknown protocol"):
        get_codec_class(scheme)


def test_bad_scheme_names():
    with pytest.raises(ValueError):
        get_codec_class("")
    with pytest.raises(ValueError, match="alphanumeric"):
        get_codec_class("../etc", "/tmp")
    with pytest.raises(ValueError, match="alphanumeric"):
        get_codec_class("a/b", "/tmp")


def test_file_without_matching_class(tmp_path):
    with pytest.raises(ValueError, match="no class"):
        get_codec_class("Empty", _write_proto(tmp_path, "Empty", "X = 1\n"))


def test_object_that_is_not_a_protocol(tmp_path):
    with pytest.raises(ValueError, match="neither"):
        get_codec_class("Plain", _write_proto(tmp_path, "Plain", "class Plain:\n    pass\n"))
