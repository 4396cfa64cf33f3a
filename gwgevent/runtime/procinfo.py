"""Small facts about this process a Worker reports or needs: its RSS, a connection status's
name, and the folder of the start file that built a Worker (where Events.py and Protocols/ are
looked up)."""
from __future__ import annotations

import os
import sys

__all__ = ["status_name", "rss_bytes", "caller_dir"]


def status_name(code: int) -> str:
    """'ESTABLISHED' for a connection status (the number itself when unknown)."""
    from .connection import STATUS_NAMES
    return STATUS_NAMES.get(code, str(code))


def rss_bytes() -> int:
    """Resident memory of this process (status rows, memory benchmarks)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def caller_dir() -> str:
    """Directory of the first frame outside the gwgevent package (the user's start file)."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # gwgevent/
    frame = sys._getframe(1)
    while frame is not None:
        fn = os.path.abspath(frame.f_code.co_filename)
        if not fn.startswith(pkg + os.sep) and not fn.startswith("<"):
            return os.path.dirname(fn)
        frame = frame.f_back
    return os.getcwd()
