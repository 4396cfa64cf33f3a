"""Garbage-collector settings of a serving process.

CPython collects its youngest generation every 700 allocations of container objects (lists,
tuples, instances) beyond deallocations. A server allocates a few per message (the list of
messages of a read, a queued write, a decoded packet), most of them freed within the same
loop iteration, so the collector mostly walks the survivors of a busy moment again and again:
measured on the cluster echo, 0.2-0.3 us of user CPU per message in each process (perf:
gc_collect_main, visit_decref, visit_reachable). Two changes, made once in the child before it
serves (`Worker.gc_threshold`, 0 keeps Python's settings):

- `gc.freeze()`: everything loaded so far (modules, the application, the roles' tables) goes
  to the permanent generation, which no collection walks again, and whose memory pages a
  collection therefore no longer writes to (they stay shared with the master after fork);
- the first threshold goes from 700 to `gc_threshold` (default 20 000): the young
  generation is collected 30 times less often; reference cycles, rare in a server, are freed
  a little later. The older generations keep their ratios.
"""
from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc(threshold: int) -> bool:
    """Apply the settings above (threshold <= 0: leave the collector as it is). True if
    applied."""
    threshold = int(threshold or 0)
    if threshold <= 0:
        return False
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
    return True
