"""GUN's state clock (``Gun.state()``, src/state.js in npm gun 0.2020.1241): the state every
field a peer writes carries. (Not ``core.clockwatch``, which watches the wall clock for jumps.)

A state is milliseconds since the epoch. Two calls within the same millisecond must still give
increasing states, so GunJS returns ``t + n/999`` for the n-th repeat; the fraction restarts at 0
once the clock moves past the last state returned. We reproduce that, so a Python peer's writes
order against GunJS writes as GunJS's own would, with one difference: when the wall clock steps
back, GunJS's states go back with it (a later write of ours could then lose to an earlier one);
ours keep counting up from the last state until the wall clock catches up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.graph import State

DIVISOR = 999


class StateClock:
    __slots__ = ("_last", "_repeats", "_wall_ms")

    def __init__(self, wall_ms: Callable[[], float] | None = None):
        self._wall_ms = wall_ms or (lambda: time.time() * 1000)
        self._last: float = -1.0
        self._repeats = 0

    def __call__(self) -> State:
        now = int(self._wall_ms())
        if self._last < now:
            self._repeats = 0
            self._last = now
            return now
        self._repeats += 1
        state = now + self._repeats / DIVISOR
        self._last = state if state > self._last else self._last + 1 / DIVISOR
        return self._last
