"""The launcher: `run_all()` runs the command line (start, stop, reload, ...) for every Worker
constructed in this interpreter so far. It lives with the process manager, not in the Worker
class; `Worker.run_all()` (Workerman's `Worker::runAll()`) reaches it through the runtime's
launcher seam, which this module fills when gwgevent is imported."""
from __future__ import annotations

import os
import sys
from typing import List, Optional

from ..runtime.worker import Worker, set_launcher
from .cli import main

__all__ = ["run_all", "Worker"]


def run_all(argv: Optional[List[str]] = None, start_file: Optional[str] = None) -> None:
    """Run the command line against every Worker constructed so far (start.py or a start file).

    `start_file` names the pid/status/log files (defaults to the script being run); `argv`
    defaults to the process's own arguments."""
    if start_file is None:
        start_file = os.path.abspath(sys.argv[0])
    main(Worker._all, start_file, sys.argv[1:] if argv is None else argv)


set_launcher(run_all)
