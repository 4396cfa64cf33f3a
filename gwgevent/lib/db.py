"""MySQL helper for business code: GatewayWorker's ``Db`` / ``DbConnection`` on PyMySQL.

PHP GatewayWorker shipped ``GatewayWorker\\Lib\\Db`` until v3.1.18; v4 points to composer
``workerman/mysql`` with the same API. This module mirrors that API (snake_case, with the
camelCase names as aliases) with the changes a gevent worker needs:

* One BusinessWorker process serves many events at once (one greenlet each), so the PHP
  "one connection object holds the builder state" design would mix up two greenlets'
  queries. ``db.select(...)``, ``db.insert(...)``, ``db.update(...)``, ``db.delete(...)`` return
  a fresh :class:`Query` per call chain; the :class:`DbConnection` itself holds no builder state.
* A bounded pool of PyMySQL connections per process, so concurrent greenlets never share a
  socket; a transaction pins one connection to the greenlet that opened it.
* Values are always bound through PyMySQL parameters (``?``, ``%s`` positional, ``:name`` /
  ``%(name)s`` named), never formatted into the SQL by this module.
* ``ssl_disabled=True`` is passed to PyMySQL unless TLS is configured: PyMySQL 1.2 otherwise
  builds a default SSL context (loading the system CA bundle) on every connect, which blocks the
  whole gevent hub for tens of milliseconds each time (see vendor_notes/db_redis.md).

Connections are opened lazily (first query), and both :class:`Db` and the pool notice a fork
(``os.getpid()`` changed) and rebuild instead of using the parent's sockets.
"""
from __future__ import annotations

import logging
import os
import re
import ssl as _ssl
import weakref
from contextlib import contextmanager
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

try:
    import pymysql
    import pymysql.cursors
except ImportError as _exc:                     # an optional dependency: say how to get it
    from gwgevent.lib.config import missing_extra
    raise ImportError(missing_extra("gwgevent.lib.db", "PyMySQL")) from _exc
from gevent.lock import BoundedSemaphore
from greenlet import getcurrent

from gwgevent.lib.config import (ConfigError, ConfigRegistry, NamedInstances, merge_url, opt,
                                 parse_mysql_url)

__all__ = [
    "Db", "DbConnection", "Query", "DbError", "DbConnectError", "DbPoolTimeout", "DbQueryError",
    "DbGoneAwayError", "DbTransactionError", "DbBuildError", "ConfigError",
]

log = logging.getLogger("gwgevent.lib.db")

DEFAULT_POOL_SIZE = 10
DEFAULT_WAIT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0

# Client/server codes meaning "this connection is dead": CR_SERVER_GONE_ERROR, CR_SERVER_LOST,
# CR_SERVER_LOST_EXTENDED, MariaDB ER_CONNECTION_KILLED, MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT.
GONE_AWAY_CODES = frozenset((2006, 2013, 2055, 1927, 4031))


# --------------------------------------------------------------------------------------- errors

class DbError(Exception):
    """Base of every error raised by this module."""


class DbConnectError(DbError):
    """Opening a connection failed (message names the config, host:port, user and database)."""


class DbPoolTimeout(DbError):
    """No pooled connection became free within ``wait_timeout`` seconds."""


class DbTransactionError(DbError):
    """Transaction misuse: nested begin, commit without a transaction, commit after an abort."""


class DbBuildError(DbError, ValueError):
    """The builder cannot produce SQL (placeholder/value count mismatch, missing bind, ...)."""


class DbQueryError(DbError):
    """A statement failed. ``str(e)`` carries the SQL and parameters.

    Raised as a dynamic subclass that also derives from the PyMySQL error class, so
    ``except pymysql.err.IntegrityError`` keeps working and ``e.args[0]`` is the MySQL errno.
    """

    errno: int = 0
    sql: str = ""
    params: Any = None
    name: str = ""
    original: Optional[BaseException] = None

    def __str__(self) -> str:
        return self.args[1] if len(self.args) > 1 else super().__str__()


class DbGoneAwayError(DbQueryError):
    """The connection died (2006/2013/killed) and could not be transparently recovered:
    either the retry failed too, or it happened inside a transaction (rolled back by the server)."""


_error_classes: Dict[Tuple[type, bool], type] = {}


def _error_class(base: type, gone: bool) -> type:
    key = (base, gone)
    cls = _error_classes.get(key)
    if cls is None:
        ours = DbGoneAwayError if gone else DbQueryError
        try:
            cls = type(ours.__name__ + "_" + base.__name__, (ours, base), {"__module__": __name__})
        except TypeError:  # incompatible layout: fall back to our class only
            cls = ours
        _error_classes[key] = cls
    return cls


def _errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return -1


def _is_gone_away(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True                         # (0, '') on a socket PyMySQL already closed
    if isinstance(exc, pymysql.err.MySQLError):
        return _errno(exc) in GONE_AWAY_CODES
    return False


def _is_server_error(exc: BaseException) -> bool:
    """True when the server answered with an error packet: the connection is still usable."""
    if not isinstance(exc, pymysql.err.MySQLError) or isinstance(exc, pymysql.err.InterfaceError):
        return False
    code = _errno(exc)
    return 0 < code < 2000 and code not in GONE_AWAY_CODES


# --------------------------------------------------------------------------- SQL text helpers

_IDENT = r"(?:`(?:[^`]|``)+`|[^\W\d][\w$]*)"
_IDENT_RE = re.compile(_IDENT + r"\Z")
_ALIAS_RE = re.compile(r"(?:" + _IDENT + r"|'[^']*'|\"[^\"]*\")\Z")
_PATH_RE = re.compile(_IDENT + r"(?:\." + _IDENT + r"){0,2}(?:\.\*)?\Z")
_PATH_PART_RE = re.compile(_IDENT + r"|\*")
_DOTTED_RE = re.compile(r"(?<![\w$`.@])([^\W\d][\w$]*(?:\.(?:[^\W\d][\w$]*|\*)){1,2})(?![\w$`])")
_DIRECTION_RE = re.compile(r"\s+(ASC|DESC)\Z", re.I)
_JOIN_TYPE_RE = re.compile(r"[A-Za-z ]*\Z")
_LITERAL_WORDS = frozenset((
    "NULL", "TRUE", "FALSE", "DEFAULT", "UNKNOWN", "CURRENT_TIMESTAMP", "CURRENT_DATE",
    "CURRENT_TIME", "CURRENT_USER", "LOCALTIME", "LOCALTIMESTAMP",
))
_PREFIX_WORDS = frozenset(("DISTINCT", "ALL", "NOT", "BINARY", "INTERVAL", "DISTINCTROW"))
_OPERATOR_TAIL = set("+-*/%=<>!&|^~,(")

# One pass over a SQL fragment: literals/identifiers/comments are copied (with % doubled for
# PyMySQL's %-formatting), placeholders become %s with their value appended to the params.
_TOKEN_RE = re.compile(r"""
    (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<ident>`(?:[^`]|``)*`)
  | (?P<comment>(?:--(?=\s|\Z)|\#)[^\n]*|/\*.*?\*/)
  | (?P<q>\?)
  | (?P<pct>%(?:s|%|\((?P<pname>[^)]+)\)s)?)
  | (?P<named>(?<![:\w]):(?P<name>[^\W\d]\w*))
""", re.X | re.S)


def _quote_dotted(plain: str) -> str:
    """PHP quoteNamesIn: `table.col` outside literals gets back-quoted."""
    if "." not in plain:
        return plain
    return _DOTTED_RE.sub(lambda m: _quote_path(m.group(1)), plain)


def _translate(text: str, positional: Sequence[Any], binds: Mapping[str, Any],
               quote_dotted: bool, what: str) -> Tuple[str, List[Any]]:
    """Fragment with ?, %s, :name, %(name)s placeholders -> (PyMySQL %s SQL, params)."""
    out: List[str] = []
    params: List[Any] = []
    used = 0
    last = 0
    for m in _TOKEN_RE.finditer(text):
        plain = text[last:m.start()]
        out.append(_quote_dotted(plain) if quote_dotted else plain)
        last = m.end()
        tok = m.group(0)
        kind = m.lastgroup
        name = None
        if kind in ("str", "ident", "comment"):
            out.append(tok.replace("%", "%%"))
            continue
        if kind == "pct":
            if tok == "%%":
                out.append("%%")
                continue
            if tok == "%":
                out.append("%%")
                continue
            if tok != "%s":
                name = m.group("pname")
        elif kind == "named":
            name = m.group("name")
        if name is None:                    # ? or %s
            if used >= len(positional):
                raise DbBuildError("%s: %r has more placeholders than the %d value(s) given"
                                   % (what, text, len(positional)))
            params.append(positional[used])
            used += 1
        else:
            if name not in binds:
                raise DbBuildError("%s: placeholder :%s in %r has no value; pass it with "
                                   "bind_values({%r: ...})" % (what, name, text, name))
            params.append(binds[name])
        out.append("%s")
    tail = text[last:]
    out.append(_quote_dotted(tail) if quote_dotted else tail)
    if used != len(positional):
        raise DbBuildError("%s: %d value(s) given but %r has %d positional placeholder(s)"
                           % (what, len(positional), text, used))
    return "".join(out), params


def _count_positional(text: str) -> int:
    return sum(1 for m in _TOKEN_RE.finditer(text)
               if m.lastgroup == "q" or (m.lastgroup == "pct" and m.group(0) == "%s"))


def _has_placeholder(text: str) -> bool:
    return any(m.lastgroup in ("q", "named") or (m.lastgroup == "pct" and m.group(0) not in
                                                 ("%", "%%"))
               for m in _TOKEN_RE.finditer(text))


def _split_top(text: str, sep: str) -> List[Tuple[int, int]]:
    """Spans of `text` split at `sep` (',' or whitespace) outside parentheses and quotes."""
    spans: List[Tuple[int, int]] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and ((sep == "," and c == ",") or (sep == " " and c.isspace())):
            if i > start:
                spans.append((start, i))
            start = i + 1
        i += 1
    if n > start:
        spans.append((start, n))
    return spans


def _split_list(spec: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(spec, str):
        return [spec[a:b].strip() for a, b in _split_top(spec, ",") if spec[a:b].strip()]
    return [str(s).strip() for s in spec if str(s).strip()]


def _quote_path(spec: str) -> str:
    return ".".join(p if p == "*" or p.startswith("`") else "`%s`" % p
                    for p in _PATH_PART_RE.findall(spec))


def _quote_ident(name: str) -> str:
    name = name.strip()
    if name.startswith(("`", "'", '"')):
        return name
    return "`%s`" % name.replace("`", "``")


def _split_alias(spec: str) -> Tuple[str, Optional[str]]:
    spans = _split_top(spec, " ")
    toks = [spec[a:b] for a, b in spans]
    if len(toks) == 2:
        head = toks[0]
        if (head.upper() not in _PREFIX_WORDS and head[-1] not in _OPERATOR_TAIL
                and _ALIAS_RE.match(toks[1]) and toks[1].upper() not in _LITERAL_WORDS):
            return head, toks[1]
    elif len(toks) >= 3 and toks[-2].upper() == "AS" and _ALIAS_RE.match(toks[-1]):
        return spec[:spans[-2][0]].strip(), toks[-1]
    return spec, None


def quote_name(spec: str, alias: bool = True) -> str:
    """Back-quote an identifier spec: ``col``, ``t.col``, ``db.t.col``, ``t.*``, ``col AS a``,
    ``t a``. ``*``, literals (NULL, CURRENT_TIMESTAMP) and expressions such as ``COUNT(*)`` are
    left alone (their ``table.col`` names are quoted later, like PHP's quoteNamesIn)."""
    spec = spec.strip()
    if not spec:
        raise DbBuildError("empty table/column name")
    if spec == "*":
        return spec
    if alias:
        expr, al = _split_alias(spec)
        if al is not None:
            return "%s AS %s" % (quote_name(expr, alias=False), _quote_ident(al))
    if _PATH_RE.match(spec) and spec.upper() not in _LITERAL_WORDS:
        return _quote_path(spec)
    return spec


def _quote_order(spec: str) -> str:
    m = _DIRECTION_RE.search(spec)
    if m:
        return "%s %s" % (quote_name(spec[:m.start()], alias=False), m.group(1).upper())
    return quote_name(spec, alias=False)


def _verb(sql: str) -> str:
    s = sql.lstrip(" \t\r\n(")
    while s.startswith("/*"):
        end = s.find("*/")
        if end < 0:
            break
        s = s[end + 2:].lstrip(" \t\r\n(")
    m = re.match(r"[A-Za-z]+", s)
    return m.group(0).upper() if m else ""


def _short(value: Any, limit: int = 500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...(%d chars)" % len(text)


def _display_sql(sql: str, args: Optional[Sequence[Any]]) -> str:
    """The executed template with ? in place of %s (what PHP's lastSQL() shows)."""
    if args is None:
        return sql
    try:
        return sql % tuple("?" for _ in args)
    except (TypeError, ValueError):
        return sql


# ------------------------------------------------------------------------------------- pool

class _Pool:
    """Bounded per-process pool of PyMySQL connections with greenlet pinning for transactions.

    A BoundedSemaphore counts checkout slots (connections are opened lazily, so an idle
    worker holds at most the connections it ever needed at once). Idle connections are reused
    LIFO. A connection is never returned to the pool after a client-side/IO error or an
    interrupted call (Timeout, GreenletExit): its protocol state is unknown, so it is closed.
    """

    def __init__(self, owner: "DbConnection", size: int, wait_timeout: float) -> None:
        if size < 1:
            raise ValueError("pool_size must be >= 1, got %r" % (size,))
        self._owner = owner
        self.size = size
        self.wait_timeout = wait_timeout
        self._gen = 0          # bumped by close(): older connections are closed on release
        self._epoch = 0        # bumped after fork: older connections belong to the parent
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._epoch += 1
        self._sem = BoundedSemaphore(self.size)
        self._idle: List[Any] = []
        self._pinned: Dict[Any, Any] = {}
        self._in_use = 0

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            # Close the inherited fds without COM_QUIT: the parent still uses those sessions.
            for raw in self._idle + list(self._pinned.values()):
                _force_close(raw)
            log.debug("%s: fork detected, pool rebuilt", self._owner.label)
            self._reset()

    def _reap_dead(self) -> int:
        """Greenlets that died inside a transaction: close their connection, free the slot."""
        reaped = 0
        for g, raw in list(self._pinned.items()):
            if getattr(g, "dead", False):
                del self._pinned[g]
                log.warning("%s: greenlet %r ended inside a transaction; its connection was "
                            "closed (the server rolls the transaction back)", self._owner.label, g)
                self.release(raw, broken=True)
                reaped += 1
        return reaped

    def acquire(self, fresh: bool = False) -> Any:
        self._check_fork()
        if self._pinned:
            self._reap_dead()
        sem = self._sem
        if not sem.acquire(blocking=False):
            if not (self._pinned and self._reap_dead() and sem.acquire(blocking=False)):
                if not sem.acquire(timeout=self.wait_timeout):
                    raise DbPoolTimeout(
                        "%s: no free connection in the pool of %d after waiting %.1f s "
                        "(raise pool_size or wait_timeout, or look for greenlets holding "
                        "transactions open)" % (self._owner.label, self.size, self.wait_timeout))
        try:
            raw = None
            if fresh:
                while self._idle:           # after a gone-away the idle ones may be stale too
                    _close_quietly(self._idle.pop(0))
            elif self._idle:
                raw = self._idle.pop()
            if raw is None:
                raw = self._owner._connect()
                raw._gw_gen = self._gen
                raw._gw_epoch = self._epoch
        except BaseException:
            sem.release()
            raise
        self._in_use += 1
        return raw

    def release(self, raw: Any, broken: bool = False) -> None:
        if getattr(raw, "_gw_epoch", None) != self._epoch or self._pid != os.getpid():
            _force_close(raw)               # from before a fork: not ours to count
            return
        self._in_use -= 1
        if broken or raw._gw_gen != self._gen or not raw.open:
            _close_quietly(raw)
        else:
            self._idle.append(raw)
        self._sem.release()

    def pin(self, g: Any, raw: Any) -> None:
        self._pinned[g] = raw

    def pinned(self, g: Any) -> Any:
        if self._pid != os.getpid():
            self._check_fork()
            return None
        return self._pinned.get(g)

    def unpin(self, g: Any) -> Any:
        return self._pinned.pop(g, None)

    def close(self) -> None:
        """Close idle connections now; connections in use are closed when released."""
        self._check_fork()
        self._gen += 1
        idle, self._idle = self._idle, []
        for raw in idle:
            _close_quietly(raw)

    def stats(self) -> Dict[str, int]:
        return {"size": self.size, "idle": len(self._idle), "in_use": self._in_use,
                "pinned": len(self._pinned)}


def _close_quietly(raw: Any) -> None:
    try:
        if raw.open:
            raw.close()
    except Exception:
        _force_close(raw)


def _force_close(raw: Any) -> None:
    try:
        raw._force_close()                  # no COM_QUIT: just drop the socket
    except Exception:
        sock = getattr(raw, "_sock", None)
        if sock is not None:
            try:
                sock.close()
            except Exception:
                pass


def _make_ssl_context(cfg: Any) -> Optional[_ssl.SSLContext]:
    """TLS config -> one SSLContext built once per DbConnection (not once per connect)."""
    if cfg is None or cfg is False:
        return None
    if isinstance(cfg, _ssl.SSLContext):
        return cfg
    if cfg is True:
        cfg = {}
    if not isinstance(cfg, Mapping):
        raise ConfigError("ssl must be None, True, a dict (ca, capath, cert, key, "
                          "check_hostname, verify_mode) or an ssl.SSLContext; got %r" % (cfg,))
    ca, capath = cfg.get("ca"), cfg.get("capath")
    ctx = _ssl.create_default_context(cafile=ca, capath=capath)
    has_ca = bool(ca or capath)
    ctx.check_hostname = bool(cfg.get("check_hostname", has_ca)) and has_ca
    verify = cfg.get("verify_mode")
    if verify is None:
        ctx.verify_mode = _ssl.CERT_REQUIRED if has_ca else _ssl.CERT_NONE
    else:
        ctx.verify_mode = _ssl.CERT_REQUIRED if verify else _ssl.CERT_NONE
    if cfg.get("cert"):
        ctx.load_cert_chain(cfg["cert"], keyfile=cfg.get("key"), password=cfg.get("password"))
    return ctx


# ---------------------------------------------------------------------------------- builder

_MISSING = object()


class Query:
    """One SELECT/INSERT/UPDATE/DELETE being built; chainable; created by DbConnection.

    Every call chain owns its Query, so greenlets building queries at the same time cannot
    interfere (PHP kept this state on the shared connection object). A Query may be executed
    more than once; its state is kept after a terminal call.
    """

    __slots__ = ("_db", "_type", "_flags", "_cols", "_from", "_where", "_group_by", "_having",
                 "_order_by", "_order_asc", "_limit", "_offset", "_paging", "_for_update",
                 "_binds", "_table", "_col_values", "_union")

    def __init__(self, db: "DbConnection", kind: str = "SELECT") -> None:
        self._db = db
        self._type = kind
        self._flags: Dict[str, None] = {}
        self._cols: List[str] = []
        self._from: List[List[Tuple[str, tuple]]] = []
        self._where: List[Tuple[str, str, tuple]] = []
        self._group_by: List[str] = []
        self._having: List[Tuple[str, str, tuple]] = []
        self._order_by: List[str] = []
        self._order_asc: Optional[bool] = None
        self._limit = 0
        self._offset = 0
        self._paging = 10
        self._for_update = False
        self._binds: Dict[str, Any] = {}
        self._table = ""
        self._col_values: List[Tuple[str, str, tuple]] = []
        self._union: List[List[Tuple[str, tuple]]] = []

    # --- statement type and tables
    def select(self, cols: Union[str, Iterable[str], Mapping[str, str]] = "*") -> "Query":
        """Columns to select: 'a, b AS c', ['a', 't.b'], or {expr: alias}. Additive."""
        self._type = "SELECT"
        return self.cols(cols)

    def from_(self, table: str) -> "Query":
        """FROM table (``'t'``, ``'t AS a'``, ``'db.t'``); call again for ``FROM a, b``."""
        self._from.append([(quote_name(table), ())])
        return self

    from_table = from_

    def from_raw(self, sql: str, *params: Any) -> "Query":
        """FROM an unquoted SQL fragment (placeholders allowed)."""
        self._from.append([(sql, params)])
        return self

    def from_sub_select(self, sub: Union[str, "Query"], name: str) -> "Query":
        """FROM (subquery) AS name; `sub` may be another Query (its values are bound)."""
        text, params = self._sub(sub)
        self._from.append([("(%s) AS %s" % (text, _quote_ident(name)), params)])
        return self

    def _sub(self, sub: Union[str, "Query"]) -> Tuple[str, tuple]:
        if isinstance(sub, Query):
            sql, params = sub.to_sql()
            # re-express as a fragment: %s -> ?, %% -> %, so it goes through _translate again
            return sql % tuple("?" for _ in params), tuple(params)
        return sub, ()

    def insert(self, table: str) -> "Query":
        self._type = "INSERT"
        self._table = quote_name(table, alias=False)
        return self

    def into(self, table: str) -> "Query":
        self._table = quote_name(table, alias=False)
        return self

    def update(self, table: str) -> "Query":
        self._type = "UPDATE"
        self._table = quote_name(table)
        return self

    def table(self, table: str) -> "Query":
        self._table = quote_name(table)
        return self

    def delete(self, table: str) -> "Query":
        self._type = "DELETE"
        self._table = quote_name(table)
        return self

    # --- columns / values
    def cols(self, cols: Union[str, Iterable[str], Mapping[str, Any]]) -> "Query":
        """SELECT: add columns (str, list, or {expr: alias}).
        INSERT/UPDATE: {col: value} binds each value; [col, ...] uses :col from bind_values."""
        if self._type == "SELECT":
            if isinstance(cols, Mapping):
                for expr, alias in cols.items():
                    self._cols.append("%s AS %s" % (quote_name(str(expr), alias=False),
                                                    _quote_ident(str(alias))))
            else:
                self._cols.extend(quote_name(c) for c in _split_list(cols))
            return self
        if isinstance(cols, Mapping):
            for col, value in cols.items():
                self.col(col, value)
        else:
            for col in _split_list(cols):
                self.col(col)
        return self

    def col(self, col: str, value: Any = _MISSING) -> "Query":
        """One INSERT/UPDATE column: bound to `value`, or to :col from bind_values."""
        name = col.strip()
        if value is _MISSING:
            if not re.match(r"[^\W\d]\w*\Z", name):
                raise DbBuildError("col(%r): without a value the column name must be a plain "
                                   "identifier (it becomes the :%s placeholder)" % (col, name))
            self._col_values.append((quote_name(name, alias=False), ":" + name, ()))
        else:
            self._col_values.append((quote_name(name, alias=False), "?", (value,)))
        return self

    def set(self, col: str, expr: Optional[str]) -> "Query":
        """col = raw SQL expression (not bound: ``set('n', 'n + 1')``); None means NULL."""
        self._col_values.append((quote_name(col, alias=False),
                                 "NULL" if expr is None else str(expr), ()))
        return self

    # --- joins
    def join(self, table: str, cond: Optional[str] = None, type: str = "",
             *params: Any) -> "Query":
        """[type] JOIN table ON cond ('ON'/'USING' prefix optional); values for ? in cond."""
        if not self._from:
            raise DbBuildError("join(%r) needs from_() first" % (table,))
        if not _JOIN_TYPE_RE.match(type or ""):
            raise DbBuildError("join type %r is not a join keyword" % (type,))
        text = ("%s JOIN %s" % ((type or "").upper().strip(), quote_name(table))).strip()
        if cond and cond.strip():
            c = cond.strip()
            if not re.match(r"(ON|USING)\s", c, re.I):
                c = "ON " + c
            text += " " + c
        elif params:
            raise DbBuildError("join(%r): values given but no condition" % (table,))
        self._from[-1].append((text, params))
        return self

    def inner_join(self, table: str, cond: Optional[str] = None, *params: Any) -> "Query":
        return self.join(table, cond, "INNER", *params)

    def left_join(self, table: str, cond: Optional[str] = None, *params: Any) -> "Query":
        return self.join(table, cond, "LEFT", *params)

    def right_join(self, table: str, cond: Optional[str] = None, *params: Any) -> "Query":
        return self.join(table, cond, "RIGHT", *params)

    # --- conditions
    def where(self, cond: Union[str, Mapping[str, Any], Sequence[Any]], *params: Any) -> "Query":
        """AND a condition. Forms:
        ``where('a = ? AND b = :b', 1)`` (positional values here, named via bind_values),
        ``where({'id': 5, 'tag': ['x', 'y'], 'gone': None, 'n > ?': 3})`` (bare column ->
        ``=``/``IN``/``IS NULL``; key with placeholders -> value(s) bound),
        ``where(['a = 1', ('b = ?', 2)])`` (each entry ANDed)."""
        self._add_cond(self._where, "AND", cond, params, "where")
        return self

    def or_where(self, cond: Union[str, Mapping[str, Any], Sequence[Any]],
                 *params: Any) -> "Query":
        """OR a condition (same forms as where)."""
        self._add_cond(self._where, "OR", cond, params, "or_where")
        return self

    def having(self, cond: Union[str, Mapping[str, Any], Sequence[Any]], *params: Any) -> "Query":
        self._add_cond(self._having, "AND", cond, params, "having")
        return self

    def or_having(self, cond: Union[str, Mapping[str, Any], Sequence[Any]],
                  *params: Any) -> "Query":
        self._add_cond(self._having, "OR", cond, params, "or_having")
        return self

    def _add_cond(self, target: List[Tuple[str, str, tuple]], andor: str, cond: Any,
                  params: tuple, what: str) -> None:
        if isinstance(cond, str):
            if not cond.strip():
                raise DbBuildError("%s(): empty condition" % what)
            target.append((andor, cond.strip(), tuple(params)))
            return
        if params:
            raise DbBuildError("%s(): extra values are only accepted with a string condition"
                               % what)
        if isinstance(cond, Mapping):
            for key, value in cond.items():
                target.append((andor,) + self._dict_cond(str(key), value, what))
        elif isinstance(cond, (list, tuple)):
            for entry in cond:
                if isinstance(entry, str):
                    target.append((andor, entry.strip(), ()))
                elif isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
                    target.append((andor, entry[0].strip(), tuple(entry[1:])))
                else:
                    raise DbBuildError("%s(): list entries must be strings or (cond, *values) "
                                       "tuples, got %r" % (what, entry))
        else:
            raise DbBuildError("%s(): condition must be a str, dict or list, got %s"
                               % (what, type(cond).__name__))

    @staticmethod
    def _dict_cond(key: str, value: Any, what: str) -> Tuple[str, tuple]:
        key = key.strip()
        n = _count_positional(key)
        if n == 0 and _PATH_RE.match(key) and "*" not in key:
            col = _quote_path(key)
            if value is None:
                return "%s IS NULL" % col, ()
            if isinstance(value, (list, tuple, set, frozenset)):
                values = tuple(value)
                if not values:
                    return "1 = 0", ()      # IN () matches nothing
                return "%s IN (%s)" % (col, ", ".join("?" for _ in values)), values
            return "%s = ?" % col, (value,)
        if n == 0:
            if _has_placeholder(key):       # only named placeholders: value must be None
                if value is not None:
                    raise DbBuildError("%s({%r: ...}): the condition only has named "
                                       "placeholders; bind them with bind_values()" % (what, key))
                return key, ()
            if value is not None:
                raise DbBuildError("%s({%r: %r}): the condition has no ? placeholder for the "
                                   "value" % (what, key, value))
            return key, ()
        if n > 1:
            if not isinstance(value, (list, tuple)) or len(value) != n:
                raise DbBuildError("%s({%r: ...}): %d placeholders need a list/tuple of %d "
                                   "values" % (what, key, n, n))
            return key, tuple(value)
        return key, (value,)

    # --- grouping, ordering, paging
    def group_by(self, cols: Union[str, Iterable[str]]) -> "Query":
        self._group_by.extend(_quote_order(c) for c in _split_list(cols))
        return self

    def order_by(self, cols: Union[str, Iterable[str]]) -> "Query":
        """ORDER BY items, each optionally suffixed ASC/DESC: ``['a DESC', 'b']``."""
        self._order_by.extend(_quote_order(c) for c in _split_list(cols))
        return self

    def order_by_asc(self, cols: Union[str, Iterable[str]], asc: bool = True) -> "Query":
        """ORDER BY cols ASC (one direction for the whole clause, as in PHP)."""
        self._order_asc = bool(asc)
        return self.order_by(cols)

    def order_by_desc(self, cols: Union[str, Iterable[str]]) -> "Query":
        self._order_asc = False
        return self.order_by(cols)

    def limit(self, n: int) -> "Query":
        self._limit = int(n)
        return self

    def offset(self, n: int) -> "Query":
        """OFFSET n (SELECT only, as in PHP; needs a limit to show up)."""
        self._offset = int(n)
        return self

    def set_paging(self, n: int) -> "Query":
        self._paging = int(n)
        return self

    def get_paging(self) -> int:
        return self._paging

    def page(self, n: int) -> "Query":
        """Page n (1-based) of set_paging() rows (default 10); n <= 0 clears limit/offset."""
        n = int(n)
        self._limit = self._paging if n > 0 else 0
        self._offset = self._paging * (n - 1) if n > 0 else 0
        return self

    # --- flags
    def _flag(self, flag: str, enable: bool) -> "Query":
        if enable:
            self._flags[flag] = None
        else:
            self._flags.pop(flag, None)
        return self

    def distinct(self, enable: bool = True) -> "Query":
        return self._flag("DISTINCT", enable)

    def for_update(self, enable: bool = True) -> "Query":
        self._for_update = bool(enable)
        return self

    def calc_found_rows(self, enable: bool = True) -> "Query":
        return self._flag("SQL_CALC_FOUND_ROWS", enable)

    def cache(self, enable: bool = True) -> "Query":
        return self._flag("SQL_CACHE", enable)

    def no_cache(self, enable: bool = True) -> "Query":
        return self._flag("SQL_NO_CACHE", enable)

    def straight_join(self, enable: bool = True) -> "Query":
        return self._flag("STRAIGHT_JOIN", enable)

    def high_priority(self, enable: bool = True) -> "Query":
        return self._flag("HIGH_PRIORITY", enable)

    def low_priority(self, enable: bool = True) -> "Query":
        return self._flag("LOW_PRIORITY", enable)

    def ignore(self, enable: bool = True) -> "Query":
        return self._flag("IGNORE", enable)

    def quick(self, enable: bool = True) -> "Query":
        return self._flag("QUICK", enable)

    def delayed(self, enable: bool = True) -> "Query":
        return self._flag("DELAYED", enable)

    def small_result(self, enable: bool = True) -> "Query":
        return self._flag("SQL_SMALL_RESULT", enable)

    def big_result(self, enable: bool = True) -> "Query":
        return self._flag("SQL_BIG_RESULT", enable)

    def buffer_result(self, enable: bool = True) -> "Query":
        return self._flag("SQL_BUFFER_RESULT", enable)

    # --- unions and binds
    def union(self) -> "Query":
        """Close the current SELECT with UNION and start the next one on this Query."""
        return self._union_with(" UNION ")

    def union_all(self) -> "Query":
        return self._union_with(" UNION ALL ")

    def _union_with(self, glue: str) -> "Query":
        pieces = self._pieces()
        pieces.append((glue, ()))
        self._union.append(pieces)
        self._flags = {}
        self._cols, self._from, self._where, self._group_by = [], [], [], []
        self._having, self._order_by, self._order_asc = [], [], None
        self._limit = self._offset = 0
        self._for_update = False
        return self

    def bind_values(self, values: Mapping[str, Any]) -> "Query":
        """Values for :name placeholders anywhere in the statement."""
        for key, value in values.items():
            self.bind_value(key, value)
        return self

    def bind_value(self, name: str, value: Any) -> "Query":
        self._binds[str(name).lstrip(":")] = value
        return self

    # --- building
    def _conds(self, conds: List[Tuple[str, str, tuple]]) -> List[Tuple[str, tuple]]:
        many = len(conds) > 1
        out: List[Tuple[str, tuple]] = []
        for i, (andor, text, params) in enumerate(conds):
            prefix = "" if i == 0 else " %s " % andor
            out.append((prefix + ("(%s)" % text if many else text), params))
        return out

    def _pieces(self) -> List[Tuple[str, tuple]]:
        kind = self._type
        flags = "".join(" " + f for f in self._flags)
        p: List[Tuple[str, tuple]] = []
        if kind == "SELECT":
            p.append(("SELECT" + flags + " " + ", ".join(self._cols or ["*"]), ()))
            if self._from:
                p.append((" FROM ", ()))
                for i, group in enumerate(self._from):
                    if i:
                        p.append((", ", ()))
                    for j, (text, params) in enumerate(group):
                        p.append(((" " if j else "") + text, params))
        elif kind == "INSERT":
            if not self._table:
                raise DbBuildError("insert(): no table")
            p.append(("INSERT%s INTO %s (%s) VALUES (" % (
                flags, self._table, ", ".join(c for c, _, _ in self._col_values)), ()))
            for i, (_, value, params) in enumerate(self._col_values):
                p.append(((", " if i else "") + value, params))
            p.append((")", ()))
            return p
        elif kind == "UPDATE":
            if not self._table:
                raise DbBuildError("update(): no table")
            if not self._col_values:
                raise DbBuildError("update(%s): no columns to set (use cols() or set())"
                                   % self._table)
            p.append(("UPDATE%s %s SET " % (flags, self._table), ()))
            for i, (col, value, params) in enumerate(self._col_values):
                p.append(("%s%s = %s" % (", " if i else "", col, value), params))
        elif kind == "DELETE":
            if not self._table:
                raise DbBuildError("delete(): no table")
            p.append(("DELETE%s FROM %s" % (flags, self._table), ()))
        else:
            raise DbBuildError("unknown statement type %r" % kind)
        if self._where:
            p.append((" WHERE ", ()))
            p.extend(self._conds(self._where))
        if kind == "SELECT":
            if self._group_by:
                p.append((" GROUP BY " + ", ".join(self._group_by), ()))
            if self._having:
                p.append((" HAVING ", ()))
                p.extend(self._conds(self._having))
        if self._order_by:
            text = " ORDER BY " + ", ".join(self._order_by)
            if self._order_asc is not None:
                text += " ASC" if self._order_asc else " DESC"
            p.append((text, ()))
        if self._limit:
            text = " LIMIT %d" % self._limit
            if kind == "SELECT" and self._offset:
                text += " OFFSET %d" % self._offset
            p.append((text, ()))
        if kind == "SELECT" and self._for_update:
            p.append((" FOR UPDATE", ()))
        return p

    def to_sql(self) -> Tuple[str, List[Any]]:
        """(SQL with PyMySQL %s placeholders, parameter list) — exactly what is executed."""
        pieces: List[Tuple[str, tuple]] = []
        for part in self._union:
            pieces.extend(part)
        pieces.extend(self._pieces())
        out: List[str] = []
        params: List[Any] = []
        for text, values in pieces:
            sql, vals = _translate(text, values, self._binds, True, self._type.lower())
            out.append(sql)
            params.extend(vals)
        return "".join(out), params

    def __str__(self) -> str:
        sql, params = self.to_sql()
        return _display_sql(sql, params)

    def __repr__(self) -> str:
        try:
            return "<Query %s>" % self
        except DbError as exc:
            return "<Query %s (incomplete: %s)>" % (self._type, exc)

    # --- terminals
    def _terminal(self, mode: str, sql: Optional[str], params: Any) -> Any:
        if sql is not None and str(sql).strip():
            return self._db._raw(mode, sql, params)
        text, values = self.to_sql()
        return self._db._run(text, tuple(values), mode)

    def query(self, sql: Optional[str] = None, params: Any = None) -> Any:
        """Run it. SELECT/SHOW -> list of row dicts; UPDATE/DELETE/REPLACE -> affected rows;
        INSERT -> last insert id (None when no row was inserted); other statements -> None.
        Given `sql`, runs that raw SQL instead (as PHP's query($sql, $params))."""
        return self._terminal("query", sql, params)

    def row(self, sql: Optional[str] = None, params: Any = None) -> Optional[Dict[str, Any]]:
        """First row as a dict, or None when there is none (PHP returned false)."""
        return self._terminal("row", sql, params)

    def column(self, sql: Optional[str] = None, params: Any = None) -> List[Any]:
        """First column of every row as a list ([] when no rows; PHP returned null)."""
        return self._terminal("column", sql, params)

    def single(self, sql: Optional[str] = None, params: Any = None) -> Any:
        """First column of the first row, or False when there is no row (NULL -> None)."""
        return self._terminal("single", sql, params)

    # camelCase aliases (PHP names)
    fromRaw = from_raw
    fromSubSelect = from_sub_select
    innerJoin = inner_join
    leftJoin = left_join
    rightJoin = right_join
    orWhere = or_where
    orHaving = or_having
    groupBy = group_by
    orderBy = order_by
    orderByASC = order_by_asc
    orderByDESC = order_by_desc
    setPaging = set_paging
    getPaging = get_paging
    forUpdate = for_update
    calcFoundRows = calc_found_rows
    noCache = no_cache
    straightJoin = straight_join
    highPriority = high_priority
    lowPriority = low_priority
    smallResult = small_result
    bigResult = big_result
    bufferResult = buffer_result
    unionAll = union_all
    bindValues = bind_values
    bindValue = bind_value


setattr(Query, "from", Query.from_)          # reachable as getattr(q, 'from') for ports


# ------------------------------------------------------------------------------- connection

class _GreenletState:
    __slots__ = ("sql", "args", "insert_id", "aborted")

    def __init__(self) -> None:
        self.sql = ""
        self.args: Optional[Sequence[Any]] = None
        self.insert_id: Optional[int] = None
        self.aborted: Optional[str] = None


class DbConnection:
    """A MySQL server + database: a pool of PyMySQL connections and the query entry points.

    Construct directly (``DbConnection(host, port, user, password, db_name)``) or get a cached
    one with ``Db.instance(name)``. Nothing connects until the first query. Safe to share among
    greenlets: builders are per call chain, sockets are per checkout, transactions per greenlet.

    ``pool_size`` bounds the connections this process opens; ``wait_timeout`` is how long a
    greenlet waits for a free one before DbPoolTimeout (it is not MySQL's idle wait_timeout).
    ``ssl``: None (plain, ``ssl_disabled=True``), True (TLS without verification), a dict
    (ca, capath, cert, key, check_hostname, verify_mode) or an ``ssl.SSLContext``.
    """

    def __init__(self, host: str, port: int, user: str, password: str, db_name: Optional[str],
                 charset: str = "utf8mb4", pool_size: int = DEFAULT_POOL_SIZE,
                 wait_timeout: float = DEFAULT_WAIT_TIMEOUT, ssl: Any = None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: Optional[float] = None, write_timeout: Optional[float] = None,
                 name: str = "") -> None:
        self.host = host or "127.0.0.1"
        self.port = int(port or 3306)
        self.user = user or ""
        self.password = password or ""
        self.db_name = db_name or None
        self.charset = charset or "utf8mb4"
        self.name = name
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._ssl_ctx = _make_ssl_context(ssl)
        self._pool = _Pool(self, int(pool_size), float(wait_timeout))
        self._state: "weakref.WeakKeyDictionary[Any, _GreenletState]" = \
            weakref.WeakKeyDictionary()
        self._last = _GreenletState()        # connection-wide fallback for other greenlets

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], name: str = "") -> "DbConnection":
        """Build from a PHP-style config dict: host, port, user, password, dbname (or db_name /
        database), charset, pool_size, wait_timeout, ssl, connect/read/write_timeout."""
        known = {"host", "port", "user", "password", "dbname", "db_name", "database", "charset",
                 "pool_size", "wait_timeout", "ssl", "connect_timeout", "read_timeout",
                 "write_timeout"}
        unknown = set(cfg) - known
        if unknown:
            raise ConfigError("Db config %r: unknown key(s) %s (known: %s)"
                              % (name, ", ".join(sorted(unknown)), ", ".join(sorted(known))))
        return cls(
            host=opt(cfg, "host", default="127.0.0.1"), port=int(opt(cfg, "port", default=3306)),
            user=opt(cfg, "user", default="root"), password=opt(cfg, "password", default=""),
            db_name=opt(cfg, "dbname", "db_name", "database"),
            charset=opt(cfg, "charset", default="utf8mb4"),
            pool_size=int(opt(cfg, "pool_size", default=DEFAULT_POOL_SIZE)),
            wait_timeout=float(opt(cfg, "wait_timeout", default=DEFAULT_WAIT_TIMEOUT)),
            ssl=opt(cfg, "ssl"),
            connect_timeout=float(opt(cfg, "connect_timeout", default=DEFAULT_CONNECT_TIMEOUT)),
            read_timeout=opt(cfg, "read_timeout"), write_timeout=opt(cfg, "write_timeout"),
            name=name)

    @property
    def label(self) -> str:
        """'Db 'name' (host:port/db)' — the prefix of every error message."""
        where = "%s:%d/%s" % (self.host, self.port, self.db_name or "")
        return "Db %r (%s)" % (self.name, where) if self.name else "Db (%s)" % where

    def __repr__(self) -> str:
        return "<DbConnection %s user=%r pool=%s>" % (self.label, self.user, self._pool.stats())

    # --- connections
    def _connect(self) -> Any:
        kwargs: Dict[str, Any] = dict(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=self.db_name, charset=self.charset, autocommit=True,
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            write_timeout=self.write_timeout, cursorclass=pymysql.cursors.DictCursor)
        if self._ssl_ctx is None:
            kwargs["ssl_disabled"] = True   # see module docstring: avoids a hub-blocking CA load
        else:
            kwargs["ssl"] = self._ssl_ctx
        try:
            return pymysql.connect(**kwargs)
        except (pymysql.err.MySQLError, OSError) as exc:
            raise DbConnectError("%s: cannot connect to MySQL at %s:%d as %r (database %r): %s"
                                 % (self.label, self.host, self.port, self.user, self.db_name,
                                    exc)) from exc

    def _st(self) -> _GreenletState:
        g = getcurrent()
        st = self._state.get(g)
        if st is None:
            st = self._state[g] = _GreenletState()
        return st

    def stats(self) -> Dict[str, int]:
        """Pool counters: size, idle, in_use, pinned (transactions open)."""
        return self._pool.stats()

    def close(self) -> None:
        """Close idle connections (in-use ones close when released); later queries reconnect."""
        self._pool.close()

    # --- execution
    def _exec(self, raw: Any, sql: str, args: Optional[Sequence[Any]], mode: str) -> Any:
        cls = (pymysql.cursors.DictCursor if mode in ("query", "row")
               else pymysql.cursors.Cursor)
        with raw.cursor(cls) as cur:
            cur.execute(sql, args)
            if cur.lastrowid:
                st = self._st()
                st.insert_id = self._last.insert_id = cur.lastrowid
            if mode == "query":
                if cur.description is not None:
                    return list(cur.fetchall())
                verb = _verb(sql)
                if verb == "INSERT":
                    return cur.lastrowid if cur.rowcount > 0 else None
                if verb in ("UPDATE", "DELETE", "REPLACE"):
                    return cur.rowcount
                return None
            if mode == "row":
                return cur.fetchone() if cur.description is not None else None
            if mode == "column":
                return [r[0] for r in cur.fetchall()] if cur.description is not None else []
            if mode == "single":
                r = cur.fetchone() if cur.description is not None else None
                return r[0] if r else False
            return None

    def _wrap(self, exc: BaseException, sql: str, args: Optional[Sequence[Any]],
              gone: bool, note: str = "") -> DbQueryError:
        code = _errno(exc)
        msg = exc.args[1] if len(getattr(exc, "args", ())) > 1 else str(exc)
        if not msg:
            msg = type(exc).__name__ + (" (socket already closed)" if code == 0 else "")
        text = "%s: %s (errno %d)%s in SQL: %s" % (self.label, msg, code, note,
                                                  _display_sql(sql, args))
        if args:
            text += " ; params: " + _short(list(args))
        err = _error_class(type(exc), gone)(code, text)
        err.errno, err.sql, err.params, err.name, err.original = code, sql, args, self.name, exc
        return err

    def _run(self, sql: str, args: Optional[Sequence[Any]], mode: str) -> Any:
        """Execute on the greenlet's transaction connection, or on a pooled one with one
        transparent reconnect-and-retry when the connection turns out to be gone."""
        g = getcurrent()
        st = self._st()
        st.sql, st.args = sql, args
        self._last.sql, self._last.args = sql, args
        pool = self._pool
        raw = pool.pinned(g)
        if raw is not None:
            return self._run_in_tx(g, raw, sql, args, mode)
        for attempt in (1, 2):
            raw = pool.acquire(fresh=attempt == 2)
            try:
                result = self._exec(raw, sql, args, mode)
            except BaseException as exc:
                pool.release(raw, broken=not _is_server_error(exc))
                if not isinstance(exc, pymysql.err.MySQLError):
                    raise
                gone = _is_gone_away(exc)
                if gone and attempt == 1:
                    log.info("%s: connection lost (%s); reconnecting and retrying once",
                             self.label, exc)
                    continue
                note = " (connection lost; the retry on a new connection failed too)" \
                    if gone else ""
                raise self._wrap(exc, sql, args, gone, note) from exc
            pool.release(raw)
            return result
        raise AssertionError("unreachable")

    def _run_in_tx(self, g: Any, raw: Any, sql: str, args: Optional[Sequence[Any]],
                   mode: str) -> Any:
        try:
            return self._exec(raw, sql, args, mode)
        except BaseException as exc:
            # As PHP's Connection::execute: an error rolls the open transaction back.
            self._pool.unpin(g)
            healthy = _is_server_error(exc)
            if healthy:
                try:
                    raw.rollback()
                except Exception:
                    healthy = False
            self._pool.release(raw, broken=not healthy)
            if not isinstance(exc, pymysql.err.MySQLError):
                self._st().aborted = "%s: %r" % (type(exc).__name__, exc)
                raise
            gone = _is_gone_away(exc)
            note = ("; connection lost inside a transaction: the server rolled it back"
                    if gone else "; the open transaction was rolled back")
            err = self._wrap(exc, sql, args, gone, note)
            self._st().aborted = str(err)
            raise err from exc

    def _raw(self, mode: str, sql: str, params: Any) -> Any:
        sql = str(sql).strip()
        if not sql:
            raise DbBuildError("%s(): empty SQL; build a statement with db.select()/insert()/"
                               "update()/delete() or pass SQL" % mode)
        if params is None:
            return self._run(sql, None, mode)      # SQL sent as written (no % processing)
        if isinstance(params, Mapping):
            text, values = _translate(sql, (), {str(k).lstrip(":"): v for k, v in
                                                params.items()}, False, mode)
        elif isinstance(params, (list, tuple)):
            text, values = _translate(sql, tuple(params), {}, False, mode)
        else:
            raise DbBuildError("%s(): params must be a list/tuple (for ? or %%s) or a dict (for "
                               ":name), got %s" % (mode, type(params).__name__))
        return self._run(text, tuple(values), mode)

    # --- builder entry points (each returns a new Query)
    def select(self, cols: Union[str, Iterable[str], Mapping[str, str]] = "*") -> Query:
        return Query(self).select(cols)

    def from_(self, table: str) -> Query:
        """Shortcut for select('*').from_(table)."""
        return Query(self).from_(table)

    from_table = from_

    def insert(self, table: str) -> Query:
        return Query(self).insert(table)

    def update(self, table: str) -> Query:
        return Query(self).update(table)

    def delete(self, table: str) -> Query:
        return Query(self).delete(table)

    # --- raw terminals
    def query(self, sql: Optional[str] = None, params: Any = None) -> Any:
        """Raw SQL with optional params (list for ?/%s, dict for :name). Return value as
        Query.query(). Without params the SQL is sent exactly as written."""
        if sql is None:
            raise DbBuildError("query() on the connection needs SQL; build a statement with "
                               "db.select()/insert()/update()/delete()")
        return self._raw("query", sql, params)

    def row(self, sql: str, params: Any = None) -> Optional[Dict[str, Any]]:
        return self._raw("row", sql, params)

    def column(self, sql: str, params: Any = None) -> List[Any]:
        return self._raw("column", sql, params)

    def single(self, sql: str, params: Any = None) -> Any:
        return self._raw("single", sql, params)

    def ping(self) -> bool:
        """Round-trip SELECT 1 (connects if needed); raises on failure."""
        return self._run("SELECT 1", None, "single") == 1

    def last_insert_id(self) -> Optional[int]:
        """Auto-increment id of the last INSERT run by this greenlet (else by any greenlet)."""
        st = self._state.get(getcurrent())
        if st is not None and st.insert_id is not None:
            return st.insert_id
        return self._last.insert_id

    def last_sql(self) -> str:
        """Last statement run by this greenlet (else by any greenlet), values shown as ?."""
        st = self._state.get(getcurrent())
        if st is None or not st.sql:
            st = self._last
        return _display_sql(st.sql, st.args)

    def last_params(self) -> Optional[List[Any]]:
        st = self._state.get(getcurrent())
        if st is None or not st.sql:
            st = self._last
        return None if st.args is None else list(st.args)

    # --- transactions
    def in_transaction(self) -> bool:
        return self._pool.pinned(getcurrent()) is not None

    def begin(self) -> None:
        """Open a transaction pinned to the calling greenlet (its queries use that connection)."""
        g = getcurrent()
        pool = self._pool
        if pool.pinned(g) is not None:
            raise DbTransactionError("%s: begin(): this greenlet already has an open "
                                     "transaction; nested transactions are not supported "
                                     "(use SAVEPOINT via query() if needed)" % self.label)
        st = self._st()
        st.aborted = None
        st.sql, st.args = "BEGIN", None
        for attempt in (1, 2):
            raw = pool.acquire(fresh=attempt == 2)
            try:
                raw.begin()
            except BaseException as exc:
                pool.release(raw, broken=not _is_server_error(exc))
                if isinstance(exc, pymysql.err.MySQLError):
                    if _is_gone_away(exc) and attempt == 1:
                        continue
                    raise self._wrap(exc, "BEGIN", None, _is_gone_away(exc)) from exc
                raise
            pool.pin(g, raw)
            return

    def commit(self) -> None:
        """Commit this greenlet's transaction; DbTransactionError when none is open."""
        g = getcurrent()
        raw = self._pool.unpin(g)
        if raw is None:
            st = self._state.get(g)
            reason = st.aborted if st is not None else None
            if reason:
                st.aborted = None
                raise DbTransactionError("%s: commit(): the transaction was already rolled back "
                                         "after an error: %s" % (self.label, reason))
            raise DbTransactionError("%s: commit(): no open transaction in this greenlet"
                                     % self.label)
        try:
            raw.commit()
        except BaseException as exc:
            self._pool.release(raw, broken=True)
            if isinstance(exc, pymysql.err.MySQLError):
                raise self._wrap(exc, "COMMIT", None, _is_gone_away(exc),
                                 "; the transaction is lost") from exc
            raise
        self._pool.release(raw)

    def rollback(self) -> bool:
        """Roll back this greenlet's transaction. False (no error) when none is open, as PHP's
        rollBackTrans() only acts inside a transaction."""
        g = getcurrent()
        raw = self._pool.unpin(g)
        st = self._state.get(g)
        if st is not None:
            st.aborted = None
        if raw is None:
            return False
        try:
            raw.rollback()
        except BaseException:
            self._pool.release(raw, broken=True)   # closing it rolls back server-side
            return True
        self._pool.release(raw)
        return True

    @contextmanager
    def transaction(self) -> Iterator["DbConnection"]:
        """``with db.transaction():`` commits at the end of the block, rolls back (and
        re-raises) on exception. Opening one inside another raises DbTransactionError."""
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        g = getcurrent()
        if self._pool.pinned(g) is not None:
            self.commit()
        else:
            st = self._state.get(g)
            if st is not None and st.aborted:      # an error rolled it back and was swallowed
                reason, st.aborted = st.aborted, None
                raise DbTransactionError("%s: transaction block finished but the transaction "
                                         "had been rolled back after an error: %s"
                                         % (self.label, reason))
            # else: the block committed/rolled back explicitly

    # camelCase aliases (PHP names)
    lastInsertId = last_insert_id
    lastSQL = last_sql
    beginTrans = begin
    commitTrans = commit
    rollBackTrans = rollback
    closeConnection = close
    inTransaction = in_transaction


setattr(DbConnection, "from", DbConnection.from_)


# ------------------------------------------------------------------------------------- Db

class Db(NamedInstances):
    """Named DbConnection instances, one per process, created at first use.

    ``Db.configure({'default': {'host': ..., 'port': 3306, 'user': ..., 'password': ...,
    'dbname': ..., 'charset': 'utf8mb4'}})``, ``Db.configure(config_module)`` or env
    ``GW_DB_DEFAULT_URL=mysql://user:pass@host:3306/db``; then ``Db.instance()`` anywhere in
    the worker. After a fork the child builds its own instances (never the parent's sockets).
    """

    _registry = ConfigRegistry("Db")
    _instances: Dict[str, DbConnection] = {}
    _pid = os.getpid()

    @classmethod
    def _release(cls, instance: DbConnection) -> None:
        instance.close()

    @classmethod
    def settings(cls, name: str = "default") -> Dict[str, Any]:
        """The resolved config dict for `name` (password included: do not log it)."""
        raw, _where = cls._registry.lookup(name)
        return merge_url(raw, parse_mysql_url, name)

    @classmethod
    def instance(cls, name: str = "default") -> DbConnection:
        """The process's DbConnection for config `name` (created lazily, no I/O until used)."""
        cls._check_fork()
        conn = cls._instances.get(name)
        if conn is None:
            raw, where = cls._registry.lookup(name)
            try:
                cfg = merge_url(raw, parse_mysql_url, name)
                conn = DbConnection.from_config(cfg, name=name)
            except ConfigError as exc:
                raise ConfigError("%s (from %s)" % (exc, where)) from None
            except (TypeError, ValueError) as exc:
                raise ConfigError("Db config %r (from %s) is invalid: %s"
                                  % (name, where, exc)) from None
            cls._instances[name] = conn
        return conn

    @classmethod
    def close(cls, name: str = "default") -> None:
        """Close and forget instance `name`; the next instance() builds a new one."""
        cls._check_fork()
        conn = cls._instances.pop(name, None)
        if conn is not None:
            conn.close()

    @classmethod
    def close_all(cls) -> None:
        cls._check_fork()
        instances, cls._instances = cls._instances, {}
        for conn in instances.values():
            conn.close()

    closeAll = close_all
