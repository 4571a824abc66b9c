"""Honouring the relay's resets on the client side (shared/design/reset-protocol.md, "Client plugin").

Theory of operation. The relay publishes its latest reset record, field by field, at the soul
``~<relay pub>/reset``, and every record at ``~<relay pub>/resets/<reset_id>``, listed in the
index ``~<relay pub>/resets`` (key: reset id, value: a relation to the record). Every value is
SEA-signed with the relay's key (``core.sea.sign_field``). The latest record is watched live; the
index lets a peer that was away during several resets (of different scopes) catch up on each,
in the order they were issued. ``core.reset.record_of`` turns the fields held for a record soul
into a ``ResetRecord`` only when they verify (see there); relays of a mesh read each other's
records with the same function.

``ResetKeeper.apply`` then acts on a record at most once per (scope, epoch), in the order that
keeps a crash safe: the client fence goes live (incoming fields in scope at or below W are
dropped from now on), the record is installed in the peer's ledger (``ledger``, durable for a
durable peer: that is where "already applied" is remembered), queued outbox writes in scope are dropped, the
local copy of the scope is purged in batches, and the purge is marked finished. After a crash,
``load`` reinstates the fences and finishes unfinished purges. The fence rule of a record is
the one the relay that issued it puts up (``core.reset.fence_rule``), so both sides refuse,
and serve, the same fields.

Kinds: a ``reset`` and a ``rotation`` (W = +infinity: the old scope is read-only, follow
``replacement``) both fence and purge; a peer purges a rotated scope at once (the relay after a
grace period, serving it meanwhile), and its rule stops serving once that purge is done. A ``restore`` (the relay went back to a snapshot) purges
the local copy at or below W but installs no fence, and lifts the fences of earlier resets: the
restored data is older than those watermarks and must be readable again. The relay keeps
enforcing its own fences either way.
"""

from __future__ import annotations

import asyncio
import logging
import math

from ..core.fence import ALL, Fence, FenceRule, Protected
from ..core.reset import ResetRecord, fence_rule
from ..storage.graph import GraphStore
from .ledger import MemoryResetLedger
from .outbox import MemoryOutbox

log = logging.getLogger("gunrelay.client")

PURGE_BATCH = 10_000
CLOSURE_LIMIT = 100_000
LEGACY_NODE = "_whisperz_system"


class ResetKeeper:
    """The client fence and the resets applied to the local store."""

    def __init__(self, store: GraphStore, ledger: MemoryResetLedger, outbox: MemoryOutbox, legacy_node: str = LEGACY_NODE):
        self.store = store
        self.ledger = ledger  # which resets were applied here, and how far each purge got
        self.outbox = outbox
        self.legacy_node = legacy_node
        self.fence = Fence(protected=Protected((legacy_node,)))
        self.applied: dict[str, int] = {}  # scope -> highest epoch applied
        self.records: dict[str, ResetRecord] = {}  # reset_id -> record, every one applied
        self._lock = asyncio.Lock()

    def trust(self, relay_pub: str) -> None:
        """The relay's own space is never in a reset's scope (it holds the records themselves)."""
        self.fence.protected = Protected(("~" + relay_pub, self.legacy_node))

    def latest(self) -> list[ResetRecord]:
        """The latest record applied per scope (the ones to acknowledge on every connection)."""
        best: dict[str, ResetRecord] = {}
        for record in self.records.values():
            if record.scope not in best or record.epoch > best[record.scope].epoch:
                best[record.scope] = record
        return sorted(best.values(), key=lambda r: r.issued_at)

    async def load(self) -> None:
        """Reinstate what the local store remembers: applied epochs, fences, unfinished purges."""
        for held in sorted(await self.ledger.load_resets(), key=lambda h: h.record.issued_at):
            record = held.record
            self.records[record.reset_id] = record
            self.applied[record.scope] = max(self.applied.get(record.scope, 0), record.epoch)
            rule = held.rule  # core.reset.fence_rule of the record, as far as its purge got
            fences = held.superseded_by is None and record.kind != "restore"
            if fences:
                self.fence.add(rule)
            if not held.purge_done:
                log.warning("finishing the local purge of reset %s (%s)", record.reset_id, record.scope)
                await self._purge(record, rule, fences)

    def is_new(self, record: ResetRecord) -> bool:
        return record.epoch > self.applied.get(record.scope, 0) and record.reset_id not in self.records

    async def apply(self, record: ResetRecord, now_ms: float) -> bool:
        """Act on ``record`` unless its epoch for that scope was applied already; True if it was applied now."""
        async with self._lock:
            if not self.is_new(record):
                return False
            souls: frozenset[str] = frozenset()
            if record.scope != ALL:
                souls = await self.store.reachable_souls(record.scope, self.fence.protected, CLOSURE_LIMIT)
            rule = fence_rule(record, souls)
            fences = record.kind != "restore"
            if fences:
                self.fence.add(rule)
            else:
                for reset_id in await self.ledger.supersede_resets(-math.inf, by=record.reset_id):
                    self.fence.remove(reset_id)
            await self.ledger.install_reset(record, souls)
            self.records[record.reset_id] = record
            self.applied[record.scope] = max(self.applied.get(record.scope, 0), record.epoch)
            dropped = await self.outbox.drop(rule, self.fence.protected, now_ms)
            purged = await self._purge(record, rule, fences)
            log.warning(
                "applied %s %s of %r (epoch %d, W %s): %d local fields purged, %d queued writes dropped",
                record.kind, record.reset_id, record.scope, record.epoch, record.watermark, purged, dropped,
            )
            return True

    async def hard_reset(self, scope: str, now_ms: float) -> int:
        """Clear the local copy of ``scope`` (and its queued writes) without a record: the manual recipe."""
        rule = FenceRule("hard-reset", scope, math.inf)
        await self.outbox.drop(rule, self.fence.protected, now_ms)
        return await self.store.purge(rule, self.fence.protected, PURGE_BATCH)

    async def _purge(self, record: ResetRecord, rule: FenceRule, fences: bool) -> int:
        """Purge the local copy of the record's scope; a rule in the fence then becomes the one of
        a finished purge (a rotated scope stops serving once its data is gone, as on the relay)."""
        total = await self.store.purge(rule, self.fence.protected, PURGE_BATCH)
        await self.ledger.finish_purge(record.reset_id, total)
        if fences:
            self.fence.add(fence_rule(record, rule.souls, purge_done=True))
        return total
