"""The fence: which fields the relay must never again store, serve or forward.

Theory of operation. A reset of a scope with watermark W promises that no field in that scope
whose state is <= W comes back, from anyone, ever (``ties go to the reset``). The fence is the
set of such rules; every hop asks it about every field: incoming puts (with an explicit error to
the writer), get replies, deferred writes when they finally apply. It never consults the graph,
so it is correct whatever storage holds, and it is live the moment a rule is added, before any
data is purged.

Scopes: ``*`` is the whole graph except the protected system souls (the relay's own SEA space and
the legacy system node), or a soul prefix ``p``: the soul ``p`` itself and every soul under
``p/``, plus the souls that were reachable from it when the reset was issued (``souls``: messages
added with ``set()`` have random souls that only a relation points to). A rotation fences its old
scope with W = +infinity: no write passes, while reads still do until its grace period ends and
the old data is purged (``serves``); a TTL rule is a moving fence W(now) = now - ttl.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

ALL = "*"


@dataclass(frozen=True)
class FenceRule:
    rule_id: str  # the reset id (or "ttl:<prefix>")
    scope: str  # "*" or a soul prefix
    watermark: float = -math.inf  # fixed W; +inf for a rotated (read-only) scope
    ttl_ms: float | None = None  # moving fence: W = now - ttl
    souls: frozenset[str] = field(default_factory=frozenset)  # reachable at reset time (prefix scopes)
    serves: bool = False  # read-only rule: refuses writes but lets stored data be read (a rotation's grace)

    def covers(self, soul: str, protected: "Protected") -> bool:
        if self.scope == ALL:
            return not protected.contains(soul)
        return in_prefix(soul, self.scope) or soul in self.souls

    def watermark_at(self, now: float) -> float:
        if self.ttl_ms is not None:
            return now - self.ttl_ms
        return self.watermark


def ttl_rule(prefix: str, ttl_ms: float) -> FenceRule:
    """A TTL rule: fields under ``prefix`` older than ``ttl_ms`` are neither accepted nor served."""
    return FenceRule(f"ttl:{prefix}", prefix, ttl_ms=ttl_ms)


def in_prefix(soul: str, prefix: str) -> bool:
    return soul == prefix or soul.startswith(prefix + "/")


@dataclass(frozen=True)
class Protected:
    """System souls no reset of ``*`` touches: the relay's SEA space and the legacy system node."""

    prefixes: tuple[str, ...] = ()

    def contains(self, soul: str) -> bool:
        if not soul.startswith(self.prefixes):  # one C call rules out almost every soul (per-field path)
            return False
        return any(in_prefix(soul, p) for p in self.prefixes)


class FenceView:
    """The fence as every hop reads it: ``blocks`` is on the per-field hot path (with no rules it
    costs one check). Only the fence's owner (the reset control) holds it as a ``Fence`` and may
    change it; everyone else is given it typed as this view."""

    __slots__ = ("_rules", "protected", "version", "_fixed_ceiling", "_shortest_ttl")

    def __init__(self, protected: Protected = Protected()):
        self._rules: dict[str, FenceRule] = {}
        self.protected = protected
        self.version = 0  # changes whenever a rule is added or removed
        self._fixed_ceiling = -math.inf
        self._shortest_ttl: float | None = None

    def ceiling(self, now: float) -> float:
        """No rule refuses a state above this: the hot path's shortcut past every rule."""
        if self._shortest_ttl is None:
            return self._fixed_ceiling
        return max(self._fixed_ceiling, now - self._shortest_ttl)

    @property
    def rules(self) -> list[FenceRule]:
        return list(self._rules.values())

    def rule(self, rule_id: str) -> FenceRule | None:
        return self._rules.get(rule_id)

    def blocks(self, soul: str, state: float, now: float, serving: bool = False) -> FenceRule | None:
        """The rule that refuses a field (soul, state) -- on its way in, or out when ``serving`` --
        or None if it may pass."""
        if not self._rules:
            return None
        for rule in self._rules.values():
            if serving and rule.serves:
                continue
            if state <= rule.watermark_at(now) and rule.covers(soul, self.protected):
                return rule
        return None

    def __bool__(self) -> bool:
        return bool(self._rules)


class Fence(FenceView):
    """The live rules, as their owner changes them."""

    __slots__ = ()

    def __init__(self, rules: Iterable[FenceRule] = (), protected: Protected = Protected()):
        super().__init__(protected)
        for rule in rules:
            self.add(rule)

    def add(self, rule: FenceRule) -> None:
        self._rules[rule.rule_id] = rule
        self._changed()

    def remove(self, rule_id: str) -> None:
        if self._rules.pop(rule_id, None) is not None:
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        fixed = [r.watermark for r in self._rules.values() if r.ttl_ms is None]
        ttls = [r.ttl_ms for r in self._rules.values() if r.ttl_ms is not None]
        self._fixed_ceiling = max(fixed, default=-math.inf)
        self._shortest_ttl = min(ttls, default=None)
