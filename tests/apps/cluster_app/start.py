#!/usr/bin/env python3
"""The launcher for this app (like the repository's start.py): imports every start_*.py next
to it, then runs the command line for all of them under one master."""
import glob
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _env  # noqa: E402,F401  (puts the repository on sys.path)

import gwgevent  # noqa: E402

for start_file in sorted(glob.glob(os.path.join(HERE, "start_*.py"))):
    runpy.run_path(start_file, run_name="gwgevent_start")

gwgevent.run_all(start_file=os.path.abspath(__file__))
