"""The reset control: issuing resets, resuming purges, publishing records, collecting acknowledgements.

Theory of operation (the guarantees are in shared/design/reset-protocol.md):

1. Fence first. ``issue`` picks W (the relay's state clock now) and the scope's next epoch, adds
   the rule to the live fence at once (from here nothing in scope at or below W is accepted or
   served), then installs record + fence + closure durably in one storage transaction.
2. Purge second: a background task deletes the fenced fields in batches; its progress is visible.
   ``start`` resumes any purge a crash interrupted, and reinstates every fence, before the relay
   serves anything.
3. Then publish: the record, signed with the relay's key in its own SEA space, and the legacy
   system node, both written as the relay's own durable writes and pushed to subscribers.
4. Cooperating clients acknowledge with ``{"dam": "reset-ack", "reset": id}``; each is kept
   (peer id, address, pid, time) durably, so the operator sees who has and who has not. In a
   fleet the process the client is connected to records it (once: one row per reset and
   connection); reports read the others' from the store first (``refresh_acks``).

The control owns the fence and the reset state: it builds the ``Fence``, the relay is given it
read-only (``fence``, a ``FenceView``) at construction, and resets, rotations, restores
(``restore``) and TTL rules (``set_ttl_rule``) change it only through the control. Wiring, in
this order: ``control = ResetControl(...)``; ``relay = Relay(..., fence=control.fence,
acknowledge=control.acknowledge)``; ``control.connect_relay(relay)`` (where records are
published and who is connected).

In a fleet (several processes on one PostgreSQL store, ``server/fleet_control.py``) the other
processes ``reload`` what one of them changed, and the changing command waits for them through
``in_step`` (set by the fleet) before it returns. A reset's purge and publication run in one
process: the one holding the reset's ``lease`` (set by the fleet: a PostgreSQL advisory lock held
by a connection of its own, so it ends with the process). The issuing process takes it before the
reset is installed; an interrupted purge is resumed (at start, or by ``adopt_orphans`` when the
leading process died) only by a process that gets the lease and finds the purge still unfinished.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

from ..core import sea
from ..core.errors import OperatorError
from ..core.fence import ALL, Fence, FenceRule, FenceView, Protected, in_prefix, ttl_rule
from ..core.graph import Field
from ..core.link import Link
from ..core.reset import ResetRecord, fence_rule, legacy_fields, signed_space_fields
from ..storage.base import ResetAck, Store, StoredReset
from .background import Background
from .identity import Identity
from .relay import Relay, wall_clock_ms

log = logging.getLogger("gunrelay.reset")

Release = Callable[[], Awaitable[None]]  # gives up the lead of a reset's purge

PURGE_BATCH = 20_000
CLOSURE_LIMIT = 1_000_000


class ResetControl:
    def __init__(
        self,
        store: Store,
        identity: Identity,
        *,
        system_node: str = "_whisperz_system",
        legacy: bool = True,
        instance: str = "default",
        clock_ms: Callable[[], float] = wall_clock_ms,
    ):
        self.store = store
        self.identity = identity
        self.system_node = system_node
        self.legacy = legacy
        self.instance = instance
        self.clock_ms = clock_ms
        self.protected = Protected((identity.space, system_node))
        self._fence = Fence(protected=self.protected)
        self._relay: Relay | None = None
        self.resets: dict[str, StoredReset] = {}
        self.purged: dict[str, int] = {}
        self.purge_seconds: dict[str, float] = {}  # how long each purge took (this run)
        self.published: set[str] = set()  # records published since start (resets whose purge had finished before: all)
        self.acks: dict[str, dict[str, ResetAck]] = {}
        self.relay_acks: dict[str, dict[str, ResetAck]] = {}  # reset id -> relay pub -> its latest word (server/mesh_resets.py)
        self._tasks = Background()  # purges, publications, acks on their way to the store
        self._lock = asyncio.Lock()
        # set by the fleet: wait until every process has this one's changes in force; who did not
        self.in_step: Callable[[], Awaitable[list[str]]] | None = None
        # set by the fleet: the lead of a reset's purge (a release, or None: another process leads)
        self.lease: Callable[[str], Awaitable[Release | None]] | None = None
        self._leading: set[str] = set()  # resets whose purge and publication run here

    @property
    def fence(self) -> FenceView:
        """The live fence, read-only: what the relay and everyone else are given."""
        return self._fence

    def connect_relay(self, relay: Relay) -> None:
        """The relay whose subscribers see published records and whose connections owe acknowledgements."""
        self._relay = relay

    @property
    def relay(self) -> Relay:
        if self._relay is None:
            raise RuntimeError("the reset control has no relay: call connect_relay first")
        return self._relay

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Reinstate every fence and resume unfinished purges (before the relay serves)."""
        for held in sorted(await self.store.load_resets(), key=lambda h: h.record.issued_at):
            self.resets[held.record.reset_id] = held
            if held.superseded_by is not None:
                continue  # undone by a restore: no fence, nothing left to purge
            self._fence.add(held.rule)
            self.purged[held.record.reset_id] = held.purged
            self.acks[held.record.reset_id] = {}
            for ack in await self.store.acks(held.record.reset_id):
                self._keep_ack(ack)
            if held.record.kind == "rotation":
                self.instance = held.record.replacement or self.instance  # the latest rotation names it
            if not held.purge_done:
                leads, release = await self._lead(held.record.reset_id)
                if not leads:
                    log.info("reset %s: another process of the fleet leads its purge", held.record.reset_id)
                    continue
                log.warning("resuming reset %s (%s): its purge had not finished", held.record.reset_id, held.record.scope)
                self._spawn(self._carry_out(held, release=release))
            elif held.published:
                self.published.add(held.record.reset_id)
            else:  # a crash between the purge's end and the publication: publish now
                await self.publish(held.record)

    async def stop(self) -> None:
        await self._tasks.cancel()

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    def pending(self) -> int:
        """Purges, publications and acknowledgements under way in this process."""
        return len(self._tasks)

    # -- issuing ----------------------------------------------------------------------------

    def check_scope(self, scope: str) -> None:
        if not isinstance(scope, str) or not scope:
            raise OperatorError("scope must be '*' or a soul prefix")
        if scope != ALL and (scope.endswith("/") or self.protected.contains(scope)):
            raise OperatorError(f"scope {scope!r} is not a soul prefix the relay may reset")

    def _next_epoch(self, scope: str) -> int:
        return 1 + max((h.record.epoch for h in self.resets.values() if h.record.scope == scope), default=0)

    def new_record(self, scope: str, watermark: float, **details: Any) -> ResetRecord:
        """A record with a fresh id, the scope's next epoch and the issue time (call under the lock)."""
        return ResetRecord(
            reset_id=f"{int(self.clock_ms())}-{secrets.token_hex(4)}",
            scope=scope,
            epoch=self._next_epoch(scope),
            watermark=watermark,
            issued_at=time.time() * 1000,
            **details,
        )

    def clock_hold(self, look_first: bool = True) -> str | None:
        """Why actions whose watermark is "now" must wait (the wall clock just jumped), or None."""
        return self.relay.clock_hold(look_first)

    def check_clock(self) -> None:
        """Refuse an action whose watermark is "now" while the wall clock has just jumped (``core.clockwatch``);
        looks at the clocks first, so a step since the monitor's last round counts too."""
        why = self.clock_hold()
        if why is not None:
            raise OperatorError(why)

    async def issue(
        self, scope: str = ALL, reason: str = "", message: str = "", keep: tuple[str, ...] = (), dry_run: bool = False
    ) -> dict[str, Any]:
        self.check_scope(scope)
        async with self._lock:  # one reset at a time, so epochs and watermarks are ordered
            if not dry_run:
                self.check_clock()
            watermark = self.clock_ms()
            record = self.new_record(scope, watermark, reason=reason, message=message, keep=tuple(keep))
            if not dry_run:
                # live at once on the scope itself, before any scan; the closure joins it below
                self._fence.add(FenceRule(record.reset_id, scope, watermark))
            try:
                souls = frozenset() if scope == ALL else await self.store.reachable_souls(scope, self.protected, CLOSURE_LIMIT)
            except Exception:
                self._fence.remove(record.reset_id)
                raise
            rule = FenceRule(record.reset_id, scope, watermark, souls=souls)
            if dry_run:
                report = await self.store.scope_report(rule, self.protected)
                return {
                    "dry_run": True,
                    "record": record_json(record),
                    "would_remove": {"souls": report.souls, "fields": report.fields, "bytes": report.bytes},
                    "reachable_souls_fenced": len(souls),
                    "peers_to_notify": len(self.relay.clients()),
                }
            held, release = await self._install(StoredReset(record, souls, purge_done=False, purged=0))
        log.warning("reset %s of %r issued: watermark %s, epoch %d (%s)", record.reset_id, scope, watermark, record.epoch, reason)
        self._spawn(self._carry_out(held, release=release))
        return {"dry_run": False, "record": record_json(record), "reachable_souls_fenced": len(souls), **await self._fleet_in_step()}

    async def rotate(self, scope: str, to: str, grace_s: float, reason: str = "", message: str = "") -> dict[str, Any]:
        """Start ``scope`` afresh under ``to``: the old scope turns read-only at once (W = +inf),
        clients follow the record's ``replacement``, and the old data is purged after ``grace_s``."""
        self.check_scope(scope)
        self.check_scope(to)
        self.check_clock()
        if scope == ALL or to == ALL:
            raise OperatorError("rotation works on soul prefixes, not '*'")
        if in_prefix(to, scope) or in_prefix(scope, to):
            raise OperatorError(f"the new scope {to!r} must lie outside the old one {scope!r} (and not contain it)")
        async with self._lock:
            souls = await self.store.reachable_souls(scope, self.protected, CLOSURE_LIMIT)
            record = self.new_record(
                scope, math.inf, reason=reason, message=message, replacement=to, kind="rotation",
                purge_after=time.time() * 1000 + grace_s * 1000,
            )
            held, release = await self._install(StoredReset(record, souls, purge_done=False, purged=0))  # read-only now
            self.instance = to
        log.warning("rotation %s: %r is read-only, replaced by %r; purge in %.0f s", record.reset_id, scope, to, grace_s)
        self._spawn(self._carry_out(held, release=release))
        return {"record": record_json(record), "reachable_souls_fenced": len(souls), **await self._fleet_in_step()}

    async def _install(self, held: StoredReset) -> tuple[StoredReset, Release | None]:
        """Put ``held``'s fence up (live at once), take the fleet's lead of it (before any other
        process can see it), then record it durably with its closure (call under the lock); a
        failed install takes the fence down and gives the lead up again."""
        reset_id = held.record.reset_id
        self._fence.add(held.rule)
        release: Release | None = None
        try:
            _, release = await self._lead(reset_id)
            await self.store.install_reset(held.record, held.souls)
        except Exception:
            self._fence.remove(reset_id)
            if release is not None:
                await release()
            raise
        self.resets[reset_id] = held
        self.purged[reset_id] = 0
        self.acks[reset_id] = {}
        return held, release

    async def _fleet_in_step(self) -> dict[str, Any]:
        """In a fleet: wait until every process has the change in force; the ones that did not
        confirm (``fleet_not_confirmed``). Alone: nothing to wait for, nothing to say."""
        if self.in_step is None:
            return {}
        return {"fleet_not_confirmed": await self.in_step()}

    async def _carry_out(
        self, held: StoredReset, purged: Callable[[], Awaitable[None]] | None = None, release: Release | None = None
    ) -> None:
        """A reset: purge, then publish. A rotation: publish (clients move now), purge after the grace.
        ``purged`` is called once the purge is done (a reset obeyed for another relay says so);
        ``release`` gives up the fleet's lead of it at the end."""
        record = held.record
        self._leading.add(record.reset_id)
        try:
            if record.kind == "rotation":
                await self.publish(record)
                wait_s = ((record.purge_after or 0) - time.time() * 1000) / 1000
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                await self._purge(held)
            else:
                await self._purge(held)
                await self.publish(record)
            if purged is not None:
                await purged()
        finally:
            self._leading.discard(record.reset_id)
            if release is not None:
                await release()

    async def _lead(self, reset_id: str) -> tuple[bool, Release | None]:
        """Whether this process leads the reset's purge, and how to give the lead up (alone: it
        leads, nothing to give up)."""
        if self.lease is None:
            return True, None
        release = await self.lease(reset_id)
        return release is not None, release

    async def adopt_orphans(self) -> None:
        """Resume the purges no live process leads any more (the one leading died): a reset's lease
        is free only when no process holds it, and its purge is looked at again once held."""
        if self.lease is None:
            return
        for reset_id, held in list(self.resets.items()):
            if held.purge_done or held.superseded_by is not None or reset_id in self._leading:
                continue
            leads, release = await self._lead(reset_id)
            if not leads:
                continue
            fresh = next((h for h in await self.store.load_resets() if h.record.reset_id == reset_id), None)
            if fresh is None or fresh.purge_done or fresh.superseded_by is not None:
                if release is not None:
                    await release()
                continue
            log.warning("reset %s (%s): the process leading its purge is gone; this one resumes it", reset_id, held.record.scope)
            self._leading.add(reset_id)  # from now: a second look does not take it up again
            self._spawn(self._carry_out(fresh, release=release))

    # -- resets another relay of the mesh issued (server/mesh_resets.py) ---------------------------

    async def obey(self, record: ResetRecord, purged: Callable[[], Awaitable[None]]) -> bool:
        """Install a verified reset that relay ``record.issuer`` issued: the same fence with the same
        W, live at once and then durable, like one of ours; then purge and publish it in our own
        space (our clients read only ours) and call ``purged``. A reset already held, an old epoch
        (the issuer's newer reset of that scope is here) or a scope this relay may not reset
        changes nothing: False."""
        if record.scope != ALL and self.protected.contains(record.scope):
            log.warning("reset %s from relay %s names a protected scope %r: ignored", record.reset_id, record.issuer, record.scope)
            return False
        async with self._lock:
            if record.reset_id in self.resets:
                return False
            newest = max(
                (h.record.epoch for h in self.resets.values() if h.record.issuer == record.issuer and h.record.scope == record.scope),
                default=0,
            )
            if record.epoch <= newest:
                log.warning("reset %s from relay %s: epoch %d of %r is not newer than %d: ignored",
                            record.reset_id, record.issuer, record.epoch, record.scope, newest)
                return False
            self._fence.add(fence_rule(record))  # live at once on the scope itself; the closure joins it below
            try:
                souls = frozenset() if record.scope == ALL else await self.store.reachable_souls(record.scope, self.protected, CLOSURE_LIMIT)
            except Exception:
                self._fence.remove(record.reset_id)
                raise
            held, release = await self._install(StoredReset(record, souls, purge_done=False, purged=0))
            if record.kind == "rotation" and record.replacement:
                self.instance = record.replacement
        log.warning("%s %s of %r from relay %s obeyed: watermark %s, epoch %d",
                    record.kind, record.reset_id, record.scope, record.issuer, record.watermark, record.epoch)
        self._spawn(self._carry_out(held, purged, release=release))
        return True

    def note_relay_ack(self, relay_pub: str, reset_id: str, purged: bool, at: float) -> None:
        """Relay ``relay_pub`` says it has the fence of our reset ``reset_id`` up (and its purge done): kept durably."""
        if reset_id not in self.resets:
            return
        known = self.relay_acks.get(reset_id, {}).get(relay_pub)
        if known is not None and (known.pid == "purged" or not purged):
            return  # nothing new
        stage = "purged" if purged else "fenced"
        ack = ResetAck(reset_id, f"relay:{relay_pub}:{stage}", "", stage, at)  # one row per stage: rows are never replaced
        self._keep_ack(ack)
        self._spawn(self.store.record_ack(ack))

    def _keep_ack(self, ack: ResetAck) -> None:
        """An acknowledgement into memory: a client's, or a relay's (peer id ``relay:<pub>:<stage>``,
        pid the stage: fenced, then purged)."""
        if ack.peer_id.startswith("relay:"):
            relays = self.relay_acks.setdefault(ack.reset_id, {})
            pub = ack.peer_id[len("relay:"):].rsplit(":", 1)[0]
            if pub not in relays or ack.pid == "purged":
                relays[pub] = ack
        else:
            self.acks.setdefault(ack.reset_id, {})[ack.peer_id] = ack

    async def _purge(self, held: StoredReset) -> None:
        reset_id = held.record.reset_id
        already = self.purged.get(reset_id, 0)
        started = time.monotonic()

        def progress(total: int) -> None:
            self.purged[reset_id] = already + total

        total = already + await self.store.purge(held.rule, self.protected, PURGE_BATCH, progress)
        await self.store.finish_purge(reset_id, total)
        self.purge_seconds[reset_id] = time.monotonic() - started
        done = StoredReset(held.record, held.souls, purge_done=True, purged=total)
        self.resets[reset_id] = done
        self._fence.add(done.rule)  # a rotated scope stops serving once its data is gone
        log.warning("%s %s: purge finished, %d fields removed", held.record.kind, reset_id, total)

    async def publish(self, record: ResetRecord) -> None:
        state = self.clock_ms() if math.isinf(record.watermark) else max(self.clock_ms(), record.watermark + 1)
        fields = [
            Field(f.soul, f.key, sea.sign_field(self.identity.private_key, f.soul, f.key, f.value, state), state)
            for f in signed_space_fields(record, self.identity.space, state)
        ]
        if self.legacy:
            fields += legacy_fields(record, self.system_node, self.instance, state)
        await self.relay.publish(fields)
        await self.store.mark_published(record.reset_id)
        self.published.add(record.reset_id)

    # -- the fence's other changes: TTL rules and restores ----------------------------------------

    def set_ttl_rule(self, prefix: str, ttl_ms: float) -> None:
        self._fence.add(ttl_rule(prefix, ttl_ms))

    def drop_ttl_rule(self, prefix: str) -> None:
        self._fence.remove(ttl_rule(prefix, 0).rule_id)

    async def restore(
        self, created_ms: float, restore_fields: Callable[[], Awaitable[Any]], reason: str, message: str = ""
    ) -> tuple[ResetRecord, Any, list[str]]:
        """Put back a snapshot taken at ``created_ms`` (``restore_fields`` writes its fields): the
        resets issued since then are undone (their fences lifted), and a restore record fences
        writes at or below now, so peers' stale copies do not come back over the restored data.
        Returns the record, what ``restore_fields`` returned, and the ids of the resets undone."""
        self.check_clock()
        async with self._lock:
            record = self.new_record(ALL, self.clock_ms(), reason=reason, message=message, kind="restore")
            restored = await restore_fields()
            undone = await self.store.supersede_resets(created_ms, by=record.reset_id)
            for reset_id in undone:
                self._fence.remove(reset_id)
                self.resets[reset_id] = replace(self.resets[reset_id], superseded_by=record.reset_id)
            await self.store.install_reset(record, frozenset())
            await self.store.finish_purge(record.reset_id, 0)
            held = StoredReset(record, frozenset(), purge_done=True, purged=0)
            self.resets[record.reset_id] = held
            self.acks[record.reset_id] = {}
            self._fence.add(held.rule)
        await self._fleet_in_step()  # the other processes' fences too, before the restored data is served there
        await self.publish(record)
        return record, restored, undone

    # -- the fleet: what another process changed (server/fleet_control.py) ---------------------------

    async def reload(self) -> None:
        """Bring the live fence and the reset state in line with the store after another process of
        the fleet changed them: resets installed (their fence up at once), superseded (lifted),
        purged (a rotated scope stops serving) or published; acknowledgements; TTL rules. No purge
        or publication is started here: those are the issuing process's."""
        async with self._lock:
            stored = sorted(await self.store.load_resets(), key=lambda h: h.record.issued_at)
            ttls = await self.store.load_ttls()
            for held in stored:
                reset_id = held.record.reset_id
                known = self.resets.get(reset_id)
                if known is not None and known.purge_done and not held.purge_done:
                    held = replace(held, purge_done=True, purged=max(known.purged, held.purged))  # ours finished meanwhile
                self.resets[reset_id] = held
                if held.superseded_by is not None:
                    self._fence.remove(reset_id)
                    continue
                if self._fence.rule(reset_id) != held.rule:
                    self._fence.add(held.rule)
                self.purged[reset_id] = max(self.purged.get(reset_id, 0), held.purged)
                for ack in await self.store.acks(reset_id):
                    self._keep_ack(ack)
                if held.published:
                    self.published.add(reset_id)
                if known is None and held.record.kind == "rotation" and held.record.replacement:
                    self.instance = held.record.replacement
            wanted = {rule.rule_id: rule for rule in (ttl_rule(prefix, ttl_ms) for prefix, ttl_ms in ttls.items())}
            for rule in self._fence.rules:
                if rule.rule_id.startswith("ttl:") and rule.rule_id not in wanted:
                    self._fence.remove(rule.rule_id)
            for rule_id, rule in wanted.items():
                if self._fence.rule(rule_id) != rule:
                    self._fence.add(rule)

    # -- resets carried over from another relay's export (server/interchange.py) -------------------

    async def install_imported(self, held: StoredReset, superseded: Sequence[StoredReset] = ()) -> None:
        """Install a reset exported by a relay (this one, or the one this store moves from): the
        fence first, live at once, then record, closure, purge and publication state durably.
        ``superseded`` are the resets this one (a restore) undid, installed before it: their
        fences are lifted again. An unfinished purge resumes when the relay next starts."""
        record = held.record
        reset_id = record.reset_id
        async with self._lock:
            if reset_id in self.resets:
                return
            rule = replace(held, superseded_by=None).rule
            self._fence.add(rule)
            try:
                await self.store.install_reset(record, held.souls)
                if held.purge_done:
                    await self.store.finish_purge(reset_id, held.purged)
                if held.published:
                    await self.store.mark_published(reset_id)
                undone = []
                if superseded:
                    since = min(h.record.issued_at for h in superseded) - 0.001
                    undone = await self.store.supersede_resets(since, by=reset_id)
            except Exception:
                self._fence.remove(reset_id)
                raise
            for other in undone:
                self._fence.remove(other)
                if other in self.resets:
                    self.resets[other] = replace(self.resets[other], superseded_by=reset_id)
            self.resets[reset_id] = replace(held, superseded_by=None)
            self.purged[reset_id] = held.purged
            self.acks[reset_id] = {}
            if held.published:
                self.published.add(reset_id)
            if record.kind == "rotation" and record.replacement:
                self.instance = record.replacement
        log.warning("%s %s of %r imported (watermark %s)", record.kind, reset_id, record.scope, record.watermark)

    def fence_with(self, resets: list[StoredReset], ttls: dict[str, float]) -> FenceView:
        """The live fence plus these resets' and TTL rules' (a dry run of an import); changes nothing."""
        rules = self._fence.rules + [h.rule for h in resets if h.superseded_by is None]
        rules += [ttl_rule(prefix, ttl_ms) for prefix, ttl_ms in ttls.items()]
        return Fence(rules, protected=self.protected)

    # -- acknowledgements --------------------------------------------------------------------

    def acknowledge(self, peer: Link, reset_id: Any) -> str | None:
        """A connection says it has cleared itself for ``reset_id``: why that is refused, or None."""
        if not isinstance(reset_id, str) or reset_id not in self.resets:
            return "Unknown reset id."
        acks = self.acks.setdefault(reset_id, {})
        if peer.id not in acks:
            ack = ResetAck(reset_id, peer.id, peer.address, peer.pid, time.time() * 1000)
            acks[peer.id] = ack
            self._spawn(self.store.record_ack(ack))
        return None

    async def refresh_acks(self, reset_ids: Sequence[str] | None = None) -> None:
        """Bring the acknowledgements of ``reset_ids`` (None: every reset) up to the store's, before
        a report reads them. In a fleet a client acknowledges to the process it is connected to,
        which records the ack once, durably; every other process reads it from the store here, so
        an ack through any process shows on all of them as soon as it is stored. Alone, every ack
        came through this process and is in memory already: nothing to read."""
        if self.in_step is None:  # not in a fleet (the fleet sets in_step)
            return
        for reset_id in list(self.resets) if reset_ids is None else reset_ids:
            if reset_id in self.resets:
                for ack in await self.store.acks(reset_id):
                    self._keep_ack(ack)

    @staticmethod
    def _has_acknowledged(peer: Link, acks: dict[str, ResetAck]) -> bool:
        """This connection acknowledged, or the same GUN peer (its pid survives reconnects) did."""
        if peer.id in acks:
            return True
        return peer.pid is not None and any(a.pid == peer.pid for a in acks.values())

    # -- reports -----------------------------------------------------------------------------

    def describe(self, reset_id: str) -> dict[str, Any]:
        held = self.resets.get(reset_id)
        if held is None:
            raise OperatorError(f"no reset {reset_id!r}")
        acks = self.acks.get(reset_id, {})
        pending = [
            {"peer_id": p.id, "address": p.address, "pid": p.pid}
            for p in self.relay.clients()  # relays of the mesh do not clear themselves for us
            if not self._has_acknowledged(p, acks)
        ]
        return {
            "record": record_json(held.record),
            "purge": {
                "done": held.purge_done,
                "fields_removed": self.purged.get(reset_id, held.purged),
                "seconds": self.purge_seconds.get(reset_id),
            },
            "published": reset_id in self.published,
            "acknowledged": [asdict(a) for a in acks.values()],
            "connected_not_acknowledged": pending,
            "issuer": held.record.issuer or self.identity.pub,
            "relays": [
                {"pub": pub, "fence_installed": True, "purge_done": ack.pid == "purged", "at": ack.at}
                for pub, ack in sorted(self.relay_acks.get(reset_id, {}).items())
            ],
            "relays_silent": [
                {"pub": link.relay_pub, "pid": link.pid}
                for link in self.relay.engine.relay_links
                if not held.record.issuer  # only the issuer hears who obeys
                and link.relay_pub is not None and not link.closed and link.relay_pub not in self.relay_acks.get(reset_id, {})
            ],
        }

    def acknowledged_peers(self, reset_id: str) -> int | None:
        """How many GUN peers acknowledged ``reset_id`` (one per pid, or per connection without one);
        None for a reset this relay does not know. Public: a count, nobody's address."""
        if reset_id not in self.resets:
            return None
        return len({a.pid if a.pid is not None else f"link:{a.peer_id}" for a in self.acks.get(reset_id, {}).values()})

    def rotations(self) -> list[dict[str, Any]]:
        """Rotated scopes, oldest first: where each went, and when its old data is (or was) purged."""
        return [
            {
                "reset_id": held.record.reset_id,
                "scope": held.record.scope,
                "to": held.record.replacement,
                "issued_at": held.record.issued_at,
                "purge_after": held.record.purge_after,
                "purge_done": held.purge_done,
                "fields_removed": self.purged.get(held.record.reset_id, held.purged),
            }
            for held in sorted(self.resets.values(), key=lambda h: h.record.issued_at)
            if held.record.kind == "rotation"
        ]

    def latest_acks(self) -> Callable[[Link], dict[str, Any] | None]:
        """A look-up: the latest reset a peer (this connection, or the same GUN peer by pid) acknowledged."""
        by_peer: dict[str, ResetAck] = {}
        by_pid: dict[str, ResetAck] = {}
        for acks in self.acks.values():
            for ack in acks.values():
                if ack.peer_id not in by_peer or ack.at > by_peer[ack.peer_id].at:
                    by_peer[ack.peer_id] = ack
                if ack.pid is not None and (ack.pid not in by_pid or ack.at > by_pid[ack.pid].at):
                    by_pid[ack.pid] = ack

        def latest(peer: Link) -> dict[str, Any] | None:
            found = [a for a in (by_peer.get(peer.id), by_pid.get(peer.pid) if peer.pid else None) if a is not None]
            if not found:
                return None
            ack = max(found, key=lambda a: a.at)
            return {"reset_id": ack.reset_id, "at": ack.at}

        return latest

    def history(self) -> list[dict[str, Any]]:
        out = []
        for held in sorted(self.resets.values(), key=lambda h: h.record.issued_at):
            out.append(
                {
                    "record": record_json(held.record),
                    "acknowledgements": len(self.acks.get(held.record.reset_id, {})),
                    "superseded_by": held.superseded_by,
                    "purge": {"done": held.purge_done, "fields_removed": self.purged.get(held.record.reset_id, held.purged)},
                }
            )
        return out


def record_json(record: ResetRecord) -> dict[str, Any]:
    values = record.graph_values()
    values["keep"] = list(record.keep)
    return values
