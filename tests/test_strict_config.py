"""Strict settings on Worker / Gateway / BusinessWorker / Register: misspelt options and
attributes raise with a suggestion; known names (snake_case and Workerman camelCase), subclass
attributes and private names still work; a start file with a typo fails `start` clearly; the
serving child process uses the unchecked twin class."""
from __future__ import annotations

import subprocess
import sys

import pytest

from gwgevent import BusinessWorker, Gateway, Register, Worker
from gwgevent.runtime.strict import fast_class
from helpers import REPO


@pytest.fixture(autouse=True)
def forget_workers():
    before = list(Worker._all)
    yield
    Worker._all[:] = before


def test_unknown_attributes_raise_with_suggestion():
    gw = Gateway("websocket://127.0.0.1:1")
    gw.pingInterval = 10                      # Workerman spelling
    gw.ping_not_response_limit = 1
    assert gw.ping_interval == 10
    with pytest.raises(AttributeError, match=r"Gateway has no setting 'pingIntervall'; "
                                             r"did you mean 'pingInterval'"):
        gw.pingIntervall = 10
    bw = BusinessWorker()
    bw.eventHandler = "Events"
    with pytest.raises(AttributeError, match="did you mean 'event_handler'"):
        bw.event_handlr = "Events"
    reg = Register("text://127.0.0.1:2")
    with pytest.raises(AttributeError, match="secret_key"):
        reg.secret_kye = "x"
    w = Worker("tcp://127.0.0.1:3")
    w.on_message = print
    with pytest.raises(AttributeError, match="on_message"):
        w.on_mesage = print
    w._private_state = 1                      # not checked


def test_unknown_constructor_options_raise():
    with pytest.raises(TypeError, match="Gateway has no option 'startPrt'; did you mean "
                                        "'startPort'"):
        Gateway("websocket://127.0.0.1:1", startPrt=2000)
    with pytest.raises(TypeError, match="no option 'cnt'"):
        Worker("tcp://127.0.0.1:1", cnt=2)
    assert Gateway("websocket://127.0.0.1:1", startPort=2100, count=2).start_port == 2100


def test_subclass_attributes_are_known():
    class Mine(Worker):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.hits = 0                     # set after super().__init__: still fine

    m = Mine("tcp://127.0.0.1:1")
    m.hits += 1
    with pytest.raises(AttributeError, match="did you mean 'hits'"):
        m.hitz = 1


def test_fast_class_for_the_serving_process():
    gw = Gateway("websocket://127.0.0.1:1")
    gw.__class__ = fast_class(Gateway)
    gw.anything_goes = 1                      # no check on the hot path
    assert isinstance(gw, Gateway) and type(gw).__name__ == "Gateway"


def test_start_file_with_a_typo_fails_to_start(tmp_path):
    start = tmp_path / "start_typo.py"
    start.write_text("import sys\nsys.path.insert(0, %r)\nfrom gwgevent import Gateway, run_all\n"
                     "g = Gateway('websocket://127.0.0.1:1')\ng.pingIntervall = 10\n"
                     "run_all()\n" % str(REPO))
    res = subprocess.run([sys.executable, str(start), "start", "-d"], capture_output=True,
                         text=True, timeout=30, cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    assert res.returncode != 0
    assert "did you mean 'pingInterval'" in res.stderr, res.stderr
    assert not list(tmp_path.glob("gwgevent.*.pid"))
