"""Admission: which incoming fields may be stored, and when. One path for the relay and the client.

Theory of operation. A put's graph is first validated as a whole (``graph.fields_of_put``); then
each field is judged on its own, in this order, and the first rule that refuses it names why:

1. the fence (``fence``): a field in a reset's scope at or below its watermark, in a rotated
   (read-only) scope, or older than a TTL rule keeps, never comes back;
2. the protected system space (the relay's SEA space, the legacy system node): only the relay
   writes there. A relay refuses peers' writes there; a client (``refuse_protected=False``)
   receives the relay's own writes there -- its reset records -- and must take them: for a
   client ``protected`` only keeps those souls out of every reset of ``*``;
3. HAM's timing (``ham.timing``): a state further ahead of our clock than ``max_skew_ms`` is
   refused; one ahead by less waits until its state is reached (HAM's defer, as GunJS does);
4. SEA (``sea.check_field``): signatures, certificates, content hashes, expiring souls. A
   certificate with a write-block list needs entries read from the graph first: such fields wait
   in ``lookups`` and are judged again by ``recheck`` once the entries are known.

What passes is split into ``ready`` (merge now) and ``later`` (merge once the state is reached).
HAM against the stored state is the store's part (``storage``), at merge time. The fence may
change between admission and merge (a reset issued meanwhile): ``through_fence`` judges fields
again then. Nothing here does I/O or reads a clock: ``now`` (ms, the state clock) is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from . import ham, sea
from .fence import FenceRule, FenceView, Protected
from .graph import Field
from .reads import Row
from .wire import loads

# kinds of refusal, as counted in the relay's error totals
FENCED = "fenced"
SYSTEM_SPACE = "system_space"
FUTURE_STATE = "future_state"
SEA = "sea"

Lookup = tuple[str, str]  # (write-block list soul, writer pub)


@dataclass(slots=True)
class Admission:
    ready: list[Field] = field(default_factory=list)  # may be merged now
    later: list[Field] = field(default_factory=list)  # merge once their state is reached
    lookups: list[tuple[Field, list[Lookup]]] = field(default_factory=list)  # wait for write-block entries
    refused: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), one per refused field
    fenced: list[Field] = field(default_factory=list)  # the refused fields the fence refused

    @property
    def passed(self) -> list[Field]:
        """Fields that passed every check made on arrival (some may still wait for their state)."""
        return self.ready + self.later if self.later else self.ready


def fence_error(rule: FenceRule, state: float, now: float) -> str:
    if rule.ttl_ms is not None:
        return f"Expired: {rule.scope!r} keeps data for {rule.ttl_ms / 1000:g} s; state {state} is older."
    if math.isinf(rule.watermark_at(now)):
        return f"Refused: {rule.scope!r} was rotated ({rule.rule_id}) and is read-only."
    return (
        f"Refused by reset {rule.rule_id} of {rule.scope!r}: state {state} is at or below its watermark "
        f"{rule.watermark_at(now)}; data from before the reset must not come back."
    )


def through_fence(fields: list[Field], fence: FenceView, now: float, admission: Admission) -> list[Field]:
    """The fields the fence lets in; each refused one is noted in ``admission``."""
    if not fence:
        return fields
    ceiling = fence.ceiling(now)
    passed = []
    for item in fields:
        if item.state > ceiling:  # newer than every watermark: no rule can refuse it
            passed.append(item)
            continue
        rule = fence.blocks(item.soul, item.state, now)
        if rule is None:
            passed.append(item)
        else:
            admission.refused.append((FENCED, fence_error(rule, item.state, now)))
            admission.fenced.append(item)
    return passed


def _note(lookups: list[Lookup]) -> Callable[[str, str], bool]:
    """An ``is_blocked`` for a first SEA pass: notes which write-block entries a check needs."""

    def note(soul: str, writer: str) -> bool:
        lookups.append((soul, writer))
        return False

    return note


def admit(
    fields: list[Field], now: float, fence: FenceView, max_skew_ms: float, *, refuse_protected: bool = True
) -> Admission:
    """Judge each field of a validated put (see the module's theory of operation); with
    ``refuse_protected`` False the protected system space is not refused (rule 2 is skipped)."""
    admission = Admission()
    refused = admission.refused
    ready = admission.ready
    later = admission.later
    protected = fence.protected if refuse_protected else Protected()
    wanted: list[Lookup] = []
    note: Callable[[str, str], bool] | None = None  # made for the first field in user space (certificates live there)
    for item in through_fence(fields, fence, now, admission):
        if protected.contains(item.soul):
            refused.append((SYSTEM_SPACE, f"Refused: {item.soul!r} is the relay's system space; only the relay writes there."))
            continue
        timing = ham.timing(item.state, now, max_skew_ms)
        if timing is ham.Verdict.TOO_FAR:
            refused.append((
                FUTURE_STATE,
                f"State {item.state} of {item.soul!r}.{item.key!r} is {item.state - now:.0f} ms ahead of the relay's "
                f"clock (limit {max_skew_ms} ms); check the writer's clock.",
            ))
            continue
        asked = len(wanted)
        if note is None and "~" in item.soul:
            note = _note(wanted)
        problem = sea.check_field(item.soul, item.key, item.value, item.state, now, note)
        if problem is not None:
            refused.append((SEA, problem))
        elif len(wanted) > asked:
            admission.lookups.append((item, wanted[asked:]))  # a certificate with a write-block list
        elif timing is ham.Verdict.DEFER:
            later.append(item)
        else:
            ready.append(item)
    return admission


def recheck(waiting: list[tuple[Field, list[Lookup]]], blocked: dict[Lookup, bool], now: float) -> Admission:
    """Judge again the fields that waited for write-block entries, now that they are known."""
    admission = Admission()
    for item, _ in waiting:
        problem = sea.check_field(item.soul, item.key, item.value, item.state, now, lambda soul, writer: blocked.get((soul, writer), False))
        if problem is not None:
            admission.refused.append((SEA, problem))
        elif item.state > now:
            admission.later.append(item)
        else:
            admission.ready.append(item)
    return admission


def blocked(wanted: list[Lookup], found: list[dict[str, list[Row]]]) -> dict[Lookup, bool]:
    """Which wanted write-block entries block their writer, from the rows read for each (in order)."""
    return {
        lookup: any(sea.is_block_entry(loads(value)) for rows in souls.values() for _, value, _ in rows)
        for lookup, souls in zip(wanted, found)
    }


def wanted_lookups(waiting: list[tuple[Field, list[Lookup]]]) -> list[Lookup]:
    return sorted({lookup for _, lookups in waiting for lookup in lookups})
