"""Message-id deduplication with the origin of each id remembered.

GUN peers drop any message whose ``#`` they saw in the last 9-18 s, and route a reply (``@``) to the
connection its original came from. We keep two generations of ids: lookups search both, new ids go
into the current one, and every ``ttl`` seconds the older generation is dropped. An id therefore
lives between ``ttl`` and ``2 * ttl`` seconds (longer while it keeps being seen), like GunJS's
sweep, at O(1) cost per message. Time is passed in.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Origin = TypeVar("Origin")


class DupCache(Generic[Origin]):
    __slots__ = ("ttl", "_current", "_previous", "_rotated_at")

    def __init__(self, ttl: float = 9.0, now: float = 0.0):
        self.ttl = ttl
        self._current: dict[str, Origin | None] = {}
        self._previous: dict[str, Origin | None] = {}
        self._rotated_at = now

    def _rotate(self, now: float) -> None:
        if now - self._rotated_at >= self.ttl:
            # after a long quiet spell both generations are stale
            self._previous = self._current if now - self._rotated_at < 2 * self.ttl else {}
            self._current = {}
            self._rotated_at = now

    def track(self, msg_id: str, origin: Origin | None, now: float) -> bool:
        """Record ``msg_id``; True if it is new, False if it was seen (and so must be dropped)."""
        self._rotate(now)
        current = self._current
        if msg_id in current:
            return False
        previous = self._previous
        if msg_id in previous:
            current[msg_id] = previous.pop(msg_id)  # refreshed by being seen again
            return False
        current[msg_id] = origin
        return True

    def origin(self, msg_id: str) -> Origin | None:
        if msg_id in self._current:
            return self._current[msg_id]
        return self._previous.get(msg_id)

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
