"""Background work a component starts and stops with itself.

asyncio keeps only a weak reference to a running task, so one nobody holds can vanish mid-way;
``Background`` holds each until it ends, says how many are under way (a component's "busy"), and
cancels or waits for them all when the component stops. ``Rounds`` runs one job again and again:
when nudged (a notification came) and at least every so often (a notification may be lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every task under way now has ended (their errors are theirs to log)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every task under way and wait until they have ended."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()


class Rounds:
    """``job`` run in a task of its own: now, then each time ``nudge`` is called and at least every
    ``every_s`` seconds; a failed round is logged and the next one tries again."""

    def __init__(self, job: Callable[[], Awaitable[None]], every_s: float, name: str, log: logging.Logger):
        self.job = job
        self.every_s = every_s
        self.name = name
        self.log = log
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def nudge(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the round: a nudge that arrives during it is not lost
            try:
                await self.job()
            except Exception as exc:  # the store failed or went away: the next round tries again
                self.failures += 1
                self.log.warning("%s failed (%s); trying again", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every_s)
