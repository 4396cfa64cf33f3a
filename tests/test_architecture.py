"""The house rules, checked from the source (ast), so they hold after every change:
packages are layers and imports only go down; no import cycles; no module over 600 lines
(lib/db.py excepted); no function over 80 lines (the websocket hot path excepted, see
protocols/websocket.py); every public name and every Gateway API method has a docstring."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

import gwgevent

PKG = Path(gwgevent.__file__).resolve().parent

#: layer -> the layers it may import. Base modules (gwgevent/_version.py, log.py, context.py)
#: import nothing of gwgevent; the package's __init__ may import anything.
ALLOWED: Dict[str, Set[str]] = {
    "base": set(),
    "codec": {"base"},
    "protocols": {"base"},
    "runtime": {"base", "protocols", "codec"},   # codec: client_id in slow-client log lines
    "api": {"base", "codec"},
    "cluster": {"base", "codec", "protocols", "runtime", "api"},
    "manager": {"base", "runtime", "codec"},   # codec: metrics count sends by command
    "lib": {"base"},
}
MAX_MODULE_LINES = 600
MODULE_LINE_EXCEPTIONS = {"lib/db.py"}
MAX_FUNCTION_LINES = 80
#: the one documented exception: the websocket parser's flat hot loop
FUNCTION_EXCEPTIONS = {"protocols/websocket.py:WebSocketCodec.feed"}


def _modules() -> Dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if len(parts) == 2 and parts[1] not in ALLOWED:
        return "base"
    return parts[1]


def _imports(module: str, path: Path) -> List[Tuple[str, int]]:
    """Every gwgevent module `module` imports (at any depth of the code), with the line."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gwgevent":
                    found.append((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "gwgevent":
                continue
            for alias in node.names:         # `from . import x` may name a module
                sub = target + "." + alias.name
                found.append((sub if sub in MODULES else target, node.lineno))
    return [(t, line) for t, line in found if t in MODULES and t != module]


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_imports_only_go_down_between_layers():
    bad = []
    for module, deps in GRAPH.items():
        src = layer(module)
        if src == "top":
            continue
        for target, line in deps:
            dst = layer(target)
            if dst == src or dst in ALLOWED[src]:
                continue
            bad.append("%s:%d imports %s (%s -> %s)" % (module, line, target, src, dst))
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_import_cycles():
    edges = {m: {t for t, _ in deps if t.startswith(m + ".") is False} for m, deps in GRAPH.items()}
    # a package's __init__ importing its own submodules is not a cycle with them
    for m in edges:
        edges[m] = {t for t in edges[m] if not (t.startswith(m + "."))}
    state: Dict[str, int] = {}
    stack: List[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_module_sizes():
    big = []
    for module, path in MODULES.items():
        rel = path.relative_to(PKG).as_posix()
        n = len(path.read_text().splitlines())
        if n > MAX_MODULE_LINES and rel not in MODULE_LINE_EXCEPTIONS:
            big.append("%s: %d lines" % (rel, n))
    assert not big, "modules over %d lines:\n%s" % (MAX_MODULE_LINES, "\n".join(big))


def test_function_sizes():
    long = []
    for module, path in MODULES.items():
        rel = path.relative_to(PKG).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        item.qual = "%s.%s" % (node.name, item.name)  # type: ignore[attr-defined]
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                name = "%s:%s" % (rel, getattr(node, "qual", node.name))
                if n > MAX_FUNCTION_LINES and name not in FUNCTION_EXCEPTIONS:
                    long.append("%s (%d lines)" % (name, n))
    assert not long, "functions over %d lines:\n%s" % (MAX_FUNCTION_LINES, "\n".join(long))


def _public_api_methods():
    from gwgevent.api.facade import GatewayFacade
    from gwgevent.api.gateway_api import API_METHODS, GatewayApi
    for entry in API_METHODS:
        yield "GatewayApi." + entry[0], getattr(GatewayApi, entry[0])
        yield "Gateway." + entry[0], getattr(GatewayFacade, entry[0])


def test_every_public_name_and_api_method_has_a_docstring():
    missing = []
    for name in gwgevent.__all__:
        obj = getattr(gwgevent, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj):
            missing.append("gwgevent." + name)
    for name, fn in _public_api_methods():
        if not (fn.__doc__ or "").strip():
            missing.append(name)
    assert not missing, "no docstring: " + ", ".join(missing)


def test_api_docstrings_name_the_php_method():
    from gwgevent.api.gateway_api import API_METHODS, GatewayApi
    for entry in API_METHODS:
        php = next((a for a in entry[1:] if any(c.isupper() for c in a)), entry[0])
        assert "Gateway::%s" % php in GatewayApi.__dict__[entry[0]].__doc__, entry[0]


def test_gateway_is_the_role_and_the_facade():
    """`Gateway('websocket://...')` builds the role; `Gateway.send_to_all` is a real function
    of the facade, not something installed at import."""
    from gwgevent.api.facade import GatewayFacade
    from gwgevent.cluster.gateway import Gateway
    assert Gateway.send_to_all is GatewayFacade.__dict__["send_to_all"].__func__
    assert Gateway.sendToAll is Gateway.send_to_all
    assert Gateway.destoryClient is Gateway.destroy_client
    role_names = {n for c in Gateway.__mro__ if c not in (GatewayFacade, object)
                  for n in vars(c)}
    assert not role_names & {n for n in vars(GatewayFacade) if not n.startswith("_")}


def test_old_module_paths_and_lazy_package(tmp_path):
    """Code written against the flat package still imports (one alias table), and importing
    the push client does not load gevent or the server side."""
    import subprocess
    import sys
    code = (
        "import sys\n"
        "from gwgevent import GatewayClient\n"
        "assert 'gevent' not in sys.modules, sorted(m for m in sys.modules if 'gevent' in m)\n"
        "assert not any(m.startswith('gwgevent.runtime') for m in sys.modules)\n"
        "import gwgevent.gateway, gwgevent.cluster.gateway, gwgevent.push_client\n"
        "assert gwgevent.gateway is gwgevent.cluster.gateway\n"
        "assert gwgevent.gateway.__spec__.name == 'gwgevent.cluster.gateway'\n"
        "from gwgevent.worker import Worker\n"
        "from gwgevent.connection import TcpConnection\n"
        "from gwgevent import Worker as W2, context\n"
        "assert Worker is W2 and type(context).__name__ != 'module'\n"
        "from gwgevent.push_client import GatewayClient as G2\n"
        "assert G2 is GatewayClient\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                         text=True, timeout=60,
                         env=dict(__import__("os").environ, PYTHONPATH=str(PKG.parent)))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_every_connection_owner_implements_the_seam():
    """Connections call their owner only through ConnectionOwner's public methods; every kind
    of owner (Worker and the roles, the Gateway's inner port, outbound link events) has them."""
    from gwgevent.cluster.gateway import _InnerServer
    from gwgevent.runtime.connection import ConnectionOwner
    from gwgevent.runtime.outbound import LinkEvents
    from gwgevent import BusinessWorker, Gateway, Register, Worker
    for cls in (Worker, Gateway, BusinessWorker, Register, _InnerServer, LinkEvents):
        missing = [name for name in ("handle_messages", "handle_handshake", "handle_closed",
                                     "handle_buffer_full", "handle_buffer_drain", "hold_close",
                                     "send_fail") if not hasattr(cls, name)]
        assert not missing, (cls.__name__, missing)
    assert isinstance(LinkEvents(), ConnectionOwner)
    assert isinstance(Worker(_register=False), ConnectionOwner)
    # nothing outside the runtime reaches into a connection's private fields
    bad = []
    for module, path in MODULES.items():
        if layer(module) in ("runtime", "top"):
            continue
        text = path.read_text()
        for field in ("._status", "._out_size", "._write(", "._busy", "._backlog", "._full"):
            for line_no, line in enumerate(text.splitlines(), 1):
                if field in line and "self." + field[1:] not in line:
                    bad.append("%s:%d %s" % (module, line_no, line.strip()))
    assert not bad, "\n".join(bad)
