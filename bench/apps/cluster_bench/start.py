#!/usr/bin/env python3
"""Launcher of the benchmark cluster (like the repository's start.py): imports every start_*.py
next to it, then runs the command line for all of them under one master.

    GWB_GATEWAY_PORT=7272 python bench/apps/cluster_bench/start.py start

The pid/status files go to GWB_RUN_DIR (default: this directory), so several clusters (on
different ports) can run at once.
"""
import glob
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _env  # noqa: E402  (puts the repository on sys.path)

import gwgevent  # noqa: E402

for start_file in sorted(glob.glob(os.path.join(HERE, "start_*.py"))):
    runpy.run_path(start_file, run_name="gwgevent_start")

gwgevent.run_all(start_file=os.path.join(os.path.abspath(_env.RUN_DIR), "start.py"))
