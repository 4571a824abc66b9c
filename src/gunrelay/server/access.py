"""Who may connect: temporary bans by address, persisted, expiring, enforced at the upgrade.

A ban refuses new websocket upgrades from the address (HTTP 403) and closes its open sockets.
``ban_connected`` bans every address connected right now: the old "block everyone for five
minutes" recipe, as an explicit operator choice rather than a side effect of a reset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

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
        return made

    async def ban_connected(self, seconds: float, reason: str = "") -> list[Ban]:
        return await self.ban([p.address for p in self.relay.clients()], seconds, reason)

    async def unban(self, address: str) -> bool:
        removed = self.bans.remove(address)
        await self.store.delete_ban(address)
        return removed

    def active(self) -> list[Ban]:
        return self.bans.active(self.clock())
