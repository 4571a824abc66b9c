"""Traffic figures over time: counters sampled at a fixed interval become rates and a history.

``sample`` takes the running totals (messages, bytes, puts, gets) and the gauges (connections) at
one moment; the rate of each counter is its growth since the previous sample divided by the time
between them. The history keeps the last ``span_s`` seconds of samples, oldest first, for the
console's charts. Pure: the caller samples and passes the time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any


class TrafficHistory:
    def __init__(self, interval_s: float = 2.0, span_s: float = 600.0):
        self.interval_s = interval_s
        self.samples: deque[dict[str, Any]] = deque(maxlen=max(1, int(span_s / interval_s)))
        self._last: tuple[float, dict[str, int]] | None = None

    def sample(self, now_ms: float, counters: Mapping[str, int], gauges: Mapping[str, float]) -> dict[str, Any]:
        """Record one sample; returns it (``t``, each gauge, each counter's rate per second)."""
        point: dict[str, Any] = {"t": now_ms, **gauges}
        last = self._last
        elapsed_s = (now_ms - last[0]) / 1000.0 if last is not None else 0.0
        for name, total in counters.items():
            if last is None or elapsed_s <= 0:
                point[name] = 0.0
            else:
                point[name] = max(0, total - last[1].get(name, 0)) / elapsed_s
        self._last = (now_ms, dict(counters))
        self.samples.append(point)
        return point

    def latest(self) -> dict[str, Any] | None:
        return self.samples[-1] if self.samples else None

    def history(self) -> list[dict[str, Any]]:
        return list(self.samples)
