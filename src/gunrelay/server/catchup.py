"""Catch-up between relays of the mesh: each reads the others' change streams from where it left off.

Theory of operation. Every store keeps a durable, ordered change stream of what its merges accepted
(``storage/graph.py``: one entry per stored field, numbers that only grow). When a link turns out
to lead to another gunrelay (its greeting names it by its SEA pub; ``RelayLinked``), this relay asks
that relay for its stream after the cursor it holds for it (0 the first time), one page at a time:
the engine admits each page like any put (HAM against the stored state, SEA, the fence), and once
the page is durable (``CaughtUp``) the cursor is kept durably (``ControlLog.save_stream_cursor``)
before the next page is asked for. So a link that comes back after minutes or days costs only
what changed meanwhile, and a crash in the middle costs at most the page in flight, asked for
again. Both ends do this, so after a partition each relay has every field the other holds; what
was new to a relay also goes on to its other relay links (``core.engine``), so a line of relays
converges too. Fenced fields are never in a stream page (purged from the stream, and the sender
asks its fence again), and a page is judged by the receiver's own fence.

The cursor is the receiver's: "everything up to n of that relay's stream is durable here". Writes
that arrive live over the link are not counted in it, so after a reconnect some are received once
more (HAM makes them no-ops). ``RESYNC_S`` asks again on links that stay up, which also repairs a
write lost on the way (a slow link closed, a limit refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..core.link import Link
from ..storage.base import Store
from .background import Background
from .relay import Relay

log = logging.getLogger("gunrelay.mesh")

RESYNC_S = 60.0


class StreamCatchUp:
    def __init__(self, relay: Relay, store: Store):
        self.relay = relay
        self.store = store
        self.cursors: dict[str, int] = {}  # relay pub -> its stream, durable here up to this number
        self.caught_up: dict[str, bool] = {}  # relay pub -> the last page said nothing more was waiting
        self._asking: set[Link] = set()  # a page is on its way from these links
        self._saving = Background()  # cursors on their way to the store
        self._timer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.cursors = await self.store.load_stream_cursors()
        self.relay.relay_link_listeners.append(self.linked)
        self.relay.on_caught_up = self.page_stored
        self._timer = asyncio.create_task(self._resync())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self._saving.wait()

    def report(self, relay_pub: str | None) -> dict[str, Any] | None:
        if relay_pub is None:
            return None
        return {"cursor": self.cursors.get(relay_pub, 0), "caught_up": self.caught_up.get(relay_pub, False)}

    def linked(self, link: Link) -> None:
        if link.relay_pub is not None:
            self._ask(link)

    def _ask(self, link: Link) -> None:
        pub = link.relay_pub
        if pub is None or link.closed or link in self._asking:
            return
        self._asking.add(link)
        self.relay.ask_changes(link, self.cursors.get(pub, 0))

    def page_stored(self, link: Link, cursor: int, done: bool) -> None:
        pub = link.relay_pub
        self._asking.discard(link)
        if pub is None:
            return
        self.caught_up[pub] = done
        if cursor > self.cursors.get(pub, 0):
            self.cursors[pub] = cursor
            self._saving.spawn(self._save(pub, cursor))
        if not done:
            self._ask(link)

    async def _save(self, pub: str, cursor: int) -> None:
        try:
            await self.store.save_stream_cursor(pub, cursor)
        except Exception as exc:  # the next page or the next link asks from the older cursor: nothing lost
            log.warning("could not keep the stream cursor of relay %s: %s", pub, exc)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_S)
            self._asking.clear()  # a page asked for a minute ago and never answered is asked for again
            for link in list(self.relay.engine.relay_links):
                self._ask(link)
