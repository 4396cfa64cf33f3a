#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzingclient (cases 1.*-7.*, 9.*, 10.*) against the
# gwgevent websocket echo server (bench/echo_server.py) and summarise index.json.
#
# Usage: tests/autobahn/run_autobahn.sh [--setup-only] [--port PORT] [--cases LIST] [--no-server]
#   --setup-only   only build the Python 2.7 virtualenv with wstest (idempotent)
#   --port PORT    port for the echo server (default 9001)
#   --cases LIST   comma separated case patterns overriding spec.json (e.g. "9.*,6.4.*")
#   --no-server    do not start an echo server (one already listens on PORT)
# Environment: ECHO_SERVER=path.py runs another echo server script (same --port and
# --max-package-size arguments); PYTHON=python3 selects the interpreter for it.
#
# The server gets --max-package-size 64 MiB: cases 9.1.6/9.2.6 echo 16 MiB messages, above
# Workerman's default 10 MiB limit. Exit status: 0 when every case is OK/INFORMATIONAL.
#
# Autobahn|Testsuite only runs on Python 2.7, so we build a py3 venv holding a pinned
# virtualenv (20.21.1, the last one able to create py2.7 envs) and use it to create the
# py2.7 env from pyenv. Everything lives in tests/.autobahn/ (gitignored).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$ROOT/tests/.autobahn"
PORT=9001
SETUP_ONLY=0
START_SERVER=1
CASES=""

while [ $# -gt 0 ]; do
    case "$1" in
        --setup-only) SETUP_ONLY=1 ;;
        --port) PORT="$2"; shift ;;
        --cases) CASES="$2"; shift ;;
        --no-server) START_SERVER=0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

PY3="${PYTHON:-python3}"
VENV3="$WORK/venv3"
VENV27="$WORK/venv27"
STAMP="$VENV27/.gwgevent-installed"

setup() {
    mkdir -p "$WORK"
    if [ -f "$STAMP" ]; then
        return 0
    fi
    if [ ! -x "$VENV3/bin/virtualenv" ]; then
        "$PY3" -m venv "$VENV3"
        "$VENV3/bin/pip" install -q 'virtualenv==20.21.1'
    fi
    local py27
    py27="$(pyenv root)/versions/2.7.18/bin/python"
    if [ ! -x "$VENV27/bin/python" ]; then
        "$VENV3/bin/virtualenv" -p "$py27" "$VENV27"
    fi
    "$VENV27/bin/pip" install -q txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0 \
        cryptography==3.3.2 Twisted==19.10.0 zope.interface==4.6.0 jinja2==2.11.3 \
        markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 service_identity==18.1.0 \
        unittest2==1.1.0 six==1.16.0 'autobahn[twisted,accelerate]==0.10.9' \
        autobahntestsuite==25.10.1
    # newer setuptools breaks pkg_resources on py2.7 (wstest imports it)
    "$VENV27/bin/pip" install -q setuptools==44.0.0
    touch "$STAMP"
}

setup
if [ "$SETUP_ONLY" = 1 ]; then
    echo "autobahn: wstest installed in $VENV27"
    exit 0
fi

REPORTS="$WORK/reports"
SPEC="$WORK/spec.json"
rm -rf "$REPORTS"
"$PY3" - "$HERE/spec.json" "$SPEC" "$PORT" "$REPORTS" "$CASES" <<'PYEOF'
import json, sys
src, dst, port, reports, cases = sys.argv[1:6]
spec = json.load(open(src))
spec['servers'][0]['url'] = 'ws://127.0.0.1:%s' % port
spec['outdir'] = reports
if cases:
    spec['cases'] = cases.split(',')
json.dump(spec, open(dst, 'w'), indent=2)
PYEOF

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

if [ "$START_SERVER" = 1 ]; then
    SERVER_CMD="${ECHO_SERVER:-$ROOT/bench/echo_server.py}"
    (cd "$ROOT" && exec "$PY3" "$SERVER_CMD" --port "$PORT" --max-package-size 67108864) >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do
        if "$PY3" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "echo server died, see $WORK/server.log" >&2; exit 1; }
        sleep 0.2
    done
fi

(cd "$WORK" && "$VENV27/bin/wstest" -m fuzzingclient -s "$SPEC") >"$WORK/wstest.log" 2>&1 || {
    echo "wstest failed, see $WORK/wstest.log" >&2
    tail -20 "$WORK/wstest.log" >&2
    exit 1
}

"$PY3" "$HERE/summarize.py" "$REPORTS/index.json"
