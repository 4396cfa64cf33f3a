"""Optional Prometheus metrics (`pip install 'gwgevent[metrics]'`, i.e. prometheus_client).

    from gwgevent import enable_metrics
    enable_metrics(9100)            # in a start file, before run_all(): http://127.0.0.1:9100/

Call it before anything imports prometheus_client: the library chooses between single- and
multi-process mode when it is first imported.

Every process of the app writes its numbers in prometheus_client's multiprocess mode (files in
a directory the master creates); one extra process, "Metrics", serves them all on one port, so
a scrape sees the whole app whatever `count` says and however often processes are respawned.

Nothing is added to the per-message path. Each process samples the counters it keeps anyway
(connections, total_request, send_fail, bytes of its connections) once per
SAMPLE_INTERVAL; only handler latency is measured per event, and only when metrics are on.

Metrics (label `worker` = the Worker's name):

- `gwgevent_connections` (gauge): client connections open now
- `gwgevent_messages_received_total`: messages from clients (Gateway, Worker) or events
  handled (BusinessWorker)
- `gwgevent_bytes_received_total`, `gwgevent_bytes_sent_total`: on client connections
- `gwgevent_send_commands_total` (Gateway, label `kind` = one/all/uid/group): messages the
  workers asked the gateway to send out (a broadcast counts once)
- `gwgevent_send_buffer_drops_total`: sends dropped because a send buffer was full
- `gwgevent_worker_links` (gauge): BusinessWorker links of a Gateway / gateway links of a
  BusinessWorker
- `gwgevent_handler_seconds` (histogram): time in on_message/on_connect/... callbacks
- `gwgevent_process_starts_total` (label `reason` = start / respawn / reload): processes
  started; respawns (after a crash or a kill) and reload replacements apart
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Dict, Optional

__all__ = ["enable_metrics", "SAMPLE_INTERVAL", "ENV_DIR"]

#: seconds between two samples of a process's counters
SAMPLE_INTERVAL = 1.0
#: prometheus_client's multiprocess directory variable (set in the master, inherited)
ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: set in the master when metrics are on; children check it
ENV_ON = "GWGEVENT_METRICS"

_EVENTS = ("on_connect", "on_message", "on_close", "on_websocket_connect")


def enable_metrics(port: int, host: str = "127.0.0.1", directory: Optional[str] = None) -> Any:
    """Serve the app's metrics on host:port from a process of their own; returns its Worker.
    `directory` holds the per-process files (default: a fresh temp dir). Keep the port
    private (bind 127.0.0.1 or a LAN address): it describes your traffic."""
    import importlib.util
    # fail here, in the start file, not in a child; but do not import it yet: it picks its
    # single- or multi-process mode from the environment when first imported
    if importlib.util.find_spec("prometheus_client") is None:
        raise ImportError("gwgevent metrics need prometheus_client: pip install "
                          "'gwgevent[metrics]' (or pip install prometheus_client)")
    from ..runtime.worker import Worker
    if not os.environ.get(ENV_DIR):
        os.environ[ENV_DIR] = directory or tempfile.mkdtemp(prefix="gwgevent-metrics-")
    os.makedirs(os.environ[ENV_DIR], exist_ok=True)
    os.environ[ENV_ON] = "1"
    exporter = Worker(None, name="Metrics", count=1)
    exporter.reloadable = False
    exporter._metrics_exporter = True
    exporter.on_worker_start = lambda worker: _serve(host, int(port))
    return exporter


def _serve(host: str, port: int) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    _PruningCollector.install(registry)
    start_http_server(port, addr=host, registry=registry)


class _PruningCollector:
    """Runs before each scrape: live gauges of processes that died (crash, SIGKILL) are
    dropped, so `gwgevent_connections` does not count clients of a dead process."""

    def __init__(self) -> None:
        self.dir = os.environ[ENV_DIR]

    @classmethod
    def install(cls, registry: Any) -> None:
        registry.register(cls())

    def collect(self) -> list:
        from prometheus_client import multiprocess
        from .processes import pid_alive
        for name in os.listdir(self.dir):
            if not name.startswith("gauge_live") or not name.endswith(".db"):
                continue
            pid = name[:-3].rsplit("_", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)):
                multiprocess.mark_process_dead(int(pid), self.dir)
        return []


class _Metrics:
    """The metric objects of one process (created after fork, in multiprocess mode)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram
        self.connections = Gauge("gwgevent_connections", "client connections open now",
                                 ["worker"], multiprocess_mode="livesum")
        self.links = Gauge("gwgevent_worker_links", "links between gateways and workers",
                           ["worker"], multiprocess_mode="livesum")
        self.received = Counter("gwgevent_messages_received",
                                "messages from clients / events handled", ["worker"])
        self.bytes_in = Counter("gwgevent_bytes_received", "bytes read from clients",
                                ["worker"])
        self.bytes_out = Counter("gwgevent_bytes_sent", "bytes written to clients", ["worker"])
        self.drops = Counter("gwgevent_send_buffer_drops",
                             "sends dropped on a full send buffer", ["worker"])
        self.starts = Counter("gwgevent_process_starts", "processes started, by reason: "
                              "start, respawn (after a crash or kill), reload",
                              ["worker", "reason"])
        self.sends = Counter("gwgevent_send_commands", "send commands executed by a gateway",
                             ["worker", "kind"])
        self.latency = Histogram("gwgevent_handler_seconds", "time in event callbacks",
                                 ["worker", "event"])


class _Sampler:
    """Turns one process's running totals into counter increments every SAMPLE_INTERVAL."""

    def __init__(self, worker: Any, metrics: _Metrics) -> None:
        self.worker = worker
        self.m = metrics
        self.label = worker.name
        self.last: Dict[str, int] = {"received": 0, "drops": 0, "bytes_in": 0, "bytes_out": 0}
        #: bytes of connections that closed since the last sample
        self.closed_in = 0
        self.closed_out = 0

    def connection_closed(self, conn: Any) -> None:
        self.closed_in += conn.bytes_read
        self.closed_out += conn.bytes_written

    def sample(self) -> None:
        w, m, label = self.worker, self.m, self.label
        conns = list(w.connections.values())
        now = {
            "received": int(w.total_request),
            "drops": int(w.send_fail),
            "bytes_in": self.closed_in + sum(c.bytes_read for c in conns),
            "bytes_out": self.closed_out + sum(c.bytes_written for c in conns),
        }
        for key, counter in (("received", m.received), ("drops", m.drops),
                             ("bytes_in", m.bytes_in), ("bytes_out", m.bytes_out)):
            delta = now[key] - self.last[key]
            if delta > 0:
                counter.labels(label).inc(delta)
                self.last[key] = now[key]
        m.connections.labels(label).set(len(conns))
        links = getattr(w, "worker_conns", None)
        if links is None:
            links = getattr(w, "gateway_links", None)
        if links is not None:
            m.links.labels(label).set(len(links))


def _timed(fn: Callable, histogram: Any) -> Callable:
    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            histogram.observe(time.perf_counter() - t0)
    timed.__wrapped__ = fn
    return timed


def child_started(worker: Any) -> None:
    """In each child, once serving: count the start, time the callbacks, sample totals."""
    if os.environ.get(ENV_ON) != "1" or getattr(worker, "_metrics_exporter", False):
        return
    from ..runtime.timer import Timer
    m = _Metrics()
    m.starts.labels(worker.name, getattr(worker, "_start_reason", "start")).inc()
    sampler = _Sampler(worker, m)
    closed = worker.handle_closed

    def connection_closed(conn: Any) -> None:
        sampler.connection_closed(conn)
        closed(conn)
    worker.handle_closed = connection_closed
    handlers = getattr(worker, "_handlers", None)     # a BusinessWorker's Events functions
    for event in _EVENTS:
        hist = m.latency.labels(worker.name, event)
        if isinstance(handlers, dict) and handlers.get(event) is not None:
            handlers[event] = _timed(handlers[event], hist)
        elif getattr(worker, event, None) is not None:
            setattr(worker, event, _timed(getattr(worker, event), hist))
    core = getattr(worker, "core", None)              # a Gateway: count send commands
    if core is not None:
        core.handle = _counting_sends(core.handle, worker.name, m.sends)
    sampler.sample()
    Timer.add(SAMPLE_INTERVAL, sampler.sample)


def _counting_sends(handle: Callable, label: str, counter: Any) -> Callable:
    """GatewayCore.handle, counting the send commands (one dict lookup per command; the
    counter's per-kind children are resolved once)."""
    from ..codec import gateway_protocol as gp
    kinds = {gp.CMD_SEND_TO_ONE: "one", gp.CMD_SEND_TO_ALL: "all", gp.CMD_SEND_TO_UID: "uid",
             gp.CMD_SEND_TO_GROUP: "group"}
    children = {cmd: counter.labels(label, kind) for cmd, kind in kinds.items()}

    def counted(pkt: Any, reply: Callable) -> None:
        child = children.get(pkt.cmd)
        if child is not None:
            child.inc()
        handle(pkt, reply)
    return counted
