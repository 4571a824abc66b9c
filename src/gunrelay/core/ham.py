"""HAM, GUN's conflict resolution, exactly as GunJS 0.2020.1241 decides it (src/root.js ``ham``).

Theory of operation. Every field carries a state (ms since the epoch, possibly fractional). For an
incoming (state, value) against the current (state, value) of the same soul and key:

1. ``state > now``: the write is from the future. GunJS defers it until its state is reached. We
   do the same within a configured skew and refuse it beyond (a far-future copy of old data would
   otherwise win every later conflict) -- that bound is the relay's policy, see ``Verdict.TOO_FAR``.
2. ``state < current``: historical, dropped.
3. ``state == current``: the incoming value wins only if ``JSON.stringify(incoming)`` is strictly
   greater than ``JSON.stringify(current)`` in JavaScript string order (UTF-16 code units).
4. otherwise the incoming value wins.

The relay applies steps 2-4 against the *stored* state (inside the storage transaction), not an
in-memory cache, so a ``null`` tombstone survives restarts. Step 1 depends on the clock and runs
before storage, with ``now`` passed in.
"""

from __future__ import annotations

import enum

from .graph import State, Value
from .jsjson import stringify, utf16_key


class Verdict(enum.Enum):
    INCOMING = "incoming"  # the incoming value replaces the current one
    CURRENT = "current"  # equal state, the current value is kept
    HISTORICAL = "historical"  # older state, dropped
    DEFER = "defer"  # from the future within the allowed skew: apply when its state is reached
    TOO_FAR = "too_far"  # from further in the future than the allowed skew: refused


def compare(incoming_state: State, incoming_value: Value, current_state: State | None, current_value: Value) -> Verdict:
    """Steps 2-4: the incoming field against what is held (``current_state`` None: nothing held)."""
    if current_state is None or incoming_state > current_state:
        return Verdict.INCOMING
    if incoming_state < current_state:
        return Verdict.HISTORICAL
    if incoming_value == current_value and type(incoming_value) is type(current_value):
        return Verdict.CURRENT
    if utf16_key(stringify(incoming_value)) > utf16_key(stringify(current_value)):
        return Verdict.INCOMING
    return Verdict.CURRENT


def timing(incoming_state: State, now: float, max_skew_ms: float) -> Verdict | None:
    """Step 1: DEFER or TOO_FAR for future states, None when the state is not in the future."""
    if incoming_state <= now:
        return None
    if incoming_state - now > max_skew_ms:
        return Verdict.TOO_FAR
    return Verdict.DEFER


def decide(
    incoming_state: State,
    incoming_value: Value,
    current_state: State | None,
    current_value: Value,
    now: float,
    max_skew_ms: float = float("inf"),
) -> Verdict:
    """The whole decision as GunJS makes it (with ``max_skew_ms`` infinite, GunJS's own behaviour)."""
    early = timing(incoming_state, now, max_skew_ms)
    if early is not None:
        return early
    return compare(incoming_state, incoming_value, current_state, current_value)
