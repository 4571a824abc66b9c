"""The fleet: several relay processes sharing one PostgreSQL store, each pushing what the others stored.

Theory of operation. A relay process pushes the writes it accepts to its own subscribers
(``engine._fan_out``) and its relay links; a subscriber connected to another process of the same
store would never hear of them. So each process tails the store's change stream (``storage/graph.py``:
durable, numbered in commit order, one entry per stored field, its latest value) from the head it
saw at start, and hands what *other* processes wrote to ``Relay.shared``: this process's
subscribers only, never its relay links (the writing process already sent the write on to its
own), and never this process's own writes twice (each entry carries the writing process's id,
written by the same upsert as the value: ``PostgresStore.others_since`` leaves those out).

When to read: a write transaction that accepted fields sends a ``NOTIFY`` that PostgreSQL delivers
at its commit (``PostgresStore.listen``), and the tail also reads every ``poll_s`` whatever it
heard. The notification is only a nudge: the position is the tail's cursor in the stream, so a
dropped notification, a reconnect or a PostgreSQL restart delays a push by a poll at most and loses
nothing (a failed read keeps the cursor and is tried again). Numbers are taken under the fleet's
one write lock (``STREAM_LOCK``), so a concurrent writer cannot commit a smaller number after the
tail read a bigger one: no change is skipped. Per field, the stream is in HAM order (a field's
number only grows with the states that beat the stored one), and a reader that fell behind gets
each field once at its current value, which is what a subscriber must end with.
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.graph import Field
from ..storage.base import decode_value
from ..storage.postgres import CONTROL_CHANNEL, STREAM_CHANNEL, PostgresStore
from .access import Access
from .background import Rounds
from .control import ResetControl
from .fleet_control import ControlSync
from .relay import Relay

log = logging.getLogger("gunrelay.fleet")

POLL_S = 1.0  # read the stream at least this often, notification or not
PAGE = 2000  # entries per read


class StreamTail:
    """Pushes the fields other processes of the fleet stored to this process's subscribers."""

    def __init__(self, relay: Relay, store: PostgresStore, poll_s: float = POLL_S, page: int = PAGE):
        self.relay = relay
        self.store = store
        self.poll_s = poll_s
        self.page = page
        self.cursor = 0
        self.pushed = 0  # fields of other processes pushed to subscribers here, since start
        self._rounds = Rounds(self.catch_up, poll_s, "reading the fleet's change stream", log)

    async def start(self) -> None:
        """From the stream's head now: what other processes store from here on is pushed (``nudge``
        is the store's listener's to call, ``Fleet.start``)."""
        self.cursor = await self.store.stream_head()
        self._rounds.start()

    @property
    def failures(self) -> int:
        """Reads of the stream that failed (tried again at the next nudge or poll, from the same cursor)."""
        return self._rounds.failures

    def nudge(self) -> None:
        self._rounds.nudge()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def catch_up(self) -> None:
        """Read the stream past the cursor to its end, pushing other processes' fields."""
        while True:
            page = await self.store.others_since(self.cursor, self.page)
            if page.changes:
                fields = [Field(c.soul, c.key, decode_value(c.value), c.state) for c in page.changes]
                self.relay.shared(fields)
                self.pushed += len(fields)
            if page.cursor == self.cursor:
                return
            self.cursor = page.cursor


class Fleet:
    """This process's part in the fleet: the stream tail, the control in step, the heartbeats,
    and the store's listener that nudges both."""

    def __init__(self, relay: Relay, control: ResetControl, access: Access, store: PostgresStore):
        self.store = store
        self.tail = StreamTail(relay, store)
        self.control = ControlSync(control, access, relay, store)
        control.in_step = self.control.in_step
        control.lease = store.lease  # one process leads each reset's purge and publication
        access.in_step = self.control.in_step

    async def start(self) -> None:
        """After the fences and bans are loaded, before the relay serves."""
        await self.tail.start()
        await self.control.start()
        self.store.listen({STREAM_CHANNEL: self.tail.nudge, CONTROL_CHANNEL: self.control.nudge})

    async def stop(self) -> None:
        await self.control.stop()
        await self.tail.stop()

    async def report(self) -> dict[str, Any]:
        """Every live process (its heartbeat) and fleet-wide totals: the console's and ``/-/api/stats``'s."""
        beats = await self.store.processes(self.control.live_s)
        processes = [
            {
                "process_id": b.process_id,
                "this": b.process_id == self.store.process_id,
                "pid": b.pid,
                "host": b.host,
                "port": b.port,
                "started": b.started * 1000,
                "last_seen": b.last_seen * 1000,
                "control_version": b.applied,
                "connections": b.connections,
                "messages_in": b.messages_in,
                "messages_out": b.messages_out,
            }
            for b in beats
        ]
        totals = {
            "connections": sum(b.connections for b in beats),
            "messages_in": sum(b.messages_in for b in beats),
            "messages_out": sum(b.messages_out for b in beats),
        }
        return {"processes": processes, "totals": {"processes": len(processes), **totals}}
