"""One rolling reload: the reloadable processes replaced one slot at a time, and its verdict.

For each slot (worker index, worker id) the replacement is started first, while the old process
still serves, and the old one is told to stop only once the replacement reported ready
(notify.ready: for a BusinessWorker, linked to every gateway). The old process then drains
(BusinessWorker: the gateway handshake, nothing lost) and exits; only then does the next slot
start. So a replacement that cannot start (Events.py does not import, it crashes, it never gets
ready) stops the reload right there: every old process left keeps serving, and the verdict says
which worker failed and why. Where two processes of a slot cannot coexist (`reload_overlap` is
False: a Gateway's inner port) the old one stops first.

The arbiter drives it: `advance()` every loop turn, `on_ready()` / `on_exit()` when a child
reports ready or exits. The arbiter owns every fork, signal and wait; this class only decides.
"""
from __future__ import annotations

import signal
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from ..log import get_logger

__all__ = ["RollingReload"]

log = get_logger("master")

Slot = Tuple[int, int]

STARTING = "starting"          # the replacement runs, not ready yet; the old one serves
STOPPING = "stopping"          # the replacement serves; the old one drains and exits
STOPPING_FIRST = "stopping first"   # no overlap: the old one exits before the new one starts


class _Step:
    __slots__ = ("slot", "old", "new", "phase", "deadline")

    def __init__(self, slot: Slot, old: Optional[int]) -> None:
        self.slot = slot
        self.old = old
        self.new: Optional[int] = None
        self.phase = ""
        self.deadline = 0.0


class RollingReload:
    """The plan and progress of one `reload [-g]`."""

    def __init__(self, seq: int, graceful: bool, plan: List[Tuple[Slot, Optional[int]]]) -> None:
        self.seq = seq
        self.graceful = graceful
        self.plan: Deque[Tuple[Slot, Optional[int]]] = deque(plan)
        self.total = len(plan)
        self.step: Optional[_Step] = None
        self.replaced = 0
        self.started = time.monotonic()
        self.state = "running"          # -> "done" | "failed"
        self.error = ""
        self.worker = ""

    # ------------------------------------------------------------ progress
    @property
    def signal(self) -> int:
        return signal.SIGUSR2 if self.graceful else signal.SIGUSR1

    def stop_bound(self, worker: Any) -> float:
        """How long a replaced process may take to exit before it is killed: a BusinessWorker
        works off what it received (see BusinessWorker._finish_and_stop) within
        graceful_timeout, also on a fast reload; SIGKILL is for one that cannot."""
        return float(worker.graceful_timeout or 0) + float(worker.stop_timeout)

    def deadline_hint(self, arbiter: Any) -> float:
        """A wall-clock time by which this reload will have a verdict (for the waiting CLI)."""
        left = len(self.plan) + 1
        per = max((float(w.ready_timeout) + self.stop_bound(w) + 1.0 for w in arbiter.workers
                   if w.reloadable), default=5.0)
        return time.time() + left * per

    def advance(self, arbiter: Any) -> None:
        """Start the next slot, or call it failed when its replacement is late."""
        if self.state != "running":
            return
        step = self.step
        if step is not None:
            if step.phase == STARTING and time.monotonic() >= step.deadline:
                worker = arbiter.workers[step.slot[0]]
                self.fail(arbiter, "it did not report ready within %s s (ready_timeout)"
                          % worker.ready_timeout)
            return
        while self.plan:
            slot, old = self.plan.popleft()
            current = arbiter.slots.get(slot)
            if old is not None and current != old:
                old = current            # respawned meanwhile: replace what serves now
            step = self.step = _Step(slot, old)
            if old is None or arbiter.workers[slot[0]].reload_overlap:
                self._start_replacement(arbiter, step)
            else:
                step.phase = STOPPING_FIRST
                arbiter.retire(old, self.signal, self.stop_bound(arbiter.workers[slot[0]]))
            arbiter.write_reload_result(self)
            return
        self.state = "done"

    def _start_replacement(self, arbiter: Any, step: _Step) -> None:
        worker = arbiter.workers[step.slot[0]]
        step.new = arbiter.spawn(step.slot, serving=False, replacing=step.old is not None,
                                  reason="reload")
        step.phase = STARTING
        step.deadline = time.monotonic() + float(worker.ready_timeout)

    def replacing(self, slot: Slot) -> bool:
        """A replacement for `slot` is starting (so a dead old process needs no respawn)."""
        step = self.step
        return step is not None and step.slot == slot and step.phase == STARTING

    def _step_done(self, arbiter: Any) -> None:
        self.replaced += 1
        self.step = None
        self.advance(arbiter)

    # ------------------------------------------------------------ events
    def on_ready(self, arbiter: Any, pid: int) -> None:
        step = self.step
        if step is None or step.new != pid or step.phase != STARTING:
            return
        arbiter.promote(step.slot, pid)
        if step.old is not None and step.old in arbiter.children:
            step.phase = STOPPING
            arbiter.retire(step.old, self.signal, self.stop_bound(arbiter.workers[step.slot[0]]))
            arbiter.write_reload_result(self)
        else:
            self._step_done(arbiter)

    def on_exit(self, arbiter: Any, pid: int, why: str) -> bool:
        """A child exited; True when it was part of this reload (the arbiter does nothing
        more), False when the arbiter should treat it as usual."""
        step = self.step
        if step is None:
            return False
        if pid == step.new:
            self.fail(arbiter, why)
            return True
        if pid == step.old:
            if step.phase == STOPPING:
                self._step_done(arbiter)
            elif step.phase == STOPPING_FIRST:
                self._start_replacement(arbiter, step)
                arbiter.write_reload_result(self)
            else:
                step.old = None           # died while its replacement starts: that one takes over
                return False
            return True
        return False

    def fail(self, arbiter: Any, why: str) -> None:
        """The replacement did not make it: stop here, the old processes keep serving."""
        step = self.step
        assert step is not None
        worker = arbiter.workers[step.slot[0]]
        self.worker = "%s #%d" % (worker.name, step.slot[1])
        self.error = why
        self.state = "failed"
        if step.new is not None and step.new in arbiter.children:
            # alive but not ready: it may be linked to some gateways already, so it drains too
            arbiter.retire(step.new, signal.SIGTERM, float(worker.stop_timeout) + 1.0)
        serving = sum(1 for s, pid in arbiter.slots.items() if arbiter.workers[s[0]].reloadable)
        log.error("reload stopped: %s failed to start: %s; %d process(es) of the old code keep "
                  "serving (%d of %d replaced)", self.worker, why, serving, self.replaced,
                  self.total)
        arbiter.slot_failed(step.slot, why)
        self.step = None
        self.plan.clear()

    # ------------------------------------------------------------ verdict
    def result(self, arbiter: Any) -> Dict[str, Any]:
        row: Dict[str, Any] = {
            "command": "reload", "seq": self.seq, "state": self.state,
            "graceful": self.graceful, "replaced": self.replaced, "total": self.total,
            "took": round(time.monotonic() - self.started, 3), "time": time.time(),
        }
        if self.state == "running":
            row["deadline"] = self.deadline_hint(arbiter)
        if self.error:
            row["worker"] = self.worker
            row["error"] = self.error
        return row
