"""Limits on what peers may do: how many connections, and how many messages a second.

Both are pure: the caller passes the time. ``ConnectionLimits`` counts open connections in all and
per address and says why one more is refused; ``TokenBucket`` admits a steady rate with a burst.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``take`` spends them or refuses."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, count: int, now: float) -> bool:
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < count:
            self.tokens = tokens
            return False
        self.tokens = tokens - count
        return True


class ConnectionLimits:
    """At most ``total`` connections, at most ``per_address`` from one address (0: no limit)."""

    def __init__(self, total: int = 0, per_address: int = 0):
        self.total = total
        self.per_address = per_address
        self.open = 0
        self.by_address: dict[str, int] = {}

    def refuse(self, address: str) -> str | None:
        """Why one more connection from ``address`` is refused (a metrics label), or None."""
        if self.total and self.open >= self.total:
            return "max_connections"
        if self.per_address and self.by_address.get(address, 0) >= self.per_address:
            return "max_connections_per_address"
        return None

    def opened(self, address: str) -> None:
        self.open += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1

    def closed(self, address: str) -> None:
        self.open -= 1
        left = self.by_address.get(address, 0) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)
