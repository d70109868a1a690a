"""Fault injection for the kill-and-resume tests (never set in normal use).

`SIGDIFF_KILL_AT="point"` or `"point:n"` makes the process SIGKILL itself the n-th time (default:
the first) it passes `kill_point("point")`, so a test kills a run at a chosen place rather than
racing a timer. Points are named `<module>.<moment>`, e.g. `sweep.samples_saved`.
"""

from __future__ import annotations

import os
import signal

ENV = "SIGDIFF_KILL_AT"
_passed: dict[str, int] = {}


def kill_point(point: str) -> None:
    """SIGKILL this process here when `SIGDIFF_KILL_AT` names this point (and count)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _passed[point] = _passed.get(point, 0) + 1
    if _passed[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
