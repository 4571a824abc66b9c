"""Control in step across the fleet: every process has a reset, rotation, restore, TTL rule or ban
in force before the command that made it returns; and the heartbeats that say so.

Theory of operation. The fence and the bans live in each process's memory (``ResetControl``,
``Access``), loaded from the store at start. The store keeps a ``control_version`` that every
write changing them raises in its own transaction, with a ``NOTIFY`` (``storage/postgres.py``).
Each process (``ControlSync``) looks at the version when nudged and at least every ``beat_s``;
above the one it applied, it reloads resets, TTL rules and bans from the store into its live
fence and ban list (``ResetControl.reload``, ``Access.reload``: no purge and no publication,
those are the issuing process's), then writes the version it applied into its heartbeat row,
with its pid, host, port, start, connections and messages in and out.

The issuing process, once its own change is durable, calls ``in_step``: it applies the version
itself, then waits (at most ``confirm_s``) until every live process (a heartbeat younger than
``live_s``, by the database's clock) has applied it, and names the ones that did not. A process
that is gone stops counting after ``live_s``; one that comes back loads everything at its start.
Every ``ADOPT_EVERY`` rounds it also looks for a reset whose purge no live process leads (the
leader died; ``ResetControl.adopt_orphans``) and resumes it under the reset's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from ..storage.postgres import PostgresStore, ProcessBeat
from .access import Access
from .background import Rounds
from .control import ResetControl
from .relay import Relay

log = logging.getLogger("gunrelay.fleet")

BEAT_S = 1.0  # a heartbeat (and a look at the control version) at least this often
LIVE_S = 5.0  # a process whose heartbeat is older is taken for gone
CONFIRM_S = 5.0  # how long a command waits for the other processes to apply its change
CONFIRM_POLL_S = 0.05
ADOPT_EVERY = 5  # rounds between looks for purges whose leading process died


class ControlSync:
    def __init__(
        self, control: ResetControl, access: Access, relay: Relay, store: PostgresStore,
        beat_s: float = BEAT_S, live_s: float = LIVE_S, confirm_s: float = CONFIRM_S,
    ):
        self.control = control
        self.access = access
        self.relay = relay
        self.store = store
        self.beat_s = beat_s
        self.live_s = live_s
        self.confirm_s = confirm_s
        self.port = 0  # where this process listens (told by the command line once it has bound)
        self.host = socket.gethostname()
        self.started = time.time()
        self.applied = -1  # the control version in force here
        self.reloads = 0
        self._lock = asyncio.Lock()
        self._round = 0
        self._rounds = Rounds(self._keep_in_step, beat_s, "keeping in step with the fleet", log)

    async def start(self) -> None:
        """After the control and the bans have loaded: in step from here, and seen by the fleet."""
        self.applied = await self.store.control_version()  # what control.start and access.start just loaded, or newer
        await self.apply()  # a change between their loads and that read
        await self.beat()
        self._rounds.start()

    def nudge(self) -> None:
        self._rounds.nudge()

    async def stop(self) -> None:
        await self._rounds.stop()
        with contextlib.suppress(Exception):
            await self.store.forget_process()  # a clean stop leaves the fleet at once

    async def _keep_in_step(self) -> None:
        self._round += 1
        await self.apply()
        await self.beat()
        if self._round % ADOPT_EVERY == 0:
            await self.control.adopt_orphans()

    async def apply(self) -> int:
        """Reload the control log if another change came in; the version now in force here."""
        async with self._lock:
            version = await self.store.control_version()
            if version != self.applied:
                await self.control.reload()
                await self.access.reload()
                self.applied = version
                self.reloads += 1
            return self.applied

    async def beat(self) -> None:
        stats = self.relay.stats
        await self.store.beat(ProcessBeat(
            self.store.process_id, os.getpid(), self.host, self.port, self.started, 0.0, self.applied,
            len(self.relay.peers), stats.messages_in, stats.messages_out,
        ))

    async def in_step(self) -> list[str]:
        """After a change made here: wait (bounded) until every live process applied it; the ones
        that did not confirm, by pid, host and port (empty: all did)."""
        version = await self.apply()
        await self.beat()
        deadline = time.monotonic() + self.confirm_s
        for _ in range(int(self.confirm_s / CONFIRM_POLL_S) + 1):  # bounded
            behind = [p for p in await self.store.processes(self.live_s) if p.applied < version]
            if not behind or time.monotonic() >= deadline:
                break
            await asyncio.sleep(CONFIRM_POLL_S)
        if behind:
            log.warning("%d process(es) of the fleet did not confirm control version %d within %.0f s", len(behind), version, self.confirm_s)
        return [f"pid {p.pid} on {p.host}:{p.port}" for p in behind]
