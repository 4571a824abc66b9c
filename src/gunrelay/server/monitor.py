"""Live figures for the console and ``/metrics``: traffic rates over the last minutes, store size.

A sampler task reads the relay's running totals every ``interval_s`` into a ``TrafficHistory``
(ten minutes of points for the console's charts). Counting the store (souls, fields, bytes) scans
it, so it is done only when somebody looks (the console's stats, a scrape) and at most once every
``store_refresh_s``; whoever asks gets the last count at once while a fresh one is taken. While the
store reports failed commits, the sampler also probes it with a small write, to notice recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..core.traffic import TrafficHistory
from ..storage.base import Store, StoreStats
from .relay import Relay

log = logging.getLogger("gunrelay.monitor")

COUNTERS = ("messages_in", "messages_out", "bytes_in", "bytes_out", "puts", "gets")


class Monitor:
    def __init__(
        self,
        relay: Relay,
        store: Store,
        *,
        interval_s: float = 2.0,
        span_s: float = 600.0,
        store_refresh_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self.relay = relay
        self.store = store
        self.interval_s = interval_s
        self.store_refresh_s = store_refresh_s
        self.clock = clock
        self.started_at = clock()
        self.traffic = TrafficHistory(interval_s, span_s)
        self.store_stats = StoreStats(0, 0, 0)
        self._store_counted_at = float("-inf")
        self._counting: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.sample()  # the store is not counted here: a scan at start would delay serving for nothing
        self._sampler = asyncio.create_task(self._sample_forever())

    async def stop(self) -> None:
        for task in (self._sampler, self._counting):
            if task is not None:
                task.cancel()

    def totals(self) -> dict[str, int]:
        stats = self.relay.stats
        return {name: getattr(stats, name) for name in COUNTERS}

    def sample(self) -> dict[str, Any]:
        return self.traffic.sample(self.clock() * 1000, self.totals(), {"connections": len(self.relay.peers)})

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:  # one failure must not end the clock watch and the storage probe for good
                self.sample()
                self.relay.check_clock()
                if not self.store.health.ok:
                    await self._probe_store()
            except Exception:
                log.exception("monitor round failed; next round in %.0f s", self.interval_s)

    async def _probe_store(self) -> None:
        """While storage is failing, try a small write each round, so health clears when the fault
        ends even if no peer writes meanwhile."""
        try:
            await self.store.probe()
        except Exception:
            return  # still failing: health already says so
        log.warning("storage recovered: writes are durable again")

    def store_size(self) -> StoreStats:
        """The last count of the store; starts a fresh one in the background when it is old."""
        if self.clock() - self._store_counted_at >= self.store_refresh_s and (self._counting is None or self._counting.done()):
            self._counting = asyncio.get_running_loop().create_task(self._count_store())
        return self.store_stats

    async def _count_store(self) -> None:
        self._store_counted_at = self.clock()
        try:
            self.store_stats = await self.store.stats()
        except Exception:
            log.exception("counting the store failed")

    def uptime_s(self) -> float:
        return self.clock() - self.started_at
