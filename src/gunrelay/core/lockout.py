"""Login throttling: repeated failures lock a name out for a while.

A key (an address, a user name) that fails ``max_failures`` times within ``window_s`` is locked
for ``lockout_s``; while locked, every attempt is refused without checking the password, so
guessing costs the attacker time, not the relay CPU. A success clears the key. The table is
bounded: past ``max_keys`` the oldest unlocked entries go first, then the oldest locks (a key
that keeps failing stays recent, so a flood of other keys does not free it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, max_failures: int = 5, window_s: float = 300.0, lockout_s: float = 900.0, max_keys: int = 100_000):
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_keys = max_keys
        self._keys: dict[str, _Failures] = {}

    def locked(self, keys: tuple[str, ...], now: float) -> float | None:
        """Seconds until the longest lock on any of ``keys`` ends, or None when none is locked."""
        waits = [held.locked_until - now for key in keys if (held := self._keys.get(key)) and held.locked_until > now]
        return max(waits) if waits else None

    def failed(self, keys: tuple[str, ...], now: float) -> bool:
        """Count a failure against each key; True when this failure locked one of them."""
        locked = False
        for key in keys:
            held = self._keys.pop(key, None) or _Failures()
            self._keys[key] = held  # most recently used last
            held.times = [t for t in held.times if now - t < self.window_s] + [now]
            if len(held.times) >= self.max_failures:
                held.locked_until = now + self.lockout_s
                held.times = []
                locked = True
        excess = len(self._keys) - self.max_keys
        if excess > 0:  # forget the oldest unlocked keys first, then (a flood of locks) the oldest locks
            unlocked = [key for key, held in self._keys.items() if held.locked_until <= now][:excess]
            for key in unlocked:
                del self._keys[key]
            while len(self._keys) > self.max_keys:
                del self._keys[next(iter(self._keys))]
        return locked

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._keys.pop(key, None)
