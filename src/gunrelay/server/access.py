"""Who may connect: temporary bans by address, persisted, expiring, enforced at the upgrade.

A ban refuses new websocket upgrades from the address (HTTP 403) and closes its open sockets.
``ban_connected`` bans every address connected right now: the old "block everyone for five
minutes" recipe, as an explicit operator choice rather than a side effect of a reset.

In a fleet (``server/fleet_control.py``) a ban or unban made through one process is ``reload``ed
by the others, which close the banned address's sockets too; the command waits for them
(``in_step``, set by the fleet) before it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from ..core.bans import Ban, BanList
from ..storage.base import Store
from .relay import Relay

log = logging.getLogger("gunrelay.access")


class Access:
    def __init__(self, relay: Relay, store: Store, clock: Callable[[], float] = time.time):
        self.relay = relay
        self.store = store
        self.clock = clock
        self.bans = BanList()
        self.in_step: Callable[[], Awaitable[list[str]]] | None = None  # set by the fleet

    async def start(self) -> None:
        for ban in await self.store.load_bans():
            self.bans.add(ban)

    def refuse(self, address: str) -> str | None:
        ban = self.bans.banned(address, self.clock())
        return None if ban is None else f"banned until {ban.until:.0f}"

    async def ban(self, addresses: Iterable[str], seconds: float, reason: str = "") -> list[Ban]:
        until = self.clock() + seconds
        made = []
        for address in dict.fromkeys(addresses):
            ban = Ban(address, until, reason)
            self.bans.add(ban)
            held = self.bans.banned(address, self.clock()) or ban
            await self.store.save_ban(held)
            made.append(held)
            for peer in [p for p in self.relay.peers.values() if p.address == address]:
                peer.close(1008, "banned")
        if made:
            log.warning("banned %d address(es) for %.0f s: %s (%s)", len(made), seconds, ", ".join(b.address for b in made), reason)
            if self.in_step is not None:
                await self.in_step()  # their sockets on the other processes are closed by now
        return made

    async def ban_connected(self, seconds: float, reason: str = "") -> list[Ban]:
        return await self.ban([p.address for p in self.relay.clients()], seconds, reason)

    async def unban(self, address: str) -> bool:
        removed = self.bans.remove(address)
        await self.store.delete_ban(address)
        if self.in_step is not None:
            await self.in_step()
        return removed

    async def reload(self) -> None:
        """Another process of the fleet banned or unbanned: the stored bans are the list now, and
        the sockets of every address banned are closed here too."""
        now = self.clock()
        stored = {ban.address: ban for ban in await self.store.load_bans() if ban.until > now}
        self.bans = BanList(list(stored.values()))
        for peer in [p for p in self.relay.peers.values() if p.address in stored and not p.closed]:
            peer.close(1008, "banned")

    def active(self) -> list[Ban]:
        return self.bans.active(self.clock())
