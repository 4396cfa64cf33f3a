#!/usr/bin/env python3
"""Start every application: imports Applications/*/start_*.py in sorted order (each constructs
its workers), then runs the command line for all of them in one master process.

    python start.py start [-d] | stop [-g] | restart [-d] [-g] | reload [-g] | status [-d] | connections
"""
import glob
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gwgevent  # noqa: E402

for start_file in sorted(glob.glob(os.path.join(HERE, "Applications", "*", "start_*.py"))):
    # run_name is not '__main__', so the start file's own `run_all()` guard does not fire
    runpy.run_path(start_file, run_name="gwgevent_start")

gwgevent.run_all(start_file=os.path.abspath(__file__))
