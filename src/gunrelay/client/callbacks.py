"""Calling back ``on`` subscribers and ``on_reset``: in order, one at a time, off the network loop.

Theory of operation. Whatever changed the local copy (a local put, a push, a get's reply, a
deferred write reaching its state) is reported with ``changed(fields)``; a reset applied, with
``reset(callback, record)``; a new subscriber, with ``add``. Each becomes an event in one queue,
and one task runs the events in turn: callbacks see changes in the order they happened, never
two at once, and may themselves await the peer (they do not run inside the receive loop, which
would then wait on itself). A node subscriber is called with the node as the local copy holds it
when its turn comes (and not at all if nothing is held, e.g. after a reset purged it); a key
subscriber with the value that changed. Callbacks may be coroutines. One that raises is logged,
and the next runs. ``close`` lets the queued events finish (bounded) and stops the task.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..core.graph import Field, State, Value

log = logging.getLogger("gunrelay.client")

Rows = list[tuple[str, Value, State]]


class Subscriber(Protocol):
    """What ``on`` made (``peer.Subscription``): what it follows and whom to call."""

    @property
    def soul(self) -> str: ...

    @property
    def key(self) -> str | None: ...  # None: the whole node

    @property
    def callback(self) -> Callable[[Any, str], Any]: ...  # (node, soul) or (value, key); may return an awaitable


class Callbacks:
    def __init__(self, rows: Callable[[str, str | None], Awaitable[Rows]]):
        self._rows = rows  # what the local copy holds of (soul, key)
        self.subscribers: list[Subscriber] = []
        self._events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    def add(self, sub: Subscriber) -> None:
        """A new subscriber: called once with what the local copy holds, then on every change."""
        self.subscribers.append(sub)
        self._events.put_nowait(("initial", sub))

    def remove(self, sub: Subscriber) -> bool:
        """No more callbacks for ``sub``; False if it was not subscribed."""
        if sub not in self.subscribers:
            return False
        self.subscribers.remove(sub)
        return True

    def changed(self, fields: list[Field]) -> None:
        """Queue the callbacks of the subscribers to what ``fields`` changed in the local copy."""
        if not fields or not self.subscribers:
            return
        by_soul: dict[str, dict[str, Value]] = {}
        for f in fields:
            by_soul.setdefault(f.soul, {})[f.key] = f.value
        for sub in list(self.subscribers):
            changed = by_soul.get(sub.soul)
            if changed is None:
                continue
            if sub.key is None:
                self._events.put_nowait(("node", sub))
            elif sub.key in changed:
                self._events.put_nowait(("value", sub, changed[sub.key]))

    def reset(self, callback: Callable[[Any], Any] | None, record: Any) -> None:
        """Queue ``callback(record)`` (``on_reset``), in turn with the changes before it."""
        if callback is not None:
            self._events.put_nowait(("reset", callback, record))

    async def close(self) -> None:
        if self._worker is None:
            return
        try:
            await asyncio.wait_for(self._events.join(), 5.0)  # callbacks already queued
        except TimeoutError:
            log.warning("callbacks still running at close; cancelled")
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._worker = None

    async def _run(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._call(event)
            except Exception:
                log.exception("a callback failed")
            finally:
                self._events.task_done()

    async def _call(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "reset":
            await _maybe_await(event[1](event[2]))
            return
        sub: Subscriber = event[1]
        if sub not in self.subscribers:
            return
        if kind == "value":
            await _maybe_await(sub.callback(event[2], sub.key or sub.soul))
            return
        rows = await self._rows(sub.soul, sub.key)
        if not rows:
            return  # nothing held (yet, or purged by a reset): the next change calls back
        value = rows[0][1] if sub.key is not None else {k: v for k, v, _ in rows}
        await _maybe_await(sub.callback(value, sub.key or sub.soul))


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result
