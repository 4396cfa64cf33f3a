#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzingclient (cases 1.*-7.*, 9.*, 10.*) against gwgevent echo
# servers and summarise each report.
#
# Usage: tests/autobahn/run_autobahn.sh [--target T] [--setup-only] [--port PORT]
#                                       [--cases LIST] [--no-server]
#   --target T     what to test (default worker); a comma separated list, or all:
#                    worker       the one-process websocket echo Worker (bench/echo_server.py,
#                                 max_package_size 64 MiB)
#                    cluster      the echo cluster (tests/apps/echo_cluster: register + websocket
#                                 gateway + 1 BusinessWorker echoing with Gateway.send_to_client;
#                                 gateway max_package_size 32 MiB), started with `start -d` by
#                                 tests/autobahn/echo_cluster.py on free ports
#                    cluster-wss  the same cluster with the gateway on wss:// (a self-signed
#                                 certificate made for the run)
#                    all          worker,cluster,cluster-wss
#   --setup-only   only build the Python 2.7 virtualenv with wstest (idempotent)
#   --port PORT    port of the worker target's echo server (default 9001)
#   --cases LIST   comma separated case patterns overriding spec.json (e.g. "9.*,6.4.*")
#   --no-server    worker target: do not start an echo server (one already listens on PORT)
# Environment: ECHO_SERVER=path.py runs another echo server script for the worker target (same
# --port and --max-package-size arguments); PYTHON=python3 selects the interpreter for the
# servers; WSTEST_TIMEOUT bounds each wstest run (seconds, default 1800).
#
# Examples:
#   tests/autobahn/run_autobahn.sh                          # the echo Worker, all cases
#   tests/autobahn/run_autobahn.sh --target all             # the three targets one after another
#   tests/autobahn/run_autobahn.sh --target cluster-wss --cases '9.1.*,5.*'
#
# Output, per target: `autobahn[TARGET]: N cases, OK a, NON-STRICT b, FAILED c, UNCLEAN d,
# INFORMATIONAL e` and one line per case that is not OK/INFORMATIONAL. Reports and logs stay in
# tests/.autobahn/: reports-TARGET/ (open index.html), wstest-TARGET.log, server-TARGET.log
# and, for the cluster targets, cluster-TARGET.log (the cluster's gwgevent.log).
# Exit status: 0 when every case of every selected target is OK/INFORMATIONAL (a cluster whose
# log holds a Traceback, or that leaves a port bound, also fails its target).
#
# Each target's server is started and stopped by this script (also on failure or Ctrl+C: an EXIT
# trap stops it, SIGKILL after a bounded wait); every wait is bounded.
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
TARGETS="worker"

while [ $# -gt 0 ]; do
    case "$1" in
        --target) TARGETS="$2"; shift ;;
        --setup-only) SETUP_ONLY=1 ;;
        --port) PORT="$2"; shift ;;
        --cases) CASES="$2"; shift ;;
        --no-server) START_SERVER=0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

[ "$TARGETS" = all ] && TARGETS="worker,cluster,cluster-wss"
TARGETS="${TARGETS//,/ }"
for t in $TARGETS; do
    case "$t" in
        worker|cluster|cluster-wss) ;;
        *) echo "unknown target: $t (worker, cluster, cluster-wss or all)" >&2; exit 2 ;;
    esac
done

PY3="${PYTHON:-python3}"
VENV3="$WORK/venv3"
VENV27="$WORK/venv27"
STAMP="$VENV27/.gwgevent-installed"
WSTEST_TIMEOUT="${WSTEST_TIMEOUT:-1800}"
CLUSTER_MAX_PACKAGE=33554432     # 32 MiB: 9.1.6/9.2.6 echo 16 MiB messages
WORKER_MAX_PACKAGE=67108864

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

SERVER_PID=""
WSTEST_PID=""

# Stop the current target's server: SIGTERM (the cluster helper then tears its cluster down),
# SIGKILL after 40 s. Returns the server's exit status (143 for a plain SIGTERM exit).
stop_server() {
    local pid="$SERVER_PID" rc=0
    SERVER_PID=""
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "server $pid still running after 40 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        # a killed cluster helper leaves its daemons: the sweep kills the clusters of dead owners
        (cd "$ROOT/tests" && "$PY3" -c "import cluster; cluster.sweep_stale_dirs()") || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

cleanup() {
    if [ -n "$WSTEST_PID" ]; then
        kill -TERM "$WSTEST_PID" 2>/dev/null || true
        WSTEST_PID=""
    fi
    stop_server || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start TARGET's server; sets SERVER_PID and URL. Non-zero when it did not come up.
start_server() {
    local target="$1" log="$WORK/server-$1.log"
    URL=""
    case "$target" in
        worker)
            URL="ws://127.0.0.1:$PORT"
            [ "$START_SERVER" = 1 ] || return 0
            local cmd="${ECHO_SERVER:-$ROOT/bench/echo_server.py}"
            (cd "$ROOT" && exec "$PY3" "$cmd" --port "$PORT" \
                --max-package-size "$WORKER_MAX_PACKAGE") >"$log" 2>&1 &
            SERVER_PID=$!
            for _ in $(seq 1 50); do
                if "$PY3" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" \
                        2>/dev/null; then
                    return 0
                fi
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.2
            done
            ;;
        cluster|cluster-wss)
            local url_file="$WORK/url-$target" tls=""
            [ "$target" = cluster-wss ] && tls="--tls"
            rm -f "$url_file"
            "$PY3" "$HERE/echo_cluster.py" --url-file "$url_file" $tls \
                --max-package-size "$CLUSTER_MAX_PACKAGE" \
                --log-copy "$WORK/cluster-$target.log" >"$log" 2>&1 &
            SERVER_PID=$!
            for _ in $(seq 1 300); do
                if [ -s "$url_file" ]; then
                    URL="$(cat "$url_file")"
                    URL="${URL%/}"
                    return 0
                fi
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.2
            done
            ;;
    esac
    echo "autobahn[$target]: server did not come up, see $log" >&2
    tail -20 "$log" >&2 || true
    return 1
}

# Run wstest against TARGET; prints the summary. Non-zero when any case is not acceptable.
run_target() {
    local target="$1" reports="$WORK/reports-$1" spec="$WORK/spec-$1.json" rc=0
    rm -rf "$reports"
    start_server "$target" || { stop_server || true; return 1; }
    "$PY3" - "$HERE/spec.json" "$spec" "$URL" "$reports" "$CASES" "$target" <<'PYEOF'
import json, sys
src, dst, url, reports, cases, target = sys.argv[1:7]
spec = json.load(open(src))
spec['servers'] = [{'agent': 'gwgevent-' + target, 'url': url}]
spec['outdir'] = reports
if cases:
    spec['cases'] = cases.split(',')
json.dump(spec, open(dst, 'w'), indent=2)
PYEOF
    (cd "$WORK" && exec timeout "$WSTEST_TIMEOUT" "$VENV27/bin/wstest" -m fuzzingclient \
        -s "$spec") >"$WORK/wstest-$target.log" 2>&1 &
    WSTEST_PID=$!
    wait "$WSTEST_PID" || rc=$?
    WSTEST_PID=""
    local server_rc=0
    stop_server || server_rc=$?
    if [ "$rc" != 0 ] || [ ! -f "$reports/index.json" ]; then
        echo "autobahn[$target]: wstest failed (exit $rc), see $WORK/wstest-$target.log" >&2
        tail -20 "$WORK/wstest-$target.log" >&2 || true
        return 1
    fi
    rc=0
    "$PY3" "$HERE/summarize.py" "$reports/index.json" "$target" || rc=$?
    # the cluster helper exits 3 when its teardown found a Traceback or a bound port
    if [ "$target" != worker ] && [ "$server_rc" != 0 ]; then
        echo "  $target: cluster teardown failed (exit $server_rc), see $WORK/server-$target.log" \
            "and $WORK/cluster-$target.log"
        rc=1
    fi
    return "$rc"
}

STATUS=0
for t in $TARGETS; do
    run_target "$t" || STATUS=1
done
exit "$STATUS"
