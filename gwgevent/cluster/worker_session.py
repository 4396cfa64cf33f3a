"""A BusinessWorker's side of sessions (PHP ``$_SESSION``): decoding the one an event carries,
re-reading it when someone else changed it since this worker wrote it (the crc32 guard), and
writing it back after the handler when it changed. A mixin of
:class:`gwgevent.cluster.business_worker.BusinessWorker`."""
from __future__ import annotations

import logging
import zlib
from typing import Optional

from ..codec.gateway_protocol import (CMD_GET_SESSION_BY_CLIENT_ID, CMD_SET_SESSION,
                                     encode as encode_packet)
from ..codec.phpserialize import PhpSerializeError, dumps, loads
from ..context import Context
from ..log import get_logger, log_once

__all__ = ["WorkerSessions", "FROM_EVENT", "decode_session"]

log = get_logger("business_worker")

#: context.old_session marker: "as decoded from the event"
FROM_EVENT = object()


def decode_session(raw: bytes, cid: str) -> Optional[dict]:
    try:
        value = loads(raw, allow_trailing=True)
    except PhpSerializeError as exc:
        log_once(log, "bad-session", "worker: session of %s is not PHP-serialized (%s); "
                 "treated as empty", cid, exc, burst=5)
        return None
    if isinstance(value, list):
        return dict(enumerate(value))
    return value if isinstance(value, dict) else None


class WorkerSessions:
    """Session re-read and write-back; expects the worker's ``_transport`` and
    ``_session_crc``."""

    def _fetch_session(self, ctx: Context, fallback: bytes) -> bytes:
        address = "%s:%d" % (ctx.local_ip, ctx.local_port)
        try:
            value = self._transport.query(address, encode_packet(
                CMD_GET_SESSION_BY_CLIENT_ID, b"", connection_id=ctx.connection_id))
        except Exception as exc:
            log_once(log, "session-reread", "worker: could not re-read the session of %s from "
                     "%s (%s); using the one in the event", ctx.client_id, address, exc, burst=5)
            return fallback
        # the reply payload is the stored session string itself, so the query hands back the
        # session already unserialized (PHP: $_SESSION = Gateway::getSession($client_id))
        if not value:              # None: client gone; [] : no session
            return b""
        if isinstance(value, (dict, list)):
            return dumps(value)
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def _write_back(self, ctx: Context) -> None:
        """PHP writes $_SESSION back after the handler when it changed (full overwrite)."""
        session = ctx.session
        old = ctx.old_session
        if session is not None and not isinstance(session, dict):
            log_once(log, "session-type", "worker: context.session of %s must be a dict or "
                     "None, not %s; not saved", ctx.client_id, type(session).__name__,
                     level=logging.ERROR, burst=5)
            return
        if old is FROM_EVENT:
            if session is None:
                if not ctx.session_raw:
                    return
                new_raw = b""
            else:
                new_raw = dumps(session)
                if new_raw == ctx.session_raw:
                    return
        else:
            if session == old:
                return
            new_raw = dumps(session) if session is not None else b""
        if self._transport.send(ctx.gateway_address, encode_packet(CMD_SET_SESSION, b"",
                                                       connection_id=ctx.connection_id,
                                                       ext_data=new_raw)):
            self._session_crc[ctx.client_id] = zlib.crc32(new_raw)
