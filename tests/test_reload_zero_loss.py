"""Reload under load loses nothing: 200 websocket clients each send a numbered message every
10 ms for 10 s through the test cluster (tests/cluster.py: real processes started with
`start -d`), `reload` runs 3 times meanwhile, and every message must be answered exactly once,
in order, with no client disconnected. Also with `reload -g`, with a single BusinessWorker
(the replacement links before the old process drains), and with Events.py edited before each
reload (answers come from the old code before a reload and from the new code after it).

The clients live in one thread (tests/echo_load.py: selectors over raw sockets).
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional, Tuple

import pytest

from cluster import Cluster, running_cluster
from echo_load import EchoLoad, LoadResult

CLIENTS = 200
INTERVAL = 0.01
DURATION = 10.0
RELOADS_AT = (2.0, 5.0, 8.0)


@pytest.fixture(scope="module")
def cluster():
    yield from running_cluster(ws_count=1, text=False, worker_count=2)


@pytest.fixture
def one_worker_cluster():
    yield from running_cluster(ws_count=1, text=False, worker_count=1)


def reload_under_load(cluster: Cluster, *flags: str,
                      before_each: Optional[Callable[[int], None]] = None
                      ) -> Tuple[LoadResult, EchoLoad, List[Tuple[float, float]]]:
    """Run the load for DURATION s with a reload at each RELOADS_AT; returns the result, the
    load (per-client detail) and (start, end) of each reload command."""
    load = EchoLoad(cluster.ws_port, CLIENTS, INTERVAL)
    marks = []
    try:
        load.start()
        t0 = time.monotonic()
        for i, at in enumerate(RELOADS_AT):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if before_each is not None:
                before_each(i)
            start = time.monotonic()
            r = cluster.cli("start.py", "reload", *flags)
            marks.append((start, time.monotonic()))
            assert r.returncode == 0, (r.stdout, r.stderr, cluster.log_tail())
            want = "%d of %d process(es) replaced" % (cluster.worker_count, cluster.worker_count)
            assert want in r.stdout, r.stdout
        time.sleep(max(0.0, t0 + DURATION - time.monotonic()))
        result = load.finish()
    finally:
        load.close()
    return result, load, marks


def assert_nothing_lost(result: LoadResult) -> None:
    print(result.line())
    assert result.sent >= CLIENTS * DURATION / INTERVAL * 0.5, result.line()
    assert (result.missing, result.duplicate, result.out_of_order, result.disconnects) == \
        (0, 0, 0, 0), result.line()


def test_reload_three_times_under_load(cluster):
    result, _, _ = reload_under_load(cluster)
    assert_nothing_lost(result)


def test_graceful_reload_three_times_under_load(cluster):
    result, _, _ = reload_under_load(cluster, "-g")
    assert_nothing_lost(result)


def test_reload_single_worker_under_load(one_worker_cluster):
    result, _, _ = reload_under_load(one_worker_cluster)
    assert_nothing_lost(result)


def test_reload_with_edited_events(cluster):
    """Before reload k, Events.py is edited to answer with behaviour edit<k+2>: an answer that
    arrived before reload k started comes from the old code, a message sent after reload k
    returned is answered by the new code, and each client sees versions only go up. (A message
    sent just before a reload may still be waiting when its worker drains, so the new code may
    answer it: what counts for "before" is when it was answered.)"""
    events = cluster.dir / "Events.py"
    source = events.read_text()
    current = source.split('BEHAVIOUR = "', 1)[1].split('"', 1)[0]
    versions = [current] + ["edit%d" % (k + 2) for k in range(len(RELOADS_AT))]

    def edit(k: int) -> None:
        events.write_text(source.replace('BEHAVIOUR = "%s"' % current,
                                         'BEHAVIOUR = "%s"' % versions[k + 1]))

    try:
        result, load, marks = reload_under_load(cluster, before_each=edit)
    finally:
        events.write_text(source)
    assert_nothing_lost(result)
    for c in load.clients:
        seen = [versions.index(c.versions[s]) for s in sorted(c.got)]
        assert seen == sorted(seen), "client %d saw versions go back: %s" % (c.index, seen)
        for seq, sent in enumerate(c.sent_at):
            got = versions.index(c.versions[seq])
            # reloads finished when the message was sent / started when its answer arrived
            finished = sum(1 for _, end in marks if end <= sent)
            started = sum(1 for start, _ in marks if start <= c.got[seq])
            assert finished <= got <= started, (
                "client %d message %d, sent after %d reload(s) had finished and answered after "
                "%d had started, was answered by %s" % (c.index, seq, finished, started,
                                                        versions[got]))
