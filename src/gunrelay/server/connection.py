"""One websocket connection: the engine's ``Link`` plus an outbox that batches what we send it.

Messages produced for a peer during one turn of the event loop leave as one frame (a JSON array
when there are several), as GunJS's ``mesh.say`` batches. A single flusher task per peer writes
frames in order; it exists only while there is something to send. What waits to be sent is
bounded: a peer that stops reading while more than ``max_queue_bytes`` pile up for it is closed
(1008), so one slow socket cannot grow the relay's memory or hold up anyone else.

A relay holds thousands of mostly idle connections, so this object is kept small: slots, the
server's ASGI ``send`` kept as it is (no closures per connection), the rate buckets made on first
use (``core.engine``).
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core import wire
from ..core.engine import RelayStats
from ..core.link import Link

_ALPHABET = string.digits + string.ascii_letters


def random_pid(length: int = 9) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]  # the ASGI server's send for this websocket


class Connection(Link):
    __slots__ = ("messages_out", "_send", "_outbox", "_queued", "_flushing", "_loop", "max_queue_bytes", "stats", "_drained")

    def __init__(
        self, send: AsgiSend, address: str, max_queue_bytes: int = 32 << 20, stats: RelayStats | None = None, dialled: bool = False,
    ):
        super().__init__(random_pid(), address, time.time(), dialled)
        self.messages_out = 0
        self._send = send
        self._outbox: list[str] = []
        self._queued = 0  # characters waiting in the outbox
        self._flushing = False
        self.max_queue_bytes = max_queue_bytes
        self.stats = stats  # the relay's running totals (messages and bytes out)
        self._drained: list[Callable[[], None]] | None = None  # run once the outbox is empty
        self._loop = asyncio.get_running_loop()

    @property
    def queued_bytes(self) -> int:
        """Characters waiting to be sent."""
        return self._queued

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything queued now has been handed to the socket (never, if
        the peer closes first)."""
        if not self._outbox:
            callback()
        elif self._drained is None:
            self._drained = [callback]
        else:
            self._drained.append(callback)

    def enqueue(self, encoded: str) -> None:
        if self.closed:
            return
        self._queued += len(encoded)
        if self._queued > self.max_queue_bytes:  # it is not reading: drop it rather than grow
            self._outbox = []
            self._queued = 0
            self.close(1008, "too slow: send queue full")
            return
        self._outbox.append(encoded)
        if not self._flushing:
            self._flushing = True
            self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let this turn's other messages for this peer join the frame
        try:
            while self._outbox and not self.closed:
                outgoing, self._outbox = self._outbox, []
                self._queued = 0
                self.messages_out += len(outgoing)
                frame = wire.batch(outgoing)
                stats = self.stats
                if stats is not None:
                    stats.messages_out += len(outgoing)
                    stats.bytes_out += len(frame) if frame.isascii() else len(frame.encode("utf-8", "surrogatepass"))
                await self._send({"type": "websocket.send", "text": frame})
        except Exception:
            self.closed = True  # the socket is gone; the receive loop will see it and clean up
        finally:
            self._flushing = False
        drained = self._drained
        if drained is not None and not self.closed and not self._outbox:
            self._drained = None
            for callback in drained:
                callback()

    def close(self, code: int = 1008, reason: str = "") -> None:
        """Close the socket (after what is already queued); the receive loop then disconnects it."""
        if self.closed:
            return
        self.closed = True
        self._loop.create_task(self._send_close(code, reason))

    async def _send_close(self, code: int, reason: str) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:
            pass  # already gone
