"""Workerman's Text protocol: one message per line ("\\n"-terminated), sans-IO.

Decoding strips every trailing "\\r"/"\\n" like PHP's rtrim($buffer, "\\r\\n"); encoding appends
"\\n". The register link and line-based business protocols use it.
"""
from __future__ import annotations

from typing import Any, List

from ._base import CLOSE, CodecBase, to_bytes

__all__ = ["TextCodec"]


class TextCodec(CodecBase):
    """Per-connection line splitter. Lines come out as str (UTF-8, undecodable bytes replaced)
    or, with `raw_text = True`, as the original bytes."""

    name = "text"

    __slots__ = ()


    def feed(self, data: bytes) -> List[Any]:
        if self.closing:
            return []
        buf = self.buf + data if self.buf else data
        if b"\n" not in data:
            return self._wait(buf)
        lines = buf.split(b"\n")
        rest = lines.pop()
        limit = self.conn.max_package_size
        raw = self.raw_text
        msgs = []
        for line in lines:
            if len(line) >= limit:
                return self._too_big(msgs, len(line))
            line = line.rstrip(b"\r")
            msgs.append(line if raw else line.decode("utf-8", "replace"))
        if rest:
            self._wait(rest)
        else:
            self.buf = b""
        return msgs

    def _wait(self, buf: bytes) -> List[Any]:
        """No newline yet: Workerman closes once the unterminated buffer reaches
        max_package_size (Text::input)."""
        if len(buf) >= self.conn.max_package_size:
            return self._too_big([], len(buf))
        self.buf = buf
        return []

    def _too_big(self, msgs: List[Any], size: int) -> List[Any]:
        self.buf = b""
        self.closing = CLOSE
        self.error = "text line of %d+ bytes reaches max_package_size %d" % (
            size, self.conn.max_package_size)
        self.pending = True
        return msgs

    def encode(self, data: Any) -> bytes:
        """data + "\\n" (str as UTF-8; dict/list as JSON)."""
        if data.__class__ is str:
            return data.encode() + b"\n"
        return to_bytes(data) + b"\n"
