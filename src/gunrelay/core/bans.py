"""Temporary bans by address: who may not connect, until when. Time is passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ban:
    address: str
    until: float  # seconds since the epoch
    reason: str = ""


class BanList:
    __slots__ = ("_bans",)

    def __init__(self, bans: list[Ban] | None = None):
        self._bans: dict[str, Ban] = {b.address: b for b in bans or ()}

    def add(self, ban: Ban) -> None:
        held = self._bans.get(ban.address)
        if held is None or held.until < ban.until:  # a shorter ban never shortens a longer one
            self._bans[ban.address] = ban

    def remove(self, address: str) -> bool:
        return self._bans.pop(address, None) is not None

    def banned(self, address: str, now: float) -> Ban | None:
        ban = self._bans.get(address)
        if ban is None:
            return None
        if ban.until <= now:
            del self._bans[address]
            return None
        return ban

    def active(self, now: float) -> list[Ban]:
        for address in [a for a, b in self._bans.items() if b.until <= now]:
            del self._bans[address]
        return sorted(self._bans.values(), key=lambda b: b.until)
