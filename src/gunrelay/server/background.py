"""Background tasks a component starts and stops with itself.

asyncio keeps only a weak reference to a running task, so one nobody holds can vanish mid-way;
``Background`` holds each until it ends, says how many are under way (a component's "busy"), and
cancels or waits for them all when the component stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
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
