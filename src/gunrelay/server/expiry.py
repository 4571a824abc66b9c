"""TTL: prefixes whose fields expire. Each rule is a moving fence (W = now - ttl), so expired
fields are neither accepted nor served from the moment they expire; a sweeper deletes them.

A rule the operator sets or removes is told to ``listeners`` (``server.mesh_resets`` publishes it,
signed, for the relays of the mesh that trust this one); a rule that arrives that way from a
trusted relay is applied with ``apply`` and not told again (each relay publishes its own rules only).

In a fleet (several processes on one PostgreSQL store, ``server/fleet_control.py``) the rules in
force are the fence's: another process's rule reaches this one's fence when it reloads the control
log, so ``rules`` is read from the fence, never kept apart. The operator's ``set`` and ``remove``
wait (bounded) until every live process has the change in force, like a reset, and say which did
not (``fleet_not_confirmed``); a sweep runs in one process at a time (the fleet's lease
``ttl-sweep``), the others skip that round."""

from __future__ import annotations

import asyncio
import logging

from collections.abc import Awaitable, Callable
from typing import Any

from ..core.fence import ALL, ttl_rule
from ..storage.base import Store
from ..core.errors import OperatorError
from .control import PURGE_BATCH, ResetControl

log = logging.getLogger("gunrelay.ttl")

SWEEP_LEASE = "ttl-sweep"  # the fleet-wide lead of a sweep: one process sweeps at a time


class Expiry:
    def __init__(self, control: ResetControl, store: Store, sweep_s: float = 60.0):
        self.control = control  # the fence's owner
        self.store = store
        self.sweep_s = sweep_s
        self.expired = 0  # fields deleted by the sweeper since start
        self.listeners: list[Callable[[str, float | None], Awaitable[None]]] = []  # (prefix, ttl ms or None: removed)
        self._task: asyncio.Task[None] | None = None

    @property
    def rules(self) -> dict[str, float]:
        """The TTL rules in force here (prefix -> ttl ms): the fence's, so a rule another process
        of the fleet set is here as soon as this process reloaded the control log."""
        return {rule.scope: rule.ttl_ms for rule in self.control.fence.rules if rule.ttl_ms is not None}

    async def start(self) -> None:
        for prefix, ttl_ms in (await self.store.load_ttls()).items():
            self.control.set_ttl_rule(prefix, ttl_ms)
        self._task = asyncio.get_running_loop().create_task(self._sweeper())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def check(self, prefix: str) -> None:
        """Refuse a prefix no TTL rule may have."""
        if not isinstance(prefix, str) or not prefix or prefix == ALL or prefix.endswith("/"):
            raise OperatorError("a TTL needs a soul prefix (not '*')")
        if self.control.protected.contains(prefix):
            raise OperatorError(f"{prefix!r} is the relay's system space")

    async def set(self, prefix: str, ttl_s: float) -> dict[str, Any]:
        """The operator's rule: in force here and on every process of the fleet, and told to the
        listeners (published for the mesh). The fleet's word (``fleet_not_confirmed``; alone: nothing)."""
        self.check(prefix)
        ttl_ms = ttl_s * 1000
        await self.apply(prefix, ttl_ms)
        for listener in self.listeners:
            await listener(prefix, ttl_ms)
        return await self._fleet_in_step()

    async def remove(self, prefix: str) -> dict[str, Any] | None:
        """Lift the operator's rule here and on every process of the fleet: the fleet's word, as
        ``set``; None when there is no such rule."""
        if prefix not in self.rules:
            return None
        await self.apply(prefix, None)
        for listener in self.listeners:
            await listener(prefix, None)
        return await self._fleet_in_step()

    async def _fleet_in_step(self) -> dict[str, Any]:
        """In a fleet: wait until every live process has the change in force (``ResetControl.in_step``,
        set by the fleet); the ones that did not confirm. Alone: nothing to wait for, nothing to say."""
        if self.control.in_step is None:
            return {}
        return {"fleet_not_confirmed": await self.control.in_step()}

    async def apply(self, prefix: str, ttl_ms: float | None) -> None:
        """Put the rule in force (durably first), or lift it (None)."""
        if ttl_ms is None:
            if prefix in self.rules:
                await self.store.delete_ttl(prefix)
                self.control.drop_ttl_rule(prefix)
            return
        await self.store.save_ttl(prefix, ttl_ms)
        self.control.set_ttl_rule(prefix, ttl_ms)

    async def sweep(self) -> int:
        """Delete every expired field now; the count deleted (none while the wall clock has just
        jumped: expired fields are then hidden by the fence, not deleted, see ``core.clockwatch``;
        and none in a process of the fleet while another one sweeps)."""
        why = self.control.clock_hold(look_first=False)  # the monitor looks every few seconds
        if why is not None:
            log.warning("TTL sweep held: %s", why)
            return 0
        release = None
        if self.control.lease is not None:
            release = await self.control.lease(SWEEP_LEASE)
            if release is None:
                return 0  # another process of the fleet is sweeping the same store now
        total = 0
        try:
            for prefix, ttl_ms in self.rules.items():
                total += await self.store.purge(ttl_rule(prefix, ttl_ms), self.control.protected, PURGE_BATCH)
        finally:
            if release is not None:
                await release()
        self.expired += total
        return total

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                swept = await self.sweep()
                if swept:
                    log.info("TTL sweep removed %d expired fields", swept)
            except Exception:
                log.exception("TTL sweep failed; will retry")
