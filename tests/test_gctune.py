"""runtime/gctune.py on its own, in a fresh interpreter (the serving process's settings are
checked over real sockets in test_runtime_worker.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CODE = """
    import gc, json, sys
    from gwgevent.runtime.gctune import tune_gc
    before = gc.get_threshold()
    applied = tune_gc(int(sys.argv[1]))
    print(json.dumps([before, gc.get_threshold(), applied, gc.get_freeze_count()]))
"""


def _run(threshold: int) -> list:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(CODE), str(threshold)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tune_gc_raises_the_first_threshold_and_freezes():
    before, after, applied, frozen = _run(20000)
    assert applied is True
    assert after == [20000, before[1], before[2]]
    assert frozen > 1000


def test_tune_gc_zero_or_less_leaves_python_alone():
    for value in (0, -5):
        before, after, applied, frozen = _run(value)
        assert (after, applied, frozen) == (before, False, 0)
