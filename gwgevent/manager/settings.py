"""Process-wide settings, set on the Worker class like Workerman's statics:

    Worker.log_file = "/var/log/chat.log"     # Worker::$logFile   (alias Worker.logFile)
    Worker.pid_file = "/run/chat.pid"         # Worker::$pidFile   (alias Worker.pidFile)
    Worker.log_level = "DEBUG"                # gwgevent's logger level (alias Worker.logLevel)

Unset (None), the pid file and log live next to the start file (gwgevent.<start>.pid,
gwgevent.log) and the level is INFO. They are read when the command line runs, so a start file
sets them before `run_all()`, and `stop`/`status` (which run the same start file) find the
same pid file.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

__all__ = ["setting", "apply_file_settings", "log_level", "logging_settings"]

#: setting name -> Workerman spelling accepted too
ALIASES = {"log_file": "logFile", "pid_file": "pidFile", "log_level": "logLevel"}


def setting(name: str) -> Any:
    """Worker.<name> or its Workerman alias; None when unset."""
    from ..runtime.worker import Worker
    value = getattr(Worker, name, None)
    if value is None:
        value = getattr(Worker, ALIASES[name], None)
    return value


def apply_file_settings(paths: Dict[str, str]) -> Dict[str, str]:
    """Override the default pid/log paths (arbiter.file_paths) with log_file / pid_file."""
    for key, name in (("pid", "pid_file"), ("log", "log_file")):
        value = setting(name)
        if value:
            paths[key] = os.path.abspath(str(value))
    return paths


def log_level() -> Optional[int]:
    """log_level as a logging level number (None when unset); a bad name is an error now,
    not a silently ignored setting."""
    value = setting("log_level")
    if value is None or isinstance(value, int):
        return value
    level = logging.getLevelName(str(value).upper())
    if not isinstance(level, int):
        raise ValueError("Worker.log_level %r: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
                         % (value,))
    return level


def logging_settings() -> Dict[str, Any]:
    """setup_logging()'s keyword arguments from Worker.log_level / Worker.log_file."""
    return {"level": log_level(), "log_file": setting("log_file")}
