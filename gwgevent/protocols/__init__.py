"""Client-facing protocols: scheme -> codec class, user protocols, the Workerman adapter.

Codec contract (sans-IO, one object per connection, `__slots__`):

    codec = CodecClass(conn)      # reads conn.max_package_size, remote_ip/port, local_port,
                                  # websocket_type, max_send_buffer_size when it needs them
    msgs = codec.feed(data)       # complete messages decoded from the bytes received so far
    frame = codec.encode(data)    # bytes to send; b'' means nothing to send (or queued)

After `feed()`, when `codec.pending` is true the connection acts, in this order, and then
clears `pending`:
  1. writes every bytes object in `codec.out` (falsy when empty; reset it to `()` or `[]`),
  2. delivers `codec.handshake` (set once, websocket only) and sets it back to None,
  3. delivers the returned messages,
  4. if `codec.closing`: CLOSE = close after the send buffer drained, DESTROY = drop now
     (`codec.error` holds a one-line reason for the log),
  5. if `codec.more`: calls `codec.feed(b"")` and repeats. The websocket codec stops a read in
     front of a ping/close/bad frame that follows messages, so replies to those messages
     leave before the pong or close frame (Autobahn checks that order).

Built-in schemes: websocket, text, frame, tcp (case-insensitive: GatewayWorker apps write
'Websocket://'). Anything else is a user protocol: `Protocols/<Name>.py` in the app directory
(like PHP's `\\Protocols\\Name`) or a dotted path `pkg.module.Class`.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from typing import Any, Dict, List, Optional

from ._base import CLOSE, DESTROY, CodecBase, to_bytes
from .frame import FrameCodec
from .tcp import TcpCodec
from .text import TextCodec
from .websocket import WebSocketCodec, encode_frame

__all__ = ["CLOSE", "DESTROY", "get_codec_class", "WorkermanAdapter", "WebSocketCodec",
           "TextCodec", "FrameCodec", "TcpCodec", "encode_frame", "BUILTIN"]

BUILTIN: Dict[str, type] = {
    "websocket": WebSocketCodec,
    "text": TextCodec,
    "frame": FrameCodec,
    "tcp": TcpCodec,
}

_SCHEME_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_adapters: Dict[Any, type] = {}


class WorkermanAdapter(CodecBase):
    """Runs a Workerman-style protocol class (`input(buffer, conn) -> int`,
    `decode(packet, conn)`, `encode(data, conn)`, static or class methods) as a codec.

    input() returns 0 for "need more", N > 0 for the length of the first packet, and a negative
    value for a broken stream; like Workerman, a negative length or one above
    conn.max_package_size destroys the connection. PHP strings are bytes, so the user class
    receives bytes; encode() may return str or bytes.
    """

    name = "user"
    proto: Any = None

    __slots__ = ()


    def feed(self, data: bytes) -> List[Any]:
        if self.closing:
            return []
        buf = self.buf + data if self.buf else data
        proto = self.proto
        conn = self.conn
        limit = conn.max_package_size
        msgs: List[Any] = []
        while buf:
            try:
                length = int(proto.input(buf, conn))
            except Exception as exc:  # a buggy user protocol must not kill the process
                return self._destroy(msgs, "%s.input() raised %r" % (self.name, exc))
            if length == 0:
                if len(buf) > limit:
                    return self._destroy(msgs, "%s: %d bytes buffered without a complete "
                                         "packet, max_package_size %d"
                                         % (self.name, len(buf), limit))
                break
            if length < 0:
                return self._destroy(msgs, "%s.input() returned %d (protocol error)"
                                     % (self.name, length))
            if length > limit:
                return self._destroy(msgs, "%s: packet of %d bytes exceeds max_package_size "
                                     "%d" % (self.name, length, limit))
            if length > len(buf):
                break
            packet = buf[:length]
            buf = buf[length:]
            try:
                msgs.append(proto.decode(packet, conn))
            except Exception as exc:
                return self._destroy(msgs, "%s.decode() raised %r" % (self.name, exc))
        self.buf = buf
        return msgs

    def _destroy(self, msgs: List[Any], reason: str) -> List[Any]:
        self.buf = b""
        self.closing = DESTROY
        self.error = reason
        self.pending = True
        return msgs

    def encode(self, data: Any) -> bytes:
        result = self.proto.encode(data, self.conn)
        if not result:
            return b""
        return result if result.__class__ is bytes else to_bytes(result)


def _is_codec_class(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "feed", None)) and \
        callable(getattr(obj, "encode", None))


def _is_workerman_class(obj: Any) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("input", "decode", "encode"))


def as_codec_class(obj: Any, scheme: str) -> type:
    """A codec class as is, or a Workerman-style protocol wrapped in an adapter class
    (one adapter class per protocol, cached)."""
    if _is_codec_class(obj):
        return obj
    if _is_workerman_class(obj):
        adapter = _adapters.get(obj)
        if adapter is None:
            adapter = type("%sAdapter" % getattr(obj, "__name__", "Protocol"),
                           (WorkermanAdapter,), {"__slots__": (), "proto": obj, "name": scheme})
            _adapters[obj] = adapter
        return adapter
    raise ValueError("protocol %r: %r has neither feed()/encode() nor Workerman's "
                     "input()/decode()/encode()" % (scheme, obj))


def _load_file(path: str, stem: str) -> Any:
    mod_name = "gwgevent_user_protocols.%s" % stem
    module = sys.modules.get(mod_name)
    if module is not None and getattr(module, "__file__", None) == path:
        return module
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ValueError("cannot load protocol file %s" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def _pick_attr(module: Any, names: List[str]) -> Any:
    """The protocol class in a module: named like the file or scheme (case-insensitively,
    because Worker lower-cases the scheme of 'MyProto://')."""
    for name in names:
        obj = getattr(module, name, None)
        if obj is not None:
            return obj
    wanted = {n.lower() for n in names}
    for name in dir(module):
        if name.lower() in wanted:
            return getattr(module, name)
    return None


def _from_app_dir(scheme: str, app_dir: str) -> Any:
    """Protocols/<Name>.py under app_dir: the scheme as given, then ucfirst, then any file
    whose name matches case-insensitively."""
    folder = os.path.join(app_dir, "Protocols")
    if not os.path.isdir(folder):
        return None
    candidates = [scheme, scheme[:1].upper() + scheme[1:], scheme.capitalize()]
    try:
        files = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py"))
    except OSError:
        files = []
    candidates += [f for f in files if f.lower() == scheme.lower()]
    for stem in dict.fromkeys(candidates):
        path = os.path.join(folder, stem + ".py")
        if os.path.isfile(path):
            module = _load_file(path, stem)
            obj = _pick_attr(module, [stem, scheme, scheme[:1].upper() + scheme[1:]])
            if obj is None:
                raise ValueError("protocol file %s defines no class named %s" % (path, stem))
            return obj
    return None


def _from_dotted(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError("protocol %r: cannot import module %r (%s)"
                         % (path, module_name, exc)) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise ValueError("protocol %r: module %r has no attribute %r"
                         % (path, module_name, attr))
    return obj


def get_codec_class(scheme: str, app_dir: Optional[str] = None) -> type:
    """The codec class for a listen scheme ('websocket', 'Text', 'myproto', 'pkg.mod.Class').

    Raises ValueError with the places that were searched when nothing matches."""
    if not scheme:
        raise ValueError("empty protocol scheme")
    builtin = BUILTIN.get(scheme.lower())
    if builtin is not None:
        return builtin
    if "." in scheme:
        if not all(part.isidentifier() for part in scheme.split(".")):
            raise ValueError("protocol %r is neither an alphanumeric scheme nor a dotted path "
                             "pkg.module.Class" % scheme)
        return as_codec_class(_from_dotted(scheme), scheme)
    if not _SCHEME_NAME.match(scheme):
        raise ValueError("protocol scheme %r must be alphanumeric (or a dotted path "
                         "pkg.module.Class)" % scheme)
    if app_dir:
        obj = _from_app_dir(scheme, app_dir)
        if obj is not None:
            return as_codec_class(obj, scheme)
    where = ("%s/Protocols/%s.py" % (app_dir, scheme[:1].upper() + scheme[1:])
             if app_dir else "no app directory given")
    raise ValueError("unknown protocol %r: not a built-in (websocket, text, frame, tcp), "
                     "not found as %s, and not a dotted path pkg.module.Class"
                     % (scheme, where))
