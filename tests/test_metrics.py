"""Prometheus metrics from a real app (tests/apps/metricsapp: a text echo Worker, count=2, and
the exporter process): after known traffic the scrape shows exactly the connections, messages,
bytes, handler calls and process starts that happened, summed over the processes, and a
SIGKILLed process's live gauges disappear once it is respawned."""
from __future__ import annotations

import os
import signal
import urllib.request

import pytest

from cluster import Cluster
from helpers import LineClient, apps, free_ports, pid_alive, wait_for  # noqa: F401 (fixture)

pytest.importorskip("prometheus_client")

LINES = ["hello", "héllo wörld", "x" * 300]


def scrape(port: int) -> dict:
    """{(metric sample name, frozenset(labels)): value} of one scrape."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_after_known_traffic(apps, tmp_path):
    txt, metrics = free_ports(2)
    app = apps("metricsapp", "start_metrics.py", ports=[txt, metrics],
               env={"GWT_TXT_PORT": txt, "GWT_METRICS_PORT": metrics,
                    "GWT_METRICS_DIR": tmp_path / "prom"})
    app.start_daemon(3)
    clients = [LineClient(txt), LineClient(txt)]
    try:
        for c in clients:
            for line in LINES:
                assert c.ask(line) == "echo:" + line
        sent = sum(len(line.encode()) + 1 for line in LINES) * 2
        answered = sum(len(("echo:" + line).encode()) + 1 for line in LINES) * 2
        w = {"worker": "MetricsEcho"}
        expected = {
            ("gwgevent_connections", 2), ("gwgevent_messages_received_total", 6),
            ("gwgevent_bytes_received_total", sent), ("gwgevent_bytes_sent_total", answered),
            ("gwgevent_send_buffer_drops_total", 0),
        }

        def settled():
            s = scrape(metrics)
            got = {(name, value(s, name, **w)) for name, _ in expected}
            if value(s, "gwgevent_process_starts_total", reason="start", **w) != 2:
                return None
            hist = value(s, "gwgevent_handler_seconds_count", event="on_message", **w)
            return s if got == expected and hist == 6 else None
        wait_for(settled, 15, "the scrape to show the traffic: %r" % (expected,))

        # a closed connection keeps its bytes in the totals and leaves the gauge
        clients.pop().sock.close()
        wait_for(lambda: value(scrape(metrics), "gwgevent_connections", **w) == 1 and
                 value(scrape(metrics), "gwgevent_bytes_received_total", **w) == sent,
                 15, "one connection left, bytes kept")

        # SIGKILL the process holding the remaining client: it is respawned (a third start)
        # and its live gauge goes with it
        victim = [pid for pid in app.workers("MetricsEcho").values()]
        for pid in victim:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(pid_alive(p) for p in victim), 10, "killed processes gone")
        wait_for(lambda: value(scrape(metrics), "gwgevent_process_starts_total",
                               reason="respawn", **w) == 2 and
                 value(scrape(metrics), "gwgevent_process_starts_total", reason="start",
                       **w) == 2 and
                 value(scrape(metrics), "gwgevent_connections", **w) == 0, 20,
                 "respawns counted apart from starts, dead processes' connections dropped")
    finally:
        for c in clients:
            c.sock.close()


def test_gateway_and_business_worker_metrics(tmp_path):
    """A cluster (1 gateway process, 2 BusinessWorkers): links on both sides, the gateway's
    client connections and messages, the Events handlers' latency histogram."""
    (port,) = free_ports(1)
    c = Cluster(ws_count=1, text=False, worker_count=2,
                env={"METRICS_PORT": str(port), "METRICS_DIR": str(tmp_path / "prom")})
    try:
        c.start()
        c.wait_ready()
        gw, bw = {"worker": "TestWsGateway"}, {"worker": "TestBusinessWorker"}
        base = wait_for(lambda: scrape(port), 10, "a first scrape")
        base_msgs = value(base, "gwgevent_messages_received_total", **gw)
        base_calls = value(base, "gwgevent_handler_seconds_count", event="on_message", **bw)
        base_sends = value(base, "gwgevent_send_commands_total", kind="one", **gw)
        clients = [c.ws(), c.ws()]
        for client in clients:
            for _ in range(2):
                assert client.result("echo", "x") == ["x"]

        def settled():
            s = scrape(port)
            return (value(s, "gwgevent_connections", **gw) == 2 and
                    value(s, "gwgevent_messages_received_total", **gw) - base_msgs == 4 and
                    value(s, "gwgevent_handler_seconds_count", event="on_message", **bw)
                    - base_calls == 4 and
                    # 2 hellos (on_connect) + 4 answers, each send_to_current_client
                    value(s, "gwgevent_send_commands_total", kind="one", **gw)
                    - base_sends == 6 and
                    value(s, "gwgevent_worker_links", **gw) == 2 and
                    value(s, "gwgevent_worker_links", **bw) == 2 and
                    value(s, "gwgevent_process_starts_total", reason="start", **bw) == 2)
        wait_for(settled, 15, "gateway/worker metrics after 4 messages from 2 clients")
        c.close_clients()
        # a reload replaces both business workers: two starts counted as reloads
        c.reload()
        wait_for(lambda: value(scrape(port), "gwgevent_process_starts_total", reason="reload",
                               **bw) == 2 and
                 value(scrape(port), "gwgevent_process_starts_total", reason="start",
                       **bw) == 2, 20, "reload replacements counted as reloads")
    finally:
        c.teardown()
