"""Which implementation of the hot codec loops runs: the optional C module or pure Python.

`gwgevent._speedups` is compiled by `pip install` when a C compiler is present and skipped
(with a warning from the build) when not; everything works without it. Set the environment
variable `GWGEVENT_PURE=1` to use the pure-Python code even where the module exists (the test
suite runs both ways; `python -c "import gwgevent.accel as a; print(a.describe())"` says which
one a process uses).
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Optional

#: the C module, or None when it is missing or GWGEVENT_PURE is set
speedups: Optional[ModuleType] = None
#: why the pure-Python code runs (empty when the C module is used)
reason = ""

if os.environ.get("GWGEVENT_PURE", "") not in ("", "0"):
    reason = "GWGEVENT_PURE is set"
else:
    try:
        import gwgevent._speedups as speedups
    except ImportError as exc:     # no compiler at install time, or a source checkout
        reason = "gwgevent._speedups not built (%s)" % exc

ACCELERATED = speedups is not None


def describe() -> str:
    """One line for logs and bug reports."""
    if ACCELERATED:
        return "C speedups (gwgevent._speedups)"
    return "pure Python (%s)" % reason
