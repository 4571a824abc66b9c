"""Noticing the wall clock being stepped, and holding what a wrong clock would make destructive.

Theory of operation. GUN's states are wall-clock milliseconds, and so are the relay's own: a
reset's watermark is "now", a TTL rule expires what is older than "now" minus its span. A clock
stepped forward by an hour would fence every live writer's next hour of writes, or expire data
that is minutes old; stepped back, it makes every writer look ahead of time. The monotonic clock
cannot be stepped, so the offset between the two is constant while the wall clock is right (NTP
slews it by microseconds a second). ``ClockWatch`` is fed both clocks now and then; an offset
that moved by more than ``threshold_ms`` is a jump. After a jump the relay holds the actions that
take "now" for the truth and cannot be undone (issuing resets and rotations, TTL purges) for
``settle_s``; by then an operator has seen the warning and fixed the clock, or the new time
stands. Writes are never held: their states are the writers' own, and the skew check answers
those that look too far ahead with an error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Jump:
    size_ms: float  # positive: the wall clock moved forward
    at_wall_ms: float  # the wall clock just after the jump
    at_monotonic_s: float


class ClockWatch:
    def __init__(self, wall_ms: float, monotonic_s: float, threshold_ms: float = 2_000.0, settle_s: float = 600.0):
        self.threshold_ms = threshold_ms
        self.settle_s = settle_s
        self._offset = wall_ms - monotonic_s * 1000.0
        self.jumps = 0
        self.last: Jump | None = None

    def observe(self, wall_ms: float, monotonic_s: float) -> Jump | None:
        """Compare the clocks; the jump, if the wall clock was stepped since the last look."""
        offset = wall_ms - monotonic_s * 1000.0
        moved = offset - self._offset
        self._offset = offset  # follow slow drift and adopt a stepped clock as the new baseline
        if abs(moved) < self.threshold_ms:
            return None
        self.jumps += 1
        self.last = Jump(moved, wall_ms, monotonic_s)
        return self.last

    def hold_left_s(self, monotonic_s: float) -> float:
        """Seconds until destructive time-based actions may run again (0: now)."""
        if self.last is None:
            return 0.0
        return max(0.0, self.last.at_monotonic_s + self.settle_s - monotonic_s)

    def report(self, monotonic_s: float) -> dict[str, float | int | None]:
        last = self.last
        return {
            "jumps": self.jumps,
            "last_jump_s": None if last is None else last.size_ms / 1000,
            "last_jump_ago_s": None if last is None else monotonic_s - last.at_monotonic_s,
            "held_for_s": self.hold_left_s(monotonic_s),
        }

    def held_because(self, monotonic_s: float) -> str | None:
        """Why a destructive time-based action must wait, or None."""
        left = self.hold_left_s(monotonic_s)
        if left <= 0 or self.last is None:
            return None
        ago = monotonic_s - self.last.at_monotonic_s
        return (
            f"the relay's wall clock jumped {self.last.size_ms / 1000:+.1f} s {ago:.0f} s ago; resets, rotations and "
            f"TTL purges take the clock for the truth, so they wait {left:.0f} s more (check the clock, e.g. NTP)"
        )
