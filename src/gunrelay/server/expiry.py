"""TTL: prefixes whose fields expire. Each rule is a moving fence (W = now - ttl), so expired
fields are neither accepted nor served from the moment they expire; a sweeper deletes them.

A rule the operator sets or removes is told to ``listeners`` (``server.mesh_resets`` publishes it,
signed, for the relays of the mesh that trust this one); a rule that arrives that way from a
trusted relay is applied with ``apply`` and not told again (each relay publishes its own rules only)."""

from __future__ import annotations

import asyncio
import logging

from collections.abc import Awaitable, Callable

from ..core.fence import ALL, ttl_rule
from ..storage.base import Store
from ..core.errors import OperatorError
from .control import PURGE_BATCH, ResetControl

log = logging.getLogger("gunrelay.ttl")


class Expiry:
    def __init__(self, control: ResetControl, store: Store, sweep_s: float = 60.0):
        self.control = control  # the fence's owner
        self.store = store
        self.sweep_s = sweep_s
        self.rules: dict[str, float] = {}
        self.expired = 0  # fields deleted by the sweeper since start
        self.listeners: list[Callable[[str, float | None], Awaitable[None]]] = []  # (prefix, ttl ms or None: removed)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.rules = await self.store.load_ttls()
        for prefix, ttl_ms in self.rules.items():
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

    async def set(self, prefix: str, ttl_s: float) -> None:
        """The operator's rule: in force here, and told to the listeners (published for the mesh)."""
        self.check(prefix)
        ttl_ms = ttl_s * 1000
        await self.apply(prefix, ttl_ms)
        for listener in self.listeners:
            await listener(prefix, ttl_ms)

    async def remove(self, prefix: str) -> bool:
        if prefix not in self.rules:
            return False
        await self.apply(prefix, None)
        for listener in self.listeners:
            await listener(prefix, None)
        return True

    async def apply(self, prefix: str, ttl_ms: float | None) -> None:
        """Put the rule in force (durably first), or lift it (None)."""
        if ttl_ms is None:
            if prefix in self.rules:
                await self.store.delete_ttl(prefix)
                del self.rules[prefix]
                self.control.drop_ttl_rule(prefix)
            return
        await self.store.save_ttl(prefix, ttl_ms)
        self.rules[prefix] = ttl_ms
        self.control.set_ttl_rule(prefix, ttl_ms)

    async def sweep(self) -> int:
        """Delete every expired field now; the count deleted (none while the wall clock has just
        jumped: expired fields are then hidden by the fence, not deleted, see ``core.clockwatch``)."""
        why = self.control.clock_hold(look_first=False)  # the monitor looks every few seconds
        if why is not None:
            log.warning("TTL sweep held: %s", why)
            return 0
        total = 0
        for prefix, ttl_ms in list(self.rules.items()):
            total += await self.store.purge(ttl_rule(prefix, ttl_ms), self.control.protected, PURGE_BATCH)
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
